//! Auto-pick against one-step booking, in the same run, on SQLite and PostgreSQL (issue 21).
//!
//! Both go through the whole server in process (`tower::ServiceExt::oneshot` on the router: the
//! applicant's token, the JSON body, the handler, the writer, the rendering; no socket), with
//! `clients()` requests in flight at once, one booking each (`POST /v1/appointments`, paid
//! applications made beforehand, not timed):
//! - `one_step_uncontended`: each client names a slot of its own (`office_id` + `start`), no
//!   two clients the same slot, at offices away from the hot group: the baseline;
//! - `autopick_hot`: every client sends the same `pick` (`near` one point, `max_km`
//!   `HOT_KM`): a hot office group where all of them want the same least-cost seats, which
//!   the engine hands out one each, in arrival order, inside the writer's batch;
//! - `one_step_one_writer`: as the baseline, but every slot is one the same writer takes
//!   (`reserve::queue_index` routes a seat by its slot id, so the slots are those of one
//!   residue). A hot group's picks all name the same least-cost slot first, so they all go to
//!   one writer, which decides them in arrival order (the contract: each gets the least-cost
//!   seat left when its turn comes); this is the rate one writer books at, the hot group's
//!   ceiling. On SQLite the writers share one connection and it equals the baseline; on
//!   PostgreSQL (two writers whose transactions overlap) it is the floor the ratio should be
//!   read against.
//!
//! The network is the bundled small scenario with a 60-day booking window (enough seats near
//! the point for every iteration). After each auto-pick iteration, a pick refused with
//! `no_seat_within_limits` while the view still has a free seat within its limits counts as
//! refused while seats remained (seats only go in this bench, so a seat free after the
//! iteration was free when the refusal was made); the count is printed and must be 0.
//!
//! Short by default (10 samples of 1 iteration each, 1,000 clients); `BENCH_AUTOPICK_CLIENTS`
//! and `BENCH_AUTOPICK_SAMPLES` make bigger runs. PostgreSQL runs when `BENCH_DATABASE_URL` or
//! `TEST_DATABASE_URL` is set (a fresh database is created there for the run).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use nobat::app::{App, Dependencies, Settings};
use nobat::domain::time::{Clock, ManualClock};
use nobat::domain::{GeoPoint, NationalCode, ServiceCode};
use nobat::http::AppState;
use nobat::reserve::SeededIds;
use nobat::store::StoreConfig;
use tower::ServiceExt;

#[path = "support/mod.rs"]
mod support;

/// The radius of the hot group around its point, in km.
const HOT_KM: f64 = 15.0;
/// Days of the booking window: seats for every iteration of the three configurations at the
/// issue's 1,000 clients (10 samples, warm-up and interleaved rounds; 60 days ran out).
const HORIZON_DAYS: u32 = 365;
/// Sunday 1 Mehr 1403, 09:00 in Tehran (the API tests' clock).
const START: &str = "2024-09-22T05:30:00Z";

/// Requests in flight at once, one booking each (`BENCH_AUTOPICK_CLIENTS`, default 1,000).
fn clients() -> usize {
    support::env_usize("BENCH_AUTOPICK_CLIENTS", 1_000)
}

/// Criterion samples per configuration (`BENCH_AUTOPICK_SAMPLES`, default and least 10).
fn samples() -> usize {
    support::env_usize("BENCH_AUTOPICK_SAMPLES", 10).max(10)
}

/// One booking request: the applicant's token and the JSON body.
struct Booking {
    token: String,
    body: serde_json::Value,
}

/// What one configuration did over the run.
#[derive(Default)]
struct Tally {
    booked: u64,
    elapsed: Duration,
    /// `no_seat_within_limits` answers.
    refused: u64,
    /// Of those, the ones made while a seat within the limits remained.
    refused_with_seats: u64,
    /// Any other answer (a 5xx, a 409 `slot_full`, …).
    failed: u64,
}

struct Rig {
    rt: tokio::runtime::Runtime,
    state: AppState,
    router: Router,
    point: GeoPoint,
    hot: Vec<String>,
    /// Slots of offices outside the hot group with a free seat, each given to one client once:
    /// spread over both writers' queues (`uncontended`), and all in one queue (`one_queue`).
    uncontended: Vec<(String, String)>,
    one_queue: Vec<(String, String)>,
    next_slot: AtomicU64,
    next_one_queue: AtomicU64,
    next_citizen: AtomicU64,
}

impl Rig {
    fn new(store: StoreConfig) -> Rig {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state = rt.block_on(async {
            let mut settings = Settings::new("127.0.0.1:0".parse().unwrap(), store);
            settings.sweep_interval = None;
            settings.config_poll_interval = None;
            settings.outbox_interval = None;
            settings.booking_horizon_days = HORIZON_DAYS;
            let deps = Dependencies {
                clock: Arc::new(ManualClock::new(START.parse().unwrap())),
                ids: Arc::new(SeededIds::new(21)),
                ..Dependencies::default()
            };
            App::build_with(settings, deps)
                .await
                .expect("build app")
                .state()
                .clone()
        });
        let router = nobat::http::router(state.clone(), None);
        let service = ServiceCode::parse("first_issuance").unwrap();
        let directory = state.directory();
        let point = directory
            .all()
            .iter()
            .filter(|o| o.province == "tehran" && o.offers(service))
            .min_by(|a, b| a.id.cmp(&b.id))
            .expect("a Tehran office")
            .location;
        let (mut hot, mut away) = (Vec::new(), Vec::new());
        for (office, km) in directory.search(None, None, Some(point), Some(service)) {
            match km {
                Some(km) if km <= HOT_KM => hot.push(office.id.to_string()),
                _ => away.push(office.id.to_string()),
            }
        }
        let now = state.engine.clock().now().timestamp();
        let until = now + i64::from(HORIZON_DAYS) * 86_400;
        let mut uncontended: Vec<(i64, i64, String)> = away
            .iter()
            .flat_map(|office| {
                state
                    .engine
                    .availability()
                    .range(office, now + 1, until, 1_000_000)
                    .into_iter()
                    .filter(|s| s.free() > 0)
                    .map(|s| (s.start_at, s.id, office.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        // Soonest first across the offices, as applicants would book them.
        uncontended.sort();
        let named = |(at, _, office): &(i64, i64, String)| {
            let start = chrono::DateTime::from_timestamp(*at, 0)
                .unwrap()
                .to_rfc3339();
            (office.clone(), start)
        };
        // Slot ids modulo 4: 0 is one writer's (of two) alone; 1 and 2 are one of each.
        let one_queue = uncontended
            .iter()
            .filter(|s| s.1 % 4 == 0)
            .map(named)
            .collect();
        let uncontended = uncontended
            .iter()
            .filter(|s| s.1 % 4 == 1 || s.1 % 4 == 2)
            .map(named)
            .collect();
        let rig = Rig {
            rt,
            state,
            router,
            point,
            hot,
            uncontended,
            one_queue,
            next_slot: AtomicU64::new(0),
            next_one_queue: AtomicU64::new(0),
            next_citizen: AtomicU64::new(0),
        };
        eprintln!(
            "autopick: {} offices within {HOT_KM} km of the point ({} free seats), {} slots elsewhere",
            rig.hot.len(),
            rig.hot_free_seats(),
            rig.uncontended.len()
        );
        rig
    }

    /// Free seats at the hot offices, in slots not yet started.
    fn hot_free_seats(&self) -> i64 {
        let now = self.state.engine.clock().now().timestamp();
        self.hot
            .iter()
            .map(|office| {
                self.state
                    .engine
                    .availability()
                    .range(office, now + 1, i64::MAX, 1_000_000)
                    .iter()
                    .map(|s| s.free())
                    .sum::<i64>()
            })
            .sum()
    }

    /// `n` new citizens with a paid application each (not timed): token, application, payment.
    fn citizens(&self, n: usize) -> Vec<(String, String, String)> {
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
            .map(|(_, token, i)| (token, format!("ap_{i}"), format!("pp_{i}")))
            .collect()
    }

    fn one_step(&self, n: usize, one_queue: bool) -> Vec<Booking> {
        let (pool, next) = if one_queue {
            (&self.one_queue, &self.next_one_queue)
        } else {
            (&self.uncontended, &self.next_slot)
        };
        let first = next.fetch_add(n as u64, Ordering::SeqCst) as usize;
        let slots = pool
            .get(first..first + n)
            .expect("uncontended slots left: raise HORIZON_DAYS or lower the clients");
        self.citizens(n)
            .into_iter()
            .zip(slots)
            .map(|((token, app, pay), (office, start))| Booking {
                token,
                body: serde_json::json!({ "application_id": app, "payment_id": pay, "office_id": office, "start": start }),
            })
            .collect()
    }

    fn picks(&self, n: usize) -> Vec<Booking> {
        let pick = serde_json::json!({ "near": { "lat": self.point.lat, "lon": self.point.lon }, "max_km": HOT_KM });
        self.citizens(n)
            .into_iter()
            .map(|(token, app, pay)| Booking {
                token,
                body: serde_json::json!({ "application_id": app, "payment_id": pay, "pick": pick }),
            })
            .collect()
    }

    /// Sends every booking at once; the time until the last answer and each answer's status
    /// and code.
    fn fire(&self, bookings: Vec<Booking>) -> (Duration, Vec<(StatusCode, String)>) {
        self.rt.block_on(async {
            let started = Instant::now();
            let tasks: Vec<_> = bookings
                .into_iter()
                .map(|b| {
                    let router = self.router.clone();
                    tokio::spawn(async move {
                        let request = Request::post("/v1/appointments")
                            .header(header::AUTHORIZATION, format!("Bearer {}", b.token))
                            .header(header::CONTENT_TYPE, "application/json")
                            .body(Body::from(b.body.to_string()))
                            .unwrap();
                        let response = router.oneshot(request).await.unwrap();
                        let status = response.status();
                        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                            .await
                            .unwrap();
                        let code = if status == StatusCode::CREATED {
                            String::new()
                        } else {
                            serde_json::from_slice::<serde_json::Value>(&body)
                                .ok()
                                .and_then(|v| v["code"].as_str().map(str::to_string))
                                .unwrap_or_default()
                        };
                        (status, code)
                    })
                })
                .collect();
            let mut answers = Vec::with_capacity(tasks.len());
            for t in tasks {
                answers.push(t.await.unwrap());
            }
            (started.elapsed(), answers)
        })
    }

    /// One timed iteration of a configuration, added to its tally.
    fn iteration(&self, config: usize, tally: &mut Tally) -> Duration {
        let n = clients();
        let autopick = config == 1;
        let bookings = match config {
            1 => self.picks(n),
            2 => self.one_step(n, true),
            _ => self.one_step(n, false),
        };
        let (elapsed, answers) = self.fire(bookings);
        let mut refused = 0;
        for (status, code) in &answers {
            match (status.as_u16(), code.as_str()) {
                (201, _) => tally.booked += 1,
                (409, "no_seat_within_limits") if autopick => refused += 1,
                _ => tally.failed += 1,
            }
        }
        tally.refused += refused;
        if refused > 0 && self.hot_free_seats() > 0 {
            tally.refused_with_seats += refused;
        }
        tally.elapsed += elapsed;
        elapsed
    }
}

fn run(c: &mut Criterion, backend: &str, store: StoreConfig) {
    let rig = Rig::new(store);
    let mut group = c.benchmark_group(format!("autopick/{backend}"));
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(samples())
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1));
    let mut tallies = [Tally::default(), Tally::default(), Tally::default()];
    for (k, name) in [
        "one_step_uncontended",
        "autopick_hot",
        "one_step_one_writer",
    ]
    .into_iter()
    .enumerate()
    {
        let tally = &mut tallies[k];
        group.throughput(Throughput::Elements(clients() as u64));
        group.bench_function(BenchmarkId::new(name, clients()), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| rig.iteration(k, tally)).sum())
        });
    }
    group.finish();
    // Criterion runs each configuration's samples back to back, so a change of load on a
    // shared machine between them moves the ratio. Interleaved rounds (one iteration of each
    // configuration in turn) expose each to the same load; their ratio is printed too.
    let mut interleaved = [Tally::default(), Tally::default(), Tally::default()];
    for _ in 0..interleaved_rounds() {
        for (k, tally) in interleaved.iter_mut().enumerate() {
            rig.iteration(k, tally);
        }
    }
    print_table(backend, "criterion samples", &tallies);
    print_table(backend, "interleaved rounds", &interleaved);
    let pick = &tallies[1];
    // Each auto-pick submission whose candidates were all full was asked again.
    let (submitted, all_full) = rig.state.engine.pick_rounds();
    let answered = tallies[1].booked + tallies[1].refused + tallies[1].failed;
    let answered =
        answered + interleaved[1].booked + interleaved[1].refused + interleaved[1].failed;
    eprintln!(
        "autopick/{backend}: {submitted} pick submissions for {answered} picks answered ({:.2} each), {all_full} found every candidate full\n",
        submitted as f64 / answered.max(1) as f64,
    );
    assert_eq!(
        pick.refused_with_seats + interleaved[1].refused_with_seats,
        0,
        "picks were refused while seats within their limits remained"
    );
}

/// Interleaved rounds after the criterion samples (`BENCH_AUTOPICK_ROUNDS`, default 5).
fn interleaved_rounds() -> usize {
    support::env_usize("BENCH_AUTOPICK_ROUNDS", 5)
}

fn print_table(backend: &str, how: &str, tallies: &[Tally; 3]) {
    let rate = |t: &Tally| t.booked as f64 / t.elapsed.as_secs_f64().max(1e-9);
    let [one, pick, one_writer] = tallies;
    eprintln!("\n{how}:");
    eprintln!(
        "\n| backend | clients | one-step bookings/s (uncontended) | one-step bookings/s (one writer) | auto-pick bookings/s (hot group) | ratio to uncontended | ratio to one writer | picks refused | refused while seats remained | other failures |"
    );
    eprintln!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    eprintln!(
        "| {backend} | {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {} | {} | {} |\n",
        clients(),
        rate(one),
        rate(one_writer),
        rate(pick),
        rate(pick) / rate(one),
        rate(pick) / rate(one_writer),
        pick.refused,
        pick.refused_with_seats,
        one.failed + pick.failed + one_writer.failed,
    );
}

fn sqlite(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    run(
        c,
        "sqlite",
        StoreConfig::sqlite(dir.path().join("autopick.db")),
    );
}

fn postgres(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(support::ScratchDatabase::create(
        "autopick/postgres",
        "autopick",
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
