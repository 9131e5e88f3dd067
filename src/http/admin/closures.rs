//! Closures, holidays and capacity cuts: the office calendar changes first (so nothing new is
//! booked into the closed days), live holds there are released, each booked appointment is
//! moved to the nearest equivalent free slot or cancelled (`no_free_slot`), each applicant
//! gets one outbox notice, and the closed slots' capacity drops to what is still taken. Every
//! seat change is a writer request. Running the same change twice changes nothing.
//!
//! Destinations are chosen greedily (the min-cost-flow allocator is not merged yet): in
//! booking order, each appointment gets the free slot with the earliest day after the closed
//! range, then the nearest office (the same office is nearest), then the earliest start, among
//! offices offering the service within [`RELOCATION_RADIUS_KM`]; seats planned for earlier
//! appointments are counted so that no slot is planned over its capacity (and the writer
//! refuses it anyway).

// `Problem` is the one error type of the HTTP layer; boxing it would only add noise here.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::extract::State;
use axum::Json;
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{invalid, office_not_found};
use crate::booking::{AppointmentRow, Outcome, Refusal, RelocationReason, Request};
use crate::domain::calendar::Closure;
use crate::domain::time::iran_date;
use crate::domain::{JalaliDate, Office, ServiceCode};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::operators::Admin;
use crate::http::staff::{day_bounds, parse_day};
use crate::http::v1::{iran_rfc3339, jalali};
use crate::http::{AppState, Problem};
use crate::reserve::directory::Directory;
use crate::reserve::SlotView;

/// Offices farther than this from the closed one are not offered as a destination.
pub const RELOCATION_RADIUS_KM: f64 = 50.0;
/// Nearest offices considered per appointment (the closed one included).
const CANDIDATE_OFFICES: usize = 8;
/// Free slots looked at per candidate office.
const CANDIDATE_SLOTS: usize = 1_024;
/// Longest closure in one request, in days.
pub const CLOSURE_DAYS_MAX: i64 = 31;
/// Attempts per appointment when a planned seat was taken by someone else meanwhile.
const MOVE_ATTEMPTS: usize = 3;

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
        return Err(invalid("to", "invalid_range", "`to` is before `from`"));
    }
    if (to - from).num_days() >= CLOSURE_DAYS_MAX {
        return Err(invalid(
            "to",
            "range_too_long",
            format!("a closure covers at most {CLOSURE_DAYS_MAX} days"),
        ));
    }
    if from < today {
        return Err(invalid("from", "date_in_past", "the past cannot be closed"));
    }
    Ok((from, to))
}

fn check_reason(reason: &str) -> Result<String, Problem> {
    let r = reason.trim();
    if r.is_empty() || r.chars().count() > 200 {
        return Err(invalid(
            "reason",
            "invalid_reason",
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

/// From this many appointments at once, their new slots come from the allocator (exact
/// min-cost flow: most moved, then least distance plus a day's wait counted as
/// `RELOCATION_WAIT_KM_PER_DAY`); fewer are placed greedily.
const ALLOCATOR_MIN_MOVES: usize = 8;
const RELOCATION_WAIT_KM_PER_DAY: f64 = 10.0;

/// Where each affected appointment goes, by the allocator: the candidate offices' free seats
/// form office-days, the appointments are applicants at their old office, and the seats the
/// allocator hands out inside an office-day map to that day's free slots in time order.
fn plan_with_allocator(
    state: &AppState,
    affected: &[AppointmentRow],
    not_before: i64,
    excluded: &(dyn Fn(&SlotView) -> bool + Sync),
) -> Option<Vec<Option<SlotView>>> {
    use crate::planning::allocator::{
        allocate, AllocationProblem, Applicant, OfficeDaySeats, OfficeSite, Outcome as Placed,
    };
    let directory = state.directory();
    let availability = state.engine.availability();
    let first_day = iran_date(crate::http::v1::utc(not_before));
    // Candidate offices: within reach of any affected appointment's office.
    let origins: Vec<&Office> = affected
        .iter()
        .filter_map(|a| directory.get(&a.office_id))
        .collect();
    let candidates: Vec<&Office> = directory
        .all()
        .iter()
        .filter(|o| {
            origins
                .iter()
                .any(|x| x.location.distance_km(o.location) <= RELOCATION_RADIUS_KM)
        })
        .collect();
    let mut offices = Vec::with_capacity(candidates.len());
    let mut seats = Vec::new();
    // (office index, day) → free seats of that day in start order, one entry per seat.
    let mut seat_slots: HashMap<(usize, u32), Vec<SlotView>> = HashMap::new();
    for (i, office) in candidates.iter().enumerate() {
        offices.push(OfficeSite {
            id: office.id.to_string(),
            lat: office.location.lat,
            lon: office.location.lon,
            services: Some(
                office
                    .services
                    .iter()
                    .filter(|s| office.offers(**s))
                    .map(|s| s.to_string())
                    .collect(),
            ),
            stations: None,
            province: None,
        });
        for slot in availability.earliest_free(office.id.as_str(), not_before - 1, CANDIDATE_SLOTS)
        {
            if excluded(&slot) {
                continue;
            }
            let day = (iran_date(crate::http::v1::utc(slot.start_at)) - first_day)
                .num_days()
                .max(0) as u32;
            let list = seat_slots.entry((i, day)).or_default();
            for _ in 0..slot.free() {
                list.push(slot.clone());
            }
        }
    }
    for (&(office, day), list) in &seat_slots {
        seats.push(OfficeDaySeats {
            office,
            day,
            seats: list.len() as u32,
        });
    }
    seats.sort_by_key(|s| (s.office, s.day));
    let applicants = affected
        .iter()
        .map(|a| {
            let origin = directory.get(&a.office_id);
            Applicant {
                id: a.tracking_code.clone(),
                lat: origin.map_or(0.0, |o| o.location.lat),
                lon: origin.map_or(0.0, |o| o.location.lon),
                priority: 0,
                max_km: Some(if origin.is_some() {
                    RELOCATION_RADIUS_KM
                } else {
                    0.0
                }),
                service: Some(a.service.clone()),
                registered_at: Some(a.created_at),
                province: None,
                earliest_day: None,
                preferred_offices: None,
            }
        })
        .collect();
    let problem = AllocationProblem {
        offices,
        seats,
        applicants,
        wait_km_per_day: RELOCATION_WAIT_KM_PER_DAY,
        default_max_km: Some(RELOCATION_RADIUS_KM),
        lottery_seed: "relocation".to_string(),
    };
    let allocation = match allocate(&problem, &Default::default()) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "relocation allocator failed; placing greedily");
            return None;
        }
    };
    Some(
        allocation
            .outcomes
            .iter()
            .map(|o| match o {
                Placed::Assigned(x) => seat_slots
                    .get(&(x.office, x.day))
                    .and_then(|l| l.get(x.seat as usize))
                    .cloned(),
                Placed::Unassigned(_) => None,
            })
            .collect(),
    )
}

/// Where each affected appointment goes: a slot id, or `None` to cancel.
fn plan(
    state: &AppState,
    affected: &[AppointmentRow],
    not_before: i64,
    excluded: &(dyn Fn(&SlotView) -> bool + Sync),
    planned: &mut HashMap<i64, i64>,
) -> Vec<Option<SlotView>> {
    let directory = state.directory();
    let availability = state.engine.availability();
    let mut free_by_office: HashMap<String, Vec<SlotView>> = HashMap::new();
    affected
        .iter()
        .map(|a| {
            let origin = directory.get(&a.office_id)?;
            let service = ServiceCode::parse(&a.service).ok()?;
            let mut best: Option<(NaiveDate, f64, i64, SlotView)> = None;
            let candidates = directory
                .search(None, None, Some(origin.location), Some(service))
                .into_iter()
                .filter(|(_, d)| d.unwrap_or(f64::MAX) <= RELOCATION_RADIUS_KM)
                .take(CANDIDATE_OFFICES);
            for (office, distance) in candidates {
                let free = free_by_office
                    .entry(office.id.to_string())
                    .or_insert_with(|| {
                        availability.earliest_free(
                            office.id.as_str(),
                            not_before - 1,
                            CANDIDATE_SLOTS,
                        )
                    });
                let Some(slot) = free.iter().find(|s| {
                    !excluded(s) && s.free() - planned.get(&s.id).copied().unwrap_or(0) > 0
                }) else {
                    continue;
                };
                let key = (
                    iran_date(crate::http::v1::utc(slot.start_at)),
                    distance.unwrap_or(0.0),
                    slot.start_at,
                );
                if best
                    .as_ref()
                    .is_none_or(|b| (key.0, key.1, key.2) < (b.0, b.1, b.2))
                {
                    best = Some((key.0, key.1, key.2, slot.clone()));
                }
            }
            let (_, _, _, slot) = best?;
            *planned.entry(slot.id).or_default() += 1;
            Some(slot)
        })
        .collect()
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
    let mut planned = HashMap::new();
    let mut pending = affected;
    let mut moves = Vec::new();
    for attempt in 0..MOVE_ATTEMPTS {
        if pending.is_empty() {
            break;
        }
        let last = attempt + 1 == MOVE_ATTEMPTS;
        let targets = match (pending.len() >= ALLOCATOR_MIN_MOVES)
            .then(|| plan_with_allocator(state, &pending, not_before, excluded))
            .flatten()
        {
            Some(targets) => targets,
            None => plan(state, &pending, not_before, excluded, &mut planned),
        };
        let requests = pending
            .iter()
            .zip(&targets)
            .map(|(a, t)| Request::Relocate {
                tracking_code: a.tracking_code.clone(),
                // On the last attempt, a seat lost again means no seat: cancel.
                new_slot_id: t.as_ref().map(|s| s.id),
                reason,
                notice_key: notice_key.to_string(),
                actor: actor.to_string(),
            })
            .collect();
        let answers = state.engine.submit_many(requests).await;
        let mut retry = Vec::new();
        for (a, answer) in pending.into_iter().zip(answers) {
            match answer?.outcome {
                Outcome::Relocated { appointment, .. } => moves.push(move_dto(&appointment)),
                Outcome::Refused(Refusal::SlotFull { .. }) if !last => retry.push(a),
                Outcome::Refused(Refusal::SlotFull { .. }) => {
                    let request = Request::Relocate {
                        tracking_code: a.tracking_code.clone(),
                        new_slot_id: None,
                        reason,
                        notice_key: notice_key.to_string(),
                        actor: actor.to_string(),
                    };
                    if let Outcome::Relocated { appointment, .. } =
                        state.engine.submit(request).await?.outcome
                    {
                        moves.push(move_dto(&appointment));
                    }
                }
                // Cancelled or checked in meanwhile: nothing to move.
                _ => {}
            }
        }
        // The view may be stale where the plan failed: read it again.
        state.engine.refresh().await?;
        planned.clear();
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
        .map(|s| Request::SetCapacity {
            slot_id: s.id,
            capacity: s.taken,
            actor: actor.to_string(),
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
            .map(|h| Request::Release {
                national_code: h.national_code,
                hold_id: h.id,
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
        shrink_slots(state, id, window_from, window_to, actor).await?;
    }
    state.engine.refresh().await?;
    Ok(report)
}

/// Closes an office for a day or a range: affected appointments are moved to the nearest
/// equivalent free slot or cancelled, each applicant notified once. Repeating it changes
/// nothing.
#[utoipa::path(post, path = "/v1/admin/offices/{office_id}/closures", tag = "admin", security(("bearer" = [])),
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
#[serde(deny_unknown_fields)]
pub struct YearQuery {
    /// Jalali year, e.g. 1403.
    pub year: i32,
}

/// Announces a holiday: recorded in the holiday table and closes every office that day, with
/// the affected appointments moved or cancelled as for a closure.
#[utoipa::path(post, path = "/v1/admin/holidays", tag = "admin", security(("bearer" = [])),
    request_body = HolidayRequest,
    responses((status = 200, body = ClosureReport), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn add_holiday(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<HolidayRequest>,
) -> Result<Json<ClosureReport>, Problem> {
    let today = iran_date(state.engine.clock().now());
    let (date, _) = parse_range(&req.date, None, today)?;
    let name_fa = check_reason(&req.name_fa)
        .map_err(|_| invalid("name_fa", "invalid_name", "a name is 1 to 200 characters"))?;
    let name_en = check_reason(&req.name_en)
        .map_err(|_| invalid("name_en", "invalid_name", "a name is 1 to 200 characters"))?;
    let now = state.engine.clock().now().timestamp();
    if state
        .store
        .insert_holiday(&date.to_string(), &name_fa, &name_en)
        .await?
    {
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
#[utoipa::path(get, path = "/v1/admin/holidays", tag = "admin", security(("bearer" = [])),
    params(YearQuery),
    responses((status = 200, body = Vec<HolidayDto>), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn list_holidays(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<YearQuery>,
) -> Result<Json<Vec<HolidayDto>>, Problem> {
    let first = JalaliDate::new(q.year, 1, 1)
        .map_err(|_| invalid("year", "invalid_year", "a Jalali year such as 1403"))?;
    let last = JalaliDate::new(q.year + 1, 1, 1)
        .map_err(|_| invalid("year", "invalid_year", "a Jalali year such as 1403"))?
        .to_gregorian()
        - Duration::days(1);
    let mut out: Vec<HolidayDto> = state
        .holidays
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
        let date = NaiveDate::parse_from_str(&day, "%Y-%m-%d").map_err(|_| Problem::internal())?;
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
