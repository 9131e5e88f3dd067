//! Administration end to end on both backends: closures and holidays move or cancel the
//! affected appointments (one notice each, no slot over capacity, idempotent), capacity cuts,
//! offices, fees, statistics, and who may reach the admin API.

use serde_json::{json, Value};

use crate::applicant::{eligible_citizens, nearest_offices};
use crate::helpers::{scalar, TestApp, TestDb};
use crate::on_both_backends;
use crate::races::assert_seats_consistent;
use crate::staff::{spawn, ADMIN_TOKEN};
use nobat::store::Store;

/// Monday 2 Mehr 1403 in Tehran, as Unix seconds [start, end).
const MONDAY: (i64, i64) = (1_727_037_000, 1_727_123_400);
/// Tuesday 3 Mehr 1403.
const TUESDAY: (i64, i64) = (1_727_123_400, 1_727_209_800);

async fn book_on(app: &TestApp, skip: usize, n: usize, office_id: &str, day: &str) -> Vec<String> {
    let mut codes = Vec::new();
    for c in eligible_citizens(skip, n) {
        let me = app.ready(&c).await;
        let free = app.free_slots(office_id, day).await;
        codes.push(
            app.book_at(&me, office_id, free[0]["start"].as_str().unwrap())
                .await,
        );
    }
    codes
}

async fn counts(app: &TestApp) -> (i64, i64) {
    (
        scalar(&app.store, "SELECT COUNT(*) FROM outbox").await,
        scalar(&app.store, "SELECT COUNT(*) FROM events").await,
    )
}

async fn closing_a_busy_office(db: &TestDb) {
    let app = spawn(db, 30).await;
    let c = &eligible_citizens(0, 1)[0];
    let office_id = nearest_offices(&app, c).await[0]["office_id"]
        .as_str()
        .unwrap()
        .to_string();
    let codes = book_on(&app, 10, 8, &office_id, "2024-09-23").await;
    // A live hold on the closed day too.
    let holder = app.ready(&eligible_citizens(30, 1)[0]).await;
    let free = app.free_slots(&office_id, "2024-09-23").await;
    let (status, _) = app
        .post(
            Some(&holder.token),
            "/v1/holds",
            &json!({ "application_id": holder.application_id, "office_id": office_id, "start": free[0]["start"] }),
        )
        .await;
    assert_eq!(status, 201);

    let (status, report) = app
        .post(
            Some(ADMIN_TOKEN),
            &format!("/v1/admin/offices/{office_id}/closures"),
            &json!({ "from": "1403-07-02", "reason": "قطع برق" }),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["already_closed"], false);
    assert_eq!(report["holds_released"], 1);
    assert_eq!(
        report["moved"].as_i64().unwrap() + report["cancelled"].as_i64().unwrap(),
        8
    );
    assert_eq!(
        report["moved"], 8,
        "a city's offices have room later: {report}"
    );
    for code in &codes {
        let a = app.store.appointment(code).await.unwrap().unwrap();
        assert_eq!(a.status.as_str(), "booked");
        assert!(
            !(a.office_id == office_id && (MONDAY.0..MONDAY.1).contains(&a.start_at)),
            "{code} still on the closed day"
        );
        assert!(a.start_at >= MONDAY.1, "moved after the closed day");
        let sql = format!("SELECT COUNT(*) FROM outbox WHERE tracking_code = '{code}'");
        assert_eq!(scalar(&app.store, &sql).await, 1, "one notice for {code}");
    }
    let body: String = match &app.store {
        Store::Sqlite(p) => sqlx::query_scalar("SELECT body FROM outbox LIMIT 1")
            .fetch_one(p)
            .await
            .unwrap(),
        Store::Postgres(p) => sqlx::query_scalar("SELECT body FROM outbox LIMIT 1")
            .fetch_one(p)
            .await
            .unwrap(),
    };
    assert!(body.contains("منتقل شد") && body.contains("۱۴۰۳"), "{body}");
    let sql = format!(
        "SELECT COUNT(*) FROM slots WHERE office_id = '{office_id}' AND start_at >= {} AND start_at < {} AND capacity > 0",
        MONDAY.0, MONDAY.1
    );
    assert_eq!(
        scalar(&app.store, &sql).await,
        0,
        "the closed day has no seats"
    );
    assert_seats_consistent(&app.store).await;

    // Nothing new lands on the closed day.
    let late = app.ready(&eligible_citizens(40, 1)[0]).await;
    let (status, body) = app
        .post(
            Some(&late.token),
            "/v1/appointments",
            &json!({ "application_id": late.application_id, "payment_id": late.payment_id, "office_id": office_id, "start": free[0]["start"] }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("closed_day")),
        "{body}"
    );

    // The same closure again changes nothing.
    let before = counts(&app).await;
    let (status, again) = app
        .post(
            Some(ADMIN_TOKEN),
            &format!("/v1/admin/offices/{office_id}/closures"),
            &json!({ "from": "2024-09-23", "to": "2024-09-23", "reason": "قطع برق" }),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (
            again["already_closed"].as_bool(),
            again["moved"].as_i64(),
            again["cancelled"].as_i64()
        ),
        (Some(true), Some(0), Some(0))
    );
    assert_eq!(counts(&app).await, before);

    // The relay sends each notice once.
    let now = nobat::domain::time::Clock::now(app.clock.as_ref()).timestamp();
    let sent =
        nobat::ports::notify::relay_once(&app.store, &nobat::ports::notify::LogNotifier, now)
            .await
            .unwrap();
    assert_eq!(sent, 8);
    assert_eq!(
        nobat::ports::notify::relay_once(&app.store, &nobat::ports::notify::LogNotifier, now)
            .await
            .unwrap(),
        0
    );

    // Statistics: the closed day has no capacity; JSON and CSV agree.
    let (status, stats) = app
        .get(
            Some(ADMIN_TOKEN),
            "/v1/admin/stats?from=2024-09-22&to=2024-09-30",
        )
        .await;
    assert_eq!(status, 200, "{stats}");
    let row = |date: &str| -> Value {
        stats["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == office_id.as_str() && r["date"] == date)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(row("2024-09-23")["capacity"], 0);
    assert_eq!(row("2024-09-23")["jalali_date"], "1403-07-02");
    let booked_total: i64 = stats["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["booked"].as_i64().unwrap())
        .sum();
    assert_eq!(booked_total, 8);
    let csv = app
        .client
        .get(app.url("/v1/admin/stats?from=2024-09-22&to=2024-09-30&group=province"))
        .bearer_auth(ADMIN_TOKEN)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    assert!(text.starts_with("key,date,jalali_date,capacity,booked,enrolled,no_shows,cancellations,pickups,wait_days_mean"));
    assert!(text.lines().count() > 1);
    app.stop().await;
}

on_both_backends!(closing_a_busy_office, super::closing_a_busy_office);

async fn closing_with_no_free_slot_cancels(db: &TestDb) {
    // A two-day booking window: after Monday there is nowhere to go.
    let app = spawn(db, 2).await;
    let c = &eligible_citizens(0, 1)[0];
    let office_id = nearest_offices(&app, c).await[0]["office_id"]
        .as_str()
        .unwrap()
        .to_string();
    let codes = book_on(&app, 10, 3, &office_id, "2024-09-23").await;
    let (status, report) = app
        .post(
            Some(ADMIN_TOKEN),
            &format!("/v1/admin/offices/{office_id}/closures"),
            &json!({ "from": "2024-09-23", "reason": "flood" }),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["moved"].as_i64(), report["cancelled"].as_i64()),
        (Some(0), Some(3))
    );
    for code in &codes {
        let a = app.store.appointment(code).await.unwrap().unwrap();
        assert_eq!(a.status.as_str(), "cancelled");
        let sql = format!("SELECT COUNT(*) FROM events WHERE subject = '{code}' AND kind = 'appointment_cancelled' AND payload_json LIKE '%no_free_slot%'");
        assert_eq!(scalar(&app.store, &sql).await, 1, "recorded reason");
        let sql = format!(
            "SELECT COUNT(*) FROM outbox WHERE tracking_code = '{code}' AND body LIKE '%لغو شد%'"
        );
        assert_eq!(scalar(&app.store, &sql).await, 1);
    }
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}

on_both_backends!(
    closing_with_no_free_slot,
    super::closing_with_no_free_slot_cancels
);

async fn a_holiday_closes_every_office(db: &TestDb) {
    let app = spawn(db, 30).await;
    let c = &eligible_citizens(0, 1)[0];
    let offices = nearest_offices(&app, c).await;
    let mut codes = Vec::new();
    for (i, o) in offices.iter().take(3).enumerate() {
        codes.extend(
            book_on(
                &app,
                10 + i * 2,
                2,
                o["office_id"].as_str().unwrap(),
                "2024-09-24",
            )
            .await,
        );
    }
    let (status, report) = app
        .post(
            Some(ADMIN_TOKEN),
            "/v1/admin/holidays",
            &json!({ "date": "1403-07-03", "name_fa": "تعطیل اعلامی", "name_en": "Announced holiday" }),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["moves"].as_array().unwrap().len(), 6);
    for code in &codes {
        let a = app.store.appointment(code).await.unwrap().unwrap();
        assert!(
            a.status.as_str() == "cancelled" || !(TUESDAY.0..TUESDAY.1).contains(&a.start_at),
            "{code} still on the holiday"
        );
        let sql = format!("SELECT COUNT(*) FROM outbox WHERE tracking_code = '{code}'");
        assert_eq!(scalar(&app.store, &sql).await, 1);
    }
    let sql = format!(
        "SELECT COUNT(*) FROM slots WHERE start_at >= {} AND start_at < {} AND capacity > 0",
        TUESDAY.0, TUESDAY.1
    );
    assert_eq!(
        scalar(&app.store, &sql).await,
        0,
        "no office has seats on the holiday"
    );
    let (status, list) = app
        .get(Some(ADMIN_TOKEN), "/v1/admin/holidays?year=1403")
        .await;
    assert_eq!(status, 200);
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["date"] == "2024-09-24" && h["source"] == "admin"));
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["source"] == "builtin"));
    let before = counts(&app).await;
    let (status, again) = app
        .post(
            Some(ADMIN_TOKEN),
            "/v1/admin/holidays",
            &json!({ "date": "2024-09-24", "name_fa": "تعطیل اعلامی", "name_en": "Announced holiday" }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["moves"].as_array().unwrap().len(), 0);
    assert_eq!(
        counts(&app).await,
        before,
        "the second time changes nothing"
    );
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}

on_both_backends!(
    a_holiday_closes_every_office,
    super::a_holiday_closes_every_office
);

/// A new Tehran office of `stations` stations, created through the API.
async fn new_office(app: &TestApp, id: &str, stations: u32) {
    let (status, office) = app
        .post(
            Some(ADMIN_TOKEN),
            "/v1/admin/offices",
            &json!({ "id": id, "name": "دفتر آزمایشی", "kind": "post", "province": "tehran", "city": "Tehran",
                     "area_code": "021", "lat": 35.70, "lon": 51.40, "stations": stations }),
        )
        .await;
    assert_eq!(status, 201, "{office}");
}

/// Changes an office's stations through the API; the office as answered.
async fn set_stations(app: &TestApp, id: &str, stations: u32) -> Value {
    let (status, changed) = app
        .client
        .patch(app.url(&format!("/v1/admin/offices/{id}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "stations": stations }))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(status, 200, "{changed}");
    changed
}

async fn fewer_stations_move_what_no_longer_fits(db: &TestDb) {
    let app = spawn(db, 30).await;
    // A new office of 3 stations, created through the API.
    new_office(&app, "T-001", 3).await;
    let free = app.free_slots("T-001", "2024-09-23").await;
    assert_eq!(free[0]["capacity"], 3);
    let start = free[0]["start"].as_str().unwrap().to_string();
    let mut codes = Vec::new();
    for c in eligible_citizens(10, 3) {
        let me = app.ready(&c).await;
        codes.push(app.book_at(&me, "T-001", &start).await);
    }
    let changed = set_stations(&app, "T-001", 1).await;
    assert_eq!(changed["stations"], 1);
    assert_eq!(changed["moves"].as_array().unwrap().len(), 2, "{changed}");
    let staying = app.store.appointment(&codes[0]).await.unwrap().unwrap();
    assert_eq!(
        staying.office_id, "T-001",
        "the first to book keeps the seat"
    );
    let sql = "SELECT COUNT(*) FROM slots WHERE office_id = 'T-001' AND capacity <> 1 AND start_at > 1727000000";
    assert_eq!(scalar(&app.store, sql).await, 0);
    let sql = "SELECT COUNT(*) FROM events WHERE actor = 'admin:configured' AND kind IN ('office_created', 'office_updated')";
    assert_eq!(scalar(&app.store, sql).await, 2);
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}

on_both_backends!(
    fewer_stations,
    super::fewer_stations_move_what_no_longer_fits
);

/// Stations added: the new seats go to the waitlist first (issue 21), as freed seats do. One
/// waiter, auto-accepting, gets exactly one of them; every other new seat is free at once.
async fn more_stations_go_to_the_waiters_first(db: &TestDb) {
    let app = spawn(db, 30).await;
    new_office(&app, "T-002", 1).await;
    let people: Vec<_> = {
        let mut v = Vec::new();
        for c in eligible_citizens(20, 2) {
            v.push(app.ready(&c).await);
        }
        v
    };
    let (status, entry) = app
        .post(
            Some(&people[0].token),
            "/v1/waitlist",
            &json!({
                "application_id": people[0].application_id,
                "payment_id": people[0].payment_id,
                "pick": { "office_ids": ["T-002"], "earliest_date": "2024-09-24",
                          "latest_date": "2024-09-24", "part_of_day": "any" },
                "auto_accept": true,
            }),
        )
        .await;
    assert_eq!(status, 201, "{entry}");
    set_stations(&app, "T-002", 2).await;
    let (_, list) = app.get(Some(&people[0].token), "/v1/waitlist").await;
    assert_eq!(list[0]["status"], "booked", "{list}");
    let code = list[0]["tracking_code"].as_str().unwrap();
    let booked = app.store.appointment(code).await.unwrap().unwrap();
    assert_eq!(booked.office_id, "T-002");
    assert_eq!(
        nobat::http::v1::iran_rfc3339(booked.start_at)[..10].to_string(),
        "2024-09-24"
    );
    let sql = format!(
        "SELECT COUNT(*) FROM appointments WHERE national_code = '{}'",
        people[0].citizen.national_code
    );
    assert_eq!(scalar(&app.store, &sql).await, 1, "one seat for one waiter");
    // No seat kept back: the other new seats are free for first-come booking now.
    let sql = "SELECT COUNT(*) FROM seat_releases WHERE status = 'pending'";
    assert_eq!(scalar(&app.store, sql).await, 0);
    let free = app.free_slots("T-002", "2024-09-24").await;
    assert!(free.iter().all(|s| s["capacity"] == 2), "{free:?}");
    let start = free[0]["start"].as_str().unwrap().to_string();
    app.book_at(&people[1], "T-002", &start).await;
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}

on_both_backends!(more_stations, super::more_stations_go_to_the_waiters_first);

async fn who_may_administer_and_bad_input(db: &TestDb) {
    let app = spawn(db, 30).await;
    let c = &eligible_citizens(0, 1)[0];
    let me = app.ready(c).await;
    let office_id = nearest_offices(&app, c).await[0]["office_id"]
        .as_str()
        .unwrap()
        .to_string();
    let staff = app.staff_token(&office_id).await;
    let closure = format!("/v1/admin/offices/{office_id}/closures");
    let body = json!({ "from": "2024-09-23", "reason": "x" });
    for (token, expected) in [
        (Some(me.token.as_str()), 401),
        (Some(staff.as_str()), 403),
        (None, 401),
        (Some("nba_forged"), 401),
    ] {
        let (status, problem) = app.post(token, &closure, &body).await;
        assert_eq!(status, expected, "{problem}");
        let (status, _) = app
            .get(token, "/v1/admin/stats?from=2024-09-22&to=2024-09-23")
            .await;
        assert_eq!(status, expected);
        let (status, _) = app
            .post(
                token,
                &format!("/v1/admin/offices/{office_id}/staff-tokens"),
                &json!({ "name": "x" }),
            )
            .await;
        assert_eq!(status, expected);
    }
    let before = counts(&app).await;
    let calendar_before = app
        .get(Some(ADMIN_TOKEN), &format!("/v1/admin/offices/{office_id}"))
        .await
        .1;
    for (bad, code) in [
        (
            json!({ "from": "2024-13-01", "reason": "x" }),
            "invalid_date",
        ),
        (
            json!({ "from": "2024-09-25", "to": "2024-09-23", "reason": "x" }),
            "invalid_range",
        ),
        (
            json!({ "from": "2024-09-01", "reason": "x" }),
            "date_in_past",
        ),
        (
            json!({ "from": "2024-09-23", "to": "2024-12-30", "reason": "x" }),
            "range_too_long",
        ),
        (
            json!({ "from": "2024-09-23", "reason": "" }),
            "invalid_reason",
        ),
        (
            json!({ "from": "2024-09-23", "reason": "x", "extra": 1 }),
            "invalid_body",
        ),
    ] {
        let resp = app
            .client
            .post(app.url(&closure))
            .bearer_auth(ADMIN_TOKEN)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 422, "{bad}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(problem["code"], code, "{bad}: {problem}");
    }
    let (status, problem) = app
        .post(Some(ADMIN_TOKEN), "/v1/admin/offices/NOPE/closures", &body)
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (404, Some("office_not_found"))
    );
    let (status, problem) = app
        .get(
            Some(ADMIN_TOKEN),
            "/v1/admin/stats?from=2024-09-22&to=2024-09-23&group=city",
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("invalid_group"))
    );
    let resp = app
        .client
        .put(app.url("/v1/admin/fees/1403"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "fees": { "first_issuance": 1_500_000, "nope": 1 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    assert_eq!(counts(&app).await, before, "refused input changed nothing");
    assert_eq!(
        app.get(Some(ADMIN_TOKEN), &format!("/v1/admin/offices/{office_id}"))
            .await
            .1,
        calendar_before
    );

    // A valid fee change is recorded with who and when.
    let resp = app
        .client
        .put(app.url("/v1/admin/fees/1404"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "fees": { "first_issuance": 2_000_000 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (_, fees) = app.get(Some(ADMIN_TOKEN), "/v1/admin/fees/1404").await;
    assert_eq!(fees["fees"]["first_issuance"], 2_000_000);
    let sql = "SELECT COUNT(*) FROM events WHERE kind = 'fee_set' AND actor = 'admin:configured'";
    assert_eq!(scalar(&app.store, sql).await, 1);
    // Staff tokens are stored hashed only.
    let sql = format!("SELECT COUNT(*) FROM operator_tokens WHERE token_hash = '{staff}'");
    assert_eq!(scalar(&app.store, &sql).await, 0);
    assert_eq!(
        scalar(
            &app.store,
            "SELECT COUNT(*) FROM operator_tokens WHERE LENGTH(token_hash) = 64"
        )
        .await,
        1
    );
    app.stop().await;
}

on_both_backends!(who_may_administer, super::who_may_administer_and_bad_input);
