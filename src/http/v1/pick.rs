//! Auto-pick (`pick` on `POST /v1/holds` and `POST /v1/appointments`): the request's limits
//! parsed into the availability view's terms, the rounds that submit candidates to the writer
//! until one is taken, and the `no_seat_within_limits` answer with its relaxations.
//!
//! Each round takes the least-cost free slots within the limits from the view, enough of them
//! that their free seats cover the picks in flight ahead of this one, and submits them as one
//! `PickHold`/`PickBook`; the writer takes the first with a seat on the locked rows. When all
//! were full (the view lagged a commit of this process, or another process took them) the
//! round's slots are left out and the next round asks again, up to `PICK_ROUNDS`. The answer
//! is `no_seat_within_limits` only when the view has no slot within the limits left.

use std::collections::HashSet;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use chrono::{NaiveDate, NaiveTime};

use super::dto::{PartOfDayDto, PickDto, PickedDto};
use crate::booking::{Request, UnixSeconds, WaitLimits, MAX_CANDIDATES};
use crate::domain::time::{iran_date, iran_instant};
use crate::domain::{GeoPoint, OfficeId, ServiceCode};
use crate::http::idempotency::respond;
use crate::http::problem::ProblemCode;
use crate::http::{AppState, Problem};
use crate::reserve::{
    Candidate, IdempotencyKey, PartOfDay, PickAnswer, PickLimits, Render, ReserveError, Want,
};

/// `max_km` when not given, and its largest value.
pub const DEFAULT_MAX_KM: f64 = 50.0;
pub const MAX_KM_LIMIT: f64 = 300.0;
/// Most offices a pick may name.
pub const MAX_OFFICE_IDS: usize = 5;
/// Rounds of fresh candidates before a pick gives up with 503 (each round's slots were all
/// full on the locked rows, so they are left out of the next).
const PICK_ROUNDS: usize = 32;
/// Offices beyond `max_km` looked at for the `max_km` relaxation.
const RELAX_OFFICES: usize = 64;

/// The seat a booking asks for: a slot named by office and start, or the engine's pick.
pub enum SeatForm<'a> {
    Named { office_id: &'a str, start: &'a str },
    Pick(&'a PickDto),
}

fn invalid_pick(field: &str, detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ProblemCode::InvalidPick,
        detail,
    )
    .with_extra(serde_json::json!({ "field": field }))
}

/// Exactly one of `office_id` + `start` and `pick`.
pub fn seat_form<'a>(
    office_id: &'a Option<String>,
    start: &'a Option<String>,
    pick: &'a Option<PickDto>,
) -> Result<SeatForm<'a>, Problem> {
    match (office_id, start, pick) {
        (None, None, Some(p)) => Ok(SeatForm::Pick(p)),
        (Some(o), Some(s), None) => Ok(SeatForm::Named {
            office_id: o,
            start: s,
        }),
        (_, _, Some(_)) => Err(invalid_pick(
            "pick",
            "give either pick or office_id and start, not both",
        )),
        (Some(_), None, None) => Err(invalid_pick("start", "office_id needs start")),
        (None, Some(_), None) => Err(invalid_pick("office_id", "start needs office_id")),
        (None, None, None) => Err(invalid_pick(
            "pick",
            "give either office_id and start, or pick",
        )),
    }
}

/// A pick's limits, resolved.
pub struct Resolved {
    pub limits: PickLimits,
    /// The point and radius of the `near` form.
    near: Option<(GeoPoint, f64)>,
    /// Whether `latest_date` was given (else the window's end is the limit).
    latest_given: bool,
    service: ServiceCode,
    earliest: NaiveDate,
    latest: Option<NaiveDate>,
}

/// `YYYY-MM-DD`, exactly.
fn date(field: &str, text: &str) -> Result<NaiveDate, Problem> {
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    shaped
        .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ProblemCode::InvalidDate,
                format!("{field} must be a date YYYY-MM-DD"),
            )
            .with_extra(serde_json::json!({ "field": field }))
        })
}

/// The first instant of an Iran calendar day.
fn day_start(day: NaiveDate) -> UnixSeconds {
    iran_instant(day, NaiveTime::MIN)
        .map(|t| t.timestamp())
        .unwrap_or_else(|_| day.and_time(NaiveTime::MIN).and_utc().timestamp())
}

/// Offices with their distances in km.
type Offices = Vec<(Arc<str>, f64)>;

/// The offices of the pick with their distances, nearest first (ties by id).
fn offices(
    state: &AppState,
    pick: &PickDto,
    service: ServiceCode,
) -> Result<(Offices, Option<(GeoPoint, f64)>), Problem> {
    let directory = state.directory();
    match (&pick.near, &pick.office_ids) {
        (Some(_), Some(_)) => Err(invalid_pick(
            "pick.office_ids",
            "give either near or office_ids, not both",
        )),
        (None, None) => Err(invalid_pick("pick.near", "give near or office_ids")),
        (Some(near), None) => {
            let point = GeoPoint::new(near.lat, near.lon)?;
            let max_km = pick.max_km.unwrap_or(DEFAULT_MAX_KM);
            if !(max_km > 0.0 && max_km <= MAX_KM_LIMIT) {
                return Err(invalid_pick(
                    "pick.max_km",
                    format!("max_km must be above 0 and at most {MAX_KM_LIMIT}"),
                ));
            }
            let found = directory
                .search(None, None, Some(point), Some(service))
                .into_iter()
                .filter_map(|(o, d)| d.filter(|d| *d <= max_km).map(|d| (o, d)))
                .map(|(o, d)| (Arc::from(o.id.as_str()), d))
                .collect();
            Ok((found, Some((point, max_km))))
        }
        (None, Some(ids)) => {
            if pick.max_km.is_some() {
                return Err(invalid_pick("pick.max_km", "max_km goes with near"));
            }
            if ids.is_empty() || ids.len() > MAX_OFFICE_IDS {
                return Err(invalid_pick(
                    "pick.office_ids",
                    format!("office_ids must name 1 to {MAX_OFFICE_IDS} offices"),
                ));
            }
            let mut found: Vec<(Arc<str>, f64)> = Vec::with_capacity(ids.len());
            for id in ids {
                let id = OfficeId::parse(id)?;
                let office = directory.get(id.as_str()).ok_or_else(|| {
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
                found.push((Arc::from(id.as_str()), 0.0));
            }
            found.sort_by(|a, b| a.0.cmp(&b.0));
            found.dedup_by(|a, b| a.0 == b.0);
            Ok((found, None))
        }
    }
}

/// Parses a pick into the view's terms, or says which member is wrong.
pub fn resolve(
    state: &AppState,
    pick: &PickDto,
    service: ServiceCode,
) -> Result<Resolved, Problem> {
    let (offices, near) = offices(state, pick, service)?;
    let now = state.engine.clock().now();
    let today = iran_date(now);
    let earliest = match &pick.earliest_date {
        Some(text) => {
            let d = date("pick.earliest_date", text)?;
            if d < today {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ProblemCode::DateInPast,
                    format!("pick.earliest_date {d} is before today ({today})"),
                )
                .with_extra(serde_json::json!({ "field": "pick.earliest_date" })));
            }
            d
        }
        None => today,
    };
    let latest = match &pick.latest_date {
        Some(text) => {
            let d = date("pick.latest_date", text)?;
            if d < earliest {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ProblemCode::InvalidRange,
                    format!("pick.latest_date {d} is before the earliest date {earliest}"),
                )
                .with_extra(serde_json::json!({ "field": "pick.latest_date" })));
            }
            Some(d)
        }
        None => None,
    };
    let part = match pick.part_of_day.unwrap_or(PartOfDayDto::Any) {
        PartOfDayDto::Morning => PartOfDay::Morning,
        PartOfDayDto::Afternoon => PartOfDay::Afternoon,
        PartOfDayDto::Any => PartOfDay::Any,
    };
    let before = latest
        .and_then(|d| d.succ_opt())
        .map_or(UnixSeconds::MAX, day_start);
    Ok(Resolved {
        limits: PickLimits {
            offices,
            after: now.timestamp().max(day_start(earliest) - 1),
            before,
            today,
            part,
            wait_km_per_day: state.engine.config().wait_km_per_day,
            now: now.timestamp(),
            service: Some(service.as_str()),
        },
        near,
        latest_given: latest.is_some(),
        service,
        earliest,
        latest,
    })
}

/// The figures of the candidate taken.
pub fn picked(resolved: &Resolved, c: &Candidate) -> PickedDto {
    PickedDto {
        distance_km: resolved
            .near
            .map(|_| (c.distance_km * 1000.0).round() / 1000.0),
        cost_km: c.cost_m as f64 / 1000.0,
    }
}

/// The rounds: candidates from the view, submitted as the request `make` builds from their
/// ids, rendered by what `render` makes for them; until one round's request is answered.
pub async fn pick_seat(
    state: &AppState,
    resolved: &Resolved,
    idempotency: Option<IdempotencyKey>,
    make: impl Fn(Vec<i64>) -> Request,
    render: impl Fn(Arc<[Candidate]>) -> Render,
) -> Result<Response, Problem> {
    let availability = state.engine.availability();
    let mut exclude = HashSet::new();
    // Picks with the same first office compete for the same seats.
    let anchor = resolved
        .limits
        .offices
        .first()
        .map_or_else(|| Arc::from(""), |(o, _)| o.clone());
    for round in 0..PICK_ROUNDS {
        // Each round that found its candidates full asks for twice as many seats: a view that
        // lags (another process's commits, which it learns only at its next refresh) is
        // stale on many slots at once, and excluding one small round at a time could run
        // out of rounds before reaching the seats that are free.
        let want = Want {
            max_slots: MAX_CANDIDATES,
            seats: (state.engine.picks_in_flight(&anchor) as i64 + 1) << round.min(8),
        };
        // The first round shares its list with the picks of the same limits (nothing is
        // excluded yet); later rounds leave out what they found full.
        let candidates: Arc<[Candidate]> = if exclude.is_empty() {
            availability.pick_candidates_shared(&resolved.limits, want)
        } else {
            availability
                .pick_candidates(&resolved.limits, &exclude, want)
                .into()
        };
        if candidates.is_empty() {
            return Err(no_seat(state, resolved));
        }
        metrics::histogram!("nobat_pick_candidates").record(candidates.len() as f64);
        let request = make(candidates.iter().map(|c| c.slot_id).collect());
        match state
            .engine
            .submit_pick(
                request,
                anchor.clone(),
                idempotency.clone(),
                render(candidates.clone()),
            )
            .await?
        {
            PickAnswer::Answered(answer) => return Ok(respond(answer.rendered)),
            PickAnswer::CandidatesFull => exclude.extend(candidates.iter().map(|c| c.slot_id)),
        }
    }
    Err(Problem::from(ReserveError::Overloaded))
}

/// 409 `no_seat_within_limits`, with the nearest relaxations that would find a seat and the
/// offer of the waitlist.
fn no_seat(state: &AppState, resolved: &Resolved) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        ProblemCode::NoSeatWithinLimits,
        "no free seat is left within the limits asked for",
    )
    .with_extra(serde_json::json!({
        "relaxations": relaxations(state, resolved),
        "waitlist": { "href": "/v1/waitlist" },
    }))
}

/// Each limit relaxed alone, by the least that finds a free seat: a wider radius (the
/// nearest office beyond it with one), a later last date (the earliest day with one after
/// it), any part of the day. Bounded: `RELAX_OFFICES` offices, one walk each.
fn relaxations(state: &AppState, resolved: &Resolved) -> Vec<serde_json::Value> {
    let availability = state.engine.availability();
    let one = Want {
        max_slots: 1,
        seats: 1,
    };
    let none = HashSet::new();
    let limits = &resolved.limits;
    let mut found = Vec::new();
    if let Some((point, max_km)) = resolved.near {
        let directory = state.directory();
        let wider = directory
            .search(None, None, Some(point), Some(resolved.service))
            .into_iter()
            .filter_map(|(o, d)| {
                d.filter(|d| *d > max_km && *d <= MAX_KM_LIMIT)
                    .map(|d| (o, d))
            })
            .take(RELAX_OFFICES)
            .find(|(o, d)| {
                let alone = PickLimits {
                    offices: vec![(Arc::from(o.id.as_str()), *d)],
                    ..limits.clone()
                };
                !availability.pick_candidates(&alone, &none, one).is_empty()
            });
        if let Some((_, d)) = wider {
            found.push(serde_json::json!({ "max_km": (d * 10.0).ceil() / 10.0 }));
        }
    }
    if resolved.latest_given {
        // The earliest day first: a day's wait outweighs any distance.
        let later = PickLimits {
            after: limits.before.saturating_sub(1),
            before: UnixSeconds::MAX,
            wait_km_per_day: 100_000.0,
            ..limits.clone()
        };
        if let Some(c) = availability.pick_candidates(&later, &none, one).first() {
            let day = iran_date(super::utc(c.start_at));
            found.push(serde_json::json!({ "latest_date": day.to_string() }));
        }
    }
    if limits.part != PartOfDay::Any {
        let any = PickLimits {
            part: PartOfDay::Any,
            ..limits.clone()
        };
        if !availability.pick_candidates(&any, &none, one).is_empty() {
            found.push(serde_json::json!({ "part_of_day": "any" }));
        }
    }
    found
}

/// Most offices a waitlist entry accepts (the nearest within `max_km`, or those named).
pub const WAITLIST_OFFICES_MAX: usize = 200;

/// A waitlist entry's limits: the offices it accepts, nearest first, and the times.
#[derive(Debug, Clone)]
pub struct WaitPick {
    pub offices: Vec<String>,
    pub limits: WaitLimits,
}

/// Reads `pick` for the waitlist with the auto-pick's own parse (`resolve`), so both accept
/// and refuse the same limits: the offices (at most `WAITLIST_OFFICES_MAX`, nearest first)
/// and the days from `earliest_date` to `latest_date` (default the end of the booking window)
/// in Iran time. No office of the service within the limits is 422
/// `no_office_within_limits`: an entry that no freed seat could ever fit.
pub fn wait_pick(
    state: &AppState,
    pick: &PickDto,
    service: ServiceCode,
) -> Result<WaitPick, Problem> {
    let resolved = resolve(state, pick, service)?;
    if resolved.limits.offices.is_empty() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::NoOfficeWithinLimits,
            "no office offering the service is within the limits",
        ));
    }
    let horizon = i64::from(state.config.booking_horizon_days);
    let window_end = resolved.limits.today + chrono::Duration::days(horizon);
    let latest = resolved.latest.unwrap_or(window_end);
    if latest > window_end {
        return Err(invalid_pick(
            "pick.latest_date",
            format!("latest_date is at most {horizon} days ahead ({window_end})"),
        ));
    }
    let after_latest = latest.succ_opt().unwrap_or(latest);
    Ok(WaitPick {
        offices: resolved
            .limits
            .offices
            .iter()
            .take(WAITLIST_OFFICES_MAX)
            .map(|(id, _)| id.to_string())
            .collect(),
        limits: WaitLimits {
            earliest_at: day_start(resolved.earliest),
            latest_at: day_start(after_latest),
            part_of_day: resolved.limits.part,
        },
    })
}
