//! `/metrics` in Prometheus text: request counts and latencies per route and status, requests
//! shed with 503 by reason, and the booking engine's batches.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::{AppState, ProblemCode};

/// Histogram buckets in seconds, from 0.5 ms to 10 s.
const LATENCY_BUCKETS_SECS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// A waiting room's waits, from join to admission: a second to four hours.
const ROOM_WAIT_BUCKETS_SECS: [f64; 13] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
];

/// A handle to the process-wide recorder (one per process: tests start many apps in one).
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    pub fn install() -> Metrics {
        static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
        let handle = HANDLE
            .get_or_init(|| {
                let recorder = PrometheusBuilder::new()
                    .set_buckets_for_metric(
                        Matcher::Suffix("_seconds".into()),
                        &LATENCY_BUCKETS_SECS,
                    )
                    .and_then(|b| {
                        b.set_buckets_for_metric(
                            Matcher::Full("nobat_booking_batch_size".into()),
                            &BATCH_BUCKETS,
                        )
                    })
                    .and_then(|b| {
                        b.set_buckets_for_metric(
                            Matcher::Full("nobat_sqlite_writes_per_transaction".into()),
                            &BATCH_BUCKETS,
                        )
                    })
                    // A full name is matched before a suffix.
                    .and_then(|b| {
                        b.set_buckets_for_metric(
                            Matcher::Full("nobat_room_wait_seconds".into()),
                            &ROOM_WAIT_BUCKETS_SECS,
                        )
                    })
                    .expect("bucket lists are non-empty")
                    .build_recorder();
                let handle = recorder.handle();
                // Another recorder may be installed by an embedding program; then ours only
                // renders what it saw, which is still valid output.
                let _ = metrics::set_global_recorder(recorder);
                handle
            })
            .clone();
        Metrics { handle }
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain", body = String, description = "Prometheus text format 0.0.4")))]
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.handle.render(),
    )
}

/// Counts every request by route, method and status, times it, and times the CPU of one in
/// [`CPU_SAMPLE_EVERY`]; 503s are counted as shed ([`shed`]). A service of its own rather than
/// `from_fn`, since every request passes through it: `from_fn` boxes its future and clones the
/// services below it per request. It sits inside the router (after routing), where the
/// request carries its `MatchedPath`.
#[derive(Clone)]
pub struct Track<S> {
    inner: S,
}

impl<S> Track<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S> tower::Service<Request> for Track<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Tracked<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", |p| p.as_str());
        let handles = RouteMetrics::of(route, request.method());
        // One request in `CPU_SAMPLE_EVERY` is timed and counts for that many: the thread's CPU
        // clock is a system call (the vDSO does not serve it), two per poll, which cost 2–4 % of
        // a surge-day server when every request was timed.
        let timed =
            CPU_SAMPLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % CPU_SAMPLE_EVERY == 0;
        Tracked {
            inner: self.inner.call(request),
            handles,
            started,
            cpu_spent: timed.then_some(Duration::ZERO),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's answer on its way through [`Track`]: with the CPU its polls took, on
    /// whichever worker thread each ran, when it is one of the timed requests.
    /// `nobat_http_cpu_microseconds_total{route}` (sampled) is what each kind of request costs
    /// the server in its own task (the handler and the middleware inside the router), so that
    /// the load test can say where the server's CPU went. Work done for it elsewhere (the
    /// booking writer, HTTP parsing) is not in it.
    pub struct Tracked<F> {
        #[pin]
        inner: F,
        handles: Arc<RouteMetrics>,
        started: Instant,
        cpu_spent: Option<Duration>,
    }
}

impl<F> std::future::Future for Tracked<F>
where
    F: std::future::Future<Output = Result<Response, std::convert::Infallible>>,
{
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let polled = match this.cpu_spent {
            Some(spent) => {
                let before = thread_cpu();
                let polled = this.inner.poll(cx);
                *spent += thread_cpu().saturating_sub(before);
                polled
            }
            None => this.inner.poll(cx),
        };
        let std::task::Poll::Ready(Ok(response)) = polled else {
            return polled;
        };
        if let Some(spent) = this.cpu_spent {
            this.handles
                .cpu
                .increment(spent.as_micros() as u64 * CPU_SAMPLE_EVERY);
        }
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            shed(response.extensions().get::<ProblemCode>().copied());
        }
        this.handles.requests(response.status()).increment(1);
        this.handles
            .duration
            .record(this.started.elapsed().as_secs_f64());
        std::task::Poll::Ready(Ok(response))
    }
}

/// Requests between two whose CPU is timed (`nobat_http_cpu_microseconds_total` is an
/// estimate from every `CPU_SAMPLE_EVERY`-th request, scaled up).
const CPU_SAMPLE_EVERY: u64 = 8;

/// Requests seen by [`Track`], for picking the timed ones.
static CPU_SAMPLED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The metric handles of one route and method, looked up once per process: building a metric's
/// key from its labels on every request (allocations and a hash per metric) cost about as
/// much as answering a kept listing.
struct RouteMetrics {
    route: String,
    method: String,
    cpu: metrics::Counter,
    duration: metrics::Histogram,
    /// `nobat_http_requests_total` by status code, as they occur.
    requests: Mutex<Vec<(u16, metrics::Counter)>>,
}

impl RouteMetrics {
    /// The handles of `route` (a route template, so few) and `method`; methods beyond the
    /// standard ones (a client may send any token) are not kept.
    fn of(route: &str, method: &Method) -> Arc<RouteMetrics> {
        type Kept = RwLock<HashMap<Method, HashMap<String, Arc<RouteMetrics>>>>;
        static KEPT: OnceLock<Kept> = OnceLock::new();
        let new = || {
            let (route, method) = (route.to_string(), method.to_string());
            Arc::new(RouteMetrics {
                cpu: metrics::counter!("nobat_http_cpu_microseconds_total", "route" => route.clone(), "method" => method.clone()),
                duration: metrics::histogram!("nobat_http_request_duration_seconds", "route" => route.clone(), "method" => method.clone()),
                requests: Mutex::default(),
                route,
                method,
            })
        };
        let standard = [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::HEAD,
            Method::OPTIONS,
        ]
        .contains(method);
        if !standard {
            return new();
        }
        let kept = KEPT.get_or_init(Kept::default);
        let found = kept
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(method)
            .and_then(|routes| routes.get(route).cloned());
        if let Some(h) = found {
            return h;
        }
        kept.write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(method.clone())
            .or_default()
            .entry(route.to_string())
            .or_insert_with(new)
            .clone()
    }

    fn requests(&self, status: StatusCode) -> metrics::Counter {
        let code = status.as_u16();
        let mut by_status = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, c)) = by_status.iter().find(|(s, _)| *s == code) {
            return c.clone();
        }
        let c = metrics::counter!("nobat_http_requests_total", "route" => self.route.clone(), "method" => self.method.clone(), "status" => code.to_string());
        by_status.push((code, c.clone()));
        c
    }
}

/// CPU time of the calling thread (zero where the clock is missing).
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to a local.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// A request turned away with 503 (`overloaded`: the in-flight limit or the booking queue;
/// `timeout`; `unavailable`: storage): counted in `nobat_http_shed_total{reason}` and
/// summarised in the log at most once a second ([`ShedLog`]), not one line each: in a surge
/// the log would otherwise carry thousands of lines a second.
pub fn shed(code: Option<ProblemCode>) {
    SHED_TOTAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let reason = code.map_or("other", ProblemCode::as_str);
    metrics::counter!("nobat_http_shed_total", "reason" => reason).increment(1);
    ShedLog::global().note(reason, Instant::now());
}

/// Requests shed by this process since it started: the waiting rooms' controller reads it at
/// each tick (`http::room`), without going through the metrics recorder.
static SHED_TOTAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Requests shed by this process so far ([`shed`]).
pub fn shed_total() -> u64 {
    SHED_TOTAL.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts shed requests between log lines; one line a second at most, with the counts.
#[derive(Debug, Default)]
pub struct ShedLog {
    inner: Mutex<ShedCounts>,
}

#[derive(Debug, Default)]
struct ShedCounts {
    since: Option<Instant>,
    by_reason: BTreeMap<&'static str, u64>,
}

/// The shortest time between two shed log lines.
pub const SHED_LOG_EVERY: Duration = Duration::from_secs(1);

impl ShedLog {
    fn global() -> &'static ShedLog {
        static LOG: OnceLock<ShedLog> = OnceLock::new();
        LOG.get_or_init(ShedLog::default)
    }

    /// Counts one shed request; returns the counts logged now, if a line was due (the
    /// first request after a quiet second, then at most one line a second).
    pub fn note(&self, reason: &'static str, now: Instant) -> Option<BTreeMap<&'static str, u64>> {
        let mut counts = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *counts.by_reason.entry(reason).or_insert(0) += 1;
        let due = counts
            .since
            .is_none_or(|since| now.duration_since(since) >= SHED_LOG_EVERY);
        if !due {
            return None;
        }
        let logged = std::mem::take(&mut counts.by_reason);
        let window_ms = counts
            .since
            .map_or(0, |since| now.duration_since(since).as_millis());
        counts.since = Some(now);
        drop(counts);
        let total: u64 = logged.values().sum();
        tracing::warn!(
            shed = total,
            reasons = ?logged,
            since_ms = window_ms,
            "requests turned away with 503 (see nobat_http_shed_total)"
        );
        Some(logged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flood of shed requests makes one log line a second, and the line counts them all.
    #[test]
    fn shed_requests_are_logged_at_most_once_a_second_with_their_count() {
        let log = ShedLog::default();
        let start = Instant::now();
        let mut lines = Vec::new();
        // 10,000 shed requests over 3.5 s, evenly.
        for i in 0..10_000u64 {
            let at = start + Duration::from_micros(i * 350);
            let reason = if i % 10 == 0 {
                "unavailable"
            } else {
                "overloaded"
            };
            if let Some(counts) = log.note(reason, at) {
                lines.push((at, counts));
            }
        }
        assert_eq!(lines.len(), 4, "{lines:?}");
        for pair in lines.windows(2) {
            assert!(pair[1].0.duration_since(pair[0].0) >= SHED_LOG_EVERY);
        }
        let logged: u64 = lines.iter().flat_map(|(_, c)| c.values()).sum();
        let pending: u64 = log.inner.lock().unwrap().by_reason.values().sum();
        assert_eq!(logged + pending, 10_000, "every request counted once");
        assert_eq!(lines[1].1["unavailable"] + lines[1].1["overloaded"], 2858);
    }
}
