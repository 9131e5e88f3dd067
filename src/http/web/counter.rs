//! The office counter at `/staff`: the office's day, and each visit's next step (check in,
//! enrol, which books the card pickup, no-show, card ready, deliver) as large buttons. A
//! clerk can also type (or scan) a tracking code into the quick form at the top and press a
//! shortcut: Alt+C check in, Alt+E enrol, Alt+N no-show, Alt+R card ready, Alt+D deliver
//! (the browser's access keys; Alt+Shift in Firefox). Every step is the staff API's
//! (`/v1/staff/…`), called in process with the clerk's staff token.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use maud::{html, Markup};

use super::api::{encode, Api};
use super::{CheckedForm, Ctx, Fields, Lang};
use crate::domain::time::iran_date;
use crate::http::staff::OfficeDayDto;
use crate::http::v1::receipt::status_fa;
use crate::http::AppState;

const STAFF_COOKIE: &str = "nobat_staff";
const FLASH_COOKIE: &str = "nobat_staff_flash";
/// A staff session lasts a working day.
const STAFF_SESSION_SECS: i64 = 12 * 3600;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/staff", get(day))
        .route("/staff/login", post(login))
        .route("/staff/logout", post(logout))
        .route("/staff/act", post(act))
}

/// (action path, Persian, English, access key)
const ACTIONS: &[(&str, &str, &str, &str)] = &[
    ("check-in", "پذیرش", "Check in", "c"),
    ("enrol", "ثبت‌نام و نوبت تحویل", "Enrol", "e"),
    ("no-show", "عدم حضور", "No-show", "n"),
    ("card-ready", "کارت آماده", "Card ready", "r"),
    ("deliver", "تحویل کارت", "Deliver", "d"),
];

/// The steps that follow a visit's status (a card-pickup visit ends with the delivery).
fn next_steps(service: &str, status: &str) -> &'static [&'static str] {
    match status {
        "booked" if service == "card_pickup" => &["deliver", "no-show"],
        "booked" => &["check-in", "no-show"],
        "checked_in" => &["enrol", "no-show"],
        "enrolled" => &["card-ready"],
        "card_ready" => &["deliver"],
        _ => &[],
    }
}

fn action_label(l: Lang, action: &str) -> &'static str {
    ACTIONS
        .iter()
        .find(|a| a.0 == action)
        .map(|a| if l == Lang::Fa { a.1 } else { a.2 })
        .unwrap_or("")
}

fn token(ctx: &Ctx) -> Option<String> {
    ctx.cookie(STAFF_COOKIE)
        .filter(|t| !t.is_empty() && t.len() <= 256 && t.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
}

fn login_page(ctx: &Ctx, status: StatusCode, error: Option<&str>) -> Response {
    let l = ctx.lang;
    ctx.page(
        status,
        l.t("پیشخوان دفتر", "Office counter"),
        html! {
            @if let Some(e) = error { p.alert role="alert" { (e) } }
            form.card method="post" action="/staff/login" {
                (ctx.csrf_field())
                label for="staff_token" { (l.t("رمز کارمند دفتر", "Staff token")) }
                input #staff_token .ltr type="password" name="token" required autocomplete="current-password";
                div.actions { button type="submit" { (l.t("ورود", "Log in")) } }
            }
        },
    )
}

async fn login(
    Extension(api): Extension<Api>,
    mut ctx: Ctx,
    CheckedForm(fields): CheckedForm,
) -> Response {
    let token = fields.text("token");
    let caller = api.caller(&ctx.headers, ctx.peer, Some(token.clone()));
    match api
        .get::<OfficeDayDto>(&caller, "/v1/staff/appointments")
        .await
    {
        Ok(_) => {
            ctx.set_cookie(STAFF_COOKIE, &token, STAFF_SESSION_SECS);
            ctx.redirect("/staff")
        }
        Err(_) => {
            let l = ctx.lang;
            login_page(
                &ctx,
                StatusCode::UNAUTHORIZED,
                Some(l.t("رمز درست نیست.", "The token is not valid.")),
            )
        }
    }
}

async fn logout(mut ctx: Ctx, _: CheckedForm) -> Response {
    ctx.set_cookie(STAFF_COOKIE, "", 0);
    ctx.redirect("/staff")
}

fn take_flash(ctx: &mut Ctx) -> Option<Markup> {
    let raw = ctx.cookie(FLASH_COOKIE)?.to_string();
    ctx.set_cookie(FLASH_COOKIE, "", 0);
    let l = ctx.lang;
    let (ok, action) = raw.split_once(':')?;
    let label = action_label(l, action);
    if label.is_empty() {
        return None;
    }
    Some(if ok == "ok" {
        html! { p.notice role="status" { (label) " — " (l.t("انجام شد", "done")) } }
    } else {
        html! { p.alert role="alert" { (label) " — " (l.t("انجام نشد: ", "refused: ")) (ok.replace('_', " ")) } }
    })
}

/// `GET /staff?date=…`: the office's day.
async fn day(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    mut ctx: Ctx,
    query: Fields,
) -> Response {
    let Some(token) = token(&ctx) else {
        return login_page(&ctx, StatusCode::OK, None);
    };
    let l = ctx.lang;
    let message = take_flash(&mut ctx);
    let date = query.text("date");
    let uri = if date.is_empty() {
        "/v1/staff/appointments".to_string()
    } else {
        format!("/v1/staff/appointments?date={}", encode(&date))
    };
    let caller = api.caller(&ctx.headers, ctx.peer, Some(token));
    let office_day = match api.get::<OfficeDayDto>(&caller, &uri).await {
        Ok(d) => d,
        Err(p) if p.status == 401 => {
            ctx.set_cookie(STAFF_COOKIE, "", 0);
            return login_page(&ctx, StatusCode::UNAUTHORIZED, None);
        }
        Err(p) => {
            return ctx.page(
                StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST),
                l.t("پیشخوان دفتر", "Office counter"),
                html! { p.alert role="alert" { (p.detail) } p { a href="/staff" { (l.t("امروز", "Today")) } } },
            )
        }
    };
    let office_name = state
        .directory()
        .get(&office_day.office_id)
        .map(|o| o.name.clone())
        .unwrap_or_else(|| office_day.office_id.clone());
    let today = iran_date(state.engine.clock().now()).to_string();
    ctx.page(
        StatusCode::OK,
        &office_name,
        html! {
            @if let Some(m) = message { (m) }
            p { (l.t("روز:", "Day:")) " " strong { (l.jalali(&office_day.jalali_date)) }
                @if office_day.date != today { " · " a href="/staff" { (l.t("امروز", "Today")) } } }
            form.card method="post" action="/staff/act" aria-label=(l.t("اقدام سریع", "Quick step")) {
                (ctx.csrf_field())
                label for="quick_code" { (l.t("کد رهگیری", "Tracking code")) }
                input #quick_code .ltr type="text" name="tracking_code" autocomplete="off" autofocus aria-describedby="quick_hint";
                p.hint #quick_hint { (l.t("میان‌بر: Alt+C پذیرش، Alt+E ثبت‌نام، Alt+N عدم حضور، Alt+R کارت آماده، Alt+D تحویل",
                                          "Shortcuts: Alt+C check in, Alt+E enrol, Alt+N no-show, Alt+R card ready, Alt+D deliver")) }
                div.actions {
                    @for (action, fa, en, key) in ACTIONS {
                        button.secondary type="submit" name="action" value=(action) accesskey=(key) { (l.t(fa, en)) }
                    }
                }
            }
            h2 { (l.t("نوبت‌های روز", "The day's visits")) " (" (l.number(office_day.appointments.len() as i64)) ")" }
            @if office_day.appointments.is_empty() { p { (l.t("نوبتی نیست.", "No visits.")) } }
            @for a in &office_day.appointments {
                section.card.visit aria-label=(a.tracking_code) {
                    p { strong { (l.digits(a.start.get(11..16).unwrap_or(""))) } " · "
                        span.code { (a.tracking_code) } " · "
                        span.code { (l.digits(&a.national_code_masked)) } }
                    p { (l.t("وضعیت:", "Status:")) " " span.status { (if l == Lang::Fa { status_fa(&a.status).to_string() } else { a.status.replace('_', " ") }) }
                        @if let Some(p) = &a.pickup { " · " (l.t("نوبت تحویل:", "Pickup:")) " " (l.jalali(&p.jalali_date)) " " (l.digits(p.start.get(11..16).unwrap_or(""))) } }
                    @let steps = next_steps(&a.service, &a.status);
                    @if !steps.is_empty() {
                        form method="post" action="/staff/act" {
                            (ctx.csrf_field())
                            input type="hidden" name="tracking_code" value=(a.tracking_code);
                            input type="hidden" name="date" value=(office_day.date);
                            div.actions {
                                @for step in steps {
                                    button type="submit" name="action" value=(step) class=(if *step == "no-show" { "danger" } else { "" }) {
                                        (action_label(l, step)) span.skip { " " (a.tracking_code) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form method="post" action="/staff/logout" {
                (ctx.csrf_field())
                button.secondary type="submit" { (l.t("خروج", "Log out")) }
            }
        },
    )
}

/// `POST /staff/act`: one step of one visit, then back to the day.
async fn act(
    Extension(api): Extension<Api>,
    mut ctx: Ctx,
    CheckedForm(fields): CheckedForm,
) -> Response {
    let Some(token) = token(&ctx) else {
        return ctx.redirect("/staff");
    };
    let action = fields.text("action");
    let Some(action) = ACTIONS.iter().map(|a| a.0).find(|a| *a == action) else {
        return ctx.redirect("/staff");
    };
    let code = fields.text("tracking_code").replace(['-', ' '], "");
    let caller = api.caller(&ctx.headers, ctx.peer, Some(token));
    let uri = format!("/v1/staff/appointments/{}/{action}", encode(&code));
    let outcome = match api.call(&caller, Method::POST, &uri, None).await {
        Ok(_) => "ok".to_string(),
        Err(p) => p.code,
    };
    let flash: String = format!("{outcome}:{action}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_-:".contains(*c))
        .collect();
    ctx.set_cookie(FLASH_COOKIE, &flash, 60);
    let date = fields.text("date");
    if date.is_empty() {
        ctx.redirect("/staff")
    } else {
        ctx.redirect(&format!("/staff?date={}", encode(&date)))
    }
}
