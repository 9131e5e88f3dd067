//! The server's close of a large ballot (issue 20), on SQLite and on PostgreSQL: the store
//! holds the national network (`scenarios/iran-national.toml`, 2,200 offices) and a ballot
//! over every office's slots of 30 days with `BALLOT_ENTRIES` entries (default 1,000,000,
//! from the scenario's synthetic citizens, as `benches/ballot.rs` makes them: a third with an
//! earliest date, parts of the day mixed, the elderly in a priority class). Then the server's
//! own close runs once (`Store::claim_ballot_close`, `Reservations::close_ballot`) and its
//! phases are printed: read the inputs, the pure close (allocate + seat), prepare the rows
//! (tracking codes, SMS texts, results), each write of the one transaction, the commit; the
//! peak RSS of the close (this process: the SQLite writer thread is in it, PostgreSQL's server
//! is not), then the export read back from the database and `ballot verify` on it.
//!
//! Setup (network, ballot, entries written in bulk by SQL) is not timed. PostgreSQL runs when
//! `BENCH_DATABASE_URL` or `TEST_DATABASE_URL` is set; `BALLOT_CLOSE_BACKENDS=sqlite` (or
//! `postgres`) runs one. The close runs on a copy of the set-up store (the SQLite file copied,
//! a PostgreSQL database created from it as a template); `BALLOT_CLOSE_PREPARED=DIR` keeps the
//! set-up store for the next run (SQLite: `DIR/ballot_close_<entries>.db`; PostgreSQL: the
//! database `nobat_ballot_close_<entries>`; delete them to set up again), so a run after the
//! first skips the setup's minutes. `BALLOT_CLOSE_VERIFY=0` skips the export and verify.
//! `cargo bench --bench ballot_close`; `BALLOT_ENTRIES=100000` for a quicker run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use nobat::app::{App, Dependencies, Settings};
use nobat::domain::lottery::LotterySeed;
use nobat::domain::time::{Clock, ManualClock};
use nobat::domain::ServiceCode;
use nobat::http::AppState;
use nobat::planning::ballot::{
    close_observed, entry_key, verify, BallotSeed, BallotTerms, Condition, EntrantFacts, PartOfDay,
    Preferences, PriorityRule, DEFAULT_MAX_KM, DEFAULT_WAIT_KM_PER_DAY,
};
use nobat::planning::scenario::Scenario;
use nobat::reserve::ballot::export_record;
use nobat::reserve::SeededIds;
use nobat::store::{BallotRow, Store, StoreConfig};

#[path = "support/mod.rs"]
mod support;

const SCENARIO: &str = "scenarios/iran-national.toml";
/// Seat days of the ballot, from the scenario's start date.
const DAYS: u64 = 30;
/// 09:00 in Tehran the day before the scenario's first day (2024-04-06).
const START: &str = "2024-04-05T05:30:00Z";
/// Entries per setup statement.
const ENTRIES_PER_INSERT: usize = 2_000;

fn entries_wanted() -> usize {
    std::env::var("BALLOT_ENTRIES").map_or(1_000_000, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("BALLOT_ENTRIES={v:?} is not a count"))
    })
}

fn backend_wanted(name: &str) -> bool {
    std::env::var("BALLOT_CLOSE_BACKENDS").map_or(true, |v| v.split(',').any(|b| b == name))
}

/// Named phases as "name 1.23 s, …".
fn timed_steps(steps: &[(&'static str, Duration)]) -> String {
    steps
        .iter()
        .map(|(step, d)| format!("{step} {:.2} s", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The process's peak resident set since the last [`reset_peak_rss`], in MiB.
fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

/// The process's resident set now, in MiB.
fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

/// A `/proc/self/status` field in kB, in MiB.
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Resets the kernel's peak RSS mark to the current RSS (Linux: `clear_refs` 5).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn count(store: &Store, sql: &str) -> i64 {
    match store {
        Store::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        Store::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
    }
    .expect(sql)
}

async fn app(store: StoreConfig, clock: Arc<ManualClock>) -> AppState {
    let mut settings = Settings::new("127.0.0.1:0".parse().unwrap(), store);
    settings.scenario = Some(SCENARIO.into());
    settings.sweep_interval = None;
    settings.config_poll_interval = None;
    settings.outbox_interval = None;
    settings.ballot_interval = None;
    settings.booking_horizon_days = DAYS as u32 + 2;
    let deps = Dependencies {
        clock,
        ids: Arc::new(SeededIds::new(20)),
        ..Dependencies::default()
    };
    App::build_with(settings, deps)
        .await
        .expect("build app")
        .state()
        .clone()
}

/// Iran's day start of `date`, as the admin handler computes the seat range.
fn day_start(date: NaiveDate) -> i64 {
    nobat::domain::time::iran_instant(date, chrono::NaiveTime::MIN)
        .unwrap()
        .timestamp()
}

/// A ballot over every office offering first issuance, opening now + 60 s, closing in an hour.
fn ballot_row(state: &AppState, from: NaiveDate, now: i64) -> (BallotRow, BallotTerms) {
    let service = ServiceCode::parse("first_issuance").unwrap();
    let mut office_ids: Vec<String> = state
        .directory()
        .all()
        .iter()
        .filter(|o| o.offers(service))
        .map(|o| o.id.as_str().to_string())
        .collect();
    office_ids.sort();
    let to = from + chrono::Days::new(DAYS - 1);
    let terms = BallotTerms {
        service: "first_issuance".into(),
        from_date: from,
        to_date: to,
        max_km: DEFAULT_MAX_KM,
        wait_km_per_day: DEFAULT_WAIT_KM_PER_DAY,
        priority_rules: vec![PriorityRule {
            when: Condition::AgeAtLeast(70),
            class: 1,
        }],
    };
    let (seed, salt) = (
        LotterySeed::from_bytes([1; 32]),
        LotterySeed::from_bytes([3; 32]),
    );
    let row = BallotRow {
        id: "ballot_bench".into(),
        service: "first_issuance".into(),
        provinces: Vec::new(),
        office_ids,
        terms_json: serde_json::to_string(&terms).unwrap(),
        from_unix: day_start(from),
        to_unix: day_start(to.succ_opt().unwrap()),
        opens_at: now + 60,
        closes_at: now + 3_600,
        seed_hex: seed.to_hex(),
        salt_hex: salt.to_hex(),
        commitment: seed.commitment(),
        status: "scheduled".into(),
        offices_json: None,
        results_json: None,
        created_at: now,
        published_at: None,
    };
    (row, terms)
}

/// Writes `n` entries of the scenario's eligible citizens, many rows to a statement.
async fn write_entries(
    store: &Store,
    scenario: &Scenario,
    b: &BallotRow,
    terms: &BallotTerms,
    n: usize,
) -> usize {
    let from = terms.from_date;
    let generator = scenario.citizen_generator();
    let salt = LotterySeed::from_hex(&b.salt_hex).unwrap();
    let mut rows = Vec::with_capacity(ENTRIES_PER_INSERT);
    let mut written = 0;
    let citizens = (0..generator.count())
        .filter_map(|i| generator.citizen(i))
        .filter(|c| c.eligibility(from).is_eligible())
        .take(n)
        .enumerate();
    for (i, c) in citizens {
        let code = c.national_code.to_string();
        let facts = EntrantFacts {
            birth_date: c.birth_date,
            province: &c.province,
            home: c.location,
        };
        let preferences = Preferences {
            earliest_date: (i % 3 == 0).then(|| from + chrono::Days::new((i % 10) as u64)),
            part_of_day: [PartOfDay::Any, PartOfDay::Morning, PartOfDay::Afternoon][i % 3],
            ..Preferences::default()
        };
        rows.push(format!(
            "('{}', '{code}', '{}', 'ap_{i}', 'pp_{i}', {}, {}, '{}', {}, '{}', {}, {})",
            b.id,
            entry_key(salt.as_bytes(), &code),
            c.location.lat,
            c.location.lon,
            c.province,
            terms.priority_of(&facts),
            serde_json::to_string(&preferences).unwrap(),
            b.opens_at,
            b.opens_at,
        ));
        if rows.len() == ENTRIES_PER_INSERT {
            written += flush(store, &mut rows).await;
        }
    }
    written + flush(store, &mut rows).await
}

async fn flush(store: &Store, rows: &mut Vec<String>) -> usize {
    if rows.is_empty() {
        return 0;
    }
    support::exec(store, &format!("INSERT INTO ballot_entries (ballot_id, national_code, entry_key, application_id, payment_id, home_lat, home_lon, province, priority, preferences_json, created_at, updated_at) VALUES {}", rows.join(", "))).await;
    let n = rows.len();
    rows.clear();
    n
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Sets up the store `config` names (network, ballot, entries; a fresh store), then closes
/// the app so that the store can be copied.
async fn prepare(backend: &str, config: StoreConfig, entries: usize) {
    let clock = Arc::new(ManualClock::new(START.parse::<DateTime<Utc>>().unwrap()));
    let t = Instant::now();
    let state = app(config, clock.clone()).await;
    let scenario = Scenario::load(SCENARIO).expect("the scenario loads");
    let from = scenario.calendar.start_date;
    let now = clock.now().timestamp();
    let (b, terms) = ballot_row(&state, from, now);
    state.store.create_ballot(&b).await.expect("create ballot");
    clock.advance(chrono::Duration::seconds(60));
    state.engine.ballot_tick("bench").await.expect("open");
    let written = write_entries(&state.store, &scenario, &b, &terms, entries).await;
    eprintln!(
        "ballot_close/{backend}: setup {} ({written} entries written)",
        secs(t.elapsed())
    );
    let file = match &state.store {
        Store::Sqlite(pool) => Some(pool.connect_options().get_filename().to_path_buf()),
        Store::Postgres(_) => None,
    };
    state.store.close().await;
    drop(state);
    if let Some(file) = file {
        // The file alone is copied: every page must be in it, the WAL empty.
        let pool = sqlx::SqlitePool::connect_with(
            sqlx::sqlite::SqliteConnectOptions::new().filename(&file),
        )
        .await
        .expect("open the prepared store");
        let (busy,): (i64,) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&pool)
            .await
            .expect("checkpoint");
        pool.close().await;
        let wal = std::fs::metadata(file.with_extension("building-wal")).map_or(0, |m| m.len());
        assert_eq!(
            (busy, wal),
            (0, 0),
            "the prepared store's WAL was not emptied"
        );
    }
}

/// Where the prepared store of `entries` entries is kept between runs: `BALLOT_CLOSE_PREPARED`
/// (a directory for SQLite's file; PostgreSQL keeps a template database named after it too).
fn prepared_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("BALLOT_CLOSE_PREPARED").map(Into::into)
}

fn verify_wanted() -> bool {
    std::env::var("BALLOT_CLOSE_VERIFY").map_or(true, |v| v != "0")
}

async fn run(backend: &str, config: StoreConfig) {
    let clock = Arc::new(ManualClock::new(START.parse::<DateTime<Utc>>().unwrap()));
    clock.advance(chrono::Duration::seconds(60));
    let t = Instant::now();
    let state = app(config, clock.clone()).await;
    let b = state
        .store
        .ballot("ballot_bench")
        .await
        .expect("read the ballot")
        .expect("the prepared store holds the ballot");
    let written = count(
        &state.store,
        "SELECT COUNT(*) FROM ballot_entries WHERE ballot_id = 'ballot_bench'",
    )
    .await;
    let slots = count(
        &state.store,
        "SELECT COUNT(*) FROM slots WHERE ballot_id = 'ballot_bench'",
    )
    .await;
    let seats = count(&state.store, "SELECT CAST(COALESCE(SUM(capacity - taken), 0) AS BIGINT) FROM slots WHERE ballot_id = 'ballot_bench'").await;
    eprintln!(
        "ballot_close/{backend}: app on the prepared store {} ({written} entries, {seats} seats in {slots} withheld slots)",
        secs(t.elapsed())
    );
    clock.advance(chrono::Duration::seconds(3_600));
    let now = clock.now().timestamp();
    assert!(state
        .store
        .claim_ballot_close(&b.id, "bench", now)
        .await
        .unwrap());
    reset_peak_rss();
    // What the process holds before the close: the server's view of the slots, the
    // directory, SQLite's page caches; the close's own share is the peak above it.
    let before = rss_mib();
    let t = Instant::now();
    let report = state
        .engine
        .close_ballot(&b, "bench", now)
        .await
        .expect("the close runs")
        .expect("this close published");
    let total = t.elapsed();
    let peak = peak_rss_mib();
    let steps = timed_steps(&report.publish.steps);
    if !report.publish.beside.is_empty() {
        eprintln!(
            "ballot_close/{backend}: written beside the pure close (off the critical path): {}",
            timed_steps(&report.publish.beside)
        );
    }
    let write = report.publish.written() + report.publish.commit;
    let read_steps = timed_steps(&report.read_steps);
    eprintln!(
        "ballot_close/{backend}: {} entries, {} placed; close {} = read {} ({}) + pure close {} + prepare {} + write {} ({}) + commit {}; \
         write + commit = {:.0}% of the close; peak RSS {peak:.0} MiB ({before:.0} MiB before the close, the close's share {:.0} MiB)",
        report.entries,
        report.placed,
        secs(total),
        secs(report.read),
        read_steps,
        secs(report.decided),
        secs(report.prepared),
        secs(report.publish.written()),
        steps,
        secs(report.publish.commit),
        100.0 * write.as_secs_f64() / total.as_secs_f64(),
        peak - before,
    );
    let appointments = count(
        &state.store,
        "SELECT COUNT(*) FROM appointments WHERE status = 'booked'",
    )
    .await;
    let notices = count(
        &state.store,
        "SELECT COUNT(*) FROM outbox WHERE notice_key = 'ballot:ballot_bench'",
    )
    .await;
    let over = count(
        &state.store,
        "SELECT COUNT(*) FROM slots WHERE taken > capacity",
    )
    .await;
    assert_eq!(
        (appointments, notices, over),
        (report.placed as i64, report.placed as i64, 0)
    );
    if let Store::Postgres(pool) = &state.store {
        // How many of the close's updates stayed on their page (HOT, migration 0017).
        tokio::time::sleep(Duration::from_secs(1)).await;
        let hot: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT relname::text, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables \
             WHERE relname IN ('ballot_entries', 'slots') ORDER BY relname",
        )
        .fetch_all(pool)
        .await
        .expect("table statistics");
        eprintln!("ballot_close/{backend}: updates (HOT) since the copy: {hot:?}");
    }
    if !verify_wanted() {
        return;
    }
    reset_peak_rss();
    let before = rss_mib();
    let t = Instant::now();
    let record = export_record(&state.store, &b.id)
        .await
        .expect("export")
        .expect("published");
    let exported = t.elapsed();
    let t = Instant::now();
    let verified = verify(&record).expect("the record verifies");
    let verify_time = t.elapsed();
    let peak = peak_rss_mib();
    // Verify's share that is the pure close again (allocate + seat), timed alone.
    let seed = BallotSeed::from_hex(&record.seed).expect("the record's seed");
    let t = Instant::now();
    let mut last = t;
    let mut phases = Vec::new();
    close_observed(&record.input, &seed, &mut |phase| {
        phases.push(format!("{phase:?} {:.1} s", last.elapsed().as_secs_f64()));
        last = Instant::now();
    })
    .expect("the close re-runs");
    eprintln!(
        "ballot_close/{backend}: verify's pure close by phase: {}",
        phases.join(", ")
    );
    eprintln!(
        "ballot_close/{backend}: export read {}, verify {} (the pure close alone {}; placed {}, objective {} m); peak RSS {peak:.0} MiB ({before:.0} MiB before the export)\n",
        secs(exported),
        secs(verify_time),
        secs(t.elapsed()),
        verified.placed,
        verified.total_cost_m,
    );
    assert_eq!(verified.placed, report.placed);
}

fn main() {
    let entries = entries_wanted();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kept = prepared_dir();
    if backend_wanted("sqlite") {
        let prepared = kept
            .as_deref()
            .unwrap_or(dir.path())
            .join(format!("ballot_close_{entries}.db"));
        if !prepared.exists() {
            let building = prepared.with_extension("building");
            let _ = std::fs::remove_file(&building);
            rt.block_on(prepare(
                "sqlite",
                StoreConfig::sqlite(building.clone()),
                entries,
            ));
            std::fs::rename(&building, &prepared).expect("keep the prepared store");
        }
        let run_db = dir.path().join("ballot_close_run.db");
        std::fs::copy(&prepared, &run_db).expect("copy the prepared store");
        rt.block_on(run("sqlite", StoreConfig::sqlite(run_db)));
    }
    if !backend_wanted("postgres") {
        return;
    }
    rt.block_on(async {
        let template = format!("nobat_ballot_close_{entries}");
        let Some(template) =
            support::TemplateDatabase::open("ballot_close/postgres", &template, kept.is_some())
                .await
        else {
            return;
        };
        if !template.exists().await {
            let url = template.create().await;
            prepare("postgres", pg_config(url), entries).await;
        }
        let db = template.copy("ballot_close").await;
        run("postgres", pg_config(db.url.clone())).await;
        db.drop_now().await;
        template.drop_unless_kept().await;
    });
}

fn pg_config(url: String) -> StoreConfig {
    StoreConfig {
        max_connections: 8,
        ..StoreConfig::url(url)
    }
}
