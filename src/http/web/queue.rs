//! The portal's waiting room (issue 22). While a waiting room stands in front of bookings, the
//! API answers a booking page's hold or reschedule with `pass_required`; the page sends the
//! applicant here. They join the room, watch their place and the estimated wait (the page
//! reloads itself, so it works without JavaScript), and once admitted the pass goes into a
//! cookie that every API call of the pages carries in `Booking-Pass` (`portal::caller`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use maud::html;
use serde_json::json;

use super::api::{encode, Api, ApiProblem};
use super::portal::{caller, id_shaped, session};
use super::{CheckedForm, Ctx, Fields};
use crate::http::v1::queue::TicketDto;
use crate::http::AppState;

/// The ticket of the room the applicant joined (opaque; useless without their session).
pub const TICKET_COOKIE: &str = "nobat_ticket";
/// The pass the room gave, sent with the booking calls until it expires.
pub const PASS_COOKIE: &str = "nobat_pass";
/// A ticket is kept at most this long (a room's day).
const TICKET_COOKIE_SECS: i64 = 12 * 3600;
/// The page reloads itself at the API's `poll_after_seconds`, within these bounds.
const REFRESH_SECS_MIN: u64 = 2;
const REFRESH_SECS_MAX: u64 = 60;

pub fn routes() -> Router<AppState> {
    Router::new().route("/queue", get(queue_page).post(join))
}

/// Where a booking page goes when the API asked for a pass: the room the problem names (a
/// pass that no longer opens is dropped first). `None` when the problem is another one.
pub fn to_room(ctx: &mut Ctx, p: &ApiProblem) -> Option<Response> {
    if p.code != "pass_required" && p.code != "pass_invalid" {
        return None;
    }
    if p.code == "pass_invalid" {
        ctx.set_cookie(PASS_COOKIE, "", 0);
    }
    let room = p.body["extra"]["room_id"]
        .as_str()
        .filter(|r| id_shaped(r))
        .unwrap_or("");
    Some(ctx.redirect(&format!("/queue?room={}", encode(room))))
}

/// A ticket cookie, if it is shaped like one.
fn ticket(ctx: &Ctx) -> Option<String> {
    ctx.cookie(TICKET_COOKIE)
        .filter(|t| id_shaped(t))
        .map(str::to_string)
}

async fn queue_page(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    mut ctx: Ctx,
    query: Fields,
) -> Response {
    let Some((_, token)) = session(&state, &ctx) else {
        return ctx.redirect("/");
    };
    let room = Some(query.text("room")).filter(|r| id_shaped(r));
    let l = ctx.lang;
    let mut note = None;
    if let Some(ticket) = ticket(&ctx) {
        let caller = caller(&api, &ctx, Some(token));
        match api
            .get::<TicketDto>(&caller, &format!("/v1/queue/{}", encode(&ticket)))
            .await
        {
            Ok(t) if t.admitted && t.pass.is_some() => return admitted(&state, ctx, &t),
            Ok(t) => return waiting(ctx, &t),
            Err(p) => {
                // Expired (not polled in time, or its pass used up) or not this citizen's:
                // start again with a new join.
                ctx.set_cookie(TICKET_COOKIE, "", 0);
                note = Some(if p.code == "ticket_expired" {
                    l.t(
                        "نوبت شما در صف منقضی شد، چون صفحه مدتی باز نبود. دوباره به صف بپیوندید.",
                        "Your place in the queue expired because the page was not open for a while. Join again.",
                    )
                } else {
                    l.t(
                        "این نوبت صف دیگر معتبر نیست.",
                        "This queue ticket is no longer valid.",
                    )
                });
            }
        }
    }
    let Some(room) = room else {
        return ctx.page(
            StatusCode::OK,
            l.t("صف انتظار", "Waiting room"),
            html! {
                @if let Some(n) = note { p.notice role="status" { (n) } }
                p { (l.t("اکنون صف انتظاری لازم نیست.", "No waiting room is needed right now.")) }
                p { a href="/offices" { (l.t("جست‌وجوی دفاتر", "Find an office")) } }
            },
        );
    };
    ctx.page(
        StatusCode::OK,
        l.t("صف انتظار", "Waiting room"),
        html! {
            @if let Some(n) = note { p.notice role="status" { (n) } }
            p { (l.t(
                "امروز تقاضا بیش از ظرفیت است. برای رعایت نوبت، رزرو از طریق صف انتظار انجام می‌شود: به صف بپیوندید و این صفحه را باز نگه دارید. کسانی که پیش از شروع آمده‌اند با قرعه‌ای قابل بررسی مرتب می‌شوند و بقیه به ترتیب ورود.",
                "Demand is above capacity today, so bookings go through a waiting room: join it and keep this page open. Those who arrived before the opening are ordered by an auditable lot; later arrivals in order of arrival.",
            )) }
            form method="post" action="/queue" {
                (ctx.csrf_field())
                input type="hidden" name="room_id" value=(room);
                button type="submit" { (l.t("پیوستن به صف", "Join the queue")) }
            }
        },
    )
}

/// The place in the queue, reloaded by the page itself.
fn waiting(mut ctx: Ctx, t: &TicketDto) -> Response {
    let l = ctx.lang;
    let refresh = t
        .poll_after_seconds
        .clamp(REFRESH_SECS_MIN, REFRESH_SECS_MAX);
    ctx.refresh_secs = Some(refresh as u32);
    let minutes = t.eta_seconds.div_ceil(60).max(1) as i64;
    ctx.page(
        StatusCode::OK,
        l.t("در صف انتظار", "In the waiting room"),
        html! {
            @match t.position {
                Some(ahead) => p.lead role="status" {
                    (l.t("پیش از شما در صف: ", "Ahead of you in the queue: "))
                    strong { (l.number(ahead as i64)) }
                },
                None => p.lead role="status" { (l.t(
                    "صف هنوز باز نشده است. هنگام باز شدن، ترتیب همه کسانی که تا آن لحظه آمده‌اند با قرعه تعیین می‌شود؛ زودتر آمدن مزیتی ندارد.",
                    "The queue has not opened yet. At the opening everyone who has arrived by then is ordered by lot; arriving earlier gives no advantage.",
                )) },
            }
            p { (l.t("زمان تقریبی انتظار: حدود ", "Estimated wait: about "))
                (l.number(minutes)) (l.t(" دقیقه", " minutes")) }
            p.hint { (l.t("این صفحه هر ", "This page refreshes itself every "))
                (l.number(refresh as i64))
                (l.t(" ثانیه به‌روز می‌شود؛ آن را باز نگه دارید. نوبت شما به همین حساب کاربری بسته است.",
                     " seconds; keep it open. Your place is bound to your own login.")) }
        },
    )
}

/// Admitted: the pass is kept for the booking calls until it expires.
fn admitted(state: &AppState, mut ctx: Ctx, t: &TicketDto) -> Response {
    let l = ctx.lang;
    let now = state.engine.clock().now();
    let pass_secs = t
        .expires_at
        .as_deref()
        .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
        .map(|e| (e.timestamp() - now.timestamp()).max(1))
        .unwrap_or(60);
    if let Some(pass) = &t.pass {
        ctx.set_cookie(PASS_COOKIE, pass, pass_secs);
    }
    ctx.set_cookie(TICKET_COOKIE, "", 0);
    let minutes = (pass_secs / 60).max(1);
    ctx.page(
        StatusCode::OK,
        l.t("نوبت شماست", "It is your turn"),
        html! {
            p.lead role="status" { (l.t("نوبت شما رسید. اکنون می‌توانید وقت خود را رزرو کنید.",
                                       "Your turn has come. You can book your time now.")) }
            p { (l.t("این اجازه تا حدود ", "This permission lasts about "))
                (l.number(minutes)) (l.t(" دقیقه معتبر است.", " minutes.")) }
            p { a.button href="/offices" { (l.t("ادامه رزرو", "Continue booking")) } }
        },
    )
}

async fn join(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    mut ctx: Ctx,
    CheckedForm(fields): CheckedForm,
) -> Response {
    let Some((_, token)) = session(&state, &ctx) else {
        return ctx.redirect("/");
    };
    let room = fields.text("room_id");
    if !id_shaped(&room) {
        return ctx.redirect("/queue");
    }
    let caller = caller(&api, &ctx, Some(token));
    match api
        .post::<TicketDto>(&caller, "/v1/queue", &json!({ "room_id": room }))
        .await
    {
        Ok(t) => {
            ctx.set_cookie(TICKET_COOKIE, &t.ticket, TICKET_COOKIE_SECS);
            ctx.redirect(&format!("/queue?room={}", encode(&room)))
        }
        Err(p) => {
            let l = ctx.lang;
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
            ctx.page(
                status,
                l.t("صف انتظار", "Waiting room"),
                html! {
                    p.alert role="alert" { (super::portal::problem_text(l, &p)) }
                    p { a href="/offices" { (l.t("بازگشت", "Back")) } }
                },
            )
        }
    }
}
