//! Storage: sqlx on SQLite (the embedded default: a file created on first start, WAL,
//! `synchronous=FULL`) or PostgreSQL (`DATABASE_URL=postgres://…`, production). SQLite's booking
//! batches alone run on rusqlite, on a thread of their own (`lite_writer`, which says why).
//!
//! Architecture invariant: the database, not this code, is the arbiter of what must never
//! happen. `slots.taken <= slots.capacity` is a `CHECK`; one active appointment per national
//! code and service and one live hold per citizen are partial unique indexes; the event log
//! refuses updates and deletes. Code here may be wrong; the schema still holds.
//!
//! Queries are written once in PostgreSQL style (`$1`, `$2`, …) and rewritten for SQLite
//! (`?1`, `?2`, …, which SQLite binds by number), so both backends run the same SQL text.

mod applicants;
mod ballot_close;
mod ballot_entries;
mod ballots;
mod batch_plan;
mod booking;
mod error;
mod lite_checkpoint;
mod lite_read;
mod lite_writer;
mod network;
mod operations;
mod rooms;
mod security;
pub mod seed;
mod waitlist;
mod waves;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use applicants::{
    events_about_sql, ApplicationRecord, EventRecord, Inserted, KeptAnswer, PaymentRecord,
};
pub use ballot_close::{ClosePublish, PlacedOutcome, PublishTimes, SmsTemplate, UnplacedOutcome};
pub use ballot_entries::{EntryChange, EntryRefusal, EntryWrite};
pub use ballots::{
    BallotRow, CloseEntryRow, EntryOutcome, EntryRow, WithheldSlot, BALLOT_WITHHELD_UNTIL,
    CLOSE_LEASE_SECS,
};
pub use batch_plan::{Stored, OFFER_HOLD_PREFIX};
pub use booking::{
    BatchConn, BatchExtras, BatchWrite, IdempotencyRecord, StoredAnswer, CANCELLATIONS_OF_LITE,
    CANCELLATIONS_OF_PG, IDEMPOTENCY_FORMAT, PG_BATCH_BEGIN,
};
pub use error::{Source, StoreError};
pub use network::{CalendarRecord, OfficeRecord};
pub use operations::{
    token_id_of, AppointmentCounts, OperatorRecord, OperatorTokenRecord, OutboxMessage,
    CLOSURE_ROWS_MAX, IRAN_OFFSET_SECS, OPERATOR_TOKENS_MAX,
};
pub use rooms::{Joined, PassUse, RoomRecord, RoomState, TicketRecord};
pub use security::{AuditRecord, FailureCount, LoginFailure, AUDIT_PAGE_MAX};
pub use waves::{Cancelled, WaveRecord, WAVES_LISTED_MAX};

/// How long a SQLite connection waits for the write lock before giving up ("unavailable").
pub(crate) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Where to store: a PostgreSQL URL, or else a SQLite file.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `postgres://…` or `sqlite://…`; `None` means the SQLite file at `sqlite_path`.
    pub database_url: Option<String>,
    pub sqlite_path: PathBuf,
    /// Pool bound: requests beyond it wait up to `acquire_timeout`, then get "unavailable".
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl StoreConfig {
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self {
            database_url: None,
            sqlite_path: path.into(),
            max_connections: 8,
            acquire_timeout: Duration::from_secs(3),
        }
    }

    pub fn url(url: impl Into<String>) -> Self {
        Self {
            database_url: Some(url.into()),
            ..Self::sqlite("nobat.db")
        }
    }
}

/// A connection pool to one of the two backends.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same body against whichever pool the store holds; `$sql` is PostgreSQL-style text
/// and is rewritten for SQLite. Inside the body, `$pool` is the typed pool and `$q` the SQL.
macro_rules! on_pool {
    ($store:expr, $pool:ident, $q:ident = $sql:expr => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool) => {
                let $q: &str = &$crate::store::sqlite_sql($sql);
                $body
            }
            $crate::store::Store::Postgres($pool) => {
                let $q: &str = $sql;
                $body
            }
        }
    };
}
pub(crate) use on_pool;

/// A keyed read on either backend: on PostgreSQL through the pool, on SQLite on the calling
/// thread ([`lite_read::lite_rows`]). `$sql` is PostgreSQL-style text; `($p, …)` are bound
/// first, then each item of `; $many` (an iterator of `&String`) when given. `$decode` maps the
/// row `$r` (sqlx's or rusqlite's: both have `try_get`) to a `Result`. `optional` gives the
/// first row if any, `all` every row.
macro_rules! keyed_read {
    (@pg $pool:ident, $sql:expr, ($($p:expr),*) $(; $many:expr)?) => {{
        #[allow(unused_mut)]
        let mut query = sqlx::query($sql)$(.bind($p))*;
        $(for m in $many {
            query = query.bind(m);
        })?
        query
    }};
    (@lite ($($p:expr),*) $(; $many:expr)?) => {{
        #[allow(unused_mut)]
        let mut params: Vec<&dyn rusqlite::ToSql> = vec![$(&$p),*];
        $(for m in $many {
            params.push(m);
        })?
        rusqlite::params_from_iter(params)
    }};
    (optional $store:expr, $sql:expr, ($($p:expr),*) $(; $many:expr)?, |$r:ident| $decode:expr) => {
        match $store {
            $crate::store::Store::Sqlite(pool) => $crate::store::lite_read::lite_row(
                pool,
                &$crate::store::sqlite_sql($sql),
                keyed_read!(@lite ($($p),*) $(; $many)?),
                |$r| $decode,
            ),
            $crate::store::Store::Postgres(pool) => keyed_read!(@pg pool, $sql, ($($p),*) $(; $many)?)
                .fetch_optional(pool)
                .await?
                .map(|$r| $decode)
                .transpose(),
        }
    };
    (all $store:expr, $sql:expr, ($($p:expr),*) $(; $many:expr)?, |$r:ident| $decode:expr) => {
        match $store {
            $crate::store::Store::Sqlite(pool) => $crate::store::lite_read::lite_rows(
                pool,
                &$crate::store::sqlite_sql($sql),
                keyed_read!(@lite ($($p),*) $(; $many)?),
                |$r| $decode,
            ),
            $crate::store::Store::Postgres(pool) => keyed_read!(@pg pool, $sql, ($($p),*) $(; $many)?)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|$r| $decode)
                .collect(),
        }
    };
}
pub(crate) use keyed_read;

/// Rewrites `$1`-style placeholders to SQLite's numbered `?1` form.
pub(crate) fn sqlite_sql(pg: &str) -> String {
    let mut out = String::with_capacity(pg.len());
    let mut chars = pg.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// The booking writer opens the SQLite file on a connection of its own (`lite_writer`), and an
/// in-memory database is one per connection: refused at connect, not at the first booking.
fn refuse_in_memory(url_or_path: &str) -> Result<(), StoreError> {
    if url_or_path.is_empty()
        || url_or_path.contains(":memory:")
        || url_or_path.contains("mode=memory")
    {
        return Err(StoreError::Config(error::message(
            "an in-memory SQLite database cannot be shared with the booking writer; give a file path",
        )));
    }
    Ok(())
}

impl Store {
    /// Connects (creating the SQLite file if needed) and applies the migrations.
    pub async fn connect(config: &StoreConfig) -> Result<Store, StoreError> {
        let store = match config.database_url.as_deref() {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let options = PgConnectOptions::from_str(url).map_err(StoreError::config)?;
                let pool = PgPoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(config.acquire_timeout)
                    .connect_with(options)
                    .await?;
                Store::Postgres(pool)
            }
            Some(url) if url.starts_with("sqlite:") => {
                refuse_in_memory(url)?;
                let options = SqliteConnectOptions::from_str(url).map_err(StoreError::config)?;
                Store::Sqlite(Self::sqlite_pool(options, config).await?)
            }
            Some(other) => {
                return Err(StoreError::Config(error::message(format!(
                    "unsupported database URL scheme in {:?}: use postgres://… or sqlite://…",
                    other.split(':').next().unwrap_or("")
                ))))
            }
            None => {
                refuse_in_memory(&config.sqlite_path.to_string_lossy())?;
                Store::Sqlite(
                    Self::sqlite_pool(
                        SqliteConnectOptions::new().filename(&config.sqlite_path),
                        config,
                    )
                    .await?,
                )
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn sqlite_pool(
        options: SqliteConnectOptions,
        config: &StoreConfig,
    ) -> Result<SqlitePool, StoreError> {
        // WAL lets readers run beside the writer; synchronous=FULL makes a commit durable
        // before it returns, so an acknowledged booking survives `kill -9` and power loss.
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Statement journals (a multi-row statement's undo, within the transaction) stay
            // in memory instead of spilling to a temporary file; durability is unchanged (the
            // WAL and its fsync at commit are what make a write survive).
            .pragma("temp_store", "memory")
            .busy_timeout(SQLITE_BUSY_TIMEOUT);
        Ok(SqlitePoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options)
            .await?)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Store::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
        }
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool, q = "SELECT 1" => {
            sqlx::query(q).execute(pool).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        match self {
            Store::Sqlite(pool) => pool.close().await,
            Store::Postgres(pool) => pool.close().await,
        }
    }

    /// Appends one event to the append-only log.
    pub async fn append_event(
        &self,
        at_unix: i64,
        actor: &str,
        kind: &str,
        subject: &str,
        payload: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let payload = payload.to_string();
        on_pool!(self, pool, q = "INSERT INTO events (at, actor, kind, subject, payload_json) VALUES ($1, $2, $3, $4, $5)" => {
            sqlx::query(q).bind(at_unix).bind(actor).bind(kind).bind(subject).bind(&payload).execute(pool).await?;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_for_sqlite() {
        assert_eq!(
            sqlite_sql("SELECT $1, $12 FROM t WHERE a = '$'"),
            "SELECT ?1, ?12 FROM t WHERE a = '$'"
        );
    }
}
