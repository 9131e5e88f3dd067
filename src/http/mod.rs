//! The axum HTTP server: routes, middleware and the mapping of errors to problem+json.

pub mod problem;
mod probes;

use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use problem::Problem;

use crate::store::Store;

/// Largest request body accepted; a registration form is a few kilobytes.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// A request that takes longer than this is answered 503 rather than left hanging.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .with_state(state)
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(Problem::internal())
        }))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, REQUEST_TIMEOUT))
        .layer(RequestBodyLimitLayer::new(BODY_BYTES_MAX))
        .layer(TraceLayer::new_for_http())
}
