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
use crate::http::problem::ErrorChain;
use crate::http::{self, ApiConfig, AppState};
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
    pub booking_horizon_days: u32,
    /// API requests served at once before new ones are shed with 503.
    pub max_in_flight: usize,
    /// Bearer token of the planner endpoints (`/v1/planner/…`); `None` leaves them unmounted.
    pub planner_token: Option<String>,
    pub session_ttl: Duration,
    /// HMAC secret for session tokens (≥ 32 bytes); `None` draws a random one per process.
    pub token_secret: Option<String>,
    /// The admin token (≥ 24 characters); only its hash is kept. `None`: no admin access
    /// except through admin rows of `operator_tokens`.
    pub admin_token: Option<String>,
    /// How often the outbox relay sends queued notices; `None` disables it (tests step it).
    pub outbox_interval: Option<Duration>,
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
            booking_horizon_days: 30,
            max_in_flight: 1024,
            planner_token: None,
            session_ttl: Duration::from_secs(2 * 3600),
            token_secret: None,
            admin_token: None,
            outbox_interval: Some(Duration::from_secs(5)),
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

/// Housekeeping: every minute the limiter forgets idle applicants; every hour the booking
/// window rolls on (tomorrow's slots are opened, the view drops yesterday's), so a server that
/// runs for weeks keeps `horizon_days` of slots open.
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
        &state.holidays,
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
            payments: Arc::new(SandboxGateway),
        }
    }
}

pub struct App {
    listener: TcpListener,
    state: AppState,
    sweeper: Option<tokio::task::JoinHandle<()>>,
    janitor: tokio::task::JoinHandle<()>,
    relay: Option<tokio::task::JoinHandle<()>>,
    planner: Option<http::planner::PlannerState>,
}

impl App {
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        Self::build_with(settings, Dependencies::default()).await
    }

    pub async fn build_with(settings: Settings, deps: Dependencies) -> anyhow::Result<App> {
        if let Some(secret) = &settings.token_secret {
            anyhow::ensure!(
                secret.len() >= 32,
                "the token secret must have at least 32 bytes"
            );
        }
        if let Some(token) = &settings.admin_token {
            anyhow::ensure!(
                token.len() >= 24,
                "the admin token must have at least 24 characters"
            );
        }
        let scenario = crate::store::seed::load_scenario(settings.scenario.as_deref())?;
        let holidays = scenario.holidays();
        let store = Store::connect(&settings.store).await?;
        store
            .sync_catalogue(Service::catalogue(), FeeSchedule::builtin())
            .await?;
        store.reapply_fee_overrides().await?;
        let now = deps.clock.now();
        if crate::store::seed::seed_if_empty(&store, &scenario, now.timestamp()).await? {
            tracing::info!(scenario = %scenario.name, "seeded the office network");
        }
        let offices = store.offices().await?;
        let added = crate::store::seed::materialise_slots(
            &store,
            &offices,
            &holidays,
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
        let listener = TcpListener::bind(settings.listen).await?;
        let state = AppState {
            store,
            engine,
            directory: Arc::new(RwLock::new(Arc::new(Directory::new(offices)))),
            holidays: Arc::new(holidays),
            registry: Arc::new(SyntheticRegistry::from_scenario(&scenario)),
            tokens: Arc::new(http::auth::TokenKeys::new(
                settings.token_secret.as_deref().map(str::as_bytes),
            )),
            payments: deps.payments,
            fees: Arc::new(FeeSchedule::builtin().clone()),
            config: ApiConfig {
                session_ttl_secs: settings.session_ttl.as_secs() as i64,
                booking_horizon_days: settings.booking_horizon_days,
                max_in_flight: settings.max_in_flight,
            },
            metrics: http::metrics::Metrics::install(),
            limiter: Arc::new(http::auth::applicant_limiter()),
            operators: Arc::new(http::operators::OperatorKeys::new(
                settings.admin_token.as_deref(),
            )),
            notifier: Arc::new(crate::ports::notify::LogNotifier),
        };
        let relay = settings.outbox_interval.map(|every| {
            crate::ports::notify::spawn_relay(
                state.store.clone(),
                state.notifier.clone(),
                deps.clock.clone(),
                every,
            )
        });
        let janitor = spawn_janitor(
            state.clone(),
            deps.clock.clone(),
            settings.booking_horizon_days,
        );
        Ok(App {
            listener,
            state,
            sweeper,
            janitor,
            relay,
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
        let mut router = http::router(self.state);
        if let Some(planner) = self.planner {
            router = router.merge(http::planner::router(planner));
        }
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await?;
        if let Some(s) = self.sweeper {
            s.abort();
        }
        self.janitor.abort();
        if let Some(r) = self.relay {
            r.abort();
        }
        store.close().await;
        Ok(())
    }
}
