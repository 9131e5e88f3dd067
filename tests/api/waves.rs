//! Release waves (`/v1/admin/release-waves`): the seats of a wave's dates are not bookable
//! until it opens (holds, bookings, auto-pick, reschedules), listings show their `opens_at`,
//! a cancelled wave frees them at once, and bad input writes nothing.

use chrono::Duration;
use serde_json::{json, Value};

use crate::applicant::{eligible_citizens, Ready};
use crate::helpers::{scalar, test_clock, TestApp, TestDb};
use crate::on_both_backends;
use crate::races::assert_seats_consistent;
use crate::staff::ADMIN_TOKEN;
use nobat::domain::time::Clock;
use nobat::domain::ServiceCode;

/// Monday 2 Mehr 1403, the day after the test clock's (a working day): the wave's day.
const DAY: &str = "2024-09-23";
/// The day after it, not covered.
const NEXT: &str = "2024-09-24";

async fn app(db: &TestDb) -> TestApp {
    TestApp::spawn_with(db, test_clock(), |s| {
        s.admin_token = Some(ADMIN_TOKEN.to_string());
        s.outbox_interval = None;
    })
    .await
}

fn at(app: &TestApp, seconds_from_now: i64) -> String {
    nobat::http::v1::iran_rfc3339(
        (app.clock.now() + Duration::seconds(seconds_from_now)).timestamp(),
    )
}

/// The first Tehran office offering first issuance.
fn office(app: &TestApp) -> String {
    let service = ServiceCode::parse("first_issuance").unwrap();
    app.state
        .directory()
        .all()
        .iter()
        .filter(|o| o.province == "tehran" && o.offers(service))
        .map(|o| o.id.to_string())
        .min()
        .expect("a Tehran office")
}

async fn slots(app: &TestApp, office: &str, day: &str) -> Vec<Value> {
    let (status, body) = app
        .get(
            None,
            &format!("/v1/offices/{office}/slots?from={day}&to={day}"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let slots = body.as_array().unwrap().clone();
    assert!(!slots.is_empty(), "{office} has slots on {day}");
    slots
}

fn first_free_start(slots: &[Value]) -> String {
    slots
        .iter()
        .find(|s| s["free"].as_i64().unwrap() > 0)
        .expect("a free slot")["start"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn wave(app: &TestApp, body: Value) -> (u16, Value) {
    app.post(Some(ADMIN_TOKEN), "/v1/admin/release-waves", &body)
        .await
}

async fn ready(app: &TestApp, skip: usize, n: usize) -> Vec<Ready> {
    let mut out = Vec::new();
    for c in eligible_citizens(skip, n) {
        out.push(app.ready(&c).await);
    }
    out
}

fn refused(answer: &(u16, Value), status: u16, code: &str) {
    let (s, body) = answer;
    assert_eq!((*s, body["code"].as_str()), (status, Some(code)), "{body}");
}

/// Holds (live or not) in the office's slots.
async fn holds_at(app: &TestApp, office: &str) -> i64 {
    scalar(
        &app.store,
        &format!("SELECT COUNT(*) FROM holds h JOIN slots s ON s.id = h.slot_id WHERE s.office_id = '{office}'"),
    )
    .await
}

async fn a_wave_closes_its_seats_until_it_opens(db: &TestDb) {
    let app = app(db).await;
    let office = office(&app);
    let people = ready(&app, 0, 3).await;
    let opens_at = at(&app, 3_600);
    let (status, w) = wave(
        &app,
        json!({ "service": "first_issuance", "office_ids": [office], "from_date": DAY,
                "to_date": DAY, "opens_at": opens_at }),
    )
    .await;
    assert_eq!(status, 201, "{w}");
    assert_eq!(w["state"], "pending");
    assert_eq!(w["opens_at"], opens_at.as_str());
    assert!(w["slots"].as_u64().unwrap() > 0, "{w}");

    // Listings: every slot of the day says when it opens; the next day's do not.
    let day = slots(&app, &office, DAY).await;
    assert!(
        day.iter().all(|s| s["opens_at"] == opens_at.as_str()),
        "{day:?}"
    );
    let next = slots(&app, &office, NEXT).await;
    assert!(next.iter().all(|s| s.get("opens_at").is_none()), "{next:?}");
    let start = first_free_start(&day);

    // A hold, a booking and a reschedule into the day are refused, with the opening.
    let me = &people[0];
    let hold = app
        .post(
            Some(&me.token),
            "/v1/holds",
            &json!({ "application_id": me.application_id, "office_id": office, "start": start }),
        )
        .await;
    refused(&hold, 409, "not_yet_released");
    assert_eq!(hold.1["extra"]["opens_at"], opens_at.as_str(), "{}", hold.1);
    let book = app
        .post(
            Some(&me.token),
            "/v1/appointments",
            &json!({ "application_id": me.application_id, "payment_id": me.payment_id,
                     "office_id": office, "start": start }),
        )
        .await;
    refused(&book, 409, "not_yet_released");

    // Auto-pick skips the day: within it alone there is no seat; over two days it takes
    // the second.
    let only_day = json!({ "office_ids": [office], "earliest_date": DAY, "latest_date": DAY });
    let pick = app
        .post(
            Some(&me.token),
            "/v1/appointments",
            &json!({ "application_id": me.application_id, "payment_id": me.payment_id, "pick": only_day }),
        )
        .await;
    refused(&pick, 409, "no_seat_within_limits");
    assert_eq!(holds_at(&app, &office).await, 0, "nothing was written");
    let two_days = json!({ "office_ids": [office], "earliest_date": DAY, "latest_date": NEXT });
    let (status, booked) = app
        .post(
            Some(&me.token),
            "/v1/appointments",
            &json!({ "application_id": me.application_id, "payment_id": me.payment_id, "pick": two_days }),
        )
        .await;
    assert_eq!(status, 201, "{booked}");
    assert!(
        booked["start"].as_str().unwrap().starts_with(NEXT),
        "{booked}"
    );
    let code = booked["tracking_code"].as_str().unwrap().to_string();
    let moved = app
        .post(
            Some(&me.token),
            &format!("/v1/appointments/{code}/reschedule"),
            &json!({ "office_id": office, "start": start }),
        )
        .await;
    refused(&moved, 409, "not_yet_released");

    let (status, list) = app.get(Some(ADMIN_TOKEN), "/v1/admin/release-waves").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["state"], "pending");

    // At the opening the seats are bookable, and listings stop showing opens_at.
    app.clock.advance(Duration::seconds(3_600));
    let day = slots(&app, &office, DAY).await;
    assert!(day.iter().all(|s| s.get("opens_at").is_none()), "{day:?}");
    let other = &people[1];
    let (status, held) = app
        .post(
            Some(&other.token),
            "/v1/holds",
            &json!({ "application_id": other.application_id, "office_id": office, "start": start }),
        )
        .await;
    assert_eq!(status, 201, "{held}");
    let (status, moved) = app
        .post(
            Some(&me.token),
            &format!("/v1/appointments/{code}/reschedule"),
            &json!({ "office_id": office, "start": first_free_start(&slots(&app, &office, DAY).await) }),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    let third = &people[2];
    let (status, picked) = app
        .post(
            Some(&third.token),
            "/v1/appointments",
            &json!({ "application_id": third.application_id, "payment_id": third.payment_id, "pick": only_day }),
        )
        .await;
    assert_eq!(status, 201, "{picked}");
    let (_, list) = app.get(Some(ADMIN_TOKEN), "/v1/admin/release-waves").await;
    assert_eq!(list[0]["state"], "open");
    let id = list[0]["wave_id"].as_str().unwrap();
    let late = app
        .client
        .delete(app.url(&format!("/v1/admin/release-waves/{id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(late.status().as_u16(), 409);
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}
on_both_backends!(
    a_wave_closes_its_seats_until_it_opens_t,
    super::a_wave_closes_its_seats_until_it_opens
);

async fn a_cancelled_wave_frees_its_seats_at_once(db: &TestDb) {
    let app = app(db).await;
    let office = office(&app);
    let me = &ready(&app, 10, 1).await[0];
    let (status, w) = wave(
        &app,
        json!({ "provinces": ["tehran"], "from_date": DAY, "to_date": NEXT, "opens_at": at(&app, 7_200) }),
    )
    .await;
    assert_eq!(status, 201, "{w}");
    assert!(w.get("service").is_none(), "every service: {w}");
    assert!(w["office_ids"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o == office.as_str()));
    let start = first_free_start(&slots(&app, &office, NEXT).await);
    let hold = app
        .post(
            Some(&me.token),
            "/v1/holds",
            &json!({ "application_id": me.application_id, "office_id": office, "start": start }),
        )
        .await;
    refused(&hold, 409, "not_yet_released");

    let id = w["wave_id"].as_str().unwrap();
    let delete = |id: String| {
        let app = &app;
        async move {
            let resp = app
                .client
                .delete(app.url(&format!("/v1/admin/release-waves/{id}")))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, cancelled) = delete(id.to_string()).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    assert!(slots(&app, &office, NEXT)
        .await
        .iter()
        .all(|s| s.get("opens_at").is_none()));
    assert_eq!(
        scalar(
            &app.store,
            "SELECT COUNT(*) FROM slots WHERE opens_at IS NOT NULL"
        )
        .await,
        0
    );
    let (status, held) = app
        .post(
            Some(&me.token),
            "/v1/holds",
            &json!({ "application_id": me.application_id, "office_id": office, "start": start }),
        )
        .await;
    assert_eq!(status, 201, "{held}");
    let (status, again) = delete(id.to_string()).await;
    assert_eq!((status, again["state"].as_str()), (200, Some("cancelled")));
    refused(&delete("wave_nope".into()).await, 404, "wave_not_found");
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}
on_both_backends!(
    a_cancelled_wave_frees_its_seats_at_once_t,
    super::a_cancelled_wave_frees_its_seats_at_once
);

async fn bad_waves_are_refused_and_write_nothing(db: &TestDb) {
    let app = app(db).await;
    let office = office(&app);
    let soon = at(&app, 3_600);
    let cases = [
        (
            json!({ "from_date": DAY, "to_date": DAY }),
            422,
            "invalid_body",
        ),
        (
            json!({ "from_date": "23-09-2024", "to_date": DAY, "opens_at": soon }),
            422,
            "invalid_date",
        ),
        (
            json!({ "from_date": NEXT, "to_date": DAY, "opens_at": soon }),
            422,
            "invalid_range",
        ),
        (
            json!({ "from_date": DAY, "to_date": "2024-12-31", "opens_at": soon }),
            422,
            "invalid_range",
        ),
        (
            json!({ "from_date": "2024-09-01", "to_date": "2024-09-02", "opens_at": soon }),
            422,
            "invalid_range",
        ),
        (
            json!({ "from_date": DAY, "to_date": DAY, "opens_at": "tomorrow" }),
            422,
            "invalid_time",
        ),
        (
            json!({ "from_date": "262143-12-21", "to_date": "262143-12-31", "opens_at": soon }),
            422,
            "invalid_date",
        ),
        (
            json!({ "office_ids": [""], "from_date": DAY, "to_date": DAY, "opens_at": soon }),
            422,
            "invalid_office_id",
        ),
        (
            json!({ "from_date": DAY, "to_date": DAY, "opens_at": at(&app, -60) }),
            422,
            "invalid_time",
        ),
        (
            json!({ "from_date": DAY, "to_date": DAY, "opens_at": at(&app, 3 * 86_400) }),
            422,
            "invalid_time",
        ),
        (
            json!({ "service": "nope", "from_date": DAY, "to_date": DAY, "opens_at": soon }),
            422,
            "unknown_service",
        ),
        (
            json!({ "provinces": ["atlantis"], "from_date": DAY, "to_date": DAY, "opens_at": soon }),
            422,
            "unknown_province",
        ),
        (
            json!({ "provinces": ["tehran"], "office_ids": [office], "from_date": DAY, "to_date": DAY, "opens_at": soon }),
            422,
            "invalid_wave",
        ),
        (
            json!({ "office_ids": ["021-9999"], "from_date": DAY, "to_date": DAY, "opens_at": soon }),
            404,
            "office_not_found",
        ),
        (
            json!({ "from_date": DAY, "to_date": DAY, "opens_at": soon, "extra": 1 }),
            422,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let answer = wave(&app, body.clone()).await;
        assert_eq!(
            (answer.0, answer.1["code"].as_str()),
            (status, Some(code)),
            "{body} → {}",
            answer.1
        );
    }
    let written = || async {
        (
            scalar(&app.store, "SELECT COUNT(*) FROM release_waves").await,
            scalar(
                &app.store,
                "SELECT COUNT(*) FROM slots WHERE opens_at IS NOT NULL",
            )
            .await,
        )
    };
    assert_eq!(written().await, (0, 0));

    // Not an administrator: no token, an applicant's, a wrong one.
    let body = json!({ "from_date": DAY, "to_date": DAY, "opens_at": soon });
    let (status, _) = app.post(None, "/v1/admin/release-waves", &body).await;
    assert_eq!(status, 401);
    let c = &eligible_citizens(20, 1)[0];
    let token = app.login(c).await;
    let (status, _) = app
        .post(Some(&token), "/v1/admin/release-waves", &body)
        .await;
    assert!(matches!(status, 401 | 403), "{status}");
    let (status, _) = app
        .get(Some("not-the-admin"), "/v1/admin/release-waves")
        .await;
    assert!(matches!(status, 401 | 403), "{status}");
    assert_eq!(written().await, (0, 0));

    // Overlapping a pending wave: refused, the first one stays as it was.
    let (status, first) = wave(
        &app,
        json!({ "office_ids": [office], "from_date": DAY, "to_date": NEXT, "opens_at": soon }),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    let covered = written().await.1;
    assert!(covered > 0);
    let overlap = wave(&app, json!({ "provinces": ["tehran"], "from_date": NEXT, "to_date": NEXT, "opens_at": at(&app, 60) })).await;
    refused(&overlap, 409, "wave_overlap");
    assert_eq!(overlap.1["extra"]["wave_id"], first["wave_id"]);
    assert_eq!(written().await, (1, covered));
    // The admin audit log has each change and refusal.
    assert!(
        scalar(
            &app.store,
            "SELECT COUNT(*) FROM admin_audit WHERE path LIKE '/v1/admin/release-waves%'"
        )
        .await
            >= 2
    );
    app.stop().await;
}
on_both_backends!(
    bad_waves_are_refused_and_write_nothing_t,
    super::bad_waves_are_refused_and_write_nothing
);

/// A wave created on one node holds on another at once (its writer reads the slot rows), and
/// the other's listings show it after its poll of the configuration version.
async fn a_wave_holds_on_every_node(db: &TestDb) {
    let clock = test_clock();
    let settings = move |s: &mut nobat::app::Settings| {
        s.admin_token = Some(ADMIN_TOKEN.to_string());
        s.token_secret = Some("shared-secret-0123456789abcdef012345".into());
        s.outbox_interval = None;
    };
    let a = TestApp::spawn_with(db, clock.clone(), settings).await;
    let b = TestApp::spawn_with(db, clock, settings).await;
    let office = office(&a);
    let start = first_free_start(&slots(&b, &office, DAY).await);
    let opens_at = at(&a, 3_600);
    let (status, w) = wave(
        &a,
        json!({ "office_ids": [office], "from_date": DAY, "to_date": DAY, "opens_at": opens_at }),
    )
    .await;
    assert_eq!(status, 201, "{w}");
    let me = &ready(&b, 30, 1).await[0];
    let hold = b
        .post(
            Some(&me.token),
            "/v1/holds",
            &json!({ "application_id": me.application_id, "office_id": office, "start": start }),
        )
        .await;
    refused(&hold, 409, "not_yet_released");
    nobat::http::live::poll_once(&b.state).await;
    let day = slots(&b, &office, DAY).await;
    assert!(
        day.iter().all(|s| s["opens_at"] == opens_at.as_str()),
        "{day:?}"
    );
    a.stop().await;
    b.stop().await;
}
on_both_backends!(
    a_wave_holds_on_every_node_t,
    super::a_wave_holds_on_every_node
);

/// Slots made after a wave (an office opened later) are covered by the pending waves too.
async fn new_slots_join_the_pending_waves(db: &TestDb) {
    let app = app(db).await;
    let opens_at = at(&app, 3_600);
    let (status, w) = wave(
        &app,
        json!({ "from_date": DAY, "to_date": DAY, "opens_at": opens_at }),
    )
    .await;
    assert_eq!(status, 201, "{w}");
    let (status, office) = app
        .post(
            Some(ADMIN_TOKEN),
            "/v1/admin/offices",
            &json!({ "id": "T-001", "name": "دفتر آزمایشی", "kind": "post", "province": "tehran", "city": "Tehran",
                     "area_code": "021", "lat": 35.70, "lon": 51.40, "stations": 3 }),
        )
        .await;
    assert_eq!(status, 201, "{office}");
    let day = slots(&app, "T-001", DAY).await;
    assert!(
        day.iter().all(|s| s["opens_at"] == opens_at.as_str()),
        "{day:?}"
    );
    let next = slots(&app, "T-001", NEXT).await;
    assert!(next.iter().all(|s| s.get("opens_at").is_none()), "{next:?}");
    app.stop().await;
}
on_both_backends!(
    new_slots_join_the_pending_waves_t,
    super::new_slots_join_the_pending_waves
);

/// Overlapping waves created at once: one is made, each other is refused with the same 409
/// `wave_overlap` a later one gets (on SQLite a deferred transaction whose read went stale
/// used to fail with an error instead), and one wave row is written.
async fn concurrent_overlapping_waves_one_wins(db: &TestDb) {
    let app = app(db).await;
    let office = office(&app);
    let tasks = (0..8).map(|i| {
        let body = json!({
            "office_ids": [office],
            "from_date": DAY,
            "to_date": DAY,
            "opens_at": at(&app, 3_600 + i),
        });
        let app = &app;
        async move { wave(app, body).await }
    });
    let answers = futures_util::future::join_all(tasks).await;
    let made = answers.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(made, 1, "{answers:?}");
    for answer in answers.iter().filter(|(s, _)| *s != 201) {
        refused(answer, 409, "wave_overlap");
    }
    assert_eq!(
        scalar(&app.store, "SELECT COUNT(*) FROM release_waves").await,
        1
    );
    app.stop().await;
}
on_both_backends!(
    concurrent_overlapping_waves_get_409,
    super::concurrent_overlapping_waves_one_wins
);

/// A wave for one service holds the seats back from that service only: a listing for another
/// service shows them open (as the writer books them for it), one for the wave's service shows
/// when they open, and one for any service shows the opening and the service it is for (the
/// day's shared rendering, listed first, is not what a one-service listing serves).
async fn a_one_service_wave_leaves_other_services_open(db: &TestDb) {
    let app = app(db).await;
    let (first, other) = (
        ServiceCode::parse("first_issuance").unwrap(),
        ServiceCode::parse("replacement").unwrap(),
    );
    let office = app
        .state
        .directory()
        .all()
        .iter()
        .filter(|o| o.province == "tehran" && o.offers(first) && o.offers(other))
        .map(|o| o.id.to_string())
        .min()
        .expect("a Tehran office of both services");
    let opens_at = at(&app, 3_600);
    let (status, w) = wave(
        &app,
        json!({ "service": "first_issuance", "office_ids": [office], "from_date": DAY,
                "to_date": DAY, "opens_at": opens_at }),
    )
    .await;
    assert_eq!(status, 201, "{w}");
    let listed = |service: Option<&str>| {
        let app = &app;
        let path = match service {
            Some(s) => format!("/v1/offices/{office}/slots?from={DAY}&to={DAY}&service={s}"),
            None => format!("/v1/offices/{office}/slots?from={DAY}&to={DAY}"),
        };
        async move {
            let (status, body) = app.get(None, &path).await;
            assert_eq!(status, 200, "{body}");
            body.as_array().unwrap().clone()
        }
    };
    let any = listed(None).await;
    assert!(
        any.iter()
            .all(|s| s["opens_at"] == opens_at.as_str() && s["opens_for"] == "first_issuance"),
        "{any:?}"
    );
    let open = listed(Some("replacement")).await;
    assert!(!open.is_empty());
    assert!(
        open.iter()
            .all(|s| s.get("opens_at").is_none() && s.get("opens_for").is_none()),
        "{open:?}"
    );
    let closed = listed(Some("first_issuance")).await;
    assert!(
        closed.iter().all(|s| s["opens_at"] == opens_at.as_str()),
        "{closed:?}"
    );
    // A wave for every service says so by naming none.
    let (status, _) = wave(
        &app,
        json!({ "office_ids": [office], "from_date": NEXT, "to_date": NEXT, "opens_at": opens_at }),
    )
    .await;
    assert_eq!(status, 201);
    let (_, next) = app
        .get(
            None,
            &format!("/v1/offices/{office}/slots?from={NEXT}&to={NEXT}&service=replacement"),
        )
        .await;
    let next = next.as_array().unwrap();
    assert!(
        next.iter()
            .all(|s| s["opens_at"] == opens_at.as_str() && s.get("opens_for").is_none()),
        "{next:?}"
    );
    app.stop().await;
}
on_both_backends!(
    a_one_service_wave_leaves_other_services_open_t,
    super::a_one_service_wave_leaves_other_services_open
);
