//! `POST /v1/admin/waiting-rooms`: a waiting room in front of the booking writes of one service
//! (in some provinces, or all). Its seed is drawn here and only its commitment is shown until
//! the opening.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::super::operators::Admin;
use super::super::{AppState, Problem};
use crate::domain::lottery::LotterySeed;
use crate::domain::province::Province;
use crate::domain::ServiceCode;
use crate::http::extract::ApiJson;
use crate::http::problem::ProblemCode;
use crate::http::v1::iran_rfc3339;
use crate::room::{Admission, AdmissionPolicy};
use crate::store::RoomRecord;

/// Longest a room may stay open, and how far ahead one may be set up.
const ROOM_DAYS_MAX: i64 = 31;
const PASS_MINUTES_MAX: u32 = 120;
const IDLE_MINUTES_MAX: u32 = 60;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomScopeDto {
    /// The service whose bookings go through the room.
    pub service: String,
    /// Province slugs; absent or empty: every province.
    #[serde(default)]
    pub provinces: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoAdmissionDto {
    /// The booking p99 (milliseconds) the controller keeps under.
    pub target_p99_ms: u32,
    /// Passes in use at most.
    pub max_active: u32,
}

/// Exactly one of `per_minute` (a fixed rate) and `auto` (the controller).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdmissionDto {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<AutoAdmissionDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomRequest {
    pub scope: RoomScopeDto,
    /// RFC 3339; joins from then on are in the pre-queue (shuffled at the opening).
    pub prequeue_opens_at: String,
    /// RFC 3339; the seed is revealed and admission starts.
    pub opens_at: String,
    /// RFC 3339; the room stops checking passes.
    pub closes_at: String,
    pub admission: AdmissionDto,
    /// How long a pass is valid after admission (1 to 120; default 10).
    #[serde(default)]
    pub pass_minutes: Option<u32>,
    /// A ticket not polled for this long expires (1 to 60; default 5).
    #[serde(default)]
    pub ticket_idle_minutes: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoomCreatedDto {
    pub room_id: String,
    /// SHA-256 of the seed (hex), published now; the seed is revealed at `opens_at`.
    pub commitment: String,
    pub scope: RoomScopeDto,
    pub prequeue_opens_at: String,
    pub opens_at: String,
    pub closes_at: String,
    pub pass_minutes: u32,
    pub ticket_idle_minutes: u32,
}

fn instant(field: &str, text: &str) -> Result<i64, Problem> {
    DateTime::<FixedOffset>::parse_from_rfc3339(text)
        .map(|t| t.timestamp())
        .map_err(|_| Problem::invalid_field(field, ProblemCode::InvalidTime, "an RFC 3339 instant"))
}

fn minutes(field: &str, value: Option<u32>, default: u32, max: u32) -> Result<u32, Problem> {
    let m = value.unwrap_or(default);
    if (1..=max).contains(&m) {
        Ok(m)
    } else {
        Err(Problem::invalid_field(
            field,
            ProblemCode::InvalidMinutes,
            format!("1 to {max} minutes"),
        ))
    }
}

fn policy(dto: &AdmissionDto) -> Result<AdmissionPolicy, Problem> {
    let bad = |detail: &str| {
        Err(Problem::invalid_field(
            "admission",
            ProblemCode::InvalidAdmission,
            detail.to_string(),
        ))
    };
    match (dto.per_minute, &dto.auto) {
        (Some(per_minute), None)
            if (1..=crate::room::admission::RATE_MAX_PER_MINUTE).contains(&per_minute) =>
        {
            Ok(AdmissionPolicy::Fixed { per_minute })
        }
        (Some(_), None) => bad("per_minute is 1 to 600,000"),
        (None, Some(a))
            if (1..=60_000).contains(&a.target_p99_ms)
                && (1..=1_000_000).contains(&a.max_active) =>
        {
            Ok(AdmissionPolicy::Auto {
                target_p99_ms: a.target_p99_ms,
                max_active: a.max_active,
            })
        }
        (None, Some(_)) => bad("auto: target_p99_ms 1 to 60,000 and max_active 1 to 1,000,000"),
        _ => bad("exactly one of per_minute and auto"),
    }
}

/// Checks the whole request (nothing is written unless all of it is valid).
fn room_of(
    req: &RoomRequest,
    now: i64,
    id: String,
    seed: LotterySeed,
) -> Result<RoomRecord, Problem> {
    let service = ServiceCode::parse(&req.scope.service).map_err(|_| {
        Problem::invalid_field(
            "scope.service",
            ProblemCode::UnknownService,
            "no such service",
        )
    })?;
    let mut provinces = Vec::with_capacity(req.scope.provinces.len());
    for p in &req.scope.provinces {
        let province = Province::by_slug(p).ok_or_else(|| {
            Problem::invalid_field(
                "scope.provinces",
                ProblemCode::UnknownProvince,
                format!("no province {p:?}"),
            )
        })?;
        if !provinces.contains(&province.slug) {
            provinces.push(province.slug.clone());
        }
    }
    let prequeue_opens_at = instant("prequeue_opens_at", &req.prequeue_opens_at)?;
    let opens_at = instant("opens_at", &req.opens_at)?;
    let closes_at = instant("closes_at", &req.closes_at)?;
    let range = |field: &str, detail: &str| {
        Problem::invalid_field(field, ProblemCode::InvalidRange, detail.to_string())
    };
    if prequeue_opens_at > opens_at {
        return Err(range("prequeue_opens_at", "at or before opens_at"));
    }
    if closes_at <= opens_at {
        return Err(range("closes_at", "after opens_at"));
    }
    if closes_at <= now {
        return Err(range("closes_at", "in the future"));
    }
    if closes_at - prequeue_opens_at > ROOM_DAYS_MAX * 86_400
        || opens_at - now > ROOM_DAYS_MAX * 86_400
    {
        return Err(range(
            "closes_at",
            "a room lasts at most 31 days and opens within 31 days",
        ));
    }
    let admission = policy(&req.admission)?;
    let pass_minutes = minutes("pass_minutes", req.pass_minutes, 10, PASS_MINUTES_MAX)?;
    let ticket_idle_minutes = minutes(
        "ticket_idle_minutes",
        req.ticket_idle_minutes,
        5,
        IDLE_MINUTES_MAX,
    )?;
    Ok(RoomRecord {
        id,
        service: service.as_str().to_string(),
        provinces,
        prequeue_opens_at,
        opens_at,
        closes_at,
        admission,
        pass_minutes: i64::from(pass_minutes),
        ticket_idle_minutes: i64::from(ticket_idle_minutes),
        commitment: seed.commitment(),
        seed,
        created_at: now,
        rate_per_minute: i64::from(Admission::opening(&admission).rate_per_minute),
    })
}

/// Set up a waiting room. Its seed's commitment is published now, the seed at the opening.
#[utoipa::path(post, path = "/v1/admin/waiting-rooms", tag = "admin", security(("admin" = [])),
    request_body = RoomRequest,
    responses((status = 201, body = RoomCreatedDto), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn create_room(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(req): ApiJson<RoomRequest>,
) -> Result<(StatusCode, Json<RoomCreatedDto>), Problem> {
    let now = state.engine.clock().now().timestamp();
    let seed = LotterySeed::draw(&mut rand::rngs::OsRng);
    let room = room_of(&req, now, state.engine.ids().opaque("room"), seed)?;
    state.store.insert_room(&room).await?;
    let dto = RoomCreatedDto {
        room_id: room.id.clone(),
        commitment: room.commitment.clone(),
        scope: RoomScopeDto {
            service: room.service.clone(),
            provinces: room.provinces.clone(),
        },
        prequeue_opens_at: iran_rfc3339(room.prequeue_opens_at),
        opens_at: iran_rfc3339(room.opens_at),
        closes_at: iran_rfc3339(room.closes_at),
        pass_minutes: room.pass_minutes as u32,
        ticket_idle_minutes: room.ticket_idle_minutes as u32,
    };
    state.rooms.add(room);
    Ok((StatusCode::CREATED, Json(dto)))
}
