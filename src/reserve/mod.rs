//! The reservation engine's running part: writer tasks that take booking requests from
//! queues, apply a batch of them in one database transaction (group commit), and answer each
//! request only after the commit. Around it: the in-memory
//! availability view, the hold-expiry sweeper, and idempotent replays.
//!
//! Architecture invariants:
//! - every change to seats goes through the writer and the database transaction; nothing else
//!   writes `slots.taken`, `holds` or `appointments` (staff and admin changes enter as writer
//!   requests too);
//! - a request is answered only after its batch committed (or definitely failed);
//! - the queues are bounded together: when `queue_bound` requests are waiting, in whichever
//!   queues, the caller is told to come back later, at once.

pub mod availability;
pub mod ballot;
pub mod directory;
mod entries;
pub mod ids;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore, TryAcquireError};

pub use availability::{Availability, Candidate, PartOfDay, PickLimits, SlotView, Want};
pub use ids::{IdSource, SecureIds, SeededIds};

use crate::booking::{Expire, LeaveWaitlist, Limits, Outcome, ReleaseSeat, Request};
use crate::domain::time::Clock;
use crate::store::{BatchConn, Source, Store, StoreError};

/// The queue (of `queues`) a request goes to: by the slot it may take a seat in, else by the
/// citizen or record it names, so that a request's writer does not depend on what else is
/// queued, and two writers never lock the same slot to take seats in it.
fn queue_index(request: &Request, queues: usize) -> usize {
    use std::hash::{Hash, Hasher};
    if queues <= 1 {
        return 0;
    }
    let key = match request.seat_slot() {
        Some(slot_id) => slot_id.unsigned_abs(),
        None => {
            // SipHash with fixed keys: the same subject goes to the same queue in every run.
            let mut h = std::collections::hash_map::DefaultHasher::new();
            request.subject().hash(&mut h);
            h.finish()
        }
    };
    (key % queues as u64) as usize
}

/// The queue of the auto-picks from `anchor` (their nearest office): one per anchor, as a
/// slot's requests have one.
fn anchor_queue(anchor: &str, queues: usize) -> usize {
    use std::hash::{Hash, Hasher};
    if queues <= 1 {
        return 0;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    anchor.hash(&mut h);
    (h.finish() % queues as u64) as usize
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most requests in one transaction.
    pub batch_max: usize,
    /// How long the writer waits for more requests once it has one (group commit window).
    pub linger: Duration,
    /// Requests waiting for the writers, in all their queues together; beyond this, callers
    /// get `Overloaded` at once.
    pub queue_bound: usize,
    /// How long a hold keeps its seat.
    pub hold_ttl: Duration,
    /// Attempts of a batch that a concurrent writer (another process) made conflict.
    pub batch_attempts: u32,
    /// Most expired holds released per sweep.
    pub sweep_limit: i64,
    /// Concurrent writer tasks. On PostgreSQL each has its own connection and their
    /// transactions overlap; on SQLite they share the writer thread, and one's batch waits in
    /// its queue while another's runs.
    pub writers: usize,
    /// The caps on an applicant's reschedules and cancellations, which every batch is decided
    /// under.
    pub limits: Limits,
    /// What a day of waiting costs an auto-pick, in km of travel (the allocator's
    /// `wait_km_per_day`): a seat `d` days from today costs distance + this × `d`.
    pub wait_km_per_day: f64,
    /// How long a waitlist offer holds its seat.
    pub offer_ttl: Duration,
    /// Bounds of the uniform random delay before a seat an applicant gave up (and no waiter
    /// took) returns to first-come booking; both zero disable it.
    pub release_delay_min: Duration,
    pub release_delay_max: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch_max: 512,
            linger: Duration::from_millis(1),
            queue_bound: 16_384,
            hold_ttl: Duration::from_secs(600),
            batch_attempts: 3,
            sweep_limit: 2_000,
            writers: 2,
            limits: Limits::default(),
            wait_km_per_day: 5.0,
            offer_ttl: Duration::from_secs(2 * 3600),
            release_delay_min: Duration::from_secs(5 * 60),
            release_delay_max: Duration::from_secs(30 * 60),
        }
    }
}

/// An `Idempotency-Key` with the scope it belongs to and a hash of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub scope: String,
    pub key: String,
    pub request_hash: String,
}

/// The answer a client gets, as the HTTP layer renders it: a status code and a JSON body. Kept
/// free of HTTP types: this layer stores it with the request's idempotency key and hands it
/// back byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub status: u16,
    pub body: String,
}

/// Renders an outcome as the client gets it: the HTTP layer's own function, the one its handler
/// answers with. For a request with an idempotency key the writer calls it inside the batch's
/// transaction (on SQLite on the writer thread, the serial stage of every booking), so it must
/// be quick and must not block or do I/O.
pub type Render = Arc<dyn Fn(&Outcome) -> Rendered + Send + Sync>;

/// The writer's answer to one request without an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub outcome: Outcome,
}

/// The answer to a request submitted with its render function (`submit_rendered`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedAnswer {
    pub rendered: Rendered,
    /// True when this is the stored answer to an earlier request with the same key.
    pub replayed: bool,
}

/// A request's idempotency key and how its answer is rendered for the record.
#[derive(Clone)]
pub(crate) struct Keyed {
    pub key: IdempotencyKey,
    pub render: Render,
}

/// What the writer answers a job with: the outcome for a job without a key, the rendered
/// answer (stored with the key in the same transaction, or replayed) for one with a key.
// The outcome is not boxed: a reply moves once, through its oneshot, and a box would cost an
// allocation per request on the booking path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Reply {
    Decided(Outcome),
    Rendered(RenderedAnswer),
}

/// Why a request got no answer from the writer. The storage error underneath, if any, is the
/// `source` (the same one for every request of a failed batch).
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error("the booking queue is full; retry shortly")]
    Overloaded,
    #[error("storage is unavailable: {0}")]
    Unavailable(#[source] Source),
    #[error("the idempotency key was used with a different request")]
    IdempotencyKeyReused,
    /// The key's stored answer is in a format this build cannot replay (a format-1 booking
    /// record whose outcome no longer decodes, or a newer build's format).
    #[error("the idempotency key's stored answer cannot be replayed by this version")]
    IdempotencyRecordUnreadable,
    #[error("the booking could not be applied: {0}")]
    Failed(#[source] StoreError),
    #[error("the booking engine has stopped")]
    Stopped,
}

impl From<StoreError> for ReserveError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => ReserveError::Unavailable(cause),
            other => ReserveError::Failed(other),
        }
    }
}

pub(crate) struct Job {
    pub request: Request,
    pub idempotency: Option<Keyed>,
    pub reply: oneshot::Sender<Result<Reply, ReserveError>>,
    /// The job's place among the `queue_bound` waiting requests; the writer lets it go when it
    /// takes the job into a batch.
    pub waiting: Option<OwnedSemaphorePermit>,
}

/// A handle to the engine; cheap to clone.
#[derive(Clone)]
pub struct Reservations {
    /// One queue per writer on PostgreSQL, one shared by the writers on SQLite. Unbounded as
    /// channels; `waiting` bounds them together.
    queues: Arc<[mpsc::UnboundedSender<Job>]>,
    /// `queue_bound` permits, one held by each waiting request. One bound for all the queues,
    /// so a surge on one slot (one queue) may use all of it.
    waiting: Arc<Semaphore>,
    store: Store,
    availability: Arc<Availability>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    config: EngineConfig,
    /// Auto-picks submitted and not yet answered, by their anchor (the office their limits
    /// start from): how many seats a new pick's candidates should hold so that it still finds
    /// one when the picks ahead of it, for the same seats, took theirs. Per anchor, so that a
    /// surge in one town does not lengthen every other town's candidate lists (and locks).
    picks_in_flight: Arc<std::sync::Mutex<std::collections::HashMap<Arc<str>, usize>>>,
    /// Auto-picks submitted to the writer, and those of them whose candidates were all full.
    pick_rounds: Arc<[std::sync::atomic::AtomicU64; 2]>,
    /// The ballots not yet published, for listings (`ballot::BallotMark`), reloaded with the
    /// view.
    ballots: Arc<std::sync::RwLock<Vec<ballot::BallotMark>>>,
    /// The entry writer's queue (ballot entries in group commit: `entries`).
    entries: entries::EntryQueue,
}

/// The answer to an auto-pick (`submit_pick`).
#[derive(Debug)]
pub enum PickAnswer {
    Answered(RenderedAnswer),
    /// Every candidate was full on the locked rows: nothing was written or recorded; ask
    /// again with fresh candidates.
    CandidatesFull,
}

impl Reservations {
    /// Loads the availability view from the database and starts the writer task.
    /// The writer stops when every handle is dropped.
    pub async fn start(
        store: Store,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
        config: EngineConfig,
    ) -> Result<Self, StoreError> {
        let availability = Arc::new(Availability::default());
        let now = clock.now().timestamp();
        // Yesterday's slots stay visible so a receipt for this morning still resolves its slot.
        availability.load_at(store.bookable_slots(now - 86_400).await?, now);
        // PostgreSQL locks rows, so several writers, each on its own connection and queue,
        // overlap one batch's commit with the next batch's work. Requests that may take a seat
        // go to the queue of their slot (`queue_index`), so two writers of one process never lock
        // the same slot and wait for each other's commit. SQLite has one write lock: its
        // writers share one queue and the one writer thread, whose queue holds one writer's
        // batch while the other's runs.
        let writers = config.writers.max(1);
        let shared_conn = Arc::new(BatchConn::default());
        let shared_queue = match store.backend() {
            crate::store::Backend::Postgres => None,
            crate::store::Backend::Sqlite => Some(mpsc::unbounded_channel()),
        };
        let mut queues = Vec::with_capacity(writers);
        let mut receivers = Vec::with_capacity(writers);
        match shared_queue {
            Some((queue, rx)) => {
                queues.push(queue);
                let rx = Arc::new(tokio::sync::Mutex::new(rx));
                receivers.resize_with(writers, || (rx.clone(), 0, shared_conn.clone()));
            }
            None => {
                for i in 0..writers {
                    let (queue, rx) = mpsc::unbounded_channel();
                    queues.push(queue);
                    receivers.push((
                        Arc::new(tokio::sync::Mutex::new(rx)),
                        i,
                        Arc::new(BatchConn::default()),
                    ));
                }
            }
        }
        for (rx, queue, conn) in receivers {
            tokio::spawn(writer::run(
                store.clone(),
                availability.clone(),
                clock.clone(),
                ids.clone(),
                config.clone(),
                rx,
                queue,
                conn,
            ));
        }
        let queue_bound = config.queue_bound.clamp(1, Semaphore::MAX_PERMITS);
        let entries = entries::EntryQueue::start(store.clone(), clock.clone(), &config, writers);
        let engine = Self {
            queues: queues.into(),
            waiting: Arc::new(Semaphore::new(queue_bound)),
            store,
            availability,
            clock,
            ids,
            config,
            picks_in_flight: Arc::default(),
            pick_rounds: Arc::default(),
            ballots: Arc::default(),
            entries,
        };
        engine.reload_ballots().await?;
        Ok(engine)
    }

    pub fn availability(&self) -> &Availability {
        &self.availability
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn ids(&self) -> &Arc<dyn IdSource> {
        &self.ids
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Requests waiting for a writer now (of `queue_bound`): the waiting room's controller
    /// admits fewer while the writers' queues fill.
    pub fn queued(&self) -> usize {
        let bound = self.config.queue_bound.clamp(1, Semaphore::MAX_PERMITS);
        bound.saturating_sub(self.waiting.available_permits())
    }

    /// Reloads the availability view from the database (after slots were added, or to catch
    /// up with other processes).
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let now = self.clock.now().timestamp();
        self.availability
            .load_at(self.store.bookable_slots(now - 86_400).await?, now);
        self.reload_ballots().await
    }

    /// Puts a request in its queue, or refuses it at once when `queue_bound` requests are
    /// already waiting.
    fn enqueue(
        &self,
        request: Request,
        idempotency: Option<Keyed>,
    ) -> Result<oneshot::Receiver<Result<Reply, ReserveError>>, ReserveError> {
        let queue = queue_index(&request, self.queues.len());
        self.enqueue_to(queue, request, idempotency)
    }

    /// A place among the requests waiting for a writer (booking and entry queues share the
    /// bound): `Overloaded` when every place is taken, `Stopped` once the engine shuts down.
    pub(crate) fn queue_place(&self) -> Result<OwnedSemaphorePermit, ReserveError> {
        self.waiting
            .clone()
            .try_acquire_owned()
            .map_err(|e| match e {
                TryAcquireError::NoPermits => ReserveError::Overloaded,
                TryAcquireError::Closed => ReserveError::Stopped,
            })
    }

    fn enqueue_to(
        &self,
        queue: usize,
        request: Request,
        idempotency: Option<Keyed>,
    ) -> Result<oneshot::Receiver<Result<Reply, ReserveError>>, ReserveError> {
        let waiting = self.queue_place()?;
        let (reply, answer) = oneshot::channel();
        self.queues[queue]
            .send(Job {
                request,
                idempotency,
                reply,
                waiting: Some(waiting),
            })
            .map_err(|_| ReserveError::Stopped)?;
        Ok(answer)
    }

    /// Queues a request and waits for its committed outcome.
    pub async fn submit(&self, request: Request) -> Result<Answer, ReserveError> {
        let reply = self.enqueue(request, None)?;
        decided(reply.await.map_err(|_| ReserveError::Stopped)?)
    }

    /// Queues a request whose answer the client gets as `render` makes it, and waits for that
    /// answer. With an idempotency key, the writer renders the outcome inside the transaction
    /// that stores the key and stores the rendered answer with it, so a retry with the same key
    /// is answered with the same status and the same bytes (`replayed`); without one, the
    /// outcome is rendered here after the commit.
    pub async fn submit_rendered(
        &self,
        request: Request,
        idempotency: Option<IdempotencyKey>,
        render: Render,
    ) -> Result<RenderedAnswer, ReserveError> {
        let Some(key) = idempotency else {
            let answer = self.submit(request).await?;
            return Ok(RenderedAnswer {
                rendered: render(&answer.outcome),
                replayed: false,
            });
        };
        let keyed = Keyed {
            key,
            render: render.clone(),
        };
        let reply = self.enqueue(request, Some(keyed))?;
        Ok(match reply.await.map_err(|_| ReserveError::Stopped)?? {
            Reply::Rendered(answer) => answer,
            Reply::Decided(outcome) => RenderedAnswer {
                rendered: render(&outcome),
                replayed: false,
            },
        })
    }

    /// Auto-picks from `anchor` in flight in this process (see `submit_pick`).
    pub fn picks_in_flight(&self, anchor: &str) -> usize {
        let in_flight = self
            .picks_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        in_flight.get(anchor).copied().unwrap_or(0)
    }

    /// Auto-picks submitted to the writers so far, and how many of them found every
    /// candidate full (each asked again): the cost of stale candidates.
    pub fn pick_rounds(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.pick_rounds[0].load(Relaxed),
            self.pick_rounds[1].load(Relaxed),
        )
    }

    /// `submit_rendered` for an auto-pick (`PickHold`, `PickBook`): a refusal because every
    /// candidate was full is neither rendered nor stored with the key (the writer leaves it
    /// out of the idempotency records), so the caller can ask again with fresh candidates
    /// under the same key.
    pub async fn submit_pick(
        &self,
        request: Request,
        anchor: Arc<str>,
        idempotency: Option<IdempotencyKey>,
        render: Render,
    ) -> Result<PickAnswer, ReserveError> {
        use std::sync::atomic::Ordering;
        type Counts = std::sync::Mutex<std::collections::HashMap<Arc<str>, usize>>;
        /// Counts the pick in flight from its anchor until it is answered (or dropped).
        struct InFlight<'a>(&'a Counts, Arc<str>);
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(n) = counts.get_mut(&self.1) {
                    *n -= 1;
                    if *n == 0 {
                        counts.remove(&self.1);
                    }
                }
            }
        }
        // Every pick of one anchor goes to one writer, whatever its first candidate: the picks
        // of a hot group compete for the same seats, and split over two writers (the first
        // candidate changes as seats go) each batch waited on the other's row locks and then
        // found its candidates taken.
        let queue = anchor_queue(&anchor, self.queues.len());
        *self
            .picks_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(anchor.clone())
            .or_default() += 1;
        let _in_flight = InFlight(&self.picks_in_flight, anchor);
        let keyed = idempotency.map(|key| Keyed {
            key,
            render: render.clone(),
        });
        let reply = self.enqueue_to(queue, request, keyed)?;
        self.pick_rounds[0].fetch_add(1, Ordering::Relaxed);
        Ok(match reply.await.map_err(|_| ReserveError::Stopped)?? {
            Reply::Rendered(answer) => PickAnswer::Answered(answer),
            Reply::Decided(Outcome::Refused(crate::booking::Refusal::CandidatesFull)) => {
                self.pick_rounds[1].fetch_add(1, Ordering::Relaxed);
                PickAnswer::CandidatesFull
            }
            Reply::Decided(outcome) => PickAnswer::Answered(RenderedAnswer {
                rendered: render(&outcome),
                replayed: false,
            }),
        })
    }

    /// Queues several requests at once (so they can share a batch) and waits for all outcomes.
    pub async fn submit_many(&self, requests: Vec<Request>) -> Vec<Result<Answer, ReserveError>> {
        let waiting: Vec<_> = requests
            .into_iter()
            .map(|request| self.enqueue(request, None))
            .collect();
        let mut answers = Vec::with_capacity(waiting.len());
        for w in waiting {
            answers.push(match w {
                Ok(reply) => decided(reply.await.unwrap_or(Err(ReserveError::Stopped))),
                Err(e) => Err(e),
            });
        }
        answers
    }

    /// Expires every live hold whose time is up (bounded per call). The background sweeper
    /// calls this periodically; tests call it directly after moving the clock.
    /// Returns how many holds were expired.
    pub async fn sweep_expired(&self) -> Result<usize, ReserveError> {
        let now = self.clock.now().timestamp();
        let due = self.store.due_holds(now, self.config.sweep_limit).await?;
        let requests = due
            .into_iter()
            .map(|hold_id| {
                Request::Expire(Expire {
                    hold_id: hold_id.into(),
                })
            })
            .collect();
        let mut expired = 0;
        for answer in self.submit_many(requests).await {
            if matches!(answer?.outcome, Outcome::Expired { .. }) {
                expired += 1;
            }
        }
        Ok(expired)
    }

    /// Ends every seat release whose delay is over (bounded per call): each seat goes to a
    /// waiter or back to first-come booking. The sweeper calls this with `sweep_expired`;
    /// tests call it after moving the clock. Returns how many were ended.
    pub async fn sweep_releases(&self) -> Result<usize, ReserveError> {
        let now = self.clock.now().timestamp();
        let due = self
            .store
            .due_releases(now, self.config.sweep_limit)
            .await?;
        let requests = due
            .into_iter()
            .map(|release_id| {
                Request::ReleaseSeat(ReleaseSeat {
                    release_id,
                    closing: false,
                })
            })
            .collect();
        let mut released = 0;
        for answer in self.submit_many(requests).await {
            if matches!(answer?.outcome, Outcome::SeatReleased { .. }) {
                released += 1;
            }
        }
        Ok(released)
    }

    /// Lapses every waiting entry whose last date has passed (bounded per call): no freed
    /// seat can fit it any more. The sweeper calls this with `sweep_releases`; tests call it
    /// after moving the clock. Returns how many lapsed.
    pub async fn sweep_lapsed(&self) -> Result<usize, ReserveError> {
        let now = self.clock.now().timestamp();
        let due = self
            .store
            .lapsed_entries(now, self.config.sweep_limit)
            .await?;
        let requests = due
            .into_iter()
            .map(|(entry_id, national_code)| {
                Request::LeaveWaitlist(LeaveWaitlist {
                    national_code,
                    entry_id,
                    lapsed: true,
                })
            })
            .collect();
        let mut lapsed = 0;
        for answer in self.submit_many(requests).await {
            if matches!(answer?.outcome, Outcome::WaitlistLeft { .. }) {
                lapsed += 1;
            }
        }
        Ok(lapsed)
    }

    /// Runs the sweeper every `interval` until the engine stops.
    pub fn spawn_sweeper(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match engine.sweep_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(expired = n, "hold sweep"),
                    Err(ReserveError::Stopped) => break,
                    Err(e) => tracing::warn!(
                        error = &e as &dyn std::error::Error,
                        "hold sweep failed; will retry"
                    ),
                }
                match engine.sweep_releases().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(released = n, "seat release sweep"),
                    Err(ReserveError::Stopped) => break,
                    Err(e) => tracing::warn!(
                        error = &e as &dyn std::error::Error,
                        "seat release sweep failed; will retry"
                    ),
                }
                match engine.sweep_lapsed().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(lapsed = n, "waitlist lapse sweep"),
                    Err(ReserveError::Stopped) => break,
                    Err(e) => tracing::warn!(
                        error = &e as &dyn std::error::Error,
                        "waitlist lapse sweep failed; will retry"
                    ),
                }
            }
        })
    }
}

/// The outcome the writer answered a job without a key with.
fn decided(reply: Result<Reply, ReserveError>) -> Result<Answer, ReserveError> {
    match reply? {
        Reply::Decided(outcome) => Ok(Answer { outcome }),
        Reply::Rendered(_) => unreachable!("the writer renders only the answers of keyed jobs"),
    }
}

#[cfg(test)]
mod tests {
    use super::{queue_index, ReserveError};
    use crate::booking::{Confirm, Hold, Release, Request, Reschedule};
    use crate::store::StoreError;
    use std::error::Error;

    #[test]
    fn a_storage_error_stays_the_source() {
        let timed_out = sqlx::Error::PoolTimedOut.to_string();
        let e = ReserveError::from(StoreError::from(sqlx::Error::PoolTimedOut));
        assert!(matches!(e, ReserveError::Unavailable(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!("storage is unavailable: {timed_out}")
        );
        assert_eq!(e.source().map(|s| s.to_string()), Some(timed_out));

        let io = std::io::Error::other("disk on fire");
        let e = ReserveError::from(StoreError::from(rusqlite::Error::ToSqlConversionFailure(
            Box::new(io),
        )));
        assert!(matches!(e, ReserveError::Failed(_)), "{e:?}");
        let chain: Vec<String> = std::iter::successors(e.source(), |e| (*e).source())
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            chain.last().map(String::as_str),
            Some("disk on fire"),
            "{chain:?}"
        );
    }

    fn hold(code: &str, slot_id: i64) -> Request {
        Request::Hold(Hold {
            national_code: code.into(),
            application_id: "a".into(),
            service: "first_issuance".into(),
            slot_id,
            hold_id: "h".into(),
            expires_at: 0,
        })
    }

    #[test]
    fn requests_that_take_seats_in_one_slot_share_a_queue() {
        for queues in 1..=4 {
            for slot_id in 1..50 {
                let q = queue_index(&hold("0499370899", slot_id), queues);
                assert!(q < queues);
                assert_eq!(q, queue_index(&hold("1111111111", slot_id), queues));
                let reschedule = Request::Reschedule(Reschedule {
                    national_code: "2222222222".into(),
                    tracking_code: "T".into(),
                    new_slot_id: slot_id,
                });
                assert_eq!(q, queue_index(&reschedule, queues));
            }
        }
        // Two queues: slots alternate, so both writers get work.
        assert_ne!(queue_index(&hold("x", 1), 2), queue_index(&hold("x", 2), 2));
    }

    #[test]
    fn other_requests_go_by_their_citizen() {
        let confirm = |code: &str, hold_id: &str| {
            Request::Confirm(Confirm {
                national_code: code.into(),
                hold_id: hold_id.into(),
                payment_id: "p".into(),
                tracking_code: "T".into(),
            })
        };
        let release = Request::Release(Release {
            national_code: "0499370899".into(),
            hold_id: "h2".into(),
            closing: false,
        });
        for queues in 1..=4 {
            let q = queue_index(&confirm("0499370899", "h1"), queues);
            assert!(q < queues);
            assert_eq!(q, queue_index(&confirm("0499370899", "h9"), queues));
            assert_eq!(q, queue_index(&release, queues));
        }
        let spread: std::collections::HashSet<usize> = (0..64)
            .map(|i| queue_index(&confirm(&format!("{i:010}"), "h"), 2))
            .collect();
        assert_eq!(spread.len(), 2, "citizens spread over the queues");
    }
}
