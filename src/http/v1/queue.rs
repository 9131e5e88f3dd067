//! The waiting room's applicant and public endpoints: join (`POST /v1/queue`), poll
//! (`GET /v1/queue/{ticket}`: position, ETA, and once admitted the pass), and the public
//! state of a room (`GET /v1/queue/rooms/{room_id}`) with the order of any ticket number, so
//! anyone can recompute it from the revealed seed: rank = `QueueOrder(seed, prequeue).rank(seq)`
//! (`nobat_room::order`).
//!
//! Polling is a read of the ticket and of the room's row. It writes only when the ticket's
//! last recorded poll is older than half the room's idle time (so at most two writes per idle
//! time per ticket, never one per poll), and once when the ticket is first given its pass.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::iran_rfc3339;
use crate::domain::province::Province;
use crate::domain::ServiceCode;
use crate::http::auth::Applicant;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::live::{limit_key, ClientAddress};
use crate::http::problem::ProblemCode;
use crate::http::room::{self, Phase, Place};
use crate::http::{AppState, Problem};
use crate::store::{RoomRecord, RoomState, TicketRecord};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The room to join; or give `service` (and `province`) to join the active room in front
    /// of those bookings.
    #[serde(default)]
    pub room_id: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    /// A province slug.
    #[serde(default)]
    pub province: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TicketDto {
    /// Opaque; useful only with the bearer token of the citizen who joined.
    pub ticket: String,
    pub room_id: String,
    /// The join number: recompute its place with `GET /v1/queue/rooms/{room_id}/order`.
    pub seq: i64,
    /// `prequeue` (not yet ordered), `waiting` or `admitted`.
    pub status: String,
    /// Tickets ahead (absent in the pre-queue: the order is drawn at the opening).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    pub eta_seconds: u64,
    pub admitted: bool,
    pub poll_after_seconds: u64,
    /// Once admitted: send it in the `Booking-Pass` header of the booking requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    /// When the pass expires (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoomDto {
    pub room_id: String,
    /// `scheduled`, `prequeue`, `open` or `closed`.
    pub state: String,
    pub service: String,
    /// Province slugs; empty: every province.
    pub provinces: Vec<String>,
    pub prequeue_opens_at: String,
    pub opens_at: String,
    pub closes_at: String,
    /// SHA-256 of the seed, hex.
    pub commitment: String,
    /// The seed (hex), from the opening on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// Tickets that joined before the opening (shuffled), once frozen at the opening.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prequeue_size: Option<i64>,
    /// Tickets the admission frontier has not reached yet.
    pub queue_length: i64,
    pub admitted: i64,
    /// Places the frontier passed over because their ticket was gone (expired unpolled, or
    /// queued again at the back): not counted in `admitted`, and no admission spent on them.
    pub skipped: i64,
    pub joined: i64,
    pub rate_per_minute: i64,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrderQuery {
    /// A ticket's join number.
    pub ticket_seq: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderDto {
    pub ticket_seq: i64,
    /// 0-based place in the queue: `QueueOrder(seed, prequeue_size).rank(ticket_seq)`.
    pub rank: u64,
    pub in_prequeue: bool,
    /// The admission frontier has passed this place (its ticket admitted, or skipped if the
    /// ticket was gone by then).
    pub admitted: bool,
}

fn room_not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        ProblemCode::RoomNotFound,
        "no such waiting room",
    )
}

/// A room from this process's cache, else from the database (closed long ago, or created on
/// another process since the last poll).
async fn cached_room(state: &AppState, id: &str) -> Result<std::sync::Arc<RoomRecord>, Problem> {
    match state.rooms.get(id) {
        Some(room) => Ok(room),
        None => Ok(std::sync::Arc::new(
            state.store.room(id).await?.ok_or_else(room_not_found)?,
        )),
    }
}

fn ticket_not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        ProblemCode::TicketNotFound,
        "no such ticket",
    )
}

/// The room a join names, or the active room in front of a service's (and province's)
/// bookings.
fn room_to_join(
    state: &AppState,
    req: &JoinRequest,
    now: i64,
) -> Result<std::sync::Arc<RoomRecord>, Problem> {
    if let Some(id) = &req.room_id {
        return state.rooms.get(id).ok_or_else(room_not_found);
    }
    let service = req.service.as_deref().ok_or_else(|| {
        Problem::invalid_field(
            "room_id",
            ProblemCode::InvalidBody,
            "give room_id, or service (and province)",
        )
    })?;
    let service = ServiceCode::parse(service).map_err(|_| {
        Problem::invalid_field("service", ProblemCode::UnknownService, "no such service")
    })?;
    let province = match req.province.as_deref() {
        Some(p) => Some(
            Province::by_slug(p)
                .ok_or_else(|| {
                    Problem::invalid_field(
                        "province",
                        ProblemCode::UnknownProvince,
                        format!("no province {p:?}"),
                    )
                })?
                .slug
                .clone(),
        ),
        None => None,
    };
    state
        .rooms
        .active(now)
        .into_iter()
        .find(|r| {
            r.service == service.as_str()
                && (r.provinces.is_empty()
                    || province.as_ref().is_some_and(|p| r.provinces.contains(p)))
        })
        .ok_or_else(room_not_found)
}

/// The longest a waiting ticket is told to wait before its next poll. An admission counts
/// against the room's passes from the tick that made it, so a ticket told to come back in
/// minutes would hold a pass it does not know it has (and an ETA that turns out long would
/// keep it away): a poll every 20 s at most is a cheap read (the room's state is cached a
/// tick per process) against passes left idle.
const POLL_AFTER_WAITING_MAX_SECS: u64 = 20;

/// When a waiting ticket is told to poll again, in percent of its ETA.
const POLL_AT_ETA_PERCENT: u64 = 80;

/// The answer about a ticket at `now`; gives the pass once admitted.
fn ticket_dto(
    state: &AppState,
    room: &RoomRecord,
    rs: &RoomState,
    t: &TicketRecord,
    now: i64,
) -> TicketDto {
    let idle_secs = (room.ticket_idle_minutes * 60).max(2) as u64;
    let place = room::place(room, rs, t.seq, now);
    let (status, position, eta_seconds) = match place {
        Place::Prequeue { eta_seconds } => ("prequeue", None, eta_seconds),
        Place::Waiting {
            position,
            eta_seconds,
        } => ("waiting", Some(position), eta_seconds),
        Place::Admitted => ("admitted", None, 0),
    };
    let admitted = place == Place::Admitted;
    let (pass, expires_at) = if admitted {
        let admitted_at = t.admitted_at.unwrap_or(now);
        let expires = admitted_at + room.pass_minutes * 60;
        (
            Some(
                state
                    .rooms
                    .passes
                    .issue(&room.id, &t.national_code, expires),
            ),
            Some(iran_rfc3339(expires)),
        )
    } else {
        (None, None)
    };
    let poll_after_seconds = match place {
        Place::Admitted => idle_secs / 2,
        Place::Prequeue { .. } => ((room.opens_at - now).max(1) as u64)
            .min(idle_secs / 3)
            .max(1),
        // Shortly before the ETA: ETAs follow the controller (error p50 3-10 % in the
        // surge-day room runs), so a poll at half of it (as when they did not) mostly learns
        // it must wait again: twice the polls, each a database read on PostgreSQL.
        Place::Waiting { eta_seconds, .. } => (eta_seconds * POLL_AT_ETA_PERCENT / 100)
            .clamp(1, (idle_secs / 3).clamp(1, POLL_AFTER_WAITING_MAX_SECS)),
    };
    TicketDto {
        ticket: t.ticket.clone(),
        room_id: room.id.clone(),
        seq: t.seq,
        status: status.to_string(),
        position,
        eta_seconds,
        admitted,
        poll_after_seconds,
        pass,
        expires_at,
    }
}

/// Join a waiting room: one ticket per citizen and room (joining again returns the same
/// ticket).
#[utoipa::path(post, path = "/v1/queue", tag = "applicant", security(("applicant" = [])),
    request_body = JoinRequest,
    responses((status = 201, body = TicketDto), (status = 200, description = "the ticket of an earlier join", body = TicketDto),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn join_queue(
    State(state): State<AppState>,
    applicant: Applicant,
    ClientAddress(address): ClientAddress,
    ApiJson(req): ApiJson<JoinRequest>,
) -> Result<(StatusCode, Json<TicketDto>), Problem> {
    let now = state.engine.clock().now().timestamp();
    let room = room_to_join(&state, &req, now)?;
    if !matches!(Phase::of(&room, now), Phase::Prequeue | Phase::Open) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            ProblemCode::RoomNotOpen,
            format!("waiting room {} is not open for joining", room.id),
        ));
    }
    if let Some(address) = address {
        if state
            .rooms
            .join_limiter
            .check_key(&limit_key(address))
            .is_err()
        {
            let mut p = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                ProblemCode::RateLimited,
                "too many joins from this address; slow down",
            );
            p.retry_after_secs = Some(5);
            return Err(p);
        }
    }
    let code = applicant.national_code.as_string();
    let ticket_id = state.engine.ids().opaque("tkt");
    let eta_room = room.clone();
    let joined = state
        .store
        .join_room(
            &room.id,
            &code,
            &ticket_id,
            now,
            move |rs, seq| match room::place(&eta_room, rs, seq, now) {
                Place::Waiting { eta_seconds, .. } => Some(eta_seconds.min(i64::MAX as u64) as i64),
                Place::Admitted => Some(0),
                Place::Prequeue { .. } => None,
            },
            {
                let room = room.clone();
                move |t: &TicketRecord| ticket_expired(&room, t, now).is_some()
            },
        )
        .await?;
    if joined.created {
        metrics::counter!("nobat_room_joins_total", "room" => room.id.clone()).increment(1);
    }
    let dto = ticket_dto(&state, &room, &joined.state, &joined.ticket, now);
    let status = if joined.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(dto)))
}

/// Why a ticket no longer stands, if it does not: not polled within the room's idle time
/// before its admission, or its pass has run out. A join by its citizen queues them again at
/// the back (`Store::join_room`), so a closed page or a booking not finished in time costs the
/// place, not the day.
fn ticket_expired(room: &RoomRecord, t: &TicketRecord, now: i64) -> Option<&'static str> {
    if t.admitted_at.is_none() && now - t.last_seen_at > room.ticket_idle_minutes * 60 {
        return Some("the ticket was not polled in time and has expired; join again");
    }
    if t.admitted_at
        .is_some_and(|at| now >= at + room.pass_minutes * 60)
    {
        return Some("the ticket's pass has run out; join again");
    }
    None
}

/// Where a ticket stands; once admitted, its booking pass.
#[utoipa::path(get, path = "/v1/queue/{ticket}", tag = "applicant", security(("applicant" = [])),
    params(("ticket" = String, Path)),
    responses((status = 200, body = TicketDto), (status = 404, body = Problem),
        (status = 410, description = "the ticket was not polled for the room's idle time, or its pass ran out", body = Problem)))]
pub async fn poll_ticket(
    State(state): State<AppState>,
    applicant: Applicant,
    ApiPath(ticket): ApiPath<String>,
) -> Result<Json<TicketDto>, Problem> {
    let now = state.engine.clock().now().timestamp();
    let t = state
        .store
        .ticket(&ticket)
        .await?
        .filter(|t| t.national_code == applicant.national_code.as_string())
        .ok_or_else(ticket_not_found)?;
    let room = cached_room(&state, &t.room_id).await?;
    let expired = |detail: &str| {
        Problem::new(
            StatusCode::GONE,
            ProblemCode::TicketExpired,
            detail.to_string(),
        )
    };
    let idle = room.ticket_idle_minutes * 60;
    if now >= room.closes_at {
        return Err(expired("the waiting room has closed"));
    }
    if let Some(why) = ticket_expired(&room, &t, now) {
        return Err(expired(why));
    }
    let rs = room::fresh_state(&state, &room.id)
        .await?
        .ok_or_else(ticket_not_found)?;
    let mut dto = ticket_dto(&state, &room, &rs, &t, now);
    if dto.admitted && t.admitted_at.is_none() {
        // Admitted when the frontier passed the ticket's rank (the tick's time), given its
        // pass now: the pass, the wait and the ETA's error run from the admission.
        let prequeue = rs.prequeue.unwrap_or(rs.next_seq);
        let rank = room::rank(&room, prequeue, t.seq).min(i64::MAX as u64) as i64;
        let at = state.store.admit_ticket(&t.ticket, rank, now).await?;
        let wait = (at - t.joined_at).max(0) as f64;
        metrics::histogram!("nobat_room_wait_seconds", "room" => room.id.clone()).record(wait);
        // The ETA's error against the wait from when it was given: the join, or for a
        // pre-queue joiner its first poll after the opening.
        if let Some(eta) = t.eta_at_join {
            let waited = (at - t.eta_given_at.unwrap_or(t.joined_at)).max(0) as f64;
            if waited > 0.0 {
                metrics::histogram!("nobat_room_eta_error_ratio", "room" => room.id.clone())
                    .record((eta as f64 - waited).abs() / waited);
            }
        }
        let mut admitted = t.clone();
        admitted.admitted_at = Some(at);
        dto = ticket_dto(&state, &room, &rs, &admitted, now);
    } else if let (None, Some(_), "waiting") = (t.eta_at_join, dto.position, dto.status.as_str()) {
        // A pre-queue joiner's first ETA, served now that the opening has ordered it: recorded
        // once, so its error is measured like a later joiner's (this write is also its poll).
        let eta = dto.eta_seconds.min(i64::MAX as u64) as i64;
        state.store.record_eta(&t.ticket, eta, now).await?;
    } else if t.admitted_at.is_none() && now - t.last_seen_at >= idle / 2 {
        state.store.touch_ticket(&t.ticket, now).await?;
    }
    Ok(Json(dto))
}

/// A room's public state: its phase, queue, admissions, and the seed's commitment (the seed
/// itself from the opening).
#[utoipa::path(get, path = "/v1/queue/rooms/{room_id}", tag = "applicant",
    params(("room_id" = String, Path)),
    responses((status = 200, body = RoomDto), (status = 404, body = Problem)))]
pub async fn get_room(
    State(state): State<AppState>,
    ApiPath(room_id): ApiPath<String>,
) -> Result<Json<RoomDto>, Problem> {
    let now = state.engine.clock().now().timestamp();
    let room = cached_room(&state, &room_id).await?;
    let rs = room::fresh_state(&state, &room_id)
        .await?
        .ok_or_else(room_not_found)?;
    let phase = Phase::of(&room, now);
    let admitted = room::admitted(&rs);
    let passed = room::passed(&rs);
    Ok(Json(RoomDto {
        room_id: room.id.clone(),
        state: phase.as_str().to_string(),
        service: room.service.clone(),
        provinces: room.provinces.clone(),
        prequeue_opens_at: iran_rfc3339(room.prequeue_opens_at),
        opens_at: iran_rfc3339(room.opens_at),
        closes_at: iran_rfc3339(room.closes_at),
        commitment: room.commitment.clone(),
        seed: (now >= room.opens_at).then(|| room.seed.to_hex()),
        prequeue_size: rs.prequeue,
        queue_length: (rs.next_seq - passed).max(0),
        admitted,
        skipped: rs.skipped,
        joined: rs.next_seq,
        rate_per_minute: rs.rate_per_minute,
    }))
}

/// The place of a join number once the pre-queue is frozen (what anyone can recompute from
/// the revealed seed and the pre-queue's size).
#[utoipa::path(get, path = "/v1/queue/rooms/{room_id}/order", tag = "applicant",
    params(("room_id" = String, Path), OrderQuery),
    responses((status = 200, body = OrderDto), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn get_order(
    State(state): State<AppState>,
    ApiPath(room_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<OrderQuery>,
) -> Result<Json<OrderDto>, Problem> {
    let room = cached_room(&state, &room_id).await?;
    let rs = state
        .store
        .room_state(&room_id)
        .await?
        .ok_or_else(room_not_found)?;
    let Some(prequeue) = rs.prequeue else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            ProblemCode::RoomNotOpen,
            "the order is drawn at the opening",
        ));
    };
    if q.ticket_seq < 0 || q.ticket_seq >= rs.next_seq {
        return Err(Problem::invalid_field(
            "ticket_seq",
            ProblemCode::InvalidQuery,
            format!("0 to {}", rs.next_seq - 1),
        ));
    }
    let rank = room::rank(&room, prequeue, q.ticket_seq);
    Ok(Json(OrderDto {
        ticket_seq: q.ticket_seq,
        rank,
        in_prequeue: q.ticket_seq < prequeue,
        admitted: (rank as i64) < room::passed(&rs),
    }))
}
