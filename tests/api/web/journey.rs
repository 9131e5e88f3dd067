//! The applicant's whole journey in the browser, from `/` to the receipt and the status page,
//! at a phone's width, with JavaScript and without; the API reference offline.

use nobat::domain::jalali::to_persian_digits;
use nobat::domain::JalaliDate;
use serde_json::json;

use super::driver::{Browser, Options};
use super::{assert_accessible, assert_accessible_but, assert_fits_width};
use crate::applicant::eligible_citizens;
use crate::helpers::{TestApp, TestDb};
use crate::on_both_backends;

/// Checks every page on the way: no horizontal scroll at 360 px, and (with JavaScript, which
/// axe needs) no serious accessibility violation; then a screenshot.
async fn check(b: &mut Browser, name: &str, javascript: bool) {
    assert_fits_width(b, name).await;
    // Light: the page with its stylesheet and script under 100 KB (the font apart).
    let html_bytes = b
        .execute(
            "return new Blob([document.documentElement.outerHTML]).size;",
            json!([]),
        )
        .await
        .as_u64()
        .unwrap() as usize;
    let asset = |n: &str| nobat::http::web::assets::asset(n).unwrap().1.len();
    let total = html_bytes + asset("app.css") + asset("app.js");
    assert!(total < 100_000, "{name}: {total} bytes with CSS and script");
    eprintln!("page weight {name}: {total} bytes with CSS and script");
    if javascript {
        assert_accessible(b, name).await;
    }
    b.screenshot(name).await;
}

async fn journey(db: &TestDb, javascript: bool) {
    let backend = match db {
        TestDb::Sqlite { .. } => "sqlite",
        TestDb::Postgres { .. } => "postgres",
    };
    let run = format!(
        "journey-{}-{backend}",
        if javascript { "js" } else { "nojs" }
    );
    let Some(mut b) = Browser::start(
        Options {
            javascript,
            width: 360,
        },
        &run,
    )
    .await
    else {
        return;
    };
    let app = TestApp::spawn(db).await;
    let c = &eligible_citizens(0, 1)[0];

    // Log in, typing the national code in Persian digits.
    b.goto(&app.url("/")).await;
    assert_eq!(
        b.execute(
            "return [document.documentElement.lang, document.documentElement.dir];",
            json!([])
        )
        .await,
        json!(["fa", "rtl"])
    );
    // Right to left: the label's text ends at the input's right edge.
    let edges = b
        .execute(
            "var label = document.querySelector('label[for=national_code]');
             var input = document.getElementById('national_code');
             var r = document.createRange(); r.selectNodeContents(label);
             var t = r.getBoundingClientRect(), i = input.getBoundingClientRect();
             return [t.left, t.right, i.left, i.right];",
            json!([]),
        )
        .await;
    let e: Vec<f64> = serde_json::from_value(edges).unwrap();
    assert!(
        (e[1] - e[3]).abs() < 2.0 && e[0] > e[2] + 20.0,
        "the label is not on the right: text {:?}, input {:?}",
        &e[..2],
        &e[2..]
    );
    check(&mut b, "login", javascript).await;
    b.fill(
        "#national_code",
        &to_persian_digits(&c.national_code.to_string()),
    )
    .await;
    b.fill("#serial", &c.birth_certificate_serial.to_string())
        .await;
    b.follow("form[action='/login'] button").await;

    // Home: one step to take.
    assert!(b.url().await.ends_with('/'), "{}", b.url().await);
    check(&mut b, "home", javascript).await;
    b.follow("a.button[href='/apply']").await;

    // The form, first with a wrong postal code: its error shows in place.
    let birth = JalaliDate::from_gregorian(c.birth_date)
        .to_string()
        .replace('-', "/");
    b.fill(
        "#personal_birth_certificate_serial",
        &c.birth_certificate_serial.to_string(),
    )
    .await;
    b.fill("#personal_first_name", &c.first_name).await;
    b.fill("#personal_last_name", &c.last_name).await;
    b.select("#personal_gender", c.gender.as_str()).await;
    b.fill("#personal_birth_date", &to_persian_digits(&birth))
        .await;
    b.fill("#father_first_name", "علی").await;
    b.fill("#father_last_name", &c.last_name).await;
    b.fill("#mother_first_name", "مریم").await;
    b.fill("#mother_last_name", "کریمی").await;
    b.fill("#mobile", &c.mobile.to_string()).await;
    b.fill("#postal_code", "123").await;
    b.fill("#address", &format!("{}، خیابان اصلی، پلاک ۱۲", c.city))
        .await;
    b.follow("form[action='/apply'] button[type=submit]").await;
    assert_eq!(
        b.attribute("#postal_code", "aria-invalid").await.as_deref(),
        Some("true")
    );
    assert!(!b.text("#postal_code_error").await.is_empty());
    check(&mut b, "form-errors", javascript).await;
    b.fill("#postal_code", &c.postal_code.to_string()).await;
    // The form is valid now, but without a birth certificate with a photo no card: the rule
    // that failed is explained.
    b.follow("form[action='/apply'] button[type=submit]").await;
    let refused = b.text(".alert").await;
    assert!(
        refused.contains("شناسنامه باید عکس‌دار باشد"),
        "the failed rule explained: {refused}"
    );
    check(&mut b, "not-eligible", javascript).await;
    b.click("#personal_birth_certificate_has_photo").await;
    b.follow("form[action='/apply'] button[type=submit]").await;

    // Payment through the sandbox.
    assert!(
        b.url().await.ends_with("/pay"),
        "{} {}",
        b.text(".alert").await,
        b.execute("return Array.from(document.querySelectorAll('.error')).map(function (e) { return e.id + ': ' + e.textContent; });", json!([])).await
    );
    let fee = b.text("main").await;
    assert!(
        fee.contains("۱٬۴۵۰٬۰۰۰"),
        "the fee in Persian digits: {fee}"
    );
    check(&mut b, "pay", javascript).await;
    b.follow("button[value=approve]").await;

    // Offices of the province, then a week of free times.
    assert!(b.url().await.contains("/offices"), "{}", b.url().await);
    if javascript {
        // "Near me": the browser's position (the citizen's home, granted) fills the search.
        b.cdp(
            "Browser.grantPermissions",
            json!({ "permissions": ["geolocation"] }),
        )
        .await;
        b.cdp(
            "Emulation.setGeolocationOverride",
            json!({ "latitude": c.location.lat, "longitude": c.location.lon, "accuracy": 10 }),
        )
        .await;
        b.follow("button[data-near]").await;
        assert!(b.url().await.contains("near="), "{}", b.url().await);
        let nearest = b.text(".offices").await;
        assert!(nearest.contains("کیلومتر"), "distances shown: {nearest}");
    }
    b.fill("#province", &c.province).await;
    b.follow("form[role=search] button[type=submit]").await;
    check(&mut b, "offices", javascript).await;
    b.follow(".offices a.button").await;
    let times = b.text(".times").await;
    assert!(
        !times.is_empty() && !times.chars().any(|ch| ch.is_ascii_digit()),
        "times in Persian digits: {times}"
    );
    check(&mut b, "week", javascript).await;
    if javascript {
        let first = b.find_all(".times button").await;
        b.follow_element(&first[0]).await;
    } else {
        // The engine picks: the earliest free time at the office.
        b.follow("form.pick button").await;
    }

    // The hold, with its countdown (the server's ten minutes).
    assert!(b.url().await.ends_with("/hold"), "{}", b.text("main").await);
    let countdown = b.text("[data-countdown]").await;
    assert!(
        countdown.starts_with("۱۰:") || countdown.starts_with("۹:"),
        "countdown {countdown}"
    );
    check(&mut b, "hold", javascript).await;
    b.follow("form[action='/hold/confirm'] button").await;

    // The receipt; the print button is JavaScript's.
    assert!(
        b.url().await.ends_with("/receipt"),
        "{}",
        b.text("main").await
    );
    assert_eq!(b.text("#status").await, "نوبت ثبت شده");
    assert_eq!(b.displayed("[data-print]").await, javascript);
    let tracking = b.text("#tracking").await.replace('-', "");
    assert_eq!(tracking.len(), nobat::reserve::ids::TRACKING_CODE_CHARS);
    let booked = app
        .store
        .appointment(&tracking)
        .await
        .unwrap()
        .expect("the appointment is in the database");
    assert_eq!(booked.national_code, c.national_code.to_string());
    check(&mut b, "receipt", javascript).await;

    // Status by the two codes (a POST: neither is in a URL).
    b.follow("header a[href='/status']").await;
    b.fill("#s_national_code", &c.national_code.to_string())
        .await;
    b.fill("#s_tracking", &tracking).await;
    b.follow("form[action='/status'] button").await;
    assert_eq!(b.text("#status").await, "نوبت ثبت شده");
    assert!(!b.url().await.contains(&tracking));
    check(&mut b, "status", javascript).await;

    // Reschedule to another time (same tracking code), then cancel.
    b.goto(&app.url("/receipt")).await;
    let before = b.text("#when").await;
    b.follow("a[href='/offices?reschedule=1']").await;
    b.fill("#province", &c.province).await;
    b.follow("form[role=search] button[type=submit]").await;
    b.follow(".offices a.button").await;
    assert_eq!(
        b.attribute(".day form", "action").await.as_deref(),
        Some("/reschedule")
    );
    let times = b.find_all(".times button").await;
    b.follow_element(&times[3]).await;
    assert!(
        b.url().await.ends_with("/receipt"),
        "{}",
        b.text("main").await
    );
    assert!(!b.text(".notice").await.is_empty());
    assert_eq!(b.text("#tracking").await.replace('-', ""), tracking);
    assert_eq!(b.text("#status").await, "نوبت ثبت شده");
    assert_ne!(b.text("#when").await, before, "the visit moved");
    check(&mut b, "rescheduled", javascript).await;
    b.follow("form[action='/cancel'] button").await;
    assert_eq!(b.text("#status").await, "لغو شده");
    check(&mut b, "cancelled", javascript).await;

    // English, left to right.
    b.follow("a[hreflang=en]").await;
    assert_eq!(
        b.execute(
            "return [document.documentElement.lang, document.documentElement.dir];",
            json!([])
        )
        .await,
        json!(["en", "ltr"])
    );
    check(&mut b, "status-english", javascript).await;

    b.quit().await;
    app.stop().await;
}

async fn journey_with_javascript(db: &TestDb) {
    journey(db, true).await;
}

async fn journey_without_javascript(db: &TestDb) {
    journey(db, false).await;
}

on_both_backends!(browser_journey, super::journey_with_javascript);
on_both_backends!(browser_journey_no_js, super::journey_without_javascript);

/// `/docs` renders the operations from the embedded Swagger UI, loading nothing from another
/// origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_reference_renders_offline() {
    let Some(mut b) = Browser::start(
        Options {
            javascript: true,
            width: 1024,
        },
        "docs",
    )
    .await
    else {
        return;
    };
    let db = TestDb::sqlite().await;
    let app = TestApp::spawn(&db).await;
    b.goto(&app.url("/docs")).await;
    let mut operations = 0;
    for _ in 0..100 {
        operations = b.find_all(".opblock").await.len();
        if operations > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(operations >= 20, "{operations} operations rendered");
    let origins = b
        .execute(
            "return performance.getEntriesByType('resource').map(function (e) { return new URL(e.name).origin; });",
            json!([]),
        )
        .await;
    let own = format!("http://{}", app.addr);
    for origin in origins.as_array().unwrap() {
        assert_eq!(
            origin.as_str(),
            Some(own.as_str()),
            "fetched from elsewhere"
        );
    }
    // Swagger UI nests its operations' buttons (upstream markup); every other rule holds.
    assert_accessible_but(&b, "docs", &["nested-interactive"]).await;
    b.screenshot("docs").await;
    b.quit().await;
    app.stop().await;
    db.cleanup().await;
}
