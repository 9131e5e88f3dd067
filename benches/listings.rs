//! The applicant's listings (`GET /v1/offices …`, `GET /v1/offices/{id}/slots`) on the national
//! network (`scenarios/iran-national.toml`: 2,200 offices, 30 days of slots; SQLite), each
//! against axum serving the same bytes from memory in the same run, so that their ratio means
//! something on a noisy machine. Both go through `tower::ServiceExt::oneshot` in process: no
//! socket, so the ratio is of what the server itself does per request (the whole router: its
//! middleware, the handler, the body), the harshest comparison; over a socket both sides also
//! pay for HTTP parsing and the kernel (see `scenarios/loadtest/README.md`).
//!
//! The seeded database is kept at `BENCH_LISTINGS_DB` (default
//! `target/bench-listings-national.db`) so only the first run pays for seeding; `BENCH_SCENARIO`
//! picks another scenario (a fresh `BENCH_LISTINGS_DB` with it).
//!
//! Prints the ratio of each listing's rate to its static twin's after the run.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use nobat::app::{App, Dependencies, Settings};
use nobat::domain::time::ManualClock;
use nobat::reserve::SeededIds;
use nobat::store::StoreConfig;
use tower::ServiceExt;

fn listings() -> Vec<(&'static str, String)> {
    vec![
        (
            "offices_area_code",
            "/v1/offices?area_code=021&limit=5".into(),
        ),
        (
            "offices_province_service",
            "/v1/offices?province=tehran&service=first_issuance&limit=5".into(),
        ),
        ("offices_national", "/v1/offices?limit=20".into()),
        (
            "offices_near_service",
            "/v1/offices?near=35.7,51.4&service=first_issuance&limit=5".into(),
        ),
        (
            "slots_week",
            // Filled in with the first office of the area-code listing.
            String::new(),
        ),
    ]
}

async fn body_of(router: &Router, path: &str) -> Bytes {
    let resp = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let db = std::env::var_os("BENCH_LISTINGS_DB")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench-listings-national.db"));
    let scenario = std::env::var_os("BENCH_SCENARIO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("scenarios/iran-national.toml"));
    let (router, state) = rt.block_on(async {
        let mut settings = Settings::new("127.0.0.1:0".parse().unwrap(), StoreConfig::sqlite(&db));
        settings.scenario = Some(scenario);
        settings.sweep_interval = None;
        settings.config_poll_interval = None;
        settings.outbox_interval = None;
        // Today, held still: a database seeded by a server today (say by a load-test run,
        // `scenarios/loadtest/README.md`) has its slots from today on.
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let deps = Dependencies {
            clock,
            ids: Arc::new(SeededIds::new(7)),
            ..Dependencies::default()
        };
        let started = Instant::now();
        let app = App::build_with(settings, deps).await.expect("build app");
        eprintln!("app ready in {:.1} s", started.elapsed().as_secs_f64());
        let state = app.state().clone();
        (nobat::http::router(state.clone(), None), state)
    });
    let _keep = state;
    let mut cases = listings();
    let first_office = rt.block_on(async {
        let body = body_of(&router, &cases[0].1).await;
        let offices: serde_json::Value = serde_json::from_slice(&body).unwrap();
        offices[0]["office_id"].as_str().unwrap().to_string()
    });
    cases[4].1 = format!("/v1/offices/{first_office}/slots?service=first_issuance");

    let mut rates: Vec<(String, f64, f64, usize)> = Vec::new();
    let mut group = c.benchmark_group("listings");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (name, path) in &cases {
        let bytes = rt.block_on(body_of(&router, path));
        let len = bytes.len();
        let served = bytes.clone();
        let twin: Router = Router::new().route(
            "/twin",
            get(move || {
                let b = served.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], b) }
            }),
        );
        let mut per = [0f64; 2];
        for (k, (label, r, p)) in [
            ("handler", router.clone(), path.clone()),
            ("axum_same_bytes", twin, "/twin".to_string()),
        ]
        .into_iter()
        .enumerate()
        {
            let id = format!("{name}/{label}");
            group.bench_function(&id, |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let resp = r
                                .clone()
                                .oneshot(Request::get(p.as_str()).body(Body::empty()).unwrap())
                                .await
                                .unwrap();
                            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                                .await
                                .unwrap();
                            std::hint::black_box(body);
                        }
                        start.elapsed()
                    })
                })
            });
            // A plain timing of the same loop for the summary (criterion keeps its estimates
            // in files): 2,000 requests after the bench warmed everything.
            per[k] = rt.block_on(async {
                let n = 2_000;
                let start = Instant::now();
                for _ in 0..n {
                    let resp = r
                        .clone()
                        .oneshot(Request::get(p.as_str()).body(Body::empty()).unwrap())
                        .await
                        .unwrap();
                    std::hint::black_box(
                        axum::body::to_bytes(resp.into_body(), usize::MAX)
                            .await
                            .unwrap(),
                    );
                }
                n as f64 / start.elapsed().as_secs_f64()
            });
        }
        rates.push((name.to_string(), per[0], per[1], len));
    }
    group.finish();
    eprintln!("\n| listing | answer bytes | handler req/s | axum same bytes req/s | ratio |");
    eprintln!("|---|---:|---:|---:|---:|");
    for (name, handler, twin, len) in &rates {
        eprintln!(
            "| {name} | {len} | {handler:.0} | {twin:.0} | {:.3} |",
            handler / twin
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
