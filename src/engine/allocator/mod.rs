//! The allocator: applicants to office-days by min-cost flow.
