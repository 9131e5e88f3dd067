//! The writer's transaction: lock and read every row a batch touches, decide in memory
//! (`booking::decide`), write the effects in bulk, commit once. What is read and written, and in
//! which order, is `batch_plan`'s; this file holds PostgreSQL's executor of it.
//!
//! On PostgreSQL each step is one statement whatever the batch size (arrays bound as `UNNEST`
//! parameters), so a batch of 500 requests costs a few dozen statements at most, not
//! thousands; rows are locked (`FOR UPDATE`, in id order) so that several nobat processes can
//! share one database. On SQLite the batch runs on a thread of its own with prepared statements
//! (`lite_writer`), and the write transaction is exclusive.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Postgres, Row, Transaction};

use super::batch_plan::{self, Locking, ReadPlan, ReadStep, Stored, WriteStep};
use super::lite_writer::{LiteSettings, LiteWriter};
use super::{Store, StoreError};
use crate::booking::{
    ApplicationRef, AppointmentRow, AppointmentStatus, BatchKeys, BatchState, Effects, HoldRow,
    HoldStatus, Limits, PartOfDay, PaymentRow, PaymentStatus, ReleaseStatus, SeatReleaseRow,
    SlotRow, WaitLimits, WaitRow, WaitStatus,
};

/// A stored answer to an idempotent request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub scope: String,
    pub key: String,
    pub request_hash: String,
    pub answer: StoredAnswer,
}

/// What an idempotency record replays, by the format it was stored in (migration 0006).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredAnswer {
    /// The HTTP status and JSON body the client got: every record of the current format, and
    /// the format-1 records of requests other than bookings, which stored the same.
    Http { status: u16, body: String },
    /// A format-1 booking record: the engine's `Outcome` as JSON (stored with status 0).
    /// `reserve` replays it through its legacy decoder.
    LegacyOutcome(String),
    /// A format this build does not know (a newer build wrote it), as stored.
    Unknown {
        format_version: i32,
        status: i64,
        body: String,
    },
}

/// The format idempotency records are written in: the HTTP status and body (`StoredAnswer::Http`).
pub const IDEMPOTENCY_FORMAT: i32 = 2;

impl StoredAnswer {
    /// The answer stored in the columns `format_version`, `response_status`, `response_body`.
    pub(crate) fn from_columns(format_version: i32, status: i64, body: String) -> StoredAnswer {
        match (format_version, u16::try_from(status)) {
            (IDEMPOTENCY_FORMAT, Ok(status)) => StoredAnswer::Http { status, body },
            (1, Ok(0)) => StoredAnswer::LegacyOutcome(body),
            (1, Ok(status)) => StoredAnswer::Http { status, body },
            _ => StoredAnswer::Unknown {
                format_version,
                status,
                body,
            },
        }
    }

    /// The columns it is stored in: `format_version`, `response_status`, `response_body`.
    pub(crate) fn columns(&self) -> (i32, i64, &str) {
        match self {
            StoredAnswer::Http { status, body } => (IDEMPOTENCY_FORMAT, i64::from(*status), body),
            StoredAnswer::LegacyOutcome(body) => (1, 0, body),
            StoredAnswer::Unknown {
                format_version,
                status,
                body,
            } => (*format_version, *status, body),
        }
    }
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
    /// The caps the batch is decided under (`BatchState::limits`); their window says which of
    /// the cancelling citizens' cancellations are read.
    pub limits: Limits,
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
    StoreError::corrupt(what)
}

pub(super) const HOLD_COLS: &str =
    "id, slot_id, application_id, national_code, service, status, created_at, expires_at";
/// The columns of an appointment row, in the order the decoders read them: every query whose rows
/// are decoded as `AppointmentRow`s selects these.
pub(crate) const APPT_COLS: &str =
    "tracking_code, slot_id, office_id, start_at, application_id, national_code, service, payment_id, status, created_at, updated_at, reschedules";
pub(super) const SLOT_COLS: &str =
    "id, office_id, start_at, duration_minutes, capacity, taken, opens_at, opens_for";
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
                reschedules: row.try_get(11)?,
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
                opens_at: row.try_get(6)?,
                opens_for: row.try_get(7)?,
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

/// Decoders of waitlist entries (`ENTRY_COLS`) and seat releases (`RELEASE_COLS`), from column
/// `$at` on.
macro_rules! decode_waitlist_rows {
    ($row_ty:ty) => {
        pub(crate) fn entry_at(row: &$row_ty, at: usize) -> Result<WaitRow, StoreError> {
            Ok(WaitRow {
                id: row.try_get(at)?,
                national_code: row.try_get(at + 1)?,
                service: row.try_get(at + 2)?,
                application_id: row.try_get(at + 3)?,
                payment_id: row.try_get(at + 4)?,
                auto_accept: row.try_get::<i64, _>(at + 5)? != 0,
                limits: WaitLimits {
                    earliest_at: row.try_get(at + 6)?,
                    latest_at: row.try_get(at + 7)?,
                    part_of_day: PartOfDay::parse(row.try_get::<String, _>(at + 8)?.as_str())
                        .ok_or_else(|| corrupt("part of day"))?,
                },
                limits_json: row.try_get(at + 9)?,
                status: WaitStatus::parse(row.try_get::<String, _>(at + 10)?.as_str())
                    .ok_or_else(|| corrupt("waitlist status"))?,
                offer_hold_id: row.try_get(at + 11)?,
                tracking_code: row.try_get(at + 12)?,
                joined_at: row.try_get(at + 13)?,
                updated_at: row.try_get(at + 14)?,
            })
        }

        #[allow(dead_code)] // not every row type reads releases
        pub(crate) fn release(row: &$row_ty) -> Result<SeatReleaseRow, StoreError> {
            Ok(SeatReleaseRow {
                id: row.try_get(0)?,
                slot_id: row.try_get(1)?,
                release_at: row.try_get(2)?,
                freed_by: row.try_get(3)?,
                status: ReleaseStatus::parse(row.try_get::<String, _>(4)?.as_str())
                    .ok_or_else(|| corrupt("release status"))?,
                created_at: row.try_get(5)?,
            })
        }
    };
}

pub(crate) use {decode_batch_rows, decode_booking_rows, decode_waitlist_rows};

pub(super) const ENTRY_COLS: &str = "id, national_code, service, application_id, payment_id, auto_accept, earliest_at, latest_at, part_of_day, limits_json, status, offer_hold_id, tracking_code, joined_at, updated_at";
/// `ENTRY_COLS` of the table aliased `e`.
pub(super) fn entry_cols_of_e() -> String {
    ENTRY_COLS
        .split(", ")
        .map(|c| format!("e.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}
pub(super) const RELEASE_COLS: &str = "id, slot_id, release_at, freed_by, status, created_at";

pub(crate) mod pg {
    use super::*;
    decode_booking_rows!(PgRow);
    decode_batch_rows!(PgRow);
    decode_waitlist_rows!(PgRow);
}

pub(crate) mod lite {
    use super::*;
    decode_booking_rows!(SqliteRow);
    decode_waitlist_rows!(SqliteRow);
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
        decide: impl FnOnce(&mut BatchState, &Stored) -> BatchWrite<T> + Send + 'static,
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

/// The citizens' own cancellations after a time (`ReadStep::CancellationsOf`), read through
/// the partial index of the log's cancellation events (migration 0008): on PostgreSQL all the
/// batch's citizens at once, on SQLite one citizen per execution.
pub const CANCELLATIONS_OF_PG: &str = "SELECT actor, COUNT(*) FROM events \
     WHERE kind = 'appointment_cancelled' AND actor = ANY($1) AND at > $2 GROUP BY actor";
/// Locks the citizens of a batch's cancellations until its transaction ends (PostgreSQL
/// advisory locks keyed by a hash of the national code, taken in code order: the volatile
/// function runs after the sort). Their appointment rows are locked anyway; a citizen's
/// cancellation count is not a row, and without this, two processes cancelling two of one
/// citizen's appointments at once could both count before either wrote.
const LOCK_CITIZENS_PG: &str = "SELECT pg_advisory_xact_lock(hashtextextended(c, 21)) \
     FROM UNNEST($1::text[]) AS c ORDER BY c";
/// SQLite's statement of [`CANCELLATIONS_OF_PG`], for one citizen.
pub const CANCELLATIONS_OF_LITE: &str = "SELECT COUNT(*) FROM events \
     WHERE kind = 'appointment_cancelled' AND actor = ?1 AND at > ?2";

/// PostgreSQL's executor of a batch's reads (`batch_plan::ReadPlan`): one statement per read,
/// the keys bound as arrays.
async fn pg_read(
    tx: &mut Transaction<'_, Postgres>,
    keys: &BatchKeys,
    extras: &BatchExtras,
) -> Result<(BatchState, Stored), StoreError> {
    let mut plan = ReadPlan::new(keys, extras, Locking::Rows);
    while let Some(read) = plan.next() {
        match read {
            step @ (ReadStep::Entries(_)
            | ReadStep::LockedEntries(_)
            | ReadStep::OfferEntries(_)
            | ReadStep::ActiveEntriesOf(_)
            | ReadStep::Releases(_)
            | ReadStep::Waiters { .. }
            | ReadStep::WaiterCitizens(_)) => pg_read_waitlist(tx, &mut plan, step).await?,
            ReadStep::DueHolds { now, limit } => {
                // SKIP LOCKED: a hold another writer is handling is left to it.
                let due: Vec<String> = sqlx::query_scalar(
                    "SELECT id FROM holds WHERE status = 'live' AND expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                )
                .bind(now)
                .bind(limit)
                .fetch_all(&mut **tx)
                .await?;
                plan.due_holds(due);
            }
            ReadStep::Holds(ids) => {
                let sql = format!(
                    "SELECT {HOLD_COLS} FROM holds WHERE id = ANY($1) ORDER BY id FOR UPDATE"
                );
                for row in sqlx::query(&sql).bind(&ids).fetch_all(&mut **tx).await? {
                    plan.hold(pg::hold(&row)?);
                }
            }
            ReadStep::Appointments(codes) => {
                let sql = format!("SELECT {APPT_COLS} FROM appointments WHERE tracking_code = ANY($1) ORDER BY tracking_code FOR UPDATE");
                for row in sqlx::query(&sql).bind(codes).fetch_all(&mut **tx).await? {
                    plan.appointment(pg::appointment(&row)?);
                }
            }
            ReadStep::LiveHoldsOf(codes) => {
                let sql = format!(
                    "SELECT {HOLD_COLS} FROM holds WHERE national_code = ANY($1) AND status = 'live'"
                );
                for row in sqlx::query(&sql).bind(codes).fetch_all(&mut **tx).await? {
                    plan.hold(pg::hold(&row)?);
                }
            }
            ReadStep::ActiveAppointmentsOf(codes) => {
                let sql = format!("SELECT {APPT_COLS} FROM appointments WHERE national_code = ANY($1) AND status IN ('booked', 'checked_in')");
                for row in sqlx::query(&sql).bind(codes).fetch_all(&mut **tx).await? {
                    plan.appointment(pg::appointment(&row)?);
                }
            }
            ReadStep::Payments(ids) => {
                let sql = "SELECT p.id, p.application_id, a.service, a.national_code, p.status FROM payments p \
                           JOIN applications a ON a.id = p.application_id WHERE p.id = ANY($1)";
                for row in sqlx::query(sql).bind(ids).fetch_all(&mut **tx).await? {
                    plan.payment(pg::payment(&row)?);
                }
            }
            ReadStep::CancellationsOf { codes, after } => {
                // The citizens are locked first (sorted), so that two processes cancelling for
                // one citizen count one after the other.
                sqlx::query(LOCK_CITIZENS_PG)
                    .bind(codes)
                    .execute(&mut **tx)
                    .await?;
                let counts: Vec<(String, i64)> = sqlx::query_as(CANCELLATIONS_OF_PG)
                    .bind(codes)
                    .bind(after)
                    .fetch_all(&mut **tx)
                    .await?;
                for (code, count) in counts {
                    plan.cancellations(code, count);
                }
            }
            ReadStep::Applications(ids) => {
                let sql = format!("SELECT {APPLICATION_COLS} FROM applications WHERE id = ANY($1)");
                for row in sqlx::query(&sql).bind(ids).fetch_all(&mut **tx).await? {
                    plan.application(pg::application(&row)?);
                }
            }
            ReadStep::LockedSlots(ids) => {
                let sql = format!(
                    "SELECT {SLOT_COLS} FROM slots WHERE id = ANY($1) ORDER BY id FOR UPDATE"
                );
                for row in sqlx::query(&sql).bind(&ids).fetch_all(&mut **tx).await? {
                    plan.slot(pg::slot(&row)?);
                }
            }
            ReadStep::Slots(ids) => {
                let sql = format!("SELECT {SLOT_COLS} FROM slots WHERE id = ANY($1)");
                for row in sqlx::query(&sql).bind(&ids).fetch_all(&mut **tx).await? {
                    plan.slot(pg::slot(&row)?);
                }
            }
            ReadStep::IdempotencyRecords(pairs) => {
                let (scopes, ks): (Vec<&str>, Vec<&str>) =
                    pairs.iter().map(|(s, k)| (s.as_str(), k.as_str())).unzip();
                let sql = "SELECT k.scope, k.key, k.request_hash, k.format_version, k.response_status, k.response_body FROM idempotency_keys k \
                           JOIN UNNEST($1::text[], $2::text[]) AS r(scope, key) ON k.scope = r.scope AND k.key = r.key";
                for row in sqlx::query(sql)
                    .bind(&scopes)
                    .bind(&ks)
                    .fetch_all(&mut **tx)
                    .await?
                {
                    plan.record(IdempotencyRecord {
                        scope: row.try_get(0)?,
                        key: row.try_get(1)?,
                        request_hash: row.try_get(2)?,
                        answer: StoredAnswer::from_columns(
                            row.try_get(3)?,
                            row.try_get(4)?,
                            row.try_get(5)?,
                        ),
                    });
                }
            }
        }
    }
    Ok(plan.finish())
}

/// PostgreSQL's executor of a batch's writes (`batch_plan::writes`, which gives their order
/// and its reasons): one statement per step whatever the batch size, the rows bound as arrays
/// and unnested.
async fn pg_write(
    tx: &mut Transaction<'_, Postgres>,
    e: &Effects,
    idem: &[IdempotencyRecord],
) -> Result<(), StoreError> {
    for write in batch_plan::writes(e, idem) {
        match write {
            step @ (WriteStep::EntryUpdates(_)
            | WriteStep::ReleaseStatus(_)
            | WriteStep::NewEntries(_)
            | WriteStep::EntryOffices(_)
            | WriteStep::NewReleases(_)) => pg_write_waitlist(tx, step).await?,
            WriteStep::HoldStatus(changes) => {
                let ids = column(changes.keys(), |id| id.as_str());
                let statuses = column(changes.values(), |s| s.as_str());
                sqlx::query("UPDATE holds SET status = u.status FROM UNNEST($1::text[], $2::text[]) AS u(id, status) WHERE holds.id = u.id")
                    .bind(&ids)
                    .bind(&statuses)
                    .execute(&mut **tx)
                    .await?;
            }
            WriteStep::AppointmentUpdates(updates) => {
                sqlx::query(
                    "UPDATE appointments SET status = u.status, slot_id = u.slot_id, office_id = u.office_id, start_at = u.start_at, updated_at = u.updated_at, reschedules = u.reschedules \
                     FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[]) AS u(code, status, slot_id, office_id, start_at, updated_at, reschedules) \
                     WHERE appointments.tracking_code = u.code",
                )
                .bind(column(updates.values(), |a| a.tracking_code.as_str()))
                .bind(column(updates.values(), |a| a.status.as_str()))
                .bind(column(updates.values(), |a| a.slot_id))
                .bind(column(updates.values(), |a| a.office_id.as_str()))
                .bind(column(updates.values(), |a| a.start_at))
                .bind(column(updates.values(), |a| a.updated_at))
                .bind(column(updates.values(), |a| a.reschedules))
                .execute(&mut **tx)
                .await?;
            }
            WriteStep::NewHolds(h) => {
                sqlx::query(&format!(
                    "INSERT INTO holds ({HOLD_COLS}) SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[])"
                ))
                .bind(column(h, |x| x.id.as_str()))
                .bind(column(h, |x| x.slot_id))
                .bind(column(h, |x| x.application_id.as_str()))
                .bind(column(h, |x| x.national_code.as_str()))
                .bind(column(h, |x| x.service.as_str()))
                .bind(column(h, |x| x.status.as_str()))
                .bind(column(h, |x| x.created_at))
                .bind(column(h, |x| x.expires_at))
                .execute(&mut **tx)
                .await?;
            }
            WriteStep::NewAppointments(a) => {
                sqlx::query(&format!(
                    "INSERT INTO appointments ({APPT_COLS}) SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[])"
                ))
                .bind(column(a, |x| x.tracking_code.as_str()))
                .bind(column(a, |x| x.slot_id))
                .bind(column(a, |x| x.office_id.as_str()))
                .bind(column(a, |x| x.start_at))
                .bind(column(a, |x| x.application_id.as_str()))
                .bind(column(a, |x| x.national_code.as_str()))
                .bind(column(a, |x| x.service.as_str()))
                .bind(column(a, |x| x.payment_id.as_deref()))
                .bind(column(a, |x| x.status.as_str()))
                .bind(column(a, |x| x.created_at))
                .bind(column(a, |x| x.updated_at))
                .bind(column(a, |x| x.reschedules))
                .execute(&mut **tx)
                .await?;
            }
            step @ (WriteStep::RaiseCapacity(_)
            | WriteStep::SeatDeltas(_)
            | WriteStep::SetCapacity(_)) => pg_write_seats(tx, step).await?,
            WriteStep::NewCards(c) => {
                sqlx::query("INSERT INTO cards (tracking_code, office_id, ready_date, pickup_tracking_code, created_at) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])")
                    .bind(column(c, |x| x.tracking_code.as_str()))
                    .bind(column(c, |x| x.office_id.as_str()))
                    .bind(column(c, |x| x.ready_date.as_str()))
                    .bind(column(c, |x| x.pickup_tracking_code.as_deref()))
                    .bind(column(c, |x| x.created_at))
                    .execute(&mut **tx)
                    .await?;
            }
            WriteStep::Outbox(o) => {
                sqlx::query("INSERT INTO outbox (national_code, application_id, tracking_code, notice_key, channel, body, created_at) \
                             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[]) \
                             ON CONFLICT (tracking_code, notice_key) DO NOTHING")
                    .bind(column(o, |x| x.national_code.as_str()))
                    .bind(column(o, |x| x.application_id.as_str()))
                    .bind(column(o, |x| x.tracking_code.as_str()))
                    .bind(column(o, |x| x.notice_key.as_str()))
                    .bind(column(o, |x| x.channel.as_str()))
                    .bind(column(o, |x| x.body.as_str()))
                    .bind(column(o, |x| x.created_at))
                    .execute(&mut **tx)
                    .await?;
            }
            WriteStep::Events(ev) => {
                sqlx::query("INSERT INTO events (at, actor, kind, subject, payload_json) SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])")
                    .bind(column(ev, |x| x.at))
                    .bind(column(ev, |x| x.actor.as_str()))
                    .bind(column(ev, |x| x.kind))
                    .bind(column(ev, |x| x.subject.as_str()))
                    .bind(column(ev, |x| x.payload_json.as_str()))
                    .execute(&mut **tx)
                    .await?;
            }
            WriteStep::IdempotencyRecords {
                records,
                created_at,
            } => {
                sqlx::query(
                    "INSERT INTO idempotency_keys (scope, key, request_hash, format_version, response_status, response_body, created_at) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::integer[], $5::bigint[], $6::text[], $7::bigint[])",
                )
                .bind(column(records, |x| x.scope.as_str()))
                .bind(column(records, |x| x.key.as_str()))
                .bind(column(records, |x| x.request_hash.as_str()))
                .bind(column(records, |x| x.answer.columns().0))
                .bind(column(records, |x| x.answer.columns().1))
                .bind(column(records, |x| x.answer.columns().2))
                .bind(column(records, |_| created_at))
                .execute(&mut **tx)
                .await?;
            }
        }
    }
    Ok(())
}

/// The seat steps of `pg_write`: capacities raised, seat deltas, capacities set (in the order
/// `batch_plan::writes` gives them, so that `taken <= capacity` holds after each statement).
async fn pg_write_seats(
    tx: &mut Transaction<'_, Postgres>,
    step: WriteStep<'_>,
) -> Result<(), StoreError> {
    match step {
        WriteStep::RaiseCapacity(capacities) => {
            let (ids, caps) = pairs(capacities);
            sqlx::query("UPDATE slots SET capacity = GREATEST(slots.capacity, c.capacity) FROM UNNEST($1::bigint[], $2::bigint[]) AS c(id, capacity) WHERE slots.id = c.id")
                .bind(&ids)
                .bind(&caps)
                .execute(&mut **tx)
                .await?;
        }
        WriteStep::SeatDeltas(deltas) => {
            let (ids, deltas) = pairs(deltas);
            sqlx::query("UPDATE slots SET taken = slots.taken + d.delta FROM UNNEST($1::bigint[], $2::bigint[]) AS d(id, delta) WHERE slots.id = d.id")
                .bind(&ids)
                .bind(&deltas)
                .execute(&mut **tx)
                .await?;
        }
        WriteStep::SetCapacity(capacities) => {
            let (ids, caps) = pairs(capacities);
            sqlx::query("UPDATE slots SET capacity = c.capacity FROM UNNEST($1::bigint[], $2::bigint[]) AS c(id, capacity) WHERE slots.id = c.id")
                .bind(&ids)
                .bind(&caps)
                .execute(&mut **tx)
                .await?;
        }
        _ => unreachable!("not a seat step"),
    }
    Ok(())
}

/// One column of `rows`, to bind as an array. Text columns are bound as borrowed `&str`s: the
/// rows outlive the statement, so no value is copied.
fn column<'r, R: 'r, T>(rows: impl IntoIterator<Item = &'r R>, get: impl Fn(&'r R) -> T) -> Vec<T> {
    rows.into_iter().map(get).collect()
}

/// A map of slot id → value as the two arrays bound.
fn pairs(m: &BTreeMap<i64, i64>) -> (Vec<i64>, Vec<i64>) {
    m.iter().map(|(k, v)| (*k, *v)).unzip()
}

/// PostgreSQL's reads of waitlist entries, waiters and seat releases (`pg_read`'s steps).
async fn pg_read_waitlist(
    tx: &mut Transaction<'_, Postgres>,
    plan: &mut ReadPlan<'_>,
    step: ReadStep<'_>,
) -> Result<(), StoreError> {
    match step {
        ReadStep::Entries(ids) => {
            let sql = format!("SELECT {ENTRY_COLS} FROM waitlist_entries WHERE id = ANY($1)");
            for row in sqlx::query(&sql).bind(ids).fetch_all(&mut **tx).await? {
                plan.entry(pg::entry_at(&row, 0)?);
            }
        }
        ReadStep::LockedEntries(ids) => {
            let sql = format!("SELECT {ENTRY_COLS} FROM waitlist_entries WHERE id = ANY($1) ORDER BY id FOR UPDATE");
            for row in sqlx::query(&sql).bind(ids).fetch_all(&mut **tx).await? {
                plan.entry(pg::entry_at(&row, 0)?);
            }
        }
        ReadStep::OfferEntries(holds) => {
            let sql = format!("SELECT {ENTRY_COLS} FROM waitlist_entries WHERE offer_hold_id = ANY($1) ORDER BY id FOR UPDATE");
            for row in sqlx::query(&sql).bind(&holds).fetch_all(&mut **tx).await? {
                plan.entry(pg::entry_at(&row, 0)?);
            }
        }
        ReadStep::ActiveEntriesOf(pairs) => {
            let (codes, services): (Vec<&str>, Vec<&str>) =
                pairs.iter().map(|(c, s)| (c.as_str(), s.as_str())).unzip();
            let sql = format!(
                    "SELECT {} FROM waitlist_entries e JOIN UNNEST($1::text[], $2::text[]) AS c(code, service) \
                     ON e.national_code = c.code AND e.service = c.service WHERE e.status IN ('waiting', 'offered') \
                     ORDER BY e.id FOR UPDATE OF e",
                    entry_cols_of_e()
                );
            for row in sqlx::query(&sql)
                .bind(&codes)
                .bind(&services)
                .fetch_all(&mut **tx)
                .await?
            {
                plan.entry(pg::entry_at(&row, 0)?);
            }
        }
        ReadStep::Releases(ids) => {
            let sql = format!("SELECT {RELEASE_COLS} FROM seat_releases WHERE id = ANY($1) ORDER BY id FOR UPDATE");
            for row in sqlx::query(&sql).bind(ids).fetch_all(&mut **tx).await? {
                plan.release(pg::release(&row)?);
            }
        }
        ReadStep::Waiters {
            offices,
            per_office,
        } => {
            // SKIP LOCKED: a waiter another writer is handing a seat to is left to it.
            let sql = format!(
                    "SELECT f.office_id, w.* FROM UNNEST($1::text[]) AS f(office_id) CROSS JOIN LATERAL ( \
                     SELECT {} FROM waitlist_offices o JOIN waitlist_entries e ON e.id = o.entry_id \
                     WHERE o.office_id = f.office_id AND e.status = 'waiting' \
                     ORDER BY o.joined_at, o.entry_id LIMIT $2 FOR UPDATE OF e SKIP LOCKED) w",
                    entry_cols_of_e()
                );
            for row in sqlx::query(&sql)
                .bind(&offices)
                .bind(per_office)
                .fetch_all(&mut **tx)
                .await?
            {
                plan.waiter(row.try_get(0)?, pg::entry_at(&row, 1)?);
            }
        }
        ReadStep::WaiterCitizens(codes) => {
            let sql = format!(
                "SELECT {HOLD_COLS} FROM holds WHERE national_code = ANY($1) AND status = 'live'"
            );
            for row in sqlx::query(&sql).bind(&codes).fetch_all(&mut **tx).await? {
                plan.hold(pg::hold(&row)?);
            }
            let sql = format!("SELECT {APPT_COLS} FROM appointments WHERE national_code = ANY($1) AND status IN ('booked', 'checked_in')");
            for row in sqlx::query(&sql).bind(&codes).fetch_all(&mut **tx).await? {
                plan.appointment(pg::appointment(&row)?);
            }
        }
        other => unreachable!(
            "not a waitlist step: {}",
            std::any::type_name_of_val(&other)
        ),
    }
    Ok(())
}

/// PostgreSQL's writes of waitlist entries and seat releases (`pg_write`'s steps).
async fn pg_write_waitlist(
    tx: &mut Transaction<'_, Postgres>,
    step: WriteStep<'_>,
) -> Result<(), StoreError> {
    match step {
        WriteStep::EntryUpdates(updates) => {
            let rows = updates.values();
            sqlx::query(
                    "UPDATE waitlist_entries SET status = u.status, offer_hold_id = u.offer, tracking_code = u.code, updated_at = u.updated_at \
                     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) AS u(id, status, offer, code, updated_at) \
                     WHERE waitlist_entries.id = u.id",
                )
                .bind(column(rows.clone(), |e| e.id.as_str()))
                .bind(column(rows.clone(), |e| e.status.as_str()))
                .bind(column(rows.clone(), |e| e.offer_hold_id.as_deref()))
                .bind(column(rows.clone(), |e| e.tracking_code.as_deref()))
                .bind(column(rows, |e| e.updated_at))
                .execute(&mut **tx)
                .await?;
            let ended: Vec<&str> = updates
                .values()
                .filter(|e| !e.status.is_active())
                .map(|e| e.id.as_str())
                .collect();
            if !ended.is_empty() {
                sqlx::query("DELETE FROM waitlist_offices WHERE entry_id = ANY($1)")
                    .bind(&ended)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        WriteStep::ReleaseStatus(changes) => {
            let (ids, statuses): (Vec<i64>, Vec<&str>) =
                changes.iter().map(|(id, s)| (*id, s.as_str())).unzip();
            sqlx::query("UPDATE seat_releases SET status = u.status FROM UNNEST($1::bigint[], $2::text[]) AS u(id, status) WHERE seat_releases.id = u.id")
                    .bind(&ids)
                    .bind(&statuses)
                    .execute(&mut **tx)
                    .await?;
        }
        WriteStep::NewEntries(e) => {
            sqlx::query(&format!(
                    "INSERT INTO waitlist_entries ({ENTRY_COLS}) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[], $15::bigint[])"
                ))
                .bind(column(e, |x| x.id.as_str()))
                .bind(column(e, |x| x.national_code.as_str()))
                .bind(column(e, |x| x.service.as_str()))
                .bind(column(e, |x| x.application_id.as_str()))
                .bind(column(e, |x| x.payment_id.as_str()))
                .bind(column(e, |x| i64::from(x.auto_accept)))
                .bind(column(e, |x| x.limits.earliest_at))
                .bind(column(e, |x| x.limits.latest_at))
                .bind(column(e, |x| x.limits.part_of_day.as_str()))
                .bind(column(e, |x| x.limits_json.as_str()))
                .bind(column(e, |x| x.status.as_str()))
                .bind(column(e, |x| x.offer_hold_id.as_deref()))
                .bind(column(e, |x| x.tracking_code.as_deref()))
                .bind(column(e, |x| x.joined_at))
                .bind(column(e, |x| x.updated_at))
                .execute(&mut **tx)
                .await?;
        }
        WriteStep::EntryOffices(o) => {
            sqlx::query("INSERT INTO waitlist_offices (office_id, joined_at, entry_id) SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[])")
                    .bind(column(o, |x| x.office_id.as_str()))
                    .bind(column(o, |x| x.joined_at))
                    .bind(column(o, |x| x.entry_id.as_str()))
                    .execute(&mut **tx)
                    .await?;
        }
        WriteStep::NewReleases(r) => {
            sqlx::query("INSERT INTO seat_releases (slot_id, release_at, freed_by, status, created_at) SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[])")
                    .bind(column(r, |x| x.slot_id))
                    .bind(column(r, |x| x.release_at))
                    .bind(column(r, |x| x.freed_by.as_deref()))
                    .bind(column(r, |x| x.status.as_str()))
                    .bind(column(r, |x| x.created_at))
                    .execute(&mut **tx)
                    .await?;
        }
        _ => unreachable!("not a waitlist step"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_answers_read_by_their_format() {
        let body = || "{}".to_string();
        assert_eq!(
            StoredAnswer::from_columns(2, 201, body()),
            StoredAnswer::Http {
                status: 201,
                body: body()
            }
        );
        // Format 1: a booking's outcome (status 0), or another POST's HTTP answer.
        assert_eq!(
            StoredAnswer::from_columns(1, 0, body()),
            StoredAnswer::LegacyOutcome(body())
        );
        assert_eq!(
            StoredAnswer::from_columns(1, 200, body()),
            StoredAnswer::Http {
                status: 200,
                body: body()
            }
        );
        for (format_version, status) in [(3, 201), (2, -1), (2, 70_000)] {
            let answer = StoredAnswer::from_columns(format_version, status, body());
            assert!(matches!(answer, StoredAnswer::Unknown { .. }), "{answer:?}");
            assert_eq!(
                answer.columns(),
                (format_version, status, "{}"),
                "kept as stored"
            );
        }
        assert_eq!(
            StoredAnswer::Http {
                status: 409,
                body: body()
            }
            .columns(),
            (IDEMPOTENCY_FORMAT, 409, "{}")
        );
    }
}
