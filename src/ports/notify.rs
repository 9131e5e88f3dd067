//! Notices to applicants: the outbox (rows queued in the same transaction as the change that
//! caused them) and the relay that hands them to a [`Notifier`] and marks them sent.

use std::sync::Arc;
use std::time::Duration;

use crate::store::{OutboxMessage, Store, StoreError};

/// Most outbox rows one relay pass sends.
pub const RELAY_BATCH_MAX: i64 = 200;

/// Sends one notice. Implementations must be safe to call again with the same message (the
/// relay may resend after a crash between sending and marking).
pub trait Notifier: Send + Sync {
    fn send(&self, message: &OutboxMessage) -> Result<(), String>;
}

/// The built-in notifier: writes the notice to the log, national code masked.
pub struct LogNotifier;

pub fn mask_national_code(code: &str) -> String {
    let n = code.chars().count();
    code.chars()
        .enumerate()
        .map(|(i, c)| if i < 3 || i + 2 >= n { c } else { '*' })
        .collect()
}

impl Notifier for LogNotifier {
    fn send(&self, m: &OutboxMessage) -> Result<(), String> {
        tracing::info!(
            id = m.id,
            channel = %m.channel,
            national_code = %mask_national_code(&m.national_code),
            tracking_code = %m.tracking_code,
            body = %m.body,
            "notice sent"
        );
        Ok(())
    }
}

/// Sends up to [`RELAY_BATCH_MAX`] unsent notices, oldest first; returns how many were sent.
/// A failed send stays unsent for the next pass.
pub async fn relay_once(
    store: &Store,
    notifier: &dyn Notifier,
    now_unix: i64,
) -> Result<usize, StoreError> {
    let mut sent = 0;
    for message in store.outbox_unsent(RELAY_BATCH_MAX).await? {
        match notifier.send(&message) {
            Ok(()) => {
                store.mark_outbox_sent(message.id, now_unix).await?;
                sent += 1;
            }
            Err(e) => tracing::warn!(id = message.id, error = %e, "notice not sent; will retry"),
        }
    }
    Ok(sent)
}

/// Runs the relay every `interval` until aborted.
pub fn spawn_relay(
    store: Store,
    notifier: Arc<dyn Notifier>,
    clock: Arc<dyn crate::domain::time::Clock>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = relay_once(&store, notifier.as_ref(), clock.now().timestamp()).await {
                tracing::warn!(error = %e, "outbox relay failed; will retry");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_all_but_the_ends() {
        assert_eq!(mask_national_code("0499370899"), "049*****99");
    }
}
