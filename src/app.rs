//! The application value: built (storage connected and migrated, network seeded on first
//! start, slots materialised, booking engine started, listener bound), then run until a
//! shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::NaiveDate;
use tokio::net::TcpListener;

use crate::domain::time::{iran_date, Clock, SystemClock};
use crate::domain::{FeeSchedule, Service};
use crate::http::live::{ConfigWatch, LiveFees, LiveHolidays};
use crate::http::login_limit::{LoginLimits, LoginThrottle};
use crate::http::problem::ErrorChain;
use crate::http::{self, ApiConfig, AppParts, AppState};
use crate::planning::scenario::SyntheticRegistry;
use crate::ports::payments::{PaymentGateway, SandboxGateway};
use crate::reserve::directory::Directory;
use crate::reserve::{EngineConfig, IdSource, Reservations, SecureIds};
use crate::store::{Store, StoreConfig};

/// Everything the server needs to start. [`Settings::default`] is the one place of the
/// defaults: `nobat serve` takes its flags' defaults from it, and the load tester its
/// spawned server's.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free one (tests).
    pub listen: SocketAddr,
    pub store: StoreConfig,
    /// Scenario whose office network seeds an empty database and whose synthetic citizens
    /// stand in for the civil registry; `None` uses the bundled `scenarios/small.toml`.
    pub scenario: Option<PathBuf>,
    pub engine: EngineConfig,
    /// How often expired holds are swept; `None` disables the sweeper (tests step it).
    pub sweep_interval: Option<Duration>,
    /// How often ballots are opened and closed when due; `None` disables the task (tests
    /// step it: `Reservations::ballot_tick`).
    pub ballot_interval: Option<Duration>,
    pub booking_horizon_days: u32,
    /// API requests served at once before new ones are shed with 503.
    pub max_in_flight: usize,
    /// Bearer token of the planner endpoints (`/v1/planner/…`); `None` leaves them unmounted.
    pub planner_token: Option<String>,
    pub session_ttl: Duration,
    /// Secret of the session tokens (≥ 32 bytes; the same on every node); `None` draws a
    /// random one per process.
    pub token_secret: Option<String>,
    /// The secret being rotated out: its tokens are still accepted (never issued) for
    /// `token_previous_grace` after start.
    pub token_secret_previous: Option<String>,
    /// How long the previous secret's tokens are accepted; the session lifetime by default,
    /// so every token issued before the rotation lives out its time.
    pub token_previous_grace: Duration,
    /// Failed logins allowed per national code and per client address in a window.
    pub login_limits: LoginLimits,
    /// Header carrying the client's address when a proxy is in front (e.g. `X-Forwarded-For`,
    /// its last entry); `None` uses the connection's peer address.
    pub client_ip_header: Option<String>,
    /// How often this process polls the configuration version for admin changes made on
    /// other processes; `None` disables the poll (tests step it).
    pub config_poll_interval: Option<Duration>,
    /// Requests per second one applicant (national code) may make, and the burst allowed.
    pub applicant_requests_per_second: u32,
    pub applicant_burst: u32,
    /// The admin token (≥ 24 characters); only its hash is kept. `None`: no admin access
    /// except through admin rows of `operator_tokens`.
    pub admin_token: Option<String>,
    /// How often the outbox relay sends queued notices; `None` disables it (tests step it).
    pub outbox_interval: Option<Duration>,
    /// How often this process's waiting-room ticker runs (a room moves on at most once a
    /// second whatever the interval); `None` disables it (tests step it).
    pub room_tick_interval: Option<Duration>,
    /// Waiting-room joins a client address may make a minute, and the burst allowed.
    pub room_joins_per_address_per_minute: u32,
    pub room_join_burst_per_address: u32,
}

impl Default for Settings {
    /// The engine's own defaults (batch size, queue bound, hold time) are
    /// [`EngineConfig::default`], the pool's are [`StoreConfig::sqlite`]'s: named here, not
    /// copied.
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            store: StoreConfig::sqlite("nobat.db"),
            scenario: None,
            engine: EngineConfig::default(),
            sweep_interval: Some(Duration::from_secs(1)),
            ballot_interval: Some(Duration::from_secs(1)),
            booking_horizon_days: 30,
            max_in_flight: 1024,
            planner_token: None,
            session_ttl: Duration::from_secs(2 * 3600),
            token_secret: None,
            token_secret_previous: None,
            token_previous_grace: Duration::from_secs(2 * 3600),
            login_limits: LoginLimits {
                per_code_max: 5,
                per_address_max: 100,
                window: Duration::from_secs(15 * 60),
            },
            client_ip_header: None,
            config_poll_interval: Some(Duration::from_secs(2)),
            applicant_requests_per_second: http::auth::APPLICANT_REQUESTS_PER_SECOND,
            applicant_burst: http::auth::APPLICANT_BURST,
            admin_token: None,
            outbox_interval: Some(Duration::from_secs(5)),
            room_tick_interval: Some(Duration::from_millis(250)),
            room_joins_per_address_per_minute: http::room::JOINS_PER_ADDRESS_PER_MINUTE,
            room_join_burst_per_address: http::room::JOIN_BURST_PER_ADDRESS,
        }
    }
}

impl Settings {
    /// The defaults, listening on `listen` with storage `store` (tests: port 0, a fresh
    /// database).
    pub fn new(listen: SocketAddr, store: StoreConfig) -> Self {
        Self {
            listen,
            store,
            ..Self::default()
        }
    }
}

/// Housekeeping: every minute the limiter forgets idle applicants and the failed-login
/// windows that are over are deleted; every hour the booking window rolls on (tomorrow's slots
/// are opened, the view drops yesterday's), so a server that runs for weeks keeps
/// `horizon_days` of slots open.
fn spawn_janitor(
    state: AppState,
    clock: Arc<dyn Clock>,
    horizon_days: u32,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        for minute in 1u64.. {
            tick.tick().await;
            state.limiter.retain_recent();
            state.limiter.shrink_to_fit();
            let window = state.config.login_limits.window.as_secs() as i64;
            if let Err(e) = state
                .store
                .purge_login_failures(clock.now().timestamp() - window)
                .await
            {
                tracing::warn!(error = %ErrorChain(&e), "purging old login failures failed; will retry");
            }
            if minute % 60 == 0 {
                roll_booking_window(&state, iran_date(clock.now()), horizon_days).await;
            }
        }
    })
}

/// Opens the slots up to `horizon_days` from `today` and refreshes the availability view; a
/// failure is logged and retried at the next hour.
async fn roll_booking_window(state: &AppState, today: NaiveDate, horizon_days: u32) {
    let directory = state.directory();
    match crate::store::seed::materialise_slots(
        &state.store,
        directory.all(),
        &state.holidays.current(),
        today,
        horizon_days,
    )
    .await
    {
        Ok(added) => {
            if let Err(e) = state.engine.refresh().await {
                tracing::warn!(error = %ErrorChain(&e), "rolling the booking window: refresh failed");
            } else if added > 0 {
                tracing::info!(slots_added = added, "booking window rolled on");
            }
        }
        Err(e) => {
            tracing::warn!(error = %ErrorChain(&e), "rolling the booking window failed; will retry")
        }
    }
}

/// Refuses secrets too short to be secrets.
fn check_secrets(settings: &Settings) -> anyhow::Result<()> {
    for (name, secret) in [
        ("token secret", &settings.token_secret),
        ("previous token secret", &settings.token_secret_previous),
    ] {
        if let Some(secret) = secret {
            anyhow::ensure!(
                secret.len() >= http::auth::SECRET_BYTES_MIN,
                "the {name} must have at least {} bytes",
                http::auth::SECRET_BYTES_MIN
            );
        }
    }
    anyhow::ensure!(
        settings.token_secret_previous.is_none() || settings.token_secret.is_some(),
        "a previous token secret is rotated out in favour of a token secret: set both"
    );
    if let Some(token) = &settings.admin_token {
        anyhow::ensure!(
            token.len() >= 24,
            "the admin token must have at least 24 characters"
        );
    }
    Ok(())
}

/// The session keys: the current secret, and the previous one until its grace ends.
fn token_keys(settings: &Settings, now_unix: i64) -> http::auth::TokenKeys {
    let keys = http::auth::TokenKeys::new(settings.token_secret.as_deref().map(str::as_bytes));
    match &settings.token_secret_previous {
        Some(previous) => keys.with_previous(
            previous.as_bytes(),
            now_unix + settings.token_previous_grace.as_secs() as i64,
        ),
        None => keys,
    }
}

/// Time, identifiers and the payment gateway: inputs, so tests can replay them.
#[derive(Clone)]
pub struct Dependencies {
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdSource>,
    pub payments: Arc<dyn PaymentGateway>,
}

impl Default for Dependencies {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            ids: Arc::new(SecureIds::new()),
            payments: Arc::new(SandboxGateway::default()),
        }
    }
}

pub struct App {
    listener: TcpListener,
    state: AppState,
    sweeper: Option<tokio::task::JoinHandle<()>>,
    ballots: Option<tokio::task::JoinHandle<()>>,
    janitor: tokio::task::JoinHandle<()>,
    relay: Option<tokio::task::JoinHandle<()>>,
    watcher: Option<tokio::task::JoinHandle<()>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
    planner: Option<http::planner::PlannerState>,
}

impl App {
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        Self::build_with(settings, Dependencies::default()).await
    }

    pub async fn build_with(settings: Settings, deps: Dependencies) -> anyhow::Result<App> {
        check_secrets(&settings)?;
        let scenario = crate::store::seed::load_scenario(settings.scenario.as_deref())?;
        let store = Store::connect(&settings.store).await?;
        store
            .sync_catalogue(Service::catalogue(), FeeSchedule::builtin())
            .await?;
        store.reapply_fee_overrides().await?;
        // Read before the state it versions, so a change made meanwhile is reloaded.
        let config_version = store.config_version().await?;
        let fees = store.fee_schedule().await?;
        let holidays = LiveHolidays::new(scenario.holidays());
        let announced = store.admin_holidays("0000-01-01", "9999-12-31").await?;
        for day in holidays.rebuild(&announced) {
            tracing::warn!(%day, "an announced holiday does not fit its year's holiday table");
        }
        let now = deps.clock.now();
        if crate::store::seed::seed_if_empty(&store, &scenario, now.timestamp()).await? {
            tracing::info!(scenario = %scenario.name, "seeded the office network");
        }
        let offices = store.offices().await?;
        let added = crate::store::seed::materialise_slots(
            &store,
            &offices,
            &holidays.current(),
            iran_date(now),
            settings.booking_horizon_days,
        )
        .await?;
        tracing::info!(offices = offices.len(), slots_added = added, "slots ready");
        let engine = Reservations::start(
            store.clone(),
            deps.clock.clone(),
            deps.ids.clone(),
            settings.engine.clone(),
        )
        .await?;
        let sweeper = settings
            .sweep_interval
            .map(|every| engine.spawn_sweeper(every));
        let ballots = settings
            .ballot_interval
            .map(|every| engine.spawn_ballot_task(every));
        let rooms = store.rooms(now.timestamp() - 86_400).await?;
        let listener = TcpListener::bind(settings.listen).await?;
        let state = AppState::new(AppParts {
            store,
            engine,
            directory: Arc::new(RwLock::new(Arc::new(Directory::new(offices)))),
            holidays: Arc::new(holidays),
            registry: Arc::new(SyntheticRegistry::from_scenario(&scenario)),
            tokens: Arc::new(token_keys(&settings, now.timestamp())),
            payments: deps.payments,
            fees: Arc::new(LiveFees::new(fees)),
            config: ApiConfig {
                session_ttl_secs: settings.session_ttl.as_secs() as i64,
                booking_horizon_days: settings.booking_horizon_days,
                max_in_flight: settings.max_in_flight,
                login_limits: settings.login_limits,
                client_ip_header: settings.client_ip_header.clone(),
            },
            metrics: http::metrics::Metrics::install(),
            limiter: Arc::new(http::auth::applicant_limiter(
                settings.applicant_requests_per_second,
                settings.applicant_burst,
            )),
            operators: Arc::new(http::operators::OperatorKeys::new(
                settings.admin_token.as_deref(),
            )),
            notifier: Arc::new(crate::ports::notify::LogNotifier),
            login_throttle: Arc::new(LoginThrottle::default()),
            config_watch: Arc::new(ConfigWatch::new(config_version)),
            rooms: Arc::new(http::room::Rooms::new(
                http::room::PassKeys::new(settings.token_secret.as_deref().map(str::as_bytes)),
                rooms,
                settings.room_joins_per_address_per_minute,
                settings.room_join_burst_per_address,
            )),
            answers: Arc::default(),
            owners: Arc::default(),
        });
        let relay = settings.outbox_interval.map(|every| {
            crate::ports::notify::spawn_relay(
                state.store.clone(),
                state.notifier.clone(),
                deps.clock.clone(),
                every,
            )
        });
        let watcher = settings
            .config_poll_interval
            .map(|every| http::live::spawn_watcher(state.clone(), every));
        let ticker = settings
            .room_tick_interval
            .map(|every| http::room::spawn_ticker(state.clone(), every));
        let janitor = spawn_janitor(
            state.clone(),
            deps.clock.clone(),
            settings.booking_horizon_days,
        );
        Ok(App {
            listener,
            state,
            sweeper,
            ballots,
            janitor,
            relay,
            watcher,
            ticker,
            planner: settings
                .planner_token
                .as_deref()
                .map(http::planner::PlannerState::from_token),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and closes storage.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let store = self.state.store.clone();
        let router = http::router(self.state, self.planner);
        // The peer address reaches handlers (failed logins are limited per client address).
        axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await?;
        if let Some(s) = self.sweeper {
            s.abort();
        }
        if let Some(b) = self.ballots {
            b.abort();
        }
        self.janitor.abort();
        if let Some(r) = self.relay {
            r.abort();
        }
        if let Some(w) = self.watcher {
            w.abort();
        }
        if let Some(t) = self.ticker {
            t.abort();
        }
        store.close().await;
        Ok(())
    }
}
