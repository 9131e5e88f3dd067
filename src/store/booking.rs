//! The writer's transaction: lock and read every row a batch touches, decide in memory
//! (`engine::booking::decide`), write the effects in bulk, commit once.
//!
//! Each step is one statement whatever the batch size on PostgreSQL (arrays bound as `UNNEST`
//! parameters); on SQLite the reads take the keys as JSON (`json_each`) and the hot writes
//! (holds, appointments, seats, events, idempotency records) are multi-row `VALUES` with bound
//! parameters, 64 rows a statement, so that SQLite parses no JSON per row. Either way a batch
//! of 500 requests costs a few dozen statements at most, not thousands. Rows are locked (`FOR UPDATE`, in id order) on
//! PostgreSQL so that several nobat processes can share one database; on SQLite the write
//! transaction is already exclusive.

use std::collections::HashMap;

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Postgres, Row, Sqlite, Transaction};

use super::{Store, StoreError};
use crate::engine::booking::{
    AppointmentRow, AppointmentStatus, BatchKeys, BatchState, Effects, Event, HoldRow, HoldStatus,
    PaymentRow, PaymentStatus, SlotRow,
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
#[derive(Debug, Default, Clone)]
pub struct BatchExtras {
    /// (scope, key) pairs of the batch's idempotency keys.
    pub idempotency_keys: Vec<(String, String)>,
    /// `(now, limit)`: also lock and load up to `limit` live holds already expired at `now`
    /// (into `BatchState::due_holds`), so every batch expires some while it is there anyway:
    /// seats come back on time even when the pool is too busy for the separate sweeper.
    pub sweep_due: Option<(i64, i64)>,
}

/// The connection a writer runs its batches on. On SQLite it is the writer's own, outside the
/// pool (opened on first use with the pool's options, so WAL and `synchronous=FULL` hold): a
/// pooled connection would have its page cache discarded whenever another connection had
/// committed since it last ran, i.e. before nearly every batch; this one stays warm, as do its
/// prepared statements. PostgreSQL batches take a pooled connection each (several writers lock
/// rows side by side).
#[derive(Default)]
pub struct BatchConn {
    lite: Option<sqlx::SqliteConnection>,
}

impl BatchConn {
    /// Page cache of the writer's SQLite connection: 64 MiB (SQLite's default is 2 MiB).
    const LITE_CACHE_KIB: i64 = 64 * 1024;
    /// WAL pages between the checkpoints the writer runs after its commits (SQLite's default
    /// is 1,000). The same hot pages (slot rows, index roots) are copied back once per
    /// checkpoint, so rarer checkpoints copy less per booking: on the hold→confirm bench
    /// about +12% (noisy); the WAL stays under ~40 MiB.
    const LITE_WAL_AUTOCHECKPOINT_PAGES: i64 = 10_000;

    async fn open_lite(pool: &sqlx::SqlitePool) -> Result<sqlx::SqliteConnection, StoreError> {
        use sqlx::ConnectOptions;
        let options = (*pool.connect_options())
            .clone()
            .pragma("cache_size", format!("-{}", Self::LITE_CACHE_KIB))
            .pragma(
                "wal_autocheckpoint",
                Self::LITE_WAL_AUTOCHECKPOINT_PAGES.to_string(),
            );
        Ok(options.connect().await?)
    }
}

/// The decisions of a batch plus the idempotency records to store with them.
pub struct BatchWrite<T> {
    pub effects: Effects,
    pub idempotency: Vec<IdempotencyRecord>,
    pub result: T,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

const HOLD_COLS: &str =
    "id, slot_id, application_id, national_code, service, status, created_at, expires_at";
const APPT_COLS: &str =
    "tracking_code, slot_id, office_id, start_at, application_id, national_code, service, payment_id, status, created_at, updated_at";
const SLOT_COLS: &str = "id, office_id, start_at, duration_minutes, capacity, taken";

macro_rules! decode_rows {
    ($row_ty:ty) => {
        pub(crate) fn hold(row: &$row_ty) -> Result<HoldRow, StoreError> {
            Ok(HoldRow {
                id: row.try_get(0)?,
                slot_id: row.try_get(1)?,
                application_id: row.try_get(2)?,
                national_code: row.try_get(3)?,
                service: row.try_get(4)?,
                status: HoldStatus::parse(row.try_get::<&str, _>(5)?)
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
                status: AppointmentStatus::parse(row.try_get::<&str, _>(8)?)
                    .ok_or_else(|| corrupt("appointment status"))?,
                created_at: row.try_get(9)?,
                updated_at: row.try_get(10)?,
            })
        }

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

        pub(crate) fn payment(row: &$row_ty) -> Result<PaymentRow, StoreError> {
            Ok(PaymentRow {
                id: row.try_get(0)?,
                application_id: row.try_get(1)?,
                service: row.try_get(2)?,
                national_code: row.try_get(3)?,
                status: PaymentStatus::parse(row.try_get::<&str, _>(4)?)
                    .ok_or_else(|| corrupt("payment status"))?,
            })
        }
    };
}

pub(crate) mod pg {
    use super::*;
    decode_rows!(PgRow);
}

pub(crate) mod lite {
    use super::*;
    decode_rows!(SqliteRow);
}

/// Rows as one JSON array of arrays (tuples serialise as arrays, without building
/// `serde_json::Value`s), for `json_each`.
fn json_rows<T: serde::Serialize>(rows: &[T]) -> String {
    serde_json::to_string(rows).expect("rows serialise")
}

fn json_strings(v: &[String]) -> String {
    serde_json::to_string(v).expect("strings serialise")
}

impl Store {
    /// Runs one batch: reads and locks what `keys` names, lets `decide` work on the state,
    /// writes its effects and idempotency records, commits. Any error rolls everything back.
    pub async fn run_batch<T>(
        &self,
        conn: &mut BatchConn,
        mut keys: BatchKeys,
        extras: &BatchExtras,
        decide: impl FnOnce(
            &mut BatchState,
            &HashMap<(String, String), IdempotencyRecord>,
        ) -> BatchWrite<T>,
    ) -> Result<T, StoreError> {
        keys.normalise();
        match self {
            Store::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let (mut state, stored) = pg_read(&mut tx, &keys, extras).await?;
                let write = decide(&mut state, &stored);
                pg_write(&mut tx, &write.effects, &write.idempotency).await?;
                tx.commit().await?;
                Ok(write.result)
            }
            Store::Sqlite(pool) => {
                let lite = match &mut conn.lite {
                    Some(c) => c,
                    None => conn.lite.insert(BatchConn::open_lite(pool).await?),
                };
                let result = async {
                    // IMMEDIATE takes the write lock up front, so the reads below cannot go
                    // stale before the writes (and no deferred-upgrade deadlock is possible).
                    let mut tx =
                        sqlx::Connection::begin_with(&mut *lite, "BEGIN IMMEDIATE").await?;
                    let (mut state, stored) = lite_read(&mut tx, &keys, extras).await?;
                    let write = decide(&mut state, &stored);
                    lite_write(&mut tx, &write.effects, &write.idempotency).await?;
                    tx.commit().await?;
                    Ok(write.result)
                }
                .await;
                if let Err(e) = &result {
                    // A refused write leaves the connection sound (the transaction rolls back);
                    // after anything else, start again from a fresh connection.
                    if !matches!(e, StoreError::Constraint { .. }) {
                        conn.lite = None;
                    }
                }
                result
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

async fn pg_read(
    tx: &mut Transaction<'_, Postgres>,
    keys: &BatchKeys,
    extras: &BatchExtras,
) -> Result<(BatchState, HashMap<(String, String), IdempotencyRecord>), StoreError> {
    let mut state = BatchState::default();
    let mut slot_ids = keys.slots.clone();
    let mut hold_ids = keys.holds.clone();
    if let Some((now, limit)) = extras.sweep_due {
        // SKIP LOCKED: a hold another writer is handling is left to it.
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM holds WHERE status = 'live' AND expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?;
        hold_ids.extend(due.iter().cloned());
        hold_ids.sort();
        hold_ids.dedup();
        state.due_holds = due;
    }
    if !hold_ids.is_empty() {
        let sql =
            format!("SELECT {HOLD_COLS} FROM holds WHERE id = ANY($1) ORDER BY id FOR UPDATE");
        for row in sqlx::query(&sql)
            .bind(&hold_ids)
            .fetch_all(&mut **tx)
            .await?
        {
            let h = pg::hold(&row)?;
            slot_ids.push(h.slot_id);
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
    if !keys.citizen_codes.is_empty() {
        let sql = format!(
            "SELECT {HOLD_COLS} FROM holds WHERE national_code = ANY($1) AND status = 'live'"
        );
        for row in sqlx::query(&sql)
            .bind(&keys.citizen_codes)
            .fetch_all(&mut **tx)
            .await?
        {
            let h = pg::hold(&row)?;
            state.holds.entry(h.id.clone()).or_insert(h);
        }
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
    slot_ids.sort_unstable();
    slot_ids.dedup();
    if !slot_ids.is_empty() {
        let sql =
            format!("SELECT {SLOT_COLS} FROM slots WHERE id = ANY($1) ORDER BY id FOR UPDATE");
        for row in sqlx::query(&sql)
            .bind(&slot_ids)
            .fetch_all(&mut **tx)
            .await?
        {
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
            .bind(e.events.iter().map(|x| x.payload.to_string()).collect::<Vec<_>>())
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

async fn lite_read(
    tx: &mut Transaction<'_, Sqlite>,
    keys: &BatchKeys,
    extras: &BatchExtras,
) -> Result<(BatchState, HashMap<(String, String), IdempotencyRecord>), StoreError> {
    let mut state = BatchState::default();
    let mut slot_ids = keys.slots.clone();
    let mut hold_ids = keys.holds.clone();
    if let Some((now, limit)) = extras.sweep_due {
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM holds WHERE status = 'live' AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?;
        hold_ids.extend(due.iter().cloned());
        hold_ids.sort();
        hold_ids.dedup();
        state.due_holds = due;
    }
    if !hold_ids.is_empty() {
        let sql =
            format!("SELECT {HOLD_COLS} FROM holds WHERE id IN (SELECT value FROM json_each(?1))");
        for row in sqlx::query(&sql)
            .bind(json_strings(&hold_ids))
            .fetch_all(&mut **tx)
            .await?
        {
            let h = lite::hold(&row)?;
            slot_ids.push(h.slot_id);
            state.holds.insert(h.id.clone(), h);
        }
    }
    if !keys.appointments.is_empty() {
        let sql = format!("SELECT {APPT_COLS} FROM appointments WHERE tracking_code IN (SELECT value FROM json_each(?1))");
        for row in sqlx::query(&sql)
            .bind(json_strings(&keys.appointments))
            .fetch_all(&mut **tx)
            .await?
        {
            let a = lite::appointment(&row)?;
            slot_ids.push(a.slot_id);
            state.appointments.insert(a.tracking_code.clone(), a);
        }
    }
    if !keys.citizen_codes.is_empty() {
        let codes = json_strings(&keys.citizen_codes);
        let sql = format!("SELECT {HOLD_COLS} FROM holds WHERE national_code IN (SELECT value FROM json_each(?1)) AND status = 'live'");
        for row in sqlx::query(&sql).bind(&codes).fetch_all(&mut **tx).await? {
            let h = lite::hold(&row)?;
            state.holds.entry(h.id.clone()).or_insert(h);
        }
        let sql = format!(
            "SELECT {APPT_COLS} FROM appointments WHERE national_code IN (SELECT value FROM json_each(?1)) AND status IN ('booked', 'checked_in')"
        );
        for row in sqlx::query(&sql).bind(&codes).fetch_all(&mut **tx).await? {
            let a = lite::appointment(&row)?;
            state
                .appointments
                .entry(a.tracking_code.clone())
                .or_insert(a);
        }
    }
    if !keys.payments.is_empty() {
        let sql = "SELECT p.id, p.application_id, a.service, a.national_code, p.status FROM payments p \
                   JOIN applications a ON a.id = p.application_id WHERE p.id IN (SELECT value FROM json_each(?1))";
        for row in sqlx::query(sql)
            .bind(json_strings(&keys.payments))
            .fetch_all(&mut **tx)
            .await?
        {
            let p = lite::payment(&row)?;
            state.payments.insert(p.id.clone(), p);
        }
    }
    slot_ids.sort_unstable();
    slot_ids.dedup();
    if !slot_ids.is_empty() {
        let sql =
            format!("SELECT {SLOT_COLS} FROM slots WHERE id IN (SELECT value FROM json_each(?1))");
        let ids = serde_json::to_string(&slot_ids).expect("ids serialise");
        for row in sqlx::query(&sql).bind(ids).fetch_all(&mut **tx).await? {
            let s = lite::slot(&row)?;
            state.slots.insert(s.id, s);
        }
    }
    let mut stored = HashMap::new();
    if !extras.idempotency_keys.is_empty() {
        let pairs = serde_json::to_string(&extras.idempotency_keys).expect("pairs serialise");
        let sql = "SELECT k.scope, k.key, k.request_hash, k.response_status, k.response_body FROM json_each(?1) r \
                   JOIN idempotency_keys k ON k.scope = r.value ->> 0 AND k.key = r.value ->> 1";
        for row in sqlx::query(sql).bind(pairs).fetch_all(&mut **tx).await? {
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

type LiteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// A row written by [`lite_values`]: binds its values in column order.
trait LiteRow {
    fn bind<'q>(&'q self, q: LiteQuery<'q>) -> LiteQuery<'q>;
}

/// Rows per multi-row statement on SQLite. A batch is written in full chunks of this size,
/// then the remainder in powers of two, so a few statement texts (each prepared once per
/// connection and cached) cover every batch size.
const LITE_CHUNK: usize = 64;

/// Writes `rows` with `head VALUES (?, …), (?, …) tail`, binding each row's `cols` values:
/// plain bound parameters, so SQLite parses no JSON for the hot writes.
async fn lite_values<R>(
    tx: &mut Transaction<'_, Sqlite>,
    head: &str,
    tail: &str,
    cols: usize,
    rows: &[R],
) -> Result<(), StoreError>
where
    R: LiteRow,
{
    let mut rest = rows;
    while !rest.is_empty() {
        let n = if rest.len() >= LITE_CHUNK {
            LITE_CHUNK
        } else {
            1 << (usize::BITS - 1 - rest.len().leading_zeros())
        };
        let (chunk, tail_rows) = rest.split_at(n);
        rest = tail_rows;
        let mut row = String::with_capacity(2 + 2 * cols);
        row.push('(');
        for c in 0..cols {
            row.push_str(if c == 0 { "?" } else { ",?" });
        }
        row.push(')');
        let mut sql = String::with_capacity(head.len() + tail.len() + 8 + n * (row.len() + 1));
        sql.push_str(head);
        sql.push_str(" VALUES ");
        for i in 0..n {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&row);
        }
        sql.push(' ');
        sql.push_str(tail);
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = r.bind(q);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

impl LiteRow for (&str, &'static str) {
    fn bind<'q>(&'q self, q: LiteQuery<'q>) -> LiteQuery<'q> {
        q.bind(self.0).bind(self.1)
    }
}

impl LiteRow for (i64, i64) {
    fn bind<'q>(&'q self, q: LiteQuery<'q>) -> LiteQuery<'q> {
        q.bind(self.0).bind(self.1)
    }
}

impl LiteRow for HoldRow {
    fn bind<'q>(&'q self, q: LiteQuery<'q>) -> LiteQuery<'q> {
        q.bind(self.id.as_str())
            .bind(self.slot_id)
            .bind(self.application_id.as_str())
            .bind(self.national_code.as_str())
            .bind(self.service.as_str())
            .bind(self.status.as_str())
            .bind(self.created_at)
            .bind(self.expires_at)
    }
}

impl LiteRow for AppointmentRow {
    fn bind<'q>(&'q self, q: LiteQuery<'q>) -> LiteQuery<'q> {
        q.bind(self.tracking_code.as_str())
            .bind(self.slot_id)
            .bind(self.office_id.as_str())
            .bind(self.start_at)
            .bind(self.application_id.as_str())
            .bind(self.national_code.as_str())
            .bind(self.service.as_str())
            .bind(self.payment_id.as_deref())
            .bind(self.status.as_str())
            .bind(self.created_at)
            .bind(self.updated_at)
    }
}

impl LiteRow for Event {
    fn bind<'q>(&'q self, q: LiteQuery<'q>) -> LiteQuery<'q> {
        q.bind(self.at)
            .bind(self.actor.as_str())
            .bind(self.kind)
            .bind(self.subject.as_str())
            .bind(self.payload.to_string())
    }
}

impl LiteRow for (&IdempotencyRecord, i64) {
    fn bind<'q>(&'q self, q: LiteQuery<'q>) -> LiteQuery<'q> {
        q.bind(self.0.scope.as_str())
            .bind(self.0.key.as_str())
            .bind(self.0.request_hash.as_str())
            .bind(self.0.response_status)
            .bind(self.0.response_body.as_str())
            .bind(self.1)
    }
}

async fn lite_write(
    tx: &mut Transaction<'_, Sqlite>,
    e: &Effects,
    idem: &[IdempotencyRecord],
) -> Result<(), StoreError> {
    if !e.hold_status.is_empty() {
        let rows: Vec<(&str, &'static str)> = e
            .hold_status
            .iter()
            .map(|(id, s)| (id.as_str(), s.as_str()))
            .collect();
        lite_values(
            tx,
            "UPDATE holds SET status = u.column2 FROM (",
            ") AS u WHERE holds.id = u.column1",
            2,
            &rows,
        )
        .await?;
    }
    if !e.appointment_updates.is_empty() {
        let rows: Vec<_> = e
            .appointment_updates
            .values()
            .map(|a| {
                (
                    &a.tracking_code,
                    a.status.as_str(),
                    &a.slot_id,
                    &a.office_id,
                    &a.start_at,
                    &a.updated_at,
                )
            })
            .collect();
        sqlx::query(
            "UPDATE appointments SET status = u.value ->> 1, slot_id = u.value ->> 2, office_id = u.value ->> 3, \
             start_at = u.value ->> 4, updated_at = u.value ->> 5 FROM json_each(?1) AS u WHERE appointments.tracking_code = u.value ->> 0",
        )
        .bind(json_rows(&rows))
        .execute(&mut **tx)
        .await?;
    }
    if !e.new_holds.is_empty() {
        let head = format!("INSERT INTO holds ({HOLD_COLS})");
        lite_values(tx, &head, "", 8, &e.new_holds).await?;
    }
    if !e.new_appointments.is_empty() {
        let head = format!("INSERT INTO appointments ({APPT_COLS})");
        lite_values(tx, &head, "", 11, &e.new_appointments).await?;
    }
    // Capacity changes bracket the seat deltas so the CHECK holds after every statement.
    let caps = json_rows(&e.slot_capacity.iter().collect::<Vec<_>>());
    if !e.slot_capacity.is_empty() {
        sqlx::query("UPDATE slots SET capacity = MAX(capacity, c.value ->> 1) FROM json_each(?1) AS c WHERE slots.id = c.value ->> 0")
            .bind(&caps)
            .execute(&mut **tx)
            .await?;
    }
    if !e.slot_deltas.is_empty() {
        let rows: Vec<(i64, i64)> = e.slot_deltas.iter().map(|(id, d)| (*id, *d)).collect();
        lite_values(
            tx,
            "UPDATE slots SET taken = taken + u.column2 FROM (",
            ") AS u WHERE slots.id = u.column1",
            2,
            &rows,
        )
        .await?;
    }
    if !e.slot_capacity.is_empty() {
        sqlx::query("UPDATE slots SET capacity = c.value ->> 1 FROM json_each(?1) AS c WHERE slots.id = c.value ->> 0")
            .bind(&caps)
            .execute(&mut **tx)
            .await?;
    }
    if !e.new_cards.is_empty() {
        let rows: Vec<_> = e
            .new_cards
            .iter()
            .map(|c| {
                (
                    &c.tracking_code,
                    &c.office_id,
                    &c.ready_date,
                    &c.pickup_tracking_code,
                    &c.created_at,
                )
            })
            .collect();
        sqlx::query("INSERT INTO cards (tracking_code, office_id, ready_date, pickup_tracking_code, created_at) \
                     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 FROM json_each(?1)")
            .bind(json_rows(&rows))
            .execute(&mut **tx)
            .await?;
    }
    if !e.outbox.is_empty() {
        let rows: Vec<_> = e
            .outbox
            .iter()
            .map(|o| {
                (
                    &o.national_code,
                    &o.application_id,
                    &o.tracking_code,
                    &o.notice_key,
                    &o.channel,
                    &o.body,
                    &o.created_at,
                )
            })
            .collect();
        // `WHERE true` lets SQLite parse the upsert clause after a SELECT.
        sqlx::query("INSERT INTO outbox (national_code, application_id, tracking_code, notice_key, channel, body, created_at) \
                     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6 FROM json_each(?1) WHERE true \
                     ON CONFLICT (tracking_code, notice_key) DO NOTHING")
            .bind(json_rows(&rows))
            .execute(&mut **tx)
            .await?;
    }
    if !e.events.is_empty() {
        lite_values(
            tx,
            "INSERT INTO events (at, actor, kind, subject, payload_json)",
            "",
            5,
            &e.events,
        )
        .await?;
    }
    if !idem.is_empty() {
        let rows: Vec<(&IdempotencyRecord, i64)> = idem.iter().map(|x| (x, e.now)).collect();
        lite_values(
            tx,
            "INSERT INTO idempotency_keys (scope, key, request_hash, response_status, response_body, created_at)",
            "",
            6,
            &rows)
        .await?;
    }
    Ok(())
}
