//! Auto-picked seats: a hold or a booking in the first of a list of candidate slots that has a
//! free seat. The candidates come in the order the applicant prefers them (least cost first,
//! worked out by the caller from its view of free seats); here, on the locked rows, the first
//! one still free is taken, and from there on the request is exactly a [`Hold`] or a [`Book`]
//! in that slot (their `apply` runs, not a copy of it). When every candidate is full the request
//! is refused with [`Refusal::CandidatesFull`], which the caller answers by asking again with
//! fresh candidates.

use serde::{Deserialize, Serialize};

use crate::ids::{ApplicationId, HoldId, PaymentId, TrackingCode};
use crate::keys::BatchKeys;
use crate::kind::RequestKind;
use crate::outcome::{Outcome, Refusal};
use crate::rows::UnixSeconds;
use crate::seats::{Book, Hold};
use crate::state::Decider;

/// Most candidates one request may carry: each is locked by its batch. The picks of one hot
/// group share one list, so this bounds the seats a thousand picks in flight between two
/// commits can share: at 256 slots the list ran dry and most later picks went round again
/// (the auto-pick bench at 1,000 clients: 1.65 submissions per pick on PostgreSQL, 1.00 now).
pub const MAX_CANDIDATES: usize = 1024;

/// The first candidate with a free seat on the batch's rows so far, else the first candidate
/// (whose refusal, after the citizen's checks, says why), else nothing.
/// A slot whose release wave has not opened for `service` is never picked.
fn first_free(d: &Decider<'_>, candidates: &[i64], service: &str) -> Option<i64> {
    candidates
        .iter()
        .copied()
        .find(|id| {
            d.state
                .slots
                .get(id)
                .is_some_and(|s| s.taken < s.capacity && s.unreleased_for(service, d.now).is_none())
        })
        .or_else(|| candidates.first().copied())
}

/// Adds the candidates to the slots the batch reads and locks, after the first (which the
/// hold's or booking's own `touches` added). The picks of one hot group arrive with the same
/// list (`Availability::pick_candidates_shared`), hundreds to a batch: a list equal to the
/// one just before it adds nothing (not even the first again), so the batch sorts one copy
/// rather than one per pick.
fn touch_candidates(keys: &mut BatchKeys, candidates: &[i64]) {
    let Some(&first) = candidates.first() else {
        return;
    };
    // The slots end with the first candidate (just added), after the list before it.
    let n = keys.slots.len();
    let before = n
        .checked_sub(1 + candidates.len())
        .map(|from| &keys.slots[from..n - 1]);
    if keys.slots.last() == Some(&first) && before == Some(candidates) {
        keys.slots.pop();
    } else {
        keys.slots.extend_from_slice(candidates);
    }
}

/// A seat refusal of the chosen slot means that no candidate had a free seat.
fn no_candidate_left(r: Refusal) -> Refusal {
    match r {
        Refusal::SlotFull { .. } | Refusal::SlotUnknown { .. } | Refusal::NotYetReleased { .. } => {
            Refusal::CandidatesFull
        }
        other => other,
    }
}

/// A [`Hold`] in the first candidate slot with a free seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PickHold {
    pub national_code: String,
    pub application_id: ApplicationId,
    pub service: String,
    /// Slot ids, the preferred first; at most [`MAX_CANDIDATES`].
    pub candidates: Vec<i64>,
    pub hold_id: HoldId,
    pub expires_at: UnixSeconds,
}

impl PickHold {
    fn hold(&self, slot_id: i64) -> Hold {
        Hold {
            national_code: self.national_code.clone(),
            application_id: self.application_id.clone(),
            service: self.service.clone(),
            slot_id,
            hold_id: self.hold_id.clone(),
            expires_at: self.expires_at,
        }
    }
}

impl RequestKind for PickHold {
    fn touches(&self, keys: &mut BatchKeys) {
        if let Some(&first) = self.candidates.first() {
            self.hold(first).touches(keys);
        }
        touch_candidates(keys, &self.candidates);
    }

    fn seat_slot(&self) -> Option<i64> {
        self.candidates.first().copied()
    }

    fn national_code(&self) -> Option<&str> {
        Some(&self.national_code)
    }

    fn subject(&self) -> &str {
        &self.national_code
    }

    fn apply(&self, d: &mut Decider<'_>) -> Result<Outcome, Refusal> {
        let slot_id =
            first_free(d, &self.candidates, &self.service).ok_or(Refusal::CandidatesFull)?;
        self.hold(slot_id).apply(d).map_err(no_candidate_left)
    }
}

/// A [`Book`] (hold and confirm in one step) in the first candidate slot with a free seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PickBook {
    pub national_code: String,
    pub application_id: ApplicationId,
    pub service: String,
    /// Slot ids, the preferred first; at most [`MAX_CANDIDATES`].
    pub candidates: Vec<i64>,
    pub payment_id: PaymentId,
    pub hold_id: HoldId,
    pub tracking_code: TrackingCode,
}

impl PickBook {
    fn book(&self, slot_id: i64) -> Book {
        Book {
            national_code: self.national_code.clone(),
            application_id: self.application_id.clone(),
            service: self.service.clone(),
            slot_id,
            payment_id: self.payment_id.clone(),
            hold_id: self.hold_id.clone(),
            tracking_code: self.tracking_code.clone(),
        }
    }
}

impl RequestKind for PickBook {
    fn touches(&self, keys: &mut BatchKeys) {
        if let Some(&first) = self.candidates.first() {
            self.book(first).touches(keys);
        }
        touch_candidates(keys, &self.candidates);
    }

    fn seat_slot(&self) -> Option<i64> {
        self.candidates.first().copied()
    }

    fn national_code(&self) -> Option<&str> {
        Some(&self.national_code)
    }

    fn subject(&self) -> &str {
        &self.national_code
    }

    fn apply(&self, d: &mut Decider<'_>) -> Result<Outcome, Refusal> {
        let slot_id =
            first_free(d, &self.candidates, &self.service).ok_or(Refusal::CandidatesFull)?;
        self.book(slot_id).apply(d).map_err(no_candidate_left)
    }
}
