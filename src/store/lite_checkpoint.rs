//! SQLite's WAL checkpoints, mostly off the writer thread.
//!
//! A checkpoint copies the pages the WAL holds back into the database file and fsyncs it. Run
//! by the writer (SQLite's `wal_autocheckpoint`), it happened inside the `COMMIT` that crossed
//! the threshold: that batch's answers, and every write queued behind it, waited for the copy
//! and the fsync. At three times the surge (`surge-day.toml`, rate scale 3) the writer ran
//! 2.8 checkpoints a second, each with an fsync of 37 ms at the median (up to 134 ms): a tenth
//! of the writer's time with nothing committed (`perf trace`, `scenarios/loadtest/README.md`).
//!
//! Here a thread of its own, with its own connection, runs the checkpoints: two `PASSIVE`
//! passes every `CHECKPOINT_EVERY` (the second copies what the writer appended during the
//! first). `PASSIVE` takes no lock the writer needs, so commits go on meanwhile. What it cannot
//! do is let the WAL start over: SQLite rewinds the WAL only at the start of a write
//! transaction after a checkpoint that copied every frame, and the writer keeps appending
//! while a pass runs. So after each pass the writer, between two transactions, runs one short
//! `PASSIVE` pass of its own ([`Checkpoints::catch_up`]): it copies only the frames appended
//! since (the big fsync already happened here), and the writer's next transaction rewinds the
//! WAL. Not always: a read that began before the catch-up and still runs keeps the WAL from
//! starting over, and the writer appends to it until the next round. At rate scale 3 the WAL
//! file reached 110–140 MiB (43 MiB with the writer's checkpoints at 10,000 pages).
//!
//! The writer's `wal_autocheckpoint` stays, at `WAL_BACKSTOP_PAGES`, for when this thread
//! falls behind or cannot open its connection. Durability is unchanged: a commit is durable
//! when its WAL frames are synced, at `COMMIT` (`synchronous=FULL`), before its answer; a
//! checkpoint only moves durable pages into the database file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

/// Between two checkpoint rounds: at three times the surge the writer appends ~100 MiB of WAL
/// a second, so about 30 MiB. At rest a round finds nothing to copy (a few system calls).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The writer's own `wal_autocheckpoint`, as a backstop only: 160 MiB of 4 KiB pages.
pub(super) const WAL_BACKSTOP_PAGES: i64 = 40_000;

/// The writer's end of the checkpoint thread; dropping it ends the thread.
pub(super) struct Checkpoints {
    /// Set by the thread after a round, taken by the writer's catch-up.
    round_done: Arc<AtomicBool>,
    /// Never sent on: the thread ends when this is dropped (its `recv_timeout` disconnects).
    _stop: std_mpsc::Sender<()>,
}

impl Checkpoints {
    /// Starts the checkpoint thread for `path`. If the thread cannot start, the writer's
    /// backstop checkpoints keep the WAL bounded.
    pub(super) fn start(path: PathBuf, busy_timeout: Duration) -> Self {
        let round_done = Arc::new(AtomicBool::new(false));
        let (stop_tx, stop) = std_mpsc::channel::<()>();
        let done = round_done.clone();
        let started = std::thread::Builder::new()
            .name("nobat-sqlite-ckpt".into())
            .spawn(move || run(&path, busy_timeout, &stop, &done));
        if let Err(e) = started {
            tracing::warn!(error = %e, "no SQLite checkpoint thread; the writer checkpoints alone");
        }
        Self {
            round_done,
            _stop: stop_tx,
        }
    }

    /// Between two transactions on the writer's connection: after a round of the thread,
    /// copies what was appended since, so that the next transaction rewinds the WAL. Whether
    /// it ran.
    pub(super) fn catch_up(&self, writer: &Connection) -> bool {
        if !self.round_done.swap(false, Ordering::AcqRel) {
            return false;
        }
        if let Err(e) = passive(writer) {
            tracing::debug!(error = %e, "the writer's checkpoint catch-up failed");
        }
        true
    }
}

/// One `PASSIVE` checkpoint: copies the frames no reader still needs, fsyncs the database
/// file, never waits for a lock.
fn passive(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

fn open(path: &PathBuf, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(busy_timeout)?;
    // The checkpoint's fsyncs follow this connection's setting; the writer's is FULL.
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

fn run(path: &PathBuf, busy_timeout: Duration, stop: &std_mpsc::Receiver<()>, done: &AtomicBool) {
    let mut conn: Option<Connection> = None;
    while let Err(std_mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        let c = match &conn {
            Some(c) => c,
            None => match open(path, busy_timeout) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    tracing::debug!(error = %e, "the checkpoint thread cannot open the database");
                    continue;
                }
            },
        };
        // The second pass copies what the writer appended during the first, so the writer's
        // catch-up has little left.
        match passive(c).and_then(|()| passive(c)) {
            Ok(()) => done.store(true, Ordering::Release),
            Err(e) => {
                tracing::debug!(error = %e, "a background checkpoint failed");
                conn = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The WAL header's checkpoint sequence number (bytes 12..16, big-endian), which SQLite
    /// increments each time the WAL starts over.
    fn wal_restarts(path: &std::path::Path) -> u32 {
        let header = std::fs::read(path).unwrap();
        u32::from_be_bytes(header[12..16].try_into().unwrap())
    }

    #[test]
    fn the_wal_starts_over_after_each_round_without_the_writer_checkpointing_at_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let wal = dir.path().join("c.db-wal");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
                 PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE t (id INTEGER PRIMARY KEY, pad BLOB NOT NULL)",
            )
            .unwrap();
        let insert = || {
            writer
                .execute("INSERT INTO t (pad) VALUES (zeroblob(3000))", [])
                .unwrap()
        };
        // Without checkpoints the WAL never starts over.
        for _ in 0..50 {
            insert();
        }
        let never = wal_restarts(&wal);
        for _ in 0..50 {
            insert();
        }
        assert_eq!(wal_restarts(&wal), never);

        // With the thread: after each of its rounds the writer catches up between two
        // transactions, and the next one starts the WAL over.
        let checkpoints = Checkpoints::start(path.clone(), Duration::from_secs(5));
        let (mut rows, mut rounds) = (100i64, 0);
        let started = std::time::Instant::now();
        while rounds < 3 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{rounds} rounds"
            );
            insert();
            rows += 1;
            if checkpoints.catch_up(&writer) {
                let before = wal_restarts(&wal);
                insert();
                rows += 1;
                assert_eq!(wal_restarts(&wal), before + 1, "round {rounds}");
                rounds += 1;
            }
        }
        drop(checkpoints);
        let kept: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, rows);
    }
}
