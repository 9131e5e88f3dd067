//! The reservation engine's running part: one writer task per process that takes booking
//! requests from a bounded queue, applies a batch of them in one database transaction (group
//! commit), and answers each request only after the commit. Around it: the in-memory
//! availability view, the hold-expiry sweeper, and idempotent replays.
//!
//! Architecture invariants:
//! - every change to seats goes through the writer and the database transaction; nothing else
//!   writes `slots.taken`, `holds` or `appointments` (staff and admin changes enter as writer
//!   requests too);
//! - a request is answered only after its batch committed (or definitely failed);
//! - the queue is bounded: when it is full the caller is told to come back later, at once.

pub mod availability;
pub mod ids;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use availability::{Availability, SlotView};
pub use ids::{IdSource, SecureIds, SeededIds};

use crate::domain::time::Clock;
use crate::engine::booking::{Outcome, Request};
use crate::store::{BatchConn, Store, StoreError};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most requests in one transaction.
    pub batch_max: usize,
    /// How long the writer waits for more requests once it has one (group commit window).
    pub linger: Duration,
    /// Requests waiting for the writer; beyond this, callers get `Overloaded` at once.
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

/// The writer's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub outcome: Outcome,
    /// True when this is the stored answer to an earlier request with the same key.
    pub replayed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error("the booking queue is full; retry shortly")]
    Overloaded,
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("the idempotency key was used with a different request")]
    IdempotencyKeyReused,
    #[error("the booking could not be applied: {0}")]
    Failed(String),
    #[error("the booking engine has stopped")]
    Stopped,
}

impl From<StoreError> for ReserveError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => ReserveError::Unavailable(m),
            other => ReserveError::Failed(other.to_string()),
        }
    }
}

pub(crate) struct Job {
    pub request: Request,
    pub idempotency: Option<IdempotencyKey>,
    pub reply: oneshot::Sender<Result<Answer, ReserveError>>,
}

/// A handle to the engine; cheap to clone.
#[derive(Clone)]
pub struct Reservations {
    queue: mpsc::Sender<Job>,
    store: Store,
    availability: Arc<Availability>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    config: EngineConfig,
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
        availability.load(store.bookable_slots(now - 86_400).await?);
        let (queue, rx) = mpsc::channel(config.queue_bound);
        // PostgreSQL locks rows, so several writers, each on its own connection, overlap one
        // batch's commit with the next batch's work. SQLite has one write lock: its writers
        // share the one writer thread, whose queue holds one writer's batch while the other's
        // runs.
        let shared = Arc::new(BatchConn::default());
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..config.writers.max(1) {
            let conn = match store.backend() {
                crate::store::Backend::Postgres => Arc::new(BatchConn::default()),
                crate::store::Backend::Sqlite => shared.clone(),
            };
            tokio::spawn(writer::run(
                store.clone(),
                availability.clone(),
                clock.clone(),
                config.clone(),
                rx.clone(),
                conn,
            ));
        }
        Ok(Self {
            queue,
            store,
            availability,
            clock,
            ids,
            config,
        })
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

    /// Reloads the availability view from the database (after slots were added, or to catch
    /// up with other processes).
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let now = self.clock.now().timestamp();
        self.availability
            .load(self.store.bookable_slots(now - 86_400).await?);
        Ok(())
    }

    /// Queues a request and waits for its committed answer.
    pub async fn submit(
        &self,
        request: Request,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Answer, ReserveError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .try_send(Job {
                request,
                idempotency,
                reply,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => ReserveError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => ReserveError::Stopped,
            })?;
        answer.await.map_err(|_| ReserveError::Stopped)?
    }

    /// Queues several requests at once (so they can share a batch) and waits for all answers.
    pub async fn submit_many(&self, requests: Vec<Request>) -> Vec<Result<Answer, ReserveError>> {
        let mut waiting = Vec::with_capacity(requests.len());
        for request in requests {
            let (reply, answer) = oneshot::channel();
            let queued = self
                .queue
                .try_send(Job {
                    request,
                    idempotency: None,
                    reply,
                })
                .map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => ReserveError::Overloaded,
                    mpsc::error::TrySendError::Closed(_) => ReserveError::Stopped,
                });
            waiting.push(queued.map(|()| answer));
        }
        let mut answers = Vec::with_capacity(waiting.len());
        for w in waiting {
            answers.push(match w {
                Ok(answer) => answer.await.unwrap_or(Err(ReserveError::Stopped)),
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
            .map(|hold_id| Request::Expire { hold_id })
            .collect();
        let mut expired = 0;
        for answer in self.submit_many(requests).await {
            if matches!(answer?.outcome, Outcome::Expired { .. }) {
                expired += 1;
            }
        }
        Ok(expired)
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
                    Err(e) => tracing::warn!(error = %e, "hold sweep failed; will retry"),
                }
            }
        })
    }
}
