//! The whole applicant journey, end to end, on both backends.

use serde_json::json;

use crate::applicant::{eligible_citizens, nearest_offices};
use crate::helpers::{TestApp, TestDb};
use crate::on_both_backends;

async fn whole_journey(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let c = &eligible_citizens(0, 1)[0];
    let me = app.ready(c).await;

    // Catalogue: services with this year's fee (1403 law: 1,450,000 rials for first issuance).
    let (_, services) = app.get(None, "/v1/services").await;
    let first = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["code"] == "first_issuance")
        .unwrap();
    assert_eq!(first["fee_rials"], 1_450_000);
    assert_eq!(first["jalali_year"], 1403);

    // Find an office near home and its slots.
    let offices = nearest_offices(&app, c).await;
    assert!(!offices.is_empty());
    let office = &offices[0];
    assert!(office["distance_km"].as_f64().unwrap() < 100.0);
    let office_id = office["office_id"].as_str().unwrap();
    let (status, slots) = app
        .get(
            None,
            &format!("/v1/offices/{office_id}/slots?from=2024-09-22&to=2024-09-24"),
        )
        .await;
    assert_eq!(status, 200);
    let slots = slots.as_array().unwrap();
    assert!(!slots.is_empty(), "Sunday to Tuesday are working days");
    assert!(slots[0]["start"].as_str().unwrap().ends_with("+03:30"));
    assert_eq!(slots[0]["jalali_date"], "1403-07-01");
    let start = office["earliest_free"][0]["start"]
        .as_str()
        .unwrap()
        .to_string();

    // Hold, then confirm with the payment.
    let (status, hold) = app
        .post(
            Some(&me.token),
            "/v1/holds",
            &json!({ "application_id": me.application_id, "office_id": office_id, "start": start }),
        )
        .await;
    assert_eq!(status, 201, "{hold}");
    let hold_id = hold["hold_id"].as_str().unwrap();
    assert!(hold["expires_at"].as_str().unwrap().ends_with("+03:30"));
    let (status, appt) = app
        .post(
            Some(&me.token),
            &format!("/v1/holds/{hold_id}/confirm"),
            &json!({ "payment_id": me.payment_id }),
        )
        .await;
    assert_eq!(status, 201, "{appt}");
    let code = appt["tracking_code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), nobat::reserve::ids::TRACKING_CODE_CHARS);
    assert_eq!(appt["status"], "booked");
    assert_eq!(appt["start"], start);

    // A second booking for the same service is refused.
    let (status, body) = app
        .post(
            Some(&me.token),
            "/v1/holds",
            &json!({ "application_id": me.application_id, "office_id": office_id, "start": start }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("already_booked")),
        "{body}"
    );

    // Receipt as JSON and as a printable Persian page.
    let (status, receipt) = app
        .get(Some(&me.token), &format!("/v1/appointments/{code}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(receipt["tracking_code"], code.as_str());
    assert!(!receipt["national_code_masked"]
        .as_str()
        .unwrap()
        .contains(&c.national_code.to_string()));
    let html = app
        .client
        .get(app.url(&format!("/v1/appointments/{code}")))
        .bearer_auth(&me.token)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(html.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = html.text().await.unwrap();
    assert!(html.contains(r#"dir="rtl""#) && html.contains("کد رهگیری") && html.contains("۱۴۰۳"));

    // Someone else's token cannot see it.
    let other = app.login(&eligible_citizens(1, 1)[0]).await;
    let (status, _) = app
        .get(Some(&other), &format!("/v1/appointments/{code}"))
        .await;
    assert_eq!(status, 404);

    // Reschedule to the next free slot at the same office: same tracking code, new start.
    let (_, slots) = app
        .get(
            None,
            &format!("/v1/offices/{office_id}/slots?from=2024-09-23&to=2024-09-23"),
        )
        .await;
    let new_start = slots
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["free"].as_i64().unwrap() > 0)
        .unwrap()["start"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, moved) = app
        .post(
            Some(&me.token),
            &format!("/v1/appointments/{code}/reschedule"),
            &json!({ "office_id": office_id, "start": new_start }),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["tracking_code"], code.as_str());
    assert_eq!(moved["start"], new_start.as_str());

    // Status by national code and tracking code, with history.
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
    assert_eq!(st["status"], "booked");
    let kinds: Vec<_> = st["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "application_created",
            "payment_paid",
            "appointment_booked",
            "appointment_rescheduled"
        ]
    );
    let (status, _) = app
        .get(
            None,
            &format!("/v1/status?national_code=0499370899&tracking_code={code}"),
        )
        .await;
    assert_eq!(status, 404, "the wrong national code learns nothing");

    // Cancel: the seat returns.
    let before = app
        .state
        .engine
        .availability()
        .slot_at(
            office_id,
            chrono::DateTime::parse_from_rfc3339(&new_start)
                .unwrap()
                .timestamp(),
        )
        .unwrap();
    let (status, cancelled) = app
        .post(
            Some(&me.token),
            &format!("/v1/appointments/{code}/cancel"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let after = app
        .state
        .engine
        .availability()
        .slot_at(office_id, before.start_at)
        .unwrap();
    // No one waits for it: the seat is held by the anti-trading release for 5 to 30
    // minutes, then returns.
    assert_eq!(after.taken, before.taken);
    app.clock.advance(chrono::Duration::minutes(30));
    // This seat's release, and that of the seat the reschedule left.
    assert_eq!(app.state.engine.sweep_releases().await.unwrap(), 2);
    let released = app
        .state
        .engine
        .availability()
        .slot_at(office_id, before.start_at)
        .unwrap();
    assert_eq!(released.taken, before.taken - 1);
    let (status, body) = app
        .post(
            Some(&me.token),
            &format!("/v1/appointments/{code}/cancel"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("appointment_not_active"))
    );

    // The documents the frontend needs.
    let (status, spec) = app.get(None, "/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(spec["openapi"], "3.1.0");
    assert!(spec["paths"]["/v1/holds/{hold_id}/confirm"]["post"].is_object());
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("nobat_http_requests_total"), "{metrics}");
    // Every request is counted and timed by route (the cancel above was refused with 409; the
    // recorder is the process's, shared with other tests, so the count is not checked).
    assert!(
        metrics.contains(
            "nobat_http_requests_total{route=\"/v1/appointments/{tracking_code}/cancel\",method=\"POST\",status=\"409\"} "
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "nobat_http_request_duration_seconds_count{route=\"/v1/holds\",method=\"POST\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("nobat_booking_batch_size_count"),
        "{metrics}"
    );
    if matches!(db, TestDb::Sqlite { .. }) {
        // The writer thread's commits by kind: this journey made both.
        for kind in ["booking_batch", "writes"] {
            let series = format!("nobat_sqlite_transactions_total{{kind=\"{kind}\"}} ");
            let count = metrics
                .lines()
                .find_map(|l| l.strip_prefix(series.as_str()))
                .map(|n| n.trim().parse::<f64>().unwrap());
            assert!(count.is_some_and(|n| n >= 1.0), "{series}: {metrics}");
        }
    }
    app.stop().await;
}
on_both_backends!(the_whole_applicant_journey, super::whole_journey);

async fn declined_payment_and_expiry(db: &TestDb) {
    let app = TestApp::spawn_with(db, crate::helpers::test_clock(), |s| {
        s.engine.release_delay_min = std::time::Duration::ZERO;
        s.engine.release_delay_max = std::time::Duration::ZERO;
    })
    .await;
    let c = &eligible_citizens(2, 1)[0];
    let token = app.login(c).await;
    let (_, application) = app
        .post(
            Some(&token),
            "/v1/applications",
            &json!({ "service": "first_issuance", "form": crate::applicant::form(c) }),
        )
        .await;
    let application_id = application["application_id"].as_str().unwrap();
    let (status, declined) = app
        .post(
            Some(&token),
            "/v1/payments",
            &json!({ "application_id": application_id, "sandbox_outcome": "decline" }),
        )
        .await;
    assert_eq!(
        (status, declined["status"].as_str()),
        (201, Some("declined"))
    );
    let office = &nearest_offices(&app, c).await[0];
    let office_id = office["office_id"].as_str().unwrap();
    let start = office["earliest_free"][0]["start"].as_str().unwrap();
    let (status, hold) = app
        .post(
            Some(&token),
            "/v1/holds",
            &json!({ "application_id": application_id, "office_id": office_id, "start": start }),
        )
        .await;
    assert_eq!(status, 201, "{hold}");
    let hold_id = hold["hold_id"].as_str().unwrap();
    let (status, body) = app
        .post(
            Some(&token),
            &format!("/v1/holds/{hold_id}/confirm"),
            &json!({ "payment_id": declined["payment_id"] }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (402, Some("payment_not_paid")),
        "{body}"
    );
    // The hold is still there: a second hold is refused as already holding.
    let (status, body) = app
        .post(
            Some(&token),
            "/v1/holds",
            &json!({ "application_id": application_id, "office_id": office_id, "start": start }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("already_holding"))
    );
    let slot_start = chrono::DateTime::parse_from_rfc3339(start)
        .unwrap()
        .timestamp();
    let taken_while_held = app
        .state
        .engine
        .availability()
        .slot_at(office_id, slot_start)
        .unwrap()
        .taken;

    // Ten minutes later the sweeper frees the seat (this app runs without the anti-trading
    // release delay).
    app.clock.advance(chrono::Duration::minutes(10));
    assert_eq!(app.state.engine.sweep_expired().await.unwrap(), 1);
    assert_eq!(
        app.state
            .engine
            .availability()
            .slot_at(office_id, slot_start)
            .unwrap()
            .taken,
        taken_while_held - 1
    );
    let (status, body) = app
        .post(
            Some(&token),
            &format!("/v1/holds/{hold_id}/confirm"),
            &json!({ "payment_id": declined["payment_id"] }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("hold_not_live")),
        "{body}"
    );

    // Paying again then booking in one step works.
    let (_, paid) = app
        .post(
            Some(&token),
            "/v1/payments",
            &json!({ "application_id": application_id }),
        )
        .await;
    assert_eq!(paid["status"], "paid");
    let (status, again) = app
        .post(
            Some(&token),
            "/v1/payments",
            &json!({ "application_id": application_id }),
        )
        .await;
    assert_eq!(
        (status, &again["payment_id"]),
        (200, &paid["payment_id"]),
        "paying twice charges once"
    );
    let (status, appt) = app
        .post(Some(&token), "/v1/appointments", &json!({ "application_id": application_id, "office_id": office_id, "start": start, "payment_id": paid["payment_id"] }))
        .await;
    assert_eq!(status, 201, "{appt}");
    app.stop().await;
}
on_both_backends!(
    declined_payment_keeps_the_hold_until_it_expires,
    super::declined_payment_and_expiry
);

async fn idempotent_retries(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let me = app.ready(&eligible_citizens(3, 1)[0]).await;
    let office = &nearest_offices(&app, &me.citizen).await[0];
    let body = json!({ "application_id": me.application_id, "office_id": office["office_id"], "start": office["earliest_free"][0]["start"] });
    let send = |key: &'static str, body: serde_json::Value| {
        let req = app
            .client
            .post(app.url("/v1/holds"))
            .bearer_auth(&me.token)
            .header("idempotency-key", key)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (s1, b1) = send("k-1", body.clone()).await;
    let (s2, b2) = send("k-1", body.clone()).await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(b1, b2, "a retried request returns the first answer");
    let mut other = body.clone();
    other["start"] = office["earliest_free"][1]["start"].clone();
    let (s3, b3) = send("k-1", other).await;
    assert_eq!(
        (s3, b3["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    let holds = app.store.due_holds(i64::MAX, 100).await.unwrap();
    assert_eq!(holds.len(), 1, "one hold, however often it was retried");
    app.stop().await;
}
on_both_backends!(a_retried_post_does_nothing_twice, super::idempotent_retries);

async fn one_identity_hammering_is_limited(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let token = app.login(&eligible_citizens(4, 1)[0]).await;
    // A hundred and fifty requests at once, as a bot sends them (burst 30, then 10 a second).
    let sends = (0..150).map(|_| {
        let req = app
            .client
            .get(app.url("/v1/appointments/ABCDEFGHJKMNP"))
            .bearer_auth(&token);
        async move {
            let r = req.send().await.unwrap();
            let retry_after = r.headers().get("retry-after").is_some();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap();
            (status, retry_after, body)
        }
    });
    let answers = futures_util::future::join_all(sends).await;
    let mut statuses: Vec<u16> = Vec::new();
    for (status, retry_after, body) in answers {
        if status == 429 {
            assert_eq!(body["code"], "rate_limited");
            assert!(retry_after, "a 429 says when to come back");
        }
        statuses.push(status);
    }
    statuses.sort();
    assert!(
        statuses.iter().filter(|&&s| s == 404).count() >= 20,
        "the first burst is served"
    );
    assert!(statuses.iter().all(|&s| s == 404 || s == 429));
    assert!(statuses.contains(&429), "a bot's pace is: {statuses:?}");
    // Another applicant is not affected.
    let other = app.login(&eligible_citizens(5, 1)[0]).await;
    let r = app
        .client
        .get(app.url("/v1/appointments/ABCDEFGHJKMNP"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}
on_both_backends!(
    one_identity_hammering_is_rate_limited,
    super::one_identity_hammering_is_limited
);

/// `nobat_http_shed_total{reason="overloaded"}` as `/metrics` shows it (the recorder is the
/// process's: other tests' sheds count too).
async fn shed_overloaded(app: &TestApp) -> u64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("nobat_http_shed_total{reason=\"overloaded\"} "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

async fn overload_is_shed_at_once(db: &TestDb) {
    let app = TestApp::spawn_with(db, crate::helpers::test_clock(), |s| s.max_in_flight = 1).await;
    let counted_before = shed_overloaded(&app).await;
    // A hundred and twenty requests at once against room for one: some are refused at once,
    // honestly. Logins with a wrong serial: each admitted one waits for its failure to be
    // recorded (a write, on either backend), so requests overlap. (A status query no longer
    // does on SQLite: its keyed reads run on the calling thread, without yielding.)
    let citizen = &eligible_citizens(5, 1)[0];
    let sends = (0..120).map(|_| {
        let req = app.client.post(app.url("/v1/sessions")).json(&json!({
            "national_code": citizen.national_code.to_string(),
            "birth_certificate_serial": "ج99/999999",
        }));
        async move {
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.headers().get("retry-after").is_some(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    });
    let answers = futures_util::future::join_all(sends).await;
    let shed: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 503).collect();
    // Refused credentials, then a locked code (429), or shed.
    assert!(answers.iter().all(|(s, _, _)| [401, 429, 503].contains(s)));
    assert!(
        answers.iter().any(|(s, _, _)| *s == 401),
        "those admitted are answered"
    );
    // How many are shed depends on timing; every refusal must be the honest one.
    eprintln!("shed {} of {}", shed.len(), answers.len());
    assert!(
        !shed.is_empty(),
        "a hundred and twenty at once against room for one"
    );
    for (_, retry_after, body) in &shed {
        assert!(*retry_after);
        assert_eq!(body["code"], "overloaded");
    }
    // Each is counted by reason (and the log has a line a second at most, not one each).
    assert!(shed_overloaded(&app).await - counted_before >= shed.len() as u64);
    // Probes stay outside the limit.
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}
on_both_backends!(
    overload_is_shed_with_retry_after,
    super::overload_is_shed_at_once
);
