//! One charge per application: concurrent payments for one application with different
//! Idempotency-Keys record one paid payment, which the database enforces
//! (`payments_one_paid`), and charge one order at the gateway. On both backends.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::applicant::{eligible_citizens, form};
use crate::helpers::{scalar, try_exec, TestApp, TestDb};
use crate::on_both_backends;

async fn twenty_payments_at_once_charge_once(db: &TestDb) {
    let app = Arc::new(TestApp::spawn(db).await);
    let c = &eligible_citizens(0, 1)[0];
    let token = app.login(c).await;
    let (status, body) = app
        .post(
            Some(&token),
            "/v1/applications",
            &json!({ "service": "first_issuance", "form": form(c) }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let application_id = body["application_id"].as_str().unwrap().to_string();
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (app, token, id, barrier) = (
                app.clone(),
                token.clone(),
                application_id.clone(),
                barrier.clone(),
            );
            tokio::spawn(async move {
                let request = app
                    .client
                    .post(app.url("/v1/payments"))
                    .bearer_auth(&token)
                    .header("idempotency-key", format!("pay-{i}"))
                    .json(&json!({ "application_id": id }));
                barrier.wait().await;
                let resp = request.send().await.unwrap();
                let status = resp.status().as_u16();
                (status, resp.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert!(
        answers.iter().all(|(s, _)| *s == 201 || *s == 200),
        "{answers:?}"
    );
    assert_eq!(answers.iter().filter(|(s, _)| *s == 201).count(), 1);
    let first = &answers[0].1["payment_id"];
    assert!(
        answers
            .iter()
            .all(|(_, b)| &b["payment_id"] == first && b["status"] == "paid"),
        "every answer is the one payment: {answers:?}"
    );
    let one = |sql: &str| {
        let sql = sql.replace("$APP", &application_id);
        let store = app.store.clone();
        async move { scalar(&store, &sql).await }
    };
    assert_eq!(
        one("SELECT COUNT(*) FROM payments WHERE application_id = '$APP'").await,
        1
    );
    assert_eq!(
        one("SELECT COUNT(*) FROM events WHERE kind = 'payment_paid' AND subject = '$APP'").await,
        1
    );
    assert!(
        app.gateway.repeated_charges(&application_id).is_some(),
        "the gateway settled the application's order"
    );
    // The database refuses a second paid payment whatever writes it.
    let second = format!("INSERT INTO payments (id, application_id, amount_rials, status, gateway, created_at) VALUES ('pay_by_hand', '{application_id}', 1, 'paid', 'sandbox', 0)");
    assert!(try_exec(&app.store, &second).await.is_err());
    let declined = second.replace("'paid'", "'declined'");
    assert!(
        try_exec(&app.store, &declined).await.is_ok(),
        "declined attempts are not limited"
    );
    Arc::try_unwrap(app).ok().expect("tasks done").stop().await;
}
on_both_backends!(
    twenty_payments_at_once_charge_once,
    super::twenty_payments_at_once_charge_once
);

/// Two processes on one database, ten payments through each at once: one payment.
async fn payments_through_two_processes_charge_once(db: &TestDb) {
    let clock = crate::helpers::test_clock();
    let secret = |s: &mut nobat::app::Settings| {
        s.token_secret = Some("shared-secret-0123456789abcdef012345".into())
    };
    let a = Arc::new(TestApp::spawn_with(db, clock.clone(), secret).await);
    let b = Arc::new(TestApp::spawn_with(db, clock, secret).await);
    let c = &eligible_citizens(1, 1)[0];
    let token = a.login(c).await;
    let (_, body) = a
        .post(
            Some(&token),
            "/v1/applications",
            &json!({ "service": "first_issuance", "form": form(c) }),
        )
        .await;
    let application_id = body["application_id"].as_str().unwrap().to_string();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let app = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (token, id) = (token.clone(), application_id.clone());
            tokio::spawn(async move {
                app.client
                    .post(app.url("/v1/payments"))
                    .bearer_auth(&token)
                    .header("idempotency-key", format!("k{i}"))
                    .json(&json!({ "application_id": id }))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    for t in tasks {
        assert!(matches!(t.await.unwrap(), 200 | 201));
    }
    let sql = format!("SELECT COUNT(*) FROM payments WHERE application_id = '{application_id}'");
    assert_eq!(scalar(&a.store, &sql).await, 1);
    Arc::try_unwrap(a).ok().expect("done").stop().await;
    Arc::try_unwrap(b).ok().expect("done").stop().await;
}
on_both_backends!(
    payments_through_two_processes_charge_once,
    super::payments_through_two_processes_charge_once
);
