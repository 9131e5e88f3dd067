//! Every form a page posts carries the CSRF token of its cookie (`http::web::CheckedForm`): a
//! post without it, or with another token than its cookie's, is refused before its handler
//! runs, and changes nothing. No browser needed: the forms are posted as a forged page would.

use crate::applicant::eligible_citizens;
use crate::helpers::{TestApp, TestDb};
use crate::on_both_backends;

/// Every POST route of the portal, the counter and the console.
const FORM_POSTS: &[&str] = &[
    "/login",
    "/logout",
    "/apply",
    "/pay",
    "/hold",
    "/hold/confirm",
    "/hold/release",
    "/cancel",
    "/reschedule",
    "/status",
    "/staff/login",
    "/staff/logout",
    "/staff/act",
    "/planner/login",
    "/planner/run",
];

async fn forged_forms_are_refused(db: &TestDb) {
    let app = TestApp::spawn(db).await;
    let c = &eligible_citizens(0, 1)[0];
    let serial = c.birth_certificate_serial.to_string();
    let code = c.national_code.to_string();
    let held = "a".repeat(32);
    let cases: [(&str, Option<&str>); 3] = [
        ("no token, no cookie", None),
        ("a token, no cookie", Some("sent")),
        ("a token that is not the cookie's", Some("cookie")),
    ];
    for path in FORM_POSTS {
        for (case, how) in cases {
            let mut form = vec![
                ("national_code", code.as_str()),
                ("serial", serial.as_str()),
            ];
            let mut request = app.client.post(app.url(path));
            match how {
                None => {}
                Some("sent") => form.push(("csrf", held.as_str())),
                _ => {
                    form.push(("csrf", held.as_str()));
                    request = request.header(
                        reqwest::header::COOKIE,
                        format!("nobat_csrf={}", "b".repeat(32)),
                    );
                }
            }
            let response = request.form(&form).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 403, "{path}: {case}");
            let set_cookies: Vec<String> = response
                .headers()
                .get_all(reqwest::header::SET_COOKIE)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect();
            assert!(
                !set_cookies.iter().any(|c| c.starts_with("nobat_session=")),
                "{path}: {case}: a refused login set a session: {set_cookies:?}"
            );
            let page = response.text().await.unwrap();
            assert!(page.contains("فرم منقضی شده است"), "{path}: {case}: {page}");
        }
    }
    // The same login with its token is accepted: the refusals above were the token's doing.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .post(app.url("/login"))
        .header(reqwest::header::COOKIE, format!("nobat_csrf={held}"))
        .form(&[
            ("national_code", code.as_str()),
            ("serial", serial.as_str()),
            ("csrf", held.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert!(response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .any(|v| v.to_str().unwrap().starts_with("nobat_session=")));
    app.stop().await;
}

on_both_backends!(
    forms_without_their_token_are_refused,
    super::forged_forms_are_refused
);
