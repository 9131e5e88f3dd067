//! The booking decisions of one group-commit batch, as a pure function.
//!
//! The writer (see the root crate's `reserve`) locks and reads every row a batch touches into a
//! [`BatchState`], calls [`decide`] to apply the requests **in arrival order**, then writes the
//! returned [`Effects`] and commits once. Because the decisions are pure, they are tested and
//! property-tested here without a database, and replay exactly from their inputs (the clock
//! and the pre-generated identifiers are inputs, not read inside).
//!
//! Architecture invariant: `decide` never lets a slot's `taken` exceed its `capacity` or go
//! negative, never gives a citizen two live holds, and never gives a (citizen, service) two
//! active appointments. The database re-checks all three, so a bug here fails a batch; it
//! cannot overbook.

mod apply;
mod outcome;
mod request;
mod rows;
mod state;

pub use outcome::{Effects, Event, Outcome, Refusal};
pub use request::{relocation_sms, BatchKeys, PickupBooking, RelocationReason, Request};
pub use rows::{
    ApplicationRef, AppointmentRow, AppointmentStatus, CardRow, HoldRow, HoldStatus, OutboxRow,
    PaymentRow, PaymentStatus, SlotRow, UnixSeconds, PICKUP_SERVICE,
};
pub use state::{BatchMap, BatchState};

use state::Decider;

/// Applies `requests` in order against `state` at time `now`, returning one outcome per
/// request and the writes to commit.
pub fn decide<'r>(
    state: &mut BatchState,
    requests: impl IntoIterator<Item = &'r Request>,
    now: UnixSeconds,
) -> (Vec<Outcome>, Effects) {
    let mut decider = Decider::new(state, now);
    let outcomes = requests.into_iter().map(|r| decider.apply(r)).collect();
    (outcomes, decider.finish())
}

#[cfg(test)]
mod tests;
