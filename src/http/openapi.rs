//! `/openapi.json`: the OpenAPI 3.1 document, generated from the handlers' annotations and the
//! wire types, never written by hand.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::admin::{self, closures, offices, stats};
use super::staff;
use super::v1::{applications, bookings, catalogue, dto, receipt, sessions, status};
use super::{Problem, ProblemCode};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
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
    ),
    components(schemas(
        Problem, ProblemCode,
        dto::SessionRequest, dto::SessionResponse, dto::ServiceDto, dto::ApplicationRequest, dto::FormDto,
        dto::PersonalDto, dto::PersonDto, dto::ChildDto, dto::ApplicationResponse, dto::EligibilityDto, dto::RuleDto,
        dto::PaymentRequest, dto::PaymentResponse, dto::OfficeDto, dto::SlotDto, dto::HoldRequest, dto::HoldResponse,
        dto::ConfirmRequest, dto::BookRequest, dto::RescheduleRequest, dto::AppointmentDto, dto::OfficeRefDto,
        dto::StatusResponse, dto::HistoryEntryDto, dto::PickupDto,
    )),
    modifiers(&BearerAuth),
    tags((name = "applicant", description = "What the registration frontend calls"))
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
    ),
    components(schemas(
        staff::StaffAppointmentDto, staff::StaffPickupDto, staff::OfficeDayDto, admin::StaffTokenRequest, admin::StaffTokenResponse,
        offices::OfficeCreate, offices::OfficeUpdate, offices::AdminOfficeDto, offices::FeeTableDto, offices::FeeTableRequest,
        closures::ClosureRequest, closures::ClosureReport, closures::MoveDto, closures::HolidayRequest, closures::HolidayDto,
        stats::StatsRow, stats::StatsResponse,
    )),
    tags((name = "staff", description = "Office staff (a staff token scoped to one office)"),
        (name = "admin", description = "Administrators and planners (an admin token)"))
)]
pub struct OperatorsDoc;

/// The whole document: the applicant API merged with the staff and admin API.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(OperatorsDoc::openapi());
    doc
}

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}

#[cfg(test)]
mod tests {
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
}
