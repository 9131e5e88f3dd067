use crate::helpers::{TestApp, TestDb};
use crate::on_both_backends;

async fn health_and_readiness(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    let missing = app
        .client
        .get(app.url("/no/such/thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    app.stop().await;
}
on_both_backends!(health_and_readiness_answer, super::health_and_readiness);

async fn first_start_seeds_network(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let offices = app.store.offices().await.unwrap();
    assert!(
        !offices.is_empty(),
        "an empty database is seeded from the bundled scenario"
    );
    let count = offices.len();
    app.stop().await;
    // A second start finds the network and does not seed it again.
    let again = TestApp::spawn(db).await;
    assert_eq!(again.store.offices().await.unwrap().len(), count);
    again.stop().await;
}
on_both_backends!(
    first_start_seeds_the_network_once,
    super::first_start_seeds_network
);
