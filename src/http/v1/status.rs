//! `GET /v1/status`: where an application stands, by national code and tracking code.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::dto::{HistoryEntryDto, PickupDto, StatusResponse};
use super::{iran_rfc3339, jalali};
use crate::domain::NationalCode;
use crate::http::extract::ApiQuery;
use crate::http::problem::ProblemCode;
use crate::http::{AppState, Problem};
use crate::reserve::ids::normalise_tracking_code;

/// Most history entries returned.
const HISTORY_MAX: i64 = 200;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    pub national_code: String,
    pub tracking_code: String,
}

/// Both codes are required: the tracking code is unguessable, so together they prove the
/// asker holds the receipt, while a national code alone reveals nothing.
#[utoipa::path(get, path = "/v1/status", tag = "applicant", params(StatusQuery),
    responses((status = 200, body = StatusResponse), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn get_status(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<StatusQuery>,
) -> Result<Json<StatusResponse>, Problem> {
    let code = NationalCode::parse(&q.national_code)?;
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::AppointmentNotFound,
            "no appointment matches these codes",
        )
    };
    let tracking = normalise_tracking_code(&q.tracking_code).ok_or_else(not_found)?;
    let appointment = state
        .store
        .appointment(&tracking)
        .await?
        .filter(|a| a.national_code == code.to_string())
        .ok_or_else(not_found)?;
    // The card's pickup visit (booked at enrolment) belongs to the same history.
    let card = state.store.card(&tracking).await?;
    let mut subjects = vec![appointment.application_id.clone(), tracking.clone()];
    subjects.extend(card.iter().flat_map(|c| {
        [
            Some(c.tracking_code.clone()),
            c.pickup_tracking_code.clone(),
        ]
        .into_iter()
        .flatten()
    }));
    subjects.sort();
    subjects.dedup();
    let events = state.store.events_about(&subjects, HISTORY_MAX).await?;
    let pickup = match card
        .as_ref()
        .and_then(|c| c.pickup_tracking_code.as_deref())
    {
        Some(code) if code != tracking => state.store.appointment(code).await?,
        _ => None,
    };
    let history = events
        .into_iter()
        .map(|e| HistoryEntryDto {
            at: iran_rfc3339(e.at),
            jalali_date: jalali(e.at).0,
            kind: e.kind,
        })
        .collect();
    let (jalali_date, _) = jalali(appointment.start_at);
    Ok(Json(StatusResponse {
        tracking_code: tracking,
        status: appointment.status.as_str().to_string(),
        office_id: appointment.office_id,
        start: iran_rfc3339(appointment.start_at),
        jalali_date,
        ready_date: card.as_ref().map(|c| c.ready_date.clone()),
        pickup: pickup.map(|p| PickupDto {
            tracking_code: p.tracking_code.clone(),
            status: p.status.as_str().to_string(),
            start: iran_rfc3339(p.start_at),
            jalali_date: jalali(p.start_at).0,
        }),
        history,
    }))
}
