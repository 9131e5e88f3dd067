//! Integration tests against the real app and real databases (SQLite and PostgreSQL).
//! One test binary, so the crate links once.

mod helpers;
mod probes;
mod store;
