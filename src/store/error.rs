//! The storage layer's error type.
//!
//! Each variant keeps the error underneath it as its `source` (sqlx's, rusqlite's, the
//! migrator's), so a log that prints an error's chain (`tracing`'s `error = &e as &dyn Error`
//! does) shows what the database or the driver said, down to an I/O error. The messages are
//! those of before, which also name the immediate cause.

use std::error::Error;
use std::sync::Arc;

use thiserror::Error;

/// The error underneath a [`StoreError`]. Shared rather than owned: one failed transaction
/// fails every request of its batch, and each gets the same cause. Its `Display` and `source`
/// are the underlying error's own.
pub type Source = Arc<dyn Error + Send + Sync>;

/// A [`Source`] that is only a message, where nothing underneath said more (a thread that
/// stopped, a stored value that does not parse).
pub fn message(text: impl Into<String>) -> Source {
    Arc::from(Box::<dyn Error + Send + Sync>::from(text.into()))
}

/// What can go wrong in storage, sorted by what a caller should do about it.
#[derive(Debug, Clone, Error)]
pub enum StoreError {
    /// The database cannot be reached or the pool is exhausted: retry later (HTTP 503).
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] Source),
    /// A constraint refused the write (capacity check, unique index): a conflict, not a fault.
    /// `source` is the database's refusal (none for a reference the writer checks by hand).
    #[error("the database refused the write: {constraint}")]
    Constraint {
        constraint: String,
        #[source]
        source: Option<Source>,
    },
    /// The configuration names something we cannot use.
    #[error("database configuration: {0}")]
    Config(#[source] Source),
    #[error("migration failed: {0}")]
    Migrate(#[source] Source),
    /// A stored value did not decode into a domain type: a defect or a hand-edited row.
    #[error("corrupt stored data: {0}")]
    Corrupt(#[source] Source),
    #[error("database error: {0}")]
    Other(#[source] Source),
    /// An error of the SQLite batch writer's connection (rusqlite) not sorted above.
    #[error("database error: {0}")]
    Sqlite(#[source] Source),
}

impl StoreError {
    pub(crate) fn config(e: sqlx::Error) -> Self {
        StoreError::Config(Arc::new(e))
    }

    /// Stored data that does not decode, described by `what`.
    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        StoreError::Corrupt(message(what))
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => StoreError::Unavailable(Arc::new(e)),
            sqlx::Error::Database(db) => {
                use sqlx::error::ErrorKind;
                match db.kind() {
                    ErrorKind::UniqueViolation
                    | ErrorKind::CheckViolation
                    | ErrorKind::ForeignKeyViolation => StoreError::Constraint {
                        constraint: db
                            .constraint()
                            .map(str::to_string)
                            .unwrap_or_else(|| db.message().to_string()),
                        source: Some(Arc::new(e)),
                    },
                    // PostgreSQL: admin shutdown, cannot connect now, too many connections.
                    // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6) after the busy timeout, i.e.
                    // the single write lock is saturated: come back later, not a fault.
                    _ if matches!(
                        db.code().as_deref(),
                        Some("57P01" | "57P03" | "53300" | "5" | "6" | "261" | "517")
                    ) =>
                    {
                        StoreError::Unavailable(Arc::new(e))
                    }
                    _ => StoreError::Other(Arc::new(e)),
                }
            }
            _ => StoreError::Other(Arc::new(e)),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match &e {
            rusqlite::Error::SqliteFailure(f, message) => match f.code {
                ErrorCode::ConstraintViolation => StoreError::Constraint {
                    constraint: message.clone().unwrap_or_else(|| e.to_string()),
                    source: Some(Arc::new(e)),
                },
                // The write lock stayed taken past the busy timeout, or the file cannot be
                // reached: come back later, not a fault.
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::DiskFull
                | ErrorCode::OutOfMemory => StoreError::Unavailable(Arc::new(e)),
                _ => StoreError::Sqlite(Arc::new(e)),
            },
            _ => StoreError::Sqlite(Arc::new(e)),
        }
    }
}

impl From<rusqlite::types::FromSqlError> for StoreError {
    fn from(e: rusqlite::types::FromSqlError) -> Self {
        StoreError::Corrupt(Arc::new(e))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(Arc::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts of `e` and of every error under it.
    fn chain(e: &(dyn Error + 'static)) -> Vec<String> {
        std::iter::successors(Some(e), |e| (*e).source())
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_drivers_errors_stay_underneath() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e = StoreError::from(sqlx::Error::Io(io));
        assert!(e.is_unavailable());
        let texts = chain(&e);
        assert_eq!(texts.len(), 3, "{texts:?}");
        assert!(texts[0].starts_with("the database is unavailable: "));
        assert_eq!(texts[2], "reset by peer", "the I/O error is still there");

        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            Some("database is locked".into()),
        );
        let e = StoreError::from(busy);
        assert!(e.is_unavailable());
        assert!(e
            .source()
            .is_some_and(|s| s.to_string() == "database is locked"));

        let refused = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_CHECK),
            Some("CHECK constraint failed: taken".into()),
        );
        let e = StoreError::from(refused);
        assert_eq!(
            e.to_string(),
            "the database refused the write: CHECK constraint failed: taken"
        );
        assert!(e.source().is_some());
    }

    #[test]
    fn messages_read_as_before() {
        assert_eq!(
            StoreError::corrupt("fee -1").to_string(),
            "corrupt stored data: fee -1"
        );
        assert_eq!(
            StoreError::Unavailable(message("the SQLite writer thread stopped")).to_string(),
            "the database is unavailable: the SQLite writer thread stopped"
        );
    }
}
