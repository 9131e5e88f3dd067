//! `/v1/admin/release-waves`: seats of a date range (some offices, or all; one service, or
//! all) that open for booking at a given time. The wave is written onto the slots it covers
//! (`store::waves`), so the booking writer refuses their seats until then; this node's
//! availability view is reloaded at once, the others on the configuration version (the
//! audit middleware moves it on).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::super::operators::Admin;
use super::super::{AppState, Problem};
use super::{invalid, office_not_found};
use crate::domain::province::Province;
use crate::domain::time::{iran_date, iran_instant};
use crate::domain::{OfficeId, ServiceCode};
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::problem::ProblemCode;
use crate::http::v1::iran_rfc3339;
use crate::store::{Cancelled, WaveRecord};

/// The longest date range one wave covers, and how far ahead it may open.
const WAVE_DAYS_MAX: i64 = 62;
const OPENS_AHEAD_DAYS_MAX: i64 = 366;
/// Offices one wave names at most.
const WAVE_OFFICES_MAX: usize = 1_000;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaveRequest {
    /// The service whose bookings wait for the opening; absent: every service. Slots are
    /// shared between services, so listings and auto-pick show the seats closed to all.
    #[serde(default)]
    pub service: Option<String>,
    /// Province slugs whose offices are covered; absent or empty (and no `office_ids`):
    /// every office.
    #[serde(default)]
    pub provinces: Vec<String>,
    /// Offices covered (instead of `provinces`; at most 1,000).
    #[serde(default)]
    pub office_ids: Vec<String>,
    /// The first slot date covered, `YYYY-MM-DD` (Iran time).
    pub from_date: String,
    /// The last slot date covered, `YYYY-MM-DD` (at most 62 days after `from_date`).
    pub to_date: String,
    /// RFC 3339: when the covered seats become bookable (in the future, before the last
    /// covered date ends).
    pub opens_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WaveDto {
    pub wave_id: String,
    /// Absent: every service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub provinces: Vec<String>,
    /// The offices covered (those of `provinces` when given); empty: every office.
    pub office_ids: Vec<String>,
    pub from_date: String,
    pub to_date: String,
    pub opens_at: String,
    pub created_at: String,
    /// `pending`, `open` or `cancelled`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<String>,
    /// Slots covered when the wave was created (only in the answer to its creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<u64>,
}

fn wave_dto(w: &WaveRecord, now: i64, slots: Option<u64>) -> WaveDto {
    let state = if w.cancelled_at.is_some() {
        "cancelled"
    } else if w.opens_at > now {
        "pending"
    } else {
        "open"
    };
    WaveDto {
        wave_id: w.id.clone(),
        service: w.service.clone(),
        provinces: w.provinces.clone(),
        office_ids: w.office_ids.clone(),
        from_date: w.from_date.clone(),
        to_date: w.to_date.clone(),
        opens_at: iran_rfc3339(w.opens_at),
        created_at: iran_rfc3339(w.created_at),
        state: state.to_string(),
        cancelled_at: w.cancelled_at.map(iran_rfc3339),
        slots,
    }
}

fn date(field: &'static str, text: &str) -> Result<NaiveDate, Problem> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| invalid(field, ProblemCode::InvalidDate, "a date, YYYY-MM-DD"))
}

fn day_start(field: &'static str, day: NaiveDate) -> Result<i64, Problem> {
    iran_instant(day, NaiveTime::MIN)
        .map(|t| t.timestamp())
        .map_err(|_| {
            invalid(
                field,
                ProblemCode::InvalidDate,
                "a date whose day has a start",
            )
        })
}

/// The offices a request names, resolved: its `office_ids`, or the offices of its provinces
/// (with the slugs asked for), or none for every office.
fn offices_of(state: &AppState, req: &WaveRequest) -> Result<(Vec<String>, Vec<String>), Problem> {
    if !req.provinces.is_empty() && !req.office_ids.is_empty() {
        return Err(invalid(
            "office_ids",
            ProblemCode::InvalidWave,
            "give provinces or office_ids, not both",
        ));
    }
    if req.office_ids.len() > WAVE_OFFICES_MAX {
        return Err(invalid(
            "office_ids",
            ProblemCode::InvalidWave,
            format!("at most {WAVE_OFFICES_MAX} offices"),
        ));
    }
    let directory = state.directory();
    let mut offices = Vec::new();
    for id in &req.office_ids {
        let id = OfficeId::parse(id)?;
        if directory.get(id.as_str()).is_none() {
            return Err(office_not_found(id.as_str()));
        }
        if !offices.contains(&id.as_str().to_string()) {
            offices.push(id.as_str().to_string());
        }
    }
    let mut provinces: Vec<String> = Vec::new();
    for p in &req.provinces {
        let province = Province::by_slug(p).ok_or_else(|| {
            invalid(
                "provinces",
                ProblemCode::UnknownProvince,
                format!("no province {p:?}"),
            )
        })?;
        if !provinces.contains(&province.slug) {
            provinces.push(province.slug.clone());
        }
    }
    if !provinces.is_empty() {
        offices = directory
            .all()
            .iter()
            .filter(|o| provinces.contains(&o.province))
            .map(|o| o.id.as_str().to_string())
            .collect();
        if offices.is_empty() {
            return Err(invalid(
                "provinces",
                ProblemCode::InvalidWave,
                "no office in those provinces",
            ));
        }
    }
    Ok((provinces, offices))
}

/// Checks the whole request (nothing is written unless all of it is valid).
fn wave_of(
    state: &AppState,
    req: &WaveRequest,
    now: i64,
    id: String,
) -> Result<WaveRecord, Problem> {
    let service = req
        .service
        .as_deref()
        .map(|s| {
            ServiceCode::parse(s)
                .map(|c| c.as_str().to_string())
                .map_err(|_| invalid("service", ProblemCode::UnknownService, "no such service"))
        })
        .transpose()?;
    let (provinces, office_ids) = offices_of(state, req)?;
    let from = date("from_date", &req.from_date)?;
    let to = date("to_date", &req.to_date)?;
    if to < from || (to - from).num_days() >= WAVE_DAYS_MAX {
        return Err(invalid(
            "to_date",
            ProblemCode::InvalidRange,
            format!("on or after from_date, covering at most {WAVE_DAYS_MAX} days"),
        ));
    }
    let today = iran_date(state.engine.clock().now());
    if to < today {
        return Err(invalid(
            "to_date",
            ProblemCode::InvalidRange,
            "today or later",
        ));
    }
    let from_unix = day_start("from_date", from)?;
    let after_to = to.succ_opt().ok_or_else(|| {
        invalid(
            "to_date",
            ProblemCode::InvalidDate,
            "a date with a next day",
        )
    })?;
    let to_unix = day_start("to_date", after_to)?;
    let opens_at = DateTime::<FixedOffset>::parse_from_rfc3339(req.opens_at.trim())
        .map(|t| t.timestamp())
        .map_err(|_| invalid("opens_at", ProblemCode::InvalidTime, "an RFC 3339 instant"))?;
    if opens_at <= now || opens_at - now > OPENS_AHEAD_DAYS_MAX * 86_400 {
        return Err(invalid(
            "opens_at",
            ProblemCode::InvalidTime,
            format!("in the future, within {OPENS_AHEAD_DAYS_MAX} days"),
        ));
    }
    if opens_at >= to_unix {
        return Err(invalid(
            "opens_at",
            ProblemCode::InvalidTime,
            "before the last covered date ends",
        ));
    }
    Ok(WaveRecord {
        id,
        service,
        provinces,
        office_ids,
        from_date: from.to_string(),
        to_date: to.to_string(),
        from_unix,
        to_unix,
        opens_at,
        created_at: now,
        cancelled_at: None,
    })
}

/// Schedule seats of a date range to open at a given time. Until then no hold, booking,
/// reschedule or waitlist offer takes one (409 `not_yet_released`), and slot listings show
/// their `opens_at`. Pending waves may not overlap.
#[utoipa::path(post, path = "/v1/admin/release-waves", tag = "admin", security(("admin" = [])),
    request_body = WaveRequest,
    responses((status = 201, body = WaveDto), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_release_wave(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(req): ApiJson<WaveRequest>,
) -> Result<(StatusCode, Json<WaveDto>), Problem> {
    let now = state.engine.clock().now().timestamp();
    let wave = wave_of(&state, &req, now, state.engine.ids().opaque("wave"))?;
    match state.store.create_release_wave(&wave, now).await? {
        Ok(slots) => {
            state.engine.refresh().await?;
            Ok((StatusCode::CREATED, Json(wave_dto(&wave, now, Some(slots)))))
        }
        Err(other) => Err(Problem::new(
            StatusCode::CONFLICT,
            ProblemCode::WaveOverlap,
            format!("the pending wave {other} covers some of these slots; cancel it first"),
        )
        .with_extra(serde_json::json!({ "wave_id": other }))),
    }
}

/// Every release wave (newest first, at most 1,000), with its state.
#[utoipa::path(get, path = "/v1/admin/release-waves", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = [WaveDto]), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_release_waves(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Vec<WaveDto>>, Problem> {
    let now = state.engine.clock().now().timestamp();
    let waves = state.store.release_waves().await?;
    Ok(Json(waves.iter().map(|w| wave_dto(w, now, None)).collect()))
}

/// Cancel a wave not yet open: its seats are bookable at once. Cancelling it again answers
/// the cancelled wave.
#[utoipa::path(delete, path = "/v1/admin/release-waves/{wave_id}", tag = "admin", security(("admin" = [])),
    params(("wave_id" = String, Path)),
    responses((status = 200, body = WaveDto), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel_release_wave(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(wave_id): ApiPath<String>,
) -> Result<Json<WaveDto>, Problem> {
    let now = state.engine.clock().now().timestamp();
    match state.store.cancel_release_wave(&wave_id, now).await? {
        Cancelled::NotFound => Err(Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::WaveNotFound,
            "no such release wave",
        )),
        Cancelled::AlreadyOpen(w) => Err(Problem::new(
            StatusCode::CONFLICT,
            ProblemCode::WaveAlreadyOpen,
            format!("the wave opened at {}", iran_rfc3339(w.opens_at)),
        )),
        Cancelled::Done(w) => {
            state.engine.refresh().await?;
            Ok(Json(wave_dto(&w, now, None)))
        }
    }
}
