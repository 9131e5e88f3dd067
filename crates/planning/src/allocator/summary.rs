//! Figures about an allocation: distances, waits, provinces, fairness, office utilisation.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::model::{Allocation, AllocationProblem, Outcome, UnassignedReason};

#[derive(Debug, Clone, PartialEq)]
pub struct ProvinceFigures {
    pub province: String,
    pub applicants: usize,
    pub assigned: usize,
    pub distance_km_mean: f64,
    pub wait_days_mean: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AllocationSummary {
    pub applicants: usize,
    pub assigned: usize,
    pub unassigned: usize,
    pub unassigned_by_reason: BTreeMap<&'static str, usize>,
    /// Σ (distance_km + wait_km_per_day × day), unrounded.
    pub total_cost_km: f64,
    pub total_distance_km: f64,
    pub distance_km_mean: f64,
    pub distance_km_p95: f64,
    pub distance_km_max: f64,
    pub wait_days_mean: f64,
    pub wait_days_p95: f64,
    /// Provinces by name; applicants without one count under "unknown".
    pub by_province: Vec<ProvinceFigures>,
    pub worst_province_wait: Option<(String, f64)>,
    pub best_province_wait: Option<(String, f64)>,
    /// Jain's index of the provinces' mean waits (1 = equal waits everywhere).
    pub jain_index_wait: f64,
    /// Jain's index of the provinces' assigned shares (1 = equal chance everywhere).
    pub jain_index_assigned_share: f64,
    pub seats_total: u64,
    pub seats_used: u64,
    pub offices_with_seats: usize,
    /// Offices whose every seat in the horizon is used.
    pub offices_full: usize,
    pub office_utilisation_min: f64,
    pub office_utilisation_mean: f64,
}

/// Nearest-rank percentile of sorted values (0 for none).
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn mean(sum: f64, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// Jain's fairness index (Σx)² / (n Σx²); 1 for no values or all zeros.
pub fn jain_index(values: &[f64]) -> f64 {
    let sum: f64 = values.iter().sum();
    let sq: f64 = values.iter().map(|x| x * x).sum();
    if values.is_empty() || sq == 0.0 {
        1.0
    } else {
        sum * sum / (values.len() as f64 * sq)
    }
}

/// Seats of all offices, the share used at each office with seats, and how many are full.
fn office_use(problem: &AllocationProblem, used_per_office: &[u64]) -> (u64, Vec<f64>, usize) {
    let mut seats_per_office = vec![0u64; problem.offices.len()];
    for s in &problem.seats {
        seats_per_office[s.office] += s.seats as u64;
    }
    let mut utilisations = Vec::new();
    let mut offices_full = 0;
    for (&seats, &used) in seats_per_office.iter().zip(used_per_office) {
        if seats > 0 {
            utilisations.push(used as f64 / seats as f64);
            offices_full += usize::from(used == seats);
        }
    }
    (seats_per_office.iter().sum(), utilisations, offices_full)
}

/// The figures of an allocation for its report: placed and why not, distances, waits,
/// fairness across provinces and office utilisation.
pub fn summarise(problem: &AllocationProblem, allocation: &Allocation) -> AllocationSummary {
    let mut distances = Vec::new();
    let mut waits = Vec::new();
    let mut total_cost_km = 0.0;
    let mut unassigned_by_reason: BTreeMap<&'static str, usize> = UnassignedReason::ALL
        .iter()
        .map(|r| (r.as_str(), 0))
        .collect();
    // province -> (applicants, assigned, distance sum, wait sum)
    let mut provinces: FxHashMap<&str, (usize, usize, f64, f64)> = FxHashMap::default();
    let mut used_per_office = vec![0u64; problem.offices.len()];
    for (a, outcome) in problem.applicants.iter().zip(&allocation.outcomes) {
        let entry = provinces
            .entry(a.province.as_deref().unwrap_or("unknown"))
            .or_default();
        entry.0 += 1;
        match outcome {
            Outcome::Assigned(s) => {
                distances.push(s.distance_km);
                waits.push(s.day as f64);
                total_cost_km += s.distance_km + problem.wait_km_per_day * s.day as f64;
                entry.1 += 1;
                entry.2 += s.distance_km;
                entry.3 += s.day as f64;
                used_per_office[s.office] += 1;
            }
            Outcome::Unassigned(r) => *unassigned_by_reason.entry(r.as_str()).or_default() += 1,
        }
    }
    let total_distance_km: f64 = distances.iter().sum();
    let total_wait: f64 = waits.iter().sum();
    let assigned = distances.len();
    distances.sort_by(f64::total_cmp);
    waits.sort_by(f64::total_cmp);

    let mut by_province: Vec<ProvinceFigures> = provinces
        .into_iter()
        .map(|(name, (n, k, d, w))| ProvinceFigures {
            province: name.to_string(),
            applicants: n,
            assigned: k,
            distance_km_mean: mean(d, k),
            wait_days_mean: mean(w, k),
        })
        .collect();
    by_province.sort_by(|a, b| a.province.cmp(&b.province));
    let with_assigned: Vec<&ProvinceFigures> =
        by_province.iter().filter(|p| p.assigned > 0).collect();
    let worst = with_assigned
        .iter()
        .max_by(|a, b| a.wait_days_mean.total_cmp(&b.wait_days_mean))
        .map(|p| (p.province.clone(), p.wait_days_mean));
    let best = with_assigned
        .iter()
        .min_by(|a, b| a.wait_days_mean.total_cmp(&b.wait_days_mean))
        .map(|p| (p.province.clone(), p.wait_days_mean));
    let waits_by_province: Vec<f64> = with_assigned.iter().map(|p| p.wait_days_mean).collect();
    let shares: Vec<f64> = by_province
        .iter()
        .map(|p| p.assigned as f64 / p.applicants.max(1) as f64)
        .collect();

    let (seats_total, utilisations, offices_full) = office_use(problem, &used_per_office);
    AllocationSummary {
        applicants: problem.applicants.len(),
        assigned,
        unassigned: problem.applicants.len() - assigned,
        unassigned_by_reason,
        total_cost_km,
        total_distance_km,
        distance_km_mean: mean(total_distance_km, assigned),
        distance_km_p95: percentile(&distances, 0.95),
        distance_km_max: distances.last().copied().unwrap_or(0.0),
        wait_days_mean: mean(total_wait, assigned),
        wait_days_p95: percentile(&waits, 0.95),
        by_province,
        worst_province_wait: worst,
        best_province_wait: best,
        jain_index_wait: jain_index(&waits_by_province),
        jain_index_assigned_share: jain_index(&shares),
        seats_total,
        seats_used: used_per_office.iter().sum(),
        offices_with_seats: utilisations.len(),
        offices_full,
        office_utilisation_min: if utilisations.is_empty() {
            0.0
        } else {
            utilisations.iter().copied().fold(f64::INFINITY, f64::min)
        },
        office_utilisation_mean: mean(utilisations.iter().sum(), utilisations.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_jain() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&v, 0.95), 10.0);
        assert_eq!(percentile(&v, 0.5), 5.0);
        assert_eq!(jain_index(&[2.0, 2.0, 2.0]), 1.0);
        assert!((jain_index(&[1.0, 0.0]) - 0.5).abs() < 1e-12);
    }
}
