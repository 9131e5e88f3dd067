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
//! concurrent guesses cannot all pass the check before the first failure is recorded: in one
//! process at most `max` guesses per window, across processes at most `max` plus the
//! guesses in flight on the others at the moment of the last check.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use sha2::{Digest, Sha256};

use super::problem::ProblemCode;
use super::Problem;
use crate::domain::NationalCode;
use crate::store::{LoginFailure, Store};

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
            address: address.map(|a| format!("addr:{a}")),
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

/// This process's logins in flight, per key (an entry lives while a login on it is running).
#[derive(Debug, Default)]
pub struct LoginThrottle {
    in_flight: Arc<Mutex<HashMap<String, u32>>>,
}

/// A login admitted: holds its keys' in-flight counts until dropped.
pub struct Admitted {
    keys: Vec<String>,
    in_flight: Arc<Mutex<HashMap<String, u32>>>,
    /// The citizen's failures before this login (to clear after a success).
    code_failures: i64,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        for k in &self.keys {
            if let Some(n) = map.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    map.remove(k);
                }
            }
        }
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
        let failures_of = |key: &str| recorded.iter().find(|(k, _)| k == key).map(|(_, c)| *c);
        let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let checks = std::iter::once((&keys.code, limits.per_code_max))
            .chain(keys.address.as_ref().map(|a| (a, limits.per_address_max)));
        for (key, max) in checks {
            let count = failures_of(key);
            let pending = i64::from(map.get(key).copied().unwrap_or(0));
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
        let keys_held = keys.all();
        for k in &keys_held {
            *map.entry(k.clone()).or_insert(0) += 1;
        }
        Ok(Admitted {
            keys: keys_held,
            in_flight: self.in_flight.clone(),
            code_failures: failures_of(&keys.code).map_or(0, |c| c.failures),
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
        drop(admitted);
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
