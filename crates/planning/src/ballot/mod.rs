//! Ballot windows: requests collected during a window, then assigned at its close by the exact
//! allocator, with a lottery anyone can audit. This is the pure part: the terms and entries
//! and their checks, the seed and its commitment, the close (allocate, seat into slots,
//! reasons, waitlist ranks, leftovers), the public results and the audit of a published
//! record. The server stores entries and withheld seats and writes what a close decides.

mod audit;
mod close;
mod results;
mod terms;

pub use audit::{verify, BallotRecord, Finding, Verified, RECORD_FORMAT};
pub use close::{
    close, close_observed, BallotInput, BallotOffice, CloseError, CloseOutcome, ClosePhase, Entry,
    Placement, Unplaced, UnplacedReason, WithheldSeats,
};
/// The ballot's seed is a [`LotterySeed`]: secret until the results, committed at creation.
pub use nobat_domain::lottery::{
    salted_key as entry_key, LotterySeed as BallotSeed, SeedFormatError,
};
pub use results::{results, BallotResults, ProvinceResult};
pub use terms::{
    BallotTerms, Condition, EntrantFacts, FieldProblem, PartOfDay, Preferences, PriorityRule,
    DEFAULT_MAX_KM, DEFAULT_WAIT_KM_PER_DAY, MAX_BALLOT_DAYS, MAX_OFFICE_CHOICES,
    MAX_PRIORITY_CLASS, MAX_PRIORITY_RULES,
};

#[cfg(test)]
mod tests;
