//! The waitlist for freed seats and the anti-trading release, on both backends: who gets a
//! freed seat (earliest joined whose limits fit), offers accepted, declined and expired,
//! auto-accept inside the freeing transaction, the release delay with the injected clock, one
//! entry per citizen and service, and bad input.

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::applicant::{eligible_citizens, nearest_offices, Ready};
use crate::helpers::{exec, scalar, test_clock, TestApp, TestDb};
use crate::on_both_backends;
use crate::races::assert_seats_consistent;
use nobat::domain::time::Clock;

/// A morning slot of `office_id` on Monday 2 Mehr 1403 (the day after the test clock's) with a
/// free seat: its start as the API writes it.
async fn tomorrow_morning(app: &TestApp, office_id: &str) -> String {
    let (status, slots) = app
        .get(
            None,
            &format!("/v1/offices/{office_id}/slots?from=2024-09-23&to=2024-09-23"),
        )
        .await;
    assert_eq!(status, 200, "{slots}");
    slots
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            let start = s["start"].as_str().unwrap();
            s["free"].as_i64().unwrap() > 0 && start[11..13].parse::<u32>().unwrap() < 12
        })
        .expect("a free morning slot")["start"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn book(app: &TestApp, who: &Ready, office_id: &str, start: &str) -> (u16, Value) {
    app.post(
        Some(&who.token),
        "/v1/appointments",
        &json!({ "application_id": who.application_id, "office_id": office_id, "start": start, "payment_id": who.payment_id }),
    )
    .await
}

fn join_body(who: &Ready, office_id: &str, auto_accept: bool, part_of_day: &str) -> Value {
    json!({
        "application_id": who.application_id,
        "payment_id": who.payment_id,
        "pick": { "office_ids": [office_id], "part_of_day": part_of_day },
        "auto_accept": auto_accept,
    })
}

async fn join(app: &TestApp, who: &Ready, office_id: &str, auto_accept: bool) -> Value {
    let (status, entry) = app
        .post(
            Some(&who.token),
            "/v1/waitlist",
            &join_body(who, office_id, auto_accept, "any"),
        )
        .await;
    assert_eq!(status, 201, "{entry}");
    assert_eq!(entry["status"], "waiting");
    entry
}

/// The applicant's newest waitlist entry.
async fn entry(app: &TestApp, who: &Ready) -> Value {
    let (status, list) = app.get(Some(&who.token), "/v1/waitlist").await;
    assert_eq!(status, 200, "{list}");
    list[0].clone()
}

async fn cancel(app: &TestApp, who: &Ready, code: &str) -> Value {
    let (status, body) = app
        .post(
            Some(&who.token),
            &format!("/v1/appointments/{code}/cancel"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn ready_all(app: &TestApp, n: usize) -> Vec<Ready> {
    let mut out = Vec::new();
    for c in eligible_citizens(0, n) {
        out.push(app.ready(&c).await);
    }
    out
}

async fn taken(app: &TestApp, code: &str) -> i64 {
    scalar(
        &app.store,
        &format!("SELECT s.taken FROM slots s JOIN appointments a ON a.slot_id = s.id WHERE a.tracking_code = '{code}'"),
    )
    .await
}

async fn auto_accept_books_in_the_cancelling_transaction(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let people = ready_all(&app, 2).await;
    let (a, b) = (&people[0], &people[1]);
    let office_id = nearest_offices(&app, &a.citizen).await[0]["office_id"]
        .as_str()
        .unwrap()
        .to_string();
    let start = tomorrow_morning(&app, &office_id).await;
    let (status, appt) = book(&app, a, &office_id, &start).await;
    assert_eq!(status, 201, "{appt}");
    let a_code = appt["tracking_code"].as_str().unwrap().to_string();
    let taken_before = taken(&app, &a_code).await;

    let joined = join(&app, b, &office_id, true).await;
    assert_eq!(joined["position"], 1);
    assert_eq!(joined["position_office_id"], office_id.as_str());
    // The same join again is the same entry; another one is refused.
    let (status, again) = app
        .post(
            Some(&b.token),
            "/v1/waitlist",
            &join_body(b, &office_id, true, "any"),
        )
        .await;
    assert_eq!((status, &again["entry_id"]), (200, &joined["entry_id"]));
    let (status, other) = app
        .post(
            Some(&b.token),
            "/v1/waitlist",
            &join_body(b, &office_id, false, "any"),
        )
        .await;
    assert_eq!(
        (status, other["code"].as_str()),
        (409, Some("already_waiting"))
    );

    cancel(&app, a, &a_code).await;
    let e = entry(&app, b).await;
    assert_eq!(e["status"], "booked", "{e}");
    let b_code = e["tracking_code"].as_str().unwrap();
    let (status, b_appt) = app
        .get(Some(&b.token), &format!("/v1/appointments/{b_code}"))
        .await;
    assert_eq!(status, 200, "{b_appt}");
    assert_eq!(
        (b_appt["start"].as_str(), b_appt["status"].as_str()),
        (Some(start.as_str()), Some("booked"))
    );
    // One commit: the waiter's appointment was made at the cancellation's time, the seat never
    // left the slot, and no release was left pending.
    assert_eq!(
        scalar(&app.store, &format!("SELECT COUNT(*) FROM appointments a JOIN appointments b ON a.updated_at = b.created_at WHERE a.tracking_code = '{a_code}' AND b.tracking_code = '{b_code}'")).await,
        1
    );
    assert_eq!(taken(&app, b_code).await, taken_before);
    assert_eq!(
        scalar(&app.store, "SELECT COUNT(*) FROM seat_releases").await,
        0
    );
    assert_eq!(
        scalar(&app.store, &format!("SELECT COUNT(*) FROM outbox WHERE tracking_code = '{b_code}' AND notice_key = 'waitlist_booked'")).await,
        1
    );
    assert_eq!(
        scalar(&app.store, "SELECT COUNT(*) FROM waitlist_offices").await,
        0,
        "a booked entry leaves the office index"
    );
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}
on_both_backends!(
    auto_accept_books_inside_the_cancellation,
    super::auto_accept_books_in_the_cancelling_transaction
);

async fn offers_go_in_join_order(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let mut people = ready_all(&app, 4).await;
    let (a, b, c, d) = (&people[0], &people[1], &people[2], &people[3]);
    let office_id = nearest_offices(&app, &a.citizen).await[0]["office_id"]
        .as_str()
        .unwrap()
        .to_string();
    let start = tomorrow_morning(&app, &office_id).await;
    let (status, appt) = book(&app, a, &office_id, &start).await;
    assert_eq!(status, 201, "{appt}");
    let a_code = appt["tracking_code"].as_str().unwrap().to_string();

    // D joins first but only for afternoons; then B, then C.
    let (status, d_entry) = app
        .post(
            Some(&d.token),
            "/v1/waitlist",
            &join_body(d, &office_id, false, "afternoon"),
        )
        .await;
    assert_eq!(status, 201, "{d_entry}");
    app.clock.advance(chrono::Duration::seconds(1));
    join(&app, b, &office_id, false).await;
    app.clock.advance(chrono::Duration::seconds(1));
    let c_joined = join(&app, c, &office_id, false).await;
    assert_eq!(c_joined["position"], 3);

    cancel(&app, a, &a_code).await;
    assert_eq!(
        entry(&app, d).await["status"],
        "waiting",
        "limits respected"
    );
    let b_entry = entry(&app, b).await;
    assert_eq!(b_entry["status"], "offered", "{b_entry}");
    assert_eq!(b_entry["offer"]["start"], start.as_str());
    assert_eq!(entry(&app, c).await["status"], "waiting");
    let b_offer = b_entry["offer"]["offer_id"].as_str().unwrap().to_string();
    assert_eq!(
        scalar(&app.store, &format!("SELECT COUNT(*) FROM outbox WHERE tracking_code = '{b_offer}' AND notice_key = 'waitlist_offer'")).await,
        1,
        "a Persian notice per offer"
    );
    assert_seats_consistent(&app.store).await;

    // Someone else cannot accept B's offer.
    let (status, body) = app
        .post(
            Some(&c.token),
            &format!("/v1/waitlist/offers/{b_offer}/accept"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("offer_not_found"))
    );

    // B declines: the seat goes to C, B waits again.
    let (status, body) = app
        .post(
            Some(&b.token),
            &format!("/v1/waitlist/offers/{b_offer}/decline"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("waiting")),
        "{body}"
    );
    let c_entry = entry(&app, c).await;
    assert_eq!(c_entry["status"], "offered", "{c_entry}");
    let c_offer = c_entry["offer"]["offer_id"].as_str().unwrap().to_string();
    assert_seats_consistent(&app.store).await;

    // C lets the offer expire: it moves on to the next waiter (B), C's entry lapses.
    app.clock.advance(chrono::Duration::minutes(121));
    assert_eq!(app.state.engine.sweep_expired().await.unwrap(), 1);
    // Sessions do not last two hours: log in again.
    for p in &mut people {
        p.token = app.login(&p.citizen).await;
    }
    let (b, c, d) = (&people[1], &people[2], &people[3]);
    assert_eq!(entry(&app, c).await["status"], "lapsed");
    let b_entry = entry(&app, b).await;
    assert_eq!(b_entry["status"], "offered", "{b_entry}");
    let (status, body) = app
        .post(
            Some(&c.token),
            &format!("/v1/waitlist/offers/{c_offer}/accept"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 404, "an expired offer is gone: {body}");

    // B accepts this one.
    let b_offer = b_entry["offer"]["offer_id"].as_str().unwrap();
    let (status, appt) = app
        .post(
            Some(&b.token),
            &format!("/v1/waitlist/offers/{b_offer}/accept"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 201, "{appt}");
    assert_eq!(appt["start"], start.as_str());
    let b_entry = entry(&app, b).await;
    assert_eq!(
        (
            b_entry["status"].as_str(),
            b_entry["tracking_code"].as_str()
        ),
        (Some("booked"), appt["tracking_code"].as_str())
    );
    assert_seats_consistent(&app.store).await;

    // D leaves.
    let d_id = d_entry["entry_id"].as_str().unwrap();
    let (status, left) = app
        .client
        .delete(app.url(&format!("/v1/waitlist/{d_id}")))
        .bearer_auth(&d.token)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map(|s| (s, ()))
        .unwrap();
    assert_eq!((status, left), (200, ()));
    assert_eq!(entry(&app, d).await["status"], "left");
    app.stop().await;
}
on_both_backends!(
    offers_go_to_the_earliest_fitting_waiter,
    super::offers_go_in_join_order
);

async fn release_delay(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let people = ready_all(&app, 2).await;
    let (a, b) = (&people[0], &people[1]);
    let office_id = nearest_offices(&app, &a.citizen).await[0]["office_id"]
        .as_str()
        .unwrap()
        .to_string();
    let start = tomorrow_morning(&app, &office_id).await;
    let (status, appt) = book(&app, a, &office_id, &start).await;
    assert_eq!(status, 201, "{appt}");
    let a_code = appt["tracking_code"].as_str().unwrap().to_string();
    // The slot is made full with A's seat.
    exec(&app.store, &format!("UPDATE slots SET capacity = taken WHERE id = (SELECT slot_id FROM appointments WHERE tracking_code = '{a_code}')")).await;

    let now = app.clock.now().timestamp();
    cancel(&app, a, &a_code).await;
    let release_at = scalar(
        &app.store,
        "SELECT release_at FROM seat_releases WHERE status = 'pending'",
    )
    .await;
    assert!(
        (now + 300..=now + 1800).contains(&release_at),
        "{release_at} - {now}"
    );
    assert_seats_consistent(&app.store).await;
    let (status, body) = book(&app, b, &office_id, &start).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("slot_full")),
        "{body}"
    );
    assert_eq!(
        app.state.engine.sweep_releases().await.unwrap(),
        0,
        "not yet due"
    );

    app.clock.advance(chrono::Duration::minutes(31));
    assert_eq!(app.state.engine.sweep_releases().await.unwrap(), 1);
    assert_seats_consistent(&app.store).await;
    let (status, body) = book(&app, b, &office_id, &start).await;
    assert_eq!(status, 201, "bookable once released: {body}");
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}
on_both_backends!(
    a_cancelled_seat_returns_after_the_release_delay,
    super::release_delay
);

async fn no_release_delay(db: &TestDb) {
    let app = TestApp::spawn_with(db, test_clock(), |s| {
        s.engine.release_delay_min = std::time::Duration::ZERO;
        s.engine.release_delay_max = std::time::Duration::ZERO;
    })
    .await;
    let people = ready_all(&app, 2).await;
    let (a, b) = (&people[0], &people[1]);
    let office_id = nearest_offices(&app, &a.citizen).await[0]["office_id"]
        .as_str()
        .unwrap()
        .to_string();
    let start = tomorrow_morning(&app, &office_id).await;
    let (_, appt) = book(&app, a, &office_id, &start).await;
    let a_code = appt["tracking_code"].as_str().unwrap().to_string();
    exec(&app.store, &format!("UPDATE slots SET capacity = taken WHERE id = (SELECT slot_id FROM appointments WHERE tracking_code = '{a_code}')")).await;
    cancel(&app, a, &a_code).await;
    let (status, body) = book(&app, b, &office_id, &start).await;
    assert_eq!(status, 201, "a delay of 0 frees at once: {body}");
    assert_eq!(
        scalar(&app.store, "SELECT COUNT(*) FROM seat_releases").await,
        0
    );
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}
on_both_backends!(
    a_release_delay_of_zero_frees_at_once,
    super::no_release_delay
);

async fn one_entry_per_citizen(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let people = ready_all(&app, 1).await;
    let a = &people[0];
    let office_id = nearest_offices(&app, &a.citizen).await[0]["office_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Twenty joins at once, two different bodies: one entry.
    let answers = join_all((0..20).map(|i| {
        let body = join_body(a, &office_id, i % 2 == 0, "any");
        let app = &app;
        async move { app.post(Some(&a.token), "/v1/waitlist", &body).await }
    }))
    .await;
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(created, 1, "{answers:?}");
    assert!(
        answers.iter().all(|(s, _)| [200, 201, 409].contains(s)),
        "{answers:?}"
    );
    assert_eq!(
        scalar(&app.store, "SELECT COUNT(*) FROM waitlist_entries").await,
        1
    );
    // Days later (its earliest date past) the entry still has its position.
    app.clock.advance(chrono::Duration::days(2));
    let token = app.login(&a.citizen).await;
    let (status, list) = app.get(Some(&token), "/v1/waitlist").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        (list[0]["status"].as_str(), list[0]["position"].as_i64()),
        (Some("waiting"), Some(1)),
        "{list}"
    );
    app.stop().await;
}
on_both_backends!(
    concurrent_joins_make_one_entry,
    super::one_entry_per_citizen
);

async fn bad_joins(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let people = ready_all(&app, 2).await;
    let (a, b) = (&people[0], &people[1]);
    let office_id = nearest_offices(&app, &a.citizen).await[0]["office_id"]
        .as_str()
        .unwrap()
        .to_string();
    let base = |pick: Value| json!({ "application_id": a.application_id, "payment_id": a.payment_id, "pick": pick });
    let cases = [
        (base(json!({})), 422, "invalid_pick"),
        (
            base(
                json!({ "office_ids": [office_id], "near": { "lat": 35.7, "lon": 51.4 }, "max_km": 10 }),
            ),
            422,
            "invalid_pick",
        ),
        (
            base(json!({ "near": { "lat": 35.7, "lon": 51.4 }, "max_km": 0 })),
            422,
            "invalid_pick",
        ),
        (
            base(json!({ "near": { "lat": 135.7, "lon": 51.4 }, "max_km": 10 })),
            422,
            "invalid_coordinates",
        ),
        (base(json!({ "office_ids": [] })), 422, "invalid_pick"),
        (
            base(json!({ "office_ids": ["021-9999"] })),
            404,
            "office_not_found",
        ),
        (
            base(
                json!({ "office_ids": [office_id], "earliest_date": "2024-09-30", "latest_date": "2024-09-25" }),
            ),
            422,
            "invalid_range",
        ),
        (
            base(json!({ "office_ids": [office_id], "earliest_date": "2024-09-21" })),
            422,
            "date_in_past",
        ),
        (
            base(json!({ "office_ids": [office_id], "latest_date": "tomorrow" })),
            422,
            "invalid_date",
        ),
        (
            base(json!({ "office_ids": [office_id], "part_of_day": "night" })),
            422,
            "invalid_body",
        ),
        (
            json!({ "application_id": a.application_id, "payment_id": b.payment_id, "pick": { "office_ids": [office_id] } }),
            422,
            "payment_not_found",
        ),
        (
            json!({ "application_id": b.application_id, "payment_id": a.payment_id, "pick": { "office_ids": [office_id] } }),
            404,
            "application_not_found",
        ),
    ];
    for (body, status, code) in cases {
        let (got, problem) = app.post(Some(&a.token), "/v1/waitlist", &body).await;
        assert_eq!(
            (got, problem["code"].as_str()),
            (status, Some(code)),
            "{body}: {problem}"
        );
    }
    let (status, _) = app.post(None, "/v1/waitlist", &base(json!({}))).await;
    assert_eq!(status, 401);
    assert_eq!(
        scalar(&app.store, "SELECT COUNT(*) FROM waitlist_entries").await,
        0
    );
    assert_eq!(
        scalar(&app.store, "SELECT COUNT(*) FROM waitlist_offices").await,
        0
    );
    let (status, body) = app
        .post(
            Some(&a.token),
            "/v1/waitlist/offers/offer_nothing/decline",
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("offer_not_found"))
    );
    let resp = app
        .client
        .delete(app.url("/v1/waitlist/wait_nothing"))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    app.stop().await;
}
on_both_backends!(bad_waitlist_input_writes_nothing, super::bad_joins);

async fn closure_ends_pending_releases(db: &TestDb) {
    let app = TestApp::spawn_with(db, test_clock(), |s| {
        s.admin_token = Some(crate::staff::ADMIN_TOKEN.to_string());
    })
    .await;
    let people = ready_all(&app, 1).await;
    let a = &people[0];
    let office_id = nearest_offices(&app, &a.citizen).await[0]["office_id"]
        .as_str()
        .unwrap()
        .to_string();
    let start = tomorrow_morning(&app, &office_id).await;
    let (_, appt) = book(&app, a, &office_id, &start).await;
    let a_code = appt["tracking_code"].as_str().unwrap().to_string();
    cancel(&app, a, &a_code).await;
    assert_eq!(
        scalar(
            &app.store,
            "SELECT COUNT(*) FROM seat_releases WHERE status = 'pending'"
        )
        .await,
        1
    );
    let (status, report) = app
        .post(
            Some(crate::staff::ADMIN_TOKEN),
            &format!("/v1/admin/offices/{office_id}/closures"),
            &json!({ "from": "1403-07-02", "reason": "قطع برق" }),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        scalar(
            &app.store,
            "SELECT COUNT(*) FROM seat_releases WHERE status = 'pending'"
        )
        .await,
        0,
        "the closed day keeps no seat back"
    );
    assert_eq!(
        scalar(&app.store, &format!("SELECT COUNT(*) FROM slots s JOIN appointments a ON a.slot_id = s.id WHERE a.tracking_code = '{a_code}' AND s.capacity > 0")).await,
        0,
        "its slot was shrunk to nothing"
    );
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}
on_both_backends!(
    a_closure_frees_the_seats_its_releases_held,
    super::closure_ends_pending_releases
);

/// The freeing path finds a slot's waiters, and the sweeper the due releases, through their
/// indexes (the plans the writer's statements get).
async fn waitlist_lookups_use_indexes(db: &TestDb) {
    let store = db.store().await;
    let waiters = "SELECT e.id FROM waitlist_offices o JOIN waitlist_entries e ON e.id = o.entry_id \
                   WHERE o.office_id = '021-0001' AND e.status = 'waiting' ORDER BY o.joined_at, o.entry_id LIMIT 32";
    let due = "SELECT id FROM seat_releases WHERE status = 'pending' AND release_at <= 100 ORDER BY release_at, id LIMIT 2000";
    let plan = |rows: Vec<String>| rows.join(" / ");
    match &store {
        nobat::store::Store::Sqlite(pool) => {
            for (query, index) in [(waiters, "PRIMARY KEY"), (due, "seat_releases_due")] {
                let rows: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {query}"))
                    .fetch_all(pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| sqlx::Row::get::<String, _>(r, 3))
                    .collect();
                let plan = plan(rows);
                assert!(
                    plan.contains(index) && !plan.contains("SCAN o"),
                    "{query}: {plan}"
                );
            }
        }
        nobat::store::Store::Postgres(pool) => {
            let mut tx = pool.begin_with(nobat::store::PG_BATCH_BEGIN).await.unwrap();
            for (query, index) in [
                (waiters, "waitlist_offices_pkey"),
                (due, "seat_releases_due"),
            ] {
                let rows: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {query}"))
                    .fetch_all(&mut *tx)
                    .await
                    .unwrap();
                let plan = plan(rows);
                assert!(plan.contains(index), "{query}: {plan}");
            }
            tx.rollback().await.unwrap();
        }
    }
    store.close().await;
}
on_both_backends!(
    the_waitlist_lookups_use_their_indexes,
    super::waitlist_lookups_use_indexes
);

/// A waiter who books directly ends their entry (booked, with the appointment's code): GET
/// says so, and a seat freed afterwards is not offered to them a second time.
async fn direct_booking_fulfils(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let people = ready_all(&app, 2).await;
    let (a, c) = (&people[0], &people[1]);
    let office_id = nearest_offices(&app, &a.citizen).await[0]["office_id"]
        .as_str()
        .unwrap()
        .to_string();
    let start = tomorrow_morning(&app, &office_id).await;
    let (status, appt) = book(&app, c, &office_id, &start).await;
    assert_eq!(status, 201, "{appt}");
    let c_code = appt["tracking_code"].as_str().unwrap().to_string();
    join(&app, a, &office_id, false).await;
    let (status, mine) = book(&app, a, &office_id, &start).await;
    assert_eq!(status, 201, "{mine}");
    let e = entry(&app, a).await;
    assert_eq!(
        (
            e["status"].as_str(),
            e["tracking_code"].as_str(),
            &e["position"]
        ),
        (Some("booked"), mine["tracking_code"].as_str(), &Value::Null),
        "{e}"
    );
    assert_eq!(
        scalar(&app.store, "SELECT COUNT(*) FROM waitlist_offices").await,
        0,
        "an ended entry leaves the waiters"
    );
    // C's seat freed: no waiter left, so it is held back by a release, not offered to A.
    cancel(&app, c, &c_code).await;
    assert_eq!(
        scalar(
            &app.store,
            "SELECT COUNT(*) FROM holds WHERE id LIKE 'offer%'"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &app.store,
            "SELECT COUNT(*) FROM seat_releases WHERE status = 'pending'"
        )
        .await,
        1
    );
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}
on_both_backends!(
    a_direct_booking_ends_the_waiting_entry,
    super::direct_booking_fulfils
);

/// An entry lapses once its last date has passed (the sweeper, with the injected clock), and
/// GET says so.
async fn entries_lapse(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let people = ready_all(&app, 2).await;
    let (a, b) = (&people[0], &people[1]);
    let office_id = nearest_offices(&app, &a.citizen).await[0]["office_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut body = join_body(a, &office_id, false, "any");
    body["pick"]["latest_date"] = json!("2024-09-23");
    let (status, first) = app.post(Some(&a.token), "/v1/waitlist", &body).await;
    assert_eq!(status, 201, "{first}");
    join(&app, b, &office_id, false).await;
    assert_eq!(app.state.engine.sweep_lapsed().await.unwrap(), 0, "not yet");
    // Monday is A's last day: at midnight after it, A lapses and B (no last date) waits on.
    // (Tehran midnight after Monday is 39 h after the test clock's Sunday 09:00.)
    app.clock.advance(chrono::Duration::hours(38));
    assert_eq!(
        app.state.engine.sweep_lapsed().await.unwrap(),
        0,
        "Monday evening"
    );
    app.clock.advance(chrono::Duration::hours(1));
    assert_eq!(app.state.engine.sweep_lapsed().await.unwrap(), 1);
    assert_eq!(app.state.engine.sweep_lapsed().await.unwrap(), 0);
    let token = app.login(&a.citizen).await;
    let (status, list) = app.get(Some(&token), "/v1/waitlist").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        (list[0]["status"].as_str(), &list[0]["position"]),
        (Some("lapsed"), &Value::Null),
        "{list}"
    );
    let token = app.login(&b.citizen).await;
    let (_, list) = app.get(Some(&token), "/v1/waitlist").await;
    assert_eq!(
        (list[0]["status"].as_str(), list[0]["position"].as_i64()),
        (Some("waiting"), Some(1)),
        "{list}"
    );
    app.stop().await;
}
on_both_backends!(an_entry_lapses_after_its_last_date, super::entries_lapse);

/// `POST /v1/waitlist` takes an Idempotency-Key: a retry gets the first answer (201, not the
/// 200 of a repeated join), and the key with another body is refused.
async fn join_idempotency(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let people = ready_all(&app, 1).await;
    let a = &people[0];
    let office_id = nearest_offices(&app, &a.citizen).await[0]["office_id"]
        .as_str()
        .unwrap()
        .to_string();
    let send = |body: Value| {
        let app = &app;
        async move {
            let r = app
                .client
                .post(app.url("/v1/waitlist"))
                .bearer_auth(&a.token)
                .header("idempotency-key", "join-1")
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let body = join_body(a, &office_id, false, "any");
    let first = send(body.clone()).await;
    assert_eq!(first.0, 201, "{first:?}");
    assert_eq!(send(body.clone()).await, first);
    let (status, other) = send(join_body(a, &office_id, true, "any")).await;
    assert_eq!(
        (status, other["code"].as_str()),
        (422, Some("idempotency_key_reused")),
        "{other}"
    );
    // Without a key, the same join answers 200 with the entry.
    let (status, again) = app.post(Some(&a.token), "/v1/waitlist", &body).await;
    assert_eq!((status, &again["entry_id"]), (200, &first.1["entry_id"]));
    assert_eq!(
        scalar(&app.store, "SELECT COUNT(*) FROM waitlist_entries").await,
        1
    );
    app.stop().await;
}
on_both_backends!(
    joining_the_waitlist_is_idempotent_with_a_key,
    super::join_idempotency
);

/// Waiters leave while their offers expire, all at once (on PostgreSQL the leave and the expiry
/// of one offer may be decided by two writers whose transactions overlap): every answer is a
/// clear one, each offer ends once (left or lapsed), each seat freed goes on to one waiter or
/// back, and no seat is lost or counted twice.
async fn leaving_while_offers_expire(db: &TestDb) {
    const SEATS: usize = 8;
    let app = TestApp::spawn(db).await;
    let mut people = ready_all(&app, 3 * SEATS).await;
    let office_id = nearest_offices(&app, &people[0].citizen).await[0]["office_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut codes = Vec::new();
    for booker in &people[..SEATS] {
        let start = tomorrow_morning(&app, &office_id).await;
        let (status, appt) = book(&app, booker, &office_id, &start).await;
        assert_eq!(status, 201, "{appt}");
        codes.push(appt["tracking_code"].as_str().unwrap().to_string());
    }
    let mut entries = Vec::new();
    for waiter in &people[SEATS..] {
        entries.push(join(&app, waiter, &office_id, false).await["entry_id"].clone());
        app.clock.advance(chrono::Duration::seconds(1));
    }
    for (booker, code) in people[..SEATS].iter().zip(&codes) {
        cancel(&app, booker, code).await;
    }
    let offered = scalar(
        &app.store,
        "SELECT COUNT(*) FROM waitlist_entries WHERE status = 'offered'",
    )
    .await;
    assert_eq!(offered, SEATS as i64, "the first waiters hold the seats");

    app.clock.advance(chrono::Duration::minutes(121));
    for p in &mut people {
        p.token = app.login(&p.citizen).await;
    }
    let leaves = people[SEATS..2 * SEATS]
        .iter()
        .zip(&entries)
        .map(|(who, id)| {
            let app = &app;
            let url = app.url(&format!("/v1/waitlist/{}", id.as_str().unwrap()));
            async move {
                let r = app
                    .client
                    .delete(url)
                    .bearer_auth(&who.token)
                    .send()
                    .await
                    .unwrap();
                r.status().as_u16()
            }
        });
    let sweeps = (0..3).map(|_| async { app.state.engine.sweep_expired().await.map(|_| 0u16) });
    let (left, swept) = futures_util::join!(join_all(leaves), join_all(sweeps));
    assert!(
        left.iter().all(|s| [200, 409].contains(s)),
        "a leave is done or refused as ended: {left:?}"
    );
    for s in swept {
        s.expect("the sweeper's expiries commit");
    }
    // Whatever the sweeper did not end yet, it ends now.
    app.state.engine.sweep_expired().await.unwrap();
    let ended = scalar(
        &app.store,
        &format!(
            "SELECT COUNT(*) FROM waitlist_entries WHERE status IN ('left', 'lapsed') AND joined_at <= \
             (SELECT joined_at FROM waitlist_entries WHERE id = '{}')",
            entries[SEATS - 1].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(ended, SEATS as i64, "each first offer ended once");
    // Each seat went on to one of the later waiters (an offer) or back to the slot.
    let live_offers = scalar(
        &app.store,
        "SELECT COUNT(*) FROM holds WHERE status = 'live' AND id LIKE 'offer%'",
    )
    .await;
    let offered_now = scalar(
        &app.store,
        "SELECT COUNT(*) FROM waitlist_entries WHERE status = 'offered'",
    )
    .await;
    assert_eq!(live_offers, offered_now);
    assert!(offered_now <= SEATS as i64);
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}
on_both_backends!(
    leaving_while_offers_expire_ends_each_offer_once,
    super::leaving_while_offers_expire
);
