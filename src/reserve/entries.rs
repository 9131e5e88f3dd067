//! The entry writer: group commit of ballot entries. A surge of entries is the point of a
//! ballot (everyone enters in the window, nobody races for a seat), so entries are not written
//! one transaction each by their handlers: they queue here, and a writer task takes what is
//! queued (up to `batch_max`), hands the batch to `Store::write_ballot_entries` (one
//! transaction that decides and writes them all) and answers each request after the commit.
//!
//! Entries take no seat, so they do not ride in the booking batches (which read and lock
//! slots): they have a queue and tasks of their own. On SQLite their transaction still runs on
//! the one writer thread that makes every write of the applicant's path, beside the booking
//! batches, so nothing waits for SQLite's write lock. The queue shares the booking queues'
//! bound (`queue_bound` waiting requests, then `Overloaded`).
//!
//! A batch names each entry once: a second change of an entry already in the batch being
//! collected waits for the next batch, so one citizen's changes apply in the order they came.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio::time::Instant;

use super::{EngineConfig, Reservations, ReserveError};
use crate::domain::time::Clock;
use crate::store::{BallotRow, EntryChange, EntryWrite, Store, StoreError};

/// One change waiting for the entry writer.
pub(super) struct EntryJob {
    change: EntryChange,
    reply: oneshot::Sender<Result<EntryWrite, ReserveError>>,
    /// Its place among the `queue_bound` waiting requests, let go when a batch takes it.
    waiting: Option<OwnedSemaphorePermit>,
}

/// The entry writer's queue and the ballots its requests were checked against.
#[derive(Clone)]
pub(super) struct EntryQueue {
    jobs: mpsc::UnboundedSender<EntryJob>,
    /// Ballots by id as created (their terms, times, offices and salt never change after
    /// creation; the status here may be stale, and the batch reads the stored one).
    ballots: Arc<std::sync::RwLock<HashMap<String, Arc<BallotRow>>>>,
}

impl EntryQueue {
    /// Starts `writers` tasks on one queue (each collects a batch while another's commits).
    pub(super) fn start(
        store: Store,
        clock: Arc<dyn Clock>,
        config: &EngineConfig,
        writers: usize,
    ) -> EntryQueue {
        let (jobs, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(tokio::sync::Mutex::new(Receiver {
            rx,
            deferred: VecDeque::new(),
        }));
        for _ in 0..writers.max(1) {
            tokio::spawn(run(
                store.clone(),
                clock.clone(),
                config.clone(),
                rx.clone(),
            ));
        }
        EntryQueue {
            jobs,
            ballots: Arc::default(),
        }
    }
}

/// The queue's receiving end and the changes deferred to the next batch.
struct Receiver {
    rx: mpsc::UnboundedReceiver<EntryJob>,
    /// Changes of entries already in the batch they were collected for, oldest first: they
    /// open the next batch.
    deferred: VecDeque<EntryJob>,
}

impl Receiver {
    /// The next batch: deferred changes first, then what is queued, waiting up to the linger
    /// window once one is in hand. `None` when the queue closed and nothing is left.
    async fn batch(&mut self, config: &EngineConfig) -> Option<Vec<EntryJob>> {
        let first = match self.deferred.pop_front() {
            Some(job) => job,
            None => self.rx.recv().await?,
        };
        let max = config.batch_max.max(1);
        let mut keys: HashSet<(String, String)> = HashSet::new();
        let mut batch = Vec::with_capacity(max.min(1024));
        let mut later = VecDeque::new();
        let mut take = |job: EntryJob, batch: &mut Vec<EntryJob>| {
            let (b, c) = job.change.key();
            if keys.insert((b.to_string(), c.to_string())) {
                batch.push(job);
            } else {
                later.push_back(job);
            }
        };
        take(first, &mut batch);
        while batch.len() < max {
            let Some(job) = self.deferred.pop_front() else {
                break;
            };
            take(job, &mut batch);
        }
        let deadline = Instant::now() + config.linger;
        while batch.len() < max {
            match self.rx.try_recv() {
                Ok(job) => take(job, &mut batch),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    if config.linger.is_zero() {
                        break;
                    }
                    match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                        Ok(Some(job)) => take(job, &mut batch),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        // Deferred before anything still queued: they are older.
        later.append(&mut self.deferred);
        self.deferred = later;
        for job in &mut batch {
            job.waiting = None;
        }
        Some(batch)
    }
}

/// One writer task: takes a batch (holding the queue only while collecting), writes it,
/// answers it, repeats; ends when the queue closes.
async fn run(
    store: Store,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    rx: Arc<tokio::sync::Mutex<Receiver>>,
) {
    loop {
        let Some(batch) = rx.lock().await.batch(&config).await else {
            return;
        };
        metrics::histogram!("nobat_entry_batch_size").record(batch.len() as f64);
        let started = std::time::Instant::now();
        write(&store, clock.as_ref(), batch).await;
        metrics::histogram!("nobat_entry_batch_duration_seconds")
            .record(started.elapsed().as_secs_f64());
    }
}

/// Writes a batch and answers each of its requests (after the commit). A batch that fails
/// for another reason than the database being unavailable is retried one change at a time,
/// so one bad change cannot sink the others.
async fn write(store: &Store, clock: &dyn Clock, batch: Vec<EntryJob>) {
    let changes: Vec<EntryChange> = batch.iter().map(|j| j.change.clone()).collect();
    let now = clock.now().timestamp();
    match store.write_ballot_entries(changes, now).await {
        Ok(writes) => {
            for (job, w) in batch.into_iter().zip(writes) {
                let _ = job.reply.send(Ok(w));
            }
        }
        Err(e) if batch.len() > 1 && !e.is_unavailable() => {
            tracing::warn!(
                error = &e as &dyn std::error::Error,
                batch = batch.len(),
                "entry batch failed; writing its changes one by one"
            );
            for job in batch {
                let now = clock.now().timestamp();
                let w = store
                    .write_ballot_entries(vec![job.change.clone()], now)
                    .await
                    .and_then(|mut w| {
                        w.pop()
                            .ok_or_else(|| StoreError::corrupt("an entry batch lost an answer"))
                    });
                let _ = job.reply.send(w.map_err(ReserveError::from));
            }
        }
        Err(e) => {
            for job in batch {
                let _ = job.reply.send(Err(ReserveError::from(e.clone())));
            }
        }
    }
}

impl Reservations {
    /// Queues a change of a ballot entry and waits for its committed answer.
    pub async fn change_entry(&self, change: EntryChange) -> Result<EntryWrite, ReserveError> {
        let waiting = self.queue_place()?;
        let (reply, answer) = oneshot::channel();
        self.entries
            .jobs
            .send(EntryJob {
                change,
                reply,
                waiting: Some(waiting),
            })
            .map_err(|_| ReserveError::Stopped)?;
        answer.await.map_err(|_| ReserveError::Stopped)?
    }

    /// A ballot as created, for checking an entry before it is queued: from memory after the
    /// first read (its terms never change; its stored status is read again by the batch).
    pub async fn ballot_for_entry(&self, id: &str) -> Result<Option<Arc<BallotRow>>, StoreError> {
        if let Some(b) = self
            .entries
            .ballots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            return Ok(Some(b.clone()));
        }
        let Some(b) = self.store.ballot(id).await? else {
            return Ok(None);
        };
        let b = Arc::new(b);
        let mut cache = self
            .entries
            .ballots
            .write()
            .unwrap_or_else(|p| p.into_inner());
        // Bounded: ballots are a handful at a time; start over if something asks for many.
        if cache.len() >= 1_024 {
            cache.clear();
        }
        cache.insert(id.to_string(), b.clone());
        Ok(Some(b))
    }
}
