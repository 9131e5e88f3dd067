//! Auto-pick (`pick` on `POST /v1/holds` and `POST /v1/appointments`): the engine gives each
//! request the free seat of least cost within its limits, concurrent requests different seats,
//! and refuses only when no seat within the limits is left.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{NaiveDate, NaiveTime, Timelike};
use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{exec, scalar, TestApp, TestDb};
use crate::on_both_backends;
use crate::races::{assert_seats_consistent, prepare};
use nobat::domain::time::{iran_date, iran_instant, iran_local, Clock};
use nobat::domain::{GeoPoint, ServiceCode};
use nobat::planning::allocator::cost::metres;

/// Monday 2 Mehr 1403, the day after the test clock's: a working day, wholly ahead.
const DAY: &str = "2024-09-23";
const WAIT_M_PER_DAY: i64 = 5_000;

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

/// The first instant of an Iran day.
fn day_start(d: NaiveDate) -> i64 {
    iran_instant(d, NaiveTime::MIN).unwrap().timestamp()
}

/// A town: the first Tehran office's location, and the offices offering first issuance
/// within `km` of it (id, distance), nearest first.
fn town(app: &TestApp, km: f64) -> (GeoPoint, Vec<(String, f64)>) {
    let directory = app.state.directory();
    let service = ServiceCode::parse("first_issuance").unwrap();
    let first = directory
        .all()
        .iter()
        .filter(|o| o.province == "tehran" && o.offers(service))
        .min_by(|a, b| a.id.cmp(&b.id))
        .expect("a Tehran office")
        .clone();
    let point = first.location;
    let offices = directory
        .search(None, None, Some(point), Some(service))
        .into_iter()
        .filter_map(|(o, d)| d.filter(|d| *d <= km).map(|d| (o.id.to_string(), d)))
        .collect();
    (point, offices)
}

/// A free seat the engine could give, with the allocator's cost in metres.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Seat {
    cost_m: i64,
    start_at: i64,
    office_id: String,
    slot_id: i64,
    free: i64,
}

/// Every slot with a free seat at `offices` from `from` to `to` (Iran days, inclusive), least
/// cost first, ties by start then office: what the engine must pick from, worked out apart.
fn free_seats(app: &TestApp, offices: &[(String, f64)], from: &str, to: &str) -> Vec<Seat> {
    let now = app.clock.now().timestamp();
    let today = iran_date(app.clock.now());
    let (lo, hi) = (day_start(day(from)), day_start(day(to).succ_opt().unwrap()));
    let mut seats: Vec<Seat> = offices
        .iter()
        .flat_map(|(office, d)| {
            app.state
                .engine
                .availability()
                .range(office, lo, hi, 10_000)
                .into_iter()
                .filter(|s| s.start_at > now && s.free() > 0)
                .map(move |s| {
                    let local = chrono::DateTime::from_timestamp(s.start_at, 0).unwrap();
                    let days = (iran_date(local) - today).num_days();
                    Seat {
                        cost_m: metres(*d) + WAIT_M_PER_DAY * days,
                        start_at: s.start_at,
                        office_id: office.clone(),
                        slot_id: s.id,
                        free: s.free(),
                    }
                })
        })
        .collect();
    seats.sort();
    seats
}

/// Sets every slot of `offices` on the days `from`..=`to` to `capacity` seats; the seats there.
async fn set_capacity(
    app: &TestApp,
    offices: &[(String, f64)],
    from: &str,
    to: &str,
    capacity: i64,
) -> i64 {
    let ids: Vec<String> = offices.iter().map(|(o, _)| format!("'{o}'")).collect();
    let (lo, hi) = (day_start(day(from)), day_start(day(to).succ_opt().unwrap()));
    let scope = format!(
        "office_id IN ({}) AND start_at >= {lo} AND start_at < {hi}",
        ids.join(",")
    );
    exec(
        &app.store,
        &format!("UPDATE slots SET capacity = {capacity} WHERE {scope}"),
    )
    .await;
    app.state.engine.refresh().await.unwrap();
    scalar(
        &app.store,
        &format!(
            "SELECT CAST(COALESCE(SUM(capacity - taken), 0) AS BIGINT) FROM slots WHERE {scope}"
        ),
    )
    .await
}

fn near_pick(point: GeoPoint, km: f64, from: &str, to: &str) -> Value {
    json!({ "near": { "lat": point.lat, "lon": point.lon }, "max_km": km,
            "earliest_date": from, "latest_date": to })
}

/// `n` clients book with the same pick at once; the answers in arrival order of the requests.
async fn fire_picks(
    app: &Arc<TestApp>,
    ready: Vec<crate::applicant::Ready>,
    pick: &Value,
) -> Vec<(u16, Value)> {
    let tasks = ready.into_iter().map(|r| {
        let app = app.clone();
        let body =
            json!({ "application_id": r.application_id, "payment_id": r.payment_id, "pick": pick });
        tokio::spawn(async move { app.post(Some(&r.token), "/v1/appointments", &body).await })
    });
    join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

fn tally(results: &[(u16, Value)]) -> BTreeMap<String, usize> {
    let mut t = BTreeMap::new();
    for (s, b) in results {
        let key = match b["code"].as_str() {
            Some(code) => format!("{s} {code}"),
            None => s.to_string(),
        };
        *t.entry(key).or_default() += 1;
    }
    t
}

/// The offices nearest a point whose slots on `DAY` stay under `max_slots`, and a radius
/// between the last of them and the next.
fn limited_town(app: &TestApp, max_slots: usize) -> (GeoPoint, f64, Vec<(String, f64)>) {
    let (point, around) = town(app, 10.0);
    let mut slots = 0;
    let mut k = 0;
    while k < around.len() {
        let more = free_seats(app, &around[k..=k], DAY, DAY).len();
        if slots + more > max_slots && k > 0 {
            break;
        }
        slots += more;
        k += 1;
    }
    assert!(
        k < around.len() && around[k].1 > around[k - 1].1,
        "{around:?}"
    );
    let km = (around[k - 1].1 + around[k].1) / 2.0;
    (point, km, around[..k].to_vec())
}

/// 1,000 clients near one point, fewer seats within their limits than clients: every seat is
/// booked once, every other client is told no seat is left within the limits (with the
/// relaxations that would find one), and nothing is over capacity.
async fn a_thousand_picks_near_one_point(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let ready = prepare(&app, 0, 1000, true).await;
    let (point, km, offices) = limited_town(&app, 600);
    let seats = set_capacity(&app, &offices, DAY, DAY, 1).await;
    let k = offices.len();
    eprintln!("{k} offices within {km:.2} km, {seats} seats");
    assert!(seats < 1000);
    let app = Arc::new(app);
    let pick = near_pick(point, km, DAY, DAY);
    let started = std::time::Instant::now();
    let results = fire_picks(&app, ready, &pick).await;
    eprintln!(
        "1,000 picks in {:?}: {:?}",
        started.elapsed(),
        tally(&results)
    );
    let (rounds, all_full) = app.state.engine.pick_rounds();
    eprintln!("submitted to the writer {rounds} times, every candidate full {all_full} times");
    let booked: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| b)
        .collect();
    let refused = results
        .iter()
        .filter(|(s, b)| *s == 409 && b["code"] == "no_seat_within_limits")
        .count();
    assert_eq!(
        booked.len() as i64,
        seats.min(1000),
        "{:?}",
        tally(&results)
    );
    assert_eq!(booked.len() + refused, 1000, "{:?}", tally(&results));
    for b in &booked {
        let office = b["office"]["office_id"].as_str().unwrap();
        assert!(offices.iter().any(|(o, _)| o == office), "{b}");
        assert!(b["start"].as_str().unwrap().starts_with(DAY), "{b}");
        assert!(b["pick"]["distance_km"].as_f64().unwrap() <= km, "{b}");
    }
    // Nothing left within the limits, by the view and by the rows.
    assert!(free_seats(&app, &offices, DAY, DAY).is_empty());
    assert_eq!(
        scalar(
            &app.store,
            "SELECT COUNT(*) FROM appointments WHERE status = 'booked'"
        )
        .await,
        booked.len() as i64
    );
    assert_seats_consistent(&app.store).await;
    if refused > 0 {
        let (_, problem) = results.iter().find(|(s, _)| *s == 409).unwrap();
        let relax = problem["extra"]["relaxations"]
            .as_array()
            .expect("relaxations");
        assert!(
            relax
                .iter()
                .any(|r| r.get("latest_date").is_some() || r.get("max_km").is_some()),
            "{problem}"
        );
        assert_eq!(problem["extra"]["waitlist"]["href"], "/v1/waitlist");
    }
    let app = Arc::try_unwrap(app).ok().expect("all tasks done");
    app.stop().await;
}
on_both_backends!(
    a_thousand_picks_near_one_point_get_distinct_seats,
    super::a_thousand_picks_near_one_point
);

/// More seats than clients, one seat per slot (everyone wants the same cheapest slot): nobody
/// is refused, and the seats taken are exactly the cheapest ones (each pick took the least-cost
/// seat free when it was decided).
async fn picks_take_the_cheapest_seats(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let ready = prepare(&app, 1000, 300, true).await;
    let (point, offices) = town(&app, 8.0);
    let last = "2024-09-29";
    let seats = set_capacity(&app, &offices, DAY, last, 1).await;
    assert!(seats > 300, "{seats} seats");
    let before = free_seats(&app, &offices, DAY, last);
    let app = Arc::new(app);
    let results = fire_picks(&app, ready, &near_pick(point, 8.0, DAY, last)).await;
    assert!(
        results.iter().all(|(s, _)| *s == 201),
        "{:?}",
        tally(&results)
    );
    let mut taken: Vec<(String, String)> = results
        .iter()
        .map(|(_, b)| {
            (
                b["office"]["office_id"].as_str().unwrap().to_string(),
                b["start"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    taken.sort();
    let mut cheapest: Vec<(String, String)> = before[..300]
        .iter()
        .map(|s| {
            (
                s.office_id.clone(),
                nobat::http::v1::iran_rfc3339(s.start_at),
            )
        })
        .collect();
    cheapest.sort();
    assert_eq!(taken, cheapest, "the 300 least-cost seats, once each");
    for (_, b) in &results {
        let office = b["office"]["office_id"].as_str().unwrap();
        let start = chrono::DateTime::parse_from_rfc3339(b["start"].as_str().unwrap()).unwrap();
        let seat = before
            .iter()
            .find(|s| s.office_id == office && s.start_at == start.timestamp())
            .unwrap();
        assert_eq!(
            b["pick"]["cost_km"].as_f64().unwrap(),
            seat.cost_m as f64 / 1000.0
        );
    }
    assert_seats_consistent(&app.store).await;
    let app = Arc::try_unwrap(app).ok().expect("all tasks done");
    app.stop().await;
}
on_both_backends!(
    picks_are_never_refused_while_seats_remain,
    super::picks_take_the_cheapest_seats
);

/// One client at a time: each hold is the least-cost free seat (ties by start, then office
/// id), within the part of the day asked for; the office_ids form; a retry with the same
/// Idempotency-Key gets the same answer.
async fn least_cost_choice(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let ready = prepare(&app, 1300, 6, false).await;
    let (point, near) = town(&app, 10.0);
    assert!(near.len() >= 2, "{near:?}");
    let named: Vec<(String, f64)> = near[..2].iter().map(|(o, _)| (o.clone(), 0.0)).collect();
    let hold = |r: &crate::applicant::Ready, pick: Value| {
        let body = json!({ "application_id": r.application_id, "pick": pick });
        let token = r.token.clone();
        let app = &app;
        async move { app.post(Some(&token), "/v1/holds", &body).await }
    };
    let check = |(status, body): (u16, Value), expected: &Seat, near: bool| {
        assert_eq!(status, 201, "{body}");
        assert_eq!(
            body["office_id"],
            expected.office_id.as_str(),
            "{body} vs {expected:?}"
        );
        assert_eq!(
            body["start"],
            nobat::http::v1::iran_rfc3339(expected.start_at).as_str()
        );
        assert_eq!(
            body["pick"]["cost_km"].as_f64().unwrap(),
            expected.cost_m as f64 / 1000.0
        );
        assert_eq!(body["pick"]["distance_km"].is_null(), !near, "{body}");
    };
    // Near a point, over two days: least cost first.
    let expected = free_seats(&app, &near, DAY, "2024-09-24")[0].clone();
    check(
        hold(&ready[0], near_pick(point, 10.0, DAY, "2024-09-24")).await,
        &expected,
        true,
    );
    // Two named offices, one day: cost is the wait alone, so the earliest start, then the
    // smaller office id.
    let seats = free_seats(&app, &named, DAY, DAY);
    let expected = seats[0].clone();
    let pick =
        json!({ "office_ids": [named[1].0, named[0].0], "earliest_date": DAY, "latest_date": DAY });
    check(hold(&ready[1], pick.clone()).await, &expected, false);
    let expected = free_seats(&app, &named, DAY, DAY)[0].clone();
    check(hold(&ready[2], pick.clone()).await, &expected, false);
    // Afternoon and morning.
    let afternoon: Vec<Seat> = free_seats(&app, &named, DAY, DAY)
        .into_iter()
        .filter(|s| {
            iran_local(chrono::DateTime::from_timestamp(s.start_at, 0).unwrap()).hour() >= 12
        })
        .collect();
    let mut pm = pick.clone();
    pm["part_of_day"] = json!("afternoon");
    check(hold(&ready[3], pm).await, &afternoon[0], false);
    let mut am = pick.clone();
    am["part_of_day"] = json!("morning");
    let (status, body) = hold(&ready[4], am).await;
    assert_eq!(status, 201, "{body}");
    let start = chrono::DateTime::parse_from_rfc3339(body["start"].as_str().unwrap()).unwrap();
    assert!(iran_local(start.to_utc()).hour() < 12, "{body}");
    // The same key, the same answer, one hold.
    let body = json!({ "application_id": ready[5].application_id, "pick": pick });
    let keyed = || {
        app.client
            .post(app.url("/v1/holds"))
            .bearer_auth(&ready[5].token)
            .header("Idempotency-Key", "pick-once")
            .json(&body)
            .send()
    };
    let first: Value = keyed().await.unwrap().json().await.unwrap();
    let again: Value = keyed().await.unwrap().json().await.unwrap();
    assert_eq!(first, again);
    assert_eq!(
        scalar(
            &app.store,
            "SELECT COUNT(*) FROM holds WHERE status = 'live'"
        )
        .await,
        6
    );
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}
on_both_backends!(
    a_pick_is_the_least_cost_seat_ties_by_start_then_office,
    super::least_cost_choice
);

/// Malformed picks are refused with the member at fault, and nothing is written.
async fn bad_picks(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    // One applicant per path: each is limited to a burst of 30 requests.
    let ready = prepare(&app, 1400, 2, true).await;
    let r = &ready[0];
    let (point, offices) = town(&app, 5.0);
    let near = json!({ "lat": point.lat, "lon": point.lon });
    let office = offices[0].0.clone();
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({ "pick": { "near": near }, "office_id": office, "start": "2024-09-23T08:00:00+03:30" }),
            422,
            "invalid_pick",
        ),
        (json!({}), 422, "invalid_pick"),
        (json!({ "office_id": office }), 422, "invalid_pick"),
        (json!({ "pick": {} }), 422, "invalid_pick"),
        (
            json!({ "pick": { "near": near, "office_ids": [office] } }),
            422,
            "invalid_pick",
        ),
        (
            json!({ "pick": { "near": near, "max_km": 301 } }),
            422,
            "invalid_pick",
        ),
        (
            json!({ "pick": { "near": near, "max_km": 0 } }),
            422,
            "invalid_pick",
        ),
        (
            json!({ "pick": { "office_ids": [office], "max_km": 5 } }),
            422,
            "invalid_pick",
        ),
        (json!({ "pick": { "office_ids": [] } }), 422, "invalid_pick"),
        (
            json!({ "pick": { "office_ids": [office, office, office, office, office, office] } }),
            422,
            "invalid_pick",
        ),
        (
            json!({ "pick": { "near": { "lat": 91.0, "lon": 51.0 } } }),
            422,
            "invalid_coordinates",
        ),
        (
            json!({ "pick": { "near": near, "earliest_date": "2024-9-23" } }),
            422,
            "invalid_date",
        ),
        (
            json!({ "pick": { "near": near, "latest_date": "2024-02-30" } }),
            422,
            "invalid_date",
        ),
        (
            json!({ "pick": { "near": near, "earliest_date": "2024-09-21" } }),
            422,
            "date_in_past",
        ),
        (
            json!({ "pick": { "near": near, "earliest_date": "2024-09-25", "latest_date": "2024-09-24" } }),
            422,
            "invalid_range",
        ),
        (
            json!({ "pick": { "near": near, "part_of_day": "evening" } }),
            422,
            "invalid_body",
        ),
        (
            json!({ "pick": { "near": near, "radius": 5 } }),
            422,
            "invalid_body",
        ),
        (
            json!({ "pick": { "office_ids": ["no such office!"] } }),
            422,
            "invalid_office_id",
        ),
        (
            json!({ "pick": { "office_ids": ["021-9999"] } }),
            404,
            "office_not_found",
        ),
    ];
    for (path, r, extra) in [
        ("/v1/holds", &ready[0], json!({})),
        (
            "/v1/appointments",
            &ready[1],
            json!({ "payment_id": ready[1].payment_id }),
        ),
    ] {
        for (case, status, code) in &cases {
            let mut body = case.clone();
            body["application_id"] = json!(r.application_id);
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            let (got, problem) = app.post(Some(&r.token), path, &body).await;
            assert_eq!(
                (got, problem["code"].as_str()),
                (*status, Some(*code)),
                "{path} {body}: {problem}"
            );
            if *code == "invalid_pick" {
                assert!(problem["extra"]["field"].is_string(), "{problem}");
            }
        }
    }
    // Both forms, the field named.
    let (_, problem) = app.post(Some(&r.token), "/v1/holds", &json!({ "application_id": r.application_id, "pick": { "near": near }, "office_id": office, "start": "2024-09-23T08:00:00+03:30" })).await;
    assert_eq!(problem["extra"]["field"], "pick");
    for table in ["holds", "appointments"] {
        assert_eq!(
            scalar(&app.store, &format!("SELECT COUNT(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
    assert_eq!(
        scalar(
            &app.store,
            "SELECT CAST(COALESCE(SUM(taken), 0) AS BIGINT) FROM slots"
        )
        .await,
        0
    );
    // A pick that finds nothing within its limits: 409 with the relaxations.
    let full = set_capacity(&app, &offices, DAY, DAY, 0).await;
    assert_eq!(full, 0);
    let (status, problem) = app
        .post(
            Some(&r.token),
            "/v1/holds",
            &json!({ "application_id": r.application_id, "pick": near_pick(point, 5.0, DAY, DAY) }),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("no_seat_within_limits")),
        "{problem}"
    );
    let relax = problem["extra"]["relaxations"].as_array().unwrap();
    assert!(
        relax.contains(&json!({ "latest_date": "2024-09-24" })),
        "{problem}"
    );
    // The nearest office beyond 5 km has seats that day: the radius that reaches it.
    let (_, wider) = town(&app, 300.0);
    let beyond = wider.iter().find(|(_, d)| *d > 5.0).unwrap();
    assert!(
        relax.contains(&json!({ "max_km": (beyond.1 * 10.0).ceil() / 10.0 })),
        "{problem} {beyond:?}"
    );
    assert_eq!(problem["extra"]["waitlist"]["href"], "/v1/waitlist");
    // Mornings full at one office, afternoons free: any part of the day would do.
    let next = day("2024-09-24");
    exec(
        &app.store,
        &format!(
            "UPDATE slots SET capacity = 0 WHERE office_id = '{office}' AND start_at >= {} AND start_at < {}",
            day_start(next),
            day_start(next) + 12 * 3600
        ),
    )
    .await;
    app.state.engine.refresh().await.unwrap();
    let pick = json!({ "office_ids": [office], "earliest_date": "2024-09-24", "latest_date": "2024-09-24", "part_of_day": "morning" });
    let (status, problem) = app
        .post(
            Some(&r.token),
            "/v1/holds",
            &json!({ "application_id": r.application_id, "pick": pick }),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    let relax = problem["extra"]["relaxations"].as_array().unwrap();
    assert!(
        relax.contains(&json!({ "part_of_day": "any" })),
        "{problem}"
    );
    assert!(relax.iter().all(|r| r.get("max_km").is_none()), "{problem}");
    app.stop().await;
}
on_both_backends!(bad_picks_are_refused_and_write_nothing, super::bad_picks);

/// Two nobat processes on one PostgreSQL database, each with its own view: a process does not
/// see the other's bookings, its picks find those seats taken on the locked rows and ask again
/// without them. Every seat is booked once; the refused are refused only once none is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picks_split_across_two_servers_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let clock = crate::helpers::test_clock();
    let shared = |s: &mut nobat::app::Settings| s.token_secret = Some(SECRET.to_string());
    let a = TestApp::spawn_with(&db, clock.clone(), shared).await;
    let b = TestApp::spawn_with(&db, clock.clone(), shared).await;
    let ready = prepare(&a, 2000, 600, true).await;
    let (point, km, offices) = limited_town(&a, 400);
    let seats = set_capacity(&a, &offices, DAY, DAY, 1).await;
    b.state.engine.refresh().await.unwrap();
    assert!(seats < 600);
    let pick = near_pick(point, km, DAY, DAY);
    let (a, b) = (Arc::new(a), Arc::new(b));
    let tasks = ready.into_iter().enumerate().map(|(i, r)| {
        let app = if i % 2 == 0 { a.clone() } else { b.clone() };
        let body =
            json!({ "application_id": r.application_id, "payment_id": r.payment_id, "pick": pick });
        tokio::spawn(async move { app.post(Some(&r.token), "/v1/appointments", &body).await })
    });
    let results: Vec<(u16, Value)> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let t = tally(&results);
    eprintln!(
        "two servers, {seats} seats: {t:?}; rounds a {:?} b {:?}",
        a.state.engine.pick_rounds(),
        b.state.engine.pick_rounds()
    );
    assert_eq!(t.get("201").copied().unwrap_or(0) as i64, seats, "{t:?}");
    assert_eq!(
        t.get("409 no_seat_within_limits").copied().unwrap_or(0) as i64,
        600 - seats,
        "{t:?}"
    );
    assert_seats_consistent(&a.store).await;
    let (a, b) = (
        Arc::try_unwrap(a).ok().unwrap(),
        Arc::try_unwrap(b).ok().unwrap(),
    );
    a.stop().await;
    b.stop().await;
    db.cleanup().await;
}

const SECRET: &str = "0123456789abcdef0123456789abcdef-shared";
