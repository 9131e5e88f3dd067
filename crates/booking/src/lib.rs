//! The booking decisions of one group-commit batch, as a pure function.
//!
//! The writer (see the root crate's `reserve`) locks and reads every row a batch touches into a
//! [`BatchState`], calls [`decide`] to apply the requests **in arrival order**, then writes the
//! returned [`Effects`] and commits once. Because the decisions are pure, they are tested and
//! property-tested here without a database, and replay exactly from their inputs (the clock
//! and the pre-generated identifiers are inputs, not read inside).
//!
//! Architecture invariant: `decide` never lets a slot's `taken` exceed its `capacity` or go
//! negative, never gives a citizen two live holds, and never gives a (citizen, service) two
//! active appointments. The database re-checks all three, so a bug here fails a batch; it
//! cannot overbook.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// The batch's in-memory maps. Their keys are ids and codes of at most one batch (bounded), so
/// a fast, fixed-seed hash serves (FxHash: SipHash was about 4% of the SQLite writer thread's
/// instructions per booking), and a map's order is the same in every run.
pub type BatchMap<K, V> = HashMap<K, V, rustc_hash::FxBuildHasher>;

/// Unix seconds.
pub type UnixSeconds = i64;

/// The service code of the card-pickup visit booked at enrolment.
pub const PICKUP_SERVICE: &str = "card_pickup";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRow {
    pub id: i64,
    pub office_id: String,
    pub start_at: UnixSeconds,
    pub duration_minutes: i64,
    pub capacity: i64,
    pub taken: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Live,
    Confirmed,
    Released,
    Expired,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Live => "live",
            HoldStatus::Confirmed => "confirmed",
            HoldStatus::Released => "released",
            HoldStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            HoldStatus::Live,
            HoldStatus::Confirmed,
            HoldStatus::Released,
            HoldStatus::Expired,
        ]
        .into_iter()
        .find(|h| h.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRow {
    pub id: String,
    pub slot_id: i64,
    pub application_id: String,
    pub national_code: String,
    pub service: String,
    pub status: HoldStatus,
    pub created_at: UnixSeconds,
    pub expires_at: UnixSeconds,
}

/// Where an appointment is in its life. Staff steps (check-in, enrolment, pickup) move it on;
/// only `Booked` and `CheckedIn` are *active* (hold a seat in the future and block a second
/// booking for the same service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    Booked,
    CheckedIn,
    Enrolled,
    NoShow,
    Cancelled,
    Rescheduled,
    CardReady,
    Delivered,
}

impl AppointmentStatus {
    pub const ALL: [AppointmentStatus; 8] = [
        AppointmentStatus::Booked,
        AppointmentStatus::CheckedIn,
        AppointmentStatus::Enrolled,
        AppointmentStatus::NoShow,
        AppointmentStatus::Cancelled,
        AppointmentStatus::Rescheduled,
        AppointmentStatus::CardReady,
        AppointmentStatus::Delivered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AppointmentStatus::Booked => "booked",
            AppointmentStatus::CheckedIn => "checked_in",
            AppointmentStatus::Enrolled => "enrolled",
            AppointmentStatus::NoShow => "no_show",
            AppointmentStatus::Cancelled => "cancelled",
            AppointmentStatus::Rescheduled => "rescheduled",
            AppointmentStatus::CardReady => "card_ready",
            AppointmentStatus::Delivered => "delivered",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Active appointments hold a seat and block another booking of the same service.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            AppointmentStatus::Booked | AppointmentStatus::CheckedIn
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentRow {
    pub tracking_code: String,
    pub slot_id: i64,
    pub office_id: String,
    pub start_at: UnixSeconds,
    pub application_id: String,
    pub national_code: String,
    pub service: String,
    pub payment_id: Option<String>,
    pub status: AppointmentStatus,
    pub created_at: UnixSeconds,
    pub updated_at: UnixSeconds,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Paid,
    Declined,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Paid => "paid",
            PaymentStatus::Declined => "declined",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            PaymentStatus::Pending,
            PaymentStatus::Paid,
            PaymentStatus::Declined,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRow {
    pub id: String,
    pub application_id: String,
    /// The service of the application paid for (joined in when read).
    pub service: String,
    pub national_code: String,
    pub status: PaymentStatus,
}

/// Whose application it is and for which service: what a hold must agree with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationRef {
    pub id: String,
    pub national_code: String,
    pub service: String,
}

/// A request to the writer. Identifiers it may create (hold id, tracking code) are generated
/// before it is queued, so that the decision is a pure function of its inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Hold {
        national_code: String,
        application_id: String,
        service: String,
        slot_id: i64,
        hold_id: String,
        expires_at: UnixSeconds,
    },
    Confirm {
        national_code: String,
        hold_id: String,
        payment_id: String,
        tracking_code: String,
    },
    Release {
        national_code: String,
        hold_id: String,
    },
    /// Hold and confirm in one step.
    Book {
        national_code: String,
        application_id: String,
        service: String,
        slot_id: i64,
        payment_id: String,
        hold_id: String,
        tracking_code: String,
    },
    Cancel {
        national_code: String,
        tracking_code: String,
    },
    /// Moves an active appointment to another slot, keeping its tracking code. The old seat is
    /// given up only if the new one is secured, in the same transaction.
    Reschedule {
        national_code: String,
        tracking_code: String,
        new_slot_id: i64,
    },
    /// A live hold whose time is up (from the expiry sweeper).
    Expire { hold_id: String },
    /// Staff: the applicant arrived at `office_id` for a booked appointment.
    CheckIn {
        office_id: String,
        tracking_code: String,
        actor: String,
    },
    /// Staff: biometrics taken. The appointment leaves the active set (its seat, in a slot
    /// that has started, is freed), the card's ready date is recorded, and the card-pickup
    /// visit is booked at the same office in the same transaction when a seat was found.
    Enrol {
        office_id: String,
        tracking_code: String,
        /// Whose appointment it is (read by the handler), so the batch loads their other
        /// active appointments and cannot book a second pickup.
        national_code: String,
        /// ISO date the card is expected to be ready.
        ready_date: String,
        pickup: Option<PickupBooking>,
        actor: String,
    },
    /// Staff: the applicant did not come. The appointment leaves the active set and its seat
    /// (in a slot already started, never re-sold: bookings of past slots are refused) is
    /// freed; the applicant may book again.
    NoShow {
        office_id: String,
        tracking_code: String,
        actor: String,
    },
    /// Staff: the card arrived at the office.
    CardReady {
        office_id: String,
        tracking_code: String,
        actor: String,
    },
    /// Staff: the card was handed over. The pickup appointment (if any) ends too and frees its
    /// seat.
    Deliver {
        office_id: String,
        tracking_code: String,
        pickup_tracking_code: Option<String>,
        actor: String,
    },
    /// Admin (closure, holiday, capacity cut): moves an active appointment to `new_slot_id`,
    /// or cancels it when `None`, and queues one notice to the applicant keyed by
    /// `notice_key` (so the same closure can never queue twice).
    Relocate {
        tracking_code: String,
        new_slot_id: Option<i64>,
        reason: RelocationReason,
        notice_key: String,
        actor: String,
    },
    /// Admin: sets a slot's capacity; refused below the seats already taken (move those
    /// appointments first).
    SetCapacity {
        slot_id: i64,
        capacity: i64,
        actor: String,
    },
}

/// The pickup visit booked by [`Request::Enrol`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PickupBooking {
    pub slot_id: i64,
    pub tracking_code: String,
}

/// Why an administrator's change moved or cancelled an appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelocationReason {
    OfficeClosed,
    Holiday,
    CapacityCut,
}

impl RelocationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RelocationReason::OfficeClosed => "office_closed",
            RelocationReason::Holiday => "holiday",
            RelocationReason::CapacityCut => "capacity_cut",
        }
    }

    fn persian(self) -> &'static str {
        match self {
            RelocationReason::OfficeClosed => "تعطیلی دفتر",
            RelocationReason::Holiday => "تعطیل رسمی",
            RelocationReason::CapacityCut => "کاهش ظرفیت دفتر",
        }
    }
}

/// The card of an enrolment: written once, when biometrics are taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardRow {
    /// The enrolment appointment.
    pub tracking_code: String,
    pub office_id: String,
    pub ready_date: String,
    pub pickup_tracking_code: Option<String>,
    pub created_at: UnixSeconds,
}

/// A notice to an applicant, queued in the outbox in the same transaction as the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRow {
    pub national_code: String,
    pub application_id: String,
    pub tracking_code: String,
    /// What caused it; unique with the tracking code.
    pub notice_key: String,
    pub channel: String,
    pub body: String,
    pub created_at: UnixSeconds,
}

/// The Persian SMS an applicant gets when an administrator's change moves or cancels their
/// appointment.
pub fn relocation_sms(
    tracking_code: &str,
    reason: RelocationReason,
    moved_to: Option<(&str, UnixSeconds)>,
) -> String {
    match moved_to {
        Some((office_id, start_at)) => {
            let local = nobat_domain::time::to_iran(
                chrono::DateTime::from_timestamp(start_at, 0).unwrap_or_default(),
            );
            let date = nobat_domain::JalaliDate::from_gregorian(local.date_naive());
            let time = nobat_domain::jalali::to_persian_digits(&local.format("%H:%M").to_string());
            format!(
                "نوبت شما با کد رهگیری {tracking_code} به دلیل {} به {}، ساعت {time} در دفتر {office_id} منتقل شد.",
                reason.persian(),
                date.persian_display_with_weekday()
            )
        }
        None => format!(
            "نوبت شما با کد رهگیری {tracking_code} به دلیل {} لغو شد؛ نوبت خالی جایگزین نبود. لطفاً دوباره نوبت بگیرید.",
            reason.persian()
        ),
    }
}

impl Request {
    /// The holds, appointments, payments, citizens and slots this request reads, so the writer
    /// can lock and load them in bulk.
    pub fn touches(&self, keys: &mut BatchKeys) {
        match self {
            Request::Hold {
                national_code,
                application_id,
                service,
                slot_id,
                ..
            } => {
                keys.citizens.push((national_code.clone(), service.clone()));
                keys.slots.push(*slot_id);
                keys.applications.push(application_id.clone());
            }
            Request::Confirm {
                hold_id,
                payment_id,
                national_code,
                ..
            } => {
                keys.confirmed_holds.push(hold_id.clone());
                keys.payments.push(payment_id.clone());
                keys.citizen_codes.push(national_code.clone());
            }
            Request::Release { hold_id, .. } | Request::Expire { hold_id } => {
                keys.holds.push(hold_id.clone())
            }
            Request::Book {
                national_code,
                service,
                slot_id,
                payment_id,
                ..
            } => {
                keys.citizens.push((national_code.clone(), service.clone()));
                keys.slots.push(*slot_id);
                keys.payments.push(payment_id.clone());
            }
            Request::Cancel { tracking_code, .. } => keys.appointments.push(tracking_code.clone()),
            Request::Reschedule {
                tracking_code,
                new_slot_id,
                ..
            } => {
                keys.appointments.push(tracking_code.clone());
                keys.slots.push(*new_slot_id);
            }
            Request::CheckIn { tracking_code, .. }
            | Request::NoShow { tracking_code, .. }
            | Request::CardReady { tracking_code, .. } => {
                keys.appointments.push(tracking_code.clone())
            }
            Request::Enrol {
                tracking_code,
                national_code,
                pickup,
                ..
            } => {
                keys.appointments.push(tracking_code.clone());
                keys.citizen_codes.push(national_code.clone());
                if let Some(p) = pickup {
                    keys.slots.push(p.slot_id);
                }
            }
            Request::Deliver {
                tracking_code,
                pickup_tracking_code,
                ..
            } => {
                keys.appointments.push(tracking_code.clone());
                keys.appointments
                    .extend(pickup_tracking_code.iter().cloned());
            }
            Request::Relocate {
                tracking_code,
                new_slot_id,
                ..
            } => {
                keys.appointments.push(tracking_code.clone());
                keys.slots.extend(new_slot_id.iter().copied());
            }
            Request::SetCapacity { slot_id, .. } => keys.slots.push(*slot_id),
        }
    }

    /// The slot this request may take a seat in (and so must lock), if any.
    pub fn seat_slot(&self) -> Option<i64> {
        match self {
            Request::Hold { slot_id, .. }
            | Request::Book { slot_id, .. }
            | Request::SetCapacity { slot_id, .. } => Some(*slot_id),
            Request::Reschedule { new_slot_id, .. } => Some(*new_slot_id),
            Request::Relocate { new_slot_id, .. } => *new_slot_id,
            Request::Enrol { pickup, .. } => pickup.as_ref().map(|p| p.slot_id),
            Request::Confirm { .. }
            | Request::Release { .. }
            | Request::Expire { .. }
            | Request::Cancel { .. }
            | Request::CheckIn { .. }
            | Request::NoShow { .. }
            | Request::CardReady { .. }
            | Request::Deliver { .. } => None,
        }
    }

    /// The citizen this request is for, or else the record it names.
    pub fn subject(&self) -> &str {
        if let Some(code) = self.national_code() {
            return code;
        }
        match self {
            Request::Expire { hold_id } => hold_id,
            Request::CheckIn { tracking_code, .. }
            | Request::Enrol { tracking_code, .. }
            | Request::NoShow { tracking_code, .. }
            | Request::CardReady { tracking_code, .. }
            | Request::Deliver { tracking_code, .. }
            | Request::Relocate { tracking_code, .. } => tracking_code,
            // `SetCapacity` names a slot; the others name a citizen (above).
            _ => "",
        }
    }

    pub fn national_code(&self) -> Option<&str> {
        match self {
            Request::Hold { national_code, .. }
            | Request::Confirm { national_code, .. }
            | Request::Release { national_code, .. }
            | Request::Book { national_code, .. }
            | Request::Cancel { national_code, .. }
            | Request::Reschedule { national_code, .. } => Some(national_code),
            Request::Expire { .. }
            | Request::CheckIn { .. }
            | Request::Enrol { .. }
            | Request::NoShow { .. }
            | Request::CardReady { .. }
            | Request::Deliver { .. }
            | Request::Relocate { .. }
            | Request::SetCapacity { .. } => None,
        }
    }
}

/// Everything a batch needs read (and locked) before deciding.
#[derive(Debug, Default, Clone)]
pub struct BatchKeys {
    pub slots: Vec<i64>,
    pub holds: Vec<String>,
    /// Holds a request confirms. They are read like `holds`; but a live, unexpired hold's seat
    /// moves to its appointment and `taken` does not change, so its slot needs no lock (on
    /// PostgreSQL, where a lock held by one writer makes the other wait).
    pub confirmed_holds: Vec<String>,
    pub appointments: Vec<String>,
    pub payments: Vec<String>,
    /// Applications new holds are for.
    pub applications: Vec<String>,
    /// (national code, service) pairs whose live hold and active appointment matter.
    pub citizens: Vec<(String, String)>,
    /// Citizens whose active appointments matter for any service (a confirmation, a pickup
    /// booking; after `normalise` also those of `citizens`).
    pub citizen_codes: Vec<String>,
    /// Citizens whose live hold matters too (filled by `normalise` from `citizens`): a
    /// confirmation names its hold, so only a new hold or booking reads the citizen's others.
    pub hold_codes: Vec<String>,
}

impl BatchKeys {
    /// Sorted and deduplicated, so that locks are always taken in one global order.
    pub fn normalise(&mut self) {
        fn tidy<T: Ord>(v: &mut Vec<T>) {
            v.sort();
            v.dedup();
        }
        tidy(&mut self.slots);
        tidy(&mut self.holds);
        tidy(&mut self.confirmed_holds);
        tidy(&mut self.appointments);
        tidy(&mut self.payments);
        tidy(&mut self.applications);
        tidy(&mut self.citizens);
        for (code, _) in &self.citizens {
            self.citizen_codes.push(code.clone());
            self.hold_codes.push(code.clone());
        }
        tidy(&mut self.citizen_codes);
        tidy(&mut self.hold_codes);
    }
}

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
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::SlotFull { .. } => "slot_full",
            Refusal::SlotUnknown { .. } => "slot_unknown",
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
            && self.outbox.is_empty()
            && self.events.is_empty()
    }
}

/// The rows a batch has read and locked. `decide` updates it as it goes, so a later request in
/// the same batch sees the effects of an earlier one.
#[derive(Debug, Default, Clone)]
pub struct BatchState {
    /// Live holds found already expired when the batch was read; the writer expires them in
    /// the same transaction.
    pub due_holds: Vec<String>,
    pub slots: BatchMap<i64, SlotRow>,
    pub holds: BatchMap<String, HoldRow>,
    pub appointments: BatchMap<String, AppointmentRow>,
    pub payments: BatchMap<String, PaymentRow>,
    pub applications: BatchMap<String, ApplicationRef>,
    /// National code → id of its live hold.
    pub live_hold_by_citizen: BatchMap<String, String>,
    /// (national code, service) → tracking code of the active appointment.
    pub active_by_citizen_service: BatchMap<(String, String), String>,
}

impl BatchState {
    /// Indexes loaded holds and appointments by citizen.
    pub fn index(&mut self) {
        for h in self.holds.values() {
            if h.status == HoldStatus::Live {
                self.live_hold_by_citizen
                    .insert(h.national_code.clone(), h.id.clone());
            }
        }
        for a in self.appointments.values() {
            if a.status.is_active() {
                self.active_by_citizen_service.insert(
                    (a.national_code.clone(), a.service.clone()),
                    a.tracking_code.clone(),
                );
            }
        }
    }
}

struct Decider<'a> {
    state: &'a mut BatchState,
    effects: Effects,
    now: UnixSeconds,
    new_hold_index: BatchMap<String, usize>,
    new_appointment_index: BatchMap<String, usize>,
}

impl Decider<'_> {
    fn take_seat(&mut self, slot_id: i64) -> Result<(), Refusal> {
        let slot = self
            .state
            .slots
            .get_mut(&slot_id)
            .ok_or(Refusal::SlotUnknown { slot_id })?;
        if slot.taken >= slot.capacity {
            return Err(Refusal::SlotFull { slot_id });
        }
        slot.taken += 1;
        *self.effects.slot_deltas.entry(slot_id).or_default() += 1;
        Ok(())
    }

    fn free_seat(&mut self, slot_id: i64) {
        if let Some(slot) = self.state.slots.get_mut(&slot_id) {
            // A seat is freed only by the hold or appointment that took it, so taken > 0 here;
            // the guard keeps a corrupted row from going negative (the CHECK would refuse it).
            if slot.taken > 0 {
                slot.taken -= 1;
                *self.effects.slot_deltas.entry(slot_id).or_default() -= 1;
            }
        }
    }

    fn hold(&self, id: &str) -> Option<HoldRow> {
        match self.new_hold_index.get(id) {
            Some(&i) => Some(self.effects.new_holds[i].clone()),
            None => self.state.holds.get(id).cloned(),
        }
    }

    fn set_hold_status(&mut self, hold: &HoldRow, status: HoldStatus) {
        if let Some(&i) = self.new_hold_index.get(&hold.id) {
            self.effects.new_holds[i].status = status;
        } else {
            self.effects.hold_status.insert(hold.id.clone(), status);
        }
        if let Some(h) = self.state.holds.get_mut(&hold.id) {
            h.status = status;
        }
        if status != HoldStatus::Live
            && self.state.live_hold_by_citizen.get(&hold.national_code) == Some(&hold.id)
        {
            self.state.live_hold_by_citizen.remove(&hold.national_code);
        }
    }

    fn appointment(&self, code: &str) -> Option<AppointmentRow> {
        match self.new_appointment_index.get(code) {
            Some(&i) => Some(self.effects.new_appointments[i].clone()),
            None => self
                .effects
                .appointment_updates
                .get(code)
                .cloned()
                .or_else(|| self.state.appointments.get(code).cloned()),
        }
    }

    fn store_appointment(&mut self, row: AppointmentRow) {
        let key = (row.national_code.clone(), row.service.clone());
        if row.status.is_active() {
            self.state
                .active_by_citizen_service
                .insert(key, row.tracking_code.clone());
        } else if self.state.active_by_citizen_service.get(&key) == Some(&row.tracking_code) {
            self.state.active_by_citizen_service.remove(&key);
        }
        if let Some(&i) = self.new_appointment_index.get(&row.tracking_code) {
            self.effects.new_appointments[i] = row;
        } else if self.state.appointments.contains_key(&row.tracking_code) {
            self.effects
                .appointment_updates
                .insert(row.tracking_code.clone(), row);
        } else {
            self.new_appointment_index.insert(
                row.tracking_code.clone(),
                self.effects.new_appointments.len(),
            );
            self.effects.new_appointments.push(row);
        }
    }

    fn event(&mut self, kind: &'static str, subject: &str, actor: &str, payload: impl Serialize) {
        self.effects.events.push(Event {
            at: self.now,
            kind,
            subject: subject.to_string(),
            actor: actor.to_string(),
            payload_json: serde_json::to_string(&payload).expect("event payloads serialise"),
        });
    }

    fn check_citizen_free(&self, national_code: &str, service: &str) -> Result<(), Refusal> {
        if let Some(code) = self
            .state
            .active_by_citizen_service
            .get(&(national_code.to_string(), service.to_string()))
        {
            return Err(Refusal::AlreadyBooked {
                tracking_code: code.clone(),
            });
        }
        if let Some(hold_id) = self.state.live_hold_by_citizen.get(national_code) {
            return Err(Refusal::AlreadyHolding {
                hold_id: hold_id.clone(),
            });
        }
        Ok(())
    }

    /// The writer's own check of what a new hold points at (the schema leaves it to the
    /// writer, in this transaction: see the 0003 migration).
    fn check_application(
        &self,
        application_id: &str,
        national_code: &str,
        service: &str,
    ) -> Result<(), Refusal> {
        match self.state.applications.get(application_id) {
            Some(a) if a.national_code == national_code && a.service == service => Ok(()),
            _ => Err(Refusal::ApplicationNotFound),
        }
    }

    fn check_payment(
        &self,
        payment_id: &str,
        national_code: &str,
        application_id: &str,
        service: &str,
    ) -> Result<(), Refusal> {
        let payment = self
            .state
            .payments
            .get(payment_id)
            .filter(|p| p.national_code == national_code)
            .ok_or(Refusal::PaymentNotFound)?;
        if payment.application_id != application_id || payment.service != service {
            return Err(Refusal::PaymentMismatch);
        }
        if payment.status != PaymentStatus::Paid {
            return Err(Refusal::PaymentNotPaid {
                status: payment.status,
            });
        }
        Ok(())
    }

    fn new_appointment(
        &self,
        tracking_code: &str,
        slot_id: i64,
        application_id: &str,
        national_code: &str,
        service: &str,
        payment_id: &str,
    ) -> AppointmentRow {
        let slot = &self.state.slots[&slot_id];
        AppointmentRow {
            tracking_code: tracking_code.to_string(),
            slot_id,
            office_id: slot.office_id.clone(),
            start_at: slot.start_at,
            application_id: application_id.to_string(),
            national_code: national_code.to_string(),
            service: service.to_string(),
            payment_id: Some(payment_id.to_string()),
            status: AppointmentStatus::Booked,
            created_at: self.now,
            updated_at: self.now,
        }
    }

    /// A live hold whose expiry has passed is expired on sight, whoever looks at it.
    fn expire_if_due(&mut self, hold: &HoldRow) -> bool {
        if hold.status == HoldStatus::Live && hold.expires_at <= self.now {
            self.set_hold_status(hold, HoldStatus::Expired);
            self.free_seat(hold.slot_id);
            self.event(
                "hold_expired",
                &hold.id,
                "system",
                serde_json::json!({ "slot_id": hold.slot_id }),
            );
            true
        } else {
            false
        }
    }

    /// An appointment as staff of `office_id` see it: one of another office does not exist.
    fn at_office(&self, office_id: &str, code: &str) -> Result<AppointmentRow, Refusal> {
        self.appointment(code)
            .filter(|a| a.office_id == office_id)
            .ok_or(Refusal::AppointmentNotFound)
    }

    /// A staff step from `from` to `to` that keeps the seat as it is.
    fn transition(
        &mut self,
        mut appointment: AppointmentRow,
        from: AppointmentStatus,
        to: AppointmentStatus,
        kind: &'static str,
        actor: &str,
    ) -> Result<Outcome, Refusal> {
        if appointment.status != from {
            return Err(Refusal::InvalidTransition {
                status: appointment.status,
            });
        }
        appointment.status = to;
        appointment.updated_at = self.now;
        self.store_appointment(appointment.clone());
        self.event(
            kind,
            &appointment.tracking_code.clone(),
            actor,
            serde_json::json!({ "office_id": appointment.office_id }),
        );
        Ok(Outcome::Updated { appointment })
    }

    fn apply(&mut self, request: &Request) -> Outcome {
        match self.try_apply(request) {
            Ok(outcome) => outcome,
            Err(refusal) => Outcome::Refused(refusal),
        }
    }

    fn try_apply(&mut self, request: &Request) -> Result<Outcome, Refusal> {
        match request {
            Request::Hold {
                national_code,
                application_id,
                service,
                slot_id,
                hold_id,
                expires_at,
            } => {
                self.check_application(application_id, national_code, service)?;
                self.check_citizen_free(national_code, service)?;
                self.take_seat(*slot_id)?;
                let hold = HoldRow {
                    id: hold_id.clone(),
                    slot_id: *slot_id,
                    application_id: application_id.clone(),
                    national_code: national_code.clone(),
                    service: service.clone(),
                    status: HoldStatus::Live,
                    created_at: self.now,
                    expires_at: *expires_at,
                };
                self.state
                    .live_hold_by_citizen
                    .insert(national_code.clone(), hold_id.clone());
                self.new_hold_index
                    .insert(hold_id.clone(), self.effects.new_holds.len());
                self.effects.new_holds.push(hold.clone());
                // Typed rather than `json!`, which builds a map of owned keys and values: the
                // two events of every booking are the writer's most frequent.
                #[derive(Serialize)]
                struct HoldCreated {
                    slot_id: i64,
                    expires_at: UnixSeconds,
                }
                self.event(
                    "hold_created",
                    hold_id,
                    national_code,
                    HoldCreated {
                        slot_id: *slot_id,
                        expires_at: *expires_at,
                    },
                );
                Ok(Outcome::Held { hold })
            }
            Request::Confirm {
                national_code,
                hold_id,
                payment_id,
                tracking_code,
            } => {
                let hold = self
                    .hold(hold_id)
                    .filter(|h| &h.national_code == national_code)
                    .ok_or(Refusal::HoldNotFound)?;
                if self.expire_if_due(&hold) {
                    return Err(Refusal::HoldExpired);
                }
                if hold.status != HoldStatus::Live {
                    return Err(Refusal::HoldNotLive {
                        status: hold.status,
                    });
                }
                // A declined or pending payment leaves the hold in place until it expires.
                self.check_payment(
                    payment_id,
                    national_code,
                    &hold.application_id,
                    &hold.service,
                )?;
                if let Some(code) = self
                    .state
                    .active_by_citizen_service
                    .get(&(national_code.clone(), hold.service.clone()))
                {
                    return Err(Refusal::AlreadyBooked {
                        tracking_code: code.clone(),
                    });
                }
                self.set_hold_status(&hold, HoldStatus::Confirmed);
                let appointment = self.new_appointment(
                    tracking_code,
                    hold.slot_id,
                    &hold.application_id,
                    national_code,
                    &hold.service,
                    payment_id,
                );
                self.store_appointment(appointment.clone());
                #[derive(Serialize)]
                struct AppointmentBooked<'a> {
                    slot_id: i64,
                    hold_id: &'a str,
                    payment_id: &'a str,
                }
                self.event(
                    "appointment_booked",
                    tracking_code,
                    national_code,
                    AppointmentBooked {
                        slot_id: hold.slot_id,
                        hold_id,
                        payment_id,
                    },
                );
                Ok(Outcome::Booked { appointment })
            }
            Request::Release {
                national_code,
                hold_id,
            } => {
                let hold = self
                    .hold(hold_id)
                    .filter(|h| &h.national_code == national_code)
                    .ok_or(Refusal::HoldNotFound)?;
                if self.expire_if_due(&hold) {
                    // Already gone by time: releasing it is what the applicant wanted.
                    return Ok(Outcome::Released {
                        hold_id: hold_id.clone(),
                    });
                }
                if hold.status != HoldStatus::Live {
                    return Err(Refusal::HoldNotLive {
                        status: hold.status,
                    });
                }
                self.set_hold_status(&hold, HoldStatus::Released);
                self.free_seat(hold.slot_id);
                self.event(
                    "hold_released",
                    hold_id,
                    national_code,
                    serde_json::json!({ "slot_id": hold.slot_id }),
                );
                Ok(Outcome::Released {
                    hold_id: hold_id.clone(),
                })
            }
            Request::Expire { hold_id } => {
                let hold = self.hold(hold_id).ok_or(Refusal::HoldNotFound)?;
                if self.expire_if_due(&hold) {
                    Ok(Outcome::Expired {
                        hold_id: hold_id.clone(),
                    })
                } else {
                    Err(Refusal::HoldNotLive {
                        status: hold.status,
                    })
                }
            }
            Request::Book {
                national_code,
                application_id,
                service,
                slot_id,
                payment_id,
                hold_id,
                tracking_code,
            } => {
                self.check_citizen_free(national_code, service)?;
                self.check_payment(payment_id, national_code, application_id, service)?;
                self.take_seat(*slot_id)?;
                // The hold is recorded (already confirmed) so every seat has a hold behind it.
                let hold = HoldRow {
                    id: hold_id.clone(),
                    slot_id: *slot_id,
                    application_id: application_id.clone(),
                    national_code: national_code.clone(),
                    service: service.clone(),
                    status: HoldStatus::Confirmed,
                    created_at: self.now,
                    expires_at: self.now,
                };
                self.new_hold_index
                    .insert(hold_id.clone(), self.effects.new_holds.len());
                self.effects.new_holds.push(hold);
                let appointment = self.new_appointment(
                    tracking_code,
                    *slot_id,
                    application_id,
                    national_code,
                    service,
                    payment_id,
                );
                self.store_appointment(appointment.clone());
                self.event(
                    "appointment_booked",
                    tracking_code,
                    national_code,
                    serde_json::json!({ "slot_id": slot_id, "payment_id": payment_id }),
                );
                Ok(Outcome::Booked { appointment })
            }
            Request::Cancel {
                national_code,
                tracking_code,
            } => {
                let mut appointment = self
                    .appointment(tracking_code)
                    .filter(|a| &a.national_code == national_code)
                    .ok_or(Refusal::AppointmentNotFound)?;
                if appointment.status != AppointmentStatus::Booked {
                    return Err(Refusal::NotActive {
                        status: appointment.status,
                    });
                }
                appointment.status = AppointmentStatus::Cancelled;
                appointment.updated_at = self.now;
                self.free_seat(appointment.slot_id);
                self.store_appointment(appointment.clone());
                self.event(
                    "appointment_cancelled",
                    tracking_code,
                    national_code,
                    serde_json::json!({ "slot_id": appointment.slot_id }),
                );
                Ok(Outcome::Cancelled { appointment })
            }
            Request::Reschedule {
                national_code,
                tracking_code,
                new_slot_id,
            } => {
                let mut appointment = self
                    .appointment(tracking_code)
                    .filter(|a| &a.national_code == national_code)
                    .ok_or(Refusal::AppointmentNotFound)?;
                if appointment.status != AppointmentStatus::Booked {
                    return Err(Refusal::NotActive {
                        status: appointment.status,
                    });
                }
                if appointment.slot_id == *new_slot_id {
                    return Err(Refusal::SameSlot);
                }
                // Secure the new seat first; only then give up the old one.
                self.take_seat(*new_slot_id)?;
                let old_slot_id = appointment.slot_id;
                self.free_seat(old_slot_id);
                let slot = &self.state.slots[new_slot_id];
                appointment.slot_id = *new_slot_id;
                appointment.office_id = slot.office_id.clone();
                appointment.start_at = slot.start_at;
                appointment.updated_at = self.now;
                self.store_appointment(appointment.clone());
                self.event(
                    "appointment_rescheduled",
                    tracking_code,
                    national_code,
                    serde_json::json!({ "old_slot_id": old_slot_id, "new_slot_id": new_slot_id }),
                );
                Ok(Outcome::Rescheduled {
                    appointment,
                    old_slot_id,
                })
            }
            Request::CheckIn {
                office_id,
                tracking_code,
                actor,
            } => {
                let appointment = self.at_office(office_id, tracking_code)?;
                self.transition(
                    appointment,
                    AppointmentStatus::Booked,
                    AppointmentStatus::CheckedIn,
                    "appointment_checked_in",
                    actor,
                )
            }
            Request::NoShow {
                office_id,
                tracking_code,
                actor,
            } => {
                let appointment = self.at_office(office_id, tracking_code)?;
                if appointment.status == AppointmentStatus::Booked
                    && self.now < appointment.start_at
                {
                    return Err(Refusal::TooEarly);
                }
                let slot_id = appointment.slot_id;
                let outcome = self.transition(
                    appointment,
                    AppointmentStatus::Booked,
                    AppointmentStatus::NoShow,
                    "appointment_no_show",
                    actor,
                )?;
                self.free_seat(slot_id);
                Ok(outcome)
            }
            Request::CardReady {
                office_id,
                tracking_code,
                actor,
            } => {
                let appointment = self.at_office(office_id, tracking_code)?;
                self.transition(
                    appointment,
                    AppointmentStatus::Enrolled,
                    AppointmentStatus::CardReady,
                    "card_ready",
                    actor,
                )
            }
            Request::Enrol {
                office_id,
                tracking_code,
                national_code,
                ready_date,
                pickup,
                actor,
            } => {
                let mut appointment = self.at_office(office_id, tracking_code)?;
                if &appointment.national_code != national_code
                    || appointment.service == PICKUP_SERVICE
                {
                    return Err(Refusal::AppointmentNotFound);
                }
                if appointment.status != AppointmentStatus::CheckedIn {
                    return Err(Refusal::InvalidTransition {
                        status: appointment.status,
                    });
                }
                // Book the pickup first: when its seat is gone, nothing changes and the
                // handler tries the next slot.
                let pickup_row = match pickup {
                    Some(p) => {
                        let slot = self
                            .state
                            .slots
                            .get(&p.slot_id)
                            .ok_or(Refusal::SlotUnknown { slot_id: p.slot_id })?;
                        if &slot.office_id != office_id {
                            return Err(Refusal::SlotUnknown { slot_id: p.slot_id });
                        }
                        if let Some(code) = self
                            .state
                            .active_by_citizen_service
                            .get(&(national_code.clone(), PICKUP_SERVICE.to_string()))
                        {
                            return Err(Refusal::AlreadyBooked {
                                tracking_code: code.clone(),
                            });
                        }
                        self.take_seat(p.slot_id)?;
                        let mut row = self.new_appointment(
                            &p.tracking_code,
                            p.slot_id,
                            &appointment.application_id,
                            national_code,
                            PICKUP_SERVICE,
                            "",
                        );
                        row.payment_id = None;
                        self.store_appointment(row.clone());
                        Some(row)
                    }
                    None => None,
                };
                appointment.status = AppointmentStatus::Enrolled;
                appointment.updated_at = self.now;
                self.free_seat(appointment.slot_id);
                self.store_appointment(appointment.clone());
                let card = CardRow {
                    tracking_code: tracking_code.clone(),
                    office_id: office_id.clone(),
                    ready_date: ready_date.clone(),
                    pickup_tracking_code: pickup_row.as_ref().map(|p| p.tracking_code.clone()),
                    created_at: self.now,
                };
                self.effects.new_cards.push(card.clone());
                self.event(
                    "appointment_enrolled",
                    tracking_code,
                    actor,
                    serde_json::json!({ "office_id": office_id, "ready_date": ready_date }),
                );
                if let Some(p) = &pickup_row {
                    self.event(
                        "pickup_booked",
                        tracking_code,
                        actor,
                        serde_json::json!({ "pickup_tracking_code": p.tracking_code, "slot_id": p.slot_id, "start_at": p.start_at }),
                    );
                    self.event(
                        "appointment_booked",
                        &p.tracking_code,
                        actor,
                        serde_json::json!({ "slot_id": p.slot_id, "pickup_of": tracking_code }),
                    );
                }
                Ok(Outcome::Enrolled {
                    appointment,
                    card,
                    pickup: pickup_row,
                })
            }
            Request::Deliver {
                office_id,
                tracking_code,
                pickup_tracking_code,
                actor,
            } => {
                let mut appointment = self.at_office(office_id, tracking_code)?;
                if appointment.status != AppointmentStatus::CardReady {
                    return Err(Refusal::InvalidTransition {
                        status: appointment.status,
                    });
                }
                let pickup = match pickup_tracking_code {
                    Some(code) => {
                        let p = self
                            .appointment(code)
                            .filter(|p| {
                                p.national_code == appointment.national_code
                                    && p.service == PICKUP_SERVICE
                            })
                            .ok_or(Refusal::AppointmentNotFound)?;
                        // A pickup already ended (no-show, cancelled by a closure) still lets
                        // the card go to its owner; only an active one gives up its seat.
                        if p.status.is_active() {
                            let mut p = p;
                            p.status = AppointmentStatus::Delivered;
                            p.updated_at = self.now;
                            self.free_seat(p.slot_id);
                            self.store_appointment(p.clone());
                            Some(p)
                        } else {
                            Some(p)
                        }
                    }
                    None => None,
                };
                appointment.status = AppointmentStatus::Delivered;
                appointment.updated_at = self.now;
                self.store_appointment(appointment.clone());
                self.event(
                    "card_delivered",
                    tracking_code,
                    actor,
                    serde_json::json!({ "office_id": office_id, "pickup_tracking_code": pickup_tracking_code }),
                );
                Ok(Outcome::Delivered {
                    appointment,
                    pickup,
                })
            }
            Request::Relocate {
                tracking_code,
                new_slot_id,
                reason,
                notice_key,
                actor,
            } => {
                let mut appointment = self
                    .appointment(tracking_code)
                    .ok_or(Refusal::AppointmentNotFound)?;
                if appointment.status != AppointmentStatus::Booked {
                    return Err(Refusal::NotActive {
                        status: appointment.status,
                    });
                }
                let old_slot_id = appointment.slot_id;
                match new_slot_id {
                    Some(new_slot_id) => {
                        if *new_slot_id == old_slot_id {
                            return Err(Refusal::SameSlot);
                        }
                        self.take_seat(*new_slot_id)?;
                        self.free_seat(old_slot_id);
                        let slot = &self.state.slots[new_slot_id];
                        appointment.slot_id = *new_slot_id;
                        appointment.office_id = slot.office_id.clone();
                        appointment.start_at = slot.start_at;
                    }
                    None => {
                        self.free_seat(old_slot_id);
                        appointment.status = AppointmentStatus::Cancelled;
                    }
                }
                appointment.updated_at = self.now;
                self.store_appointment(appointment.clone());
                let moved_to =
                    new_slot_id.map(|_| (appointment.office_id.as_str(), appointment.start_at));
                let body = relocation_sms(tracking_code, *reason, moved_to);
                self.effects.outbox.push(OutboxRow {
                    national_code: appointment.national_code.clone(),
                    application_id: appointment.application_id.clone(),
                    tracking_code: tracking_code.clone(),
                    notice_key: notice_key.clone(),
                    channel: "sms".to_string(),
                    body,
                    created_at: self.now,
                });
                let (kind, payload) = match new_slot_id {
                    Some(new) => (
                        "appointment_relocated",
                        serde_json::json!({ "reason": reason.as_str(), "old_slot_id": old_slot_id, "new_slot_id": new, "office_id": appointment.office_id }),
                    ),
                    None => (
                        "appointment_cancelled",
                        serde_json::json!({ "reason": "no_free_slot", "cause": reason.as_str(), "old_slot_id": old_slot_id }),
                    ),
                };
                self.event(kind, tracking_code, actor, payload);
                Ok(Outcome::Relocated {
                    appointment,
                    old_slot_id,
                })
            }
            Request::SetCapacity {
                slot_id,
                capacity,
                actor,
            } => {
                let slot = self
                    .state
                    .slots
                    .get_mut(slot_id)
                    .ok_or(Refusal::SlotUnknown { slot_id: *slot_id })?;
                if *capacity < slot.taken || *capacity < 0 {
                    return Err(Refusal::CapacityBelowTaken {
                        slot_id: *slot_id,
                        taken: slot.taken,
                    });
                }
                if slot.capacity != *capacity {
                    let old = slot.capacity;
                    slot.capacity = *capacity;
                    self.effects.slot_capacity.insert(*slot_id, *capacity);
                    self.event(
                        "slot_capacity_set",
                        &slot_id.to_string(),
                        actor,
                        serde_json::json!({ "old": old, "new": capacity }),
                    );
                }
                Ok(Outcome::CapacitySet {
                    slot_id: *slot_id,
                    capacity: *capacity,
                })
            }
        }
    }
}

/// Applies `requests` in order against `state` at time `now`, returning one outcome per
/// request and the writes to commit.
pub fn decide<'r>(
    state: &mut BatchState,
    requests: impl IntoIterator<Item = &'r Request>,
    now: UnixSeconds,
) -> (Vec<Outcome>, Effects) {
    let mut decider = Decider {
        state,
        effects: Effects {
            now,
            ..Effects::default()
        },
        now,
        new_hold_index: BatchMap::default(),
        new_appointment_index: BatchMap::default(),
    };
    let outcomes = requests.into_iter().map(|r| decider.apply(r)).collect();
    decider.effects.slot_deltas.retain(|_, d| *d != 0);
    (outcomes, decider.effects)
}

#[cfg(test)]
mod tests;
