//! Who may act, and what administrators did: the staff tokens of an office (listed by their
//! public ids, never the tokens), their revocation, and the audit log of admin changes.
//!
//! A revoked token stops working at once on every node: staff and admin requests look the
//! token's hash up in the database on every request (`operators`), with no cache to expire.

// `Problem` is the one error type of the HTTP layer; boxing it would only add noise here.
#![allow(clippy::result_large_err)]

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{invalid, office_not_found};
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::operators::Admin;
use crate::http::problem::ProblemCode;
use crate::http::v1::iran_rfc3339;
use crate::http::{AppState, Problem};
use crate::store::{AuditRecord, OperatorTokenRecord, AUDIT_PAGE_MAX};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StaffTokenDto {
    /// The token's public id (the first 16 hex digits of its SHA-256).
    pub token_id: String,
    pub office_id: Option<String>,
    pub name: String,
    pub created_at: String,
    /// When it was revoked; absent while it works.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

fn token_dto(t: &OperatorTokenRecord) -> StaffTokenDto {
    StaffTokenDto {
        token_id: t.token_id.clone(),
        office_id: t.office_id.clone(),
        name: t.name.clone(),
        created_at: iran_rfc3339(t.created_at),
        revoked_at: t.revoked_at.map(iran_rfc3339),
    }
}

/// The staff tokens of an office, newest first (revoked ones too).
#[utoipa::path(get, path = "/v1/admin/offices/{office_id}/staff-tokens", tag = "admin", security(("admin" = [])),
    params(("office_id" = String, Path)),
    responses((status = 200, body = [StaffTokenDto])))]
pub async fn list_staff_tokens(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(office_id): ApiPath<String>,
) -> Result<Json<Vec<StaffTokenDto>>, Problem> {
    if state.directory().get(&office_id).is_none() {
        return Err(office_not_found(&office_id));
    }
    let tokens = state.store.office_operator_tokens(&office_id).await?;
    Ok(Json(tokens.iter().map(token_dto).collect()))
}

/// Revokes a staff token: every node refuses it from the next request on. Revoking it again
/// changes nothing and answers the same.
#[utoipa::path(delete, path = "/v1/admin/staff-tokens/{token_id}", tag = "admin", security(("admin" = [])),
    params(("token_id" = String, Path, description = "the token's public id")),
    responses((status = 200, description = "revoked (now or before)", body = StaffTokenDto)))]
pub async fn revoke_staff_token(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(token_id): ApiPath<String>,
) -> Result<Json<StaffTokenDto>, Problem> {
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::TokenNotFound,
            "no staff token has this id",
        )
    };
    if token_id.len() != 16 || !token_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let now = state.engine.clock().now().timestamp();
    let token = state
        .store
        .revoke_operator_token(&token_id.to_ascii_lowercase(), &admin.actor(), now)
        .await?
        .filter(|t| t.role == "staff")
        .ok_or_else(not_found)?;
    Ok(Json(token_dto(&token)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries older than this id (the `next_before_id` of the previous page).
    #[param(minimum = 1)]
    pub before_id: Option<i64>,
    /// Only this actor's entries, e.g. `admin:configured`.
    pub actor: Option<String>,
    /// At most 500; 100 by default.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryDto {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub method: String,
    pub path: String,
    /// The HTTP status the request got.
    pub status: i64,
    /// The request's body as sent (JSON for every admin change).
    pub request: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPageDto {
    /// Newest first.
    pub entries: Vec<AuditEntryDto>,
    /// Pass as `before_id` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before_id: Option<i64>,
}

fn audit_dto(r: AuditRecord) -> AuditEntryDto {
    AuditEntryDto {
        id: r.id,
        at: iran_rfc3339(r.at),
        actor: r.actor,
        method: r.method,
        path: r.path,
        status: r.status,
        request: r.request_json,
    }
}

/// Every change administrators made through the API (and each refused attempt), newest
/// first, a page at a time.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin", security(("admin" = [])),
    params(AuditQuery),
    responses((status = 200, body = AuditPageDto)))]
pub async fn get_audit(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPageDto>, Problem> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=AUDIT_PAGE_MAX).contains(&limit) {
        return Err(invalid(
            "limit",
            ProblemCode::InvalidLimit,
            format!("limit is 1 to {AUDIT_PAGE_MAX}"),
        ));
    }
    if q.before_id.is_some_and(|id| id < 1) {
        return Err(invalid(
            "before_id",
            ProblemCode::InvalidCursor,
            "before_id is an entry's id (1 or more)",
        ));
    }
    let actor = q.actor.as_deref().filter(|a| !a.is_empty());
    if actor.is_some_and(|a| a.chars().count() > 200) {
        return Err(invalid(
            "actor",
            ProblemCode::InvalidName,
            "an actor is at most 200 characters",
        ));
    }
    let rows = state.store.admin_audit(q.before_id, actor, limit).await?;
    let next_before_id = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(AuditPageDto {
        entries: rows.into_iter().map(audit_dto).collect(),
        next_before_id,
    }))
}
