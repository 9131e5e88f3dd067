//! The rows a batch has read ([`BatchState`]), and the `Decider`: the batch being decided,
//! with the helpers every request kind shares (seats, holds, appointments, checks, events).
//! The request kinds themselves are decided in their family's file.

use std::collections::HashMap;

use serde::Serialize;

use crate::ids::{HoldId, PaymentId, TrackingCode};
use crate::limits::Limits;
use crate::outcome::{Effects, Event, Outcome, Refusal};
use crate::rows::{waitlist_sms, ReleaseStatus, SeatReleaseRow, WaitRow, WaitStatus};
use crate::rows::{
    ApplicationRef, AppointmentRow, AppointmentStatus, HoldRow, HoldStatus, OutboxRow, PaymentRow,
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
    /// Waitlist entries read: by id, by their offer's hold, the active ones of the batch's
    /// joiners, and the waiters of the offices where the batch may free a seat.
    pub entries: BatchMap<String, WaitRow>,
    /// Office id → ids of the waiting entries that accept it, earliest joined first.
    pub waiters: BatchMap<String, Vec<String>>,
    /// Pending seat releases read by id.
    pub releases: BatchMap<i64, SeatReleaseRow>,
    /// What a freed seat becomes (offer time, release delay, the batch's seed).
    pub freeing: FreeingPolicy,
    /// Ids drawn by the writer for the holds of waitlist offers and bookings made in this batch
    /// (`offer_…`), and tracking codes for its waitlist bookings: a freed seat goes to a
    /// waiter only while there is one left (else it stays taken, released at once, and the
    /// sweeper's `ReleaseSeat` hands it over).
    pub spare_offer_ids: Vec<String>,
    pub spare_tracking_codes: Vec<String>,
    /// (national code, service) → id of the active waitlist entry (filled by `index`).
    pub active_entry_by_citizen_service: BatchMap<(String, String), String>,
    /// Offer hold id → id of its entry (filled by `index`).
    pub entry_by_offer: BatchMap<String, String>,
}

/// Who gave a seat up, which decides where it goes (`Decider::give_up_seat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freed {
    /// The applicant (cancel, reschedule, release, expiry, a declined or expired offer,
    /// leaving the waitlist): waiters first, then the release delay.
    Own,
    /// The system, at the end of a release delay: waiters first, then free.
    System,
    /// An administrator's closure or capacity cut: the slot is going, so free at once.
    Closing,
}

/// What becomes of a freed seat that no waiter takes, and how long an offer lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeingPolicy {
    /// Seconds a waitlist offer holds its seat.
    pub offer_ttl: i64,
    /// Bounds (seconds, inclusive) of the uniform random delay before a seat freed by an
    /// applicant's own action returns to first-come booking; 0 and 0 disable it.
    pub release_delay_min: i64,
    pub release_delay_max: i64,
    /// The batch's random seed (drawn by the writer), so the delays replay exactly.
    pub seed: u64,
}

impl Default for FreeingPolicy {
    fn default() -> Self {
        FreeingPolicy {
            offer_ttl: 7_200,
            release_delay_min: 0,
            release_delay_max: 0,
            seed: 0,
        }
    }
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
        for e in self.entries.values() {
            if e.status.is_active() {
                self.active_entry_by_citizen_service
                    .insert((e.national_code.clone(), e.service.clone()), e.id.clone());
            }
            if let (WaitStatus::Offered, Some(hold)) = (e.status, &e.offer_hold_id) {
                self.entry_by_offer.insert(hold.clone(), e.id.clone());
            }
        }
        for ids in self.waiters.values_mut() {
            let entries = &self.entries;
            ids.sort_by_key(|id| (entries.get(id).map(|e| e.joined_at), id.clone()));
            ids.dedup();
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
    Entry(&'a str),
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
    new_entry_index: BatchMap<String, usize>,
    /// Release delays drawn so far (the counter of the batch's random stream).
    delays_drawn: u64,
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
            new_entry_index: BatchMap::default(),
            delays_drawn: 0,
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

    /// Refuses a seat of `slot_id` to `service` while a release wave keeps it closed
    /// (`SlotRow::opens_at`). Every applicant path that takes a seat asks this first; a
    /// waitlist hand-over asks it of the waiter's service (`best_waiter`).
    pub(crate) fn check_released(&self, slot_id: i64, service: &str) -> Result<(), Refusal> {
        match self.state.slots.get(&slot_id) {
            Some(slot) => match slot.unreleased_for(service, self.now) {
                Some(opens_at) => Err(Refusal::NotYetReleased { slot_id, opens_at }),
                None => Ok(()),
            },
            None => Err(Refusal::SlotUnknown { slot_id }),
        }
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

    /// Frees a seat and removes it from the slot's capacity (a closure's, a capacity cut's).
    fn cut_seat(&mut self, slot_id: i64) {
        let before = self.state.slots.get(&slot_id).map(|s| s.taken);
        self.free_seat(slot_id);
        if let Some(slot) = self.state.slots.get_mut(&slot_id) {
            if before != Some(slot.taken) && slot.capacity > slot.taken {
                slot.capacity -= 1;
                let capacity = slot.capacity;
                self.effects.slot_capacity.insert(slot_id, capacity);
                self.event(
                    "slot_seat_cut",
                    Subject::Slot(slot_id),
                    "system",
                    serde_json::json!({ "capacity": capacity }),
                );
            }
        }
    }

    /// Moves an appointment to `new_slot_id`: the new seat is secured first, and only then is
    /// the old one given up, so a full slot leaves the appointment where it was. Returns the
    /// old slot.
    /// `how`: who gave the old seat up (`give_up_seat`).
    pub(crate) fn move_seat(
        &mut self,
        appointment: &mut AppointmentRow,
        new_slot_id: i64,
        how: Freed,
    ) -> Result<i64, Refusal> {
        let old_slot_id = appointment.slot_id;
        if new_slot_id == old_slot_id {
            return Err(Refusal::SameSlot);
        }
        self.take_seat(new_slot_id)?;
        let freer = appointment.national_code.clone();
        self.give_up_seat(old_slot_id, how, Some(&freer));
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
        // A waitlist offer's hold ends its offer: released (declined) the entry waits again,
        // expired it lapses; a confirmation books it (`confirm_hold` names the appointment).
        let ends = match status {
            HoldStatus::Released => Some(WaitStatus::Waiting),
            HoldStatus::Expired => Some(WaitStatus::Lapsed),
            HoldStatus::Confirmed => Some(WaitStatus::Booked),
            HoldStatus::Live => None,
        };
        if let Some(to) = ends {
            self.end_offer(&hold.id, to, None);
        }
    }

    /// A live hold whose expiry has passed is expired on sight, whoever looks at it.
    pub(crate) fn expire_if_due(&mut self, hold: &HoldRow) -> bool {
        if hold.status == HoldStatus::Live && hold.expires_at <= self.now {
            self.set_hold_status(hold, HoldStatus::Expired);
            self.give_up_seat(hold.slot_id, Freed::Own, Some(&hold.national_code));
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
            if row.status.is_active() {
                self.fulfil_entry(&row.national_code, &row.service, &row.tracking_code);
            }
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
            Subject::Hold(id) | Subject::Appointment(id) | Subject::Entry(id) => id.to_string(),
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

/// The waitlist, and where a freed seat goes.
impl Decider<'_> {
    /// Gives up a seat that a hold, an appointment, an offer or a pending release had in
    /// `slot_id`: every path that frees a seat in a slot not yet started comes here. The seat
    /// goes first to the best-matching waiter (earliest joined among the waiting entries of
    /// the slot's office whose limits fit, not `freer`, with no active appointment for the
    /// service and no live hold): booked at once for an entry with `auto_accept`, else held
    /// for them as an offer. It stays taken then (no seat delta). With no waiter, a seat freed
    /// by the applicant's own action (`Freed::Own`) stays taken by a pending release until a
    /// random delay has passed; otherwise it is free again. A seat in a slot being closed or
    /// cut (`Freed::Closing`) goes with the slot: offered to no one, and cut from its
    /// capacity in the same transaction. Freed instead, it was bookable (an auto-pick's
    /// candidate, the view showing it free) until the closure's last step shrank the slot,
    /// and a pick in between booked into the closed office.
    pub(crate) fn give_up_seat(&mut self, slot_id: i64, how: Freed, freer: Option<&str>) {
        let Some(slot) = self.state.slots.get(&slot_id) else {
            return;
        };
        if how == Freed::Closing {
            self.cut_seat(slot_id);
            return;
        }
        if slot.start_at > self.now {
            let (office_id, start_at) = (slot.office_id.clone(), slot.start_at);
            if let Some(entry_id) = self.best_waiter(slot_id, &office_id, start_at, freer) {
                if !self.hand_over(slot_id, &entry_id) {
                    // No id left for its hold in this batch: kept taken, released at once,
                    // and the sweeper's `ReleaseSeat` hands it over.
                    self.pend_release(slot_id, self.now, freer);
                }
                return;
            }
            if how == Freed::Own {
                let delay = self.release_delay();
                if delay > 0 {
                    self.pend_release(slot_id, self.now + delay, freer);
                    return;
                }
            }
        }
        self.free_seat(slot_id);
    }

    /// Offers seats added to a slot not yet started (its capacity raised: stations added, a
    /// day reopened) to the waiters first, as a freed seat is: each goes to the best-matching
    /// waiter while one fits; the rest are free for first-come booking at once (new seats were
    /// nobody's, so no release delay). Out of spare ids in this batch, the seats still wanted
    /// are kept taken and released at once, for the sweeper's `ReleaseSeat` to hand over.
    pub(crate) fn offer_new_seats(&mut self, slot_id: i64, added: i64) {
        let Some(slot) = self.state.slots.get(&slot_id) else {
            return;
        };
        if slot.start_at <= self.now {
            return;
        }
        let (office_id, start_at) = (slot.office_id.clone(), slot.start_at);
        for left in (1..=added).rev() {
            let Some(entry_id) = self.best_waiter(slot_id, &office_id, start_at, None) else {
                return;
            };
            if self.take_seat(slot_id).is_err() {
                return;
            }
            if !self.hand_over(slot_id, &entry_id) {
                self.pend_release(slot_id, self.now, None);
                // The waiter is still waiting: the rest are kept for the sweeper too (each
                // goes to a waiter then, or back to first-come booking).
                for _ in 1..left {
                    if self.take_seat(slot_id).is_err() {
                        return;
                    }
                    self.pend_release(slot_id, self.now, None);
                }
                return;
            }
        }
    }

    fn best_waiter(
        &self,
        slot_id: i64,
        office_id: &str,
        start_at: UnixSeconds,
        freer: Option<&str>,
    ) -> Option<String> {
        let ids = self.state.waiters.get(office_id)?;
        let slot = self.state.slots.get(&slot_id)?;
        ids.iter()
            .find(|id| {
                let Some(e) = self.state.entries.get(*id) else {
                    return false;
                };
                e.status == WaitStatus::Waiting
                    && e.limits.fits(start_at)
                    && slot.unreleased_for(&e.service, self.now).is_none()
                    && Some(e.national_code.as_str()) != freer
                    && !self
                        .state
                        .live_hold_by_citizen
                        .contains_key(&e.national_code)
                    && !self
                        .state
                        .active_by_citizen_service
                        .contains_key(&(e.national_code.clone(), e.service.clone()))
            })
            .cloned()
    }

    /// Gives the seat in `slot_id` to the entry: an appointment (auto-accept) or an offer
    /// hold. False when the batch has no spare id left for it.
    fn hand_over(&mut self, slot_id: i64, entry_id: &str) -> bool {
        let mut entry = self.state.entries[entry_id].clone();
        let Some(hold_id) = self.state.spare_offer_ids.pop() else {
            return false;
        };
        let code = if entry.auto_accept {
            match self.state.spare_tracking_codes.pop() {
                Some(code) => Some(code),
                None => {
                    self.state.spare_offer_ids.push(hold_id);
                    return false;
                }
            }
        } else {
            None
        };
        let slot = self.state.slots[&slot_id].clone();
        let hold = HoldRow {
            id: hold_id.clone(),
            slot_id,
            application_id: entry.application_id.clone(),
            national_code: entry.national_code.clone(),
            service: entry.service.clone(),
            status: if code.is_some() {
                HoldStatus::Confirmed
            } else {
                HoldStatus::Live
            },
            created_at: self.now,
            expires_at: if code.is_some() {
                self.now
            } else {
                self.now + self.state.freeing.offer_ttl
            },
        };
        self.add_hold(hold);
        let (kind, notice_subject, notice_key) = match &code {
            Some(code) => {
                let claim = Claim {
                    national_code: &entry.national_code,
                    application_id: &entry.application_id,
                    service: &entry.service,
                };
                let payment_id = PaymentId::from(entry.payment_id.clone());
                // Booked before its appointment is stored, so `fulfil_entry` finds no waiting
                // entry to end a second time.
                entry.status = WaitStatus::Booked;
                entry.tracking_code = Some(code.clone());
                self.store_entry(entry.clone());
                let appointment = self.new_appointment(
                    &TrackingCode::from(code.clone()),
                    slot_id,
                    claim,
                    Some(&payment_id),
                );
                self.store_appointment(appointment);
                entry.status = WaitStatus::Booked;
                entry.tracking_code = Some(code.clone());
                ("waitlist_booked", code.clone(), "waitlist_booked")
            }
            None => {
                entry.status = WaitStatus::Offered;
                entry.offer_hold_id = Some(hold_id.clone());
                self.state
                    .entry_by_offer
                    .insert(hold_id.clone(), entry.id.clone());
                ("waitlist_offered", hold_id.clone(), "waitlist_offer")
            }
        };
        entry.updated_at = self.now;
        self.store_entry(entry.clone());
        self.effects.outbox.push(OutboxRow {
            national_code: entry.national_code.clone(),
            application_id: entry.application_id.clone(),
            tracking_code: notice_subject.clone(),
            notice_key: notice_key.to_string(),
            channel: "sms".to_string(),
            body: waitlist_sms(slot.start_at, &slot.office_id, code.as_deref()),
            created_at: self.now,
        });
        self.event(
            kind,
            Subject::Entry(&entry.id),
            "system",
            serde_json::json!({ "slot_id": slot_id, "hold_id": hold_id, "tracking_code": code }),
        );
        true
    }

    fn pend_release(&mut self, slot_id: i64, release_at: UnixSeconds, freer: Option<&str>) {
        self.effects.new_releases.push(SeatReleaseRow {
            id: 0,
            slot_id,
            release_at,
            freed_by: freer.map(str::to_owned),
            status: ReleaseStatus::Pending,
            created_at: self.now,
        });
        self.event(
            "seat_release_pending",
            Subject::Slot(slot_id),
            "system",
            serde_json::json!({ "release_at": release_at }),
        );
    }

    /// The next delay of the batch's random stream, uniform in the policy's bounds.
    fn release_delay(&mut self) -> i64 {
        let FreeingPolicy {
            release_delay_min: min,
            release_delay_max: max,
            seed,
            ..
        } = self.state.freeing;
        if max <= 0 {
            return 0;
        }
        let min = min.clamp(0, max);
        self.delays_drawn += 1;
        // splitmix64 of (seed, counter): the same batch draws the same delays.
        let mut z = seed.wrapping_add(self.delays_drawn.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let span = (max - min) as u64 + 1;
        min + (z % span) as i64
    }

    /// The citizen's active entry for the service, if any.
    pub(crate) fn active_entry(&self, national_code: &str, service: &str) -> Option<WaitRow> {
        let id = self
            .state
            .active_entry_by_citizen_service
            .get(&(national_code.to_string(), service.to_string()))?;
        self.state.entries.get(id).cloned()
    }

    /// The citizen's own entry: someone else's does not exist.
    pub(crate) fn entry_of(&self, national_code: &str, entry_id: &str) -> Result<WaitRow, Refusal> {
        self.state
            .entries
            .get(entry_id)
            .filter(|e| e.national_code == national_code)
            .cloned()
            .ok_or(Refusal::EntryNotFound)
    }

    /// The citizen's entry with `hold_id` as its live offer.
    pub(crate) fn offer_of(
        &self,
        national_code: &str,
        entry_id: &str,
        hold_id: &HoldId,
    ) -> Result<WaitRow, Refusal> {
        let entry = self
            .entry_of(national_code, entry_id)
            .map_err(|_| Refusal::OfferNotFound)?;
        if entry.offer_hold_id.as_deref() != Some(hold_id.as_str()) {
            return Err(Refusal::OfferNotFound);
        }
        if entry.status != WaitStatus::Offered {
            return Err(Refusal::EntryNotActive {
                status: entry.status,
            });
        }
        Ok(entry)
    }

    /// Ends the offer of the hold `hold_id`, if it is one still open: the entry moves to `to`
    /// (booked with `tracking_code`, waiting again, lapsed).
    pub(crate) fn end_offer(&mut self, hold_id: &str, to: WaitStatus, tracking_code: Option<&str>) {
        let Some(entry_id) = self.state.entry_by_offer.get(hold_id).cloned() else {
            return;
        };
        let Some(mut entry) = self.state.entries.get(&entry_id).cloned() else {
            return;
        };
        if entry.offer_hold_id.as_deref() != Some(hold_id) {
            return;
        }
        if entry.status == WaitStatus::Offered {
            entry.status = to;
            if to != WaitStatus::Booked {
                entry.offer_hold_id = None;
                self.state.entry_by_offer.remove(hold_id);
            }
        }
        if let Some(code) = tracking_code {
            entry.tracking_code = Some(code.to_string());
        }
        entry.updated_at = self.now;
        self.store_entry(entry);
    }

    /// A new appointment for the service ends the citizen's waiting entry for it: booked
    /// (with the appointment's tracking code), out of the waiters, never offered a seat again.
    /// The batch read the entry (`BatchKeys::entry_citizens` of a booking, the entries of the
    /// citizens whose holds it confirms). An offered entry ends with its offer (`end_offer`).
    fn fulfil_entry(&mut self, national_code: &str, service: &str, tracking_code: &str) {
        let Some(mut entry) = self.active_entry(national_code, service) else {
            return;
        };
        if entry.status != WaitStatus::Waiting {
            return;
        }
        entry.status = WaitStatus::Booked;
        entry.tracking_code = Some(tracking_code.to_owned());
        entry.updated_at = self.now;
        self.store_entry(entry.clone());
        self.event(
            "waitlist_fulfilled",
            Subject::Entry(&entry.id),
            national_code,
            serde_json::json!({ "tracking_code": tracking_code }),
        );
    }

    /// Writes an entry made or changed in this batch, keeping the indexes up to date.
    pub(crate) fn store_entry(&mut self, entry: WaitRow) {
        let key = (entry.national_code.clone(), entry.service.clone());
        if entry.status.is_active() {
            self.state
                .active_entry_by_citizen_service
                .insert(key, entry.id.clone());
        } else if self.state.active_entry_by_citizen_service.get(&key) == Some(&entry.id) {
            self.state.active_entry_by_citizen_service.remove(&key);
        }
        self.state.entries.insert(entry.id.clone(), entry.clone());
        if let Some(&i) = self.new_entry_index.get(&entry.id) {
            self.effects.new_entries[i] = entry;
        } else {
            self.effects.entry_updates.insert(entry.id.clone(), entry);
        }
    }

    /// Records an entry joined in this batch.
    pub(crate) fn add_entry(&mut self, entry: WaitRow) {
        self.new_entry_index
            .insert(entry.id.clone(), self.effects.new_entries.len());
        self.effects.new_entries.push(entry.clone());
        self.store_entry(entry);
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
