//! Release waves (migration 0013): seats of a date range that open for booking at a given
//! time. A wave is written onto the slots it covers (`slots.opens_at`, `slots.opens_for`) by
//! one UPDATE in the transaction that records it, so the booking writer finds the rule on the
//! slot rows it reads and locks anyway (no query per booking), and every process sees it at
//! once. Pending waves never overlap (checked here, in the same transaction), so a slot
//! carries at most one pending wave and a cancellation clears the slots it covers.

use sqlx::Row;

use super::{on_pool, Store, StoreError};

/// Waves listed at most (newest first).
pub const WAVES_LISTED_MAX: i64 = 1_000;

/// A release wave as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaveRecord {
    pub id: String,
    /// `None`: every service.
    pub service: Option<String>,
    /// Province slugs asked for (their offices are in `office_ids`); empty with `office_ids`
    /// empty: every office.
    pub provinces: Vec<String>,
    /// The offices covered; empty: every office.
    pub office_ids: Vec<String>,
    pub from_date: String,
    pub to_date: String,
    /// The covered slot starts: `[from_unix, to_unix)`.
    pub from_unix: i64,
    pub to_unix: i64,
    pub opens_at: i64,
    pub created_at: i64,
    pub cancelled_at: Option<i64>,
}

impl WaveRecord {
    /// Not cancelled and not open at `now`.
    pub fn pending(&self, now: i64) -> bool {
        self.cancelled_at.is_none() && self.opens_at > now
    }

    /// Whether the two cover a slot in common (any service: a slot carries one wave).
    pub fn overlaps(&self, other: &WaveRecord) -> bool {
        self.from_unix < other.to_unix
            && other.from_unix < self.to_unix
            && (self.office_ids.is_empty()
                || other.office_ids.is_empty()
                || self.office_ids.iter().any(|o| other.office_ids.contains(o)))
    }

    /// The slot filter of the wave: `start_at` in its range and, when it names offices, one of
    /// them (placeholders from `$first`).
    fn slot_filter(&self, first: usize) -> String {
        // A slot withheld by an open ballot keeps its withholding (migration 0010).
        let mut sql = format!(
            "ballot_id IS NULL AND start_at >= ${first} AND start_at < ${}",
            first + 1
        );
        if !self.office_ids.is_empty() {
            let list: Vec<String> = (0..self.office_ids.len())
                .map(|i| format!("${}", first + 2 + i))
                .collect();
            sql.push_str(&format!(" AND office_id IN ({})", list.join(", ")));
        }
        sql
    }
}

/// What cancelling a wave did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    NotFound,
    /// Opened already (its seats are bookable; nothing to cancel).
    AlreadyOpen(WaveRecord),
    /// Cancelled now, or before (the record says when).
    Done(WaveRecord),
}

const WAVE_COLS: &str = "id, service, provinces, office_ids, from_date, to_date, from_unix, to_unix, opens_at, created_at, cancelled_at";

macro_rules! wave_of {
    ($row:expr) => {{
        let row = $row;
        let list = |text: String| -> Result<Vec<String>, StoreError> {
            serde_json::from_str(&text).map_err(|e| StoreError::corrupt(format!("wave list: {e}")))
        };
        Ok::<_, StoreError>(WaveRecord {
            id: row.try_get(0)?,
            service: row.try_get(1)?,
            provinces: list(row.try_get(2)?)?,
            office_ids: list(row.try_get(3)?)?,
            from_date: row.try_get(4)?,
            to_date: row.try_get(5)?,
            from_unix: row.try_get(6)?,
            to_unix: row.try_get(7)?,
            opens_at: row.try_get(8)?,
            created_at: row.try_get(9)?,
            cancelled_at: row.try_get(10)?,
        })
    }};
}

impl Store {
    /// Every wave, newest first, at most [`WAVES_LISTED_MAX`].
    pub async fn release_waves(&self) -> Result<Vec<WaveRecord>, StoreError> {
        let sql = format!(
            "SELECT {WAVE_COLS} FROM release_waves ORDER BY created_at DESC, id DESC LIMIT {WAVES_LISTED_MAX}"
        );
        on_pool!(self, pool, q = &sql => {
            let rows = sqlx::query(q).fetch_all(pool).await?;
            rows.iter().map(|r| wave_of!(r)).collect()
        })
    }

    /// Records the wave and closes the slots it covers, in one transaction, unless a pending
    /// wave overlaps it: then `Err` of that wave's id and nothing is written. `Ok` of the
    /// slots covered.
    pub async fn create_release_wave(
        &self,
        wave: &WaveRecord,
        now: i64,
    ) -> Result<Result<u64, String>, StoreError> {
        const INSERT: &str = "INSERT INTO release_waves (id, service, provinces, office_ids, from_date, to_date, from_unix, to_unix, opens_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
        let pending_sql = format!(
            "SELECT {WAVE_COLS} FROM release_waves WHERE cancelled_at IS NULL AND opens_at > $1"
        );
        let update_sql = format!(
            "UPDATE slots SET opens_at = $1, opens_for = $2 WHERE {}",
            wave.slot_filter(3)
        );
        let json = |v: &Vec<String>| serde_json::to_string(v).expect("strings serialise");
        on_pool!(self, pool, q = &pending_sql => {
            // Two admins creating overlapping waves at once: one waits for the other, then
            // reads its wave and is refused like any overlap (409).
            let mut tx = pool.begin_with(self.write_begin()).await?;
            if matches!(self, Store::Postgres(_)) {
                sqlx::query("LOCK TABLE release_waves IN EXCLUSIVE MODE").execute(&mut *tx).await?;
            }
            let rows = sqlx::query(q).bind(now).fetch_all(&mut *tx).await?;
            for r in &rows {
                let other = wave_of!(r)?;
                if other.overlaps(wave) {
                    return Ok(Err(other.id));
                }
            }
            sqlx::query(&self.backend_sql(INSERT))
                .bind(&wave.id).bind(&wave.service).bind(json(&wave.provinces))
                .bind(json(&wave.office_ids)).bind(&wave.from_date).bind(&wave.to_date)
                .bind(wave.from_unix).bind(wave.to_unix).bind(wave.opens_at).bind(wave.created_at)
                .execute(&mut *tx).await?;
            let update = self.backend_sql(&update_sql);
            let mut query = sqlx::query(&update)
                .bind(wave.opens_at).bind(&wave.service).bind(wave.from_unix).bind(wave.to_unix);
            for o in &wave.office_ids {
                query = query.bind(o);
            }
            let covered = query.execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(Ok(covered))
        })
    }

    /// Cancels a wave not yet open: its slots open at once.
    pub async fn cancel_release_wave(&self, id: &str, now: i64) -> Result<Cancelled, StoreError> {
        let select = format!("SELECT {WAVE_COLS} FROM release_waves WHERE id = $1");
        on_pool!(self, pool, q = &select => {
            let mut tx = pool.begin_with(self.write_begin()).await?;
            let Some(row) = sqlx::query(q).bind(id).fetch_optional(&mut *tx).await? else {
                return Ok(Cancelled::NotFound);
            };
            let mut wave = wave_of!(&row)?;
            if wave.cancelled_at.is_some() {
                return Ok(Cancelled::Done(wave));
            }
            if wave.opens_at <= now {
                return Ok(Cancelled::AlreadyOpen(wave));
            }
            let mark = self.backend_sql("UPDATE release_waves SET cancelled_at = $1 WHERE id = $2 AND cancelled_at IS NULL");
            sqlx::query(&mark).bind(now).bind(id).execute(&mut *tx).await?;
            let clear = self.backend_sql(&format!(
                "UPDATE slots SET opens_at = NULL, opens_for = NULL WHERE opens_at = $1 AND {}",
                wave.slot_filter(2)
            ));
            let mut query = sqlx::query(&clear).bind(wave.opens_at).bind(wave.from_unix).bind(wave.to_unix);
            for o in &wave.office_ids {
                query = query.bind(o);
            }
            query.execute(&mut *tx).await?;
            tx.commit().await?;
            wave.cancelled_at = Some(now);
            Ok(Cancelled::Done(wave))
        })
    }

    /// Writes the pending waves onto the slots they cover again (slots made after a wave was
    /// created, by the rolling window, get it too). Returns the slots written.
    pub async fn apply_pending_waves(&self, now: i64) -> Result<u64, StoreError> {
        let pending: Vec<WaveRecord> = self
            .release_waves()
            .await?
            .into_iter()
            .filter(|w| w.pending(now))
            .collect();
        let mut written = 0;
        for wave in &pending {
            let sql = format!(
                "UPDATE slots SET opens_at = $1, opens_for = $2 WHERE {}",
                wave.slot_filter(3)
            );
            written += on_pool!(self, pool, q = &sql => {
                let mut query = sqlx::query(q)
                    .bind(wave.opens_at).bind(&wave.service).bind(wave.from_unix).bind(wave.to_unix);
                for o in &wave.office_ids {
                    query = query.bind(o);
                }
                query.execute(pool).await?.rows_affected()
            });
        }
        Ok(written)
    }

    /// How a transaction that reads and then writes begins. On SQLite `BEGIN IMMEDIATE`
    /// takes the write lock first: a deferred transaction reads a snapshot, and when another
    /// writer commits meanwhile its first write fails (`SQLITE_BUSY_SNAPSHOT`, which the busy
    /// timeout does not wait out) instead of waiting and reading the other's rows.
    fn write_begin(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "BEGIN IMMEDIATE",
            Store::Postgres(_) => "BEGIN",
        }
    }

    /// The SQL text for this backend.
    fn backend_sql(&self, pg: &str) -> String {
        match self {
            Store::Sqlite(_) => super::sqlite_sql(pg),
            Store::Postgres(_) => pg.to_string(),
        }
    }
}
