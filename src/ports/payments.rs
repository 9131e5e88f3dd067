//! The payment gateway port. Booking needs a paid payment; the real gateway (the Shetab
//! network) plugs in behind [`PaymentGateway`]. The built-in one is a sandbox and says so in
//! every payment it records (`gateway = "sandbox"`).
//!
//! One charge per application: a charge is keyed by the application's id (the gateway's order
//! id), and a gateway settles an order at most once; a second charge of a settled order
//! returns the first verdict and moves no money. The database keeps one paid payment per
//! application besides (`payments_one_paid`, migration 0007), so two requests racing with
//! different Idempotency-Keys record one payment between them.

use std::collections::HashMap;
use std::sync::Mutex;

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
    /// Charges `amount_rials` for the order `order_id` (the application's id); returns the
    /// gateway's verdict. An order already paid is not charged again: its verdict is `Paid`.
    fn charge(&self, order_id: &str, amount_rials: i64, sandbox: SandboxOutcome) -> PaymentStatus;
}

/// Most settled orders the sandbox remembers; past it, it forgets them all (it moves no money,
/// and the database's one-paid-payment index still holds).
const SANDBOX_ORDERS_MAX: usize = 100_000;

/// Approves every charge unless asked to decline. Never moves money; remembers which orders it
/// settled, as a real gateway does, so a second charge of one settles nothing.
#[derive(Debug, Default)]
pub struct SandboxGateway {
    /// Order id → how many charges of it were asked for after it was settled.
    settled: Mutex<HashMap<String, u64>>,
}

impl SandboxGateway {
    /// Charges asked for an order after it was settled (each answered `Paid`, none settled).
    pub fn repeated_charges(&self, order_id: &str) -> Option<u64> {
        self.orders().get(order_id).copied()
    }

    fn orders(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.settled.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PaymentGateway for SandboxGateway {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn charge(&self, order_id: &str, _amount_rials: i64, sandbox: SandboxOutcome) -> PaymentStatus {
        let mut orders = self.orders();
        if let Some(repeats) = orders.get_mut(order_id) {
            *repeats += 1;
            return PaymentStatus::Paid;
        }
        match sandbox {
            SandboxOutcome::Approve => {
                if orders.len() >= SANDBOX_ORDERS_MAX {
                    orders.clear();
                }
                orders.insert(order_id.to_string(), 0);
                PaymentStatus::Paid
            }
            SandboxOutcome::Decline => PaymentStatus::Declined,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_is_settled_once() {
        let gateway = SandboxGateway::default();
        assert_eq!(
            gateway.charge("app_1", 10, SandboxOutcome::Decline),
            PaymentStatus::Declined
        );
        assert_eq!(
            gateway.repeated_charges("app_1"),
            None,
            "a decline settles nothing"
        );
        assert_eq!(
            gateway.charge("app_1", 10, SandboxOutcome::Approve),
            PaymentStatus::Paid
        );
        assert_eq!(
            gateway.charge("app_1", 10, SandboxOutcome::Decline),
            PaymentStatus::Paid,
            "a settled order stays paid"
        );
        assert_eq!(gateway.repeated_charges("app_1"), Some(1));
        assert_eq!(
            gateway.charge("app_2", 10, SandboxOutcome::Approve),
            PaymentStatus::Paid
        );
        assert_eq!(gateway.repeated_charges("app_2"), Some(0));
    }
}
