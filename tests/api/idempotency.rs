//! A retried booking request with the same `Idempotency-Key` gets the first answer back, status
//! and bytes, from the record the writer stored with the effect; records of the first format
//! (a booking's engine outcome as JSON) still replay, and one that cannot is refused plainly.

use serde_json::{json, Value};

use crate::applicant::{eligible_citizens, form, nearest_offices, Ready};
use crate::helpers::{exec, scalar, TestApp, TestDb};
use crate::on_both_backends;

/// An answer as the client got it.
#[derive(Debug, PartialEq, Eq)]
struct Raw {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

async fn send(app: &TestApp, me: &Ready, path: &str, key: &str, body: &Value) -> Raw {
    let r = app
        .client
        .post(app.url(path))
        .bearer_auth(&me.token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    Raw {
        status: r.status().as_u16(),
        content_type: r.headers()["content-type"].to_str().unwrap().to_string(),
        body: r.bytes().await.unwrap().to_vec(),
    }
}

/// Sends `body` twice under `key` and asserts the second answer is the first, byte for byte;
/// returns it.
async fn twice(app: &TestApp, me: &Ready, path: &str, key: &str, body: &Value) -> Raw {
    let first = send(app, me, path, key, body).await;
    let again = send(app, me, path, key, body).await;
    assert_eq!(
        first,
        again,
        "{path} replayed: {}",
        String::from_utf8_lossy(&again.body)
    );
    first
}

/// The `nth` eligible citizen, logged in, with nothing filed yet.
async fn logged_in(app: &TestApp, nth: usize) -> Ready {
    let citizen = eligible_citizens(nth, 1).remove(0);
    Ready {
        token: app.login(&citizen).await,
        citizen,
        application_id: String::new(),
        payment_id: String::new(),
    }
}

/// The stored record of `key`: format, status and body.
async fn record(app: &TestApp, key: &str) -> (i64, i64, String) {
    let sql = format!(
        "SELECT CAST(format_version AS BIGINT), response_status, response_body FROM idempotency_keys WHERE key = '{key}'"
    );
    match &app.store {
        nobat::store::Store::Sqlite(pool) => sqlx::query_as(&sql).fetch_one(pool).await.unwrap(),
        nobat::store::Store::Postgres(pool) => sqlx::query_as(&sql).fetch_one(pool).await.unwrap(),
    }
}

async fn replays_are_what_the_client_saw(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let me = app.ready(&eligible_citizens(5, 1)[0]).await;
    let office = &nearest_offices(&app, &me.citizen).await[0];
    let office_id = office["office_id"].as_str().unwrap();
    let starts: Vec<&str> = office["earliest_free"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["start"].as_str().unwrap())
        .collect();
    let hold = |start: &str| json!({ "application_id": me.application_id, "office_id": office_id, "start": start });

    // A slot with no seat left (in the database; the view still shows it free): the refusal
    // carries alternatives, worked out when it was first answered.
    exec(
        &app.store,
        &format!(
            "UPDATE slots SET capacity = 0 WHERE office_id = '{office_id}' AND start_at = {}",
            chrono::DateTime::parse_from_rfc3339(starts[0])
                .unwrap()
                .timestamp()
        ),
    )
    .await;
    let full = send(&app, &me, "/v1/holds", "k-full", &hold(starts[0])).await;
    assert_eq!(full.status, 409);
    assert_eq!(full.json()["code"], "slot_full");
    let offered = &full.json()["extra"]["alternatives"]["same_office"];
    assert!(
        offered
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(|s| s["start"] != starts[0])),
        "alternatives, the full slot not among them: {offered}"
    );
    assert_eq!(full.content_type, "application/problem+json");
    // The world moves on (the first alternative fills up); the retry still gets the first answer.
    exec(&app.store, "UPDATE slots SET capacity = taken").await;
    app.state.engine.refresh().await.unwrap();
    let again = send(&app, &me, "/v1/holds", "k-full", &hold(starts[0])).await;
    assert_eq!(full, again, "a refusal replays as it was first answered");
    exec(&app.store, "UPDATE slots SET capacity = 4").await;
    app.state.engine.refresh().await.unwrap();

    let held = twice(&app, &me, "/v1/holds", "k-hold", &hold(starts[1])).await;
    assert_eq!(held.status, 201);
    assert_eq!(held.content_type, "application/json");
    let stored = record(&app, "k-hold").await;
    assert_eq!(
        stored,
        (2, 201, String::from_utf8(held.body.clone()).unwrap()),
        "the record holds the answer as sent, in format 2"
    );
    let hold_id = held.json()["hold_id"].as_str().unwrap().to_string();

    // A refusal: a second hold while holding one.
    let refused = twice(&app, &me, "/v1/holds", "k-again", &hold(starts[2])).await;
    assert_eq!(refused.status, 409);
    assert_eq!(refused.json()["code"], "already_holding");

    let confirm = json!({ "payment_id": me.payment_id });
    let path = format!("/v1/holds/{hold_id}/confirm");
    let booked = twice(&app, &me, &path, "k-confirm", &confirm).await;
    assert_eq!(booked.status, 201);
    let code = booked.json()["tracking_code"].as_str().unwrap().to_string();

    let path = format!("/v1/appointments/{code}/cancel");
    let cancelled = twice(&app, &me, &path, "k-cancel", &Value::Null).await;
    assert_eq!(
        (cancelled.status, &cancelled.json()["status"]),
        (200, &json!("cancelled"))
    );
    assert_eq!(
        scalar(&app.store, "SELECT COUNT(*) FROM holds").await,
        1,
        "each request took effect once"
    );
    assert_eq!(
        scalar(
            &app.store,
            "SELECT COUNT(*) FROM idempotency_keys WHERE format_version = 2"
        )
        .await,
        // The applicant's own session, application and payment are not keyed here.
        5
    );
    app.stop().await;
}
on_both_backends!(
    booking_replays_are_byte_identical,
    super::replays_are_what_the_client_saw
);

/// A booking record of the first format, as a server before migration 0006 stored it: the
/// engine's outcome as JSON, status 0, no format (the column's default, 1).
async fn first_format_records(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let me = app.ready(&eligible_citizens(6, 1)[0]).await;
    let office = &nearest_offices(&app, &me.citizen).await[0];
    let body = json!({ "application_id": me.application_id, "office_id": office["office_id"], "start": office["earliest_free"][0]["start"] });
    let first = send(&app, &me, "/v1/holds", "k-v1", &body).await;
    assert_eq!(first.status, 201);
    let hold_id = first.json()["hold_id"].as_str().unwrap().to_string();
    let h = app.store.hold(&hold_id).await.unwrap().unwrap();
    let v1 = format!(
        r#"{{"outcome":"held","hold":{{"id":"{}","slot_id":{},"application_id":"{}","national_code":"{}","service":"{}","status":"live","created_at":{},"expires_at":{}}}}}"#,
        h.id, h.slot_id, h.application_id, h.national_code, h.service, h.created_at, h.expires_at
    );
    let set = |body: &str, format: i64| {
        format!(
            "UPDATE idempotency_keys SET format_version = {format}, response_status = 0, response_body = '{body}' WHERE key = 'k-v1'"
        )
    };
    exec(&app.store, &set(&v1, 1)).await;
    let replayed = send(&app, &me, "/v1/holds", "k-v1", &body).await;
    assert_eq!(
        first,
        replayed,
        "a format-1 record replays through the legacy decoder: {}",
        String::from_utf8_lossy(&replayed.body)
    );

    // An outcome this version no longer reads, or a format it does not know: refused plainly,
    // and the request is not run again.
    let renamed = v1.replace(r#""outcome":"held""#, r#""outcome":"held_v0""#);
    for (stored, format) in [(renamed.as_str(), 1), (v1.as_str(), 3)] {
        exec(&app.store, &set(stored, format)).await;
        let refused = send(&app, &me, "/v1/holds", "k-v1", &body).await;
        assert_eq!(
            (refused.status, &refused.json()["code"]),
            (422, &json!("idempotency_record_unreadable")),
            "format {format}"
        );
    }
    assert_eq!(scalar(&app.store, "SELECT COUNT(*) FROM holds").await, 1);
    app.stop().await;
}
on_both_backends!(
    first_format_booking_records_replay_or_are_refused,
    super::first_format_records
);

/// Twins of an application and of a payment, sent at once under one key (a client that timed
/// out and retried while the first was still running): each takes effect once, and every twin
/// gets the first one's answer, byte for byte, whichever of them reached the writer first. The
/// answer is stored with the effect, so no twin runs again after the first committed.
async fn twins_sent_at_once(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let me = logged_in(&app, 6).await;
    let citizen = &me.citizen;
    let twins = |path: &'static str, key: &'static str, body: Value| {
        let me = &me;
        let app = &app;
        futures_util::future::join_all((0..6).map(move |_| {
            let body = body.clone();
            async move { send(app, me, path, key, &body).await }
        }))
    };
    let applied = json!({ "service": "first_issuance", "form": form(citizen) });
    let answers = twins("/v1/applications", "k-apply", applied).await;
    assert_eq!(answers[0].status, 201, "{:?}", answers[0].json());
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    let application_id = answers[0].json()["application_id"].clone();
    let own = format!(
        "SELECT COUNT(*) FROM applications WHERE national_code = '{}'",
        citizen.national_code
    );
    assert_eq!(scalar(&app.store, &own).await, 1);
    assert_eq!(
        record(&app, "k-apply").await,
        (2, 201, String::from_utf8(answers[0].body.clone()).unwrap())
    );

    let paid = json!({ "application_id": application_id, "sandbox_outcome": "decline" });
    let answers = twins("/v1/payments", "k-pay", paid).await;
    assert_eq!(answers[0].status, 201, "{:?}", answers[0].json());
    assert_eq!(answers[0].json()["status"], "declined");
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    assert_eq!(
        scalar(&app.store, "SELECT COUNT(*) FROM payments").await,
        1,
        "a declined payment is not deduplicated by the application: only the key kept it once"
    );
    app.stop().await;
}
on_both_backends!(
    twins_sent_at_once_take_effect_once,
    super::twins_sent_at_once
);

/// An application's handler runs before its key's record is read (`run_then_replay`): a retry
/// is answered from the record its first write kept, and a key already used is still refused
/// when its new request would be refused anyway, or written.
async fn application_retries(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let me = logged_in(&app, 7).await;
    let citizen = &me.citizen;
    let apply = |service: &str| json!({ "service": service, "form": form(citizen) });
    let applied = twice(
        &app,
        &me,
        "/v1/applications",
        "k-app",
        &apply("first_issuance"),
    )
    .await;
    assert_eq!(applied.status, 201, "{:?}", applied.json());
    assert_eq!(
        record(&app, "k-app").await,
        (2, 201, String::from_utf8(applied.body.clone()).unwrap())
    );

    // Card pickup is refused before any write; under a fresh key it says so, and keeps nothing.
    let pickup = apply("card_pickup");
    for _ in 0..2 {
        let refused = send(&app, &me, "/v1/applications", "k-pickup", &pickup).await;
        assert_eq!(
            (refused.status, refused.json()["code"].clone()),
            (422, json!("service_not_bookable"))
        );
    }
    let kept = "SELECT COUNT(*) FROM idempotency_keys WHERE key = 'k-pickup'";
    assert_eq!(scalar(&app.store, kept).await, 0, "a refusal is not kept");
    // Under the used key, the key's first use answers: the refusal, or the write, never runs.
    let mut rewritten = apply("first_issuance");
    rewritten["form"]["father"]["first_name"] = json!("حسن");
    for other in [pickup, rewritten] {
        let reused = send(&app, &me, "/v1/applications", "k-app", &other).await;
        assert_eq!(
            (reused.status, reused.json()["code"].clone()),
            (422, json!("idempotency_key_reused")),
            "{other}"
        );
    }
    let own = format!(
        "SELECT COUNT(*) FROM applications WHERE national_code = '{}'",
        citizen.national_code
    );
    assert_eq!(scalar(&app.store, &own).await, 1, "one application written");
    app.stop().await;
}
on_both_backends!(
    an_application_is_run_before_its_key_is_read,
    super::application_retries
);
