//! A request to the writer and the keys its batch reads.

use serde::{Deserialize, Serialize};

use crate::rows::UnixSeconds;

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
