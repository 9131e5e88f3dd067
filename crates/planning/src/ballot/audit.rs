//! A ballot anyone can audit: the record a ballot publishes after its close (the anonymised
//! inputs, the revealed seed, the assignment) and the check that re-runs the close from it.
//!
//! `verify` trusts nothing in the record but the inputs: it checks the seed against the
//! commitment published at creation, checks the published assignment on its own terms (each
//! entry once, no slot over its seats, only offices within the entry's limits), re-runs the
//! exact allocation, and requires the published assignment to be the recomputed one, entry
//! by entry. The allocator is exact (most placed, then by class, then least cost), so an
//! identical assignment is an optimal one.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::close::{close, BallotInput, Placement, Unplaced};
use super::BallotSeed;

/// The record's format version.
pub const RECORD_FORMAT: u32 = 1;

/// What a closed ballot publishes for audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BallotRecord {
    pub format: u32,
    pub ballot_id: String,
    /// SHA-256 of the seed, published when the ballot was created.
    pub commitment: String,
    /// The seed, revealed at publication (64 hex digits).
    pub seed: String,
    pub input: BallotInput,
    pub placements: Vec<Placement>,
    pub unplaced: Vec<Unplaced>,
}

/// What an audit found wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Finding {
    #[error("record format {0} is not {RECORD_FORMAT}")]
    Format(u32),
    #[error("the revealed seed is not 64 hexadecimal digits")]
    SeedMalformed,
    #[error("the revealed seed does not match the commitment published at creation")]
    SeedNotCommitted,
    #[error("entry {key} appears {times} times in the published outcome")]
    EntryRepeated { key: String, times: usize },
    #[error("entry {0} is neither placed nor unplaced in the published outcome")]
    EntryMissing(String),
    #[error("the published outcome names {0}, which is not an entry")]
    UnknownEntry(String),
    #[error("{office_id} {date} {start}: {placed} placed in {seats} seats")]
    OverCapacity {
        office_id: String,
        date: chrono::NaiveDate,
        start: chrono::NaiveTime,
        placed: u32,
        seats: u32,
    },
    #[error("the close cannot be re-run from the record: {0}")]
    Rerun(String),
    #[error("entry {key}: published {published}, recomputed {recomputed}")]
    Differs {
        key: String,
        published: String,
        recomputed: String,
    },
    #[error("and {0} more differences")]
    MoreDifferences(usize),
}

/// A record that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub entries: usize,
    pub placed: usize,
    pub total_cost_m: i64,
}

/// Differences listed one by one before they are only counted.
const DIFFERENCES_LISTED: usize = 20;

fn describe(p: Option<&Placement>, u: Option<&Unplaced>) -> String {
    match (p, u) {
        (Some(p), _) => format!("{} {} {} ({} m)", p.office_id, p.date, p.start, p.cost_m),
        (None, Some(u)) => format!(
            "unplaced, {}, waitlist rank {}",
            u.reason.as_str(),
            u.waitlist_rank
        ),
        (None, None) => "nothing".into(),
    }
}

/// Checks the published outcome on its own: every entry exactly once, no slot over its seats.
fn check_published(record: &BallotRecord) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut seen: HashMap<&str, usize> = record
        .input
        .entries
        .iter()
        .map(|e| (e.key.as_str(), 0))
        .collect();
    let keys = record
        .placements
        .iter()
        .map(|p| &p.key)
        .chain(record.unplaced.iter().map(|u| &u.key));
    for key in keys {
        match seen.get_mut(key.as_str()) {
            Some(n) => *n += 1,
            None => findings.push(Finding::UnknownEntry(key.clone())),
        }
    }
    let mut counted: Vec<(&str, usize)> = seen.into_iter().filter(|(_, n)| *n != 1).collect();
    counted.sort_unstable();
    for (key, times) in counted {
        findings.push(if times == 0 {
            Finding::EntryMissing(key.to_string())
        } else {
            Finding::EntryRepeated {
                key: key.to_string(),
                times,
            }
        });
    }
    let mut seats: BTreeMap<(&str, chrono::NaiveDate, chrono::NaiveTime), (u32, u32)> =
        BTreeMap::new();
    for s in &record.input.seats {
        seats
            .entry((s.office_id.as_str(), s.date, s.start))
            .or_default()
            .1 += s.seats;
    }
    for p in &record.placements {
        seats
            .entry((p.office_id.as_str(), p.date, p.start))
            .or_default()
            .0 += 1;
    }
    for ((office_id, date, start), (placed, seats)) in seats {
        if placed > seats {
            findings.push(Finding::OverCapacity {
                office_id: office_id.to_string(),
                date,
                start,
                placed,
                seats,
            });
        }
    }
    findings
}

/// Audits a ballot's record (see the module's comment). `Err` lists what is wrong.
pub fn verify(record: &BallotRecord) -> Result<Verified, Vec<Finding>> {
    if record.format != RECORD_FORMAT {
        return Err(vec![Finding::Format(record.format)]);
    }
    let seed = BallotSeed::from_hex(&record.seed).map_err(|_| vec![Finding::SeedMalformed])?;
    let mut findings = Vec::new();
    if !seed.matches(&record.commitment) {
        findings.push(Finding::SeedNotCommitted);
    }
    findings.extend(check_published(record));
    let recomputed = match close(&record.input, &seed) {
        Ok(o) => o,
        Err(e) => {
            findings.push(Finding::Rerun(e.to_string()));
            return Err(findings);
        }
    };
    let published: HashMap<&str, (Option<&Placement>, Option<&Unplaced>)> = record
        .placements
        .iter()
        .map(|p| (p.key.as_str(), (Some(p), None)))
        .chain(
            record
                .unplaced
                .iter()
                .map(|u| (u.key.as_str(), (None, Some(u)))),
        )
        .collect();
    let again: HashMap<&str, (Option<&Placement>, Option<&Unplaced>)> = recomputed
        .placements
        .iter()
        .map(|p| (p.key.as_str(), (Some(p), None)))
        .chain(
            recomputed
                .unplaced
                .iter()
                .map(|u| (u.key.as_str(), (None, Some(u)))),
        )
        .collect();
    let mut differences = 0;
    let mut keys: Vec<&str> = record
        .input
        .entries
        .iter()
        .map(|e| e.key.as_str())
        .collect();
    keys.sort_unstable();
    for key in keys {
        let (p1, u1) = published.get(key).copied().unwrap_or((None, None));
        let (p2, u2) = again.get(key).copied().unwrap_or((None, None));
        let same_seat = match (p1, p2) {
            (Some(a), Some(b)) => {
                (&a.office_id, a.date, a.start, a.cost_m)
                    == (&b.office_id, b.date, b.start, b.cost_m)
            }
            (None, None) => u1 == u2,
            _ => false,
        };
        if !same_seat {
            differences += 1;
            if differences <= DIFFERENCES_LISTED {
                findings.push(Finding::Differs {
                    key: key.to_string(),
                    published: describe(p1, u1),
                    recomputed: describe(p2, u2),
                });
            }
        }
    }
    if differences > DIFFERENCES_LISTED {
        findings.push(Finding::MoreDifferences(differences - DIFFERENCES_LISTED));
    }
    if findings.is_empty() {
        Ok(Verified {
            entries: record.input.entries.len(),
            placed: recomputed.placements.len(),
            total_cost_m: recomputed.total_cost_m,
        })
    } else {
        Err(findings)
    }
}
