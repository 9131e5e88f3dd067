//! Ballot windows, the applicant's and the public's side: a ballot's public state, one's own
//! entry (make or change it, withdraw it, see it and its outcome) and the published results.
//! Entries and withdrawals go through the entry writer (`reserve::entries`: group commit, a
//! batch's changes decided and written in one transaction) and are acknowledged only after
//! that commit; the database keeps one entry per citizen and ballot (its primary key).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{iran_rfc3339, jalali};
use crate::domain::lottery::{salted_key, LotterySeed};
use crate::http::admin::ballots::problems_to;
use crate::http::auth::Applicant;
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::problem::ProblemCode;
use crate::http::{AppState, Problem};
use crate::planning::ballot::{BallotTerms, EntrantFacts, Preferences};
use crate::store::{BallotRow, EntryChange, EntryOutcome, EntryRefusal, EntryRow, EntryWrite};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BallotDto {
    pub ballot_id: String,
    pub service: String,
    /// Province slugs asked for; empty: every province.
    pub provinces: Vec<String>,
    /// Offices whose seats are in the ballot.
    pub offices: usize,
    pub from_date: String,
    pub to_date: String,
    pub opens_at: String,
    pub closes_at: String,
    pub max_km: f64,
    pub wait_km_per_day: f64,
    #[schema(value_type = Vec<Object>)]
    pub priority_rules: serde_json::Value,
    /// SHA-256 of the secret seed's 32 bytes (hex), published at creation.
    pub commitment: String,
    /// `scheduled`, `open`, `closing` or `published`.
    pub status: String,
    pub entries: i64,
    /// The seed (64 hex digits), revealed with the results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
}

fn terms_of(b: &BallotRow) -> Result<BallotTerms, Problem> {
    serde_json::from_str(&b.terms_json).map_err(|_| Problem::internal())
}

/// The status as the clock sees it: the stored one moves with the ballot task.
fn status_at(b: &BallotRow, now: i64) -> &'static str {
    match b.status.as_str() {
        "published" => "published",
        "closing" => "closing",
        _ if now >= b.closes_at => "closing",
        _ if now >= b.opens_at => "open",
        _ => "scheduled",
    }
}

pub fn ballot_dto(b: &BallotRow, now: i64, entries: i64) -> Result<BallotDto, Problem> {
    let terms = terms_of(b)?;
    Ok(BallotDto {
        ballot_id: b.id.clone(),
        service: b.service.clone(),
        provinces: b.provinces.clone(),
        offices: b.office_ids.len(),
        from_date: terms.from_date.to_string(),
        to_date: terms.to_date.to_string(),
        opens_at: iran_rfc3339(b.opens_at),
        closes_at: iran_rfc3339(b.closes_at),
        max_km: terms.max_km,
        wait_km_per_day: terms.wait_km_per_day,
        priority_rules: serde_json::to_value(&terms.priority_rules)
            .map_err(|_| Problem::internal())?,
        commitment: b.commitment.clone(),
        status: status_at(b, now).to_string(),
        entries,
        seed: (b.status == "published").then(|| b.seed_hex.clone()),
    })
}

async fn ballot_or_404(state: &AppState, id: &str) -> Result<BallotRow, Problem> {
    state.store.ballot(id).await?.ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::BallotNotFound,
            "no such ballot",
        )
    })
}

fn closed(b: &BallotRow) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        ProblemCode::BallotClosed,
        format!("the ballot closed at {}", iran_rfc3339(b.closes_at)),
    )
}

/// A ballot's public state: its service, times, seed commitment, status and entry count.
#[utoipa::path(get, path = "/v1/ballots/{ballot_id}", tag = "applicant",
    params(("ballot_id" = String, Path)),
    responses((status = 200, body = BallotDto), (status = 404, body = Problem)))]
pub async fn get_ballot(
    State(state): State<AppState>,
    ApiPath(ballot_id): ApiPath<String>,
) -> Result<Json<BallotDto>, Problem> {
    let b = ballot_or_404(&state, &ballot_id).await?;
    let entries = state.store.ballot_entry_count(&b.id).await?;
    let now = state.engine.clock().now().timestamp();
    Ok(Json(ballot_dto(&b, now, entries)?))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BallotResultsDto {
    pub ballot_id: String,
    pub commitment: String,
    /// The revealed seed (64 hex digits): SHA-256 of its bytes is the commitment.
    pub seed: String,
    pub published_at: String,
    /// Counts per province (entries, placed, placed share), distance and wait-day p50/p95,
    /// Jain's index of the placed share across provinces, the objective; no personal data.
    #[schema(value_type = Object)]
    pub results: serde_json::Value,
}

/// The published results of a ballot (public, no personal data) with its revealed seed.
#[utoipa::path(get, path = "/v1/ballots/{ballot_id}/results", tag = "applicant",
    params(("ballot_id" = String, Path)),
    responses((status = 200, body = BallotResultsDto), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn get_ballot_results(
    State(state): State<AppState>,
    ApiPath(ballot_id): ApiPath<String>,
) -> Result<Json<BallotResultsDto>, Problem> {
    let b = ballot_or_404(&state, &ballot_id).await?;
    let (Some(results), Some(published_at)) = (&b.results_json, b.published_at) else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            ProblemCode::BallotNotPublished,
            format!(
                "the results are published after the close at {}",
                iran_rfc3339(b.closes_at)
            ),
        ));
    };
    Ok(Json(BallotResultsDto {
        ballot_id: b.id.clone(),
        commitment: b.commitment.clone(),
        seed: b.seed_hex.clone(),
        published_at: iran_rfc3339(published_at),
        results: serde_json::from_str(results).map_err(|_| Problem::internal())?,
    }))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BallotEntryRequest {
    pub application_id: String,
    /// A paid payment of the application.
    pub payment_id: String,
    /// `near` {lat, lon} (default: your registered home) with `max_km`, or up to 5
    /// `office_ids`; `earliest_date` (`YYYY-MM-DD`); `part_of_day` `morning|afternoon|any`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub preferences: Preferences,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BallotOutcomeDto {
    /// `placed` or `unplaced`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jalali_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_km: Option<f64>,
    /// Why no seat: `no_office_within_max_km`, `no_seat_within_max_km`,
    /// `no_seat_after_earliest_date`, `already_booked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The place on the ballot's waitlist (1 first): class, then the lottery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waitlist_rank: Option<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BallotEntryDto {
    pub ballot_id: String,
    /// The key the audit export publishes the entry under (find yourself in it).
    pub entry_key: String,
    pub application_id: String,
    pub payment_id: String,
    #[schema(value_type = Object)]
    pub preferences: serde_json::Value,
    /// Priority class from the ballot's rules (0: none).
    pub priority_class: i32,
    pub created_at: String,
    pub updated_at: String,
    /// After the close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<BallotOutcomeDto>,
}

fn entry_dto(e: &EntryRow) -> BallotEntryDto {
    let outcome = e.outcome.as_ref().map(|o| match o {
        EntryOutcome::Placed {
            tracking_code,
            office_id,
            start_at,
            distance_km,
            ..
        } => BallotOutcomeDto {
            status: "placed".into(),
            tracking_code: Some(tracking_code.clone()),
            office_id: Some(office_id.clone()),
            start: Some(iran_rfc3339(*start_at)),
            jalali_date: Some(jalali(*start_at).0),
            distance_km: Some(*distance_km),
            reason: None,
            waitlist_rank: None,
        },
        EntryOutcome::Unplaced {
            reason,
            waitlist_rank,
        } => BallotOutcomeDto {
            status: "unplaced".into(),
            tracking_code: None,
            office_id: None,
            start: None,
            jalali_date: None,
            distance_km: None,
            reason: Some(reason.clone()),
            waitlist_rank: *waitlist_rank,
        },
    });
    BallotEntryDto {
        ballot_id: e.ballot_id.clone(),
        entry_key: e.entry_key.clone(),
        application_id: e.application_id.clone(),
        payment_id: e.payment_id.clone(),
        preferences: serde_json::from_str(&e.preferences_json).unwrap_or_default(),
        priority_class: e.priority,
        created_at: iran_rfc3339(e.created_at),
        updated_at: iran_rfc3339(e.updated_at),
        outcome,
    }
}

/// The problem of an entry refused by what its batch read (its application or payment).
fn refused(r: EntryRefusal) -> Problem {
    match r {
        EntryRefusal::ApplicationNotFound => Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::ApplicationNotFound,
            "no such application",
        ),
        EntryRefusal::WrongService { ballot_service } => Problem::invalid_field(
            "application_id",
            ProblemCode::ServiceNotBookable,
            format!("the ballot is for {ballot_service}"),
        ),
        EntryRefusal::PaymentNotFound => Problem::invalid_field(
            "payment_id",
            ProblemCode::PaymentNotFound,
            "no such payment",
        ),
        EntryRefusal::PaymentMismatch => Problem::invalid_field(
            "payment_id",
            ProblemCode::PaymentMismatch,
            "the payment is for another application",
        ),
        EntryRefusal::PaymentNotPaid { status } => Problem::new(
            StatusCode::PAYMENT_REQUIRED,
            ProblemCode::PaymentNotPaid,
            format!("the payment is {status}"),
        ),
    }
}

/// The answer to an entry's change that the batch did not make: closed (or not open yet by
/// the clock), or no such ballot.
fn not_made(b: &BallotRow, w: EntryWrite, now: i64) -> Problem {
    match w {
        EntryWrite::Refused(r) => refused(r),
        EntryWrite::NoBallot => Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::BallotNotFound,
            "no such ballot",
        ),
        EntryWrite::NoEntry => no_entry(),
        _ if now < b.opens_at => not_open(b),
        _ => closed(b),
    }
}

fn not_open(b: &BallotRow) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        ProblemCode::BallotNotOpen,
        format!("the ballot opens at {}", iran_rfc3339(b.opens_at)),
    )
}

/// The ballot an entry names, from the engine's memory of ballots (their terms never change).
async fn entry_ballot(state: &AppState, id: &str) -> Result<Arc<BallotRow>, Problem> {
    state.engine.ballot_for_entry(id).await?.ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::BallotNotFound,
            "no such ballot",
        )
    })
}

/// Enter the ballot, or change your entry, while it is open: 201 with the new entry, 200 with
/// the changed one. One entry per citizen and ballot. After the close: 409 `ballot_closed`.
/// Bad preferences: 422 `invalid_preferences` naming each field; nothing is stored.
#[utoipa::path(put, path = "/v1/ballots/{ballot_id}/entry", tag = "applicant", security(("applicant" = [])),
    params(("ballot_id" = String, Path)), request_body = BallotEntryRequest,
    responses((status = 201, body = BallotEntryDto), (status = 200, description = "the entry, changed", body = BallotEntryDto),
        (status = 402, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn put_ballot_entry(
    State(state): State<AppState>,
    applicant: Applicant,
    ApiPath(ballot_id): ApiPath<String>,
    ApiJson(req): ApiJson<BallotEntryRequest>,
) -> Result<Response, Problem> {
    let b = entry_ballot(&state, &ballot_id).await?;
    let now = state.engine.clock().now().timestamp();
    match status_at(&b, now) {
        "scheduled" => return Err(not_open(&b)),
        "open" => {}
        _ => return Err(closed(&b)),
    }
    let terms = terms_of(&b)?;
    let in_ballot = |id: &str| {
        b.office_ids
            .binary_search_by(|o| o.as_str().cmp(id))
            .is_ok()
    };
    problems_to(
        ProblemCode::InvalidPreferences,
        &req.preferences.problems(&terms, &in_ballot),
    )?;
    let citizen = state.registry.lookup(&applicant.national_code);
    let (home, province, priority) = match &citizen {
        Some(c) => (
            c.location,
            Some(c.province.clone()),
            terms.priority_of(&EntrantFacts {
                birth_date: c.birth_date,
                province: &c.province,
                home: c.location,
            }),
        ),
        None if req.preferences.near.is_some() || !req.preferences.office_ids.is_empty() => (
            req.preferences
                .near
                .unwrap_or(crate::domain::GeoPoint { lat: 0.0, lon: 0.0 }),
            None,
            0,
        ),
        None => {
            return Err(Problem::invalid_field(
                "preferences.near",
                ProblemCode::InvalidPreferences,
                "the registry has no home location for you: give a place or offices",
            ))
        }
    };
    let salt = LotterySeed::from_hex(&b.salt_hex).map_err(|_| Problem::internal())?;
    let code = applicant.national_code.to_string();
    let row = EntryRow {
        ballot_id: b.id.clone(),
        entry_key: salted_key(salt.as_bytes(), &code),
        national_code: code,
        application_id: req.application_id.clone(),
        payment_id: req.payment_id.clone(),
        home_lat: home.lat,
        home_lon: home.lon,
        province,
        priority,
        preferences_json: serde_json::to_string(&req.preferences)
            .map_err(|_| Problem::internal())?,
        created_at: now,
        updated_at: now,
        outcome: None,
    };
    // Acknowledged after the entry writer's batch committed; the batch checks the
    // application, the payment and the ballot's stored status.
    match state
        .engine
        .change_entry(EntryChange::Put(Box::new(row)))
        .await?
    {
        EntryWrite::Created(e) => Ok((StatusCode::CREATED, Json(entry_dto(&e))).into_response()),
        EntryWrite::Updated(e) => Ok((StatusCode::OK, Json(entry_dto(&e))).into_response()),
        other => Err(not_made(&b, other, now)),
    }
}

fn no_entry() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        ProblemCode::BallotEntryNotFound,
        "you have no entry in this ballot",
    )
}

/// Your entry in the ballot, with its outcome after the close (your appointment, or why no
/// seat and your place on the waitlist).
#[utoipa::path(get, path = "/v1/ballots/{ballot_id}/entry", tag = "applicant", security(("applicant" = [])),
    params(("ballot_id" = String, Path)),
    responses((status = 200, body = BallotEntryDto), (status = 404, body = Problem)))]
pub async fn get_ballot_entry(
    State(state): State<AppState>,
    applicant: Applicant,
    ApiPath(ballot_id): ApiPath<String>,
) -> Result<Json<BallotEntryDto>, Problem> {
    let b = ballot_or_404(&state, &ballot_id).await?;
    let e = state
        .store
        .ballot_entry(&b.id, &applicant.national_code.to_string())
        .await?
        .ok_or_else(no_entry)?;
    Ok(Json(entry_dto(&e)))
}

/// Withdraw your entry while the ballot is open (204). After the close: 409 `ballot_closed`.
#[utoipa::path(delete, path = "/v1/ballots/{ballot_id}/entry", tag = "applicant", security(("applicant" = [])),
    params(("ballot_id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn withdraw_ballot_entry(
    State(state): State<AppState>,
    applicant: Applicant,
    ApiPath(ballot_id): ApiPath<String>,
) -> Result<StatusCode, Problem> {
    let b = entry_ballot(&state, &ballot_id).await?;
    let now = state.engine.clock().now().timestamp();
    let change = EntryChange::Withdraw {
        ballot_id: b.id.clone(),
        national_code: applicant.national_code.to_string(),
    };
    match state.engine.change_entry(change).await? {
        EntryWrite::Withdrawn => Ok(StatusCode::NO_CONTENT),
        // Before the opening there is no entry to withdraw.
        EntryWrite::NotOpen(_) if now < b.opens_at => Err(no_entry()),
        other => Err(not_made(&b, other, now)),
    }
}
