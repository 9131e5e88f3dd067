//! Admin changes in force at once, on every node.
//!
//! Offices (the directory), fees and holidays are held in memory and read on every request;
//! an admin handler replaces its node's copy as it commits. Every admin change also moves the
//! configuration version on (`config_version`, in the transaction of its audit row, see
//! [`audit`]), and each process polls that version (one primary-key read every
//! `config_poll_interval`, 2 s by default) and reloads offices, fees, holidays and the
//! availability view when it moved. So a change made on one node is in force on the others
//! within one poll; staff tokens need no poll at all (every request looks its hash up).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;

use super::problem::{ErrorChain, ProblemCode};
use super::{AppState, Problem, BODY_BYTES_MAX};
use crate::domain::calendar::HolidayCalendar;
use crate::domain::jalali::JalaliDate;
use crate::domain::{FeeSchedule, ServiceCode};
use crate::reserve::directory::Directory;
use crate::store::{AuditRecord, StoreError};

/// The fee schedule in force, replaced whole when an administrator sets fees.
pub struct LiveFees {
    current: RwLock<Arc<FeeSchedule>>,
}

impl LiveFees {
    pub fn new(schedule: FeeSchedule) -> Self {
        Self {
            current: RwLock::new(Arc::new(schedule)),
        }
    }

    pub fn current(&self) -> Arc<FeeSchedule> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The fee in rials for a service in a Jalali year, as of now.
    pub fn fee_rials(&self, service: ServiceCode, jalali_year: i32) -> Option<u64> {
        self.current().fee_rials(service, jalali_year)
    }

    pub fn replace(&self, schedule: FeeSchedule) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(schedule);
    }
}

/// The holiday calendar in force: the scenario's (the national table) plus the days
/// administrators announced.
pub struct LiveHolidays {
    base: HolidayCalendar,
    current: RwLock<Arc<HolidayCalendar>>,
}

impl LiveHolidays {
    pub fn new(base: HolidayCalendar) -> Self {
        Self {
            current: RwLock::new(Arc::new(base.clone())),
            base,
        }
    }

    /// The national table, without the administrators' days.
    pub fn base(&self) -> &HolidayCalendar {
        &self.base
    }

    pub fn current(&self) -> Arc<HolidayCalendar> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The national table plus `admin_days` (ISO date, Persian and English name); a day that
    /// is a holiday already stays as it is. Returns the days that could not be added (a year
    /// already at its limit of holidays), which the caller reports.
    pub fn rebuild(&self, admin_days: &[(String, String, String)]) -> Vec<String> {
        let mut calendar = self.base.clone();
        let mut refused = Vec::new();
        for (day, name_fa, name_en) in admin_days {
            let Ok(date) = NaiveDate::parse_from_str(day, "%Y-%m-%d") else {
                refused.push(day.clone());
                continue;
            };
            if calendar.is_holiday(date).is_some() {
                continue;
            }
            if calendar
                .add(JalaliDate::from_gregorian(date), name_fa, name_en)
                .is_err()
            {
                refused.push(day.clone());
            }
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(calendar);
        refused
    }
}

/// Reloads what administrators change from the database into this node's memory: offices,
/// fees, holidays, and the availability view (a closure changed slots' capacity).
pub async fn reload(state: &AppState) -> Result<(), StoreError> {
    let offices = state.store.offices().await?;
    *state.directory.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Directory::new(offices));
    reload_fees(state).await?;
    reload_holidays(state).await?;
    super::room::reload(state).await?;
    state.engine.refresh().await
}

pub async fn reload_fees(state: &AppState) -> Result<(), StoreError> {
    state.fees.replace(state.store.fee_schedule().await?);
    Ok(())
}

pub async fn reload_holidays(state: &AppState) -> Result<(), StoreError> {
    let days = state
        .store
        .admin_holidays("0000-01-01", "9999-12-31")
        .await?;
    for day in state.holidays.rebuild(&days) {
        tracing::warn!(%day, "an announced holiday does not fit its year's holiday table");
    }
    Ok(())
}

/// The configuration version this node has loaded.
#[derive(Debug, Default)]
pub struct ConfigWatch {
    seen: AtomicI64,
}

impl ConfigWatch {
    pub fn new(version: i64) -> Self {
        Self {
            seen: AtomicI64::new(version),
        }
    }

    pub fn seen(&self) -> i64 {
        self.seen.load(Ordering::Acquire)
    }

    /// This node made the change that moved the version to `version`, and has it in memory
    /// already: no reload, unless another node's change came in between (then the version
    /// moved by more than one and the next poll reloads).
    fn made_here(&self, version: i64) {
        let _ =
            self.seen
                .compare_exchange(version - 1, version, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// Polls the configuration version every `every` and reloads when it moved. A failed poll
/// or reload is logged and tried again at the next tick.
pub fn spawn_watcher(state: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            poll_once(&state).await;
        }
    })
}

/// One poll: reloads when the version moved.
pub async fn poll_once(state: &AppState) {
    let version = match state.store.config_version().await {
        Ok(v) => v,
        Err(e) => {
            tracing::debug!(error = %ErrorChain(&e), "polling the configuration version");
            return;
        }
    };
    if version == state.config_watch.seen() {
        return;
    }
    match reload(state).await {
        Ok(()) => {
            state.config_watch.seen.store(version, Ordering::Release);
            tracing::info!(version, "admin changes reloaded");
        }
        Err(e) => {
            tracing::warn!(error = %ErrorChain(&e), "reloading admin changes failed; will retry")
        }
    }
}

/// Who made an admin request, filled in by the `Admin` extractor for [`audit`].
#[derive(Clone, Default)]
pub struct AuditActor(Arc<Mutex<Option<String>>>);

impl AuditActor {
    pub fn set(parts: &Parts, actor: String) {
        if let Some(slot) = parts.extensions.get::<AuditActor>() {
            *slot.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(actor);
        }
    }

    fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Middleware of the admin routes: every request that may change something (not GET or
/// HEAD) by an authenticated administrator is written to the audit log with its method, path,
/// body and status; a successful one also moves the configuration version on (same
/// transaction), so the other nodes reload. The body is read here (within the body limit) to
/// be recorded, then handed on.
pub async fn audit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_BYTES_MAX).await {
        Ok(b) => b,
        Err(_) => {
            return Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ProblemCode::BodyTooLarge,
                format!("the body is larger than {BODY_BYTES_MAX} bytes"),
            )
            .into_response()
        }
    };
    let slot = AuditActor::default();
    parts.extensions.insert(slot.clone());
    let method = parts.method.to_string();
    let path = parts.uri.path().to_string();
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes.clone())))
        .await;
    let Some(actor) = slot.get() else {
        return response;
    };
    let status = response.status();
    let change = AuditRecord {
        id: 0,
        at: state.engine.clock().now().timestamp(),
        actor,
        method,
        path,
        status: i64::from(status.as_u16()),
        request_json: String::from_utf8_lossy(&bytes).into_owned(),
    };
    match state
        .store
        .record_admin_change(&change, status.is_success())
        .await
    {
        Ok(Some(version)) => state.config_watch.made_here(version),
        Ok(None) => {}
        // The change itself committed; the audit row did not. Say so loudly: the operator
        // must know the log has a gap.
        Err(e) => tracing::error!(
            error = %ErrorChain(&e), actor = %change.actor, path = %change.path,
            "an admin change could not be written to the audit log"
        ),
    }
    response
}

/// The client's address: the configured header's (set by the proxy in front) when there is
/// one, else the connection's peer.
pub struct ClientAddress(pub Option<IpAddr>);

/// The key a per-address limit counts against: an IPv4 address as it is, an IPv6 address
/// by its /64 prefix. A subscriber is routinely given a whole /64 and picks addresses in it
/// at will, so counting single IPv6 addresses would let one client rotate through 2^64 of
/// them and never reach a limit. An IPv4-mapped IPv6 address counts as its IPv4 address.
pub fn limit_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(name) = &state.config.client_ip_header {
            // The proxy appends; its own entry (the last) is the one it vouches for.
            let from_header = parts
                .headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse().ok());
            return Ok(ClientAddress(from_header));
        }
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_keys_fold_an_ipv6_prefix_and_keep_ipv4() {
        let key = |s: &str| limit_key(s.parse().unwrap()).to_string();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2:ffff:1:2:3"), "2001:db8:1:2::");
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
    }
}
