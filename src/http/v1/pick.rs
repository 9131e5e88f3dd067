//! The `pick` limits an applicant gives for a seat chosen for them (the waitlist; auto-pick
//! booking takes the same shape): where (`near` a point within `max_km`, or up to 5
//! `office_ids`), when (`earliest_date` to `latest_date`, Iran dates) and which part of the
//! day. One wire type and one parser, so every operation reads them alike.

use axum::http::StatusCode;
use chrono::{Duration, NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::booking::{PartOfDay, WaitLimits};
use crate::domain::time::{iran_date, iran_instant};
use crate::domain::{GeoPoint, OfficeId, ServiceCode};
use crate::http::problem::ProblemCode;
use crate::http::{AppState, Problem};

/// Most offices a `pick` names.
pub const PICK_OFFICES_MAX: usize = 5;
/// Most offices a waitlist entry accepts (the nearest within `max_km`).
pub const WAITLIST_OFFICES_MAX: usize = 200;
/// The largest `max_km`.
pub const PICK_MAX_KM: f64 = 500.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NearDto {
    pub lat: f64,
    pub lon: f64,
}

/// Where and when a seat may be: `near` with `max_km`, or `office_ids`; then the dates and the
/// part of the day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickDto {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub near: Option<NearDto>,
    /// With `near`: the farthest office, in km (at most 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_km: Option<f64>,
    /// Instead of `near`: 1 to 5 offices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office_ids: Option<Vec<String>>,
    /// `YYYY-MM-DD` (Gregorian, Iran date); default today.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest_date: Option<String>,
    /// `YYYY-MM-DD` inclusive; default the end of the booking window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_date: Option<String>,
    /// `morning` (before 12:00), `afternoon` or `any` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_of_day: Option<String>,
}

/// Parsed limits: the offices accepted (nearest first) and the time limits.
#[derive(Debug, Clone)]
pub struct Pick {
    pub offices: Vec<String>,
    pub limits: WaitLimits,
}

fn invalid(code: ProblemCode, detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
}

/// Reads `pick` for `service`, accepting at most `max_offices` offices.
pub fn parse_pick(
    state: &AppState,
    pick: &PickDto,
    service: ServiceCode,
    max_offices: usize,
) -> Result<Pick, Problem> {
    let offices = pick_offices(state, pick, service, max_offices)?;
    let today = iran_date(state.engine.clock().now());
    let date = |s: &Option<String>, field: &str| -> Result<Option<NaiveDate>, Problem> {
        s.as_deref()
            .map(|s| {
                NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
                    invalid(
                        ProblemCode::InvalidDate,
                        format!("pick.{field} is YYYY-MM-DD"),
                    )
                })
            })
            .transpose()
    };
    let horizon = i64::from(state.config.booking_horizon_days);
    let earliest = date(&pick.earliest_date, "earliest_date")?.unwrap_or(today);
    let latest = date(&pick.latest_date, "latest_date")?.unwrap_or(today + Duration::days(horizon));
    if earliest < today || latest < earliest || (latest - today).num_days() > horizon {
        return Err(invalid(
            ProblemCode::InvalidRange,
            format!("pick dates run from today at the earliest to {horizon} days ahead, earliest_date first"),
        ));
    }
    let part_of_day = match pick.part_of_day.as_deref() {
        None => PartOfDay::Any,
        Some(s) => PartOfDay::parse(s).ok_or_else(|| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ProblemCode::InvalidBody,
                "pick.part_of_day is morning, afternoon or any",
            )
        })?,
    };
    Ok(Pick {
        offices,
        limits: WaitLimits {
            earliest_at: iran_instant(earliest, NaiveTime::MIN)?.timestamp(),
            latest_at: iran_instant(latest + Duration::days(1), NaiveTime::MIN)?.timestamp(),
            part_of_day,
        },
    })
}

/// The offices `pick` accepts that offer `service`, nearest first (or in the order named), at
/// most `max_offices`.
pub fn pick_offices(
    state: &AppState,
    pick: &PickDto,
    service: ServiceCode,
    max_offices: usize,
) -> Result<Vec<String>, Problem> {
    let directory = state.directory();
    let offices = match (&pick.near, pick.max_km, &pick.office_ids) {
        (Some(near), Some(max_km), None) => {
            let point = GeoPoint::new(near.lat, near.lon).map_err(|_| {
                invalid(
                    ProblemCode::InvalidNear,
                    "pick.near is {lat, lon} in degrees",
                )
            })?;
            if !(max_km > 0.0 && max_km <= PICK_MAX_KM) {
                return Err(invalid(
                    ProblemCode::InvalidNear,
                    format!("pick.max_km is more than 0 and at most {PICK_MAX_KM}"),
                ));
            }
            directory
                .nearest(point, max_offices, |o| o.offers(service))
                .into_iter()
                .take_while(|(_, d)| *d <= max_km)
                .map(|(o, _)| o.id.to_string())
                .collect::<Vec<_>>()
        }
        (None, None, Some(ids)) => {
            if ids.is_empty() || ids.len() > PICK_OFFICES_MAX {
                return Err(invalid(
                    ProblemCode::InvalidBody,
                    format!("pick.office_ids names 1 to {PICK_OFFICES_MAX} offices"),
                ));
            }
            let mut out = Vec::with_capacity(ids.len());
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
                    return Err(invalid(
                        ProblemCode::ServiceNotOffered,
                        format!("office {id} does not offer {service}"),
                    ));
                }
                if !out.contains(&id.to_string()) {
                    out.push(id.to_string());
                }
            }
            out
        }
        _ => {
            return Err(invalid(
                ProblemCode::InvalidBody,
                "pick has either near with max_km, or office_ids",
            ))
        }
    };
    if offices.is_empty() {
        return Err(invalid(
            ProblemCode::NoOfficeWithinLimits,
            "no office offering the service is within max_km",
        ));
    }
    Ok(offices)
}
