//! The decision of one request (to be split by request family).

use serde::Serialize;

use crate::outcome::{Outcome, Refusal};
use crate::request::*;
use crate::rows::*;
use crate::state::Decider;

impl Decider<'_> {
    pub(crate) fn apply(&mut self, request: &Request) -> Outcome {
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
