//! The waitlist for freed seats and the anti-trading release: its rows, and the applicant's and
//! sweeper's requests (join, leave, accept or decline an offer, end a release delay). Where a
//! freed seat goes is decided in one place, `Decider::give_up_seat` (state.rs), which every path
//! that frees a seat calls.

use serde::{Deserialize, Serialize};

use crate::ids::{ApplicationId, HoldId, PaymentId, TrackingCode};
use crate::keys::BatchKeys;
use crate::kind::RequestKind;
use crate::outcome::{Outcome, Refusal};
use crate::rows::{EntryOffice, HoldStatus, ReleaseStatus, WaitLimits, WaitRow, WaitStatus};
use crate::state::{Claim, Decider, Freed, Subject};

/// Joins the waitlist for a service with a paid application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinWaitlist {
    pub national_code: String,
    pub application_id: ApplicationId,
    pub service: String,
    pub payment_id: PaymentId,
    pub entry_id: String,
    pub auto_accept: bool,
    pub limits: WaitLimits,
    pub limits_json: String,
    /// The offices the limits accept (bounded by the handler), nearest first.
    pub offices: Vec<String>,
}

impl RequestKind for JoinWaitlist {
    fn touches(&self, keys: &mut BatchKeys) {
        let pair = (self.national_code.clone(), self.service.clone());
        keys.citizens.push(pair.clone());
        keys.entry_citizens.push(pair);
        keys.payments.push(self.payment_id.as_str().to_owned());
        keys.applications
            .push(self.application_id.as_str().to_owned());
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
        let claim = Claim {
            national_code: &self.national_code,
            application_id: self.application_id.as_str(),
            service: &self.service,
        };
        d.check_application(claim)?;
        d.check_payment(&self.payment_id, claim)?;
        if let Some(entry) = d.active_entry(&self.national_code, &self.service) {
            let same = entry.application_id == self.application_id.as_str()
                && entry.payment_id == self.payment_id.as_str()
                && entry.auto_accept == self.auto_accept
                && entry.limits_json == self.limits_json;
            return if same {
                Ok(Outcome::Waitlisted {
                    entry,
                    created: false,
                })
            } else {
                Err(Refusal::AlreadyWaiting { entry_id: entry.id })
            };
        }
        d.check_not_booked(claim)?;
        let entry = WaitRow {
            id: self.entry_id.clone(),
            national_code: self.national_code.clone(),
            service: self.service.clone(),
            application_id: self.application_id.as_str().to_owned(),
            payment_id: self.payment_id.as_str().to_owned(),
            auto_accept: self.auto_accept,
            limits: self.limits,
            limits_json: self.limits_json.clone(),
            status: WaitStatus::Waiting,
            offer_hold_id: None,
            tracking_code: None,
            joined_at: d.now,
            updated_at: d.now,
        };
        d.effects
            .entry_offices
            .extend(self.offices.iter().map(|office_id| EntryOffice {
                entry_id: entry.id.clone(),
                office_id: office_id.clone(),
                joined_at: d.now,
            }));
        d.add_entry(entry.clone());
        d.event(
            "waitlist_joined",
            Subject::Entry(&entry.id),
            &self.national_code,
            serde_json::json!({ "offices": self.offices.len(), "auto_accept": self.auto_accept }),
        );
        Ok(Outcome::Waitlisted {
            entry,
            created: true,
        })
    }
}

/// Leaves the waitlist; a live offer is given up (its seat goes on to the next waiter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveWaitlist {
    pub national_code: String,
    pub entry_id: String,
    /// Ended by the sweeper because its last date has passed (no freed seat can fit it any
    /// more): it lapses, and only if it is waiting with `latest_at` at or before now (an
    /// offered entry keeps its offer; it lapses at a later sweep if the offer ends unaccepted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lapsed: bool,
}

impl RequestKind for LeaveWaitlist {
    fn touches(&self, keys: &mut BatchKeys) {
        keys.entries.push(self.entry_id.clone());
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
        let mut entry = d.entry_of(&self.national_code, &self.entry_id)?;
        if !entry.status.is_active() {
            return Err(Refusal::EntryNotActive {
                status: entry.status,
            });
        }
        if self.lapsed {
            return lapse(d, entry);
        }
        let offer = entry.offer_hold_id.take();
        entry.status = WaitStatus::Left;
        entry.updated_at = d.now;
        d.store_entry(entry.clone());
        if let Some(hold) = offer.and_then(|id| d.hold(&HoldId::from(id))) {
            if !d.expire_if_due(&hold) && hold.status == HoldStatus::Live {
                d.set_hold_status(&hold, HoldStatus::Released);
                d.give_up_seat(hold.slot_id, Freed::Own, Some(&self.national_code));
            }
        }
        d.event(
            "waitlist_left",
            Subject::Entry(&entry.id),
            &self.national_code,
            serde_json::json!({}),
        );
        Ok(Outcome::WaitlistLeft { entry })
    }
}

/// The sweeper's end of an entry whose dates have all passed.
fn lapse(d: &mut Decider<'_>, mut entry: WaitRow) -> Result<Outcome, Refusal> {
    if entry.status != WaitStatus::Waiting || entry.limits.latest_at > d.now {
        return Err(Refusal::EntryNotActive {
            status: entry.status,
        });
    }
    entry.status = WaitStatus::Lapsed;
    entry.updated_at = d.now;
    d.store_entry(entry.clone());
    d.event(
        "waitlist_lapsed",
        Subject::Entry(&entry.id),
        "system",
        serde_json::json!({ "latest_at": entry.limits.latest_at }),
    );
    Ok(Outcome::WaitlistLeft { entry })
}

/// Accepts a waitlist offer: the offer's hold is confirmed with the entry's payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptOffer {
    pub national_code: String,
    pub entry_id: String,
    /// The offer: its hold.
    pub hold_id: HoldId,
    pub payment_id: PaymentId,
    pub tracking_code: TrackingCode,
}

impl RequestKind for AcceptOffer {
    fn touches(&self, keys: &mut BatchKeys) {
        keys.entries.push(self.entry_id.clone());
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
        d.offer_of(&self.national_code, &self.entry_id, &self.hold_id)?;
        crate::seats::confirm_hold(
            d,
            &self.national_code,
            &self.hold_id,
            &self.payment_id,
            &self.tracking_code,
        )
    }
}

/// Declines a waitlist offer: the entry waits again, the seat goes to the next waiter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclineOffer {
    pub national_code: String,
    pub entry_id: String,
    pub hold_id: HoldId,
}

impl RequestKind for DeclineOffer {
    fn touches(&self, keys: &mut BatchKeys) {
        keys.entries.push(self.entry_id.clone());
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
        d.offer_of(&self.national_code, &self.entry_id, &self.hold_id)?;
        let hold = d
            .hold_of(&self.national_code, &self.hold_id)
            .map_err(|_| Refusal::OfferNotFound)?;
        if d.expire_if_due(&hold) {
            return Err(Refusal::HoldExpired);
        }
        if hold.status != HoldStatus::Live {
            return Err(Refusal::HoldNotLive {
                status: hold.status,
            });
        }
        // The entry waits again (set_hold_status ends the offer), the seat moves on.
        d.set_hold_status(&hold, HoldStatus::Released);
        d.give_up_seat(hold.slot_id, Freed::Own, Some(&self.national_code));
        d.event(
            "waitlist_offer_declined",
            &self.hold_id,
            &self.national_code,
            serde_json::json!({ "slot_id": hold.slot_id }),
        );
        let entry = d
            .entry_of(&self.national_code, &self.entry_id)
            .expect("read above");
        Ok(Outcome::OfferDeclined { entry })
    }
}

/// The end of a release delay (from the sweeper): the seat goes to a waiter, else back to
/// first-come booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseSeat {
    pub release_id: i64,
    /// Ended early by a closure of its slot's day (an administrator's): the seat is freed at
    /// once, to no waiter, so the slot can be shrunk.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closing: bool,
}

impl RequestKind for ReleaseSeat {
    fn touches(&self, keys: &mut BatchKeys) {
        keys.releases.push(self.release_id);
    }

    fn seat_slot(&self) -> Option<i64> {
        None
    }

    fn national_code(&self) -> Option<&str> {
        None
    }

    fn subject(&self) -> &str {
        // Queued with the other sweeper requests; it names no citizen.
        "seat_release"
    }

    fn apply(&self, d: &mut Decider<'_>) -> Result<Outcome, Refusal> {
        let release = d
            .state
            .releases
            .get(&self.release_id)
            .cloned()
            .ok_or(Refusal::ReleaseNotDue)?;
        if release.status != ReleaseStatus::Pending || (release.release_at > d.now && !self.closing)
        {
            return Err(Refusal::ReleaseNotDue);
        }
        d.state
            .releases
            .get_mut(&self.release_id)
            .expect("read above")
            .status = ReleaseStatus::Done;
        d.effects
            .release_status
            .insert(self.release_id, ReleaseStatus::Done);
        let how = if self.closing {
            Freed::Closing
        } else {
            Freed::System
        };
        d.give_up_seat(release.slot_id, how, release.freed_by.as_deref());
        Ok(Outcome::SeatReleased {
            slot_id: release.slot_id,
        })
    }
}
