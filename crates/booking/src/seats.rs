//! The applicant's requests, which take, keep or give up a seat: hold, confirm, release, book
//! (hold and confirm in one step), cancel, reschedule; and the sweeper's expiry of a hold.

use serde::{Deserialize, Serialize};

use crate::ids::{ApplicationId, HoldId, PaymentId, TrackingCode};
use crate::keys::BatchKeys;
use crate::kind::RequestKind;
use crate::outcome::{Outcome, Refusal};
use crate::rows::{AppointmentStatus, HoldRow, HoldStatus, UnixSeconds};
use crate::state::{Claim, Decider, Freed};

/// Holds a seat in `slot_id` while the applicant pays, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub national_code: String,
    pub application_id: ApplicationId,
    pub service: String,
    pub slot_id: i64,
    pub hold_id: HoldId,
    pub expires_at: UnixSeconds,
}

impl Hold {
    fn claim(&self) -> Claim<'_> {
        Claim {
            national_code: &self.national_code,
            application_id: self.application_id.as_str(),
            service: &self.service,
        }
    }
}

impl RequestKind for Hold {
    fn touches(&self, keys: &mut BatchKeys) {
        keys.citizens
            .push((self.national_code.clone(), self.service.clone()));
        keys.slots.push(self.slot_id);
        keys.applications
            .push(self.application_id.as_str().to_owned());
    }

    fn seat_slot(&self) -> Option<i64> {
        Some(self.slot_id)
    }

    fn national_code(&self) -> Option<&str> {
        Some(&self.national_code)
    }

    fn subject(&self) -> &str {
        &self.national_code
    }

    fn apply(&self, d: &mut Decider<'_>) -> Result<Outcome, Refusal> {
        d.check_application(self.claim())?;
        d.check_citizen_free(self.claim())?;
        d.check_released(self.slot_id, &self.service)?;
        d.take_seat(self.slot_id)?;
        let hold = HoldRow {
            id: self.hold_id.as_str().to_owned(),
            slot_id: self.slot_id,
            application_id: self.application_id.as_str().to_owned(),
            national_code: self.national_code.clone(),
            service: self.service.clone(),
            status: HoldStatus::Live,
            created_at: d.now,
            expires_at: self.expires_at,
        };
        d.add_hold(hold.clone());
        // Typed rather than `json!`, which builds a map of owned keys and values: the two
        // events of every booking are the writer's most frequent.
        #[derive(Serialize)]
        struct HoldCreated {
            slot_id: i64,
            expires_at: UnixSeconds,
        }
        d.event(
            "hold_created",
            &self.hold_id,
            &self.national_code,
            HoldCreated {
                slot_id: self.slot_id,
                expires_at: self.expires_at,
            },
        );
        Ok(Outcome::Held { hold })
    }
}

/// Confirms the applicant's live hold with a paid payment: the hold's seat becomes the
/// appointment's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirm {
    pub national_code: String,
    pub hold_id: HoldId,
    pub payment_id: PaymentId,
    pub tracking_code: TrackingCode,
}

impl RequestKind for Confirm {
    fn touches(&self, keys: &mut BatchKeys) {
        keys.confirmed_holds.push(self.hold_id.as_str().to_owned());
        keys.payments.push(self.payment_id.as_str().to_owned());
        keys.citizen_codes.push(self.national_code.clone());
    }

    fn seat_slot(&self) -> Option<i64> {
        None
    }

    fn national_code(&self) -> Option<&str> {
        Some(&self.national_code)
    }

    fn subject(&self) -> &str {
        &self.national_code
    }

    fn apply(&self, d: &mut Decider<'_>) -> Result<Outcome, Refusal> {
        confirm_hold(
            d,
            &self.national_code,
            &self.hold_id,
            &self.payment_id,
            &self.tracking_code,
        )
    }
}

/// Confirms the citizen's live hold with a paid payment (a confirmation, or the acceptance of a
/// waitlist offer, which is a hold).
pub(crate) fn confirm_hold(
    d: &mut Decider<'_>,
    national_code: &str,
    hold_id: &HoldId,
    payment_id: &PaymentId,
    tracking_code: &TrackingCode,
) -> Result<Outcome, Refusal> {
    let hold = d.hold_of(national_code, hold_id)?;
    if d.expire_if_due(&hold) {
        return Err(Refusal::HoldExpired);
    }
    if hold.status != HoldStatus::Live {
        return Err(Refusal::HoldNotLive {
            status: hold.status,
        });
    }
    let claim = Claim {
        national_code,
        application_id: &hold.application_id,
        service: &hold.service,
    };
    // A declined or pending payment leaves the hold in place until it expires.
    d.check_payment(payment_id, claim)?;
    d.check_not_booked(claim)?;
    d.set_hold_status(&hold, HoldStatus::Confirmed);
    d.end_offer(
        &hold.id,
        crate::rows::WaitStatus::Booked,
        Some(tracking_code.as_str()),
    );
    let appointment = d.new_appointment(tracking_code, hold.slot_id, claim, Some(payment_id));
    d.store_appointment(appointment.clone());
    #[derive(Serialize)]
    struct AppointmentBooked<'a> {
        slot_id: i64,
        hold_id: &'a HoldId,
        payment_id: &'a PaymentId,
    }
    d.event(
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

/// Gives up the applicant's live hold before it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub national_code: String,
    pub hold_id: HoldId,
    /// Released by a closure of its day (an administrator's): the seat is freed at once, to
    /// no waiter and with no release delay, since the slot is being closed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closing: bool,
}

impl RequestKind for Release {
    fn touches(&self, keys: &mut BatchKeys) {
        keys.holds.push(self.hold_id.as_str().to_owned());
    }

    fn seat_slot(&self) -> Option<i64> {
        None
    }

    fn national_code(&self) -> Option<&str> {
        Some(&self.national_code)
    }

    fn subject(&self) -> &str {
        &self.national_code
    }

    fn apply(&self, d: &mut Decider<'_>) -> Result<Outcome, Refusal> {
        let hold = d.hold_of(&self.national_code, &self.hold_id)?;
        let released = || Outcome::Released {
            hold_id: self.hold_id.as_str().to_owned(),
        };
        if d.expire_if_due(&hold) {
            // Already gone by time: releasing it is what the applicant wanted.
            return Ok(released());
        }
        if hold.status != HoldStatus::Live {
            return Err(Refusal::HoldNotLive {
                status: hold.status,
            });
        }
        d.set_hold_status(&hold, HoldStatus::Released);
        let how = if self.closing {
            Freed::Closing
        } else {
            Freed::Own
        };
        d.give_up_seat(hold.slot_id, how, Some(&self.national_code));
        d.event(
            "hold_released",
            &self.hold_id,
            &self.national_code,
            serde_json::json!({ "slot_id": hold.slot_id }),
        );
        Ok(released())
    }
}

/// Hold and confirm in one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Book {
    pub national_code: String,
    pub application_id: ApplicationId,
    pub service: String,
    pub slot_id: i64,
    pub payment_id: PaymentId,
    pub hold_id: HoldId,
    pub tracking_code: TrackingCode,
}

impl Book {
    fn claim(&self) -> Claim<'_> {
        Claim {
            national_code: &self.national_code,
            application_id: self.application_id.as_str(),
            service: &self.service,
        }
    }
}

impl RequestKind for Book {
    fn touches(&self, keys: &mut BatchKeys) {
        let pair = (self.national_code.clone(), self.service.clone());
        // A waiting entry of the citizen for the service ends with the booking.
        keys.entry_citizens.push(pair.clone());
        keys.citizens.push(pair);
        keys.slots.push(self.slot_id);
        keys.payments.push(self.payment_id.as_str().to_owned());
    }

    fn seat_slot(&self) -> Option<i64> {
        Some(self.slot_id)
    }

    fn national_code(&self) -> Option<&str> {
        Some(&self.national_code)
    }

    fn subject(&self) -> &str {
        &self.national_code
    }

    fn apply(&self, d: &mut Decider<'_>) -> Result<Outcome, Refusal> {
        let claim = self.claim();
        d.check_citizen_free(claim)?;
        d.check_payment(&self.payment_id, claim)?;
        d.check_released(self.slot_id, &self.service)?;
        d.take_seat(self.slot_id)?;
        // The hold is recorded (already confirmed) so every seat has a hold behind it.
        d.add_hold(HoldRow {
            id: self.hold_id.as_str().to_owned(),
            slot_id: self.slot_id,
            application_id: self.application_id.as_str().to_owned(),
            national_code: self.national_code.clone(),
            service: self.service.clone(),
            status: HoldStatus::Confirmed,
            created_at: d.now,
            expires_at: d.now,
        });
        let appointment = d.new_appointment(
            &self.tracking_code,
            self.slot_id,
            claim,
            Some(&self.payment_id),
        );
        d.store_appointment(appointment.clone());
        d.event(
            "appointment_booked",
            &self.tracking_code,
            &self.national_code,
            serde_json::json!({ "slot_id": self.slot_id, "payment_id": self.payment_id }),
        );
        Ok(Outcome::Booked { appointment })
    }
}

/// Cancels the applicant's booked appointment; its seat is given up (`Decider::give_up_seat`:
/// a waiter first, else a delayed release). At most `Limits::max_cancellations` of a
/// citizen's within the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    pub national_code: String,
    pub tracking_code: TrackingCode,
}

impl RequestKind for Cancel {
    fn touches(&self, keys: &mut BatchKeys) {
        keys.appointments
            .push(self.tracking_code.as_str().to_owned());
        keys.cancelling.push(self.national_code.clone());
    }

    fn seat_slot(&self) -> Option<i64> {
        None
    }

    fn national_code(&self) -> Option<&str> {
        Some(&self.national_code)
    }

    fn subject(&self) -> &str {
        &self.national_code
    }

    fn apply(&self, d: &mut Decider<'_>) -> Result<Outcome, Refusal> {
        let mut appointment = d.appointment_of(&self.national_code, &self.tracking_code)?;
        if appointment.status != AppointmentStatus::Booked {
            return Err(Refusal::NotActive {
                status: appointment.status,
            });
        }
        d.check_cancellation_cap(&self.national_code)?;
        d.count_cancellation(&self.national_code);
        appointment.status = AppointmentStatus::Cancelled;
        appointment.updated_at = d.now;
        // Stored first, so the citizen counts as free for the waiters the seat may go to.
        d.store_appointment(appointment.clone());
        d.give_up_seat(appointment.slot_id, Freed::Own, Some(&self.national_code));
        d.event(
            "appointment_cancelled",
            &self.tracking_code,
            &self.national_code,
            serde_json::json!({ "slot_id": appointment.slot_id }),
        );
        Ok(Outcome::Cancelled { appointment })
    }
}

/// Moves an active appointment to another slot, keeping its tracking code, at most
/// `Limits::max_reschedules` times per appointment. The old seat is
/// given up only if the new one is secured, in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reschedule {
    pub national_code: String,
    pub tracking_code: TrackingCode,
    pub new_slot_id: i64,
}

impl RequestKind for Reschedule {
    fn touches(&self, keys: &mut BatchKeys) {
        keys.appointments
            .push(self.tracking_code.as_str().to_owned());
        keys.slots.push(self.new_slot_id);
    }

    fn seat_slot(&self) -> Option<i64> {
        Some(self.new_slot_id)
    }

    fn national_code(&self) -> Option<&str> {
        Some(&self.national_code)
    }

    fn subject(&self) -> &str {
        &self.national_code
    }

    fn apply(&self, d: &mut Decider<'_>) -> Result<Outcome, Refusal> {
        let mut appointment = d.appointment_of(&self.national_code, &self.tracking_code)?;
        if appointment.status != AppointmentStatus::Booked {
            return Err(Refusal::NotActive {
                status: appointment.status,
            });
        }
        d.check_reschedule_cap(&appointment)?;
        if self.new_slot_id != appointment.slot_id {
            // An applicant's move; an administrator's relocation is not held back by a wave.
            d.check_released(self.new_slot_id, &appointment.service)?;
        }
        let old_slot_id = d.move_seat(&mut appointment, self.new_slot_id, Freed::Own)?;
        appointment.reschedules += 1;
        appointment.updated_at = d.now;
        d.store_appointment(appointment.clone());
        d.event(
            "appointment_rescheduled",
            &self.tracking_code,
            &self.national_code,
            serde_json::json!({ "old_slot_id": old_slot_id, "new_slot_id": self.new_slot_id }),
        );
        Ok(Outcome::Rescheduled {
            appointment,
            old_slot_id,
        })
    }
}

/// A live hold whose time is up (from the expiry sweeper).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expire {
    pub hold_id: HoldId,
}

impl RequestKind for Expire {
    fn touches(&self, keys: &mut BatchKeys) {
        keys.holds.push(self.hold_id.as_str().to_owned());
    }

    fn seat_slot(&self) -> Option<i64> {
        None
    }

    fn national_code(&self) -> Option<&str> {
        None
    }

    fn subject(&self) -> &str {
        self.hold_id.as_str()
    }

    fn apply(&self, d: &mut Decider<'_>) -> Result<Outcome, Refusal> {
        let hold = d.hold(&self.hold_id).ok_or(Refusal::HoldNotFound)?;
        if d.expire_if_due(&hold) {
            Ok(Outcome::Expired {
                hold_id: self.hold_id.as_str().to_owned(),
            })
        } else {
            Err(Refusal::HoldNotLive {
                status: hold.status,
            })
        }
    }
}
