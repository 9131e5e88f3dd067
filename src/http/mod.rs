//! The axum HTTP server: routes, middleware, and the mapping of errors to problem+json.

pub mod auth;
pub mod idempotency;
pub mod json;
pub mod metrics;
pub mod openapi;
pub mod planner;
mod probes;
pub mod problem;
pub mod v1;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use problem::Problem;

use crate::directory::Directory;
use crate::domain::calendar::HolidayCalendar;
use crate::domain::FeeSchedule;
use crate::payments::PaymentGateway;
use crate::reserve::Reservations;
use crate::scenario::CivilRegistry;
use crate::store::Store;

/// Largest request body accepted; a registration form is a few kilobytes.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// A request that takes longer than this is answered 503 rather than left hanging.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the applicant API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub session_ttl_secs: i64,
    /// Days ahead that slots are open for booking.
    pub booking_horizon_days: u32,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub engine: Reservations,
    pub directory: Arc<RwLock<Arc<Directory>>>,
    pub holidays: Arc<HolidayCalendar>,
    pub registry: Arc<dyn CivilRegistry>,
    pub tokens: Arc<auth::TokenKeys>,
    pub payments: Arc<dyn PaymentGateway>,
    pub fees: Arc<FeeSchedule>,
    pub config: ApiConfig,
    pub metrics: metrics::Metrics,
}

impl AppState {
    /// The current office directory (replaced whole when offices change).
    pub fn directory(&self) -> Arc<Directory> {
        self.directory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(metrics::render))
        .route("/openapi.json", get(openapi::serve))
        .merge(v1::routes())
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(Problem::internal())
        }))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(TraceLayer::new_for_http())
}
