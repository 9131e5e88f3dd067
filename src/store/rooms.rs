//! Waiting rooms and their tickets (migration 0012).
//!
//! The room row is the state every process shares: `next_seq` numbers the tickets, dense from
//! 0 (a join updates the row first, so joins take its lock one at a time and draw from one
//! sequence whatever process serves them); `prequeue` is frozen by the first join or tick at or
//! after the opening, under the same lock, so a ticket is in the pre-queue exactly when its
//! `seq < prequeue`; the admission frontier moves on under a conditional UPDATE on
//! `last_tick_ms` (one process wins each tick, the others read what it wrote).
//!
//! Polling is read-only but for two bounded writes per ticket: `last_seen_at` is refreshed at
//! most once per half `ticket_idle_minutes`, and `admitted_at` once, when the ticket is first
//! given its pass.

use sqlx::Row;

use super::{on_pool, Store, StoreError};
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
}

/// One applicant's place in one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRecord {
    pub room_id: String,
    pub seq: i64,
    pub ticket: String,
    pub national_code: String,
    pub joined_at: i64,
    pub eta_at_join: Option<i64>,
    pub last_seen_at: i64,
    pub admitted_at: Option<i64>,
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
const STATE_COLUMNS: &str = "next_seq, prequeue, frontier, rate_per_minute, last_tick_ms";
const TICKET_COLUMNS: &str =
    "room_id, seq, ticket, national_code, joined_at, eta_at_join, last_seen_at, admitted_at";

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
    /// next number. The room row is updated first (its lock orders the joins, and freezes the
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
        eta: impl Fn(&RoomState, i64) -> Option<i64>,
    ) -> Result<Joined, StoreError> {
        if let Some(existing) = self.ticket_of(room_id, national_code).await? {
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
        let take = format!(
            "UPDATE waiting_rooms SET next_seq = next_seq + 1, \
               prequeue = CASE WHEN prequeue IS NULL AND opens_at <= $2 THEN next_seq ELSE prequeue END \
             WHERE id = $1 RETURNING {STATE_COLUMNS}"
        );
        let find = format!(
            "SELECT {TICKET_COLUMNS} FROM room_tickets WHERE room_id = $1 AND national_code = $2"
        );
        const INSERT: &str = "INSERT INTO room_tickets (room_id, seq, ticket, national_code, joined_at, eta_at_join, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $5)";
        on_pool!(self, pool, q = &take => {
            let find = match self { Store::Sqlite(_) => super::sqlite_sql(&find), Store::Postgres(_) => find.clone() };
            let insert = match self { Store::Sqlite(_) => super::sqlite_sql(INSERT), Store::Postgres(_) => INSERT.to_string() };
            let mut tx = pool.begin().await?;
            let row = sqlx::query(q).bind(room_id).bind(now).fetch_optional(&mut *tx).await?
                .ok_or_else(|| StoreError::corrupt("joining a room that does not exist"))?;
            let mut state = state_from(&row)?;
            if let Some(r) = sqlx::query(&find).bind(room_id).bind(national_code).fetch_optional(&mut *tx).await? {
                // Joined meanwhile (another request of the same citizen): that ticket stands.
                tx.rollback().await?;
                state.next_seq -= 1;
                return Ok(Joined { ticket: ticket_from(&r)?, created: false, state });
            }
            let seq = state.next_seq - 1;
            let eta_at_join = eta(&state, seq);
            sqlx::query(&insert).bind(room_id).bind(seq).bind(ticket).bind(national_code)
                .bind(now).bind(eta_at_join).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(Joined {
                ticket: TicketRecord {
                    room_id: room_id.to_string(), seq, ticket: ticket.to_string(),
                    national_code: national_code.to_string(), joined_at: now, eta_at_join,
                    last_seen_at: now, admitted_at: None,
                },
                created: true,
                state,
            })
        })
    }

    /// Records that the ticket was polled at `now` (callers do so at most once per half idle
    /// time).
    pub async fn touch_ticket(&self, ticket: &str, now: i64) -> Result<(), StoreError> {
        const SQL: &str =
            "UPDATE room_tickets SET last_seen_at = $2 WHERE ticket = $1 AND last_seen_at < $2";
        on_pool!(self, pool, q = SQL => {
            sqlx::query(q).bind(ticket).bind(now).execute(pool).await?;
            Ok(())
        })
    }

    /// Records the ticket's admission (its pass given) at `now` unless recorded already;
    /// returns the time recorded.
    pub async fn admit_ticket(&self, ticket: &str, now: i64) -> Result<i64, StoreError> {
        const SQL: &str = "UPDATE room_tickets SET admitted_at = COALESCE(admitted_at, $2) WHERE ticket = $1 RETURNING admitted_at";
        on_pool!(self, pool, q = SQL => {
            Ok(sqlx::query_scalar::<_, i64>(q).bind(ticket).bind(now).fetch_one(pool).await?)
        })
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
        on_pool!(self, pool, q = SQL => {
            sqlx::query(q).bind(room_id).bind(national_code).bind(now).execute(pool).await?;
            Ok(())
        })
    }

    /// Passes given since `since` and not returned (the passes in use).
    pub async fn passes_given_since(&self, room_id: &str, since: i64) -> Result<i64, StoreError> {
        const SQL: &str =
            "SELECT COUNT(*) FROM room_tickets WHERE room_id = $1 AND admitted_at IS NOT NULL AND admitted_at > $2 AND returned_at IS NULL";
        on_pool!(self, pool, q = SQL => {
            Ok(sqlx::query_scalar::<_, i64>(q).bind(room_id).bind(since).fetch_one(pool).await?)
        })
    }

    /// Moves the room's admission on, if no other process did since `old.last_tick_ms`; also
    /// freezes the pre-queue if it is not yet. Returns whether this call moved it.
    pub async fn tick_room(
        &self,
        room_id: &str,
        old: &RoomState,
        frontier: i64,
        rate_per_minute: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        const SQL: &str =
            "UPDATE waiting_rooms SET frontier = $3, rate_per_minute = $4, last_tick_ms = $5, \
               prequeue = COALESCE(prequeue, next_seq) \
             WHERE id = $1 AND last_tick_ms = $2";
        on_pool!(self, pool, q = SQL => {
            Ok(sqlx::query(q).bind(room_id).bind(old.last_tick_ms).bind(frontier)
                .bind(rate_per_minute).bind(now_ms).execute(pool).await?.rows_affected() == 1)
        })
    }
}
