//! Admin changes act at once, on every node: two app instances on one database (as two
//! processes on one PostgreSQL would be; SQLite too), the change made through one. Fees and
//! holidays are in force on the other after its next poll of the configuration version
//! (stepped here with `poll_once`; one test lets the real poller run); a revoked staff token
//! stops working on both at once; every admin change is in the audit log.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::applicant::{eligible_citizens, nearest_offices};
use crate::helpers::{scalar, test_clock, TestApp, TestDb};
use crate::on_both_backends;
use crate::staff::ADMIN_TOKEN;
use nobat::http::live::poll_once;

async fn pair(db: &TestDb, poll: Option<Duration>) -> (TestApp, TestApp) {
    let clock = test_clock();
    let settings = move |s: &mut nobat::app::Settings| {
        s.admin_token = Some(ADMIN_TOKEN.to_string());
        s.token_secret = Some("shared-secret-0123456789abcdef012345".into());
        s.outbox_interval = None;
        s.config_poll_interval = poll;
    };
    let a = TestApp::spawn_with(db, clock.clone(), settings).await;
    let b = TestApp::spawn_with(db, clock, settings).await;
    (a, b)
}

async fn first_issuance_fee(app: &TestApp) -> i64 {
    let (status, services) = app.get(None, "/v1/services").await;
    assert_eq!(status, 200);
    services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["code"] == "first_issuance")
        .unwrap()["fee_rials"]
        .as_i64()
        .unwrap()
}

impl TestApp {
    pub async fn put(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .client
            .put(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }

    pub async fn delete(&self, token: &str, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }
}

/// A fee set on one node is charged there at once and on the other after its poll; without a
/// restart of either.
async fn fees_apply_without_a_restart(db: &TestDb) {
    let (a, b) = pair(db, None).await;
    let before = first_issuance_fee(&a).await;
    let (status, body) = a
        .put(
            ADMIN_TOKEN,
            "/v1/admin/fees/1403",
            &json!({ "fees": { "first_issuance": before + 111_000 } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        first_issuance_fee(&a).await,
        before + 111_000,
        "at once here"
    );
    assert_eq!(first_issuance_fee(&b).await, before, "not yet polled");
    poll_once(&b.state).await;
    assert_eq!(first_issuance_fee(&b).await, before + 111_000);
    // And charged: a payment through the other node pays the new fee.
    let me = b.ready(&eligible_citizens(0, 1)[0]).await;
    let payment = b.store.payment(&me.payment_id).await.unwrap().unwrap();
    assert_eq!(payment.amount_rials, before + 111_000);
    // A refused change is audited too, and changes nothing anywhere.
    let version = b.state.config_watch.seen();
    let (status, _) = a
        .put(
            ADMIN_TOKEN,
            "/v1/admin/fees/1403",
            &json!({ "fees": { "first_issuance": -1 } }),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(b.store.config_version().await.unwrap(), version);
    let (_, audit) = a.get(Some(ADMIN_TOKEN), "/v1/admin/audit?limit=2").await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| (e["status"].as_i64().unwrap(), e["path"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        [(422, "/v1/admin/fees/1403"), (200, "/v1/admin/fees/1403")]
    );
    assert_eq!(entries[1]["actor"], "admin:configured");
    assert_eq!(entries[1]["method"], "PUT");
    assert!(entries[1]["request"]
        .as_str()
        .unwrap()
        .contains(&(before + 111_000).to_string()));
    a.stop().await;
    b.stop().await;
}
on_both_backends!(
    fees_apply_without_a_restart,
    super::fees_apply_without_a_restart
);

/// A holiday announced on one node is in the calendar in memory on both: nothing can be
/// held on it through either.
async fn holidays_update_the_calendar_on_every_node(db: &TestDb) {
    let (a, b) = pair(db, None).await;
    let c = &eligible_citizens(1, 1)[0];
    let office_id = nearest_offices(&b, c).await[0]["office_id"]
        .as_str()
        .unwrap()
        .to_string();
    let monday = chrono::NaiveDate::from_ymd_opt(2024, 9, 23).unwrap();
    let free = b.free_slots(&office_id, "2024-09-23").await;
    assert!(!free.is_empty());
    assert!(b.state.holidays.current().is_holiday(monday).is_none());
    let (status, report) = a
        .post(
            Some(ADMIN_TOKEN),
            "/v1/admin/holidays",
            &json!({ "date": "2024-09-23", "name_fa": "تعطیل اعلامی", "name_en": "Announced" }),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert!(a.state.holidays.current().is_holiday(monday).is_some());
    poll_once(&b.state).await;
    assert!(b.state.holidays.current().is_holiday(monday).is_some());
    let me = b.ready(c).await;
    let (status, body) = b
        .post(
            Some(&me.token),
            "/v1/holds",
            &json!({ "application_id": me.application_id, "office_id": office_id, "start": free[0]["start"] }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("closed_day")),
        "{body}"
    );
    assert!(b.free_slots(&office_id, "2024-09-23").await.is_empty());
    // A restarted node has it too (the calendar is rebuilt from the database).
    let c2 = TestApp::spawn_with(db, test_clock(), |_| {}).await;
    assert!(c2.state.holidays.current().is_holiday(monday).is_some());
    c2.stop().await;
    a.stop().await;
    b.stop().await;
}
on_both_backends!(
    holidays_update_the_calendar_on_every_node,
    super::holidays_update_the_calendar_on_every_node
);

/// A revoked staff token is refused at once by both nodes (no poll); listing shows it
/// revoked; revoking again answers the same; an unknown id is 404.
async fn revoked_staff_tokens_stop_at_once(db: &TestDb) {
    let (a, b) = pair(db, None).await;
    let office_id = a.state.directory().all()[0].id.to_string();
    let (status, issued) = a
        .post(
            Some(ADMIN_TOKEN),
            &format!("/v1/admin/offices/{office_id}/staff-tokens"),
            &json!({ "name": "desk 7" }),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().unwrap();
    let token_id = issued["token_id"].as_str().unwrap();
    let day = "/v1/staff/appointments?date=2024-09-22";
    assert_eq!(b.get(Some(token), day).await.0, 200);
    let (status, listed) = b
        .get(
            Some(ADMIN_TOKEN),
            &format!("/v1/admin/offices/{office_id}/staff-tokens"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed[0]["token_id"], token_id);
    assert!(listed[0].get("revoked_at").is_none());
    assert!(
        !listed.to_string().contains(token),
        "never the token itself"
    );

    let (status, revoked) = a
        .delete(ADMIN_TOKEN, &format!("/v1/admin/staff-tokens/{token_id}"))
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    assert_eq!(
        b.get(Some(token), day).await.0,
        401,
        "the other node, at once"
    );
    assert_eq!(a.get(Some(token), day).await.0, 401);
    let (status, again) = b
        .delete(ADMIN_TOKEN, &format!("/v1/admin/staff-tokens/{token_id}"))
        .await;
    assert_eq!(
        (status, &again["revoked_at"]),
        (200, &revoked["revoked_at"])
    );
    let (status, body) = b
        .delete(ADMIN_TOKEN, "/v1/admin/staff-tokens/0123456789abcdef")
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("token_not_found"))
    );
    let sql = "SELECT COUNT(*) FROM events WHERE kind = 'operator_token_revoked'";
    assert_eq!(scalar(&a.store, sql).await, 1);
    // Both revocations and the refused one are audited, by whoever asked.
    let (_, audit) = a.get(Some(ADMIN_TOKEN), "/v1/admin/audit").await;
    let methods: Vec<(&str, i64)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["method"].as_str().unwrap(), e["status"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        methods,
        [
            ("DELETE", 404),
            ("DELETE", 200),
            ("DELETE", 200),
            ("POST", 201)
        ]
    );
    a.stop().await;
    b.stop().await;
}
on_both_backends!(
    revoked_staff_tokens_stop_at_once,
    super::revoked_staff_tokens_stop_at_once
);

/// The audit log pages backwards by id, bounded, and filters by actor.
async fn the_audit_log_pages(db: &TestDb) {
    let (a, b) = pair(db, None).await;
    for fee in 0..5 {
        let (status, _) = a
            .put(
                ADMIN_TOKEN,
                "/v1/admin/fees/1404",
                &json!({ "fees": { "first_issuance": 1_000_000 + fee } }),
            )
            .await;
        assert_eq!(status, 200);
    }
    let mut ids = Vec::new();
    let mut path = "/v1/admin/audit?limit=2".to_string();
    loop {
        let (status, page) = b.get(Some(ADMIN_TOKEN), &path).await;
        assert_eq!(status, 200, "{page}");
        let entries = page["entries"].as_array().unwrap();
        assert!(entries.len() <= 2);
        ids.extend(entries.iter().map(|e| e["id"].as_i64().unwrap()));
        match page["next_before_id"].as_i64() {
            Some(next) => path = format!("/v1/admin/audit?limit=2&before_id={next}"),
            None => break,
        }
    }
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let (_, none) = b
        .get(Some(ADMIN_TOKEN), "/v1/admin/audit?actor=admin:someone")
        .await;
    assert_eq!(none["entries"], json!([]));
    let (status, body) = b.get(Some(ADMIN_TOKEN), "/v1/admin/audit?limit=501").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_limit"))
    );
    assert_eq!(b.get(None, "/v1/admin/audit").await.0, 401);
    a.stop().await;
    b.stop().await;
}
on_both_backends!(the_audit_log_pages, super::the_audit_log_pages);

/// The real poller: a change on one node is in force on the other within a few seconds.
async fn the_poller_picks_changes_up_within_seconds(db: &TestDb) {
    let (a, b) = pair(db, Some(Duration::from_millis(200))).await;
    let before = first_issuance_fee(&b).await;
    let (status, _) = a
        .put(
            ADMIN_TOKEN,
            "/v1/admin/fees/1403",
            &json!({ "fees": { "first_issuance": before + 5 } }),
        )
        .await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    while first_issuance_fee(&b).await != before + 5 {
        assert!(
            Instant::now() < deadline,
            "not in force on the other node after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.stop().await;
    b.stop().await;
}
on_both_backends!(
    the_poller_picks_changes_up_within_seconds,
    super::the_poller_picks_changes_up_within_seconds
);
