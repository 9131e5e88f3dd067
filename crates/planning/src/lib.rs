//! nobat's planning tools, for the planners' jobs and for the server's own decisions (closures,
//! and later ballots and auto-pick): synchronous, deterministic code with no I/O but the files a
//! caller names. Time and randomness are inputs (a scenario's seed, a published lottery seed).
//!
//! - [`allocator`]: the exact min-cost-flow assignment of applicants to office-days.
//! - [`certificate`]: an allocation checked against its dual certificate, apart from the solver.
//! - [`scenario`]: scenario files, the generated office network and synthetic citizens.
//! - [`sim`]: the day-by-day capacity simulation (first come or batch allocation).
//! - [`plan`]: the cheapest capacity to add to meet a waiting-time target (LP, checked by
//!   simulation).
//! - [`report`]: simulation and plan reports: JSON summary, CSV series, self-contained HTML.
//! - [`ballot`]: ballot windows decided at close by the allocator: terms, entries, the seed's
//!   commitment, the close, public results and the audit of a published record.
//! - [`relocation`]: where the appointments of a closed office go (greedy for a few, the
//!   allocator for more); the server's closure handler reads the seats and makes the moves.
//!
//! Architecture invariant: this crate depends on no async runtime, database or HTTP crate
//! (see its `Cargo.toml`), so nothing here can block on I/O or read the wall clock unseen.

pub mod allocator;
pub mod ballot;
pub mod certificate;
pub mod plan;
pub mod relocation;
pub mod report;
pub mod scenario;
pub mod sim;
