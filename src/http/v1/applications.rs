//! `POST /v1/applications` and `POST /v1/payments`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::bookings::own_application;
use super::dto::{
    ApplicationRequest, ApplicationResponse, EligibilityDto, FormDto, PaymentRequest,
    PaymentResponse, RuleDto,
};
use super::owners::Owner;
use crate::domain::applicant::{
    ApplicationForm, RawApplicationForm, RawChild, RawPerson, RawPersonal,
};
use crate::domain::jalali::JalaliDate;
use crate::domain::time::iran_date;
use crate::domain::ServiceCode;
use crate::http::auth::Applicant;
use crate::http::extract::ApiJson;
use crate::http::idempotency::{
    engine_key, key_from_headers, replay_or_run, request_hash, run_then_replay, Ran,
};
use crate::http::problem::ProblemCode;
use crate::http::{AppState, Problem};
use crate::ports::payments::SandboxOutcome;
use crate::store::{ApplicationRecord, Inserted, PaymentRecord};

fn raw_form(f: &FormDto) -> RawApplicationForm {
    let person = |p: &super::dto::PersonDto| RawPerson {
        first_name: p.first_name.clone(),
        last_name: p.last_name.clone(),
        national_code: p.national_code.clone(),
    };
    RawApplicationForm {
        personal: RawPersonal {
            national_code: f.personal.national_code.clone(),
            birth_certificate_serial: f.personal.birth_certificate_serial.clone(),
            first_name: f.personal.first_name.clone(),
            last_name: f.personal.last_name.clone(),
            gender: f.personal.gender.clone(),
            religion: f.personal.religion.clone(),
            birth_date: f.personal.birth_date.clone(),
            nationality: f.personal.nationality.clone(),
            birth_certificate_has_photo: f.personal.birth_certificate_has_photo,
        },
        father: person(&f.father),
        mother: person(&f.mother),
        spouse: f.spouse.as_ref().map(person),
        children: f
            .children
            .iter()
            .map(|c| RawChild {
                first_name: c.first_name.clone(),
                national_code: c.national_code.clone(),
                birth_date: c.birth_date.clone(),
            })
            .collect(),
        mobile: f.mobile.clone(),
        postal_code: f.postal_code.clone(),
        address: f.address.clone(),
    }
}

/// Register an application. Refused with every failed field (`invalid_form`) or every failed
/// eligibility rule (`not_eligible`); nothing is stored then.
#[utoipa::path(post, path = "/v1/applications", tag = "applicant", security(("applicant" = [])),
    request_body = ApplicationRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = ApplicationResponse),
        (status = 401, body = Problem),
        (status = 422, description = "invalid form or not eligible, with every failed rule", body = Problem)))]
pub async fn create_application(
    State(state): State<AppState>,
    applicant: Applicant,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ApplicationRequest>,
) -> Result<impl IntoResponse, Problem> {
    let key = key_from_headers(&headers)?;
    let hash = request_hash(
        "POST",
        "/v1/applications",
        &serde_json::to_vec(&req).unwrap_or_default(),
    );
    let scope = applicant.national_code.to_string();
    let now = state.engine.clock().now();
    let idem = engine_key(&scope, key, hash);
    let state = &state;
    // Nothing happens before the write but checks, and the write keeps its answer: the key's
    // record is read only if the write did not take effect.
    let (status, body) =
        run_then_replay(&state.store, idem, now.timestamp(), |recorder| async move {
            let service = ServiceCode::parse(&req.service)?;
            if service == ServiceCode::CardPickup {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ProblemCode::ServiceNotBookable,
                    "card pickup is booked by the office when biometrics are taken",
                ));
            }
            let form = ApplicationForm::parse(&raw_form(&req.form)).map_err(|errors| {
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ProblemCode::InvalidForm,
                    format!("{} field(s) are invalid", errors.len()),
                )
                .with_errors(&errors)
            })?;
            if form.personal.national_code != applicant.national_code {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ProblemCode::NationalCodeMismatch,
                    "the form's national code is not the logged-in applicant's",
                ));
            }
            let eligibility = form.eligibility(iran_date(now));
            let failed: Vec<RuleDto> = eligibility
                .failed
                .iter()
                .map(|r| RuleDto {
                    code: r.code().to_string(),
                    detail: r.message(),
                })
                .collect();
            if !eligibility.is_eligible() {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ProblemCode::NotEligible,
                    "the applicant is not eligible for a card",
                )
                .with_extra(serde_json::json!({ "failed": failed })));
            }
            let record = ApplicationRecord {
                id: state.engine.ids().opaque("app"),
                national_code: scope.clone(),
                service: service.to_string(),
                form_json: serde_json::to_string(&req.form).unwrap_or_default(),
                eligible: true,
                created_at: now.timestamp(),
            };
            let province = state
                .registry
                .lookup(&form.personal.national_code)
                .map(|c| c.province)
                .unwrap_or_default();
            let serial = form.personal.birth_certificate_serial.to_string();
            let birth_date = form.personal.birth_date.to_string();
            let response = ApplicationResponse {
                application_id: record.id.clone(),
                service: record.service.clone(),
                eligibility: EligibilityDto {
                    eligible: true,
                    failed,
                },
            };
            let body = serde_json::to_value(response).unwrap_or_default();
            let answer = recorder.answer(StatusCode::CREATED, &body);
            let citizen = (serial.as_str(), birth_date.as_str(), province.as_str());
            Ok(
                match state
                    .store
                    .insert_application(&record, citizen, answer.as_ref())
                    .await?
                {
                    Inserted::KeyTaken => Ran::KeyTaken,
                    // `AlreadyPaid` is a payment's only.
                    Inserted::Done | Inserted::AlreadyPaid(_) => {
                        // The holds and the payment that follow find their owner here.
                        let owner = Owner {
                            national_code: record.national_code.as_str().into(),
                            service,
                        };
                        state.owners.put(&record.id, owner);
                        Ran::Answer {
                            status: StatusCode::CREATED,
                            body,
                            kept: answer.is_some(),
                        }
                    }
                },
            )
        })
        .await?;
    Ok((status, Json(body)))
}

/// Pay an application's fee (this year's tariff). Paying an application that is already paid
/// returns that payment and charges nothing.
#[utoipa::path(post, path = "/v1/payments", tag = "applicant", security(("applicant" = [])),
    request_body = PaymentRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, description = "a payment was made (status paid or declined)", body = PaymentResponse),
        (status = 200, description = "the application was already paid", body = PaymentResponse),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create_payment(
    State(state): State<AppState>,
    applicant: Applicant,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PaymentRequest>,
) -> Result<impl IntoResponse, Problem> {
    let key = key_from_headers(&headers)?;
    let hash = request_hash(
        "POST",
        "/v1/payments",
        &serde_json::to_vec(&req).unwrap_or_default(),
    );
    let scope = applicant.national_code.to_string();
    let now = state.engine.clock().now();
    let idem = engine_key(&scope, key, hash);
    let state = &state;
    let (status, body) =
        replay_or_run(&state.store, idem, now.timestamp(), |recorder| async move {
            let sandbox = match req.sandbox_outcome.as_deref() {
                None | Some("approve") => SandboxOutcome::Approve,
                Some("decline") => SandboxOutcome::Decline,
                Some(other) => {
                    return Err(Problem::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        ProblemCode::InvalidSandboxOutcome,
                        format!("sandbox_outcome is approve or decline, not {other:?}"),
                    ))
                }
            };
            let (app, service) = own_application(state, &applicant, &req.application_id).await?;
            if let Some(paid) = state.store.paid_payment_for(&app.id).await? {
                return Ok(Ran::answer(StatusCode::OK, paid_body(&paid)));
            }
            let year = JalaliDate::from_gregorian(iran_date(now)).year();
            let amount = state.fees.fee_rials(service, year).ok_or_else(|| {
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ProblemCode::NoTariff,
                    format!("no fee is published for {service} in {year}"),
                )
            })?;
            let amount_rials = i64::try_from(amount).unwrap_or(i64::MAX);
            // Keyed by the application: a charge racing this one for the same application is the
            // same order at the gateway, which settles it once.
            let status = state.payments.charge(&app.id, amount_rials, sandbox);
            let record = PaymentRecord {
                id: state.engine.ids().opaque("pay"),
                application_id: app.id.clone(),
                amount_rials,
                status,
                gateway: state.payments.name().to_string(),
                created_at: now.timestamp(),
            };
            let body = paid_body(&record);
            let answer = recorder.answer(StatusCode::CREATED, &body);
            Ok(
                match state
                    .store
                    .insert_payment(&record, &scope, answer.as_ref())
                    .await?
                {
                    Inserted::Done => Ran::Answer {
                        status: StatusCode::CREATED,
                        body,
                        kept: answer.is_some(),
                    },
                    // Another request paid this application first; this one recorded nothing.
                    Inserted::AlreadyPaid(paid) => Ran::answer(StatusCode::OK, paid_body(&paid)),
                    Inserted::KeyTaken => Ran::KeyTaken,
                },
            )
        })
        .await?;
    Ok((status, Json(body)))
}

fn paid_body(p: &PaymentRecord) -> serde_json::Value {
    serde_json::to_value(payment_response(p)).unwrap_or_default()
}

fn payment_response(p: &PaymentRecord) -> PaymentResponse {
    PaymentResponse {
        payment_id: p.id.clone(),
        application_id: p.application_id.clone(),
        amount_rials: p.amount_rials,
        status: p.status.as_str().to_string(),
        gateway: p.gateway.clone(),
    }
}
