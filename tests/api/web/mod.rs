//! The human fronts in a real browser (headless Chromium through chromedriver), and the USSD
//! menu as a gateway calls it. Screenshots of each step go to `target/web-artefacts/`.

mod counter;
mod driver;
mod forms;
mod journey;
mod planner;
mod queue;
mod ussd;

use driver::Browser;

/// axe-core 4.14 (MPL-2.0), vendored: the accessibility rules run in the page.
const AXE: &str = include_str!("../../web/vendor/axe.min.js");

/// Runs axe-core on the page; panics listing every serious or critical violation.
pub async fn assert_accessible(browser: &Browser, page: &str) {
    assert_accessible_but(browser, page, &[]).await
}

/// `assert_accessible` without the rules named (for third-party markup we cannot change).
pub async fn assert_accessible_but(browser: &Browser, page: &str, skipped: &[&str]) {
    browser.execute(AXE, serde_json::json!([])).await;
    let rules: serde_json::Map<String, serde_json::Value> = skipped
        .iter()
        .map(|r| (r.to_string(), serde_json::json!({ "enabled": false })))
        .collect();
    browser
        .execute(
            "window.__axeOptions = { resultTypes: ['violations'], rules: arguments[0] }; return true;",
            serde_json::json!([rules]),
        )
        .await;
    let found = browser
        .execute_async(
            "var done = arguments[arguments.length - 1];
             axe.run(document, window.__axeOptions).then(function (r) {
               done(r.violations
                 .filter(function (v) { return v.impact === 'serious' || v.impact === 'critical'; })
                 .map(function (v) {
                   return v.id + ' (' + v.impact + '): ' + v.nodes.map(function (n) { return n.target.join(' '); }).join(', ');
                 }));
             }, function (e) { done(['axe failed: ' + e]); });",
        )
        .await;
    let violations: Vec<String> = serde_json::from_value(found).unwrap_or_default();
    assert!(
        violations.is_empty(),
        "{page}: serious accessibility violations: {violations:#?}"
    );
}

/// No horizontal scroll: the page is no wider than the viewport.
pub async fn assert_fits_width(browser: &Browser, page: &str) {
    let v = browser
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            serde_json::json!([]),
        )
        .await;
    let (scroll, inner) = (v[0].as_i64().unwrap(), v[1].as_i64().unwrap());
    assert!(
        scroll <= inner,
        "{page}: the page is {scroll}px wide in a {inner}px viewport (horizontal scroll)"
    );
}
