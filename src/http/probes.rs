//! Liveness and readiness probes.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::problem::ErrorChain;
use super::{AppState, Problem};

/// How long readiness waits for the database before saying "not ready".
const READY_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is up and answering.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The process can serve: its database answers.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, Problem> {
    match tokio::time::timeout(READY_PING_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(
            json!({ "status": "ready", "backend": state.store.backend().as_str() }),
        )),
        Ok(Err(e)) => {
            tracing::warn!(error = %ErrorChain(&e), "readiness: database unreachable");
            Err(Problem::unavailable("the database is not reachable"))
        }
        Err(_) => Err(Problem::unavailable("the database did not answer in time")),
    }
}
