//! `POST /v1/ussd`: the status menu for plain phones, in the common USSD-gateway callback
//! convention. The gateway posts a form (`sessionId`, `phoneNumber`, `serviceCode`, `text`:
//! the answers so far joined by `*`) and shows the reply, plain text starting `CON ` (wait for
//! an answer) or `END ` (close), at most 182 characters, in Persian.
//!
//! The menu is stateless: `text` carries every answer, so any node can answer any step. It
//! asks for the national code and the tracking code and then reads `GET /v1/status` in
//! process ([`web::api::Api`]), so it unlocks exactly what those two codes unlock in the API
//! and nothing more. Requests are limited per phone number.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::v1::dto::StatusResponse;
use super::v1::receipt::status_fa;
use super::web::api::{encode, Api};
use super::web::Fields;
use super::{AppState, Problem, ProblemCode};
use crate::domain::ids::normalize_digits;
use crate::domain::jalali::to_persian_digits;

/// The longest reply a gateway shows.
pub const REPLY_CHARS_MAX: usize = 182;
/// The longest `text` taken (three answers; a tracking code is 16 characters, grouped 19).
const TEXT_CHARS_MAX: usize = 64;
/// Requests per phone number: a burst of 10 (a session is 4), then 1 every 6 seconds.
const PHONE_BURST: u32 = 10;
const PHONE_PERIOD_SECS: u64 = 6;

type PhoneLimiter = Arc<DefaultKeyedRateLimiter<String>>;

pub fn routes(state: &AppState) -> Router<AppState> {
    let quota = Quota::with_period(std::time::Duration::from_secs(PHONE_PERIOD_SECS))
        .expect("a period above zero")
        .allow_burst(NonZeroU32::new(PHONE_BURST).expect("above zero"));
    let limiter: PhoneLimiter = Arc::new(governor::RateLimiter::keyed(quota));
    // Phone numbers whose limit has recovered are forgotten every minute, so the table holds
    // the numbers of the last few minutes only; the task ends with the router.
    let weak = Arc::downgrade(&limiter);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limiter) = weak.upgrade() else { break };
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        });
    }
    Router::new()
        .route("/v1/ussd", post(ussd))
        .layer(Extension(limiter))
        .layer(Extension(Api::new(state.clone())))
}

const MENU: &str = "CON پیگیری کارت ملی هوشمند\n۱. وضعیت ثبت‌نام\n۲. نوبت بعدی\n۳. نشانی دفتر";
const ASK_NATIONAL_CODE: &str = "CON کد ملی ۱۰ رقمی را وارد کنید:";
const ASK_TRACKING_CODE: &str = "CON کد رهگیری روی رسید را وارد کنید:";
const BAD_CHOICE: &str = "END گزینه نادرست است.";
const BAD_NATIONAL_CODE: &str = "END کد ملی نادرست است.";
const NOT_FOUND: &str = "END نوبتی با این کدها پیدا نشد.";
const TOO_MANY: &str = "END درخواست‌ها زیاد است؛ چند دقیقه بعد دوباره تلاش کنید.";
const BUSY: &str = "END سامانه شلوغ است؛ کمی بعد دوباره تلاش کنید.";

/// The gateway's callback, as a form. Documented for the OpenAPI; the handler reads the
/// fields itself so that a malformed callback is a problem, never axum's plain text.
#[derive(utoipa::ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct UssdCallback {
    /// The gateway's session, 1 to 64 characters.
    #[schema(min_length = 1, max_length = 64)]
    sessionId: String,
    /// The caller's number as the gateway gives it: digits, `+` allowed first.
    #[schema(pattern = r"^\+?[0-9]{5,15}$")]
    phoneNumber: String,
    /// The dialled code, e.g. `*384*1#` (not used: one menu).
    serviceCode: Option<String>,
    /// The answers so far, `*`-separated; empty for the first screen.
    text: Option<String>,
}

/// A phone number as gateways send it (E.164 digits, `+` allowed first).
fn phone_shaped(phone: &str) -> bool {
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    (5..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The status menu for plain phones: the reply is `CON …` (ask) or `END …` (close), plain text,
/// at most 182 characters, Persian. Limited per phone number (the reply then says so).
#[utoipa::path(post, path = "/v1/ussd", tag = "ussd",
    request_body(content = UssdCallback, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "the screen to show", content_type = "text/plain", body = String),
        (status = 400, description = "not a callback: sessionId or phoneNumber missing or malformed", body = Problem)))]
pub async fn ussd(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    Extension(limiter): Extension<PhoneLimiter>,
    fields: Fields,
) -> Response {
    let phone = fields.get("phoneNumber").unwrap_or("").to_string();
    let session_ok = fields
        .get("sessionId")
        .is_some_and(|s| (1..=64).contains(&s.chars().count()));
    if !phone_shaped(&phone) || !session_ok {
        // The gateway's misconfiguration, not a caller's answer: a problem for its operator.
        return Problem::new(
            StatusCode::BAD_REQUEST,
            ProblemCode::InvalidBody,
            "a USSD callback is a form with sessionId (1-64 characters) and phoneNumber (5-15 digits, + allowed first)",
        )
        .into_response();
    }
    if limiter.check_key(&phone).is_err() {
        return reply(StatusCode::OK, TOO_MANY);
    }
    let text = fields.get("text").unwrap_or("");
    if text.chars().count() > TEXT_CHARS_MAX {
        return reply(StatusCode::OK, BAD_CHOICE);
    }
    let answer = screen(&state, &api, &normalize_digits(text)).await;
    reply(StatusCode::OK, &answer)
}

/// The screen for the answers so far.
async fn screen(state: &AppState, api: &Api, text: &str) -> String {
    let answers: Vec<&str> = if text.is_empty() {
        Vec::new()
    } else {
        text.split('*').map(str::trim).collect()
    };
    let choice = match answers.first() {
        None => return MENU.to_string(),
        Some(&"1") => Choice::Status,
        Some(&"2") => Choice::Next,
        Some(&"3") => Choice::Office,
        Some(_) => return BAD_CHOICE.to_string(),
    };
    let Some(national_code) = answers.get(1) else {
        return ASK_NATIONAL_CODE.to_string();
    };
    if crate::domain::NationalCode::parse(national_code).is_err() {
        return BAD_NATIONAL_CODE.to_string();
    }
    let Some(tracking) = answers.get(2) else {
        return ASK_TRACKING_CODE.to_string();
    };
    if answers.len() > 3 {
        return BAD_CHOICE.to_string();
    }
    let uri = format!(
        "/v1/status?national_code={}&tracking_code={}",
        encode(national_code),
        encode(tracking)
    );
    let status: StatusResponse = match api
        .get(&api.caller(&Default::default(), None, None), &uri)
        .await
    {
        Ok(s) => s,
        Err(p) if p.status == 404 || p.status == 422 => return NOT_FOUND.to_string(),
        Err(_) => return BUSY.to_string(),
    };
    let office = |id: &str| {
        state
            .directory()
            .get(id)
            .map(|o| (o.name.clone(), o.city.clone(), o.province.clone()))
    };
    let time = |start: &str| to_persian_digits(start.get(11..16).unwrap_or(""));
    // `۱ مهر ۱۴۰۳`: digits and dashes would be reordered on a right-to-left screen.
    let date = |d: &str| {
        crate::domain::JalaliDate::parse(d)
            .map(|d| d.persian_display())
            .unwrap_or_else(|_| to_persian_digits(d))
    };
    match choice {
        Choice::Status => {
            let mut s = format!("END وضعیت: {}", status_fa(&status.status));
            if let Some(ready) = &status.ready_date {
                s.push_str(&format!("\nآماده شدن کارت: {}", date(&jalali_of(ready))));
            }
            s
        }
        Choice::Next => {
            // The card pickup once booked, else the visit itself while it is ahead.
            let next = match &status.pickup {
                Some(p) if p.status == "booked" => Some((&p.start, &p.jalali_date, "تحویل کارت")),
                _ if status.status == "booked" => {
                    Some((&status.start, &status.jalali_date, "ثبت‌نام"))
                }
                _ => None,
            };
            match next {
                Some((start, jalali, what)) => {
                    let place = office(&status.office_id).map(|o| o.0).unwrap_or_default();
                    format!(
                        "END نوبت {what}: {} ساعت {}\n{place}",
                        date(jalali),
                        time(start)
                    )
                }
                None => "END نوبت پیش رو ندارید.".to_string(),
            }
        }
        Choice::Office => match office(&status.office_id) {
            Some((name, city, province)) => format!("END {name}\n{city}، {province}"),
            None => NOT_FOUND.to_string(),
        },
    }
}

enum Choice {
    Status,
    Next,
    Office,
}

fn jalali_of(iso: &str) -> String {
    chrono::NaiveDate::parse_from_str(iso, "%Y-%m-%d")
        .map(|d| crate::domain::JalaliDate::from_gregorian(d).to_string())
        .unwrap_or_else(|_| iso.to_string())
}

/// Plain text, cut to the gateway's 182 characters.
fn reply(status: StatusCode, text: &str) -> Response {
    let text: String = text.chars().take(REPLY_CHARS_MAX).collect();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
