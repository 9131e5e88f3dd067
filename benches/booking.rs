//! The booking engine's hold→confirm path, without HTTP, on SQLite and PostgreSQL.
//!
//! Each measured iteration books `PAIRS` appointments (a hold, then its confirmation) from
//! `clients()` concurrent clients. Two configurations run in the same process, so their ratio is
//! meaningful on a noisy machine:
//! - `group_commit`: the engine as shipped (up to 512 requests per transaction);
//! - `one_per_tx` (the baseline): the same engine with batches of one request, i.e. one
//!   transaction per reservation step, with eight such transactions in flight on PostgreSQL
//!   (one per pooled connection; SQLite's single write lock allows one);
//! - `db_floor`: not the engine but the database's floor for a pair, the four writes no design
//!   can skip, set-based, with nothing checked (`bench_floor`): the ceiling any engine has on
//!   this database and machine. On this 2-core machine's PostgreSQL it costs ~39 µs of postgres
//!   CPU per pair (29.6k pairs/s with 2 writers, 43k with 4), the engine ~110 µs.
//!
//! PostgreSQL runs when `BENCH_DATABASE_URL` or `TEST_DATABASE_URL` is set (a fresh database is
//! created there for the run). `BENCH_CLIENTS` (default 1024) and `BENCH_WRITERS` (default: the
//! engine's) vary the concurrency of the group-commit run, to see how batch size and writer
//! count trade: on this 2-core machine's PostgreSQL, 4 or 6 writers for 1024 clients made
//! smaller batches and cost more CPU per pair than 2 (134.8 -> 173.3 -> 229.4 µs of postgres
//! CPU per pair, 9.3k -> 8.6k -> 6.9k pairs/s).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nobat::booking::{Confirm, Hold, Outcome, Request};
use nobat::domain::time::ManualClock;
use nobat::reserve::{EngineConfig, IdSource, Reservations, SeededIds};
use nobat::store::{Store, StoreConfig, PG_BATCH_BEGIN};

#[path = "support/mod.rs"]
mod support;

/// CPU seconds used so far by this process (all threads) and by every `postgres` process,
/// from `/proc` (Linux; zero elsewhere). On a shared, noisy machine the CPU a pair costs is a
/// steadier figure than wall-clock throughput, which depends on what else is running.
fn cpu_seconds() -> (f64, f64) {
    fn ticks(stat: &str) -> Option<u64> {
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    }
    const HZ: f64 = 100.0;
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| ticks(&s))
        .unwrap_or(0);
    let mut pg = 0;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let path = entry.path();
            if std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.trim() == "postgres") {
                pg += std::fs::read_to_string(path.join("stat"))
                    .ok()
                    .and_then(|s| ticks(&s))
                    .unwrap_or(0);
            }
        }
    }
    (own as f64 / HZ, pg as f64 / HZ)
}

/// Concurrent clients (`BENCH_CLIENTS`, default 1024): a surge has thousands in flight; this
/// many fill the group-commit batches.
fn clients() -> usize {
    env_usize("BENCH_CLIENTS").unwrap_or(1024)
}

/// Writer tasks of the group-commit run (`BENCH_WRITERS`, default: the engine's default).
fn writers() -> usize {
    env_usize("BENCH_WRITERS").unwrap_or(EngineConfig::default().writers)
}

fn env_usize(name: &str) -> Option<usize> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse::<usize>()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a count"))
            .max(1),
    )
}

const SLOTS: i64 = 2_000;

struct Bench {
    store: Store,
    next_citizen: AtomicU64,
    runtime: tokio::runtime::Runtime,
}

impl Bench {
    fn new(config: StoreConfig) -> Bench {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let store = runtime.block_on(async {
            let store = Store::connect(&config).await.unwrap();
            support::exec(&store, "INSERT INTO services (code, name_en, name_fa, duration_minutes, office_kinds) VALUES ('first_issuance', 'First issuance', 'صدور', 15, 'pishkhan')").await;
            support::exec(&store, "INSERT INTO offices (id, name, kind, province, city, area_code, lat, lon, stations, services, calendar_json, updated_at) VALUES ('021-0001', 'Bench', 'pishkhan', 'tehran', 'Tehran', '021', 35.7, 51.4, 1000, 'first_issuance', '{}', 0)").await;
            let slots: Vec<_> = (0..SLOTS).map(|i| ("021-0001".to_string(), 2_000_000_000 + i * 900, 15, 1_000_000)).collect();
            store.insert_slots(&slots).await.unwrap();
            store
        });
        Bench {
            store,
            next_citizen: AtomicU64::new(0),
            runtime,
        }
    }

    /// Paid applications for `n` new citizens (not timed).
    fn citizens(&self, n: usize) -> Vec<(String, String, String)> {
        let first = self.next_citizen.fetch_add(n as u64, Ordering::SeqCst);
        let people: Vec<_> = (first..first + n as u64)
            .map(|i| (format!("{i:010}"), format!("app_{i}"), format!("pay_{i}")))
            .collect();
        self.runtime.block_on(async {
            for chunk in people.chunks(500) {
                let apps: Vec<String> = chunk.iter().map(|(c, a, _)| format!("('{a}', '{c}', 'first_issuance', '{{}}', TRUE, 0)")).collect();
                support::exec(&self.store, &format!("INSERT INTO applications (id, national_code, service, form_json, eligible, created_at) VALUES {}", apps.join(","))).await;
                let pays: Vec<String> = chunk.iter().map(|(_, a, p)| format!("('{p}', '{a}', 600000, 'paid', 'sandbox', 0)")).collect();
                support::exec(&self.store, &format!("INSERT INTO payments (id, application_id, amount_rials, status, gateway, created_at) VALUES {}", pays.join(","))).await;
            }
        });
        people
    }

    /// Books every citizen (hold, then confirm) from `clients()` concurrent clients; returns the
    /// elapsed time of the booking alone.
    fn book_all(&self, engine: &Reservations, people: Vec<(String, String, String)>) -> Duration {
        let people = Arc::new(people);
        self.runtime.block_on(async {
            let started = Instant::now();
            let clients = clients();
            let tasks: Vec<_> = (0..clients)
                .map(|client| {
                    let engine = engine.clone();
                    let people = people.clone();
                    tokio::spawn(async move {
                        let mut i = client;
                        while i < people.len() {
                            let (code, app, pay) = &people[i];
                            let hold_id = engine.ids().opaque("hold");
                            let hold = Request::Hold(Hold {
                                national_code: code.clone(),
                                application_id: app.clone().into(),
                                service: "first_issuance".into(),
                                slot_id: 1 + (i as i64 % SLOTS),
                                hold_id: hold_id.clone().into(),
                                expires_at: i64::MAX,
                            });
                            let held = engine.submit(hold).await.expect("hold");
                            assert!(
                                matches!(held.outcome, Outcome::Held { .. }),
                                "{:?}",
                                held.outcome
                            );
                            let confirm = Request::Confirm(Confirm {
                                national_code: code.clone(),
                                hold_id: hold_id.into(),
                                payment_id: pay.clone().into(),
                                tracking_code: engine.ids().tracking_code().into(),
                            });
                            let booked = engine.submit(confirm).await.expect("confirm");
                            assert!(
                                matches!(booked.outcome, Outcome::Booked { .. }),
                                "{:?}",
                                booked.outcome
                            );
                            i += clients;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            started.elapsed()
        })
    }

    fn engine(&self, batch_max: usize) -> Reservations {
        let clock = Arc::new(ManualClock::new("2024-09-22T05:30:00Z".parse().unwrap()));
        // A seed per engine: two engines drawing the same ids would collide on hold ids.
        let ids: Arc<dyn IdSource> = Arc::new(SeededIds::new(batch_max as u64));
        // The baseline runs one transaction per request on every pooled connection at once
        // (what a naive server does); group commit runs the shipped configuration.
        let writers = if batch_max == 1 { 8 } else { writers() };
        let config = EngineConfig {
            batch_max,
            writers,
            ..EngineConfig::default()
        };
        self.runtime
            .block_on(Reservations::start(self.store.clone(), clock, ids, config))
            .unwrap()
    }
}

fn run(
    c: &mut Criterion,
    backend: &str,
    config: StoreConfig,
    floor_file: Option<std::path::PathBuf>,
) {
    let bench = Bench::new(config);
    let floor = bench
        .runtime
        .block_on(Floor::create(&bench.store, floor_file));
    let mut group = c.benchmark_group(format!("booking/hold_confirm/{backend}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    for (name, batch_max, pairs) in [
        ("group_commit", 512usize, 8_000usize),
        ("one_per_tx", 1, 500),
    ] {
        let engine = bench.engine(batch_max);
        let mut booked = 0u64;
        let (mut own_cpu, mut pg_cpu) = (0.0, 0.0);
        group.throughput(Throughput::Elements(pairs as u64));
        group.bench_function(BenchmarkId::new(name, pairs), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let people = bench.citizens(pairs);
                    let (own0, pg0) = cpu_seconds();
                    total += bench.book_all(&engine, people);
                    let (own1, pg1) = cpu_seconds();
                    own_cpu += own1 - own0;
                    pg_cpu += pg1 - pg0;
                    booked += pairs as u64;
                }
                total
            })
        });
        report_cpu(backend, name, booked, own_cpu, pg_cpu);
    }
    bench_floor(&mut group, backend, &bench, floor);
    group.finish();
}

fn report_cpu(backend: &str, name: &str, booked: u64, own_cpu: f64, pg_cpu: f64) {
    if booked == 0 {
        return; // filtered out
    }
    let per_pair = |cpu: f64| cpu * 1e6 / booked as f64;
    eprintln!(
        "{backend}/{name}: {booked} pairs, CPU per pair: this process {:.1} µs, postgres processes {:.1} µs",
        per_pair(own_cpu),
        per_pair(pg_cpu),
    );
}

/// The database's floor for a hold→confirm pair, measured beside the engine: only the four
/// writes no design can skip (insert the hold, count its seat, mark the hold confirmed, insert
/// the appointment), `FLOOR_PAIRS_PER_TX` pairs per transaction, two transactions per chunk
/// (the hold, then the confirmation: they are separate requests), from the engine's number of
/// writers at once, with keys shaped like the engine's. No reads, no checks, no secondary
/// index, no audit event, no idempotency: no engine can be faster on this database and
/// machine, so `group_commit / db_floor` says how much of the database's capacity the engine's
/// rules and bookkeeping take, and whether a throughput target is reachable here at all.
fn bench_floor(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    backend: &str,
    bench: &Bench,
    floor: Floor,
) {
    const PAIRS: usize = 8_000;
    let ids = SeededIds::new(99);
    let mut booked = 0u64;
    let (mut own_cpu, mut pg_cpu) = (0.0, 0.0);
    group.throughput(Throughput::Elements(PAIRS as u64));
    group.bench_function(BenchmarkId::new("db_floor", PAIRS), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let chunks: Vec<Vec<FloorPair>> = (0..PAIRS)
                    .map(|i| FloorPair {
                        hold_id: ids.opaque("hold"),
                        tracking_code: ids.tracking_code(),
                        national_code: format!(
                            "{:010}",
                            bench.next_citizen.fetch_add(1, Ordering::SeqCst)
                        ),
                        slot_id: 1 + (i as i64 % SLOTS),
                    })
                    .collect::<Vec<_>>()
                    .chunks(FLOOR_PAIRS_PER_TX)
                    .map(<[FloorPair]>::to_vec)
                    .collect();
                let (own0, pg0) = cpu_seconds();
                let started = Instant::now();
                bench.runtime.block_on(floor.write_all(chunks, writers()));
                total += started.elapsed();
                let (own1, pg1) = cpu_seconds();
                own_cpu += own1 - own0;
                pg_cpu += pg1 - pg0;
                booked += PAIRS as u64;
            }
            total
        })
    });
    report_cpu(backend, "db_floor", booked, own_cpu, pg_cpu);
}

/// Pairs per transaction of the floor: the engine's batches hold up to 512 requests, i.e. the
/// steps of 256 pairs.
const FLOOR_PAIRS_PER_TX: usize = 256;

#[derive(Clone)]
struct FloorPair {
    hold_id: String,
    tracking_code: String,
    national_code: String,
    slot_id: i64,
}

/// Where the floor's tables live: beside the engine's, in the same PostgreSQL database, or in
/// a SQLite file of their own next to the engine's, written by one connection on a thread of
/// its own (SQLite has one write lock, as the engine's writer thread does).
#[derive(Clone)]
enum Floor {
    Postgres(sqlx::PgPool),
    Sqlite(Arc<std::sync::Mutex<rusqlite::Connection>>),
}

impl Floor {
    async fn create(store: &Store, sqlite_path: Option<std::path::PathBuf>) -> Floor {
        let tables = [
            "CREATE TABLE floor_slots (id BIGINT PRIMARY KEY, capacity BIGINT NOT NULL, taken BIGINT NOT NULL CHECK (taken BETWEEN 0 AND capacity))",
            "CREATE TABLE floor_holds (id TEXT COLLATE \"C\" PRIMARY KEY, slot_id BIGINT NOT NULL, national_code TEXT COLLATE \"C\" NOT NULL, status TEXT NOT NULL)",
            "CREATE TABLE floor_appointments (tracking_code TEXT COLLATE \"C\" PRIMARY KEY, slot_id BIGINT NOT NULL, national_code TEXT COLLATE \"C\" NOT NULL, hold_id TEXT NOT NULL, status TEXT NOT NULL)",
        ];
        let slots = format!(
            "INSERT INTO floor_slots (id, capacity, taken) SELECT g, 1000000, 0 FROM {}",
            match store {
                Store::Postgres(_) => format!("generate_series(1, {SLOTS}) g"),
                Store::Sqlite(_) => format!("(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {SLOTS}) SELECT g FROM s)"),
            }
        );
        match (store, sqlite_path) {
            (Store::Postgres(pool), _) => {
                for sql in tables.iter().chain([&slots.as_str()]) {
                    sqlx::query(sql).execute(pool).await.expect(sql);
                }
                Floor::Postgres(pool.clone())
            }
            (Store::Sqlite(_), Some(path)) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                // The engine's writer connection's settings (`store::lite_writer`).
                conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 10000").unwrap();
                for sql in tables.iter().chain([&slots.as_str()]) {
                    conn.execute(&sql.replace(" COLLATE \"C\"", ""), [])
                        .expect(sql);
                }
                Floor::Sqlite(Arc::new(std::sync::Mutex::new(conn)))
            }
            (Store::Sqlite(_), None) => unreachable!("the SQLite floor needs a file"),
        }
    }

    /// Writes every chunk's pairs, `writers` transactions in flight on PostgreSQL.
    async fn write_all(&self, chunks: Vec<Vec<FloorPair>>, writers: usize) {
        let queue = Arc::new(std::sync::Mutex::new(chunks));
        let tasks: Vec<_> = (0..writers)
            .map(|_| {
                let (floor, queue) = (self.clone(), queue.clone());
                tokio::spawn(async move {
                    loop {
                        let Some(chunk) = queue.lock().unwrap().pop() else {
                            break;
                        };
                        floor.write_chunk(chunk).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }

    async fn write_chunk(&self, chunk: Vec<FloorPair>) {
        match self {
            Floor::Postgres(pool) => {
                let hold_ids: Vec<&str> = chunk.iter().map(|p| p.hold_id.as_str()).collect();
                let slot_ids: Vec<i64> = chunk.iter().map(|p| p.slot_id).collect();
                let codes: Vec<&str> = chunk.iter().map(|p| p.national_code.as_str()).collect();
                let tracking: Vec<&str> = chunk.iter().map(|p| p.tracking_code.as_str()).collect();
                let mut tx = pool.begin_with(PG_BATCH_BEGIN).await.unwrap();
                sqlx::query("INSERT INTO floor_holds (id, slot_id, national_code, status) SELECT h.id, h.slot_id, h.code, 'live' FROM UNNEST($1::text[], $2::bigint[], $3::text[]) AS h(id, slot_id, code)")
                    .bind(&hold_ids).bind(&slot_ids).bind(&codes)
                    .execute(&mut *tx).await.unwrap();
                sqlx::query("UPDATE floor_slots SET taken = floor_slots.taken + d.n FROM (SELECT id, count(*) AS n FROM UNNEST($1::bigint[]) AS u(id) GROUP BY id) AS d WHERE floor_slots.id = d.id")
                    .bind(&slot_ids)
                    .execute(&mut *tx).await.unwrap();
                tx.commit().await.unwrap();
                let mut tx = pool.begin_with(PG_BATCH_BEGIN).await.unwrap();
                sqlx::query("UPDATE floor_holds SET status = 'confirmed' FROM UNNEST($1::text[]) AS u(id) WHERE floor_holds.id = u.id")
                    .bind(&hold_ids)
                    .execute(&mut *tx).await.unwrap();
                sqlx::query("INSERT INTO floor_appointments (tracking_code, slot_id, national_code, hold_id, status) SELECT a.code, a.slot_id, a.citizen, a.hold_id, 'booked' FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[]) AS a(code, slot_id, citizen, hold_id)")
                    .bind(&tracking).bind(&slot_ids).bind(&codes).bind(&hold_ids)
                    .execute(&mut *tx).await.unwrap();
                tx.commit().await.unwrap();
            }
            Floor::Sqlite(conn) => {
                let conn = conn.clone();
                tokio::task::spawn_blocking(move || {
                    let mut conn = conn.lock().unwrap();
                    for confirm in [false, true] {
                        let tx = conn
                            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                            .unwrap();
                        {
                            let (mut first, mut second) = if confirm {
                                (
                                    tx.prepare_cached("UPDATE floor_holds SET status = 'confirmed' WHERE id = ?1").unwrap(),
                                    tx.prepare_cached("INSERT INTO floor_appointments (tracking_code, slot_id, national_code, hold_id, status) VALUES (?1, ?2, ?3, ?4, 'booked')").unwrap(),
                                )
                            } else {
                                (
                                    tx.prepare_cached("INSERT INTO floor_holds (id, slot_id, national_code, status) VALUES (?1, ?2, ?3, 'live')").unwrap(),
                                    tx.prepare_cached("UPDATE floor_slots SET taken = taken + 1 WHERE id = ?1").unwrap(),
                                )
                            };
                            for p in &chunk {
                                if confirm {
                                    first.execute([&p.hold_id]).unwrap();
                                    second
                                        .execute(rusqlite::params![p.tracking_code, p.slot_id, p.national_code, p.hold_id])
                                        .unwrap();
                                } else {
                                    first
                                        .execute(rusqlite::params![p.hold_id, p.slot_id, p.national_code])
                                        .unwrap();
                                    second.execute([p.slot_id]).unwrap();
                                }
                            }
                        }
                        tx.commit().unwrap();
                    }
                })
                .await
                .unwrap();
            }
        }
    }
}

fn sqlite(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    run(
        c,
        "sqlite",
        StoreConfig::sqlite(dir.path().join("bench.db")),
        Some(dir.path().join("floor.db")),
    );
}

fn postgres(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(support::ScratchDatabase::create(
        "booking/postgres",
        "bench",
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
        None,
    );
    rt.block_on(db.drop_now());
}

criterion_group!(benches, sqlite, postgres);
criterion_main!(benches);
