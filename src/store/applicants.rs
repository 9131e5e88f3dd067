//! Applications, payments, idempotency records, receipts and history.

use sqlx::Row;

use super::booking::{lite_writer_of, pg, IdempotencyRecord, StoredAnswer, APPT_COLS};
use super::lite_read::{lite_row, LiteGet};
use super::{keyed_read, sqlite_sql, Store, StoreError};
use crate::booking::{AppointmentRow, HoldRow, PaymentStatus};

#[derive(Debug, Clone, PartialEq)]
pub struct ApplicationRecord {
    pub id: String,
    pub national_code: String,
    pub service: String,
    pub form_json: String,
    pub eligible: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    pub id: String,
    pub application_id: String,
    pub amount_rials: i64,
    pub status: PaymentStatus,
    pub gateway: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub at: i64,
    pub actor: String,
    pub kind: String,
    pub subject: String,
    pub payload_json: String,
}

/// An idempotency record written in the transaction of the effect it answers, so a retry finds
/// either both or neither (`http::idempotency::replay_or_run`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptAnswer {
    pub record: IdempotencyRecord,
    pub at_unix: i64,
}

/// How an insert that may carry a [`KeptAnswer`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// The row, its event and the answer (if one came) were committed together.
    Done,
    /// A payment only: the application already has a paid payment, returned; nothing was
    /// written.
    AlreadyPaid(PaymentRecord),
    /// The answer's key was stored first by a twin request (same key, committed before this
    /// one): nothing was written, and the twin's answer is the one to give.
    KeyTaken,
}

/// Refusals a SQLite write returns to roll its savepoint back, told apart after it by the
/// constraint they name (a savepoint is rolled back by an error only; `lite_writer`).
const KEY_TAKEN: &str = "idempotency_keys primary key";
const ONE_PAID: &str = "payments_one_paid";

fn refused(constraint: &str) -> StoreError {
    StoreError::Constraint {
        constraint: constraint.to_string(),
        source: None,
    }
}

fn refused_as(result: &Result<(), StoreError>, constraint: &str) -> bool {
    matches!(result, Err(StoreError::Constraint { constraint: c, source: None }) if c == constraint)
}

/// Stores an idempotency record unless its key is stored; `false` if it was.
const PUT_ANSWER: &str = "INSERT INTO idempotency_keys (scope, key, request_hash, format_version, response_status, response_body, created_at) \
                          VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (scope, key) DO NOTHING";

fn lite_put_answer(conn: &rusqlite::Connection, kept: &KeptAnswer) -> Result<bool, StoreError> {
    let rec = &kept.record;
    let (format_version, status, body) = rec.answer.columns();
    let rows = conn
        .prepare_cached(&sqlite_sql(PUT_ANSWER))?
        .execute(rusqlite::params![
            rec.scope,
            rec.key,
            rec.request_hash,
            format_version,
            status,
            body,
            kept.at_unix
        ])?;
    Ok(rows == 1)
}

async fn pg_put_answer<'c>(
    conn: impl sqlx::PgExecutor<'c>,
    kept: &KeptAnswer,
) -> Result<bool, StoreError> {
    let rec = &kept.record;
    let (format_version, status, body) = rec.answer.columns();
    let rows = sqlx::query(PUT_ANSWER)
        .bind(&rec.scope)
        .bind(&rec.key)
        .bind(&rec.request_hash)
        .bind(format_version)
        .bind(status)
        .bind(body)
        .bind(kept.at_unix)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(rows == 1)
}

/// Runs a write on the SQLite writer thread (`lite_writer`: no wait for the write lock, and
/// a commit shared with the writes queued beside it).
pub(super) async fn lite_write<T: Send + 'static>(
    pool: &sqlx::SqlitePool,
    write: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    lite_writer_of(pool)?.write(write)?.result().await
}

/// [`lite_write`] for a write of many pages (`LiteWriter::write_large`).
pub(super) async fn lite_write_large<T: Send + 'static>(
    pool: &sqlx::SqlitePool,
    write: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    lite_writer_of(pool)?.write_large(write)?.result().await
}

/// A foreign key checked by hand: `sql` (one `?1` parameter) must find a row, else the write
/// is refused as the declared constraint would refuse it.
fn require_row(
    conn: &rusqlite::Connection,
    sql: &str,
    key: &str,
    constraint: &str,
) -> Result<(), StoreError> {
    if conn.prepare_cached(sql)?.exists([key])? {
        Ok(())
    } else {
        Err(StoreError::Constraint {
            constraint: format!("FOREIGN KEY {constraint}"),
            source: None,
        })
    }
}

/// The start of a PostgreSQL write that stores its answer in its own statement: the answer's
/// key inserted first ($1–$7, all null without a key: [`bind_answer`]), and `go`, one row when
/// the write may go on (no key, or the key was free). A twin's key, committed or not, leaves
/// `go` empty: the twin waits on the key's row, finds it taken, and writes nothing.
macro_rules! pg_answer_first {
    () => {
        "WITH answer AS (\
            INSERT INTO idempotency_keys (scope, key, request_hash, format_version, response_status, response_body, created_at) \
            SELECT $1, $2, $3, $4, $5, $6, $7 WHERE $2::text IS NOT NULL \
            ON CONFLICT (scope, key) DO NOTHING RETURNING 1), \
        go AS (SELECT 1 WHERE $2::text IS NULL OR EXISTS (SELECT 1 FROM answer)), "
    };
}

/// Binds a kept answer as $1–$7 of a statement begun with [`pg_answer_first`].
fn bind_answer<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    answer: Option<&'q KeptAnswer>,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    let columns = answer.map(|kept| kept.record.answer.columns());
    query
        .bind(answer.map(|kept| kept.record.scope.as_str()))
        .bind(answer.map(|kept| kept.record.key.as_str()))
        .bind(answer.map(|kept| kept.record.request_hash.as_str()))
        .bind(columns.map(|(format_version, _, _)| format_version))
        .bind(columns.map(|(_, status, _)| status))
        .bind(columns.map(|(_, _, body)| body))
        .bind(answer.map(|kept| kept.at_unix))
}

/// An application on PostgreSQL in one statement, so one round trip and its own transaction:
/// the rows only if the answer's key was free. Returns how many applications it wrote.
const PG_APPLY: &str = concat!(
    pg_answer_first!(),
    "application AS (\
        INSERT INTO applications (id, national_code, service, form_json, eligible, created_at) \
        SELECT $8, $9, $10, $11, $12, $13 FROM go RETURNING 1), \
    event AS (\
        INSERT INTO events (at, actor, kind, subject, payload_json) \
        SELECT $13, $9, 'application_created', $8, $14 FROM go), \
    citizen AS (\
        INSERT INTO citizens (national_code, birth_certificate_serial, birth_date, province, first_seen_at) \
        SELECT $9, $15, $16, $17, $13 FROM go ON CONFLICT (national_code) DO NOTHING) \
    SELECT COUNT(*) FROM application"
);

/// A payment on PostgreSQL in one statement, inside a transaction its caller rolls back when
/// the payment was not written (the answer told of it): the payment, unless its application
/// already has a paid one (`payments_one_paid`), and its event, if the answer's key was free.
/// Returns whether the key was free and whether the payment was written.
const PG_PAY: &str = concat!(
    pg_answer_first!(),
    "payment AS (\
        INSERT INTO payments (id, application_id, amount_rials, status, gateway, created_at) \
        SELECT $8, $9, $10, $11, $12, $13 FROM go \
        ON CONFLICT (application_id) WHERE status = 'paid' AND duplicate_of IS NULL DO NOTHING RETURNING 1), \
    event AS (\
        INSERT INTO events (at, actor, kind, subject, payload_json) \
        SELECT $13, $14, $15, $9, $16 FROM payment) \
    SELECT EXISTS (SELECT 1 FROM go), EXISTS (SELECT 1 FROM payment)"
);

/// Records a citizen the first time they apply.
const REMEMBER_CITIZEN: &str = "INSERT INTO citizens (national_code, birth_certificate_serial, birth_date, province, first_seen_at) \
                                VALUES ($1, $2, $3, $4, $5) ON CONFLICT (national_code) DO NOTHING";

impl Store {
    pub async fn idempotency_record(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        const SQL: &str = "SELECT request_hash, format_version, response_status, response_body FROM idempotency_keys WHERE scope = $1 AND key = $2";
        keyed_read!(optional self, SQL, (scope, key), |r| Ok(IdempotencyRecord {
            scope: scope.to_string(), key: key.to_string(),
            request_hash: r.try_get(0)?,
            answer: StoredAnswer::from_columns(r.try_get(1)?, r.try_get(2)?, r.try_get(3)?),
        }))
    }

    /// Stores an answer; if a concurrent duplicate stored one first, theirs stands.
    pub async fn put_idempotency_record(
        &self,
        rec: &IdempotencyRecord,
        now_unix: i64,
    ) -> Result<(), StoreError> {
        let kept = KeptAnswer {
            record: rec.clone(),
            at_unix: now_unix,
        };
        match self {
            Store::Sqlite(pool) => {
                lite_write(pool, move |conn| lite_put_answer(conn, &kept).map(drop)).await
            }
            Store::Postgres(pool) => pg_put_answer(pool, &kept).await.map(drop),
        }
    }

    /// Inserts an application, its event, the citizen's row if this is their first, and
    /// `answer` if one comes, in one transaction. `citizen` is (serial, birth date, province)
    /// from the civil registry.
    pub async fn insert_application(
        &self,
        app: &ApplicationRecord,
        citizen: (&str, &str, &str),
        answer: Option<&KeptAnswer>,
    ) -> Result<Inserted, StoreError> {
        const SQL: &str = "INSERT INTO applications (id, national_code, service, form_json, eligible, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
        const EVENT: &str = "INSERT INTO events (at, actor, kind, subject, payload_json) VALUES ($1, $2, 'application_created', $3, $4)";
        let payload =
            serde_json::json!({ "service": app.service, "eligible": app.eligible }).to_string();
        match self {
            Store::Sqlite(pool) => {
                let (app, answer) = (app.clone(), answer.cloned());
                let (serial, birth_date, province) = (
                    citizen.0.to_string(),
                    citizen.1.to_string(),
                    citizen.2.to_string(),
                );
                let result = lite_write(pool, move |conn| {
                    // The answer first: a twin's stored key stops the write before its rows.
                    if let Some(answer) = &answer {
                        if !lite_put_answer(conn, answer)? {
                            return Err(refused(KEY_TAKEN));
                        }
                    }
                    // The writer thread's connection leaves foreign keys to whoever writes
                    // through it (`lite_writer`): the service must exist.
                    require_row(
                        conn,
                        "SELECT 1 FROM services WHERE code = ?1",
                        &app.service,
                        "applications.service",
                    )?;
                    conn.prepare_cached(&sqlite_sql(SQL))?
                        .execute(rusqlite::params![
                            app.id,
                            app.national_code,
                            app.service,
                            app.form_json,
                            app.eligible,
                            app.created_at
                        ])?;
                    conn.prepare_cached(&sqlite_sql(EVENT))?
                        .execute(rusqlite::params![
                            app.created_at,
                            app.national_code,
                            app.id,
                            payload
                        ])?;
                    conn.prepare_cached(&sqlite_sql(REMEMBER_CITIZEN))?
                        .execute(rusqlite::params![
                            app.national_code,
                            serial,
                            birth_date,
                            province,
                            app.created_at
                        ])?;
                    Ok(())
                })
                .await;
                if refused_as(&result, KEY_TAKEN) {
                    return Ok(Inserted::KeyTaken);
                }
                result.map(|()| Inserted::Done)
            }
            Store::Postgres(pool) => {
                let (written,): (i64,) = bind_answer(sqlx::query_as(PG_APPLY), answer)
                    .bind(&app.id)
                    .bind(&app.national_code)
                    .bind(&app.service)
                    .bind(&app.form_json)
                    .bind(app.eligible)
                    .bind(app.created_at)
                    .bind(&payload)
                    .bind(citizen.0)
                    .bind(citizen.1)
                    .bind(citizen.2)
                    .fetch_one(pool)
                    .await?;
                Ok(if written == 1 {
                    Inserted::Done
                } else {
                    Inserted::KeyTaken
                })
            }
        }
    }

    pub async fn application(&self, id: &str) -> Result<Option<ApplicationRecord>, StoreError> {
        const SQL: &str = "SELECT id, national_code, service, form_json, eligible, created_at FROM applications WHERE id = $1";
        keyed_read!(optional self, SQL, (id), |r| Ok(ApplicationRecord {
            id: r.try_get(0)?, national_code: r.try_get(1)?, service: r.try_get(2)?, form_json: r.try_get(3)?,
            eligible: r.try_get(4)?, created_at: r.try_get(5)?,
        }))
    }

    /// The paid payment of an application, if any (so paying twice never charges twice).
    pub async fn paid_payment_for(
        &self,
        application_id: &str,
    ) -> Result<Option<PaymentRecord>, StoreError> {
        const SQL: &str = "SELECT id, application_id, amount_rials, status, gateway, created_at FROM payments \
                           WHERE application_id = $1 AND status = 'paid' AND duplicate_of IS NULL LIMIT 1";
        keyed_read!(optional self, SQL, (application_id), |r| payment_record(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get::<String, _>(3)?, r.try_get(4)?, r.try_get(5)?))
    }

    pub async fn payment(&self, id: &str) -> Result<Option<PaymentRecord>, StoreError> {
        const SQL: &str = "SELECT id, application_id, amount_rials, status, gateway, created_at FROM payments WHERE id = $1";
        keyed_read!(optional self, SQL, (id), |r| payment_record(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get::<String, _>(3)?, r.try_get(4)?, r.try_get(5)?))
    }

    /// Inserts a payment, its event and `answer` if one comes, in one transaction, unless the
    /// payment is paid and its application already has a paid payment (`payments_one_paid`):
    /// then nothing is written and that payment is returned.
    pub async fn insert_payment(
        &self,
        p: &PaymentRecord,
        actor: &str,
        answer: Option<&KeptAnswer>,
    ) -> Result<Inserted, StoreError> {
        // The conflict target names the partial index, so a second paid payment of an
        // application is skipped whoever wins the race, on either backend.
        const SQL: &str = "INSERT INTO payments (id, application_id, amount_rials, status, gateway, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                           ON CONFLICT (application_id) WHERE status = 'paid' AND duplicate_of IS NULL DO NOTHING";
        const EVENT: &str = "INSERT INTO events (at, actor, kind, subject, payload_json) VALUES ($1, $2, $3, $4, $5)";
        let kind = format!("payment_{}", p.status.as_str());
        let payload = serde_json::json!({ "payment_id": p.id, "amount_rials": p.amount_rials, "gateway": p.gateway }).to_string();
        let inserted = match self {
            Store::Sqlite(pool) => {
                let (p, actor, answer) = (p.clone(), actor.to_string(), answer.cloned());
                let result = lite_write(pool, move |conn| {
                    if let Some(answer) = &answer {
                        if !lite_put_answer(conn, answer)? {
                            return Err(refused(KEY_TAKEN));
                        }
                    }
                    require_row(
                        conn,
                        "SELECT 1 FROM applications WHERE id = ?1",
                        &p.application_id,
                        "payments.application_id",
                    )?;
                    let inserted =
                        conn.prepare_cached(&sqlite_sql(SQL))?
                            .execute(rusqlite::params![
                                p.id,
                                p.application_id,
                                p.amount_rials,
                                p.status.as_str(),
                                p.gateway,
                                p.created_at
                            ])?
                            == 1;
                    if !inserted {
                        // Rolls the answer back with it: that answer told of this payment.
                        return Err(refused(ONE_PAID));
                    }
                    conn.prepare_cached(&sqlite_sql(EVENT))?
                        .execute(rusqlite::params![
                            p.created_at,
                            actor,
                            kind,
                            p.application_id,
                            payload
                        ])?;
                    Ok(())
                })
                .await;
                if refused_as(&result, KEY_TAKEN) {
                    return Ok(Inserted::KeyTaken);
                }
                if refused_as(&result, ONE_PAID) {
                    false
                } else {
                    result?;
                    true
                }
            }
            Store::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let (key_free, inserted): (bool, bool) =
                    bind_answer(sqlx::query_as(PG_PAY), answer)
                        .bind(&p.id)
                        .bind(&p.application_id)
                        .bind(p.amount_rials)
                        .bind(p.status.as_str())
                        .bind(&p.gateway)
                        .bind(p.created_at)
                        .bind(actor)
                        .bind(&kind)
                        .bind(&payload)
                        .fetch_one(&mut *tx)
                        .await?;
                if !key_free {
                    return Ok(Inserted::KeyTaken);
                }
                // Not inserted: the transaction is dropped, and the answer with it.
                if inserted {
                    tx.commit().await?;
                }
                inserted
            }
        };
        if inserted {
            return Ok(Inserted::Done);
        }
        // The winner committed before this insert saw its row.
        match self.paid_payment_for(&p.application_id).await? {
            Some(paid) => Ok(Inserted::AlreadyPaid(paid)),
            None => Err(StoreError::corrupt(format!(
                "application {} conflicts with a paid payment that cannot be read",
                p.application_id
            ))),
        }
    }

    pub async fn appointment(
        &self,
        tracking_code: &str,
    ) -> Result<Option<AppointmentRow>, StoreError> {
        let sql = format!("SELECT {APPT_COLS} FROM appointments WHERE tracking_code = $1");
        match self {
            Store::Postgres(pool) => sqlx::query(&sql)
                .bind(tracking_code)
                .fetch_optional(pool)
                .await?
                .map(|r| pg::appointment(&r))
                .transpose(),
            Store::Sqlite(pool) => lite_row(
                pool,
                &sqlite_sql(&sql),
                [tracking_code],
                super::lite_writer::appointment,
            ),
        }
    }

    pub async fn hold(&self, id: &str) -> Result<Option<HoldRow>, StoreError> {
        let sql = "SELECT id, slot_id, application_id, national_code, service, status, created_at, expires_at FROM holds WHERE id = $1";
        match self {
            Store::Postgres(pool) => sqlx::query(sql)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|r| pg::hold(&r))
                .transpose(),
            Store::Sqlite(pool) => lite_row(pool, &sqlite_sql(sql), [id], super::lite_writer::hold),
        }
    }

    /// Events about any of `subjects`, oldest first, at most `limit`.
    pub async fn events_about(
        &self,
        subjects: &[String],
        limit: i64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let subjects = subjects.iter().take(16).cloned().collect::<Vec<_>>();
        let sql = events_about_sql(subjects.len());
        keyed_read!(all self, &sql, (limit); subjects.iter(), |r| Ok(EventRecord {
            at: r.try_get(0)?, actor: r.try_get(1)?, kind: r.try_get(2)?, subject: r.try_get(3)?, payload_json: r.try_get(4)?,
        }))
    }
}

/// The query of `Store::events_about` for `subjects` subjects: `$1` is the limit, `$2…` the
/// subjects. It orders by `+id`, not `id`: ordered by the bare column, the primary key offered
/// the planner a walk of the whole log in id order, filtering by subject until `limit` rows
/// matched, and a plan made while the log was nearly empty chose it and kept it (a pooled
/// connection's generic plan on PostgreSQL): 2,419 pages for a citizen's two events among
/// 200,000, against 8 through `events_subject` and a sort of the few rows found. The unary plus
/// is the same number and no index's order, on PostgreSQL and on SQLite.
pub fn events_about_sql(subjects: usize) -> String {
    let placeholders: Vec<String> = (2..subjects + 2).map(|i| format!("${i}")).collect();
    format!(
        "SELECT at, actor, kind, subject, payload_json FROM events WHERE subject IN ({}) ORDER BY +id LIMIT $1",
        placeholders.join(", ")
    )
}

fn payment_record(
    id: String,
    application_id: String,
    amount_rials: i64,
    status: String,
    gateway: String,
    created_at: i64,
) -> Result<PaymentRecord, StoreError> {
    Ok(PaymentRecord {
        id,
        application_id,
        amount_rials,
        status: PaymentStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt(format!("payment status {status:?}")))?,
        gateway,
        created_at,
    })
}
