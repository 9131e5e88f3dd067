//! Staff steps at an office, each on an appointment of that office: check in, enrol (with the
//! card-pickup visit booked in the same transaction), no-show, card ready, deliver.

use serde::{Deserialize, Serialize};

use crate::ids::TrackingCode;
use crate::keys::BatchKeys;
use crate::kind::RequestKind;
use crate::outcome::{Outcome, Refusal};
use crate::rows::{AppointmentRow, AppointmentStatus, CardRow, PICKUP_SERVICE};
use crate::state::{Claim, Decider, Subject};

/// Staff: the applicant arrived at `office_id` for a booked appointment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckIn {
    pub office_id: String,
    pub tracking_code: TrackingCode,
    pub actor: String,
}

impl RequestKind for CheckIn {
    fn touches(&self, keys: &mut BatchKeys) {
        keys.appointments
            .push(self.tracking_code.as_str().to_owned());
    }

    fn seat_slot(&self) -> Option<i64> {
        None
    }

    fn national_code(&self) -> Option<&str> {
        None
    }

    fn subject(&self) -> &str {
        self.tracking_code.as_str()
    }

    fn apply(&self, d: &mut Decider<'_>) -> Result<Outcome, Refusal> {
        let appointment = d.at_office(&self.office_id, &self.tracking_code)?;
        d.transition(
            appointment,
            AppointmentStatus::Booked,
            AppointmentStatus::CheckedIn,
            "appointment_checked_in",
            &self.actor,
        )
    }
}

/// Staff: biometrics taken. The appointment leaves the active set (its seat, in a slot that has
/// started, is freed), the card's ready date is recorded, and the card-pickup visit is booked
/// at the same office in the same transaction when a seat was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrol {
    pub office_id: String,
    pub tracking_code: TrackingCode,
    /// Whose appointment it is (read by the handler), so the batch loads their other active
    /// appointments and cannot book a second pickup.
    pub national_code: String,
    /// ISO date the card is expected to be ready.
    pub ready_date: String,
    pub pickup: Option<PickupBooking>,
    pub actor: String,
}

/// The pickup visit booked by [`Enrol`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PickupBooking {
    pub slot_id: i64,
    pub tracking_code: TrackingCode,
}

impl RequestKind for Enrol {
    fn touches(&self, keys: &mut BatchKeys) {
        keys.appointments
            .push(self.tracking_code.as_str().to_owned());
        keys.citizen_codes.push(self.national_code.clone());
        if let Some(p) = &self.pickup {
            keys.slots.push(p.slot_id);
        }
    }

    fn seat_slot(&self) -> Option<i64> {
        self.pickup.as_ref().map(|p| p.slot_id)
    }

    fn national_code(&self) -> Option<&str> {
        None
    }

    fn subject(&self) -> &str {
        self.tracking_code.as_str()
    }

    fn apply(&self, d: &mut Decider<'_>) -> Result<Outcome, Refusal> {
        let mut appointment = d.at_office(&self.office_id, &self.tracking_code)?;
        if appointment.national_code != self.national_code || appointment.service == PICKUP_SERVICE
        {
            return Err(Refusal::AppointmentNotFound);
        }
        if appointment.status != AppointmentStatus::CheckedIn {
            return Err(Refusal::InvalidTransition {
                status: appointment.status,
            });
        }
        // Book the pickup first: when its seat is gone, nothing changes and the handler tries
        // the next slot.
        let pickup = match &self.pickup {
            Some(p) => Some(self.book_pickup(d, p, &appointment)?),
            None => None,
        };
        appointment.status = AppointmentStatus::Enrolled;
        appointment.updated_at = d.now;
        d.free_seat(appointment.slot_id);
        d.store_appointment(appointment.clone());
        let card = CardRow {
            tracking_code: self.tracking_code.as_str().to_owned(),
            office_id: self.office_id.clone(),
            ready_date: self.ready_date.clone(),
            pickup_tracking_code: pickup.as_ref().map(|p| p.tracking_code.clone()),
            created_at: d.now,
        };
        d.effects.new_cards.push(card.clone());
        self.log_enrolment(d, pickup.as_ref());
        Ok(Outcome::Enrolled {
            appointment,
            card,
            pickup,
        })
    }
}

impl Enrol {
    /// Books the pickup visit in `pickup`'s slot, at this office, for the enrolled citizen's
    /// application; refused when they already have an active pickup or the slot is full.
    fn book_pickup(
        &self,
        d: &mut Decider<'_>,
        pickup: &PickupBooking,
        visit: &AppointmentRow,
    ) -> Result<AppointmentRow, Refusal> {
        let slot_id = pickup.slot_id;
        let slot = d
            .state
            .slots
            .get(&slot_id)
            .ok_or(Refusal::SlotUnknown { slot_id })?;
        if slot.office_id != self.office_id {
            return Err(Refusal::SlotUnknown { slot_id });
        }
        let claim = Claim {
            national_code: &self.national_code,
            application_id: &visit.application_id,
            service: PICKUP_SERVICE,
        };
        d.check_not_booked(claim)?;
        d.take_seat(slot_id)?;
        // A pickup has no payment of its own.
        let row = d.new_appointment(&pickup.tracking_code, slot_id, claim, None);
        d.store_appointment(row.clone());
        Ok(row)
    }

    fn log_enrolment(&self, d: &mut Decider<'_>, pickup: Option<&AppointmentRow>) {
        d.event(
            "appointment_enrolled",
            &self.tracking_code,
            &self.actor,
            serde_json::json!({ "office_id": self.office_id, "ready_date": self.ready_date }),
        );
        if let Some(p) = pickup {
            d.event(
                "pickup_booked",
                &self.tracking_code,
                &self.actor,
                serde_json::json!({ "pickup_tracking_code": p.tracking_code, "slot_id": p.slot_id, "start_at": p.start_at }),
            );
            d.event(
                "appointment_booked",
                Subject::Appointment(&p.tracking_code),
                &self.actor,
                serde_json::json!({ "slot_id": p.slot_id, "pickup_of": self.tracking_code }),
            );
        }
    }
}

/// Staff: the applicant did not come. The appointment leaves the active set and its seat (in a
/// slot already started, never re-sold: bookings of past slots are refused) is freed; the
/// applicant may book again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoShow {
    pub office_id: String,
    pub tracking_code: TrackingCode,
    pub actor: String,
}

impl RequestKind for NoShow {
    fn touches(&self, keys: &mut BatchKeys) {
        keys.appointments
            .push(self.tracking_code.as_str().to_owned());
    }

    fn seat_slot(&self) -> Option<i64> {
        None
    }

    fn national_code(&self) -> Option<&str> {
        None
    }

    fn subject(&self) -> &str {
        self.tracking_code.as_str()
    }

    fn apply(&self, d: &mut Decider<'_>) -> Result<Outcome, Refusal> {
        let appointment = d.at_office(&self.office_id, &self.tracking_code)?;
        if appointment.status == AppointmentStatus::Booked && d.now < appointment.start_at {
            return Err(Refusal::TooEarly);
        }
        let slot_id = appointment.slot_id;
        let outcome = d.transition(
            appointment,
            AppointmentStatus::Booked,
            AppointmentStatus::NoShow,
            "appointment_no_show",
            &self.actor,
        )?;
        d.free_seat(slot_id);
        Ok(outcome)
    }
}

/// Staff: the card arrived at the office.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardReady {
    pub office_id: String,
    pub tracking_code: TrackingCode,
    pub actor: String,
}

impl RequestKind for CardReady {
    fn touches(&self, keys: &mut BatchKeys) {
        keys.appointments
            .push(self.tracking_code.as_str().to_owned());
    }

    fn seat_slot(&self) -> Option<i64> {
        None
    }

    fn national_code(&self) -> Option<&str> {
        None
    }

    fn subject(&self) -> &str {
        self.tracking_code.as_str()
    }

    fn apply(&self, d: &mut Decider<'_>) -> Result<Outcome, Refusal> {
        let appointment = d.at_office(&self.office_id, &self.tracking_code)?;
        d.transition(
            appointment,
            AppointmentStatus::Enrolled,
            AppointmentStatus::CardReady,
            "card_ready",
            &self.actor,
        )
    }
}

/// Staff: the card was handed over. The pickup appointment (if any) ends too and frees its
/// seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deliver {
    pub office_id: String,
    pub tracking_code: TrackingCode,
    pub pickup_tracking_code: Option<TrackingCode>,
    pub actor: String,
}

impl RequestKind for Deliver {
    fn touches(&self, keys: &mut BatchKeys) {
        keys.appointments
            .push(self.tracking_code.as_str().to_owned());
        keys.appointments.extend(
            self.pickup_tracking_code
                .iter()
                .map(|code| code.as_str().to_owned()),
        );
    }

    fn seat_slot(&self) -> Option<i64> {
        None
    }

    fn national_code(&self) -> Option<&str> {
        None
    }

    fn subject(&self) -> &str {
        self.tracking_code.as_str()
    }

    fn apply(&self, d: &mut Decider<'_>) -> Result<Outcome, Refusal> {
        let mut appointment = d.at_office(&self.office_id, &self.tracking_code)?;
        if appointment.status != AppointmentStatus::CardReady {
            return Err(Refusal::InvalidTransition {
                status: appointment.status,
            });
        }
        let pickup = match &self.pickup_tracking_code {
            Some(code) => Some(end_pickup(d, code, &appointment)?),
            None => None,
        };
        appointment.status = AppointmentStatus::Delivered;
        appointment.updated_at = d.now;
        d.store_appointment(appointment.clone());
        d.event(
            "card_delivered",
            &self.tracking_code,
            &self.actor,
            serde_json::json!({ "office_id": self.office_id, "pickup_tracking_code": self.pickup_tracking_code }),
        );
        Ok(Outcome::Delivered {
            appointment,
            pickup,
        })
    }
}

/// The pickup visit `code` of the card of `enrolment`, ended with the delivery.
fn end_pickup(
    d: &mut Decider<'_>,
    code: &TrackingCode,
    enrolment: &AppointmentRow,
) -> Result<AppointmentRow, Refusal> {
    let mut pickup = d
        .appointment(code)
        .filter(|p| p.national_code == enrolment.national_code && p.service == PICKUP_SERVICE)
        .ok_or(Refusal::AppointmentNotFound)?;
    // A pickup already ended (no-show, cancelled by a closure) still lets the card go to its
    // owner; only an active one gives up its seat.
    if pickup.status.is_active() {
        pickup.status = AppointmentStatus::Delivered;
        pickup.updated_at = d.now;
        d.free_seat(pickup.slot_id);
        d.store_appointment(pickup.clone());
    }
    Ok(pickup)
}
