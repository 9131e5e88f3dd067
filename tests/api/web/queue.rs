//! The portal's waiting room, as a browser without JavaScript walks it (plain form posts and
//! reloads): a hold while a room stands in front of bookings goes to the room's page; the
//! applicant joins, sees the page reload itself with their place, is admitted as the room's
//! rate allows, and the pass kept in a cookie carries the same hold through. Both backends.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Duration;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::applicant::{eligible_citizens, nearest_offices};
use crate::helpers::{scalar, test_clock, TestApp, TestDb};
use crate::on_both_backends;
use crate::staff::ADMIN_TOKEN;
use nobat::domain::time::Clock;
use nobat::http::room::tick_once;

const CSRF: &str = "0123456789abcdef0123456789abcdef";

/// The cookies a browser would hold: name → value, updated from each answer.
#[derive(Default)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn set(&mut self, name: &str, value: &str) {
        self.0.retain(|(n, _)| n != name);
        if !value.is_empty() {
            self.0.push((name.to_string(), value.to_string()));
        }
    }

    fn take(&mut self, response: &reqwest::Response) {
        for v in response.headers().get_all(SET_COOKIE) {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.set(name, value);
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    jar: Jar,
}

impl Browser<'_> {
    /// Posts a form; gives the status, the redirect's target and the page.
    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (u16, String, String) {
        let mut form = form.to_vec();
        form.push(("csrf", CSRF));
        let response = self
            .client
            .post(self.app.url(path))
            .header(COOKIE, self.jar.header())
            .form(&form)
            .send()
            .await
            .unwrap();
        self.answer(response).await
    }

    async fn get(&mut self, path: &str) -> (u16, String, String) {
        let response = self
            .client
            .get(self.app.url(path))
            .header(COOKIE, self.jar.header())
            .send()
            .await
            .unwrap();
        self.answer(response).await
    }

    async fn answer(&mut self, response: reqwest::Response) -> (u16, String, String) {
        self.jar.take(&response);
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, location, response.text().await.unwrap())
    }
}

async fn portal_waits_in_the_room(db: &TestDb) {
    let app = TestApp::spawn_with(db, test_clock(), |s| {
        s.admin_token = Some(ADMIN_TOKEN.to_string());
        s.applicant_requests_per_second = 100_000;
        s.applicant_burst = 100_000;
    })
    .await;
    let c = &eligible_citizens(0, 1)[0];
    let me = app.ready(c).await;
    let office = &nearest_offices(&app, c).await[0];
    let office_id = office["office_id"].as_str().unwrap().to_string();
    let start = office["earliest_free"][0]["start"]
        .as_str()
        .unwrap()
        .to_string();
    let at = |secs: i64| (app.clock.now() + Duration::seconds(secs)).to_rfc3339();
    let (status, room) = app
        .post(
            Some(ADMIN_TOKEN),
            "/v1/admin/waiting-rooms",
            &json!({
                "scope": { "service": "first_issuance" },
                "prequeue_opens_at": at(0),
                "opens_at": at(10),
                "closes_at": at(6 * 3600),
                "admission": { "per_minute": 60 },
            }),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let room_id = room["room_id"].as_str().unwrap().to_string();

    let mut browser = Browser {
        app: &app,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        jar: Jar::default(),
    };
    browser.jar.set("nobat_csrf", CSRF);
    let code = c.national_code.to_string();
    let serial = c.birth_certificate_serial.to_string();
    let (status, to, _) = browser
        .post("/login", &[("national_code", &code), ("serial", &serial)])
        .await;
    assert_eq!((status, to.as_str()), (303, "/"));
    let flow = json!({ "application": me.application_id, "service": "first_issuance", "payment": me.payment_id });
    browser.jar.set(
        "nobat_flow",
        &URL_SAFE_NO_PAD.encode(serde_json::to_vec(&flow).unwrap()),
    );

    // A hold while the room stands in front of bookings: to the room, nothing held.
    let hold_form = [("office_id", office_id.as_str()), ("start", start.as_str())];
    let (status, to, _) = browser.post("/hold", &hold_form).await;
    assert_eq!(
        (status, to.clone()),
        (303, format!("/queue?room={room_id}"))
    );
    assert_eq!(scalar(&app.store, "SELECT COUNT(*) FROM holds").await, 0);

    let (status, _, page) = browser.get(&to).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("action=\"/queue\"") && page.contains(&room_id),
        "{page}"
    );

    let (status, back, _) = browser.post("/queue", &[("room_id", &room_id)]).await;
    assert_eq!((status, back.as_str()), (303, to.as_str()));
    assert!(browser.jar.get("nobat_ticket").is_some());
    assert_eq!(
        scalar(&app.store, "SELECT COUNT(*) FROM room_tickets").await,
        1
    );

    // Before the opening: no place yet (the pre-queue is drawn by lot), the page reloads.
    let (status, _, page) = browser.get(&to).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("http-equiv=\"refresh\""), "{page}");
    assert!(browser.jar.get("nobat_pass").is_none());

    // The room opens and admits one a second: within a few seconds it is this applicant's turn.
    for _ in 0..15 {
        app.clock.advance(Duration::seconds(1));
        tick_once(&app.state).await;
    }
    let (status, _, page) = browser.get(&to).await;
    assert_eq!(status, 200, "{page}");
    assert!(browser.jar.get("nobat_pass").is_some(), "{page}");
    assert!(browser.jar.get("nobat_ticket").is_none());
    assert!(page.contains("href=\"/offices\""), "{page}");

    // With the pass, the same hold goes through.
    let (status, to, page) = browser.post("/hold", &hold_form).await;
    assert_eq!((status, to.as_str()), (303, "/hold"), "{page}");
    assert_eq!(scalar(&app.store, "SELECT COUNT(*) FROM holds").await, 1);
    app.stop().await;
}

on_both_backends!(
    the_portal_books_through_the_waiting_room,
    super::portal_waits_in_the_room
);
