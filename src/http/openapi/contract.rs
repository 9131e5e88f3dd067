//! What each operation can answer besides its success, stated once and applied to the
//! generated document: every problem status with `application/problem+json`, the Problem
//! schema, and the `code`s that status carries there (an enum per response), plus
//! `Retry-After` on 429 and 503.
//!
//! Most of an operation's problems follow from its shape, read off the document itself: who
//! may call it (its security scheme), its path and query parameters, a JSON body, an
//! `Idempotency-Key`, whether it writes, and the in-flight limit and time limit every API
//! route is behind. What only the handler knows is listed per operation in [`HANDLER_CODES`];
//! each code's status is [`statuses`] (one match, no catch-all: a new code does not compile
//! until it has one). Tests check that every operation has its row, that the statuses the
//! annotations name are all documented, and (`tests/api/bad_input.rs`) that each answer the
//! bad-input table provokes is documented with its code.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::http::ProblemCode;
use ProblemCode as C;

/// The statuses a code is sent with (most have one).
pub fn statuses(code: ProblemCode) -> &'static [u16] {
    match code {
        C::MalformedJson | C::InvalidPath | C::InvalidIdempotencyKey => &[400],
        // A JSON body of the wrong shape is 422; a body that cannot be read at all is 400.
        C::InvalidBody => &[400, 422],
        C::UnsupportedMediaType => &[415],
        C::BodyTooLarge => &[413],
        C::NotFound
        | C::ApplicationNotFound
        | C::AppointmentNotFound
        | C::OfficeNotFound
        | C::HoldNotFound
        | C::TokenNotFound
        | C::WaitlistEntryNotFound
        | C::OfferNotFound
        | C::JobNotFound
        | C::RoomNotFound
        | C::WaveNotFound
        | C::BallotNotFound
        | C::BallotEntryNotFound
        | C::TicketNotFound => &[404],
        C::MethodNotAllowed => &[405],
        C::Unauthorized | C::InvalidCredentials => &[401],
        C::Forbidden | C::PassRequired | C::PassInvalid => &[403],
        C::RateLimited | C::LoginLocked => &[429],
        C::Overloaded | C::Timeout | C::Unavailable => &[503],
        C::Internal => &[500],
        C::PaymentNotPaid => &[402],
        C::HoldExpired | C::TicketExpired => &[410],
        C::Conflict
        | C::SlotFull
        | C::AlreadyHolding
        | C::AlreadyBooked
        | C::HoldNotLive
        | C::AppointmentNotActive
        | C::InvalidTransition
        | C::TooEarly
        | C::CapacityBelowTaken
        | C::RescheduleLimitReached
        | C::CancellationLimitReached
        | C::NoSeatWithinLimits
        | C::NotToday
        | C::OfficeExists
        | C::JobRunning
        | C::AlreadyWaiting
        | C::WaitlistEntryNotActive
        | C::ReleaseNotDue
        | C::JobFailed
        | C::RoomNotOpen
        | C::NotYetReleased
        | C::WaveOverlap
        | C::WaveAlreadyOpen
        | C::BallotNotOpen
        | C::BallotClosed
        | C::BallotNotPublished => &[409],
        C::InvalidQuery
        | C::InvalidWave
        | C::InvalidBallot
        | C::InvalidPreferences
        | C::NoOfficeWithinLimits
        | C::IdempotencyKeyReused
        | C::IdempotencyRecordUnreadable
        | C::ServiceNotBookable
        | C::NationalCodeMismatch
        | C::NotEligible
        | C::InvalidSandboxOutcome
        | C::NoTariff
        | C::ServiceNotOffered
        | C::InvalidStart
        | C::StartInPast
        | C::OutsideBookingWindow
        | C::InvalidNear
        | C::UnknownProvince
        | C::InvalidLimit
        | C::InvalidDate
        | C::InvalidRange
        | C::InvalidPick
        | C::ClosedDay
        | C::OutsideHours
        | C::OffGrid
        | C::SlotUnknown
        | C::PaymentNotFound
        | C::PaymentMismatch
        | C::SameSlot
        | C::InvalidName
        | C::InvalidStations
        | C::ServiceNotForKind
        | C::InvalidCalendar
        | C::InvalidCity
        | C::InvalidYear
        | C::InvalidFees
        | C::InvalidFee
        | C::InvalidGroup
        | C::DateInPast
        | C::InvalidReason
        | C::RangeTooLong
        | C::InvalidCursor
        | C::InvalidScenario
        | C::InvalidForm
        | C::InvalidGender
        | C::InvalidNationality
        | C::TooManyChildren
        | C::InvalidAddress
        | C::InvalidTime
        | C::InvalidHours
        | C::InvalidSlotMinutes
        | C::FridayHours
        | C::TooManyEntries
        | C::OverlappingOverrides
        | C::DuplicateDate
        | C::InvalidHolidayTable
        | C::InvalidHoliday
        | C::DuplicateHoliday
        | C::TooManyHolidays
        | C::InvalidCoordinates
        | C::InvalidCharacter
        | C::InvalidNationalCode
        | C::InvalidBirthCertificateSerial
        | C::InvalidMobile
        | C::InvalidPostalCode
        | C::InvalidAreaCode
        | C::UnknownAreaCode
        | C::InvalidJalaliDate
        | C::InvalidOfficeId
        | C::UnknownOfficeKind
        | C::UnknownService
        | C::InvalidFeeTable
        | C::IncompleteFeeTable
        | C::NonexistentLocalTime
        | C::InvalidAdmission
        | C::InvalidMinutes => &[422],
    }
}

/// A slot a client names by office and start (`v1::resolve_slot`).
const SLOT: &[ProblemCode] = &[
    C::InvalidOfficeId,
    C::OfficeNotFound,
    C::ServiceNotOffered,
    C::InvalidStart,
    C::StartInPast,
    C::ClosedDay,
    C::OutsideHours,
    C::OffGrid,
    C::OutsideBookingWindow,
];
/// `pick` limits (`v1::pick::resolve`): the form and its limits, as auto-pick and the
/// waitlist read them.
const PICK_LIMITS: &[ProblemCode] = &[
    C::InvalidPick,
    C::InvalidCoordinates,
    C::InvalidDate,
    C::DateInPast,
    C::InvalidRange,
];
/// A seat the engine picks: its limits, and no seat within them.
const PICK: &[ProblemCode] = &[C::NoSeatWithinLimits];
/// An office calendar's own validation.
const CALENDAR: &[ProblemCode] = &[
    C::InvalidCalendar,
    C::InvalidSlotMinutes,
    C::FridayHours,
    C::TooManyEntries,
    C::InvalidRange,
    C::OverlappingOverrides,
    C::DuplicateDate,
    C::InvalidTime,
    C::InvalidHours,
];
/// A closure's days and reason (`admin::closures`).
const CLOSURE: &[ProblemCode] = &[
    C::InvalidDate,
    C::InvalidRange,
    C::RangeTooLong,
    C::DateInPast,
    C::InvalidReason,
];

/// The waiting room's pass check in front of the booking writes (`http::room::require_pass`),
/// with the `Booking-Pass` header ([`PASS_CHECKED`]).
const PASS: &[ProblemCode] = &[C::PassRequired, C::PassInvalid];
/// The operations a waiting room's pass check stands in front of.
pub const PASS_CHECKED: &[&str] = &["create_hold", "book", "reschedule"];

/// The codes only the handler knows, per operation id (the handler's function name); a code
/// is listed once whatever its status. Sets above are shared where handlers share a path.
pub const HANDLER_CODES: &[(&str, &[&[ProblemCode]])] = &[
    // Probes and documents.
    ("healthz", &[]),
    ("readyz", &[&[C::Unavailable]]),
    ("render", &[]),
    ("serve", &[]),
    // The applicant API.
    (
        "create_session",
        &[&[
            C::InvalidCredentials,
            C::LoginLocked,
            C::InvalidNationalCode,
            C::InvalidCharacter,
            C::InvalidBirthCertificateSerial,
        ]],
    ),
    ("list_services", &[]),
    (
        "list_offices",
        &[&[
            C::InvalidAreaCode,
            C::InvalidCharacter,
            C::UnknownAreaCode,
            C::UnknownProvince,
            C::InvalidNear,
            C::UnknownService,
            C::InvalidLimit,
        ]],
    ),
    (
        "list_slots",
        &[&[
            C::InvalidOfficeId,
            C::OfficeNotFound,
            C::UnknownService,
            C::ServiceNotOffered,
            C::InvalidDate,
            C::InvalidRange,
            C::NonexistentLocalTime,
        ]],
    ),
    (
        "create_application",
        &[&[
            C::UnknownService,
            C::ServiceNotBookable,
            C::InvalidForm,
            C::NationalCodeMismatch,
            C::NotEligible,
        ]],
    ),
    (
        "create_payment",
        &[&[
            C::ApplicationNotFound,
            C::InvalidSandboxOutcome,
            C::NoTariff,
            C::UnknownService,
        ]],
    ),
    (
        "create_hold",
        &[
            SLOT,
            PICK_LIMITS,
            PICK,
            PASS,
            &[
                C::ApplicationNotFound,
                C::UnknownService,
                C::SlotFull,
                C::SlotUnknown,
                C::NotYetReleased,
                C::AlreadyHolding,
                C::AlreadyBooked,
            ],
        ],
    ),
    (
        "confirm_hold",
        &[&[
            C::HoldNotFound,
            C::HoldExpired,
            C::HoldNotLive,
            C::PaymentNotFound,
            C::PaymentMismatch,
            C::PaymentNotPaid,
            C::AlreadyBooked,
        ]],
    ),
    (
        "release_hold",
        &[&[C::HoldNotFound, C::HoldExpired, C::HoldNotLive]],
    ),
    (
        "book",
        &[
            SLOT,
            PICK_LIMITS,
            PICK,
            PASS,
            &[
                C::ApplicationNotFound,
                C::UnknownService,
                C::AlreadyHolding,
                C::AlreadyBooked,
                C::PaymentNotFound,
                C::PaymentMismatch,
                C::PaymentNotPaid,
                C::SlotFull,
                C::SlotUnknown,
                C::NotYetReleased,
            ],
        ],
    ),
    (
        "cancel",
        &[&[
            C::AppointmentNotFound,
            C::AppointmentNotActive,
            C::CancellationLimitReached,
        ]],
    ),
    (
        "reschedule",
        &[
            SLOT,
            PASS,
            &[
                C::AppointmentNotFound,
                C::AppointmentNotActive,
                C::RescheduleLimitReached,
                C::UnknownService,
                C::SameSlot,
                C::SlotFull,
                C::SlotUnknown,
                C::NotYetReleased,
            ],
        ],
    ),
    ("get_appointment", &[&[C::AppointmentNotFound]]),
    (
        "join_waitlist",
        &[
            PICK_LIMITS,
            &[
                C::ApplicationNotFound,
                C::UnknownService,
                C::PaymentNotFound,
                C::PaymentMismatch,
                C::PaymentNotPaid,
                C::AlreadyWaiting,
                C::AlreadyBooked,
                C::InvalidOfficeId,
                C::InvalidCharacter,
                C::OfficeNotFound,
                C::ServiceNotOffered,
                C::NoOfficeWithinLimits,
                C::NonexistentLocalTime,
            ],
        ],
    ),
    ("list_waitlist", &[]),
    (
        "leave_waitlist",
        &[&[C::WaitlistEntryNotFound, C::WaitlistEntryNotActive]],
    ),
    (
        "accept_offer",
        &[&[
            C::OfferNotFound,
            C::WaitlistEntryNotActive,
            C::HoldNotFound,
            C::HoldExpired,
            C::HoldNotLive,
            C::PaymentNotFound,
            C::PaymentMismatch,
            C::PaymentNotPaid,
            C::AlreadyBooked,
        ]],
    ),
    (
        "decline_offer",
        &[&[
            C::OfferNotFound,
            C::WaitlistEntryNotActive,
            C::HoldExpired,
            C::HoldNotLive,
        ]],
    ),
    (
        "get_status",
        &[&[
            C::InvalidNationalCode,
            C::InvalidCharacter,
            C::AppointmentNotFound,
        ]],
    ),
    // The waiting room.
    (
        "join_queue",
        &[&[
            C::RoomNotFound,
            C::RoomNotOpen,
            C::UnknownService,
            C::UnknownProvince,
        ]],
    ),
    (
        "poll_ticket",
        &[&[C::TicketNotFound, C::TicketExpired, C::RoomNotFound]],
    ),
    ("get_room", &[&[C::RoomNotFound]]),
    ("get_order", &[&[C::RoomNotFound, C::RoomNotOpen]]),
    // Plain phones, through a USSD gateway.
    ("ussd", &[]),
    // Staff.
    ("list_appointments", &[&[C::InvalidDate]]),
    (
        "check_in",
        &[&[C::AppointmentNotFound, C::NotToday, C::InvalidTransition]],
    ),
    (
        "enrol",
        &[&[C::AppointmentNotFound, C::InvalidTransition, C::SlotUnknown]],
    ),
    (
        "no_show",
        &[&[C::AppointmentNotFound, C::InvalidTransition, C::TooEarly]],
    ),
    (
        "card_ready",
        &[&[C::AppointmentNotFound, C::InvalidTransition]],
    ),
    (
        "deliver",
        &[&[C::AppointmentNotFound, C::InvalidTransition]],
    ),
    // Admin.
    (
        "create_staff_token",
        &[&[C::OfficeNotFound, C::InvalidName]],
    ),
    ("list_staff_tokens", &[&[C::OfficeNotFound]]),
    ("revoke_staff_token", &[&[C::TokenNotFound]]),
    (
        "get_audit",
        &[&[C::InvalidLimit, C::InvalidCursor, C::InvalidName]],
    ),
    (
        "create_office",
        &[
            CALENDAR,
            &[
                C::InvalidOfficeId,
                C::UnknownOfficeKind,
                C::UnknownProvince,
                C::InvalidName,
                C::InvalidCity,
                C::InvalidAreaCode,
                C::InvalidCharacter,
                C::UnknownAreaCode,
                C::InvalidCoordinates,
                C::InvalidStations,
                C::UnknownService,
                C::ServiceNotForKind,
                C::OfficeExists,
                C::NonexistentLocalTime,
            ],
        ],
    ),
    ("get_office", &[&[C::OfficeNotFound]]),
    (
        "update_office",
        &[
            CALENDAR,
            &[
                C::OfficeNotFound,
                C::InvalidName,
                C::InvalidStations,
                C::UnknownService,
                C::ServiceNotForKind,
            ],
        ],
    ),
    ("get_fees", &[&[C::InvalidYear]]),
    (
        "create_release_wave",
        &[&[
            C::InvalidWave,
            C::UnknownService,
            C::UnknownProvince,
            C::InvalidOfficeId,
            C::InvalidCharacter,
            C::OfficeNotFound,
            C::InvalidDate,
            C::InvalidRange,
            C::InvalidTime,
            C::WaveOverlap,
        ]],
    ),
    ("list_release_waves", &[]),
    (
        "create_ballot",
        &[&[
            C::InvalidBallot,
            C::UnknownService,
            C::UnknownProvince,
            C::InvalidTime,
            C::InvalidDate,
            C::InvalidRange,
        ]],
    ),
    ("get_ballot", &[&[C::BallotNotFound]]),
    (
        "get_ballot_results",
        &[&[C::BallotNotFound, C::BallotNotPublished]],
    ),
    (
        "put_ballot_entry",
        &[&[
            C::BallotNotFound,
            C::BallotNotOpen,
            C::BallotClosed,
            C::ApplicationNotFound,
            C::PaymentNotFound,
            C::PaymentNotPaid,
            C::PaymentMismatch,
            C::ServiceNotBookable,
            C::InvalidPreferences,
        ]],
    ),
    (
        "get_ballot_entry",
        &[&[C::BallotNotFound, C::BallotEntryNotFound]],
    ),
    (
        "withdraw_ballot_entry",
        &[&[C::BallotNotFound, C::BallotEntryNotFound, C::BallotClosed]],
    ),
    (
        "cancel_release_wave",
        &[&[C::WaveNotFound, C::WaveAlreadyOpen]],
    ),
    (
        "create_room",
        &[&[
            C::UnknownService,
            C::UnknownProvince,
            C::InvalidTime,
            C::InvalidRange,
            C::InvalidAdmission,
            C::InvalidMinutes,
        ]],
    ),
    (
        "put_fees",
        &[&[
            C::InvalidYear,
            C::InvalidFees,
            C::InvalidFee,
            C::UnknownService,
        ]],
    ),
    ("close_office", &[CLOSURE, CALENDAR, &[C::OfficeNotFound]]),
    (
        "add_holiday",
        &[
            CLOSURE,
            CALENDAR,
            &[
                C::InvalidName,
                C::InvalidHoliday,
                C::DuplicateHoliday,
                C::TooManyHolidays,
                C::OfficeNotFound,
            ],
        ],
    ),
    ("list_holidays", &[&[C::InvalidYear]]),
    (
        "get_stats",
        &[&[C::InvalidDate, C::InvalidRange, C::InvalidGroup]],
    ),
    (
        "get_stats_csv",
        &[&[C::InvalidDate, C::InvalidRange, C::InvalidGroup]],
    ),
    // The planner.
    ("post_simulation", &[&[C::InvalidScenario, C::Unavailable]]),
    ("post_plan", &[&[C::InvalidScenario, C::Unavailable]]),
    ("get_job", &[&[C::JobNotFound]]),
    (
        "get_report",
        &[&[C::JobNotFound, C::JobRunning, C::JobFailed]],
    ),
];

/// Paths outside the API's in-flight limit (probes, metrics, the document) and the planner's,
/// which have their own job bound: never shed with `overloaded`.
fn behind_the_in_flight_limit(path: &str) -> bool {
    path.starts_with("/v1/") && !path.starts_with("/v1/planner/")
}

/// Every code `op` (at `path`, by `method`) can answer with.
pub fn codes_of(path: &str, method: &str, op: &Value) -> Option<BTreeSet<ProblemCode>> {
    let id = op["operationId"].as_str()?;
    let (_, sets) = HANDLER_CODES.iter().find(|(name, _)| *name == id)?;
    let mut codes: BTreeSet<ProblemCode> = sets.iter().flat_map(|s| s.iter().copied()).collect();
    // Every route: a panic is caught (500), a request past the time limit is cut (503).
    codes.extend([C::Internal, C::Timeout]);
    if behind_the_in_flight_limit(path) {
        codes.insert(C::Overloaded);
        // Each of these reads or writes storage, or queues for the writer.
        codes.insert(C::Unavailable);
    }
    let scheme = op["security"][0]
        .as_object()
        .and_then(|s| s.keys().next())
        .map(String::as_str);
    match scheme {
        Some("applicant") => codes.extend([C::Unauthorized, C::RateLimited]),
        Some("admin") => codes.extend([C::Unauthorized, C::Forbidden]),
        Some(_) => {
            codes.insert(C::Unauthorized);
        }
        None => {}
    }
    let params = op["parameters"].as_array().cloned().unwrap_or_default();
    let has = |place: &str| params.iter().any(|p| p["in"] == place);
    if has("path") {
        codes.insert(C::InvalidPath);
    }
    if has("query") {
        codes.insert(C::InvalidQuery);
    }
    if params
        .iter()
        .any(|p| p["in"] == "header" && p["name"] == "Idempotency-Key")
    {
        codes.extend([
            C::InvalidIdempotencyKey,
            C::IdempotencyKeyReused,
            C::IdempotencyRecordUnreadable,
        ]);
    }
    let body = &op["requestBody"]["content"];
    if body.get("application/json").is_some() {
        codes.extend([
            C::MalformedJson,
            C::InvalidBody,
            C::BodyTooLarge,
            C::UnsupportedMediaType,
        ]);
    } else if body.is_object() {
        codes.extend([C::InvalidBody, C::BodyTooLarge]);
    }
    if method != "get" && behind_the_in_flight_limit(path) {
        // A write a constraint refused (another request got there first).
        codes.insert(C::Conflict);
    }
    Some(codes)
}

/// The problem responses of a set of codes, by status.
pub fn problem_responses(codes: &BTreeSet<ProblemCode>) -> BTreeMap<u16, Vec<ProblemCode>> {
    let mut by_status: BTreeMap<u16, Vec<ProblemCode>> = BTreeMap::new();
    for &code in codes {
        for &status in statuses(code) {
            by_status.entry(status).or_default().push(code);
        }
    }
    by_status
}

/// A problem response carrying `codes`; `description` kept when the annotation gave one.
pub fn problem_response(status: u16, codes: &[ProblemCode], description: Option<&str>) -> Value {
    let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut response = json!({
        "description": description.map_or_else(
            || format!("{reason}: {}", names.join(", ")),
            |d| format!("{d} ({})", names.join(", ")),
        ),
        "content": { "application/problem+json": { "schema": { "allOf": [
            { "$ref": "#/components/schemas/Problem" },
            { "type": "object", "properties": { "code": { "enum": names } } },
        ] } } },
    });
    if status == 429 || status == 503 {
        response["headers"] = json!({ "Retry-After": {
            "description": "seconds to wait before retrying",
            "required": true,
            "schema": { "type": "integer", "minimum": 1 },
        } });
    }
    response
}

/// Links between operations (the applicant's journey, an office's pages, a job's result), for
/// clients and for stateful testing: (from operation, status, name, to operation, parameters,
/// request body).
type LinkRow = (
    &'static str,
    u16,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<&'static str>,
);

pub const LINKS: &[LinkRow] = &[
    (
        "join_waitlist",
        201,
        "leave",
        "leave_waitlist",
        &[("entry_id", "$response.body#/entry_id")],
        None,
    ),
    (
        "join_waitlist",
        200,
        "leave",
        "leave_waitlist",
        &[("entry_id", "$response.body#/entry_id")],
        None,
    ),
    (
        "list_offices",
        200,
        "slots",
        "list_slots",
        &[("office_id", "$response.body#/0/office_id")],
        None,
    ),
    (
        "create_application",
        201,
        "pay",
        "create_payment",
        &[],
        Some("application_id"),
    ),
    (
        "create_application",
        201,
        "hold",
        "create_hold",
        &[],
        Some("application_id"),
    ),
    ("create_payment", 201, "book", "book", &[], Some("payment")),
    // A release wave and its cancellation.
    (
        "create_release_wave",
        201,
        "cancel",
        "cancel_release_wave",
        &[("wave_id", "$response.body#/wave_id")],
        None,
    ),
    // The waiting room: a room's page and its joins; a ticket's polls.
    (
        "create_room",
        201,
        "room",
        "get_room",
        &[("room_id", "$response.body#/room_id")],
        None,
    ),
    (
        "create_room",
        201,
        "join",
        "join_queue",
        &[],
        Some("room_id"),
    ),
    (
        "join_queue",
        201,
        "poll",
        "poll_ticket",
        &[("ticket", "$response.body#/ticket")],
        None,
    ),
    (
        "join_queue",
        200,
        "poll",
        "poll_ticket",
        &[("ticket", "$response.body#/ticket")],
        None,
    ),
    (
        "get_room",
        200,
        "order",
        "get_order",
        &[("room_id", "$response.body#/room_id")],
        None,
    ),
    ("create_payment", 200, "book", "book", &[], Some("payment")),
    (
        "create_hold",
        201,
        "confirm",
        "confirm_hold",
        &[("hold_id", "$response.body#/hold_id")],
        None,
    ),
    (
        "create_hold",
        201,
        "release",
        "release_hold",
        &[("hold_id", "$response.body#/hold_id")],
        None,
    ),
    (
        "confirm_hold",
        201,
        "receipt",
        "get_appointment",
        &[("tracking_code", "$response.body#/tracking_code")],
        None,
    ),
    (
        "confirm_hold",
        201,
        "cancel",
        "cancel",
        &[("tracking_code", "$response.body#/tracking_code")],
        None,
    ),
    (
        "confirm_hold",
        201,
        "reschedule",
        "reschedule",
        &[("tracking_code", "$response.body#/tracking_code")],
        None,
    ),
    (
        "book",
        201,
        "receipt",
        "get_appointment",
        &[("tracking_code", "$response.body#/tracking_code")],
        None,
    ),
    (
        "book",
        201,
        "cancel",
        "cancel",
        &[("tracking_code", "$response.body#/tracking_code")],
        None,
    ),
    (
        "book",
        201,
        "reschedule",
        "reschedule",
        &[("tracking_code", "$response.body#/tracking_code")],
        None,
    ),
    (
        "create_office",
        201,
        "office",
        "get_office",
        &[("office_id", "$response.body#/office_id")],
        None,
    ),
    (
        "create_office",
        201,
        "edit",
        "update_office",
        &[("office_id", "$response.body#/office_id")],
        None,
    ),
    (
        "create_office",
        201,
        "staff_token",
        "create_staff_token",
        &[("office_id", "$response.body#/office_id")],
        None,
    ),
    (
        "create_office",
        201,
        "staff_tokens",
        "list_staff_tokens",
        &[("office_id", "$response.body#/office_id")],
        None,
    ),
    (
        "create_staff_token",
        201,
        "revoke",
        "revoke_staff_token",
        &[("token_id", "$response.body#/token_id")],
        None,
    ),
    (
        "post_simulation",
        202,
        "job",
        "get_job",
        &[("id", "$response.body#/job_id")],
        None,
    ),
    (
        "post_simulation",
        202,
        "report",
        "get_report",
        &[("id", "$response.body#/job_id")],
        None,
    ),
    (
        "post_plan",
        202,
        "job",
        "get_job",
        &[("id", "$response.body#/job_id")],
        None,
    ),
];

/// A link's request body: the fields it carries over from the response it follows (the rest
/// of the body is the client's).
fn link_body(kind: &str) -> Value {
    match kind {
        "application_id" => json!({ "application_id": "$response.body#/application_id" }),
        "payment" => json!({
            "application_id": "$response.body#/application_id",
            "payment_id": "$response.body#/payment_id",
        }),
        "room_id" => json!({ "room_id": "$response.body#/room_id" }),
        other => unreachable!("no link body {other}"),
    }
}

/// Adds [`LINKS`] to the operations' responses.
pub fn add_links(paths: &mut Map<String, Value>) {
    for &(from, status, name, to, parameters, body) in LINKS {
        let Some(op) = operation_mut(paths, from) else {
            continue;
        };
        let mut link = json!({ "operationId": to });
        if !parameters.is_empty() {
            link["parameters"] = parameters
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect::<Map<_, _>>()
                .into();
        }
        if let Some(kind) = body {
            link["requestBody"] = link_body(kind);
        }
        let response = &mut op["responses"][status.to_string()];
        if response.is_object() {
            response["links"][name] = link;
        }
    }
}

/// The operation with this id.
pub fn operation_mut<'a>(paths: &'a mut Map<String, Value>, id: &str) -> Option<&'a mut Value> {
    paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .find(|op| op["operationId"] == id)
}
