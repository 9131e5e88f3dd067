//! Planner endpoints: run a simulation or a capacity plan from a posted scenario, poll for the
//! result, fetch the HTML report. Guarded by the planner token (only its SHA-256 is held,
//! compared in constant time). Jobs run on the blocking pool; the job table is bounded.
//!
//! - `POST /v1/planner/simulations` (TOML body, ≤ 1 MiB) → 202 `{job_id, status_url}`
//! - `POST /v1/planner/plans` (TOML body with a `[plan]` section) → 202 `{job_id, status_url}`
//! - `GET /v1/planner/jobs/{id}` → `{job_id, kind, status, result?, error?}`
//! - `GET /v1/planner/jobs/{id}/report` → the HTML report (409 while running)

// Handlers return `Problem` by value like every other handler of the API.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::operators::{hashes_equal, token_hash};
use super::problem::ProblemCode;
use super::problem::{ErrorChain, FieldError};
use super::Problem;
use crate::http::extract::ApiPath;
use crate::planning::scenario::Scenario;
use crate::planning::sim::{self, SimOptions, World};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

/// Largest scenario accepted, in bytes.
pub const SCENARIO_BYTES_MAX: usize = 1 << 20;
/// Jobs kept at once; when full, the oldest finished job is evicted, and with none finished
/// a new job is refused (503).
pub const JOBS_MAX: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobKind {
    Simulation,
    Plan,
}

impl JobKind {
    fn as_str(self) -> &'static str {
        match self {
            JobKind::Simulation => "simulation",
            JobKind::Plan => "plan",
        }
    }
}

#[derive(Debug, Clone)]
enum JobStatus {
    /// A simulation reports the days it has simulated (`None` until the first, and for plans).
    Running {
        progress: Option<(u32, u32)>,
    },
    Done {
        result: Value,
        report_html: String,
    },
    Failed {
        error: String,
    },
}

#[derive(Debug)]
struct Job {
    kind: JobKind,
    status: JobStatus,
}

#[derive(Debug, Default)]
struct JobTable {
    next_id: u64,
    jobs: BTreeMap<u64, Job>,
}

/// What the planner endpoints hold: the token's hash and the job table.
#[derive(Clone)]
pub struct PlannerState {
    token_sha256: [u8; 32],
    jobs: Arc<Mutex<JobTable>>,
}

impl PlannerState {
    /// From the SHA-256 of the planner token (what configuration stores).
    pub fn new(token_sha256: [u8; 32]) -> Self {
        Self {
            token_sha256,
            jobs: Arc::new(Mutex::new(JobTable::default())),
        }
    }

    /// From the token itself (hashed at once; the token is not kept).
    pub fn from_token(token: &str) -> Self {
        Self::new(token_hash(token))
    }

    fn authorise(&self, headers: &HeaderMap) -> Result<(), Problem> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| token_hash(t.trim()));
        if presented.is_some_and(|hash| hashes_equal(&hash, &self.token_sha256)) {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                ProblemCode::Unauthorized,
                "a valid planner token is needed: Authorization: Bearer <token>",
            ))
        }
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, JobTable> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a running job, evicting the oldest finished one when the table is full.
    fn insert(&self, kind: JobKind) -> Result<u64, Problem> {
        let mut table = self.jobs();
        if table.jobs.len() >= JOBS_MAX {
            let finished = table
                .jobs
                .iter()
                .find(|(_, j)| !matches!(j.status, JobStatus::Running { .. }))
                .map(|(&id, _)| id);
            match finished {
                Some(id) => {
                    table.jobs.remove(&id);
                }
                None => {
                    return Err(Problem::unavailable(format!(
                        "{JOBS_MAX} planner jobs are running; retry when one finishes"
                    )))
                }
            }
        }
        table.next_id += 1;
        let id = table.next_id;
        table.jobs.insert(
            id,
            Job {
                kind,
                status: JobStatus::Running { progress: None },
            },
        );
        Ok(id)
    }

    /// Records a running job's progress: `done` of `total` days (a simulation) or areas (a
    /// plan).
    fn progress(&self, id: u64, done: u32, total: u32) {
        if let Some(job) = self.jobs().jobs.get_mut(&id) {
            if let JobStatus::Running { progress } = &mut job.status {
                *progress = Some((done, total));
            }
        }
    }

    fn finish(&self, id: u64, status: JobStatus) {
        if let Some(job) = self.jobs().jobs.get_mut(&id) {
            job.status = status;
        }
    }
}

pub fn router(state: PlannerState) -> Router {
    Router::new()
        .route("/v1/planner/simulations", post(post_simulation))
        .route("/v1/planner/plans", post(post_plan))
        .route("/v1/planner/jobs/{id}", get(get_job))
        .route("/v1/planner/jobs/{id}/report", get(get_report))
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ProblemCode::MethodNotAllowed,
                "this endpoint does not take this method; `Allow` lists those it takes",
            )
        })
        .layer(DefaultBodyLimit::max(SCENARIO_BYTES_MAX))
        .with_state(state)
}

fn parse_scenario(body: &Bytes) -> Result<Scenario, Problem> {
    let text = std::str::from_utf8(body).map_err(|_| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::InvalidScenario,
            "the scenario must be UTF-8 TOML",
        )
    })?;
    Scenario::from_toml_str(text, "request body").map_err(|e| {
        let mut problem = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::InvalidScenario,
            "the scenario breaks these rules",
        );
        problem.errors = e
            .field_errors()
            .into_iter()
            .map(|f| FieldError {
                field: f.path,
                code: "invalid".into(),
                detail: f.message,
            })
            .collect();
        problem
    })
}

/// A job started.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobAcceptedDto {
    pub job_id: String,
    /// Where to poll for the result.
    pub status_url: String,
}

/// A job's state and, once done, its result.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobDto {
    pub job_id: String,
    /// `simulation` or `plan`.
    pub kind: String,
    /// `running`, `done` or `failed`.
    pub status: String,
    /// The summary (a simulation) or the plan, once done.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// The HTML report, once done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_url: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A running job's progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<JobProgressDto>,
}

/// How far a running job has got: days simulated, or areas planned.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobProgressDto {
    pub done: u32,
    pub total: u32,
    /// `days` (a simulation) or `areas` (a plan: provinces, or towns of one).
    pub unit: String,
}

fn accepted(id: u64) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(JobAcceptedDto {
            job_id: id.to_string(),
            status_url: format!("/v1/planner/jobs/{id}"),
        }),
    )
        .into_response()
}

/// The posted scenario's bytes; a body over [`SCENARIO_BYTES_MAX`] is a problem like every
/// other refusal, not axum's plain-text one.
fn scenario_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Problem> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ProblemCode::BodyTooLarge,
                format!("a scenario is at most {SCENARIO_BYTES_MAX} bytes"),
            )
        } else {
            Problem::new(e.status(), ProblemCode::InvalidBody, e.body_text())
        }
    })
}

/// Why a job failed: the planner is shown its message, the log gets its chain.
type JobError = Box<dyn std::error::Error + Send + Sync>;

fn run_simulation(
    scenario: &Scenario,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<(Value, String), JobError> {
    let offices = scenario.generate_network();
    let (world, out) = sim::simulate(scenario, &offices, SimOptions::default(), progress)?;
    Ok((
        crate::planning::report::simulation_summary(scenario, &world, &out),
        crate::planning::report::simulation_html(scenario, &world, &out),
    ))
}

fn run_plan(
    scenario: &Scenario,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<(Value, String), JobError> {
    let offices = scenario.generate_network();
    let holidays = sim::holidays_for(scenario);
    let world = World::build(scenario, &offices, &holidays)?;
    let plan = crate::planning::plan::plan_observed(scenario, &world, progress)?;
    let mut result = crate::planning::report::plan_json(&plan);
    result["overlay_toml"] = json!(crate::planning::plan::overlay_toml(&plan, &scenario.name));
    result["text"] = json!(crate::planning::report::plan_text(&plan, &world));
    Ok((
        result,
        crate::planning::report::plan_html(&plan, &world, scenario),
    ))
}

fn start(state: PlannerState, kind: JobKind, scenario: Scenario) -> Result<Response, Problem> {
    if kind == JobKind::Plan && scenario.plan.is_none() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::InvalidScenario,
            "a plan needs a [plan] section with the target and the costs",
        ));
    }
    let id = state.insert(kind)?;
    let worker = state.clone();
    tokio::task::spawn_blocking(move || {
        let outcome = match kind {
            JobKind::Simulation => run_simulation(&scenario, &mut |done, total| {
                worker.progress(id, done, total)
            }),
            JobKind::Plan => run_plan(&scenario, &mut |done, total| {
                worker.progress(id, done, total)
            }),
        };
        worker.finish(
            id,
            match outcome {
                Ok((result, report_html)) => JobStatus::Done {
                    result,
                    report_html,
                },
                Err(error) => {
                    tracing::warn!(job = id, error = %ErrorChain(&*error), "planner job failed");
                    JobStatus::Failed {
                        error: error.to_string(),
                    }
                }
            },
        );
    });
    Ok(accepted(id))
}

/// Runs a simulation of the posted scenario (TOML, at most 1 MiB) as a job.
#[utoipa::path(post, path = "/v1/planner/simulations", tag = "planner", security(("planner" = [])),
    request_body(content = String, content_type = "text/plain", description = "a scenario file (TOML)"),
    responses((status = 202, body = JobAcceptedDto)))]
pub async fn post_simulation(
    State(state): State<PlannerState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    state.authorise(&headers)?;
    let scenario = parse_scenario(&scenario_bytes(body)?)?;
    start(state, JobKind::Simulation, scenario)
}

/// Finds the cheapest capacity for the posted scenario's `[plan]` target, as a job.
#[utoipa::path(post, path = "/v1/planner/plans", tag = "planner", security(("planner" = [])),
    request_body(content = String, content_type = "text/plain", description = "a scenario file (TOML) with a `[plan]` section"),
    responses((status = 202, body = JobAcceptedDto)))]
pub async fn post_plan(
    State(state): State<PlannerState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    state.authorise(&headers)?;
    let scenario = parse_scenario(&scenario_bytes(body)?)?;
    start(state, JobKind::Plan, scenario)
}

fn not_found(id: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        ProblemCode::JobNotFound,
        format!("no planner job {id:?} (finished jobs are evicted when {JOBS_MAX} are held)"),
    )
}

/// A planner job: running, done (with its result) or failed (with why).
#[utoipa::path(get, path = "/v1/planner/jobs/{id}", tag = "planner", security(("planner" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = JobDto)))]
pub async fn get_job(
    State(state): State<PlannerState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    state.authorise(&headers)?;
    let key: u64 = id.parse().map_err(|_| not_found(&id))?;
    let table = state.jobs();
    let job = table.jobs.get(&key).ok_or_else(|| not_found(&id))?;
    let mut body = JobDto {
        job_id: id.clone(),
        kind: job.kind.as_str().to_string(),
        status: "running".to_string(),
        result: None,
        report_url: None,
        error: None,
        progress: None,
    };
    match &job.status {
        JobStatus::Running { progress } => {
            body.progress = progress.map(|(done, total)| JobProgressDto {
                done,
                total,
                unit: match job.kind {
                    JobKind::Simulation => "days",
                    JobKind::Plan => "areas",
                }
                .to_string(),
            });
        }
        JobStatus::Done { result, .. } => {
            body.status = "done".to_string();
            body.result = Some(result.clone());
            body.report_url = Some(format!("/v1/planner/jobs/{id}/report"));
        }
        JobStatus::Failed { error } => {
            body.status = "failed".to_string();
            body.error = Some(error.clone());
        }
    }
    Ok(Json(body).into_response())
}

/// The job's HTML report (self-contained, for a browser).
#[utoipa::path(get, path = "/v1/planner/jobs/{id}/report", tag = "planner", security(("planner" = [])),
    params(("id" = String, Path)),
    responses((status = 200, content_type = "text/html", body = String)))]
pub async fn get_report(
    State(state): State<PlannerState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    state.authorise(&headers)?;
    let key: u64 = id.parse().map_err(|_| not_found(&id))?;
    let table = state.jobs();
    let job = table.jobs.get(&key).ok_or_else(|| not_found(&id))?;
    match &job.status {
        JobStatus::Done { report_html, .. } => Ok(Html(report_html.clone()).into_response()),
        JobStatus::Running { .. } => Err(Problem::new(
            StatusCode::CONFLICT,
            ProblemCode::JobRunning,
            "the job is still running; poll its status",
        )),
        JobStatus::Failed { error } => Err(Problem::new(
            StatusCode::CONFLICT,
            ProblemCode::JobFailed,
            format!("the job failed: {error}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_evicts_the_oldest_finished_job_or_refuses() {
        let state = PlannerState::from_token("t");
        let ids: Vec<u64> = (0..JOBS_MAX)
            .map(|_| state.insert(JobKind::Simulation).unwrap())
            .collect();
        let refused = state.insert(JobKind::Plan).unwrap_err();
        assert_eq!(refused.status, 503);
        state.finish(ids[3], JobStatus::Failed { error: "x".into() });
        state.finish(ids[7], JobStatus::Failed { error: "x".into() });
        let id = state.insert(JobKind::Plan).unwrap();
        let table = state.jobs();
        assert!(
            !table.jobs.contains_key(&ids[3]),
            "the oldest finished job goes"
        );
        assert!(table.jobs.contains_key(&ids[7]));
        assert!(table.jobs.contains_key(&id));
        assert_eq!(table.jobs.len(), JOBS_MAX);
    }
}
