//! nobat (نوبت, "a turn, an appointment"): the appointment scheduling and capacity engine of
//! the smart national ID card programme.
//!
//! Layout, from the inside out (see ARCHITECTURE.md for the invariants):
//! - [`domain`]: pure types parsed at the edge: identifiers, provinces, offices, services and
//!   fees, the applicant's form and eligibility, the Jalali calendar and slot generation.
//! - [`engine`]: synchronous, deterministic logic with no I/O: the allocator.
//! - [`scenario`]: scenario files and the deterministic synthetic network and civil registry.
//! - [`reserve`]: the running booking engine: group-commit writer, availability view, hold sweeper.
//! - [`store`]: sqlx storage on SQLite (default) or PostgreSQL, with migrations.
//! - [`http`]: the axum server (the applicant API, probes, metrics, OpenAPI).
//! - [`directory`]: the in-memory office directory; [`payments`]: the payment gateway port and its
//!   sandbox; [`notify`]: the outbox sender port (the built-in one logs).
//! - [`app`]: the server application value: build, then run until stopped.
//! - [`loadtest`]: surge-day load tests: open-loop synthetic applicants, crash runs, audit.
//! - [`report`]: simulation and plan reports: JSON summary, CSV series, self-contained HTML.
//! - [`cli`]: the `nobat` command line; `main.rs` only calls it.

pub mod app;
pub mod cli;
pub mod directory;
pub mod domain;
pub mod engine;
pub mod http;
pub mod loadtest;
pub mod notify;
pub mod payments;
pub mod report;
pub mod reserve;
pub mod scenario;
pub mod seed;
pub mod store;

/// The process's allocator, for every binary linking nobat (the server, the tests, the
/// benches). The booking writer makes about a hundred small allocations per booking (rows,
/// keys, answers); glibc's malloc and free were about a fifth of the SQLite writer thread's
/// instructions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
