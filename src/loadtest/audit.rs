//! The audit after a run: the database, read directly, against what the server told the
//! generator. Each check names itself and says what broke; `passed` is the conjunction.
//!
//! Checks:
//! - `slot_capacity`: no slot has `taken` above its capacity (or below zero);
//! - `slot_seats_match`: each slot's `taken` equals its live holds plus its seat-holding
//!   appointments plus its pending seat releases (so no seat leaked or was counted twice);
//! - `one_active_per_citizen_service`: no national code has two active appointments for one
//!   service;
//! - `acknowledged_bookings_present`: every confirmation answered 2xx exists with the same
//!   tracking code, national code, slot (or the one a 2xx reschedule moved it to) and a status
//!   that fits (cancelled only if the generator cancelled it);
//! - `hold_expiry`: no hold outlived its expiry by more than the allowance (the sweep interval
//!   plus grace, plus any time the server was down);
//! - `release_expiry`: no seat release (the anti-trading delay) is still pending more than
//!   that allowance after its time;
//! - `counts_match`: holds, bookings and cancellations in the database lie between what the
//!   server acknowledged and that plus the requests that got no definite answer;
//! - `bookings_carried_a_valid_pass` (a run with a waiting room): see
//!   [`super::room_audit::bookings_carried_a_valid_pass`].
//! - `room_admitted_in_published_order` (a run with a waiting room): see
//!   [`super::room_audit::admitted_in_published_order`].

use std::collections::HashMap;

use serde::Serialize;

use super::journal::{AckedAppointment, Journal, Knowledge, Outcomes};
use crate::store::{on_pool, Store, StoreError};

/// Violations listed per check (the count is always exact).
const VIOLATIONS_SHOWN_MAX: usize = 20;
/// Appointment statuses that keep a seat.
const SEAT_FREEING: &str = "('cancelled', 'rescheduled')";

#[derive(Debug, Clone)]
pub struct AuditParams {
    /// Rows created before this (Unix seconds) belong to earlier runs and are not counted.
    pub since_unix: i64,
    /// The audit's "now" (Unix seconds).
    pub now_unix: i64,
    /// How long past its expiry a hold may stay live or be expired.
    pub hold_allowance_secs: i64,
    /// The run's waiting room, if it had one (`bookings_carried_a_valid_pass` is checked).
    pub room_id: Option<String>,
    /// The run's ballot, if it was a ballot day (`ballot_audit`'s checks are added, and the
    /// appointments its close booked are not counted as first-come bookings).
    pub ballot_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct CheckResult {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    pub violations: u64,
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct AuditReport {
    pub passed: bool,
    pub checks: Vec<CheckResult>,
}

impl AuditReport {
    /// One line per failed check, naming it.
    pub fn failures(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| {
                format!(
                    "audit check `{}` failed: {} (e.g. {})",
                    c.name,
                    c.detail,
                    c.examples.join("; ")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn check(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }
}

pub(super) fn check(
    name: &str,
    violations: Vec<String>,
    ok_detail: String,
    bad_detail: String,
) -> CheckResult {
    let n = violations.len() as u64;
    CheckResult {
        name: name.to_string(),
        passed: n == 0,
        detail: if n == 0 { ok_detail } else { bad_detail },
        violations: n,
        examples: violations.into_iter().take(VIOLATIONS_SHOWN_MAX).collect(),
    }
}

type SlotRow = (i64, i64, i64, i64);
type AppointmentRow = (String, String, String, String, i64);

/// Runs the checks in order (each reads the database when it runs: the server's sweeper may
/// still be expiring holds).
pub async fn audit(
    store: &Store,
    journal: &Journal,
    p: &AuditParams,
) -> Result<AuditReport, StoreError> {
    let mut checks = vec![
        slot_capacity(store).await?,
        slot_seats_match(store).await?,
        one_active_per_citizen_service(store).await?,
    ];
    let mut rows = appointments_since(store, p.since_unix).await?;
    if let Some(ballot_id) = &p.ballot_id {
        let placed: std::collections::HashSet<String> = on_pool!(store, pool, q = "SELECT tracking_code FROM ballot_entries WHERE ballot_id = $1 AND tracking_code IS NOT NULL" => {
            sqlx::query_scalar::<_, String>(q).bind(ballot_id).fetch_all(pool).await?
        })
        .into_iter()
        .collect();
        rows.retain(|r| !placed.contains(&r.0));
    }
    checks.push(acknowledged_bookings_present(journal, &rows));
    checks.push(hold_expiry(store, p).await?);
    checks.push(release_expiry(store, p).await?);
    checks.push(counts_match(store, journal, p, &rows).await?);
    if let Some(room_id) = &p.room_id {
        checks.push(super::room_audit::bookings_carried_a_valid_pass(store, room_id).await?);
        checks.push(super::room_audit::admitted_in_published_order(store, room_id).await?);
    }
    Ok(AuditReport {
        passed: checks.iter().all(|c| c.passed),
        checks,
    })
}

async fn slot_capacity(store: &Store) -> Result<CheckResult, StoreError> {
    let over: Vec<(i64, i64, i64)> = on_pool!(store, pool, q = "SELECT id, taken, capacity FROM slots WHERE taken > capacity OR taken < 0 ORDER BY id LIMIT 1000" => {
        sqlx::query_as(q).fetch_all(pool).await?
    });
    Ok(check(
        "slot_capacity",
        over.iter()
            .map(|(id, t, c)| format!("slot {id} has {t} taken of capacity {c}"))
            .collect(),
        "no slot is over capacity".into(),
        format!("{} slot(s) are over capacity or negative", over.len()),
    ))
}

async fn slot_seats_match(store: &Store) -> Result<CheckResult, StoreError> {
    let seats_sql = format!(
        "WITH seats AS (
            SELECT slot_id, COUNT(*) AS n FROM holds WHERE status = 'live' GROUP BY slot_id
            UNION ALL
            SELECT slot_id, COUNT(*) AS n FROM appointments WHERE status NOT IN {SEAT_FREEING} GROUP BY slot_id
            UNION ALL
            SELECT slot_id, COUNT(*) AS n FROM seat_releases WHERE status = 'pending' GROUP BY slot_id
         ), per_slot AS (SELECT slot_id, CAST(SUM(n) AS BIGINT) AS n FROM seats GROUP BY slot_id)
         SELECT s.id, s.taken, s.capacity, COALESCE(p.n, 0) FROM slots s LEFT JOIN per_slot p ON p.slot_id = s.id
         WHERE s.taken <> COALESCE(p.n, 0) ORDER BY s.id LIMIT 1000"
    );
    let mismatched: Vec<SlotRow> = on_pool!(store, pool, q = &seats_sql => {
        sqlx::query_as(q).fetch_all(pool).await?
    });
    Ok(check(
        "slot_seats_match",
        mismatched
            .iter()
            .map(|(id, t, _, n)| {
                format!("slot {id}: taken {t}, but {n} live hold(s), active appointment(s) and pending release(s)")
            })
            .collect(),
        "every slot's taken count equals its live holds plus active appointments plus pending seat releases".into(),
        format!(
            "{} slot(s) count seats that no hold or appointment explains",
            mismatched.len()
        ),
    ))
}

async fn one_active_per_citizen_service(store: &Store) -> Result<CheckResult, StoreError> {
    let doubles: Vec<(String, String, i64)> = on_pool!(store, pool, q = "SELECT national_code, service, COUNT(*) FROM appointments WHERE status IN ('booked', 'checked_in') GROUP BY national_code, service HAVING COUNT(*) > 1 LIMIT 1000" => {
        sqlx::query_as(q).fetch_all(pool).await?
    });
    Ok(check(
        "one_active_per_citizen_service",
        doubles
            .iter()
            .map(|(c, s, n)| format!("{}…: {n} active {s} appointments", &c[..c.len().min(3)]))
            .collect(),
        "no national code has two active appointments for one service".into(),
        format!(
            "{} national code(s) have two or more active appointments for one service",
            doubles.len()
        ),
    ))
}

/// The run's appointments: tracking code, national code, status, office, start.
async fn appointments_since(
    store: &Store,
    since_unix: i64,
) -> Result<Vec<AppointmentRow>, StoreError> {
    Ok(
        on_pool!(store, pool, q = "SELECT tracking_code, national_code, status, office_id, start_at FROM appointments WHERE created_at >= $1" => {
            sqlx::query_as(q).bind(since_unix).fetch_all(pool).await?
        }),
    )
}

fn acknowledged_bookings_present(journal: &Journal, rows: &[AppointmentRow]) -> CheckResult {
    let by_code: HashMap<&str, &AppointmentRow> = rows.iter().map(|r| (r.0.as_str(), r)).collect();
    let mut missing = Vec::new();
    for a in journal.appointments.values() {
        match by_code.get(a.tracking_code.as_str()) {
            Some(row) => differences(a, row, &mut missing),
            None => missing.push(format!(
                "tracking code {} was confirmed (2xx) but is not in the database",
                a.tracking_code
            )),
        }
    }
    let acked = journal.appointments.len();
    check(
        "acknowledged_bookings_present",
        missing.clone(),
        format!("all {acked} bookings answered 2xx are present as answered"),
        format!(
            "{} of {acked} bookings answered 2xx are missing or differ",
            missing.len()
        ),
    )
}

/// How a stored appointment differs from what the server acknowledged: owner, status (given
/// what the generator knows of its cancellation) and slot (given its reschedules).
fn differences(a: &AckedAppointment, row: &AppointmentRow, missing: &mut Vec<String>) {
    let (_, national_code, status, office_id, start_at) = row;
    if national_code != &a.national_code {
        missing.push(format!(
            "{}: belongs to another national code",
            a.tracking_code
        ));
    }
    let cancelled = status == "cancelled";
    let allowed_cancel = matches!(a.cancelled, Knowledge::Yes | Knowledge::Unknown);
    let must_cancel = a.cancelled == Knowledge::Yes;
    if cancelled && !allowed_cancel {
        missing.push(format!(
            "{}: cancelled, but nobody cancelled it",
            a.tracking_code
        ));
    } else if must_cancel && !cancelled {
        missing.push(format!(
            "{}: cancel was answered 2xx but status is {status}",
            a.tracking_code
        ));
    } else if !cancelled
        && ![
            "booked",
            "checked_in",
            "enrolled",
            "no_show",
            "card_ready",
            "delivered",
        ]
        .contains(&status.as_str())
    {
        missing.push(format!("{}: unexpected status {status}", a.tracking_code));
    }
    let here = (office_id.clone(), *start_at);
    let expected = a
        .rescheduled_to
        .clone()
        .unwrap_or((a.office_id.clone(), a.start_unix));
    let original = (a.office_id.clone(), a.start_unix);
    let slot_ok = here == expected || (a.reschedule_unknown && here == original);
    if !slot_ok && !(a.reschedule_unknown) {
        missing.push(format!(
            "{}: at {} {} but the server said {} {}",
            a.tracking_code, here.0, here.1, expected.0, expected.1
        ));
    }
}

async fn hold_expiry(store: &Store, p: &AuditParams) -> Result<CheckResult, StoreError> {
    let limit = p.now_unix - p.hold_allowance_secs;
    let stuck: Vec<(String, i64)> = on_pool!(store, pool, q = "SELECT id, expires_at FROM holds WHERE status = 'live' AND expires_at < $1 ORDER BY expires_at LIMIT 1000" => {
        sqlx::query_as(q).bind(limit).fetch_all(pool).await?
    });
    let late: Vec<(String, i64, i64)> = on_pool!(store, pool, q = "SELECT h.id, h.expires_at, e.at FROM holds h JOIN events e ON e.subject = h.id AND e.kind = 'hold_expired' WHERE h.status = 'expired' AND h.created_at >= $1 AND e.at > h.expires_at + $2 ORDER BY h.id LIMIT 1000" => {
        sqlx::query_as(q).bind(p.since_unix).bind(p.hold_allowance_secs).fetch_all(pool).await?
    });
    let mut v: Vec<String> = stuck
        .iter()
        .map(|(id, exp)| {
            format!(
                "hold {id} is still live {} s after its expiry",
                p.now_unix - exp
            )
        })
        .collect();
    v.extend(
        late.iter()
            .map(|(id, exp, at)| format!("hold {id} expired {} s after its expiry", at - exp)),
    );
    Ok(check(
        "hold_expiry",
        v,
        format!(
            "no hold outlived its expiry by more than {} s",
            p.hold_allowance_secs
        ),
        format!(
            "holds outlived their expiry by more than {} s",
            p.hold_allowance_secs
        ),
    ))
}

/// The anti-trading release's seats come back on time: no release is still pending long after
/// its time (the sweeper ends them every second).
async fn release_expiry(store: &Store, p: &AuditParams) -> Result<CheckResult, StoreError> {
    let limit = p.now_unix - p.hold_allowance_secs;
    let stuck: Vec<(i64, i64)> = on_pool!(store, pool, q = "SELECT id, release_at FROM seat_releases WHERE status = 'pending' AND release_at < $1 ORDER BY release_at LIMIT 1000" => {
        sqlx::query_as(q).bind(limit).fetch_all(pool).await?
    });
    Ok(check(
        "release_expiry",
        stuck
            .iter()
            .map(|(id, at)| {
                format!(
                    "seat release {id} is still pending {} s after its time",
                    p.now_unix - at
                )
            })
            .collect(),
        format!(
            "no seat release outlived its time by more than {} s",
            p.hold_allowance_secs
        ),
        format!(
            "{} seat release(s) outlived their time by more than {} s",
            stuck.len(),
            p.hold_allowance_secs
        ),
    ))
}

async fn counts_match(
    store: &Store,
    journal: &Journal,
    p: &AuditParams,
    rows: &[AppointmentRow],
) -> Result<CheckResult, StoreError> {
    let db_holds: i64 = on_pool!(store, pool, q = "SELECT COUNT(*) FROM holds WHERE created_at >= $1" => {
        sqlx::query_scalar(q).bind(p.since_unix).fetch_one(pool).await?
    });
    let db_cancelled = rows.iter().filter(|r| r.2 == "cancelled").count() as i64;
    let mut v = Vec::new();
    let mut within = |what: &str, db: i64, o: &Outcomes| {
        let lo = o.acked as i64;
        let hi = (o.acked + o.unknown) as i64;
        if db < lo || db > hi {
            v.push(format!(
                "{what}: database has {db}, the server acknowledged {lo} and {} got no answer",
                o.unknown
            ));
        }
    };
    within("holds", db_holds, &journal.holds);
    within("bookings", rows.len() as i64, &journal.confirms);
    within("cancellations", db_cancelled, &journal.cancels);
    Ok(check(
        "counts_match",
        v,
        format!(
            "database holds {db_holds} holds, {} bookings, {db_cancelled} cancellations: within what the server said",
            rows.len()
        ),
        "database counts differ from what the server acknowledged".into(),
    ))
}
