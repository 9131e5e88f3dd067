//! Every `code` a problem can carry: one enum, so a handler cannot invent a code the OpenAPI
//! document does not list, and the vocabularies of the layers below (the booking decision's
//! [`Refusal`], the calendar's [`SlotRejection`], the domain's validation codes) are mapped
//! onto it in one place.

use serde::Serialize;
use utoipa::ToSchema;

use crate::booking::Refusal;
use crate::domain::slots::SlotRejection;

/// Declares [`ProblemCode`] with each variant's wire string written once: serde, `as_str` and
/// the list of all codes are generated from the same line, so they cannot disagree. The string
/// is taken as a token tree, not a `literal` fragment: utoipa does not read a `rename` whose
/// value arrives wrapped in a macro fragment's invisible group, and would list variant names.
macro_rules! problem_codes {
    ($($(#[$meta:meta])* $variant:ident = $wire:tt,)*) => {
        /// The stable, machine-readable `code` of a problem (what clients switch on).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, ToSchema)]
        pub enum ProblemCode {
            $($(#[$meta])* #[serde(rename = $wire)] $variant,)*
        }

        impl ProblemCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ProblemCode] = &[$(ProblemCode::$variant,)*];

            /// The code as it goes on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ProblemCode::$variant => $wire,)*
                }
            }
        }
    };
}

problem_codes! {
    // The request itself: body, query, path, headers, route.
    MalformedJson = "malformed_json",
    InvalidBody = "invalid_body",
    UnsupportedMediaType = "unsupported_media_type",
    BodyTooLarge = "body_too_large",
    InvalidQuery = "invalid_query",
    InvalidPath = "invalid_path",
    InvalidIdempotencyKey = "invalid_idempotency_key",
    IdempotencyKeyReused = "idempotency_key_reused",
    /// A stored answer to this Idempotency-Key that this version cannot replay.
    IdempotencyRecordUnreadable = "idempotency_record_unreadable",
    NotFound = "not_found",
    MethodNotAllowed = "method_not_allowed",

    // Who is asking.
    Unauthorized = "unauthorized",
    Forbidden = "forbidden",
    InvalidCredentials = "invalid_credentials",
    RateLimited = "rate_limited",
    /// Too many failed logins for this national code or client address; `Retry-After` says
    /// when the window ends.
    LoginLocked = "login_locked",

    // The server's own state.
    Overloaded = "overloaded",
    Timeout = "timeout",
    Unavailable = "unavailable",
    Internal = "internal",
    Conflict = "conflict",

    // The applicant API: applications, payments, offices, slots.
    ServiceNotBookable = "service_not_bookable",
    NationalCodeMismatch = "national_code_mismatch",
    NotEligible = "not_eligible",
    InvalidSandboxOutcome = "invalid_sandbox_outcome",
    NoTariff = "no_tariff",
    ApplicationNotFound = "application_not_found",
    AppointmentNotFound = "appointment_not_found",
    OfficeNotFound = "office_not_found",
    ServiceNotOffered = "service_not_offered",
    InvalidStart = "invalid_start",
    StartInPast = "start_in_past",
    /// The applicant already has another active waitlist entry for the service.
    AlreadyWaiting = "already_waiting",
    WaitlistEntryNotFound = "waitlist_entry_not_found",
    /// The waitlist entry is no longer waiting, or its offer is no longer open.
    WaitlistEntryNotActive = "waitlist_entry_not_active",
    OfferNotFound = "offer_not_found",
    /// A seat release not yet due (never sent to a client: the sweeper's request).
    ReleaseNotDue = "release_not_due",
    /// Waitlist limits that accept no office offering the service.
    NoOfficeWithinLimits = "no_office_within_limits",
    OutsideBookingWindow = "outside_booking_window",
    InvalidNear = "invalid_near",
    UnknownProvince = "unknown_province",
    InvalidLimit = "invalid_limit",
    InvalidDate = "invalid_date",
    InvalidRange = "invalid_range",
    /// An auto-pick (`pick`) or the one-step form that is not exactly one of the two; `field`
    /// names the member at fault.
    InvalidPick = "invalid_pick",

    // A slot start the office's calendar refuses (`SlotRejection`).
    ClosedDay = "closed_day",
    OutsideHours = "outside_hours",
    OffGrid = "off_grid",

    // The booking decision's refusals (`Refusal`; `application_not_found` and
    // `appointment_not_found` above are refusals too).
    SlotFull = "slot_full",
    NotYetReleased = "not_yet_released",
    InvalidWave = "invalid_wave",
    WaveOverlap = "wave_overlap",
    WaveNotFound = "wave_not_found",
    WaveAlreadyOpen = "wave_already_open",
    /// A ballot's terms (the field is named in `errors`).
    InvalidBallot = "invalid_ballot",
    /// A ballot entry's preferences (the field is named in `errors`); nothing was stored.
    InvalidPreferences = "invalid_preferences",
    BallotNotFound = "ballot_not_found",
    BallotEntryNotFound = "ballot_entry_not_found",
    /// The ballot takes entries from its `opens_at`.
    BallotNotOpen = "ballot_not_open",
    /// The ballot closed: entries can no longer be made, changed or withdrawn.
    BallotClosed = "ballot_closed",
    /// The ballot's results are published at its close.
    BallotNotPublished = "ballot_not_published",
    SlotUnknown = "slot_unknown",
    AlreadyHolding = "already_holding",
    AlreadyBooked = "already_booked",
    HoldNotFound = "hold_not_found",
    HoldExpired = "hold_expired",
    HoldNotLive = "hold_not_live",
    PaymentNotFound = "payment_not_found",
    PaymentNotPaid = "payment_not_paid",
    PaymentMismatch = "payment_mismatch",
    AppointmentNotActive = "appointment_not_active",
    SameSlot = "same_slot",
    InvalidTransition = "invalid_transition",
    TooEarly = "too_early",
    CapacityBelowTaken = "capacity_below_taken",
    /// The applicant has moved this appointment as often as they may.
    RescheduleLimitReached = "reschedule_limit_reached",
    /// The citizen has cancelled as many appointments as they may within the window.
    CancellationLimitReached = "cancellation_limit_reached",
    /// An auto-pick found no free seat within its limits (with `relaxations` and `waitlist`).
    NoSeatWithinLimits = "no_seat_within_limits",

    // Staff.
    NotToday = "not_today",

    // Admin: offices, fees, closures, holidays, statistics.
    OfficeExists = "office_exists",
    InvalidName = "invalid_name",
    InvalidStations = "invalid_stations",
    ServiceNotForKind = "service_not_for_kind",
    InvalidCalendar = "invalid_calendar",
    InvalidCity = "invalid_city",
    InvalidYear = "invalid_year",
    InvalidFees = "invalid_fees",
    InvalidFee = "invalid_fee",
    InvalidGroup = "invalid_group",
    DateInPast = "date_in_past",
    InvalidReason = "invalid_reason",
    RangeTooLong = "range_too_long",
    TokenNotFound = "token_not_found",
    InvalidCursor = "invalid_cursor",

    // The waiting room.
    /// A waiting room is in front of this booking: join it and send its pass (`Booking-Pass`).
    PassRequired = "pass_required",
    /// The `Booking-Pass` is not a valid, unexpired pass of the caller for the room.
    PassInvalid = "pass_invalid",
    RoomNotFound = "room_not_found",
    /// The room's pre-queue has not opened yet, or the room has closed.
    RoomNotOpen = "room_not_open",
    TicketNotFound = "ticket_not_found",
    /// Not polled for the room's idle time, or its pass ran out.
    TicketExpired = "ticket_expired",
    InvalidAdmission = "invalid_admission",
    InvalidMinutes = "invalid_minutes",

    // The planner.
    InvalidScenario = "invalid_scenario",
    JobNotFound = "job_not_found",
    JobRunning = "job_running",
    JobFailed = "job_failed",

    // The domain's validation (`ValidationError::code`); a single failed field is answered
    // with its own code, several with `invalid_form`. (`invalid_name`, `invalid_date`,
    // `invalid_range` and `range_too_long` above are domain codes too.)
    InvalidForm = "invalid_form",
    InvalidGender = "invalid_gender",
    InvalidNationality = "invalid_nationality",
    TooManyChildren = "too_many_children",
    InvalidAddress = "invalid_address",
    InvalidTime = "invalid_time",
    InvalidHours = "invalid_hours",
    InvalidSlotMinutes = "invalid_slot_minutes",
    FridayHours = "friday_hours",
    TooManyEntries = "too_many_entries",
    OverlappingOverrides = "overlapping_overrides",
    DuplicateDate = "duplicate_date",
    InvalidHolidayTable = "invalid_holiday_table",
    InvalidHoliday = "invalid_holiday",
    DuplicateHoliday = "duplicate_holiday",
    TooManyHolidays = "too_many_holidays",
    InvalidCoordinates = "invalid_coordinates",
    InvalidCharacter = "invalid_character",
    InvalidNationalCode = "invalid_national_code",
    InvalidBirthCertificateSerial = "invalid_birth_certificate_serial",
    InvalidMobile = "invalid_mobile",
    InvalidPostalCode = "invalid_postal_code",
    InvalidAreaCode = "invalid_area_code",
    UnknownAreaCode = "unknown_area_code",
    InvalidJalaliDate = "invalid_jalali_date",
    InvalidOfficeId = "invalid_office_id",
    UnknownOfficeKind = "unknown_office_kind",
    UnknownService = "unknown_service",
    InvalidFeeTable = "invalid_fee_table",
    IncompleteFeeTable = "incomplete_fee_table",
    NonexistentLocalTime = "nonexistent_local_time",
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// No catch-all: a new refusal does not compile until it is given a code here.
impl From<&Refusal> for ProblemCode {
    fn from(refusal: &Refusal) -> Self {
        match refusal {
            Refusal::SlotFull { .. } => ProblemCode::SlotFull,
            Refusal::NotYetReleased { .. } => ProblemCode::NotYetReleased,
            Refusal::AlreadyWaiting { .. } => ProblemCode::AlreadyWaiting,
            Refusal::EntryNotFound => ProblemCode::WaitlistEntryNotFound,
            Refusal::EntryNotActive { .. } => ProblemCode::WaitlistEntryNotActive,
            Refusal::OfferNotFound => ProblemCode::OfferNotFound,
            Refusal::ReleaseNotDue => ProblemCode::ReleaseNotDue,
            Refusal::SlotUnknown { .. } => ProblemCode::SlotUnknown,
            Refusal::AlreadyHolding { .. } => ProblemCode::AlreadyHolding,
            Refusal::AlreadyBooked { .. } => ProblemCode::AlreadyBooked,
            Refusal::HoldNotFound => ProblemCode::HoldNotFound,
            Refusal::HoldExpired => ProblemCode::HoldExpired,
            Refusal::HoldNotLive { .. } => ProblemCode::HoldNotLive,
            Refusal::PaymentNotFound => ProblemCode::PaymentNotFound,
            Refusal::PaymentNotPaid { .. } => ProblemCode::PaymentNotPaid,
            Refusal::PaymentMismatch => ProblemCode::PaymentMismatch,
            Refusal::ApplicationNotFound => ProblemCode::ApplicationNotFound,
            Refusal::AppointmentNotFound => ProblemCode::AppointmentNotFound,
            Refusal::NotActive { .. } => ProblemCode::AppointmentNotActive,
            Refusal::SameSlot => ProblemCode::SameSlot,
            Refusal::InvalidTransition { .. } => ProblemCode::InvalidTransition,
            Refusal::TooEarly => ProblemCode::TooEarly,
            Refusal::CapacityBelowTaken { .. } => ProblemCode::CapacityBelowTaken,
            Refusal::RescheduleLimitReached { .. } => ProblemCode::RescheduleLimitReached,
            Refusal::CancellationLimitReached { .. } => ProblemCode::CancellationLimitReached,
            Refusal::CandidatesFull => ProblemCode::NoSeatWithinLimits,
        }
    }
}

/// No catch-all, as for refusals.
impl From<&SlotRejection> for ProblemCode {
    fn from(rejection: &SlotRejection) -> Self {
        match rejection {
            SlotRejection::ClosedDay(_) => ProblemCode::ClosedDay,
            SlotRejection::OutsideHours { .. } => ProblemCode::OutsideHours,
            SlotRejection::OffGrid { .. } => ProblemCode::OffGrid,
        }
    }
}

impl ProblemCode {
    /// The problem code of a domain validation code (`ValidationError::code`, a string in the
    /// domain crate). Every code the domain writes is listed; `None` for any other, which
    /// a test of this module (scanning the crates' sources) keeps from happening.
    pub fn of_validation(code: &str) -> Option<ProblemCode> {
        Some(match code {
            "invalid_form" => ProblemCode::InvalidForm,
            "invalid_gender" => ProblemCode::InvalidGender,
            "invalid_name" => ProblemCode::InvalidName,
            "invalid_date" => ProblemCode::InvalidDate,
            "invalid_nationality" => ProblemCode::InvalidNationality,
            "too_many_children" => ProblemCode::TooManyChildren,
            "invalid_address" => ProblemCode::InvalidAddress,
            "invalid_time" => ProblemCode::InvalidTime,
            "invalid_hours" => ProblemCode::InvalidHours,
            "invalid_slot_minutes" => ProblemCode::InvalidSlotMinutes,
            "friday_hours" => ProblemCode::FridayHours,
            "too_many_entries" => ProblemCode::TooManyEntries,
            "invalid_range" => ProblemCode::InvalidRange,
            "range_too_long" => ProblemCode::RangeTooLong,
            "overlapping_overrides" => ProblemCode::OverlappingOverrides,
            "duplicate_date" => ProblemCode::DuplicateDate,
            "invalid_holiday_table" => ProblemCode::InvalidHolidayTable,
            "invalid_holiday" => ProblemCode::InvalidHoliday,
            "duplicate_holiday" => ProblemCode::DuplicateHoliday,
            "too_many_holidays" => ProblemCode::TooManyHolidays,
            "invalid_coordinates" => ProblemCode::InvalidCoordinates,
            "invalid_character" => ProblemCode::InvalidCharacter,
            "invalid_national_code" => ProblemCode::InvalidNationalCode,
            "invalid_birth_certificate_serial" => ProblemCode::InvalidBirthCertificateSerial,
            "invalid_mobile" => ProblemCode::InvalidMobile,

            "invalid_postal_code" => ProblemCode::InvalidPostalCode,
            "invalid_area_code" => ProblemCode::InvalidAreaCode,
            "unknown_area_code" => ProblemCode::UnknownAreaCode,
            "invalid_jalali_date" => ProblemCode::InvalidJalaliDate,
            "invalid_office_id" => ProblemCode::InvalidOfficeId,
            "unknown_office_kind" => ProblemCode::UnknownOfficeKind,
            "unknown_service" => ProblemCode::UnknownService,
            "invalid_fee_table" => ProblemCode::InvalidFeeTable,
            "incomplete_fee_table" => ProblemCode::IncompleteFeeTable,
            "nonexistent_local_time" => ProblemCode::NonexistentLocalTime,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveTime;

    use super::*;
    use crate::booking::{AppointmentStatus, HoldStatus, PaymentStatus};
    use crate::domain::calendar::ClosedReason;

    /// The codes as the API sent them before the enum (and `unauthorized` for the planner,
    /// which said `unauthorised`): a renamed variant must not change the wire.
    const WIRE: &[(ProblemCode, &str)] = &[
        (ProblemCode::MalformedJson, "malformed_json"),
        (ProblemCode::InvalidBody, "invalid_body"),
        (ProblemCode::UnsupportedMediaType, "unsupported_media_type"),
        (ProblemCode::BodyTooLarge, "body_too_large"),
        (ProblemCode::InvalidQuery, "invalid_query"),
        (ProblemCode::InvalidPath, "invalid_path"),
        (
            ProblemCode::InvalidIdempotencyKey,
            "invalid_idempotency_key",
        ),
        (ProblemCode::IdempotencyKeyReused, "idempotency_key_reused"),
        (
            ProblemCode::IdempotencyRecordUnreadable,
            "idempotency_record_unreadable",
        ),
        (ProblemCode::NotFound, "not_found"),
        (ProblemCode::MethodNotAllowed, "method_not_allowed"),
        (ProblemCode::Unauthorized, "unauthorized"),
        (ProblemCode::Forbidden, "forbidden"),
        (ProblemCode::InvalidCredentials, "invalid_credentials"),
        (ProblemCode::RateLimited, "rate_limited"),
        (ProblemCode::LoginLocked, "login_locked"),
        (ProblemCode::Overloaded, "overloaded"),
        (ProblemCode::Timeout, "timeout"),
        (ProblemCode::Unavailable, "unavailable"),
        (ProblemCode::Internal, "internal"),
        (ProblemCode::Conflict, "conflict"),
        (ProblemCode::ServiceNotBookable, "service_not_bookable"),
        (ProblemCode::NationalCodeMismatch, "national_code_mismatch"),
        (ProblemCode::NotEligible, "not_eligible"),
        (
            ProblemCode::InvalidSandboxOutcome,
            "invalid_sandbox_outcome",
        ),
        (ProblemCode::NoTariff, "no_tariff"),
        (ProblemCode::ApplicationNotFound, "application_not_found"),
        (ProblemCode::AppointmentNotFound, "appointment_not_found"),
        (ProblemCode::OfficeNotFound, "office_not_found"),
        (ProblemCode::ServiceNotOffered, "service_not_offered"),
        (ProblemCode::InvalidStart, "invalid_start"),
        (ProblemCode::StartInPast, "start_in_past"),
        (ProblemCode::AlreadyWaiting, "already_waiting"),
        (
            ProblemCode::WaitlistEntryNotFound,
            "waitlist_entry_not_found",
        ),
        (
            ProblemCode::WaitlistEntryNotActive,
            "waitlist_entry_not_active",
        ),
        (ProblemCode::OfferNotFound, "offer_not_found"),
        (ProblemCode::ReleaseNotDue, "release_not_due"),
        (ProblemCode::NoOfficeWithinLimits, "no_office_within_limits"),
        (ProblemCode::OutsideBookingWindow, "outside_booking_window"),
        (ProblemCode::InvalidNear, "invalid_near"),
        (ProblemCode::UnknownProvince, "unknown_province"),
        (ProblemCode::InvalidLimit, "invalid_limit"),
        (ProblemCode::InvalidDate, "invalid_date"),
        (ProblemCode::InvalidRange, "invalid_range"),
        (ProblemCode::InvalidPick, "invalid_pick"),
        (ProblemCode::ClosedDay, "closed_day"),
        (ProblemCode::OutsideHours, "outside_hours"),
        (ProblemCode::OffGrid, "off_grid"),
        (ProblemCode::SlotFull, "slot_full"),
        (ProblemCode::NotYetReleased, "not_yet_released"),
        (ProblemCode::InvalidWave, "invalid_wave"),
        (ProblemCode::WaveOverlap, "wave_overlap"),
        (ProblemCode::WaveNotFound, "wave_not_found"),
        (ProblemCode::WaveAlreadyOpen, "wave_already_open"),
        (ProblemCode::InvalidBallot, "invalid_ballot"),
        (ProblemCode::InvalidPreferences, "invalid_preferences"),
        (ProblemCode::BallotNotFound, "ballot_not_found"),
        (ProblemCode::BallotEntryNotFound, "ballot_entry_not_found"),
        (ProblemCode::BallotNotOpen, "ballot_not_open"),
        (ProblemCode::BallotClosed, "ballot_closed"),
        (ProblemCode::BallotNotPublished, "ballot_not_published"),
        (ProblemCode::SlotUnknown, "slot_unknown"),
        (ProblemCode::AlreadyHolding, "already_holding"),
        (ProblemCode::AlreadyBooked, "already_booked"),
        (ProblemCode::HoldNotFound, "hold_not_found"),
        (ProblemCode::HoldExpired, "hold_expired"),
        (ProblemCode::HoldNotLive, "hold_not_live"),
        (ProblemCode::PaymentNotFound, "payment_not_found"),
        (ProblemCode::PaymentNotPaid, "payment_not_paid"),
        (ProblemCode::PaymentMismatch, "payment_mismatch"),
        (ProblemCode::AppointmentNotActive, "appointment_not_active"),
        (ProblemCode::SameSlot, "same_slot"),
        (ProblemCode::InvalidTransition, "invalid_transition"),
        (ProblemCode::TooEarly, "too_early"),
        (ProblemCode::CapacityBelowTaken, "capacity_below_taken"),
        (
            ProblemCode::RescheduleLimitReached,
            "reschedule_limit_reached",
        ),
        (
            ProblemCode::CancellationLimitReached,
            "cancellation_limit_reached",
        ),
        (ProblemCode::NoSeatWithinLimits, "no_seat_within_limits"),
        (ProblemCode::NotToday, "not_today"),
        (ProblemCode::OfficeExists, "office_exists"),
        (ProblemCode::InvalidName, "invalid_name"),
        (ProblemCode::InvalidStations, "invalid_stations"),
        (ProblemCode::ServiceNotForKind, "service_not_for_kind"),
        (ProblemCode::InvalidCalendar, "invalid_calendar"),
        (ProblemCode::InvalidCity, "invalid_city"),
        (ProblemCode::InvalidYear, "invalid_year"),
        (ProblemCode::InvalidFees, "invalid_fees"),
        (ProblemCode::InvalidFee, "invalid_fee"),
        (ProblemCode::InvalidGroup, "invalid_group"),
        (ProblemCode::DateInPast, "date_in_past"),
        (ProblemCode::InvalidReason, "invalid_reason"),
        (ProblemCode::RangeTooLong, "range_too_long"),
        (ProblemCode::TokenNotFound, "token_not_found"),
        (ProblemCode::InvalidCursor, "invalid_cursor"),
        (ProblemCode::InvalidScenario, "invalid_scenario"),
        (ProblemCode::JobNotFound, "job_not_found"),
        (ProblemCode::JobRunning, "job_running"),
        (ProblemCode::JobFailed, "job_failed"),
        (ProblemCode::PassRequired, "pass_required"),
        (ProblemCode::PassInvalid, "pass_invalid"),
        (ProblemCode::RoomNotFound, "room_not_found"),
        (ProblemCode::RoomNotOpen, "room_not_open"),
        (ProblemCode::TicketNotFound, "ticket_not_found"),
        (ProblemCode::TicketExpired, "ticket_expired"),
        (ProblemCode::InvalidAdmission, "invalid_admission"),
        (ProblemCode::InvalidMinutes, "invalid_minutes"),
        (ProblemCode::InvalidForm, "invalid_form"),
        (ProblemCode::InvalidGender, "invalid_gender"),
        (ProblemCode::InvalidNationality, "invalid_nationality"),
        (ProblemCode::TooManyChildren, "too_many_children"),
        (ProblemCode::InvalidAddress, "invalid_address"),
        (ProblemCode::InvalidTime, "invalid_time"),
        (ProblemCode::InvalidHours, "invalid_hours"),
        (ProblemCode::InvalidSlotMinutes, "invalid_slot_minutes"),
        (ProblemCode::FridayHours, "friday_hours"),
        (ProblemCode::TooManyEntries, "too_many_entries"),
        (ProblemCode::OverlappingOverrides, "overlapping_overrides"),
        (ProblemCode::DuplicateDate, "duplicate_date"),
        (ProblemCode::InvalidHolidayTable, "invalid_holiday_table"),
        (ProblemCode::InvalidHoliday, "invalid_holiday"),
        (ProblemCode::DuplicateHoliday, "duplicate_holiday"),
        (ProblemCode::TooManyHolidays, "too_many_holidays"),
        (ProblemCode::InvalidCoordinates, "invalid_coordinates"),
        (ProblemCode::InvalidCharacter, "invalid_character"),
        (ProblemCode::InvalidNationalCode, "invalid_national_code"),
        (
            ProblemCode::InvalidBirthCertificateSerial,
            "invalid_birth_certificate_serial",
        ),
        (ProblemCode::InvalidMobile, "invalid_mobile"),
        (ProblemCode::InvalidPostalCode, "invalid_postal_code"),
        (ProblemCode::InvalidAreaCode, "invalid_area_code"),
        (ProblemCode::UnknownAreaCode, "unknown_area_code"),
        (ProblemCode::InvalidJalaliDate, "invalid_jalali_date"),
        (ProblemCode::InvalidOfficeId, "invalid_office_id"),
        (ProblemCode::UnknownOfficeKind, "unknown_office_kind"),
        (ProblemCode::UnknownService, "unknown_service"),
        (ProblemCode::InvalidFeeTable, "invalid_fee_table"),
        (ProblemCode::IncompleteFeeTable, "incomplete_fee_table"),
        (ProblemCode::NonexistentLocalTime, "nonexistent_local_time"),
    ];

    #[test]
    fn every_code_serialises_as_the_api_always_sent_it() {
        for &(code, wire) in WIRE {
            assert_eq!(serde_json::to_value(code).unwrap(), wire, "{code:?}");
            assert_eq!(code.as_str(), wire, "{code:?}");
            assert_eq!(code.to_string(), wire, "{code:?}");
        }
        for code in ProblemCode::ALL {
            assert!(
                WIRE.iter().any(|(c, _)| c == code),
                "{code:?} is missing from the table"
            );
        }
        let mut wires: Vec<&str> = WIRE.iter().map(|(_, w)| *w).collect();
        wires.sort_unstable();
        wires.dedup();
        assert_eq!(
            wires.len(),
            ProblemCode::ALL.len(),
            "two codes share a string"
        );
    }

    /// The booking crate names each refusal's code itself (`Refusal::code`); the mapping
    /// onto the enum must give the same string for every refusal.
    #[test]
    fn refusals_keep_their_codes() {
        let every_refusal = [
            Refusal::SlotFull { slot_id: 1 },
            Refusal::SlotUnknown { slot_id: 1 },
            Refusal::NotYetReleased {
                slot_id: 1,
                opens_at: 2,
            },
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
            Refusal::CandidatesFull,
        ];
        for refusal in &every_refusal {
            assert_eq!(ProblemCode::from(refusal).as_str(), refusal.code());
        }
        let nine = NaiveTime::from_hms_opt(9, 0, 0).unwrap();
        for rejection in [
            SlotRejection::ClosedDay(ClosedReason::Friday),
            SlotRejection::OutsideHours {
                open: nine,
                close: nine,
            },
            SlotRejection::OffGrid {
                open: nine,
                slot_minutes: 15,
            },
        ] {
            assert_eq!(ProblemCode::from(&rejection).as_str(), rejection.code());
        }
    }

    /// Every validation code written in the workspace's sources (the second argument of each
    /// `ValidationError::new`) has a problem code with the same string, so a domain code
    /// added without one fails here rather than reaching a client as `invalid_form`.
    #[test]
    fn every_domain_validation_code_has_a_problem_code() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in ["src", "crates"] {
            collect_rust_files(&root.join(dir), &mut files);
        }
        let mut seen = 0;
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (at, _) in text.match_indices("ValidationError::new(") {
                let args = &text[at + "ValidationError::new(".len()..];
                let second = args.split(',').nth(1).unwrap_or("").trim();
                let line = text[..at].matches('\n').count() + 1;
                let place = format!("{}:{line}", file.display());
                let code = second
                    .strip_prefix('"')
                    .and_then(|c| c.strip_suffix('"'))
                    .unwrap_or_else(|| panic!("{place}: the code {second:?} is not a literal"));
                let mapped = ProblemCode::of_validation(code)
                    .unwrap_or_else(|| panic!("{place}: {code:?} has no problem code"));
                assert_eq!(mapped.as_str(), code, "{place}");
                seen += 1;
            }
        }
        assert!(
            seen > 40,
            "only {seen} validation codes found: is the scan looking?"
        );
    }

    fn collect_rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with("target") {
                    collect_rust_files(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with(file!()) {
                out.push(path);
            }
        }
    }
}
