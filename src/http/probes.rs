//! Liveness and readiness probes.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::ErrorChain;
use super::{AppState, Problem};

/// How long readiness waits for the database before saying "not ready".
const READY_PING_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthDto {
    /// `ok`.
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyDto {
    /// `ready`.
    pub status: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
}

/// The process is up and answering.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = HealthDto)))]
pub async fn healthz() -> Json<HealthDto> {
    Json(HealthDto {
        status: "ok".to_string(),
    })
}

/// The process can serve: its database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, body = ReadyDto)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<ReadyDto>, Problem> {
    match tokio::time::timeout(READY_PING_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(ReadyDto {
            status: "ready".to_string(),
            backend: state.store.backend().as_str().to_string(),
        })),
        Ok(Err(e)) => {
            tracing::warn!(error = %ErrorChain(&e), "readiness: database unreachable");
            Err(Problem::unavailable("the database is not reachable"))
        }
        Err(_) => Err(Problem::unavailable("the database did not answer in time")),
    }
}
