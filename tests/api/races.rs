//! Concurrency: many clients, few seats. The database is the arbiter, also across servers.

use std::sync::Arc;

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::applicant::{eligible_citizens, Ready};
use crate::helpers::{exec, scalar, test_clock, TestApp, TestDb};
use crate::on_both_backends;
use nobat::store::Store;

const SECRET: &str = "0123456789abcdef0123456789abcdef-shared";

/// Every slot within capacity, and every taken seat backed by a live hold or an active appointment.
pub async fn assert_seats_consistent(store: &Store) {
    assert_eq!(
        scalar(
            store,
            "SELECT COUNT(*) FROM slots WHERE taken > capacity OR taken < 0"
        )
        .await,
        0
    );
    let unbacked = scalar(
        store,
        "SELECT COUNT(*) FROM slots s WHERE s.taken <> \
           (SELECT COUNT(*) FROM holds h WHERE h.slot_id = s.id AND h.status = 'live') + \
           (SELECT COUNT(*) FROM appointments a WHERE a.slot_id = s.id AND a.status IN ('booked', 'checked_in'))",
    )
    .await;
    assert_eq!(
        unbacked, 0,
        "slots whose taken seats are not backed one to one by holds and appointments"
    );
}

/// Logs in and applies (no payment), `concurrency` at a time.
pub async fn prepare(app: &TestApp, skip: usize, n: usize, pay: bool) -> Vec<Ready> {
    let citizens = eligible_citizens(skip, n);
    let mut ready = Vec::with_capacity(n);
    for chunk in citizens.chunks(64) {
        let batch = join_all(chunk.iter().map(|c| async move {
            if pay {
                app.ready(c).await
            } else {
                let token = app.login(c).await;
                let (status, body) = app
                    .post(
                        Some(&token),
                        "/v1/applications",
                        &json!({ "service": "first_issuance", "form": crate::applicant::form(c) }),
                    )
                    .await;
                assert_eq!(status, 201, "{body}");
                Ready {
                    citizen: c.clone(),
                    token,
                    application_id: body["application_id"].as_str().unwrap().to_string(),
                    payment_id: String::new(),
                }
            }
        }))
        .await;
        ready.extend(batch);
    }
    ready
}

/// Picks the first future slot of the first office and gives it `seats` seats.
async fn contested_slot(app: &TestApp, seats: i64) -> (String, String) {
    let (_, offices) = app
        .get(
            None,
            "/v1/offices?province=tehran&service=first_issuance&limit=1",
        )
        .await;
    let office = &offices[0];
    let office_id = office["office_id"].as_str().unwrap().to_string();
    let start = office["earliest_free"][0]["start"]
        .as_str()
        .unwrap()
        .to_string();
    let unix = chrono::DateTime::parse_from_rfc3339(&start)
        .unwrap()
        .timestamp();
    exec(&app.store, &format!("UPDATE slots SET capacity = {seats} WHERE office_id = '{office_id}' AND start_at = {unix}")).await;
    app.state.engine.refresh().await.unwrap();
    (office_id, start)
}

async fn fire_holds(
    apps: &[&TestApp],
    ready: &[Ready],
    office_id: &str,
    start: &str,
) -> Vec<(u16, Value)> {
    let tasks = ready.iter().enumerate().map(|(i, r)| {
        let app = apps[i % apps.len()];
        let body =
            json!({ "application_id": r.application_id, "office_id": office_id, "start": start });
        let req = app
            .client
            .post(app.url("/v1/holds"))
            .bearer_auth(&r.token)
            .json(&body);
        tokio::spawn(async move {
            let resp = req.send().await.expect("hold request");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        })
    });
    join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

fn tally(results: &[(u16, Value)]) -> (usize, usize) {
    let held = results.iter().filter(|(s, _)| *s == 201).count();
    let full = results
        .iter()
        .filter(|(s, b)| *s == 409 && b["code"] == "slot_full")
        .count();
    (held, full)
}

async fn thousand_clients_ten_seats(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let ready = prepare(&app, 0, 1000, false).await;
    let (office_id, start) = contested_slot(&app, 10).await;
    let results = fire_holds(&[&app], &ready, &office_id, &start).await;
    let (held, full) = tally(&results);
    assert_eq!(
        (held, full),
        (10, 990),
        "exactly the seats there are; every other client is told the slot is full"
    );
    let slot_full = results.iter().find(|(s, _)| *s == 409).unwrap();
    assert!(
        slot_full.1["extra"]["alternatives"]["same_office"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "alternatives offered"
    );
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}
on_both_backends!(
    a_thousand_clients_for_ten_seats_get_ten_holds,
    super::thousand_clients_ten_seats
);

async fn two_hundred_clients_small_office(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let ready = prepare(&app, 0, 200, true).await;
    // The smallest office: one station, so every slot has one seat.
    let (_, offices) = app
        .get(
            None,
            "/v1/offices?province=semnan&service=first_issuance&limit=100",
        )
        .await;
    let office = offices
        .as_array()
        .unwrap()
        .iter()
        .min_by_key(|o| o["stations"].as_i64().unwrap())
        .unwrap()
        .clone();
    let office_id = office["office_id"].as_str().unwrap().to_string();
    let (_, slots) = app
        .get(
            None,
            &format!("/v1/offices/{office_id}/slots?from=2024-09-22&to=2024-09-23"),
        )
        .await;
    let starts: Vec<String> = slots
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["free"].as_i64().unwrap() > 0)
        .take(12)
        .map(|s| s["start"].as_str().unwrap().to_string())
        .collect();
    let app = Arc::new(app);
    let tasks = ready.into_iter().enumerate().map(|(i, r)| {
        let app = app.clone();
        let office_id = office_id.clone();
        let start = starts[i % starts.len()].clone();
        tokio::spawn(async move {
            let (status, hold) = app.post(Some(&r.token), "/v1/holds", &json!({ "application_id": r.application_id, "office_id": office_id, "start": start })).await;
            if status != 201 {
                return (status, hold["code"].as_str().map(|c| format!("hold:{c}")));
            }
            let hold_id = hold["hold_id"].as_str().unwrap().to_string();
            let (status, appt) = app.post(Some(&r.token), &format!("/v1/holds/{hold_id}/confirm"), &json!({ "payment_id": r.payment_id })).await;
            (status, appt["tracking_code"].as_str().or(appt["code"].as_str()).map(str::to_string))
        })
    });
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let booked = results
        .iter()
        .filter(|(s, c)| *s == 201 && c.is_some())
        .count();
    let mut outcomes = std::collections::BTreeMap::new();
    for (s, c) in &results {
        *outcomes
            .entry(format!(
                "{s} {}",
                if *s == 201 {
                    "booked"
                } else {
                    c.as_deref().unwrap_or("?")
                }
            ))
            .or_insert(0) += 1;
    }
    eprintln!("outcomes: {outcomes:?}");
    let capacity: i64 = office["stations"].as_i64().unwrap() * starts.len() as i64;
    assert_eq!(
        booked as i64, capacity,
        "every seat of the contested slots is booked once, no more"
    );
    assert!(
        results.iter().all(|(s, _)| *s == 201 || *s == 409),
        "only successes and conflicts"
    );
    assert_seats_consistent(&app.store).await;
    let app = Arc::try_unwrap(app).ok().expect("all tasks done");
    app.stop().await;
}
on_both_backends!(
    two_hundred_clients_never_overbook_a_small_office,
    super::two_hundred_clients_small_office
);

/// Two nobat processes (here: two apps) on one PostgreSQL database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_race_split_across_two_servers_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let clock = test_clock();
    let shared = |s: &mut nobat::app::Settings| s.token_secret = Some(SECRET.to_string());
    let a = TestApp::spawn_with(&db, clock.clone(), shared).await;
    let b = TestApp::spawn_with(&db, clock.clone(), shared).await;
    let ready = prepare(&a, 0, 1000, false).await;
    let (office_id, start) = contested_slot(&a, 10).await;
    b.state.engine.refresh().await.unwrap();
    let results = fire_holds(&[&a, &b], &ready, &office_id, &start).await;
    assert_eq!(tally(&results), (10, 990));
    let from_b = results
        .iter()
        .enumerate()
        .filter(|(i, (s, _))| i % 2 == 1 && *s == 201)
        .count();
    eprintln!("holds won through the second server: {from_b}");
    assert_seats_consistent(&a.store).await;
    a.stop().await;
    b.stop().await;
    db.cleanup().await;
}
