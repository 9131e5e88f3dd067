//! Surge load tests against the real server binary: the short surge on SQLite and PostgreSQL
//! with a passing audit, the audit failing on seeded faults, and the crash run (`kill -9`
//! mid-surge, restart, audit).
//!
//! PostgreSQL tests run when `TEST_DATABASE_URL` is set (each creates its own database there
//! and drops it afterwards); without it they are skipped, unless `NOBAT_REQUIRE_POSTGRES=1`.

use std::path::PathBuf;
use std::time::Duration;

use nobat::loadtest::scenario::{BookingMode, LoadScenario};
use nobat::loadtest::server::ServerSpec;
use nobat::loadtest::{
    audit_database, run, run_compared, run_room_compared, RunConfig, RunOutcome, Target,
};
use rand::Rng;
use sqlx::Connection;

fn surge_short() -> (LoadScenario, PathBuf) {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/loadtest/surge-short.toml"
    ));
    (LoadScenario::load(&path).expect("surge-short loads"), path)
}

fn spec(dir: &std::path::Path, database_url: Option<String>) -> ServerSpec {
    ServerSpec {
        exe: PathBuf::from(env!("CARGO_BIN_EXE_nobat")),
        database_url,
        sqlite_path: dir.join("nobat.db"),
        server_cpus: None,
        log_path: dir.join("server.log"),
    }
}

async fn run_surge(
    dir: &std::path::Path,
    database_url: Option<String>,
    crash_after: Option<Duration>,
) -> RunOutcome {
    let (scenario, path) = surge_short();
    let bound = scenario.limits.journeys_in_flight_max;
    let outcome = run(RunConfig {
        scenario,
        scenario_path: path,
        rate_scale: 1.0,
        target: Target::Spawn(spec(dir, database_url)),
        out_dir: dir.join("report"),
        crash_after,
        generator_cpus: None,
    })
    .await
    .unwrap_or_else(|e| {
        let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        panic!("run failed: {e}\nserver log:\n{log}")
    });
    let r = &outcome.report;
    assert!(
        r.audit.passed,
        "audit failed:\n{}\n{}",
        r.audit.failures(),
        serde_json::to_string_pretty(&r.totals).unwrap()
    );
    assert!(r.totals.bookings >= 10, "too few bookings: {:?}", r.totals);
    assert_eq!(
        r.totals.bookings as usize,
        outcome.journal.appointments.len()
    );
    assert!(r.totals.arrivals >= 50, "{:?}", r.totals);
    // The most journeys at once: some, within the generator's bound, and at it if it shed.
    let peak = r.totals.journeys_in_flight_peak;
    assert!(peak >= 1 && peak <= bound as u64, "{:?}", r.totals);
    assert!(r.totals.shed_by_generator == 0 || peak == bound as u64);
    assert_eq!(r.scenario.journeys_in_flight_max, bound);
    // The reports are written, and the JSON carries the audit.
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("report/report.json")).expect("report.json"),
    )
    .expect("report.json parses");
    assert_eq!(json["audit"]["passed"], serde_json::Value::Bool(true));
    assert_eq!(json["audit"]["checks"].as_array().map(Vec::len), Some(7));
    assert!(json["endpoints"].as_array().is_some_and(|e| e.len() >= 8));
    let md = std::fs::read_to_string(dir.join("report/report.md")).expect("report.md");
    assert!(md.contains("## Audit: PASSED") && md.contains("chart.svg"));
    assert!(std::fs::read_to_string(dir.join("report/chart.svg"))
        .expect("chart.svg")
        .contains("<polyline"));
    outcome
}

/// Seeds two faults (an over-capacity slot, a confirmed appointment removed) and checks that
/// the audit fails naming both.
async fn seeded_faults_fail(outcome: &RunOutcome, doctor: impl std::future::Future<Output = ()>) {
    doctor.await;
    let audit = audit_database(&outcome.store, &outcome.journal, &outcome.audit_params)
        .await
        .expect("audit runs");
    assert!(!audit.passed);
    let failures = audit.failures();
    assert!(!audit.check("slot_capacity").unwrap().passed, "{failures}");
    assert!(
        !audit.check("acknowledged_bookings_present").unwrap().passed,
        "{failures}"
    );
    let victim = outcome.journal.appointments.keys().next().unwrap();
    assert!(
        failures.contains("audit check `slot_capacity` failed"),
        "{failures}"
    );
    assert!(failures.contains("over capacity"), "{failures}");
    assert!(
        failures.contains(&format!(
            "tracking code {victim} was confirmed (2xx) but is not in the database"
        )),
        "{failures}"
    );
    // The checks that were not touched still pass.
    assert!(
        audit
            .check("one_active_per_citizen_service")
            .unwrap()
            .passed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surge_short_on_sqlite_passes_the_audit_and_seeded_faults_fail_it() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run_surge(dir.path(), None, None).await;
    let victim = outcome.journal.appointments.keys().next().unwrap().clone();
    let db = dir.path().join("nobat.db");
    seeded_faults_fail(&outcome, async move {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        // The CHECK would refuse the write; the audit must catch what bypasses it.
        sqlx::query("PRAGMA ignore_check_constraints = ON")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("UPDATE slots SET taken = capacity + 1 WHERE id = (SELECT MIN(id) FROM slots)")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("DELETE FROM appointments WHERE tracking_code = ?1")
            .bind(&victim)
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_run_on_sqlite_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run_surge(dir.path(), None, Some(Duration::from_secs(5))).await;
    let r = &outcome.report;
    let crash = r.crash.as_ref().expect("the server was killed");
    assert!(crash.downtime_secs > 0.0 && crash.killed_at_secs >= 5.0);
    // Bookings went on after the restart.
    let after: u64 = r
        .timeline
        .iter()
        .filter(|s| s.t as f64 > crash.ready_again_at_secs)
        .map(|s| s.bookings)
        .sum();
    assert!(after > 0, "no bookings after the restart: {:?}", r.totals);
}

/// A fresh PostgreSQL database for one test, dropped afterwards.
struct PgDb {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDb {
    async fn create() -> Option<PgDb> {
        let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
            if std::env::var("NOBAT_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("NOBAT_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set");
            }
            eprintln!("skipped: TEST_DATABASE_URL is not set");
            return None;
        };
        let name = format!("nobat_lt_{:016x}", rand::thread_rng().gen::<u64>());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach TEST_DATABASE_URL: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();
        let (base, _) = admin_url
            .rsplit_once('/')
            .expect("TEST_DATABASE_URL has a database name");
        let url = format!("{base}/{name}");
        Some(PgDb {
            admin_url,
            name,
            url,
        })
    }

    async fn drop_db(self) {
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin)
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surge_short_on_postgres_passes_the_audit_and_seeded_faults_fail_it() {
    let Some(db) = PgDb::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let outcome = run_surge(dir.path(), Some(db.url.clone()), None).await;
    let victim = outcome.journal.appointments.keys().next().unwrap().clone();
    let url = db.url.clone();
    seeded_faults_fail(&outcome, async move {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        // Drop the CHECK constraints on slots so the doctored row can be written at all.
        sqlx::query(
            "DO $$ DECLARE r record; BEGIN
               FOR r IN SELECT conname FROM pg_constraint WHERE conrelid = 'slots'::regclass AND contype = 'c' LOOP
                 EXECUTE 'ALTER TABLE slots DROP CONSTRAINT ' || quote_ident(r.conname);
               END LOOP; END $$",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query("UPDATE slots SET taken = capacity + 1 WHERE id = (SELECT MIN(id) FROM slots)")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("DELETE FROM appointments WHERE tracking_code = $1")
            .bind(&victim)
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
    })
    .await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_run_on_postgres_loses_nothing() {
    let Some(db) = PgDb::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let outcome = run_surge(
        dir.path(),
        Some(db.url.clone()),
        Some(Duration::from_secs(5)),
    )
    .await;
    assert!(outcome.report.crash.is_some());
    db.drop_db().await;
}

/// The short surge booking with `pick`, then the same arrivals with specific slots
/// (`booking.compare`), each on a fresh spawned server: both audits pass, the arrivals are the
/// same, no pick is refused for a full slot, and the comparison has a row per mode.
async fn compared(dir: &std::path::Path, database_url: Option<String>) -> Vec<RunOutcome> {
    let (mut scenario, path) = surge_short();
    scenario.booking.mode = BookingMode::Pick;
    scenario.booking.compare = vec![BookingMode::Slot];
    let outcomes = run_compared(RunConfig {
        scenario,
        scenario_path: path,
        rate_scale: 1.0,
        target: Target::Spawn(spec(dir, database_url)),
        out_dir: dir.join("report"),
        crash_after: None,
        generator_cpus: None,
    })
    .await
    .unwrap_or_else(|e| panic!("compared run failed: {e}"));
    assert_eq!(outcomes.len(), 2);
    for (outcome, mode) in outcomes.iter().zip(["pick", "slot"]) {
        let r = &outcome.report;
        assert_eq!(r.scenario.booking, mode);
        assert!(r.audit.passed, "{mode}: {}", r.audit.failures());
        assert!(r.totals.bookings >= 10, "{mode}: {:?}", r.totals);
        assert!(dir.join(format!("report/{mode}/report.json")).exists());
    }
    assert_eq!(
        outcomes[0].report.totals.arrivals, outcomes[1].report.totals.arrivals,
        "the same arrivals"
    );
    let hold = outcomes[0]
        .report
        .endpoints
        .iter()
        .find(|e| e.endpoint == "POST /v1/holds")
        .unwrap();
    assert!(
        !hold.problem_codes.contains_key("slot_full"),
        "a pick is never refused for a full slot: {:?}",
        hold.problem_codes
    );
    let md = std::fs::read_to_string(dir.join("report/compare.md")).unwrap();
    assert!(md.contains("| pick |") && md.contains("| slot |"), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report/compare.json")).unwrap())
            .unwrap();
    assert_eq!(json["runs"].as_array().map(Vec::len), Some(2));
    outcomes
}

/// surge-autopick.toml (the national surge booking with pick, compared with slots) parses,
/// and the short surge compared on SQLite passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pick_and_slot_runs_compared_on_sqlite_pass_the_audit() {
    let national = LoadScenario::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/loadtest/surge-autopick.toml"
    ))
    .expect("surge-autopick loads");
    assert_eq!(
        (national.booking.mode, &national.booking.compare[..]),
        (BookingMode::Pick, &[BookingMode::Slot][..])
    );
    let dir = tempfile::tempdir().unwrap();
    compared(dir.path(), None).await;
}

/// On PostgreSQL each mode gets a database of its own beside the one given; a second
/// comparison refuses to reuse them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pick_and_slot_runs_compared_on_postgres_pass_the_audit() {
    let Some(db) = PgDb::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    compared(dir.path(), Some(db.url.clone())).await;
    let (mut scenario, path) = surge_short();
    scenario.booking.compare = vec![BookingMode::Pick];
    let again = run_compared(RunConfig {
        scenario,
        scenario_path: path,
        rate_scale: 1.0,
        target: Target::Spawn(spec(dir.path(), Some(db.url.clone()))),
        out_dir: dir.path().join("again"),
        crash_after: None,
        generator_cpus: None,
    })
    .await;
    let e = again.err().expect("the databases exist already");
    assert!(e.to_string().contains("exists"), "{e}");
    for mode in ["pick", "slot"] {
        PgDb {
            admin_url: db.admin_url.clone(),
            name: format!("{}_{mode}", db.name),
            url: String::new(),
        }
        .drop_db()
        .await;
    }
    db.drop_db().await;
}

/// The short surge through a waiting room (a 3-second pre-queue, 20 admissions a second),
/// then the same arrivals without it (`room.compare_without`), each on a fresh server: both
/// audits pass, the room's run has the pass check (every hold carried a valid pass, from the
/// database), applicants waited in the queue and were admitted, bots met `pass_required`, and
/// `room.md` lists the targets. Then the pass uses are removed behind the server's back and
/// the pass check fails, naming citizens.
async fn through_the_room(dir: &std::path::Path, database_url: Option<String>) {
    let (mut scenario, path) = surge_short();
    scenario.room = Some(nobat::loadtest::scenario::RoomOptions {
        prequeue_secs: 3.0,
        per_minute: Some(1_200),
        auto_target_p99_ms: None,
        auto_max_active: None,
        pass_minutes: 10,
        ticket_idle_minutes: 5,
        compare_without: true,
    });
    let outcomes = run_room_compared(RunConfig {
        scenario,
        scenario_path: path,
        rate_scale: 1.0,
        target: Target::Spawn(spec(dir, database_url.clone())),
        out_dir: dir.join("report"),
        crash_after: None,
        generator_cpus: None,
    })
    .await
    .unwrap_or_else(|e| panic!("room run failed: {e}"));
    assert_eq!(outcomes.len(), 2);
    let (room, no_room) = (&outcomes[0], &outcomes[1]);
    for o in &outcomes {
        assert!(o.report.audit.passed, "{}", o.report.audit.failures());
        assert!(o.report.totals.bookings >= 10, "{:?}", o.report.totals);
    }
    let pass_check = room.report.audit.check("bookings_carried_a_valid_pass");
    assert!(pass_check.is_some_and(|c| c.passed), "{pass_check:?}");
    let order_check = room.report.audit.check("room_admitted_in_published_order");
    assert!(order_check.is_some_and(|c| c.passed), "{order_check:?}");
    assert!(no_room
        .report
        .audit
        .check("bookings_carried_a_valid_pass")
        .is_none());
    let surge = &room.report.surge;
    let order = surge.order.as_ref().expect("the room's order figures");
    assert!(order.tickets > 0 && order.admitted > 0, "{order:?}");
    assert!(order.prequeue_tickets > 0, "{order:?}");
    assert!(surge
        .admitted_requests
        .as_ref()
        .is_some_and(|l| l.count > 0));
    let hold = room
        .report
        .endpoints
        .iter()
        .find(|e| e.endpoint == "POST /v1/holds")
        .unwrap();
    assert!(
        hold.problem_codes.contains_key("pass_required"),
        "bots without a pass are turned away: {:?}",
        hold.problem_codes
    );
    let md = std::fs::read_to_string(dir.join("report/room.md")).unwrap();
    assert!(md.contains("Spearman") && md.contains("ETA error"), "{md}");

    // Remove the evidence: the check must fail.
    let params = room.audit_params.clone();
    match &database_url {
        None => {
            let db = dir.join("report/room/nobat.db");
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
                .await
                .unwrap();
            for q in [
                "DROP TRIGGER room_pass_uses_no_delete",
                "DELETE FROM room_pass_uses",
            ] {
                sqlx::query(q).execute(&mut conn).await.unwrap();
            }
            conn.close().await.ok();
        }
        Some(url) => {
            let (base, name) = url.rsplit_once('/').unwrap();
            let mut conn = sqlx::PgConnection::connect(&format!("{base}/{name}_room"))
                .await
                .unwrap();
            for q in [
                "DROP TRIGGER room_pass_uses_no_update ON room_pass_uses",
                "DELETE FROM room_pass_uses",
            ] {
                sqlx::query(q).execute(&mut conn).await.unwrap();
            }
            conn.close().await.ok();
        }
    }
    let audit = audit_database(&room.store, &room.journal, &params)
        .await
        .expect("audit runs");
    let check = audit.check("bookings_carried_a_valid_pass").unwrap();
    assert!(!check.passed && check.violations > 0, "{check:?}");
    assert!(check.examples[0].contains("with a valid pass"), "{check:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surge_through_the_room_on_sqlite_passes_the_pass_audit() {
    let room = LoadScenario::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/loadtest/surge-day-room.toml"
    ))
    .expect("surge-day-room loads");
    assert!(room.room.as_ref().is_some_and(|r| r.compare_without));
    let dir = tempfile::tempdir().unwrap();
    through_the_room(dir.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surge_through_the_room_on_postgres_passes_the_pass_audit() {
    let Some(db) = PgDb::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    through_the_room(dir.path(), Some(db.url.clone())).await;
    for suffix in ["room", "no_room"] {
        PgDb {
            admin_url: db.admin_url.clone(),
            name: format!("{}_{suffix}", db.name),
            url: String::new(),
        }
        .drop_db()
        .await;
    }
    db.drop_db().await;
}

/// `ballot-day.toml`, shrunk to the small network and a few seconds (20 % of its rates, 8 %
/// of its length): the journeys enter, change and withdraw entries, bots hammer, the server
/// closes the ballot after the window, and the audit's ballot checks pass.
async fn ballot_day(dir: &std::path::Path, database_url: Option<String>) {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/loadtest/ballot-day.toml"
    ));
    let mut scenario = LoadScenario::load(&path).expect("ballot-day loads");
    scenario.server_scenario =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/small.toml"));
    scenario.scale_rates(0.05);
    scenario.scale_duration(0.08);
    scenario.drain_secs = 5.0;
    scenario.behaviour.think_ms_min = 20;
    scenario.behaviour.think_ms_max = 200;
    scenario.behaviour.bot_identities = 2;
    scenario.behaviour.bot_requests = 10;
    scenario.server.ready_timeout_secs = 60;
    let outcome = run(RunConfig {
        scenario,
        scenario_path: path,
        rate_scale: 1.0,
        target: Target::Spawn(spec(dir, database_url)),
        out_dir: dir.join("report"),
        crash_after: None,
        generator_cpus: None,
    })
    .await
    .unwrap_or_else(|e| {
        let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        panic!("run failed: {e}\nserver log:\n{log}")
    });
    let r = &outcome.report;
    assert!(
        r.audit.passed,
        "audit failed:\n{}\n{}",
        r.audit.failures(),
        serde_json::to_string_pretty(&r.totals).unwrap()
    );
    for name in [
        "ballot_published",
        "acknowledged_entries_in_input",
        "ballot_office_days_within_capacity",
        "placed_entries_one_appointment",
        "bots_within_their_share",
        "ballot_verify",
    ] {
        assert!(r.audit.check(name).is_some(), "{name} was not checked");
    }
    let ballot = r.ballot.as_ref().expect("ballot figures");
    assert!(ballot.entries >= 10, "{ballot:?}");
    assert!(ballot.placed > 0, "{ballot:?}");
    assert!(
        ballot.bot_entries <= 2,
        "two bot identities, one entry each: {ballot:?}"
    );
    assert!(outcome.journal.entry_puts.acked >= ballot.entries);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ballot_day_on_sqlite_passes_the_ballot_audit() {
    let dir = tempfile::tempdir().unwrap();
    ballot_day(dir.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ballot_day_on_postgres_passes_the_ballot_audit() {
    let Some(db) = PgDb::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    ballot_day(dir.path(), Some(db.url.clone())).await;
    db.drop_db().await;
}
