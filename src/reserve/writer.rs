//! The writer task: group commit of booking requests.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{
    Availability, EngineConfig, Job, Keyed, Rendered, RenderedAnswer, Reply, ReserveError,
};
use crate::booking::{decide, BatchKeys, BatchState, Expire, FreeingPolicy, Outcome, Request};
use crate::domain::time::Clock;
use crate::reserve::IdSource;
use crate::store::OFFER_HOLD_PREFIX;

/// Overdue holds each batch expires on the side (bounded, so a backlog cannot bloat a batch).
const SWEEP_PER_BATCH: i64 = 64;
use crate::store::{
    BatchConn, BatchExtras, BatchWrite, IdempotencyRecord, Store, StoreError, Stored, StoredAnswer,
};

/// What writers run their batches on: on SQLite one, shared (the writer thread; see
/// `store::BatchConn`), on PostgreSQL one per writer.
pub(super) type SharedConn = Arc<BatchConn>;

/// A batch's run against the database, started (on SQLite: queued on the writer thread) when
/// it was made.
type BatchRun<'a> = Pin<Box<dyn Future<Output = Result<Attempt, StoreError>> + Send + 'a>>;

/// One writer: takes a batch from the shared queue (holding the queue only while collecting,
/// so another writer can collect the next batch while this one commits), applies it, repeats.
/// The batch is submitted before the queue is let go, so on SQLite batches commit in the
/// order they were collected, and the next one is already waiting when the current commits.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    store: Store,
    availability: Arc<Availability>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    config: EngineConfig,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>>,
    queue: usize,
    conn: SharedConn,
) {
    let queue = queue.to_string();
    loop {
        let (jobs, first) = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut jobs = Vec::with_capacity(config.batch_max.min(1024));
            jobs.push(first);
            collect(&mut rx, &mut jobs, &config).await;
            // In a batch, the jobs no longer wait: their places go to new requests.
            for job in &mut jobs {
                job.waiting = None;
            }
            metrics::gauge!("nobat_booking_queue_depth", "queue" => queue.clone())
                .set(rx.len() as f64);
            let env = Env {
                clock: clock.as_ref(),
                ids: ids.as_ref(),
                config: &config,
            };
            let first = run_once(&store, &conn, env, &jobs);
            (jobs, first)
        };
        metrics::histogram!("nobat_booking_batch_size").record(jobs.len() as f64);
        let started = std::time::Instant::now();
        let env = Env {
            clock: clock.as_ref(),
            ids: ids.as_ref(),
            config: &config,
        };
        process(&store, &conn, &availability, env, jobs, first).await;
        metrics::histogram!("nobat_booking_batch_duration_seconds")
            .record(started.elapsed().as_secs_f64());
    }
}

/// Takes what is already queued, then waits up to the linger window for more.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<Job>,
    jobs: &mut Vec<Job>,
    config: &EngineConfig,
) {
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

/// What a batch's run draws on besides the database: the clock, the id source (spare ids and
/// the batch's seed) and the engine's settings.
#[derive(Clone, Copy)]
struct Env<'a> {
    clock: &'a dyn Clock,
    ids: &'a dyn IdSource,
    config: &'a EngineConfig,
}

/// Applies a batch (`first` is its first attempt, already started) and answers its requests.
async fn process(
    store: &Store,
    conn: &BatchConn,
    availability: &Availability,
    env: Env<'_>,
    jobs: Vec<Job>,
    first: BatchRun<'_>,
) {
    let result = attempt(store, conn, env, &jobs, Some(first)).await;
    match result {
        Ok((answers, deltas)) => {
            availability.apply(&deltas);
            for (job, answer) in jobs.into_iter().zip(answers) {
                let _ = job.reply.send(answer);
            }
        }
        // One bad request must not sink the others: retry each alone.
        Err(e) if jobs.len() > 1 && !e.is_unavailable() => {
            tracing::warn!(
                error = &e as &dyn std::error::Error,
                batch = jobs.len(),
                "batch failed; applying its requests one by one"
            );
            for job in jobs {
                let single = [job];
                let result = attempt(store, conn, env, &single, None).await;
                let [job] = single;
                match result {
                    Ok((mut answers, deltas)) => {
                        availability.apply(&deltas);
                        let _ = job.reply.send(answers.pop().expect("one answer"));
                    }
                    Err(e) => {
                        tracing::error!(
                            error = &e as &dyn std::error::Error,
                            "request failed alone"
                        );
                        let _ = job.reply.send(Err(ReserveError::from(e)));
                    }
                }
            }
        }
        Err(e) => {
            if !e.is_unavailable() {
                tracing::error!(error = &e as &dyn std::error::Error, "request failed");
            }
            for job in jobs {
                let _ = job.reply.send(Err(ReserveError::from(e.clone())));
            }
        }
    }
}

type Attempt = (Vec<Result<Reply, ReserveError>>, BTreeMap<i64, i64>);

/// Runs the batch (starting with `first` if it was already started), retrying when another
/// writer's commit made it conflict.
async fn attempt(
    store: &Store,
    conn: &BatchConn,
    env: Env<'_>,
    jobs: &[Job],
    mut first: Option<BatchRun<'_>>,
) -> Result<Attempt, StoreError> {
    let mut last = None;
    for _ in 0..env.config.batch_attempts.max(1) {
        let run = first
            .take()
            .unwrap_or_else(|| run_once(store, conn, env, jobs));
        match run.await {
            Ok(r) => return Ok(r),
            Err(e @ StoreError::Unavailable(_)) => return Err(e),
            Err(e) => {
                tracing::debug!(
                    error = &e as &dyn std::error::Error,
                    "batch conflicted; retrying with fresh rows"
                );
                last = Some(e);
            }
        }
    }
    Err(last.expect("at least one attempt"))
}

/// Starts one run of the batch: the keys it touches and its decision are worked out now, from
/// copies of the requests, so the run borrows nothing of `jobs`.
fn run_once<'a>(store: &'a Store, conn: &'a BatchConn, env: Env<'_>, jobs: &[Job]) -> BatchRun<'a> {
    let now = env.clock.now().timestamp();
    let mut keys = BatchKeys::default();
    let mut extras = BatchExtras {
        now,
        idempotency_keys: Vec::new(),
        sweep_limit: Some(SWEEP_PER_BATCH),
        limits: env.config.limits,
    };
    for job in jobs {
        job.request.touches(&mut keys);
        if let Some(k) = &job.idempotency {
            extras
                .idempotency_keys
                .push((k.key.scope.clone(), k.key.key.clone()));
        }
    }
    // The decision may run on another thread (SQLite's writer thread runs read, decide, write
    // and commit without a hand-off), so it owns copies of the requests; the jobs keep the
    // reply channels, and the first copies for a retry of each request alone.
    let batch: Vec<(Request, Option<Keyed>)> = jobs
        .iter()
        .map(|j| (j.request.clone(), j.idempotency.clone()))
        .collect();
    let freeing = spares(env, jobs);
    Box::pin(store.run_batch(conn, keys, extras, move |state, stored| {
        state.freeing = freeing.policy;
        state.spare_offer_ids = freeing.offer_ids;
        state.spare_tracking_codes = freeing.tracking_codes;
        decide_batch(&batch, state, stored, now)
    }))
}

/// What a batch's freed seats may need, drawn before the batch runs (the decision is pure):
/// the policy with the batch's random seed, and ids for the waitlist offers and bookings it may
/// make: one per request that may free a seat, and two for the overdue holds it expires on the
/// side (a seat freed when none is left stays taken and is released at once, for the sweeper
/// to hand over).
struct Spares {
    policy: FreeingPolicy,
    offer_ids: Vec<String>,
    tracking_codes: Vec<String>,
}

fn spares(env: Env<'_>, jobs: &[Job]) -> Spares {
    let freeing = jobs
        .iter()
        .filter(|j| {
            matches!(
                j.request,
                Request::Cancel(_)
                    | Request::Reschedule(_)
                    | Request::Release(_)
                    | Request::Expire(_)
                    | Request::Relocate(_)
                    | Request::DeclineOffer(_)
                    | Request::LeaveWaitlist(_)
                    | Request::ReleaseSeat(_)
                    | Request::SetCapacity(_)
            )
        })
        .count()
        + 2;
    let prefix = OFFER_HOLD_PREFIX.trim_end_matches('_');
    let config = env.config;
    Spares {
        policy: FreeingPolicy {
            offer_ttl: config.offer_ttl.as_secs() as i64,
            release_delay_min: config.release_delay_min.as_secs() as i64,
            release_delay_max: config.release_delay_max.as_secs() as i64,
            seed: env.ids.random_bits(64) as u64,
        },
        offer_ids: (0..freeing).map(|_| env.ids.opaque(prefix)).collect(),
        tracking_codes: (0..freeing).map(|_| env.ids.tracking_code()).collect(),
    }
}

/// What a job's answer is, before the commit.
enum Pending {
    /// Decided in this batch: its outcome's index.
    Decided(usize),
    /// The answer stored under its key.
    Replayed(Rendered),
    /// The same key and request as this earlier job of the batch: its answer.
    SameAs(usize),
    KeyReused,
    Unreadable,
}

/// Decides a batch: replays what its keys already answered, lets `decide` apply the rest in
/// arrival order (and expire the overdue holds read with them), renders the answers of keyed
/// requests and records them with their keys.
fn decide_batch(
    batch: &[(Request, Option<Keyed>)],
    state: &mut BatchState,
    stored: &Stored,
    now: i64,
) -> BatchWrite<Attempt> {
    let mut pending = Vec::with_capacity(batch.len());
    let mut requests: Vec<&Request> = Vec::with_capacity(batch.len());
    let mut first_in_batch: HashMap<(&str, &str), (&str, usize)> = HashMap::new();
    for (i, (request, keyed)) in batch.iter().enumerate() {
        if let Some(k) = keyed {
            let key = &k.key;
            if let Some(rec) = stored.get(&(key.scope.clone(), key.key.clone())) {
                pending.push(replay(rec, k));
                continue;
            }
            let id = (key.scope.as_str(), key.key.as_str());
            if let Some((hash, j)) = first_in_batch.get(&id) {
                pending.push(if *hash == key.request_hash {
                    Pending::SameAs(*j)
                } else {
                    Pending::KeyReused
                });
                continue;
            }
            first_in_batch.insert(id, (key.request_hash.as_str(), i));
        }
        pending.push(Pending::Decided(requests.len()));
        requests.push(request);
    }
    // Expire what is overdue while the transaction is open anyway; their outcomes answer
    // no one.
    let expiries: Vec<Request> = state
        .due_holds
        .iter()
        .map(|hold_id| {
            Request::Expire(Expire {
                hold_id: hold_id.clone().into(),
            })
        })
        .collect();
    let (outcomes, effects) = decide(state, requests.iter().copied().chain(expiries.iter()), now);
    // Each decided outcome answers exactly one job: move it rather than clone it.
    let mut outcomes: Vec<Option<Outcome>> = outcomes.into_iter().map(Some).collect();
    let mut idempotency = Vec::new();
    let mut answers: Vec<Result<Reply, ReserveError>> = Vec::with_capacity(batch.len());
    for ((_, keyed), p) in batch.iter().zip(pending) {
        let answer = match p {
            // The outcome is moved straight into its reply: it is large (hundreds of bytes),
            // and the writer thread copies it once per request as it is.
            Pending::Decided(d) => {
                match keyed {
                    // An auto-pick whose candidates were all full is asked again with fresh
                    // ones under the same key: its refusal is not the client's answer.
                    Some(_) if is_candidates_full(outcomes[d].as_ref()) => Ok(Reply::Decided(
                        outcomes[d].take().expect("one answer per outcome"),
                    )),
                    // What the client gets, stored with its key in this transaction.
                    Some(k) => {
                        let outcome = outcomes[d].as_ref().expect("one answer per outcome");
                        let rendered = (k.render)(outcome);
                        idempotency.push(IdempotencyRecord {
                            scope: k.key.scope.clone(),
                            key: k.key.key.clone(),
                            request_hash: k.key.request_hash.clone(),
                            answer: StoredAnswer::Http {
                                status: rendered.status,
                                body: rendered.body.clone(),
                            },
                        });
                        Ok(Reply::Rendered(RenderedAnswer {
                            rendered,
                            replayed: false,
                        }))
                    }
                    None => Ok(Reply::Decided(
                        outcomes[d].take().expect("one answer per outcome"),
                    )),
                }
            }
            Pending::Replayed(rendered) => Ok(Reply::Rendered(RenderedAnswer {
                rendered,
                replayed: true,
            })),
            Pending::SameAs(j) => match &answers[j] {
                Ok(Reply::Rendered(first)) => Ok(Reply::Rendered(RenderedAnswer {
                    rendered: first.rendered.clone(),
                    replayed: true,
                })),
                // The first found its candidates full and recorded nothing: so does this one.
                Ok(Reply::Decided(first)) if is_candidates_full(Some(first)) => {
                    Ok(Reply::Decided(first.clone()))
                }
                _ => Err(ReserveError::IdempotencyKeyReused),
            },
            Pending::KeyReused => Err(ReserveError::IdempotencyKeyReused),
            Pending::Unreadable => Err(ReserveError::IdempotencyRecordUnreadable),
        };
        answers.push(answer);
    }
    let deltas = effects.slot_deltas.clone();
    BatchWrite {
        effects,
        idempotency,
        result: (answers, deltas),
    }
}

fn is_candidates_full(outcome: Option<&Outcome>) -> bool {
    matches!(
        outcome,
        Some(Outcome::Refused(crate::booking::Refusal::CandidatesFull))
    )
}

/// How a request is answered whose key already has a record: with the record's answer, if it
/// was stored for the same request.
///
/// Records of the current format hold the status and body the client got, replayed as they
/// are. Format-1 booking records (written before migration 0006) hold the engine's `Outcome` as
/// JSON: they are decoded with today's `Outcome` and rendered by the retry's own render
/// function, which is what a retry was answered with before (the first answer's status and
/// body, up to a `slot_full`'s alternatives, which were worked out afresh). A format-1 record
/// that no longer decodes (`Outcome` changed since it was stored), or a format this build does
/// not know, is refused as `IdempotencyRecordUnreadable`: nothing can say what its client saw,
/// and running the request again could do twice what it did once.
fn replay(record: &IdempotencyRecord, keyed: &Keyed) -> Pending {
    if record.request_hash != keyed.key.request_hash {
        return Pending::KeyReused;
    }
    match &record.answer {
        StoredAnswer::Http { status, body } => Pending::Replayed(Rendered {
            status: *status,
            body: body.clone(),
        }),
        StoredAnswer::LegacyOutcome(json) => match serde_json::from_str::<Outcome>(json) {
            Ok(outcome) => Pending::Replayed((keyed.render)(&outcome)),
            Err(_) => Pending::Unreadable,
        },
        StoredAnswer::Unknown { .. } => Pending::Unreadable,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::reserve::IdempotencyKey;

    fn keyed(hash: &str) -> Keyed {
        Keyed {
            key: IdempotencyKey {
                scope: "c".into(),
                key: "k".into(),
                request_hash: hash.into(),
            },
            render: Arc::new(|outcome: &Outcome| Rendered {
                status: 299,
                body: format!("{outcome:?}"),
            }),
        }
    }

    fn record(answer: StoredAnswer) -> IdempotencyRecord {
        IdempotencyRecord {
            scope: "c".into(),
            key: "k".into(),
            request_hash: "h".into(),
            answer,
        }
    }

    fn replayed(p: Pending) -> Option<Rendered> {
        match p {
            Pending::Replayed(r) => Some(r),
            _ => None,
        }
    }

    #[test]
    fn records_replay_by_their_format() {
        let http = StoredAnswer::Http {
            status: 201,
            body: r#"{"hold_id":"h1"}"#.into(),
        };
        assert_eq!(
            replayed(replay(&record(http.clone()), &keyed("h"))),
            Some(Rendered {
                status: 201,
                body: r#"{"hold_id":"h1"}"#.into()
            }),
            "as stored"
        );
        assert!(matches!(
            replay(&record(http), &keyed("other")),
            Pending::KeyReused
        ));
        // Format 1: the outcome, rendered now by the retry's render function.
        let legacy = StoredAnswer::LegacyOutcome(r#"{"outcome":"released","hold_id":"h1"}"#.into());
        assert_eq!(
            replayed(replay(&record(legacy), &keyed("h"))),
            Some(Rendered {
                status: 299,
                body: format!(
                    "{:?}",
                    Outcome::Released {
                        hold_id: "h1".into()
                    }
                )
            })
        );
        for unreadable in [
            StoredAnswer::LegacyOutcome(r#"{"outcome":"let_go","hold_id":"h1"}"#.into()),
            StoredAnswer::Unknown {
                format_version: 3,
                status: 201,
                body: "{}".into(),
            },
        ] {
            assert!(matches!(
                replay(&record(unreadable), &keyed("h")),
                Pending::Unreadable
            ));
        }
    }

    /// A keyed auto-pick whose candidates were all full is answered with its outcome and
    /// leaves no record under its key (the handler asks again under the same key); one that
    /// took a seat is recorded as rendered.
    #[test]
    fn an_all_full_pick_leaves_no_idempotency_record() {
        use crate::booking::{PickHold, Refusal, SlotRow};
        let mut state = BatchState::default();
        for (id, capacity) in [(1, 0), (2, 1)] {
            state.slots.insert(
                id,
                SlotRow {
                    id,
                    office_id: "021-0001".into(),
                    start_at: 1_000,
                    duration_minutes: 15,
                    capacity,
                    taken: 0,
                    opens_at: None,
                    opens_for: None,
                },
            );
        }
        for code in ["a", "b"] {
            state.applications.insert(
                format!("app-{code}"),
                crate::booking::ApplicationRef {
                    id: format!("app-{code}"),
                    national_code: code.into(),
                    service: "first_issuance".into(),
                },
            );
        }
        let pick = |code: &str, candidates: Vec<i64>, key: &str| {
            let mut k = keyed("h");
            k.key.key = key.into();
            (
                Request::PickHold(PickHold {
                    national_code: code.into(),
                    application_id: format!("app-{code}").into(),
                    service: "first_issuance".into(),
                    candidates,
                    hold_id: format!("hold-{code}").into(),
                    expires_at: 600,
                }),
                Some(k),
            )
        };
        let batch = vec![pick("a", vec![1], "k1"), pick("b", vec![1, 2], "k2")];
        let write = decide_batch(&batch, &mut state, &Stored::default(), 0);
        let (answers, deltas) = write.result;
        assert!(matches!(
            &answers[0],
            Ok(Reply::Decided(Outcome::Refused(Refusal::CandidatesFull)))
        ));
        assert!(matches!(&answers[1], Ok(Reply::Rendered(r)) if r.rendered.status == 299));
        let keys: Vec<&str> = write.idempotency.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["k2"]);
        assert_eq!(deltas, BTreeMap::from([(2, 1)]));
    }
}
