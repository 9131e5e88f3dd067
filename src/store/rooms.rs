//! Waiting rooms and their tickets (migration 0012).
//!
//! The room row is the state every process shares: `next_seq` numbers the tickets, dense from
//! 0 (a join updates the row first, so joins take its lock one at a time and draw from one
//! sequence whatever process serves them); `prequeue` is frozen by the first join or tick at or
//! after the opening, under the same lock, so a ticket is in the pre-queue exactly when its
//! `seq < prequeue`; the admission frontier moves on under a conditional UPDATE on
//! `last_tick_ms` (one process wins each tick, the others read what it wrote).
//!
//! On SQLite every write here runs on the booking writer thread (`lite_write`), like the
//! applicant's other writes: no wait for SQLite's write lock behind the booking batches, and
//! the joins are ordered by that one thread. On PostgreSQL a join is a transaction that updates
//! the room row first (its lock orders the joins of every process).
//!
//! Polling is read-only but for two bounded writes per ticket: `last_seen_at` is refreshed at
//! most once per half `ticket_idle_minutes`, and `admitted_at` once, when the ticket is first
//! given its pass.

use sqlx::Row;

use super::applicants::lite_write;
use super::{on_pool, sqlite_sql, Store, StoreError};
use crate::domain::lottery::LotterySeed;
use crate::room::AdmissionPolicy;

/// A room as created: what is fixed for its life (each process caches it).
#[derive(Debug, Clone)]
pub struct RoomRecord {
    pub id: String,
    pub service: String,
    /// Province codes; empty: every province.
    pub provinces: Vec<String>,
    pub prequeue_opens_at: i64,
    pub opens_at: i64,
    pub closes_at: i64,
    pub admission: AdmissionPolicy,
    pub pass_minutes: i64,
    pub ticket_idle_minutes: i64,
    /// Secret until `opens_at`: served from then on.
    pub seed: LotterySeed,
    pub commitment: String,
    pub created_at: i64,
    /// The controller's starting rate (`Admission::opening`).
    pub rate_per_minute: i64,
}

/// What moves: the tickets numbered, the pre-queue once frozen, the admission frontier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomState {
    pub next_seq: i64,
    pub prequeue: Option<i64>,
    pub frontier: i64,
    pub rate_per_minute: i64,
    pub last_tick_ms: i64,
    /// Ranks passed over because their ticket was gone (migration 0016).
    pub skipped: i64,
    /// How fast the frontier may move, ranks a minute (migration 0019; 0: not yet ticked).
    pub pace_per_minute: i64,
}

/// One applicant's place in one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRecord {
    pub room_id: String,
    pub seq: i64,
    pub ticket: String,
    pub national_code: String,
    pub joined_at: i64,
    /// The ETA served at `eta_given_at`: at the join, or for a pre-queue joiner at its first
    /// poll after the opening (migration 0016).
    pub eta_at_join: Option<i64>,
    pub eta_given_at: Option<i64>,
    pub last_seen_at: i64,
    pub admitted_at: Option<i64>,
}

/// A booking write made with a room's pass (a row of `room_pass_uses`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassUse {
    pub room_id: String,
    pub national_code: String,
    /// `hold`, `appointment` or `reschedule`.
    pub kind: &'static str,
    pub pass_expires_at: i64,
    pub used_at: i64,
}

/// A join's answer: the ticket, and whether this join made it (false: the citizen's ticket of
/// an earlier join).
#[derive(Debug, Clone)]
pub struct Joined {
    pub ticket: TicketRecord,
    pub created: bool,
    pub state: RoomState,
}

const ROOM_COLUMNS: &str =
    "id, service, provinces, prequeue_opens_at, opens_at, closes_at, admission, \
     pass_minutes, ticket_idle_minutes, seed, commitment, created_at, rate_per_minute";
const STATE_COLUMNS: &str =
    "next_seq, prequeue, frontier, rate_per_minute, last_tick_ms, skipped, pace_per_minute";
const TICKET_COLUMNS: &str = "room_id, seq, ticket, national_code, joined_at, eta_at_join, \
     eta_given_at, last_seen_at, admitted_at";

fn room_from<R: Row>(r: &R) -> Result<RoomRecord, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let provinces: String = r.try_get("provinces")?;
    let admission: String = r.try_get("admission")?;
    let seed: String = r.try_get("seed")?;
    Ok(RoomRecord {
        id: r.try_get("id")?,
        service: r.try_get("service")?,
        provinces: serde_json::from_str(&provinces)
            .map_err(|_| StoreError::corrupt(format!("room provinces {provinces}")))?,
        prequeue_opens_at: r.try_get("prequeue_opens_at")?,
        opens_at: r.try_get("opens_at")?,
        closes_at: r.try_get("closes_at")?,
        admission: serde_json::from_str(&admission)
            .map_err(|_| StoreError::corrupt(format!("room admission {admission}")))?,
        pass_minutes: r.try_get("pass_minutes")?,
        ticket_idle_minutes: r.try_get("ticket_idle_minutes")?,
        seed: LotterySeed::from_hex(&seed)
            .map_err(|_| StoreError::corrupt("a room's seed is not 64 hex digits"))?,
        commitment: r.try_get("commitment")?,
        created_at: r.try_get("created_at")?,
        rate_per_minute: r.try_get("rate_per_minute")?,
    })
}

fn state_from<R: Row>(r: &R) -> Result<RoomState, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(RoomState {
        next_seq: r.try_get("next_seq")?,
        prequeue: r.try_get("prequeue")?,
        frontier: r.try_get("frontier")?,
        rate_per_minute: r.try_get("rate_per_minute")?,
        last_tick_ms: r.try_get("last_tick_ms")?,
        skipped: r.try_get("skipped")?,
        pace_per_minute: r.try_get("pace_per_minute")?,
    })
}

fn ticket_from<R: Row>(r: &R) -> Result<TicketRecord, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(TicketRecord {
        room_id: r.try_get("room_id")?,
        seq: r.try_get("seq")?,
        ticket: r.try_get("ticket")?,
        national_code: r.try_get("national_code")?,
        joined_at: r.try_get("joined_at")?,
        eta_at_join: r.try_get("eta_at_join")?,
        eta_given_at: r.try_get("eta_given_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        admitted_at: r.try_get("admitted_at")?,
    })
}

impl Store {
    /// Creates a room (nothing admitted, no ticket numbered; its first tick counts from the
    /// opening).
    pub async fn insert_room(&self, room: &RoomRecord) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO waiting_rooms (id, service, provinces, prequeue_opens_at, opens_at, closes_at, \
             admission, pass_minutes, ticket_idle_minutes, seed, commitment, rate_per_minute, last_tick_ms, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
        let provinces = serde_json::to_string(&room.provinces).expect("strings serialise");
        let admission = serde_json::to_string(&room.admission).expect("a policy serialises");
        on_pool!(self, pool, q = SQL => {
            sqlx::query(q)
                .bind(&room.id).bind(&room.service).bind(&provinces)
                .bind(room.prequeue_opens_at).bind(room.opens_at).bind(room.closes_at)
                .bind(&admission).bind(room.pass_minutes).bind(room.ticket_idle_minutes)
                .bind(room.seed.to_hex()).bind(&room.commitment).bind(room.rate_per_minute)
                .bind(room.opens_at * 1000).bind(room.created_at)
                .execute(pool).await?;
            Ok(())
        })
    }

    /// Every room not closed before `closed_after` (each process caches them).
    pub async fn rooms(&self, closed_after: i64) -> Result<Vec<RoomRecord>, StoreError> {
        let sql = format!(
            "SELECT {ROOM_COLUMNS} FROM waiting_rooms WHERE closes_at > $1 ORDER BY opens_at, id"
        );
        on_pool!(self, pool, q = &sql => {
            sqlx::query(q).bind(closed_after).fetch_all(pool).await?.iter().map(room_from).collect()
        })
    }

    /// One room by id, closed or not.
    pub async fn room(&self, id: &str) -> Result<Option<RoomRecord>, StoreError> {
        let sql = format!("SELECT {ROOM_COLUMNS} FROM waiting_rooms WHERE id = $1");
        on_pool!(self, pool, q = &sql => {
            sqlx::query(q).bind(id).fetch_optional(pool).await?.as_ref().map(room_from).transpose()
        })
    }

    /// A room's moving state (one primary-key read).
    pub async fn room_state(&self, id: &str) -> Result<Option<RoomState>, StoreError> {
        let sql = format!("SELECT {STATE_COLUMNS} FROM waiting_rooms WHERE id = $1");
        on_pool!(self, pool, q = &sql => {
            sqlx::query(q).bind(id).fetch_optional(pool).await?.as_ref().map(state_from).transpose()
        })
    }

    /// A citizen's ticket in a room.
    pub async fn ticket_of(
        &self,
        room_id: &str,
        national_code: &str,
    ) -> Result<Option<TicketRecord>, StoreError> {
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM room_tickets WHERE room_id = $1 AND national_code = $2"
        );
        on_pool!(self, pool, q = &sql => {
            sqlx::query(q).bind(room_id).bind(national_code).fetch_optional(pool).await?
                .as_ref().map(ticket_from).transpose()
        })
    }

    /// A ticket by its opaque id.
    pub async fn ticket(&self, ticket: &str) -> Result<Option<TicketRecord>, StoreError> {
        let sql = format!("SELECT {TICKET_COLUMNS} FROM room_tickets WHERE ticket = $1");
        on_pool!(self, pool, q = &sql => {
            sqlx::query(q).bind(ticket).fetch_optional(pool).await?
                .as_ref().map(ticket_from).transpose()
        })
    }

    /// The citizen's ticket in the room: the one an earlier join made, else a new one with the
    /// next number. A ticket of an earlier join that `stale` says has expired (not polled in
    /// time, or its pass ran out) is given the next number and a new id instead: the citizen
    /// queues again at the back, under the same one-ticket-per-citizen row. The room row is updated first (its lock orders the joins, and freezes the
    /// pre-queue if the opening has passed), then the ticket is looked for and inserted; a
    /// citizen who has one already leaves the sequence as it was (the transaction is rolled
    /// back), so the numbers stay dense. `eta` gives the ETA recorded with a new ticket from
    /// the room's state and its number.
    pub async fn join_room(
        &self,
        room_id: &str,
        national_code: &str,
        ticket: &str,
        now: i64,
        eta: impl Fn(&RoomState, i64) -> Option<i64> + Send + 'static,
        stale: impl Fn(&TicketRecord) -> bool + Send + 'static,
    ) -> Result<Joined, StoreError> {
        if let Some(existing) = self
            .ticket_of(room_id, national_code)
            .await?
            .filter(|t| !stale(t))
        {
            let state = self
                .room_state(room_id)
                .await?
                .ok_or_else(|| StoreError::corrupt("a ticket of no room"))?;
            return Ok(Joined {
                ticket: existing,
                created: false,
                state,
            });
        }
        let new = TicketRecord {
            room_id: room_id.to_string(),
            seq: 0,
            ticket: ticket.to_string(),
            national_code: national_code.to_string(),
            joined_at: now,
            eta_at_join: None,
            eta_given_at: None,
            last_seen_at: now,
            admitted_at: None,
        };
        match self {
            Store::Sqlite(pool) => {
                lite_write(pool, move |conn| lite_join(conn, new, eta, stale)).await
            }
            Store::Postgres(pool) => pg_join(pool, new, eta, stale).await,
        }
    }

    /// Records that the ticket was polled at `now` (callers do so at most once per half idle
    /// time).
    pub async fn touch_ticket(&self, ticket: &str, now: i64) -> Result<(), StoreError> {
        const SQL: &str =
            "UPDATE room_tickets SET last_seen_at = $2 WHERE ticket = $1 AND last_seen_at < $2";
        match self {
            Store::Sqlite(pool) => {
                let ticket = ticket.to_string();
                lite_write(pool, move |conn| {
                    conn.prepare_cached(&sqlite_sql(SQL))?
                        .execute(rusqlite::params![ticket, now])?;
                    Ok(())
                })
                .await
            }
            Store::Postgres(pool) => {
                sqlx::query(SQL)
                    .bind(ticket)
                    .bind(now)
                    .execute(pool)
                    .await?;
                Ok(())
            }
        }
    }

    /// Records the ticket's admission, unless recorded already, as its first poll after it
    /// (at `now`) finds it: the admission is the time of the first tick whose frontier passed
    /// the ticket's `rank` (`room_ticks`; `now` if no tick recorded it), and the pass is given
    /// now. Returns the admission time recorded. A ticket that never had an ETA (a pre-queue
    /// joiner admitted before its first poll after the opening) is recorded as told "0 s" now.
    pub async fn admit_ticket(&self, ticket: &str, rank: i64, now: i64) -> Result<i64, StoreError> {
        // SET expressions all read the row as it was: `eta_at_join IS NULL` is the old value.
        const SQL: &str = "UPDATE room_tickets SET admitted_at = COALESCE(admitted_at, \
                 (SELECT k.tick_ms / 1000 FROM room_ticks k WHERE k.room_id = room_tickets.room_id \
                    AND k.passed > $2 ORDER BY k.passed LIMIT 1), $3), \
               pass_given_at = COALESCE(pass_given_at, $3), \
               eta_given_at = CASE WHEN eta_at_join IS NULL THEN $3 ELSE eta_given_at END, \
               eta_at_join = COALESCE(eta_at_join, 0) \
             WHERE ticket = $1 RETURNING admitted_at";
        match self {
            Store::Sqlite(pool) => {
                let ticket = ticket.to_string();
                lite_write(pool, move |conn| {
                    Ok(conn
                        .prepare_cached(&sqlite_sql(SQL))?
                        .query_row(rusqlite::params![ticket, rank, now], |r| r.get(0))?)
                })
                .await
            }
            Store::Postgres(pool) => Ok(sqlx::query_scalar::<_, i64>(SQL)
                .bind(ticket)
                .bind(rank)
                .bind(now)
                .fetch_one(pool)
                .await?),
        }
    }

    /// Records the ETA first served to a pre-queue joiner after the opening (once: a ticket
    /// with an ETA keeps it), and counts as a poll at `now`. One write per ticket in its life.
    pub async fn record_eta(&self, ticket: &str, eta: i64, now: i64) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE room_tickets SET eta_at_join = $2, eta_given_at = $3, \
               last_seen_at = CASE WHEN last_seen_at < $3 THEN $3 ELSE last_seen_at END \
             WHERE ticket = $1 AND eta_at_join IS NULL";
        match self {
            Store::Sqlite(pool) => {
                let ticket = ticket.to_string();
                lite_write(pool, move |conn| {
                    conn.prepare_cached(&sqlite_sql(SQL))?
                        .execute(rusqlite::params![ticket, eta, now])?;
                    Ok(())
                })
                .await
            }
            Store::Postgres(pool) => {
                sqlx::query(SQL)
                    .bind(ticket)
                    .bind(eta)
                    .bind(now)
                    .execute(pool)
                    .await?;
                Ok(())
            }
        }
    }

    /// How many of the room's tickets numbered `seqs` still stand: admitted, or polled at or
    /// after `seen_since` (the others expired unpolled; a number whose ticket was queued
    /// again under a new one has no row). The ticker's count of gone ranks: a read of the
    /// primary key, in chunks.
    pub async fn standing_tickets(
        &self,
        room_id: &str,
        seqs: &[i64],
        seen_since: i64,
    ) -> Result<u64, StoreError> {
        const CHUNK: usize = 500;
        let mut standing = 0u64;
        for chunk in seqs.chunks(CHUNK) {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "SELECT COUNT(*) FROM room_tickets WHERE room_id = $1 \
                 AND (admitted_at IS NOT NULL OR last_seen_at >= $2) AND seq IN ({})",
                list.join(", ")
            );
            let n: i64 = on_pool!(self, pool, q = &sql => {
                let mut query = sqlx::query_scalar::<_, i64>(q).bind(room_id).bind(seen_since);
                for seq in chunk {
                    query = query.bind(*seq);
                }
                query.fetch_one(pool).await?
            });
            standing += n.max(0) as u64;
        }
        Ok(standing)
    }

    /// A booking write carries a room's pass: records its use (which room, citizen and pass
    /// expiry: migration 0015) before the write is made, so no booking exists without its
    /// record (a write that then fails leaves a use with no booking, which the audit allows).
    pub async fn record_pass_use(&self, u: &PassUse) -> Result<(), StoreError> {
        const USE: &str = "INSERT INTO room_pass_uses \
             (room_id, national_code, kind, pass_expires_at, used_at) VALUES ($1, $2, $3, $4, $5)";
        match self {
            Store::Sqlite(pool) => {
                let u = u.clone();
                lite_write(pool, move |conn| {
                    conn.prepare_cached(&sqlite_sql(USE))?
                        .execute(rusqlite::params![
                            u.room_id,
                            u.national_code,
                            u.kind,
                            u.pass_expires_at,
                            u.used_at
                        ])?;
                    Ok(())
                })
                .await
            }
            Store::Postgres(pool) => {
                sqlx::query(USE)
                    .bind(&u.room_id)
                    .bind(&u.national_code)
                    .bind(u.kind)
                    .bind(u.pass_expires_at)
                    .bind(u.used_at)
                    .execute(pool)
                    .await?;
                Ok(())
            }
        }
    }

    /// Records that the citizen's pass of the room was used for a booking (returned early: the
    /// controller counts it out of the passes in use).
    pub async fn return_pass(
        &self,
        room_id: &str,
        national_code: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE room_tickets SET returned_at = $3 \
             WHERE room_id = $1 AND national_code = $2 AND returned_at IS NULL";
        match self {
            Store::Sqlite(pool) => {
                let (room_id, code) = (room_id.to_string(), national_code.to_string());
                lite_write(pool, move |conn| {
                    conn.prepare_cached(&sqlite_sql(SQL))?
                        .execute(rusqlite::params![room_id, code, now])?;
                    Ok(())
                })
                .await
            }
            Store::Postgres(pool) => {
                sqlx::query(SQL)
                    .bind(room_id)
                    .bind(national_code)
                    .bind(now)
                    .execute(pool)
                    .await?;
                Ok(())
            }
        }
    }

    /// The passes in use: tickets admitted since `since_ms` (the room's tick log: admitted by
    /// the last tick then, against `admitted_now`), less those of them returned by a booking.
    /// Counted from the admission, not from the applicant's first poll after it, so passes
    /// given but not yet collected count too. Two reads of an index.
    pub async fn passes_in_use(
        &self,
        room_id: &str,
        admitted_now: i64,
        since_ms: i64,
    ) -> Result<i64, StoreError> {
        const THEN: &str = "SELECT admitted FROM room_ticks WHERE room_id = $1 AND tick_ms <= $2 \
             ORDER BY tick_ms DESC LIMIT 1";
        // Seconds against the column as it is, so the `(room_id, admitted_at)` index bounds
        // the read to the passes of the window.
        const RETURNED: &str = "SELECT COUNT(*) FROM room_tickets WHERE room_id = $1 \
             AND admitted_at IS NOT NULL AND admitted_at > $2 AND returned_at IS NOT NULL";
        let since_s = since_ms.div_euclid(1000);
        let then: Option<i64> = on_pool!(self, pool, q = THEN => {
            sqlx::query_scalar::<_, i64>(q).bind(room_id).bind(since_ms).fetch_optional(pool).await?
        });
        let returned: i64 = on_pool!(self, pool, q = RETURNED => {
            sqlx::query_scalar::<_, i64>(q).bind(room_id).bind(since_s).fetch_one(pool).await?
        });
        Ok((admitted_now - then.unwrap_or(0) - returned).max(0))
    }

    /// Moves the room's admission on (`new`'s frontier, rate, pace and skipped ranks), if no
    /// other process did since `old.last_tick_ms`; also freezes the pre-queue if it is not
    /// yet. A tick that passed more ranks is logged in `room_ticks` in the same transaction
    /// (`passed` ranks passed and `admitted` tickets admitted by `now_ms`). Returns whether
    /// this call moved it.
    pub async fn tick_room(
        &self,
        room_id: &str,
        old: &RoomState,
        new: &RoomState,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        const SQL: &str =
            "UPDATE waiting_rooms SET frontier = $3, rate_per_minute = $4, last_tick_ms = $5, \
               skipped = $6, pace_per_minute = $7, prequeue = COALESCE(prequeue, next_seq) \
             WHERE id = $1 AND last_tick_ms = $2";
        const LOG: &str = "INSERT INTO room_ticks (room_id, passed, tick_ms, admitted) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (room_id, passed) DO NOTHING";
        let passed = new.frontier / crate::room::UNITS_PER_RANK as i64;
        let logged = (passed > old.frontier / crate::room::UNITS_PER_RANK as i64)
            .then_some((passed, (passed - new.skipped).max(0)));
        let (frontier, rate_per_minute, skipped, pace) = (
            new.frontier,
            new.rate_per_minute,
            new.skipped,
            new.pace_per_minute,
        );
        match self {
            Store::Sqlite(pool) => {
                let (room_id, old_tick) = (room_id.to_string(), old.last_tick_ms);
                // The writer runs this in a savepoint of its own: both statements or neither.
                lite_write(pool, move |conn| {
                    let moved =
                        conn.prepare_cached(&sqlite_sql(SQL))?
                            .execute(rusqlite::params![
                                room_id,
                                old_tick,
                                frontier,
                                rate_per_minute,
                                now_ms,
                                skipped,
                                pace
                            ])?
                            == 1;
                    if let (true, Some((passed, admitted))) = (moved, logged) {
                        conn.prepare_cached(&sqlite_sql(LOG))?
                            .execute(rusqlite::params![room_id, passed, now_ms, admitted])?;
                    }
                    Ok(moved)
                })
                .await
            }
            Store::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let moved = sqlx::query(SQL)
                    .bind(room_id)
                    .bind(old.last_tick_ms)
                    .bind(frontier)
                    .bind(rate_per_minute)
                    .bind(now_ms)
                    .bind(skipped)
                    .bind(pace)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if let (true, Some((passed, admitted))) = (moved, logged) {
                    sqlx::query(LOG)
                        .bind(room_id)
                        .bind(passed)
                        .bind(now_ms)
                        .bind(admitted)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(moved)
            }
        }
    }
}

/// Takes the room's next number, freezing the pre-queue if the opening has passed.
const TAKE_NUMBER: &str = "UPDATE waiting_rooms SET next_seq = next_seq + 1, \
       prequeue = CASE WHEN prequeue IS NULL AND opens_at <= $2 THEN next_seq ELSE prequeue END \
     WHERE id = $1 RETURNING next_seq, prequeue, frontier, rate_per_minute, last_tick_ms, skipped, pace_per_minute";
const FIND_TICKET: &str =
    "SELECT room_id, seq, ticket, national_code, joined_at, eta_at_join, eta_given_at, last_seen_at, admitted_at \
     FROM room_tickets WHERE room_id = $1 AND national_code = $2";
/// A stale ticket queued again: the next number, a new id, as if joined now.
const REQUEUE_TICKET: &str = "UPDATE room_tickets SET seq = $3, ticket = $4, joined_at = $5, \
       eta_at_join = $6, eta_given_at = $7, last_seen_at = $5, admitted_at = NULL, pass_given_at = NULL, \
       returned_at = NULL \
     WHERE room_id = $1 AND national_code = $2";
const INSERT_TICKET: &str = "INSERT INTO room_tickets (room_id, seq, ticket, national_code, joined_at, eta_at_join, eta_given_at, last_seen_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $5)";

fn lite_ticket(r: &rusqlite::Row<'_>) -> rusqlite::Result<TicketRecord> {
    Ok(TicketRecord {
        room_id: r.get(0)?,
        seq: r.get(1)?,
        ticket: r.get(2)?,
        national_code: r.get(3)?,
        joined_at: r.get(4)?,
        eta_at_join: r.get(5)?,
        eta_given_at: r.get(6)?,
        last_seen_at: r.get(7)?,
        admitted_at: r.get(8)?,
    })
}

/// A join on SQLite's writer thread: it alone writes tickets, so a ticket found first cannot
/// be inserted by anyone else meanwhile.
fn lite_join(
    conn: &rusqlite::Connection,
    mut new: TicketRecord,
    eta: impl Fn(&RoomState, i64) -> Option<i64>,
    stale: impl Fn(&TicketRecord) -> bool,
) -> Result<Joined, StoreError> {
    use rusqlite::OptionalExtension;
    let state_sql = format!("SELECT {STATE_COLUMNS} FROM waiting_rooms WHERE id = ?1");
    let read_state = |r: &rusqlite::Row<'_>| {
        Ok(RoomState {
            next_seq: r.get(0)?,
            prequeue: r.get(1)?,
            frontier: r.get(2)?,
            rate_per_minute: r.get(3)?,
            last_tick_ms: r.get(4)?,
            skipped: r.get(5)?,
            pace_per_minute: r.get(6)?,
        })
    };
    let found = conn
        .prepare_cached(&sqlite_sql(FIND_TICKET))?
        .query_row(
            rusqlite::params![new.room_id, new.national_code],
            lite_ticket,
        )
        .optional()?;
    let requeue = found.as_ref().is_some_and(&stale);
    if let Some(ticket) = found.filter(|_| !requeue) {
        let state = conn
            .prepare_cached(&state_sql)?
            .query_row([&ticket.room_id], read_state)?;
        return Ok(Joined {
            ticket,
            created: false,
            state,
        });
    }
    let state = conn
        .prepare_cached(&sqlite_sql(TAKE_NUMBER))?
        .query_row(rusqlite::params![new.room_id, new.joined_at], read_state)
        .optional()?
        .ok_or_else(|| StoreError::corrupt("joining a room that does not exist"))?;
    new.seq = state.next_seq - 1;
    new.eta_at_join = eta(&state, new.seq);
    // An ETA at the join (after the opening) is given at the join.
    new.eta_given_at = new.eta_at_join.map(|_| new.joined_at);
    let sql = if requeue {
        REQUEUE_TICKET
    } else {
        INSERT_TICKET
    };
    if requeue {
        conn.prepare_cached(&sqlite_sql(sql))?
            .execute(rusqlite::params![
                new.room_id,
                new.national_code,
                new.seq,
                new.ticket,
                new.joined_at,
                new.eta_at_join,
                new.eta_given_at
            ])?;
        return Ok(Joined {
            ticket: new,
            created: true,
            state,
        });
    }
    conn.prepare_cached(&sqlite_sql(sql))?
        .execute(rusqlite::params![
            new.room_id,
            new.seq,
            new.ticket,
            new.national_code,
            new.joined_at,
            new.eta_at_join,
            new.eta_given_at
        ])?;
    Ok(Joined {
        ticket: new,
        created: true,
        state,
    })
}

/// A join on PostgreSQL: the room row is updated first (its lock orders the joins of every
/// process), then the ticket looked for and inserted; a citizen who has one already leaves the
/// sequence as it was (the transaction is rolled back), so the numbers stay dense.
async fn pg_join(
    pool: &sqlx::PgPool,
    mut new: TicketRecord,
    eta: impl Fn(&RoomState, i64) -> Option<i64>,
    stale: impl Fn(&TicketRecord) -> bool,
) -> Result<Joined, StoreError> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(TAKE_NUMBER)
        .bind(&new.room_id)
        .bind(new.joined_at)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::corrupt("joining a room that does not exist"))?;
    let mut state = state_from(&row)?;
    let found = sqlx::query(FIND_TICKET)
        .bind(&new.room_id)
        .bind(&new.national_code)
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(ticket_from)
        .transpose()?;
    let requeue = found.as_ref().is_some_and(&stale);
    if let Some(ticket) = found.filter(|_| !requeue) {
        // Joined meanwhile (another request of the same citizen): that ticket stands.
        tx.rollback().await?;
        state.next_seq -= 1;
        return Ok(Joined {
            ticket,
            created: false,
            state,
        });
    }
    new.seq = state.next_seq - 1;
    new.eta_at_join = eta(&state, new.seq);
    // An ETA at the join (after the opening) is given at the join.
    new.eta_given_at = new.eta_at_join.map(|_| new.joined_at);
    if requeue {
        sqlx::query(REQUEUE_TICKET)
            .bind(&new.room_id)
            .bind(&new.national_code)
            .bind(new.seq)
            .bind(&new.ticket)
            .bind(new.joined_at)
            .bind(new.eta_at_join)
            .bind(new.eta_given_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(Joined {
            ticket: new,
            created: true,
            state,
        });
    }
    sqlx::query(INSERT_TICKET)
        .bind(&new.room_id)
        .bind(new.seq)
        .bind(&new.ticket)
        .bind(&new.national_code)
        .bind(new.joined_at)
        .bind(new.eta_at_join)
        .bind(new.eta_given_at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Joined {
        ticket: new,
        created: true,
        state,
    })
}
