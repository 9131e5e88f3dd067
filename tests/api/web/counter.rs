//! The office counter in the browser: a clerk checks in and enrols the day's visit, and the
//! card pickup it books shows in the applicant's status.

use chrono::{DateTime, Utc};
use nobat::domain::time::Clock;

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

    // The card is made, then handed over at the pickup visit, on its day.
    b.follow(&format!("{visit} button[value=card-ready]")).await;
    assert_eq!(
        b.text(&format!("{visit} .status")).await,
        "کارت آماده تحویل"
    );
    let card = app.store.card(&tracking).await.unwrap().expect("a card");
    let pickup_code = card.pickup_tracking_code.expect("a pickup visit");
    let pickup = app.store.appointment(&pickup_code).await.unwrap().unwrap();
    app.clock.set(
        chrono::DateTime::from_timestamp(pickup.start_at, 0).unwrap()
            + chrono::Duration::minutes(1),
    );
    let pickup_day = nobat::domain::time::iran_date(app.clock.now());
    b.goto(&app.url(&format!("/staff?date={pickup_day}"))).await;
    let pickup_visit = format!("section.visit[aria-label='{pickup_code}']");
    b.follow(&format!("{pickup_visit} button[value=deliver]"))
        .await;
    assert_eq!(
        b.text(&format!("{pickup_visit} .status")).await,
        "تحویل شده"
    );
    b.screenshot("delivered").await;

    // The applicant's status shows the visit through to the delivery.
    b.goto(&app.url("/status")).await;
    b.fill("#s_national_code", &c.national_code.to_string())
        .await;
    b.fill("#s_tracking", &tracking).await;
    b.follow("form[action='/status'] button").await;
    assert_eq!(b.text("#status").await, "تحویل شده");
    let pickup = b.text("#pickup").await;
    assert!(pickup.contains("تحویل شده"), "pickup row: {pickup}");
    b.screenshot("status-with-pickup").await;

    b.quit().await;
    app.stop().await;
}

on_both_backends!(browser_counter, super::counter);
