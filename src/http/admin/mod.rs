//! The admin API, `/v1/admin/…` (an admin token): offices and their calendars, staff tokens,
//! closures and capacity cuts (with the affected appointments moved or cancelled and each
//! applicant notified), holidays, fees, statistics, staff tokens (issue, list, revoke) and the
//! audit log. Every change is written to the event log with who and when, and every admin
//! request that may change something to the audit log (`live::audit`), which also tells the
//! other nodes to reload.

pub mod access;
pub mod ballots;
pub mod closures;
pub mod offices;
pub mod rooms;
pub mod stats;
pub mod waves;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::operators::{new_token, token_hash_hex, Admin};
use super::{AppState, Problem};
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::problem::ProblemCode;
use crate::store::OperatorRecord;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/offices", post(offices::create_office))
        .route(
            "/v1/admin/offices/{office_id}",
            get(offices::get_office).patch(offices::update_office),
        )
        .route(
            "/v1/admin/offices/{office_id}/staff-tokens",
            post(create_staff_token).get(access::list_staff_tokens),
        )
        .route(
            "/v1/admin/staff-tokens/{token_id}",
            delete(access::revoke_staff_token),
        )
        .route("/v1/admin/audit", get(access::get_audit))
        .route(
            "/v1/admin/offices/{office_id}/closures",
            post(closures::close_office),
        )
        .route(
            "/v1/admin/holidays",
            get(closures::list_holidays).post(closures::add_holiday),
        )
        .route(
            "/v1/admin/fees/{jalali_year}",
            get(offices::get_fees).put(offices::put_fees),
        )
        .route("/v1/admin/stats", get(stats::get_stats))
        .route("/v1/admin/stats.csv", get(stats::get_stats_csv))
        .route("/v1/admin/waiting-rooms", post(rooms::create_room))
        .route("/v1/admin/ballots", post(ballots::create_ballot))
        .route(
            "/v1/admin/release-waves",
            get(waves::list_release_waves).post(waves::create_release_wave),
        )
        .route(
            "/v1/admin/release-waves/{wave_id}",
            delete(waves::cancel_release_wave),
        )
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffTokenRequest {
    /// Who the token is for (shown in the event log), 1 to 64 characters.
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StaffTokenResponse {
    /// Shown once; only its SHA-256 is stored.
    pub token: String,
    /// Its public id, to list and revoke it by.
    pub token_id: String,
    pub office_id: String,
    pub name: String,
}

pub fn office_not_found(id: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        ProblemCode::OfficeNotFound,
        format!("no office {id}"),
    )
}

pub fn invalid(field: &'static str, code: ProblemCode, detail: impl Into<String>) -> Problem {
    Problem::invalid_field(field, code, detail)
}

/// Issues a staff token for one office. The token is in this answer only.
#[utoipa::path(post, path = "/v1/admin/offices/{office_id}/staff-tokens", tag = "admin", security(("admin" = [])),
    request_body = StaffTokenRequest, params(("office_id" = String, Path)),
    responses((status = 201, body = StaffTokenResponse), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create_staff_token(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(office_id): ApiPath<String>,
    ApiJson(req): ApiJson<StaffTokenRequest>,
) -> Result<(StatusCode, Json<StaffTokenResponse>), Problem> {
    if state.directory().get(&office_id).is_none() {
        return Err(office_not_found(&office_id));
    }
    let name = req.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(invalid(
            "name",
            ProblemCode::InvalidName,
            "a name is 1 to 64 characters",
        ));
    }
    let token = new_token("staff");
    let record = OperatorRecord {
        role: "staff".to_string(),
        office_id: Some(office_id.clone()),
        name: name.clone(),
    };
    let now = state.engine.clock().now().timestamp();
    let hash = token_hash_hex(&token);
    state
        .store
        .insert_operator_token(&hash, &record, &admin.actor(), now)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(StaffTokenResponse {
            token,
            token_id: crate::store::token_id_of(&hash),
            office_id,
            name,
        }),
    ))
}
