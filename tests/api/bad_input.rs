//! Bad input gets a 4xx problem with a stable code, and writes nothing; each answer is one
//! the OpenAPI document lists for its operation (status, `application/problem+json`, code).

use serde_json::{json, Value};

use crate::applicant::{eligible_citizens, form, nearest_offices};
use crate::helpers::{test_clock, TestApp, TestDb};
use crate::on_both_backends;
use crate::staff::ADMIN_TOKEN;
use nobat::store::Store;

async fn counts(store: &Store) -> Vec<i64> {
    let mut out = Vec::new();
    for table in [
        "applications",
        "payments",
        "holds",
        "appointments",
        "events",
        "citizens",
        "idempotency_keys",
        "waitlist_entries",
        "waitlist_offices",
        "seat_releases",
        "waiting_rooms",
        "room_tickets",
    ] {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        out.push(match store {
            Store::Sqlite(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
            Store::Postgres(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
        });
    }
    out.push(match store {
        Store::Sqlite(pool) => sqlx::query_scalar("SELECT COALESCE(SUM(taken), 0) FROM slots")
            .fetch_one(pool)
            .await
            .unwrap(),
        Store::Postgres(pool) => {
            sqlx::query_scalar("SELECT COALESCE(SUM(taken), 0)::BIGINT FROM slots")
                .fetch_one(pool)
                .await
                .unwrap()
        }
    });
    out
}

enum Body {
    Json(Value),
    Raw(&'static str, Vec<u8>),
    None,
}

/// Which token a case sends.
#[derive(Clone, Copy, PartialEq)]
enum Auth {
    No,
    Applicant,
    Staff,
    Admin,
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    auth: Auth,
    body: Body,
    headers: Vec<(&'static str, String)>,
    status: u16,
    code: &'static str,
}

/// The operation of the document that `method path` reaches, if any.
fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> Option<&'a Value> {
    let path = path.split('?').next().unwrap();
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .iter()
        .find_map(|(template, item)| {
            let parts: Vec<&str> = template.split('/').collect();
            let matches = parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t.starts_with('{') || t == s);
            matches.then(|| item.get(method.to_lowercase()))?
        })
}

/// The answer is documented for its operation: the status, as a problem, with its code.
fn assert_documented(doc: &Value, case: &Case, status: u16, code: &str) {
    let Some(op) = operation(doc, case.method, &case.path) else {
        return; // no operation there (an unknown route): nothing to document
    };
    let response = &op["responses"][status.to_string()];
    let codes = &response["content"]["application/problem+json"]["schema"]["allOf"][1]
        ["properties"]["code"]["enum"];
    assert!(
        codes
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c == code)),
        "{}: {} {} answered {status} {code}, which its operation does not document: {response}",
        case.name,
        case.method,
        case.path
    );
}

async fn table(db: &TestDb) {
    let app = TestApp::spawn_with(db, test_clock(), |s| {
        s.admin_token = Some(ADMIN_TOKEN.to_string());
    })
    .await;
    let c = &eligible_citizens(0, 1)[0];
    let me = app.ready(c).await;
    // A national code locked by five wrong serials, and a staff token (not an admin's).
    let locked = eligible_citizens(1, 1)[0].national_code.to_string();
    for _ in 0..5 {
        let (status, _, _) = app.try_login(&locked, "ج99/999999").await;
        assert_eq!(status, 401);
    }
    let office_for_staff = app.state.directory().all()[0].id.to_string();
    let staff_token = app.staff_token(&office_for_staff).await;
    // A re-issue application, for an office kind that does not serve it.
    let (status, reissue) = app
        .post(
            Some(&me.token),
            "/v1/applications",
            &json!({ "service": "reissue_loss_1", "form": form(c) }),
        )
        .await;
    assert_eq!(status, 201);
    let reissue_id = reissue["application_id"].as_str().unwrap().to_string();
    // Another applicant's application, filed (and so its owner kept) in this process.
    let others_id = app.ready(&eligible_citizens(2, 1)[0]).await.application_id;
    let offices = nearest_offices(&app, c).await;
    let office = &offices[0];
    let office_id = office["office_id"].as_str().unwrap().to_string();
    let pishkhan = app
        .get(None, "/v1/offices?province=tehran&limit=100")
        .await
        .1
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "pishkhan")
        .unwrap()["office_id"]
        .as_str()
        .unwrap()
        .to_string();
    let good_start = office["earliest_free"][0]["start"]
        .as_str()
        .unwrap()
        .to_string();
    let hold = |start: &str, office: &str, app_id: &str| json!({ "application_id": app_id, "office_id": office, "start": start });
    let mut under_age = form(c);
    under_age["personal"]["birth_date"] = json!("2015-01-01");
    let mut bad_form = form(c);
    bad_form["mobile"] = json!("12345");
    bad_form["postal_code"] = json!("0000000000");

    let post = |name, path: &str, body: Value, status, code| Case {
        name,
        method: "POST",
        path: path.to_string(),
        auth: Auth::Applicant,
        body: Body::Json(body),
        headers: vec![],
        status,
        code,
    };
    let admin = |name, method, path: &str, status, code| Case {
        name,
        method,
        path: path.to_string(),
        auth: Auth::Admin,
        body: Body::None,
        headers: vec![],
        status,
        code,
    };
    let get = |name, path: String, status, code| Case {
        name,
        method: "GET",
        path,
        auth: Auth::No,
        body: Body::None,
        headers: vec![],
        status,
        code,
    };
    let wait = |pick: Value| json!({ "application_id": me.application_id, "payment_id": me.payment_id, "pick": pick });
    let cases = vec![
        post(
            "waitlist without a place",
            "/v1/waitlist",
            wait(json!({})),
            422,
            "invalid_pick",
        ),
        post(
            "waitlist too far",
            "/v1/waitlist",
            wait(json!({ "near": { "lat": 35.7, "lon": 51.4 }, "max_km": 900 })),
            422,
            "invalid_pick",
        ),
        post(
            "waitlist unknown office",
            "/v1/waitlist",
            wait(json!({ "office_ids": ["021-9999"] })),
            404,
            "office_not_found",
        ),
        post(
            "waitlist dates reversed",
            "/v1/waitlist",
            wait(
                json!({ "office_ids": [office_id], "earliest_date": "2024-09-30", "latest_date": "2024-09-25" }),
            ),
            422,
            "invalid_range",
        ),
        post(
            "waitlist with another's payment",
            "/v1/waitlist",
            json!({ "application_id": me.application_id, "payment_id": "pay_nobody", "pick": { "office_ids": [office_id] } }),
            422,
            "payment_not_found",
        ),
        post(
            "accept no offer",
            "/v1/waitlist/offers/offer_nothing/accept",
            json!({}),
            404,
            "offer_not_found",
        ),
        Case {
            name: "malformed json",
            method: "POST",
            path: "/v1/sessions".into(),
            auth: Auth::No,
            body: Body::Raw("application/json", b"{\"national_code\": ".to_vec()),
            headers: vec![],
            status: 400,
            code: "malformed_json",
        },
        Case {
            name: "not json",
            method: "POST",
            path: "/v1/sessions".into(),
            auth: Auth::No,
            body: Body::Raw("text/plain", b"hello".to_vec()),
            headers: vec![],
            status: 415,
            code: "unsupported_media_type",
        },
        Case {
            name: "invalid national code",
            method: "POST",
            path: "/v1/sessions".into(),
            auth: Auth::No,
            body: Body::Json(
                json!({ "national_code": "1111111111", "birth_certificate_serial": "ج12/345678" }),
            ),
            headers: vec![],
            status: 422,
            code: "invalid_national_code",
        },
        Case {
            name: "wrong serial",
            method: "POST",
            path: "/v1/sessions".into(),
            auth: Auth::No,
            body: Body::Json(
                json!({ "national_code": c.national_code.to_string(), "birth_certificate_serial": "ج99/999999" }),
            ),
            headers: vec![],
            status: 401,
            code: "invalid_credentials",
        },
        Case {
            name: "unknown field",
            method: "POST",
            path: "/v1/sessions".into(),
            auth: Auth::No,
            body: Body::Json(
                json!({ "national_code": c.national_code.to_string(), "birth_certificate_serial": "x", "admin": true }),
            ),
            headers: vec![],
            status: 422,
            code: "invalid_body",
        },
        Case {
            name: "no token",
            method: "POST",
            path: "/v1/holds".into(),
            auth: Auth::No,
            body: Body::Json(hold(&good_start, &office_id, &me.application_id)),
            headers: vec![],
            status: 401,
            code: "unauthorized",
        },
        Case {
            name: "oversized body",
            method: "POST",
            path: "/v1/holds".into(),
            auth: Auth::Applicant,
            body: Body::Raw(
                "application/json",
                format!("{{\"application_id\": \"{}\"}}", "x".repeat(70_000)).into_bytes(),
            ),
            headers: vec![],
            status: 413,
            code: "body_too_large",
        },
        post(
            "unknown office",
            "/v1/holds",
            hold(&good_start, "999-9999", &me.application_id),
            404,
            "office_not_found",
        ),
        post(
            "bad office id",
            "/v1/holds",
            hold(&good_start, "../etc", &me.application_id),
            422,
            "invalid_office_id",
        ),
        post(
            "unknown application",
            "/v1/holds",
            hold(&good_start, &office_id, "app_nope"),
            404,
            "application_not_found",
        ),
        post(
            "start not a time",
            "/v1/holds",
            hold("tomorrow at nine", &office_id, &me.application_id),
            422,
            "invalid_start",
        ),
        post(
            "start off the grid",
            "/v1/holds",
            hold("2024-09-23T08:07:00+03:30", &office_id, &me.application_id),
            422,
            "off_grid",
        ),
        post(
            "start outside hours",
            "/v1/holds",
            hold("2024-09-23T18:00:00+03:30", &office_id, &me.application_id),
            422,
            "outside_hours",
        ),
        post(
            "start in the past",
            "/v1/holds",
            hold("2024-09-22T08:00:00+03:30", &office_id, &me.application_id),
            422,
            "start_in_past",
        ),
        post(
            "start on a Friday",
            "/v1/holds",
            hold("2024-09-27T08:00:00+03:30", &office_id, &me.application_id),
            422,
            "closed_day",
        ),
        post(
            "start beyond the booking window",
            "/v1/holds",
            hold("2025-01-05T08:00:00+03:30", &office_id, &me.application_id),
            422,
            "outside_booking_window",
        ),
        post(
            "service the office does not offer",
            "/v1/holds",
            hold(&good_start, &pishkhan, &reissue_id),
            422,
            "service_not_offered",
        ),
        post(
            "a slot named and a pick",
            "/v1/holds",
            json!({ "application_id": me.application_id, "office_id": office_id, "start": good_start, "pick": { "office_ids": [office_id] } }),
            422,
            "invalid_pick",
        ),
        post(
            "a pick beyond 300 km",
            "/v1/appointments",
            json!({ "application_id": me.application_id, "payment_id": me.payment_id, "pick": { "near": { "lat": 35.7, "lon": 51.4 }, "max_km": 301 } }),
            422,
            "invalid_pick",
        ),
        post(
            "a pick off the globe",
            "/v1/holds",
            json!({ "application_id": me.application_id, "pick": { "near": { "lat": 95.0, "lon": 51.4 } } }),
            422,
            "invalid_coordinates",
        ),
        post(
            "a pick from yesterday",
            "/v1/holds",
            json!({ "application_id": me.application_id, "pick": { "office_ids": [office_id], "earliest_date": "2024-09-21" } }),
            422,
            "date_in_past",
        ),
        post(
            "a pick's dates reversed",
            "/v1/holds",
            json!({ "application_id": me.application_id, "pick": { "office_ids": [office_id], "earliest_date": "2024-09-25", "latest_date": "2024-09-24" } }),
            422,
            "invalid_range",
        ),
        post(
            "a pick's date not a date",
            "/v1/appointments",
            json!({ "application_id": me.application_id, "payment_id": me.payment_id, "pick": { "office_ids": [office_id], "latest_date": "2024-13-01" } }),
            422,
            "invalid_date",
        ),
        post(
            "confirm an unknown hold",
            "/v1/holds/hold_nope/confirm",
            json!({ "payment_id": me.payment_id }),
            404,
            "hold_not_found",
        ),
        post(
            "cancel an unknown appointment",
            "/v1/appointments/ABCDEFGHJKMNP/cancel",
            json!({}),
            404,
            "appointment_not_found",
        ),
        post(
            "book with an unknown payment",
            "/v1/appointments",
            json!({ "application_id": me.application_id, "office_id": office_id, "start": good_start, "payment_id": "pay_nope" }),
            422,
            "payment_not_found",
        ),
        post(
            "invalid form",
            "/v1/applications",
            json!({ "service": "first_issuance", "form": bad_form }),
            422,
            "invalid_form",
        ),
        post(
            "not eligible",
            "/v1/applications",
            json!({ "service": "first_issuance", "form": under_age }),
            422,
            "not_eligible",
        ),
        post(
            "unknown service",
            "/v1/applications",
            json!({ "service": "passport", "form": form(c) }),
            422,
            "unknown_service",
        ),
        post(
            "pickup is not booked by applicants",
            "/v1/applications",
            json!({ "service": "card_pickup", "form": form(c) }),
            422,
            "service_not_bookable",
        ),
        post(
            "hold on another applicant's application",
            "/v1/holds",
            hold(&good_start, &office_id, &others_id),
            404,
            "application_not_found",
        ),
        post(
            "pay another applicant's application",
            "/v1/payments",
            json!({ "application_id": others_id }),
            404,
            "application_not_found",
        ),
        post(
            "pay an unknown application",
            "/v1/payments",
            json!({ "application_id": "app_nope" }),
            404,
            "application_not_found",
        ),
        Case {
            name: "bad idempotency key",
            method: "POST",
            path: "/v1/holds".into(),
            auth: Auth::Applicant,
            body: Body::Json(hold(&good_start, &office_id, &me.application_id)),
            headers: vec![("idempotency-key", "k".repeat(200))],
            status: 400,
            code: "invalid_idempotency_key",
        },
        get(
            "bad near",
            "/v1/offices?near=north".into(),
            422,
            "invalid_near",
        ),
        get(
            "unknown area code",
            "/v1/offices?area_code=099".into(),
            422,
            "unknown_area_code",
        ),
        get(
            "limit too big",
            "/v1/offices?limit=5000".into(),
            422,
            "invalid_limit",
        ),
        get(
            "bad date",
            format!("/v1/offices/{office_id}/slots?from=2024-13-01"),
            422,
            "invalid_date",
        ),
        get(
            "range too long",
            format!("/v1/offices/{office_id}/slots?from=2024-09-22&to=2024-12-31"),
            422,
            "invalid_range",
        ),
        get(
            "slots of an unknown office",
            "/v1/offices/999-9999/slots".into(),
            404,
            "office_not_found",
        ),
        get(
            "status with a bad code",
            "/v1/status?national_code=123&tracking_code=ABCDEFGHJKMNP".into(),
            422,
            "invalid_national_code",
        ),
        get(
            "limit not a number",
            "/v1/offices?limit=abc".into(),
            422,
            "invalid_query",
        ),
        get(
            "status without its codes",
            "/v1/status".into(),
            422,
            "invalid_query",
        ),
        get(
            "office id not UTF-8",
            "/v1/offices/%FF%FE/slots".into(),
            400,
            "invalid_path",
        ),
        get("no such endpoint", "/v2/anything".into(), 404, "not_found"),
        Case {
            name: "a locked national code, right serial or not",
            method: "POST",
            path: "/v1/sessions".into(),
            auth: Auth::No,
            body: Body::Json(
                json!({ "national_code": locked, "birth_certificate_serial": "ج12/345678" }),
            ),
            headers: vec![],
            status: 429,
            code: "login_locked",
        },
        admin(
            "revoke an unknown staff token",
            "DELETE",
            "/v1/admin/staff-tokens/0123456789abcdef",
            404,
            "token_not_found",
        ),
        admin(
            "audit page before no entry",
            "GET",
            "/v1/admin/audit?before_id=0",
            422,
            "invalid_cursor",
        ),
        admin(
            "audit page too long",
            "GET",
            "/v1/admin/audit?limit=100000",
            422,
            "invalid_limit",
        ),
        Case {
            name: "a staff token on the admin API",
            method: "GET",
            path: "/v1/admin/audit".into(),
            auth: Auth::Staff,
            body: Body::None,
            headers: vec![],
            status: 403,
            code: "forbidden",
        },
        post(
            "join an unknown waiting room",
            "/v1/queue",
            json!({ "room_id": "room_nope" }),
            404,
            "room_not_found",
        ),
        post(
            "join by an unknown service",
            "/v1/queue",
            json!({ "service": "passport" }),
            422,
            "unknown_service",
        ),
        Case {
            name: "poll an unknown ticket",
            method: "GET",
            path: "/v1/queue/tkt_nope".into(),
            auth: Auth::Applicant,
            body: Body::None,
            headers: vec![],
            status: 404,
            code: "ticket_not_found",
        },
        get(
            "an unknown waiting room",
            "/v1/queue/rooms/room_nope".into(),
            404,
            "room_not_found",
        ),
        get(
            "the order of an unknown waiting room",
            "/v1/queue/rooms/room_nope/order?ticket_seq=0".into(),
            404,
            "room_not_found",
        ),
        get(
            "an order without its ticket number",
            "/v1/queue/rooms/room_nope/order".into(),
            422,
            "invalid_query",
        ),
        Case {
            name: "a waiting room with two admission policies",
            method: "POST",
            path: "/v1/admin/waiting-rooms".into(),
            auth: Auth::Admin,
            body: Body::Json(json!({
                "scope": { "service": "first_issuance" },
                "prequeue_opens_at": "2024-09-22T09:00:00+03:30",
                "opens_at": "2024-09-22T10:00:00+03:30",
                "closes_at": "2024-09-22T12:00:00+03:30",
                "admission": { "per_minute": 60, "auto": { "target_p99_ms": 250, "max_active": 100 } },
            })),
            headers: vec![],
            status: 422,
            code: "invalid_admission",
        },
        Case {
            name: "the admin API without a token",
            method: "GET",
            path: "/v1/admin/audit".into(),
            auth: Auth::No,
            body: Body::None,
            headers: vec![],
            status: 401,
            code: "unauthorized",
        },
    ];

    let doc = nobat::http::openapi::document();

    let before = counts(&app.store).await;
    for case in cases {
        let url = app.url(&case.path);
        let mut req = match case.method {
            "POST" => app.client.post(url),
            "DELETE" => app.client.delete(url),
            _ => app.client.get(url),
        };
        match case.auth {
            Auth::No => {}
            Auth::Applicant => {
                // Paced under the applicant's own limit (10 a second, burst 30): the table
                // has more rows for one applicant than the burst.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                req = req.bearer_auth(&me.token)
            }
            Auth::Staff => req = req.bearer_auth(&staff_token),
            Auth::Admin => req = req.bearer_auth(ADMIN_TOKEN),
        }
        for (k, v) in &case.headers {
            req = req.header(*k, v);
        }
        req = match &case.body {
            Body::Json(v) => req.json(v),
            Body::Raw(ct, bytes) => req.header("content-type", *ct).body(bytes.clone()),
            Body::None => req,
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if let Some(code) = body["code"].as_str() {
            assert_documented(&doc, &case, status, code);
        }
        assert_eq!(
            (status, body["code"].as_str()),
            (case.status, Some(case.code)),
            "{}: {body}",
            case.name
        );
        assert_eq!(
            ct.as_deref(),
            Some("application/problem+json"),
            "{}",
            case.name
        );
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}: a human message",
            case.name
        );
    }
    // (A refused admin request is recorded in the audit log, on purpose; it changes nothing.)
    assert_eq!(counts(&app.store).await, before, "bad input wrote nothing");
    app.stop().await;
}
on_both_backends!(bad_input_gets_its_problem_and_writes_nothing, super::table);
