//! Administrators' changes: relocating an appointment (a closure, a holiday, a capacity cut)
//! with a notice to the applicant, and setting a slot's capacity.

use serde::{Deserialize, Serialize};

use crate::ids::TrackingCode;
use crate::keys::BatchKeys;
use crate::kind::RequestKind;
use crate::outcome::{Outcome, Refusal};
use crate::rows::{AppointmentRow, AppointmentStatus, OutboxRow, UnixSeconds};
use crate::state::{Decider, Freed, Subject};

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

/// The Persian SMS an applicant gets when an administrator's change moves or cancels their
/// appointment.
pub fn relocation_sms(
    tracking_code: &str,
    reason: RelocationReason,
    moved_to: Option<(&str, UnixSeconds)>,
) -> String {
    match moved_to {
        Some((office_id, start_at)) => format!(
            "نوبت شما با کد رهگیری {tracking_code} به دلیل {} به {} در دفتر {office_id} منتقل شد.",
            reason.persian(),
            crate::rows::persian_when(start_at)
        ),
        None => format!(
            "نوبت شما با کد رهگیری {tracking_code} به دلیل {} لغو شد؛ نوبت خالی جایگزین نبود. لطفاً دوباره نوبت بگیرید.",
            reason.persian()
        ),
    }
}

/// Admin (closure, holiday, capacity cut): moves an active appointment to `new_slot_id`, or
/// cancels it when `None`, and queues one notice to the applicant keyed by `notice_key` (so the
/// same closure can never queue twice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relocate {
    pub tracking_code: TrackingCode,
    pub new_slot_id: Option<i64>,
    pub reason: RelocationReason,
    pub notice_key: String,
    pub actor: String,
}

impl RequestKind for Relocate {
    fn touches(&self, keys: &mut BatchKeys) {
        keys.appointments
            .push(self.tracking_code.as_str().to_owned());
        keys.slots.extend(self.new_slot_id);
    }

    fn seat_slot(&self) -> Option<i64> {
        self.new_slot_id
    }

    fn national_code(&self) -> Option<&str> {
        None
    }

    fn subject(&self) -> &str {
        self.tracking_code.as_str()
    }

    fn apply(&self, d: &mut Decider<'_>) -> Result<Outcome, Refusal> {
        let mut appointment = d
            .appointment(&self.tracking_code)
            .ok_or(Refusal::AppointmentNotFound)?;
        if appointment.status != AppointmentStatus::Booked {
            return Err(Refusal::NotActive {
                status: appointment.status,
            });
        }
        let old_slot_id = appointment.slot_id;
        match self.new_slot_id {
            Some(new_slot_id) => {
                d.move_seat(&mut appointment, new_slot_id, Freed::Closing)?;
            }
            None => {
                appointment.status = AppointmentStatus::Cancelled;
                d.store_appointment(appointment.clone());
                let freer = appointment.national_code.clone();
                d.give_up_seat(old_slot_id, Freed::Closing, Some(&freer));
            }
        }
        appointment.updated_at = d.now;
        d.store_appointment(appointment.clone());
        self.notify(d, &appointment);
        let (kind, payload) = match self.new_slot_id {
            Some(new) => (
                "appointment_relocated",
                serde_json::json!({ "reason": self.reason.as_str(), "old_slot_id": old_slot_id, "new_slot_id": new, "office_id": appointment.office_id }),
            ),
            None => (
                "appointment_cancelled",
                serde_json::json!({ "reason": "no_free_slot", "cause": self.reason.as_str(), "old_slot_id": old_slot_id }),
            ),
        };
        d.event(kind, &self.tracking_code, &self.actor, payload);
        Ok(Outcome::Relocated {
            appointment,
            old_slot_id,
        })
    }
}

impl Relocate {
    /// Queues the SMS telling the applicant where their appointment went (or that it was
    /// cancelled), in the same transaction as the change.
    fn notify(&self, d: &mut Decider<'_>, appointment: &AppointmentRow) {
        let moved_to = self
            .new_slot_id
            .map(|_| (appointment.office_id.as_str(), appointment.start_at));
        let body = relocation_sms(self.tracking_code.as_str(), self.reason, moved_to);
        d.effects.outbox.push(OutboxRow {
            national_code: appointment.national_code.clone(),
            application_id: appointment.application_id.clone(),
            tracking_code: self.tracking_code.as_str().to_owned(),
            notice_key: self.notice_key.clone(),
            channel: "sms".to_string(),
            body,
            created_at: d.now,
        });
    }
}

/// Admin: sets a slot's capacity; refused below the seats already taken (move those
/// appointments first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetCapacity {
    pub slot_id: i64,
    pub capacity: i64,
    pub actor: String,
}

impl RequestKind for SetCapacity {
    fn touches(&self, keys: &mut BatchKeys) {
        keys.slots.push(self.slot_id);
        keys.capacity_slots.push(self.slot_id);
    }

    fn seat_slot(&self) -> Option<i64> {
        // It takes no seat, but it locks the slot to change its capacity: it goes to the
        // writer that takes that slot's seats, so two writers never wait on one slot.
        Some(self.slot_id)
    }

    fn national_code(&self) -> Option<&str> {
        None
    }

    fn subject(&self) -> &str {
        // Queued by its slot (above); it names no citizen or record.
        ""
    }

    fn apply(&self, d: &mut Decider<'_>) -> Result<Outcome, Refusal> {
        let slot_id = self.slot_id;
        let slot = d
            .state
            .slots
            .get_mut(&slot_id)
            .ok_or(Refusal::SlotUnknown { slot_id })?;
        if self.capacity < slot.taken || self.capacity < 0 {
            return Err(Refusal::CapacityBelowTaken {
                slot_id,
                taken: slot.taken,
            });
        }
        if slot.capacity != self.capacity {
            let old = slot.capacity;
            slot.capacity = self.capacity;
            d.effects.slot_capacity.insert(slot_id, self.capacity);
            d.event(
                "slot_capacity_set",
                Subject::Slot(slot_id),
                &self.actor,
                serde_json::json!({ "old": old, "new": self.capacity }),
            );
            if self.capacity > old {
                d.offer_new_seats(slot_id, self.capacity - old);
            }
        }
        Ok(Outcome::CapacitySet {
            slot_id,
            capacity: self.capacity,
        })
    }
}
