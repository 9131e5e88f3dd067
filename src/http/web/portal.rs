//! The applicant portal at `/`: log in, the form with eligibility explained, payment (the
//! sandbox gateway), office search, a week of free times, hold with its countdown, confirm, the
//! receipt, status, cancel and reschedule. Each step is one API request through [`Api`]; the
//! ids the journey collects (application, payment, hold, tracking code) ride in the
//! `nobat_flow` cookie, never in a URL. The API checks ownership of each, so a tampered cookie
//! reaches nothing of anyone else's.
//!
//! Designed for the steps that come later: a waiting room (position, ETA, auto-refresh) slots
//! in before the week view as one more page the home page can send to, and a ballot entry page
//! beside payment; both are one more field of [`Flow`] and one more line in [`home`].

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{Duration, NaiveDate};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::api::{encode, Api, ApiProblem, Caller};
use super::{CheckedForm, Ctx, Fields, Lang};
use crate::domain::ids::normalize_digits;
use crate::domain::time::iran_date;
use crate::domain::{JalaliDate, NationalCode};
use crate::http::extract::ApiPath;
use crate::http::v1::dto::{
    ApplicationResponse, AppointmentDto, HoldResponse, OfficeDto, PaymentResponse, ServiceDto,
    SessionResponse, SlotDto, StatusResponse,
};
use crate::http::v1::receipt::status_fa;
use crate::http::AppState;

const SESSION_COOKIE: &str = "nobat_session";
const FLOW_COOKIE: &str = "nobat_flow";
const FLASH_COOKIE: &str = "nobat_flash";
/// Offices listed by one search.
const OFFICES_SHOWN: usize = 10;
/// Children rows on the form (the domain allows more; more rows can be added later).
const CHILD_ROWS: usize = 2;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/apply", get(apply_page).post(apply))
        .route("/pay", get(pay_page).post(pay))
        .route("/offices", get(offices))
        .route("/offices/{office_id}", get(week))
        .route("/hold", get(hold_page).post(hold))
        .route("/hold/confirm", post(confirm))
        .route("/hold/release", post(release))
        .route("/receipt", get(receipt))
        .route("/cancel", post(cancel))
        .route("/reschedule", post(reschedule))
        .route("/status", get(status_page).post(status))
}

/// The ids the journey has collected so far (opaque ids, nothing personal).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Flow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    application: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hold: Option<String>,
    /// The hold's expiry, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hold_expires: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hold_office: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hold_start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tracking: Option<String>,
}

/// Ids are short ASCII tokens; anything else in the cookie is dropped.
pub(super) fn id_shaped(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_:+.".contains(&b))
}

impl Flow {
    fn read(ctx: &Ctx) -> Flow {
        let flow: Flow = ctx
            .cookie(FLOW_COOKIE)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let keep = |v: Option<String>| v.filter(|s| id_shaped(s));
        Flow {
            application: keep(flow.application),
            service: keep(flow.service),
            payment: keep(flow.payment),
            hold: keep(flow.hold),
            hold_expires: keep(flow.hold_expires),
            hold_office: keep(flow.hold_office),
            hold_start: keep(flow.hold_start),
            tracking: keep(flow.tracking),
        }
    }

    fn save(&self, ctx: &mut Ctx) {
        let json = serde_json::to_vec(self).unwrap_or_default();
        ctx.set_cookie(FLOW_COOKIE, &URL_SAFE_NO_PAD.encode(json), 86_400);
    }

    fn clear_hold(&mut self) {
        self.hold = None;
        self.hold_expires = None;
        self.hold_office = None;
        self.hold_start = None;
    }
}

/// A message carried across a redirect (POST-redirect-GET), by key.
fn flash(ctx: &mut Ctx, key: &str) {
    ctx.set_cookie(FLASH_COOKIE, key, 60);
}

fn take_flash(ctx: &mut Ctx) -> Option<Markup> {
    let key = ctx.cookie(FLASH_COOKIE)?.to_string();
    ctx.set_cookie(FLASH_COOKIE, "", 0);
    let l = ctx.lang;
    let (alert, text) = match key.as_str() {
        "declined" => (
            true,
            l.t(
                "پرداخت انجام نشد. دوباره تلاش کنید.",
                "The payment was declined. Try again.",
            ),
        ),
        "slot_full" => (
            true,
            l.t(
                "این زمان همین حالا پر شد. زمان دیگری انتخاب کنید.",
                "That time has just filled up. Pick another.",
            ),
        ),
        "no_seat" => (
            true,
            l.t(
                "در این دفتر زمان آزادی نماند. دفتر دیگری انتخاب کنید.",
                "This office has no free time left. Pick another office.",
            ),
        ),
        "hold_expired" => (
            true,
            l.t(
                "مهلت نگه‌داری نوبت تمام شد. دوباره زمانی انتخاب کنید.",
                "The hold expired. Pick a time again.",
            ),
        ),
        "released" => (
            false,
            l.t("نوبت نگه‌داشته‌شده آزاد شد.", "The held time was released."),
        ),
        "cancelled" => (false, l.t("نوبت لغو شد.", "The appointment was cancelled.")),
        "rescheduled" => (
            false,
            l.t(
                "زمان نوبت تغییر کرد؛ کد رهگیری همان است.",
                "The appointment was moved; the tracking code is the same.",
            ),
        ),
        "paid" => (false, l.t("پرداخت انجام شد.", "The payment went through.")),
        "busy" => (
            true,
            l.t(
                "سامانه شلوغ است؛ چند لحظه دیگر دوباره تلاش کنید.",
                "The service is busy; try again in a moment.",
            ),
        ),
        _ => return None,
    };
    Some(
        html! { p.(if alert { "alert" } else { "notice" }) role=(if alert { "alert" } else { "status" }) { (text) } },
    )
}

/// The logged-in applicant's national code and session token, when the cookie holds a valid
/// session.
pub(super) fn session(state: &AppState, ctx: &Ctx) -> Option<(NationalCode, String)> {
    let token = ctx.cookie(SESSION_COOKIE)?;
    let now = state.engine.clock().now().timestamp();
    let code = state.tokens.verify(token, now)?;
    Some((code, token.to_string()))
}

/// The pages' caller of the API: the session's token, and the waiting room's pass when one is
/// held (sent as `Booking-Pass`; the API asks for it only on bookings a room stands in front of).
pub(super) fn caller(api: &Api, ctx: &Ctx, token: Option<String>) -> Caller {
    let pass = ctx
        .cookie(super::queue::PASS_COOKIE)
        .filter(|p| p.len() <= 1024 && p.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string);
    api.caller(&ctx.headers, ctx.peer, token).with_pass(pass)
}

/// A problem the API answered, in the reader's language: known codes get their own sentence,
/// others the API's detail.
pub(super) fn problem_text(l: Lang, p: &ApiProblem) -> String {
    let known = match p.code.as_str() {
        "invalid_credentials" => Some(l.t(
            "کد ملی یا سریال شناسنامه با ثبت احوال مطابقت ندارد.",
            "The national code and birth-certificate serial do not match the civil registry.",
        )),
        "login_locked" => Some(l.t(
            "تلاش‌های ناموفق زیادی انجام شده است؛ کمی بعد دوباره تلاش کنید.",
            "Too many failed attempts; try again later.",
        )),
        "rate_limited" | "overloaded" | "unavailable" | "timeout" => Some(l.t(
            "سامانه شلوغ است؛ چند لحظه دیگر دوباره تلاش کنید.",
            "The service is busy; try again in a moment.",
        )),
        "already_booked" => Some(l.t(
            "برای این خدمت نوبت فعالی دارید.",
            "You already have an active appointment for this service.",
        )),
        "appointment_not_found" => Some(l.t(
            "نوبتی با این کدها پیدا نشد.",
            "No appointment matches these codes.",
        )),
        "invalid_area_code" => Some(l.t("پیش‌شماره درست نیست.", "The area code is not valid.")),
        "unknown_province" => Some(l.t("استانی با این نام نیست.", "No province by that name.")),
        "reschedule_limit_reached" => Some(l.t(
            "این نوبت را بیش از این نمی‌توانید جابه‌جا کنید؛ می‌توانید آن را لغو کنید و نوبت تازه بگیرید.",
            "This appointment cannot be moved again; you may cancel it and book anew.",
        )),
        "cancellation_limit_reached" => Some(l.t(
            "در این مدت بیش از این نمی‌توانید نوبت لغو کنید؛ نوبت شما سر جایش ماند.",
            "You cannot cancel more appointments for now; your appointment stays booked.",
        )),
        "not_active" | "invalid_transition" => Some(l.t(
            "این نوبت دیگر قابل تغییر نیست.",
            "This appointment can no longer be changed.",
        )),
        _ => None,
    };
    match known {
        Some(t) => t.to_string(),
        None => p.detail.clone(),
    }
}

fn alert(text: &str) -> Markup {
    html! { p.alert role="alert" { (text) } }
}

/// The journey's steps, the current one marked.
fn steps(l: Lang, flow: &Flow, current: usize) -> Markup {
    let names = [
        l.t("فرم ثبت‌نام", "Form"),
        l.t("پرداخت", "Payment"),
        l.t("انتخاب زمان", "Pick a time"),
        l.t("رسید", "Receipt"),
    ];
    let done = [
        flow.application.is_some(),
        flow.payment.is_some(),
        flow.tracking.is_some(),
        false,
    ];
    html! {
        ol.steps aria-label=(l.t("مراحل", "Steps")) {
            @for (i, name) in names.iter().enumerate() {
                @if i + 1 == current {
                    li aria-current="step" { (l.digits(&(i + 1).to_string())) ". " (name) }
                } @else {
                    li.done[done[i]] { (l.digits(&(i + 1).to_string())) ". " (name) }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- home and login

async fn home(State(state): State<AppState>, mut ctx: Ctx) -> Response {
    let l = ctx.lang;
    let message = take_flash(&mut ctx);
    let Some((code, _)) = session(&state, &ctx) else {
        return login_page(&ctx, StatusCode::OK, None, "", message);
    };
    let flow = Flow::read(&ctx);
    let (next, label) = if flow.tracking.is_some() {
        ("/receipt", l.t("دیدن رسید نوبت", "See the receipt"))
    } else if flow.hold.is_some() {
        (
            "/hold",
            l.t("تأیید نوبت نگه‌داشته‌شده", "Confirm the held time"),
        )
    } else if flow.payment.is_some() {
        (
            "/offices",
            l.t("انتخاب دفتر و زمان", "Choose an office and time"),
        )
    } else if flow.application.is_some() {
        ("/pay", l.t("پرداخت هزینه", "Pay the fee"))
    } else {
        ("/apply", l.t("پر کردن فرم ثبت‌نام", "Fill in the form"))
    };
    ctx.page(
        StatusCode::OK,
        l.t("نوبت ثبت‌نام کارت ملی هوشمند", "Smart ID card appointment"),
        html! {
            @if let Some(m) = message { (m) }
            (steps(l, &flow, 0))
            div.card {
                p { (l.t("وارد شده با کد ملی", "Logged in with national code")) " "
                    span.code { (l.digits(&code.masked())) } }
                a.button href=(next) { (label) }
            }
            form method="post" action="/logout" {
                (ctx.csrf_field())
                button.secondary type="submit" { (l.t("خروج", "Log out")) }
            }
        },
    )
}

fn login_page(
    ctx: &Ctx,
    status: StatusCode,
    error: Option<String>,
    national_code: &str,
    message: Option<Markup>,
) -> Response {
    let l = ctx.lang;
    ctx.page(
        status,
        l.t("ورود به سامانه نوبت‌دهی", "Log in to book an appointment"),
        html! {
            @if let Some(m) = message { (m) }
            p { (l.t("برای ثبت‌نام کارت ملی هوشمند، با کد ملی و سریال شناسنامه وارد شوید. ارقام فارسی یا لاتین هر دو پذیرفته می‌شوند.",
                     "Log in with your national code and birth-certificate serial to register for the smart national ID card. Persian or Latin digits are both fine.")) }
            @if let Some(e) = &error { (alert(e)) }
            form.card method="post" action="/login" {
                (ctx.csrf_field())
                label for="national_code" { (l.t("کد ملی", "National code")) }
                input #national_code .ltr type="text" name="national_code" inputmode="numeric"
                    autocomplete="username" required value=(national_code)
                    aria-describedby="national_code_hint";
                p.hint #national_code_hint { (l.t("۱۰ رقم، مثل ۰۴۹۹۳۷۰۸۹۹", "10 digits, e.g. 0499370899")) }
                label for="serial" { (l.t("سریال شناسنامه", "Birth-certificate serial")) }
                input #serial .ltr type="text" name="serial" autocomplete="current-password" required
                    aria-describedby="serial_hint";
                p.hint #serial_hint { (l.t("مثل ج۱۲/۳۴۵۶۷۸", "e.g. ج12/345678")) }
                div.actions { button type="submit" { (l.t("ورود", "Log in")) } }
            }
            p { a href="/status" { (l.t("پیگیری وضعیت با کد رهگیری", "Track a status with your tracking code")) } }
        },
    )
}

async fn login(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    mut ctx: Ctx,
    CheckedForm(fields): CheckedForm,
) -> Response {
    let national_code = fields.text("national_code");
    let body = json!({
        "national_code": national_code,
        "birth_certificate_serial": fields.text("serial"),
    });
    let caller = caller(&api, &ctx, None);
    match api
        .post::<SessionResponse>(&caller, "/v1/sessions", &body)
        .await
    {
        Ok(session) => {
            // As long as the token itself.
            ctx.set_cookie(
                SESSION_COOKIE,
                &session.token,
                state.config.session_ttl_secs,
            );
            // A new login starts a new journey.
            ctx.set_cookie(FLOW_COOKIE, "", 0);
            ctx.redirect("/")
        }
        Err(p) => {
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
            let text = match p.errors.first() {
                Some((field, _, _)) if field.contains("national_code") => ctx
                    .lang
                    .t(
                        "کد ملی باید ۱۰ رقم با رقم کنترل درست باشد.",
                        "The national code must be 10 digits with a valid check digit.",
                    )
                    .to_string(),
                Some(_) => ctx
                    .lang
                    .t(
                        "سریال شناسنامه درست نیست.",
                        "The birth-certificate serial is not valid.",
                    )
                    .to_string(),
                None => problem_text(ctx.lang, &p),
            };
            login_page(&ctx, status, Some(text), &national_code, None)
        }
    }
}

async fn logout(mut ctx: Ctx, _: CheckedForm) -> Response {
    ctx.set_cookie(SESSION_COOKIE, "", 0);
    ctx.set_cookie(FLOW_COOKIE, "", 0);
    ctx.redirect("/")
}

/// The session, or a redirect to the login page.
macro_rules! logged_in {
    ($state:expr, $ctx:expr) => {
        match session(&$state, &$ctx) {
            Some(s) => s,
            None => return $ctx.redirect("/"),
        }
    };
}

// ---------------------------------------------------------------- the form

struct FormField {
    name: &'static str,
    fa: &'static str,
    en: &'static str,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Text,
    /// Digits, written left to right.
    Ltr,
    Optional,
    Gender,
    Photo,
    Service,
}

const PERSONAL: &[FormField] = &[
    FormField {
        name: "service",
        fa: "خدمت",
        en: "Service",
        kind: Kind::Service,
    },
    FormField {
        name: "personal.national_code",
        fa: "کد ملی",
        en: "National code",
        kind: Kind::Ltr,
    },
    FormField {
        name: "personal.birth_certificate_serial",
        fa: "سریال شناسنامه",
        en: "Birth-certificate serial",
        kind: Kind::Ltr,
    },
    FormField {
        name: "personal.first_name",
        fa: "نام",
        en: "First name",
        kind: Kind::Text,
    },
    FormField {
        name: "personal.last_name",
        fa: "نام خانوادگی",
        en: "Last name",
        kind: Kind::Text,
    },
    FormField {
        name: "personal.gender",
        fa: "جنسیت",
        en: "Gender",
        kind: Kind::Gender,
    },
    FormField {
        name: "personal.birth_date",
        fa: "تاریخ تولد",
        en: "Date of birth",
        kind: Kind::Ltr,
    },
    FormField {
        name: "personal.religion",
        fa: "دین (اختیاری)",
        en: "Religion (optional)",
        kind: Kind::Optional,
    },
    FormField {
        name: "personal.nationality",
        fa: "تابعیت",
        en: "Nationality",
        kind: Kind::Ltr,
    },
    FormField {
        name: "personal.birth_certificate_has_photo",
        fa: "شناسنامه عکس‌دار است",
        en: "The birth certificate has my photo",
        kind: Kind::Photo,
    },
];

const CONTACT: &[FormField] = &[
    FormField {
        name: "mobile",
        fa: "تلفن همراه",
        en: "Mobile",
        kind: Kind::Ltr,
    },
    FormField {
        name: "postal_code",
        fa: "کد پستی",
        en: "Postal code",
        kind: Kind::Ltr,
    },
    FormField {
        name: "address",
        fa: "نشانی",
        en: "Address",
        kind: Kind::Text,
    },
];

fn person_fields(prefix: &'static str) -> [FormField; 3] {
    let name = |suffix: &'static str| -> &'static str {
        match (prefix, suffix) {
            ("father", "first_name") => "father.first_name",
            ("father", "last_name") => "father.last_name",
            ("father", _) => "father.national_code",
            ("mother", "first_name") => "mother.first_name",
            ("mother", "last_name") => "mother.last_name",
            ("mother", _) => "mother.national_code",
            (_, "first_name") => "spouse.first_name",
            (_, "last_name") => "spouse.last_name",
            _ => "spouse.national_code",
        }
    };
    [
        FormField {
            name: name("first_name"),
            fa: "نام",
            en: "First name",
            kind: Kind::Text,
        },
        FormField {
            name: name("last_name"),
            fa: "نام خانوادگی",
            en: "Last name",
            kind: Kind::Text,
        },
        FormField {
            name: name("national_code"),
            fa: "کد ملی (اختیاری)",
            en: "National code (optional)",
            kind: Kind::Optional,
        },
    ]
}

/// Failed fields by name (the API's field paths; the children rows share `children.*`).
struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    fn for_field(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, d)| d.as_str())
    }
}

fn field_error_text(l: Lang, detail: &str) -> String {
    match l {
        Lang::Fa => format!("این مقدار درست نیست ({detail})."),
        Lang::En => format!("{detail}."),
    }
}

fn render_field(
    l: Lang,
    f: &FormField,
    values: &Fields,
    errors: &FieldErrors,
    services: &[ServiceDto],
) -> Markup {
    let id = f.name.replace('.', "_");
    let error = errors.for_field(f.name);
    let error_id = format!("{id}_error");
    let described = error.map(|_| error_id.clone());
    let value = values.text(f.name);
    let hint = match f.name {
        "personal.birth_date" => Some(l.t(
            "شمسی (۱۳۸۰/۰۵/۱۲) یا میلادی (2001-08-03)",
            "Jalali (1380/05/12) or Gregorian (2001-08-03)",
        )),
        "mobile" => Some(l.t("مثل ۰۹۱۲۱۲۳۴۵۶۷", "e.g. 09121234567")),
        "postal_code" => Some(l.t("۱۰ رقم", "10 digits")),
        "personal.nationality" => Some(l.t(
            "کد دو حرفی کشور؛ ایران: IR",
            "Two-letter country code; Iran: IR",
        )),
        _ => None,
    };
    let hint_id = format!("{id}_hint");
    let describedby = match (described.as_deref(), hint) {
        (Some(e), Some(_)) => Some(format!("{hint_id} {e}")),
        (Some(e), None) => Some(e.to_string()),
        (None, Some(_)) => Some(hint_id.clone()),
        (None, None) => None,
    };
    html! {
        div.field {
            @match f.kind {
                Kind::Photo => {
                    label.check for=(id) {
                        input #(id) type="checkbox" name=(f.name) value="true"
                            checked[value == "true"];
                        (l.t(f.fa, f.en))
                    }
                }
                Kind::Gender => {
                    label for=(id) { (l.t(f.fa, f.en)) }
                    select #(id) name=(f.name) required aria-invalid=[error.map(|_| "true")] aria-describedby=[describedby.as_deref()] {
                        option value="female" selected[value == "female"] { (l.t("زن", "Female")) }
                        option value="male" selected[value == "male"] { (l.t("مرد", "Male")) }
                    }
                }
                Kind::Service => {
                    label for=(id) { (l.t(f.fa, f.en)) }
                    select #(id) name=(f.name) {
                        @for s in services.iter().filter(|s| s.code != "card_pickup") {
                            option value=(s.code) selected[value == s.code] { (l.t(&s.name_fa, &s.name_en)) }
                        }
                    }
                }
                _ => {
                    label for=(id) { (l.t(f.fa, f.en)) }
                    input #(id) .ltr[f.kind == Kind::Ltr] type="text" name=(f.name) value=(value)
                        required[matches!(f.kind, Kind::Text | Kind::Ltr)]
                        inputmode=[(f.kind == Kind::Ltr && f.name != "personal.nationality" && f.name != "personal.birth_certificate_serial").then_some("numeric")]
                        aria-invalid=[error.map(|_| "true")] aria-describedby=[describedby.as_deref()];
                }
            }
            @if let Some(h) = hint { p.hint #(hint_id) { (h) } }
            @if let Some(e) = error { p.error #(error_id) { (field_error_text(l, e)) } }
        }
    }
}

fn eligibility_rules(l: Lang) -> Markup {
    html! {
        section.card aria-labelledby="rules" {
            h2 #rules { (l.t("چه کسانی می‌توانند ثبت‌نام کنند", "Who can apply")) }
            ul {
                li { (l.t("دارندگان تابعیت ایران", "Iranian nationals")) }
                li { (l.t("۱۵ سال تمام یا بیشتر", "Aged 15 full years or more")) }
                li { (l.t("دارای شناسنامه عکس‌دار", "Holding a birth certificate with their photo")) }
            }
            p.hint { (l.t("اگر یکی از این شرایط برقرار نباشد، پس از ارسال فرم دلیل آن را همین‌جا می‌بینید.",
                          "If a rule is not met, you will see which one and why right here after sending the form.")) }
        }
    }
}

fn rule_text(l: Lang, code: &str, detail: &str) -> String {
    let fa = match code {
        "under_age" => "متقاضی باید دست‌کم ۱۵ سال تمام داشته باشد",
        "not_iranian_national" => "کارت ملی هوشمند ویژه اتباع ایرانی است",
        "birth_certificate_without_photo" => {
            "شناسنامه باید عکس‌دار باشد؛ ابتدا شناسنامه را تعویض کنید"
        }
        _ => "",
    };
    match l {
        Lang::Fa if !fa.is_empty() => format!("{fa} ({detail})."),
        _ => format!("{detail}."),
    }
}

async fn services(api: &Api, ctx: &Ctx) -> Vec<ServiceDto> {
    api.get(&caller(api, ctx, None), "/v1/services")
        .await
        .unwrap_or_default()
}

fn form_page(
    ctx: &Ctx,
    status: StatusCode,
    values: &Fields,
    errors: &FieldErrors,
    failed_rules: &[(String, String)],
    summary: Option<String>,
    services: &[ServiceDto],
) -> Response {
    let l = ctx.lang;
    let flow = Flow::read(ctx);
    let fieldset = |legend: &str, fields: &[FormField]| {
        html! {
            fieldset {
                legend { (legend) }
                @for f in fields { (render_field(l, f, values, errors, services)) }
            }
        }
    };
    let children_error = errors
        .0
        .iter()
        .find(|(f, _)| f.starts_with("children"))
        .map(|(_, d)| d.clone());
    ctx.page(
        status,
        l.t("فرم ثبت‌نام", "Registration form"),
        html! {
            (steps(l, &flow, 1))
            @if !failed_rules.is_empty() {
                div.alert role="alert" {
                    p { strong { (l.t("در حال حاضر امکان صدور کارت نیست:", "A card cannot be issued yet:")) } }
                    ul { @for (code, detail) in failed_rules { li { (rule_text(l, code, detail)) } } }
                }
            }
            @if let Some(s) = summary { (alert(&s)) }
            (eligibility_rules(l))
            form method="post" action="/apply" novalidate {
                (ctx.csrf_field())
                (fieldset(l.t("مشخصات فردی", "Personal details"), PERSONAL))
                (fieldset(l.t("پدر", "Father"), &person_fields("father")))
                (fieldset(l.t("مادر", "Mother"), &person_fields("mother")))
                (fieldset(l.t("همسر (در صورت تأهل)", "Spouse (if married)"), &person_fields("spouse")))
                fieldset {
                    legend { (l.t("فرزندان (اختیاری)", "Children (optional)")) }
                    @if let Some(e) = &children_error { p.error role="alert" { (field_error_text(l, e)) } }
                    @for i in 1..=CHILD_ROWS {
                        @let prefix = format!("child{i}");
                        p.muted { (l.t("فرزند", "Child")) " " (l.digits(&i.to_string())) }
                        @for (suffix, fa, en) in [("first_name", "نام", "First name"), ("birth_date", "تاریخ تولد", "Date of birth"), ("national_code", "کد ملی (اختیاری)", "National code (optional)")] {
                            @let name = format!("{prefix}.{suffix}");
                            @let id = format!("{prefix}_{suffix}");
                            label for=(id) { (l.t(fa, en)) }
                            input #(id) .ltr[suffix != "first_name"] type="text" name=(name) value=(values.text(&name));
                        }
                    }
                }
                (fieldset(l.t("تماس و نشانی", "Contact and address"), CONTACT))
                div.actions { button type="submit" { (l.t("ارسال فرم", "Send the form")) } }
            }
        },
    )
}

async fn apply_page(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    ctx: Ctx,
) -> Response {
    let (code, _) = logged_in!(state, ctx);
    let services = services(&api, &ctx).await;
    let values = Fields(vec![
        ("personal.national_code".into(), code.to_string()),
        ("personal.nationality".into(), "IR".into()),
        ("service".into(), "first_issuance".into()),
    ]);
    form_page(
        &ctx,
        StatusCode::OK,
        &values,
        &FieldErrors(vec![]),
        &[],
        None,
        &services,
    )
}

/// A date as the API takes it (Gregorian `YYYY-MM-DD`): a Jalali date (year before 1700) is
/// converted; anything else goes as written, for the API to judge.
fn gregorian(input: &str) -> String {
    let digits = normalize_digits(input.trim());
    let year: Option<i32> = digits.split(['/', '-']).next().and_then(|y| y.parse().ok());
    match year {
        Some(y) if y < 1700 => JalaliDate::parse(&digits)
            .map(|d| d.to_gregorian().to_string())
            .unwrap_or(digits),
        _ => digits.replace('/', "-"),
    }
}

/// The API's application request from the form's fields.
fn application_body(f: &Fields) -> Value {
    let person = |p: &str| {
        let code = f.text(&format!("{p}.national_code"));
        json!({
            "first_name": f.text(&format!("{p}.first_name")),
            "last_name": f.text(&format!("{p}.last_name")),
            "national_code": (!code.is_empty()).then_some(code),
        })
    };
    let spouse = (!f.text("spouse.first_name").is_empty()
        || !f.text("spouse.last_name").is_empty())
    .then(|| person("spouse"));
    let children: Vec<Value> = (1..=CHILD_ROWS)
        .filter_map(|i| {
            let p = format!("child{i}");
            let first = f.text(&format!("{p}.first_name"));
            let birth = f.text(&format!("{p}.birth_date"));
            if first.is_empty() && birth.is_empty() {
                return None;
            }
            let code = f.text(&format!("{p}.national_code"));
            Some(json!({
                "first_name": first,
                "birth_date": gregorian(&birth),
                "national_code": (!code.is_empty()).then_some(code),
            }))
        })
        .collect();
    let religion = f.text("personal.religion");
    json!({
        "service": f.text("service"),
        "form": {
            "personal": {
                "national_code": f.text("personal.national_code"),
                "birth_certificate_serial": f.text("personal.birth_certificate_serial"),
                "first_name": f.text("personal.first_name"),
                "last_name": f.text("personal.last_name"),
                "gender": f.text("personal.gender"),
                "religion": (!religion.is_empty()).then_some(religion),
                "birth_date": gregorian(&f.text("personal.birth_date")),
                "nationality": f.text("personal.nationality").to_uppercase(),
                "birth_certificate_has_photo": f.get("personal.birth_certificate_has_photo") == Some("true"),
            },
            "father": person("father"),
            "mother": person("mother"),
            "spouse": spouse,
            "children": children,
            "mobile": f.text("mobile"),
            "postal_code": f.text("postal_code"),
            "address": f.text("address"),
        }
    })
}

async fn apply(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    mut ctx: Ctx,
    CheckedForm(fields): CheckedForm,
) -> Response {
    let (_, token) = logged_in!(state, ctx);
    let l = ctx.lang;
    let body = application_body(&fields);
    let caller = caller(&api, &ctx, Some(token));
    match api
        .post::<ApplicationResponse>(&caller, "/v1/applications", &body)
        .await
    {
        Ok(app) => {
            let mut flow = Flow::read(&ctx);
            flow.application = Some(app.application_id);
            flow.service = Some(app.service);
            flow.payment = None;
            flow.tracking = None;
            flow.clear_hold();
            flow.save(&mut ctx);
            ctx.redirect("/pay")
        }
        Err(p) => {
            let services = services(&api, &ctx).await;
            let errors = FieldErrors(
                p.errors
                    .iter()
                    .map(|(f, _, d)| (f.clone(), d.clone()))
                    .collect(),
            );
            let rules: Vec<(String, String)> = p.body["extra"]["failed"]
                .as_array()
                .map(|rules| {
                    rules
                        .iter()
                        .map(|r| {
                            (
                                r["code"].as_str().unwrap_or_default().to_string(),
                                r["detail"].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let summary = match p.code.as_str() {
                "invalid_form" => Some(format!(
                    "{} {}",
                    l.t(
                        "چند مورد فرم نیاز به اصلاح دارد:",
                        "Some fields need fixing:"
                    ),
                    l.digits(&errors.0.len().to_string())
                )),
                "not_eligible" => None,
                "national_code_mismatch" => Some(
                    l.t(
                        "کد ملی فرم باید همان کد ملی ورود باشد.",
                        "The form's national code must be the one you logged in with.",
                    )
                    .to_string(),
                ),
                _ => Some(problem_text(l, &p)),
            };
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            form_page(&ctx, status, &fields, &errors, &rules, summary, &services)
        }
    }
}

// ---------------------------------------------------------------- payment

async fn pay_page(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    mut ctx: Ctx,
) -> Response {
    let _ = logged_in!(state, ctx);
    let flow = Flow::read(&ctx);
    if flow.application.is_none() {
        return ctx.redirect("/apply");
    }
    let l = ctx.lang;
    let message = take_flash(&mut ctx);
    let services = services(&api, &ctx).await;
    let service = services
        .iter()
        .find(|s| Some(&s.code) == flow.service.as_ref());
    ctx.page(
        StatusCode::OK,
        l.t("پرداخت هزینه", "Pay the fee"),
        html! {
            (steps(l, &flow, 2))
            @if let Some(m) = message { (m) }
            div.card {
                @if let Some(s) = service {
                    p { (l.t("خدمت:", "Service:")) " " (l.t(&s.name_fa, &s.name_en)) }
                    @if let Some(fee) = s.fee_rials {
                        p { (l.t("مبلغ:", "Amount:")) " " strong { (l.number(fee as i64)) " " (l.t("ریال", "rials")) }
                            " (" (l.t("تعرفه سال", "tariff of")) " " (l.digits(&s.jalali_year.to_string())) ")" }
                    }
                }
                p.hint { (l.t("درگاه آزمایشی: پرداخت واقعی انجام نمی‌شود.", "Sandbox gateway: no real money moves.")) }
                form method="post" action="/pay" {
                    (ctx.csrf_field())
                    div.actions {
                        button type="submit" name="outcome" value="approve" { (l.t("پرداخت", "Pay")) }
                        button.secondary type="submit" name="outcome" value="decline" { (l.t("رد پرداخت (آزمایشی)", "Decline (sandbox)")) }
                    }
                }
            }
        },
    )
}

async fn pay(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    mut ctx: Ctx,
    CheckedForm(fields): CheckedForm,
) -> Response {
    let (_, token) = logged_in!(state, ctx);
    let mut flow = Flow::read(&ctx);
    let Some(application) = flow.application.clone() else {
        return ctx.redirect("/apply");
    };
    let outcome = if fields.get("outcome") == Some("decline") {
        "decline"
    } else {
        "approve"
    };
    let body = json!({ "application_id": application, "sandbox_outcome": outcome });
    let caller = caller(&api, &ctx, Some(token));
    match api
        .post::<PaymentResponse>(&caller, "/v1/payments", &body)
        .await
    {
        Ok(p) if p.status == "paid" => {
            flow.payment = Some(p.payment_id);
            flow.save(&mut ctx);
            flash(&mut ctx, "paid");
            ctx.redirect("/offices")
        }
        Ok(_) => {
            flash(&mut ctx, "declined");
            ctx.redirect("/pay")
        }
        Err(_) => {
            flash(&mut ctx, "busy");
            ctx.redirect("/pay")
        }
    }
}

// ---------------------------------------------------------------- offices and the week

/// `reschedule=1` on the search and week pages: a chosen time moves the appointment instead
/// of holding a new seat.
fn rescheduling(f: &Fields) -> bool {
    f.get("reschedule") == Some("1")
}

async fn offices(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    mut ctx: Ctx,
    query: Fields,
) -> Response {
    let (_, token) = logged_in!(state, ctx);
    let l = ctx.lang;
    let flow = Flow::read(&ctx);
    let message = take_flash(&mut ctx);
    let reschedule = rescheduling(&query);
    let area_code = query.text("area_code");
    let province = query.text("province");
    let near = query.text("near");
    let mut search = Vec::new();
    for (key, value) in [
        ("area_code", &area_code),
        ("province", &province),
        ("near", &near),
    ] {
        if !value.is_empty() {
            search.push(format!("{key}={}", encode(&normalize_digits(value))));
        }
    }
    let service = flow
        .service
        .clone()
        .unwrap_or_else(|| "first_issuance".into());
    let (found, error) = if search.is_empty() {
        (None, None)
    } else {
        let uri = format!(
            "/v1/offices?{}&service={}&limit={OFFICES_SHOWN}",
            search.join("&"),
            encode(&service)
        );
        match api
            .get::<Vec<OfficeDto>>(&caller(&api, &ctx, Some(token)), &uri)
            .await
        {
            Ok(offices) => (Some(offices), None),
            Err(p) => (None, Some(problem_text(l, &p))),
        }
    };
    let suffix = if reschedule { "?reschedule=1" } else { "" };
    ctx.page(
        StatusCode::OK,
        l.t("جست‌وجوی دفتر", "Find an office"),
        html! {
            (steps(l, &flow, 3))
            @if let Some(m) = message { (m) }
            form.card method="get" action="/offices" role="search" {
                @if reschedule { input type="hidden" name="reschedule" value="1"; }
                input type="hidden" name="near" value="";
                label for="area_code" { (l.t("پیش‌شماره تلفن شهر", "City's phone area code")) }
                input #area_code .ltr type="text" name="area_code" inputmode="numeric" value=(area_code) aria-describedby="area_hint";
                p.hint #area_hint { (l.t("مثل ۰۲۱ برای تهران", "e.g. 021 for Tehran")) }
                label for="province" { (l.t("یا استان", "or province")) }
                input #province type="text" name="province" value=(province) aria-describedby="province_hint";
                p.hint #province_hint { (l.t("مثل تهران یا اصفهان", "e.g. Tehran or Isfahan")) }
                div.actions {
                    button type="submit" { (l.t("جست‌وجو", "Search")) }
                    button.secondary.js-only type="button" data-near hidden { (l.t("نزدیک من", "Near me")) }
                }
            }
            @if let Some(e) = error { (alert(&e)) }
            @if let Some(found) = found {
                @if found.is_empty() {
                    p { (l.t("دفتری پیدا نشد.", "No office found.")) }
                }
                ul.offices {
                    @for o in &found {
                        li.card {
                            h2 { (o.name) }
                            p { (o.city) "، " (o.province)
                                @if let Some(d) = o.distance_km { " · " (l.digits(&format!("{d:.1}"))) " " (l.t("کیلومتر", "km")) } }
                            p { (l.t("ظرفیت آزاد:", "Free seats:")) " " (l.number(o.free_seats)) }
                            @if let Some(first) = o.earliest_free.first() {
                                p { (l.t("نخستین زمان آزاد:", "Earliest free time:")) " " (slot_label(l, first)) }
                            }
                            a.button href={ "/offices/" (o.office_id) (suffix) } { (l.t("زمان‌های آزاد این هفته", "Free times this week")) span.skip { " — " (o.name) } }
                        }
                    }
                }
            }
        },
    )
}

/// An office's name, city and province, from the directory in memory.
fn place(state: &AppState, office_id: &str) -> Option<(String, String, String)> {
    state
        .directory()
        .get(office_id)
        .map(|o| (o.name.clone(), o.city.clone(), o.province.clone()))
}

/// "Sunday 1 Mehr 1403, 08:00" in the reader's language.
fn slot_label(l: Lang, s: &SlotDto) -> String {
    match l {
        Lang::Fa => s.jalali_display.clone(),
        Lang::En => format!("{} {}", s.jalali_date, s.start.get(11..16).unwrap_or("")),
    }
}

async fn week(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    ApiPath(office_id): ApiPath<String>,
    mut ctx: Ctx,
    query: Fields,
) -> Response {
    let (_, token) = logged_in!(state, ctx);
    let l = ctx.lang;
    let flow = Flow::read(&ctx);
    let message = take_flash(&mut ctx);
    let reschedule = rescheduling(&query);
    let today = iran_date(state.engine.clock().now());
    let from = NaiveDate::parse_from_str(&query.text("from"), "%Y-%m-%d")
        .ok()
        .filter(|d| *d >= today)
        .unwrap_or(today);
    let to = from + Duration::days(6);
    let caller = caller(&api, &ctx, Some(token));
    let office = place(&state, &office_id);
    let service = flow
        .service
        .clone()
        .unwrap_or_else(|| "first_issuance".into());
    let uri = format!(
        "/v1/offices/{}/slots?from={from}&to={to}&service={}",
        encode(&office_id),
        encode(&service)
    );
    let slots = match api.get::<Vec<SlotDto>>(&caller, &uri).await {
        Ok(s) => s,
        Err(p) => {
            let text = problem_text(l, &p);
            return ctx.page(StatusCode::NOT_FOUND, l.t("دفتر", "Office"), alert(&text));
        }
    };
    // Days in order, each with its free times.
    let mut days: Vec<(String, String, Vec<&SlotDto>)> = Vec::new();
    for s in slots.iter().filter(|s| s.free > 0) {
        let day_label = match l {
            Lang::Fa => s
                .jalali_display
                .split('،')
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
            Lang::En => s.jalali_date.clone(),
        };
        match days.last_mut() {
            Some((date, _, list)) if *date == s.jalali_date => list.push(s),
            _ => days.push((s.jalali_date.clone(), day_label, vec![s])),
        }
    }
    let action = if reschedule { "/reschedule" } else { "/hold" };
    let suffix = if reschedule { "&reschedule=1" } else { "" };
    let title = office
        .as_ref()
        .map(|o| o.0.clone())
        .unwrap_or_else(|| office_id.clone());
    let prev = (from > today).then(|| (from - Duration::days(7)).max(today));
    ctx.page(
        StatusCode::OK,
        &title,
        html! {
            (steps(l, &flow, 3))
            @if let Some(m) = message { (m) }
            @if reschedule { p.notice { (l.t("زمان تازه را انتخاب کنید؛ نوبت فعلی تا ثبت زمان تازه سر جایش می‌ماند.",
                                             "Pick the new time; the current appointment stays until the new one is secured.")) } }
            @if let Some(o) = &office { p { (o.1) "، " (o.2) } }
            @if !reschedule {
                // The engine's pick: the earliest free time at this office (`pick.office_ids`).
                form.card.pick method="post" action="/hold" {
                    (ctx.csrf_field())
                    input type="hidden" name="pick_office" value=(office_id);
                    p.hint { (l.t("یا بگذارید سامانه نخستین زمان آزاد این دفتر را برایتان بگیرد.",
                                  "Or let the service take the earliest free time at this office for you.")) }
                    button type="submit" { (l.t("نخستین زمان آزاد را بگیر", "Take the earliest free time")) }
                }
            }
            h2 { (l.t("زمان‌های آزاد", "Free times")) }
            @if days.is_empty() { p { (l.t("در این هفته زمان آزادی نیست.", "No free time this week.")) } }
            div.week {
                @for (_, label, list) in &days {
                    section.day.card {
                        h3 { (label) }
                        form method="post" action=(action) {
                            (ctx.csrf_field())
                            input type="hidden" name="office_id" value=(office_id);
                            div.times {
                                @for s in list {
                                    @let time = s.start.get(11..16).unwrap_or("");
                                    button.secondary type="submit" name="start" value=(s.start)
                                        aria-label={ (label) " " (l.digits(time)) } { (l.digits(time)) }
                                }
                            }
                        }
                    }
                }
            }
            nav.actions aria-label=(l.t("هفته‌ها", "Weeks")) {
                @if let Some(p) = prev {
                    a.button.secondary href={ "/offices/" (office_id) "?from=" (p) (suffix) } { (l.t("هفته قبل", "Previous week")) }
                }
                a.button.secondary href={ "/offices/" (office_id) "?from=" (from + Duration::days(7)) (suffix) } { (l.t("هفته بعد", "Next week")) }
                a.button.secondary href={ "/offices" @if reschedule { "?reschedule=1" } } { (l.t("دفتر دیگر", "Another office")) }
            }
        },
    )
}

// ---------------------------------------------------------------- hold, confirm, release

async fn hold(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    mut ctx: Ctx,
    CheckedForm(fields): CheckedForm,
) -> Response {
    let (_, token) = logged_in!(state, ctx);
    let mut flow = Flow::read(&ctx);
    let Some(application) = flow.application.clone() else {
        return ctx.redirect("/apply");
    };
    let pick_office = fields.text("pick_office");
    let (office_id, start, body) = if pick_office.is_empty() {
        let (office_id, start) = (fields.text("office_id"), fields.text("start"));
        let body = json!({ "application_id": application, "office_id": office_id, "start": start });
        (office_id, start, body)
    } else {
        let body =
            json!({ "application_id": application, "pick": { "office_ids": [pick_office] } });
        (pick_office, String::new(), body)
    };
    let caller = caller(&api, &ctx, Some(token));
    match api.post::<HoldResponse>(&caller, "/v1/holds", &body).await {
        Ok(h) => {
            flow.hold = Some(h.hold_id);
            flow.hold_expires = Some(h.expires_at);
            flow.hold_office = Some(h.office_id);
            flow.hold_start = Some(h.start);
            flow.save(&mut ctx);
            ctx.redirect("/hold")
        }
        Err(p) => match p.code.as_str() {
            "pass_required" | "pass_invalid" => {
                super::queue::to_room(&mut ctx, &p).unwrap_or_else(|| ctx.redirect("/queue"))
            }
            "already_holding" => {
                flow.hold = p.body["extra"]["hold_id"]
                    .as_str()
                    .map(str::to_string)
                    .filter(|s| id_shaped(s));
                flow.save(&mut ctx);
                ctx.redirect("/hold")
            }
            "already_booked" => {
                flow.tracking = p.body["extra"]["tracking_code"]
                    .as_str()
                    .map(str::to_string)
                    .filter(|s| id_shaped(s));
                flow.save(&mut ctx);
                ctx.redirect("/receipt")
            }
            code => {
                flash(
                    &mut ctx,
                    match code {
                        "slot_full" => "slot_full",
                        "no_seat_within_limits" => "no_seat",
                        _ => "busy",
                    },
                );
                match start.get(..10) {
                    Some(day) => ctx.redirect(&format!(
                        "/offices/{}?from={}",
                        encode(&office_id),
                        encode(day)
                    )),
                    None => ctx.redirect(&format!("/offices/{}", encode(&office_id))),
                }
            }
        },
    }
}

async fn hold_page(State(state): State<AppState>, ctx: Ctx) -> Response {
    let _ = logged_in!(state, ctx);
    let l = ctx.lang;
    let flow = Flow::read(&ctx);
    if flow.hold.is_none() {
        return ctx.redirect("/");
    }
    let office = flow.hold_office.as_deref().and_then(|id| place(&state, id));
    let when = flow.hold_start.as_deref().and_then(|s| {
        let at = chrono::DateTime::parse_from_rfc3339(s).ok()?;
        let (date, display) = crate::http::v1::jalali(at.timestamp());
        Some(match l {
            Lang::Fa => display,
            Lang::En => format!("{date} {}", s.get(11..16).unwrap_or("")),
        })
    });
    let expires = flow.hold_expires.clone().unwrap_or_default();
    // Seconds left by the server's clock: the countdown does not trust the device's clock.
    let left_secs = chrono::DateTime::parse_from_rfc3339(&expires)
        .map(|at| (at.timestamp() - state.engine.clock().now().timestamp()).max(0))
        .unwrap_or(0);
    ctx.page(
        StatusCode::OK,
        l.t("تأیید نوبت", "Confirm your appointment"),
        html! {
            (steps(l, &flow, 3))
            div.card {
                @if let Some(o) = &office { p { (l.t("دفتر:", "Office:")) " " (o.0) "، " (o.1) } }
                @if let Some(w) = &when { p { (l.t("زمان:", "Time:")) " " strong { (w) } } }
                @if !expires.is_empty() {
                    p { (l.t("این زمان تا ", "This time is held for you until ")) strong { (l.digits(expires.get(11..16).unwrap_or(""))) }
                        (l.t(" برای شما نگه داشته می‌شود. زمان باقی‌مانده: ", ". Time left: "))
                        time.countdown datetime=(expires) data-countdown=(left_secs) { (l.digits(&format!("{}:{:02}", left_secs / 60, left_secs % 60))) } }
                }
                form method="post" action="/hold/confirm" {
                    (ctx.csrf_field())
                    div.actions { button type="submit" { (l.t("تأیید و ثبت نوبت", "Confirm and book")) } }
                }
                form method="post" action="/hold/release" {
                    (ctx.csrf_field())
                    div.actions { button.secondary type="submit" { (l.t("انصراف و آزاد کردن زمان", "Cancel and release the time")) } }
                }
            }
        },
    )
}

async fn confirm(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    mut ctx: Ctx,
    _: CheckedForm,
) -> Response {
    let (_, token) = logged_in!(state, ctx);
    let mut flow = Flow::read(&ctx);
    let (Some(hold), Some(payment)) = (flow.hold.clone(), flow.payment.clone()) else {
        return ctx.redirect("/");
    };
    let caller = caller(&api, &ctx, Some(token));
    let uri = format!("/v1/holds/{}/confirm", encode(&hold));
    match api
        .post::<AppointmentDto>(&caller, &uri, &json!({ "payment_id": payment }))
        .await
    {
        Ok(a) => {
            flow.tracking = Some(a.tracking_code);
            flow.clear_hold();
            flow.save(&mut ctx);
            ctx.redirect("/receipt")
        }
        Err(p) => {
            let expired = matches!(
                p.code.as_str(),
                "hold_expired" | "hold_not_found" | "hold_not_live"
            );
            if expired {
                flow.clear_hold();
                flow.save(&mut ctx);
                flash(&mut ctx, "hold_expired");
                ctx.redirect("/offices")
            } else {
                flash(&mut ctx, "busy");
                ctx.redirect("/hold")
            }
        }
    }
}

async fn release(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    mut ctx: Ctx,
    _: CheckedForm,
) -> Response {
    let (_, token) = logged_in!(state, ctx);
    let mut flow = Flow::read(&ctx);
    if let Some(hold) = flow.hold.clone() {
        let caller = caller(&api, &ctx, Some(token));
        let uri = format!("/v1/holds/{}", encode(&hold));
        // Gone already (expired, released) is as good as released.
        let _ = api.call(&caller, Method::DELETE, &uri, None).await;
    }
    flow.clear_hold();
    flow.save(&mut ctx);
    flash(&mut ctx, "released");
    ctx.redirect("/offices")
}

// ---------------------------------------------------------------- receipt, cancel, reschedule

async fn receipt(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    mut ctx: Ctx,
) -> Response {
    let (_, token) = logged_in!(state, ctx);
    let l = ctx.lang;
    let flow = Flow::read(&ctx);
    let Some(tracking) = flow.tracking.clone() else {
        return ctx.redirect("/");
    };
    let message = take_flash(&mut ctx);
    let caller = caller(&api, &ctx, Some(token));
    let a = match api
        .get::<AppointmentDto>(&caller, &format!("/v1/appointments/{}", encode(&tracking)))
        .await
    {
        Ok(a) => a,
        Err(p) => {
            return ctx.page(
                StatusCode::NOT_FOUND,
                l.t("رسید", "Receipt"),
                alert(&problem_text(l, &p)),
            )
        }
    };
    let active = matches!(a.status.as_str(), "booked");
    ctx.page(
        StatusCode::OK,
        l.t("رسید نوبت", "Appointment receipt"),
        html! {
            (steps(l, &flow, 4))
            @if let Some(m) = message { (m) }
            div.card.receipt {
                table {
                    tr { th scope="row" { (l.t("کد رهگیری", "Tracking code")) } td.code #tracking { (a.tracking_code_display) } }
                    tr { th scope="row" { (l.t("وضعیت", "Status")) } td #status { (status_label(l, &a.status)) } }
                    tr { th scope="row" { (l.t("خدمت", "Service")) } td { (match l { Lang::Fa => a.service_name_fa.clone(), Lang::En => service_name_en(&a.service) }) } }
                    tr { th scope="row" { (l.t("دفتر", "Office")) } td { (a.office.name) " (" (a.office.city) ")" } }
                    tr { th scope="row" { (l.t("زمان مراجعه", "Visit")) } td #when { (match l { Lang::Fa => a.jalali_display.clone(), Lang::En => format!("{} {}", a.jalali_date, a.start.get(11..16).unwrap_or("")) }) } }
                    tr { th scope="row" { (l.t("کد ملی", "National code")) } td.code { (l.digits(&a.national_code_masked)) } }
                }
                p.hint { (l.t("در زمان مراجعه اصل شناسنامه، نشانی و کد پستی محل سکونت و این رسید را همراه داشته باشید.",
                              "Bring your original birth certificate, your address and postal code, and this receipt.")) }
            }
            div.actions {
                button.js-only type="button" data-print hidden { (l.t("چاپ رسید", "Print the receipt")) }
                @if active {
                    a.button.secondary href="/offices?reschedule=1" { (l.t("تغییر زمان", "Reschedule")) }
                    form.inline method="post" action="/cancel" {
                        (ctx.csrf_field())
                        button.danger type="submit" { (l.t("لغو نوبت", "Cancel the appointment")) }
                    }
                }
            }
        },
    )
}

fn service_name_en(code: &str) -> String {
    crate::domain::ServiceCode::parse(code)
        .map(|s| s.info().name_en.clone())
        .unwrap_or_else(|_| code.to_string())
}

fn status_label(l: Lang, status: &str) -> String {
    match l {
        Lang::Fa => status_fa(status).to_string(),
        Lang::En => status.replace('_', " "),
    }
}

async fn cancel(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    mut ctx: Ctx,
    _: CheckedForm,
) -> Response {
    let (_, token) = logged_in!(state, ctx);
    let flow = Flow::read(&ctx);
    let Some(tracking) = flow.tracking.clone() else {
        return ctx.redirect("/");
    };
    let caller = caller(&api, &ctx, Some(token));
    let uri = format!("/v1/appointments/{}/cancel", encode(&tracking));
    let key = match api.call(&caller, Method::POST, &uri, None).await {
        Ok(_) => "cancelled",
        Err(_) => "busy",
    };
    flash(&mut ctx, key);
    ctx.redirect("/receipt")
}

async fn reschedule(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    mut ctx: Ctx,
    CheckedForm(fields): CheckedForm,
) -> Response {
    let (_, token) = logged_in!(state, ctx);
    let flow = Flow::read(&ctx);
    let Some(tracking) = flow.tracking.clone() else {
        return ctx.redirect("/");
    };
    let office_id = fields.text("office_id");
    let start = fields.text("start");
    let caller = caller(&api, &ctx, Some(token));
    let uri = format!("/v1/appointments/{}/reschedule", encode(&tracking));
    let body = json!({ "office_id": office_id, "start": start });
    match api.call(&caller, Method::POST, &uri, Some(&body)).await {
        Ok(_) => {
            flash(&mut ctx, "rescheduled");
            ctx.redirect("/receipt")
        }
        Err(p) => {
            if let Some(to_room) = super::queue::to_room(&mut ctx, &p) {
                return to_room;
            }
            flash(
                &mut ctx,
                if p.code == "slot_full" {
                    "slot_full"
                } else {
                    "busy"
                },
            );
            let day = start.get(..10).unwrap_or("");
            ctx.redirect(&format!(
                "/offices/{}?from={}&reschedule=1",
                encode(&office_id),
                encode(day)
            ))
        }
    }
}

// ---------------------------------------------------------------- status lookup

fn status_form(ctx: &Ctx, national_code: &str, tracking: &str) -> Markup {
    let l = ctx.lang;
    html! {
        form.card method="post" action="/status" {
            (ctx.csrf_field())
            label for="s_national_code" { (l.t("کد ملی", "National code")) }
            input #s_national_code .ltr type="text" name="national_code" inputmode="numeric" required value=(national_code);
            label for="s_tracking" { (l.t("کد رهگیری", "Tracking code")) }
            input #s_tracking .ltr type="text" name="tracking_code" required value=(tracking);
            div.actions { button type="submit" { (l.t("پیگیری", "Look up")) } }
        }
    }
}

async fn status_page(ctx: Ctx) -> Response {
    let l = ctx.lang;
    ctx.page(
        StatusCode::OK,
        l.t("پیگیری وضعیت", "Track your status"),
        html! {
            p { (l.t("کد ملی و کد رهگیری روی رسید را وارد کنید.", "Enter your national code and the tracking code on your receipt.")) }
            (status_form(&ctx, "", ""))
        },
    )
}

/// A POST, so that neither code appears in a URL, a log line or the browser's history.
async fn status(
    Extension(api): Extension<Api>,
    ctx: Ctx,
    CheckedForm(fields): CheckedForm,
) -> Response {
    let l = ctx.lang;
    let national_code = fields.text("national_code");
    let tracking = fields.text("tracking_code");
    let uri = format!(
        "/v1/status?national_code={}&tracking_code={}",
        encode(&national_code),
        encode(&tracking)
    );
    let answer = api
        .get::<StatusResponse>(&caller(&api, &ctx, None), &uri)
        .await;
    let title = l.t("پیگیری وضعیت", "Track your status");
    match answer {
        Ok(s) => ctx.page(
            StatusCode::OK,
            title,
            html! {
                div.card {
                    table {
                        tr { th scope="row" { (l.t("وضعیت", "Status")) } td #status { (status_label(l, &s.status)) } }
                        tr { th scope="row" { (l.t("تاریخ نوبت", "Appointment date")) } td { (l.jalali(&s.jalali_date)) "، " (l.digits(s.start.get(11..16).unwrap_or(""))) } }
                        @if let Some(ready) = &s.ready_date {
                            tr { th scope="row" { (l.t("آماده شدن کارت", "Card ready")) } td { (l.jalali(&jalali_of_iso(ready))) } }
                        }
                        @if let Some(p) = &s.pickup {
                            tr #pickup { th scope="row" { (l.t("نوبت تحویل کارت", "Card pickup visit")) }
                                td { (l.jalali(&p.jalali_date)) "، " (l.digits(p.start.get(11..16).unwrap_or(""))) " · " (status_label(l, &p.status)) } }
                        }
                    }
                    h2 { (l.t("سابقه", "History")) }
                    ol { @for h in &s.history { li { (l.jalali(&h.jalali_date)) " — " (h.kind.replace('_', " ")) } } }
                }
                (status_form(&ctx, "", ""))
            },
        ),
        Err(p) => ctx.page(
            StatusCode::from_u16(p.status).unwrap_or(StatusCode::NOT_FOUND),
            title,
            html! {
                (alert(&problem_text(l, &p)))
                (status_form(&ctx, &national_code, &tracking))
            },
        ),
    }
}

/// A Gregorian ISO date as its Jalali `YYYY-MM-DD`; other text unchanged.
fn jalali_of_iso(iso: &str) -> String {
    NaiveDate::parse_from_str(iso, "%Y-%m-%d")
        .map(|d| JalaliDate::from_gregorian(d).to_string())
        .unwrap_or_else(|_| iso.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jalali_birth_dates_become_gregorian() {
        assert_eq!(gregorian("1403/07/01"), "2024-09-22");
        assert_eq!(gregorian("۱۴۰۳/۰۷/۰۱"), "2024-09-22");
        assert_eq!(gregorian("2001-08-03"), "2001-08-03");
        assert_eq!(gregorian("2001/08/03"), "2001-08-03");
        // Not a date: passed on for the API to refuse with its field error.
        assert_eq!(gregorian("yesterday"), "yesterday");
    }

    #[test]
    fn flow_ids_must_be_short_tokens() {
        assert!(id_shaped("app_0a1B-2"));
        assert!(id_shaped("2024-09-22T08:00:00+03:30"));
        assert!(!id_shaped("<script>"));
        assert!(!id_shaped(""));
    }
}
