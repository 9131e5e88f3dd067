//! Large reads of SQLite through rusqlite on a connection of their own, in a blocking thread:
//! the rows a ballot's close and the availability view read by the million (1.5 M slots, 1 M
//! entries) cost a few hundred nanoseconds each to decode here, against several microseconds
//! through sqlx's SQLite worker and its per-row values. The rows come back in batches over a
//! bounded channel, so the reader never holds more than a few batches ahead of the consumer.
//! One `SELECT` is one read transaction (WAL: a consistent snapshot beside the writer).
//!
//! Small keyed reads (a login's failure counts, an idempotency record, an application, a
//! status page's rows) run on the calling thread instead ([`lite_rows`]), on a read-only
//! connection that thread keeps: through sqlx each one was two thread hand-offs to a pooled
//! connection's worker and back, and at surge rates those hand-offs (futex wakes, context
//! switches) cost the server more CPU than the reads themselves (a quarter of it at
//! `surge-day.toml` rate scale 1, `scenarios/loadtest/README.md`).

use std::cell::RefCell;
use std::sync::Arc;

use rusqlite::types::{FromSql, Value};
use rusqlite::{params_from_iter, Connection, OpenFlags, Params, Row, RowIndex};
use sqlx::sqlite::SqliteConnectOptions;

use super::{StoreError, SQLITE_BUSY_TIMEOUT};

/// Rows per batch sent to the consumer, and batches in flight.
const BATCH_ROWS: usize = 4_096;
const BATCHES_IN_FLIGHT: usize = 4;

/// Runs `sql` with `params` on a read-only connection to the pool's file, maps each row by
/// `map` in the reading thread and hands each result to `each` in storage order. An error of
/// `each` stops the read and is returned.
pub(super) async fn lite_for_each<T: Send + 'static>(
    pool: &sqlx::SqlitePool,
    sql: String,
    params: Vec<Value>,
    map: fn(&Row<'_>) -> Result<T, StoreError>,
    mut each: impl FnMut(T) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let path = pool.connect_options().get_filename().to_path_buf();
    let (send, mut batches) = tokio::sync::mpsc::channel::<Vec<T>>(BATCHES_IN_FLIGHT);
    let reader = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
        let mut statement = conn.prepare(&sql)?;
        let mut rows = statement.query(params_from_iter(params))?;
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        while let Some(row) = rows.next()? {
            batch.push(map(row)?);
            if batch.len() == BATCH_ROWS {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                if send.blocking_send(full).is_err() {
                    // The consumer stopped (its error is the one returned).
                    return Ok(());
                }
            }
        }
        if !batch.is_empty() {
            let _ = send.blocking_send(batch);
        }
        Ok(())
    });
    let mut stopped = Ok(());
    'read: while let Some(batch) = batches.recv().await {
        for row in batch {
            if let Err(e) = each(row) {
                stopped = Err(e);
                break 'read;
            }
        }
    }
    drop(batches);
    let read = reader
        .await
        .map_err(|e| StoreError::corrupt(format!("a SQLite read panicked: {e}")))?;
    stopped.and(read)
}

/// Read-only connections a thread keeps, by database file: a worker thread of a test process
/// may serve several stores in turn. Each keeps SQLite's default page cache (2 MiB at most;
/// in WAL mode it starts empty again after every commit of the writer).
const READERS_PER_THREAD: usize = 4;
/// Prepared statements each kept connection caches (the keyed reads are a dozen).
const READER_STATEMENTS: usize = 64;

/// A kept read-only connection, with the store's pool options it was opened for: a store
/// opened again (on a file removed and created again at the same path, say) has options of its
/// own, so its reads open a connection afresh rather than read the removed file. The reader
/// holds the options, so their address cannot be reused by another pool while it is kept.
/// (Compared with checking the file's device and inode per read: a `statx` per read was 1 % of
/// a surge-day server.)
struct Reader {
    options: Arc<SqliteConnectOptions>,
    conn: Connection,
}

thread_local! {
    static READERS: RefCell<Vec<Reader>> = const { RefCell::new(Vec::new()) };
}

/// Runs one keyed `SELECT` on this thread and maps every row. For reads that touch a few
/// pages by an index (the callers' queries are keyed or carry a `LIMIT`): the thread blocks
/// for the read, as it would on a short lock. WAL readers do not wait for the writer.
pub(super) fn lite_rows<T>(
    pool: &sqlx::SqlitePool,
    sql: &str,
    params: impl Params,
    mut map: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    with_reader(pool, |conn| {
        let mut statement = conn.prepare_cached(sql)?;
        let mut rows = statement.query(params)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(map(row)?);
        }
        Ok(out)
    })
}

/// [`lite_rows`]' first row, if any.
pub(super) fn lite_row<T>(
    pool: &sqlx::SqlitePool,
    sql: &str,
    params: impl Params,
    map: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    with_reader(pool, |conn| {
        let mut statement = conn.prepare_cached(sql)?;
        let mut rows = statement.query(params)?;
        rows.next()?.map(map).transpose()
    })
}

fn with_reader<R>(
    pool: &sqlx::SqlitePool,
    read: impl FnOnce(&Connection) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    let options = pool.connect_options();
    READERS.with(|cell| {
        // Taken out while it reads, so a read that somehow nests opens its own.
        let kept = {
            let mut readers = cell.borrow_mut();
            let at = readers
                .iter()
                .position(|r| Arc::ptr_eq(&r.options, &options));
            at.map(|i| readers.remove(i))
        };
        let reader = match kept {
            Some(r) => r,
            None => {
                let conn = Connection::open_with_flags(
                    options.get_filename(),
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
                conn.set_prepared_statement_cache_capacity(READER_STATEMENTS);
                Reader { options, conn }
            }
        };
        let result = read(&reader.conn);
        // A connection that failed a read is closed: the next read opens a fresh one.
        if result.is_ok() {
            let mut readers = cell.borrow_mut();
            readers.push(reader);
            if readers.len() > READERS_PER_THREAD {
                readers.remove(0);
            }
        }
        result
    })
}

/// `try_get` on rusqlite's rows, as on sqlx's: the stores' row macros decode either.
pub(super) trait LiteGet {
    fn try_get<T: FromSql, I: RowIndex>(&self, i: I) -> rusqlite::Result<T>;
}

impl LiteGet for Row<'_> {
    fn try_get<T: FromSql, I: RowIndex>(&self, i: I) -> rusqlite::Result<T> {
        self.get(i)
    }
}

/// Text parameters, as `lite_for_each` binds them.
pub(super) fn texts<const N: usize>(values: [&str; N]) -> Vec<Value> {
    values.iter().map(|v| Value::Text(v.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[tokio::test]
    async fn streams_every_row_in_order_and_stops_at_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::connect(&crate::store::StoreConfig::sqlite(
            dir.path().join("t.db"),
        ))
        .await
        .unwrap();
        let crate::store::Store::Sqlite(pool) = &store else {
            unreachable!()
        };
        sqlx::query("CREATE TABLE t (k TEXT NOT NULL, v INTEGER NOT NULL)")
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000) \
             INSERT INTO t SELECT 'a', i FROM n",
        )
        .execute(pool)
        .await
        .unwrap();
        let mut seen = Vec::new();
        lite_for_each(
            pool,
            "SELECT v FROM t WHERE k = ?1 ORDER BY v".into(),
            texts(["a"]),
            |r| Ok(r.get::<_, i64>(0)?),
            |v| {
                seen.push(v);
                Ok(())
            },
        )
        .await
        .unwrap();
        assert_eq!(seen, (1..=10_000).collect::<Vec<i64>>());
        let mut n = 0;
        let stopped = lite_for_each(
            pool,
            "SELECT v FROM t ORDER BY v".into(),
            Vec::new(),
            |r| Ok(r.get::<_, i64>(0)?),
            |_| {
                n += 1;
                if n == 5_000 {
                    Err(StoreError::corrupt("stop"))
                } else {
                    Ok(())
                }
            },
        )
        .await;
        assert!(stopped.is_err());
        assert_eq!(n, 5_000);
    }

    async fn sqlite_store(path: &Path) -> (crate::store::Store, sqlx::SqlitePool) {
        let store = crate::store::Store::connect(&crate::store::StoreConfig::sqlite(path))
            .await
            .unwrap();
        let crate::store::Store::Sqlite(pool) = &store else {
            unreachable!()
        };
        let pool = pool.clone();
        sqlx::query("CREATE TABLE IF NOT EXISTS t (k TEXT NOT NULL, v INTEGER NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        (store, pool)
    }

    fn values(pool: &sqlx::SqlitePool, k: &str) -> Vec<i64> {
        lite_rows(pool, "SELECT v FROM t WHERE k = ?1 ORDER BY v", [k], |r| {
            Ok(r.get::<_, i64>(0)?)
        })
        .unwrap()
    }

    #[tokio::test]
    async fn kept_readers_see_each_commit_and_a_file_made_anew() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kept.db");
        let (store, pool) = sqlite_store(&path).await;
        assert_eq!(values(&pool, "a"), Vec::<i64>::new());
        assert_eq!(
            lite_row(&pool, "SELECT v FROM t WHERE k = ?1", ["a"], |r| Ok(r
                .get::<_, i64>(
                0
            )?))
            .unwrap(),
            None
        );
        // A commit made elsewhere after this thread's connection was opened is seen by its
        // next read (each statement is a read transaction of its own).
        sqlx::query("INSERT INTO t VALUES ('a', 1), ('a', 2), ('b', 3)")
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(values(&pool, "a"), vec![1, 2]);
        // Both reads went through one kept connection.
        let options = pool.connect_options();
        let kept_for = |options: &Arc<SqliteConnectOptions>| {
            READERS.with(|r| {
                r.borrow()
                    .iter()
                    .filter(|kept| Arc::ptr_eq(&kept.options, options))
                    .count()
            })
        };
        assert_eq!(kept_for(&options), 1);
        // A read-only connection refuses writes, whatever the SQL asks.
        assert!(lite_rows(&pool, "DELETE FROM t RETURNING v", [], |r| Ok(
            r.get::<_, i64>(0)?
        ))
        .is_err());
        // The failed connection was closed; the next read opens another and sees the rows.
        assert_eq!(kept_for(&options), 0);
        assert_eq!(values(&pool, "b"), vec![3]);
        // The file removed and made again at the same path: read afresh, not from the kept
        // connection to the removed file.
        pool.close().await;
        drop(store);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        let (_store, pool) = sqlite_store(&path).await;
        assert_eq!(values(&pool, "a"), Vec::<i64>::new());
        sqlx::query("INSERT INTO t VALUES ('a', 7)")
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(values(&pool, "a"), vec![7]);
        // A thread keeps a few connections, the most recently used.
        READERS.with(|r| assert!(r.borrow().len() <= READERS_PER_THREAD));
    }
}
