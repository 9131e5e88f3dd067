//! The allocator: applicants to office-days by min-cost flow.

pub mod network_simplex;
