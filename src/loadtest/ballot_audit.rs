//! A ballot day after its close, from the database: the audit's checks of the close against
//! what the server acknowledged during the window, and the run's ballot figures.
//!
//! Checks (added to the run's audit when the scenario has a `[ballot]`):
//! - `ballot_published`: the close ran and published;
//! - `acknowledged_entries_in_input`: every entry whose last definite answer was a 2xx is in
//!   the allocation's input (the exported record, under the key the server answered with),
//!   and none that was withdrawn (204) or refused (4xx) and never acknowledged is;
//! - `ballot_office_days_within_capacity`: per office-day, the placements are within the
//!   seats the close read, and no slot of the ballot holds more active appointments than
//!   its capacity;
//! - `placed_entries_one_appointment`: each placed entry has exactly one appointment (its
//!   tracking code, its citizen, booked) and its citizen no other active one for the service;
//! - `bots_within_their_share`: bot identities hold at most one entry each, and their share of
//!   the placements is no more than their share of the entries (allowing three standard
//!   deviations of the draw: placements are a lottery among equals);
//! - `ballot_verify`: the exported record passes `nobat ballot verify`'s check (the same
//!   function: the seed matches its commitment, the re-run assignment is identical and
//!   optimal).

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::audit::{check, CheckResult};
use super::journal::{Journal, Knowledge};
use crate::planning::ballot::{verify, BallotRecord};
use crate::reserve::ballot::export_record;
use crate::store::{on_pool, Store, StoreError};

/// The ballot's figures after the close.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct BallotFigures {
    pub ballot_id: String,
    pub status: String,
    pub entries: u64,
    pub placed: u64,
    pub bot_entries: u64,
    pub bot_placed: u64,
    pub seats: u64,
    /// Seconds from `closes_at` to `published_at`.
    pub close_secs: Option<i64>,
}

/// The run's ballot checks and figures.
pub async fn ballot_checks(
    store: &Store,
    journal: &Journal,
    ballot_id: &str,
) -> Result<(Vec<CheckResult>, BallotFigures), StoreError> {
    let ballot = store
        .ballot(ballot_id)
        .await?
        .ok_or_else(|| StoreError::corrupt(format!("ballot {ballot_id} is gone")))?;
    let mut figures = BallotFigures {
        ballot_id: ballot_id.to_string(),
        status: ballot.status.clone(),
        close_secs: ballot.published_at.map(|p| p - ballot.closes_at),
        ..BallotFigures::default()
    };
    let record = export_record(store, ballot_id).await?;
    let published = check(
        "ballot_published",
        match &record {
            Some(_) => Vec::new(),
            None => vec![format!("the ballot is {}", ballot.status)],
        },
        "the close ran and published".into(),
        "the ballot was not published".into(),
    );
    let Some(record) = record else {
        return Ok((vec![published], figures));
    };
    let entries = store.ballot_entries(ballot_id).await?;
    let bots: HashSet<&str> = journal
        .entries
        .iter()
        .filter(|(_, e)| e.bot)
        .map(|(c, _)| c.as_str())
        .collect();
    figures.entries = record.input.entries.len() as u64;
    figures.placed = record.placements.len() as u64;
    figures.seats = record.input.seats.iter().map(|s| u64::from(s.seats)).sum();
    let placed_keys: HashSet<&str> = record.placements.iter().map(|p| p.key.as_str()).collect();
    for e in entries
        .iter()
        .filter(|e| bots.contains(e.national_code.as_str()))
    {
        figures.bot_entries += 1;
        figures.bot_placed += u64::from(placed_keys.contains(e.entry_key.as_str()));
    }
    let checks = vec![
        published,
        entries_in_input(journal, &record, &entries),
        office_days_within_capacity(store, &record, ballot_id).await?,
        placed_one_appointment(store, &entries, &ballot.service).await?,
        bots_within_share(&figures, bots.len() as u64),
        verified(&record),
    ];
    Ok((checks, figures))
}

fn entries_in_input(
    journal: &Journal,
    record: &BallotRecord,
    stored: &[crate::store::EntryRow],
) -> CheckResult {
    let input: HashSet<&str> = record
        .input
        .entries
        .iter()
        .map(|e| e.key.as_str())
        .collect();
    let stored_key: HashMap<&str, &str> = stored
        .iter()
        .map(|e| (e.national_code.as_str(), e.entry_key.as_str()))
        .collect();
    let mut v = Vec::new();
    let mut acknowledged = 0;
    for (code, e) in &journal.entries {
        match e.entered {
            Knowledge::Yes => {
                acknowledged += 1;
                let key = e
                    .entry_key
                    .as_deref()
                    .or(stored_key.get(code.as_str()).copied());
                if !key.is_some_and(|k| input.contains(k)) {
                    v.push(format!("{code}: acknowledged, not in the close's input"));
                }
            }
            Knowledge::No => {
                if stored_key.contains_key(code.as_str()) {
                    v.push(format!("{code}: withdrawn or refused, yet stored"));
                }
            }
            Knowledge::Unknown => {}
        }
    }
    check(
        "acknowledged_entries_in_input",
        v,
        format!(
            "all {acknowledged} acknowledged entries are in the close's input ({} entries), no withdrawn or refused one",
            input.len()
        ),
        "the close's input differs from what the server acknowledged".into(),
    )
}

async fn office_days_within_capacity(
    store: &Store,
    record: &BallotRecord,
    ballot_id: &str,
) -> Result<CheckResult, StoreError> {
    let mut seats: HashMap<(&str, chrono::NaiveDate), i64> = HashMap::new();
    for s in &record.input.seats {
        *seats.entry((s.office_id.as_str(), s.date)).or_default() += i64::from(s.seats);
    }
    let mut placed: HashMap<(&str, chrono::NaiveDate), i64> = HashMap::new();
    for p in &record.placements {
        *placed.entry((p.office_id.as_str(), p.date)).or_default() += 1;
    }
    let mut v: Vec<String> = placed
        .iter()
        .filter(|(k, n)| **n > seats.get(*k).copied().unwrap_or(0))
        .map(|((o, d), n)| {
            format!(
                "{o} {d}: {n} placed, {} seats",
                seats.get(&(*o, *d)).copied().unwrap_or(0)
            )
        })
        .collect();
    const SQL: &str = "SELECT s.id, s.capacity, COUNT(a.tracking_code) FROM ballot_seats b JOIN slots s ON s.id = b.slot_id \
         JOIN appointments a ON a.slot_id = s.id AND (a.status = 'booked' OR a.status = 'checked_in') \
         WHERE b.ballot_id = $1 GROUP BY s.id, s.capacity HAVING COUNT(a.tracking_code) > s.capacity";
    let over: Vec<(i64, i64, i64)> = on_pool!(store, pool, q = SQL => {
        sqlx::query_as(q).bind(ballot_id).fetch_all(pool).await?
    });
    v.extend(
        over.iter()
            .map(|(id, cap, n)| format!("slot {id}: {n} appointments, capacity {cap}")),
    );
    Ok(check(
        "ballot_office_days_within_capacity",
        v,
        format!(
            "{} office-days placed within their seats; no ballot slot over capacity",
            placed.len()
        ),
        "an office-day or a slot of the ballot is over capacity".into(),
    ))
}

async fn placed_one_appointment(
    store: &Store,
    entries: &[crate::store::EntryRow],
    service: &str,
) -> Result<CheckResult, StoreError> {
    use crate::store::EntryOutcome;
    const SQL: &str = "SELECT a.national_code, a.tracking_code FROM appointments a JOIN ballot_entries e ON e.national_code = a.national_code \
         WHERE e.tracking_code IS NOT NULL AND a.service = $1 AND (a.status = 'booked' OR a.status = 'checked_in')";
    let rows: Vec<(String, String)> = on_pool!(store, pool, q = SQL => {
        sqlx::query_as(q).bind(service).fetch_all(pool).await?
    });
    let mut active: HashMap<&str, Vec<&str>> = HashMap::new();
    for (code, tracking) in &rows {
        active
            .entry(code.as_str())
            .or_default()
            .push(tracking.as_str());
    }
    let mut v = Vec::new();
    let mut placed = 0;
    for e in entries {
        if let Some(EntryOutcome::Placed { tracking_code, .. }) = &e.outcome {
            placed += 1;
            let mine = active
                .get(e.national_code.as_str())
                .cloned()
                .unwrap_or_default();
            if mine != [tracking_code.as_str()] {
                v.push(format!(
                    "{}: placed with {tracking_code}, active appointments {mine:?}",
                    e.national_code
                ));
            }
        }
    }
    Ok(check(
        "placed_entries_one_appointment",
        v,
        format!("each of the {placed} placed entries has exactly its one appointment"),
        "a placed entry has no appointment, or more than one".into(),
    ))
}

fn bots_within_share(f: &BallotFigures, bot_identities: u64) -> CheckResult {
    let mut v = Vec::new();
    if f.bot_entries > bot_identities {
        v.push(format!(
            "{} bot entries from {bot_identities} identities",
            f.bot_entries
        ));
    }
    let (n, k) = (f.entries as f64, f.placed as f64);
    if n > 0.0 {
        // Bots' placements if the placed were drawn at random among the entries
        // (hypergeometric mean and deviation), plus three deviations.
        let p = f.bot_entries as f64 / n;
        let sd = (k * p * (1.0 - p) * (n - k) / (n - 1.0).max(1.0)).sqrt();
        let allowed = k * p + 3.0 * sd;
        if f.bot_placed as f64 > allowed + 1e-9 {
            v.push(format!(
                "bots placed {} of {} (share {:.4}), entries share {:.4}, allowed {allowed:.1}",
                f.bot_placed,
                f.placed,
                f.bot_placed as f64 / k.max(1.0),
                p
            ));
        }
    }
    check(
        "bots_within_their_share",
        v,
        format!(
            "bots: {} entries ({} identities), {} placed of {}: within their share",
            f.bot_entries, bot_identities, f.bot_placed, f.placed
        ),
        "bots got more than their share".into(),
    )
}

fn verified(record: &BallotRecord) -> CheckResult {
    let v = match verify(record) {
        Ok(_) => Vec::new(),
        Err(findings) => findings.iter().map(|f| format!("{f:?}")).collect(),
    };
    check(
        "ballot_verify",
        v,
        format!(
            "the exported record verifies: seed matches its commitment, {} placements re-run identical and optimal",
            record.placements.len()
        ),
        "`ballot verify` rejects the published record".into(),
    )
}
