//! Holds and appointments: everything that changes seats goes to the booking engine's writer.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::dto::{
    AppointmentDto, BookRequest, ConfirmRequest, HoldRequest, HoldResponse, PickedDto,
    RescheduleRequest,
};
use super::owners::Owner;
use super::pick::{self, seat_form, SeatForm};
use super::receipt::appointment_dto;
use super::{iran_rfc3339, jalali, refusal_problem, resolve_slot, slot_dto};
use crate::booking::{
    Book, Cancel, Confirm, Hold, HoldRow, Outcome, PickBook, PickHold, Refusal, Release, Request,
    Reschedule, UnixSeconds,
};
use crate::domain::ServiceCode;
use crate::http::auth::Applicant;
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::idempotency::{
    engine_key, key_from_headers, rendered_json, rendered_problem, request_hash, respond,
};
use crate::http::problem::ProblemCode;
use crate::http::{AppState, Problem};
use crate::reserve::ids::normalise_tracking_code;
use crate::reserve::{Candidate, IdempotencyKey, Render, Rendered};

/// Alternatives offered with `slot_full`: free slots at the same office, then at the nearest
/// other offices offering the service.
const ALTERNATIVES_SAME_OFFICE: usize = 3;
const ALTERNATIVE_OFFICES: usize = 3;

fn idempotency(
    headers: &HeaderMap,
    applicant: &Applicant,
    method: &str,
    path: &str,
    body: &impl serde::Serialize,
) -> Result<Option<IdempotencyKey>, Problem> {
    let key = key_from_headers(headers)?;
    let hash = request_hash(method, path, &serde_json::to_vec(body).unwrap_or_default());
    Ok(engine_key(&applicant.national_code.to_string(), key, hash))
}

pub(super) async fn own_application(
    state: &AppState,
    applicant: &Applicant,
    id: &str,
) -> Result<(OwnApplication, ServiceCode), Problem> {
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::ApplicationNotFound,
            "no such application",
        )
    };
    let owner = match state.owners.get(id) {
        Some(owner) => owner,
        None => {
            let app = state.store.application(id).await?.ok_or_else(not_found)?;
            let owner = Owner {
                national_code: app.national_code.into(),
                service: ServiceCode::parse(&app.service)?,
            };
            state.owners.put(id, owner.clone());
            owner
        }
    };
    let national_code = applicant.national_code.to_string();
    if *owner.national_code != *national_code {
        return Err(not_found());
    }
    let app = OwnApplication {
        id: id.to_string(),
        national_code,
        service: owner.service.as_str().to_string(),
    };
    Ok((app, owner.service))
}

/// An application the logged-in applicant filed: what a request on it names.
pub(super) struct OwnApplication {
    pub id: String,
    pub national_code: String,
    pub service: String,
}

fn slot_full_problem(
    state: &AppState,
    refusal: &Refusal,
    office_id: &str,
    service: ServiceCode,
) -> Problem {
    let now = state.engine.clock().now().timestamp();
    let availability = state.engine.availability();
    // With an Idempotency-Key this runs in the writer's transaction, before the batch's seats
    // reach the view, which may still show the full slot free: it is left out by name.
    let full_slot = match refusal {
        Refusal::SlotFull { slot_id } => Some(*slot_id),
        _ => None,
    };
    let same_office: Vec<_> = availability
        .earliest_free_for(
            office_id,
            now,
            ALTERNATIVES_SAME_OFFICE + 1,
            Some(service.as_str()),
        )
        .iter()
        .filter(|s| Some(s.id) != full_slot)
        .take(ALTERNATIVES_SAME_OFFICE)
        .map(slot_dto)
        .collect();
    let directory = state.directory();
    let nearby: Vec<_> = directory
        .get(office_id)
        .map(|o| {
            directory
                .nearest_offering(o, service)
                .filter_map(|(other, d)| {
                    let free = availability.earliest_free_for(
                        other.id.as_str(),
                        now,
                        1,
                        Some(service.as_str()),
                    );
                    free.first().map(|s| {
                        serde_json::json!({
                            "office_id": other.id.to_string(),
                            "name": other.name,
                            "distance_km": (d * 100.0).round() / 100.0,
                            "slot": slot_dto(s),
                        })
                    })
                })
                .take(ALTERNATIVE_OFFICES)
                .collect()
        })
        .unwrap_or_default();
    refusal_problem(refusal).with_extra(
        serde_json::json!({ "alternatives": { "same_office": same_office, "nearby": nearby } }),
    )
}

/// Maps a refusal to its problem, adding alternatives when the slot was full.
fn refused(
    state: &AppState,
    refusal: &Refusal,
    office_id: Option<&str>,
    service: Option<ServiceCode>,
) -> Problem {
    match (refusal, office_id, service) {
        (Refusal::SlotFull { .. }, Some(office), Some(service)) => {
            slot_full_problem(state, refusal, office, service)
        }
        _ => refusal_problem(refusal),
    }
}

fn created(dto: AppointmentDto) -> Rendered {
    rendered_json(StatusCode::CREATED, &dto)
}

/// Submits a booking request and answers with what `render` makes of its outcome. With an
/// Idempotency-Key the writer renders it inside the transaction that stores the key, so a retry
/// gets these very bytes back.
async fn answer(
    state: &AppState,
    request: Request,
    idempotency: Option<IdempotencyKey>,
    render: impl Fn(&Outcome) -> Rendered + Send + Sync + 'static,
) -> Result<Response, Problem> {
    let render: Render = Arc::new(render);
    let answer = state
        .engine
        .submit_rendered(request, idempotency, render)
        .await?;
    Ok(respond(answer.rendered))
}

/// Hold a seat while paying: the slot named by `office_id` and `start`, or the one the engine
/// picks (`pick`: the free seat of least cost within the limits given). One live hold per
/// applicant; it expires after the hold time.
#[utoipa::path(post, path = "/v1/holds", tag = "applicant", security(("applicant" = [])),
    request_body = HoldRequest, params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = HoldResponse),
        (status = 409, description = "slot_full (with alternatives), no_seat_within_limits (with relaxations and the waitlist), already_holding or already_booked", body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn create_hold(
    State(state): State<AppState>,
    applicant: Applicant,
    headers: HeaderMap,
    ApiJson(req): ApiJson<HoldRequest>,
) -> Result<Response, Problem> {
    let idem = idempotency(&headers, &applicant, "POST", "/v1/holds", &req)?;
    let form = seat_form(&req.office_id, &req.start, &req.pick)?;
    let (app, service) = own_application(&state, &applicant, &req.application_id).await?;
    let now = state.engine.clock().now().timestamp();
    let hold_id = state.engine.ids().opaque("hold");
    let expires_at = now + state.engine.config().hold_ttl.as_secs() as i64;
    let (office_id, start) = match form {
        SeatForm::Named { office_id, start } => (office_id.to_owned(), start),
        SeatForm::Pick(pick) => {
            let resolved = Arc::new(pick::resolve(&state, pick, service)?);
            let make = |candidates| {
                Request::PickHold(PickHold {
                    national_code: app.national_code.clone(),
                    application_id: app.id.clone().into(),
                    service: app.service.clone(),
                    candidates,
                    hold_id: hold_id.clone().into(),
                    expires_at,
                })
            };
            let render = |candidates: Arc<[Candidate]>| -> Render {
                let resolved = resolved.clone();
                Arc::new(move |outcome: &Outcome| match outcome {
                    Outcome::Held { hold } => {
                        match candidates.iter().find(|c| c.slot_id == hold.slot_id) {
                            Some(c) => {
                                let picked = Some(pick::picked(&resolved, c));
                                let body = hold_response(hold, &c.office_id, c.start_at, picked);
                                rendered_json(StatusCode::CREATED, &body)
                            }
                            None => rendered_problem(&unexpected(outcome)),
                        }
                    }
                    Outcome::Refused(r) => rendered_problem(&refusal_problem(r)),
                    other => rendered_problem(&unexpected(other)),
                })
            };
            return pick::pick_seat(&state, &resolved, idem, make, render).await;
        }
    };
    let slot = resolve_slot(&state, &office_id, start, service)?;
    let (slot_office, slot_start) = (slot.office_id.clone(), slot.start_at);
    let request = Request::Hold(Hold {
        national_code: app.national_code.clone(),
        application_id: app.id.clone().into(),
        service: app.service.clone(),
        slot_id: slot.id,
        hold_id: hold_id.into(),
        expires_at,
    });
    let at = state.clone();
    answer(&state, request, idem, move |outcome| match outcome {
        Outcome::Held { hold } => rendered_json(
            StatusCode::CREATED,
            &hold_response(hold, &slot_office, slot_start, None),
        ),
        Outcome::Refused(r) => rendered_problem(&refused(&at, r, Some(&office_id), Some(service))),
        other => rendered_problem(&unexpected(other)),
    })
    .await
}

fn hold_response(
    hold: &HoldRow,
    office_id: &str,
    start_at: UnixSeconds,
    pick: Option<PickedDto>,
) -> HoldResponse {
    let (jalali_date, _) = jalali(start_at);
    HoldResponse {
        hold_id: hold.id.clone(),
        office_id: office_id.to_owned(),
        start: iran_rfc3339(start_at),
        jalali_date,
        expires_at: iran_rfc3339(hold.expires_at),
        pick,
    }
}

/// Confirm a hold with a paid payment for the same application: the appointment is booked.
#[utoipa::path(post, path = "/v1/holds/{hold_id}/confirm", tag = "applicant", security(("applicant" = [])),
    request_body = ConfirmRequest, params(("hold_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = AppointmentDto),
        (status = 402, description = "the payment is not paid; the hold stays until it expires", body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 410, description = "the hold expired", body = Problem)))]
pub async fn confirm_hold(
    State(state): State<AppState>,
    applicant: Applicant,
    ApiPath(hold_id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ConfirmRequest>,
) -> Result<Response, Problem> {
    let idem = idempotency(
        &headers,
        &applicant,
        "POST",
        &format!("/v1/holds/{hold_id}/confirm"),
        &req,
    )?;
    let request = Request::Confirm(Confirm {
        national_code: applicant.national_code.to_string(),
        hold_id: hold_id.into(),
        payment_id: req.payment_id.into(),
        tracking_code: state.engine.ids().tracking_code().into(),
    });
    let at = state.clone();
    answer(&state, request, idem, move |outcome| match outcome {
        Outcome::Booked { appointment } => created(appointment_dto(&at, appointment)),
        Outcome::Refused(r) => rendered_problem(&refused(&at, r, None, None)),
        other => rendered_problem(&unexpected(other)),
    })
    .await
}

/// Release a hold before it expires.
#[utoipa::path(delete, path = "/v1/holds/{hold_id}", tag = "applicant", security(("applicant" = [])),
    params(("hold_id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn release_hold(
    State(state): State<AppState>,
    applicant: Applicant,
    ApiPath(hold_id): ApiPath<String>,
) -> Result<StatusCode, Problem> {
    let request = Request::Release(Release {
        national_code: applicant.national_code.to_string(),
        hold_id: hold_id.into(),
        closing: false,
    });
    match state.engine.submit(request).await?.outcome {
        Outcome::Released { .. } => Ok(StatusCode::NO_CONTENT),
        Outcome::Refused(r) => Err(refusal_problem(&r)),
        other => Err(unexpected(&other)),
    }
}

/// Hold and confirm in one step, for simple clients: in the slot named, or in the one the
/// engine picks (`pick`).
#[utoipa::path(post, path = "/v1/appointments", tag = "applicant", security(("applicant" = [])),
    request_body = BookRequest, params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = AppointmentDto),
        (status = 402, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "slot_full (with alternatives), no_seat_within_limits (with relaxations and the waitlist), already_holding or already_booked", body = Problem),
        (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn book(
    State(state): State<AppState>,
    applicant: Applicant,
    headers: HeaderMap,
    ApiJson(req): ApiJson<BookRequest>,
) -> Result<Response, Problem> {
    let idem = idempotency(&headers, &applicant, "POST", "/v1/appointments", &req)?;
    let form = seat_form(&req.office_id, &req.start, &req.pick)?;
    let (app, service) = own_application(&state, &applicant, &req.application_id).await?;
    let hold_id = state.engine.ids().opaque("hold");
    let tracking_code = state.engine.ids().tracking_code();
    let (office_id, start) = match form {
        SeatForm::Named { office_id, start } => (office_id.to_owned(), start),
        SeatForm::Pick(pick) => {
            let resolved = Arc::new(pick::resolve(&state, pick, service)?);
            let make = |candidates| {
                Request::PickBook(PickBook {
                    national_code: app.national_code.clone(),
                    application_id: app.id.clone().into(),
                    service: app.service.clone(),
                    candidates,
                    payment_id: req.payment_id.clone().into(),
                    hold_id: hold_id.clone().into(),
                    tracking_code: tracking_code.clone().into(),
                })
            };
            let render = |candidates: Arc<[Candidate]>| -> Render {
                let (resolved, at) = (resolved.clone(), state.clone());
                Arc::new(move |outcome: &Outcome| match outcome {
                    Outcome::Booked { appointment } => {
                        let mut dto = appointment_dto(&at, appointment);
                        dto.pick = candidates
                            .iter()
                            .find(|c| c.slot_id == appointment.slot_id)
                            .map(|c| pick::picked(&resolved, c));
                        created(dto)
                    }
                    Outcome::Refused(r) => rendered_problem(&refusal_problem(r)),
                    other => rendered_problem(&unexpected(other)),
                })
            };
            return pick::pick_seat(&state, &resolved, idem, make, render).await;
        }
    };
    let slot = resolve_slot(&state, &office_id, start, service)?;
    let request = Request::Book(Book {
        national_code: app.national_code.clone(),
        application_id: app.id.clone().into(),
        service: app.service.clone(),
        slot_id: slot.id,
        payment_id: req.payment_id.clone().into(),
        hold_id: hold_id.into(),
        tracking_code: tracking_code.into(),
    });
    let at = state.clone();
    answer(&state, request, idem, move |outcome| match outcome {
        Outcome::Booked { appointment } => created(appointment_dto(&at, appointment)),
        Outcome::Refused(r) => rendered_problem(&refused(&at, r, Some(&office_id), Some(service))),
        other => rendered_problem(&unexpected(other)),
    })
    .await
}

fn tracking(code: &str) -> Result<String, Problem> {
    normalise_tracking_code(code).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::AppointmentNotFound,
            "no such appointment",
        )
    })
}

/// Cancel an appointment. Its seat goes to the first waiter on the waitlist whose limits fit;
/// with none, it returns to booking after a random delay (anti-trading release, 5 to 30 min).
#[utoipa::path(post, path = "/v1/appointments/{tracking_code}/cancel", tag = "applicant", security(("applicant" = [])),
    params(("tracking_code" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = AppointmentDto), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel(
    State(state): State<AppState>,
    applicant: Applicant,
    ApiPath(tracking_code): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let code = tracking(&tracking_code)?;
    let idem = idempotency(
        &headers,
        &applicant,
        "POST",
        &format!("/v1/appointments/{code}/cancel"),
        &(),
    )?;
    let request = Request::Cancel(Cancel {
        national_code: applicant.national_code.to_string(),
        tracking_code: code.into(),
    });
    let at = state.clone();
    answer(&state, request, idem, move |outcome| match outcome {
        Outcome::Cancelled { appointment } => {
            rendered_json(StatusCode::OK, &appointment_dto(&at, appointment))
        }
        Outcome::Refused(r) => rendered_problem(&refusal_problem(r)),
        other => rendered_problem(&unexpected(other)),
    })
    .await
}

/// Move an appointment to another slot, atomically: the old seat is kept until the new one is
/// secured. The tracking code stays the same.
#[utoipa::path(post, path = "/v1/appointments/{tracking_code}/reschedule", tag = "applicant", security(("applicant" = [])),
    request_body = RescheduleRequest, params(("tracking_code" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = AppointmentDto), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn reschedule(
    State(state): State<AppState>,
    applicant: Applicant,
    ApiPath(tracking_code): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RescheduleRequest>,
) -> Result<Response, Problem> {
    let code = tracking(&tracking_code)?;
    let idem = idempotency(
        &headers,
        &applicant,
        "POST",
        &format!("/v1/appointments/{code}/reschedule"),
        &req,
    )?;
    let current = state
        .store
        .appointment(&code)
        .await?
        .filter(|a| a.national_code == applicant.national_code.to_string())
        .ok_or_else(|| refusal_problem(&Refusal::AppointmentNotFound))?;
    let service = ServiceCode::parse(&current.service)?;
    let slot = resolve_slot(&state, &req.office_id, &req.start, service)?;
    let request = Request::Reschedule(Reschedule {
        national_code: applicant.national_code.to_string(),
        tracking_code: code.into(),
        new_slot_id: slot.id,
    });
    let at = state.clone();
    answer(&state, request, idem, move |outcome| match outcome {
        Outcome::Rescheduled { appointment, .. } => {
            rendered_json(StatusCode::OK, &appointment_dto(&at, appointment))
        }
        Outcome::Refused(r) => {
            rendered_problem(&refused(&at, r, Some(&req.office_id), Some(service)))
        }
        other => rendered_problem(&unexpected(other)),
    })
    .await
}

pub(super) fn unexpected(outcome: &Outcome) -> Problem {
    tracing::error!(
        ?outcome,
        "the engine answered with an outcome of another request kind"
    );
    Problem::internal()
}
