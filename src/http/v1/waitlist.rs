//! The waitlist for freed seats: join, list (with positions and offers), leave, and accept or
//! decline an offer. Every change goes to the booking writer; a freed seat reaches a waiter
//! inside the transaction that freed it (`booking::Decider::give_up_seat`).
//!
//! Position: an entry's rank among the waiting entries that accept its nearest accepted
//! office (the first of `office_ids`, or the nearest within `max_km`), by join time. It is the
//! order in which that office's freed seats are offered, among waiters whose dates fit.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::bookings::{own_application, unexpected};
use super::dto::AppointmentDto;
use super::dto::PickDto;
use super::pick::wait_pick;
use super::receipt::appointment_dto;
use super::{iran_rfc3339, jalali, refusal_problem};
use crate::booking::{
    AcceptOffer, DeclineOffer, JoinWaitlist, LeaveWaitlist, Outcome, Refusal, Request, WaitRow,
    WaitStatus,
};
use crate::domain::ServiceCode;
use crate::http::auth::Applicant;
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::idempotency::{engine_key, key_from_headers, replay_or_run, request_hash, Ran};
use crate::http::{AppState, Problem};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitlistRequest {
    pub application_id: String,
    /// A paid payment of the application: the waitlist books with it.
    pub payment_id: String,
    pub pick: PickDto,
    /// Book a freed seat at once (true), or hold it as an offer to accept or decline (false,
    /// the default).
    #[serde(default)]
    pub auto_accept: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OfferDto {
    /// The offer's id (accept or decline it by this).
    pub offer_id: String,
    pub office_id: String,
    pub start: String,
    pub jalali_date: String,
    /// RFC 3339: the seat is held until then.
    pub expires_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WaitlistEntryDto {
    pub entry_id: String,
    /// `waiting`, `offered`, `booked`, `left` or `lapsed`.
    pub status: String,
    pub service: String,
    pub application_id: String,
    pub auto_accept: bool,
    pub pick: PickDto,
    pub joined_at: String,
    /// While waiting: the rank among the waiters of `position_office_id` (1 is next).
    pub position: Option<i64>,
    pub position_office_id: Option<String>,
    pub offer: Option<OfferDto>,
    /// The appointment the waitlist booked.
    pub tracking_code: Option<String>,
}

async fn entry_dto(state: &AppState, e: &WaitRow) -> Result<WaitlistEntryDto, Problem> {
    let pick: PickDto = serde_json::from_str(&e.limits_json).unwrap_or_default();
    let (mut position, mut position_office_id) = (None, None);
    if e.status == WaitStatus::Waiting {
        let office = ServiceCode::parse(&e.service)
            .ok()
            .and_then(|service| wait_pick(state, &pick, service).ok())
            .and_then(|p| p.offices.into_iter().next());
        if let Some(office) = office {
            position = Some(state.store.waitlist_position(&office, e).await?);
            position_office_id = Some(office);
        }
    }
    let mut offer = None;
    if let (WaitStatus::Offered, Some(hold_id)) = (e.status, &e.offer_hold_id) {
        if let Some(hold) = state.store.hold(hold_id).await? {
            if let Some(slot) = state.engine.availability().slot(hold.slot_id) {
                offer = Some(OfferDto {
                    offer_id: hold.id.clone(),
                    office_id: slot.office_id.to_string(),
                    start: iran_rfc3339(slot.start_at),
                    jalali_date: jalali(slot.start_at).0,
                    expires_at: iran_rfc3339(hold.expires_at),
                });
            }
        }
    }
    Ok(WaitlistEntryDto {
        entry_id: e.id.clone(),
        status: e.status.as_str().to_string(),
        service: e.service.clone(),
        application_id: e.application_id.clone(),
        auto_accept: e.auto_accept,
        pick,
        joined_at: iran_rfc3339(e.joined_at),
        position,
        position_office_id,
        offer,
        tracking_code: e.tracking_code.clone(),
    })
}

/// Join the waitlist for the application's service. One active entry per citizen and service:
/// the same request again answers 200 with the entry; a different one 409 `already_waiting`.
/// With an `Idempotency-Key`, a retry gets the first answer back (its status and body) even
/// after the entry has moved on.
#[utoipa::path(post, path = "/v1/waitlist", tag = "applicant", security(("applicant" = [])),
    request_body = WaitlistRequest, params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = WaitlistEntryDto),
        (status = 200, description = "the same entry, joined before", body = WaitlistEntryDto),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn join_waitlist(
    State(state): State<AppState>,
    applicant: Applicant,
    headers: HeaderMap,
    ApiJson(req): ApiJson<WaitlistRequest>,
) -> Result<Response, Problem> {
    let key = key_from_headers(&headers)?;
    let hash = request_hash(
        "POST",
        "/v1/waitlist",
        &serde_json::to_vec(&req).unwrap_or_default(),
    );
    let idem = engine_key(&applicant.national_code.to_string(), key, hash);
    let now = state.engine.clock().now().timestamp();
    // Joining is itself safe to repeat (the same request answers 200 with the entry); the key
    // makes a retry answer what the first got (201 rather than 200, or the refusal).
    let (status, body) = replay_or_run(&state.store, idem, now, |_| async {
        let (status, entry) = join(&state, &applicant, &req).await?;
        let body = serde_json::to_value(entry).map_err(|_| Problem::internal())?;
        Ok(Ran::answer(status, body))
    })
    .await?;
    Ok((status, Json(body)).into_response())
}

async fn join(
    state: &AppState,
    applicant: &Applicant,
    req: &WaitlistRequest,
) -> Result<(StatusCode, WaitlistEntryDto), Problem> {
    let (app, service) = own_application(state, applicant, &req.application_id).await?;
    let pick = wait_pick(state, &req.pick, service)?;
    let limits_json = serde_json::to_string(&req.pick).map_err(|_| Problem::internal())?;
    let request = Request::JoinWaitlist(Box::new(JoinWaitlist {
        national_code: app.national_code.clone(),
        application_id: app.id.clone().into(),
        service: app.service.clone(),
        payment_id: req.payment_id.clone().into(),
        entry_id: state.engine.ids().opaque("wait"),
        auto_accept: req.auto_accept,
        limits: pick.limits,
        limits_json,
        offices: pick.offices,
    }));
    match state.engine.submit(request).await?.outcome {
        Outcome::Waitlisted { entry, created } => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, entry_dto(state, &entry).await?))
        }
        Outcome::Refused(r) => Err(refusal_problem(&r)),
        other => Err(unexpected(&other)),
    }
}

/// Your waitlist entries (newest first), each with its position while waiting and its offer.
#[utoipa::path(get, path = "/v1/waitlist", tag = "applicant", security(("applicant" = [])),
    responses((status = 200, body = [WaitlistEntryDto])))]
pub async fn list_waitlist(
    State(state): State<AppState>,
    applicant: Applicant,
) -> Result<Json<Vec<WaitlistEntryDto>>, Problem> {
    let entries = state
        .store
        .waitlist_entries_of(&applicant.national_code.to_string())
        .await?;
    let mut out = Vec::with_capacity(entries.len());
    for e in &entries {
        out.push(entry_dto(&state, e).await?);
    }
    Ok(Json(out))
}

/// Leave the waitlist; an open offer is given up (its seat goes to the next waiter).
#[utoipa::path(delete, path = "/v1/waitlist/{entry_id}", tag = "applicant", security(("applicant" = [])),
    params(("entry_id" = String, Path)),
    responses((status = 200, body = WaitlistEntryDto), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn leave_waitlist(
    State(state): State<AppState>,
    applicant: Applicant,
    ApiPath(entry_id): ApiPath<String>,
) -> Result<Json<WaitlistEntryDto>, Problem> {
    let request = Request::LeaveWaitlist(LeaveWaitlist {
        national_code: applicant.national_code.to_string(),
        entry_id,
        lapsed: false,
    });
    match state.engine.submit(request).await?.outcome {
        Outcome::WaitlistLeft { entry } => Ok(Json(entry_dto(&state, &entry).await?)),
        Outcome::Refused(r) => Err(refusal_problem(&r)),
        other => Err(unexpected(&other)),
    }
}

/// The applicant's entry whose open offer is `offer_id`.
async fn offered_entry(
    state: &AppState,
    applicant: &Applicant,
    offer_id: &str,
) -> Result<WaitRow, Problem> {
    state
        .store
        .waitlist_entry_by_offer(offer_id)
        .await?
        .filter(|e| e.national_code == applicant.national_code.to_string())
        .ok_or_else(|| refusal_problem(&Refusal::OfferNotFound))
}

/// Accept an offer: the held seat becomes your appointment, paid with the entry's payment.
#[utoipa::path(post, path = "/v1/waitlist/offers/{offer_id}/accept", tag = "applicant", security(("applicant" = [])),
    params(("offer_id" = String, Path)),
    responses(
        (status = 201, body = AppointmentDto),
        (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 410, description = "the offer expired", body = Problem)))]
pub async fn accept_offer(
    State(state): State<AppState>,
    applicant: Applicant,
    ApiPath(offer_id): ApiPath<String>,
) -> Result<Response, Problem> {
    let entry = offered_entry(&state, &applicant, &offer_id).await?;
    let request = Request::AcceptOffer(AcceptOffer {
        national_code: applicant.national_code.to_string(),
        entry_id: entry.id.clone(),
        hold_id: offer_id.into(),
        payment_id: entry.payment_id.clone().into(),
        tracking_code: state.engine.ids().tracking_code().into(),
    });
    match state.engine.submit(request).await?.outcome {
        Outcome::Booked { appointment } => Ok((
            StatusCode::CREATED,
            Json::<AppointmentDto>(appointment_dto(&state, &appointment)),
        )
            .into_response()),
        Outcome::Refused(r) => Err(refusal_problem(&r)),
        other => Err(unexpected(&other)),
    }
}

/// Decline an offer: the seat goes to the next waiter, and you keep waiting.
#[utoipa::path(post, path = "/v1/waitlist/offers/{offer_id}/decline", tag = "applicant", security(("applicant" = [])),
    params(("offer_id" = String, Path)),
    responses(
        (status = 200, body = WaitlistEntryDto),
        (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 410, description = "the offer expired", body = Problem)))]
pub async fn decline_offer(
    State(state): State<AppState>,
    applicant: Applicant,
    ApiPath(offer_id): ApiPath<String>,
) -> Result<Json<WaitlistEntryDto>, Problem> {
    let entry = offered_entry(&state, &applicant, &offer_id).await?;
    let request = Request::DeclineOffer(DeclineOffer {
        national_code: applicant.national_code.to_string(),
        entry_id: entry.id.clone(),
        hold_id: offer_id.into(),
    });
    match state.engine.submit(request).await?.outcome {
        Outcome::OfferDeclined { entry } => Ok(Json(entry_dto(&state, &entry).await?)),
        Outcome::Refused(r) => Err(refusal_problem(&r)),
        other => Err(unexpected(&other)),
    }
}
