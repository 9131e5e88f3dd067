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

/// Tells the allocator to keep the memory freed from here on instead of handing it back to
/// the OS after 10 ms (mimalloc's `purge_delay` = -1), for a batch command that allocates
/// and frees hundreds of megabytes in big vectors (`nobat allocate`): every purged page is
/// faulted in and zeroed again on its next use, and on a national instance that zeroing
/// was a tenth of the run (1.2 s of system time of 1.7; loading the applicants' file
/// 2.1 s → 0.7 s without it). The process's peak stays its high-water mark; a long-lived
/// server should not call this.
pub fn keep_freed_memory() {
    extern "C" {
        fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    }
    /// `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (v2 and v3 alike).
    const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
    // SAFETY: mimalloc (the global allocator above, linked into every binary) exports
    // `void mi_option_set(mi_option_t, long)`; setting an option is thread-safe and has no
    // preconditions.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}
