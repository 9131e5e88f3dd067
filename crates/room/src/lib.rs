//! The waiting room in front of the booking writer, as pure functions of its state: no I/O, no
//! clock (times are inputs), so every process on one database computes the same order.
//!
//! - [`order`]: everyone who joined the pre-queue is ordered at the opening by a permutation
//!   keyed by the room's committed seed, computed on read (a million tickets need no write at
//!   the opening); later joiners queue first in, first out behind them.
//! - [`admission`]: how far admission has reached (the frontier of ranks admitted), moved on
//!   by a fixed rate or by a controller that keeps the booking p99 under its target and the
//!   active passes under their bound; a ticket's position and ETA follow from its rank.
//!
//! Architecture invariant: like the other pure crates, this one depends on no async runtime,
//! database or HTTP crate.

pub mod admission;
pub mod order;

pub use admission::{Admission, AdmissionPolicy, Observed, Standing, UNITS_PER_RANK};
pub use order::{FeistelPermutation, QueueOrder};
