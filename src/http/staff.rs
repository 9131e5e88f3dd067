//! The staff API, `/v1/staff/…`: an office's staff see that office's appointments of a day
//! and move each through the visit: check in, enrolled (which books the card-pickup visit at
//! the same office), no-show, card ready, delivered. Every step is a writer request, recorded
//! in the appointment's history. An appointment of another office does not exist for them.

// `Problem` is the one error type of the HTTP layer; boxing it would only add noise here.
#![allow(clippy::result_large_err)]

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::operators::Staff;
use super::problem::ProblemCode;
use super::v1::{iran_rfc3339, jalali, refusal_problem, utc};
use super::{AppState, Problem};
use crate::booking::{
    AppointmentRow, CardReady, CheckIn, Deliver, Enrol, NoShow, Outcome, PickupBooking, Request,
    PICKUP_SERVICE,
};
use crate::domain::calendar::HolidayCalendar;
use crate::domain::time::{iran_date, iran_instant};
use crate::domain::{JalaliDate, NationalCode, Office};
use crate::http::extract::{ApiPath, ApiQuery};
use crate::reserve::ids::normalise_tracking_code;

/// Working days (the office open) from enrolment to the card's arrival at the office.
pub const CARD_PRODUCTION_WORKING_DAYS: u32 = 10;
/// Free pickup slots tried, earliest first, when another booking takes one first.
const PICKUP_ATTEMPTS: usize = 8;
/// Calendar days scanned for working days; beyond this the office is closed too long to plan.
const READY_DATE_SCAN_DAYS: i64 = 120;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/staff/appointments", get(list_appointments))
        .route(
            "/v1/staff/appointments/{tracking_code}/check-in",
            post(check_in),
        )
        .route("/v1/staff/appointments/{tracking_code}/enrol", post(enrol))
        .route(
            "/v1/staff/appointments/{tracking_code}/no-show",
            post(no_show),
        )
        .route(
            "/v1/staff/appointments/{tracking_code}/card-ready",
            post(card_ready),
        )
        .route(
            "/v1/staff/appointments/{tracking_code}/deliver",
            post(deliver),
        )
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DayQuery {
    /// The day, ISO (`2024-09-22`) or Jalali (`1403-07-01`); today (Iran) when absent.
    pub date: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StaffAppointmentDto {
    pub tracking_code: String,
    pub status: String,
    pub service: String,
    pub start: String,
    pub jalali_date: String,
    pub jalali_display: String,
    pub national_code_masked: String,
    /// The card's ready date (ISO and Jalali) once enrolled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_jalali_date: Option<String>,
    /// The pickup visit booked at enrolment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pickup: Option<StaffPickupDto>,
}

/// The pickup visit, as listed with its enrolment (not recursive, for the OpenAPI schema).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StaffPickupDto {
    pub tracking_code: String,
    pub status: String,
    pub service: String,
    pub start: String,
    pub jalali_date: String,
    pub jalali_display: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OfficeDayDto {
    pub office_id: String,
    pub date: String,
    pub jalali_date: String,
    pub appointments: Vec<StaffAppointmentDto>,
}

fn dto(a: &AppointmentRow) -> StaffAppointmentDto {
    let (jalali_date, jalali_display) = jalali(a.start_at);
    StaffAppointmentDto {
        tracking_code: a.tracking_code.clone(),
        status: a.status.as_str().to_string(),
        service: a.service.clone(),
        start: iran_rfc3339(a.start_at),
        jalali_date,
        jalali_display,
        national_code_masked: NationalCode::parse(&a.national_code)
            .map(|c| c.masked())
            .unwrap_or_default(),
        ready_date: None,
        ready_jalali_date: None,
        pickup: None,
    }
}

fn with_ready(mut d: StaffAppointmentDto, ready_date: &str) -> StaffAppointmentDto {
    d.ready_jalali_date = NaiveDate::parse_from_str(ready_date, "%Y-%m-%d")
        .ok()
        .map(|g| JalaliDate::from_gregorian(g).to_string());
    d.ready_date = Some(ready_date.to_string());
    d
}

/// An ISO or Jalali date (a year below 1700 is Jalali).
pub fn parse_day(input: &str) -> Result<NaiveDate, Problem> {
    let s = crate::domain::ids::normalize_digits(input.trim());
    let bad = || {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::InvalidDate,
            format!("{input:?} is not a date; use 2024-09-22 or 1403-07-01"),
        )
    };
    let year: i32 = s
        .split('-')
        .next()
        .and_then(|y| y.parse().ok())
        .ok_or_else(bad)?;
    if year < 1700 {
        Ok(JalaliDate::parse(&s).map_err(|_| bad())?.to_gregorian())
    } else {
        NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| bad())
    }
}

/// `[start, end)` of an Iran day in Unix seconds.
pub fn day_bounds(date: NaiveDate) -> (i64, i64) {
    let start = |d: NaiveDate| {
        iran_instant(d, chrono::NaiveTime::MIN)
            .map(|t| t.timestamp())
            .unwrap_or_default()
    };
    (start(date), start(date + Duration::days(1)))
}

/// The `n`th working day of `office` after `from`.
pub fn ready_date(
    office: &Office,
    from: NaiveDate,
    n: u32,
    holidays: &HolidayCalendar,
) -> NaiveDate {
    let mut date = from;
    let mut counted = 0;
    for _ in 0..READY_DATE_SCAN_DAYS {
        date += Duration::days(1);
        if office.calendar.hours_on(date, holidays).is_some() {
            counted += 1;
            if counted == n {
                return date;
            }
        }
    }
    date
}

fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        ProblemCode::AppointmentNotFound,
        "no such appointment at your office",
    )
}

/// The appointment, if it is at the staff member's office.
async fn own(state: &AppState, staff: &Staff, code: &str) -> Result<AppointmentRow, Problem> {
    let code = normalise_tracking_code(code).ok_or_else(not_found)?;
    state
        .store
        .appointment(&code)
        .await?
        .filter(|a| a.office_id == staff.office_id)
        .ok_or_else(not_found)
}

async fn full_dto(state: &AppState, a: &AppointmentRow) -> Result<StaffAppointmentDto, Problem> {
    let mut d = dto(a);
    if a.service != PICKUP_SERVICE {
        if let Some(card) = state.store.card(&a.tracking_code).await? {
            d = with_ready(d, &card.ready_date);
            if let Some(p) = &card.pickup_tracking_code {
                if let Some(p) = state.store.appointment(p).await? {
                    let p = dto(&p);
                    d.pickup = Some(StaffPickupDto {
                        tracking_code: p.tracking_code,
                        status: p.status,
                        service: p.service,
                        start: p.start,
                        jalali_date: p.jalali_date,
                        jalali_display: p.jalali_display,
                    });
                }
            }
        }
    }
    Ok(d)
}

async fn answer(state: &AppState, outcome: Outcome) -> Result<Json<StaffAppointmentDto>, Problem> {
    match outcome {
        Outcome::Updated { appointment }
        | Outcome::Enrolled { appointment, .. }
        | Outcome::Delivered { appointment, .. } => Ok(Json(full_dto(state, &appointment).await?)),
        Outcome::Refused(r) => Err(refusal_problem(&r)),
        other => {
            tracing::error!(?other, "unexpected outcome for a staff step");
            Err(Problem::internal())
        }
    }
}

/// The office's appointments of a day (visits and pickups), by start time.
#[utoipa::path(get, path = "/v1/staff/appointments", tag = "staff", security(("staff" = [])),
    params(DayQuery),
    responses((status = 200, body = OfficeDayDto), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn list_appointments(
    State(state): State<AppState>,
    staff: Staff,
    ApiQuery(q): ApiQuery<DayQuery>,
) -> Result<Json<OfficeDayDto>, Problem> {
    let date = match q.date.as_deref() {
        Some(d) => parse_day(d)?,
        None => iran_date(state.engine.clock().now()),
    };
    let (from, to) = day_bounds(date);
    let rows = state
        .store
        .office_appointments(&staff.office_id, from, to)
        .await?;
    let mut appointments = Vec::with_capacity(rows.len());
    for a in &rows {
        appointments.push(full_dto(&state, a).await?);
    }
    Ok(Json(OfficeDayDto {
        office_id: staff.office_id,
        date: date.to_string(),
        jalali_date: JalaliDate::from_gregorian(date).to_string(),
        appointments,
    }))
}

/// The applicant has arrived (on the appointment's day only).
#[utoipa::path(post, path = "/v1/staff/appointments/{tracking_code}/check-in", tag = "staff", security(("staff" = [])),
    params(("tracking_code" = String, Path)),
    responses((status = 200, body = StaffAppointmentDto), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn check_in(
    State(state): State<AppState>,
    staff: Staff,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<StaffAppointmentDto>, Problem> {
    let a = own(&state, &staff, &code).await?;
    let today = iran_date(state.engine.clock().now());
    if iran_date(utc(a.start_at)) != today {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            ProblemCode::NotToday,
            format!("the appointment is on {}, not today", jalali(a.start_at).0),
        ));
    }
    let request = Request::CheckIn(CheckIn {
        office_id: staff.office_id.clone(),
        tracking_code: a.tracking_code.into(),
        actor: staff.actor(),
    });
    answer(&state, state.engine.submit(request).await?.outcome).await
}

/// Biometrics taken: the card's ready date is set and the pickup visit is booked at the same
/// office, in the first free slot on or after that date (none when the booking window has no
/// free seat; the answer then has no `pickup`).
#[utoipa::path(post, path = "/v1/staff/appointments/{tracking_code}/enrol", tag = "staff", security(("staff" = [])),
    params(("tracking_code" = String, Path)),
    responses((status = 200, body = StaffAppointmentDto), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn enrol(
    State(state): State<AppState>,
    staff: Staff,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<StaffAppointmentDto>, Problem> {
    let a = own(&state, &staff, &code).await?;
    let office = state
        .directory()
        .get(&staff.office_id)
        .cloned()
        .ok_or_else(not_found)?;
    let today = iran_date(state.engine.clock().now());
    let ready = ready_date(
        &office,
        today,
        CARD_PRODUCTION_WORKING_DAYS,
        &state.holidays.current(),
    );
    let (ready_from, _) = day_bounds(ready);
    let candidates = state.engine.availability().earliest_free(
        &staff.office_id,
        ready_from - 1,
        PICKUP_ATTEMPTS,
    );
    let mut tries: Vec<Option<i64>> = candidates.iter().map(|s| Some(s.id)).collect();
    tries.push(None);
    let mut last = None;
    for slot_id in tries {
        let request = Request::Enrol(Enrol {
            office_id: staff.office_id.clone(),
            tracking_code: a.tracking_code.clone().into(),
            national_code: a.national_code.clone(),
            ready_date: ready.to_string(),
            pickup: slot_id.map(|slot_id| PickupBooking {
                slot_id,
                tracking_code: state.engine.ids().tracking_code().into(),
            }),
            actor: staff.actor(),
        });
        let outcome = state.engine.submit(request).await?.outcome;
        match &outcome {
            // Someone took the seat since the view was read: try the next one.
            Outcome::Refused(crate::booking::Refusal::SlotFull { .. }) => {
                last = Some(outcome);
                continue;
            }
            _ => return answer(&state, outcome).await,
        }
    }
    answer(
        &state,
        last.unwrap_or(Outcome::Refused(
            crate::booking::Refusal::AppointmentNotFound,
        )),
    )
    .await
}

/// The applicant did not come. The seat is not re-sold (the slot has started); the applicant
/// may book again.
#[utoipa::path(post, path = "/v1/staff/appointments/{tracking_code}/no-show", tag = "staff", security(("staff" = [])),
    params(("tracking_code" = String, Path)),
    responses((status = 200, body = StaffAppointmentDto), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn no_show(
    State(state): State<AppState>,
    staff: Staff,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<StaffAppointmentDto>, Problem> {
    let a = own(&state, &staff, &code).await?;
    let request = Request::NoShow(NoShow {
        office_id: staff.office_id.clone(),
        tracking_code: a.tracking_code.into(),
        actor: staff.actor(),
    });
    answer(&state, state.engine.submit(request).await?.outcome).await
}

/// The enrolment's card, found by its own or its pickup's tracking code.
async fn enrolment_of(
    state: &AppState,
    staff: &Staff,
    code: &str,
) -> Result<(String, Option<String>), Problem> {
    let a = own(state, staff, code).await?;
    match state.store.card(&a.tracking_code).await? {
        Some(card) if card.office_id == staff.office_id => {
            Ok((card.tracking_code, card.pickup_tracking_code))
        }
        Some(_) => Err(not_found()),
        None => Ok((a.tracking_code, None)),
    }
}

/// The card has arrived at the office (by the enrolment's or the pickup's tracking code).
#[utoipa::path(post, path = "/v1/staff/appointments/{tracking_code}/card-ready", tag = "staff", security(("staff" = [])),
    params(("tracking_code" = String, Path)),
    responses((status = 200, body = StaffAppointmentDto), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn card_ready(
    State(state): State<AppState>,
    staff: Staff,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<StaffAppointmentDto>, Problem> {
    let (enrolment, _) = enrolment_of(&state, &staff, &code).await?;
    let request = Request::CardReady(CardReady {
        office_id: staff.office_id.clone(),
        tracking_code: enrolment.into(),
        actor: staff.actor(),
    });
    answer(&state, state.engine.submit(request).await?.outcome).await
}

/// The card was handed over; the pickup visit ends with it.
#[utoipa::path(post, path = "/v1/staff/appointments/{tracking_code}/deliver", tag = "staff", security(("staff" = [])),
    params(("tracking_code" = String, Path)),
    responses((status = 200, body = StaffAppointmentDto), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn deliver(
    State(state): State<AppState>,
    staff: Staff,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<StaffAppointmentDto>, Problem> {
    let (enrolment, pickup) = enrolment_of(&state, &staff, &code).await?;
    let request = Request::Deliver(Deliver {
        office_id: staff.office_id.clone(),
        tracking_code: enrolment.into(),
        pickup_tracking_code: pickup.map(Into::into),
        actor: staff.actor(),
    });
    answer(&state, state.engine.submit(request).await?.outcome).await
}
