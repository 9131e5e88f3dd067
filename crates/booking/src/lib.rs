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
//!
//! # Layout
//! - `rows`: the rows a batch reads and writes (slots, holds, appointments, payments, cards,
//!   notices) and their statuses, as the store decodes them.
//! - `ids`: [`HoldId`], [`TrackingCode`], [`PaymentId`], [`ApplicationId`]: the identifiers a
//!   request names, each its own type.
//! - `request`: [`Request`] (one variant per kind), the `RequestKind` trait, [`BatchKeys`].
//! - `outcome`: [`Outcome`], [`Refusal`], [`Event`], [`Effects`].
//! - `state`: [`BatchState`], and the decider with the helpers the kinds share (seats, holds,
//!   appointments, checks, events).
//! - `limits`: [`Limits`], the caps on an applicant's reschedules and cancellations, and their
//!   checks.
//! - The request kinds, one file per family: `seats` (hold, confirm, release, book, cancel,
//!   reschedule, expire), `staff` (check in, enrol, no-show, card ready, deliver), `admin`
//!   (relocate, set capacity), `pick` (a hold or booking in the first free of a list of
//!   candidate slots: auto-pick), `waitlist` (join, leave, accept or decline an offer, the
//!   end of a release delay; where a freed seat goes is `Decider::give_up_seat` in `state`).
//!
//! # One place per request kind
//! Each kind is a struct (`Hold`, `Enrol`, ...) in its family's file, implementing the
//! crate's `RequestKind` trait: what its batch reads (`touches`), the slot it may take a seat
//! in (`seat_slot`), its citizen and subject (which writer queue it goes to), and how it is
//! decided (`apply`). [`Request`] holds one per variant and dispatches every method through
//! one match (`Request::kind`). A new kind is therefore: its struct and `impl RequestKind` in
//! its family's file, a variant, and one arm in `Request::kind`; the compiler asks for the
//! arm, and for each of the trait's methods (none has a default, so each is decided).
//!
//! The helpers the kinds share take typed arguments where strings could be swapped: ids are
//! newtypes, a (citizen, application, service) triple travels as a `Claim` with named fields,
//! and an event's subject is a `Subject` (a hold, an appointment or a slot), never a bare
//! `&str` beside the actor. Citizens' national codes and services stay `String`: the rows hold
//! them so, and the domain's `NationalCode` is neither `Serialize` nor able to hold the test
//! codes; converting at every comparison would cost allocations in the writer's serial stage.
//!
//! The JSON of [`Request`], [`Outcome`], [`Refusal`] and the rows is a stored format
//! (idempotency records replay an `Outcome`); `tests/json.rs` pins it byte for byte.

mod admin;
mod ids;
mod keys;
mod kind;
mod limits;
mod outcome;
mod pick;
mod request;
mod rows;
mod seats;
mod staff;
mod state;
mod waitlist;

pub use admin::{relocation_sms, Relocate, RelocationReason, SetCapacity};
pub use ids::{ApplicationId, HoldId, PaymentId, TrackingCode};
pub use keys::BatchKeys;
pub use limits::Limits;
pub use outcome::{Effects, Event, Outcome, Refusal};
pub use pick::{PickBook, PickHold, MAX_CANDIDATES};
pub use request::Request;
pub use rows::{
    persian_when, waitlist_sms, ApplicationRef, AppointmentRow, AppointmentStatus, CardRow,
    EntryOffice, HoldRow, HoldStatus, OutboxRow, PartOfDay, PaymentRow, PaymentStatus,
    ReleaseStatus, SeatReleaseRow, SlotRow, UnixSeconds, WaitLimits, WaitRow, WaitStatus,
    PICKUP_SERVICE,
};
pub use seats::{Book, Cancel, Confirm, Expire, Hold, Release, Reschedule};
pub use staff::{CardReady, CheckIn, Deliver, Enrol, NoShow, PickupBooking};
pub use state::{BatchMap, BatchState, FreeingPolicy};
pub use waitlist::{AcceptOffer, DeclineOffer, JoinWaitlist, LeaveWaitlist, ReleaseSeat};

use state::Decider;

/// Applies `requests` in order against `state` at time `now`, returning one outcome per
/// request and the writes to commit.
pub fn decide<'r>(
    state: &mut BatchState,
    requests: impl IntoIterator<Item = &'r Request>,
    now: UnixSeconds,
) -> (Vec<Outcome>, Effects) {
    let mut decider = Decider::new(state, now);
    let outcomes = requests
        .into_iter()
        .map(|r| r.apply(&mut decider).unwrap_or_else(Outcome::Refused))
        .collect();
    (outcomes, decider.finish())
}

#[cfg(test)]
mod tests;
