//! The writer task: group commit of booking requests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Answer, Availability, EngineConfig, IdempotencyKey, Job, ReserveError};
use crate::domain::time::Clock;
use crate::engine::booking::{decide, BatchKeys, Outcome, Request};

/// Overdue holds each batch expires on the side (bounded, so a backlog cannot bloat a batch).
const SWEEP_PER_BATCH: i64 = 64;
use crate::store::{BatchConn, BatchExtras, BatchWrite, IdempotencyRecord, Store, StoreError};

/// The connection writers run their batches on. On SQLite every writer shares one (there is one
/// write lock): while one writer's transaction runs, the next writer gathers the following
/// batch, so the database never waits for a batch to be collected. On PostgreSQL each writer
/// has its own and their transactions overlap (rows are locked, not the database).
pub(super) type SharedConn = Arc<tokio::sync::Mutex<BatchConn>>;

/// One writer: takes a batch from the shared queue and the connection (holding the queue only
/// while collecting, so another writer can collect the next batch while this one commits),
/// applies it, repeats.
pub(super) async fn run(
    store: Store,
    availability: Arc<Availability>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    conn: SharedConn,
) {
    loop {
        let (jobs, conn) = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut jobs = Vec::with_capacity(config.batch_max.min(1024));
            jobs.push(first);
            collect(&mut rx, &mut jobs, &config).await;
            // The connection is taken while the queue is still held, so batches reach the
            // database in the order they were collected; until it is free, the batch grows.
            let conn = collect_until_free(&mut rx, &mut jobs, &config, &conn).await;
            metrics::gauge!("nobat_booking_queue_depth").set(rx.len() as f64);
            (jobs, conn)
        };
        metrics::histogram!("nobat_booking_batch_size").record(jobs.len() as f64);
        let started = std::time::Instant::now();
        process(&store, conn, &availability, clock.as_ref(), &config, jobs).await;
        metrics::histogram!("nobat_booking_batch_duration_seconds")
            .record(started.elapsed().as_secs_f64());
    }
}

/// Waits for the connection, adding requests that arrive meanwhile (up to the batch bound).
async fn collect_until_free<'c>(
    rx: &mut mpsc::Receiver<Job>,
    jobs: &mut Vec<Job>,
    config: &EngineConfig,
    conn: &'c SharedConn,
) -> tokio::sync::MutexGuard<'c, BatchConn> {
    let lock = conn.lock();
    tokio::pin!(lock);
    while jobs.len() < config.batch_max {
        tokio::select! {
            biased;
            guard = &mut lock => return guard,
            job = rx.recv() => match job {
                Some(job) => jobs.push(job),
                None => break,
            },
        }
    }
    lock.await
}

/// Takes what is already queued, then waits up to the linger window for more.
async fn collect(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>, config: &EngineConfig) {
    let deadline = Instant::now() + config.linger;
    while jobs.len() < config.batch_max {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(mpsc::error::TryRecvError::Disconnected) => return,
            Err(mpsc::error::TryRecvError::Empty) => {
                if config.linger.is_zero() {
                    return;
                }
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(job)) => jobs.push(job),
                    Ok(None) | Err(_) => return,
                }
            }
        }
    }
}

/// What a job's answer is, before the commit.
enum Pending {
    Decided(usize),
    Replayed(Box<Outcome>),
    SameAs(usize),
    KeyReused,
}

/// Applies a batch and answers its requests. The connection is let go as soon as the batch is
/// committed, so the next writer's transaction starts while this one answers.
async fn process(
    store: &Store,
    mut conn: tokio::sync::MutexGuard<'_, BatchConn>,
    availability: &Availability,
    clock: &dyn Clock,
    config: &EngineConfig,
    jobs: Vec<Job>,
) {
    let result = attempt(store, &mut conn, clock, config, &jobs).await;
    match result {
        Ok((answers, deltas)) => {
            drop(conn);
            availability.apply(&deltas);
            for (job, answer) in jobs.into_iter().zip(answers) {
                let _ = job.reply.send(answer);
            }
        }
        // One bad request must not sink the others: retry each alone.
        Err(e) if jobs.len() > 1 && !e.is_unavailable() => {
            tracing::warn!(error = %e, batch = jobs.len(), "batch failed; applying its requests one by one");
            for job in jobs {
                let single = [job];
                let result = attempt(store, &mut conn, clock, config, &single).await;
                let [job] = single;
                match result {
                    Ok((mut answers, deltas)) => {
                        availability.apply(&deltas);
                        let _ = job.reply.send(answers.pop().expect("one answer"));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "request failed alone");
                        let _ = job.reply.send(Err(ReserveError::from(e)));
                    }
                }
            }
        }
        Err(e) => {
            if !e.is_unavailable() {
                tracing::error!(error = %e, "request failed");
            }
            for job in jobs {
                let answer = match &e {
                    StoreError::Unavailable(m) => ReserveError::Unavailable(m.clone()),
                    other => ReserveError::Failed(other.to_string()),
                };
                let _ = job.reply.send(Err(answer));
            }
        }
    }
}

type Attempt = (Vec<Result<Answer, ReserveError>>, BTreeMap<i64, i64>);

/// Runs the batch, retrying when another writer's commit made it conflict.
async fn attempt(
    store: &Store,
    conn: &mut BatchConn,
    clock: &dyn Clock,
    config: &EngineConfig,
    jobs: &[Job],
) -> Result<Attempt, StoreError> {
    let mut last = None;
    for _ in 0..config.batch_attempts.max(1) {
        match run_once(store, conn, clock, jobs).await {
            Ok(r) => return Ok(r),
            Err(e @ StoreError::Unavailable(_)) => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "batch conflicted; retrying with fresh rows");
                last = Some(e);
            }
        }
    }
    Err(last.expect("at least one attempt"))
}

async fn run_once(
    store: &Store,
    conn: &mut BatchConn,
    clock: &dyn Clock,
    jobs: &[Job],
) -> Result<Attempt, StoreError> {
    let now = clock.now().timestamp();
    let mut keys = BatchKeys::default();
    let mut extras = BatchExtras {
        sweep_due: Some((now, SWEEP_PER_BATCH)),
        ..BatchExtras::default()
    };
    for job in jobs {
        job.request.touches(&mut keys);
        if let Some(k) = &job.idempotency {
            extras
                .idempotency_keys
                .push((k.scope.clone(), k.key.clone()));
        }
    }
    // The decision may run on another thread (SQLite's writer thread runs read, decide, write
    // and commit without a hand-off), so it owns copies of the requests; the jobs keep the
    // reply channels, and the first copies for a retry of each request alone.
    let batch: Vec<(Request, Option<IdempotencyKey>)> = jobs
        .iter()
        .map(|j| (j.request.clone(), j.idempotency.clone()))
        .collect();
    store
        .run_batch(conn, keys, &extras, move |state, stored| {
            let mut pending = Vec::with_capacity(batch.len());
            let mut requests: Vec<&Request> = Vec::with_capacity(batch.len());
            let mut first_in_batch: HashMap<(&str, &str), (&str, usize)> = HashMap::new();
            for (i, (request, idempotency)) in batch.iter().enumerate() {
                if let Some(k) = idempotency {
                    if let Some(rec) = stored.get(&(k.scope.clone(), k.key.clone())) {
                        pending.push(if rec.request_hash == k.request_hash {
                            match serde_json::from_str::<Outcome>(&rec.response_body) {
                                Ok(outcome) => Pending::Replayed(Box::new(outcome)),
                                Err(_) => Pending::KeyReused,
                            }
                        } else {
                            Pending::KeyReused
                        });
                        continue;
                    }
                    if let Some((hash, j)) = first_in_batch.get(&(k.scope.as_str(), k.key.as_str()))
                    {
                        pending.push(if *hash == k.request_hash {
                            Pending::SameAs(*j)
                        } else {
                            Pending::KeyReused
                        });
                        continue;
                    }
                    first_in_batch.insert(
                        (k.scope.as_str(), k.key.as_str()),
                        (k.request_hash.as_str(), i),
                    );
                }
                pending.push(Pending::Decided(requests.len()));
                requests.push(request);
            }
            // Expire what is overdue while the transaction is open anyway; their outcomes answer
            // no one.
            let expiries: Vec<Request> = state
                .due_holds
                .iter()
                .map(|hold_id| Request::Expire {
                    hold_id: hold_id.clone(),
                })
                .collect();
            let (outcomes, effects) =
                decide(state, requests.iter().copied().chain(expiries.iter()), now);
            let mut idempotency = Vec::new();
            for ((_, key), p) in batch.iter().zip(&pending) {
                if let (Some(k), Pending::Decided(d)) = (key, p) {
                    idempotency.push(IdempotencyRecord {
                        scope: k.scope.clone(),
                        key: k.key.clone(),
                        request_hash: k.request_hash.clone(),
                        response_status: 0,
                        response_body: serde_json::to_string(&outcomes[*d])
                            .expect("outcomes serialise"),
                    });
                }
            }
            // Each decided outcome answers exactly one job: move it rather than clone it.
            let mut outcomes: Vec<Option<Outcome>> = outcomes.into_iter().map(Some).collect();
            let mut answers: Vec<Result<Answer, ReserveError>> = Vec::with_capacity(batch.len());
            for p in &pending {
                let answer = match p {
                    Pending::Decided(d) => Ok(Answer {
                        outcome: outcomes[*d].take().expect("one answer per outcome"),
                        replayed: false,
                    }),
                    Pending::Replayed(o) => Ok(Answer {
                        outcome: (**o).clone(),
                        replayed: true,
                    }),
                    Pending::SameAs(j) => match &answers[*j] {
                        Ok(a) => Ok(Answer {
                            outcome: a.outcome.clone(),
                            replayed: true,
                        }),
                        Err(_) => Err(ReserveError::IdempotencyKeyReused),
                    },
                    Pending::KeyReused => Err(ReserveError::IdempotencyKeyReused),
                };
                answers.push(answer);
            }
            let deltas = effects.slot_deltas.clone();
            BatchWrite {
                effects,
                idempotency,
                result: (answers, deltas),
            }
        })
        .await
}
