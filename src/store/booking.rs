//! The writer's transaction: lock and read every row a batch touches, decide in memory
//! (`engine::booking::decide`), write the effects in bulk, commit once.
//!
//! On PostgreSQL each step is one statement whatever the batch size (arrays bound as `UNNEST`
//! parameters), so a batch of 500 requests costs a few dozen statements at most, not
//! thousands; rows are locked (`FOR UPDATE`, in id order) so that several nobat processes can
//! share one database. On SQLite the batch runs on a thread of its own with prepared statements
//! (`lite_writer`), and the write transaction is exclusive.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Postgres, Row, Transaction};

use super::lite_writer::{LiteSettings, LiteWriter};
use super::{Store, StoreError};
use crate::booking::{
    ApplicationRef, AppointmentRow, AppointmentStatus, BatchKeys, BatchState, Effects, HoldRow,
    HoldStatus, PaymentRow, PaymentStatus, SlotRow,
};

/// A stored answer to an idempotent request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub scope: String,
    pub key: String,
    pub request_hash: String,
    pub response_status: i64,
    pub response_body: String,
}

/// What a batch's transaction reads besides the booking rows.
#[derive(Debug, Clone)]
pub struct BatchExtras {
    /// The time the batch is decided at (what `decide` is given). PostgreSQL reads the slot of
    /// a hold that is only confirmed, live and unexpired at this time without locking it (its
    /// seat moves to the appointment).
    pub now: i64,
    /// (scope, key) pairs of the batch's idempotency keys.
    pub idempotency_keys: Vec<(String, String)>,
    /// Also lock and load up to this many live holds already expired at `now` (into
    /// `BatchState::due_holds`), so every batch expires some while it is there anyway: seats
    /// come back on time even when the pool is too busy for the separate sweeper.
    pub sweep_limit: Option<i64>,
}

/// What writers run their batches on. On SQLite it holds the handle of the writer thread
/// (`lite_writer`), started on first use and shared by the writers (and by the applicant's
/// other writes: `LiteWriter::shared`, one thread per file): the thread takes batches in
/// the order they are submitted, and one writer's batch waits in its queue while another's
/// runs, so the connection never waits for a batch to be collected. The thread's connection is
/// outside the pool: a pooled connection would have its page cache discarded whenever another
/// connection had committed since it last ran, i.e. before nearly every batch; this one stays
/// warm, as do its prepared statements. On PostgreSQL each writer has its own `BatchConn`
/// (empty) and takes a pooled connection per batch; their transactions overlap.
#[derive(Default)]
pub struct BatchConn {
    lite: std::sync::Mutex<Option<Arc<LiteWriter>>>,
}

impl BatchConn {
    fn lite_writer(&self, pool: &sqlx::SqlitePool) -> Result<Arc<LiteWriter>, StoreError> {
        let mut lite = self.lite.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = &*lite {
            return Ok(w.clone());
        }
        let w = lite_writer_of(pool)?;
        *lite = Some(w.clone());
        Ok(w)
    }

    /// Forgets the writer thread (perhaps gone); the next batch starts a new one.
    fn reset_lite(&self) {
        *self.lite.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// The writer thread of the pool's database file (`LiteWriter::shared`).
pub(super) fn lite_writer_of(pool: &sqlx::SqlitePool) -> Result<Arc<LiteWriter>, StoreError> {
    // A file: `Store::connect` refused in-memory databases.
    LiteWriter::shared(LiteSettings {
        path: pool.connect_options().get_filename().to_path_buf(),
        busy_timeout: super::SQLITE_BUSY_TIMEOUT,
    })
}

/// The decisions of a batch plus the idempotency records to store with them.
pub struct BatchWrite<T> {
    pub effects: Effects,
    pub idempotency: Vec<IdempotencyRecord>,
    pub result: T,
}

pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(super) const HOLD_COLS: &str =
    "id, slot_id, application_id, national_code, service, status, created_at, expires_at";
pub(super) const APPT_COLS: &str =
    "tracking_code, slot_id, office_id, start_at, application_id, national_code, service, payment_id, status, created_at, updated_at";
pub(super) const SLOT_COLS: &str = "id, office_id, start_at, duration_minutes, capacity, taken";
pub(super) const APPLICATION_COLS: &str = "id, national_code, service";

/// Decoders of hold and appointment rows for a row type whose `try_get(index)` reads a column
/// (sqlx's rows, and rusqlite's through `lite_writer::TryGet`).
macro_rules! decode_booking_rows {
    ($row_ty:ty) => {
        pub(crate) fn hold(row: &$row_ty) -> Result<HoldRow, StoreError> {
            Ok(HoldRow {
                id: row.try_get(0)?,
                slot_id: row.try_get(1)?,
                application_id: row.try_get(2)?,
                national_code: row.try_get(3)?,
                service: row.try_get(4)?,
                status: HoldStatus::parse(row.try_get::<String, _>(5)?.as_str())
                    .ok_or_else(|| corrupt("hold status"))?,
                created_at: row.try_get(6)?,
                expires_at: row.try_get(7)?,
            })
        }

        pub(crate) fn appointment(row: &$row_ty) -> Result<AppointmentRow, StoreError> {
            Ok(AppointmentRow {
                tracking_code: row.try_get(0)?,
                slot_id: row.try_get(1)?,
                office_id: row.try_get(2)?,
                start_at: row.try_get(3)?,
                application_id: row.try_get(4)?,
                national_code: row.try_get(5)?,
                service: row.try_get(6)?,
                payment_id: row.try_get(7)?,
                status: AppointmentStatus::parse(row.try_get::<String, _>(8)?.as_str())
                    .ok_or_else(|| corrupt("appointment status"))?,
                created_at: row.try_get(9)?,
                updated_at: row.try_get(10)?,
            })
        }
    };
}

/// Decoders of the slot and payment rows a batch reads.
macro_rules! decode_batch_rows {
    ($row_ty:ty) => {
        pub(crate) fn slot(row: &$row_ty) -> Result<SlotRow, StoreError> {
            Ok(SlotRow {
                id: row.try_get(0)?,
                office_id: row.try_get(1)?,
                start_at: row.try_get(2)?,
                duration_minutes: row.try_get(3)?,
                capacity: row.try_get(4)?,
                taken: row.try_get(5)?,
            })
        }

        pub(crate) fn application(row: &$row_ty) -> Result<ApplicationRef, StoreError> {
            Ok(ApplicationRef {
                id: row.try_get(0)?,
                national_code: row.try_get(1)?,
                service: row.try_get(2)?,
            })
        }

        pub(crate) fn payment(row: &$row_ty) -> Result<PaymentRow, StoreError> {
            Ok(PaymentRow {
                id: row.try_get(0)?,
                application_id: row.try_get(1)?,
                service: row.try_get(2)?,
                national_code: row.try_get(3)?,
                status: PaymentStatus::parse(row.try_get::<String, _>(4)?.as_str())
                    .ok_or_else(|| corrupt("payment status"))?,
            })
        }
    };
}

pub(crate) use {decode_batch_rows, decode_booking_rows};

pub(crate) mod pg {
    use super::*;
    decode_booking_rows!(PgRow);
    decode_batch_rows!(PgRow);
}

pub(crate) mod lite {
    use super::*;
    decode_booking_rows!(SqliteRow);
}

impl Store {
    /// Runs one batch: reads and locks what `keys` names, lets `decide` work on the state,
    /// writes its effects and idempotency records, commits. Any error rolls everything back.
    ///
    /// On SQLite the batch is handed to the writer thread when this is called, not when the
    /// future is first polled: batches submitted one after another (the writers submit while
    /// they hold the request queue) commit in that order.
    pub fn run_batch<'a, T: Send + 'static>(
        &'a self,
        conn: &'a BatchConn,
        mut keys: BatchKeys,
        extras: BatchExtras,
        decide: impl FnOnce(&mut BatchState, &HashMap<(String, String), IdempotencyRecord>) -> BatchWrite<T>
            + Send
            + 'static,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + 'a {
        keys.normalise();
        let submitted = match self {
            Store::Sqlite(pool) => Ok(conn
                .lite_writer(pool)
                .and_then(|w| w.submit(keys, extras, decide))),
            Store::Postgres(_) => Err((keys, extras, decide)),
        };
        async move {
            match (self, submitted) {
                (Store::Postgres(pool), Err((keys, extras, decide))) => {
                    let mut tx = pool.begin_with(PG_BATCH_BEGIN).await?;
                    let (mut state, stored) = pg_read(&mut tx, &keys, &extras).await?;
                    let write = decide(&mut state, &stored);
                    pg_write(&mut tx, &write.effects, &write.idempotency).await?;
                    tx.commit().await?;
                    Ok(write.result)
                }
                (_, Ok(submitted)) => {
                    let result = match submitted {
                        Ok(pending) => pending.result().await,
                        Err(e) => Err(e),
                    };
                    if result.as_ref().is_err_and(StoreError::is_unavailable) {
                        conn.reset_lite();
                    }
                    result
                }
                (Store::Sqlite(_), Err(_)) => unreachable!("SQLite batches are submitted above"),
            }
        }
    }

    /// Ids of live holds whose expiry is at or before `now`, oldest first, at most `limit`.
    pub async fn due_holds(&self, now: i64, limit: i64) -> Result<Vec<String>, StoreError> {
        const SQL: &str = "SELECT id FROM holds WHERE status = 'live' AND expires_at <= $1 ORDER BY expires_at LIMIT $2";
        super::on_pool!(self, pool, q = SQL => {
            Ok(sqlx::query_scalar::<_, String>(q).bind(now).bind(limit).fetch_all(pool).await?)
        })
    }
}

/// Opens a batch's transaction on PostgreSQL, in the same round trip as `BEGIN`. Every
/// statement of a batch looks rows up by key (arrays of at most `batch_max` ids), so the plan
/// that serves it is an index lookup whatever the tables hold; these settings leave the planner
/// no other choice. Without them, a pooled connection that prepared a statement while a table
/// was nearly empty kept a generic plan with a sequential scan (the confirmation's `UPDATE
/// holds … FROM UNNEST` hash-joined the whole holds table in every batch), and PostgreSQL
/// replans only when the table is analyzed, which with autovacuum off is never.
pub const PG_BATCH_BEGIN: &str = "BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off";

async fn pg_read(
    tx: &mut Transaction<'_, Postgres>,
    keys: &BatchKeys,
    extras: &BatchExtras,
) -> Result<(BatchState, HashMap<(String, String), IdempotencyRecord>), StoreError> {
    let mut state = BatchState::default();
    // Slots whose `taken` the batch may change are locked, in id order; the others are only
    // read. Two writers confirming and holding on the same slots at once then wait for each
    // other only where one of them changes a seat count.
    let mut slot_ids = keys.slots.clone();
    let mut unlocked_slot_ids = Vec::new();
    let mut hold_ids = keys.holds.clone();
    hold_ids.extend(keys.confirmed_holds.iter().cloned());
    if let Some(limit) = extras.sweep_limit {
        // SKIP LOCKED: a hold another writer is handling is left to it.
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM holds WHERE status = 'live' AND expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(extras.now)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?;
        hold_ids.extend(due.iter().cloned());
        state.due_holds = due;
    }
    hold_ids.sort_unstable();
    hold_ids.dedup();
    if !hold_ids.is_empty() {
        let sql =
            format!("SELECT {HOLD_COLS} FROM holds WHERE id = ANY($1) ORDER BY id FOR UPDATE");
        for row in sqlx::query(&sql)
            .bind(&hold_ids)
            .fetch_all(&mut **tx)
            .await?
        {
            let h = pg::hold(&row)?;
            if keeps_its_seat(&h, keys, extras.now) {
                unlocked_slot_ids.push(h.slot_id);
            } else {
                slot_ids.push(h.slot_id);
            }
            state.holds.insert(h.id.clone(), h);
        }
    }
    if !keys.appointments.is_empty() {
        let sql = format!("SELECT {APPT_COLS} FROM appointments WHERE tracking_code = ANY($1) ORDER BY tracking_code FOR UPDATE");
        for row in sqlx::query(&sql)
            .bind(&keys.appointments)
            .fetch_all(&mut **tx)
            .await?
        {
            let a = pg::appointment(&row)?;
            slot_ids.push(a.slot_id);
            state.appointments.insert(a.tracking_code.clone(), a);
        }
    }
    if !keys.hold_codes.is_empty() {
        let sql = format!(
            "SELECT {HOLD_COLS} FROM holds WHERE national_code = ANY($1) AND status = 'live'"
        );
        for row in sqlx::query(&sql)
            .bind(&keys.hold_codes)
            .fetch_all(&mut **tx)
            .await?
        {
            let h = pg::hold(&row)?;
            state.holds.entry(h.id.clone()).or_insert(h);
        }
    }
    if !keys.citizen_codes.is_empty() {
        let sql = format!("SELECT {APPT_COLS} FROM appointments WHERE national_code = ANY($1) AND status IN ('booked', 'checked_in')");
        for row in sqlx::query(&sql)
            .bind(&keys.citizen_codes)
            .fetch_all(&mut **tx)
            .await?
        {
            let a = pg::appointment(&row)?;
            state
                .appointments
                .entry(a.tracking_code.clone())
                .or_insert(a);
        }
    }
    if !keys.payments.is_empty() {
        let sql =
            "SELECT p.id, p.application_id, a.service, a.national_code, p.status FROM payments p \
                   JOIN applications a ON a.id = p.application_id WHERE p.id = ANY($1)";
        for row in sqlx::query(sql)
            .bind(&keys.payments)
            .fetch_all(&mut **tx)
            .await?
        {
            let p = pg::payment(&row)?;
            state.payments.insert(p.id.clone(), p);
        }
    }
    if !keys.applications.is_empty() {
        let sql = format!("SELECT {APPLICATION_COLS} FROM applications WHERE id = ANY($1)");
        for row in sqlx::query(&sql)
            .bind(&keys.applications)
            .fetch_all(&mut **tx)
            .await?
        {
            let a = pg::application(&row)?;
            state.applications.insert(a.id.clone(), a);
        }
    }
    slot_ids.sort_unstable();
    slot_ids.dedup();
    unlocked_slot_ids.sort_unstable();
    unlocked_slot_ids.dedup();
    unlocked_slot_ids.retain(|id| slot_ids.binary_search(id).is_err());
    for (ids, lock) in [
        (&slot_ids, "ORDER BY id FOR UPDATE"),
        (&unlocked_slot_ids, ""),
    ] {
        if ids.is_empty() {
            continue;
        }
        let sql = format!("SELECT {SLOT_COLS} FROM slots WHERE id = ANY($1) {lock}");
        for row in sqlx::query(&sql).bind(ids).fetch_all(&mut **tx).await? {
            let s = pg::slot(&row)?;
            state.slots.insert(s.id, s);
        }
    }
    let mut stored = HashMap::new();
    if !extras.idempotency_keys.is_empty() {
        let (scopes, ks): (Vec<String>, Vec<String>) =
            extras.idempotency_keys.iter().cloned().unzip();
        let sql = "SELECT k.scope, k.key, k.request_hash, k.response_status, k.response_body FROM idempotency_keys k \
                   JOIN UNNEST($1::text[], $2::text[]) AS r(scope, key) ON k.scope = r.scope AND k.key = r.key";
        for row in sqlx::query(sql)
            .bind(&scopes)
            .bind(&ks)
            .fetch_all(&mut **tx)
            .await?
        {
            let rec = IdempotencyRecord {
                scope: row.try_get(0)?,
                key: row.try_get(1)?,
                request_hash: row.try_get(2)?,
                response_status: row.try_get(3)?,
                response_body: row.try_get(4)?,
            };
            stored.insert((rec.scope.clone(), rec.key.clone()), rec);
        }
    }
    state.index();
    Ok((state, stored))
}

/// Whether deciding the batch leaves the seat count of `hold`'s slot as it is: the hold is only
/// confirmed (no other request of the batch names it), and it is either live until after
/// `now` (its seat moves to the appointment) or no longer live (the confirmation is refused).
/// A live hold that has expired by `now` frees its seat when it is looked at.
fn keeps_its_seat(hold: &HoldRow, keys: &BatchKeys, now: i64) -> bool {
    keys.holds.binary_search(&hold.id).is_err()
        && keys.confirmed_holds.binary_search(&hold.id).is_ok()
        && (hold.status != HoldStatus::Live || hold.expires_at > now)
}

async fn pg_write(
    tx: &mut Transaction<'_, Postgres>,
    e: &Effects,
    idem: &[IdempotencyRecord],
) -> Result<(), StoreError> {
    // Order matters for the partial unique indexes: statuses that end a live hold or an active
    // appointment are written before new rows that need the slot in the index.
    if !e.hold_status.is_empty() {
        let (ids, statuses): (Vec<String>, Vec<String>) = e
            .hold_status
            .iter()
            .map(|(id, s)| (id.clone(), s.as_str().to_string()))
            .unzip();
        sqlx::query("UPDATE holds SET status = u.status FROM UNNEST($1::text[], $2::text[]) AS u(id, status) WHERE holds.id = u.id")
            .bind(&ids)
            .bind(&statuses)
            .execute(&mut **tx)
            .await?;
    }
    if !e.appointment_updates.is_empty() {
        let rows: Vec<&AppointmentRow> = e.appointment_updates.values().collect();
        sqlx::query(
            "UPDATE appointments SET status = u.status, slot_id = u.slot_id, office_id = u.office_id, start_at = u.start_at, updated_at = u.updated_at \
             FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[]) AS u(code, status, slot_id, office_id, start_at, updated_at) \
             WHERE appointments.tracking_code = u.code",
        )
        .bind(rows.iter().map(|a| a.tracking_code.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|a| a.status.as_str().to_string()).collect::<Vec<_>>())
        .bind(rows.iter().map(|a| a.slot_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|a| a.office_id.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|a| a.start_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|a| a.updated_at).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    if !e.new_holds.is_empty() {
        let h = &e.new_holds;
        sqlx::query(&format!(
            "INSERT INTO holds ({HOLD_COLS}) SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[])"
        ))
        .bind(h.iter().map(|x| x.id.clone()).collect::<Vec<_>>())
        .bind(h.iter().map(|x| x.slot_id).collect::<Vec<_>>())
        .bind(h.iter().map(|x| x.application_id.clone()).collect::<Vec<_>>())
        .bind(h.iter().map(|x| x.national_code.clone()).collect::<Vec<_>>())
        .bind(h.iter().map(|x| x.service.clone()).collect::<Vec<_>>())
        .bind(h.iter().map(|x| x.status.as_str().to_string()).collect::<Vec<_>>())
        .bind(h.iter().map(|x| x.created_at).collect::<Vec<_>>())
        .bind(h.iter().map(|x| x.expires_at).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    if !e.new_appointments.is_empty() {
        let a = &e.new_appointments;
        sqlx::query(&format!(
            "INSERT INTO appointments ({APPT_COLS}) SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::bigint[])"
        ))
        .bind(a.iter().map(|x| x.tracking_code.clone()).collect::<Vec<_>>())
        .bind(a.iter().map(|x| x.slot_id).collect::<Vec<_>>())
        .bind(a.iter().map(|x| x.office_id.clone()).collect::<Vec<_>>())
        .bind(a.iter().map(|x| x.start_at).collect::<Vec<_>>())
        .bind(a.iter().map(|x| x.application_id.clone()).collect::<Vec<_>>())
        .bind(a.iter().map(|x| x.national_code.clone()).collect::<Vec<_>>())
        .bind(a.iter().map(|x| x.service.clone()).collect::<Vec<_>>())
        .bind(a.iter().map(|x| x.payment_id.clone()).collect::<Vec<_>>())
        .bind(a.iter().map(|x| x.status.as_str().to_string()).collect::<Vec<_>>())
        .bind(a.iter().map(|x| x.created_at).collect::<Vec<_>>())
        .bind(a.iter().map(|x| x.updated_at).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    // Capacity changes bracket the seat deltas so the CHECK holds after every statement:
    // raise first, apply the deltas, then set the final (possibly lower) capacity.
    let (cap_ids, caps): (Vec<i64>, Vec<i64>) =
        e.slot_capacity.iter().map(|(id, c)| (*id, *c)).unzip();
    if !cap_ids.is_empty() {
        sqlx::query("UPDATE slots SET capacity = GREATEST(slots.capacity, c.capacity) FROM UNNEST($1::bigint[], $2::bigint[]) AS c(id, capacity) WHERE slots.id = c.id")
            .bind(&cap_ids)
            .bind(&caps)
            .execute(&mut **tx)
            .await?;
    }
    if !e.slot_deltas.is_empty() {
        let (ids, deltas): (Vec<i64>, Vec<i64>) =
            e.slot_deltas.iter().map(|(id, d)| (*id, *d)).unzip();
        sqlx::query("UPDATE slots SET taken = slots.taken + d.delta FROM UNNEST($1::bigint[], $2::bigint[]) AS d(id, delta) WHERE slots.id = d.id")
            .bind(&ids)
            .bind(&deltas)
            .execute(&mut **tx)
            .await?;
    }
    if !cap_ids.is_empty() {
        sqlx::query("UPDATE slots SET capacity = c.capacity FROM UNNEST($1::bigint[], $2::bigint[]) AS c(id, capacity) WHERE slots.id = c.id")
            .bind(&cap_ids)
            .bind(&caps)
            .execute(&mut **tx)
            .await?;
    }
    if !e.new_cards.is_empty() {
        let c = &e.new_cards;
        sqlx::query("INSERT INTO cards (tracking_code, office_id, ready_date, pickup_tracking_code, created_at) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])")
            .bind(c.iter().map(|x| x.tracking_code.clone()).collect::<Vec<_>>())
            .bind(c.iter().map(|x| x.office_id.clone()).collect::<Vec<_>>())
            .bind(c.iter().map(|x| x.ready_date.clone()).collect::<Vec<_>>())
            .bind(c.iter().map(|x| x.pickup_tracking_code.clone()).collect::<Vec<_>>())
            .bind(c.iter().map(|x| x.created_at).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
    }
    if !e.outbox.is_empty() {
        let o = &e.outbox;
        sqlx::query("INSERT INTO outbox (national_code, application_id, tracking_code, notice_key, channel, body, created_at) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[]) \
                     ON CONFLICT (tracking_code, notice_key) DO NOTHING")
            .bind(o.iter().map(|x| x.national_code.clone()).collect::<Vec<_>>())
            .bind(o.iter().map(|x| x.application_id.clone()).collect::<Vec<_>>())
            .bind(o.iter().map(|x| x.tracking_code.clone()).collect::<Vec<_>>())
            .bind(o.iter().map(|x| x.notice_key.clone()).collect::<Vec<_>>())
            .bind(o.iter().map(|x| x.channel.clone()).collect::<Vec<_>>())
            .bind(o.iter().map(|x| x.body.clone()).collect::<Vec<_>>())
            .bind(o.iter().map(|x| x.created_at).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
    }
    if !e.events.is_empty() {
        sqlx::query("INSERT INTO events (at, actor, kind, subject, payload_json) SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])")
            .bind(e.events.iter().map(|x| x.at).collect::<Vec<_>>())
            .bind(e.events.iter().map(|x| x.actor.clone()).collect::<Vec<_>>())
            .bind(e.events.iter().map(|x| x.kind.to_string()).collect::<Vec<_>>())
            .bind(e.events.iter().map(|x| x.subject.clone()).collect::<Vec<_>>())
            .bind(e.events.iter().map(|x| x.payload_json.clone()).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
    }
    if !idem.is_empty() {
        sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, request_hash, response_status, response_body, created_at) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[])",
        )
        .bind(idem.iter().map(|x| x.scope.clone()).collect::<Vec<_>>())
        .bind(idem.iter().map(|x| x.key.clone()).collect::<Vec<_>>())
        .bind(idem.iter().map(|x| x.request_hash.clone()).collect::<Vec<_>>())
        .bind(idem.iter().map(|x| x.response_status).collect::<Vec<_>>())
        .bind(idem.iter().map(|x| x.response_body.clone()).collect::<Vec<_>>())
        .bind(idem.iter().map(|_| e.now).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
