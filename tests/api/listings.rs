//! Listings answer from the availability view's maintained totals, rankings and cached day
//! renderings; here every answer is checked against a recount from the database's slot rows
//! after bookings, releases, cancels, expiries and the clock passing slot starts.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveTime};
use nobat::booking::SlotRow;
use nobat::domain::time::{iran_instant, Clock};
use nobat::domain::{GeoPoint, ServiceCode};
use serde_json::{json, Value};

use crate::applicant::eligible_citizens;
use crate::helpers::{TestApp, TestDb};
use crate::on_both_backends;

fn unix(rfc3339: &Value) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339.as_str().unwrap())
        .unwrap()
        .timestamp()
}

/// Office listings: (query, filter on the directory's office, near point).
fn office_queries() -> Vec<(&'static str, Option<GeoPoint>)> {
    vec![
        ("/v1/offices?limit=5", None),
        ("/v1/offices?limit=100", None),
        ("/v1/offices?area_code=021&limit=3", None),
        (
            "/v1/offices?province=tehran&service=first_issuance&limit=4",
            None,
        ),
        ("/v1/offices?province=ilam&limit=20", None),
        (
            "/v1/offices?near=35.7,51.4&service=first_issuance&limit=5",
            Some(GeoPoint::new(35.7, 51.4).unwrap()),
        ),
    ]
}

/// Every listing checked against the slot rows in the database.
async fn check(app: &TestApp, offices: &[String]) {
    let now = app.clock.now().timestamp();
    // What the view loaded at start: the slots from a day before the test began.
    let loaded_from = crate::helpers::TEST_START
        .parse::<DateTime<chrono::Utc>>()
        .unwrap()
        .timestamp()
        - 86_400;
    let rows: Vec<SlotRow> = app.store.bookable_slots(loaded_from).await.unwrap();
    let mut by_office: BTreeMap<&str, Vec<&SlotRow>> = BTreeMap::new();
    for r in &rows {
        by_office.entry(r.office_id.as_str()).or_default().push(r);
    }
    for list in by_office.values_mut() {
        list.sort_by_key(|r| r.start_at);
    }
    let free = |r: &SlotRow| (r.capacity - r.taken).max(0);
    let upcoming = |office: &str| -> i64 {
        by_office.get(office).map_or(0, |l| {
            l.iter().filter(|r| r.start_at > now).map(|r| free(r)).sum()
        })
    };
    let directory = app.state.directory();
    for (query, near) in office_queries() {
        let (status, body) = app.get(None, query).await;
        assert_eq!(status, 200, "{query}: {body}");
        let q: BTreeMap<String, String> = query
            .split_once('?')
            .unwrap()
            .1
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        let limit: usize = q["limit"].parse().unwrap();
        let mut expected: Vec<(String, i64, f64)> = directory
            .all()
            .iter()
            .filter(|o| {
                q.get("area_code")
                    .is_none_or(|a| o.area_code.to_string() == *a)
            })
            .filter(|o| q.get("province").is_none_or(|p| o.province == *p))
            .filter(|o| {
                q.get("service")
                    .is_none_or(|s| o.offers(ServiceCode::parse(s).unwrap()))
            })
            .map(|o| {
                let d = near.map_or(0.0, |p| p.distance_km(o.location));
                (o.id.to_string(), upcoming(o.id.as_str()), d)
            })
            .collect();
        match near {
            Some(_) => expected.sort_by(|a, b| a.2.total_cmp(&b.2).then_with(|| a.0.cmp(&b.0))),
            None => expected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0))),
        }
        expected.truncate(limit);
        assert!(!expected.is_empty(), "{query} matches offices");
        let answered: Vec<(String, i64)> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["office_id"].as_str().unwrap().to_string(),
                    o["free_seats"].as_i64().unwrap(),
                )
            })
            .collect();
        let wanted: Vec<(String, i64)> = expected.iter().map(|e| (e.0.clone(), e.1)).collect();
        assert_eq!(answered, wanted, "{query} at {now}");
        for o in body.as_array().unwrap() {
            let id = o["office_id"].as_str().unwrap();
            // The office's own fields, as `OfficeDto` has them.
            let office = directory.get(id).unwrap();
            let services: Vec<String> = office.services.iter().map(|s| s.to_string()).collect();
            let distance = near.map(|p| (p.distance_km(office.location) * 100.0).round() / 100.0);
            assert_eq!(
                (
                    o["name"].as_str().unwrap(),
                    o["kind"].as_str().unwrap(),
                    o["province"].as_str().unwrap(),
                    o["city"].as_str().unwrap(),
                    o["area_code"].as_str().unwrap(),
                    o["lat"].as_f64().unwrap(),
                    o["lon"].as_f64().unwrap(),
                    o["stations"].as_u64().unwrap(),
                    serde_json::from_value::<Vec<String>>(o["services"].clone()).unwrap(),
                    o["distance_km"].as_f64(),
                    o.as_object().unwrap().len(),
                ),
                (
                    office.name.as_str(),
                    office.kind.to_string().as_str(),
                    office.province.as_str(),
                    office.city.as_str(),
                    office.area_code.to_string().as_str(),
                    office.location.lat,
                    office.location.lon,
                    u64::from(office.stations),
                    services,
                    distance,
                    13,
                ),
                "{id} in {query}"
            );
            let earliest: Vec<i64> = o["earliest_free"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| unix(&s["start"]))
                .collect();
            let wanted: Vec<i64> = by_office.get(id).map_or(vec![], |l| {
                l.iter()
                    .filter(|r| r.start_at > now && free(r) > 0)
                    .take(3)
                    .map(|r| r.start_at)
                    .collect()
            });
            assert_eq!(earliest, wanted, "earliest free of {id} in {query}");
        }
    }
    // Slot listings: a fixed week (some days past as the clock moves) and the default one.
    let from = NaiveDate::from_ymd_opt(2024, 9, 22).unwrap();
    let (start, end) = (
        iran_instant(from, NaiveTime::MIN).unwrap().timestamp(),
        iran_instant(from + chrono::Duration::days(7), NaiveTime::MIN)
            .unwrap()
            .timestamp(),
    );
    for office in offices {
        for path in [
            format!("/v1/offices/{office}/slots?from=2024-09-22&to=2024-09-28"),
            format!(
                "/v1/offices/{office}/slots?from=2024-09-22&to=2024-09-28&service=first_issuance"
            ),
        ] {
            let (status, body) = app.get(None, &path).await;
            assert_eq!(status, 200, "{path}: {body}");
            let answered: Vec<(i64, i64, i64)> = body
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        unix(&s["start"]),
                        s["capacity"].as_i64().unwrap(),
                        s["free"].as_i64().unwrap(),
                    )
                })
                .collect();
            let wanted: Vec<(i64, i64, i64)> = by_office.get(office.as_str()).map_or(vec![], |l| {
                l.iter()
                    .filter(|r| r.start_at >= start && r.start_at < end)
                    .map(|r| {
                        let f = if r.start_at <= now { 0 } else { free(r) };
                        (r.start_at, r.capacity, f)
                    })
                    .collect()
            });
            assert!(!wanted.is_empty(), "{office} has slots that week");
            assert_eq!(answered, wanted, "{path} at {now}");
        }
    }
}

async fn listings_match_a_recount(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    // Three Tehran offices offering first issuance: the ones a national or provincial
    // listing ranks, so bookings there move the rankings.
    let offices: Vec<String> = app
        .state
        .directory()
        .all()
        .iter()
        .filter(|o| o.province == "tehran" && o.offers(ServiceCode::FirstIssuance))
        .take(3)
        .map(|o| o.id.to_string())
        .collect();
    assert_eq!(offices.len(), 3);
    check(&app, &offices).await;
    for (i, c) in eligible_citizens(0, 8).iter().enumerate() {
        let me = app.ready(c).await;
        let office = &offices[i % offices.len()];
        // The listing just rendered (and cached) these days; a booking must show in the next.
        let (status, slots) = app.get(None, &format!("/v1/offices/{office}/slots")).await;
        assert_eq!(status, 200);
        let start = slots
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["free"].as_i64().unwrap() > 0)
            .expect("a free slot this week")["start"]
            .clone();
        let (status, hold) = app
            .post(
                Some(&me.token),
                "/v1/holds",
                &json!({ "application_id": me.application_id, "office_id": office, "start": start }),
            )
            .await;
        assert_eq!(status, 201, "{hold}");
        let hold_id = hold["hold_id"].as_str().unwrap();
        match i % 4 {
            // Walks away: the hold expires below.
            0 => {}
            1 => {
                let status = app
                    .client
                    .delete(app.url(&format!("/v1/holds/{hold_id}")))
                    .bearer_auth(&me.token)
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert!(status.is_success(), "release: {status}");
            }
            _ => {
                let (status, appt) = app
                    .post(
                        Some(&me.token),
                        &format!("/v1/holds/{hold_id}/confirm"),
                        &json!({ "payment_id": me.payment_id }),
                    )
                    .await;
                assert_eq!(status, 201, "{appt}");
                if i % 4 == 3 {
                    let code = appt["tracking_code"].as_str().unwrap();
                    let (status, body) = app
                        .post(
                            Some(&me.token),
                            &format!("/v1/appointments/{code}/cancel"),
                            &json!({}),
                        )
                        .await;
                    assert_eq!(status, 200, "{body}");
                }
            }
        }
        check(&app, &offices).await;
    }
    // Holds expire; then the clock passes slot starts (today's slots retire from the totals),
    // then a whole day.
    app.clock.advance(chrono::Duration::minutes(20));
    assert!(app.state.engine.sweep_expired().await.unwrap() >= 1);
    check(&app, &offices).await;
    for hours in [3, 24, 30] {
        app.clock.advance(chrono::Duration::hours(hours));
        check(&app, &offices).await;
    }
    app.stop().await;
}

on_both_backends!(
    listings_match_a_recount_of_the_slots,
    super::listings_match_a_recount
);

/// A repeated listing is answered from the kept bytes; a hold in the office shown changes the
/// next answer, and one in another office does not (its seats are not in the answer).
async fn kept_answers_follow_the_seats(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let tehran: Vec<(String, GeoPoint)> = app
        .state
        .directory()
        .all()
        .iter()
        .filter(|o| o.province == "tehran" && o.offers(ServiceCode::FirstIssuance))
        .take(2)
        .map(|o| (o.id.to_string(), o.location))
        .collect();
    let (office, at) = tehran[0].clone();
    let other = tehran[1].0.clone();
    let slots = format!("/v1/offices/{office}/slots?service=first_issuance");
    let near = format!(
        "/v1/offices?near={},{}&service=first_issuance&limit=1",
        at.lat, at.lon
    );
    let (status, listed) = app.get(None, &slots).await;
    assert_eq!(status, 200, "{listed}");
    let (_, nearest) = app.get(None, &near).await;
    assert_eq!(nearest[0]["office_id"], office.as_str(), "{nearest}");
    assert!(app.state.answers.len() >= 2, "both answers kept");
    assert_eq!(app.get(None, &slots).await.1, listed, "the kept answer");
    let free_of = |listing: &Value, start: &Value| -> i64 {
        listing
            .as_array()
            .unwrap()
            .iter()
            .find(|s| &s["start"] == start)
            .unwrap()["free"]
            .as_i64()
            .unwrap()
    };
    let hold_first_free = |office: String, listing: Value, n: usize| {
        let app = &app;
        async move {
            let me = app.ready(&eligible_citizens(n, 1)[0]).await;
            let start = listing
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["free"].as_i64().unwrap() > 0)
                .expect("a free slot this week")["start"]
                .clone();
            let (status, hold) = app
                .post(
                    Some(&me.token),
                    "/v1/holds",
                    &json!({ "application_id": me.application_id, "office_id": office, "start": start }),
                )
                .await;
            assert_eq!(status, 201, "{hold}");
            start
        }
    };
    // A hold elsewhere: the office's answers stay as they were.
    let (_, other_listed) = app
        .get(
            None,
            &format!("/v1/offices/{other}/slots?service=first_issuance"),
        )
        .await;
    hold_first_free(other.clone(), other_listed, 0).await;
    assert_eq!(app.get(None, &slots).await.1, listed);
    assert_eq!(app.get(None, &near).await.1, nearest);
    // A hold in the office: one seat fewer in its slot listing and its office entry.
    let start = hold_first_free(office.clone(), listed.clone(), 1).await;
    let (_, relisted) = app.get(None, &slots).await;
    assert_eq!(free_of(&relisted, &start), free_of(&listed, &start) - 1);
    let (_, renearest) = app.get(None, &near).await;
    assert_eq!(
        renearest[0]["free_seats"].as_i64().unwrap(),
        nearest[0]["free_seats"].as_i64().unwrap() - 1
    );
    app.stop().await;
}

on_both_backends!(
    kept_answers_follow_the_seats_both,
    super::kept_answers_follow_the_seats
);
