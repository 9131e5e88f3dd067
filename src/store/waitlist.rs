//! Reads of the waitlist and the seat releases outside the writer: an applicant's entries and
//! their positions, and the releases the sweeper hands to the writer when due. Every change to
//! them is the writer's (`booking::JoinWaitlist` and the other waitlist kinds).

use super::booking::{lite, pg, ENTRY_COLS};
use super::{Store, StoreError};
use crate::booking::WaitRow;

impl Store {
    /// The citizen's waitlist entries, newest first (at most 50).
    pub async fn waitlist_entries_of(
        &self,
        national_code: &str,
    ) -> Result<Vec<WaitRow>, StoreError> {
        let sql = format!(
            "SELECT {ENTRY_COLS} FROM waitlist_entries WHERE national_code = $1 ORDER BY joined_at DESC, id LIMIT 50"
        );
        match self {
            Store::Postgres(pool) => sqlx::query(&sql)
                .bind(national_code)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| pg::entry_at(r, 0))
                .collect(),
            Store::Sqlite(pool) => sqlx::query(&super::sqlite_sql(&sql))
                .bind(national_code)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| lite::entry_at(r, 0))
                .collect(),
        }
    }

    /// The entry whose offer is the hold `hold_id`, if any.
    pub async fn waitlist_entry_by_offer(
        &self,
        hold_id: &str,
    ) -> Result<Option<WaitRow>, StoreError> {
        let sql = format!("SELECT {ENTRY_COLS} FROM waitlist_entries WHERE offer_hold_id = $1");
        match self {
            Store::Postgres(pool) => sqlx::query(&sql)
                .bind(hold_id)
                .fetch_optional(pool)
                .await?
                .map(|r| pg::entry_at(&r, 0))
                .transpose(),
            Store::Sqlite(pool) => sqlx::query(&super::sqlite_sql(&sql))
                .bind(hold_id)
                .fetch_optional(pool)
                .await?
                .map(|r| lite::entry_at(&r, 0))
                .transpose(),
        }
    }

    /// A waiting entry's position at `office_id`: 1 + the waiting entries accepting that
    /// office that joined before it (by join time, then id).
    pub async fn waitlist_position(
        &self,
        office_id: &str,
        entry: &WaitRow,
    ) -> Result<i64, StoreError> {
        const SQL: &str = "SELECT COUNT(*) FROM waitlist_offices o JOIN waitlist_entries e ON e.id = o.entry_id \
                           WHERE o.office_id = $1 AND e.status = 'waiting' AND (o.joined_at < $2 OR (o.joined_at = $2 AND o.entry_id < $3))";
        super::on_pool!(self, pool, q = SQL => {
            let ahead: i64 = sqlx::query_scalar(q)
                .bind(office_id)
                .bind(entry.joined_at)
                .bind(&entry.id)
                .fetch_one(pool)
                .await?;
            Ok(ahead + 1)
        })
    }

    /// Ids of the pending seat releases of an office's slots starting in `[from, to)` (a
    /// closure ends them before it shrinks the slots), at most 2,000.
    pub async fn office_pending_releases_between(
        &self,
        office_id: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<i64>, StoreError> {
        const SQL: &str = "SELECT r.id FROM seat_releases r JOIN slots s ON s.id = r.slot_id \
                           WHERE r.status = 'pending' AND s.office_id = $1 AND s.start_at >= $2 AND s.start_at < $3 ORDER BY r.id LIMIT 2000";
        super::on_pool!(self, pool, q = SQL => {
            Ok(sqlx::query_scalar::<_, i64>(q).bind(office_id).bind(from).bind(to).fetch_all(pool).await?)
        })
    }

    /// Waiting entries whose last date has passed at `now` (their `latest_at`, the start of
    /// the day after it), as (entry id, national code), oldest first, at most `limit`.
    pub async fn lapsed_entries(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        const SQL: &str = "SELECT id, national_code FROM waitlist_entries WHERE status = 'waiting' AND latest_at <= $1 ORDER BY latest_at, id LIMIT $2";
        super::on_pool!(self, pool, q = SQL => {
            Ok(sqlx::query_as::<_, (String, String)>(q).bind(now).bind(limit).fetch_all(pool).await?)
        })
    }

    /// Ids of pending seat releases due at `now`, oldest first, at most `limit`.
    pub async fn due_releases(&self, now: i64, limit: i64) -> Result<Vec<i64>, StoreError> {
        const SQL: &str = "SELECT id FROM seat_releases WHERE status = 'pending' AND release_at <= $1 ORDER BY release_at, id LIMIT $2";
        super::on_pool!(self, pool, q = SQL => {
            Ok(sqlx::query_scalar::<_, i64>(q).bind(now).bind(limit).fetch_all(pool).await?)
        })
    }
}
