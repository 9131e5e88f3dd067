//! The limits that traders hit, on both backends: at most two reschedules per appointment
//! (an administrator's relocation does not count), at most three cancellations per citizen in
//! 30 days (the window rolls with the clock). A refusal writes nothing.

use chrono::{DateTime, Duration};
use serde_json::json;

use crate::applicant::{eligible_citizens, nearest_offices, Ready};
use crate::helpers::{scalar, TestApp, TestDb, TEST_START};
use crate::on_both_backends;
use crate::races::assert_seats_consistent;
use crate::staff::{spawn, ADMIN_TOKEN};

fn unix(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp()
}

/// A free slot's start at `office_id` on `day` other than `not_at` (Unix seconds).
async fn free_start(app: &TestApp, office_id: &str, day: &str, not_at: &[i64]) -> String {
    app.free_slots(office_id, day)
        .await
        .iter()
        .map(|s| s["start"].as_str().unwrap().to_string())
        .find(|s| !not_at.contains(&unix(s)))
        .unwrap_or_else(|| panic!("no free slot at {office_id} on {day}"))
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    scalar(&app.store, sql).await
}

async fn reschedule(
    app: &TestApp,
    me: &Ready,
    code: &str,
    office_id: &str,
    start: &str,
) -> (u16, serde_json::Value) {
    app.post(
        Some(&me.token),
        &format!("/v1/appointments/{code}/reschedule"),
        &json!({ "office_id": office_id, "start": start }),
    )
    .await
}

async fn the_third_reschedule_is_refused(db: &TestDb) {
    let app = spawn(db, 30).await;
    let me = app.ready(&eligible_citizens(0, 1)[0]).await;
    let office_id = nearest_offices(&app, &me.citizen).await[0]["office_id"]
        .as_str()
        .unwrap()
        .to_string();
    let start = free_start(&app, &office_id, "2024-09-23", &[]).await;
    let code = app.book_at(&me, &office_id, &start).await;

    // An administrator's closure moves it: not the applicant's move.
    let (status, report) = app
        .post(
            Some(ADMIN_TOKEN),
            &format!("/v1/admin/offices/{office_id}/closures"),
            &json!({ "from": "1403-07-02", "reason": "قطع برق" }),
        )
        .await;
    assert_eq!((status, &report["moved"]), (200, &json!(1)), "{report}");
    let relocated = app.store.appointment(&code).await.unwrap().unwrap();
    assert_ne!(relocated.start_at, unix(&start));
    assert_eq!(relocated.reschedules, 0);

    // Two moves of the applicant's own.
    let mut taken_starts = vec![relocated.start_at];
    for n in 1..=2 {
        let to = free_start(&app, &office_id, "2024-09-25", &taken_starts).await;
        let (status, moved) = reschedule(&app, &me, &code, &office_id, &to).await;
        assert_eq!(status, 200, "{moved}");
        assert_eq!(moved["start"], to.as_str());
        taken_starts.push(unix(&to));
        let row = app.store.appointment(&code).await.unwrap().unwrap();
        assert_eq!(row.reschedules, n);
    }

    // The third is refused with its own code, and nothing is written.
    let before = app.store.appointment(&code).await.unwrap().unwrap();
    let (events, taken) = (
        count(&app, "SELECT COUNT(*) FROM events").await,
        count(&app, "SELECT CAST(SUM(taken) AS BIGINT) FROM slots").await,
    );
    let to = free_start(&app, &office_id, "2024-09-25", &taken_starts).await;
    let seat = |app: &TestApp| {
        app.state
            .engine
            .availability()
            .slot_at(&office_id, unix(&to))
            .unwrap()
            .taken
    };
    let target_taken = seat(&app);
    let (status, body) = reschedule(&app, &me, &code, &office_id, &to).await;
    assert_eq!(
        (
            status,
            body["code"].as_str(),
            body["extra"]["limit"].as_i64()
        ),
        (409, Some("reschedule_limit_reached"), Some(2)),
        "{body}"
    );
    assert_eq!(app.store.appointment(&code).await.unwrap().unwrap(), before);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM events").await, events);
    assert_eq!(
        count(&app, "SELECT CAST(SUM(taken) AS BIGINT) FROM slots").await,
        taken
    );
    assert_eq!(seat(&app), target_taken);
    // Still refused on a retry (no count moved), and the appointment can still be cancelled.
    let (status, _) = reschedule(&app, &me, &code, &office_id, &to).await;
    assert_eq!(status, 409);
    let (status, cancelled) = app
        .post(
            Some(&me.token),
            &format!("/v1/appointments/{code}/cancel"),
            &json!({}),
        )
        .await;
    assert_eq!((status, &cancelled["status"]), (200, &json!("cancelled")));
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}

on_both_backends!(
    reschedules_are_capped_per_appointment,
    super::the_third_reschedule_is_refused
);

/// Books `me` at the first free slot of `office_id` on the first of `days` that has one.
async fn book(app: &TestApp, me: &Ready, office_id: &str, days: &[&str]) -> String {
    for day in days {
        if let Some(slot) = app.free_slots(office_id, day).await.first() {
            return app
                .book_at(me, office_id, slot["start"].as_str().unwrap())
                .await;
        }
    }
    panic!("no free slot at {office_id} on {days:?}")
}

async fn cancel(app: &TestApp, me: &Ready, code: &str) -> (u16, serde_json::Value) {
    app.post(
        Some(&me.token),
        &format!("/v1/appointments/{code}/cancel"),
        &json!({}),
    )
    .await
}

async fn the_fourth_cancellation_in_30_days_is_refused(db: &TestDb) {
    // A 45-day booking window, so an appointment is still ahead when the window has rolled.
    let app = spawn(db, 45).await;
    let mut me = app.ready(&eligible_citizens(0, 1)[0]).await;
    let office_id = nearest_offices(&app, &me.citizen).await[0]["office_id"]
        .as_str()
        .unwrap()
        .to_string();
    let national_code = me.citizen.national_code.to_string();
    let t0 = unix(TEST_START);

    // First cancellation at t0, two more a day later.
    let code = book(&app, &me, &office_id, &["2024-09-23"]).await;
    assert_eq!(cancel(&app, &me, &code).await.0, 200);
    app.clock.advance(Duration::days(1));
    me.token = app.login(&me.citizen).await;
    for _ in 0..2 {
        let code = book(&app, &me, &office_id, &["2024-09-24"]).await;
        assert_eq!(cancel(&app, &me, &code).await.0, 200);
    }
    // An administrator's cancellations of this citizen's appointments are not theirs.
    for _ in 0..3 {
        crate::helpers::exec(
            &app.store,
            &format!("INSERT INTO events (at, actor, kind, subject, payload_json) VALUES ({}, 'admin:root', 'appointment_cancelled', '{code}', '{{}}')", t0 + 86_400),
        )
        .await;
    }

    // The fourth is refused; the appointment, its seat and the log are as they were.
    let code = book(
        &app,
        &me,
        &office_id,
        &["2024-11-02", "2024-11-03", "2024-11-04", "2024-11-05"],
    )
    .await;
    let before = app.store.appointment(&code).await.unwrap().unwrap();
    let (events, taken) = (
        count(&app, "SELECT COUNT(*) FROM events").await,
        count(&app, "SELECT CAST(SUM(taken) AS BIGINT) FROM slots").await,
    );
    let (status, body) = cancel(&app, &me, &code).await;
    assert_eq!(
        (
            status,
            body["code"].as_str(),
            body["extra"]["limit"].as_i64(),
            body["extra"]["window_days"].as_i64()
        ),
        (409, Some("cancellation_limit_reached"), Some(3), Some(30)),
        "{body}"
    );
    assert_eq!(app.store.appointment(&code).await.unwrap().unwrap(), before);
    assert_eq!(before.status.as_str(), "booked");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM events").await, events);
    assert_eq!(
        count(&app, "SELECT CAST(SUM(taken) AS BIGINT) FROM slots").await,
        taken
    );
    let own = format!("SELECT COUNT(*) FROM events WHERE kind = 'appointment_cancelled' AND actor = '{national_code}'");
    assert_eq!(count(&app, &own).await, 3);

    // One second before the first cancellation is 30 days old it still counts ...
    app.clock
        .set(DateTime::from_timestamp(t0 + 30 * 86_400 - 1, 0).unwrap());
    me.token = app.login(&me.citizen).await;
    let (status, body) = cancel(&app, &me, &code).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("cancellation_limit_reached"))
    );
    // ... and then it has rolled out of the window.
    app.clock.advance(Duration::seconds(1));
    let (status, body) = cancel(&app, &me, &code).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("cancelled")),
        "{body}"
    );
    assert_eq!(count(&app, &own).await, 4);
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}

on_both_backends!(
    cancellations_are_capped_per_citizen_in_a_rolling_window,
    super::the_fourth_cancellation_in_30_days_is_refused
);

/// The writer counts a citizen's cancellations through the partial index of cancellation
/// events, whatever else the log holds, also with a plan cached while the log was empty.
async fn cancellations_are_counted_on_their_index(db: &TestDb) {
    use nobat::store::{Store, CANCELLATIONS_OF_LITE, CANCELLATIONS_OF_PG, PG_BATCH_BEGIN};
    let store = db.store().await;
    // Four thousand events: other citizens' cancellations, and this citizen's other events.
    let others = "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 4000) \
                  INSERT INTO events (at, actor, kind, subject, payload_json) \
                  SELECT n, CASE WHEN n % 2 = 0 THEN 'c' || n ELSE '0499370899' END, \
                  CASE WHEN n % 2 = 0 THEN 'appointment_cancelled' ELSE 'appointment_booked' END, 'T' || n, '{}' FROM s";
    let own = "INSERT INTO events (at, actor, kind, subject, payload_json) VALUES \
               (5000, '0499370899', 'appointment_cancelled', 'Tx', '{}'), \
               (6000, '0499370899', 'appointment_cancelled', 'Ty', '{}'), \
               (10, '0499370899', 'appointment_cancelled', 'Tz', '{}')";
    match &store {
        Store::Postgres(pool) => {
            let mut tx = pool.begin_with(PG_BATCH_BEGIN).await.unwrap();
            for sql in [
                "SET LOCAL plan_cache_mode = force_generic_plan".to_string(),
                format!("PREPARE cancellations(text[], bigint) AS {CANCELLATIONS_OF_PG}"),
                "EXECUTE cancellations('{0499370899}', 0)".to_string(),
                others.to_string(),
                own.to_string(),
            ] {
                sqlx::raw_sql(&sql).execute(&mut *tx).await.unwrap();
            }
            let counted: (String, i64) = sqlx::query_as(CANCELLATIONS_OF_PG)
                .bind(["0499370899"])
                .bind(100_i64)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            assert_eq!(
                counted,
                ("0499370899".to_string(), 2),
                "after the window's start only"
            );
            crate::store::assert_reads_through(
                &mut tx,
                "cancellations('{0499370899}', 100)",
                "events_cancellations_by_actor",
                1,
            )
            .await;
            sqlx::raw_sql("DEALLOCATE cancellations")
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.rollback().await.unwrap();
        }
        Store::Sqlite(pool) => {
            for sql in [others, own] {
                crate::helpers::exec(&store, sql).await;
            }
            let counted: i64 = sqlx::query_scalar(CANCELLATIONS_OF_LITE)
                .bind("0499370899")
                .bind(100_i64)
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(counted, 2, "after the window's start only");
            let query = CANCELLATIONS_OF_LITE
                .replace("?1", "'0499370899'")
                .replace("?2", "100");
            crate::store::assert_sqlite_plan_uses(pool, &query, "events_cancellations_by_actor")
                .await;
        }
    }
}

on_both_backends!(
    cancellation_counts_use_their_index,
    super::cancellations_are_counted_on_their_index
);

/// Across processes on one PostgreSQL database, a batch counts a citizen's cancellations only
/// once no other transaction holds the citizen: here a transaction standing in for another
/// process holds the citizen's advisory lock while it records a third cancellation, and the
/// cancellation that waited for it then counts that one too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizens_cancellations_are_counted_one_transaction_at_a_time() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let app = spawn(&db, 30).await;
    let me = app.ready(&eligible_citizens(0, 1)[0]).await;
    let national_code = me.citizen.national_code.to_string();
    let office_id = nearest_offices(&app, &me.citizen).await[0]["office_id"]
        .as_str()
        .unwrap()
        .to_string();
    let code = book(&app, &me, &office_id, &["2024-09-23"]).await;
    let cancellation = |at: i64, subject: &str| {
        format!("INSERT INTO events (at, actor, kind, subject, payload_json) VALUES ({at}, '{national_code}', 'appointment_cancelled', '{subject}', '{{}}')")
    };
    let t0 = unix(TEST_START);
    for subject in ["TA", "TB"] {
        crate::helpers::exec(&app.store, &cancellation(t0 - 60, subject)).await;
    }
    let nobat::store::Store::Postgres(pool) = &app.store else {
        unreachable!()
    };
    let mut other = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 21))")
        .bind(&national_code)
        .execute(&mut *other)
        .await
        .unwrap();

    let request = app
        .client
        .post(app.url(&format!("/v1/appointments/{code}/cancel")))
        .bearer_auth(&me.token)
        .json(&json!({}));
    let cancelling = tokio::spawn(async move {
        let r = request.send().await.unwrap();
        (
            r.status().as_u16(),
            r.json::<serde_json::Value>().await.unwrap(),
        )
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !cancelling.is_finished(),
        "the cancellation waits for the citizen"
    );
    sqlx::raw_sql(&cancellation(t0 - 30, "TC"))
        .execute(&mut *other)
        .await
        .unwrap();
    other.commit().await.unwrap();
    let (status, body) = cancelling.await.unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("cancellation_limit_reached")),
        "{body}"
    );
    let row = app.store.appointment(&code).await.unwrap().unwrap();
    assert_eq!(row.status.as_str(), "booked");
    app.stop().await;
    db.cleanup().await;
}
