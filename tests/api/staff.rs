//! Office staff: the visit after the booking, end to end on both backends: check in, enrolled
//! (the pickup visit booked at the same office), card ready, delivered; no-shows; scoping of
//! staff tokens to their office.

use serde_json::{json, Value};

use crate::applicant::{eligible_citizens, nearest_offices, Ready};
use crate::helpers::{test_clock, TestApp, TestDb};
use crate::on_both_backends;
use crate::races::assert_seats_consistent;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

pub async fn spawn(db: &TestDb, horizon_days: u32) -> TestApp {
    TestApp::spawn_with(db, test_clock(), |s| {
        s.admin_token = Some(ADMIN_TOKEN.to_string());
        s.outbox_interval = None;
        s.booking_horizon_days = horizon_days;
    })
    .await
}

impl TestApp {
    pub async fn staff_token(&self, office_id: &str) -> String {
        let (status, body) = self
            .post(
                Some(ADMIN_TOKEN),
                &format!("/v1/admin/offices/{office_id}/staff-tokens"),
                &json!({ "name": "desk 1" }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// Books `me` into the slot at `start` of `office_id`; returns the tracking code.
    pub async fn book_at(&self, me: &Ready, office_id: &str, start: &str) -> String {
        let (status, appt) = self
            .post(
                Some(&me.token),
                "/v1/appointments",
                &json!({ "application_id": me.application_id, "payment_id": me.payment_id, "office_id": office_id, "start": start }),
            )
            .await;
        assert_eq!(status, 201, "{appt}");
        appt["tracking_code"].as_str().unwrap().to_string()
    }

    pub async fn free_slots(&self, office_id: &str, day: &str) -> Vec<Value> {
        let (status, slots) = self
            .get(
                None,
                &format!("/v1/offices/{office_id}/slots?from={day}&to={day}"),
            )
            .await;
        assert_eq!(status, 200, "{slots}");
        slots
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["free"].as_i64().unwrap() > 0)
            .cloned()
            .collect()
    }
}

async fn visit_to_delivery(db: &TestDb) {
    let app = spawn(db, 30).await;
    let c = &eligible_citizens(0, 1)[0];
    let me = app.ready(c).await;
    let offices = nearest_offices(&app, c).await;
    let office_id = offices[0]["office_id"].as_str().unwrap().to_string();
    let other_office = offices[1]["office_id"].as_str().unwrap().to_string();
    let start = offices[0]["earliest_free"][0]["start"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(start.starts_with("2024-09-22T"), "a slot today: {start}");
    let code = app.book_at(&me, &office_id, &start).await;

    let staff = app.staff_token(&office_id).await;
    let other = app.staff_token(&other_office).await;

    // Today's list, with Jalali dates.
    let (status, day) = app.get(Some(&staff), "/v1/staff/appointments").await;
    assert_eq!(status, 200, "{day}");
    assert_eq!(day["jalali_date"], "1403-07-01");
    let listed = day["appointments"].as_array().unwrap();
    assert!(listed.iter().any(|a| a["tracking_code"] == code.as_str()));
    assert_eq!(listed[0]["jalali_date"], "1403-07-01");
    let (status, day) = app
        .get(Some(&staff), "/v1/staff/appointments?date=1403-07-01")
        .await;
    assert_eq!((status, day["date"].as_str()), (200, Some("2024-09-22")));

    // Office B's staff neither see nor change it; an applicant's token reaches nothing here.
    let (_, theirs) = app.get(Some(&other), "/v1/staff/appointments").await;
    assert!(!theirs["appointments"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["tracking_code"] == code.as_str()));
    let (status, body) = app
        .post(
            Some(&other),
            &format!("/v1/staff/appointments/{code}/check-in"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("appointment_not_found"))
    );
    for path in [
        "/v1/staff/appointments".to_string(),
        format!("/v1/staff/appointments/{code}/check-in"),
    ] {
        let (status, body) = app.post(Some(&me.token), &path, &json!({})).await;
        assert!(status == 401 || status == 405, "{path}: {status} {body}");
    }
    let (status, _) = app.get(Some(&me.token), "/v1/staff/appointments").await;
    assert_eq!(status, 401);
    let (status, _) = app.get(None, "/v1/staff/appointments").await;
    assert_eq!(status, 401);

    // Enrolment before check-in is refused and changes nothing.
    let (status, body) = app
        .post(
            Some(&staff),
            &format!("/v1/staff/appointments/{code}/enrol"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("invalid_transition")),
        "{body}"
    );

    let (status, body) = app
        .post(
            Some(&staff),
            &format!("/v1/staff/appointments/{code}/check-in"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("checked_in")),
        "{body}"
    );

    let (status, enrolled) = app
        .post(
            Some(&staff),
            &format!("/v1/staff/appointments/{code}/enrol"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{enrolled}");
    assert_eq!(enrolled["status"], "enrolled");
    let ready_date = enrolled["ready_date"].as_str().unwrap().to_string();
    assert!(
        ready_date.as_str() > "2024-10-01",
        "ten working days: {ready_date}"
    );
    assert!(enrolled["ready_jalali_date"]
        .as_str()
        .unwrap()
        .starts_with("1403-07-"));
    let pickup = &enrolled["pickup"];
    let pickup_code = pickup["tracking_code"].as_str().unwrap().to_string();
    assert_eq!(pickup["service"], "card_pickup");
    assert_eq!(pickup["status"], "booked");
    assert!(pickup["start"].as_str().unwrap() >= ready_date.as_str());
    // The pickup is at the same office (staff of that office see it on its day).
    let pickup_day = &pickup["start"].as_str().unwrap()[..10];
    let (_, day) = app
        .get(
            Some(&staff),
            &format!("/v1/staff/appointments?date={pickup_day}"),
        )
        .await;
    assert!(day["appointments"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["tracking_code"] == pickup_code.as_str()));
    assert_seats_consistent(&app.store).await;

    // Card ready (by the pickup's code), then delivered on the pickup day.
    let (status, body) = app
        .post(
            Some(&staff),
            &format!("/v1/staff/appointments/{pickup_code}/card-ready"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("card_ready")),
        "{body}"
    );
    app.clock.advance(chrono::Duration::days(14));
    let (status, body) = app
        .post(
            Some(&staff),
            &format!("/v1/staff/appointments/{code}/deliver"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("delivered")),
        "{body}"
    );
    assert_eq!(body["pickup"]["status"], "delivered");
    let (status, body) = app
        .post(
            Some(&staff),
            &format!("/v1/staff/appointments/{code}/deliver"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("invalid_transition"))
    );

    // The whole history in /v1/status.
    let (status, st) = app
        .get(
            None,
            &format!(
                "/v1/status?national_code={}&tracking_code={code}",
                c.national_code
            ),
        )
        .await;
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["status"], "delivered");
    assert_eq!(st["ready_date"], ready_date.as_str());
    assert_eq!(st["pickup"]["tracking_code"], pickup_code.as_str());
    let kinds: Vec<&str> = st["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "application_created",
            "payment_paid",
            "appointment_booked",
            "appointment_checked_in",
            "appointment_enrolled",
            "pickup_booked",
            "appointment_booked",
            "card_ready",
            "card_delivered",
        ]
    );
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}

on_both_backends!(visit_to_delivery, super::visit_to_delivery);

async fn no_show_lets_the_applicant_book_again(db: &TestDb) {
    let app = spawn(db, 30).await;
    let c = &eligible_citizens(3, 1)[0];
    let me = app.ready(c).await;
    let offices = nearest_offices(&app, c).await;
    let office_id = offices[0]["office_id"].as_str().unwrap().to_string();
    let start = offices[0]["earliest_free"][0]["start"]
        .as_str()
        .unwrap()
        .to_string();
    let code = app.book_at(&me, &office_id, &start).await;
    let staff = app.staff_token(&office_id).await;
    let (status, body) = app
        .post(
            Some(&staff),
            &format!("/v1/staff/appointments/{code}/no-show"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("too_early")),
        "{body}"
    );
    app.clock.advance(chrono::Duration::hours(2));
    let (status, body) = app
        .post(
            Some(&staff),
            &format!("/v1/staff/appointments/{code}/no-show"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("no_show")),
        "{body}"
    );
    assert_seats_consistent(&app.store).await;
    // The past seat is not re-sold: the slot has started, so booking it is refused upstream.
    let other = app.ready(&eligible_citizens(4, 1)[0]).await;
    let (status, body) = app
        .post(
            Some(&other.token),
            "/v1/appointments",
            &json!({ "application_id": other.application_id, "payment_id": other.payment_id, "office_id": office_id, "start": start }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("start_in_past")),
        "{body}"
    );
    // The applicant may book again (with a fresh session: the first one has expired).
    let me = Ready {
        token: app.login(c).await,
        ..me
    };
    let next = app.free_slots(&office_id, "2024-09-23").await;
    let again = app
        .book_at(&me, &office_id, next[0]["start"].as_str().unwrap())
        .await;
    assert_ne!(again, code);
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}

on_both_backends!(no_show, super::no_show_lets_the_applicant_book_again);
