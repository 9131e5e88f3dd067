//! Statistics for administrators and planners: per office or province and per day, the
//! seats, bookings, enrolments, no-shows, cancellations and pickups, and the wait from booking
//! to visit. JSON, or CSV (`Accept: text/csv` or `/v1/admin/stats.csv`).

// `Problem` is the one error type of the HTTP layer; boxing it would only add noise here.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::invalid;
use crate::booking::PICKUP_SERVICE;
use crate::domain::JalaliDate;
use crate::http::extract::ApiQuery;
use crate::http::operators::Admin;
use crate::http::problem::ProblemCode;
use crate::http::staff::{day_bounds, parse_day};
use crate::http::{AppState, Problem};

/// Longest range of one statistics request, in days.
pub const STATS_DAYS_MAX: i64 = 92;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// First day (ISO or Jalali).
    pub from: String,
    /// Last day, inclusive.
    pub to: String,
    /// `office` (default) or `province`.
    pub group: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct StatsRow {
    /// Office id or province slug.
    pub key: String,
    pub date: String,
    pub jalali_date: String,
    pub capacity: i64,
    /// Visits booked for the day (not pickups), whatever became of them except cancellation.
    pub booked: i64,
    pub enrolled: i64,
    pub no_shows: i64,
    pub cancellations: i64,
    pub pickups: i64,
    /// Mean days from booking to the visit, over the day's booked visits.
    pub wait_days_mean: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatsResponse {
    pub group: String,
    pub from: String,
    pub to: String,
    pub rows: Vec<StatsRow>,
}

struct Tally {
    row: StatsRow,
    wait_secs_sum: i64,
    waits: i64,
}

/// The tally of a (key, Iran day), where a day counts from 1970-01-01.
fn tally(rows: &mut BTreeMap<(String, i64), Tally>, key: String, day: i64) -> &mut Tally {
    rows.entry((key.clone(), day)).or_insert_with(|| {
        let date = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date") + Duration::days(day);
        Tally {
            row: StatsRow {
                key,
                date: date.to_string(),
                jalali_date: JalaliDate::from_gregorian(date).to_string(),
                ..StatsRow::default()
            },
            wait_secs_sum: 0,
            waits: 0,
        }
    })
}

async fn compute(state: &AppState, q: &StatsQuery) -> Result<StatsResponse, Problem> {
    let from = parse_day(&q.from)?;
    let to = parse_day(&q.to)?;
    if to < from || (to - from).num_days() >= STATS_DAYS_MAX {
        return Err(invalid(
            "to",
            ProblemCode::InvalidRange,
            format!("`to` must be on or after `from`, at most {STATS_DAYS_MAX} days"),
        ));
    }
    let group = q.group.as_deref().unwrap_or("office");
    if group != "office" && group != "province" {
        return Err(invalid(
            "group",
            ProblemCode::InvalidGroup,
            "group is `office` or `province`",
        ));
    }
    let directory = state.directory();
    let key_of = |office_id: &str| -> String {
        if group == "office" {
            office_id.to_string()
        } else {
            directory
                .get(office_id)
                .map(|o| o.province.clone())
                .unwrap_or_else(|| "unknown".to_string())
        }
    };
    let (start, _) = day_bounds(from);
    let (_, end) = day_bounds(to);
    let mut rows: BTreeMap<(String, i64), Tally> = BTreeMap::new();
    for (office, day, capacity) in state.store.capacity_by_office_day(start, end).await? {
        tally(&mut rows, key_of(&office), day).row.capacity += capacity;
    }
    for c in state.store.appointment_counts(start, end).await? {
        let t = tally(&mut rows, key_of(&c.office_id), c.day);
        if c.service == PICKUP_SERVICE {
            if c.status != "cancelled" {
                t.row.pickups += c.count;
            }
            continue;
        }
        match c.status.as_str() {
            "cancelled" => t.row.cancellations += c.count,
            status => {
                t.row.booked += c.count;
                t.wait_secs_sum += c.wait_secs_sum;
                t.waits += c.count;
                match status {
                    "enrolled" | "card_ready" | "delivered" => t.row.enrolled += c.count,
                    "no_show" => t.row.no_shows += c.count,
                    _ => {}
                }
            }
        }
    }
    let rows = rows
        .into_values()
        .map(|t| {
            let mut r = t.row;
            r.wait_days_mean = (t.waits > 0).then(|| {
                ((t.wait_secs_sum as f64 / t.waits as f64 / 86_400.0) * 100.0).round() / 100.0
            });
            r
        })
        .collect();
    Ok(StatsResponse {
        group: group.to_string(),
        from: from.to_string(),
        to: to.to_string(),
        rows,
    })
}

fn csv_response(stats: &StatsResponse) -> Result<Response, Problem> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| Problem::internal_error("writing the statistics CSV", &e);
    w.write_record([
        "key",
        "date",
        "jalali_date",
        "capacity",
        "booked",
        "enrolled",
        "no_shows",
        "cancellations",
        "pickups",
        "wait_days_mean",
    ])
    .map_err(fail)?;
    for r in &stats.rows {
        w.write_record([
            r.key.clone(),
            r.date.clone(),
            r.jalali_date.clone(),
            r.capacity.to_string(),
            r.booked.to_string(),
            r.enrolled.to_string(),
            r.no_shows.to_string(),
            r.cancellations.to_string(),
            r.pickups.to_string(),
            r.wait_days_mean.map(|w| w.to_string()).unwrap_or_default(),
        ])
        .map_err(fail)?;
    }
    let body = w
        .into_inner()
        .map_err(|e| Problem::internal_error("writing the statistics CSV", &e))?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        body,
    )
        .into_response())
}

/// Statistics per office or province and day, as JSON or (with `Accept: text/csv`) CSV.
#[utoipa::path(get, path = "/v1/admin/stats", tag = "admin", security(("admin" = [])),
    params(StatsQuery),
    responses((status = 200, description = "JSON, or CSV with Accept: text/csv",
            content((StatsResponse = "application/json"), (String = "text/csv"))),
        (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn get_stats(
    State(state): State<AppState>,
    _admin: Admin,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Response, Problem> {
    let stats = compute(&state, &q).await?;
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    if wants_csv {
        csv_response(&stats)
    } else {
        Ok(Json(stats).into_response())
    }
}

/// The same statistics as CSV.
#[utoipa::path(get, path = "/v1/admin/stats.csv", tag = "admin", security(("admin" = [])),
    params(StatsQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn get_stats_csv(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Response, Problem> {
    csv_response(&compute(&state, &q).await?)
}
