//! Integration tests against the real app and real databases (SQLite and PostgreSQL).
//! One test binary, so the crate links once.

mod admin;
mod applicant;
mod autopick;
mod bad_input;
mod ballots;
mod crash;
mod helpers;
mod idempotency;
mod journey;
mod limits;
mod listings;
mod live_admin;
mod login;
mod outage;
mod parity;
mod payments;
mod probes;
pub mod races;
mod room;
mod staff;
mod store;
mod waitlist;
mod waves;
mod web;
