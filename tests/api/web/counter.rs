//! The office counter in the browser: a clerk checks in and enrols the day's visit, and the
//! card pickup it books shows in the applicant's status.

use chrono::{DateTime, Utc};

use super::driver::{Browser, Options};
use super::{assert_accessible, assert_fits_width};
use crate::applicant::{eligible_citizens, nearest_offices};
use crate::helpers::TestDb;
use crate::on_both_backends;

async fn counter(db: &TestDb) {
    let backend = match db {
        TestDb::Sqlite { .. } => "sqlite",
        TestDb::Postgres { .. } => "postgres",
    };
    let Some(mut b) = Browser::start(
        Options {
            javascript: true,
            width: 800,
        },
        &format!("counter-{backend}"),
    )
    .await
    else {
        return;
    };
    let app = crate::staff::spawn(db, 30).await;
    let c = &eligible_citizens(0, 1)[0];
    let me = app.ready(c).await;
    let office = &nearest_offices(&app, c).await[0];
    let office_id = office["office_id"].as_str().unwrap();
    let start = office["earliest_free"][0]["start"].as_str().unwrap();
    let tracking = app.book_at(&me, office_id, start).await;
    let token = app.staff_token(office_id).await;
    // The visit has begun.
    let begun = DateTime::parse_from_rfc3339(start)
        .unwrap()
        .with_timezone(&Utc);
    app.clock.set(begun + chrono::Duration::minutes(5));

    b.goto(&app.url("/staff")).await;
    b.fill("#staff_token", &token).await;
    b.follow("form[action='/staff/login'] button").await;
    let visit = format!("section.visit[aria-label='{tracking}']");
    assert_eq!(b.text(&format!("{visit} .status")).await, "نوبت ثبت شده");
    assert_fits_width(&b, "counter").await;
    assert_accessible(&b, "counter").await;
    b.screenshot("day").await;

    b.follow(&format!("{visit} button[value=check-in]")).await;
    assert_eq!(b.text(&format!("{visit} .status")).await, "حاضر در دفتر");
    b.screenshot("checked-in").await;
    b.follow(&format!("{visit} button[value=enrol]")).await;
    assert_eq!(b.text(&format!("{visit} .status")).await, "ثبت‌نام انجام شد");
    assert!(b.text(".notice").await.contains("انجام شد"));
    b.screenshot("enrolled").await;

    // The applicant's status shows the pickup the enrolment booked.
    b.goto(&app.url("/status")).await;
    b.fill("#s_national_code", &c.national_code.to_string())
        .await;
    b.fill("#s_tracking", &tracking).await;
    b.follow("form[action='/status'] button").await;
    assert_eq!(b.text("#status").await, "ثبت‌نام انجام شد");
    let pickup = b.text("#pickup").await;
    assert!(pickup.contains("نوبت ثبت شده"), "pickup row: {pickup}");
    b.screenshot("status-with-pickup").await;

    b.quit().await;
    app.stop().await;
}

on_both_backends!(browser_counter, super::counter);
