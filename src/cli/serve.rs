//! `nobat serve`: configuration by flags or `NOBAT_*` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::app::{App, Settings};
use crate::store::StoreConfig;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "NOBAT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// PostgreSQL (`postgres://…`) or SQLite (`sqlite://…`) URL; without it, the SQLite file.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// SQLite file used when no database URL is given; created on first start.
    #[arg(long, env = "NOBAT_SQLITE_PATH", default_value = "nobat.db")]
    pub sqlite_path: PathBuf,
    /// Database connections in the pool.
    #[arg(long, env = "NOBAT_DB_MAX_CONNECTIONS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub db_max_connections: u32,
    /// Scenario whose office network seeds an empty database (default: the bundled small one).
    #[arg(long, env = "NOBAT_SCENARIO")]
    pub scenario: Option<PathBuf>,
    /// Minutes a hold keeps its seat.
    #[arg(long, env = "NOBAT_HOLD_MINUTES", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub hold_minutes: u64,
    /// Seconds a hold keeps its seat; overrides `--hold-minutes` (short load tests watch holds
    /// expire within the run).
    #[arg(long, env = "NOBAT_HOLD_SECONDS", value_parser = clap::value_parser!(u64).range(1..=7200))]
    pub hold_seconds: Option<u64>,
    /// Days ahead that slots are open for booking.
    #[arg(long, env = "NOBAT_BOOKING_HORIZON_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=365))]
    pub booking_horizon_days: u32,
    /// Most booking requests committed in one transaction.
    #[arg(long, env = "NOBAT_BATCH_MAX", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub batch_max: u64,
    /// Booking requests that may wait for the writer before new ones are refused with 503.
    #[arg(long, env = "NOBAT_QUEUE_BOUND", default_value_t = 16384, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub queue_bound: u64,
    /// API requests served at once; beyond it, 503 `overloaded` with `Retry-After` at once.
    #[arg(long, env = "NOBAT_MAX_IN_FLIGHT", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_in_flight: u64,
    /// Bearer token for the planner endpoints (`/v1/planner/…`); unset leaves them off.
    #[arg(long, env = "NOBAT_PLANNER_TOKEN", hide_env_values = true)]
    pub planner_token: Option<String>,
    /// HMAC secret for session tokens (≥ 32 bytes); set the same one on every node.
    #[arg(long, env = "NOBAT_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
    /// Admin API token (≥ 24 characters); only its SHA-256 is kept in memory. Without it the
    /// admin API is closed.
    #[arg(long, env = "NOBAT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "NOBAT_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing(&args.log_format);
    let mut settings = Settings::new(
        args.listen,
        StoreConfig {
            database_url: args.database_url,
            sqlite_path: args.sqlite_path,
            max_connections: args.db_max_connections,
            acquire_timeout: Duration::from_secs(3),
        },
    );
    settings.scenario = args.scenario;
    settings.engine.hold_ttl =
        Duration::from_secs(args.hold_seconds.unwrap_or(args.hold_minutes * 60));
    settings.engine.batch_max = args.batch_max as usize;
    settings.engine.queue_bound = args.queue_bound as usize;
    settings.booking_horizon_days = args.booking_horizon_days;
    settings.max_in_flight = args.max_in_flight as usize;
    settings.planner_token = args.planner_token;
    settings.token_secret = args.token_secret;
    settings.admin_token = args.admin_token;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let app = App::build(settings).await?;
        tracing::info!(addr = %app.local_addr(), backend = app.store().backend().as_str(), "nobat serving");
        app.run_until_stopped(shutdown_signal()).await?;
        tracing::info!("nobat stopped");
        Ok(())
    })
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NOBAT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
