//! The USSD menu walked as a gateway calls it: a table of `text` values and the screens they
//! must give, on both backends.

use serde_json::json;

use crate::applicant::{eligible_citizens, nearest_offices};
use crate::helpers::{TestApp, TestDb};
use crate::on_both_backends;

async fn gateway(app: &TestApp, phone: &str, text: &str) -> (u16, String) {
    let response = app
        .client
        .post(app.url("/v1/ussd"))
        .form(&[
            ("sessionId", "ATUid_0001"),
            ("phoneNumber", phone),
            ("serviceCode", "*384*1#"),
            ("text", text),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    (status, response.text().await.unwrap())
}

async fn ussd_menu(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let c = &eligible_citizens(0, 1)[0];
    let me = app.ready(c).await;
    let office = &nearest_offices(&app, c).await[0];
    let office_id = office["office_id"].as_str().unwrap();
    let start = office["earliest_free"][0]["start"].as_str().unwrap();
    let (status, hold) = app
        .post(
            Some(&me.token),
            "/v1/holds",
            &json!({ "application_id": me.application_id, "office_id": office_id, "start": start }),
        )
        .await;
    assert_eq!(status, 201, "{hold}");
    let (status, appt) = app
        .post(
            Some(&me.token),
            &format!("/v1/holds/{}/confirm", hold["hold_id"].as_str().unwrap()),
            &json!({ "payment_id": me.payment_id }),
        )
        .await;
    assert_eq!(status, 201, "{appt}");
    let code = c.national_code.to_string();
    let tracking = appt["tracking_code"].as_str().unwrap();
    let grouped = appt["tracking_code_display"].as_str().unwrap();
    let office_name = office["name"].as_str().unwrap();
    // 1 Mehr 1403 is the first day with free times (the test clock is that morning).
    let day = appt["jalali_date"].as_str().unwrap();
    let day_fa = nobat::domain::JalaliDate::parse(day)
        .unwrap()
        .persian_display();
    let other = eligible_citizens(1, 1)[0].national_code.to_string();

    // (text, the screen starts with, and contains)
    let table: Vec<(String, &str, String)> = vec![
        (
            String::new(),
            "CON پیگیری کارت ملی هوشمند\n۱. وضعیت",
            String::new(),
        ),
        ("1".into(), "CON کد ملی", String::new()),
        (format!("1*{code}"), "CON کد رهگیری", String::new()),
        (
            format!("1*{code}*{tracking}"),
            "END وضعیت: نوبت ثبت شده",
            String::new(),
        ),
        // Grouped as on the receipt, lower case, Persian digits: the same appointment.
        (
            format!(
                "1*{}*{}",
                nobat::domain::jalali::to_persian_digits(&code),
                grouped.to_lowercase()
            ),
            "END وضعیت: نوبت ثبت شده",
            String::new(),
        ),
        (
            format!("2*{code}*{tracking}"),
            "END نوبت ثبت‌نام: ",
            day_fa.clone(),
        ),
        (
            format!("2*{code}*{tracking}"),
            "END",
            office_name.to_string(),
        ),
        (
            format!("3*{code}*{tracking}"),
            "END ",
            office_name.to_string(),
        ),
        // Someone else's national code with this tracking code unlocks nothing.
        (
            format!("1*{other}*{tracking}"),
            "END نوبتی با این کدها پیدا نشد.",
            String::new(),
        ),
        (
            format!("1*{code}*AAAAAAAAAAAAAAAA"),
            "END نوبتی با این کدها پیدا نشد.",
            String::new(),
        ),
        ("1*12345".into(), "END کد ملی نادرست است.", String::new()),
        ("9".into(), "END گزینه نادرست است.", String::new()),
        (
            format!("1*{code}*{tracking}*1"),
            "END گزینه نادرست است.",
            String::new(),
        ),
    ];
    for (i, (text, starts, contains)) in table.iter().enumerate() {
        // A phone per row: the table is about screens, not the limit.
        let phone = format!("+98912000{i:04}");
        let (status, screen) = gateway(&app, &phone, text).await;
        assert_eq!(status, 200, "{text:?}: {screen}");
        assert!(
            screen.starts_with(starts),
            "{text:?}: {screen:?}, expected to start {starts:?}"
        );
        assert!(
            screen.contains(contains.as_str()),
            "{text:?}: {screen:?} lacks {contains:?}"
        );
        assert!(
            screen.chars().count() <= 182,
            "{text:?}: {} characters",
            screen.chars().count()
        );
    }

    // A gateway call without a phone number is refused, as a problem for its operator.
    let response = app
        .client
        .post(app.url("/v1/ussd"))
        .form(&[("sessionId", "ATUid_0002"), ("text", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_body");

    // One phone number: a burst of 10, then refused.
    for i in 0..10 {
        let (_, screen) = gateway(&app, "+989121111111", "").await;
        assert!(screen.starts_with("CON "), "request {i}: {screen}");
    }
    let (status, screen) = gateway(&app, "+989121111111", "").await;
    assert_eq!(status, 200);
    assert!(screen.starts_with("END درخواست‌ها زیاد است"), "{screen}");
    app.stop().await;
}

on_both_backends!(ussd_status_menu, super::ussd_menu);
