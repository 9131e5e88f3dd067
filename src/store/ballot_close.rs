//! A ballot's close written in bulk (issue 20: a million entries within the close's budget).
//!
//! Every effect of a close goes in ONE transaction that first moves the ballot's row from
//! `closing` under this owner's lease to `published` (`MARK`): a process killed before the
//! commit wrote nothing, and a second closer finds the status moved and writes nothing. The
//! rows go many to a statement instead of one statement per row (which paid a round trip or a
//! statement execution per row, six per placed entry):
//! - PostgreSQL: `COPY` of the seats and of the outcomes (into a temporary table joined once
//!   to the entries), `INSERT ... SELECT` of the rest from the entries, one `UPDATE ... FROM
//!   UNNEST` of each withheld slot (`PG_ROWS_PER_STATEMENT` rows to a statement);
//! - SQLite: on the writer thread's connection (`lite_writer`, no wait for the write lock),
//!   cached prepared multi-row inserts in chunks (`in_chunks`, far under SQLite's parameter
//!   limit) and cached keyed updates, one execution per row (a few microseconds each there).
//!
//! The guarantees stay the database's: seats are added to `slots.taken` per slot, so the
//! `CHECK (taken <= capacity)` refuses a slot over capacity, `appointments_one_active` a second
//! active appointment of a citizen for the service, `UNIQUE (tracking_code, notice_key)` a
//! second notice; any refusal rolls the whole close back. The entries' outcomes are updated by
//! key and the count of rows changed is checked, so an outcome cannot silently go missing.
//! The seats left over go to the waitlist first, then back to first-come booking
//! (`release_leftovers_*`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::types::ToSql;
use rusqlite::{params, params_from_iter, Connection};

use super::applicants::lite_write_large;
use super::ballots::{BallotRow, WithheldSlot};
use super::lite_writer::{in_chunks, placeholders};
use super::{Store, StoreError};
use crate::booking::PartOfDay;

/// An entry the close placed: its outcome, from which its appointment, notice and event are
/// written in SQL (the entry's row holds the citizen, application and payment).
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedOutcome {
    /// Where the entry's row is: SQLite's `rowid` (`CloseEntryRow::row`).
    pub row: i64,
    pub entry_key: String,
    pub tracking_code: String,
    pub slot_id: i64,
    pub office_id: String,
    pub start_at: i64,
    pub distance_km: f64,
    pub cost_m: i64,
    pub part_of_day_kept: bool,
}

/// An entry the close did not place.
#[derive(Debug, Clone, PartialEq)]
pub struct UnplacedOutcome {
    pub row: i64,
    pub entry_key: String,
    pub reason: &'static str,
    /// `None`: the entry took no part (its citizen had an appointment already).
    pub waitlist_rank: Option<i32>,
}

/// The notices' text, assembled in SQL per placed entry: `head(start) || office ||
/// before_code || tracking code || end`. The head holds the Persian date and time, so there
/// is one per slot start (a few hundred in a 30-day ballot), not one text per entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SmsTemplate {
    /// (slot start, the text before the office id), one per start of a placement.
    pub heads: Vec<(i64, String)>,
    pub before_code: &'static str,
    pub end: &'static str,
}

/// Everything a close writes, in its one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosePublish {
    /// The ballot's withheld slots as the close read them (`ballot_seats` keeps those with
    /// seats; PostgreSQL's close updates each of them once). Shared with the write begun
    /// while the close was decided ([`Store::begin_ballot_publish`]).
    pub seats: Arc<Vec<WithheldSlot>>,
    pub placed: Vec<PlacedOutcome>,
    pub unplaced: Vec<UnplacedOutcome>,
    pub sms: SmsTemplate,
    pub offices_json: String,
    pub results_json: String,
}

/// How long each write of a close's transaction took, in order, then its commit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishTimes {
    /// The writes made while the close was decided ([`Store::begin_ballot_publish`]): off
    /// the close's critical path, except for any wait for them counted in `steps`.
    pub beside: Vec<(&'static str, Duration)>,
    pub steps: Vec<(&'static str, Duration)>,
    /// On SQLite this includes the wait for the writer thread's queue.
    pub commit: Duration,
}

impl PublishTimes {
    pub fn written(&self) -> Duration {
        self.steps.iter().map(|(_, d)| *d).sum()
    }
}

/// Rows per statement on PostgreSQL: each column is one array parameter, so the limit is
/// memory (a chunk's arrays are encoded whole), not the parameter count.
const PG_ROWS_PER_STATEMENT: usize = 50_000;

const MARK: &str = "UPDATE ballots SET status = 'published', lease_owner = NULL, lease_until = NULL, offices_json = $3, results_json = $4, published_at = $5 \
     WHERE id = $1 AND status = 'closing' AND lease_owner = $2";
const BUMP: &str = "UPDATE config_version SET version = version + 1 WHERE id = 1";
/// The notices' key: one per appointment and ballot.
fn notice_key(ballot_id: &str) -> String {
    format!("ballot:{ballot_id}")
}

/// Seats taken per slot, ascending by slot id (the order rows are locked in).
fn seats_per_slot(placed: &[PlacedOutcome]) -> BTreeMap<i64, i64> {
    let mut taken = BTreeMap::new();
    for a in placed {
        *taken.entry(a.slot_id).or_insert(0) += 1;
    }
    taken
}

struct Stopwatch {
    last: Instant,
    steps: Vec<(&'static str, Duration)>,
}

impl Stopwatch {
    fn start() -> Self {
        Self {
            last: Instant::now(),
            steps: Vec::new(),
        }
    }

    fn lap(&mut self, step: &'static str) {
        let now = Instant::now();
        self.steps.push((step, now - self.last));
        self.last = now;
    }
}

/// One column of `rows`, the array a PostgreSQL `UNNEST` parameter binds.
fn column<'r, R, T>(rows: &'r [R], f: impl Fn(&'r R) -> T) -> Vec<T> {
    rows.iter().map(f).collect()
}

fn require_changed(what: &str, changed: u64, expected: usize) -> Result<(), StoreError> {
    if changed == expected as u64 {
        Ok(())
    } else {
        Err(StoreError::corrupt(format!(
            "the close changed {changed} {what} rows, expected {expected}"
        )))
    }
}

/// A close's write begun while the close is decided ([`Store::begin_ballot_publish`]).
pub struct PublishStart(Begun);

enum Begun {
    /// SQLite: nothing (the writer thread writes the close at once, in its transaction).
    Nothing,
    /// PostgreSQL: the transaction, the seats recorded in it, on a task of its own.
    Postgres(tokio::task::JoinHandle<Result<PgBegun, StoreError>>),
}

/// A close that stops before its publish (an error, a panic, the process stopping) stops
/// the begun copy too: its transaction rolls back now, not when the copy ends, and the next
/// attempt does not wait behind its uncommitted seats.
impl Drop for PublishStart {
    fn drop(&mut self) {
        if let Begun::Postgres(task) = &self.0 {
            task.abort();
        }
    }
}

struct PgBegun {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    steps: Vec<(&'static str, Duration)>,
}

impl Store {
    /// Begins a close's write while the close is being decided, with what is known before
    /// it: on PostgreSQL the transaction opens and the seats the close read (`ballot_seats`,
    /// a row per withheld slot with seats, 1.5 M at national scale) are copied into it on a
    /// task of their own, so the server records them while the allocator runs (they were
    /// 6 s of the close's writes after it). Nothing is visible until the publish commits;
    /// the lease is checked then, by the publish's `MARK`, as before (this takes no lock a
    /// lease takeover or an entry batch waits for: `ballot_seats`' foreign key locks the
    /// ballot's row `FOR KEY SHARE` only). An error here is the publish's error. SQLite:
    /// nothing begins (its close is one call on the writer thread).
    pub fn begin_ballot_publish(
        &self,
        ballot_id: &str,
        seats: Arc<Vec<WithheldSlot>>,
    ) -> PublishStart {
        match self {
            Store::Postgres(pool) => {
                let (pool, ballot_id) = (pool.clone(), ballot_id.to_string());
                PublishStart(Begun::Postgres(tokio::spawn(async move {
                    begin_pg(&pool, &ballot_id, &seats).await
                })))
            }
            Store::Sqlite(_) => PublishStart(Begun::Nothing),
        }
    }

    /// Publishes a ballot's close: every effect in one transaction, only while `owner` holds
    /// the lease (`Ok(None)`: another process published it, nothing written). Returns how
    /// long each write and the commit took.
    pub async fn publish_ballot(
        &self,
        b: &BallotRow,
        owner: &str,
        begun: PublishStart,
        p: ClosePublish,
        now: i64,
    ) -> Result<Option<PublishTimes>, StoreError> {
        match self {
            Store::Postgres(_) => publish_pg(begun, b, owner, &p, now).await,
            Store::Sqlite(pool) => {
                let (id, service, owner) = (b.id.clone(), b.service.clone(), owner.to_string());
                let submitted = Instant::now();
                let steps = lite_write_large(pool, move |conn| {
                    publish_lite(conn, &id, &service, &owner, &p, now)
                })
                .await?;
                Ok(steps.map(|steps| {
                    let commit = submitted
                        .elapsed()
                        .saturating_sub(steps.iter().map(|s| s.1).sum());
                    PublishTimes {
                        beside: Vec::new(),
                        steps,
                        commit,
                    }
                }))
            }
        }
    }
}

/// The waitlist's share of a close (issue 21), then the rest back to first-come booking:
/// 1. the waiting entries (for the ballot's service) of the entrants it placed are fulfilled,
///    `booked` with the ballot's tracking code, as a direct booking does (after the outcomes,
///    which give the entries their tracking codes);
/// 2. of each leftover slot not yet started, as many seats as waiting entries fit it (office,
///    dates, part of the day), at most its free seats, are kept taken by `seat_releases` due at
///    once: the booking writer's `ReleaseSeat` then hands each to the earliest-joined waiter
///    it fits, or frees it (`Reservations::ballot_tick` drains them, the sweeper finishes);
/// 3. the ballot's slots lose the withholding.
fn release_leftovers_lite(
    conn: &Connection,
    ballot_id: &str,
    service: &str,
    now: i64,
) -> Result<(), StoreError> {
    let sql = |pg: &str| super::sqlite_sql(pg);
    let fulfilled = conn
        .prepare_cached(&sql(FULFIL_WAITERS))?
        .execute(params![ballot_id, service, now])?;
    if fulfilled > 0 {
        conn.prepare_cached(&sql(&fulfil_events_sql()))?
            .execute(params![ballot_id, now])?;
        conn.prepare_cached(&sql(&fulfilled_offices_sql()))?
            .execute([ballot_id])?;
    }
    let fits = conn
        .prepare_cached(&sql(WAITER_FITS))?
        .query_map(params![ballot_id, service, now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<Vec<WaiterFit>, _>>()?;
    let kept = seats_for_waiters(&fits);
    let mut take = conn.prepare_cached(&sql(KEEP_TAKEN))?;
    let mut pend = conn.prepare_cached(&sql(PEND_RELEASES))?;
    for &(slot_id, seats) in &kept {
        take.execute(params![slot_id, seats])?;
        pend.execute(params![slot_id, now, now, seats])?;
    }
    if let Some(payload) = kept_payload(&kept) {
        conn.prepare_cached(&sql(KEPT_EVENT))?.execute(params![
            now,
            notice_key(ballot_id),
            ballot_id,
            payload
        ])?;
    }
    conn.prepare_cached(&sql(RELEASE))?.execute([ballot_id])?;
    Ok(())
}

const RELEASE: &str = "UPDATE slots SET opens_at = NULL, ballot_id = NULL WHERE ballot_id = $1";

/// The waiting entries for the service ($2) of the entrants the ballot ($1) placed, fulfilled
/// at $3 with their placement's tracking code.
/// Driven by the waiting entries, each probing its citizen's ballot entry by primary key (an
/// `IN (SELECT ...)` read the whole ballot's placed entries first: a million rows at random).
const FULFIL_WAITERS: &str = "UPDATE waitlist_entries SET status = 'booked', updated_at = $3, \
     tracking_code = (SELECT be.tracking_code FROM ballot_entries be \
       WHERE be.ballot_id = $1 AND be.national_code = waitlist_entries.national_code) \
     WHERE service = $2 AND status = 'waiting' AND EXISTS \
       (SELECT 1 FROM ballot_entries be WHERE be.ballot_id = $1 AND be.national_code = waitlist_entries.national_code \
        AND be.tracking_code IS NOT NULL)";

/// The entries [`FULFIL_WAITERS`] ended: booked with a tracking code of the ballot ($1).
const FULFILLED: &str = "SELECT w.id FROM waitlist_entries w JOIN ballot_entries be \
     ON be.ballot_id = $1 AND be.national_code = w.national_code AND be.tracking_code = w.tracking_code \
     WHERE w.status = 'booked'";

/// A `waitlist_fulfilled` event (at $2) per entry fulfilled.
fn fulfil_events_sql() -> String {
    format!(
        "INSERT INTO events (at, actor, kind, subject, payload_json) \
         SELECT $2, w.national_code, 'waitlist_fulfilled', w.id, \
           '{{\"tracking_code\":\"' || w.tracking_code || '\",\"ballot_id\":\"' || $1 || '\"}}' \
         FROM waitlist_entries w WHERE w.id IN ({FULFILLED})"
    )
}

/// The fulfilled entries leave the office index of waiters.
fn fulfilled_offices_sql() -> String {
    format!("DELETE FROM waitlist_offices WHERE entry_id IN ({FULFILLED})")
}

/// Per leftover slot of the ballot ($1) not yet started ($3) and part of the day: its free
/// seats and the waiting entries for the service ($2) whose offices and dates fit it.
const WAITER_FITS: &str = "SELECT s.id, s.start_at, s.capacity - s.taken, e.part_of_day, COUNT(*) \
     FROM slots s JOIN waitlist_offices o ON o.office_id = s.office_id \
     JOIN waitlist_entries e ON e.id = o.entry_id \
     WHERE s.ballot_id = $1 AND s.taken < s.capacity AND s.start_at > $3 \
       AND e.status = 'waiting' AND e.service = $2 \
       AND e.earliest_at <= s.start_at AND s.start_at < e.latest_at \
     GROUP BY s.id, s.start_at, s.capacity, s.taken, e.part_of_day \
     ORDER BY s.id";

/// (slot id, start, free seats, part of the day, waiters): a row of [`WAITER_FITS`].
type WaiterFit = (i64, i64, i64, String, i64);

const KEEP_TAKEN: &str = "UPDATE slots SET taken = taken + $2 WHERE id = $1";

/// $4 seat releases of slot $1 due at $2, for the booking writer to hand over.
const PEND_RELEASES: &str =
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $4) \
     INSERT INTO seat_releases (slot_id, release_at, status, created_at) \
     SELECT $1, $2, 'pending', $3 FROM n";

const KEPT_EVENT: &str = "INSERT INTO events (at, actor, kind, subject, payload_json) \
     VALUES ($1, $2, 'ballot_leftovers_to_waitlist', $3, $4)";

/// How many leftover seats of each slot to keep for the waiters: as many as fit it (by office,
/// dates and part of the day), at most its free seats. Each kept seat is then offered like any
/// freed seat, so a waiter the slot fits is never passed over for first-come booking; a kept
/// seat no waiter takes in the end (they took another) is freed by the writer at once.
/// `fits` sorted by slot.
fn seats_for_waiters(fits: &[WaiterFit]) -> Vec<(i64, i64)> {
    let mut kept: Vec<(i64, i64)> = Vec::new();
    for (slot_id, start_at, free, part, waiters) in fits {
        // An unknown part (the CHECK allows none) is counted: the writer decides.
        if !PartOfDay::parse(part).is_none_or(|p| p.fits(*start_at)) {
            continue;
        }
        match kept.last_mut() {
            Some((id, n)) if id == slot_id => *n = (*n + waiters).min(*free),
            _ => kept.push((*slot_id, (*waiters).min(*free))),
        }
    }
    kept.retain(|k| k.1 > 0);
    kept
}

/// The `ballot_leftovers_to_waitlist` event's payload, if any seat was kept.
fn kept_payload(kept: &[(i64, i64)]) -> Option<String> {
    let seats: i64 = kept.iter().map(|k| k.1).sum();
    (seats > 0).then(|| serde_json::json!({ "slots": kept.len(), "seats": seats }).to_string())
}

/// The rows the close inserts from the placed entries go in tracking-code order: the unique
/// indexes on the (random) codes (`appointments`' key, `outbox`'s code and notice key,
/// `events_subject`) then fill in order instead of at random pages of indexes larger than
/// the cache.
///
/// The appointments of the placed entries, from their rows (after the outcomes): $1 ballot,
/// $2 service, $3 now; `{entries}` the entries' table ([`LITE_ENTRIES`] on SQLite).
fn appointments_from_entries(entries: &str) -> String {
    format!(
        "INSERT INTO appointments (tracking_code, slot_id, office_id, start_at, application_id, national_code, service, payment_id, status, created_at, updated_at, reschedules) \
         SELECT tracking_code, slot_id, office_id, start_at, application_id, national_code, $2, payment_id, 'booked', $3, $3, 0 \
         FROM {entries} WHERE ballot_id = $1 AND tracking_code IS NOT NULL ORDER BY tracking_code"
    )
}

/// SQLite reads the placed entries by a scan of the table in rowid order: through the key
/// index (its plan otherwise) every row is a random page of a table larger than the page
/// cache (measured at 1 M entries: 45 s for the appointments alone). The other ballots'
/// entries are scanned too, a sequential read.
const LITE_ENTRIES: &str = "ballot_entries NOT INDEXED";

/// The notices of the placed entries: $1 ballot, $2 notice key, $3 and $4 the template's
/// text before the code and its end, $5 now; `{entries}` the entries' table as `e`, `{heads}`
/// the (start_at, head) rows as `h`.
fn outbox_from_entries(entries: &str, heads: &str) -> String {
    format!(
        "INSERT INTO outbox (national_code, application_id, tracking_code, notice_key, channel, body, created_at) \
         SELECT e.national_code, e.application_id, e.tracking_code, $2, 'sms', h.head || e.office_id || $3 || e.tracking_code || $4, $5 \
         FROM {entries} JOIN {heads} ON h.start_at = e.start_at \
         WHERE e.ballot_id = $1 AND e.tracking_code IS NOT NULL ORDER BY e.tracking_code"
    )
}

/// The `booked_by_ballot` events (what `/v1/status` shows): $1 ballot, $2 now, $3 actor;
/// `{object}` the backend's JSON object constructor.
fn events_from_entries(entries: &str, object: &str, ballot: &str) -> String {
    format!(
        "INSERT INTO events (at, actor, kind, subject, payload_json) \
         SELECT $2, $3, 'booked_by_ballot', tracking_code, \
           {object}('application_id', application_id, 'ballot_id', {ballot}, 'office_id', office_id, 'slot_id', slot_id) \
         FROM {entries} WHERE ballot_id = $1 AND tracking_code IS NOT NULL ORDER BY tracking_code"
    )
}

/// SQLite's close, in a savepoint of the writer thread's transaction (any error rolls it
/// back). `None`: the lease was not ours any more, nothing written.
fn publish_lite(
    conn: &Connection,
    ballot_id: &str,
    service: &str,
    owner: &str,
    p: &ClosePublish,
    now: i64,
) -> Result<Option<Vec<(&'static str, Duration)>>, StoreError> {
    let mut watch = Stopwatch::start();
    let sql = |pg: &str| super::sqlite_sql(pg);
    let marked = conn.prepare_cached(&sql(MARK))?.execute(params![
        ballot_id,
        owner,
        p.offices_json,
        p.results_json,
        now
    ])?;
    if marked == 0 {
        return Ok(None);
    }
    watch.lap("mark");
    let seats: Vec<&WithheldSlot> = p.seats.iter().filter(|s| s.seats > 0).collect();
    in_chunks(&seats, |chunk| {
        let mut q = conn.prepare_cached(&format!(
            "INSERT INTO ballot_seats (ballot_id, slot_id, office_id, start_at, seats) VALUES {}",
            placeholders(chunk.len(), 5)
        ))?;
        q.execute(params_from_iter(chunk.iter().flat_map(|s| {
            [
                &ballot_id as &dyn ToSql,
                &s.slot_id,
                &s.office_id,
                &s.start_at,
                &s.seats,
            ]
        })))?;
        Ok(())
    })?;
    watch.lap("seats");
    write_outcomes_lite(conn, ballot_id, p)?;
    watch.lap("outcomes");
    let placed = p.placed.len();
    let n = conn
        .prepare_cached(&sql(&appointments_from_entries(LITE_ENTRIES)))?
        .execute(params![ballot_id, service, now])?;
    require_changed("appointment", n as u64, placed)?;
    watch.lap("appointments");
    let taken = seats_per_slot(&p.placed);
    let mut q = conn.prepare_cached("UPDATE slots SET taken = taken + ?2 WHERE id = ?1")?;
    let mut changed = 0;
    for (slot_id, seats) in &taken {
        changed += q.execute(params![slot_id, seats])? as u64;
    }
    require_changed("slot", changed, taken.len())?;
    watch.lap("seats taken");
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS ballot_sms_heads (start_at INTEGER PRIMARY KEY, head TEXT NOT NULL); \
         DELETE FROM temp.ballot_sms_heads;",
    )?;
    let mut head = conn.prepare_cached("INSERT INTO temp.ballot_sms_heads VALUES (?1, ?2)")?;
    for (start_at, text) in &p.sms.heads {
        head.execute(params![start_at, text])?;
    }
    let n = conn
        .prepare(&sql(&outbox_from_entries(
            "ballot_entries AS e NOT INDEXED",
            "temp.ballot_sms_heads h",
        )))?
        .execute(params![
            ballot_id,
            notice_key(ballot_id),
            p.sms.before_code,
            p.sms.end,
            now
        ])?;
    conn.execute_batch("DROP TABLE temp.ballot_sms_heads")?;
    require_changed("notice", n as u64, placed)?;
    watch.lap("outbox");
    let n = conn
        .prepare_cached(&sql(&events_from_entries(
            LITE_ENTRIES,
            "json_object",
            "$1",
        )))?
        .execute(params![ballot_id, now, format!("ballot:{ballot_id}")])?;
    require_changed("event", n as u64, placed)?;
    watch.lap("events");
    release_leftovers_lite(conn, ballot_id, service, now)?;
    watch.lap("release leftovers");
    // Other processes reload their availability view (seats taken, leftovers back).
    conn.prepare_cached(BUMP)?.execute([])?;
    Ok(Some(watch.steps))
}

/// Each entry's outcome, one update per entry by rowid in rowid order: the table's pages are
/// visited in order, each once (by key, the updates wandered over a table larger than the
/// page cache). The key and ballot are checked too; every entry must be there.
fn write_outcomes_lite(
    conn: &Connection,
    ballot_id: &str,
    p: &ClosePublish,
) -> Result<(), StoreError> {
    let mut placed: Vec<&PlacedOutcome> = p.placed.iter().collect();
    placed.sort_unstable_by_key(|a| a.row);
    let mut q = conn.prepare_cached(
        "UPDATE ballot_entries SET tracking_code = ?4, slot_id = ?5, office_id = ?6, start_at = ?7, distance_km = ?8, cost_m = ?9, part_of_day_kept = ?10 \
         WHERE rowid = ?1 AND ballot_id = ?2 AND entry_key = ?3",
    )?;
    let mut changed = 0;
    for a in placed {
        changed += q.execute(params![
            a.row,
            ballot_id,
            a.entry_key,
            a.tracking_code,
            a.slot_id,
            a.office_id,
            a.start_at,
            a.distance_km,
            a.cost_m,
            a.part_of_day_kept
        ])? as u64;
    }
    require_changed("placed entry", changed, p.placed.len())?;
    let mut unplaced: Vec<&UnplacedOutcome> = p.unplaced.iter().collect();
    unplaced.sort_unstable_by_key(|u| u.row);
    let mut q = conn.prepare_cached(
        "UPDATE ballot_entries SET reason = ?4, waitlist_rank = ?5 WHERE rowid = ?1 AND ballot_id = ?2 AND entry_key = ?3",
    )?;
    let mut changed = 0;
    for u in unplaced {
        changed += q.execute(params![
            u.row,
            ballot_id,
            u.entry_key,
            u.reason,
            u.waitlist_rank
        ])? as u64;
    }
    require_changed("unplaced entry", changed, p.unplaced.len())
}

/// PostgreSQL's close, begun beside the allocator: the transaction with the close's memory
/// setting and the seats copied into `ballot_seats`.
async fn begin_pg(
    pool: &sqlx::PgPool,
    ballot_id: &str,
    seats: &[WithheldSlot],
) -> Result<PgBegun, StoreError> {
    let mut tx = pool.begin().await?;
    // The close sorts a million rows per insert and hashes a million outcomes: with the
    // default 4 MB each spills to temporary files. For this transaction only.
    sqlx::query(CLOSE_WORK_MEM).execute(&mut *tx).await?;
    let mut watch = Stopwatch::start();
    let seats: Vec<&WithheldSlot> = seats.iter().filter(|s| s.seats > 0).collect();
    let n = copy_in(
        &mut tx,
        "COPY ballot_seats (ballot_id, slot_id, office_id, start_at, seats) FROM STDIN",
        &seats,
        |out, s| {
            copy_text(out, ballot_id);
            copy_fields(out, &[&s.slot_id as &dyn std::fmt::Display]);
            copy_text(out, &s.office_id);
            copy_fields(out, &[&s.start_at, &s.seats]);
        },
    )
    .await?;
    require_changed("seat", n, seats.len())?;
    watch.lap("seats");
    Ok(PgBegun {
        tx,
        steps: watch.steps,
    })
}

/// PostgreSQL's close: one transaction, begun by [`begin_pg`] with the seats (`COPY`). The
/// rows the close computed go by `COPY` too (the outcomes into a temporary table joined once
/// to the entries); the appointments, notices and events are `INSERT ... SELECT` from the
/// entries in tracking-code order (their unique indexes on the random codes are then filled
/// in order, not at random); each withheld slot is updated once, its seats taken and the
/// withholding lifted together (`fillfactor` and no index on `ballot_id`, migration 0017:
/// the update stays on the page).
async fn publish_pg(
    mut begun: PublishStart,
    b: &BallotRow,
    owner: &str,
    p: &ClosePublish,
    now: i64,
) -> Result<Option<PublishTimes>, StoreError> {
    let mut watch = Stopwatch::start();
    let Begun::Postgres(task) = std::mem::replace(&mut begun.0, Begun::Nothing) else {
        return Err(StoreError::corrupt(
            "a PostgreSQL close's write was not begun on PostgreSQL",
        ));
    };
    let PgBegun {
        mut tx,
        steps: beside,
    } = task
        .await
        .map_err(|e| StoreError::corrupt(format!("the close's seat copy stopped: {e}")))??;
    watch.lap("wait for the seats (copied beside the close)");
    let marked = sqlx::query(MARK)
        .bind(&b.id)
        .bind(owner)
        .bind(&p.offices_json)
        .bind(&p.results_json)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if marked == 0 {
        return Ok(None);
    }
    watch.lap("mark");
    write_outcomes_pg(&mut tx, &b.id, p).await?;
    watch.lap("outcomes");
    let placed = p.placed.len();
    let n = sqlx::query(&appointments_from_entries("ballot_entries"))
        .bind(&b.id)
        .bind(&b.service)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    require_changed("appointment", n, placed)?;
    watch.lap("appointments");
    let n = sqlx::query(&outbox_from_entries(
        "ballot_entries e",
        "UNNEST($6::bigint[], $7::text[]) AS h(start_at, head)",
    ))
    .bind(&b.id)
    .bind(notice_key(&b.id))
    .bind(p.sms.before_code)
    .bind(p.sms.end)
    .bind(now)
    .bind(column(&p.sms.heads, |h| h.0))
    .bind(column(&p.sms.heads, |h| h.1.as_str()))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    require_changed("notice", n, placed)?;
    watch.lap("outbox");
    let n = sqlx::query(&events_from_entries(
        "ballot_entries",
        "jsonb_build_object",
        "$1::text",
    ))
    .bind(&b.id)
    .bind(now)
    .bind(format!("ballot:{}", b.id))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    require_changed("event", n, placed)?;
    watch.lap("events");
    release_slots_pg(&mut tx, &b.id, &b.service, p, now).await?;
    watch.lap("slots: seats taken, leftovers released");
    // Other processes reload their availability view (seats taken, leftovers back).
    sqlx::query(BUMP).execute(&mut *tx).await?;
    watch.lap("config version");
    let committing = Instant::now();
    tx.commit().await?;
    Ok(Some(PublishTimes {
        beside,
        steps: watch.steps,
        commit: committing.elapsed(),
    }))
}

/// Memory per sort or hash of the close's statements on PostgreSQL (`SET LOCAL`).
const CLOSE_WORK_MEM: &str = "SET LOCAL work_mem = '256MB'";

/// Bytes of `COPY` text sent to the server at a time.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// `COPY ... FROM STDIN` (text format) of `rows`, each written by `row` as tab-separated
/// fields (each ends with a tab; the last is replaced by the line's end). Returns the rows
/// copied.
async fn copy_in<R>(
    tx: &mut sqlx::PgConnection,
    statement: &str,
    rows: &[R],
    row: impl Fn(&mut String, &R),
) -> Result<u64, StoreError> {
    let mut copy = tx.copy_in_raw(statement).await?;
    let mut out = String::with_capacity(COPY_CHUNK_BYTES + 4096);
    for r in rows {
        row(&mut out, r);
        out.pop();
        out.push('\n');
        if out.len() >= COPY_CHUNK_BYTES {
            copy.send(out.as_bytes()).await?;
            out.clear();
        }
    }
    if !out.is_empty() {
        copy.send(out.as_bytes()).await?;
    }
    Ok(copy.finish().await?)
}

/// A text field of a `COPY` line, escaped, then a tab.
fn copy_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\t');
}

/// Fields that need no escaping (numbers, booleans), each followed by a tab.
fn copy_fields(out: &mut String, fields: &[&dyn std::fmt::Display]) {
    use std::fmt::Write;
    for f in fields {
        let _ = write!(out, "{f}\t");
    }
}

/// A NULL field of a `COPY` line.
fn copy_null(out: &mut String) {
    out.push_str("\\N\t");
}

/// Each entry's outcome: every outcome copied into a temporary table, then one update of the
/// entries joined to it by key (a hash join over one pass of the table instead of a million
/// index probes); every entry must be there.
async fn write_outcomes_pg(
    tx: &mut sqlx::PgConnection,
    ballot_id: &str,
    p: &ClosePublish,
) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TEMPORARY TABLE ballot_outcomes (entry_key TEXT COLLATE \"C\" NOT NULL, tracking_code TEXT, slot_id BIGINT, \
         office_id TEXT, start_at BIGINT, distance_km DOUBLE PRECISION, cost_m BIGINT, part_of_day_kept BOOLEAN, \
         reason TEXT, waitlist_rank INTEGER) ON COMMIT DROP",
    )
    .execute(&mut *tx)
    .await?;
    const COPY: &str = "COPY ballot_outcomes FROM STDIN";
    let mut n = copy_in(tx, COPY, &p.placed, |out, a| {
        copy_text(out, &a.entry_key);
        copy_text(out, &a.tracking_code);
        copy_fields(out, &[&a.slot_id]);
        copy_text(out, &a.office_id);
        copy_fields(
            out,
            &[&a.start_at, &a.distance_km, &a.cost_m, &a.part_of_day_kept],
        );
        copy_null(out);
        copy_null(out);
    })
    .await?;
    n += copy_in(tx, COPY, &p.unplaced, |out, u| {
        copy_text(out, &u.entry_key);
        for _ in 0..7 {
            copy_null(out);
        }
        copy_text(out, u.reason);
        match u.waitlist_rank {
            Some(rank) => copy_fields(out, &[&rank]),
            None => copy_null(out),
        }
    })
    .await?;
    let outcomes = p.placed.len() + p.unplaced.len();
    require_changed("outcome", n, outcomes)?;
    sqlx::query("ANALYZE ballot_outcomes")
        .execute(&mut *tx)
        .await?;
    let changed = sqlx::query(
        "UPDATE ballot_entries AS e SET tracking_code = t.tracking_code, slot_id = t.slot_id, office_id = t.office_id, \
         start_at = t.start_at, distance_km = t.distance_km, cost_m = t.cost_m, part_of_day_kept = t.part_of_day_kept, \
         reason = t.reason, waitlist_rank = t.waitlist_rank \
         FROM ballot_outcomes t WHERE e.ballot_id = $1 AND e.entry_key = t.entry_key",
    )
    .bind(ballot_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    require_changed("entry", changed, outcomes)
}

/// Every withheld slot of the ballot updated once: the seats the close placed in it and those
/// kept for the waitlist added to `taken` (the `CHECK` refuses a slot over capacity), the
/// withholding lifted. The waitlist's share is computed first, as in
/// [`release_leftovers_lite`] (the fulfilled waiters, then the waiters each leftover slot
/// fits), from the free seats less the ones placed.
async fn release_slots_pg(
    tx: &mut sqlx::PgConnection,
    ballot_id: &str,
    service: &str,
    p: &ClosePublish,
    now: i64,
) -> Result<(), StoreError> {
    let fulfilled = sqlx::query(FULFIL_WAITERS)
        .bind(ballot_id)
        .bind(service)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if fulfilled > 0 {
        sqlx::query(&fulfil_events_sql())
            .bind(ballot_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&fulfilled_offices_sql())
            .bind(ballot_id)
            .execute(&mut *tx)
            .await?;
    }
    let mut taken = seats_per_slot(&p.placed);
    // The slots' rows are not updated yet: their free seats less those placed.
    let fits: Vec<WaiterFit> = sqlx::query_as(WAITER_FITS)
        .bind(ballot_id)
        .bind(service)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
    let fits: Vec<WaiterFit> = fits
        .into_iter()
        .map(|(id, start, free, part, waiters)| {
            let free = free - taken.get(&id).copied().unwrap_or(0);
            (id, start, free, part, waiters)
        })
        .filter(|f| f.2 > 0)
        .collect();
    let kept = seats_for_waiters(&fits);
    for &(slot_id, seats) in &kept {
        *taken.entry(slot_id).or_insert(0) += seats;
    }
    let mut slots: Vec<i64> = p.seats.iter().map(|s| s.slot_id).collect();
    slots.sort_unstable();
    let mut changed = 0;
    for chunk in slots.chunks(PG_ROWS_PER_STATEMENT) {
        let added = column(chunk, |id| taken.get(id).copied().unwrap_or(0));
        changed += sqlx::query(
            "UPDATE slots AS s SET taken = s.taken + t.seats, opens_at = NULL, ballot_id = NULL \
             FROM UNNEST($1::bigint[], $2::bigint[]) AS t(id, seats) WHERE s.id = t.id AND s.ballot_id = $3",
        )
        .bind(chunk)
        .bind(&added)
        .bind(ballot_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    require_changed("slot", changed, slots.len())?;
    if !kept.is_empty() {
        let (slots, seats): (Vec<i64>, Vec<i64>) = kept.iter().copied().unzip();
        sqlx::query(
            "INSERT INTO seat_releases (slot_id, release_at, status, created_at) \
             SELECT k.id, $3, 'pending', $3 FROM UNNEST($1::bigint[], $2::bigint[]) AS k(id, seats), \
             generate_series(1, k.seats)",
        )
        .bind(&slots)
        .bind(&seats)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(payload) = kept_payload(&kept) {
        sqlx::query(KEPT_EVENT)
            .bind(now)
            .bind(notice_key(ballot_id))
            .bind(ballot_id)
            .bind(payload)
            .execute(&mut *tx)
            .await?;
    }
    // A slot withheld after the close read the ballot's slots (none: a closing ballot
    // withholds no more) would otherwise stay withheld.
    sqlx::query(RELEASE)
        .bind(ballot_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
