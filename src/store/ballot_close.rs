//! A ballot's close written in bulk (issue 20: a million entries within the close's budget).
//!
//! Every effect of a close goes in ONE transaction that first moves the ballot's row from
//! `closing` under this owner's lease to `published` (`MARK`): a process killed before the
//! commit wrote nothing, and a second closer finds the status moved and writes nothing. The
//! rows go many to a statement instead of one statement per row (which paid a round trip or a
//! statement execution per row, six per placed entry):
//! - PostgreSQL: `INSERT ... SELECT FROM UNNEST($1::text[], ...)` and `UPDATE ... FROM UNNEST`,
//!   `PG_ROWS_PER_STATEMENT` rows to a statement;
//! - SQLite: on the writer thread's connection (`lite_writer`, no wait for the write lock),
//!   cached prepared multi-row inserts in chunks (`in_chunks`, far under SQLite's parameter
//!   limit) and cached keyed updates, one execution per row (a few microseconds each there).
//!
//! The guarantees stay the database's: seats are added to `slots.taken` per slot, so the
//! `CHECK (taken <= capacity)` refuses a slot over capacity, `appointments_one_active` a second
//! active appointment of a citizen for the service, `UNIQUE (tracking_code, notice_key)` a
//! second notice; any refusal rolls the whole close back. The entries' outcomes are updated by
//! key and the count of rows changed is checked, so an outcome cannot silently go missing.
//! The seats left over go back to first-come booking in one separate statement
//! (`release_leftovers_*`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rusqlite::types::ToSql;
use rusqlite::{params, params_from_iter, Connection};

use super::applicants::lite_write;
use super::ballots::{BallotRow, WithheldSlot};
use super::lite_writer::{in_chunks, placeholders};
use super::{Store, StoreError};

/// An entry the close placed: its appointment (with its SMS) and its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct BallotAppointment {
    pub national_code: String,
    pub tracking_code: String,
    pub slot_id: i64,
    pub office_id: String,
    pub start_at: i64,
    pub application_id: String,
    pub payment_id: String,
    pub notice: String,
    pub distance_km: f64,
    pub cost_m: i64,
    pub part_of_day_kept: bool,
}

/// An entry the close did not place.
#[derive(Debug, Clone, PartialEq)]
pub struct BallotUnplaced {
    pub national_code: String,
    pub reason: String,
    /// `None`: the entry took no part (its citizen had an appointment already).
    pub waitlist_rank: Option<i32>,
}

/// Everything a close writes, in its one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosePublish {
    pub seats: Vec<WithheldSlot>,
    pub appointments: Vec<BallotAppointment>,
    pub unplaced: Vec<BallotUnplaced>,
    pub offices_json: String,
    pub results_json: String,
}

/// How long each write of a close's transaction took, in order, then its commit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishTimes {
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

/// The `booked_by_ballot` event's payload (what `/v1/status` shows of it).
fn event_payload(ballot_id: &str, a: &BallotAppointment) -> String {
    serde_json::json!({ "ballot_id": ballot_id, "slot_id": a.slot_id, "office_id": a.office_id, "application_id": a.application_id }).to_string()
}

/// Seats taken per slot, ascending by slot id (the order rows are locked in).
fn seats_per_slot(appointments: &[BallotAppointment]) -> BTreeMap<i64, i64> {
    let mut taken = BTreeMap::new();
    for a in appointments {
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

impl Store {
    /// Publishes a ballot's close: every effect in one transaction, only while `owner` holds
    /// the lease (`Ok(None)`: another process published it, nothing written). Returns how
    /// long each write and the commit took.
    pub async fn publish_ballot(
        &self,
        b: &BallotRow,
        owner: &str,
        p: ClosePublish,
        now: i64,
    ) -> Result<Option<PublishTimes>, StoreError> {
        match self {
            Store::Postgres(pool) => publish_pg(pool, b, owner, &p, now).await,
            Store::Sqlite(pool) => {
                let (id, service, owner) = (b.id.clone(), b.service.clone(), owner.to_string());
                let submitted = Instant::now();
                let steps = lite_write(pool, move |conn| {
                    publish_lite(conn, &id, &service, &owner, &p, now)
                })
                .await?;
                Ok(steps.map(|steps| {
                    let commit = submitted
                        .elapsed()
                        .saturating_sub(steps.iter().map(|s| s.1).sum());
                    PublishTimes { steps, commit }
                }))
            }
        }
    }
}

/// The seats a ballot still withholds go back to first-come booking (its slots lose the
/// withholding). One statement of its own: what happens to leftovers may change.
fn release_leftovers_lite(conn: &Connection, ballot_id: &str) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE slots SET opens_at = NULL, ballot_id = NULL WHERE ballot_id = ?1")?
        .execute([ballot_id])?;
    Ok(())
}

/// See [`release_leftovers_lite`].
async fn release_leftovers_pg(
    tx: &mut sqlx::PgConnection,
    ballot_id: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE slots SET opens_at = NULL, ballot_id = NULL WHERE ballot_id = $1")
        .bind(ballot_id)
        .execute(tx)
        .await?;
    Ok(())
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
    let marked = conn
        .prepare_cached(&super::sqlite_sql(MARK))?
        .execute(params![
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
    in_chunks(&p.seats, |chunk| {
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
    let (booked, zero) = ("booked", 0i64);
    in_chunks(&p.appointments, |chunk| {
        let mut q = conn.prepare_cached(&format!(
            "INSERT INTO appointments (tracking_code, slot_id, office_id, start_at, application_id, national_code, service, payment_id, status, created_at, updated_at, reschedules) VALUES {}",
            placeholders(chunk.len(), 12)
        ))?;
        q.execute(params_from_iter(chunk.iter().flat_map(|a| {
            [
                &a.tracking_code as &dyn ToSql,
                &a.slot_id,
                &a.office_id,
                &a.start_at,
                &a.application_id,
                &a.national_code,
                &service,
                &a.payment_id,
                &booked,
                &now,
                &now,
                &zero,
            ]
        })))?;
        Ok(())
    })?;
    watch.lap("appointments");
    let taken = seats_per_slot(&p.appointments);
    let mut q = conn.prepare_cached("UPDATE slots SET taken = taken + ?2 WHERE id = ?1")?;
    let mut changed = 0;
    for (slot_id, seats) in &taken {
        changed += q.execute(params![slot_id, seats])? as u64;
    }
    require_changed("slot", changed, taken.len())?;
    watch.lap("seats taken");
    let (key, sms) = (notice_key(ballot_id), "sms");
    in_chunks(&p.appointments, |chunk| {
        let mut q = conn.prepare_cached(&format!(
            "INSERT INTO outbox (national_code, application_id, tracking_code, notice_key, channel, body, created_at) VALUES {}",
            placeholders(chunk.len(), 7)
        ))?;
        q.execute(params_from_iter(chunk.iter().flat_map(|a| {
            [
                &a.national_code as &dyn ToSql,
                &a.application_id,
                &a.tracking_code,
                &key,
                &sms,
                &a.notice,
                &now,
            ]
        })))?;
        Ok(())
    })?;
    watch.lap("outbox");
    let (actor, kind) = (format!("ballot:{ballot_id}"), "booked_by_ballot");
    in_chunks(&p.appointments, |chunk| {
        let payloads: Vec<String> = chunk.iter().map(|a| event_payload(ballot_id, a)).collect();
        let mut q = conn.prepare_cached(&format!(
            "INSERT INTO events (at, actor, kind, subject, payload_json) VALUES {}",
            placeholders(chunk.len(), 5)
        ))?;
        q.execute(params_from_iter(chunk.iter().zip(&payloads).flat_map(
            |(a, payload)| [&now as &dyn ToSql, &actor, &kind, &a.tracking_code, payload],
        )))?;
        Ok(())
    })?;
    watch.lap("events");
    write_outcomes_lite(conn, ballot_id, p)?;
    watch.lap("outcomes");
    release_leftovers_lite(conn, ballot_id)?;
    watch.lap("release leftovers");
    // Other processes reload their availability view (seats taken, leftovers back).
    conn.prepare_cached(BUMP)?.execute([])?;
    Ok(Some(watch.steps))
}

/// Each entry's outcome, one keyed update per entry; every entry must be there.
fn write_outcomes_lite(
    conn: &Connection,
    ballot_id: &str,
    p: &ClosePublish,
) -> Result<(), StoreError> {
    let mut placed = conn.prepare_cached(
        "UPDATE ballot_entries SET tracking_code = ?3, slot_id = ?4, office_id = ?5, start_at = ?6, distance_km = ?7, cost_m = ?8, part_of_day_kept = ?9 \
         WHERE ballot_id = ?1 AND national_code = ?2",
    )?;
    let mut changed = 0;
    for a in &p.appointments {
        changed += placed.execute(params![
            ballot_id,
            a.national_code,
            a.tracking_code,
            a.slot_id,
            a.office_id,
            a.start_at,
            a.distance_km,
            a.cost_m,
            a.part_of_day_kept
        ])? as u64;
    }
    require_changed("placed entry", changed, p.appointments.len())?;
    let mut unplaced = conn.prepare_cached(
        "UPDATE ballot_entries SET reason = ?3, waitlist_rank = ?4 WHERE ballot_id = ?1 AND national_code = ?2",
    )?;
    let mut changed = 0;
    for u in &p.unplaced {
        changed += unplaced.execute(params![
            ballot_id,
            u.national_code,
            u.reason,
            u.waitlist_rank
        ])? as u64;
    }
    require_changed("unplaced entry", changed, p.unplaced.len())
}

/// PostgreSQL's close: one transaction, the rows `PG_ROWS_PER_STATEMENT` to a statement.
async fn publish_pg(
    pool: &sqlx::PgPool,
    b: &BallotRow,
    owner: &str,
    p: &ClosePublish,
    now: i64,
) -> Result<Option<PublishTimes>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut watch = Stopwatch::start();
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
    for chunk in p.seats.chunks(PG_ROWS_PER_STATEMENT) {
        sqlx::query(
            "INSERT INTO ballot_seats (ballot_id, slot_id, office_id, start_at, seats) \
             SELECT $1, t.slot_id, t.office_id, t.start_at, t.seats FROM UNNEST($2::bigint[], $3::text[], $4::bigint[], $5::bigint[]) AS t(slot_id, office_id, start_at, seats)",
        )
        .bind(&b.id)
        .bind(column(chunk, |s| s.slot_id))
        .bind(column(chunk, |s| s.office_id.as_str()))
        .bind(column(chunk, |s| s.start_at))
        .bind(column(chunk, |s| s.seats))
        .execute(&mut *tx)
        .await?;
    }
    watch.lap("seats");
    for chunk in p.appointments.chunks(PG_ROWS_PER_STATEMENT) {
        sqlx::query(
            "INSERT INTO appointments (tracking_code, slot_id, office_id, start_at, application_id, national_code, service, payment_id, status, created_at, updated_at, reschedules) \
             SELECT t.tc, t.slot_id, t.office_id, t.start_at, t.app, t.code, $7, t.pay, 'booked', $8, $8, 0 \
             FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[], $9::text[]) AS t(tc, slot_id, office_id, start_at, app, code, pay)",
        )
        .bind(column(chunk, |a| a.tracking_code.as_str()))
        .bind(column(chunk, |a| a.slot_id))
        .bind(column(chunk, |a| a.office_id.as_str()))
        .bind(column(chunk, |a| a.start_at))
        .bind(column(chunk, |a| a.application_id.as_str()))
        .bind(column(chunk, |a| a.national_code.as_str()))
        .bind(&b.service)
        .bind(now)
        .bind(column(chunk, |a| a.payment_id.as_str()))
        .execute(&mut *tx)
        .await?;
    }
    watch.lap("appointments");
    let taken = seats_per_slot(&p.appointments);
    let slots: Vec<(i64, i64)> = taken.into_iter().collect();
    let mut changed = 0;
    for chunk in slots.chunks(PG_ROWS_PER_STATEMENT) {
        changed += sqlx::query(
            "UPDATE slots AS s SET taken = s.taken + t.seats FROM UNNEST($1::bigint[], $2::bigint[]) AS t(id, seats) WHERE s.id = t.id",
        )
        .bind(column(chunk, |s| s.0))
        .bind(column(chunk, |s| s.1))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    require_changed("slot", changed, slots.len())?;
    watch.lap("seats taken");
    let key = notice_key(&b.id);
    for chunk in p.appointments.chunks(PG_ROWS_PER_STATEMENT) {
        sqlx::query(
            "INSERT INTO outbox (national_code, application_id, tracking_code, notice_key, channel, body, created_at) \
             SELECT t.code, t.app, t.tc, $4, 'sms', t.body, $5 FROM UNNEST($1::text[], $2::text[], $3::text[], $6::text[]) AS t(code, app, tc, body)",
        )
        .bind(column(chunk, |a| a.national_code.as_str()))
        .bind(column(chunk, |a| a.application_id.as_str()))
        .bind(column(chunk, |a| a.tracking_code.as_str()))
        .bind(&key)
        .bind(now)
        .bind(column(chunk, |a| a.notice.as_str()))
        .execute(&mut *tx)
        .await?;
    }
    watch.lap("outbox");
    let actor = format!("ballot:{}", b.id);
    for chunk in p.appointments.chunks(PG_ROWS_PER_STATEMENT) {
        sqlx::query(
            "INSERT INTO events (at, actor, kind, subject, payload_json) \
             SELECT $1, $2, 'booked_by_ballot', t.subject, t.payload FROM UNNEST($3::text[], $4::text[]) AS t(subject, payload)",
        )
        .bind(now)
        .bind(&actor)
        .bind(column(chunk, |a| a.tracking_code.as_str()))
        .bind(column(chunk, |a| event_payload(&b.id, a)))
        .execute(&mut *tx)
        .await?;
    }
    watch.lap("events");
    write_outcomes_pg(&mut tx, &b.id, p).await?;
    watch.lap("outcomes");
    release_leftovers_pg(&mut tx, &b.id).await?;
    watch.lap("release leftovers");
    // Other processes reload their availability view (seats taken, leftovers back).
    sqlx::query(BUMP).execute(&mut *tx).await?;
    watch.lap("config version");
    let committing = Instant::now();
    tx.commit().await?;
    Ok(Some(PublishTimes {
        steps: watch.steps,
        commit: committing.elapsed(),
    }))
}

/// Each entry's outcome by key, many to a statement; every entry must be there.
async fn write_outcomes_pg(
    tx: &mut sqlx::PgConnection,
    ballot_id: &str,
    p: &ClosePublish,
) -> Result<(), StoreError> {
    let mut changed = 0;
    for chunk in p.appointments.chunks(PG_ROWS_PER_STATEMENT) {
        changed += sqlx::query(
            "UPDATE ballot_entries AS e SET tracking_code = t.tc, slot_id = t.slot_id, office_id = t.office_id, start_at = t.start_at, \
             distance_km = t.km, cost_m = t.cost_m, part_of_day_kept = t.kept \
             FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::float8[], $8::bigint[], $9::bool[]) \
               AS t(code, tc, slot_id, office_id, start_at, km, cost_m, kept) \
             WHERE e.ballot_id = $1 AND e.national_code = t.code",
        )
        .bind(ballot_id)
        .bind(column(chunk, |a| a.national_code.as_str()))
        .bind(column(chunk, |a| a.tracking_code.as_str()))
        .bind(column(chunk, |a| a.slot_id))
        .bind(column(chunk, |a| a.office_id.as_str()))
        .bind(column(chunk, |a| a.start_at))
        .bind(column(chunk, |a| a.distance_km))
        .bind(column(chunk, |a| a.cost_m))
        .bind(column(chunk, |a| a.part_of_day_kept))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    require_changed("placed entry", changed, p.appointments.len())?;
    let mut changed = 0;
    for chunk in p.unplaced.chunks(PG_ROWS_PER_STATEMENT) {
        changed += sqlx::query(
            "UPDATE ballot_entries AS e SET reason = t.reason, waitlist_rank = t.rank \
             FROM UNNEST($2::text[], $3::text[], $4::int4[]) AS t(code, reason, rank) \
             WHERE e.ballot_id = $1 AND e.national_code = t.code",
        )
        .bind(ballot_id)
        .bind(column(chunk, |u| u.national_code.as_str()))
        .bind(column(chunk, |u| u.reason.as_str()))
        .bind(column(chunk, |u| u.waitlist_rank))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    require_changed("unplaced entry", changed, p.unplaced.len())
}
