//! Surge-day load tests: open-loop arrivals of synthetic applicants against a running (or
//! spawned) server, latencies from the intended send time, an optional `kill -9` mid-surge,
//! and an audit of the database against what the server said.
//!
//! - [`scenario`]: the surge scenario file (arrival profile, journey mix, retries, scale);
//! - [`flow`]: one virtual applicant's journey over HTTP, with the retry model;
//! - [`stats`]: HDR histograms per endpoint, status counts, a per-second timeline;
//! - [`journal`]: what the server acknowledged, for the audit;
//! - [`audit`]: the checks against the database;
//! - [`server`]: starting, killing and restarting the server under test;
//! - [`report`]: `report.json`, `report.md`, `chart.svg`.
//!
//! Bounds: a run lasts at most its arrivals plus drain (≤ 1 h) plus one request timeout;
//! journeys in flight are capped (arrivals beyond are shed and counted); every request has a
//! timeout and a bounded number of attempts. Targets are loopback only.

pub mod audit;
pub mod ballot_audit;
pub mod cpu;
pub mod flow;
pub mod journal;
pub mod report;
pub mod room_audit;
pub mod room_report;
pub mod scenario;
pub mod server;
pub mod stats;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use crate::domain::GeoPoint;
use crate::planning::scenario::{derive_seed, CitizenGenerator, Scenario};
use crate::store::{Store, StoreConfig};
use audit::{AuditParams, AuditReport};
use journal::Journal;
use report::{CrashInfo, Report, ScenarioInfo, TargetInfo};
use scenario::{LoadScenario, ARRIVALS_MAX};
use server::{ServerSpec, SpawnedServer};
use stats::Stats;

#[derive(Debug, thiserror::Error)]
pub enum LoadtestError {
    #[error("refusing target {0:?}: only loopback addresses (127.0.0.0/8, localhost, [::1]) over http:// may be load-tested here")]
    TargetNotLoopback(String),
    #[error("bad target URL {0:?}: {1}")]
    BadTarget(String, String),
    #[error(transparent)]
    Scenario(#[from] scenario::LoadScenarioError),
    #[error("server scenario: {0}")]
    ServerScenario(String),
    #[error("server: {0}")]
    Server(String),
    #[error("audit database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("report: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks that `url` is `http://` on a loopback address and returns it without a trailing `/`.
pub fn loopback_target(url: &str) -> Result<String, LoadtestError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| LoadtestError::BadTarget(url.into(), e.to_string()))?;
    if parsed.scheme() != "http" {
        return Err(LoadtestError::TargetNotLoopback(url.into()));
    }
    let host = parsed.host_str().unwrap_or("");
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(LoadtestError::TargetNotLoopback(url.into()));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Where the load goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// A server already running; `audit_store` reaches its database.
    Url {
        url: String,
        audit_store: StoreConfig,
        sweep_interval_secs: f64,
    },
    /// Start the server as a child process (and kill/restart it for a crash run).
    Spawn(ServerSpec),
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub scenario: LoadScenario,
    pub scenario_path: PathBuf,
    pub rate_scale: f64,
    pub target: Target,
    pub out_dir: PathBuf,
    /// With a spawned server: SIGKILL it this long after the start, restart it, go on.
    pub crash_after: Option<Duration>,
    pub generator_cpus: Option<String>,
}

/// What a run leaves: the report (also written to `out_dir`), the journal and how to reach
/// the database, so tests can re-audit after doctoring it.
pub struct RunOutcome {
    pub report: Report,
    pub journal: Journal,
    pub store: StoreConfig,
    pub audit_params: AuditParams,
}

/// Extra time past a hold's expiry the audit allows, beyond the sweep interval: one second
/// of clock granularity and one for the sweep's trip through a busy writer queue.
pub const HOLD_GRACE_SECS: i64 = 2;
/// The run's room closes this long after the run's planned end (the audit and the settling
/// happen while it is still active).
const ROOM_CLOSES_AFTER_RUN_SECS: i64 = 600;
/// Longest wait after the drain for short holds to come due before the audit.
pub const SETTLE_SECS_MAX: i64 = 60;

/// One run: reach the target, send the arrivals, drain, (crash and restart), settle, audit,
/// report.
pub async fn run(config: RunConfig) -> Result<RunOutcome, LoadtestError> {
    let scenario = Arc::new(config.scenario.clone());
    let (citizens, offices) = server_world(&scenario)?;
    let (reached, spawned) = reach(&config.target, &scenario).await?;
    let client = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| LoadtestError::Server(e.to_string()))?;

    let room_id = match (&scenario.room, &spawned) {
        (Some(room), Some(server)) => Some(
            create_room(
                &client,
                &reached.base_url,
                server.admin_token(),
                room,
                scenario.duration_secs() + scenario.drain_secs,
            )
            .await?,
        ),
        (Some(_), None) => {
            return Err(LoadtestError::Server(
                "a scenario with a [room] needs --spawn (the generator creates the room with the server's admin token)".into(),
            ))
        }
        (None, _) => None,
    };
    let ballot_id = match (&scenario.ballot, &spawned) {
        (Some(ballot), Some(server)) => Some(
            create_ballot(
                &client,
                &reached.base_url,
                server.admin_token(),
                ballot,
                scenario.duration_secs(),
            )
            .await?,
        ),
        (Some(_), None) => {
            return Err(LoadtestError::Server(
                "a scenario with a [ballot] needs --spawn (the generator creates the ballot with the server's admin token)".into(),
            ))
        }
        (None, _) => None,
    };
    let started_at = chrono::Utc::now();
    let since_unix = started_at.timestamp() - 1;
    let t0 = Instant::now();
    let arrival_secs = scenario.duration_secs();
    let stop_at = t0 + Duration::from_secs_f64(arrival_secs + scenario.drain_secs);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let journal = Arc::new(Mutex::new(Journal::default()));
    let ctx = Arc::new(flow::Ctx {
        client,
        base_url: reached.base_url.clone(),
        scenario: scenario.clone(),
        citizens,
        offices,
        stats: stats.clone(),
        journal: journal.clone(),
        t0,
        stop_at,
        room_id: room_id.clone(),
        ballot_id: ballot_id.clone(),
    });

    let pid = spawned.as_ref().and_then(SpawnedServer::pid);
    let cpu_before = match pid {
        Some(pid) => cpu::sample(pid, &ctx.client, &ctx.base_url).await,
        None => None,
    };
    let generator_before = cpu::GeneratorSample::now();
    let spawned = spawned.map(|s| Arc::new(tokio::sync::Mutex::new(s)));
    let crash_task = schedule_crash(config.crash_after, spawned.as_ref(), t0)?;
    let journeys = send_arrivals(&ctx, arrival_secs).await;
    drain(journeys, &ctx).await;
    let crash = crash_outcome(crash_task).await?;
    let generator_cpu = generator_before
        .zip(cpu::GeneratorSample::now())
        .map(|(before, after)| before.until(&after));
    // A restarted server is another process: its CPU is not comparable, so none is reported.
    let server_cpu =
        match (pid, &cpu_before, &crash) {
            (Some(pid), Some(before), None) => cpu::sample(pid, &ctx.client, &ctx.base_url)
                .await
                .map(|after| {
                    let s = stats_lock(&stats);
                    cpu::between(before, &after, s.journeys_done)
                }),
            _ => None,
        };
    if spawned.is_some() {
        settle(&journal, reached.sweep_secs).await;
    }
    if let (Some(id), Some(b)) = (&ballot_id, &scenario.ballot) {
        await_publication(&ctx.client, &reached.base_url, id, b.publish_wait_secs).await;
    }
    let wall_secs = t0.elapsed().as_secs_f64();

    // The audit, against the database, with the server still up (its sweeper keeps running).
    let downtime = crash.as_ref().map_or(0.0, |c| c.downtime_secs);
    let audit_params = AuditParams {
        since_unix,
        now_unix: chrono::Utc::now().timestamp(),
        hold_allowance_secs: reached.sweep_secs.ceil() as i64
            + HOLD_GRACE_SECS
            + downtime.ceil() as i64,
        room_id: room_id.clone(),
        ballot_id: ballot_id.clone(),
    };
    let journal = journal.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let audit_result = audit_with_ballot(&reached.store, &journal, &audit_params).await;
    let room_order = match &room_id {
        Some(id) => Some(room_order_of(&reached.store, id).await?),
        None => None,
    };
    if let Some(server) = &spawned {
        server.lock().await.stop().await;
    }
    let (audit_report, ballot_figures) = audit_result?;

    let mut report = report::build(
        scenario_info(&config, &scenario),
        target_info(&config, &reached),
        started_at.to_rfc3339(),
        wall_secs,
        &stats_lock(&stats),
        &journal,
        crash,
        audit_report,
    );
    report.server_cpu = server_cpu;
    report.generator_cpu = generator_cpu;
    report.surge = room_report::surge_figures(&stats_lock(&stats), &report, room_order);
    report.ballot = ballot_figures;
    report::write(&config.out_dir, &report)?;
    Ok(RunOutcome {
        report,
        journal,
        store: reached.store,
        audit_params,
    })
}

/// The scenario's booking mode and then each of `booking.compare`, one run each on a fresh
/// spawned server (its own folder in `out_dir`, named after the mode: SQLite file, log,
/// reports; on PostgreSQL a database of its own beside the one given, `<name>_<mode>`, which
/// must not exist yet), then `compare.json` and `compare.md` in `out_dir`.
pub async fn run_compared(config: RunConfig) -> Result<Vec<RunOutcome>, LoadtestError> {
    let Target::Spawn(spec) = &config.target else {
        return Err(LoadtestError::Server(
            "booking.compare needs --spawn: each booking mode runs on a fresh server".into(),
        ));
    };
    let booking = &config.scenario.booking;
    let modes: Vec<_> = std::iter::once(booking.mode)
        .chain(booking.compare.iter().copied())
        .collect();
    let mut outcomes = Vec::with_capacity(modes.len());
    for mode in modes {
        let out_dir = config.out_dir.join(mode.as_str());
        std::fs::create_dir_all(&out_dir)?;
        let database_url = match &spec.database_url {
            Some(url) => Some(fresh_postgres(url, mode.as_str()).await?),
            None => None,
        };
        let mut scenario = config.scenario.clone();
        scenario.booking.mode = mode;
        scenario.booking.compare.clear();
        let run_config = RunConfig {
            scenario,
            target: Target::Spawn(ServerSpec {
                database_url,
                sqlite_path: out_dir.join("nobat.db"),
                log_path: out_dir.join("server.log"),
                ..spec.clone()
            }),
            out_dir,
            ..config.clone()
        };
        outcomes.push(run(run_config).await?);
    }
    let reports: Vec<&Report> = outcomes.iter().map(|o| &o.report).collect();
    report::write_comparison(&config.out_dir, &report::comparison(&reports))?;
    Ok(outcomes)
}

/// The run's waiting room, through the admin API: every province, the applicants' service,
/// the pre-queue open from now, the opening `prequeue_secs` later, closing after the run.
async fn create_room(
    client: &reqwest::Client,
    base_url: &str,
    admin_token: &str,
    room: &scenario::RoomOptions,
    run_secs: f64,
) -> Result<String, LoadtestError> {
    let now = chrono::Utc::now().timestamp();
    let at = |secs: i64| {
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap_or_default()
            .to_rfc3339()
    };
    let opens_at = now + room.prequeue_secs.ceil() as i64;
    let body = serde_json::json!({
        "scope": { "service": flow::SERVICE },
        "prequeue_opens_at": at(now),
        "opens_at": at(opens_at),
        "closes_at": at(now + run_secs.ceil() as i64 + ROOM_CLOSES_AFTER_RUN_SECS),
        "admission": room.admission_json(),
        "pass_minutes": room.pass_minutes,
        "ticket_idle_minutes": room.ticket_idle_minutes,
    });
    let admin = AdminApi {
        client,
        base_url,
        admin_token,
    };
    admin
        .create(
            "the waiting room",
            "/v1/admin/waiting-rooms",
            &body,
            "room_id",
        )
        .await
}

/// The scenario with its waiting room, then (with `room.compare_without`) the same arrivals
/// without it, each on a fresh spawned server (folders `room` and `no-room` in `out_dir`; on
/// PostgreSQL databases `<name>_room` and `<name>_no_room`), then `room.json` and `room.md`
/// in `out_dir`: the figures side by side.
pub async fn run_room_compared(config: RunConfig) -> Result<Vec<RunOutcome>, LoadtestError> {
    let Target::Spawn(spec) = &config.target else {
        return Err(LoadtestError::Server(
            "room.compare_without needs --spawn: each run is on a fresh server".into(),
        ));
    };
    let mut outcomes = Vec::with_capacity(2);
    for (name, with_room) in [("room", true), ("no-room", false)] {
        let out_dir = config.out_dir.join(name);
        std::fs::create_dir_all(&out_dir)?;
        let database_url = match &spec.database_url {
            Some(url) => Some(fresh_postgres(url, &name.replace('-', "_")).await?),
            None => None,
        };
        let mut scenario = config.scenario.clone();
        if !with_room {
            scenario.room = None;
        }
        let run_config = RunConfig {
            scenario,
            target: Target::Spawn(ServerSpec {
                database_url,
                sqlite_path: out_dir.join("nobat.db"),
                log_path: out_dir.join("server.log"),
                ..spec.clone()
            }),
            out_dir,
            ..config.clone()
        };
        outcomes.push(run(run_config).await?);
    }
    let figures = room_report::room_figures(&outcomes[0].report, &outcomes[1].report);
    room_report::write_room_figures(&config.out_dir, &figures)?;
    Ok(outcomes)
}

/// Creates the database `<name>_<suffix>` beside the one `url` names; refuses one that exists
/// (a comparison needs every run on an empty database).
async fn fresh_postgres(url: &str, suffix: &str) -> Result<String, LoadtestError> {
    use sqlx::Connection;
    let (base, name) = url
        .rsplit_once('/')
        .filter(|(_, n)| !n.is_empty() && !n.contains('?'))
        .ok_or_else(|| LoadtestError::BadTarget(url.into(), "no database name".into()))?;
    let fresh = format!("{name}_{suffix}");
    let fail = |e: sqlx::Error| LoadtestError::Server(format!("creating database {fresh}: {e}"));
    let mut conn = sqlx::PgConnection::connect(url).await.map_err(fail)?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&fresh)
        .fetch_optional(&mut conn)
        .await
        .map_err(fail)?;
    if exists.is_some() {
        return Err(LoadtestError::Server(format!(
            "database {fresh} exists: drop it first (a comparison runs every mode on an empty database)"
        )));
    }
    sqlx::query(&format!("CREATE DATABASE \"{fresh}\""))
        .execute(&mut conn)
        .await
        .map_err(fail)?;
    conn.close().await.ok();
    Ok(format!("{base}/{fresh}"))
}

/// The server's scenario as the generator needs it: its synthetic citizens, and the offices
/// offering first issuance with their locations.
fn server_world(
    scenario: &LoadScenario,
) -> Result<(CitizenGenerator, Vec<(String, GeoPoint)>), LoadtestError> {
    let server_scenario = Scenario::load(&scenario.server_scenario)
        .map_err(|e| LoadtestError::ServerScenario(e.to_string()))?;
    let citizens = CitizenGenerator::new(&server_scenario);
    let offices = server_scenario
        .generate_network()
        .into_iter()
        .filter(|o| o.offers(crate::domain::ServiceCode::FirstIssuance))
        .map(|o| (o.id.to_string(), o.location))
        .collect();
    Ok((citizens, offices))
}

/// The server under load, however it was reached.
struct Reached {
    base_url: String,
    /// Its database, for the audit.
    store: StoreConfig,
    /// Its hold-sweep interval, for the audit's allowance.
    sweep_secs: f64,
    backend: String,
}

/// Checks the given server's address, or starts one (returned, to be stopped or crashed).
async fn reach(
    target: &Target,
    scenario: &LoadScenario,
) -> Result<(Reached, Option<SpawnedServer>), LoadtestError> {
    match target {
        Target::Url {
            url,
            audit_store,
            sweep_interval_secs,
        } => Ok((
            Reached {
                base_url: loopback_target(url)?,
                store: audit_store.clone(),
                sweep_secs: *sweep_interval_secs,
                backend: backend_name(audit_store),
            },
            None,
        )),
        Target::Spawn(spec) => {
            let server = SpawnedServer::start(spec.clone(), scenario)
                .await
                .map_err(LoadtestError::Server)?;
            let reached = Reached {
                base_url: server.base_url(),
                store: spec.store_config(),
                sweep_secs: scenario.server.sweep_interval_secs,
                backend: backend_name(&spec.store_config()),
            };
            Ok((reached, Some(server)))
        }
    }
}

type CrashTask = tokio::task::JoinHandle<Result<CrashInfo, String>>;

/// The crash: SIGKILL mid-surge, restart on the same database and port.
fn schedule_crash(
    crash_after: Option<Duration>,
    spawned: Option<&Arc<tokio::sync::Mutex<SpawnedServer>>>,
    t0: Instant,
) -> Result<Option<CrashTask>, LoadtestError> {
    match (crash_after, spawned) {
        (Some(after), Some(server)) => {
            let server = server.clone();
            Ok(Some(tokio::spawn(async move {
                tokio::time::sleep_until(t0 + after).await;
                let mut s = server.lock().await;
                let killed = t0.elapsed().as_secs_f64();
                s.kill9().await?;
                s.restart().await?;
                let back = t0.elapsed().as_secs_f64();
                Ok::<CrashInfo, String>(CrashInfo {
                    killed_at_secs: killed,
                    ready_again_at_secs: back,
                    downtime_secs: back - killed,
                })
            })))
        }
        (Some(_), None) => Err(LoadtestError::Server(
            "--crash-after needs --spawn (the generator must own the server it kills)".into(),
        )),
        _ => Ok(None),
    }
}

/// Open-loop arrivals: a non-homogeneous Poisson process by thinning against the peak rate.
/// Each arrival's journey runs on its own task, unless `journeys_in_flight_max` are running
/// (then it is shed and counted).
async fn send_arrivals(ctx: &Arc<flow::Ctx>, arrival_secs: f64) -> tokio::task::JoinSet<()> {
    let scenario = &ctx.scenario;
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(scenario.seed, "loadtest-arrivals", 0));
    let peak = scenario.peak_rate();
    let bound = scenario.limits.journeys_in_flight_max;
    let permits = Arc::new(tokio::sync::Semaphore::new(bound));
    let mut journeys = tokio::task::JoinSet::new();
    let mut t = 0.0_f64;
    let mut seq = 0_u64;
    while peak > 0.0 && seq < ARRIVALS_MAX {
        t += -(1.0 - rng.gen::<f64>()).ln() / peak;
        if t >= arrival_secs {
            break;
        }
        if rng.gen::<f64>() * peak > scenario.rate_at(t) {
            continue;
        }
        let at = ctx.t0 + Duration::from_secs_f64(t);
        tokio::time::sleep_until(at).await;
        seq += 1;
        while journeys.try_join_next().is_some() {}
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let in_flight = bound - permits.available_permits();
                stats_lock(&ctx.stats).arrival(t, false, in_flight as u64);
                let ctx = ctx.clone();
                journeys.spawn(async move {
                    flow::journey(ctx, seq, at).await;
                    drop(permit);
                });
            }
            Err(_) => stats_lock(&ctx.stats).arrival(t, true, bound as u64),
        }
    }
    journeys
}

/// Drain: journeys stop sending at `stop_at`; one request timeout later, whatever is left is
/// cut (and counted).
async fn drain(mut journeys: tokio::task::JoinSet<()>, ctx: &flow::Ctx) {
    let hard_stop = ctx.stop_at
        + Duration::from_millis(ctx.scenario.limits.request_timeout_ms)
        + Duration::from_secs(2);
    while !journeys.is_empty() {
        match tokio::time::timeout_at(hard_stop, journeys.join_next()).await {
            Ok(_) => {}
            Err(_) => {
                stats_lock(&ctx.stats).journeys_cut += journeys.len() as u64;
                journeys.abort_all();
                break;
            }
        }
    }
}

async fn crash_outcome(task: Option<CrashTask>) -> Result<Option<CrashInfo>, LoadtestError> {
    match task {
        Some(task) => match task.await {
            Ok(Ok(info)) => Ok(Some(info)),
            Ok(Err(e)) => Err(LoadtestError::Server(format!("crash run: {e}"))),
            Err(e) => Err(LoadtestError::Server(format!("crash task: {e}"))),
        },
        None => Ok(None),
    }
}

/// Settle: with short holds, wait until the last granted hold is due and one sweep has
/// passed, so the audit sees expiry happen rather than holds still legitimately live.
async fn settle(journal: &Mutex<Journal>, sweep_secs: f64) {
    let latest = journal
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .latest_hold_expiry_unix;
    if let Some(latest) = latest {
        let wait = latest + sweep_secs.ceil() as i64 + 1 - chrono::Utc::now().timestamp();
        if (1..=SETTLE_SECS_MAX).contains(&wait) {
            tokio::time::sleep(Duration::from_secs(wait as u64)).await;
        }
    }
}

fn scenario_info(config: &RunConfig, scenario: &LoadScenario) -> ScenarioInfo {
    ScenarioInfo {
        name: scenario.name.clone(),
        path: config.scenario_path.display().to_string(),
        description: scenario.description.clone(),
        server_scenario: scenario.server_scenario.display().to_string(),
        scale: scenario.scale.clone(),
        rate_scale: config.rate_scale,
        arrival_secs: scenario.duration_secs(),
        drain_secs: scenario.drain_secs,
        peak_arrivals_per_sec: scenario.peak_rate(),
        expected_arrivals: scenario.expected_arrivals().round(),
        journeys_in_flight_max: scenario.limits.journeys_in_flight_max,
        booking: scenario.booking.mode.as_str().to_string(),
    }
}

fn target_info(config: &RunConfig, reached: &Reached) -> TargetInfo {
    TargetInfo {
        url: reached.base_url.clone(),
        spawned: matches!(config.target, Target::Spawn(_)),
        backend: reached.backend.clone(),
        server_cpus: match &config.target {
            Target::Spawn(spec) => spec.server_cpus.clone(),
            Target::Url { .. } => None,
        },
        generator_cpus: config.generator_cpus.clone(),
    }
}

/// Connects to the database under test and audits it.
pub async fn audit_database(
    config: &StoreConfig,
    journal: &Journal,
    params: &AuditParams,
) -> Result<AuditReport, LoadtestError> {
    Ok(audit_with_ballot(config, journal, params).await?.0)
}

/// The audit, and a ballot day's figures.
async fn audit_with_ballot(
    config: &StoreConfig,
    journal: &Journal,
    params: &AuditParams,
) -> Result<(AuditReport, Option<ballot_audit::BallotFigures>), LoadtestError> {
    let mut config = config.clone();
    config.max_connections = 2;
    let store = Store::connect(&config).await?;
    let result = audit::audit(&store, journal, params).await;
    let result = match (result, &params.ballot_id) {
        (Ok(mut report), Some(id)) => {
            match ballot_audit::ballot_checks(&store, journal, id).await {
                Ok((checks, figures)) => {
                    report.checks.extend(checks);
                    report.passed = report.checks.iter().all(|c| c.passed);
                    Ok((report, Some(figures)))
                }
                Err(e) => Err(e),
            }
        }
        (result, _) => result.map(|r| (r, None)),
    };
    store.close().await;
    Ok(result?)
}

/// The run's ballot, through the admin API: every province, the applicants' service, open
/// from now, closing `close_after_secs` after the arrivals, its seats `seat_days` days from
/// `seat_days_from` days after today (Iran's dates).
async fn create_ballot(
    client: &reqwest::Client,
    base_url: &str,
    admin_token: &str,
    ballot: &scenario::BallotOptions,
    arrival_secs: f64,
) -> Result<String, LoadtestError> {
    let now = chrono::Utc::now();
    // Whole seconds: the close time is compared with the server's clock in seconds.
    let at = |secs: f64| {
        chrono::DateTime::from_timestamp(now.timestamp() + secs.ceil() as i64, 0)
            .unwrap_or_default()
            .to_rfc3339()
    };
    let today = crate::domain::time::iran_local(now).date();
    let from = today + chrono::Days::new(u64::from(ballot.seat_days_from));
    let to = from + chrono::Days::new(u64::from(ballot.seat_days) - 1);
    let body = serde_json::json!({
        "service": flow::SERVICE,
        "opens_at": at(0.0),
        "closes_at": at(arrival_secs + ballot.close_after_secs),
        "seats": { "from_date": from.to_string(), "to_date": to.to_string() },
        "max_km": ballot.max_km,
    });
    let admin = AdminApi {
        client,
        base_url,
        admin_token,
    };
    admin
        .create("the ballot", "/v1/admin/ballots", &body, "ballot_id")
        .await
}

/// Waits (up to `wait_secs`) for the server to close and publish the ballot; the audit says
/// whether it did.
async fn await_publication(client: &reqwest::Client, base_url: &str, id: &str, wait_secs: f64) {
    let until = Instant::now() + Duration::from_secs_f64(wait_secs);
    while Instant::now() < until {
        let status = match client
            .get(format!("{base_url}/v1/ballots/{id}"))
            .send()
            .await
        {
            Ok(r) => r.json::<serde_json::Value>().await.ok(),
            Err(_) => None,
        };
        if status.is_some_and(|v| v["status"] == "published") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The room's order figures, from its tickets in the database under test.
async fn room_order_of(
    config: &StoreConfig,
    room_id: &str,
) -> Result<room_audit::RoomOrder, LoadtestError> {
    let mut config = config.clone();
    config.max_connections = 2;
    let store = Store::connect(&config).await?;
    let result = room_audit::room_order(&store, room_id).await;
    store.close().await;
    Ok(result?)
}

fn backend_name(c: &StoreConfig) -> String {
    match c.database_url.as_deref() {
        Some(u) if u.starts_with("postgres") => "postgres".into(),
        _ => "sqlite".into(),
    }
}

fn stats_lock(s: &Mutex<Stats>) -> std::sync::MutexGuard<'_, Stats> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The spawned server's admin API, as the generator uses it.
struct AdminApi<'a> {
    client: &'a reqwest::Client,
    base_url: &'a str,
    admin_token: &'a str,
}

impl AdminApi<'_> {
    /// POSTs `body` to `path` and returns the new object's id (the answer's `id_field`).
    async fn create(
        &self,
        what: &str,
        path: &str,
        body: &serde_json::Value,
        id_field: &str,
    ) -> Result<String, LoadtestError> {
        let fail = |e: String| LoadtestError::Server(format!("creating {what}: {e}"));
        let resp = self
            .client
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(self.admin_token)
            .json(body)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.map_err(|e| fail(e.to_string()))?;
        match v[id_field].as_str() {
            Some(id) if status.is_success() => Ok(id.to_string()),
            _ => Err(fail(format!("{status}: {v}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3:1/",
            "http://localhost:9000",
            "http://[::1]:8080",
        ] {
            assert!(loopback_target(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:8080",
            "http://192.168.1.5",
            "http://example.com",
            "https://127.0.0.1:8443",
            "http://[::2]:80",
            "http://127.0.0.1.example.com",
        ] {
            let e = loopback_target(bad).unwrap_err();
            assert!(
                matches!(e, LoadtestError::TargetNotLoopback(_)),
                "{bad}: {e}"
            );
        }
    }
}
