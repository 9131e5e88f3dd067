//! What a request ends in, and the writes of a batch.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rows::{
    AppointmentRow, AppointmentStatus, CardRow, HoldRow, HoldStatus, OutboxRow, PaymentStatus,
    UnixSeconds,
};
use crate::rows::{EntryOffice, ReleaseStatus, SeatReleaseRow, WaitRow, WaitStatus};

/// Why a request was refused. Each maps to one stable API error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "refusal", rename_all = "snake_case")]
pub enum Refusal {
    SlotFull {
        slot_id: i64,
    },
    SlotUnknown {
        slot_id: i64,
    },
    /// The slot's seats belong to a release wave that opens at `opens_at`.
    NotYetReleased {
        slot_id: i64,
        opens_at: UnixSeconds,
    },
    AlreadyHolding {
        hold_id: String,
    },
    AlreadyBooked {
        tracking_code: String,
    },
    HoldNotFound,
    HoldExpired,
    HoldNotLive {
        status: HoldStatus,
    },
    PaymentNotFound,
    PaymentNotPaid {
        status: PaymentStatus,
    },
    PaymentMismatch,
    /// The hold's application is not this citizen's, or not for this service.
    ApplicationNotFound,
    AppointmentNotFound,
    NotActive {
        status: AppointmentStatus,
    },
    SameSlot,
    /// A staff step that does not follow from the appointment's status.
    InvalidTransition {
        status: AppointmentStatus,
    },
    /// A no-show marked before the appointment's start.
    TooEarly,
    /// A capacity below the seats already taken.
    CapacityBelowTaken {
        slot_id: i64,
        taken: i64,
    },
    /// The applicant has moved this appointment `limit` times already.
    RescheduleLimitReached {
        limit: u32,
    },
    /// The citizen has cancelled `limit` appointments within the last `window_days` days.
    CancellationLimitReached {
        limit: u32,
        window_days: u32,
    },
    /// Every candidate slot of an auto-pick was full (or unknown) on the locked rows: the
    /// caller asks again with fresh candidates, or answers that no seat is within the limits.
    CandidatesFull,
    /// Another active waitlist entry of the citizen for the service.
    AlreadyWaiting {
        entry_id: String,
    },
    EntryNotFound,
    /// The waitlist entry is no longer waiting (booked, left, lapsed), or not offered a seat.
    EntryNotActive {
        status: WaitStatus,
    },
    /// No such offer of the citizen's (or it is no longer open).
    OfferNotFound,
    /// A seat release that is not pending or not yet due (the sweeper's, never an applicant's).
    ReleaseNotDue,
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::SlotFull { .. } => "slot_full",
            Refusal::SlotUnknown { .. } => "slot_unknown",
            Refusal::NotYetReleased { .. } => "not_yet_released",
            Refusal::AlreadyHolding { .. } => "already_holding",
            Refusal::AlreadyBooked { .. } => "already_booked",
            Refusal::HoldNotFound => "hold_not_found",
            Refusal::HoldExpired => "hold_expired",
            Refusal::HoldNotLive { .. } => "hold_not_live",
            Refusal::PaymentNotFound => "payment_not_found",
            Refusal::PaymentNotPaid { .. } => "payment_not_paid",
            Refusal::PaymentMismatch => "payment_mismatch",
            Refusal::ApplicationNotFound => "application_not_found",
            Refusal::AppointmentNotFound => "appointment_not_found",
            Refusal::NotActive { .. } => "appointment_not_active",
            Refusal::SameSlot => "same_slot",
            Refusal::InvalidTransition { .. } => "invalid_transition",
            Refusal::TooEarly => "too_early",
            Refusal::CapacityBelowTaken { .. } => "capacity_below_taken",
            Refusal::RescheduleLimitReached { .. } => "reschedule_limit_reached",
            Refusal::CancellationLimitReached { .. } => "cancellation_limit_reached",
            Refusal::CandidatesFull => "no_seat_within_limits",
            Refusal::AlreadyWaiting { .. } => "already_waiting",
            Refusal::EntryNotFound => "waitlist_entry_not_found",
            Refusal::EntryNotActive { .. } => "waitlist_entry_not_active",
            Refusal::OfferNotFound => "offer_not_found",
            Refusal::ReleaseNotDue => "release_not_due",
        }
    }
}

/// What happened to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Held {
        hold: HoldRow,
    },
    Booked {
        appointment: AppointmentRow,
    },
    Released {
        hold_id: String,
    },
    Cancelled {
        appointment: AppointmentRow,
    },
    Rescheduled {
        appointment: AppointmentRow,
        old_slot_id: i64,
    },
    Expired {
        hold_id: String,
    },
    /// A staff step (check-in, no-show, card ready) changed the appointment's status.
    Updated {
        appointment: AppointmentRow,
    },
    Enrolled {
        appointment: AppointmentRow,
        card: CardRow,
        pickup: Option<AppointmentRow>,
    },
    Delivered {
        appointment: AppointmentRow,
        pickup: Option<AppointmentRow>,
    },
    /// Moved (status still active) or cancelled by an administrator's change.
    Relocated {
        appointment: AppointmentRow,
        old_slot_id: i64,
    },
    CapacitySet {
        slot_id: i64,
        capacity: i64,
    },
    /// On the waitlist: a new entry (`created`), or the same entry again.
    Waitlisted {
        entry: WaitRow,
        created: bool,
    },
    WaitlistLeft {
        entry: WaitRow,
    },
    /// The offer was declined; the entry waits again.
    OfferDeclined {
        entry: WaitRow,
    },
    /// A release delay ended: the seat went to a waiter or back to first-come booking.
    SeatReleased {
        slot_id: i64,
    },
    Refused(Refusal),
}

/// An event for the append-only log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: UnixSeconds,
    pub kind: &'static str,
    /// The hold id or tracking code the event is about.
    pub subject: String,
    pub actor: String,
    /// The event's details, as the JSON text stored.
    pub payload_json: String,
}

/// The writes of a batch, to apply in one transaction.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Effects {
    /// When the batch was decided.
    pub now: UnixSeconds,
    pub new_holds: Vec<HoldRow>,
    /// Hold id → new status (for holds that existed before the batch).
    pub hold_status: BTreeMap<String, HoldStatus>,
    pub new_appointments: Vec<AppointmentRow>,
    /// Updated rows of appointments that existed before the batch.
    pub appointment_updates: BTreeMap<String, AppointmentRow>,
    /// Slot id → change of `taken`.
    pub slot_deltas: BTreeMap<i64, i64>,
    /// Slot id → new capacity (never below its taken seats).
    pub slot_capacity: BTreeMap<i64, i64>,
    pub new_cards: Vec<CardRow>,
    /// Waitlist entries joined in this batch, and the offices each accepts.
    pub new_entries: Vec<WaitRow>,
    pub entry_offices: Vec<EntryOffice>,
    /// Entries read and changed, by id (an inactive one leaves `waitlist_offices` too).
    pub entry_updates: BTreeMap<String, WaitRow>,
    /// Seats kept taken until their release time.
    pub new_releases: Vec<SeatReleaseRow>,
    /// Release id → new status.
    pub release_status: BTreeMap<i64, ReleaseStatus>,
    pub outbox: Vec<OutboxRow>,
    pub events: Vec<Event>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.new_holds.is_empty()
            && self.hold_status.is_empty()
            && self.new_appointments.is_empty()
            && self.appointment_updates.is_empty()
            && self.slot_deltas.is_empty()
            && self.slot_capacity.is_empty()
            && self.new_cards.is_empty()
            && self.new_entries.is_empty()
            && self.entry_offices.is_empty()
            && self.entry_updates.is_empty()
            && self.new_releases.is_empty()
            && self.release_status.is_empty()
            && self.outbox.is_empty()
            && self.events.is_empty()
    }
}
