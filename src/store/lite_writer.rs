//! SQLite's batch writer: one OS thread that owns the write connection and runs each batch's
//! transaction with prepared, cached statements (rusqlite), one row per statement execution.
//!
//! Why a thread of its own rather than a pooled sqlx connection: sqlx runs every statement on
//! the connection's worker thread and hands each result back to the async task, so a batch of
//! a few dozen statements paid a few dozen thread hand-offs, and the connection sat idle during
//! each one (measured: the worker thread was busy half the time at full load). Here a batch
//! crosses threads twice: the async writer sends the keys to read and gets the locked state
//! back; it decides (pure code, on the async side) and sends the effects; the thread writes
//! them, commits, and answers. The transaction stays open on the thread in between; if the
//! async side goes away before sending the effects, the thread rolls it back.
//!
//! The connection is opened with the pool's durability settings (WAL, `synchronous=FULL`,
//! foreign keys on), so a commit acknowledged here survives `kill -9` and power loss exactly
//! as before.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::booking::{BatchExtras, IdempotencyRecord, APPT_COLS, HOLD_COLS, SLOT_COLS};
use super::StoreError;
use crate::engine::booking::{
    AppointmentRow, AppointmentStatus, BatchKeys, BatchState, Effects, HoldRow, HoldStatus,
    PaymentRow, PaymentStatus, SlotRow,
};

/// What a batch read returns: the locked state, the stored idempotency answers, and where to
/// send the effects of the open transaction.
pub(super) struct ReadDone {
    pub state: BatchState,
    pub stored: HashMap<(String, String), IdempotencyRecord>,
    pub write: std_mpsc::Sender<WriteRequest>,
}

pub(super) struct WriteRequest {
    pub effects: Effects,
    /// `effects.events[i].payload` as JSON text, serialised before it reaches the thread: the
    /// thread is the one serial stage of SQLite's write path, so it does nothing else can.
    pub event_payloads: Vec<String>,
    pub idempotency: Vec<IdempotencyRecord>,
    pub reply: oneshot::Sender<Result<(), StoreError>>,
}

struct ReadRequest {
    keys: BatchKeys,
    extras: BatchExtras,
    reply: oneshot::Sender<Result<ReadDone, StoreError>>,
}

/// How the thread opens its connection.
#[derive(Debug, Clone)]
pub(super) struct LiteSettings {
    pub path: PathBuf,
    pub busy_timeout: Duration,
}

/// A handle to the writer thread; the thread ends when the handle is dropped.
pub(super) struct LiteWriter {
    requests: std_mpsc::Sender<ReadRequest>,
}

/// Page cache of the writer's connection: 64 MiB (SQLite's default is 2 MiB).
const CACHE_KIB: i64 = 64 * 1024;
/// WAL pages between the checkpoints the writer runs after its commits (SQLite's default is
/// 1,000). The same hot pages (slot rows, index roots) are copied back once per checkpoint, so
/// rarer checkpoints copy less per booking; the WAL stays under ~40 MiB.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 10_000;
/// Prepared statements the connection keeps (a batch uses about twenty distinct ones).
const STATEMENT_CACHE: usize = 64;
/// How long the thread keeps a transaction open waiting for its effects before rolling back:
/// a bound, so a stuck caller cannot hold the write lock forever.
const WRITE_WAIT: Duration = Duration::from_secs(30);

impl LiteWriter {
    pub fn start(settings: LiteSettings) -> Result<LiteWriter, StoreError> {
        let (requests, rx) = std_mpsc::channel::<ReadRequest>();
        std::thread::Builder::new()
            .name("nobat-sqlite-writer".into())
            .spawn(move || serve(settings, rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite writer: {e}")))?;
        Ok(LiteWriter { requests })
    }

    /// Begins a transaction, reads and returns what `keys` names. The transaction stays open
    /// until the returned `write` channel gets the effects (commit) or is dropped (rollback).
    pub async fn read(&self, keys: BatchKeys, extras: BatchExtras) -> Result<ReadDone, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(ReadRequest {
                keys,
                extras,
                reply,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Sends the effects of the transaction `read` opened; returns after the commit.
    pub async fn write(
        read: std_mpsc::Sender<WriteRequest>,
        effects: Effects,
        idempotency: Vec<IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let event_payloads = effects
            .events
            .iter()
            .map(|e| e.payload.to_string())
            .collect();
        read.send(WriteRequest {
            effects,
            event_payloads,
            idempotency,
            reply,
        })
        .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite writer thread stopped".into())
}

fn open(settings: &LiteSettings) -> Result<Connection, StoreError> {
    let conn = Connection::open(&settings.path)?;
    conn.busy_timeout(settings.busy_timeout)?;
    // The pool created the file in WAL mode; these match its per-connection settings.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

fn serve(settings: LiteSettings, requests: std_mpsc::Receiver<ReadRequest>) {
    let mut conn: Option<Connection> = None;
    while let Ok(request) = requests.recv() {
        let c = match &mut conn {
            Some(c) => c,
            None => match open(&settings) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    let _ = request.reply.send(Err(e));
                    continue;
                }
            },
        };
        if let Err(e) = run(c, request) {
            // A refused write leaves the connection sound (the transaction rolled back); after
            // anything else, start again from a fresh connection.
            if !matches!(e, StoreError::Constraint { .. }) {
                conn = None;
            }
        }
    }
}

/// One transaction: read, hand the state over, wait for the effects, write, commit. Errors are
/// sent to whoever is waiting and also returned (to decide whether to reopen).
fn run(conn: &mut Connection, request: ReadRequest) -> Result<(), StoreError> {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let e = StoreError::from(e);
            let _ = request.reply.send(Err(clone_error(&e)));
            return Err(e);
        }
    };
    let (state, stored) = match read(&tx, &request.keys, &request.extras) {
        Ok(r) => r,
        Err(e) => {
            let _ = request.reply.send(Err(clone_error(&e)));
            return Err(e);
        }
    };
    let (write, effects) = std_mpsc::channel();
    if request
        .reply
        .send(Ok(ReadDone {
            state,
            stored,
            write,
        }))
        .is_err()
    {
        return Ok(()); // the caller left: roll back
    }
    let Ok(w) = effects.recv_timeout(WRITE_WAIT) else {
        return Ok(()); // the caller left or stalled: roll back
    };
    let result = write_effects(&tx, &w).and_then(|()| Ok(tx.commit()?));
    match result {
        Ok(()) => {
            let _ = w.reply.send(Ok(()));
            Ok(())
        }
        Err(e) => {
            let _ = w.reply.send(Err(clone_error(&e)));
            Err(e)
        }
    }
}

/// The error for the caller; the thread keeps the original to decide about its connection.
fn clone_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Constraint { constraint } => StoreError::Constraint {
            constraint: constraint.clone(),
        },
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        other => StoreError::Sqlite(other.to_string()),
    }
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

type Stored = HashMap<(String, String), IdempotencyRecord>;

/// Reads what the batch touches, one keyed lookup per row (a prepared statement's lookup costs
/// a few microseconds in this thread; no key list is serialised or parsed).
fn read(
    tx: &Transaction<'_>,
    keys: &BatchKeys,
    extras: &BatchExtras,
) -> Result<(BatchState, Stored), StoreError> {
    let mut state = BatchState::default();
    let mut slot_ids = keys.slots.clone();
    let mut hold_ids = keys.holds.clone();
    if let Some((now, limit)) = extras.sweep_due {
        let mut q = tx.prepare_cached(
            "SELECT id FROM holds WHERE status = 'live' AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2",
        )?;
        let due = q
            .query_map(params![now, limit], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        hold_ids.extend(due.iter().cloned());
        hold_ids.sort();
        hold_ids.dedup();
        state.due_holds = due;
    }
    if !hold_ids.is_empty() {
        let mut q = tx.prepare_cached(&format!("SELECT {HOLD_COLS} FROM holds WHERE id = ?1"))?;
        for id in &hold_ids {
            if let Some(h) = q.query_row([id], |r| Ok(hold(r))).optional()? {
                let h = h?;
                slot_ids.push(h.slot_id);
                state.holds.insert(h.id.clone(), h);
            }
        }
    }
    if !keys.appointments.is_empty() {
        let mut q = tx.prepare_cached(&format!(
            "SELECT {APPT_COLS} FROM appointments WHERE tracking_code = ?1"
        ))?;
        for code in &keys.appointments {
            if let Some(a) = q.query_row([code], |r| Ok(appointment(r))).optional()? {
                let a = a?;
                slot_ids.push(a.slot_id);
                state.appointments.insert(a.tracking_code.clone(), a);
            }
        }
    }
    if !keys.citizen_codes.is_empty() {
        let mut holds = tx.prepare_cached(&format!(
            "SELECT {HOLD_COLS} FROM holds WHERE national_code = ?1 AND status = 'live'"
        ))?;
        let mut appointments = tx.prepare_cached(&format!(
            "SELECT {APPT_COLS} FROM appointments WHERE national_code = ?1 AND status IN ('booked', 'checked_in')"
        ))?;
        for code in &keys.citizen_codes {
            let mut rows = holds.query([code])?;
            while let Some(r) = rows.next()? {
                let h = hold(r)?;
                state.holds.entry(h.id.clone()).or_insert(h);
            }
            let mut rows = appointments.query([code])?;
            while let Some(r) = rows.next()? {
                let a = appointment(r)?;
                state
                    .appointments
                    .entry(a.tracking_code.clone())
                    .or_insert(a);
            }
        }
    }
    if !keys.payments.is_empty() {
        let mut q = tx.prepare_cached(
            "SELECT p.id, p.application_id, a.service, a.national_code, p.status FROM payments p \
             JOIN applications a ON a.id = p.application_id WHERE p.id = ?1",
        )?;
        for id in &keys.payments {
            if let Some(p) = q.query_row([id], |r| Ok(payment(r))).optional()? {
                let p = p?;
                state.payments.insert(p.id.clone(), p);
            }
        }
    }
    slot_ids.sort_unstable();
    slot_ids.dedup();
    if !slot_ids.is_empty() {
        let mut q = tx.prepare_cached(&format!("SELECT {SLOT_COLS} FROM slots WHERE id = ?1"))?;
        for id in &slot_ids {
            if let Some(s) = q.query_row([id], |r| Ok(slot(r))).optional()? {
                let s = s?;
                state.slots.insert(s.id, s);
            }
        }
    }
    let mut stored = HashMap::new();
    if !extras.idempotency_keys.is_empty() {
        let mut q = tx.prepare_cached(
            "SELECT request_hash, response_status, response_body FROM idempotency_keys WHERE scope = ?1 AND key = ?2",
        )?;
        for (scope, key) in &extras.idempotency_keys {
            let found = q
                .query_row([scope, key], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .optional()?;
            if let Some((request_hash, response_status, response_body)) = found {
                stored.insert(
                    (scope.clone(), key.clone()),
                    IdempotencyRecord {
                        scope: scope.clone(),
                        key: key.clone(),
                        request_hash,
                        response_status,
                        response_body,
                    },
                );
            }
        }
    }
    state.index();
    Ok((state, stored))
}

/// Writes a batch's effects. The order matters for the partial unique indexes and the
/// capacity `CHECK`, as on PostgreSQL: statuses that end a live hold or an active appointment
/// first, then new rows; capacity raises before the seat deltas, final capacities after.
fn write_effects(tx: &Transaction<'_>, w: &WriteRequest) -> Result<(), StoreError> {
    let (e, idem) = (&w.effects, &w.idempotency);
    if !e.hold_status.is_empty() {
        let mut q = tx.prepare_cached("UPDATE holds SET status = ?2 WHERE id = ?1")?;
        for (id, status) in &e.hold_status {
            q.execute(params![id, status.as_str()])?;
        }
    }
    if !e.appointment_updates.is_empty() {
        let mut q = tx.prepare_cached(
            "UPDATE appointments SET status = ?2, slot_id = ?3, office_id = ?4, start_at = ?5, updated_at = ?6 \
             WHERE tracking_code = ?1",
        )?;
        for a in e.appointment_updates.values() {
            q.execute(params![
                a.tracking_code,
                a.status.as_str(),
                a.slot_id,
                a.office_id,
                a.start_at,
                a.updated_at
            ])?;
        }
    }
    if !e.new_holds.is_empty() {
        let mut q = tx.prepare_cached(&format!(
            "INSERT INTO holds ({HOLD_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ))?;
        for h in &e.new_holds {
            q.execute(params![
                h.id,
                h.slot_id,
                h.application_id,
                h.national_code,
                h.service,
                h.status.as_str(),
                h.created_at,
                h.expires_at
            ])?;
        }
    }
    if !e.new_appointments.is_empty() {
        let mut q = tx.prepare_cached(&format!(
            "INSERT INTO appointments ({APPT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ))?;
        for a in &e.new_appointments {
            q.execute(params![
                a.tracking_code,
                a.slot_id,
                a.office_id,
                a.start_at,
                a.application_id,
                a.national_code,
                a.service,
                a.payment_id,
                a.status.as_str(),
                a.created_at,
                a.updated_at
            ])?;
        }
    }
    if !e.slot_capacity.is_empty() {
        let mut q =
            tx.prepare_cached("UPDATE slots SET capacity = MAX(capacity, ?2) WHERE id = ?1")?;
        for (id, capacity) in &e.slot_capacity {
            q.execute(params![id, capacity])?;
        }
    }
    if !e.slot_deltas.is_empty() {
        let mut q = tx.prepare_cached("UPDATE slots SET taken = taken + ?2 WHERE id = ?1")?;
        for (id, delta) in &e.slot_deltas {
            q.execute(params![id, delta])?;
        }
    }
    if !e.slot_capacity.is_empty() {
        let mut q = tx.prepare_cached("UPDATE slots SET capacity = ?2 WHERE id = ?1")?;
        for (id, capacity) in &e.slot_capacity {
            q.execute(params![id, capacity])?;
        }
    }
    if !e.new_cards.is_empty() {
        let mut q = tx.prepare_cached(
            "INSERT INTO cards (tracking_code, office_id, ready_date, pickup_tracking_code, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for c in &e.new_cards {
            q.execute(params![
                c.tracking_code,
                c.office_id,
                c.ready_date,
                c.pickup_tracking_code,
                c.created_at
            ])?;
        }
    }
    if !e.outbox.is_empty() {
        let mut q = tx.prepare_cached(
            "INSERT INTO outbox (national_code, application_id, tracking_code, notice_key, channel, body, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (tracking_code, notice_key) DO NOTHING",
        )?;
        for o in &e.outbox {
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
    if !e.events.is_empty() {
        let mut q = tx.prepare_cached(
            "INSERT INTO events (at, actor, kind, subject, payload_json) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (ev, payload) in e.events.iter().zip(&w.event_payloads) {
            q.execute(params![ev.at, ev.actor, ev.kind, ev.subject, payload])?;
        }
    }
    if !idem.is_empty() {
        let mut q = tx.prepare_cached(
            "INSERT INTO idempotency_keys (scope, key, request_hash, response_status, response_body, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for r in idem {
            q.execute(params![
                r.scope,
                r.key,
                r.request_hash,
                r.response_status,
                r.response_body,
                e.now
            ])?;
        }
    }
    Ok(())
}
