//! The rows a batch has read ([`BatchState`]), and the `Decider`: the batch being decided,
//! with the helpers every request kind shares (seats, holds, appointments, checks, events).
//! The request kinds themselves are decided in their family's file.

use std::collections::HashMap;

use serde::Serialize;

use crate::ids::{HoldId, PaymentId, TrackingCode};
use crate::limits::Limits;
use crate::outcome::{Effects, Event, Outcome, Refusal};
use crate::rows::{
    ApplicationRef, AppointmentRow, AppointmentStatus, HoldRow, HoldStatus, PaymentRow,
    PaymentStatus, SlotRow, UnixSeconds,
};

/// The batch's in-memory maps. Their keys are ids and codes of at most one batch (bounded), so
/// a fast, fixed-seed hash serves (FxHash: SipHash was about 4% of the SQLite writer thread's
/// instructions per booking), and a map's order is the same in every run.
pub type BatchMap<K, V> = HashMap<K, V, rustc_hash::FxBuildHasher>;

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
    /// The caps the batch is decided under (the writer's configuration).
    pub limits: Limits,
    /// National code → the citizen's own cancellations within `limits`' window, read for the
    /// citizens of the batch's `Cancel` requests (absent: none).
    pub recent_cancellations: BatchMap<String, u32>,
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

/// Whose application, and for which service: what a new hold, a payment and a new appointment
/// must agree on. Named fields, so that its three strings cannot be passed in the wrong order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim<'a> {
    pub national_code: &'a str,
    pub application_id: &'a str,
    pub service: &'a str,
}

/// What an event is about (the event log's subject): a hold, an appointment or a slot. A
/// plain `&str` is not one, so an event's subject and actor cannot be swapped.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'a> {
    Hold(&'a str),
    Appointment(&'a str),
    Slot(i64),
}

impl<'a> From<&'a HoldId> for Subject<'a> {
    fn from(id: &'a HoldId) -> Self {
        Subject::Hold(id.as_str())
    }
}

impl<'a> From<&'a TrackingCode> for Subject<'a> {
    fn from(code: &'a TrackingCode) -> Self {
        Subject::Appointment(code.as_str())
    }
}

/// A batch being decided: the state read, updated as each request is applied, and the writes
/// so far.
pub(crate) struct Decider<'a> {
    pub(crate) state: &'a mut BatchState,
    pub(crate) effects: Effects,
    pub(crate) now: UnixSeconds,
    /// Where a hold or appointment made in this batch is in `effects`, by id.
    new_hold_index: BatchMap<String, usize>,
    new_appointment_index: BatchMap<String, usize>,
}

impl<'a> Decider<'a> {
    pub(crate) fn new(state: &'a mut BatchState, now: UnixSeconds) -> Self {
        Decider {
            state,
            effects: Effects {
                now,
                ..Effects::default()
            },
            now,
            new_hold_index: BatchMap::default(),
            new_appointment_index: BatchMap::default(),
        }
    }

    /// The batch's writes, without slots whose seats came back to where they were.
    pub(crate) fn finish(mut self) -> Effects {
        self.effects.slot_deltas.retain(|_, d| *d != 0);
        self.effects
    }
}

/// Seats.
impl Decider<'_> {
    pub(crate) fn take_seat(&mut self, slot_id: i64) -> Result<(), Refusal> {
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

    pub(crate) fn free_seat(&mut self, slot_id: i64) {
        if let Some(slot) = self.state.slots.get_mut(&slot_id) {
            // A seat is freed only by the hold or appointment that took it, so taken > 0 here;
            // the guard keeps a corrupted row from going negative (the CHECK would refuse it).
            if slot.taken > 0 {
                slot.taken -= 1;
                *self.effects.slot_deltas.entry(slot_id).or_default() -= 1;
            }
        }
    }

    /// Moves an appointment to `new_slot_id`: the new seat is secured first, and only then is
    /// the old one given up, so a full slot leaves the appointment where it was. Returns the
    /// old slot.
    pub(crate) fn move_seat(
        &mut self,
        appointment: &mut AppointmentRow,
        new_slot_id: i64,
    ) -> Result<i64, Refusal> {
        let old_slot_id = appointment.slot_id;
        if new_slot_id == old_slot_id {
            return Err(Refusal::SameSlot);
        }
        self.take_seat(new_slot_id)?;
        self.free_seat(old_slot_id);
        let slot = &self.state.slots[&new_slot_id];
        appointment.slot_id = new_slot_id;
        appointment.office_id = slot.office_id.clone();
        appointment.start_at = slot.start_at;
        Ok(old_slot_id)
    }
}

/// Holds.
impl Decider<'_> {
    pub(crate) fn hold(&self, id: &HoldId) -> Option<HoldRow> {
        match self.new_hold_index.get(id.as_str()) {
            Some(&i) => Some(self.effects.new_holds[i].clone()),
            None => self.state.holds.get(id.as_str()).cloned(),
        }
    }

    /// The citizen's own hold: someone else's does not exist.
    pub(crate) fn hold_of(&self, national_code: &str, id: &HoldId) -> Result<HoldRow, Refusal> {
        self.hold(id)
            .filter(|h| h.national_code == national_code)
            .ok_or(Refusal::HoldNotFound)
    }

    /// Records a hold made in this batch; a live one becomes its citizen's live hold.
    pub(crate) fn add_hold(&mut self, hold: HoldRow) {
        if hold.status == HoldStatus::Live {
            self.state
                .live_hold_by_citizen
                .insert(hold.national_code.clone(), hold.id.clone());
        }
        self.new_hold_index
            .insert(hold.id.clone(), self.effects.new_holds.len());
        self.effects.new_holds.push(hold);
    }

    pub(crate) fn set_hold_status(&mut self, hold: &HoldRow, status: HoldStatus) {
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

    /// A live hold whose expiry has passed is expired on sight, whoever looks at it.
    pub(crate) fn expire_if_due(&mut self, hold: &HoldRow) -> bool {
        if hold.status == HoldStatus::Live && hold.expires_at <= self.now {
            self.set_hold_status(hold, HoldStatus::Expired);
            self.free_seat(hold.slot_id);
            self.event(
                "hold_expired",
                Subject::Hold(&hold.id),
                "system",
                serde_json::json!({ "slot_id": hold.slot_id }),
            );
            true
        } else {
            false
        }
    }
}

/// Appointments.
impl Decider<'_> {
    pub(crate) fn appointment(&self, code: &TrackingCode) -> Option<AppointmentRow> {
        let code = code.as_str();
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

    /// The citizen's own appointment: someone else's does not exist.
    pub(crate) fn appointment_of(
        &self,
        national_code: &str,
        code: &TrackingCode,
    ) -> Result<AppointmentRow, Refusal> {
        self.appointment(code)
            .filter(|a| a.national_code == national_code)
            .ok_or(Refusal::AppointmentNotFound)
    }

    /// An appointment as staff of `office_id` see it: one of another office does not exist.
    pub(crate) fn at_office(
        &self,
        office_id: &str,
        code: &TrackingCode,
    ) -> Result<AppointmentRow, Refusal> {
        self.appointment(code)
            .filter(|a| a.office_id == office_id)
            .ok_or(Refusal::AppointmentNotFound)
    }

    /// A new appointment, booked in `slot_id` for `claim`.
    pub(crate) fn new_appointment(
        &self,
        tracking_code: &TrackingCode,
        slot_id: i64,
        claim: Claim<'_>,
        payment_id: Option<&PaymentId>,
    ) -> AppointmentRow {
        let slot = &self.state.slots[&slot_id];
        AppointmentRow {
            tracking_code: tracking_code.as_str().to_owned(),
            slot_id,
            office_id: slot.office_id.clone(),
            start_at: slot.start_at,
            application_id: claim.application_id.to_string(),
            national_code: claim.national_code.to_string(),
            service: claim.service.to_string(),
            payment_id: payment_id.map(|id| id.as_str().to_owned()),
            status: AppointmentStatus::Booked,
            created_at: self.now,
            updated_at: self.now,
            reschedules: 0,
        }
    }

    /// Writes an appointment made or changed in this batch, keeping the citizen's active
    /// appointments up to date for the requests after it.
    pub(crate) fn store_appointment(&mut self, row: AppointmentRow) {
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

    /// A staff step from `from` to `to` that keeps the seat as it is.
    pub(crate) fn transition(
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
            Subject::Appointment(&appointment.tracking_code),
            actor,
            serde_json::json!({ "office_id": appointment.office_id }),
        );
        Ok(Outcome::Updated { appointment })
    }
}

/// Checks.
impl Decider<'_> {
    /// The writer's own check of what a new hold points at (the schema leaves it to the
    /// writer, in this transaction: see the 0003 migration).
    pub(crate) fn check_application(&self, claim: Claim<'_>) -> Result<(), Refusal> {
        match self.state.applications.get(claim.application_id) {
            Some(a) if a.national_code == claim.national_code && a.service == claim.service => {
                Ok(())
            }
            _ => Err(Refusal::ApplicationNotFound),
        }
    }

    /// The citizen has no active appointment for the claim's service.
    pub(crate) fn check_not_booked(&self, claim: Claim<'_>) -> Result<(), Refusal> {
        match self
            .state
            .active_by_citizen_service
            .get(&(claim.national_code.to_string(), claim.service.to_string()))
        {
            Some(code) => Err(Refusal::AlreadyBooked {
                tracking_code: code.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The citizen has no active appointment for the service and no live hold at all.
    pub(crate) fn check_citizen_free(&self, claim: Claim<'_>) -> Result<(), Refusal> {
        self.check_not_booked(claim)?;
        if let Some(hold_id) = self.state.live_hold_by_citizen.get(claim.national_code) {
            return Err(Refusal::AlreadyHolding {
                hold_id: hold_id.clone(),
            });
        }
        Ok(())
    }

    /// The payment is the citizen's, for the claim's application and service, and paid.
    pub(crate) fn check_payment(
        &self,
        payment_id: &PaymentId,
        claim: Claim<'_>,
    ) -> Result<(), Refusal> {
        let payment = self
            .state
            .payments
            .get(payment_id.as_str())
            .filter(|p| p.national_code == claim.national_code)
            .ok_or(Refusal::PaymentNotFound)?;
        if payment.application_id != claim.application_id || payment.service != claim.service {
            return Err(Refusal::PaymentMismatch);
        }
        if payment.status != PaymentStatus::Paid {
            return Err(Refusal::PaymentNotPaid {
                status: payment.status,
            });
        }
        Ok(())
    }
}

/// Events.
impl Decider<'_> {
    pub(crate) fn event<'s>(
        &mut self,
        kind: &'static str,
        subject: impl Into<Subject<'s>>,
        actor: &str,
        payload: impl Serialize,
    ) {
        let subject = match subject.into() {
            Subject::Hold(id) | Subject::Appointment(id) => id.to_string(),
            Subject::Slot(slot_id) => slot_id.to_string(),
        };
        self.effects.events.push(Event {
            at: self.now,
            kind,
            subject,
            actor: actor.to_string(),
            payload_json: serde_json::to_string(&payload).expect("event payloads serialise"),
        });
    }
}

/// Caps (`Limits`): an applicant's own reschedules and cancellations.
impl Decider<'_> {
    /// The appointment may be moved once more by its applicant.
    pub(crate) fn check_reschedule_cap(&self, appointment: &AppointmentRow) -> Result<(), Refusal> {
        self.state.limits.check_reschedule(appointment.reschedules)
    }

    /// The citizen may cancel once more within the window (the cancellations read, plus those
    /// earlier in this batch).
    pub(crate) fn check_cancellation_cap(&self, national_code: &str) -> Result<(), Refusal> {
        let made = self.state.recent_cancellations.get(national_code);
        self.state
            .limits
            .check_cancellation(made.copied().unwrap_or(0))
    }

    /// Counts a cancellation for the requests after it in this batch.
    pub(crate) fn count_cancellation(&mut self, national_code: &str) {
        *self
            .state
            .recent_cancellations
            .entry(national_code.to_owned())
            .or_default() += 1;
    }
}
