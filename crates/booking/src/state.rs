//! The rows a batch has read, and the decider's helpers that every request kind shares.

use std::collections::HashMap;

use serde::Serialize;

use crate::outcome::{Effects, Event, Outcome, Refusal};
use crate::rows::*;

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

pub(crate) struct Decider<'a> {
    pub(crate) state: &'a mut BatchState,
    pub(crate) effects: Effects,
    pub(crate) now: UnixSeconds,
    pub(crate) new_hold_index: BatchMap<String, usize>,
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

    pub(crate) fn hold(&self, id: &str) -> Option<HoldRow> {
        match self.new_hold_index.get(id) {
            Some(&i) => Some(self.effects.new_holds[i].clone()),
            None => self.state.holds.get(id).cloned(),
        }
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

    pub(crate) fn appointment(&self, code: &str) -> Option<AppointmentRow> {
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

    pub(crate) fn event(
        &mut self,
        kind: &'static str,
        subject: &str,
        actor: &str,
        payload: impl Serialize,
    ) {
        self.effects.events.push(Event {
            at: self.now,
            kind,
            subject: subject.to_string(),
            actor: actor.to_string(),
            payload_json: serde_json::to_string(&payload).expect("event payloads serialise"),
        });
    }

    pub(crate) fn check_citizen_free(
        &self,
        national_code: &str,
        service: &str,
    ) -> Result<(), Refusal> {
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
    pub(crate) fn check_application(
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

    pub(crate) fn check_payment(
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

    pub(crate) fn new_appointment(
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
    pub(crate) fn expire_if_due(&mut self, hold: &HoldRow) -> bool {
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
    pub(crate) fn at_office(&self, office_id: &str, code: &str) -> Result<AppointmentRow, Refusal> {
        self.appointment(code)
            .filter(|a| a.office_id == office_id)
            .ok_or(Refusal::AppointmentNotFound)
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
            &appointment.tracking_code.clone(),
            actor,
            serde_json::json!({ "office_id": appointment.office_id }),
        );
        Ok(Outcome::Updated { appointment })
    }
}
