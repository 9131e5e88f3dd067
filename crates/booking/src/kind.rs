//! The trait every request kind implements: the one place a kind says what it reads, where it
//! is queued, and how it is decided.

use crate::keys::BatchKeys;
use crate::outcome::{Outcome, Refusal};
use crate::state::Decider;

/// What a request kind says about itself: what its batch must read, which writer queue it
/// goes to, and how it is decided. Every method is required, so a new kind states each one.
pub(crate) trait RequestKind {
    /// The holds, appointments, payments, citizens and slots it reads, so the writer can lock
    /// and load them in bulk.
    fn touches(&self, keys: &mut BatchKeys);

    /// The slot it may take a seat in (and so must lock), if any.
    fn seat_slot(&self) -> Option<i64>;

    /// The citizen who asked, for the applicant's own requests. Staff and admin steps, and the
    /// sweeper's expiries, answer `None` (they name a record), even when they carry a code.
    fn national_code(&self) -> Option<&str>;

    /// What the request is queued by when it takes no seat: its citizen, else the record it
    /// names (empty when it names a slot).
    fn subject(&self) -> &str;

    /// Decides it against the batch so far: the outcome, with its writes added to the
    /// decider's effects, or the refusal, with nothing written.
    fn apply(&self, decider: &mut Decider<'_>) -> Result<Outcome, Refusal>;
}
