//! `POST /v1/sessions`: log in with national code and birth-certificate serial.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;

use super::dto::{SessionRequest, SessionResponse};
use super::iran_rfc3339;
use crate::domain::{BirthCertificateSerial, NationalCode};
use crate::http::extract::ApiJson;
use crate::http::live::ClientAddress;
use crate::http::login_limit::LoginKeys;
use crate::http::problem::ProblemCode;
use crate::http::{AppState, Problem};

/// Log in. Unknown citizens and wrong serials get the same answer, so the endpoint does not
/// tell which national codes exist. Failed logins are limited per national code and per client
/// address (`http::login_limit`): past the limit, 429 `login_locked` until the window ends.
#[utoipa::path(post, path = "/v1/sessions", tag = "applicant",
    request_body = SessionRequest,
    responses(
        (status = 201, body = SessionResponse),
        (status = 401, description = "unknown national code or wrong serial", body = Problem),
        (status = 422, description = "malformed national code or serial", body = Problem),
        (status = 429, description = "too many failed logins for this national code or address", body = Problem)))]
pub async fn create_session(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    ApiJson(req): ApiJson<SessionRequest>,
) -> Result<impl IntoResponse, Problem> {
    let code = NationalCode::parse(&req.national_code)?;
    let serial = BirthCertificateSerial::parse(&req.birth_certificate_serial)?;
    let now = state.engine.clock().now().timestamp();
    let keys = LoginKeys::new(&code, address);
    let limits = &state.config.login_limits;
    let admitted = state
        .login_throttle
        .admit(&state.store, limits, &keys, now)
        .await?;
    if !state.registry.verify(&code, &serial) {
        state
            .login_throttle
            .failed(&state.store, limits, &keys, now, admitted)
            .await?;
        tracing::info!(national_code = %code.masked(), "login refused");
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            ProblemCode::InvalidCredentials,
            "the national code and birth-certificate serial do not match the civil registry",
        ));
    }
    state
        .login_throttle
        .succeeded(&state.store, &keys, admitted)
        .await?;
    // No write here unless this citizen failed before: logins are the most frequent request
    // on a surge day and the token is stateless; the citizen is recorded with their first
    // application.
    let expires_at = now + state.config.session_ttl_secs;
    let token = state.tokens.issue(&code, expires_at);
    Ok((
        StatusCode::CREATED,
        Json(SessionResponse {
            token,
            expires_at: iran_rfc3339(expires_at),
        }),
    ))
}
