//! The public results of a closed ballot: counts and figures, no personal data.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::close::{BallotInput, CloseOutcome};
use crate::allocator::{jain_index, percentile};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvinceResult {
    pub province: String,
    pub entries: u64,
    pub placed: u64,
    pub placed_share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BallotResults {
    pub entries: u64,
    pub placed: u64,
    pub unplaced_by_reason: BTreeMap<String, u64>,
    pub placed_by_class: BTreeMap<i32, u64>,
    pub distance_km_p50: f64,
    pub distance_km_p95: f64,
    /// Days from the ballot's first seat day.
    pub wait_days_p50: f64,
    pub wait_days_p95: f64,
    /// Jain's index of the provinces' placed shares (1 = the same chance everywhere).
    pub jain_index_placed_share: f64,
    /// Placements whose slot is in the part of the day their entry asked for (or any).
    pub part_of_day_kept: u64,
    /// The objective: Σ cost in whole metres (distance + wait) over placements.
    pub total_cost_m: i64,
    /// Provinces by slug; entries without one count under "unknown".
    pub by_province: Vec<ProvinceResult>,
}

/// The results of `outcome`, the close of `input`.
pub fn results(input: &BallotInput, outcome: &CloseOutcome) -> BallotResults {
    let entry_of: HashMap<&str, (&str, i32)> = input
        .entries
        .iter()
        .map(|e| {
            (
                e.key.as_str(),
                (e.province.as_deref().unwrap_or("unknown"), e.priority),
            )
        })
        .collect();
    let mut provinces: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (province, _) in entry_of.values() {
        provinces.entry(province).or_default().0 += 1;
    }
    let mut placed_by_class = BTreeMap::new();
    let mut distances = Vec::with_capacity(outcome.placements.len());
    let mut waits = Vec::with_capacity(outcome.placements.len());
    for p in &outcome.placements {
        let (province, class) = entry_of
            .get(p.key.as_str())
            .copied()
            .unwrap_or(("unknown", 0));
        provinces.entry(province).or_default().1 += 1;
        *placed_by_class.entry(class).or_default() += 1;
        distances.push(p.distance_km);
        waits.push((p.date - input.terms.from_date).num_days() as f64);
    }
    distances.sort_by(f64::total_cmp);
    waits.sort_by(f64::total_cmp);
    let mut unplaced_by_reason = BTreeMap::new();
    for u in &outcome.unplaced {
        *unplaced_by_reason
            .entry(u.reason.as_str().to_string())
            .or_default() += 1;
    }
    let by_province: Vec<ProvinceResult> = provinces
        .into_iter()
        .map(|(province, (entries, placed))| ProvinceResult {
            province: province.to_string(),
            entries,
            placed,
            placed_share: placed as f64 / entries.max(1) as f64,
        })
        .collect();
    let shares: Vec<f64> = by_province.iter().map(|p| p.placed_share).collect();
    BallotResults {
        entries: input.entries.len() as u64,
        placed: outcome.placements.len() as u64,
        unplaced_by_reason,
        placed_by_class,
        distance_km_p50: percentile(&distances, 0.5),
        distance_km_p95: percentile(&distances, 0.95),
        wait_days_p50: percentile(&waits, 0.5),
        wait_days_p95: percentile(&waits, 0.95),
        jain_index_placed_share: jain_index(&shares),
        part_of_day_kept: outcome
            .placements
            .iter()
            .filter(|p| p.part_of_day_kept)
            .count() as u64,
        total_cost_m: outcome.total_cost_m,
        by_province,
    }
}
