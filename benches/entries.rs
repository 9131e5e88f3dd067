//! Ballot entries over HTTP against one-step bookings, in the same run, on SQLite and
//! PostgreSQL (issue 20: entries "in the same class as one-step bookings", ≥ 10,000 entries/s
//! on this machine, SQLite default).
//!
//! Both go through the whole server in process (`tower::ServiceExt::oneshot` on the router: the
//! applicant's token, the JSON body, the handler, the writer; no socket), with `clients()`
//! requests in flight at once, each from a citizen of its own with a paid application (made
//! beforehand, not timed):
//! - `one_step_uncontended` (the baseline): `POST /v1/appointments` naming a slot of its own,
//!   no two clients the same slot (`benches/autopick.rs`'s baseline);
//! - `entries`: `PUT /v1/ballots/{id}/entry` into one open ballot over every office (near a
//!   point within 50 km), each a new entry (201), through the entry writer's group commit;
//! - `entry_edits`: the same citizens change their entries (200), one change each.
//!
//! The ballot withholds two days of seats far ahead (days 100-101); the baseline books the days
//! before. Criterion's samples run each configuration back to back, so interleaved rounds
//! follow (one iteration of each in turn, `BENCH_ENTRIES_ROUNDS`, default 5), and both tables
//! are printed with the ratio of entries/s to one-step bookings/s.
//!
//! Short by default (10 samples of 1 iteration each, 1,000 clients); `BENCH_ENTRIES_CLIENTS`
//! and `BENCH_ENTRIES_SAMPLES` make bigger runs. PostgreSQL runs when `BENCH_DATABASE_URL` or
//! `TEST_DATABASE_URL` is set (a fresh database is created there for the run).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use nobat::app::{App, Dependencies, Settings};
use nobat::domain::time::{Clock, ManualClock};
use nobat::domain::NationalCode;
use nobat::http::AppState;
use nobat::reserve::SeededIds;
use nobat::store::StoreConfig;
use tower::ServiceExt;

#[path = "support/mod.rs"]
mod support;

/// Days of the booking window.
const HORIZON_DAYS: u32 = 120;
/// The ballot's seat days, from today (its close is before them, as the schema asks).
const BALLOT_FROM_DAY: i64 = 100;
/// Sunday 1 Mehr 1403, 09:00 in Tehran (the API tests' clock).
const START: &str = "2024-09-22T05:30:00Z";
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef";

/// Requests in flight at once (`BENCH_ENTRIES_CLIENTS`, default 1,000).
fn clients() -> usize {
    support::env_usize("BENCH_ENTRIES_CLIENTS", 1_000)
}

/// Criterion samples per configuration (`BENCH_ENTRIES_SAMPLES`, default and least 10).
fn samples() -> usize {
    support::env_usize("BENCH_ENTRIES_SAMPLES", 10).max(10)
}

/// Interleaved rounds after the criterion samples (`BENCH_ENTRIES_ROUNDS`, default 5).
fn interleaved_rounds() -> usize {
    support::env_usize("BENCH_ENTRIES_ROUNDS", 5)
}

/// One request: method, path, the applicant's token and the JSON body.
struct Call {
    method: Method,
    path: String,
    token: String,
    body: serde_json::Value,
}

/// What one configuration did over the run.
#[derive(Default)]
struct Tally {
    done: u64,
    elapsed: Duration,
    /// Any answer but the expected one (a 5xx, a 409, …).
    failed: u64,
}

/// A citizen with an entry made, whose entry the edits change.
struct Entrant {
    token: String,
    application_id: String,
    payment_id: String,
}

struct Rig {
    rt: tokio::runtime::Runtime,
    state: AppState,
    router: Router,
    ballot_id: String,
    /// Slots before the ballot's days with a free seat, each given to one client once.
    uncontended: Vec<(String, String)>,
    next_slot: AtomicU64,
    next_citizen: AtomicU64,
    entrants: Mutex<Vec<Entrant>>,
}

impl Rig {
    fn new(store: StoreConfig) -> Rig {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let clock = Arc::new(ManualClock::new(START.parse().unwrap()));
        let state = rt.block_on(async {
            let mut settings = Settings::new("127.0.0.1:0".parse().unwrap(), store);
            settings.sweep_interval = None;
            settings.config_poll_interval = None;
            settings.outbox_interval = None;
            settings.ballot_interval = None;
            settings.admin_token = Some(ADMIN_TOKEN.to_string());
            settings.booking_horizon_days = HORIZON_DAYS;
            let deps = Dependencies {
                clock: clock.clone(),
                ids: Arc::new(SeededIds::new(20)),
                ..Dependencies::default()
            };
            App::build_with(settings, deps)
                .await
                .expect("build app")
                .state()
                .clone()
        });
        let router = nobat::http::router(state.clone(), None);
        let now = state.engine.clock().now().timestamp();
        let ballot_from = now + BALLOT_FROM_DAY * 86_400;
        let day = |d: i64| {
            chrono::DateTime::from_timestamp(now + d * 86_400, 0)
                .unwrap()
                .date_naive()
                .to_string()
        };
        let iran = |t: i64| nobat::http::v1::iran_rfc3339(t);
        let create = serde_json::json!({
            "service": "first_issuance",
            "opens_at": iran(now + 60),
            "closes_at": iran(now + 90 * 86_400),
            "seats": { "from_date": day(BALLOT_FROM_DAY + 1), "to_date": day(BALLOT_FROM_DAY + 2) },
        });
        let (status, body) = rt.block_on(send(
            &router,
            Call {
                method: Method::POST,
                path: "/v1/admin/ballots".into(),
                token: ADMIN_TOKEN.into(),
                body: create,
            },
        ));
        assert_eq!(status, StatusCode::CREATED, "create the ballot: {body}");
        let ballot_id = body["ballot_id"].as_str().unwrap().to_string();
        clock.advance(chrono::Duration::seconds(120));
        rt.block_on(state.engine.ballot_tick("bench"))
            .expect("open the ballot");
        let now = state.engine.clock().now().timestamp();
        let until = now + i64::from(HORIZON_DAYS) * 86_400;
        let mut uncontended: Vec<(i64, i64, String)> = state
            .directory()
            .all()
            .iter()
            .flat_map(|office| {
                let id = office.id.to_string();
                state
                    .engine
                    .availability()
                    .range(&id, now + 1, until, 1_000_000)
                    .into_iter()
                    .filter(|s| s.free() > 0 && s.start_at < ballot_from)
                    .map(|s| (s.start_at, s.id, id.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        uncontended.sort();
        let uncontended = uncontended
            .iter()
            .map(|(at, _, office)| {
                let start = chrono::DateTime::from_timestamp(*at, 0)
                    .unwrap()
                    .to_rfc3339();
                (office.clone(), start)
            })
            .collect::<Vec<_>>();
        eprintln!(
            "entries: ballot {ballot_id} open, {} slots for the baseline",
            uncontended.len()
        );
        Rig {
            rt,
            state,
            router,
            ballot_id,
            uncontended,
            next_slot: AtomicU64::new(0),
            next_citizen: AtomicU64::new(0),
            entrants: Mutex::new(Vec::new()),
        }
    }

    /// `n` new citizens with a paid application each (not timed): token, application, payment.
    fn citizens(&self, n: usize) -> Vec<Entrant> {
        let now = self.state.engine.clock().now().timestamp();
        let mut people = Vec::with_capacity(n);
        while people.len() < n {
            let i = self.next_citizen.fetch_add(1, Ordering::SeqCst);
            let digits = format!("{:09}", 100_000_000 + i);
            let nine: [u8; 9] = std::array::from_fn(|k| digits.as_bytes()[k] - b'0');
            let Some(code) = NationalCode::from_first_nine(nine) else {
                continue;
            };
            let token = self.state.tokens.issue(&code, now + 86_400);
            people.push((code.as_string(), token, i));
        }
        let store = &self.state.store;
        self.rt.block_on(async {
            for chunk in people.chunks(500) {
                let apps: Vec<String> = chunk
                    .iter()
                    .map(|(c, _, i)| format!("('ap_{i}', '{c}', 'first_issuance', '{{}}', TRUE, 0)"))
                    .collect();
                support::exec(store, &format!("INSERT INTO applications (id, national_code, service, form_json, eligible, created_at) VALUES {}", apps.join(","))).await;
                let pays: Vec<String> = chunk
                    .iter()
                    .map(|(_, _, i)| format!("('pp_{i}', 'ap_{i}', 600000, 'paid', 'sandbox', 0)"))
                    .collect();
                support::exec(store, &format!("INSERT INTO payments (id, application_id, amount_rials, status, gateway, created_at) VALUES {}", pays.join(","))).await;
            }
        });
        people
            .into_iter()
            .map(|(_, token, i)| Entrant {
                token,
                application_id: format!("ap_{i}"),
                payment_id: format!("pp_{i}"),
            })
            .collect()
    }

    fn one_step(&self, n: usize) -> Vec<Call> {
        let first = self.next_slot.fetch_add(n as u64, Ordering::SeqCst) as usize;
        let slots = self
            .uncontended
            .get(first..first + n)
            .expect("uncontended slots left: raise HORIZON_DAYS or lower the clients");
        self.citizens(n)
            .into_iter()
            .zip(slots)
            .map(|(p, (office, start))| Call {
                method: Method::POST,
                path: "/v1/appointments".into(),
                token: p.token,
                body: serde_json::json!({ "application_id": p.application_id, "payment_id": p.payment_id, "office_id": office, "start": start }),
            })
            .collect()
    }

    fn entry(&self, p: &Entrant, max_km: f64) -> Call {
        Call {
            method: Method::PUT,
            path: format!("/v1/ballots/{}/entry", self.ballot_id),
            token: p.token.clone(),
            body: serde_json::json!({
                "application_id": p.application_id,
                "payment_id": p.payment_id,
                "preferences": { "near": { "lat": 35.6892, "lon": 51.389 }, "max_km": max_km },
            }),
        }
    }

    /// New entries; the citizens are kept for the edits.
    fn entries(&self, n: usize) -> Vec<Call> {
        let people = self.citizens(n);
        let calls = people.iter().map(|p| self.entry(p, 50.0)).collect();
        self.entrants.lock().unwrap().extend(people);
        calls
    }

    /// One change of each of `n` existing entries (the oldest first, then round again).
    fn edits(&self, n: usize) -> Vec<Call> {
        let mut entrants = self.entrants.lock().unwrap();
        let n = n.min(entrants.len());
        let calls: Vec<Call> = entrants[..n].iter().map(|p| self.entry(p, 40.0)).collect();
        entrants.rotate_left(n);
        calls
    }

    /// Sends every call at once; the time until the last answer and each answer's status.
    fn fire(&self, calls: Vec<Call>) -> (Duration, Vec<StatusCode>) {
        self.rt.block_on(async {
            let started = Instant::now();
            let tasks: Vec<_> = calls
                .into_iter()
                .map(|c| {
                    let router = self.router.clone();
                    tokio::spawn(async move { send(&router, c).await.0 })
                })
                .collect();
            let mut answers = Vec::with_capacity(tasks.len());
            for t in tasks {
                answers.push(t.await.unwrap());
            }
            (started.elapsed(), answers)
        })
    }

    /// One timed iteration of a configuration (0 one-step, 1 entries, 2 edits).
    fn iteration(&self, config: usize, tally: &mut Tally) -> Duration {
        let n = clients();
        let (calls, expected) = match config {
            1 => (self.entries(n), StatusCode::CREATED),
            2 => (self.edits(n), StatusCode::OK),
            _ => (self.one_step(n), StatusCode::CREATED),
        };
        let (elapsed, answers) = self.fire(calls);
        for status in answers {
            if status == expected {
                tally.done += 1;
            } else {
                tally.failed += 1;
            }
        }
        tally.elapsed += elapsed;
        elapsed
    }
}

async fn send(router: &Router, c: Call) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(c.method)
        .uri(c.path)
        .header(header::AUTHORIZATION, format!("Bearer {}", c.token))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(c.body.to_string()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

const CONFIGS: [&str; 3] = ["one_step_uncontended", "entries", "entry_edits"];

fn run(c: &mut Criterion, backend: &str, store: StoreConfig) {
    let rig = Rig::new(store);
    let mut group = c.benchmark_group(format!("entries/{backend}"));
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(samples())
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1));
    let mut tallies = [Tally::default(), Tally::default(), Tally::default()];
    for (k, name) in CONFIGS.into_iter().enumerate() {
        let tally = &mut tallies[k];
        group.throughput(Throughput::Elements(clients() as u64));
        group.bench_function(BenchmarkId::new(name, clients()), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| rig.iteration(k, tally)).sum())
        });
    }
    group.finish();
    let mut interleaved = [Tally::default(), Tally::default(), Tally::default()];
    for _ in 0..interleaved_rounds() {
        for (k, tally) in interleaved.iter_mut().enumerate() {
            rig.iteration(k, tally);
        }
    }
    print_table(backend, "criterion samples", &tallies);
    print_table(backend, "interleaved rounds", &interleaved);
    let stored = rig
        .rt
        .block_on(rig.state.store.ballot_entry_count(&rig.ballot_id))
        .unwrap();
    let made = tallies[1].done + interleaved[1].done;
    eprintln!("entries/{backend}: {made} entries acknowledged (201), {stored} stored\n");
    assert_eq!(stored as u64, made, "every acknowledged entry is stored");
}

fn print_table(backend: &str, how: &str, tallies: &[Tally; 3]) {
    let rate = |t: &Tally| t.done as f64 / t.elapsed.as_secs_f64().max(1e-9);
    let [one, entries, edits] = tallies;
    eprintln!("\n{how}:");
    eprintln!(
        "\n| backend | clients | one-step bookings/s | entries/s (new) | entries/s (edits) | new entries / one-step | edits / one-step | failures |"
    );
    eprintln!("|---|---:|---:|---:|---:|---:|---:|---:|");
    eprintln!(
        "| {backend} | {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {} |\n",
        clients(),
        rate(one),
        rate(entries),
        rate(edits),
        rate(entries) / rate(one),
        rate(edits) / rate(one),
        one.failed + entries.failed + edits.failed,
    );
}

fn sqlite(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    run(
        c,
        "sqlite",
        StoreConfig::sqlite(dir.path().join("entries.db")),
    );
}

fn postgres(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(support::ScratchDatabase::create(
        "entries/postgres",
        "entries",
    )) else {
        return;
    };
    run(
        c,
        "postgres",
        StoreConfig {
            max_connections: 8,
            ..StoreConfig::url(db.url.clone())
        },
    );
    rt.block_on(db.drop_now());
}

criterion_group!(benches, sqlite, postgres);
criterion_main!(benches);
