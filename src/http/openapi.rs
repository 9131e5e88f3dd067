//! `/openapi.json`: the OpenAPI 3.1 document, generated from the handlers' annotations and the
//! wire types, never written by hand; then every operation's problem responses are added from
//! its contract (`contract`: statuses, `application/problem+json`, the codes each can carry),
//! and the links between operations.

mod contract;

use axum::Json;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::admin::{self, access, closures, offices, rooms, stats, waves};
use super::v1::{
    applications, ballots, bookings, catalogue, dto, queue, receipt, sessions, status, waitlist,
};
use super::{planner, probes, staff};
use super::{Problem, ProblemCode};

pub use contract::{codes_of, statuses, HANDLER_CODES, PASS_CHECKED};

/// The four kinds of bearer token, one scheme each, so a client (and a fuzzer) knows which
/// token an operation takes.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, what) in [
            ("applicant", "a session token from POST /v1/sessions"),
            (
                "staff",
                "a staff token an administrator issued for one office",
            ),
            (
                "admin",
                "the configured admin token, or an admin row of operator_tokens",
            ),
            ("planner", "the configured planner token"),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(what))
                        .build(),
                ),
            );
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "nobat applicant API", description = "Smart national ID card appointments: sessions, applications, payments, offices, slots, holds, appointments, status."),
    paths(
        sessions::create_session,
        catalogue::list_services,
        catalogue::list_offices,
        catalogue::list_slots,
        applications::create_application,
        applications::create_payment,
        bookings::create_hold,
        bookings::confirm_hold,
        bookings::release_hold,
        bookings::book,
        bookings::cancel,
        bookings::reschedule,
        receipt::get_appointment,
        status::get_status,
        waitlist::join_waitlist,
        waitlist::list_waitlist,
        waitlist::leave_waitlist,
        waitlist::accept_offer,
        waitlist::decline_offer,
        queue::join_queue,
        queue::poll_ticket,
        queue::get_room,
        queue::get_order,
        ballots::get_ballot,
        ballots::get_ballot_results,
        ballots::put_ballot_entry,
        ballots::get_ballot_entry,
        ballots::withdraw_ballot_entry,
        crate::http::ussd::ussd,
    ),
    components(schemas(
        Problem, ProblemCode,
        dto::SessionRequest, dto::SessionResponse, dto::ServiceDto, dto::ApplicationRequest, dto::FormDto,
        dto::PersonalDto, dto::PersonDto, dto::ChildDto, dto::ApplicationResponse, dto::EligibilityDto, dto::RuleDto,
        dto::PaymentRequest, dto::PaymentResponse, dto::OfficeDto, dto::SlotDto, dto::HoldRequest, dto::HoldResponse, dto::PickDto, dto::NearDto, dto::PartOfDayDto, dto::PickedDto,
        dto::ConfirmRequest, dto::BookRequest, dto::RescheduleRequest, dto::AppointmentDto, dto::OfficeRefDto,
        dto::StatusResponse, dto::HistoryEntryDto, dto::PickupDto,
        waitlist::WaitlistRequest, waitlist::WaitlistEntryDto, waitlist::OfferDto,
        crate::http::ussd::UssdCallback,
        queue::JoinRequest, queue::TicketDto, queue::RoomDto, queue::OrderDto,
        ballots::BallotDto, ballots::BallotResultsDto, ballots::BallotEntryRequest, ballots::BallotEntryDto,
        ballots::BallotOutcomeDto, dto::InBallotDto,
    )),
    modifiers(&BearerAuth),
    tags((name = "applicant", description = "What the registration frontend calls"),
        (name = "ussd", description = "The status menu for plain phones, called by a USSD gateway"))
)]
pub struct ApiDoc;

/// The staff and admin half, merged into the applicant document.
#[derive(OpenApi)]
#[openapi(
    paths(
        staff::list_appointments,
        staff::check_in,
        staff::enrol,
        staff::no_show,
        staff::card_ready,
        staff::deliver,
        admin::create_staff_token,
        offices::create_office,
        offices::get_office,
        offices::update_office,
        offices::get_fees,
        offices::put_fees,
        closures::close_office,
        closures::add_holiday,
        closures::list_holidays,
        stats::get_stats,
        stats::get_stats_csv,
        rooms::create_room,
        waves::create_release_wave,
        waves::list_release_waves,
        waves::cancel_release_wave,
        crate::http::admin::ballots::create_ballot,
        access::list_staff_tokens,
        access::revoke_staff_token,
        access::get_audit,
        planner::post_simulation,
        planner::post_plan,
        planner::get_job,
        planner::get_report,
        probes::healthz,
        probes::readyz,
        super::metrics::render,
        serve,
    ),
    components(schemas(
        staff::StaffAppointmentDto, staff::StaffPickupDto, staff::OfficeDayDto, admin::StaffTokenRequest, admin::StaffTokenResponse,
        offices::OfficeCreate, offices::OfficeUpdate, offices::AdminOfficeDto, offices::FeeTableDto, offices::FeeTableRequest,
        closures::ClosureRequest, closures::ClosureReport, closures::MoveDto, closures::HolidayRequest, closures::HolidayDto,
        stats::StatsRow, stats::StatsResponse, access::StaffTokenDto, access::AuditEntryDto, access::AuditPageDto,
        rooms::RoomRequest, rooms::RoomScopeDto, rooms::AdmissionDto, rooms::AutoAdmissionDto, rooms::RoomCreatedDto,
        waves::WaveRequest, waves::WaveDto,
        crate::http::admin::ballots::BallotRequest, crate::http::admin::ballots::SeatRange,
        planner::JobAcceptedDto, planner::JobDto, planner::JobProgressDto, probes::HealthDto, probes::ReadyDto,
    )),
    tags((name = "staff", description = "Office staff (a staff token scoped to one office)"),
        (name = "admin", description = "Administrators (an admin token)"),
        (name = "planner", description = "Planners: simulations and capacity plans (the planner token)"),
        (name = "operations", description = "Probes, metrics and this document"))
)]
pub struct OperatorsDoc;

/// The whole document: the applicant API merged with the staff, admin and planner API, with
/// every operation's problem responses and the links between operations.
pub fn document() -> Value {
    let mut json = annotated();
    let paths = json["paths"]
        .as_object_mut()
        .expect("the document has paths");
    for (path, item) in paths.iter_mut() {
        for (method, op) in item.as_object_mut().into_iter().flatten() {
            add_pass_header(op);
            add_problems(path, method, op);
        }
    }
    contract::add_links(paths);
    json
}

/// The `Booking-Pass` header of the booking writes a waiting room can stand in front of.
fn add_pass_header(op: &mut Value) {
    let checked = op["operationId"]
        .as_str()
        .is_some_and(|id| PASS_CHECKED.contains(&id));
    if !checked {
        return;
    }
    let parameter = serde_json::json!({
        "name": super::room::PASS_HEADER,
        "in": "header",
        "required": false,
        "description": "the pass of GET /v1/queue/{ticket}, required while a waiting room covers the booking (403 pass_required without it, pass_invalid for a pass of another citizen or room, or expired)",
        "schema": { "type": "string" },
    });
    match op["parameters"].as_array_mut() {
        Some(list) => list.push(parameter),
        None => op["parameters"] = Value::Array(vec![parameter]),
    }
}

/// The document as the annotations make it, before the contract is applied.
fn annotated() -> Value {
    let mut doc = ApiDoc::openapi();
    doc.merge(OperatorsDoc::openapi());
    serde_json::to_value(doc).expect("the document serialises")
}

/// Replaces an operation's error responses with those of its contract, keeping the
/// annotation's description of a status where it gave one.
fn add_problems(path: &str, method: &str, op: &mut Value) {
    let Some(codes) = codes_of(path, method, op) else {
        // A test keeps every operation in the contract; a gap shows as undocumented problems.
        tracing::error!(%path, %method, "an operation has no problem contract");
        return;
    };
    let responses = op["responses"]
        .as_object_mut()
        .expect("every operation has responses");
    let described: Vec<(u16, Option<String>)> = responses
        .iter()
        .filter_map(|(status, r)| {
            let status: u16 = status.parse().ok()?;
            (status >= 400).then(|| (status, r["description"].as_str().map(str::to_string)))
        })
        .collect();
    responses.retain(|status, _| status.parse::<u16>().is_ok_and(|s| s < 400));
    for (status, codes) in contract::problem_responses(&codes) {
        let description = described
            .iter()
            .find(|(s, d)| *s == status && d.as_deref().is_some_and(|d| !d.is_empty()))
            .and_then(|(_, d)| d.as_deref());
        responses.insert(
            status.to_string(),
            contract::problem_response(status, &codes, description),
        );
    }
}

/// The OpenAPI document of this server.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "this document (OpenAPI 3.1)", body = Object)))]
pub async fn serve() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// A tokio worker has a 2 MiB stack: the document must build within it (a recursive
    /// schema once made it recurse without end).
    #[test]
    fn the_document_builds_on_a_worker_sized_stack() {
        let doc = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(super::document)
            .unwrap()
            .join()
            .unwrap();
        let json = serde_json::to_value(&doc).unwrap();
        assert!(json["paths"]["/v1/staff/appointments/{tracking_code}/enrol"]["post"].is_object());
        assert!(json["paths"]["/v1/admin/offices/{office_id}/closures"]["post"].is_object());
        assert!(json["paths"]["/v1/holds/{hold_id}/confirm"]["post"].is_object());
    }

    /// The Problem schema's `code` lists exactly the codes of [`super::ProblemCode`], as sent.
    #[test]
    fn the_problem_code_enum_lists_every_code() {
        let json = serde_json::to_value(super::document()).unwrap();
        let schemas = &json["components"]["schemas"];
        let reference = schemas["Problem"]["properties"]["code"]["$ref"]
            .as_str()
            .expect("Problem.code refers to the code enum");
        let name = reference.rsplit('/').next().unwrap();
        let listed: Vec<&str> = schemas[name]["enum"]
            .as_array()
            .expect("an enum")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let codes: Vec<&str> = super::ProblemCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, codes);
        assert!(listed.contains(&"unauthorized") && !listed.contains(&"unauthorised"));
    }

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                out.push((path.clone(), method.clone(), op.clone()));
            }
        }
        out
    }

    /// Every operation has its row in the contract, and every row an operation: a new
    /// endpoint cannot go out with its problems undocumented.
    #[test]
    fn every_operation_has_a_contract_row() {
        let doc = super::document();
        let ops = operations(&doc);
        let mut ids: Vec<&str> = ops
            .iter()
            .map(|(_, _, op)| op["operationId"].as_str().unwrap())
            .collect();
        for id in &ids {
            assert!(
                super::HANDLER_CODES.iter().any(|(name, _)| name == id),
                "{id} has no row in openapi/contract.rs"
            );
        }
        for (name, _) in super::HANDLER_CODES {
            assert!(
                ids.contains(name),
                "the contract row {name} names no operation"
            );
        }
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "operation ids are unique");
        assert!(n >= 41, "{n} operations");
    }

    /// A status an annotation names is in the contract too (the contract replaces the
    /// annotation's problem responses, keeping its description).
    #[test]
    fn annotated_problem_statuses_are_in_the_contract() {
        let annotated = super::annotated();
        let document = super::document();
        for (path, method, op) in operations(&annotated) {
            let documented = &document["paths"][&path][&method]["responses"];
            for status in op["responses"].as_object().unwrap().keys() {
                if status.parse::<u16>().unwrap() >= 400 {
                    assert!(
                        documented.get(status).is_some(),
                        "{method} {path}: {status} is annotated but not in the contract"
                    );
                }
            }
        }
    }

    /// Every problem response is `application/problem+json` with the Problem schema and a
    /// non-empty list of codes each sent with that status; 429 and 503 say `Retry-After`;
    /// every operation of the API can be shed (503) and fail (500).
    #[test]
    fn problem_responses_are_problem_json_with_their_codes() {
        let doc = super::document();
        for (path, method, op) in operations(&doc) {
            let responses = op["responses"].as_object().unwrap();
            for (status, response) in responses {
                let status: u16 = status.parse().unwrap();
                if status < 400 {
                    continue;
                }
                let content = response["content"].as_object().unwrap();
                assert_eq!(
                    content.keys().collect::<Vec<_>>(),
                    ["application/problem+json"],
                    "{method} {path} {status}"
                );
                let schema = &content["application/problem+json"]["schema"]["allOf"];
                assert_eq!(schema[0]["$ref"], "#/components/schemas/Problem");
                let codes = schema[1]["properties"]["code"]["enum"].as_array().unwrap();
                assert!(!codes.is_empty());
                for code in codes {
                    let code = super::ProblemCode::ALL
                        .iter()
                        .find(|c| c.as_str() == code)
                        .unwrap();
                    assert!(
                        super::statuses(*code).contains(&status),
                        "{code} as {status}"
                    );
                }
                if status == 429 || status == 503 {
                    assert!(response["headers"]["Retry-After"].is_object());
                }
            }
            assert!(responses.contains_key("500"), "{method} {path}");
            assert!(responses.contains_key("503"), "{method} {path}");
        }
    }

    /// The status each refusal is answered with is the one the contract gives its code.
    #[test]
    fn refusals_are_sent_with_their_documented_status() {
        use crate::booking::{AppointmentStatus, HoldStatus, PaymentStatus, Refusal};
        for refusal in [
            Refusal::SlotFull { slot_id: 1 },
            Refusal::SlotUnknown { slot_id: 1 },
            Refusal::AlreadyHolding {
                hold_id: "h".into(),
            },
            Refusal::AlreadyBooked {
                tracking_code: "t".into(),
            },
            Refusal::HoldNotFound,
            Refusal::HoldExpired,
            Refusal::HoldNotLive {
                status: HoldStatus::Released,
            },
            Refusal::PaymentNotFound,
            Refusal::PaymentNotPaid {
                status: PaymentStatus::Declined,
            },
            Refusal::PaymentMismatch,
            Refusal::ApplicationNotFound,
            Refusal::AppointmentNotFound,
            Refusal::NotActive {
                status: AppointmentStatus::Cancelled,
            },
            Refusal::SameSlot,
            Refusal::InvalidTransition {
                status: AppointmentStatus::Booked,
            },
            Refusal::TooEarly,
            Refusal::CapacityBelowTaken {
                slot_id: 1,
                taken: 2,
            },
            Refusal::RescheduleLimitReached { limit: 2 },
            Refusal::CancellationLimitReached {
                limit: 3,
                window_days: 30,
            },
            Refusal::CandidatesFull,
        ] {
            let problem = crate::http::v1::refusal_problem(&refusal);
            assert!(
                super::statuses(problem.code).contains(&problem.status),
                "{refusal:?} is sent as {}",
                problem.status
            );
        }
    }

    /// Path parameters are in their path's template and nothing else is a path parameter;
    /// every link leads from an existing response to an existing operation.
    #[test]
    fn parameters_and_links_are_where_they_say() {
        let doc = super::document();
        let ops = operations(&doc);
        let ids: Vec<&str> = ops
            .iter()
            .map(|(_, _, op)| op["operationId"].as_str().unwrap())
            .collect();
        let mut links = 0;
        for (path, method, op) in &ops {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                let in_template = path.contains(&format!("{{{name}}}"));
                assert_eq!(p["in"] == "path", in_template, "{method} {path}: {name}");
            }
            for response in op["responses"].as_object().unwrap().values() {
                for link in response["links"]
                    .as_object()
                    .into_iter()
                    .flat_map(|l| l.values())
                {
                    assert!(ids.contains(&link["operationId"].as_str().unwrap()));
                    links += 1;
                }
            }
        }
        assert_eq!(
            links,
            super::contract::LINKS.len(),
            "every link row applied"
        );
    }
}
