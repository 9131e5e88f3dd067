//! Failed logins are limited per national code and per client address, across every process
//! on the database: a birth-certificate serial has little entropy, so unlimited guesses would
//! find it.
//!
//! A key (a national code, a client address) may fail `max` times in a window (5 per code and
//! 100 per address in 15 minutes by default); then every login on it, right or wrong, is
//! answered 429 `login_locked` with `Retry-After` until the window ends, and the lockout is
//! one `login_locked` event. Unknown codes count like known ones, and their answers are the
//! same (`invalid_credentials`, then `login_locked`), so neither the answer nor the lockout
//! tells which codes exist.
//!
//! The counts live in the database (`store::security`); a login reads them once (a primary-key
//! lookup of two rows) and writes only when it fails, or when it succeeds after failures (the
//! citizen's count is cleared; the address's is not, or one valid account would reset it).
//! Logins in flight in this process count as failures until they are decided, so a burst of
//! concurrent guesses cannot all pass the check before the first failure is recorded. A login
//! decided as a failure leaves its in-flight count and raises the process's own copy of the
//! key's count in one step, under the same lock the check takes: a check whose database read
//! predates that failure still counts it, once. So in one process at most `max` guesses per
//! window are checked, across processes at most `max` plus the guesses in flight on the others
//! at the moment of the last check.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use sha2::{Digest, Sha256};

use super::problem::ProblemCode;
use super::Problem;
use crate::domain::NationalCode;
use crate::store::{FailureCount, LoginFailure, Store};

/// How many failures lock a key, and for how long a window runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    pub per_code_max: u32,
    pub per_address_max: u32,
    pub window: Duration,
}

/// The keys a login counts against.
pub struct LoginKeys {
    code: String,
    address: Option<String>,
    masked: String,
    code_subject: String,
    address_text: Option<String>,
}

impl LoginKeys {
    pub fn new(code: &NationalCode, address: Option<IpAddr>) -> Self {
        let digest = Sha256::digest(code.as_string().as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Self {
            code: format!("code:{hex}"),
            // Counted per /64 for IPv6 (`live::limit_key`); the event names the address.
            address: address.map(|a| format!("addr:{}", super::live::limit_key(a))),
            masked: code.masked(),
            code_subject: format!("login:{code}"),
            address_text: address.map(|a| a.to_string()),
        }
    }

    fn all(&self) -> Vec<String> {
        std::iter::once(self.code.clone())
            .chain(self.address.clone())
            .collect()
    }
}

/// Keys this process tracks at most; past it, entries with nothing in flight are forgotten
/// (the database still has their counts: only the in-process copy goes).
const TRACKED_KEYS_MAX: usize = 100_000;

/// What this process knows of one key beyond the database.
#[derive(Debug, Default, Clone, Copy)]
struct KeyState {
    /// Logins on the key running now.
    pending: u32,
    /// The key's count as this process last recorded it (absent: none recorded here).
    recorded: Option<FailureCount>,
}

type KeyStates = Arc<Mutex<HashMap<String, KeyState>>>;

/// This process's logins in flight and its last recorded counts, per key.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    keys: KeyStates,
}

/// A login admitted: holds its keys' in-flight counts until decided or dropped.
pub struct Admitted {
    keys: Vec<String>,
    states: KeyStates,
    /// The citizen's failures before this login (to clear after a success).
    code_failures: i64,
}

impl Admitted {
    /// Leaves the in-flight counts, raising the recorded copies to `counts` (in the order of
    /// `keys`) in the same step: see the module's comment.
    fn release(mut self, counts: &[(String, FailureCount)]) {
        let mut map = self.states.lock().unwrap_or_else(|p| p.into_inner());
        for (key, count) in counts {
            let state = map.entry(key.clone()).or_default();
            let newer = state.recorded.is_none_or(|r| {
                (r.window_start, r.failures) < (count.window_start, count.failures)
            });
            if newer {
                state.recorded = Some(*count);
            }
        }
        leave(&mut map, &std::mem::take(&mut self.keys));
    }
}

fn leave(map: &mut HashMap<String, KeyState>, keys: &[String]) {
    for k in keys {
        if let Some(state) = map.get_mut(k) {
            state.pending = state.pending.saturating_sub(1);
            if state.pending == 0 && state.recorded.is_none() {
                map.remove(k);
            }
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut map = self.states.lock().unwrap_or_else(|p| p.into_inner());
        leave(&mut map, &self.keys);
    }
}

fn locked(retry_after_secs: i64) -> Problem {
    let mut p = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        ProblemCode::LoginLocked,
        "too many failed logins; try again later",
    );
    p.retry_after_secs = Some(retry_after_secs.max(1) as u64);
    p
}

impl LoginThrottle {
    /// Admits a login, or refuses it with 429 `login_locked` when its code or address is
    /// locked (failures recorded plus logins in flight here reach the limit).
    pub async fn admit(
        &self,
        store: &Store,
        limits: &LoginLimits,
        keys: &LoginKeys,
        now_unix: i64,
    ) -> Result<Admitted, Problem> {
        let window = limits.window.as_secs() as i64;
        let recorded = store.login_failures(&keys.all(), now_unix, window).await?;
        let mut map = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= TRACKED_KEYS_MAX {
            let expired_at = now_unix - window;
            map.retain(|_, s| {
                s.pending > 0 || s.recorded.is_some_and(|r| r.window_start > expired_at)
            });
            if map.len() >= TRACKED_KEYS_MAX {
                map.retain(|_, s| s.pending > 0);
            }
        }
        // The newer of the database's count and this process's own (in a live window).
        let failures_of = |key: &str| {
            let stored = recorded.iter().find(|(k, _)| k == key).map(|(_, c)| *c);
            let own = map
                .get(key)
                .and_then(|s| s.recorded)
                .filter(|c| c.window_start > now_unix - window);
            match (stored, own) {
                (Some(a), Some(b)) => Some(
                    if (b.window_start, b.failures) > (a.window_start, a.failures) {
                        b
                    } else {
                        a
                    },
                ),
                (a, b) => a.or(b),
            }
        };
        let checks = std::iter::once((&keys.code, limits.per_code_max))
            .chain(keys.address.as_ref().map(|a| (a, limits.per_address_max)));
        for (key, max) in checks {
            let count = failures_of(key);
            let pending = i64::from(map.get(key).map_or(0, |s| s.pending));
            let failures = count.map_or(0, |c| c.failures);
            if failures >= i64::from(max) {
                let ends = count.map_or(now_unix + 1, |c| c.window_start + window);
                return Err(locked(ends - now_unix));
            }
            if failures + pending >= i64::from(max) {
                // Decided within a second or so: the guesses already in flight.
                return Err(locked(1));
            }
        }
        let code_failures = failures_of(&keys.code).map_or(0, |c| c.failures);
        let keys_held = keys.all();
        for k in &keys_held {
            map.entry(k.clone()).or_default().pending += 1;
        }
        Ok(Admitted {
            keys: keys_held,
            states: self.keys.clone(),
            code_failures,
        })
    }

    /// A successful login: the citizen's failures, if any, are forgotten.
    pub async fn succeeded(
        &self,
        store: &Store,
        keys: &LoginKeys,
        admitted: Admitted,
    ) -> Result<(), Problem> {
        if admitted.code_failures > 0 {
            store.clear_login_failures(&keys.code).await?;
            let mut map = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(state) = map.get_mut(&keys.code) {
                state.recorded = None;
            }
        }
        Ok(())
    }

    /// A failed login: counted against the code and the address (each reaching its limit is
    /// a `login_locked` event and a warning in the log, the code masked).
    pub async fn failed(
        &self,
        store: &Store,
        limits: &LoginLimits,
        keys: &LoginKeys,
        now_unix: i64,
        admitted: Admitted,
    ) -> Result<(), Problem> {
        let window = limits.window.as_secs() as i64;
        let mut failures = vec![LoginFailure {
            key: keys.code.clone(),
            lock_at: i64::from(limits.per_code_max),
            subject: keys.code_subject.clone(),
            payload: serde_json::json!({ "scope": "national_code", "national_code": keys.masked, "window_secs": window }),
        }];
        if let (Some(key), Some(address)) = (&keys.address, &keys.address_text) {
            failures.push(LoginFailure {
                key: key.clone(),
                lock_at: i64::from(limits.per_address_max),
                subject: format!("login-address:{address}"),
                payload: serde_json::json!({ "scope": "address", "address": address, "window_secs": window }),
            });
        }
        let counts = store
            .record_login_failure(&failures, now_unix, window)
            .await?;
        let keyed: Vec<(String, FailureCount)> = failures
            .iter()
            .map(|f| f.key.clone())
            .zip(counts.iter().copied())
            .collect();
        admitted.release(&keyed);
        for (f, count) in failures.iter().zip(&counts) {
            if count.failures == f.lock_at {
                tracing::warn!(
                    scope = %f.payload["scope"].as_str().unwrap_or(""),
                    national_code = %keys.masked,
                    address = keys.address_text.as_deref().unwrap_or("-"),
                    until = count.window_start + window,
                    "login locked after repeated failures"
                );
            }
        }
        Ok(())
    }
}
