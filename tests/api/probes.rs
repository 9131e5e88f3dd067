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
    // A known path with a method it does not take: 405, a problem, and what it does take.
    for (method, path, allow) in [
        (reqwest::Method::DELETE, "/v1/services", "GET,HEAD"),
        (reqwest::Method::GET, "/v1/holds", "POST"),
        (reqwest::Method::PUT, "/v1/holds/hold_x/confirm", "POST"),
        (reqwest::Method::POST, "/healthz", "GET,HEAD"),
    ] {
        let wrong = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 405, "{method} {path}");
        assert_eq!(wrong.headers()["allow"], allow, "{method} {path}");
        assert_eq!(wrong.headers()["content-type"], "application/problem+json");
        let body: serde_json::Value = wrong.json().await.unwrap();
        assert_eq!(body["code"], "method_not_allowed", "{method} {path}");
    }
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

async fn planner_endpoints_are_mounted_with_a_token(db: &TestDb) {
    let app = TestApp::spawn_with(db, crate::helpers::test_clock(), |s| {
        s.planner_token = Some("planner-secret-token".into())
    })
    .await;
    let anonymous = app
        .client
        .get(app.url("/v1/planner/jobs/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let scenario = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/thin-province.toml"
    ))
    .unwrap();
    let posted = app
        .client
        .post(app.url("/v1/planner/simulations"))
        .bearer_auth("planner-secret-token")
        .header("content-type", "application/toml")
        .body(scenario)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 202);
    let job: serde_json::Value = posted.json().await.unwrap();
    let id = job["job_id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let status: serde_json::Value = app
            .client
            .get(app.url(&format!("/v1/planner/jobs/{id}")))
            .bearer_auth("planner-secret-token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["status"] == "done" {
            break;
        }
        assert_ne!(status["status"], "failed", "{status}");
        assert!(
            std::time::Instant::now() < deadline,
            "the simulation did not finish"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let report = app
        .client
        .get(app.url(&format!("/v1/planner/jobs/{id}/report")))
        .bearer_auth("planner-secret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(report.status(), 200);
    assert!(report.text().await.unwrap().contains("<svg"));
    app.stop().await;
}
on_both_backends!(
    planner_endpoints_run_a_posted_scenario,
    super::planner_endpoints_are_mounted_with_a_token
);

async fn the_booking_window_rolls_on(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let office = app.state.directory().all()[0].clone();
    let last_open = |app: &TestApp| {
        app.state
            .engine
            .availability()
            .range(office.id.as_str(), 0, i64::MAX, 100_000)
            .last()
            .map(|s| s.start_at)
            .unwrap()
    };
    let before = last_open(&app);
    // Ten days later the hourly roll opens ten more days.
    app.clock.advance(chrono::Duration::days(10));
    let today = nobat::domain::time::iran_date(nobat::domain::time::Clock::now(app.clock.as_ref()));
    let directory = app.state.directory();
    let added = nobat::store::seed::materialise_slots(
        &app.store,
        directory.all(),
        &app.state.holidays.current(),
        today,
        30,
    )
    .await
    .unwrap();
    assert!(added > 0);
    app.state.engine.refresh().await.unwrap();
    let after = last_open(&app);
    assert!(
        after - before >= 8 * 86_400,
        "the window moved on by about ten days ({} s)",
        after - before
    );
    // Running it again adds nothing.
    assert_eq!(
        nobat::store::seed::materialise_slots(
            &app.store,
            directory.all(),
            &app.state.holidays.current(),
            today,
            30
        )
        .await
        .unwrap(),
        0
    );
    app.stop().await;
}
on_both_backends!(
    the_booking_window_rolls_on_and_is_idempotent,
    super::the_booking_window_rolls_on
);
