//! The storage layer's error type.

use thiserror::Error;

/// What can go wrong in storage, sorted by what a caller should do about it.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database cannot be reached or the pool is exhausted: retry later (HTTP 503).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A constraint refused the write (capacity check, unique index): a conflict, not a fault.
    #[error("the database refused the write: {constraint}")]
    Constraint { constraint: String },
    /// The configuration names something we cannot use.
    #[error("database configuration: {0}")]
    Config(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value did not decode into a domain type: a defect or a hand-edited row.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Other(sqlx::Error),
    /// An error of the SQLite batch writer's connection (rusqlite) not sorted above.
    #[error("database error: {0}")]
    Sqlite(String),
}

impl StoreError {
    pub(crate) fn config(e: sqlx::Error) -> Self {
        StoreError::Config(e.to_string())
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
            | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
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
                    },
                    // PostgreSQL: admin shutdown, cannot connect now, too many connections.
                    // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6) after the busy timeout, i.e.
                    // the single write lock is saturated: come back later, not a fault.
                    _ if matches!(
                        db.code().as_deref(),
                        Some("57P01" | "57P03" | "53300" | "5" | "6" | "261" | "517")
                    ) =>
                    {
                        StoreError::Unavailable(db.message().to_string())
                    }
                    _ => StoreError::Other(e),
                }
            }
            _ => StoreError::Other(e),
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
                },
                // The write lock stayed taken past the busy timeout, or the file cannot be
                // reached: come back later, not a fault.
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::DiskFull
                | ErrorCode::OutOfMemory => StoreError::Unavailable(e.to_string()),
                _ => StoreError::Sqlite(e.to_string()),
            },
            _ => StoreError::Sqlite(e.to_string()),
        }
    }
}

impl From<rusqlite::types::FromSqlError> for StoreError {
    fn from(e: rusqlite::types::FromSqlError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
