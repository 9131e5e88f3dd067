//! The axum HTTP server: routes, middleware, and the mapping of errors to problem+json.

// `Problem` is a whole response body (about 180 bytes) and travels only on the error path, at
// most once per request; boxing it everywhere would cost more clarity than the copies cost time.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod auth;
pub mod extract;
pub mod idempotency;
pub mod live;
pub mod login_limit;
pub mod metrics;
pub mod openapi;
pub mod operators;
pub mod planner;
pub mod probes;
pub mod problem;
pub mod room;
pub mod staff;
pub mod ussd;
pub mod v1;
pub mod web;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use problem::{Problem, ProblemCode};

use crate::domain::registry::CivilRegistry;
use crate::ports::payments::PaymentGateway;
use crate::reserve::directory::Directory;
use crate::reserve::Reservations;
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
    /// API requests served at once; more are refused at once with 503 `overloaded` and
    /// `Retry-After` (an honest "come back in a moment" instead of a queue that times out).
    pub max_in_flight: usize,
    /// Failed logins allowed per national code and per client address in a window.
    pub login_limits: login_limit::LoginLimits,
    /// The header that carries the client's address when a proxy is in front (its last
    /// entry); `None`: the connection's peer address.
    pub client_ip_header: Option<String>,
}

/// What every handler can reach: one allocation shared by every request (each layer with
/// state and each handler takes a clone; a clone of the parts was about thirty reference
/// counts, the largest cost of a kept listing).
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> AppState {
        AppState(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct AppParts {
    pub store: Store,
    pub engine: Reservations,
    pub directory: Arc<RwLock<Arc<Directory>>>,
    /// The holiday calendar in force (the national table and announced days).
    pub holidays: Arc<live::LiveHolidays>,
    pub registry: Arc<dyn CivilRegistry>,
    pub tokens: Arc<auth::TokenKeys>,
    pub payments: Arc<dyn PaymentGateway>,
    /// The fee schedule in force.
    pub fees: Arc<live::LiveFees>,
    pub config: ApiConfig,
    pub metrics: metrics::Metrics,
    /// Per-applicant request limit (keyed by national code).
    pub limiter: Arc<auth::ApplicantLimiter>,
    /// The configured admin token's hash.
    pub operators: Arc<operators::OperatorKeys>,
    /// Where outbox notices go.
    pub notifier: Arc<dyn crate::ports::notify::Notifier>,
    /// This process's logins in flight (the failure counts are in the database).
    pub login_throttle: Arc<login_limit::LoginThrottle>,
    /// The configuration version this process has loaded (admin changes).
    pub config_watch: Arc<live::ConfigWatch>,
    /// The waiting rooms (cached), their pass key, join limit and controller's measures.
    pub rooms: Arc<room::Rooms>,
    /// Listing answers kept until the seats they show change.
    pub answers: Arc<v1::answers::Answers>,
    /// Who owns each application this process has written or read (applications never change).
    pub owners: Arc<v1::owners::Owners>,
}

impl AppParts {
    /// The current office directory (replaced whole when offices change).
    pub fn directory(&self) -> Arc<Directory> {
        self.directory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Answers 503 problem+json with `Retry-After` when a request runs past [`REQUEST_TIMEOUT`]
/// (its work is dropped: nothing is acknowledged that did not commit). Every request passes
/// through it, so it is a service of its own: `from_fn` would box its future and clone the
/// services below it for each request.
#[derive(Clone)]
struct TimeLimit<S> {
    inner: S,
    limit: Duration,
}

type Answered = Result<axum::response::Response, std::convert::Infallible>;

impl<S> tower::Service<axum::extract::Request> for TimeLimit<S>
where
    S: tower::Service<
        axum::extract::Request,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
    >,
{
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::Map<
        tokio::time::Timeout<S::Future>,
        fn(Result<Answered, tokio::time::error::Elapsed>) -> Answered,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::extract::Request) -> Self::Future {
        use futures_util::FutureExt;
        let answer: fn(_) -> _ = |ran: Result<Answered, _>| ran.unwrap_or_else(|_| Ok(timed_out()));
        tokio::time::timeout(self.limit, self.inner.call(request)).map(answer)
    }
}

fn timed_out() -> axum::response::Response {
    // Outside the metrics middleware: counted here.
    metrics::shed(Some(ProblemCode::Timeout));
    let mut p = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ProblemCode::Timeout,
        "the request took too long; retry shortly",
    );
    p.retry_after_secs = Some(problem::RETRY_AFTER_SECS);
    axum::response::IntoResponse::into_response(p)
}

/// The applicant API (`v1`) behind the waiting rooms' pass check ([`room::require_pass`]):
/// the one way to mount it, for the server and for the pages' in-process client alike.
pub fn applicant_routes(state: &AppState) -> Router<AppState> {
    v1::routes().route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        room::require_pass,
    ))
}

/// The API routes behind the in-flight limit; probes and metrics stay outside it so that an
/// overloaded server still reports on itself. Admin requests go through the audit log
/// ([`live::audit`]).
fn api_routes(state: &AppState) -> Router<AppState> {
    let max_in_flight = state.config.max_in_flight;
    let shed = tower::ServiceBuilder::new()
        .layer(axum::error_handling::HandleErrorLayer::new(
            |_: tower::BoxError| async {
                // Counted and logged (once a second) by `metrics::Track`, like every 503.
                let mut p = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ProblemCode::Overloaded,
                    "the server is at capacity; come back in a few seconds",
                );
                p.retry_after_secs = Some(problem::RETRY_AFTER_SECS);
                p
            },
        ))
        .layer(tower::load_shed::LoadShedLayer::new())
        .layer(tower::limit::ConcurrencyLimitLayer::new(
            max_in_flight.max(1),
        ));
    Router::new()
        .merge(
            v1::routes().route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                room::require_pass,
            )),
        )
        .merge(staff::routes())
        .merge(web::routes(state))
        .merge(ussd::routes(state))
        .merge(
            admin::routes().route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                live::audit,
            )),
        )
        .layer(shed)
}

/// The whole server: probes, metrics, the document, the API and (when a planner token is
/// configured) the planner's routes, behind the body limit, panic catcher, time limit and trace.
pub fn router(state: AppState, planner: Option<planner::PlannerState>) -> Router {
    Router::new()
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(metrics::render))
        .route("/openapi.json", get(openapi::serve))
        .merge(api_routes(&state))
        // The planner's console calls the planner's API, which has its own state.
        .merge(web::console::routes(planner.clone()))
        .fallback(|| async {
            Problem::new(
                StatusCode::NOT_FOUND,
                ProblemCode::NotFound,
                "no such endpoint",
            )
        })
        // After every route: it applies to the routes registered so far. axum adds `Allow`.
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ProblemCode::MethodNotAllowed,
                "this endpoint does not take this method; `Allow` lists those it takes",
            )
        })
        .with_state(state)
        // The planner's routes set their own, larger body limit (a scenario file), innermost.
        .merge(planner.map(planner::router).unwrap_or_default())
        // One `layer` call for the five: each call wraps every route in a boxed `Route` of its
        // own, and a request clones the boxes of every level below the one it enters, level by
        // level. Outermost first.
        .layer(
            tower::ServiceBuilder::new()
                .layer(TraceLayer::new_for_http().on_failure(log_failure))
                .layer(CatchPanicLayer::custom(|_| {
                    axum::response::IntoResponse::into_response(Problem::internal())
                }))
                .layer(tower::layer::layer_fn(|inner| TimeLimit {
                    inner,
                    limit: REQUEST_TIMEOUT,
                }))
                .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
                .layer(tower::layer::layer_fn(metrics::Track::new)),
        )
}

/// tower-http's default logs every 5xx at ERROR. A 503 is load shed on purpose and is
/// summarised once a second (`metrics::shed`); a surge must not write one line per refusal.
fn log_failure(
    class: tower_http::classify::ServerErrorsFailureClass,
    latency: Duration,
    _span: &tracing::Span,
) {
    use tower_http::classify::ServerErrorsFailureClass;
    match class {
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {}
        other => tracing::error!(
            classification = %other,
            latency_ms = latency.as_millis() as u64,
            "response failed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::{Service, ServiceExt};

    use super::*;

    /// Asks a [`TimeLimit`] of 20 ms over a service that answers 200 after `after`.
    async fn limited(after: Duration) -> axum::response::Response {
        let inner = tower::service_fn(move |_: axum::extract::Request| async move {
            tokio::time::sleep(after).await;
            Ok(axum::response::IntoResponse::into_response(StatusCode::OK))
        });
        let mut limited = TimeLimit {
            inner,
            limit: Duration::from_millis(20),
        };
        let request = axum::extract::Request::new(Body::empty());
        limited.ready().await.unwrap().call(request).await.unwrap()
    }

    #[tokio::test]
    async fn a_request_past_the_time_limit_is_answered_503_timeout() {
        let started = std::time::Instant::now();
        let answer = limited(Duration::from_secs(5)).await;
        assert!(started.elapsed() < Duration::from_secs(5), "cut short");
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(answer.headers().contains_key("retry-after"));
        let body = axum::body::to_bytes(answer.into_body(), 4096)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "timeout");

        let answer = limited(Duration::ZERO).await;
        assert_eq!(answer.status(), StatusCode::OK, "in time: the inner answer");
    }
}
