//! The applicant API, `/v1/…`.

pub mod answers;
pub mod applications;
pub mod ballots;
pub mod bookings;
pub mod catalogue;
pub mod dto;
pub mod owners;
pub mod pick;
pub mod queue;
pub mod receipt;
pub mod sessions;
pub mod status;
pub mod waitlist;

use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::Router;
use chrono::{DateTime, FixedOffset, TimeZone, Utc};

use super::{AppState, Problem};
use crate::booking::{Refusal, UnixSeconds};
use crate::domain::jalali::{to_persian_digits, JalaliDate};
use crate::domain::slots::check_slot_start;
use crate::domain::time::to_iran;
use crate::domain::{OfficeId, ServiceCode};
use crate::http::problem::{ErrorChain, ProblemCode};
use crate::reserve::{ReserveError, SlotView};
use dto::SlotDto;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions", post(sessions::create_session))
        .route("/v1/services", get(catalogue::list_services))
        .route("/v1/applications", post(applications::create_application))
        .route("/v1/payments", post(applications::create_payment))
        .route("/v1/offices", get(catalogue::list_offices))
        .route("/v1/offices/{office_id}/slots", get(catalogue::list_slots))
        .route("/v1/holds", post(bookings::create_hold))
        .route("/v1/holds/{hold_id}/confirm", post(bookings::confirm_hold))
        .route("/v1/holds/{hold_id}", delete(bookings::release_hold))
        .route("/v1/appointments", post(bookings::book))
        .route(
            "/v1/appointments/{tracking_code}",
            get(receipt::get_appointment),
        )
        .route(
            "/v1/appointments/{tracking_code}/cancel",
            post(bookings::cancel),
        )
        .route(
            "/v1/appointments/{tracking_code}/reschedule",
            post(bookings::reschedule),
        )
        .route("/v1/status", get(status::get_status))
        .route("/v1/ballots/{ballot_id}", get(ballots::get_ballot))
        .route(
            "/v1/ballots/{ballot_id}/results",
            get(ballots::get_ballot_results),
        )
        .route(
            "/v1/ballots/{ballot_id}/entry",
            get(ballots::get_ballot_entry)
                .put(ballots::put_ballot_entry)
                .delete(ballots::withdraw_ballot_entry),
        )
        .route(
            "/v1/waitlist",
            post(waitlist::join_waitlist).get(waitlist::list_waitlist),
        )
        .route("/v1/waitlist/{entry_id}", delete(waitlist::leave_waitlist))
        .route(
            "/v1/waitlist/offers/{offer_id}/accept",
            post(waitlist::accept_offer),
        )
        .route(
            "/v1/waitlist/offers/{offer_id}/decline",
            post(waitlist::decline_offer),
        )
        .route("/v1/queue", post(queue::join_queue))
        .route("/v1/queue/{ticket}", get(queue::poll_ticket))
        .route("/v1/queue/rooms/{room_id}", get(queue::get_room))
        .route("/v1/queue/rooms/{room_id}/order", get(queue::get_order))
}

/// An instant as RFC 3339 in Iran time.
pub fn iran_rfc3339(unix: UnixSeconds) -> String {
    to_iran(utc(unix)).to_rfc3339()
}

pub fn utc(unix: UnixSeconds) -> DateTime<Utc> {
    Utc.timestamp_opt(unix, 0).single().unwrap_or_default()
}

/// The Jalali date (`1403-07-01`) and a Persian line a person reads (`شنبه ۱ مهر ۱۴۰۳، ۰۸:۰۰`).
pub fn jalali(unix: UnixSeconds) -> (String, String) {
    JalaliDays::default().jalali(unix)
}

/// `jalali` for many instants, the day's part worked out once per day: a slot list of a week
/// is a few hundred slots on a handful of days, and the calendar conversion and the Persian
/// weekday and month names were most of what a slot's description cost.
#[derive(Default)]
pub struct JalaliDays {
    /// The last day seen: its Gregorian date, Jalali `YYYY-MM-DD`, and Persian display.
    last: Option<(chrono::NaiveDate, String, String)>,
}

impl JalaliDays {
    pub fn jalali(&mut self, unix: UnixSeconds) -> (String, String) {
        use chrono::Timelike;
        let local = to_iran(utc(unix));
        let day = local.date_naive();
        let (_, date, display) = match &self.last {
            Some(last) if last.0 == day => last,
            _ => {
                let jalali = JalaliDate::from_gregorian(day);
                self.last.insert((
                    day,
                    jalali.to_string(),
                    jalali.persian_display_with_weekday(),
                ))
            }
        };
        let time = to_persian_digits(&format!("{:02}:{:02}", local.hour(), local.minute()));
        (date.clone(), format!("{display}، {time}"))
    }

    pub fn slot_dto(&mut self, s: &SlotView) -> SlotDto {
        let (jalali_date, jalali_display) = self.jalali(s.start_at);
        SlotDto {
            start: iran_rfc3339(s.start_at),
            duration_minutes: s.duration_minutes,
            jalali_date,
            jalali_display,
            capacity: s.capacity,
            free: s.free(),
            opens_at: None,
            opens_for: None,
            in_ballot: None,
        }
    }
}

pub fn slot_dto(s: &SlotView) -> SlotDto {
    JalaliDays::default().slot_dto(s)
}

/// Appends a slot's JSON with `free` seats, byte for byte as [`SlotDto`] serialises when it
/// has no opening and no ballot, from a kept prefix (`{"start":…,"capacity":`): what comes
/// before the counts depends only on the slot's start and length, which every office on the
/// same grid shares, so a listing re-rendered after each booking of its day no longer formats
/// dates and Persian text per slot.
pub fn write_plain_slot_json(out: &mut Vec<u8>, s: &SlotView, free: i64) {
    use std::collections::HashMap;
    use std::io::Write as _;
    use std::sync::{OnceLock, RwLock};
    /// Prefixes kept at most: a month of slot starts on a few grids is a few thousand; the
    /// map starts over if planners' hours ever make more.
    const PREFIXES_MAX: usize = 100_000;
    type Prefixes = RwLock<HashMap<(UnixSeconds, i64), Box<str>>>;
    static PREFIXES: OnceLock<Prefixes> = OnceLock::new();
    let prefixes = PREFIXES.get_or_init(Prefixes::default);
    let key = (s.start_at, s.duration_minutes);
    let tail = |out: &mut Vec<u8>| {
        // Integers always write to a Vec.
        let _ = write!(out, "{},\"free\":{free}}}", s.capacity);
    };
    if let Some(prefix) = prefixes.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
        out.extend_from_slice(prefix.as_bytes());
        tail(out);
        return;
    }
    let dto = SlotDto {
        capacity: 0,
        free: 0,
        ..slot_dto(s)
    };
    // A struct of strings and integers always serialises.
    let whole = serde_json::to_string(&dto).expect("SlotDto serialises");
    let Some(prefix) = whole.strip_suffix("0,\"free\":0}").map(str::to_string) else {
        // Not the shape this relies on (a field after the counts): serialised whole.
        let dto = SlotDto {
            free,
            ..slot_dto(s)
        };
        serde_json::to_writer(out, &dto).expect("SlotDto serialises");
        return;
    };
    out.extend_from_slice(prefix.as_bytes());
    tail(out);
    let mut kept = prefixes.write().unwrap_or_else(|p| p.into_inner());
    if kept.len() >= PREFIXES_MAX {
        kept.clear();
    }
    kept.insert(key, prefix.into_boxed_str());
}

/// Resolves an (office, start) a client asked for into a bookable slot, or says precisely why
/// not: unknown office, a service it does not offer, a start that is not RFC 3339, in the past,
/// on a closed day, outside hours, off the slot grid, or beyond the booking window.
pub fn resolve_slot(
    state: &AppState,
    office_id: &str,
    start: &str,
    service: ServiceCode,
) -> Result<SlotView, Problem> {
    let id = OfficeId::parse(office_id)?;
    let office = state.directory().get(id.as_str()).cloned().ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::OfficeNotFound,
            format!("no office {id}"),
        )
    })?;
    if !office.offers(service) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::ServiceNotOffered,
            format!("office {id} does not offer {service}"),
        ));
    }
    let start: DateTime<FixedOffset> =
        DateTime::parse_from_rfc3339(start.trim()).map_err(|_| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ProblemCode::InvalidStart,
                "start must be an RFC 3339 time, e.g. 2024-09-22T08:00:00+03:30",
            )
        })?;
    let now = state.engine.clock().now();
    if start.with_timezone(&Utc) <= now {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::StartInPast,
            "the slot has already started",
        ));
    }
    check_slot_start(&office, start, &state.holidays.current())
        .map_err(|r| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, (&r).into(), r.to_string()))?;
    state
        .engine
        .availability()
        .slot_at(id.as_str(), start.timestamp())
        .ok_or_else(|| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ProblemCode::OutsideBookingWindow,
                format!(
                    "slots are open for booking {} days ahead",
                    state.config.booking_horizon_days
                ),
            )
        })
}

/// Why a slot's seat is closed: a release wave not open yet, or a ballot's withholding.
fn not_yet_released_detail(opens_at: UnixSeconds) -> String {
    if crate::reserve::ballot::withheld(Some(opens_at)) {
        "the slot's seats are in a ballot; they are assigned at its close (GET /v1/ballots/{id})"
            .to_string()
    } else {
        format!(
            "the slot's seats open for booking at {}",
            iran_rfc3339(opens_at)
        )
    }
}

pub fn refusal_problem(refusal: &Refusal) -> Problem {
    let (status, detail) = match refusal {
        Refusal::SlotFull { .. } => (
            StatusCode::CONFLICT,
            "the slot has no free seat left".to_string(),
        ),
        Refusal::SlotUnknown { .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "the slot is not bookable".to_string(),
        ),
        Refusal::NotYetReleased { opens_at, .. } => {
            (StatusCode::CONFLICT, not_yet_released_detail(*opens_at))
        }
        Refusal::AlreadyHolding { hold_id } => (
            StatusCode::CONFLICT,
            format!("you already hold a seat ({hold_id}); confirm or release it first"),
        ),
        Refusal::AlreadyBooked { .. } => (
            StatusCode::CONFLICT,
            "you already have an active appointment for this service".to_string(),
        ),
        Refusal::HoldNotFound => (StatusCode::NOT_FOUND, "no such hold".to_string()),
        Refusal::HoldExpired => (
            StatusCode::GONE,
            "the hold expired and its seat was released; hold a slot again".to_string(),
        ),
        Refusal::HoldNotLive { status } => (
            StatusCode::CONFLICT,
            format!("the hold is {}", status.as_str()),
        ),
        Refusal::PaymentNotFound => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "no such payment".to_string(),
        ),
        Refusal::PaymentNotPaid { status } => (
            StatusCode::PAYMENT_REQUIRED,
            format!(
                "the payment is {}; the hold stays until it expires",
                status.as_str()
            ),
        ),
        Refusal::ApplicationNotFound => (
            StatusCode::NOT_FOUND,
            "no such application of yours for this service".to_string(),
        ),
        Refusal::PaymentMismatch => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "the payment is for another application or service".to_string(),
        ),
        Refusal::AppointmentNotFound => (StatusCode::NOT_FOUND, "no such appointment".to_string()),
        Refusal::NotActive { status } => (
            StatusCode::CONFLICT,
            format!("the appointment is {}", status.as_str()),
        ),
        Refusal::SameSlot => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "the appointment is already in that slot".to_string(),
        ),
        Refusal::InvalidTransition { status } => (
            StatusCode::CONFLICT,
            format!(
                "the appointment is {}; that step does not follow",
                status.as_str()
            ),
        ),
        Refusal::TooEarly => (
            StatusCode::CONFLICT,
            "the appointment has not started yet".to_string(),
        ),
        Refusal::CapacityBelowTaken { taken, .. } => (
            StatusCode::CONFLICT,
            format!("{taken} seats are taken; move those appointments first"),
        ),
        Refusal::RescheduleLimitReached { limit } => (
            StatusCode::CONFLICT,
            format!("the appointment has been rescheduled {limit} times, the most allowed; cancel it and book again"),
        ),
        Refusal::CancellationLimitReached { limit, window_days } => (
            StatusCode::CONFLICT,
            format!("you have cancelled {limit} appointments in the last {window_days} days, the most allowed; the appointment stays booked"),
        ),
        Refusal::CandidatesFull => (
            StatusCode::CONFLICT,
            "no free seat is left within the limits asked for".to_string(),
        ),
        Refusal::AlreadyWaiting { entry_id } => (
            StatusCode::CONFLICT,
            format!(
                "you are already on the waitlist for this service ({entry_id}); leave it first"
            ),
        ),
        Refusal::EntryNotFound => (StatusCode::NOT_FOUND, "no such waitlist entry".to_string()),
        Refusal::EntryNotActive { status } => (
            StatusCode::CONFLICT,
            format!("the waitlist entry is {}", status.as_str()),
        ),
        Refusal::OfferNotFound => (
            StatusCode::NOT_FOUND,
            "no such open offer of yours".to_string(),
        ),
        Refusal::ReleaseNotDue => (
            StatusCode::CONFLICT,
            "the seat release is not due".to_string(),
        ),
    };
    let mut problem = Problem::new(status, refusal.into(), detail);
    match refusal {
        Refusal::AlreadyHolding { hold_id } => {
            problem = problem.with_extra(serde_json::json!({ "hold_id": hold_id }))
        }
        Refusal::AlreadyBooked { tracking_code } => {
            problem = problem.with_extra(serde_json::json!({ "tracking_code": tracking_code }))
        }
        Refusal::AlreadyWaiting { entry_id } => {
            problem = problem.with_extra(serde_json::json!({ "entry_id": entry_id }))
        }
        Refusal::RescheduleLimitReached { limit } => {
            problem = problem.with_extra(serde_json::json!({ "limit": limit }))
        }
        Refusal::CancellationLimitReached { limit, window_days } => {
            problem = problem
                .with_extra(serde_json::json!({ "limit": limit, "window_days": window_days }))
        }
        Refusal::NotYetReleased { slot_id, opens_at }
            if crate::reserve::ballot::withheld(Some(*opens_at)) =>
        {
            problem =
                problem.with_extra(serde_json::json!({ "slot_id": slot_id, "in_ballot": true }))
        }
        Refusal::NotYetReleased { slot_id, opens_at } => {
            problem = problem.with_extra(
                serde_json::json!({ "slot_id": slot_id, "opens_at": iran_rfc3339(*opens_at) }),
            )
        }
        _ => {}
    }
    problem
}

impl From<ReserveError> for Problem {
    fn from(e: ReserveError) -> Self {
        match &e {
            ReserveError::Overloaded => {
                let mut p = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ProblemCode::Overloaded,
                    "too many bookings are in flight; come back in a few seconds",
                );
                p.retry_after_secs = Some(super::problem::RETRY_AFTER_SECS);
                p
            }
            ReserveError::Unavailable(_) | ReserveError::Stopped => {
                // At debug, like storage's 503s: a surge would flood the log.
                tracing::debug!(error = %ErrorChain(&e), "booking unavailable");
                Problem::unavailable("booking is unavailable; retry shortly")
            }
            ReserveError::IdempotencyKeyReused => super::idempotency::key_reused(),
            ReserveError::IdempotencyRecordUnreadable => super::idempotency::record_unreadable(),
            ReserveError::Failed(_) => Problem::internal_error("booking failed", &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memo gives what working each instant out afresh gives, across days and around
    /// Iran's midnight (20:30 UTC).
    #[test]
    fn jalali_days_match_a_fresh_conversion() {
        let fresh = |unix: UnixSeconds| {
            let local = to_iran(utc(unix));
            let date = JalaliDate::from_gregorian(local.date_naive());
            let time = to_persian_digits(&local.format("%H:%M").to_string());
            (
                date.to_string(),
                format!("{}، {time}", date.persian_display_with_weekday()),
            )
        };
        // 2024-09-21T20:00:00Z, then every 13 minutes for three days.
        let first = 1_726_948_800;
        let mut days = JalaliDays::default();
        for step in 0..(3 * 24 * 60 / 13) {
            let t = first + step * 13 * 60;
            assert_eq!(days.jalali(t), fresh(t), "at {t}");
        }
        // 2024-09-22T08:00+03:30 is 1 Mehr 1403.
        assert_eq!(jalali(1_726_979_400).0, "1403-07-01");
        assert!(jalali(1_726_979_400).1.ends_with("۰۸:۰۰"));
    }

    /// The kept-prefix rendering is byte for byte what serialising the slot's DTO gives, the
    /// first time (prefix made) and after (prefix kept), for other counts and other offices on
    /// the same start, and for another length at the same start.
    #[test]
    fn plain_slot_json_is_the_dto_serialised() {
        let slot = |office: &str, start_at, duration_minutes, capacity, taken| SlotView {
            id: start_at,
            office_id: office.into(),
            start_at,
            duration_minutes,
            capacity,
            taken,
            opens_at: None,
            opens_for: None,
        };
        let start = 1_726_979_400;
        for s in [
            slot("A", start, 15, 4, 1),
            slot("A", start, 15, 4, 1),
            slot("B", start, 15, 12, 12),
            slot("B", start, 30, 2, 0),
            slot("C", start + 20 * 3600, 15, 3, 0),
        ] {
            for free in [0, s.free(), 1_000] {
                let mut out = b"[".to_vec();
                write_plain_slot_json(&mut out, &s, free);
                let dto = SlotDto {
                    free,
                    ..slot_dto(&s)
                };
                let expected = format!("[{}", serde_json::to_string(&dto).unwrap());
                assert_eq!(String::from_utf8(out).unwrap(), expected);
            }
        }
    }
}
