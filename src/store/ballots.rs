//! Ballot windows (migration 0010): the ballot, its entries, the seats it withholds and what
//! its close wrote. The close is exactly once and restartable by construction: a process takes
//! the close's lease (`status = 'closing'`, `lease_owner`, `lease_until`; an expired lease is
//! taken over), computes the outcome from what is stored, and writes every effect of the close
//! (appointments, seats taken, notices, events, outcomes, the seats returned, the revealed
//! status) in ONE transaction that first moves its own lease to `published` (`ballot_close`,
//! in bulk): a process killed before that commit wrote nothing, and a second writer finds the
//! status moved and writes nothing.

use futures_util::TryStreamExt;
use sqlx::Row;

use super::lite_read::{lite_for_each, texts, LiteGet};
use super::{on_pool, sqlite_sql, Store, StoreError};

/// `slots.opens_at` of a slot withheld by an open ballot (the year 3000): the booking writer
/// refuses its seats with the release waves' rule (`SlotRow::unreleased_for`) until the close
/// clears it.
pub const BALLOT_WITHHELD_UNTIL: i64 = 32_503_680_000;

/// How long a close's lease lasts: a process killed mid-close is replaced after this.
pub const CLOSE_LEASE_SECS: i64 = 300;

/// A ballot as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct BallotRow {
    pub id: String,
    pub service: String,
    pub provinces: Vec<String>,
    /// The offices whose slots are withheld.
    pub office_ids: Vec<String>,
    pub terms_json: String,
    pub from_unix: i64,
    pub to_unix: i64,
    pub opens_at: i64,
    pub closes_at: i64,
    /// Secret until `published` (never served before).
    pub seed_hex: String,
    /// Secret forever: the salt of the entry keys.
    pub salt_hex: String,
    pub commitment: String,
    pub status: String,
    pub offices_json: Option<String>,
    pub results_json: Option<String>,
    pub created_at: i64,
    pub published_at: Option<i64>,
}

/// One entry as stored, with its outcome once the ballot is published.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryRow {
    pub ballot_id: String,
    pub national_code: String,
    pub entry_key: String,
    pub application_id: String,
    pub payment_id: String,
    pub home_lat: f64,
    pub home_lon: f64,
    pub province: Option<String>,
    pub priority: i32,
    pub preferences_json: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub outcome: Option<EntryOutcome>,
}

/// What the close decided for one entry.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryOutcome {
    Placed {
        tracking_code: String,
        slot_id: i64,
        office_id: String,
        start_at: i64,
        distance_km: f64,
        cost_m: i64,
        part_of_day_kept: bool,
    },
    Unplaced {
        reason: String,
        /// `None`: the entry took no part (its citizen had an appointment already).
        waitlist_rank: Option<i32>,
    },
}

/// A slot withheld by a ballot, with its free seats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithheldSlot {
    pub slot_id: i64,
    pub office_id: String,
    pub start_at: i64,
    pub seats: i64,
}

/// One entry as the close reads it: only what the pure close decides from, and where its
/// outcome goes (a million of these are read per national close, so nothing else).
#[derive(Debug, Clone, PartialEq)]
pub struct CloseEntryRow {
    /// SQLite: the row's `rowid` (the outcomes are written in rowid order, each table page
    /// visited once); PostgreSQL: 0 (the outcomes go by key there).
    pub row: i64,
    pub entry_key: String,
    pub home_lat: f64,
    pub home_lon: f64,
    pub province: Option<String>,
    pub priority: i32,
    pub preferences_json: String,
}

const BALLOT_COLS: &str = "id, service, provinces, office_ids, terms_json, from_unix, to_unix, opens_at, closes_at, seed_hex, salt_hex, commitment, status, offices_json, results_json, created_at, published_at";
const ENTRY_COLS: &str = "ballot_id, national_code, entry_key, application_id, payment_id, home_lat, home_lon, province, priority, preferences_json, created_at, updated_at, tracking_code, slot_id, office_id, start_at, distance_km, cost_m, part_of_day_kept, reason, waitlist_rank";

macro_rules! ballot_of {
    ($row:expr) => {{
        let row = $row;
        let list = |text: String| -> Result<Vec<String>, StoreError> {
            serde_json::from_str(&text)
                .map_err(|e| StoreError::corrupt(format!("ballot list: {e}")))
        };
        Ok::<_, StoreError>(BallotRow {
            id: row.try_get(0)?,
            service: row.try_get(1)?,
            provinces: list(row.try_get(2)?)?,
            office_ids: list(row.try_get(3)?)?,
            terms_json: row.try_get(4)?,
            from_unix: row.try_get(5)?,
            to_unix: row.try_get(6)?,
            opens_at: row.try_get(7)?,
            closes_at: row.try_get(8)?,
            seed_hex: row.try_get(9)?,
            salt_hex: row.try_get(10)?,
            commitment: row.try_get(11)?,
            status: row.try_get(12)?,
            offices_json: row.try_get(13)?,
            results_json: row.try_get(14)?,
            created_at: row.try_get(15)?,
            published_at: row.try_get(16)?,
        })
    }};
}

macro_rules! entry_of {
    ($row:expr) => {{
        let row = $row;
        let tracking_code: Option<String> = row.try_get(12)?;
        let reason: Option<String> = row.try_get(19)?;
        let outcome = match (tracking_code, reason) {
            (Some(tracking_code), _) => Some(EntryOutcome::Placed {
                tracking_code,
                slot_id: row.try_get::<Option<i64>, _>(13)?.unwrap_or_default(),
                office_id: row.try_get::<Option<String>, _>(14)?.unwrap_or_default(),
                start_at: row.try_get::<Option<i64>, _>(15)?.unwrap_or_default(),
                distance_km: row.try_get::<Option<f64>, _>(16)?.unwrap_or_default(),
                cost_m: row.try_get::<Option<i64>, _>(17)?.unwrap_or_default(),
                part_of_day_kept: row.try_get::<Option<bool>, _>(18)?.unwrap_or_default(),
            }),
            (None, Some(reason)) => Some(EntryOutcome::Unplaced {
                reason,
                waitlist_rank: row.try_get(20)?,
            }),
            (None, None) => None,
        };
        Ok::<_, StoreError>(EntryRow {
            ballot_id: row.try_get(0)?,
            national_code: row.try_get(1)?,
            entry_key: row.try_get(2)?,
            application_id: row.try_get(3)?,
            payment_id: row.try_get(4)?,
            home_lat: row.try_get(5)?,
            home_lon: row.try_get(6)?,
            province: row.try_get(7)?,
            priority: row.try_get(8)?,
            preferences_json: row.try_get(9)?,
            created_at: row.try_get(10)?,
            updated_at: row.try_get(11)?,
            outcome,
        })
    }};
}

macro_rules! close_entry_of {
    ($row:expr) => {{
        let row = $row;
        Ok::<_, StoreError>(CloseEntryRow {
            row: row.try_get(0)?,
            entry_key: row.try_get(1)?,
            home_lat: row.try_get(2)?,
            home_lon: row.try_get(3)?,
            province: row.try_get(4)?,
            priority: row.try_get(5)?,
            preferences_json: row.try_get(6)?,
        })
    }};
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).expect("strings serialise")
}

/// The slot filter of a ballot: its range and, when it names offices, one of them
/// (placeholders from `$first`).
fn slot_filter(ballot: &BallotRow, first: usize) -> String {
    let mut sql = format!("start_at >= ${first} AND start_at < ${}", first + 1);
    if !ballot.office_ids.is_empty() {
        let list: Vec<String> = (0..ballot.office_ids.len())
            .map(|i| format!("${}", first + 2 + i))
            .collect();
        sql.push_str(&format!(" AND office_id IN ({})", list.join(", ")));
    }
    sql
}

impl Store {
    fn sql_for(&self, pg: &str) -> String {
        match self {
            Store::Sqlite(_) => sqlite_sql(pg),
            Store::Postgres(_) => pg.to_string(),
        }
    }

    pub async fn create_ballot(&self, b: &BallotRow) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO ballots (id, service, provinces, office_ids, terms_json, from_unix, to_unix, opens_at, closes_at, seed_hex, salt_hex, commitment, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'scheduled', $13)";
        on_pool!(self, pool, q = SQL => {
            sqlx::query(q)
                .bind(&b.id).bind(&b.service).bind(json_list(&b.provinces)).bind(json_list(&b.office_ids))
                .bind(&b.terms_json).bind(b.from_unix).bind(b.to_unix).bind(b.opens_at).bind(b.closes_at)
                .bind(&b.seed_hex).bind(&b.salt_hex).bind(&b.commitment).bind(b.created_at)
                .execute(pool).await?;
            Ok(())
        })
    }

    pub async fn ballot(&self, id: &str) -> Result<Option<BallotRow>, StoreError> {
        let sql = format!("SELECT {BALLOT_COLS} FROM ballots WHERE id = $1");
        on_pool!(self, pool, q = &sql => {
            match sqlx::query(q).bind(id).fetch_optional(pool).await? {
                Some(r) => Ok(Some(ballot_of!(&r)?)),
                None => Ok(None),
            }
        })
    }

    /// The ballots not published yet (a handful at any time).
    pub async fn unpublished_ballots(&self) -> Result<Vec<BallotRow>, StoreError> {
        let sql = format!(
            "SELECT {BALLOT_COLS} FROM ballots WHERE status <> 'published' ORDER BY closes_at, id"
        );
        on_pool!(self, pool, q = &sql => {
            let rows = sqlx::query(q).fetch_all(pool).await?;
            rows.iter().map(|r| ballot_of!(r)).collect()
        })
    }

    pub async fn ballot_entry_count(&self, id: &str) -> Result<i64, StoreError> {
        on_pool!(self, pool, q = "SELECT COUNT(*) FROM ballot_entries WHERE ballot_id = $1" => {
            Ok(sqlx::query_scalar::<_, i64>(q).bind(id).fetch_one(pool).await?)
        })
    }

    pub async fn ballot_entry(
        &self,
        ballot_id: &str,
        national_code: &str,
    ) -> Result<Option<EntryRow>, StoreError> {
        let sql = format!(
            "SELECT {ENTRY_COLS} FROM ballot_entries WHERE ballot_id = $1 AND national_code = $2"
        );
        on_pool!(self, pool, q = &sql => {
            match sqlx::query(q).bind(ballot_id).bind(national_code).fetch_optional(pool).await? {
                Some(r) => Ok(Some(entry_of!(&r)?)),
                None => Ok(None),
            }
        })
    }

    /// Every entry of a ballot, by key.
    pub async fn ballot_entries(&self, ballot_id: &str) -> Result<Vec<EntryRow>, StoreError> {
        let sql = format!(
            "SELECT {ENTRY_COLS} FROM ballot_entries WHERE ballot_id = $1 ORDER BY entry_key"
        );
        on_pool!(self, pool, q = &sql => {
            let rows = sqlx::query(q).bind(ballot_id).fetch_all(pool).await?;
            rows.iter().map(|r| entry_of!(r)).collect()
        })
    }

    /// Every entry of a ballot with its outcome, streamed to `each` in storage order (the
    /// export of a national ballot: no million rows in memory, no walk of the key index over
    /// a table larger than the page cache).
    pub async fn for_each_entry(
        &self,
        ballot_id: &str,
        mut each: impl FnMut(EntryRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let sql = format!("SELECT {ENTRY_COLS} FROM ballot_entries WHERE ballot_id = $1");
        match self {
            Store::Sqlite(pool) => {
                lite_for_each(
                    pool,
                    sqlite_sql(&sql),
                    texts([ballot_id]),
                    |r| entry_of!(r),
                    each,
                )
                .await
            }
            Store::Postgres(pool) => {
                let mut rows = sqlx::query(&sql).bind(ballot_id).fetch(pool);
                while let Some(r) = rows.try_next().await? {
                    each(entry_of!(&r)?)?;
                }
                Ok(())
            }
        }
    }

    /// Every entry of a ballot as the close needs it, streamed to `each` one row at a time (a
    /// national ballot's million wide rows are never all in memory at once).
    pub async fn for_each_close_entry(
        &self,
        ballot_id: &str,
        mut each: impl FnMut(CloseEntryRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        const COLS: &str =
            "entry_key, home_lat, home_lon, province, priority, preferences_json FROM ballot_entries WHERE ballot_id = $1";
        match self {
            Store::Sqlite(pool) => {
                let sql = sqlite_sql(&format!("SELECT rowid, {COLS}"));
                lite_for_each(pool, sql, texts([ballot_id]), |r| close_entry_of!(r), each).await?;
            }
            Store::Postgres(pool) => {
                let sql = format!("SELECT 0::bigint, {COLS}");
                let mut rows = sqlx::query(&sql).bind(ballot_id).fetch(pool);
                while let Some(r) = rows.try_next().await? {
                    each(close_entry_of!(&r)?)?;
                }
            }
        }
        Ok(())
    }

    /// Opens a scheduled ballot whose time came: its status and the withholding of its slots
    /// (free of another ballot) in one transaction. `true` when this call opened it.
    pub async fn open_ballot(&self, b: &BallotRow, now: i64) -> Result<bool, StoreError> {
        let mark = "UPDATE ballots SET status = 'open' WHERE id = $1 AND status = 'scheduled' AND opens_at <= $2";
        let withhold = self.sql_for(&format!(
            "UPDATE slots SET opens_at = $1, opens_for = NULL, ballot_id = $2 WHERE ballot_id IS NULL AND {}",
            slot_filter(b, 3)
        ));
        on_pool!(self, pool, q = mark => {
            let mut tx = pool.begin().await?;
            if sqlx::query(q).bind(&b.id).bind(now).execute(&mut *tx).await?.rows_affected() == 0 {
                return Ok(false);
            }
            let mut query = sqlx::query(&withhold).bind(BALLOT_WITHHELD_UNTIL).bind(&b.id).bind(b.from_unix).bind(b.to_unix);
            for o in &b.office_ids {
                query = query.bind(o);
            }
            query.execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Withholds the slots made after an open ballot opened (the rolling window's new days in
    /// its range). Returns the slots written.
    pub async fn apply_open_ballots(&self) -> Result<u64, StoreError> {
        let mut written = 0;
        for b in self
            .unpublished_ballots()
            .await?
            .iter()
            .filter(|b| b.status == "open")
        {
            let sql = format!(
                "UPDATE slots SET opens_at = $1, opens_for = NULL, ballot_id = $2 WHERE ballot_id IS NULL AND {}",
                slot_filter(b, 3)
            );
            written += on_pool!(self, pool, q = &sql => {
                let mut query = sqlx::query(q).bind(BALLOT_WITHHELD_UNTIL).bind(&b.id).bind(b.from_unix).bind(b.to_unix);
                for o in &b.office_ids {
                    query = query.bind(o);
                }
                query.execute(pool).await?.rows_affected()
            });
        }
        Ok(written)
    }

    /// Takes the close's lease of a ballot due at `now` (open, or closing under an expired
    /// lease). `true`: this owner closes it now.
    pub async fn claim_ballot_close(
        &self,
        id: &str,
        owner: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE ballots SET status = 'closing', lease_owner = $2, lease_until = $3 \
             WHERE id = $1 AND closes_at <= $4 AND (status = 'open' OR (status = 'closing' AND lease_until < $4))";
        on_pool!(self, pool, q = SQL => {
            let n = sqlx::query(q).bind(id).bind(owner).bind(now + CLOSE_LEASE_SECS).bind(now)
                .execute(pool).await?.rows_affected();
            Ok(n == 1)
        })
    }

    /// The slots a ballot withholds, with their free seats now.
    pub async fn withheld_slots(&self, id: &str) -> Result<Vec<WithheldSlot>, StoreError> {
        const SQL: &str = "SELECT id, office_id, start_at, capacity, taken FROM slots WHERE ballot_id = $1 ORDER BY id";
        if let Store::Sqlite(pool) = self {
            let mut slots = Vec::new();
            lite_for_each(
                pool,
                sqlite_sql(SQL),
                texts([id]),
                |r| {
                    let (capacity, taken): (i64, i64) = (r.get(3)?, r.get(4)?);
                    Ok(WithheldSlot {
                        slot_id: r.get(0)?,
                        office_id: r.get(1)?,
                        start_at: r.get(2)?,
                        seats: (capacity - taken).max(0),
                    })
                },
                |s| {
                    slots.push(s);
                    Ok(())
                },
            )
            .await?;
            return Ok(slots);
        }
        on_pool!(self, pool, q = SQL => {
            // Streamed: a national ballot withholds 1.5 M slots; the raw rows are not all kept.
            let mut rows = sqlx::query(q).bind(id).fetch(pool);
            let mut slots = Vec::new();
            while let Some(r) = rows.try_next().await? {
                let (capacity, taken): (i64, i64) = (r.try_get(3)?, r.try_get(4)?);
                slots.push(WithheldSlot { slot_id: r.try_get(0)?, office_id: r.try_get(1)?, start_at: r.try_get(2)?, seats: (capacity - taken).max(0) });
            }
            Ok(slots)
        })
    }

    /// The entry keys of the citizens with an active appointment for `service` (their
    /// entries take no part in the close: one active appointment per citizen and service).
    pub async fn booked_entry_keys(&self, b: &BallotRow) -> Result<Vec<String>, StoreError> {
        const SQL: &str = "SELECT e.entry_key FROM appointments a JOIN ballot_entries e ON e.national_code = a.national_code \
             WHERE e.ballot_id = $1 AND a.service = $2 AND (a.status = 'booked' OR a.status = 'checked_in')";
        on_pool!(self, pool, q = SQL => {
            Ok(sqlx::query_scalar::<_, String>(q).bind(&b.id).bind(&b.service).fetch_all(pool).await?)
        })
    }

    /// The seats a published ballot withheld at its close.
    pub async fn ballot_seats(&self, id: &str) -> Result<Vec<WithheldSlot>, StoreError> {
        const SQL: &str = "SELECT slot_id, office_id, start_at, seats FROM ballot_seats WHERE ballot_id = $1 ORDER BY slot_id";
        on_pool!(self, pool, q = SQL => {
            let mut rows = sqlx::query(q).bind(id).fetch(pool);
            let mut seats = Vec::new();
            while let Some(r) = rows.try_next().await? {
                seats.push(WithheldSlot { slot_id: r.try_get(0)?, office_id: r.try_get(1)?, start_at: r.try_get(2)?, seats: r.try_get(3)? });
            }
            Ok(seats)
        })
    }
}
