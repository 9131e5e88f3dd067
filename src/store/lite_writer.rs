//! SQLite's batch writer: one OS thread that owns the write connection and runs each batch's
//! transaction (read, decide, write, commit) with prepared, cached statements (rusqlite):
//! keyed lookups one row per execution, the bulk writes (new holds and appointments, hold
//! status changes, events) many rows per statement (`insert_rows`).
//!
//! Why a thread of its own rather than a pooled sqlx connection: sqlx runs every statement on
//! the connection's worker thread and hands each result back to the async task, so a batch of
//! a few dozen statements paid a few dozen thread hand-offs, and the connection sat idle during
//! each one (measured: the worker thread was busy half the time at full load). Here a batch
//! crosses threads twice: the async writer sends the keys and the decision (a closure over the
//! batch's requests, pure code), and gets the result back after the commit. SQLite has one
//! write lock, so this thread is the serial stage of every booking; it does nothing but write.
//!
//! The connection is opened with the pool's durability settings (WAL, `synchronous=FULL`), so
//! a commit acknowledged here survives `kill -9` and power loss exactly as before.
//!
//! The thread also makes the other writes of the applicant's path (applications, payments,
//! idempotency records: `LiteWriter::write`), several to a transaction, each in a savepoint of
//! its own. Made from pooled connections, each was a transaction of its own, with its own
//! fsync, competing with the booking batches for SQLite's one write lock; a loser slept in
//! SQLite's busy handler (1, 2, 5, … 100 ms, whether or not the lock had come free meanwhile),
//! holding its pooled connection, so reads queued behind it too. In a load test on the small
//! network at 300 applicants/s, `POST /v1/payments` waited 2.9 s at the median, `GET
//! /v1/status` (a read) 1.3 s. There is one thread per database file in the process
//! (`LiteWriter::shared`), so nothing in the process waits on the write lock.

use std::any::Any;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rusqlite::types::ToSql;
use rusqlite::{
    params, params_from_iter, Connection, OptionalExtension, Row, Transaction, TransactionBehavior,
};
use tokio::sync::oneshot;

use super::batch_plan::{self, Locking, ReadPlan, ReadStep, Stored, WriteStep};
use super::booking::{
    entry_cols_of_e, BatchExtras, BatchWrite, IdempotencyRecord, StoredAnswer, APPLICATION_COLS,
    APPT_COLS, CANCELLATIONS_OF_LITE, ENTRY_COLS, HOLD_COLS, RELEASE_COLS, SLOT_COLS,
};
use super::error::message;
use super::lite_checkpoint::{Checkpoints, WAL_BACKSTOP_PAGES};
use super::StoreError;
use crate::booking::{
    ApplicationRef, AppointmentRow, AppointmentStatus, BatchKeys, BatchState, HoldRow, HoldStatus,
    PartOfDay, PaymentRow, PaymentStatus, ReleaseStatus, SeatReleaseRow, SlotRow, WaitLimits,
    WaitRow, WaitStatus,
};

/// A batch's decision with its result type erased, so every batch travels on one channel.
type Decide = Box<dyn FnOnce(&mut BatchState, &Stored) -> BatchWrite<Box<dyn Any + Send>> + Send>;

type Reply = oneshot::Sender<Result<Box<dyn Any + Send>, StoreError>>;

struct Batch {
    keys: BatchKeys,
    extras: BatchExtras,
    decide: Decide,
    reply: Reply,
}

/// A write of its own (`LiteWriter::write`), its result type erased.
type WriteFn = Box<dyn FnOnce(&Connection) -> Result<Box<dyn Any + Send>, StoreError> + Send>;

struct Write {
    run: WriteFn,
    reply: Reply,
}

/// What the thread is asked to do, in the order asked.
enum Job {
    Batch(Box<Batch>),
    Write(Write),
    /// A write of many pages (a ballot's close), run alone with `LARGE_CACHE_KIB`.
    Large(Write),
}

impl Job {
    fn fail(self, e: StoreError) {
        let reply = match self {
            Job::Batch(b) => b.reply,
            Job::Write(w) | Job::Large(w) => w.reply,
        };
        let _ = reply.send(Err(e));
    }
}

/// How the thread opens its connection.
#[derive(Debug, Clone)]
pub(super) struct LiteSettings {
    pub path: PathBuf,
    pub busy_timeout: Duration,
}

/// A handle to the writer thread; the thread ends when the last handle is dropped.
pub(super) struct LiteWriter {
    /// Unbounded as a channel, bounded in use: each booking writer task waits for its batch
    /// before it submits another, so at most one batch per writer is ever queued; a write of
    /// its own is submitted by a request handler, and the server bounds those it serves at
    /// once (`--max-in-flight`).
    jobs: std_mpsc::Sender<Job>,
    /// Set when the thread has ended (it only does once every handle is gone, or if it
    /// panicked outside a batch), so `shared` starts another.
    stopped: Arc<AtomicBool>,
}

/// Most writes of their own that share one transaction.
const WRITES_PER_TX: usize = 256;
/// How long a write of its own waits for others to share its commit, when the thread
/// committed within `BUSY_WITHIN` before taking it up. Each commit is an fsync of the WAL, and on
/// a surge the applications and payments came one to a commit (the thread was never far
/// behind): this trades a millisecond of their latency for fewer commits. An idle writer
/// commits at once. The thread sleeps rather than waiting on the channel, so a write sent
/// meanwhile does not wake it (a wake-up per write would cost the context switches the
/// grouping saves, and on one core it would preempt the handlers making those writes).
/// Not longer: 3 and 6 ms cut the server's CPU per journey by 8 and 15 % where the core had
/// room (`surge-day.toml` rate scale 1), but near its edge (1.5) the writes' wait became
/// everyone's: request p99 180 ms at 1 ms, 567 and 282 ms at 3 and 6
/// (`scenarios/loadtest/README.md`, 2026-12-07).
const WRITE_LINGER: Duration = Duration::from_millis(1);
/// A commit this recent means the writer is busy: a write of its own lingers.
const BUSY_WITHIN: Duration = Duration::from_millis(5);

/// The writer threads of this process, by database file.
static WRITERS: Mutex<Vec<(PathBuf, Weak<LiteWriter>)>> = Mutex::new(Vec::new());

/// Page cache of the writer's connection: 8 MiB (SQLite's default is 2 MiB). Not more: each
/// commit that follows a page split scans the cache's whole page hash, which grows with the
/// cache and never shrinks. SQLite's `balance_nonroot` renumbers pages through the
/// pending-byte page (262,145), so the cache's largest key stays far above the file's size
/// and the next truncate to the file's size walks every bucket: with 64 MiB (16,384 buckets)
/// that was 5 % of a surge-day server's CPU.
const CACHE_KIB: i64 = 8 * 1024;
/// Page cache for a write of many pages (`LiteWriter::write_large`: a ballot's close writes
/// a million rows in one transaction); the connection is reopened after it, so the page
/// hash it grew does not stay.
const LARGE_CACHE_KIB: i64 = 64 * 1024;
/// Prepared statements the connection keeps: a batch's multi-row writes take up to eight
/// distinct row counts each (`ROWS_PER_STATEMENT`), about 60 statements, plus a dozen reads.
const STATEMENT_CACHE: usize = 256;

impl LiteWriter {
    /// The writer thread of `settings.path` in this process, started if there is none (or if
    /// the last one stopped). Everything in the process that writes that file through the
    /// writer thread shares it, so none of those writes waits for SQLite's write lock.
    pub fn shared(settings: LiteSettings) -> Result<Arc<LiteWriter>, StoreError> {
        let mut writers = WRITERS.lock().unwrap_or_else(|p| p.into_inner());
        writers.retain(|(_, w)| w.strong_count() > 0);
        let running = writers
            .iter()
            .find(|(path, _)| *path == settings.path)
            .and_then(|(_, w)| w.upgrade())
            .filter(|w| !w.stopped.load(Ordering::Acquire));
        if let Some(w) = running {
            return Ok(w);
        }
        let path = settings.path.clone();
        let w = Arc::new(LiteWriter::start(settings)?);
        writers.retain(|(p, _)| *p != path);
        writers.push((path, Arc::downgrade(&w)));
        Ok(w)
    }

    fn start(settings: LiteSettings) -> Result<LiteWriter, StoreError> {
        let (jobs, rx) = std_mpsc::channel::<Job>();
        let stopped = Arc::new(AtomicBool::new(false));
        let on_exit = StopFlag(stopped.clone());
        std::thread::Builder::new()
            .name("nobat-sqlite-writer".into())
            .spawn(move || {
                let _on_exit = on_exit;
                serve(settings, rx)
            })
            .map_err(|e| {
                StoreError::Unavailable(message(format!("cannot start the SQLite writer: {e}")))
            })?;
        Ok(LiteWriter { jobs, stopped })
    }

    /// Runs `write` on the writer thread, in a savepoint of a transaction it may share with
    /// other such writes queued at the same time; the result comes after the commit. An error
    /// of `write` rolls back its savepoint only; an error of the transaction (its begin or
    /// commit) fails every write in it, none of which is then stored.
    pub fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<Pending<T>, StoreError> {
        self.queue(write, Job::Write)
    }

    /// [`LiteWriter::write`] for a write of many pages (a ballot's close): it runs in a
    /// transaction of its own with a larger page cache, on a connection opened afresh after.
    pub fn write_large<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<Pending<T>, StoreError> {
        self.queue(write, Job::Large)
    }

    fn queue<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        job: fn(Write) -> Job,
    ) -> Result<Pending<T>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let run: WriteFn = Box::new(move |conn| Ok(Box::new(write(conn)?) as Box<dyn Any + Send>));
        self.jobs
            .send(job(Write { run, reply }))
            .map_err(|_| stopped())?;
        Ok(Pending {
            answer,
            result: PhantomData,
        })
    }

    /// Queues one batch for the thread, which begins, reads what `keys` names, lets `decide`
    /// work on the state, writes its effects and commits; [`Pending::result`] gives
    /// `decide`'s result after the commit. Batches run in the order they are submitted.
    pub fn submit<T: Send + 'static>(
        &self,
        keys: BatchKeys,
        extras: BatchExtras,
        decide: impl FnOnce(&mut BatchState, &Stored) -> BatchWrite<T> + Send + 'static,
    ) -> Result<Pending<T>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let decide: Decide = Box::new(move |state, stored| {
            let w = decide(state, stored);
            BatchWrite {
                effects: w.effects,
                idempotency: w.idempotency,
                result: Box::new(w.result) as Box<dyn Any + Send>,
            }
        });
        self.jobs
            .send(Job::Batch(Box::new(Batch {
                keys,
                extras,
                decide,
                reply,
            })))
            .map_err(|_| stopped())?;
        Ok(Pending {
            answer,
            result: PhantomData,
        })
    }
}

/// A submitted batch.
pub(super) struct Pending<T> {
    answer: oneshot::Receiver<Result<Box<dyn Any + Send>, StoreError>>,
    result: PhantomData<fn() -> T>,
}

impl<T: 'static> Pending<T> {
    /// Waits for the commit (or the error that rolled the batch back).
    pub async fn result(self) -> Result<T, StoreError> {
        let result = self.answer.await.map_err(|_| stopped())??;
        Ok(*result
            .downcast::<T>()
            .expect("a batch's result comes back as the type its decision made"))
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable(message("the SQLite writer thread stopped"))
}

/// Marks the thread stopped when it ends, by return or by panic.
struct StopFlag(Arc<AtomicBool>);

impl Drop for StopFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

fn open(settings: &LiteSettings) -> Result<Connection, StoreError> {
    let conn = Connection::open(&settings.path)?;
    conn.busy_timeout(settings.busy_timeout)?;
    // The pool created the file in WAL mode; these match its per-connection settings.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // The rows this connection inserts are checked by the writer in the same transaction (the
    // slot read, the hold's application read, the payment read and verified), and their parents
    // are never deleted (triggers refuse it); declared foreign keys would look every parent up
    // again per row. Every other connection still enforces them.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    // Checkpoints run on a thread of their own (`lite_checkpoint`); the writer's own, inside a
    // `COMMIT`, only if that thread falls behind.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP_PAGES)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

fn serve(settings: LiteSettings, jobs: std_mpsc::Receiver<Job>) {
    let checkpoints = Checkpoints::start(settings.path.clone(), settings.busy_timeout);
    let mut conn: Option<Connection> = None;
    // A booking batch that arrived while writes were being grouped: it runs next.
    let mut next: Option<Job> = None;
    // When the last transaction ended (a write of its own lingers while the writer is busy).
    let mut last_commit: Option<Instant> = None;
    while let Some(job) = next.take().or_else(|| jobs.recv().ok()) {
        let c = match &mut conn {
            Some(c) => c,
            None => match open(&settings) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    job.fail(e);
                    continue;
                }
            },
        };
        let sound = match job {
            Job::Batch(batch) => {
                // A panic in a decision must not take the thread (and every later batch) with
                // it: it fails that batch, rolled back, and the thread starts over on a fresh
                // connection.
                let Batch {
                    keys,
                    extras,
                    decide,
                    reply,
                } = *batch;
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(c, keys, &extras, decide)
                }))
                .unwrap_or_else(|_| {
                    Err(StoreError::Sqlite(message("the batch's decision panicked")))
                });
                // A refused write leaves the connection sound (the transaction rolled back).
                let sound =
                    !matches!(&result, Err(e) if !matches!(e, StoreError::Constraint { .. }));
                let _ = reply.send(result);
                count_transaction("booking_batch");
                sound
            }
            Job::Write(first) => {
                let busy = last_commit.is_some_and(|t| t.elapsed() < BUSY_WITHIN);
                let group = group_writes(first, &jobs, &mut next, busy);
                metrics::histogram!("nobat_sqlite_writes_per_transaction")
                    .record(group.len() as f64);
                count_transaction("writes");
                run_writes(c, group)
            }
            Job::Large(write) => {
                count_transaction("large_write");
                // The connection is dropped after (below): the page hash this grows only
                // shrinks with a new connection.
                match c.pragma_update(None, "cache_size", -LARGE_CACHE_KIB) {
                    Ok(()) => {
                        run_writes(c, vec![write]);
                    }
                    Err(e) => {
                        let _ = write.reply.send(Err(e.into()));
                    }
                }
                false
            }
        };
        last_commit = Some(Instant::now());
        if !sound {
            // After anything but a refused write, start again from a fresh connection.
            conn = None;
        } else if let Some(c) = &conn {
            // After the answers went out: what the checkpoint thread left, if it finished a
            // round.
            checkpoints.catch_up(c);
        }
    }
}

/// Counts a transaction of the writer thread by what it ran: each is a commit (an fsync of
/// the WAL), the cost a surge pays most per journey, so its rate is worth watching.
fn count_transaction(kind: &'static str) {
    metrics::counter!("nobat_sqlite_transactions_total", "kind" => kind).increment(1);
}

/// `first` and the writes of their own queued behind it, up to `WRITES_PER_TX`; when `busy`,
/// also those that arrive within `WRITE_LINGER`. A booking batch or a large write met on the
/// way ends the group and is left in `next`, to run after it in its order.
fn group_writes(
    first: Write,
    jobs: &std_mpsc::Receiver<Job>,
    next: &mut Option<Job>,
    busy: bool,
) -> Vec<Write> {
    let mut group = vec![first];
    let mut lingered = !busy;
    while group.len() < WRITES_PER_TX {
        match jobs.try_recv() {
            Ok(Job::Write(w)) => group.push(w),
            Ok(batch) => {
                *next = Some(batch);
                break;
            }
            Err(std_mpsc::TryRecvError::Empty) if !lingered => {
                lingered = true;
                std::thread::sleep(WRITE_LINGER);
            }
            Err(_) => break,
        }
    }
    group
}

/// Runs a group of writes of their own in one transaction, each in a savepoint, and answers
/// each after the commit. Returns whether the connection is still sound.
fn run_writes(conn: &mut Connection, group: Vec<Write>) -> bool {
    let (runs, replies): (Vec<WriteFn>, Vec<Reply>) =
        group.into_iter().map(|w| (w.run, w.reply)).unzip();
    let outcome = (|| -> Result<Vec<_>, StoreError> {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut results = Vec::with_capacity(runs.len());
        for run in runs {
            let savepoint = tx.savepoint()?;
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&savepoint)))
                .unwrap_or_else(|_| Err(StoreError::Sqlite(message("a write panicked"))));
            match result {
                Ok(value) => {
                    savepoint.commit()?;
                    results.push(Ok(value));
                }
                Err(e) => {
                    // Dropped: rolled back to where it began. Some errors (I/O, a full disk)
                    // make SQLite roll back the whole transaction: then the writes before
                    // this one are gone too, and none after it may run outside a transaction.
                    drop(savepoint);
                    if tx.is_autocommit() {
                        return Err(e);
                    }
                    results.push(Err(e));
                }
            }
        }
        tx.commit()?;
        Ok(results)
    })();
    match outcome {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
            true
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
            false
        }
    }
}

/// One transaction: read, decide, write, commit. Any error rolls it back (the transaction is
/// dropped uncommitted).
fn run(
    conn: &mut Connection,
    keys: BatchKeys,
    extras: &BatchExtras,
    decide: Decide,
) -> Result<Box<dyn Any + Send>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (mut state, stored) = read(&tx, &keys, extras)?;
    let write = decide(&mut state, &stored);
    write_effects(&tx, &write)?;
    tx.commit()?;
    Ok(write.result)
}

/// rusqlite's `Row::get` under the name sqlx's rows use, so the shared decoders read both.
trait TryGet {
    fn try_get<T: rusqlite::types::FromSql, I: rusqlite::RowIndex>(
        &self,
        index: I,
    ) -> rusqlite::Result<T>;
}

impl TryGet for Row<'_> {
    fn try_get<T: rusqlite::types::FromSql, I: rusqlite::RowIndex>(
        &self,
        index: I,
    ) -> rusqlite::Result<T> {
        self.get(index)
    }
}

use super::booking::corrupt;
super::booking::decode_booking_rows!(Row<'_>);
super::booking::decode_batch_rows!(Row<'_>);
super::booking::decode_waitlist_rows!(Row<'_>);

/// SQLite's executor of a batch's reads (`batch_plan::ReadPlan`): one keyed lookup per row (a
/// prepared statement's lookup costs a few microseconds in this thread; no key list is
/// serialised or parsed). Locks mean nothing here: the transaction holds the write lock.
fn read(
    tx: &Transaction<'_>,
    keys: &BatchKeys,
    extras: &BatchExtras,
) -> Result<(BatchState, Stored), StoreError> {
    let mut plan = ReadPlan::new(keys, extras, Locking::Database);
    while let Some(read) = plan.next() {
        match read {
            step @ (ReadStep::Entries(_)
            | ReadStep::LockedEntries(_)
            | ReadStep::OfferEntries(_)
            | ReadStep::ActiveEntriesOf(_)
            | ReadStep::Releases(_)
            | ReadStep::Waiters { .. }
            | ReadStep::WaiterCitizens(_)) => read_waitlist(tx, &mut plan, step)?,
            ReadStep::DueHolds { now, limit } => {
                let mut q = tx.prepare_cached(
                    "SELECT id FROM holds WHERE status = 'live' AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2",
                )?;
                let due = q
                    .query_map(params![now, limit], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                plan.due_holds(due);
            }
            ReadStep::Holds(ids) => {
                let mut q =
                    tx.prepare_cached(&format!("SELECT {HOLD_COLS} FROM holds WHERE id = ?1"))?;
                for id in &ids {
                    if let Some(h) = q.query_row([id], |r| Ok(hold(r))).optional()? {
                        plan.hold(h?);
                    }
                }
            }
            ReadStep::Appointments(codes) => {
                let mut q = tx.prepare_cached(&format!(
                    "SELECT {APPT_COLS} FROM appointments WHERE tracking_code = ?1"
                ))?;
                for code in codes {
                    if let Some(a) = q.query_row([code], |r| Ok(appointment(r))).optional()? {
                        plan.appointment(a?);
                    }
                }
            }
            ReadStep::LiveHoldsOf(codes) => {
                let mut q = tx.prepare_cached(&format!(
                    "SELECT {HOLD_COLS} FROM holds WHERE national_code = ?1 AND status = 'live'"
                ))?;
                for code in codes {
                    let mut rows = q.query([code])?;
                    while let Some(r) = rows.next()? {
                        plan.hold(hold(r)?);
                    }
                }
            }
            ReadStep::ActiveAppointmentsOf(codes) => {
                let mut q = tx.prepare_cached(&format!(
                    "SELECT {APPT_COLS} FROM appointments WHERE national_code = ?1 AND status IN ('booked', 'checked_in')"
                ))?;
                for code in codes {
                    let mut rows = q.query([code])?;
                    while let Some(r) = rows.next()? {
                        plan.appointment(appointment(r)?);
                    }
                }
            }
            ReadStep::CancellationsOf { codes, after } => {
                let mut q = tx.prepare_cached(CANCELLATIONS_OF_LITE)?;
                for code in codes {
                    let count: i64 = q.query_row(params![code, after], |r| r.get(0))?;
                    if count > 0 {
                        plan.cancellations(code.clone(), count);
                    }
                }
            }
            ReadStep::Payments(ids) => {
                let mut q = tx.prepare_cached(
                    "SELECT p.id, p.application_id, a.service, a.national_code, p.status FROM payments p \
                     JOIN applications a ON a.id = p.application_id WHERE p.id = ?1",
                )?;
                for id in ids {
                    if let Some(p) = q.query_row([id], |r| Ok(payment(r))).optional()? {
                        plan.payment(p?);
                    }
                }
            }
            ReadStep::Applications(ids) => {
                let mut q = tx.prepare_cached(&format!(
                    "SELECT {APPLICATION_COLS} FROM applications WHERE id = ?1"
                ))?;
                for id in ids {
                    if let Some(a) = q.query_row([id], |r| Ok(application(r))).optional()? {
                        plan.application(a?);
                    }
                }
            }
            ReadStep::LockedSlots(ids) | ReadStep::Slots(ids) => {
                let mut q =
                    tx.prepare_cached(&format!("SELECT {SLOT_COLS} FROM slots WHERE id = ?1"))?;
                for id in &ids {
                    if let Some(s) = q.query_row([id], |r| Ok(slot(r))).optional()? {
                        plan.slot(s?);
                    }
                }
            }
            ReadStep::IdempotencyRecords(pairs) => {
                let mut q = tx.prepare_cached(
                    "SELECT request_hash, format_version, response_status, response_body FROM idempotency_keys WHERE scope = ?1 AND key = ?2",
                )?;
                for (scope, key) in pairs {
                    let found = q
                        .query_row([scope, key], |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                StoredAnswer::from_columns(r.get(1)?, r.get(2)?, r.get(3)?),
                            ))
                        })
                        .optional()?;
                    if let Some((request_hash, answer)) = found {
                        plan.record(IdempotencyRecord {
                            scope: scope.clone(),
                            key: key.clone(),
                            request_hash,
                            answer,
                        });
                    }
                }
            }
        }
    }
    Ok(plan.finish())
}

/// SQLite's executor of a batch's writes (`batch_plan::writes`, which gives their order and
/// its reasons): the bulk rows (new holds and appointments, hold statuses, events) many to a
/// statement (`insert_rows`, `in_chunks`), the rest one row per execution of a cached
/// statement.
fn write_effects<T>(tx: &Transaction<'_>, w: &BatchWrite<T>) -> Result<(), StoreError> {
    for write in batch_plan::writes(&w.effects, &w.idempotency) {
        match write {
            step @ (WriteStep::EntryUpdates(_)
            | WriteStep::ReleaseStatus(_)
            | WriteStep::NewEntries(_)
            | WriteStep::EntryOffices(_)
            | WriteStep::NewReleases(_)) => write_waitlist(tx, step)?,
            WriteStep::HoldStatus(changes) => write_hold_statuses(tx, changes)?,
            WriteStep::AppointmentUpdates(updates) => {
                let mut q = tx.prepare_cached(
                    "UPDATE appointments SET status = ?2, slot_id = ?3, office_id = ?4, start_at = ?5, updated_at = ?6, reschedules = ?7 \
                     WHERE tracking_code = ?1",
                )?;
                for a in updates.values() {
                    q.execute(params![
                        a.tracking_code,
                        a.status.as_str(),
                        a.slot_id,
                        a.office_id,
                        a.start_at,
                        a.updated_at,
                        a.reschedules
                    ])?;
                }
            }
            WriteStep::NewHolds(holds) => insert_rows(
                tx,
                &format!("INSERT INTO holds ({HOLD_COLS})"),
                holds,
                |h| {
                    vec![
                        &h.id,
                        &h.slot_id,
                        &h.application_id,
                        &h.national_code,
                        &h.service,
                        hold_status_sql(h.status),
                        &h.created_at,
                        &h.expires_at,
                    ]
                },
            )?,
            WriteStep::NewAppointments(appointments) => insert_rows(
                tx,
                &format!("INSERT INTO appointments ({APPT_COLS})"),
                appointments,
                |a| {
                    vec![
                        &a.tracking_code,
                        &a.slot_id,
                        &a.office_id,
                        &a.start_at,
                        &a.application_id,
                        &a.national_code,
                        &a.service,
                        &a.payment_id,
                        appointment_status_sql(a.status),
                        &a.created_at,
                        &a.updated_at,
                        &a.reschedules,
                    ]
                },
            )?,
            WriteStep::RaiseCapacity(capacities) => {
                let mut q = tx.prepare_cached(
                    "UPDATE slots SET capacity = MAX(capacity, ?2) WHERE id = ?1",
                )?;
                for (id, capacity) in capacities {
                    q.execute(params![id, capacity])?;
                }
            }
            WriteStep::SeatDeltas(deltas) => {
                let mut q =
                    tx.prepare_cached("UPDATE slots SET taken = taken + ?2 WHERE id = ?1")?;
                for (id, delta) in deltas {
                    q.execute(params![id, delta])?;
                }
            }
            WriteStep::SetCapacity(capacities) => {
                let mut q = tx.prepare_cached("UPDATE slots SET capacity = ?2 WHERE id = ?1")?;
                for (id, capacity) in capacities {
                    q.execute(params![id, capacity])?;
                }
            }
            WriteStep::NewCards(cards) => {
                let mut q = tx.prepare_cached(
                    "INSERT INTO cards (tracking_code, office_id, ready_date, pickup_tracking_code, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for c in cards {
                    q.execute(params![
                        c.tracking_code,
                        c.office_id,
                        c.ready_date,
                        c.pickup_tracking_code,
                        c.created_at
                    ])?;
                }
            }
            WriteStep::Outbox(notices) => {
                let mut q = tx.prepare_cached(
                    "INSERT INTO outbox (national_code, application_id, tracking_code, notice_key, channel, body, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (tracking_code, notice_key) DO NOTHING",
                )?;
                for o in notices {
                    q.execute(params![
                        o.national_code,
                        o.application_id,
                        o.tracking_code,
                        o.notice_key,
                        o.channel,
                        o.body,
                        o.created_at
                    ])?;
                }
            }
            WriteStep::Events(events) => insert_rows(
                tx,
                "INSERT INTO events (at, actor, kind, subject, payload_json)",
                events,
                |ev| vec![&ev.at, &ev.actor, &ev.kind, &ev.subject, &ev.payload_json],
            )?,
            WriteStep::IdempotencyRecords {
                records,
                created_at,
            } => {
                let mut q = tx.prepare_cached(
                    "INSERT INTO idempotency_keys (scope, key, request_hash, format_version, response_status, response_body, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for r in records {
                    let (format_version, status, body) = r.answer.columns();
                    q.execute(params![
                        r.scope,
                        r.key,
                        r.request_hash,
                        format_version,
                        status,
                        body,
                        created_at
                    ])?;
                }
            }
        }
    }
    Ok(())
}

/// Hold status changes, many holds to a statement: one statement binds one status, so the
/// holds go by status (in any order: none makes a hold live, see `batch_plan`).
fn write_hold_statuses(
    tx: &Transaction<'_>,
    changes: &BTreeMap<String, HoldStatus>,
) -> Result<(), StoreError> {
    for status in [
        HoldStatus::Confirmed,
        HoldStatus::Released,
        HoldStatus::Expired,
        HoldStatus::Live,
    ] {
        let ids: Vec<&String> = changes
            .iter()
            .filter(|(_, s)| **s == status)
            .map(|(id, _)| id)
            .collect();
        in_chunks(&ids, |chunk| {
            let mut q = tx.prepare_cached(&format!(
                "UPDATE holds SET status = ? WHERE id IN ({})",
                placeholders(chunk.len(), 1)
            ))?;
            let params = std::iter::once(hold_status_sql(status))
                .chain(chunk.iter().map(|id| id as &dyn ToSql));
            q.execute(params_from_iter(params))?;
            Ok(())
        })?;
    }
    Ok(())
}

/// Most rows one multi-row statement writes. A batch's rows go in full chunks of this many,
/// the rest in power-of-two chunks, so one table needs at most eight distinct statements in
/// the cache. Why multi-row: every statement execution pays a fixed cost (cursors opened and
/// closed, the statement journal, `AUTOINCREMENT`'s counter written back) that one row per
/// execution paid per row.
const ROWS_PER_STATEMENT: usize = 128;

/// Runs `write` on consecutive chunks of `rows` whose lengths are `ROWS_PER_STATEMENT` or a
/// smaller power of two.
pub(super) fn in_chunks<'r, R>(
    rows: &'r [R],
    mut write: impl FnMut(&'r [R]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut rest = rows;
    while !rest.is_empty() {
        let n = if rest.len() >= ROWS_PER_STATEMENT {
            ROWS_PER_STATEMENT
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(n);
        write(chunk)?;
        rest = tail;
    }
    Ok(())
}

/// `n` groups of `width` anonymous parameters: `(?, ?), (?, ?)`; a group of one is a bare `?`.
pub(super) fn placeholders(n: usize, width: usize) -> String {
    let group = if width == 1 {
        "?".to_string()
    } else {
        format!("({})", vec!["?"; width].join(", "))
    };
    vec![group; n].join(", ")
}

/// Inserts `rows` with multi-row statements, `{head} VALUES (…), (…)`, each row's values as
/// `bind` lists them (the same number for every row).
fn insert_rows<'r, R>(
    tx: &Transaction<'_>,
    head: &str,
    rows: &'r [R],
    bind: impl Fn(&'r R) -> Vec<&'r dyn ToSql>,
) -> Result<(), StoreError> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let width = bind(first).len();
    in_chunks(rows, |chunk| {
        let mut q = tx.prepare_cached(&format!(
            "{head} VALUES {}",
            placeholders(chunk.len(), width)
        ))?;
        q.execute(params_from_iter(chunk.iter().flat_map(&bind)))?;
        Ok(())
    })
}

/// A hold's status as the value bound for its column. The booking crate's enums know nothing
/// of SQLite, and the multi-row binder takes references that live as long as the rows, hence
/// references to static texts (the test below holds them to `as_str`).
fn hold_status_sql(status: HoldStatus) -> &'static dyn ToSql {
    match status {
        HoldStatus::Live => &"live",
        HoldStatus::Confirmed => &"confirmed",
        HoldStatus::Released => &"released",
        HoldStatus::Expired => &"expired",
    }
}

/// An appointment's status as the value bound for its column (see [`hold_status_sql`]).
fn appointment_status_sql(status: AppointmentStatus) -> &'static dyn ToSql {
    match status {
        AppointmentStatus::Booked => &"booked",
        AppointmentStatus::CheckedIn => &"checked_in",
        AppointmentStatus::Enrolled => &"enrolled",
        AppointmentStatus::NoShow => &"no_show",
        AppointmentStatus::Cancelled => &"cancelled",
        AppointmentStatus::Rescheduled => &"rescheduled",
        AppointmentStatus::CardReady => &"card_ready",
        AppointmentStatus::Delivered => &"delivered",
    }
}

/// SQLite's reads of waitlist entries, waiters and seat releases (`read`'s steps).
fn read_waitlist(
    tx: &Transaction<'_>,
    plan: &mut ReadPlan<'_>,
    step: ReadStep<'_>,
) -> Result<(), StoreError> {
    match step {
        // The plan asks SQLite for no second read under a lock; were it to, it reads the same.
        ReadStep::Entries(ids) | ReadStep::LockedEntries(ids) => {
            let mut q = tx.prepare_cached(&format!(
                "SELECT {ENTRY_COLS} FROM waitlist_entries WHERE id = ?1"
            ))?;
            for id in ids {
                if let Some(e) = q.query_row([id], |r| Ok(entry_at(r, 0))).optional()? {
                    plan.entry(e?);
                }
            }
        }
        ReadStep::OfferEntries(holds) => {
            let mut q = tx.prepare_cached(&format!(
                "SELECT {ENTRY_COLS} FROM waitlist_entries WHERE offer_hold_id = ?1"
            ))?;
            for id in &holds {
                let mut rows = q.query([id])?;
                while let Some(r) = rows.next()? {
                    plan.entry(entry_at(r, 0)?);
                }
            }
        }
        ReadStep::ActiveEntriesOf(pairs) => {
            let mut q = tx.prepare_cached(&format!(
                    "SELECT {ENTRY_COLS} FROM waitlist_entries WHERE national_code = ?1 AND service = ?2 AND (status = 'waiting' OR status = 'offered')"
                ))?;
            for (code, service) in &pairs {
                let mut rows = q.query([code, service])?;
                while let Some(r) = rows.next()? {
                    plan.entry(entry_at(r, 0)?);
                }
            }
        }
        ReadStep::Releases(ids) => {
            let mut q = tx.prepare_cached(&format!(
                "SELECT {RELEASE_COLS} FROM seat_releases WHERE id = ?1"
            ))?;
            for id in ids {
                if let Some(r) = q.query_row([id], |r| Ok(release(r))).optional()? {
                    plan.release(r?);
                }
            }
        }
        ReadStep::Waiters {
            offices,
            per_office,
        } => {
            let mut q = tx.prepare_cached(&format!(
                    "SELECT {} FROM waitlist_offices o JOIN waitlist_entries e ON e.id = o.entry_id \
                     WHERE o.office_id = ?1 AND e.status = 'waiting' ORDER BY o.joined_at, o.entry_id LIMIT ?2",
                    entry_cols_of_e()
                ))?;
            for office in offices {
                let mut rows = q.query(params![office, per_office])?;
                while let Some(r) = rows.next()? {
                    plan.waiter(office.clone(), entry_at(r, 0)?);
                }
            }
        }
        ReadStep::WaiterCitizens(codes) => {
            let mut q = tx.prepare_cached(&format!(
                "SELECT {HOLD_COLS} FROM holds WHERE national_code = ?1 AND status = 'live'"
            ))?;
            for code in &codes {
                let mut rows = q.query([code])?;
                while let Some(r) = rows.next()? {
                    plan.hold(hold(r)?);
                }
            }
            let mut q = tx.prepare_cached(&format!(
                    "SELECT {APPT_COLS} FROM appointments WHERE national_code = ?1 AND status IN ('booked', 'checked_in')"
                ))?;
            for code in &codes {
                let mut rows = q.query([code])?;
                while let Some(r) = rows.next()? {
                    plan.appointment(appointment(r)?);
                }
            }
        }
        _ => unreachable!("not a waitlist step"),
    }
    Ok(())
}

/// SQLite's writes of waitlist entries and seat releases (`write_effects`'s steps).
fn write_waitlist(tx: &Transaction<'_>, step: WriteStep<'_>) -> Result<(), StoreError> {
    match step {
        WriteStep::EntryUpdates(updates) => {
            let mut q = tx.prepare_cached(
                    "UPDATE waitlist_entries SET status = ?2, offer_hold_id = ?3, tracking_code = ?4, updated_at = ?5 WHERE id = ?1",
                )?;
            let mut gone = tx.prepare_cached("DELETE FROM waitlist_offices WHERE entry_id = ?1")?;
            for e in updates.values() {
                q.execute(params![
                    e.id,
                    e.status.as_str(),
                    e.offer_hold_id,
                    e.tracking_code,
                    e.updated_at
                ])?;
                if !e.status.is_active() {
                    gone.execute([&e.id])?;
                }
            }
        }
        WriteStep::ReleaseStatus(changes) => {
            let mut q = tx.prepare_cached("UPDATE seat_releases SET status = ?2 WHERE id = ?1")?;
            for (id, status) in changes {
                q.execute(params![id, status.as_str()])?;
            }
        }
        WriteStep::NewEntries(entries) => {
            let mut q = tx.prepare_cached(&format!(
                    "INSERT INTO waitlist_entries ({ENTRY_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
                ))?;
            for e in entries {
                q.execute(params![
                    e.id,
                    e.national_code,
                    e.service,
                    e.application_id,
                    e.payment_id,
                    i64::from(e.auto_accept),
                    e.limits.earliest_at,
                    e.limits.latest_at,
                    e.limits.part_of_day.as_str(),
                    e.limits_json,
                    e.status.as_str(),
                    e.offer_hold_id,
                    e.tracking_code,
                    e.joined_at,
                    e.updated_at
                ])?;
            }
        }
        WriteStep::EntryOffices(offices) => {
            insert_rows(
                tx,
                "INSERT INTO waitlist_offices (office_id, joined_at, entry_id)",
                offices,
                |o| vec![&o.office_id, &o.joined_at, &o.entry_id],
            )?;
        }
        WriteStep::NewReleases(releases) => {
            let mut q = tx.prepare_cached(
                    "INSERT INTO seat_releases (slot_id, release_at, freed_by, status, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
            for r in releases {
                q.execute(params![
                    r.slot_id,
                    r.release_at,
                    r.freed_by,
                    r.status.as_str(),
                    r.created_at
                ])?;
            }
        }
        _ => unreachable!("not a waitlist step"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_texts_bound_are_the_stored_ones() {
        let text = |v: &dyn ToSql| match v.to_sql().unwrap() {
            rusqlite::types::ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(t)) => {
                String::from_utf8(t.to_vec()).unwrap()
            }
            other => panic!("not text: {other:?}"),
        };
        for s in [
            HoldStatus::Live,
            HoldStatus::Confirmed,
            HoldStatus::Released,
            HoldStatus::Expired,
        ] {
            assert_eq!(text(hold_status_sql(s)), s.as_str());
        }
        for s in AppointmentStatus::ALL {
            assert_eq!(text(appointment_status_sql(s)), s.as_str());
        }
    }

    fn settings(dir: &tempfile::TempDir) -> LiteSettings {
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)",
        )
        .unwrap();
        LiteSettings {
            path,
            busy_timeout: Duration::from_secs(5),
        }
    }

    fn insert(k: &'static str, v: i64) -> impl FnOnce(&Connection) -> Result<i64, StoreError> {
        move |conn| {
            conn.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", params![k, v])?;
            Ok(v)
        }
    }

    /// A writer thread held in a first write until the returned sender sends, so that the
    /// writes queued meanwhile run as one group; and that first write's answer.
    fn held_writer(
        dir: &tempfile::TempDir,
    ) -> (
        Arc<LiteWriter>,
        LiteSettings,
        std_mpsc::Sender<()>,
        Pending<i64>,
    ) {
        let s = settings(dir);
        let w = LiteWriter::shared(s.clone()).unwrap();
        let (open_gate, gate) = std_mpsc::channel::<()>();
        let held = w
            .write(move |_| {
                gate.recv().unwrap();
                Ok(0)
            })
            .unwrap();
        (w, s, open_gate, held)
    }

    #[tokio::test]
    async fn writes_queued_together_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        // The thread is held in a first write while the others queue: they run as one group,
        // one transaction, and the duplicate key, the panic and the refusal roll back their
        // own savepoints only.
        let (w, s, open_gate, held) = held_writer(&dir);
        let pending = vec![
            w.write(insert("a", 1)).unwrap(),
            w.write(insert("a", 2)).unwrap(),
            w.write(|_| -> Result<i64, StoreError> { panic!("a defect") })
                .unwrap(),
            w.write(|conn| {
                conn.execute("INSERT INTO t (k, v) VALUES ('half', 0)", [])?;
                Err(StoreError::corrupt("refused after writing"))
            })
            .unwrap(),
            w.write(insert("b", 3)).unwrap(),
        ];
        open_gate.send(()).unwrap();
        assert_eq!(held.result().await.unwrap(), 0);
        let mut results = Vec::new();
        for p in pending {
            results.push(p.result().await);
        }
        assert_eq!(results[0].as_ref().ok(), Some(&1));
        assert!(
            matches!(results[1], Err(StoreError::Constraint { .. })),
            "{:?}",
            results[1]
        );
        assert!(
            matches!(results[2], Err(StoreError::Sqlite(_))),
            "{:?}",
            results[2]
        );
        assert!(
            matches!(results[3], Err(StoreError::Corrupt(_))),
            "{:?}",
            results[3]
        );
        assert_eq!(results[4].as_ref().ok(), Some(&3));
        let conn = Connection::open(&s.path).unwrap();
        let rows: Vec<(String, i64)> = conn
            .prepare("SELECT k, v FROM t ORDER BY k")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, vec![("a".to_string(), 1), ("b".to_string(), 3)]);
    }

    #[tokio::test]
    async fn a_write_that_ends_the_transaction_fails_its_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let (w, s, open_gate, held) = held_writer(&dir);
        let pending = vec![
            w.write(insert("a", 1)).unwrap(),
            // What SQLite does itself on some errors (I/O, a full disk): the whole
            // transaction rolled back, the earlier writes' savepoints with it.
            w.write(|conn| {
                conn.execute_batch("ROLLBACK")?;
                Err(StoreError::corrupt("the transaction ended"))
            })
            .unwrap(),
            w.write(insert("b", 2)).unwrap(),
        ];
        open_gate.send(()).unwrap();
        // The held write may have been grouped with them (then it fails with them).
        let _ = held.result().await;
        for p in pending {
            let result = p.result().await;
            assert!(result.is_err(), "{result:?}");
        }
        let rows = |path: &std::path::Path| -> Vec<String> {
            let conn = Connection::open(path).unwrap();
            let mut q = conn.prepare("SELECT k FROM t ORDER BY k").unwrap();
            let keys = q.query_map([], |r| r.get(0)).unwrap();
            keys.collect::<Result<_, _>>().unwrap()
        };
        // None of the group committed: not the write after the rollback either, which
        // outside a transaction would have committed on its own while its answer said failed.
        assert_eq!(rows(&s.path), Vec::<String>::new());
        assert_eq!(w.write(insert("c", 3)).unwrap().result().await.unwrap(), 3);
        assert_eq!(rows(&s.path), vec!["c".to_string()]);
    }

    #[tokio::test]
    async fn one_writer_thread_per_file_while_it_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let s = settings(&dir);
        let first = LiteWriter::shared(s.clone()).unwrap();
        let again = LiteWriter::shared(s.clone()).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let elsewhere = LiteWriter::shared(settings(&other)).unwrap();
        assert!(!Arc::ptr_eq(&first, &elsewhere));
        drop((first, again));
        // The last handle gone, the thread ends; the next caller gets a working one.
        let next = LiteWriter::shared(s).unwrap();
        assert_eq!(
            next.write(insert("c", 4)).unwrap().result().await.unwrap(),
            4
        );
    }

    #[test]
    fn rows_go_in_full_chunks_then_falling_powers_of_two() {
        for n in [0usize, 1, 2, 3, 7, 127, 128, 129, 300, 1000] {
            let rows: Vec<usize> = (0..n).collect();
            let mut sizes = Vec::new();
            let mut seen = Vec::new();
            in_chunks(&rows, |chunk| {
                sizes.push(chunk.len());
                seen.extend_from_slice(chunk);
                Ok(())
            })
            .unwrap();
            assert_eq!(seen, rows, "every row once, in order (n = {n})");
            let full = n / ROWS_PER_STATEMENT;
            assert!(sizes[..full].iter().all(|&s| s == ROWS_PER_STATEMENT));
            let rest = &sizes[full..];
            assert!(rest
                .iter()
                .all(|s| s.is_power_of_two() && *s < ROWS_PER_STATEMENT));
            assert!(rest.windows(2).all(|w| w[0] > w[1]), "{rest:?}");
        }
    }

    #[test]
    fn an_error_stops_the_chunks() {
        let rows: Vec<usize> = (0..300).collect();
        let mut calls = 0;
        let result = in_chunks(&rows, |_| {
            calls += 1;
            Err(StoreError::Sqlite(message("refused")))
        });
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }

    #[test]
    fn placeholders_group_by_row() {
        assert_eq!(placeholders(1, 1), "?");
        assert_eq!(placeholders(3, 1), "?, ?, ?");
        assert_eq!(placeholders(2, 3), "(?, ?, ?), (?, ?, ?)");
    }
}
