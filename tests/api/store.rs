//! The database itself refuses what must never happen, whatever the code above it does.

use crate::helpers::{scalar, try_exec, TestDb};
use crate::on_both_backends;
use nobat::store::{events_about_sql, Store, PG_BATCH_BEGIN};

async fn fixture(store: &Store) {
    try_exec(store, "INSERT INTO services (code, name_en, name_fa, duration_minutes, office_kinds) VALUES ('first_issuance', 'First issuance', 'صدور', 15, 'pishkhan')").await.unwrap();
    try_exec(store, "INSERT INTO offices (id, name, kind, province, city, area_code, lat, lon, stations, services, calendar_json, updated_at) \
                 VALUES ('021-0001', 'Office 1', 'pishkhan', 'tehran', 'Tehran', '021', 35.7, 51.4, 2, 'first_issuance', '{}', 0)").await.unwrap();
    try_exec(store, "INSERT INTO slots (office_id, start_at, duration_minutes, capacity) VALUES ('021-0001', 1700000000, 15, 2)").await.unwrap();
    try_exec(store, "INSERT INTO applications (id, national_code, service, form_json, eligible, created_at) VALUES ('a1', '0499370899', 'first_issuance', '{}', TRUE, 0)").await.unwrap();
    try_exec(store, "INSERT INTO applications (id, national_code, service, form_json, eligible, created_at) VALUES ('a2', '0499370899', 'first_issuance', '{}', TRUE, 0)").await.unwrap();
}

/// An eligible application `app` of citizen `code` with its paid payment `pay`.
async fn paid_application(store: &Store, app: &str, code: &str, pay: &str) {
    try_exec(store, &format!("INSERT INTO applications (id, national_code, service, form_json, eligible, created_at) VALUES ('{app}', '{code}', 'first_issuance', '{{}}', TRUE, 0)")).await.unwrap();
    try_exec(store, &format!("INSERT INTO payments (id, application_id, amount_rials, status, gateway, created_at) VALUES ('{pay}', '{app}', 600000, 'paid', 'sandbox', 0)")).await.unwrap();
}

/// Another transaction, holding what a batch that takes a seat in slot 1 must lock: the slot's
/// row on PostgreSQL (as another writer or process would), the write lock on SQLite.
enum SlotBlocker {
    Lite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Pg(sqlx::PgConnection),
}

impl SlotBlocker {
    async fn hold(db: &TestDb, store: &Store) -> SlotBlocker {
        use sqlx::Connection;
        match (store, db) {
            (Store::Sqlite(pool), _) => {
                let mut c = pool.acquire().await.unwrap();
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut *c)
                    .await
                    .unwrap();
                SlotBlocker::Lite(c)
            }
            (Store::Postgres(_), TestDb::Postgres { config, .. }) => {
                let url = config.database_url.clone().unwrap();
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::query("BEGIN").execute(&mut c).await.unwrap();
                sqlx::query("SELECT taken FROM slots WHERE id = 1 FOR UPDATE")
                    .execute(&mut c)
                    .await
                    .unwrap();
                SlotBlocker::Pg(c)
            }
            _ => unreachable!("a store is on its test database's backend"),
        }
    }

    async fn release(self) {
        match self {
            SlotBlocker::Lite(mut c) => {
                sqlx::query("COMMIT").execute(&mut *c).await.unwrap();
            }
            SlotBlocker::Pg(mut c) => {
                sqlx::query("COMMIT").execute(&mut c).await.unwrap();
            }
        }
    }
}

async fn slot_capacity_is_a_check(db: &TestDb) {
    let store = db.store().await;
    fixture(&store).await;
    assert_eq!(
        try_exec(&store, "UPDATE slots SET taken = 2 WHERE id = 1")
            .await
            .unwrap(),
        1
    );
    let over = try_exec(&store, "UPDATE slots SET taken = 3 WHERE id = 1").await;
    assert!(over.is_err(), "writing a slot past capacity must fail");
    let negative = try_exec(&store, "UPDATE slots SET taken = -1 WHERE id = 1").await;
    assert!(negative.is_err(), "a negative count must fail");
    let shrink = try_exec(&store, "UPDATE slots SET capacity = 1 WHERE id = 1").await;
    assert!(
        shrink.is_err(),
        "capacity cannot drop below the seats taken"
    );
    assert_eq!(
        scalar(&store, "SELECT taken FROM slots WHERE id = 1").await,
        2
    );
    // The error maps to a constraint conflict, not a generic failure.
    let err = nobat::store::StoreError::from(over.unwrap_err());
    assert!(
        matches!(err, nobat::store::StoreError::Constraint { .. }),
        "{err:?}"
    );
}
on_both_backends!(
    writing_a_slot_past_capacity_fails,
    super::slot_capacity_is_a_check
);

async fn one_active_appointment_per_code_and_service(db: &TestDb) {
    let store = db.store().await;
    fixture(&store).await;
    let insert = |code: &str, app: &str, status: &str| {
        format!(
            "INSERT INTO appointments (tracking_code, slot_id, office_id, start_at, application_id, national_code, service, status, created_at, updated_at) \
             VALUES ('{code}', 1, '021-0001', 1700000000, '{app}', '0499370899', 'first_issuance', '{status}', 0, 0)"
        )
    };
    try_exec(&store, &insert("T1", "a1", "booked"))
        .await
        .unwrap();
    assert!(
        try_exec(&store, &insert("T2", "a2", "booked"))
            .await
            .is_err(),
        "a second active appointment must fail"
    );
    // Cancelled and past appointments do not count as active.
    try_exec(&store, &insert("T3", "a2", "cancelled"))
        .await
        .unwrap();
    try_exec(&store, &insert("T4", "a2", "enrolled"))
        .await
        .unwrap();
    try_exec(
        &store,
        "UPDATE appointments SET status = 'cancelled' WHERE tracking_code = 'T1'",
    )
    .await
    .unwrap();
    try_exec(&store, &insert("T5", "a2", "booked"))
        .await
        .unwrap();
}
on_both_backends!(
    two_active_appointments_for_one_code_and_service_fail,
    super::one_active_appointment_per_code_and_service
);

/// A hold of the fixture's citizen on its slot, written directly.
fn hold(id: &str, status: &str) -> String {
    format!(
        "INSERT INTO holds (id, slot_id, application_id, national_code, service, status, created_at, expires_at) \
         VALUES ('{id}', 1, 'a1', '0499370899', 'first_issuance', '{status}', 0, 600)"
    )
}

async fn one_live_hold_per_citizen(db: &TestDb) {
    let store = db.store().await;
    fixture(&store).await;
    try_exec(&store, &hold("h1", "live")).await.unwrap();
    assert!(try_exec(&store, &hold("h2", "live")).await.is_err());
    try_exec(&store, &hold("h3", "expired")).await.unwrap();
}
on_both_backends!(
    two_live_holds_for_one_citizen_fail,
    super::one_live_hold_per_citizen
);

async fn events_are_append_only(db: &TestDb) {
    let store = db.store().await;
    store
        .append_event(
            1,
            "system",
            "test",
            "subject-1",
            &serde_json::json!({"a": 1}),
        )
        .await
        .unwrap();
    assert!(try_exec(&store, "UPDATE events SET kind = 'forged'")
        .await
        .is_err());
    assert!(try_exec(&store, "DELETE FROM events").await.is_err());
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM events").await, 1);
}
on_both_backends!(the_event_log_refuses_edits, super::events_are_append_only);

/// What appointments and holds point at is never deleted, so no booking can lose its slot,
/// office, application or payment.
async fn booked_parents_are_never_deleted(db: &TestDb) {
    let store = db.store().await;
    fixture(&store).await;
    try_exec(&store, "INSERT INTO payments (id, application_id, amount_rials, status, gateway, created_at) VALUES ('p1', 'a1', 1, 'paid', 'sandbox', 0)").await.unwrap();
    for (table, key) in [
        ("slots", "id = 1"),
        ("offices", "id = '021-0001'"),
        ("applications", "id = 'a2'"),
        ("payments", "id = 'p1'"),
    ] {
        let sql = format!("DELETE FROM {table} WHERE {key}");
        assert!(try_exec(&store, &sql).await.is_err(), "{sql} must fail");
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {key}");
        assert_eq!(scalar(&store, &sql).await, 1, "{sql}");
    }
}
on_both_backends!(
    slots_offices_applications_and_payments_are_never_deleted,
    super::booked_parents_are_never_deleted
);

/// Applications and payments (on SQLite written by the writer thread, whose connection leaves
/// foreign keys to its callers) are refused when what they point at does not exist, and write
/// nothing; with their parents they are stored with their events, and a repeated idempotency
/// record leaves the first.
async fn applications_and_payments_need_their_parents(db: &TestDb) {
    use nobat::booking::PaymentStatus;
    use nobat::store::{
        ApplicationRecord, IdempotencyRecord, PaymentRecord, StoreError, StoredAnswer,
    };
    let store = db.store().await;
    fixture(&store).await;
    let app = |id: &str, service: &str| ApplicationRecord {
        id: id.into(),
        national_code: "0499370899".into(),
        service: service.into(),
        form_json: "{}".into(),
        eligible: true,
        created_at: 5,
    };
    let pay = |id: &str, application_id: &str| PaymentRecord {
        id: id.into(),
        application_id: application_id.into(),
        amount_rials: 600_000,
        status: PaymentStatus::Paid,
        gateway: "sandbox".into(),
        created_at: 6,
    };
    let citizen = ("ه29/289467", "1997-04-18", "tehran");
    let events = "SELECT COUNT(*) FROM events";
    let no_service = store
        .insert_application(&app("a9", "no_such_service"), citizen, None)
        .await;
    assert!(
        matches!(no_service, Err(StoreError::Constraint { .. })),
        "{no_service:?}"
    );
    let no_application = store
        .insert_payment(&pay("p9", "no_such_application"), "0499370899", None)
        .await;
    assert!(
        matches!(no_application, Err(StoreError::Constraint { .. })),
        "{no_application:?}"
    );
    assert_eq!(
        scalar(&store, "SELECT COUNT(*) FROM applications WHERE id = 'a9'").await,
        0
    );
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM payments").await, 0);
    assert_eq!(scalar(&store, events).await, 0);

    store
        .insert_application(&app("a3", "first_issuance"), citizen, None)
        .await
        .unwrap();
    store
        .insert_payment(&pay("p3", "a3"), "0499370899", None)
        .await
        .unwrap();
    assert_eq!(
        store.application("a3").await.unwrap().unwrap(),
        app("a3", "first_issuance")
    );
    assert_eq!(store.payment("p3").await.unwrap().unwrap(), pay("p3", "a3"));
    assert_eq!(scalar(&store, events).await, 2);
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM citizens WHERE national_code = '0499370899'"
        )
        .await,
        1
    );

    let record = |body: &str| IdempotencyRecord {
        scope: "0499370899".into(),
        key: "k1".into(),
        request_hash: "h".into(),
        answer: StoredAnswer::Http {
            status: 201,
            body: body.into(),
        },
    };
    store
        .put_idempotency_record(&record("first"), 7)
        .await
        .unwrap();
    store
        .put_idempotency_record(&record("second"), 8)
        .await
        .unwrap();
    assert_eq!(
        store.idempotency_record("0499370899", "k1").await.unwrap(),
        Some(record("first"))
    );
}
on_both_backends!(
    applications_and_payments_need_their_parents,
    super::applications_and_payments_need_their_parents
);

/// An answer handed to an application's or a payment's insert commits with it, or not at all:
/// a key stored first (a twin request) writes nothing, and a payment refused because the
/// application is paid leaves no answer claiming it was made.
async fn answers_commit_with_their_effect(db: &TestDb) {
    use nobat::booking::PaymentStatus;
    use nobat::store::{
        ApplicationRecord, IdempotencyRecord, Inserted, KeptAnswer, PaymentRecord, StoredAnswer,
    };
    let store = db.store().await;
    fixture(&store).await;
    let code = "0499370899";
    let app = |id: &str| ApplicationRecord {
        id: id.into(),
        national_code: code.into(),
        service: "first_issuance".into(),
        form_json: "{}".into(),
        eligible: true,
        created_at: 5,
    };
    let pay = |id: &str, status: PaymentStatus| PaymentRecord {
        id: id.into(),
        application_id: "kept-a1".into(),
        amount_rials: 600_000,
        status,
        gateway: "sandbox".into(),
        created_at: 6,
    };
    let answer = |key: &str, body: &str| KeptAnswer {
        record: IdempotencyRecord {
            scope: code.into(),
            key: key.into(),
            request_hash: format!("hash of {key}"),
            answer: StoredAnswer::Http {
                status: 201,
                body: body.into(),
            },
        },
        at_unix: 9,
    };
    let citizen = ("ه29/289467", "1997-04-18", "tehran");

    let first = answer("app-key", "first application");
    let done = store
        .insert_application(&app("kept-a1"), citizen, Some(&first))
        .await
        .unwrap();
    assert_eq!(done, Inserted::Done);
    assert_eq!(
        store.idempotency_record(code, "app-key").await.unwrap(),
        Some(first.record.clone())
    );
    let twin = answer("app-key", "a twin's application");
    let taken = store
        .insert_application(&app("kept-a2"), citizen, Some(&twin))
        .await
        .unwrap();
    assert_eq!(taken, Inserted::KeyTaken);
    let applications = "SELECT COUNT(*) FROM applications WHERE id LIKE 'kept-%'";
    let events = "SELECT COUNT(*) FROM events WHERE subject LIKE 'kept-%'";
    let rows = (
        scalar(&store, applications).await,
        scalar(&store, events).await,
    );
    assert_eq!(rows, (1, 1), "applications and events");
    assert_eq!(
        store.idempotency_record(code, "app-key").await.unwrap(),
        Some(first.record.clone()),
        "the first answer stands"
    );

    let declined = answer("declined-key", "declined");
    let done = store
        .insert_payment(
            &pay("kept-p1", PaymentStatus::Declined),
            code,
            Some(&declined),
        )
        .await
        .unwrap();
    assert_eq!(done, Inserted::Done);
    let paid = answer("paid-key", "paid");
    let done = store
        .insert_payment(&pay("kept-p2", PaymentStatus::Paid), code, Some(&paid))
        .await
        .unwrap();
    assert_eq!(done, Inserted::Done);
    // The application is paid: the third is refused, and so is its answer.
    let again = answer("again-key", "paid again");
    let refused = store
        .insert_payment(&pay("kept-p3", PaymentStatus::Paid), code, Some(&again))
        .await
        .unwrap();
    assert_eq!(
        refused,
        Inserted::AlreadyPaid(pay("kept-p2", PaymentStatus::Paid))
    );
    assert_eq!(
        store.idempotency_record(code, "again-key").await.unwrap(),
        None
    );
    // A declined payment under a key already stored: nothing is written.
    let twin = store
        .insert_payment(
            &pay("kept-p4", PaymentStatus::Declined),
            code,
            Some(&declined),
        )
        .await
        .unwrap();
    assert_eq!(twin, Inserted::KeyTaken);
    assert_eq!(store.payment("kept-p4").await.unwrap(), None);
    let payments = "SELECT COUNT(*) FROM payments WHERE application_id = 'kept-a1'";
    let answers = "SELECT COUNT(*) FROM idempotency_keys";
    let rows = (
        scalar(&store, payments).await,
        scalar(&store, events).await,
        scalar(&store, answers).await,
    );
    assert_eq!(rows, (2, 3, 3), "payments, events and answers");
}
on_both_backends!(
    answers_commit_with_their_effect,
    super::answers_commit_with_their_effect
);

async fn offices_round_trip(db: &TestDb) {
    let store = db.store().await;
    let offices = nobat::planning::scenario::Scenario::from_toml_str(
        nobat::store::seed::BUNDLED_SCENARIO,
        "small.toml",
    )
    .unwrap()
    .generate_network();
    store.upsert_offices(&offices, 0).await.unwrap();
    store.upsert_offices(&offices, 1).await.unwrap(); // idempotent
    let mut expected = offices.clone();
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    let stored = store.offices().await.unwrap();
    assert_eq!(stored.len(), expected.len());
    for (s, e) in stored.iter().zip(&expected) {
        assert_eq!(s, e, "office {} differs after the round trip", e.id);
    }
}
on_both_backends!(
    offices_round_trip_through_storage,
    super::offices_round_trip
);

async fn slots_insert_idempotently(db: &TestDb) {
    let store = db.store().await;
    fixture(&store).await;
    let slots: Vec<_> = (0..1200)
        .map(|i| ("021-0001".to_string(), 1_800_000_000 + i * 900, 15, 2))
        .collect();
    assert_eq!(store.insert_slots(&slots).await.unwrap(), 1200);
    assert_eq!(store.insert_slots(&slots).await.unwrap(), 0);
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM slots").await, 1201);
}
on_both_backends!(
    slots_insert_in_chunks_and_idempotently,
    super::slots_insert_idempotently
);

/// The booking writer opens the SQLite file on its own connection, so an in-memory database
/// (one per connection) is refused at connect time rather than failing the first booking.
#[tokio::test]
async fn in_memory_sqlite_is_refused_at_connect() {
    use nobat::store::StoreConfig;
    for config in [
        StoreConfig::url("sqlite::memory:"),
        StoreConfig::sqlite(":memory:"),
    ] {
        let err = match Store::connect(&config).await {
            Ok(_) => panic!("an in-memory SQLite database must be refused: {config:?}"),
            Err(e) => e,
        };
        assert!(
            matches!(err, nobat::store::StoreError::Config(_)),
            "{err:?}"
        );
    }
}

/// A batch of hundreds of requests writes every row it decided, on both backends: the SQLite
/// writer splits such a batch into multi-row statements of up to 128 rows (and smaller
/// powers of two), so 300 holds and 300 confirmations over 150 slots cross every chunk size.
async fn large_batches_write_every_row(db: &TestDb) {
    use nobat::booking::{Confirm, Hold, Outcome, Request};
    use nobat::reserve::{EngineConfig, IdSource, Reservations, SeededIds};
    use std::sync::Arc;

    const PEOPLE: usize = 300;
    let store = db.store().await;
    fixture(&store).await;
    // 150 slots of two seats: a batch changes the seats of many slots at once.
    const SLOTS: usize = 150;
    for k in 1..SLOTS {
        try_exec(&store, &format!("INSERT INTO slots (office_id, start_at, duration_minutes, capacity) VALUES ('021-0001', {}, 15, 2)", 1_700_000_000 + k * 900)).await.unwrap();
    }
    for i in 0..PEOPLE {
        paid_application(
            &store,
            &format!("big_{i}"),
            &format!("c{i:09}"),
            &format!("pay_{i}"),
        )
        .await;
    }
    let ids: Arc<dyn IdSource> = Arc::new(SeededIds::new(7));
    let engine = Reservations::start(
        store.clone(),
        crate::helpers::test_clock(),
        ids,
        EngineConfig::default(),
    )
    .await
    .unwrap();
    // Every request is queued before the writers take any, so batches run to hundreds.
    let submit_all = |requests: Vec<Request>| {
        let engine = engine.clone();
        async move {
            let pending: Vec<_> = requests
                .into_iter()
                .map(|r| {
                    let engine = engine.clone();
                    tokio::spawn(async move { engine.submit(r).await.unwrap().outcome })
                })
                .collect();
            let mut outcomes = Vec::new();
            for p in pending {
                outcomes.push(p.await.unwrap());
            }
            outcomes
        }
    };
    let hold_ids: Vec<String> = (0..PEOPLE).map(|_| engine.ids().opaque("hold")).collect();
    let holds = (0..PEOPLE)
        .map(|i| {
            Request::Hold(Hold {
                national_code: format!("c{i:09}"),
                application_id: format!("big_{i}").into(),
                service: "first_issuance".into(),
                slot_id: 1 + (i % SLOTS) as i64,
                hold_id: hold_ids[i].clone().into(),
                expires_at: i64::MAX,
            })
        })
        .collect();
    for outcome in submit_all(holds).await {
        assert!(matches!(outcome, Outcome::Held { .. }), "{outcome:?}");
    }
    let confirms = (0..PEOPLE)
        .map(|i| {
            Request::Confirm(Confirm {
                national_code: format!("c{i:09}"),
                hold_id: hold_ids[i].clone().into(),
                payment_id: format!("pay_{i}").into(),
                tracking_code: engine.ids().tracking_code().into(),
            })
        })
        .collect();
    for outcome in submit_all(confirms).await {
        assert!(matches!(outcome, Outcome::Booked { .. }), "{outcome:?}");
    }
    let n = PEOPLE as i64;
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM holds WHERE status = 'confirmed'"
        )
        .await,
        n
    );
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM holds").await, n);
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM appointments WHERE status = 'booked'"
        )
        .await,
        n
    );
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(DISTINCT national_code) FROM appointments"
        )
        .await,
        n
    );
    assert_eq!(
        scalar(&store, "SELECT COUNT(*) FROM slots WHERE taken = 2").await,
        SLOTS as i64
    );
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM events WHERE kind = 'hold_created'"
        )
        .await,
        n
    );
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM events").await, 2 * n);
}
on_both_backends!(
    large_batches_write_every_row,
    super::large_batches_write_every_row
);

/// Every status column takes exactly its listed values, on both backends. On SQLite the CHECKs
/// of the tables each booking writes are OR chains, not IN lists (migration 0004: an IN list
/// in a CHECK builds a temporary b-tree per row written).
async fn status_checks_refuse_unknown_values(db: &TestDb) {
    let store = db.store().await;
    fixture(&store).await;
    for (i, status) in ["live", "confirmed", "released", "expired"]
        .iter()
        .enumerate()
    {
        try_exec(&store, &hold(&format!("h{i}"), status))
            .await
            .unwrap();
    }
    for bad in ["bogus", "LIVE", ""] {
        assert!(try_exec(&store, &hold("hx", bad)).await.is_err(), "{bad:?}");
    }
    assert!(
        try_exec(&store, "UPDATE holds SET status = 'bogus' WHERE id = 'h1'")
            .await
            .is_err()
    );
    let appointment = |code: &str, status: &str| {
        format!("INSERT INTO appointments (tracking_code, slot_id, office_id, start_at, application_id, national_code, service, status, created_at, updated_at) \
                 VALUES ('{code}', 1, '021-0001', 1700000000, 'a1', '0499370899', 'first_issuance', '{status}', 0, 0)")
    };
    let statuses = [
        "booked",
        "checked_in",
        "enrolled",
        "no_show",
        "cancelled",
        "rescheduled",
        "card_ready",
        "delivered",
    ];
    for (i, status) in statuses.iter().enumerate() {
        // One active appointment per citizen and service: end the previous active one first.
        try_exec(
            &store,
            "UPDATE appointments SET status = 'cancelled' WHERE status IN ('booked', 'checked_in')",
        )
        .await
        .unwrap();
        try_exec(&store, &appointment(&format!("T{i}"), status))
            .await
            .unwrap();
    }
    assert!(try_exec(&store, &appointment("TX", "lost")).await.is_err());
    let payment = |id: &str, status: &str| {
        format!(
            "INSERT INTO payments (id, application_id, amount_rials, status, gateway, created_at) \
                 VALUES ('{id}', 'a1', 600000, '{status}', 'sandbox', 0)"
        )
    };
    for (i, status) in ["pending", "paid", "declined"].iter().enumerate() {
        try_exec(&store, &payment(&format!("p{i}"), status))
            .await
            .unwrap();
    }
    assert!(try_exec(&store, &payment("px", "refunded")).await.is_err());
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM holds").await, 4);
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM appointments").await, 8);
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM payments").await, 3);
    if matches!(store, Store::Sqlite(_)) {
        assert_eq!(
            scalar(
                &store,
                "SELECT COUNT(*) FROM sqlite_schema WHERE name IN ('holds', 'appointments', 'payments') \
                 AND instr(sql, 'status IN') = 0 AND instr(sql, 'CHECK (status = ') > 0"
            )
            .await,
            3
        );
    }
}
on_both_backends!(
    status_checks_refuse_unknown_values,
    super::status_checks_refuse_unknown_values
);

/// PostgreSQL compares the booking path's identifier columns byte by byte (migration 0004:
/// strcoll was about 13% of PostgreSQL's CPU per booking); joins and foreign keys between them
/// and the columns left at the default collation still hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_compare_bytewise_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = db.store().await;
    let Store::Postgres(pool) = &store else {
        unreachable!("TestDb::postgres gives a PostgreSQL store")
    };
    let bytewise: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND collation_name = 'C' ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let expected = [
        ("applications", "id"),
        ("appointments", "national_code"),
        ("appointments", "office_id"),
        ("appointments", "service"),
        ("appointments", "tracking_code"),
        ("ballot_entries", "application_id"),
        ("ballot_entries", "ballot_id"),
        ("ballot_entries", "entry_key"),
        ("ballot_entries", "national_code"),
        ("ballot_entries", "office_id"),
        ("ballot_entries", "payment_id"),
        ("ballot_entries", "tracking_code"),
        ("ballot_seats", "ballot_id"),
        ("ballot_seats", "office_id"),
        ("ballots", "id"),
        ("ballots", "service"),
        ("events", "actor"),
        ("events", "subject"),
        ("holds", "id"),
        ("holds", "national_code"),
        ("idempotency_keys", "key"),
        ("idempotency_keys", "scope"),
        ("login_failures", "key"),
        ("payments", "duplicate_of"),
        ("payments", "id"),
        ("release_waves", "id"),
        ("release_waves", "service"),
        ("room_pass_uses", "national_code"),
        ("room_pass_uses", "room_id"),
        ("room_tickets", "national_code"),
        ("room_tickets", "room_id"),
        ("room_tickets", "ticket"),
        ("seat_releases", "freed_by"),
        ("slots", "ballot_id"),
        ("slots", "opens_for"),
        ("waiting_rooms", "id"),
        ("waiting_rooms", "service"),
        ("waitlist_entries", "application_id"),
        ("waitlist_entries", "id"),
        ("waitlist_entries", "national_code"),
        ("waitlist_entries", "offer_hold_id"),
        ("waitlist_entries", "payment_id"),
        ("waitlist_entries", "service"),
        ("waitlist_entries", "tracking_code"),
        ("waitlist_offices", "entry_id"),
        ("waitlist_offices", "office_id"),
    ];
    let bytewise: Vec<(&str, &str)> = bytewise
        .iter()
        .map(|(t, c)| (t.as_str(), c.as_str()))
        .collect();
    assert_eq!(bytewise, expected);
    // payments.application_id (default collation) still references applications.id ("C").
    fixture(&store).await;
    try_exec(&store, "INSERT INTO payments (id, application_id, amount_rials, status, gateway, created_at) VALUES ('p1', 'a1', 600000, 'paid', 'sandbox', 0)").await.unwrap();
    assert!(try_exec(&store, "INSERT INTO payments (id, application_id, amount_rials, status, gateway, created_at) VALUES ('p2', 'nobody', 600000, 'paid', 'sandbox', 0)").await.is_err());
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM payments p JOIN applications a ON a.id = p.application_id"
        )
        .await,
        1
    );
    db.cleanup().await;
}

/// On PostgreSQL a batch locks a slot only where it may change the slot's seat count: a live
/// hold's confirmation moves its seat to the appointment and reads the slot without a lock,
/// so another writer holding the slot does not hold it up. A release, and the confirmation of
/// an expired hold (which frees its seat), still wait for the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirming_a_live_hold_does_not_lock_its_slot_on_postgres() {
    use nobat::booking::{Confirm, Hold, Outcome, Refusal, Release, Request};
    use nobat::reserve::{EngineConfig, IdSource, Reservations, SeededIds};
    use std::sync::Arc;
    use std::time::Duration;

    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = db.store().await;
    fixture(&store).await;
    try_exec(&store, "UPDATE slots SET capacity = 3 WHERE id = 1")
        .await
        .unwrap();
    for p in ["a", "b", "c"] {
        paid_application(
            &store,
            &format!("lock_{p}"),
            &format!("code_{p}"),
            &format!("pay_{p}"),
        )
        .await;
    }
    let clock = crate::helpers::test_clock();
    let now = nobat::domain::time::Clock::now(clock.as_ref()).timestamp();
    let ids: Arc<dyn IdSource> = Arc::new(SeededIds::new(11));
    let engine = Reservations::start(store.clone(), clock.clone(), ids, EngineConfig::default())
        .await
        .unwrap();
    let mut hold_ids = Vec::new();
    for (p, ttl) in [("a", 600), ("b", 600), ("c", 60)] {
        let hold_id = engine.ids().opaque("hold");
        let held = engine
            .submit(Request::Hold(Hold {
                national_code: format!("code_{p}"),
                application_id: format!("lock_{p}").into(),
                service: "first_issuance".into(),
                slot_id: 1,
                hold_id: hold_id.clone().into(),
                expires_at: now + ttl,
            }))
            .await
            .unwrap();
        assert!(
            matches!(held.outcome, Outcome::Held { .. }),
            "{:?}",
            held.outcome
        );
        hold_ids.push(hold_id);
    }
    let confirm = |p: &str, hold_id: &str| {
        Request::Confirm(Confirm {
            national_code: format!("code_{p}"),
            hold_id: hold_id.into(),
            payment_id: format!("pay_{p}").into(),
            tracking_code: engine.ids().tracking_code().into(),
        })
    };

    // Another transaction (another writer, another process) holds the slot's row lock.
    let blocker = SlotBlocker::hold(&db, &store).await;

    let booked = tokio::time::timeout(
        Duration::from_secs(10),
        engine.submit(confirm("a", &hold_ids[0])),
    )
    .await
    .expect("a live hold's confirmation does not wait for the slot's lock")
    .unwrap();
    assert!(
        matches!(booked.outcome, Outcome::Booked { .. }),
        "{:?}",
        booked.outcome
    );

    clock.advance(chrono::Duration::seconds(120));
    let expired = tokio::spawn({
        let engine = engine.clone();
        let request = confirm("c", &hold_ids[2]);
        async move { engine.submit(request).await }
    });
    // The confirmation's batch runs first, so no other batch sweeps the expired hold.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let release = tokio::spawn({
        let engine = engine.clone();
        let hold_id = hold_ids[1].clone();
        async move {
            engine
                .submit(Request::Release(Release {
                    national_code: "code_b".into(),
                    hold_id: hold_id.into(),
                    closing: false,
                }))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !release.is_finished(),
        "a release frees a seat: it waits for the slot's lock"
    );
    assert!(
        !expired.is_finished(),
        "an expired hold frees its seat: it waits for the lock"
    );
    blocker.release().await;

    let released = release.await.unwrap().unwrap();
    assert!(
        matches!(released.outcome, Outcome::Released { .. }),
        "{:?}",
        released.outcome
    );
    let refused = expired.await.unwrap().unwrap();
    assert!(
        matches!(refused.outcome, Outcome::Refused(Refusal::HoldExpired)),
        "{:?}",
        refused.outcome
    );
    assert_eq!(
        scalar(&store, "SELECT taken FROM slots WHERE id = 1").await,
        1
    );
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM appointments WHERE status = 'booked'"
        )
        .await,
        1
    );
    db.cleanup().await;
}

/// The writers' queues share one bound: while the writers are stuck (another transaction holds
/// the lock their batch needs), `queue_bound` requests wait, in whichever queue (here all in
/// one, a hot slot's), and every request beyond is refused at once, writing nothing.
async fn a_full_queue_refuses_at_once(db: &TestDb) {
    use nobat::booking::{Hold, Outcome, Request};
    use nobat::reserve::{EngineConfig, IdSource, Reservations, ReserveError, SeededIds};
    use std::sync::Arc;
    use std::time::Duration;

    const CITIZENS: usize = 40;
    const QUEUE_BOUND: usize = 8;
    let store = db.store().await;
    fixture(&store).await;
    try_exec(&store, "UPDATE slots SET capacity = 100 WHERE id = 1")
        .await
        .unwrap();
    for i in 0..CITIZENS {
        paid_application(
            &store,
            &format!("full_{i}"),
            &format!("code_{i:02}"),
            &format!("pay_{i}"),
        )
        .await;
    }
    let clock = crate::helpers::test_clock();
    let now = nobat::domain::time::Clock::now(clock.as_ref()).timestamp();
    let ids: Arc<dyn IdSource> = Arc::new(SeededIds::new(12));
    let config = EngineConfig {
        queue_bound: QUEUE_BOUND,
        batch_max: 1,
        ..EngineConfig::default()
    };
    let writers = config.writers;
    let engine = Reservations::start(store.clone(), clock, ids, config)
        .await
        .unwrap();

    // Another transaction holds what a hold's batch must lock.
    let blocker = SlotBlocker::hold(db, &store).await;

    let submissions: Vec<_> = (0..CITIZENS)
        .map(|i| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let request = Request::Hold(Hold {
                    national_code: format!("code_{i:02}"),
                    application_id: format!("full_{i}").into(),
                    service: "first_issuance".into(),
                    slot_id: 1,
                    hold_id: engine.ids().opaque("hold").into(),
                    expires_at: now + 600,
                });
                engine.submit(request).await
            })
        })
        .collect();
    // Refusals come at once, while the admitted wait for the lock.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused_at_once = submissions.iter().filter(|s| s.is_finished()).count();
    blocker.release().await;
    let (mut held, mut overloaded) = (0, 0);
    for s in submissions {
        match s.await.unwrap() {
            Ok(answer) => {
                assert!(
                    matches!(answer.outcome, Outcome::Held { .. }),
                    "{:?}",
                    answer.outcome
                );
                held += 1;
            }
            Err(ReserveError::Overloaded) => overloaded += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    // Admitted: the waiting ones, plus what the stuck writers took into their batches (one
    // request each).
    assert!(
        (QUEUE_BOUND..=QUEUE_BOUND + writers).contains(&held),
        "held {held} of {CITIZENS} with a queue bound of {QUEUE_BOUND}"
    );
    assert_eq!(held + overloaded, CITIZENS);
    assert_eq!(
        refused_at_once, overloaded,
        "every refusal came before the lock was let go, none after"
    );
    assert_eq!(
        scalar(&store, "SELECT COUNT(*) FROM holds").await,
        held as i64
    );
    assert_eq!(
        scalar(&store, "SELECT taken FROM slots WHERE id = 1").await,
        held as i64
    );
}
on_both_backends!(
    a_full_booking_queue_refuses_at_once,
    super::a_full_queue_refuses_at_once
);

/// Runs `EXPLAIN (ANALYZE, BUFFERS) EXECUTE {execute}` (a statement prepared on `conn`) and
/// asserts that the plan reads through `index`, returns `rows` rows and touches at most a
/// dozen buffer pages.
pub async fn assert_reads_through(
    conn: &mut sqlx::PgConnection,
    execute: &str,
    index: &str,
    rows: i64,
) {
    let plan: serde_json::Value = sqlx::query_scalar(&format!(
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {execute}"
    ))
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    let top = &plan[0]["Plan"];
    let pages =
        top["Shared Hit Blocks"].as_i64().unwrap() + top["Shared Read Blocks"].as_i64().unwrap();
    assert_eq!(top["Actual Rows"], rows, "{execute}: {plan:#}");
    assert!(
        plan.to_string().contains(index) && pages <= 12,
        "{execute} read {pages} pages: {plan:#}"
    );
}

/// Asserts that SQLite's plan for `query` uses `index`.
pub async fn assert_sqlite_plan_uses(pool: &sqlx::SqlitePool, query: &str, index: &str) {
    let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {query}"))
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|row| sqlx::Row::get::<String, _>(row, 3))
        .collect();
    assert!(
        plan.iter().any(|step| step.contains(index)),
        "{query}: {plan:?}"
    );
}

/// The writer's keyed statements read a few pages whatever the tables hold, also on a pooled
/// connection that cached its plans while the tables were empty (PostgreSQL keeps one generic
/// plan per prepared statement and replans only when a table is analyzed). Two ways this went
/// wrong on PostgreSQL: the sweeper's partial index on `expires_at` matched the lookup of
/// citizens' live holds, and a plan made on an empty table read every live hold (and every
/// index entry of a hold that was once live) in each batch: migration 0005; and the
/// confirmation's `UPDATE holds … FROM UNNEST` hash-joined a sequential scan of the whole
/// table: `PG_BATCH_BEGIN`.
async fn the_writers_lookups_stay_on_their_indexes(db: &TestDb) {
    let store = db.store().await;
    fixture(&store).await;
    try_exec(&store, &hold("h1", "live")).await.unwrap();
    // Four thousand other live holds (a recursive CTE: both backends have it).
    let others = "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 4000) \
                  INSERT INTO holds (id, slot_id, application_id, national_code, service, status, created_at, expires_at) \
                  SELECT 'other_' || n, 1, 'a2', 'c' || n, 'first_issuance', 'live', 0, 600 + n FROM s";
    match &store {
        Store::Postgres(pool) => {
            // Inside a batch's transaction, with plans cached while the tables were empty.
            let mut tx = pool.begin_with(PG_BATCH_BEGIN).await.unwrap();
            for sql in [
                "SET LOCAL plan_cache_mode = force_generic_plan",
                "PREPARE citizen_holds(text[]) AS SELECT id, slot_id, application_id, national_code, service, status, created_at, expires_at \
                 FROM holds WHERE national_code = ANY($1) AND status = 'live'",
                "PREPARE hold_status(text[], text[]) AS UPDATE holds SET status = u.status \
                 FROM UNNEST($1::text[], $2::text[]) AS u(id, status) WHERE holds.id = u.id",
                "PREPARE due_holds(bigint, bigint) AS SELECT id FROM holds \
                 WHERE status = 'live' AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
                "EXECUTE citizen_holds('{0499370899}')",
                "EXECUTE hold_status('{nobody}', '{released}')",
                "EXECUTE due_holds(0, 1)",
                others,
            ] {
                sqlx::raw_sql(sql).execute(&mut *tx).await.unwrap();
            }
            for (execute, index, rows) in [
                (
                    "citizen_holds('{0499370899}')",
                    "holds_one_live_per_citizen",
                    1,
                ),
                ("hold_status('{other_17}', '{released}')", "holds_pkey", 0),
                ("due_holds(700, 100)", "holds_live_expiry", 100),
            ] {
                assert_reads_through(&mut tx, execute, index, rows).await;
            }
            // Not DEALLOCATE ALL: the pooled connection keeps sqlx's own prepared statements.
            // (DEALLOCATE is not transactional: it takes effect inside the transaction.)
            sqlx::raw_sql("DEALLOCATE citizen_holds; DEALLOCATE hold_status; DEALLOCATE due_holds")
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.rollback().await.unwrap();
        }
        Store::Sqlite(pool) => {
            // SQLite plans a statement when it is prepared, from the indexes alone (nobat
            // gathers no statistics): the equality on `national_code` picks the citizen index.
            try_exec(&store, others).await.unwrap();
            for (query, index) in [
                (
                    "SELECT id, slot_id, application_id, national_code, service, status, created_at, expires_at \
                     FROM holds WHERE national_code = '0499370899' AND status = 'live'",
                    "holds_one_live_per_citizen",
                ),
                (
                    "SELECT id FROM holds WHERE status = 'live' AND expires_at <= 700 ORDER BY expires_at LIMIT 100",
                    "holds_live_expiry",
                ),
            ] {
                assert_sqlite_plan_uses(pool, query, index).await;
            }
        }
    }
}

on_both_backends!(
    writer_lookups_use_indexes,
    super::the_writers_lookups_stay_on_their_indexes
);

/// A citizen's status history is read through `events_subject` whatever the log holds, also on
/// a pooled PostgreSQL connection whose plan was cached while the log was empty: ordered by
/// the bare `id`, that plan walked the primary key through the whole log.
async fn status_history_is_read_by_subject(db: &TestDb) {
    let store = db.store().await;
    let sql = events_about_sql(2);
    let log = "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 20000) \
               INSERT INTO events (at, actor, kind, subject, payload_json) \
               SELECT n, 'system', 'hold_created', 'hold_' || n, '{}' FROM s";
    match &store {
        Store::Postgres(pool) => {
            let mut conn = pool.acquire().await.unwrap();
            for statement in [
                "SET plan_cache_mode = force_generic_plan".to_string(),
                format!("PREPARE history(bigint, text, text) AS {sql}"),
                "EXECUTE history(100, 'hold_5', 'hold_7')".to_string(),
                log.to_string(),
            ] {
                sqlx::raw_sql(&statement).execute(&mut *conn).await.unwrap();
            }
            assert_reads_through(
                &mut conn,
                "history(100, 'hold_5', 'hold_7')",
                "events_subject",
                2,
            )
            .await;
            sqlx::raw_sql("DEALLOCATE history; RESET plan_cache_mode")
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        Store::Sqlite(pool) => {
            try_exec(&store, log).await.unwrap();
            let query = sql
                .replace("$1", "100")
                .replace("$2", "'hold_5'")
                .replace("$3", "'hold_7'");
            assert_sqlite_plan_uses(pool, &query, "events_subject").await;
        }
    }
    // And the store's own call returns both events, oldest first.
    let events = store
        .events_about(&["hold_7".to_string(), "hold_5".to_string()], 100)
        .await
        .unwrap();
    let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, ["hold_5", "hold_7"]);
}

on_both_backends!(
    status_history_uses_its_index,
    super::status_history_is_read_by_subject
);
