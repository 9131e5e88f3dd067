//! The allocator: applicants to office-days by min-cost flow.
//!
//! Pure: no I/O, no clock; the lottery seed is an input. Entry point: [`allocate`]; the method
//! (zones, candidate arcs with pricing, the lexicographic objective) is described in `solve.rs`.

pub mod cost;
pub mod cost_scaling;
mod model;
pub mod network_simplex;
pub mod office_paths;
mod seating;
mod solve;
pub mod spatial;
mod summary;
pub mod synthetic;

pub use model::{
    Allocation, AllocationError, AllocationProblem, Applicant, Assignment, Certificate, FlowSolver,
    OfficeDaySeats, OfficeSite, Outcome, SolveStats, SolverOptions, UnassignedReason,
    MAX_PREFERRED_OFFICES,
};
pub use seating::{lottery_digest, lottery_digests, seat_order};
pub use solve::{allocate, allocate_observed, Phase};
pub(crate) use summary::percentile;
pub use summary::{jain_index, summarise, AllocationSummary, ProvinceFigures};
