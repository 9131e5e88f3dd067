//! The payment gateway port. Booking needs a paid payment; the real gateway (the Shetab
//! network) plugs in behind [`PaymentGateway`]. The built-in one is a sandbox and says so in
//! every payment it records (`gateway = "sandbox"`).

use crate::booking::PaymentStatus;

/// What the frontend may ask the sandbox to do; a real gateway ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxOutcome {
    #[default]
    Approve,
    Decline,
}

pub trait PaymentGateway: Send + Sync {
    /// A short name stored with each payment.
    fn name(&self) -> &'static str;
    /// Charges `amount_rials` for an application; returns the gateway's verdict.
    fn charge(
        &self,
        application_id: &str,
        amount_rials: i64,
        sandbox: SandboxOutcome,
    ) -> PaymentStatus;
}

/// Approves every charge unless asked to decline. Never moves money.
#[derive(Debug, Default, Clone, Copy)]
pub struct SandboxGateway;

impl PaymentGateway for SandboxGateway {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn charge(
        &self,
        _application_id: &str,
        _amount_rials: i64,
        sandbox: SandboxOutcome,
    ) -> PaymentStatus {
        match sandbox {
            SandboxOutcome::Approve => PaymentStatus::Paid,
            SandboxOutcome::Decline => PaymentStatus::Declined,
        }
    }
}
