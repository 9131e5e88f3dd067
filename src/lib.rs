//! nobat (نوبت, "a turn, an appointment"): the appointment scheduling and capacity engine of
//! the smart national ID card programme.
//!
//! The workspace holds three pure library crates, re-exported here under short names, and this
//! crate, the running product. From the inside out (ARCHITECTURE.md has the invariants):
//! - [`domain`] (`nobat-domain`): types parsed at the edge: identifiers, provinces, offices,
//!   services and fees, the applicant's form and eligibility, the Jalali calendar, slot
//!   generation, and the civil-registry port.
//! - [`booking`] (`nobat-booking`): the decisions of one booking batch, a pure function.
//! - [`planning`] (`nobat-planning`): the exact allocator, the simulator, the capacity plan,
//!   scenario files and reports.
//! - [`store`]: sqlx storage on SQLite (default) or PostgreSQL, with migrations; start-up seed
//!   data and the rolling window of slots.
//! - [`reserve`]: the running booking engine: group-commit writers, the availability view and
//!   the office directory, the hold sweeper.
//! - [`ports`]: the payment gateway and the notifier, each a trait with a built-in
//!   implementation.
//! - [`http`]: the axum server (the applicant, staff, admin and planner APIs, probes, metrics,
//!   OpenAPI).
//! - [`app`]: the server application value: build, then run until stopped.
//! - [`loadtest`]: surge-day load tests: open-loop synthetic applicants, crash runs, audit.
//! - [`cli`]: the `nobat` command line; `main.rs` only calls it.

pub use nobat_booking as booking;
pub use nobat_domain as domain;
pub use nobat_planning as planning;
pub use nobat_room as room;

pub mod app;
pub mod cli;
pub mod http;
pub mod loadtest;
pub mod ports;
pub mod reserve;
pub mod store;

/// The process's allocator, for every binary linking nobat (the server, the tests, the
/// benches). The booking writer makes about a hundred small allocations per booking (rows,
/// keys, answers); glibc's malloc and free were about a fifth of the SQLite writer thread's
/// instructions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
