//! What keeps the API safe across processes: failed-login counters, the admin audit log, the
//! configuration version other processes poll, and the live fee schedule read back from the
//! tariffs.
//!
//! Failed logins are counted in the database (`login_failures`, migration 0007) so that every
//! process on one PostgreSQL database counts into the same rows: an attacker spreading guesses
//! over nodes gains nothing. A row is a fixed window starting at its first failure; the count
//! and the window move in one `INSERT … ON CONFLICT DO UPDATE … RETURNING`, so two processes
//! never both see the count that locks a key, and each lockout is one event.

use std::collections::BTreeMap;

use sqlx::Row;

use super::applicants::lite_write;
use super::lite_read::LiteGet;
use super::{keyed_read, on_pool, sqlite_sql, Store, StoreError};
use crate::domain::{FeeSchedule, ServiceCode};

/// Most audit rows one page returns.
pub const AUDIT_PAGE_MAX: i64 = 500;

/// A failure to count against one key, and what to log when it locks the key.
#[derive(Debug, Clone)]
pub struct LoginFailure {
    /// `code:<sha256>` or `addr:<address>`.
    pub key: String,
    /// The count at which the key is locked for the rest of its window: reaching it appends
    /// one `login_locked` event.
    pub lock_at: i64,
    /// The lockout event's subject and payload.
    pub subject: String,
    pub payload: serde_json::Value,
}

/// A key's failures in its current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCount {
    pub failures: i64,
    pub window_start: i64,
}

/// One row of the admin audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub method: String,
    pub path: String,
    pub status: i64,
    pub request_json: String,
}

/// Counts one failure: a new window when the key's is over (`window_start <= $3`).
const COUNT_FAILURE: &str = "INSERT INTO login_failures (key, window_start, failures) VALUES ($1, $2, 1) \
     ON CONFLICT (key) DO UPDATE SET \
       failures = CASE WHEN login_failures.window_start <= $3 THEN 1 ELSE login_failures.failures + 1 END, \
       window_start = CASE WHEN login_failures.window_start <= $3 THEN $2 ELSE login_failures.window_start END \
     RETURNING failures, window_start";
const LOCKOUT_EVENT: &str = "INSERT INTO events (at, actor, kind, subject, payload_json) VALUES ($1, 'system', 'login_locked', $2, $3)";

impl Store {
    /// The failures of `keys` in their current windows (windows that started after
    /// `now - window_secs`); a key without one is absent.
    pub async fn login_failures(
        &self,
        keys: &[String],
        now_unix: i64,
        window_secs: i64,
    ) -> Result<Vec<(String, FailureCount)>, StoreError> {
        let keys: Vec<&String> = keys.iter().take(4).collect();
        let placeholders: Vec<String> = (2..keys.len() + 2).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT key, failures, window_start FROM login_failures WHERE window_start > $1 AND key IN ({})",
            placeholders.join(", ")
        );
        let since = now_unix - window_secs;
        keyed_read!(all self, &sql, (since); keys.iter().copied(), |r| Ok((r.try_get(0)?, FailureCount {
            failures: r.try_get(1)?, window_start: r.try_get(2)?,
        })))
    }

    /// Counts one failed login against each key, in one transaction; appends a
    /// `login_locked` event for each key whose count reaches its `lock_at` now. Returns the
    /// counts, in the order of `failures`.
    pub async fn record_login_failure(
        &self,
        failures: &[LoginFailure],
        now_unix: i64,
        window_secs: i64,
    ) -> Result<Vec<FailureCount>, StoreError> {
        let expired_at = now_unix - window_secs;
        match self {
            Store::Sqlite(pool) => {
                let failures = failures.to_vec();
                // On the writer thread, like the applicant's other writes: no wait for the
                // write lock behind the booking batches.
                lite_write(pool, move |conn| {
                    let mut out = Vec::with_capacity(failures.len());
                    for f in &failures {
                        let count = conn.prepare_cached(&sqlite_sql(COUNT_FAILURE))?.query_row(
                            rusqlite::params![f.key, now_unix, expired_at],
                            |r| {
                                Ok(FailureCount {
                                    failures: r.get(0)?,
                                    window_start: r.get(1)?,
                                })
                            },
                        )?;
                        if count.failures == f.lock_at {
                            conn.prepare_cached(&sqlite_sql(LOCKOUT_EVENT))?.execute(
                                rusqlite::params![now_unix, f.subject, f.payload.to_string()],
                            )?;
                        }
                        out.push(count);
                    }
                    Ok(out)
                })
                .await
            }
            Store::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let mut out = Vec::with_capacity(failures.len());
                for f in failures {
                    let row = sqlx::query(COUNT_FAILURE)
                        .bind(&f.key)
                        .bind(now_unix)
                        .bind(expired_at)
                        .fetch_one(&mut *tx)
                        .await?;
                    let count = FailureCount {
                        failures: row.try_get(0)?,
                        window_start: row.try_get(1)?,
                    };
                    if count.failures == f.lock_at {
                        sqlx::query(LOCKOUT_EVENT)
                            .bind(now_unix)
                            .bind(&f.subject)
                            .bind(f.payload.to_string())
                            .execute(&mut *tx)
                            .await?;
                    }
                    out.push(count);
                }
                tx.commit().await?;
                Ok(out)
            }
        }
    }

    /// Forgets a key's failures (its citizen logged in).
    pub async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM login_failures WHERE key = $1";
        match self {
            Store::Sqlite(pool) => {
                let key = key.to_string();
                lite_write(pool, move |conn| {
                    conn.prepare_cached(&sqlite_sql(SQL))?.execute([key])?;
                    Ok(())
                })
                .await
            }
            Store::Postgres(pool) => {
                sqlx::query(SQL).bind(key).execute(pool).await?;
                Ok(())
            }
        }
    }

    /// Deletes the rows whose window started at or before `before_unix`; returns how many.
    pub async fn purge_login_failures(&self, before_unix: i64) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM login_failures WHERE window_start <= $1";
        on_pool!(self, pool, q = SQL => {
            Ok(sqlx::query(q).bind(before_unix).execute(pool).await?.rows_affected())
        })
    }

    /// Records an administrator's request in the audit log and, when it changed something
    /// (`changed`), moves the configuration version on, in one transaction; returns the new
    /// version.
    pub async fn record_admin_change(
        &self,
        change: &AuditRecord,
        changed: bool,
    ) -> Result<Option<i64>, StoreError> {
        const AUDIT: &str = "INSERT INTO admin_audit (at, actor, method, path, status, request_json) VALUES ($1, $2, $3, $4, $5, $6)";
        const BUMP: &str =
            "UPDATE config_version SET version = version + 1 WHERE id = 1 RETURNING version";
        on_pool!(self, pool, q = AUDIT => {
            let bump = match self { Store::Sqlite(_) => sqlite_sql(BUMP), Store::Postgres(_) => BUMP.to_string() };
            let mut tx = pool.begin().await?;
            sqlx::query(q).bind(change.at).bind(&change.actor).bind(&change.method).bind(&change.path)
                .bind(change.status).bind(&change.request_json).execute(&mut *tx).await?;
            let version = if changed {
                Some(sqlx::query_scalar::<_, i64>(&bump).fetch_one(&mut *tx).await?)
            } else {
                None
            };
            tx.commit().await?;
            Ok(version)
        })
    }

    /// The configuration version: moves with every admin change.
    pub async fn config_version(&self) -> Result<i64, StoreError> {
        const SQL: &str = "SELECT version FROM config_version WHERE id = 1";
        on_pool!(self, pool, q = SQL => {
            Ok(sqlx::query_scalar(q).fetch_one(pool).await?)
        })
    }

    /// Audit rows, newest first: those with an id below `before_id` (all when `None`), by
    /// `actor` when given, at most `limit` (capped at [`AUDIT_PAGE_MAX`]).
    pub async fn admin_audit(
        &self,
        before_id: Option<i64>,
        actor: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        const SQL: &str =
            "SELECT id, at, actor, method, path, status, request_json FROM admin_audit \
             WHERE id < $1 AND ($2 = '' OR actor = $2) ORDER BY id DESC LIMIT $3";
        let before = before_id.unwrap_or(i64::MAX);
        let actor = actor.unwrap_or("");
        let limit = limit.clamp(1, AUDIT_PAGE_MAX);
        on_pool!(self, pool, q = SQL => {
            sqlx::query(q).bind(before).bind(actor).bind(limit).fetch_all(pool).await?.iter().map(|r| Ok(AuditRecord {
                id: r.try_get(0)?, at: r.try_get(1)?, actor: r.try_get(2)?, method: r.try_get(3)?,
                path: r.try_get(4)?, status: r.try_get(5)?, request_json: r.try_get(6)?,
            })).collect()
        })
    }

    /// The fee schedule as the tariffs table holds it (the built-in table and every
    /// administrator's change). A year that lists only some services takes the others from
    /// the year before, as a lookup by year would.
    pub async fn fee_schedule(&self) -> Result<FeeSchedule, StoreError> {
        const SQL: &str =
            "SELECT jalali_year, service, fee_rials FROM tariffs ORDER BY jalali_year, service";
        let rows: Vec<(i64, String, i64)> = on_pool!(self, pool, q = SQL => {
            sqlx::query_as(q).fetch_all(pool).await?
        });
        let mut by_year: BTreeMap<i32, BTreeMap<ServiceCode, u64>> = BTreeMap::new();
        for (year, service, fee) in rows {
            let (Ok(year), Ok(service), Ok(fee)) = (
                i32::try_from(year),
                ServiceCode::parse(&service),
                u64::try_from(fee),
            ) else {
                return Err(StoreError::corrupt(format!(
                    "tariff {year} {service} {fee}"
                )));
            };
            by_year.entry(year).or_default().insert(service, fee);
        }
        let mut schedule = FeeSchedule::builtin().clone();
        let mut carried: BTreeMap<ServiceCode, u64> = BTreeMap::new();
        for (year, table) in by_year {
            carried.extend(table);
            // A year before any complete table cannot be completed; the built-in one stands.
            if schedule.set_year(year, carried.clone()).is_err() {
                tracing::warn!(year, "the tariffs of a year are incomplete; skipped");
            }
        }
        Ok(schedule)
    }
}
