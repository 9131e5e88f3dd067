//! The two backends' writers leave the same rows behind. The order of a batch's writes lives in
//! one place (`store::batch_plan`), and each backend performs its steps in its own SQL; this
//! drives one sequence of batches through the real writer path (`Reservations`) on SQLite and
//! on PostgreSQL, covering every write step, and compares every table the writer writes, read
//! back in one normalised form (surrogate ids left out, rows in a fixed order).

use std::sync::Arc;

use chrono::Duration;
use nobat::booking::{
    Book, Cancel, CardReady, CheckIn, Confirm, Deliver, Enrol, Hold, JoinWaitlist, NoShow, Outcome,
    PartOfDay, PickupBooking, Release, ReleaseSeat, Relocate, RelocationReason, Request,
    Reschedule, SetCapacity, WaitLimits,
};
use nobat::domain::time::{Clock, ManualClock};
use nobat::reserve::{
    EngineConfig, IdSource, IdempotencyKey, Render, Rendered, Reservations, SeededIds,
};
use nobat::store::Store;

use crate::helpers::{exec, test_clock, TestDb};

const OFFICE: &str = "021-0001";
const CITIZENS: usize = 6;

/// Services, one office, six slots a day ahead (the last with one seat), six citizens each
/// with an application and a paid payment, and a pending payment for the first.
async fn fixture(store: &Store, now: i64) {
    exec(store, "INSERT INTO services (code, name_en, name_fa, duration_minutes, office_kinds) VALUES ('first_issuance', 'First issuance', 'صدور', 15, 'pishkhan'), ('card_pickup', 'Card pickup', 'تحویل', 15, 'pishkhan')").await;
    exec(store, &format!("INSERT INTO offices (id, name, kind, province, city, area_code, lat, lon, stations, services, calendar_json, updated_at) \
                          VALUES ('{OFFICE}', 'Office 1', 'pishkhan', 'tehran', 'Tehran', '021', 35.7, 51.4, 2, 'first_issuance,card_pickup', '{{}}', 0)")).await;
    for k in 0..6 {
        let capacity = if k == 5 { 1 } else { 2 };
        exec(store, &format!("INSERT INTO slots (office_id, start_at, duration_minutes, capacity) VALUES ('{OFFICE}', {}, 15, {capacity})", now + 86_400 + k * 900)).await;
    }
    for i in 0..CITIZENS {
        exec(store, &format!("INSERT INTO applications (id, national_code, service, form_json, eligible, created_at) VALUES ('app{i}', 'c{i}', 'first_issuance', '{{}}', TRUE, 0)")).await;
        exec(store, &format!("INSERT INTO payments (id, application_id, amount_rials, status, gateway, created_at) VALUES ('pay{i}', 'app{i}', 600000, 'paid', 'sandbox', 0)")).await;
    }
    exec(store, "INSERT INTO payments (id, application_id, amount_rials, status, gateway, created_at) VALUES ('pay_pending', 'app1', 600000, 'pending', 'sandbox', 0)").await;
}

fn hold(i: usize, slot_id: i64, hold_id: &str, expires_at: i64) -> Request {
    Request::Hold(Hold {
        national_code: format!("c{i}"),
        application_id: format!("app{i}").into(),
        service: "first_issuance".into(),
        slot_id,
        hold_id: hold_id.into(),
        expires_at,
    })
}

fn book(i: usize, slot_id: i64, hold_id: &str, tracking_code: &str) -> Request {
    Request::Book(Book {
        national_code: format!("c{i}"),
        application_id: format!("app{i}").into(),
        service: "first_issuance".into(),
        slot_id,
        payment_id: format!("pay{i}").into(),
        hold_id: hold_id.into(),
        tracking_code: tracking_code.into(),
    })
}

fn set_capacity(slot_id: i64, capacity: i64) -> Request {
    Request::SetCapacity(SetCapacity {
        slot_id,
        capacity,
        actor: "admin:parity".into(),
    })
}

fn relocate(new_slot_id: Option<i64>) -> Request {
    Request::Relocate(Relocate {
        tracking_code: "T2".into(),
        new_slot_id,
        reason: RelocationReason::Holiday,
        notice_key: "holiday:2024-09-24".into(),
        actor: "admin:parity".into(),
    })
}

fn join(i: usize, auto_accept: bool, now: i64) -> Request {
    Request::JoinWaitlist(Box::new(JoinWaitlist {
        national_code: format!("c{i}"),
        application_id: format!("app{i}").into(),
        service: "first_issuance".into(),
        payment_id: format!("pay{i}").into(),
        entry_id: format!("wait{i}"),
        auto_accept,
        limits: WaitLimits {
            earliest_at: now,
            latest_at: now + 30 * 86_400,
            part_of_day: PartOfDay::Any,
        },
        limits_json: "{}".into(),
        offices: vec![OFFICE.into()],
    }))
}

/// One batch of the sequence: requests submitted together, some with an idempotency key.
enum Batch {
    Together(Vec<Request>),
    Keyed(&'static str, &'static str, Request),
    /// Moves the clock on before the next batch.
    Advance(Duration),
}

/// The sequence: every write step at least once (new holds; hold statuses confirmed, released
/// and expired; new appointments; appointment updates; seat deltas; capacity raised before new
/// seats fill it and cut after seats are freed, each within one batch; a card; outbox rows, one
/// a duplicate; events; idempotency records, one replayed), and refusals (a full slot, an
/// unpaid payment).
fn sequence(now: i64, s: &[i64]) -> Vec<Batch> {
    use Batch::*;
    let pickup = PickupBooking {
        slot_id: s[3],
        tracking_code: "TP".into(),
    };
    vec![
        Together(vec![
            hold(0, s[0], "h0", now + 600),
            hold(1, s[0], "h1", now + 600),
            hold(2, s[0], "h2", now + 600),
            hold(3, s[1], "h3", now + 60),
        ]),
        Keyed(
            "c0",
            "k-confirm",
            Request::Confirm(Confirm {
                national_code: "c0".into(),
                hold_id: "h0".into(),
                payment_id: "pay0".into(),
                tracking_code: "T0".into(),
            }),
        ),
        Keyed(
            "c0",
            "k-confirm",
            Request::Confirm(Confirm {
                national_code: "c0".into(),
                hold_id: "h0".into(),
                payment_id: "pay0".into(),
                tracking_code: "T0".into(),
            }),
        ),
        Keyed(
            "c1",
            "k-unpaid",
            Request::Confirm(Confirm {
                national_code: "c1".into(),
                hold_id: "h1".into(),
                payment_id: "pay_pending".into(),
                tracking_code: "T1".into(),
            }),
        ),
        Together(vec![Request::Release(Release {
            national_code: "c1".into(),
            hold_id: "h1".into(),
            closing: false,
        })]),
        Keyed("c4", "k-book", book(4, s[2], "h4", "T4")),
        Together(vec![Request::Cancel(Cancel {
            national_code: "c4".into(),
            tracking_code: "T4".into(),
        })]),
        Together(vec![Request::Reschedule(Reschedule {
            national_code: "c0".into(),
            tracking_code: "T0".into(),
            new_slot_id: s[1],
        })]),
        // h3 is overdue: the next batch expires it on the side.
        Advance(Duration::seconds(120)),
        Together(vec![
            set_capacity(s[5], 3),
            hold(5, s[5], "h5", now + 7_200),
            hold(1, s[5], "h1b", now + 7_200),
        ]),
        Together(vec![
            Request::Release(Release {
                national_code: "c5".into(),
                hold_id: "h5".into(),
                closing: false,
            }),
            set_capacity(s[5], 1),
            set_capacity(s[4], 0),
        ]),
        Together(vec![Request::CheckIn(CheckIn {
            office_id: OFFICE.into(),
            tracking_code: "T0".into(),
            actor: "staff:parity".into(),
        })]),
        Together(vec![Request::Enrol(Enrol {
            office_id: OFFICE.into(),
            tracking_code: "T0".into(),
            national_code: "c0".into(),
            ready_date: "2024-10-20".into(),
            pickup: Some(pickup),
            actor: "staff:parity".into(),
        })]),
        Together(vec![Request::CardReady(CardReady {
            office_id: OFFICE.into(),
            tracking_code: "T0".into(),
            actor: "staff:parity".into(),
        })]),
        Together(vec![Request::Deliver(Deliver {
            office_id: OFFICE.into(),
            tracking_code: "T0".into(),
            pickup_tracking_code: Some("TP".into()),
            actor: "staff:parity".into(),
        })]),
        Keyed("c2", "k-book-2", book(2, s[3], "h6", "T2")),
        Together(vec![relocate(Some(s[1]))]),
        Together(vec![relocate(None)]),
        // The seats given up so far are held by their releases (5 to 30 minutes): 31 minutes
        // on, every one is due.
        Advance(Duration::minutes(31)),
        Together(
            (1..=8)
                .map(|release_id| {
                    Request::ReleaseSeat(ReleaseSeat {
                        release_id,
                        closing: false,
                    })
                })
                .collect(),
        ),
        Together(vec![book(3, s[0], "h7", "T3")]),
        // A waiter with auto-accept gets the seat of a cancellation in its transaction (c1,
        // who joined with it, holds a seat, so is passed over and stays waiting).
        Together(vec![join(4, true, now), join(1, false, now)]),
        Together(vec![book(2, s[2], "h8", "T8")]),
        Together(vec![Request::Cancel(Cancel {
            national_code: "c2".into(),
            tracking_code: "T8".into(),
        })]),
        // Past the slots' start: a no-show can be marked (and h1b expires on the side).
        Advance(Duration::days(2)),
        Together(vec![Request::NoShow(NoShow {
            office_id: OFFICE.into(),
            tracking_code: "T3".into(),
            actor: "staff:parity".into(),
        })]),
    ]
}

/// How the test renders a keyed answer (a stand-in for the HTTP layer's render functions).
fn render() -> Render {
    Arc::new(|outcome: &Outcome| Rendered {
        status: if matches!(outcome, Outcome::Refused(_)) {
            409
        } else {
            200
        },
        body: serde_json::to_string(outcome).unwrap(),
    })
}

/// Runs the sequence through a writer on `store`; returns each batch's answers.
async fn drive(store: &Store) -> Vec<String> {
    let clock: Arc<ManualClock> = test_clock();
    let now = clock.now().timestamp();
    fixture(store, now).await;
    let slots = slot_ids(store).await;
    let ids: Arc<dyn IdSource> = Arc::new(SeededIds::new(19));
    // One writer and a long linger: the requests of a batch share a transaction on both
    // backends alike.
    let config = EngineConfig {
        writers: 1,
        linger: std::time::Duration::from_millis(50),
        ..EngineConfig::default()
    };
    let engine = Reservations::start(store.clone(), clock.clone(), ids, config)
        .await
        .unwrap();
    let mut answers = Vec::new();
    for batch in sequence(now, &slots) {
        match batch {
            Batch::Together(requests) => {
                for answer in engine.submit_many(requests).await {
                    answers.push(format!("{:?}", answer.map(|a| a.outcome)));
                }
            }
            Batch::Keyed(scope, key, request) => {
                let key = IdempotencyKey {
                    scope: scope.into(),
                    key: key.into(),
                    request_hash: format!("{request:?}"),
                };
                let answer = engine.submit_rendered(request, Some(key), render()).await;
                answers.push(format!("{answer:?}"));
            }
            Batch::Advance(by) => clock.advance(by),
        }
    }
    answers
}

async fn slot_ids(store: &Store) -> Vec<i64> {
    let sql = "SELECT id FROM slots ORDER BY start_at";
    match store {
        Store::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
        Store::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
    }
}

/// Every table the writer writes, each row as one text (its columns joined, NULL spelt out),
/// in a fixed order: by key, and the log tables by insertion (their surrogate ids left out,
/// as a sequence's values differ between backends).
const TABLES: [(&str, &str, &str); 10] = [
    (
        "slots",
        "id, office_id, start_at, duration_minutes, capacity, taken",
        "id",
    ),
    (
        "holds",
        "id, slot_id, application_id, national_code, service, status, created_at, expires_at",
        "id",
    ),
    (
        "appointments",
        "tracking_code, slot_id, office_id, start_at, application_id, national_code, service, payment_id, status, created_at, updated_at, reschedules",
        "tracking_code",
    ),
    (
        "cards",
        "tracking_code, office_id, ready_date, pickup_tracking_code, created_at",
        "tracking_code",
    ),
    (
        "outbox",
        "national_code, application_id, tracking_code, notice_key, channel, body, created_at, sent_at",
        "id",
    ),
    ("events", "at, actor, kind, subject, payload_json", "id"),
    (
        "waitlist_entries",
        "id, national_code, service, application_id, payment_id, auto_accept, earliest_at, latest_at, part_of_day, limits_json, status, offer_hold_id, tracking_code, joined_at, updated_at",
        "id",
    ),
    ("waitlist_offices", "office_id, joined_at, entry_id", "entry_id"),
    (
        "seat_releases",
        "slot_id, release_at, freed_by, status, created_at",
        "id",
    ),
    (
        "idempotency_keys",
        "scope, key, request_hash, format_version, response_status, response_body, created_at",
        "scope, key",
    ),
];

async fn tables(store: &Store) -> Vec<(&'static str, Vec<String>)> {
    let mut out = Vec::new();
    for (table, columns, order) in TABLES {
        let row = columns
            .split(", ")
            .map(|c| format!("COALESCE(CAST({c} AS TEXT), 'NULL')"))
            .collect::<Vec<_>>()
            .join(" || ' | ' || ");
        let sql = format!("SELECT {row} FROM {table} ORDER BY {order}");
        let rows: Vec<String> = match store {
            Store::Sqlite(pool) => sqlx::query_scalar(&sql).fetch_all(pool).await.unwrap(),
            Store::Postgres(pool) => sqlx::query_scalar(&sql).fetch_all(pool).await.unwrap(),
        };
        out.push((table, rows));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_write_the_same_rows() {
    let Some(pg) = TestDb::postgres().await else {
        return;
    };
    let lite = TestDb::sqlite().await;
    let (lite_store, pg_store) = (lite.store().await, pg.store().await);
    let lite_answers = drive(&lite_store).await;
    let pg_answers = drive(&pg_store).await;
    assert_eq!(lite_answers, pg_answers, "the same answers");
    assert!(
        lite_answers.iter().all(|a| a.starts_with("Ok(")),
        "every batch committed: {lite_answers:#?}"
    );
    for (what, expected) in [
        ("Held {", 5),
        ("SlotFull {", 1),
        ("payment_not_paid", 1),
        ("replayed: true", 1),
        ("Enrolled {", 1),
        ("Delivered {", 1),
        ("Relocated {", 2),
        ("status: NoShow", 1),
        ("Waitlisted {", 2),
        ("SeatReleased {", 5),
    ] {
        assert_eq!(
            lite_answers.iter().filter(|a| a.contains(what)).count(),
            expected,
            "{what}: {lite_answers:#?}"
        );
    }
    let (lite_rows, pg_rows) = (tables(&lite_store).await, tables(&pg_store).await);
    let rows = |table: &str| &lite_rows.iter().find(|(t, _)| *t == table).unwrap().1;
    for (status, at_least) in [("confirmed", 1), ("released", 2), ("expired", 2)] {
        let n = rows("holds")
            .iter()
            .filter(|r| r.contains(&format!("| {status} |")))
            .count();
        assert!(n >= at_least, "{status} holds: {:#?}", rows("holds"));
    }
    assert_eq!(rows("cards").len(), 1);
    assert_eq!(
        rows("outbox").len(),
        2,
        "one notice per appointment and cause: the relocation's, the waitlist booking's"
    );
    assert_eq!(
        rows("seat_releases").len(),
        5,
        "{:#?}",
        rows("seat_releases")
    );
    assert_eq!(rows("idempotency_keys").len(), 4);
    for ((table, lite_rows), (_, pg_rows)) in lite_rows.iter().zip(&pg_rows) {
        assert!(!lite_rows.is_empty(), "{table} has rows");
        assert_eq!(
            lite_rows, pg_rows,
            "{table}: SQLite (left) and PostgreSQL (right) differ"
        );
    }
    lite_store.close().await;
    pg_store.close().await;
    pg.cleanup().await;
}
