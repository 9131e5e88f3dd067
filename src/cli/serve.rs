//! `nobat serve`: configuration by flags or `NOBAT_*` environment variables. The flags'
//! defaults are [`Settings::default`]'s, so `--help`, the server and the tests agree.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::app::{App, Settings};
use crate::booking::Limits;
use crate::http::login_limit::LoginLimits;
use crate::reserve::EngineConfig;
use crate::store::StoreConfig;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "NOBAT_LISTEN", default_value_t = Settings::default().listen)]
    pub listen: SocketAddr,
    /// PostgreSQL (`postgres://…`) or SQLite (`sqlite://…`) URL; without it, the SQLite file.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// SQLite file used when no database URL is given; created on first start.
    #[arg(long, env = "NOBAT_SQLITE_PATH", default_value_os_t = Settings::default().store.sqlite_path)]
    pub sqlite_path: PathBuf,
    /// Database connections in the pool.
    #[arg(long, env = "NOBAT_DB_MAX_CONNECTIONS", default_value_t = Settings::default().store.max_connections, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub db_max_connections: u32,
    /// Scenario whose office network seeds an empty database (default: the bundled small one).
    #[arg(long, env = "NOBAT_SCENARIO")]
    pub scenario: Option<PathBuf>,
    /// Minutes a hold keeps its seat.
    #[arg(long, env = "NOBAT_HOLD_MINUTES", default_value_t = Settings::default().engine.hold_ttl.as_secs() / 60, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub hold_minutes: u64,
    /// Seconds a hold keeps its seat; overrides `--hold-minutes` (short load tests watch holds
    /// expire within the run).
    #[arg(long, env = "NOBAT_HOLD_SECONDS", value_parser = clap::value_parser!(u64).range(1..=7200))]
    pub hold_seconds: Option<u64>,
    /// Minutes a waitlist offer holds its seat.
    #[arg(long, env = "NOBAT_OFFER_MINUTES", default_value_t = Settings::default().engine.offer_ttl.as_secs() / 60, value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub offer_minutes: u64,
    /// Seconds a waitlist offer holds its seat; overrides `--offer-minutes` (tests and short
    /// runs watch offers expire).
    #[arg(long, env = "NOBAT_OFFER_SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub offer_seconds: Option<u64>,
    /// Shortest delay, in minutes, before a seat an applicant gave up (and no waiter took)
    /// returns to first-come booking (anti-trading release).
    #[arg(long, env = "NOBAT_RELEASE_DELAY_MIN_MINUTES", default_value_t = Settings::default().engine.release_delay_min.as_secs() / 60, value_parser = clap::value_parser!(u64).range(0..=1440))]
    pub release_delay_min_minutes: u64,
    /// Longest such delay, in minutes (uniform between the two); 0 disables the delay.
    #[arg(long, env = "NOBAT_RELEASE_DELAY_MAX_MINUTES", default_value_t = Settings::default().engine.release_delay_max.as_secs() / 60, value_parser = clap::value_parser!(u64).range(0..=1440))]
    pub release_delay_max_minutes: u64,
    /// Times an applicant may reschedule one appointment (then 409 `reschedule_limit_reached`).
    #[arg(long, env = "NOBAT_MAX_RESCHEDULES", default_value_t = Settings::default().engine.limits.max_reschedules, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub max_reschedules: u32,
    /// Appointments a citizen may cancel within `--cancellation-window-days` (then 409
    /// `cancellation_limit_reached`).
    #[arg(long, env = "NOBAT_MAX_CANCELLATIONS", default_value_t = Settings::default().engine.limits.max_cancellations, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub max_cancellations: u32,
    /// Days of the rolling window in which a citizen's cancellations are counted.
    #[arg(long, env = "NOBAT_CANCELLATION_WINDOW_DAYS", default_value_t = Settings::default().engine.limits.cancellation_window_days, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub cancellation_window_days: u32,
    /// Days ahead that slots are open for booking.
    #[arg(long, env = "NOBAT_BOOKING_HORIZON_DAYS", default_value_t = Settings::default().booking_horizon_days, value_parser = clap::value_parser!(u32).range(1..=365))]
    pub booking_horizon_days: u32,
    /// Most booking requests committed in one transaction.
    #[arg(long, env = "NOBAT_BATCH_MAX", default_value_t = Settings::default().engine.batch_max as u64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub batch_max: u64,
    /// Booking requests that may wait for the writer before new ones are refused with 503.
    #[arg(long, env = "NOBAT_QUEUE_BOUND", default_value_t = Settings::default().engine.queue_bound as u64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub queue_bound: u64,
    /// What a day of waiting costs an auto-pick (`pick`), in km of travel: a seat `d` days
    /// from today costs its distance plus this times `d`.
    #[arg(long, env = "NOBAT_WAIT_KM_PER_DAY", default_value_t = Settings::default().engine.wait_km_per_day, value_parser = wait_km_per_day)]
    pub wait_km_per_day: f64,
    /// API requests served at once; beyond it, 503 `overloaded` with `Retry-After` at once.
    #[arg(long, env = "NOBAT_MAX_IN_FLIGHT", default_value_t = Settings::default().max_in_flight as u64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_in_flight: u64,
    /// Bearer token for the planner endpoints (`/v1/planner/…`); unset leaves them off.
    #[arg(long, env = "NOBAT_PLANNER_TOKEN", hide_env_values = true)]
    pub planner_token: Option<String>,
    /// Secret of the session tokens (≥ 32 bytes); set the same one on every node.
    #[arg(long, env = "NOBAT_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
    /// The secret being rotated out: its tokens are still accepted, never issued, for
    /// `--token-previous-grace-minutes` after start.
    #[arg(long, env = "NOBAT_TOKEN_SECRET_PREVIOUS", hide_env_values = true)]
    pub token_secret_previous: Option<String>,
    /// Minutes the previous secret's tokens are still accepted.
    #[arg(long, env = "NOBAT_TOKEN_PREVIOUS_GRACE_MINUTES", default_value_t = Settings::default().token_previous_grace.as_secs() / 60, value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 60))]
    pub token_previous_grace_minutes: u64,
    /// Failed logins per national code in a window before its logins are locked (429).
    #[arg(long, env = "NOBAT_LOGIN_FAILURES_PER_CODE", default_value_t = Settings::default().login_limits.per_code_max, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub login_failures_per_code: u32,
    /// Failed logins per client address in a window before its logins are locked (429).
    #[arg(long, env = "NOBAT_LOGIN_FAILURES_PER_ADDRESS", default_value_t = Settings::default().login_limits.per_address_max, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub login_failures_per_address: u32,
    /// Minutes of a failed-login window (and of a lockout).
    #[arg(long, env = "NOBAT_LOGIN_WINDOW_MINUTES", default_value_t = Settings::default().login_limits.window.as_secs() / 60, value_parser = clap::value_parser!(u64).range(1..=24 * 60))]
    pub login_window_minutes: u64,
    /// Header with the client's address, set by the proxy in front (its last entry counts);
    /// unset: the connection's peer address.
    #[arg(long, env = "NOBAT_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,
    /// Requests per second one applicant may make (then 429 `rate_limited`).
    #[arg(long, env = "NOBAT_APPLICANT_REQUESTS_PER_SECOND", default_value_t = Settings::default().applicant_requests_per_second, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub applicant_requests_per_second: u32,
    /// Requests one applicant may make in a burst.
    #[arg(long, env = "NOBAT_APPLICANT_BURST", default_value_t = Settings::default().applicant_burst, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub applicant_burst: u32,
    /// Waiting-room joins one client address may make a minute (then 429 `rate_limited`).
    #[arg(long, env = "NOBAT_ROOM_JOINS_PER_ADDRESS_PER_MINUTE", default_value_t = Settings::default().room_joins_per_address_per_minute, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub room_joins_per_address_per_minute: u32,
    /// Waiting-room joins one client address may make in a burst.
    #[arg(long, env = "NOBAT_ROOM_JOIN_BURST_PER_ADDRESS", default_value_t = Settings::default().room_join_burst_per_address, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub room_join_burst_per_address: u32,
    /// Milliseconds between polls for admin changes made on other processes.
    #[arg(long, env = "NOBAT_CONFIG_POLL_MS", default_value_t = Settings::default().config_poll_interval.map_or(0, |d| d.as_millis() as u64), value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub config_poll_ms: u64,
    /// Admin API token (≥ 24 characters); only its SHA-256 is kept in memory. Without it the
    /// admin API is closed.
    #[arg(long, env = "NOBAT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "NOBAT_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl ServeArgs {
    /// The server's settings: [`Settings::default`] with what the flags say.
    pub fn settings(self) -> Settings {
        let defaults = Settings::default();
        Settings {
            listen: self.listen,
            store: StoreConfig {
                database_url: self.database_url,
                sqlite_path: self.sqlite_path,
                max_connections: self.db_max_connections,
                ..defaults.store
            },
            scenario: self.scenario,
            engine: EngineConfig {
                hold_ttl: Duration::from_secs(self.hold_seconds.unwrap_or(self.hold_minutes * 60)),
                batch_max: self.batch_max as usize,
                queue_bound: self.queue_bound as usize,
                limits: Limits {
                    max_reschedules: self.max_reschedules,
                    max_cancellations: self.max_cancellations,
                    cancellation_window_days: self.cancellation_window_days,
                },
                wait_km_per_day: self.wait_km_per_day,
                offer_ttl: Duration::from_secs(
                    self.offer_seconds.unwrap_or(self.offer_minutes * 60),
                ),
                release_delay_min: Duration::from_secs(
                    self.release_delay_min_minutes
                        .min(self.release_delay_max_minutes)
                        * 60,
                ),
                release_delay_max: Duration::from_secs(self.release_delay_max_minutes * 60),
                ..defaults.engine
            },
            booking_horizon_days: self.booking_horizon_days,
            max_in_flight: self.max_in_flight as usize,
            planner_token: self.planner_token,
            token_secret: self.token_secret,
            token_secret_previous: self.token_secret_previous,
            token_previous_grace: Duration::from_secs(self.token_previous_grace_minutes * 60),
            login_limits: LoginLimits {
                per_code_max: self.login_failures_per_code,
                per_address_max: self.login_failures_per_address,
                window: Duration::from_secs(self.login_window_minutes * 60),
            },
            client_ip_header: self.client_ip_header,
            config_poll_interval: Some(Duration::from_millis(self.config_poll_ms)),
            applicant_requests_per_second: self.applicant_requests_per_second,
            applicant_burst: self.applicant_burst,
            room_joins_per_address_per_minute: self.room_joins_per_address_per_minute,
            room_join_burst_per_address: self.room_join_burst_per_address,
            admin_token: self.admin_token,
            ..defaults
        }
    }
}

/// A finite, non-negative number of km (`--wait-km-per-day`), at most 1,000.
fn wait_km_per_day(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(km) if km.is_finite() && (0.0..=1_000.0).contains(&km) => Ok(km),
        _ => Err(format!("{text} is not a number of km from 0 to 1000")),
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing(&args.log_format);
    let settings = args.settings();
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

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::cli::{Cli, Command};

    fn serve_args(flags: &[&str]) -> ServeArgs {
        let argv = ["nobat", "serve"].iter().chain(flags);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(args) => args,
            other => panic!("parsed {other:?}"),
        }
    }

    /// `nobat serve` without flags runs with [`Settings::default`] (the database URL aside:
    /// `DATABASE_URL` may be set where the tests run).
    #[test]
    fn serve_without_flags_runs_with_the_default_settings() {
        let mut settings = serve_args(&[]).settings();
        settings.store.database_url = None;
        assert_eq!(
            format!("{settings:?}"),
            format!("{:?}", Settings::default())
        );
        let settings = serve_args(&[
            "--hold-seconds",
            "90",
            "--batch-max",
            "64",
            "--max-reschedules",
            "0",
            "--max-cancellations",
            "5",
            "--cancellation-window-days",
            "7",
        ])
        .settings();
        assert_eq!(settings.engine.hold_ttl, Duration::from_secs(90));
        assert_eq!(settings.engine.batch_max, 64);
        assert_eq!(
            settings.engine.limits,
            Limits {
                max_reschedules: 0,
                max_cancellations: 5,
                cancellation_window_days: 7
            }
        );
        assert_eq!(settings.engine.linger, EngineConfig::default().linger);
    }

    #[test]
    fn help_shows_the_defaults() {
        let mut cli = Cli::command();
        let help = cli
            .find_subcommand_mut("serve")
            .unwrap()
            .render_help()
            .to_string();
        let d = Settings::default();
        for (flag, default) in [
            ("--listen", d.listen.to_string()),
            ("--sqlite-path", d.store.sqlite_path.display().to_string()),
            ("--db-max-connections", d.store.max_connections.to_string()),
            (
                "--hold-minutes",
                (d.engine.hold_ttl.as_secs() / 60).to_string(),
            ),
            ("--booking-horizon-days", d.booking_horizon_days.to_string()),
            (
                "--offer-minutes",
                (d.engine.offer_ttl.as_secs() / 60).to_string(),
            ),
            (
                "--release-delay-max-minutes",
                (d.engine.release_delay_max.as_secs() / 60).to_string(),
            ),
            ("--batch-max", d.engine.batch_max.to_string()),
            ("--queue-bound", d.engine.queue_bound.to_string()),
            (
                "--max-reschedules",
                d.engine.limits.max_reschedules.to_string(),
            ),
            (
                "--max-cancellations",
                d.engine.limits.max_cancellations.to_string(),
            ),
            (
                "--cancellation-window-days",
                d.engine.limits.cancellation_window_days.to_string(),
            ),
            ("--max-in-flight", d.max_in_flight.to_string()),
            ("--wait-km-per-day", d.engine.wait_km_per_day.to_string()),
            (
                "--login-failures-per-code",
                d.login_limits.per_code_max.to_string(),
            ),
            (
                "--login-window-minutes",
                (d.login_limits.window.as_secs() / 60).to_string(),
            ),
            (
                "--token-previous-grace-minutes",
                (d.token_previous_grace.as_secs() / 60).to_string(),
            ),
        ] {
            // The flag's entry: from its name to the next flag's.
            let at = help
                .find(&format!("{flag} <"))
                .unwrap_or_else(|| panic!("{flag} missing from:\n{help}"));
            let rest = &help[at + flag.len()..];
            let line = &rest[..rest.find(" --").unwrap_or(rest.len())];
            assert!(
                line.contains(&format!("[default: {default}]")),
                "{flag} does not show {default}:\n{line}"
            );
        }
    }
}
