//! The ports to systems outside nobat, each a trait with a built-in implementation: the payment
//! gateway (a sandbox) and the notifier of the outbox relay (the log).

pub mod notify;
pub mod payments;
