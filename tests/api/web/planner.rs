//! The planner's console in the browser: run the small scenario, see its report, compare two
//! runs. The planner does not touch the database, so one backend is enough.

use std::time::Duration;

use super::driver::{Browser, Options};
use super::{assert_accessible, assert_fits_width};
use crate::helpers::{test_clock, TestApp, TestDb};

const PLANNER_TOKEN: &str = "test-planner-token-0123456789abcdef";

async fn wait_done(b: &Browser) {
    for _ in 0..300 {
        if b.text("#job-status").await == "تمام شد" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the job did not finish: {}", b.text("main").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planner_console_runs_reports_and_compares() {
    let Some(mut b) = Browser::start(
        Options {
            javascript: true,
            width: 1024,
        },
        "planner",
    )
    .await
    else {
        return;
    };
    let db = TestDb::sqlite().await;
    let app = TestApp::spawn_with(&db, test_clock(), |s| {
        s.planner_token = Some(PLANNER_TOKEN.to_string());
    })
    .await;

    b.goto(&app.url("/planner")).await;
    b.fill("#planner_token", PLANNER_TOKEN).await;
    b.follow("form[action='/planner/login'] button").await;
    assert_accessible(&b, "planner").await;
    b.screenshot("console").await;

    // The small scenario, simulated.
    b.select("#scenario", "small").await;
    b.follow("button[value=simulations]").await;
    wait_done(&b).await;
    let figures = b.text("table").await;
    assert!(figures.contains("small"), "{figures}");
    assert_accessible(&b, "planner job").await;
    assert_fits_width(&b, "planner job").await;
    b.screenshot("small-done").await;
    b.follow("#report").await;
    let svg_charts = b.find_all("svg").await.len();
    assert!(svg_charts > 0, "the report draws its charts");
    b.screenshot("small-report").await;

    // A second run, then both side by side.
    b.goto(&app.url("/planner")).await;
    // The second scenario uploaded: its file's text fills the form.
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/thin-province.toml");
    b.upload("#toml_file", file).await;
    for _ in 0..50 {
        if !b.property("#toml", "value").await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(b.property("#toml", "value").await.contains("thin-province"));
    b.follow("button[value=simulations]").await;
    wait_done(&b).await;
    b.goto(&app.url("/planner")).await;
    b.follow("form[action='/planner/compare'] button").await;
    let table = b.text("#compare").await;
    assert!(table.contains("small") && table.contains("thin"), "{table}");
    assert_eq!(b.find_all("iframe.report").await.len(), 2);
    assert_accessible(&b, "planner compare").await;
    b.screenshot("compare").await;

    b.quit().await;
    app.stop().await;
    db.cleanup().await;
}
