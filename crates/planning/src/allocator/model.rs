//! The allocation problem as the engine sees it, and its outcome.

use std::collections::BTreeSet;
use std::fmt;

use thiserror::Error;

use super::network_simplex::FlowError;

/// An office as a place with seats: where it is and which services it offers.
#[derive(Debug, Clone, PartialEq)]
pub struct OfficeSite {
    pub id: String,
    pub lat: f64,
    pub lon: f64,
    /// `None`: the office offers every service.
    pub services: Option<BTreeSet<String>>,
    /// Enrolment stations: seats served in parallel, which turns a seat index into a slot.
    pub stations: Option<u32>,
    pub province: Option<String>,
}

/// Seats of one office on one day of the horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfficeDaySeats {
    /// Index into [`AllocationProblem::offices`].
    pub office: usize,
    /// 0-based day of the horizon.
    pub day: u32,
    pub seats: u32,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applicant {
    pub id: String,
    pub lat: f64,
    pub lon: f64,
    /// Higher classes are placed first (e.g. 2 = disabled, 1 = elderly, 0 = everyone else).
    pub priority: i32,
    /// Overrides the problem's default maximum distance.
    pub max_km: Option<f64>,
    /// `None`: any office will do.
    pub service: Option<String>,
    /// Registration time (any monotone integer, e.g. Unix seconds); `None` sorts last.
    pub registered_at: Option<i64>,
    pub province: Option<String>,
    /// First day of the horizon (0-based, like [`OfficeDaySeats::day`]) the applicant can
    /// come; `None` = any day.
    pub earliest_day: Option<u32>,
    /// The only offices the applicant accepts (indexes into [`AllocationProblem::offices`],
    /// at most [`MAX_PREFERRED_OFFICES`]); they must still be within reach and offer the
    /// service. `None` = any office.
    pub preferred_offices: Option<Vec<usize>>,
}

/// Bound on an applicant's preferred offices (a person names a few, not a province).
pub const MAX_PREFERRED_OFFICES: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub struct AllocationProblem {
    pub offices: Vec<OfficeSite>,
    pub seats: Vec<OfficeDaySeats>,
    pub applicants: Vec<Applicant>,
    /// Cost of waiting one more day, in kilometres of travel.
    pub wait_km_per_day: f64,
    /// Maximum distance for applicants without their own; `None` = unlimited.
    pub default_max_km: Option<f64>,
    /// Published lottery seed: ties in seat order are broken by SHA-256(seed ‖ applicant id).
    pub lottery_seed: String,
}

/// Knobs that change speed, never the optimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SolverOptions {
    /// Nearest candidate offices per zone in the first model; pricing adds any others needed.
    pub candidates_per_zone: usize,
    /// Most violating arcs added per zone and pricing round (the most negative first).
    /// Default 8: on the saturated 1M × 2,200 × 30 instance (seeds 1, 3, 7; with the
    /// candidate-list simplex) 8 took 3-10 % less CPU than 2 (fewer rounds, fewer pivots
    /// after them), and 1 more.
    pub pricing_arcs_per_zone: usize,
    /// Bound on pricing rounds (each adds at least one arc, so the loop is finite anyway).
    pub max_pricing_rounds: u32,
    /// Bound on simplex pivots per solve.
    pub max_pivots: u64,
    /// Use the two-stage method for priority classes even when stacked penalties fit (tests).
    pub force_two_stage: bool,
    /// The min-cost flow algorithm (both exact and certified).
    pub solver: FlowSolver,
    /// Networks with at least this many zones first solve a coarse version of themselves
    /// (neighbouring zones merged) and start from candidates its optimum points to.
    pub seed_min_zones: usize,
    /// At most this many extra candidates per zone from the coarse optimum (0 turns
    /// seeding off).
    pub seed_arcs_per_zone: usize,
}

/// Which exact min-cost flow algorithm solves the allocation network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlowSolver {
    /// The primal network simplex (`network_simplex.rs`): the faster of the two on the
    /// national instances measured so far.
    #[default]
    NetworkSimplex,
    /// Push–relabel with ε-scaling (`cost_scaling.rs`); falls back to the simplex when the
    /// scaled costs would not fit in i64.
    CostScaling,
    /// Successive shortest paths searched over offices rather than zones
    /// (`office_paths.rs`): built for this network's shape (many zones, few offices). Fastest
    /// on the first restricted model; its warm re-solves after pricing are the slow part.
    OfficePaths,
}

impl Default for SolverOptions {
    fn default() -> Self {
        Self {
            candidates_per_zone: 3,
            pricing_arcs_per_zone: 8,
            max_pricing_rounds: 1000,
            max_pivots: 2_000_000_000,
            force_two_stage: false,
            solver: FlowSolver::default(),
            seed_min_zones: 20_000,
            seed_arcs_per_zone: 24,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnassignedReason {
    /// No office (of any service) lies within the applicant's maximum distance.
    NoOfficeWithinMaxKm,
    /// Offices lie within reach, but none of them offers the applicant's service.
    ServiceNotOffered,
    /// Offices within reach offer the service but their seats went to others (optimally).
    NoCapacity,
}

impl UnassignedReason {
    pub const ALL: [UnassignedReason; 3] = [
        UnassignedReason::NoOfficeWithinMaxKm,
        UnassignedReason::ServiceNotOffered,
        UnassignedReason::NoCapacity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UnassignedReason::NoOfficeWithinMaxKm => "no_office_within_max_km",
            UnassignedReason::ServiceNotOffered => "service_not_offered",
            UnassignedReason::NoCapacity => "no_capacity",
        }
    }
}

impl fmt::Display for UnassignedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assignment {
    /// Index into [`AllocationProblem::offices`].
    pub office: usize,
    pub day: u32,
    /// 0-based seat in the office-day, in seat order (priority, registration, lottery).
    pub seat: u32,
    /// Slot of the day: `seat / stations` when the office's stations are known, else `seat`.
    pub slot: u32,
    pub distance_km: f64,
    /// The solver's cost in whole metres: rounded distance plus rounded wait.
    pub cost_m: i64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    Assigned(Assignment),
    Unassigned(UnassignedReason),
}

/// What the solver did, for reports and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SolveStats {
    pub zones: usize,
    pub priority_classes: usize,
    pub arcs: usize,
    pub arcs_added_by_pricing: usize,
    /// Candidates added from a coarse version of the problem before the first solve.
    pub arcs_added_by_seeding: usize,
    pub pricing_rounds: u32,
    pub pivots: u64,
    /// The final network's simplex started from the coarse optimum's flow (spread over the
    /// zones) rather than from the artificial basis.
    pub warm_started: bool,
    /// The algorithm that solved the final network: the one asked for, unless it cannot
    /// take this network (cost scaling's scaled costs overflow; office paths with entry
    /// days), when the simplex does.
    pub solver: FlowSolver,
    /// The exact objective: sum of `cost_m` over assigned applicants.
    pub total_cost_m: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    /// One outcome per applicant, in the problem's order.
    pub outcomes: Vec<Outcome>,
    pub stats: SolveStats,
    /// Rounded wait cost of one day in metres (what the solver used).
    pub wait_m_per_day: i64,
    /// The optimal dual: what `crate::certificate::verify` checks the outcomes against.
    pub certificate: Certificate,
}

/// The optimum's dual solution, in whole metres, for the allocation LP written per applicant:
///
/// ```text
/// min  Σ cost(a,o,d) x(a,o,d) + Σ penalty(priority of a) u(a)
/// s.t. Σ_(o,d) x(a,o,d) + u(a) = 1       for every applicant a       (dual: y(a), free)
///      Σ_a x(a,o,d) <= seats(o,d)         for every office-day        (dual: −price(o,d) <= 0)
/// ```
///
/// over every pair (a, o, d) the applicant accepts (office within reach and offering the
/// service, a preferred office if any, d >= earliest day, seats > 0). Applicants sharing a
/// zone share `y`. Dual feasibility is `y(a) <= cost(a,o,d) + price(o,d)` for every such pair
/// and `y(a) <= penalty`; with the outcomes, complementary slackness then proves them optimal.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Certificate {
    /// The rounded wait cost of a day the costs use.
    pub wait_m_per_day: i64,
    /// (priority, penalty of leaving one such applicant unplaced), per priority class that
    /// has applicants who could be placed.
    pub penalties: Vec<(i32, i64)>,
    /// The zone of each applicant, in the problem's order.
    pub zone_of: Vec<u32>,
    /// `y` per zone: what one more applicant of the zone would cost the optimum (0 for
    /// zones that cannot be placed at all).
    pub zone_potential_m: Vec<i64>,
    /// (office, day, price >= 0) of every office-day with seats.
    pub office_day_price_m: Vec<(usize, u32, i64)>,
}

#[derive(Debug, Error, PartialEq)]
pub enum AllocationError {
    #[error("applicant {id}: {reason}")]
    InvalidApplicant { id: String, reason: String },
    #[error("office {id}: {reason}")]
    InvalidOffice { id: String, reason: String },
    #[error("seats row {index}: office index {office} is out of range")]
    UnknownOffice { index: usize, office: usize },
    #[error("office {office_id} day {day} appears twice in the seats")]
    DuplicateOfficeDay { office_id: String, day: u32 },
    #[error("wait_km_per_day must be a finite number >= 0, got {0}")]
    InvalidWait(f64),
    #[error("default max_km must be a finite number >= 0, got {0}")]
    InvalidMaxKm(f64),
    #[error("the problem is too large: {0}")]
    TooLarge(String),
    #[error("pricing did not converge within {0} rounds")]
    PricingLimit(u32),
    #[error("flow solver: {0}")]
    Flow(#[from] FlowError),
}
