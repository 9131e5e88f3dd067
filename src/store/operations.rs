//! What staff and administrators read and write outside the writer: operator tokens, the
//! appointments of an office, cards, slots of a closure, the outbox, holidays, fees and
//! statistics. Nothing here changes seats; that goes through the writer.

use sqlx::Row;

use super::booking::{lite, pg};
use super::lite_read::LiteGet;
use super::{keyed_read, on_pool, Store, StoreError};
use crate::booking::{AppointmentRow, CardRow, HoldRow, SlotRow};

/// Most appointments one office-day listing returns.
pub const OFFICE_DAY_LIMIT: i64 = 5_000;
/// Most rows a closure touches in one pass (an office-day is a few hundred).
pub const CLOSURE_ROWS_MAX: i64 = 50_000;

/// A staff or admin token's holder (found by the token's SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRecord {
    pub role: String,
    pub office_id: Option<String>,
    pub name: String,
}

/// An outbox row waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: i64,
    pub national_code: String,
    pub application_id: String,
    pub tracking_code: String,
    pub channel: String,
    pub body: String,
}

/// Per office and Iran day (days since 1970-01-01 in Iran time), counted from appointments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppointmentCounts {
    pub office_id: String,
    pub day: i64,
    pub service: String,
    pub status: String,
    pub count: i64,
    /// Sum over the rows of (visit start − booking time), seconds.
    pub wait_secs_sum: i64,
}

/// A token as administrators see it: never its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorTokenRecord {
    pub token_id: String,
    pub role: String,
    pub office_id: Option<String>,
    pub name: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Most tokens one office listing returns.
pub const OPERATOR_TOKENS_MAX: i64 = 1_000;

/// A token's public id: the first 16 hex digits of its SHA-256 (64 bits: enough to name one
/// token among an office's, and nothing to guess the token by).
pub fn token_id_of(hash_hex: &str) -> String {
    hash_hex.chars().take(16).collect()
}

fn operator_token<R: Row>(r: &R) -> Result<OperatorTokenRecord, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(OperatorTokenRecord {
        token_id: r.try_get(0)?,
        role: r.try_get(1)?,
        office_id: r.try_get(2)?,
        name: r.try_get(3)?,
        created_at: r.try_get(4)?,
        revoked_at: r.try_get(5)?,
    })
}

use super::booking::APPT_COLS;

/// Iran is UTC+03:30 all year since 2022 (daylight saving was abolished), which is what the
/// statistics' day grouping assumes: `(start_at + IRAN_OFFSET_SECS) / 86400`.
pub const IRAN_OFFSET_SECS: i64 = 12_600;

impl Store {
    pub async fn operator_by_hash(&self, hash: &str) -> Result<Option<OperatorRecord>, StoreError> {
        const SQL: &str = "SELECT role, office_id, name FROM operator_tokens WHERE token_hash = $1 AND revoked_at IS NULL";
        on_pool!(self, pool, q = SQL => {
            let row = sqlx::query(q).bind(hash).fetch_optional(pool).await?;
            row.map(|r| Ok(OperatorRecord { role: r.try_get(0)?, office_id: r.try_get(1)?, name: r.try_get(2)? })).transpose()
        })
    }

    /// Stores a token's hash and the admin event, in one transaction. Its public id is the
    /// first 16 hex digits of the hash.
    pub async fn insert_operator_token(
        &self,
        hash: &str,
        record: &OperatorRecord,
        actor: &str,
        now_unix: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO operator_tokens (token_hash, token_id, role, office_id, name, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
        const EVENT: &str = "INSERT INTO events (at, actor, kind, subject, payload_json) VALUES ($1, $2, 'operator_token_created', $3, $4)";
        let subject = record.office_id.clone().unwrap_or_else(|| "admin".into());
        let token_id = token_id_of(hash);
        let payload = serde_json::json!({ "token_id": token_id, "role": record.role, "name": record.name, "office_id": record.office_id }).to_string();
        on_pool!(self, pool, q = SQL => {
            let event = match self { Store::Sqlite(_) => super::sqlite_sql(EVENT), Store::Postgres(_) => EVENT.to_string() };
            let mut tx = pool.begin().await?;
            sqlx::query(q).bind(hash).bind(token_id).bind(&record.role).bind(&record.office_id).bind(&record.name).bind(now_unix).execute(&mut *tx).await?;
            sqlx::query(&event).bind(now_unix).bind(actor).bind(&subject).bind(&payload).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The staff tokens of an office (revoked ones too), newest first, at most
    /// [`OPERATOR_TOKENS_MAX`].
    pub async fn office_operator_tokens(
        &self,
        office_id: &str,
    ) -> Result<Vec<OperatorTokenRecord>, StoreError> {
        let sql = format!("SELECT token_id, role, office_id, name, created_at, revoked_at FROM operator_tokens WHERE office_id = $1 ORDER BY created_at DESC, token_id LIMIT {OPERATOR_TOKENS_MAX}");
        on_pool!(self, pool, q = &sql => {
            sqlx::query(q).bind(office_id).fetch_all(pool).await?.iter().map(operator_token).collect()
        })
    }

    /// Revokes a token by its public id (from then on no request accepts it), with the admin
    /// event, in one transaction. `None` when there is no such token; a token revoked before
    /// keeps its first revocation time.
    pub async fn revoke_operator_token(
        &self,
        token_id: &str,
        actor: &str,
        now_unix: i64,
    ) -> Result<Option<OperatorTokenRecord>, StoreError> {
        const REVOKE: &str =
            "UPDATE operator_tokens SET revoked_at = $2 WHERE token_id = $1 AND revoked_at IS NULL";
        const READ: &str = "SELECT token_id, role, office_id, name, created_at, revoked_at FROM operator_tokens WHERE token_id = $1";
        const EVENT: &str = "INSERT INTO events (at, actor, kind, subject, payload_json) VALUES ($1, $2, 'operator_token_revoked', $3, $4)";
        on_pool!(self, pool, q = REVOKE => {
            let (read, event) = match self {
                Store::Sqlite(_) => (super::sqlite_sql(READ), super::sqlite_sql(EVENT)),
                Store::Postgres(_) => (READ.to_string(), EVENT.to_string()),
            };
            let mut tx = pool.begin().await?;
            let revoked = sqlx::query(q).bind(token_id).bind(now_unix).execute(&mut *tx).await?.rows_affected() == 1;
            let record = sqlx::query(&read).bind(token_id).fetch_optional(&mut *tx).await?.as_ref().map(operator_token).transpose()?;
            if let (true, Some(r)) = (revoked, &record) {
                let subject = r.office_id.clone().unwrap_or_else(|| "admin".into());
                let payload = serde_json::json!({ "token_id": r.token_id, "role": r.role, "name": r.name }).to_string();
                sqlx::query(&event).bind(now_unix).bind(actor).bind(subject).bind(payload).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(record)
        })
    }

    async fn appointments_query(
        &self,
        sql: &str,
        office_id: &str,
        a: i64,
        b: i64,
    ) -> Result<Vec<AppointmentRow>, StoreError> {
        match self {
            Store::Postgres(pool) => sqlx::query(sql)
                .bind(office_id)
                .bind(a)
                .bind(b)
                .fetch_all(pool)
                .await?
                .iter()
                .map(pg::appointment)
                .collect(),
            Store::Sqlite(pool) => sqlx::query(&super::sqlite_sql(sql))
                .bind(office_id)
                .bind(a)
                .bind(b)
                .fetch_all(pool)
                .await?
                .iter()
                .map(lite::appointment)
                .collect(),
        }
    }

    /// An office's appointments starting in `[from, to)`, by start, at most
    /// [`OFFICE_DAY_LIMIT`].
    pub async fn office_appointments(
        &self,
        office_id: &str,
        from_unix: i64,
        to_unix: i64,
    ) -> Result<Vec<AppointmentRow>, StoreError> {
        let sql = format!("SELECT {APPT_COLS} FROM appointments WHERE office_id = $1 AND start_at >= $2 AND start_at < $3 ORDER BY start_at, tracking_code LIMIT {OFFICE_DAY_LIMIT}");
        self.appointments_query(&sql, office_id, from_unix, to_unix)
            .await
    }

    /// Booked (not yet checked-in) appointments of an office starting in `[from, to)`: the ones
    /// a closure must move. Earliest booked first, so the first to book is the first served.
    pub async fn office_booked_between(
        &self,
        office_id: &str,
        from_unix: i64,
        to_unix: i64,
    ) -> Result<Vec<AppointmentRow>, StoreError> {
        let sql = format!("SELECT {APPT_COLS} FROM appointments WHERE office_id = $1 AND start_at >= $2 AND start_at < $3 AND status = 'booked' ORDER BY start_at, created_at, tracking_code LIMIT {CLOSURE_ROWS_MAX}");
        self.appointments_query(&sql, office_id, from_unix, to_unix)
            .await
    }

    /// Live holds on an office's slots starting in `[from, to)`.
    pub async fn office_live_holds_between(
        &self,
        office_id: &str,
        from_unix: i64,
        to_unix: i64,
    ) -> Result<Vec<HoldRow>, StoreError> {
        let sql = format!("SELECT h.id, h.slot_id, h.application_id, h.national_code, h.service, h.status, h.created_at, h.expires_at \
             FROM holds h JOIN slots s ON s.id = h.slot_id WHERE s.office_id = $1 AND s.start_at >= $2 AND s.start_at < $3 AND h.status = 'live' LIMIT {CLOSURE_ROWS_MAX}");
        match self {
            Store::Postgres(pool) => sqlx::query(&sql)
                .bind(office_id)
                .bind(from_unix)
                .bind(to_unix)
                .fetch_all(pool)
                .await?
                .iter()
                .map(pg::hold)
                .collect(),
            Store::Sqlite(pool) => sqlx::query(&super::sqlite_sql(&sql))
                .bind(office_id)
                .bind(from_unix)
                .bind(to_unix)
                .fetch_all(pool)
                .await?
                .iter()
                .map(lite::hold)
                .collect(),
        }
    }

    /// An office's slots starting in `[from, to)`, by start.
    pub async fn office_slots_between(
        &self,
        office_id: &str,
        from_unix: i64,
        to_unix: i64,
    ) -> Result<Vec<SlotRow>, StoreError> {
        let sql = format!("SELECT id, office_id, start_at, duration_minutes, capacity, taken, opens_at, opens_for FROM slots WHERE office_id = $1 AND start_at >= $2 AND start_at < $3 ORDER BY start_at LIMIT {CLOSURE_ROWS_MAX}");
        on_pool!(self, pool, q = &sql => {
            sqlx::query(q).bind(office_id).bind(from_unix).bind(to_unix).fetch_all(pool).await?.iter().map(|row| Ok(SlotRow {
                id: row.try_get(0)?, office_id: row.try_get(1)?, start_at: row.try_get(2)?,
                duration_minutes: row.try_get(3)?, capacity: row.try_get(4)?, taken: row.try_get(5)?,
                    opens_at: row.try_get(6)?, opens_for: row.try_get(7)?,
            })).collect()
        })
    }

    /// The card of an enrolment, found by the enrolment's or the pickup's tracking code.
    pub async fn card(&self, tracking_code: &str) -> Result<Option<CardRow>, StoreError> {
        const SQL: &str = "SELECT tracking_code, office_id, ready_date, pickup_tracking_code, created_at FROM cards WHERE tracking_code = $1 OR pickup_tracking_code = $1";
        keyed_read!(optional self, SQL, (tracking_code), |r| Ok(CardRow {
            tracking_code: r.try_get(0)?, office_id: r.try_get(1)?, ready_date: r.try_get(2)?,
            pickup_tracking_code: r.try_get(3)?, created_at: r.try_get(4)?,
        }))
    }

    /// Unsent outbox rows, oldest first, at most `limit`.
    pub async fn outbox_unsent(&self, limit: i64) -> Result<Vec<OutboxMessage>, StoreError> {
        const SQL: &str = "SELECT id, national_code, application_id, tracking_code, channel, body FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1";
        on_pool!(self, pool, q = SQL => {
            sqlx::query(q).bind(limit).fetch_all(pool).await?.iter().map(|r| Ok(OutboxMessage {
                id: r.try_get(0)?, national_code: r.try_get(1)?, application_id: r.try_get(2)?,
                tracking_code: r.try_get(3)?, channel: r.try_get(4)?, body: r.try_get(5)?,
            })).collect()
        })
    }

    pub async fn mark_outbox_sent(&self, id: i64, now_unix: i64) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE outbox SET sent_at = $2 WHERE id = $1 AND sent_at IS NULL";
        on_pool!(self, pool, q = SQL => {
            sqlx::query(q).bind(id).bind(now_unix).execute(pool).await?;
        });
        Ok(())
    }

    /// Records an administrator's holiday (ISO date); `false` when the day was already one.
    pub async fn insert_holiday(
        &self,
        day: &str,
        name_fa: &str,
        name_en: &str,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO holidays (day, name_fa, name_en, source) VALUES ($1, $2, $3, 'admin') ON CONFLICT (day) DO NOTHING";
        on_pool!(self, pool, q = SQL => {
            Ok(sqlx::query(q).bind(day).bind(name_fa).bind(name_en).execute(pool).await?.rows_affected() == 1)
        })
    }

    /// Holidays recorded by administrators between two ISO dates (inclusive).
    pub async fn admin_holidays(
        &self,
        from: &str,
        to: &str,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        const SQL: &str =
            "SELECT day, name_fa, name_en FROM holidays WHERE day >= $1 AND day <= $2 ORDER BY day LIMIT 10000";
        on_pool!(self, pool, q = SQL => {
            Ok(sqlx::query_as(q).bind(from).bind(to).fetch_all(pool).await?)
        })
    }

    /// Sets one year's fee for a service (override and tariff), with its event.
    pub async fn set_fee(
        &self,
        year: i64,
        service: &str,
        fee_rials: i64,
        actor: &str,
        now_unix: i64,
    ) -> Result<(), StoreError> {
        const OVERRIDE: &str = "INSERT INTO fee_overrides (jalali_year, service, fee_rials, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (jalali_year, service) DO UPDATE SET fee_rials = excluded.fee_rials, updated_at = excluded.updated_at";
        const TARIFF: &str =
            "INSERT INTO tariffs (jalali_year, service, fee_rials) VALUES ($1, $2, $3) \
             ON CONFLICT (jalali_year, service) DO UPDATE SET fee_rials = excluded.fee_rials";
        const EVENT: &str = "INSERT INTO events (at, actor, kind, subject, payload_json) VALUES ($1, $2, 'fee_set', $3, $4)";
        let payload =
            serde_json::json!({ "jalali_year": year, "service": service, "fee_rials": fee_rials })
                .to_string();
        let subject = format!("fees:{year}");
        on_pool!(self, pool, q = OVERRIDE => {
            let (tariff, event) = match self {
                Store::Sqlite(_) => (super::sqlite_sql(TARIFF), super::sqlite_sql(EVENT)),
                Store::Postgres(_) => (TARIFF.to_string(), EVENT.to_string()),
            };
            let mut tx = pool.begin().await?;
            sqlx::query(q).bind(year).bind(service).bind(fee_rials).bind(now_unix).execute(&mut *tx).await?;
            sqlx::query(&tariff).bind(year).bind(service).bind(fee_rials).execute(&mut *tx).await?;
            sqlx::query(&event).bind(now_unix).bind(actor).bind(&subject).bind(&payload).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The fee table of a Jalali year: (service, rials).
    pub async fn fees_of_year(&self, year: i64) -> Result<Vec<(String, i64)>, StoreError> {
        const SQL: &str =
            "SELECT service, fee_rials FROM tariffs WHERE jalali_year = $1 ORDER BY service";
        on_pool!(self, pool, q = SQL => {
            Ok(sqlx::query_as(q).bind(year).fetch_all(pool).await?)
        })
    }

    /// Administrator fee overrides, re-applied after the built-in table is synced at start.
    pub async fn reapply_fee_overrides(&self) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE tariffs SET fee_rials = (SELECT f.fee_rials FROM fee_overrides f WHERE f.jalali_year = tariffs.jalali_year AND f.service = tariffs.service) \
             WHERE EXISTS (SELECT 1 FROM fee_overrides f WHERE f.jalali_year = tariffs.jalali_year AND f.service = tariffs.service)";
        on_pool!(self, pool, q = SQL => {
            sqlx::query(q).execute(pool).await?;
        });
        Ok(())
    }

    /// Seats per office and Iran day for slots starting in `[from, to)`: (office, day, capacity).
    pub async fn capacity_by_office_day(
        &self,
        from_unix: i64,
        to_unix: i64,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        const SQL: &str = "SELECT office_id, (start_at + 12600) / 86400 AS day, CAST(SUM(capacity) AS BIGINT) FROM slots \
             WHERE start_at >= $1 AND start_at < $2 GROUP BY office_id, (start_at + 12600) / 86400";
        on_pool!(self, pool, q = SQL => {
            Ok(sqlx::query_as(q).bind(from_unix).bind(to_unix).fetch_all(pool).await?)
        })
    }

    /// Appointments per office, Iran day of the visit, service and status, for visits in
    /// `[from, to)`.
    pub async fn appointment_counts(
        &self,
        from_unix: i64,
        to_unix: i64,
    ) -> Result<Vec<AppointmentCounts>, StoreError> {
        const SQL: &str = "SELECT office_id, (start_at + 12600) / 86400 AS day, service, status, COUNT(*), CAST(SUM(start_at - created_at) AS BIGINT) \
             FROM appointments WHERE start_at >= $1 AND start_at < $2 GROUP BY office_id, (start_at + 12600) / 86400, service, status";
        on_pool!(self, pool, q = SQL => {
            sqlx::query(q).bind(from_unix).bind(to_unix).fetch_all(pool).await?.iter().map(|r| Ok(AppointmentCounts {
                office_id: r.try_get(0)?, day: r.try_get(1)?, service: r.try_get(2)?, status: r.try_get(3)?,
                count: r.try_get(4)?, wait_secs_sum: r.try_get(5)?,
            })).collect()
        })
    }
}
