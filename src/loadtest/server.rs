//! The server under test as a child process: started on a free loopback port (optionally
//! pinned to CPUs with `taskset`), killed with SIGKILL and restarted on the same database and
//! port for the crash run, stopped with SIGTERM at the end. `kill_on_drop` makes sure no
//! server outlives the generator.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rand::Rng;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::scenario::LoadScenario;
use crate::store::StoreConfig;

/// How often readiness is polled while the server starts.
const READY_POLL: Duration = Duration::from_millis(100);
/// The header a spawned server takes the client's address from.
pub const CLIENT_IP_HEADER: &str = "X-Forwarded-For";
/// How long a SIGTERM'd server may take to finish before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// The `nobat` binary.
    pub exe: PathBuf,
    /// PostgreSQL URL; without it, the SQLite file at `sqlite_path`.
    pub database_url: Option<String>,
    pub sqlite_path: PathBuf,
    /// `taskset -c` CPU list for the server, e.g. `0`.
    pub server_cpus: Option<String>,
    /// The server's stderr goes here (appended across restarts).
    pub log_path: PathBuf,
}

impl ServerSpec {
    pub fn store_config(&self) -> StoreConfig {
        match &self.database_url {
            Some(url) => StoreConfig::url(url.clone()),
            None => StoreConfig::sqlite(self.sqlite_path.clone()),
        }
    }
}

pub struct SpawnedServer {
    spec: ServerSpec,
    /// The admin token it was started with (the generator creates waiting rooms with it).
    admin_token: String,
    args: Vec<String>,
    port: u16,
    ready_timeout: Duration,
    child: Child,
}

impl SpawnedServer {
    pub async fn start(spec: ServerSpec, scenario: &LoadScenario) -> Result<SpawnedServer, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        // A fixed secret for the run, so sessions survive a restart.
        let random = |n: usize| -> String {
            (0..n)
                .map(|_| char::from(b'a' + rand::thread_rng().gen_range(0..26)))
                .collect()
        };
        let secret = random(48);
        let admin_token = random(32);
        let mut args = vec![
            "serve".to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--scenario".into(),
            scenario.server_scenario.display().to_string(),
            "--hold-seconds".into(),
            scenario.server.hold_seconds.to_string(),
            "--db-max-connections".into(),
            scenario.server.db_max_connections.to_string(),
            "--token-secret".into(),
            secret,
            "--admin-token".into(),
            admin_token.clone(),
            // Each virtual applicant comes from an address of its own (the generator says
            // which in this header), so per-address limits see a crowd, not one client.
            "--client-ip-header".into(),
            CLIENT_IP_HEADER.into(),
        ];
        match &spec.database_url {
            Some(url) => args.extend(["--database-url".into(), url.clone()]),
            None => args.extend([
                "--sqlite-path".into(),
                spec.sqlite_path.display().to_string(),
            ]),
        }
        let child = launch(&spec, &args)?;
        let mut server = SpawnedServer {
            spec,
            admin_token,
            args,
            port,
            ready_timeout: Duration::from_secs(scenario.server.ready_timeout_secs),
            child,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    /// The server's process id (`taskset` execs it, so the same process).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + self.ready_timeout;
        let url = format!("{}/readyz", self.base_url());
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the server exited ({status}) before it was ready; see {}",
                    self.spec.log_path.display()
                ));
            }
            let ok = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(());
            }
            tokio::time::sleep(READY_POLL).await;
        }
        Err(format!(
            "the server was not ready within {:?}; see {}",
            self.ready_timeout,
            self.spec.log_path.display()
        ))
    }

    /// `kill -9`: no graceful shutdown, no flush beyond what was committed.
    pub async fn kill9(&mut self) -> Result<(), String> {
        self.child
            .start_kill()
            .map_err(|e| format!("SIGKILL failed: {e}"))?;
        self.child
            .wait()
            .await
            .map_err(|e| format!("waiting for the killed server: {e}"))?;
        Ok(())
    }

    /// Starts the server again with the same arguments (database, port, secret).
    pub async fn restart(&mut self) -> Result<(), String> {
        self.child = launch(&self.spec, &self.args)?;
        self.wait_ready().await
    }

    /// SIGTERM, then SIGKILL if it has not stopped within the grace period.
    pub async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(STOP_GRACE, self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

fn launch(spec: &ServerSpec, args: &[String]) -> Result<Child, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log_path)
        .map_err(|e| format!("cannot open {}: {e}", spec.log_path.display()))?;
    let mut cmd = match &spec.server_cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpus).arg(&spec.exe);
            c
        }
        None => Command::new(&spec.exe),
    };
    cmd.args(args)
        // The server's own configuration comes from the arguments alone.
        .env_remove("DATABASE_URL")
        .env_remove("NOBAT_SQLITE_PATH")
        .env_remove("NOBAT_HOLD_MINUTES")
        .env_remove("NOBAT_HOLD_SECONDS")
        .env(
            "NOBAT_LOG",
            std::env::var("NOBAT_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    cmd.spawn()
        .map_err(|e| format!("cannot start {}: {e}", spec.exe.display()))
}
