//! Closures, holidays and capacity cuts: the office calendar changes first (so nothing new is
//! booked into the closed days), live holds there are released, each booked appointment is
//! moved to the nearest equivalent free slot or cancelled (`no_free_slot`), each applicant
//! gets one outbox notice, and the closed slots' capacity drops to what is still taken. Every
//! seat change is a writer request. Running the same change twice changes nothing.
//!
//! Destinations come from the pure planner [`crate::planning::relocation`] (greedy for a few
//! appointments, the min-cost-flow allocator for more, among offices offering the service
//! within [`RELOCATION_RADIUS_KM`]); this handler reads the free slots it plans with, submits
//! the moves, and plans again for the moves whose seat was taken meanwhile (the writer refuses
//! a full slot, so no plan can overbook).

// `Problem` is the one error type of the HTTP layer; boxing it would only add noise here.
#![allow(clippy::result_large_err)]

use axum::extract::State;
use axum::Json;
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{invalid, office_not_found};
use crate::booking::{
    AppointmentRow, Outcome, Refusal, Release, ReleaseSeat, Relocate, RelocationReason, Request,
    SetCapacity,
};
use crate::domain::calendar::Closure;
use crate::domain::time::iran_date;
use crate::domain::{JalaliDate, Office};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::operators::Admin;
use crate::http::problem::ProblemCode;
use crate::http::staff::{day_bounds, parse_day};
use crate::http::v1::{iran_rfc3339, jalali};
use crate::http::{AppState, Problem};
use crate::planning::relocation::{self, Attempt, FreeSlot, Method, Relocation, SeatTaken};
use crate::reserve::directory::Directory;
use crate::reserve::SlotView;

/// Offices farther than this from the closed one are not offered as a destination.
pub const RELOCATION_RADIUS_KM: f64 = 50.0;
/// Free slots read per candidate office.
const CANDIDATE_SLOTS: usize = 1_024;
/// Longest closure in one request, in days.
pub const CLOSURE_DAYS_MAX: i64 = 31;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClosureRequest {
    /// First closed day, ISO or Jalali.
    pub from: String,
    /// Last closed day (inclusive); the same as `from` when absent.
    pub to: Option<String>,
    /// Why (kept in the office calendar and the event log), 1 to 200 characters.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MoveDto {
    pub tracking_code: String,
    /// `moved` or `cancelled` (reason `no_free_slot`).
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub office_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jalali_date: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ClosureReport {
    pub office_ids: Vec<String>,
    pub from: String,
    pub to: String,
    /// True when the calendars already had this closure.
    pub already_closed: bool,
    pub holds_released: usize,
    pub moved: usize,
    pub cancelled: usize,
    pub moves: Vec<MoveDto>,
}

fn parse_range(
    from: &str,
    to: Option<&str>,
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate), Problem> {
    let from = parse_day(from)?;
    let to = match to {
        Some(t) => parse_day(t)?,
        None => from,
    };
    if to < from {
        return Err(invalid(
            "to",
            ProblemCode::InvalidRange,
            "`to` is before `from`",
        ));
    }
    if (to - from).num_days() >= CLOSURE_DAYS_MAX {
        return Err(invalid(
            "to",
            ProblemCode::RangeTooLong,
            format!("a closure covers at most {CLOSURE_DAYS_MAX} days"),
        ));
    }
    if from < today {
        return Err(invalid(
            "from",
            ProblemCode::DateInPast,
            "the past cannot be closed",
        ));
    }
    Ok((from, to))
}

fn check_reason(reason: &str) -> Result<String, Problem> {
    let r = reason.trim();
    if r.is_empty() || r.chars().count() > 200 {
        return Err(invalid(
            "reason",
            ProblemCode::InvalidReason,
            "a reason is 1 to 200 characters",
        ));
    }
    Ok(r.to_string())
}

/// Saves offices and swaps in a fresh directory.
pub async fn save_offices(state: &AppState, offices: &[Office]) -> Result<(), Problem> {
    let now = state.engine.clock().now().timestamp();
    state.store.upsert_offices(offices, now).await?;
    let all = state.store.offices().await?;
    *state.directory.write().unwrap_or_else(|p| p.into_inner()) =
        std::sync::Arc::new(Directory::new(all));
    Ok(())
}

/// What a moved appointment's wait costs when the allocator plans: a day's later seat
/// weighs as much as this much travel.
const RELOCATION_WAIT_KM_PER_DAY: f64 = 10.0;

/// What the planner needs, read from the directory and the availability view: the
/// appointments at their offices' positions, and the free slots (less the excluded ones) of
/// every office within reach of any of them, in directory order.
fn relocation_input(
    state: &AppState,
    affected: &[AppointmentRow],
    not_before: i64,
    excluded: &(dyn Fn(&SlotView) -> bool + Sync),
) -> Relocation {
    let directory = state.directory();
    let availability = state.engine.availability();
    let first_day = iran_date(crate::http::v1::utc(not_before));
    let appointments: Vec<relocation::Appointment> = affected
        .iter()
        .map(|a| relocation::Appointment {
            id: a.tracking_code.clone(),
            origin: directory.get(&a.office_id).map(|o| o.location),
            service: a.service.clone(),
            booked_at: a.created_at,
        })
        .collect();
    let in_reach = |office: &Office| {
        appointments
            .iter()
            .filter_map(|a| a.origin)
            .any(|origin| origin.distance_km(office.location) <= RELOCATION_RADIUS_KM)
    };
    let offices = directory
        .all()
        .iter()
        .filter(|o| in_reach(o))
        .map(|office| relocation::Office {
            id: office.id.clone(),
            location: office.location,
            services: office
                .services
                .iter()
                .copied()
                .filter(|s| office.offers(*s))
                .collect(),
            // In start order, each starting after `not_before` (so on or after its day).
            slots: availability
                .earliest_free(office.id.as_str(), not_before - 1, CANDIDATE_SLOTS)
                .into_iter()
                .filter(|s| !excluded(s))
                .map(|s| FreeSlot {
                    id: s.id,
                    day: (iran_date(crate::http::v1::utc(s.start_at)) - first_day)
                        .num_days()
                        .max(0) as u32,
                    start_at: s.start_at,
                    free: u32::try_from(s.free()).unwrap_or(u32::MAX),
                })
                .collect(),
        })
        .collect();
    Relocation {
        appointments,
        offices,
        radius_km: RELOCATION_RADIUS_KM,
        wait_km_per_day: RELOCATION_WAIT_KM_PER_DAY,
    }
}

/// Moves (or cancels) every appointment in `affected`, each with one notice.
pub async fn relocate_all(
    state: &AppState,
    affected: Vec<AppointmentRow>,
    not_before: i64,
    excluded: &(dyn Fn(&SlotView) -> bool + Sync),
    reason: RelocationReason,
    notice_key: &str,
    actor: &str,
) -> Result<Vec<MoveDto>, Problem> {
    let mut pending = affected;
    let mut moves = Vec::new();
    for attempt in Attempt::all() {
        if pending.is_empty() {
            break;
        }
        let input = relocation_input(state, &pending, not_before, excluded);
        let plan = relocation::plan(&input)
            .map_err(|e| Problem::internal_error("relocation planner refused its input", &e))?;
        if let Method::GreedyFallback(e) = &plan.method {
            tracing::error!(error = %e, "relocation allocator failed; placing greedily");
        }
        let requests = pending
            .iter()
            .zip(&plan.placements)
            .map(|(a, p)| {
                Request::Relocate(Relocate {
                    tracking_code: a.tracking_code.clone().into(),
                    // No destination: cancel.
                    new_slot_id: p.slot_id(),
                    reason,
                    notice_key: notice_key.to_string(),
                    actor: actor.to_string(),
                })
            })
            .collect();
        let answers = state.engine.submit_many(requests).await;
        let mut retry = Vec::new();
        for (a, answer) in pending.into_iter().zip(answers) {
            match answer?.outcome {
                Outcome::Relocated { appointment, .. } => moves.push(move_dto(&appointment)),
                Outcome::Refused(Refusal::SlotFull { .. }) => match attempt.on_seat_taken() {
                    SeatTaken::Replan => retry.push(a),
                    // A seat lost on the last attempt means no seat: cancel.
                    SeatTaken::Cancel => {
                        let request = Request::Relocate(Relocate {
                            tracking_code: a.tracking_code.clone().into(),
                            new_slot_id: None,
                            reason,
                            notice_key: notice_key.to_string(),
                            actor: actor.to_string(),
                        });
                        if let Outcome::Relocated { appointment, .. } =
                            state.engine.submit(request).await?.outcome
                        {
                            moves.push(move_dto(&appointment));
                        }
                    }
                },
                // Cancelled or checked in meanwhile: nothing to move.
                _ => {}
            }
        }
        // The view may be stale where the plan failed: read it again.
        state.engine.refresh().await?;
        pending = retry;
    }
    Ok(moves)
}

fn move_dto(a: &AppointmentRow) -> MoveDto {
    let moved = a.status.is_active();
    MoveDto {
        tracking_code: a.tracking_code.clone(),
        outcome: if moved { "moved" } else { "cancelled" }.to_string(),
        office_id: moved.then(|| a.office_id.clone()),
        start: moved.then(|| iran_rfc3339(a.start_at)),
        jalali_date: moved.then(|| jalali(a.start_at).0),
    }
}

/// Drops each slot's capacity in the window to the seats still taken there.
async fn shrink_slots(
    state: &AppState,
    office_id: &str,
    from: i64,
    to: i64,
    actor: &str,
) -> Result<(), Problem> {
    let slots = state
        .store
        .office_slots_between(office_id, from, to)
        .await?;
    let requests: Vec<Request> = slots
        .iter()
        .filter(|s| s.capacity != s.taken)
        .map(|s| {
            Request::SetCapacity(SetCapacity {
                slot_id: s.id,
                capacity: s.taken,
                actor: actor.to_string(),
            })
        })
        .collect();
    for answer in state.engine.submit_many(requests).await {
        answer?;
    }
    Ok(())
}

/// Closes `offices` from `from` to `to`: the calendar, then holds, appointments and slots.
#[allow(clippy::too_many_arguments)] // each is a distinct part of the closure; see callers
pub async fn close_days(
    state: &AppState,
    office_ids: &[String],
    from: NaiveDate,
    to: NaiveDate,
    reason_text: &str,
    reason: RelocationReason,
    notice_key: &str,
    actor: &str,
) -> Result<ClosureReport, Problem> {
    let directory = state.directory();
    let mut changed = Vec::new();
    for id in office_ids {
        let mut office = directory
            .get(id)
            .cloned()
            .ok_or_else(|| office_not_found(id))?;
        if !office
            .calendar
            .closures
            .iter()
            .any(|c| c.from <= from && to <= c.to)
        {
            office.calendar.closures.push(Closure {
                from,
                to,
                reason: reason_text.to_string(),
            });
            office.calendar.validate()?;
            changed.push(office);
        }
    }
    let now = state.engine.clock().now().timestamp();
    if !changed.is_empty() {
        save_offices(state, &changed).await?;
        for o in &changed {
            state
                .store
                .append_event(now, actor, "office_closed", o.id.as_str(), &serde_json::json!({ "from": from.to_string(), "to": to.to_string(), "reason": reason_text }))
                .await?;
        }
    }
    let (window_from, _) = day_bounds(from);
    let (_, window_to) = day_bounds(to);
    let window_from = window_from.max(now);
    let mut report = ClosureReport {
        office_ids: office_ids.to_vec(),
        from: from.to_string(),
        to: to.to_string(),
        already_closed: changed.is_empty(),
        ..ClosureReport::default()
    };
    let mut affected = Vec::new();
    for id in office_ids {
        let holds = state
            .store
            .office_live_holds_between(id, window_from, window_to)
            .await?;
        let releases = holds
            .into_iter()
            .map(|h| {
                Request::Release(Release {
                    national_code: h.national_code,
                    hold_id: h.id.into(),
                    closing: true,
                })
            })
            .collect();
        for answer in state.engine.submit_many(releases).await {
            if matches!(answer?.outcome, Outcome::Released { .. }) {
                report.holds_released += 1;
            }
        }
        affected.extend(
            state
                .store
                .office_booked_between(id, window_from, window_to)
                .await?,
        );
    }
    let closed: std::collections::HashSet<&str> = office_ids.iter().map(String::as_str).collect();
    let excluded = |s: &SlotView| closed.contains(&*s.office_id) && s.start_at < window_to;
    report.moves = relocate_all(
        state, affected, window_to, &excluded, reason, notice_key, actor,
    )
    .await?;
    report.moved = report.moves.iter().filter(|m| m.outcome == "moved").count();
    report.cancelled = report.moves.len() - report.moved;
    for id in office_ids {
        // Seats held back by the anti-trading release are freed at once: the slots go.
        let releases = state
            .store
            .office_pending_releases_between(id, window_from, window_to)
            .await?
            .into_iter()
            .map(|release_id| {
                Request::ReleaseSeat(ReleaseSeat {
                    release_id,
                    closing: true,
                })
            })
            .collect();
        for answer in state.engine.submit_many(releases).await {
            answer?;
        }
        shrink_slots(state, id, window_from, window_to, actor).await?;
    }
    state.engine.refresh().await?;
    Ok(report)
}

/// Closes an office for a day or a range: affected appointments are moved to the nearest
/// equivalent free slot or cancelled, each applicant notified once. Repeating it changes
/// nothing.
#[utoipa::path(post, path = "/v1/admin/offices/{office_id}/closures", tag = "admin", security(("admin" = [])),
    request_body = ClosureRequest, params(("office_id" = String, Path)),
    responses((status = 200, body = ClosureReport), (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn close_office(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(office_id): ApiPath<String>,
    ApiJson(req): ApiJson<ClosureRequest>,
) -> Result<Json<ClosureReport>, Problem> {
    if state.directory().get(&office_id).is_none() {
        return Err(office_not_found(&office_id));
    }
    let today = iran_date(state.engine.clock().now());
    let (from, to) = parse_range(&req.from, req.to.as_deref(), today)?;
    let reason = check_reason(&req.reason)?;
    let key = format!("closure:{office_id}:{from}:{to}");
    let report = close_days(
        &state,
        &[office_id],
        from,
        to,
        &reason,
        RelocationReason::OfficeClosed,
        &key,
        &admin.actor(),
    )
    .await?;
    Ok(Json(report))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HolidayRequest {
    /// ISO or Jalali date.
    pub date: String,
    pub name_fa: String,
    pub name_en: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HolidayDto {
    pub date: String,
    pub jalali_date: String,
    pub name_fa: String,
    pub name_en: String,
    /// `builtin` (the national table) or `admin`.
    pub source: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct YearQuery {
    /// Jalali year, e.g. 1403.
    pub year: i32,
}

/// Announces a holiday: recorded in the holiday table and in the calendar in force, and closes
/// every office that day, with the affected appointments moved or cancelled as for a closure.
#[utoipa::path(post, path = "/v1/admin/holidays", tag = "admin", security(("admin" = [])),
    request_body = HolidayRequest,
    responses((status = 200, body = ClosureReport), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn add_holiday(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<HolidayRequest>,
) -> Result<Json<ClosureReport>, Problem> {
    let today = iran_date(state.engine.clock().now());
    let (date, _) = parse_range(&req.date, None, today)?;
    let name_fa = check_reason(&req.name_fa).map_err(|_| {
        invalid(
            "name_fa",
            ProblemCode::InvalidName,
            "a name is 1 to 200 characters",
        )
    })?;
    let name_en = check_reason(&req.name_en).map_err(|_| {
        invalid(
            "name_en",
            ProblemCode::InvalidName,
            "a name is 1 to 200 characters",
        )
    })?;
    let calendar = state.holidays.current();
    if calendar.is_holiday(date).is_none() {
        // The calendar must be able to take it (a year holds a bounded number of holidays).
        (*calendar)
            .clone()
            .add(JalaliDate::from_gregorian(date), &name_fa, &name_en)?;
    }
    let now = state.engine.clock().now().timestamp();
    if state
        .store
        .insert_holiday(&date.to_string(), &name_fa, &name_en)
        .await?
    {
        // In the calendar at once here (slot checks, materialisation, ready dates); the
        // other nodes reload on their next poll.
        crate::http::live::reload_holidays(&state).await?;
        state
            .store
            .append_event(
                now,
                &admin.actor(),
                "holiday_added",
                &date.to_string(),
                &serde_json::json!({ "name_fa": name_fa, "name_en": name_en }),
            )
            .await?;
    }
    let offices: Vec<String> = state
        .directory()
        .all()
        .iter()
        .map(|o| o.id.to_string())
        .collect();
    let report = close_days(
        &state,
        &offices,
        date,
        date,
        &format!("holiday: {name_en}"),
        RelocationReason::Holiday,
        &format!("holiday:{date}"),
        &admin.actor(),
    )
    .await?;
    Ok(Json(report))
}

/// The holidays of a Jalali year: the national table and those added by administrators.
#[utoipa::path(get, path = "/v1/admin/holidays", tag = "admin", security(("admin" = [])),
    params(YearQuery),
    responses((status = 200, body = Vec<HolidayDto>), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn list_holidays(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<YearQuery>,
) -> Result<Json<Vec<HolidayDto>>, Problem> {
    let first = JalaliDate::new(q.year, 1, 1).map_err(|_| {
        invalid(
            "year",
            ProblemCode::InvalidYear,
            "a Jalali year such as 1403",
        )
    })?;
    let last = JalaliDate::new(q.year + 1, 1, 1)
        .map_err(|_| {
            invalid(
                "year",
                ProblemCode::InvalidYear,
                "a Jalali year such as 1403",
            )
        })?
        .to_gregorian()
        - Duration::days(1);
    let mut out: Vec<HolidayDto> = state
        .holidays
        .base()
        .holidays_in_year(q.year)
        .into_iter()
        .map(|h| HolidayDto {
            date: h.date.to_gregorian().to_string(),
            jalali_date: h.date.to_string(),
            name_fa: h.holiday.name_fa.clone(),
            name_en: h.holiday.name_en.clone(),
            source: "builtin".to_string(),
        })
        .collect();
    for (day, name_fa, name_en) in state
        .store
        .admin_holidays(&first.to_gregorian().to_string(), &last.to_string())
        .await?
    {
        let date = NaiveDate::parse_from_str(&day, "%Y-%m-%d")
            .map_err(|e| Problem::internal_error("a stored holiday's date does not parse", &e))?;
        out.push(HolidayDto {
            date: day,
            jalali_date: JalaliDate::from_gregorian(date).to_string(),
            name_fa,
            name_en,
            source: "admin".to_string(),
        });
    }
    out.sort_by(|a, b| a.date.cmp(&b.date));
    Ok(Json(out))
}
