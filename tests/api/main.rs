//! Integration tests against the real app and real databases (SQLite and PostgreSQL).
//! One test binary, so the crate links once.

mod applicant;
mod bad_input;
mod helpers;
mod journey;
mod probes;
mod races;
mod store;
