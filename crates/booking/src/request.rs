//! A request to the writer: one variant per request kind, each holding its kind's struct
//! (defined in its family's file: `seats`, `staff`, `admin`, `pick`).

use serde::{Deserialize, Serialize};

use crate::admin::{Relocate, SetCapacity};
use crate::keys::BatchKeys;
use crate::kind::RequestKind;
use crate::outcome::{Outcome, Refusal};
use crate::pick::{PickBook, PickHold};
use crate::seats::{Book, Cancel, Confirm, Expire, Hold, Release, Reschedule};
use crate::staff::{CardReady, CheckIn, Deliver, Enrol, NoShow};
use crate::state::Decider;

/// A request to the writer. Identifiers it may create (hold id, tracking code) are generated
/// before it is queued, so that the decision is a pure function of its inputs.
///
/// Each variant holds its kind's struct, which says everything about the kind
/// (`RequestKind`); the methods here dispatch through `Request::kind`, the one match over
/// the variants. The JSON is what it was when the variants were structs (`{"Hold": {...}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Hold(Hold),
    Confirm(Confirm),
    Release(Release),
    Book(Book),
    Cancel(Cancel),
    Reschedule(Reschedule),
    Expire(Expire),
    CheckIn(CheckIn),
    Enrol(Enrol),
    NoShow(NoShow),
    CardReady(CardReady),
    Deliver(Deliver),
    Relocate(Relocate),
    SetCapacity(SetCapacity),
    PickHold(PickHold),
    PickBook(PickBook),
}

impl Request {
    /// The request's kind: the one match over the variants.
    fn kind(&self) -> &dyn RequestKind {
        match self {
            Request::Hold(r) => r,
            Request::Confirm(r) => r,
            Request::Release(r) => r,
            Request::Book(r) => r,
            Request::Cancel(r) => r,
            Request::Reschedule(r) => r,
            Request::Expire(r) => r,
            Request::CheckIn(r) => r,
            Request::Enrol(r) => r,
            Request::NoShow(r) => r,
            Request::CardReady(r) => r,
            Request::Deliver(r) => r,
            Request::Relocate(r) => r,
            Request::SetCapacity(r) => r,
            Request::PickHold(r) => r,
            Request::PickBook(r) => r,
        }
    }

    /// The holds, appointments, payments, citizens and slots this request reads, so the writer
    /// can lock and load them in bulk.
    pub fn touches(&self, keys: &mut BatchKeys) {
        self.kind().touches(keys)
    }

    /// The slot this request may take a seat in (and so must lock), if any.
    pub fn seat_slot(&self) -> Option<i64> {
        self.kind().seat_slot()
    }

    /// The citizen this request is for, or else the record it names.
    pub fn subject(&self) -> &str {
        self.kind().subject()
    }

    /// The citizen who asked, for the applicant's own requests.
    pub fn national_code(&self) -> Option<&str> {
        self.kind().national_code()
    }

    pub(crate) fn apply(&self, decider: &mut Decider<'_>) -> Result<Outcome, Refusal> {
        self.kind().apply(decider)
    }
}
