//! Logins cannot be brute-forced, and session tokens reveal nothing: failed logins are limited
//! per national code and per client address, across processes on one database; unknown codes
//! and wrong serials are answered alike; each lockout is one event; tokens are sealed, and a
//! rotated secret's tokens are accepted for a grace period. On both backends.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use nobat::domain::registry::CivilRegistry;
use nobat::domain::NationalCode;
use serde_json::{json, Value};

use crate::applicant::eligible_citizens;
use crate::helpers::{scalar, test_clock, TestApp, TestDb};
use crate::on_both_backends;

const WRONG_SERIAL: &str = "ج99/999999";

/// A well-formed national code the civil registry does not know.
fn unknown_code(registry: &dyn CivilRegistry, seed: u8) -> NationalCode {
    (0u32..)
        .filter_map(|i| {
            let mut nine = [9u8, 8, seed % 10, 7, 0, 0, 0, 0, 0];
            for (d, slot) in i.to_string().bytes().rev().zip(nine.iter_mut().rev()) {
                *slot = d - b'0';
            }
            NationalCode::from_first_nine(nine)
        })
        .find(|c| registry.lookup(c).is_none())
        .expect("some code is unknown")
}

impl TestApp {
    /// Logs in; the status, the body and the `Retry-After` header.
    pub async fn try_login(&self, code: &str, serial: &str) -> (u16, Value, Option<u64>) {
        let resp = self
            .client
            .post(self.url("/v1/sessions"))
            .json(&json!({ "national_code": code, "birth_certificate_serial": serial }))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse().unwrap());
        (status, resp.json().await.unwrap_or(Value::Null), retry)
    }
}

async fn lockouts(app: &TestApp) -> i64 {
    scalar(
        &app.store,
        "SELECT COUNT(*) FROM events WHERE kind = 'login_locked'",
    )
    .await
}

/// Five wrong serials lock the code for the rest of its 15-minute window, even against the
/// right serial; an unknown code gets exactly the same answers; one event per lockout; the
/// window ends and the right serial works again.
async fn wrong_serials_lock_the_code(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let c = &eligible_citizens(0, 1)[0];
    let known = c.national_code.to_string();
    let unknown = unknown_code(app.state.registry.as_ref(), 1).to_string();
    let mut answers = Vec::new();
    for code in [&known, &unknown] {
        let mut seen = Vec::new();
        for _ in 0..5 {
            let (status, body, _) = app.try_login(code, WRONG_SERIAL).await;
            seen.push((status, body));
        }
        assert!(seen.iter().all(|(s, _)| *s == 401), "{seen:?}");
        answers.push(seen.pop().unwrap().1);
        let (status, body, retry) = app
            .try_login(code, &c.birth_certificate_serial.to_string())
            .await;
        assert_eq!((status, body["code"].as_str()), (429, Some("login_locked")));
        assert_eq!(
            retry,
            Some(15 * 60),
            "the window started at the first failure"
        );
        answers.push(body);
    }
    assert_eq!(
        answers[0], answers[2],
        "unknown code and wrong serial: one answer"
    );
    assert_eq!(answers[1], answers[3], "and one lockout");
    assert_eq!(lockouts(&app).await, 2, "one event per lockout");
    app.try_login(&known, WRONG_SERIAL).await;
    assert_eq!(lockouts(&app).await, 2, "a locked code is not locked again");
    let sql = format!(
        "SELECT COUNT(*) FROM events WHERE kind = 'login_locked' AND subject = 'login:{known}'"
    );
    assert_eq!(scalar(&app.store, &sql).await, 1);

    app.clock.advance(chrono::Duration::minutes(14));
    let (status, _, retry) = app
        .try_login(&known, &c.birth_certificate_serial.to_string())
        .await;
    assert_eq!((status, retry), (429, Some(60)));
    app.clock.advance(chrono::Duration::minutes(1));
    app.login(c).await;
    // A success clears the citizen's count: four more typos do not lock.
    for _ in 0..4 {
        assert_eq!(app.try_login(&known, WRONG_SERIAL).await.0, 401);
    }
    app.login(c).await;
    app.stop().await;
}
on_both_backends!(
    wrong_serials_lock_the_code,
    super::wrong_serials_lock_the_code
);

/// One client address guessing across many codes is locked at its own limit, whatever codes
/// it tries next (the right serial of a fresh one included).
async fn one_address_is_limited_across_codes(db: &TestDb) {
    let app = TestApp::spawn_with(db, test_clock(), |s| {
        s.login_limits.per_address_max = 8;
    })
    .await;
    for seed in 0..4 {
        let code = unknown_code(app.state.registry.as_ref(), seed).to_string();
        for _ in 0..2 {
            assert_eq!(app.try_login(&code, WRONG_SERIAL).await.0, 401);
        }
    }
    let c = &eligible_citizens(1, 1)[0];
    let (status, body, retry) = app
        .try_login(
            &c.national_code.to_string(),
            &c.birth_certificate_serial.to_string(),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (429, Some("login_locked")));
    assert_eq!(retry, Some(15 * 60));
    let sql = "SELECT COUNT(*) FROM events WHERE kind = 'login_locked' AND subject LIKE 'login-address:%'";
    assert_eq!(scalar(&app.store, sql).await, 1);
    app.stop().await;
}
on_both_backends!(
    one_address_is_limited_across_codes,
    super::one_address_is_limited_across_codes
);

/// Behind a proxy, IPv6 clients are counted by their /64: a client that picks a new address
/// of its prefix for every guess is locked at the address limit all the same, while another
/// prefix (and an IPv4 client) is untouched.
async fn an_ipv6_prefix_is_one_address(db: &TestDb) {
    let app = TestApp::spawn_with(db, test_clock(), |s| {
        s.login_limits.per_address_max = 4;
        s.client_ip_header = Some("x-forwarded-for".into());
    })
    .await;
    let login_from = |address: String, code: String, serial: String| {
        let request = app
            .client
            .post(app.url("/v1/sessions"))
            .header("x-forwarded-for", address)
            .json(&json!({ "national_code": code, "birth_certificate_serial": serial }));
        async move {
            let resp = request.send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (status, body["code"].as_str().map(str::to_owned))
        }
    };
    for i in 0..4u8 {
        let code = unknown_code(app.state.registry.as_ref(), i).to_string();
        let address = format!("2001:db8:1:2:{i}::{}", 7 * i + 1);
        let (status, _) = login_from(address, code, WRONG_SERIAL.into()).await;
        assert_eq!(status, 401);
    }
    let c = &eligible_citizens(1, 1)[0];
    let (code, serial) = (
        c.national_code.to_string(),
        c.birth_certificate_serial.to_string(),
    );
    let fresh_in_prefix = login_from("2001:db8:1:2:ffff::1".into(), code.clone(), serial.clone());
    assert_eq!(fresh_in_prefix.await, (429, Some("login_locked".into())));
    let other_prefix = login_from("2001:db8:1:3::1".into(), code.clone(), serial.clone());
    assert_eq!(other_prefix.await.0, 201);
    let ipv4 = login_from("192.0.2.10".into(), code, serial);
    assert_eq!(ipv4.await.0, 201);
    app.stop().await;
}
on_both_backends!(
    an_ipv6_prefix_is_one_address,
    super::an_ipv6_prefix_is_one_address
);

/// Forty guesses for one code at once: exactly five are checked (and fail), the rest are
/// refused before the registry is asked; the right serial is then refused too.
async fn concurrent_guesses_cannot_pass_the_limit(db: &TestDb) {
    let app = Arc::new(TestApp::spawn(db).await);
    let c = eligible_citizens(2, 1)[0].clone();
    let code = c.national_code.to_string();
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (app, code) = (app.clone(), code.clone());
            tokio::spawn(async move { app.try_login(&code, WRONG_SERIAL).await.0 })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 35);
    let (status, _, _) = app
        .try_login(&code, &c.birth_certificate_serial.to_string())
        .await;
    assert_eq!(status, 429);
    assert_eq!(lockouts(&app).await, 1);
    Arc::try_unwrap(app).ok().expect("tasks done").stop().await;
}
on_both_backends!(
    concurrent_guesses_cannot_pass_the_limit,
    super::concurrent_guesses_cannot_pass_the_limit
);

/// Two processes on one database count into the same rows: three failures on one and two on
/// the other lock the code on both.
async fn the_count_is_shared_across_processes(db: &TestDb) {
    let clock = test_clock();
    let a = TestApp::spawn_with(db, clock.clone(), |_| {}).await;
    let b = TestApp::spawn_with(db, clock, |_| {}).await;
    let c = &eligible_citizens(3, 1)[0];
    let code = c.national_code.to_string();
    for app in [&a, &b, &a, &b, &a] {
        assert_eq!(app.try_login(&code, WRONG_SERIAL).await.0, 401);
    }
    let serial = c.birth_certificate_serial.to_string();
    assert_eq!(a.try_login(&code, &serial).await.0, 429);
    assert_eq!(b.try_login(&code, &serial).await.0, 429);
    assert_eq!(lockouts(&a).await, 1);
    a.stop().await;
    b.stop().await;
}
on_both_backends!(
    the_count_is_shared_across_processes,
    super::the_count_is_shared_across_processes
);

/// A session token carries nothing readable, and works on every node with the secret; after a
/// rotation the old secret's tokens work for the grace period only, and a node without the
/// old secret refuses them.
async fn tokens_are_opaque_and_survive_a_rotation(db: &TestDb) {
    const OLD: &str = "old-secret-0123456789abcdef0123456789";
    const NEW: &str = "new-secret-0123456789abcdef0123456789";
    let clock = test_clock();
    let old = TestApp::spawn_with(db, clock.clone(), |s| {
        s.token_secret = Some(OLD.into());
    })
    .await;
    let rotated = TestApp::spawn_with(db, clock.clone(), |s| {
        s.token_secret = Some(NEW.into());
        s.token_secret_previous = Some(OLD.into());
        s.token_previous_grace = Duration::from_secs(600);
    })
    .await;
    let fresh = TestApp::spawn_with(db, clock.clone(), |s| {
        s.token_secret = Some(NEW.into());
    })
    .await;
    let c = &eligible_citizens(4, 1)[0];
    let token = old.login(c).await;
    let code = c.national_code.to_string();
    assert!(!token.contains(&code));
    let payload = token.strip_prefix("v2.").expect("format 2");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains(&code));

    // An authenticated request that finds nothing (404) against one without a session (401).
    let probe = |app: &TestApp, token: &str| {
        let request = app
            .client
            .get(app.url("/v1/appointments/ABCDEFGHJKMNP"))
            .bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(probe(&old, &token).await, 404);
    assert_eq!(
        probe(&rotated, &token).await,
        404,
        "the previous secret's token"
    );
    assert_eq!(probe(&fresh, &token).await, 401, "no previous secret there");
    let new_token = rotated.login(c).await;
    assert_eq!(
        probe(&fresh, &new_token).await,
        404,
        "any node with the secret"
    );
    clock.advance(chrono::Duration::seconds(600));
    assert_eq!(probe(&rotated, &token).await, 401, "the grace is over");
    assert_eq!(probe(&rotated, &new_token).await, 404);
    for app in [old, rotated, fresh] {
        app.stop().await;
    }
}
on_both_backends!(
    tokens_are_opaque_and_survive_a_rotation,
    super::tokens_are_opaque_and_survive_a_rotation
);
