//! Synchronous, deterministic engine code with no I/O: time and randomness come in as inputs.

pub mod allocator;
pub mod booking;
pub mod plan;
pub mod sim;
