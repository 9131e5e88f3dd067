//! `POST /v1/admin/ballots`: a ballot window for one service's seats of some provinces' offices
//! over a date range. The terms are checked field by field (the pure crate's
//! `BallotTerms::problems`), a secret seed and a salt are drawn, and the seed's commitment is
//! published at once. The seats are withheld from `opens_at` by the ballot task
//! (`reserve::ballot`), which also closes it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::super::operators::Admin;
use super::super::{AppState, Problem};
use super::invalid;
use crate::domain::lottery::LotterySeed;
use crate::domain::province::Province;
use crate::domain::time::iran_instant;
use crate::domain::ServiceCode;
use crate::http::extract::ApiJson;
use crate::http::problem::{FieldError, ProblemCode};
use crate::http::v1::ballots::{ballot_dto, BallotDto};
use crate::planning::ballot::{
    BallotTerms, FieldProblem, PriorityRule, DEFAULT_MAX_KM, DEFAULT_WAIT_KM_PER_DAY,
};
use crate::store::BallotRow;

/// How far ahead a ballot may close.
const CLOSES_AHEAD_DAYS_MAX: i64 = 366;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatRange {
    /// First day whose seats are in the ballot, `YYYY-MM-DD` (Iran time).
    pub from_date: String,
    /// Last day, at most 62 days after `from_date`.
    pub to_date: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BallotRequest {
    pub service: String,
    /// Province slugs whose offices' seats are in the ballot; absent or empty: every province.
    #[serde(default)]
    pub provinces: Vec<String>,
    /// RFC 3339: entries are taken, and the seats withheld, from then.
    pub opens_at: String,
    /// RFC 3339: the close (after `opens_at`, at or before the first seat day starts).
    pub closes_at: String,
    pub seats: SeatRange,
    /// Reach of an entry in km (default 100).
    #[serde(default)]
    pub max_km: Option<f64>,
    /// Cost of one more day of waiting in km (default 5).
    #[serde(default)]
    pub wait_km_per_day: Option<f64>,
    /// e.g. `[{"when": {"age_at_least": 70}, "class": 2}]`; higher classes are placed first.
    /// Conditions: `age_at_least`, `age_below` (full years on the first seat day),
    /// `province_in` (list of slugs).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub priority_rules: Vec<PriorityRule>,
}

fn field_problems(code: ProblemCode, problems: &[FieldProblem]) -> Problem {
    let first = &problems[0];
    let mut p = Problem::invalid_field(&first.field, code, first.message.clone());
    p.errors = problems
        .iter()
        .map(|f| FieldError {
            field: f.field.clone(),
            code: f.code.to_string(),
            detail: f.message.clone(),
        })
        .collect();
    p
}

pub(crate) fn problems_to(code: ProblemCode, problems: &[FieldProblem]) -> Result<(), Problem> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(field_problems(code, problems))
    }
}

fn date(field: &'static str, text: &str) -> Result<NaiveDate, Problem> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| invalid(field, ProblemCode::InvalidDate, "a date, YYYY-MM-DD"))
}

fn instant(field: &'static str, text: &str) -> Result<i64, Problem> {
    DateTime::<FixedOffset>::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp())
        .map_err(|_| invalid(field, ProblemCode::InvalidTime, "an RFC 3339 instant"))
}

fn day_start(field: &'static str, day: Option<NaiveDate>) -> Result<i64, Problem> {
    day.and_then(|d| iran_instant(d, NaiveTime::MIN).ok())
        .map(|t| t.timestamp())
        .ok_or_else(|| {
            invalid(
                field,
                ProblemCode::InvalidDate,
                "a date whose day has a start",
            )
        })
}

/// The offices of the ballot: those of the provinces (all when none) offering the service.
fn offices_of(
    state: &AppState,
    req: &BallotRequest,
    service: ServiceCode,
) -> Result<(Vec<String>, Vec<String>), Problem> {
    let mut provinces: Vec<String> = Vec::new();
    for p in &req.provinces {
        let province = Province::by_slug(p).ok_or_else(|| {
            invalid(
                "provinces",
                ProblemCode::UnknownProvince,
                format!("no province {p:?}"),
            )
        })?;
        if !provinces.contains(&province.slug) {
            provinces.push(province.slug.clone());
        }
    }
    let mut offices: Vec<String> = state
        .directory()
        .all()
        .iter()
        .filter(|o| o.offers(service) && (provinces.is_empty() || provinces.contains(&o.province)))
        .map(|o| o.id.as_str().to_string())
        .collect();
    offices.sort();
    if offices.is_empty() {
        return Err(invalid(
            "provinces",
            ProblemCode::InvalidBallot,
            "no office of those provinces offers the service",
        ));
    }
    Ok((provinces, offices))
}

/// Checks the whole request; nothing is written unless all of it is valid.
fn ballot_of(state: &AppState, req: &BallotRequest, now: i64) -> Result<BallotRow, Problem> {
    let service = ServiceCode::parse(&req.service)
        .map_err(|_| invalid("service", ProblemCode::UnknownService, "no such service"))?;
    let (provinces, office_ids) = offices_of(state, req, service)?;
    let from = date("seats.from_date", &req.seats.from_date)?;
    let to = date("seats.to_date", &req.seats.to_date)?;
    let terms = BallotTerms {
        service: service.as_str().to_string(),
        from_date: from,
        to_date: to,
        max_km: req.max_km.unwrap_or(DEFAULT_MAX_KM),
        wait_km_per_day: req.wait_km_per_day.unwrap_or(DEFAULT_WAIT_KM_PER_DAY),
        priority_rules: req.priority_rules.clone(),
    };
    problems_to(ProblemCode::InvalidBallot, &terms.problems())?;
    let opens_at = instant("opens_at", &req.opens_at)?;
    let closes_at = instant("closes_at", &req.closes_at)?;
    let from_unix = day_start("seats.from_date", Some(from))?;
    let to_unix = day_start("seats.to_date", to.succ_opt())?;
    if closes_at <= opens_at {
        return Err(invalid(
            "closes_at",
            ProblemCode::InvalidRange,
            "after opens_at",
        ));
    }
    if closes_at <= now || closes_at - now > CLOSES_AHEAD_DAYS_MAX * 86_400 {
        return Err(invalid(
            "closes_at",
            ProblemCode::InvalidTime,
            format!("in the future, within {CLOSES_AHEAD_DAYS_MAX} days"),
        ));
    }
    if closes_at > from_unix {
        return Err(invalid(
            "closes_at",
            ProblemCode::InvalidRange,
            "at or before the first seat day starts (its seats are assigned at the close)",
        ));
    }
    let ids = state.engine.ids();
    let draw = || {
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(&ids.random_bits(128).to_be_bytes());
        bytes[16..].copy_from_slice(&ids.random_bits(128).to_be_bytes());
        LotterySeed::from_bytes(bytes)
    };
    let (seed, salt) = (draw(), draw());
    Ok(BallotRow {
        id: ids.opaque("ballot"),
        service: service.as_str().to_string(),
        provinces,
        office_ids,
        terms_json: serde_json::to_string(&terms).map_err(|_| Problem::internal())?,
        from_unix,
        to_unix,
        opens_at,
        closes_at,
        commitment: seed.commitment(),
        seed_hex: seed.to_hex(),
        salt_hex: salt.to_hex(),
        status: "scheduled".to_string(),
        offices_json: None,
        results_json: None,
        created_at: now,
        published_at: None,
    })
}

/// Open a ballot window: entries from `opens_at`, the seats of `seats` withheld from
/// first-come booking from then until the results, the close at `closes_at` by the exact
/// allocator. The answer carries the seed's commitment (SHA-256 of its 32 bytes, hex); the
/// seed is revealed with the results.
#[utoipa::path(post, path = "/v1/admin/ballots", tag = "admin", security(("admin" = [])),
    request_body = BallotRequest,
    responses((status = 201, body = BallotDto), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
pub async fn create_ballot(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(req): ApiJson<BallotRequest>,
) -> Result<(StatusCode, Json<BallotDto>), Problem> {
    let now = state.engine.clock().now().timestamp();
    let ballot = ballot_of(&state, &req, now)?;
    state.store.create_ballot(&ballot).await?;
    state.engine.refresh().await?;
    Ok((StatusCode::CREATED, Json(ballot_dto(&ballot, now, 0)?)))
}
