//! From applicants to a min-cost flow and back.
//!
//! Network (supply flows left to right):
//!
//! ```text
//! zone z --(distance_m, unbounded)--> office o --(wait_m × day, seats)--> T
//! zone z --(penalty of z's class)--> class c --(cap)--> T
//! ```
//!
//! Zones collapse applicants with identical (lat, lon, service, priority, max_km, earliest
//! day, preferred offices): exact, no approximation. Cost is separable (distance + wait ×
//! day), so office → T carries one arc per day and the arc count is zones × K + offices ×
//! days rather than zones × K × days.
//!
//! **Earliest days.** When applicants name an earliest acceptable day, each office becomes a
//! chain of entry nodes, one per distinct earliest day e₀ = 0 < e₁ < …: entry j carries the
//! office's days in [e_j, e_{j+1}) and flows on to entry j + 1 at no cost, and a zone's arcs
//! go into the entry of its own earliest day, so it reaches exactly the days it can come.
//! Without earliest days there is one entry per office and the network is the one above.
//! Inside an office, seats then go in seat order among those who can come that day.
//!
//! **Preferred offices** restrict a zone's candidates to those offices (still within reach
//! and offering the service); such zones are complete from the start and never priced.
//!
//! **Lexicographic objective.** The sets of applicants that can be seated together form a
//! transversal matroid, so "most applicants of the top class, then of the next class, …" is
//! also "most applicants overall", and a seated set has the lexicographically best class
//! counts iff no single exchange (seat x of a higher class instead of y) is possible (local
//! optimality is global for matroid bases). Unassigned penalties are B × (1 + rank from the
//! bottom), with B above the cost of any simple path through the network
//! ((offices + 1) × longest arc + longest wait). At a min-cost flow no residual cycle is
//! negative; an exchange would decompose into cycles that each move one unassignment between
//! classes, and each such cycle with cost ≥ 0 can only move it to an equal or higher class
//! (penalties differ by ≥ B, travel by < B), so no exchange exists, and among solutions with
//! those class counts the penalties are constant and the travel cost is least.
//! When the penalties would overflow i64 (very many classes), a two-stage method is used
//! instead: stage 1 with zero travel costs and penalties 1, 2, … by class gives the best
//! unassigned counts U*_c; stage 2 solves the real costs with class c's unassigned arc capped
//! at U*_c.
//!
//! **Candidates and pricing.** Each zone starts with its K nearest eligible offices. After a
//! solve, an omitted arc z → o could improve the optimum only if its reduced cost
//! `d(z,o) + π_z − π_o` is negative; since omitted offices are at least as far as the K-th
//! candidate, a zone needs checking only if `max π_o − π_z` exceeds that distance. Violating
//! arcs are added (the simplex restarts warm) until none is left: the result is then optimal
//! for the full problem, by LP duality.
//!
//! **Coarse seeds.** Each pricing round costs a warm re-solve and a scan, and where the
//! nearest offices are full the optimum sends people far past them, which pricing discovers
//! a couple of arcs per zone per round. Large networks therefore first solve a coarse copy
//! of themselves (zones of one grid cell merged at their centroid, seeded the same way when
//! still large) and add, for each zone, the offices that the coarse optimum's potentials rank
//! near its best. Seeds only choose starting arcs; pricing still proves the optimum.
//!
//! **Warm start.** The coarse optimum's flow, spread over the fine zones (`warm.rs`), is also
//! where the fine network simplex starts, instead of the artificial basis from which every
//! zone must be re-hung one pivot at a time (saturated national instance: 2.1-2.8 million
//! pivots in the first fine solve, 0.27-0.32 million from the spread flow). It is a start
//! only: the solve and pricing prove the optimum as before.

use rustc_hash::{FxHashMap, FxHashSet};

use nobat_domain::geo::{haversine_km, EARTH_RADIUS_KM};

use super::cost::{distance_km, metres};
use super::cost_scaling::CostScaling;
use super::model::FlowSolver;
use super::model::{
    Allocation, AllocationError, AllocationProblem, Applicant, Assignment, Certificate, OfficeSite,
    Outcome, SolveStats, SolverOptions, UnassignedReason, MAX_PREFERRED_OFFICES,
};
use super::network_simplex::{FlowError, NetworkSimplex, CAPACITY_UNBOUNDED};
use super::office_paths::OfficePaths;
use super::seating::{lottery_digests, seat_order};
use super::spatial::{dist2, unit_vector, OfficeIndex};

mod warm;
use warm::CoarseFlow;

/// Hard bounds on input sizes (node ids are kept in u32).
const MAX_APPLICANTS: usize = 50_000_000;
const MAX_OFFICES: usize = 1_000_000;
const MAX_DAY: u32 = 100_000;

#[derive(Debug, Clone)]
struct Zone {
    lat: f64,
    lon: f64,
    point: [f64; 3],
    /// Index into the per-service office indexes (0 = any office).
    service: usize,
    priority: i32,
    max_km: f64,
    count: i64,
    /// Index into the entry days: the zone's arcs enter its offices' day chains there.
    entry: usize,
    /// Index into the preference sets, or `NO_PREFERENCE`: a zone with a set has exactly
    /// those of its offices as candidates, and pricing leaves it alone.
    preferred: u32,
}

impl Zone {
    /// The solver's travel cost to `office` in metres, or None when it is beyond reach.
    fn metres_to(&self, office: &OfficeSite) -> Option<i64> {
        let km = distance_km(self.lat, self.lon, office);
        (km <= self.max_km).then(|| metres(km))
    }
}

#[derive(Debug, Clone, Copy)]
struct CandidateArc {
    zone: u32,
    office: u32,
    distance_m: i64,
}

/// The coarse problem has at most 1 / SEED_SHRINK of the zones.
const SEED_SHRINK: usize = 8;
/// The first coarse grid cell, in degrees (it doubles until the problem is small enough).
const SEED_CELL_DEG: f64 = 0.02;
/// A fine zone takes the offices whose coarse value `d(z,o) − π̂_o` is within this of its
/// best (measured: 2 km beat 5, 10 and 20 km and fixed counts on both national instances).
const SEED_MARGIN_M: i64 = 2_000;
/// Pricing rounds on a coarse problem. It is small, so these are cheap, and closer
/// potentials make better seeds; a hard stop keeps a pathological case bounded.
const SEED_PRICING_ROUNDS: u32 = 40;

/// Pricing splits its zones over threads only in chunks at least this big.
const PRICE_CHUNK_MIN: usize = 4_096;

/// What the applicants of one zone share besides their place: service, priority (class in
/// a coarse zone), reach (`max_km` bits), entry day and preference set.
type ZoneTraits = (usize, i64, u64, usize, u32);

/// `Zone::preferred` of a zone that accepts any office.
const NO_PREFERENCE: u32 = u32::MAX;

/// The entry a day hangs off: the last entry day at or before it (`entry_days` is sorted
/// and starts at 0).
fn entry_of(entry_days: &[u32], day: u32) -> usize {
    entry_days.partition_point(|&e| e <= day) - 1
}

fn validate(problem: &AllocationProblem) -> Result<(), AllocationError> {
    if problem.applicants.len() > MAX_APPLICANTS {
        return Err(AllocationError::TooLarge(format!(
            "{} applicants (at most {MAX_APPLICANTS})",
            problem.applicants.len()
        )));
    }
    if problem.offices.len() > MAX_OFFICES {
        return Err(AllocationError::TooLarge(format!(
            "{} offices (at most {MAX_OFFICES})",
            problem.offices.len()
        )));
    }
    if !(problem.wait_km_per_day.is_finite() && problem.wait_km_per_day >= 0.0) {
        return Err(AllocationError::InvalidWait(problem.wait_km_per_day));
    }
    if let Some(m) = problem.default_max_km {
        if !(m.is_finite() && m >= 0.0) {
            return Err(AllocationError::InvalidMaxKm(m));
        }
    }
    let mut office_ids =
        FxHashSet::with_capacity_and_hasher(problem.offices.len(), Default::default());
    for o in &problem.offices {
        if bad_coords(o.lat, o.lon) {
            return Err(AllocationError::InvalidOffice {
                id: o.id.clone(),
                reason: format!("({}, {}) is not a valid latitude/longitude", o.lat, o.lon),
            });
        }
        if !office_ids.insert(o.id.as_str()) {
            return Err(AllocationError::InvalidOffice {
                id: o.id.clone(),
                reason: "duplicate office id".into(),
            });
        }
    }
    let mut seen = FxHashSet::with_capacity_and_hasher(problem.seats.len(), Default::default());
    for (i, s) in problem.seats.iter().enumerate() {
        if s.office >= problem.offices.len() {
            return Err(AllocationError::UnknownOffice {
                index: i,
                office: s.office,
            });
        }
        if s.day > MAX_DAY {
            return Err(AllocationError::TooLarge(format!(
                "day {} (at most {MAX_DAY})",
                s.day
            )));
        }
        if !seen.insert((s.office, s.day)) {
            return Err(AllocationError::DuplicateOfficeDay {
                office_id: problem.offices[s.office].id.clone(),
                day: s.day,
            });
        }
    }
    for a in &problem.applicants {
        validate_applicant(a, problem.offices.len())?;
    }
    Ok(())
}

/// Whether (lat, lon) is not a place on Earth in degrees.
fn bad_coords(lat: f64, lon: f64) -> bool {
    !(lat.is_finite()
        && lon.is_finite()
        && (-90.0..=90.0).contains(&lat)
        && (-180.0..=180.0).contains(&lon))
}

fn validate_applicant(a: &Applicant, office_count: usize) -> Result<(), AllocationError> {
    if bad_coords(a.lat, a.lon) {
        return Err(AllocationError::InvalidApplicant {
            id: a.id.clone(),
            reason: format!("({}, {}) is not a valid latitude/longitude", a.lat, a.lon),
        });
    }
    if let Some(m) = a.max_km {
        if !(m.is_finite() && m >= 0.0) {
            return Err(AllocationError::InvalidApplicant {
                id: a.id.clone(),
                reason: format!("max_km must be a finite number >= 0, got {m}"),
            });
        }
    }
    if let Some(day) = a.earliest_day.filter(|&d| d > MAX_DAY) {
        return Err(AllocationError::InvalidApplicant {
            id: a.id.clone(),
            reason: format!("earliest_day {day} is past day {MAX_DAY}"),
        });
    }
    if let Some(list) = &a.preferred_offices {
        let reason = if list.is_empty() {
            Some("preferred_offices is empty (leave it out to accept any office)".into())
        } else if list.len() > MAX_PREFERRED_OFFICES {
            Some(format!(
                "{} preferred offices (at most {MAX_PREFERRED_OFFICES})",
                list.len()
            ))
        } else {
            list.iter()
                .find(|&&o| o >= office_count)
                .map(|o| format!("preferred office index {o} is out of range"))
        };
        if let Some(reason) = reason {
            return Err(AllocationError::InvalidApplicant {
                id: a.id.clone(),
                reason,
            });
        }
    }
    Ok(())
}

/// Assigns applicants to office-days: lexicographically most applicants by priority class,
/// then least total cost, exactly (costs in whole metres). See the module docs for the method.
pub fn allocate(
    problem: &AllocationProblem,
    options: &SolverOptions,
) -> Result<Allocation, AllocationError> {
    allocate_observed(problem, options, &mut |_| {})
}

/// The stages of [`allocate`], reported as each one ends (callers time them; the engine has
/// no clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Zones, candidate arcs and the network are built.
    Built,
    /// The flow is optimal (pricing included).
    Solved,
}

/// [`allocate`], calling `on_phase` at the end of each [`Phase`].
pub fn allocate_observed(
    problem: &AllocationProblem,
    options: &SolverOptions,
    on_phase: &mut dyn FnMut(Phase),
) -> Result<Allocation, AllocationError> {
    validate(problem)?;
    let mut model = Model::build(problem, options)?;
    let mut stats = SolveStats {
        zones: model.zones.len(),
        priority_classes: model.classes.len(),
        ..SolveStats::default()
    };
    on_phase(Phase::Built);
    let (flows, duals) = model.solve(options, &mut stats)?;
    on_phase(Phase::Solved);
    let (outcomes, total_cost_m) = model.seat(&flows);
    stats.total_cost_m = total_cost_m;
    let certificate = Certificate {
        wait_m_per_day: model.wait_m_per_day,
        penalties: model.classes.iter().copied().zip(duals.penalties).collect(),
        zone_of: std::mem::take(&mut model.zone_of),
        zone_potential_m: duals.zone_potential_m,
        office_day_price_m: duals.office_day_price_m,
    };
    Ok(Allocation {
        outcomes,
        stats,
        wait_m_per_day: model.wait_m_per_day,
        certificate,
    })
}

/// Offices by service, each list with its nearest-office index: `[0]` holds every office,
/// `[s]` those offering service `s` (numbered from 1 in the applicants' order of first use).
struct Services<'p> {
    ids: FxHashMap<&'p str, usize>,
    offices: Vec<Vec<u32>>,
    indexes: Vec<OfficeIndex>,
    /// Unit vectors of the offices, in the problem's order.
    office_points: Vec<[f64; 3]>,
}

impl<'p> Services<'p> {
    fn build(problem: &'p AllocationProblem) -> Self {
        let office_count = problem.offices.len();
        let mut ids: FxHashMap<&str, usize> = FxHashMap::default();
        for a in &problem.applicants {
            if let Some(s) = &a.service {
                let next = ids.len() + 1;
                ids.entry(s.as_str()).or_insert(next);
            }
        }
        let mut names: Vec<&str> = vec![""; ids.len() + 1];
        for (name, &i) in &ids {
            names[i] = name;
        }
        let office_points: Vec<[f64; 3]> = problem
            .offices
            .iter()
            .map(|o| unit_vector(o.lat, o.lon))
            .collect();
        let offices: Vec<Vec<u32>> = (0..names.len())
            .map(|s| {
                (0..office_count as u32)
                    .filter(|&o| {
                        s == 0
                            || problem.offices[o as usize]
                                .services
                                .as_ref()
                                .is_none_or(|set| set.contains(names[s]))
                    })
                    .collect()
            })
            .collect();
        let indexes: Vec<OfficeIndex> = offices
            .iter()
            .map(|list| OfficeIndex::build(list.iter().map(|&o| (o, office_points[o as usize]))))
            .collect();
        Self {
            ids,
            offices,
            indexes,
            office_points,
        }
    }

    /// The index of an applicant's service (0 = any office will do).
    fn of(&self, service: Option<&str>) -> usize {
        service.map_or(0, |s| self.ids[s])
    }
}

/// Entry days: day 0 and every earliest day asked for. Each office gets one node per entry
/// day; its days hang off the latest entry at or before them, and each entry flows on (at no
/// cost) to the next, so a zone entering at day e reaches exactly days >= e. An earliest day
/// is first moved to the next day that has seats anywhere (or one past the last): days that
/// differ only by seatless days reach the same seats, so there are at most (days with seats
/// + 2) entries, however many distinct days people name.
struct EntryDays {
    /// Days with seats at some office, ascending.
    seat_days: Vec<u32>,
    /// The entry days: sorted, starting at 0.
    days: Vec<u32>,
}

impl EntryDays {
    fn build(problem: &AllocationProblem) -> Self {
        let mut seat_days: Vec<u32> = problem
            .seats
            .iter()
            .filter(|s| s.seats > 0)
            .map(|s| s.day)
            .collect();
        seat_days.sort_unstable();
        seat_days.dedup();
        let mut entry = Self {
            seat_days,
            days: Vec::new(),
        };
        let mut days: Vec<u32> = std::iter::once(0)
            .chain(
                problem
                    .applicants
                    .iter()
                    .filter_map(|a| a.earliest_day.map(|e| entry.snap(e))),
            )
            .collect();
        days.sort_unstable();
        days.dedup();
        entry.days = days;
        entry
    }

    /// The first day with seats at or after `e` (see the type's docs).
    fn snap(&self, e: u32) -> u32 {
        let seat_days = &self.seat_days;
        match seat_days.get(seat_days.partition_point(|&d| d < e)) {
            _ if e == 0 => 0,
            Some(&d) => d,
            None => seat_days.last().map_or(0, |&d| d + 1),
        }
    }

    /// The entry of an applicant who can come from `earliest_day` on.
    fn of_applicant(&self, earliest_day: Option<u32>) -> usize {
        entry_of(&self.days, earliest_day.map_or(0, |e| self.snap(e)))
    }
}

/// Applicants merged into zones (exact: members share everything the network sees).
struct Zoning {
    zones: Vec<Zone>,
    /// The zone of each applicant.
    zone_of: Vec<u32>,
    /// Preference sets, each stored once (`Zone::preferred` indexes them).
    preference_sets: Vec<Vec<u32>>,
}

impl Zoning {
    fn build(problem: &AllocationProblem, services: &Services, entry_days: &EntryDays) -> Self {
        let mut preference_ids: FxHashMap<Vec<u32>, u32> = FxHashMap::default();
        let mut preference_sets: Vec<Vec<u32>> = Vec::new();
        let mut zone_ids: FxHashMap<(u64, u64, ZoneTraits), u32> = FxHashMap::default();
        let mut zones: Vec<Zone> = Vec::new();
        let mut zone_of: Vec<u32> = Vec::with_capacity(problem.applicants.len());
        for a in &problem.applicants {
            let service = services.of(a.service.as_deref());
            let max_km = a.max_km.or(problem.default_max_km).unwrap_or(f64::INFINITY);
            let entry = entry_days.of_applicant(a.earliest_day);
            let preferred = match &a.preferred_offices {
                None => NO_PREFERENCE,
                Some(list) => {
                    let mut set: Vec<u32> = list.iter().map(|&o| o as u32).collect();
                    set.sort_unstable();
                    set.dedup();
                    let next = preference_sets.len() as u32;
                    *preference_ids.entry(set).or_insert_with_key(|set| {
                        preference_sets.push(set.clone());
                        next
                    })
                }
            };
            // +0.0 folds -0.0 into 0.0 so equal places share a zone.
            let key = (
                (a.lat + 0.0).to_bits(),
                (a.lon + 0.0).to_bits(),
                (
                    service,
                    i64::from(a.priority),
                    max_km.to_bits(),
                    entry,
                    preferred,
                ),
            );
            let id = *zone_ids.entry(key).or_insert_with(|| {
                zones.push(Zone {
                    lat: a.lat,
                    lon: a.lon,
                    point: unit_vector(a.lat, a.lon),
                    service,
                    priority: a.priority,
                    max_km,
                    count: 0,
                    entry,
                    preferred,
                });
                (zones.len() - 1) as u32
            });
            zones[id as usize].count += 1;
            zone_of.push(id);
        }
        Self {
            zones,
            zone_of,
            preference_sets,
        }
    }
}

/// Each zone's first candidate arcs, or why the zone cannot be placed at all.
struct Candidates {
    arcs: Vec<CandidateArc>,
    /// Set for zones without a single candidate.
    zone_reason: Vec<Option<UnassignedReason>>,
    /// The zone has every office it could use (fewer than K in reach, or a preference set):
    /// pricing skips it.
    zone_complete: Vec<bool>,
    /// The distance of the zone's farthest first candidate: omitted offices are no nearer.
    zone_last_m: Vec<i64>,
}

impl Candidates {
    /// The K nearest eligible offices within reach of each zone (exactly its preferred ones
    /// when it has a preference set). Zones are independent: they are split over the cores
    /// in contiguous runs, and the runs' answers joined in zone order.
    fn find(problem: &AllocationProblem, services: &Services, zoning: &Zoning, k: usize) -> Self {
        let count = zoning.zones.len();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = count.div_ceil(threads).max(PRICE_CHUNK_MIN);
        if count <= chunk {
            return Self::find_range(problem, services, zoning, k, 0..count);
        }
        let parts: Vec<Self> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..count)
                .step_by(chunk)
                .map(|first| {
                    let range = first..(first + chunk).min(count);
                    scope.spawn(move || Self::find_range(problem, services, zoning, k, range))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("candidate thread panicked"))
                .collect()
        });
        let mut found = Self {
            arcs: Vec::with_capacity(parts.iter().map(|p| p.arcs.len()).sum()),
            zone_reason: Vec::with_capacity(count),
            zone_complete: Vec::with_capacity(count),
            zone_last_m: Vec::with_capacity(count),
        };
        for part in parts {
            found.arcs.extend(part.arcs);
            found.zone_reason.extend(part.zone_reason);
            found.zone_complete.extend(part.zone_complete);
            found.zone_last_m.extend(part.zone_last_m);
        }
        found
    }

    /// [`Self::find`] for the zones of `range` (its vectors indexed from `range.start`).
    fn find_range(
        problem: &AllocationProblem,
        services: &Services,
        zoning: &Zoning,
        k: usize,
        range: std::ops::Range<usize>,
    ) -> Self {
        let first = range.start;
        let zones = &zoning.zones[range];
        let mut found = Self {
            arcs: Vec::with_capacity(zones.len() * k),
            zone_reason: vec![None; zones.len()],
            zone_complete: vec![false; zones.len()],
            zone_last_m: vec![0i64; zones.len()],
        };
        let mut near = Vec::with_capacity(k + 1);
        let mut hits = Vec::new();
        for (z, zone) in zones.iter().enumerate() {
            let before = found.arcs.len();
            let arc = |office: u32, distance_m: i64| CandidateArc {
                zone: (first + z) as u32,
                office,
                distance_m,
            };
            if zone.preferred == NO_PREFERENCE {
                services.indexes[zone.service].nearest(&zone.point, k, zone.max_km, &mut near);
                for &(_, o) in near.iter() {
                    if let Some(distance_m) = zone.metres_to(&problem.offices[o as usize]) {
                        found.arcs.push(arc(o, distance_m));
                    }
                }
                found.zone_complete[z] = near.len() < k;
            } else {
                // Exactly the preferred offices that offer the service within reach.
                let set = &zoning.preference_sets[zone.preferred as usize];
                for &o in set {
                    if services.offices[zone.service].binary_search(&o).is_err() {
                        continue;
                    }
                    if let Some(distance_m) = zone.metres_to(&problem.offices[o as usize]) {
                        found.arcs.push(arc(o, distance_m));
                    }
                }
                found.arcs[before..].sort_unstable_by_key(|c| (c.distance_m, c.office));
                found.zone_complete[z] = true;
            }
            if found.arcs.len() == before {
                found.zone_reason[z] = Some(Self::why_unplaceable(
                    problem, services, zoning, zone, &mut hits,
                ));
            } else {
                found.zone_last_m[z] = found.arcs[before..]
                    .iter()
                    .map(|c| c.distance_m)
                    .max()
                    .unwrap_or(0);
            }
        }
        found
    }

    /// Why a zone without candidates cannot be placed: no office it accepts lies within
    /// reach, or some does but offers another service.
    fn why_unplaceable(
        problem: &AllocationProblem,
        services: &Services,
        zoning: &Zoning,
        zone: &Zone,
        hits: &mut Vec<u32>,
    ) -> UnassignedReason {
        // Offices the zone would accept, whatever their services.
        let acceptable: &[u32] = if zone.preferred == NO_PREFERENCE {
            services.indexes[0].within(&zone.point, zone.max_km.min(EARTH_RADIUS_KM * 4.0), hits);
            hits
        } else {
            &zoning.preference_sets[zone.preferred as usize]
        };
        let any_within = acceptable
            .iter()
            .any(|&o| zone.metres_to(&problem.offices[o as usize]).is_some());
        if any_within {
            UnassignedReason::ServiceNotOffered
        } else {
            UnassignedReason::NoOfficeWithinMaxKm
        }
    }
}

/// Bounds that make the stacked class penalties exact (see the module docs).
struct PenaltyBounds {
    /// The longest arc that pricing could ever add.
    longest_arc_m: i64,
    /// The cost of waiting until the last day with seats.
    longest_wait_m: i64,
    /// Office entry nodes (offices × entry days).
    entry_nodes: usize,
    /// Above the cost of any simple path through the network.
    big_penalty: i64,
}

impl PenaltyBounds {
    fn new(
        problem: &AllocationProblem,
        model_zones: &[Zone],
        zone_reason: &[Option<UnassignedReason>],
        entry_days: usize,
        horizon_days: i64,
        wait_m_per_day: i64,
    ) -> Result<Self, AllocationError> {
        let longest_arc_m = model_zones
            .iter()
            .zip(zone_reason)
            .filter(|(_, r)| r.is_none())
            .map(|(z, _)| metres(z.max_km.min(std::f64::consts::PI * EARTH_RADIUS_KM)) + 1)
            .max()
            .unwrap_or(0);
        let longest_wait_m = wait_m_per_day
            .checked_mul(horizon_days)
            .ok_or_else(|| AllocationError::TooLarge("wait cost overflows".into()))?;
        // A simple path enters each office entry node at most once.
        let entry_nodes = problem
            .offices
            .len()
            .checked_mul(entry_days)
            .ok_or_else(|| AllocationError::TooLarge("too many entry days".into()))?;
        let big_penalty = (entry_nodes as i64 + 1)
            .checked_mul(longest_arc_m)
            .and_then(|x| x.checked_add(longest_wait_m))
            .and_then(|x| x.checked_add(1))
            .ok_or_else(|| AllocationError::TooLarge("penalty overflows".into()))?;
        Ok(Self {
            longest_arc_m,
            longest_wait_m,
            entry_nodes,
            big_penalty,
        })
    }
}

/// What the phases of one allocation share: the problem, its zones and their candidate
/// arcs, and the network's shape. Built once ([`Model::build`]: zones, candidate arcs, day
/// arcs, classes), solved ([`Model::solve`]: coarse seed, solve, pricing rounds), then read
/// back into outcomes ([`Model::seat`]: seat order inside each office).
struct Model<'p> {
    problem: &'p AllocationProblem,
    wait_m_per_day: i64,
    services: Services<'p>,
    entry_days: EntryDays,
    zones: Vec<Zone>,
    zone_of: Vec<u32>,
    candidates: Candidates,
    /// (office, day, seats) of the office-days with seats, sorted.
    day_arcs: Vec<(u32, u32, i64)>,
    /// Priority classes among zones that can be placed at all, top class first.
    classes: Vec<i32>,
    class_of_zone: Vec<usize>,
    /// Zones that can be placed, ordered by nearest office.
    active: Vec<u32>,
    bounds: PenaltyBounds,
}

impl<'p> Model<'p> {
    fn build(
        problem: &'p AllocationProblem,
        options: &SolverOptions,
    ) -> Result<Self, AllocationError> {
        let wait_m_per_day = metres(problem.wait_km_per_day);
        let services = Services::build(problem);
        let entry_days = EntryDays::build(problem);
        let zoning = Zoning::build(problem, &services, &entry_days);
        let k = options.candidates_per_zone.max(1);
        let mut candidates = Candidates::find(problem, &services, &zoning, k);
        let Zoning { zones, zone_of, .. } = zoning;

        let mut day_arcs: Vec<(u32, u32, i64)> = problem
            .seats
            .iter()
            .filter(|s| s.seats > 0)
            .map(|s| (s.office as u32, s.day, s.seats as i64))
            .collect();
        day_arcs.sort_unstable();
        let horizon_days = day_arcs.iter().map(|d| d.1 as i64 + 1).max().unwrap_or(0);

        let mut classes: Vec<i32> = zones
            .iter()
            .zip(&candidates.zone_reason)
            .filter(|(_, r)| r.is_none())
            .map(|(z, _)| z.priority)
            .collect::<FxHashSet<_>>()
            .into_iter()
            .collect();
        classes.sort_unstable_by(|a, b| b.cmp(a));
        let bounds = PenaltyBounds::new(
            problem,
            &zones,
            &candidates.zone_reason,
            entry_days.days.len(),
            horizon_days,
            wait_m_per_day,
        )?;
        let active = order_by_nearest_office(&zones, &mut candidates);
        let class_of = |p: i32| classes.iter().position(|&c| c == p).expect("known class");
        let class_of_zone = zones
            .iter()
            .zip(&candidates.zone_reason)
            .map(|(z, r)| if r.is_none() { class_of(z.priority) } else { 0 })
            .collect();
        Ok(Self {
            problem,
            wait_m_per_day,
            services,
            entry_days,
            zones,
            zone_of,
            candidates,
            day_arcs,
            classes,
            class_of_zone,
            active,
            bounds,
        })
    }

    /// The optimum flow, pricing included: one solve with class penalties (rank from the
    /// bottom + 1) × big_penalty when they fit in i64 (see the module docs for why that is
    /// exact), else the two-stage method.
    fn solve(
        &mut self,
        options: &SolverOptions,
        stats: &mut SolveStats,
    ) -> Result<(Flows, Duals), AllocationError> {
        let ctx = Context {
            zones: &self.zones,
            active: &self.active,
            offices: self.problem.offices.len(),
            service_offices: &self.services.offices,
            problem: self.problem,
            indexes: &self.services.indexes,
            zone_complete: &self.candidates.zone_complete,
            zone_last_m: &self.candidates.zone_last_m,
            day_arcs: &self.day_arcs,
            wait_m_per_day: self.wait_m_per_day,
            entry_days: &self.entry_days.days,
            pricing_arcs_per_zone: options.pricing_arcs_per_zone.max(1),
            class_count: self.classes.len(),
            class_of_zone: &self.class_of_zone,
            office_points: &self.services.office_points,
        };
        let candidates = &mut self.candidates.arcs;
        let net = ctx.solve_lexicographic(&self.bounds, candidates, options, stats)?;
        stats.arcs = net.net.arc_count();
        stats.pivots = net.net.work();
        let duals = Duals::read(&ctx, &net, candidates);
        Ok((
            Flows::read(&net, candidates, &self.day_arcs, ctx.offices),
            duals,
        ))
    }

    /// Outcomes from the flow: each zone's members, in seat order, go to its offices
    /// nearest first; inside an office, seat order picks days and seats. Returns the total
    /// cost too.
    fn seat(&self, flows: &Flows) -> (Vec<Outcome>, i64) {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let apps = &self.problem.applicants;
        let digests = lottery_digests(&self.problem.lottery_seed, apps, threads);
        let by_seat_order = |a: &u32, b: &u32| {
            let (a, b) = (*a as usize, *b as usize);
            seat_order((&apps[a], &digests[a], a), (&apps[b], &digests[b], b))
        };
        let members = ZoneMembers::sorted(&self.zone_of, self.zones.len(), by_seat_order);
        // Unplaced unless a seat is found below.
        let mut outcomes: Vec<Outcome> = self
            .zone_of
            .iter()
            .map(|&z| {
                let reason = self.candidates.zone_reason[z as usize];
                Outcome::Unassigned(reason.unwrap_or(UnassignedReason::NoCapacity))
            })
            .collect();
        let (mut at_office, distance_of) = self.to_offices(&flows.zone_flows, &members);
        let mut seating = OfficeSeating::new(self.entry_days.days.len());
        let mut total_cost_m = 0i64;
        for (o, list) in at_office.iter_mut().enumerate() {
            if list.is_empty() {
                continue;
            }
            list.sort_unstable_by(by_seat_order);
            total_cost_m += seating.seat(
                self,
                o,
                list,
                &flows.office_day_flows[o],
                &distance_of,
                &mut outcomes,
            );
        }
        (outcomes, total_cost_m)
    }

    /// Each zone's flow as people: its members in seat order fill its arcs nearest office
    /// first. Returns who went to each office and each applicant's travel cost.
    fn to_offices(
        &self,
        zone_flows: &[(u32, i64, u32, i64)],
        members: &ZoneMembers,
    ) -> (Vec<Vec<u32>>, Vec<i64>) {
        let mut at_office: Vec<Vec<u32>> = vec![Vec::new(); self.problem.offices.len()];
        let mut next_member = members.start.clone();
        let mut distance_of = vec![0i64; 0];
        distance_of.resize(self.problem.applicants.len(), 0);
        for &(z, d, o, f) in zone_flows {
            for _ in 0..f {
                let a = members.list[next_member[z as usize]];
                next_member[z as usize] += 1;
                at_office[o as usize].push(a);
                distance_of[a as usize] = d;
            }
        }
        (at_office, distance_of)
    }
}

/// Zones and their arcs ordered by nearest office: neighbours compete for the same seats,
/// and keeping them together in node and arc order keeps the simplex's searches local.
/// Returns the zones that can be placed, in that order.
fn order_by_nearest_office(zones: &[Zone], candidates: &mut Candidates) -> Vec<u32> {
    let mut nearest_office = vec![u32::MAX; zones.len()];
    for c in &candidates.arcs {
        let n = &mut nearest_office[c.zone as usize];
        if *n == u32::MAX {
            *n = c.office;
        }
    }
    let mut active: Vec<u32> = (0..zones.len() as u32)
        .filter(|&z| candidates.zone_reason[z as usize].is_none())
        .collect();
    active.sort_by_key(|&z| (nearest_office[z as usize], z));
    candidates.arcs.sort_by_key(|c| {
        (
            nearest_office[c.zone as usize],
            c.zone,
            c.distance_m,
            c.office,
        )
    });
    active
}

/// The optimum flow, read off the network before it is dropped.
struct Flows {
    /// (zone, distance, office, flow) of the candidate arcs that carry flow, sorted.
    zone_flows: Vec<(u32, i64, u32, i64)>,
    /// Per office, (day, flow) of its day arcs that carry flow, days ascending.
    office_day_flows: Vec<Vec<(u32, i64)>>,
}

impl Flows {
    fn read(
        net: &StageNet,
        candidates: &[CandidateArc],
        day_arcs: &[(u32, u32, i64)],
        office_count: usize,
    ) -> Self {
        let mut zone_flows: Vec<(u32, i64, u32, i64)> = Vec::new();
        for (i, c) in candidates.iter().enumerate() {
            let f = net.net.flow(net.candidate_arc[i]);
            if f > 0 {
                zone_flows.push((c.zone, c.distance_m, c.office, f));
            }
        }
        zone_flows.sort_unstable();
        let mut office_day_flows: Vec<Vec<(u32, i64)>> = vec![Vec::new(); office_count];
        for (i, &(o, day, _)) in day_arcs.iter().enumerate() {
            let f = net.net.flow(net.day_arc[i]);
            if f > 0 {
                office_day_flows[o as usize].push((day, f));
            }
        }
        Self {
            zone_flows,
            office_day_flows,
        }
    }
}

/// The optimum's dual in the applicant-level form of [`Certificate`], read off the final
/// network's potentials π (reduced cost `c + π_u − π_v`, π growing along the flow): a
/// zone's `y` is `π_sink − π_zone` (its cheapest way out), an office-day's price is what its
/// day arc's reduced cost falls below zero (`π_sink − π_entry − wait × day`, at least 0), and
/// a class's penalty is its arc's cost plus whatever its cap adds (`π_sink − π_class`, only
/// in the two-stage method, where the class arcs are capped).
struct Duals {
    /// Per class, top first.
    penalties: Vec<i64>,
    /// Per zone (0 for zones that cannot be placed).
    zone_potential_m: Vec<i64>,
    office_day_price_m: Vec<(usize, u32, i64)>,
}

impl Duals {
    fn read(ctx: &Context, net: &StageNet, candidates: &[CandidateArc]) -> Self {
        let za = ctx.active.len();
        let entry_nodes = ctx.entry_nodes();
        let sink = za + entry_nodes + ctx.class_count;
        let pi = |node: usize| net.net.potential(node);
        let pi_sink = pi(sink);
        let penalties: Vec<i64> = (0..ctx.class_count)
            .map(|c| net.penalties[c] + (pi_sink - pi(za + entry_nodes + c)).max(0))
            .collect();
        let mut zone_potential_m = vec![0i64; ctx.zones.len()];
        for (i, &z) in ctx.active.iter().enumerate() {
            zone_potential_m[z as usize] = pi_sink - pi(i);
        }
        let office_day_price_m: Vec<(usize, u32, i64)> = ctx
            .day_arcs
            .iter()
            .map(|&(o, day, _)| {
                let entry = ctx.entry_node(o, entry_of(ctx.entry_days, day));
                let price = pi_sink - pi(entry) - ctx.wait_m_per_day * day as i64;
                (o as usize, day, price.max(0))
            })
            .collect();
        if matches!(net.net, FlowNet::Scaling(_)) {
            Self::lower_capped_zones(
                ctx,
                candidates,
                &penalties,
                &office_day_price_m,
                &mut zone_potential_m,
            );
        }
        Self {
            penalties,
            zone_potential_m,
            office_day_price_m,
        }
    }

    /// Cost scaling caps a zone's arcs at its applicants (redundant in the LP), so a zone
    /// whose whole flow takes one arc can have `y` above that arc's cost plus price; the
    /// least of its arcs' and its penalty is then the LP's `y` (lowering `y` keeps every
    /// other constraint, and the arcs with flow are exactly the cheapest).
    fn lower_capped_zones(
        ctx: &Context,
        candidates: &[CandidateArc],
        penalties: &[i64],
        prices: &[(usize, u32, i64)],
        zone_potential_m: &mut [i64],
    ) {
        let entries = ctx.entry_days.len();
        // The cheapest wait plus price from each office entry on (days ascend per office).
        let mut best = vec![i64::MAX; ctx.offices * entries];
        for &(o, day, price) in prices {
            let e = entry_of(ctx.entry_days, day);
            for j in 0..=e {
                let b = &mut best[o * entries + j];
                *b = (*b).min(ctx.wait_m_per_day * day as i64 + price);
            }
        }
        for &z in ctx.active {
            let y = &mut zone_potential_m[z as usize];
            *y = (*y).min(penalties[ctx.class_of_zone[z as usize]]);
        }
        for c in candidates {
            let zone = &ctx.zones[c.zone as usize];
            let b = best[c.office as usize * entries + zone.entry];
            if b != i64::MAX {
                let y = &mut zone_potential_m[c.zone as usize];
                *y = (*y).min(c.distance_m + b);
            }
        }
    }
}

/// Members of each zone in seat order (earliest registration first, then lottery):
/// `list[start[z]..start[z + 1]]`.
struct ZoneMembers {
    start: Vec<usize>,
    list: Vec<u32>,
}

impl ZoneMembers {
    fn sorted(
        zone_of: &[u32],
        zone_count: usize,
        by_seat_order: impl Fn(&u32, &u32) -> std::cmp::Ordering,
    ) -> Self {
        let mut start = vec![0usize; zone_count + 1];
        for &z in zone_of {
            start[z as usize + 1] += 1;
        }
        for z in 0..zone_count {
            start[z + 1] += start[z];
        }
        let mut fill = start.clone();
        let mut list = vec![0u32; zone_of.len()];
        for (i, &z) in zone_of.iter().enumerate() {
            list[fill[z as usize]] = i as u32;
            fill[z as usize] += 1;
        }
        for z in 0..zone_count {
            list[start[z]..start[z + 1]].sort_unstable_by(&by_seat_order);
        }
        Self { start, list }
    }
}

/// Seats inside an office: seat order decides who gets the earlier day and the earlier
/// seat, among those who can come that day. Days ascend, so whoever can come stays able to,
/// and the flow sent at least as many people into each entry as the days from it on hold:
/// every seat finds someone. Who sits where inside an office changes no cost.
struct OfficeSeating {
    /// Per entry day, (rank in the office's seat order, applicant) of those entering there.
    queues: Vec<Vec<(u32, u32)>>,
    heads: Vec<usize>,
}

impl OfficeSeating {
    fn new(entries: usize) -> Self {
        Self {
            queues: vec![Vec::new(); entries],
            heads: vec![0usize; entries],
        }
    }

    /// Seats office `o`'s people (`list`, in seat order) on its used days; returns their cost.
    fn seat(
        &mut self,
        model: &Model,
        o: usize,
        list: &[u32],
        day_flows: &[(u32, i64)],
        distance_of: &[i64],
        outcomes: &mut [Outcome],
    ) -> i64 {
        let (queues, heads) = (&mut self.queues, &mut self.heads);
        for q in queues.iter_mut() {
            q.clear();
        }
        heads.fill(0);
        for (rank, &a) in list.iter().enumerate() {
            queues[model.zones[model.zone_of[a as usize] as usize].entry].push((rank as u32, a));
        }
        let apps = &model.problem.applicants;
        let office = &model.problem.offices[o];
        let mut total_cost_m = 0i64;
        for &(day, f) in day_flows {
            let open = entry_of(&model.entry_days.days, day) + 1;
            for seat in 0..f as u32 {
                let q = (0..open)
                    .filter(|&j| heads[j] < queues[j].len())
                    .min_by_key(|&j| queues[j][heads[j]].0)
                    .expect("the flow sends each entry's days enough people");
                let a = queues[q][heads[q]].1 as usize;
                heads[q] += 1;
                let applicant = &apps[a];
                let cost_m = distance_of[a] + model.wait_m_per_day * day as i64;
                total_cost_m += cost_m;
                outcomes[a] = Outcome::Assigned(Assignment {
                    office: o,
                    day,
                    seat,
                    slot: office
                        .stations
                        .filter(|&s| s > 0)
                        .map_or(seat, |s| seat / s),
                    distance_km: haversine_km(applicant.lat, applicant.lon, office.lat, office.lon),
                    cost_m,
                });
            }
        }
        total_cost_m
    }
}

struct StageSpec {
    travel_costs: bool,
    penalties: Vec<i64>,
    class_caps: Vec<i64>,
    cost_bound: i64,
}

/// The flow network of a stage, in whichever exact solver the options chose.
enum FlowNet {
    Simplex(Box<NetworkSimplex>),
    Scaling(Box<CostScaling>),
    Paths(Box<OfficePaths>),
}

impl FlowNet {
    fn add_arc(&mut self, u: usize, v: usize, cap: i64, cost: i64) -> Result<usize, FlowError> {
        match self {
            FlowNet::Simplex(n) => n.add_arc(u, v, cap, cost),
            FlowNet::Scaling(n) => n.add_arc(u, v, cap, cost),
            FlowNet::Paths(n) => n.add_arc(u, v, cap, cost),
        }
    }

    fn solve(&mut self, max_work: u64) -> Result<(), FlowError> {
        match self {
            FlowNet::Simplex(n) => n.solve(max_work),
            FlowNet::Scaling(n) => n.solve(max_work),
            FlowNet::Paths(n) => n.solve(max_work),
        }
    }

    /// Starts the simplex from `flow` (per arc id); false when it cannot (another solver,
    /// or a flow the simplex declines), and the solve then starts cold.
    fn start_from_flow(&mut self, flow: &[(usize, i64)]) -> bool {
        let FlowNet::Simplex(n) = self else {
            return false;
        };
        let first = n.node_count();
        let mut real = vec![0i64; n.arc_count()];
        for &(arc, f) in flow {
            real[arc - first] += f;
        }
        n.start_from_flow(&real)
    }

    fn flow(&self, arc: usize) -> i64 {
        match self {
            FlowNet::Simplex(n) => n.flow(arc),
            FlowNet::Scaling(n) => n.flow(arc),
            FlowNet::Paths(n) => n.flow(arc),
        }
    }

    fn potential(&self, node: usize) -> i64 {
        match self {
            FlowNet::Simplex(n) => n.potential(node),
            FlowNet::Scaling(n) => n.potential(node),
            FlowNet::Paths(n) => n.potential(node),
        }
    }

    fn arc_count(&self) -> usize {
        match self {
            FlowNet::Simplex(n) => n.arc_count(),
            FlowNet::Scaling(n) => n.arc_count(),
            FlowNet::Paths(n) => n.arc_count(),
        }
    }

    /// Simplex pivots, pushes and relabels, or settled search nodes.
    fn work(&self) -> u64 {
        match self {
            FlowNet::Simplex(n) => n.pivots(),
            FlowNet::Scaling(n) => n.work(),
            FlowNet::Paths(n) => n.work(),
        }
    }
}

struct StageNet {
    net: FlowNet,
    /// The class arcs' costs.
    penalties: Vec<i64>,
    candidate_arc: Vec<usize>,
    day_arc: Vec<usize>,
    /// Entry chain arcs, office-major (entries − 1 per office).
    chain_arc: Vec<usize>,
    /// Per active zone (by node), its arc to its class: its unassigned flow.
    unassigned_arc: Vec<usize>,
    class_to_sink: Vec<usize>,
}

struct Context<'a> {
    zones: &'a [Zone],
    active: &'a [u32],
    offices: usize,
    service_offices: &'a [Vec<u32>],
    problem: &'a AllocationProblem,
    indexes: &'a [OfficeIndex],
    zone_complete: &'a [bool],
    zone_last_m: &'a [i64],
    day_arcs: &'a [(u32, u32, i64)],
    wait_m_per_day: i64,
    /// Sorted, starting at 0: the days where office chains can be entered.
    entry_days: &'a [u32],
    pricing_arcs_per_zone: usize,
    class_count: usize,
    class_of_zone: &'a [usize],
    office_points: &'a [[f64; 3]],
}

/// How a stage turns candidate arcs into network arcs (the first build and pricing alike).
struct StageArcs<'s> {
    spec: &'s StageSpec,
    /// Cost scaling solves this stage: zone arcs get finite capacities.
    scaling: bool,
    /// The node of each active zone (`u32::MAX` for the others).
    node_of_zone: Vec<u32>,
}

/// A coarse copy of the problem: neighbouring zones merged (see `seed_from_coarse`).
struct CoarseZones {
    /// The coarse zone of each active fine zone (`u32::MAX` for the others).
    parent: Vec<u32>,
    zones: Vec<Zone>,
    class_of_zone: Vec<usize>,
}

impl Context<'_> {
    /// Builds the stage's network from the candidates, solves it, prices omitted arcs, adds
    /// the violating ones to `candidates` and re-solves until none is left.
    ///
    /// With `rounds_limit` the pricing stops after that many rounds and the result is only
    /// a good flow, not a proven optimum (what a coarse seed needs); without, running out of
    /// `options.max_pricing_rounds` is an error.
    fn solve_stage(
        &self,
        spec: &StageSpec,
        candidates: &mut Vec<CandidateArc>,
        options: &SolverOptions,
        stats: &mut SolveStats,
        rounds_limit: Option<u32>,
    ) -> Result<StageNet, AllocationError> {
        let za = self.active.len();
        let mut node_of_zone = vec![u32::MAX; self.zones.len()];
        for (i, &z) in self.active.iter().enumerate() {
            node_of_zone[z as usize] = i as u32;
        }
        let mut warm = None;
        if spec.travel_costs && options.seed_arcs_per_zone > 0 && za >= options.seed_min_zones {
            let (seeded, coarse_flow) = self.seed_from_coarse(spec, candidates, options)?;
            stats.arcs_added_by_seeding += seeded;
            // Only the simplex starts from a flow, and only with unbounded class arcs (the
            // spread may unassign a few more applicants than the coarse optimum did).
            let warm_useful = options.solver == FlowSolver::NetworkSimplex
                && spec.class_caps.iter().all(|&c| c == CAPACITY_UNBOUNDED);
            if let Some(coarse_flow) = coarse_flow.filter(|_| warm_useful) {
                let spread = self.spread_coarse_flow(&coarse_flow);
                candidates.extend(spread.missing_candidates(candidates));
                warm = Some(spread);
            }
            // Keep each zone's arcs together, in node order (see `order_by_nearest_office`).
            candidates
                .sort_unstable_by_key(|c| (node_of_zone[c.zone as usize], c.distance_m, c.office));
        }
        // Zones are never adjacent, so a simple residual cycle has at most two arcs per
        // non-zone node (office entries, classes, the sink).
        let cycle_len_bound = 2 * (self.entry_nodes() + self.class_count + 1);
        let arcs = StageArcs {
            spec,
            scaling: options.solver == FlowSolver::CostScaling
                && CostScaling::fits(spec.cost_bound, cycle_len_bound),
            node_of_zone,
        };
        let mut stage = self.stage_network(&arcs, candidates, options.solver, cycle_len_bound)?;
        if let Some(spread) = warm {
            let flow = spread.arc_flows(self, &stage, candidates, &arcs.node_of_zone);
            stats.warm_started = stage.net.start_from_flow(&flow);
        }
        let rounds =
            self.pricing_rounds(&arcs, &mut stage, candidates, options, stats, rounds_limit)?;
        stats.pricing_rounds += rounds;
        stats.solver = match stage.net {
            FlowNet::Simplex(_) => FlowSolver::NetworkSimplex,
            FlowNet::Scaling(_) => FlowSolver::CostScaling,
            FlowNet::Paths(_) => FlowSolver::OfficePaths,
        };
        Ok(stage)
    }

    /// Office entry nodes: one per office and entry day.
    fn entry_nodes(&self) -> usize {
        self.offices * self.entry_days.len()
    }

    /// The node of office `o`'s entry `entry` (nodes: active zones, entries office-major,
    /// classes, the sink).
    fn entry_node(&self, o: u32, entry: usize) -> usize {
        self.active.len() + o as usize * self.entry_days.len() + entry
    }

    /// Adds candidate `c` to the stage's network.
    fn add_candidate(
        &self,
        arcs: &StageArcs,
        net: &mut FlowNet,
        c: &CandidateArc,
    ) -> Result<usize, FlowError> {
        let zone = &self.zones[c.zone as usize];
        net.add_arc(
            arcs.node_of_zone[c.zone as usize] as usize,
            self.entry_node(c.office, zone.entry),
            self.zone_cap(arcs, c.zone),
            if arcs.spec.travel_costs {
                c.distance_m
            } else {
                0
            },
        )
    }

    /// A zone's arcs never carry more than its applicants: a finite capacity keeps cost
    /// scaling's saturating pushes small (the simplex is left as it was).
    fn zone_cap(&self, arcs: &StageArcs, z: u32) -> i64 {
        if arcs.scaling {
            self.zones[z as usize].count
        } else {
            CAPACITY_UNBOUNDED
        }
    }

    /// The stage's network: supplies, candidate arcs, day arcs, entry chains, class arcs.
    fn stage_network(
        &self,
        arcs: &StageArcs,
        candidates: &[CandidateArc],
        solver: FlowSolver,
        cycle_len_bound: usize,
    ) -> Result<StageNet, AllocationError> {
        let spec = arcs.spec;
        let za = self.active.len();
        let entries = self.entry_days.len();
        let entry_nodes = self.entry_nodes();
        let class_node = |c: usize| za + entry_nodes + c;
        let sink = za + entry_nodes + self.class_count;
        let mut supply = vec![0i64; sink + 1];
        let mut total = 0i64;
        for (i, &z) in self.active.iter().enumerate() {
            supply[i] = self.zones[z as usize].count;
            total += supply[i];
        }
        supply[sink] = -total;
        // Office paths knows only the one-node-per-office shape: with entry days the
        // simplex solves instead.
        let mut net = if solver == FlowSolver::OfficePaths && entries == 1 {
            FlowNet::Paths(Box::new(OfficePaths::new(
                supply,
                za,
                self.offices,
                self.class_count,
            )))
        } else if arcs.scaling {
            FlowNet::Scaling(Box::new(CostScaling::new(
                supply,
                spec.cost_bound,
                cycle_len_bound,
            )))
        } else {
            let mut simplex = NetworkSimplex::new(supply, spec.cost_bound);
            // Zones (nodes 0..za) are never adjacent to each other.
            simplex.derive_potentials_of_first(za);
            // Every arc of the network, and room for what pricing adds.
            simplex.reserve_arcs(
                candidates.len()
                    + self.day_arcs.len()
                    + self.offices * (entries - 1)
                    + za
                    + self.class_count
                    + za / 4,
            );
            FlowNet::Simplex(Box::new(simplex))
        };
        let mut candidate_arc = Vec::with_capacity(candidates.len());
        for c in candidates {
            candidate_arc.push(self.add_candidate(arcs, &mut net, c)?);
        }
        let mut day_arc = Vec::with_capacity(self.day_arcs.len());
        for &(o, day, seats) in self.day_arcs {
            let cost = if spec.travel_costs {
                self.wait_m_per_day * day as i64
            } else {
                0
            };
            let entry = entry_of(self.entry_days, day);
            day_arc.push(net.add_arc(self.entry_node(o, entry), sink, seats, cost)?);
        }
        let mut chain_arc = Vec::with_capacity(self.offices * (entries - 1));
        for o in 0..self.offices as u32 {
            for entry in 1..entries {
                chain_arc.push(net.add_arc(
                    self.entry_node(o, entry - 1),
                    self.entry_node(o, entry),
                    CAPACITY_UNBOUNDED,
                    0,
                )?);
            }
        }
        let mut unassigned_arc = Vec::with_capacity(za);
        for (i, &z) in self.active.iter().enumerate() {
            let c = self.class_of_zone[z as usize];
            unassigned_arc.push(net.add_arc(
                i,
                class_node(c),
                self.zone_cap(arcs, z),
                spec.penalties[c],
            )?);
        }
        let mut class_to_sink = Vec::with_capacity(self.class_count);
        for c in 0..self.class_count {
            class_to_sink.push(net.add_arc(class_node(c), sink, spec.class_caps[c], 0)?);
        }
        Ok(StageNet {
            net,
            penalties: spec.penalties.clone(),
            candidate_arc,
            day_arc,
            chain_arc,
            unassigned_arc,
            class_to_sink,
        })
    }

    /// Solves, prices and adds the violating arcs until none is left (or `rounds_limit`
    /// rounds have run); returns the number of rounds.
    fn pricing_rounds(
        &self,
        arcs: &StageArcs,
        stage: &mut StageNet,
        candidates: &mut Vec<CandidateArc>,
        options: &SolverOptions,
        stats: &mut SolveStats,
        rounds_limit: Option<u32>,
    ) -> Result<u32, AllocationError> {
        let mut rounds = 0u32;
        loop {
            stage.net.solve(options.max_pivots)?;
            if rounds_limit.is_some_and(|limit| rounds >= limit) {
                return Ok(rounds);
            }
            let found = self.price(&stage.net, arcs.spec.travel_costs, &arcs.node_of_zone);
            if found.is_empty() {
                return Ok(rounds);
            }
            rounds += 1;
            if rounds > options.max_pricing_rounds {
                return Err(AllocationError::PricingLimit(options.max_pricing_rounds));
            }
            stats.arcs_added_by_pricing += found.len();
            for c in found {
                stage
                    .candidate_arc
                    .push(self.add_candidate(arcs, &mut stage.net, &c)?);
                candidates.push(c);
            }
        }
    }

    /// The final network of the lexicographic objective: one solve with class penalties
    /// (rank from the bottom + 1) × big_penalty when they fit in i64 (see the module docs
    /// for why that is exact), else the two-stage method.
    fn solve_lexicographic(
        &self,
        bounds: &PenaltyBounds,
        candidates: &mut Vec<CandidateArc>,
        options: &SolverOptions,
        stats: &mut SolveStats,
    ) -> Result<StageNet, AllocationError> {
        let c = self.class_count;
        let stacked: Option<Vec<i64>> = (0..c)
            .map(|i| bounds.big_penalty.checked_mul((c - i) as i64))
            .collect::<Option<Vec<i64>>>()
            .filter(|p| {
                let top = p.first().copied().unwrap_or(0);
                // The simplex needs (bound + 1) × (nodes + 1) and potentials of that order.
                let nodes = self.zones.len() + bounds.entry_nodes + c + 2;
                top.checked_add(1)
                    .and_then(|x| x.checked_mul(4 * nodes as i64))
                    .is_some()
            });
        match stacked {
            Some(penalties) if !options.force_two_stage => {
                let spec = StageSpec {
                    travel_costs: true,
                    cost_bound: penalties
                        .first()
                        .copied()
                        .unwrap_or(0)
                        .max(bounds.longest_wait_m),
                    penalties,
                    class_caps: vec![CAPACITY_UNBOUNDED; c],
                };
                self.solve_stage(&spec, candidates, options, stats, None)
            }
            _ => {
                let stage1 = StageSpec {
                    travel_costs: false,
                    penalties: (0..c).map(|i| (c - i) as i64).collect(),
                    class_caps: vec![CAPACITY_UNBOUNDED; c],
                    cost_bound: c as i64,
                };
                let net1 = self.solve_stage(&stage1, candidates, options, stats, None)?;
                let caps: Vec<i64> = (0..c)
                    .map(|i| net1.net.flow(net1.class_to_sink[i]))
                    .collect();
                drop(net1);
                let stage2 = StageSpec {
                    travel_costs: true,
                    penalties: vec![0; c],
                    class_caps: caps,
                    cost_bound: bounds.longest_arc_m.max(bounds.longest_wait_m),
                };
                self.solve_stage(&stage2, candidates, options, stats, None)
            }
        }
    }

    /// Adds candidates that a coarse version of the problem says are likely to be used, and
    /// returns how many. Pricing rounds on a large network are costly (a solve and a scan
    /// each), and the K nearest offices are a poor guess where those are full: the optimum
    /// then sends people past them, and pricing discovers that a few arcs per zone per round.
    /// Zones in one grid cell (same service, class and reach) are merged into one coarse
    /// zone at their centroid; its offices are the union of its members' candidates. The
    /// coarse problem (seeded the same way when it is itself large) is solved with up to
    /// `SEED_PRICING_ROUNDS` pricing rounds; its office potentials `π̂` then rank, for each
    /// fine zone, the offices its coarse zone ended with by `π̂_o − d(z,o)` (the zone's side
    /// of the reduced cost), and those within `SEED_MARGIN_M` of the best (at most
    /// `seed_arcs_per_zone`) become candidates. This only chooses the starting arcs: the fine
    /// solve still prices every omitted arc, so the optimum stays exact whatever the seed.
    fn seed_from_coarse(
        &self,
        spec: &StageSpec,
        candidates: &mut Vec<CandidateArc>,
        options: &SolverOptions,
    ) -> Result<(usize, Option<CoarseFlow>), AllocationError> {
        let Some(coarse) = self.coarse_zones() else {
            return Ok((0, None)); // nothing merges: the coarse problem would be this one
        };
        let coarse_count = coarse.zones.len();
        let mut coarse_candidates = self.coarse_candidates(&coarse, candidates);
        let coarse_active: Vec<u32> = (0..coarse_count as u32).collect();
        let coarse_complete: Vec<bool> = coarse
            .zones
            .iter()
            .map(|z| z.preferred != NO_PREFERENCE)
            .collect();
        let coarse_last_m = vec![0; coarse_count];
        let coarse_ctx = Context {
            zones: &coarse.zones,
            active: &coarse_active,
            // No lower bound on omitted offices' distance: pricing checks every zone but
            // those restricted to their preferred offices.
            zone_complete: &coarse_complete,
            zone_last_m: &coarse_last_m,
            class_of_zone: &coarse.class_of_zone,
            ..*self
        };
        let mut ignored = SolveStats::default();
        let net = coarse_ctx.solve_stage(
            spec,
            &mut coarse_candidates,
            options,
            &mut ignored,
            Some(SEED_PRICING_ROUNDS),
        )?;
        // Potentials of every office entry node, office-major like the nodes.
        let office_pi: Vec<i64> = (0..self.entry_nodes())
            .map(|i| net.net.potential(coarse_count + i))
            .collect();
        let flow = CoarseFlow::read(&net, &coarse_candidates, coarse.parent.clone());
        drop(net);
        let seeds = self.seeds(
            &coarse,
            coarse_candidates,
            &office_pi,
            candidates,
            options.seed_arcs_per_zone,
        );
        let added = seeds.len();
        candidates.extend(seeds);
        Ok((added, Some(flow)))
    }

    /// Active zones merged by grid cell (same service, class, reach, entry and preference
    /// set), the cell growing until the coarse problem is a fraction of this one, each
    /// coarse zone at its members' centroid; `None` when nothing merges.
    fn coarse_zones(&self) -> Option<CoarseZones> {
        let mut cell_deg = SEED_CELL_DEG;
        let (parent, coarse_count) = loop {
            let mut ids: FxHashMap<(i64, i64, ZoneTraits), u32> =
                FxHashMap::with_capacity_and_hasher(self.active.len() / 2, Default::default());
            let mut parent = vec![u32::MAX; self.zones.len()];
            for &z in self.active {
                let zone = &self.zones[z as usize];
                let key = (
                    (zone.lat / cell_deg).floor() as i64,
                    (zone.lon / cell_deg).floor() as i64,
                    (
                        zone.service,
                        self.class_of_zone[z as usize] as i64,
                        zone.max_km.to_bits(),
                        zone.entry,
                        zone.preferred,
                    ),
                );
                let next = ids.len() as u32;
                parent[z as usize] = *ids.entry(key).or_insert(next);
            }
            if ids.len() * SEED_SHRINK <= self.active.len() || cell_deg >= 90.0 {
                break (parent, ids.len());
            }
            cell_deg *= 2.0;
        };
        if coarse_count >= self.active.len() {
            return None;
        }
        // Sum of unit vectors weighted by applicants, applicants, one member.
        let mut sum = vec![([0.0f64; 3], 0i64, 0u32); coarse_count];
        for &z in self.active {
            let zone = &self.zones[z as usize];
            let entry = &mut sum[parent[z as usize] as usize];
            for (acc, x) in entry.0.iter_mut().zip(zone.point) {
                *acc += x * zone.count as f64;
            }
            entry.1 += zone.count;
            entry.2 = z;
        }
        let zones: Vec<Zone> = sum
            .iter()
            .map(|&(v, count, member)| {
                let norm = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
                let template = &self.zones[member as usize];
                let (lat, lon) = if norm > 0.0 {
                    (
                        (v[2] / norm).clamp(-1.0, 1.0).asin().to_degrees(),
                        v[1].atan2(v[0]).to_degrees(),
                    )
                } else {
                    (template.lat, template.lon)
                };
                Zone {
                    lat,
                    lon,
                    point: unit_vector(lat, lon),
                    count,
                    ..template.clone()
                }
            })
            .collect();
        let class_of_zone: Vec<usize> = sum
            .iter()
            .map(|&(_, _, member)| self.class_of_zone[member as usize])
            .collect();
        Some(CoarseZones {
            parent,
            zones,
            class_of_zone,
        })
    }

    /// A coarse zone's candidates: the union of its members' offices, within its reach.
    fn coarse_candidates(
        &self,
        coarse: &CoarseZones,
        candidates: &[CandidateArc],
    ) -> Vec<CandidateArc> {
        let parent = &coarse.parent;
        let mut pairs: Vec<(u32, u32)> = candidates
            .iter()
            .filter(|c| parent[c.zone as usize] != u32::MAX)
            .map(|c| (parent[c.zone as usize], c.office))
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        pairs
            .into_iter()
            .filter_map(|(p, o)| {
                coarse.zones[p as usize]
                    .metres_to(&self.problem.offices[o as usize])
                    .map(|distance_m| CandidateArc {
                        zone: p,
                        office: o,
                        distance_m,
                    })
            })
            .collect()
    }

    /// For each fine zone, the offices of its coarse zone that rank within `SEED_MARGIN_M`
    /// of its best by `d(z,o) − π̂_o` (at most `cap`), less those it has already.
    fn seeds(
        &self,
        coarse: &CoarseZones,
        mut coarse_candidates: Vec<CandidateArc>,
        office_pi: &[i64],
        candidates: &[CandidateArc],
        cap: usize,
    ) -> Vec<CandidateArc> {
        let entries = self.entry_days.len();
        let coarse_count = coarse.zones.len();
        let parent = &coarse.parent;
        // Each coarse zone's offices: `coarse_candidates[start[p]..start[p + 1]]`.
        coarse_candidates.sort_unstable_by_key(|c| (c.zone, c.office));
        let mut start = vec![0usize; coarse_count + 1];
        for c in &coarse_candidates {
            start[c.zone as usize + 1] += 1;
        }
        for p in 0..coarse_count {
            start[p + 1] += start[p];
        }
        let mut have: Vec<u32> = Vec::new();
        let mut ranked: Vec<(i64, u32, i64)> = Vec::new();
        let mut seeds: Vec<CandidateArc> = Vec::new();
        let mut by_zone: Vec<(u32, u32)> = candidates.iter().map(|c| (c.zone, c.office)).collect();
        by_zone.sort_unstable();
        let mut cursor = 0usize;
        let mut zones_in_order: Vec<u32> = self.active.to_vec();
        zones_in_order.sort_unstable();
        for z in zones_in_order {
            have.clear();
            while cursor < by_zone.len() && by_zone[cursor].0 < z {
                cursor += 1;
            }
            while cursor < by_zone.len() && by_zone[cursor].0 == z {
                have.push(by_zone[cursor].1);
                cursor += 1;
            }
            let zone = &self.zones[z as usize];
            let p = parent[z as usize] as usize;
            ranked.clear();
            for c in &coarse_candidates[start[p]..start[p + 1]] {
                if let Some(d) = zone.metres_to(&self.problem.offices[c.office as usize]) {
                    let pi = office_pi[c.office as usize * entries + zone.entry];
                    ranked.push((d - pi, c.office, d));
                }
            }
            ranked.sort_unstable();
            let Some(&(best, _, _)) = ranked.first() else {
                continue;
            };
            let taken = ranked
                .iter()
                .take_while(|r| r.0 <= best.saturating_add(SEED_MARGIN_M))
                .filter(|r| !have.contains(&r.1))
                .take(cap);
            for &(_, office, distance_m) in taken {
                seeds.push(CandidateArc {
                    zone: z,
                    office,
                    distance_m,
                });
            }
        }
        seeds
    }

    /// Omitted arcs with negative reduced cost under the current potentials.
    fn price(&self, net: &FlowNet, travel_costs: bool, node_of_zone: &[u32]) -> Vec<CandidateArc> {
        let za = self.active.len();
        let entries = self.entry_days.len();
        let node_pi: Vec<i64> = (0..za + self.offices * entries)
            .map(|i| net.potential(i))
            .collect();
        // Highest office potential per service and entry day (`[service * entries +
        // entry]`): no omitted arc can beat it.
        let max_pi: Vec<i64> = self
            .service_offices
            .iter()
            .flat_map(|list| {
                let node_pi = &node_pi;
                (0..entries).map(move |entry| {
                    list.iter()
                        .map(|&o| node_pi[za + o as usize * entries + entry])
                        .max()
                        .unwrap_or(i64::MIN)
                })
            })
            .collect();
        // Per service and entry day, each index node's largest office potential below it.
        let sub_max: Vec<Vec<i64>> = (0..self.service_offices.len())
            .flat_map(|s| {
                let node_pi = &node_pi;
                let index = &self.indexes[s];
                (0..entries).map(move |entry| {
                    index.subtree_max(|o| node_pi[za + o as usize * entries + entry])
                })
            })
            .collect();
        // Zones are independent here: split them over the cores, keep their order.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = self.active.len().div_ceil(threads).max(PRICE_CHUNK_MIN);
        let price_chunk = |zones: &[u32]| {
            self.price_zones(
                zones,
                &node_pi,
                &max_pi,
                &sub_max,
                travel_costs,
                node_of_zone,
            )
        };
        if self.active.len() <= chunk {
            return price_chunk(self.active);
        }
        std::thread::scope(|scope| {
            let parts: Vec<_> = self
                .active
                .chunks(chunk)
                .map(|zones| scope.spawn(move || price_chunk(zones)))
                .collect();
            parts
                .into_iter()
                .flat_map(|part| part.join().expect("pricing thread panicked"))
                .collect()
        })
    }

    /// `price` for some of the zones, given every node's potential.
    fn price_zones(
        &self,
        active: &[u32],
        node_pi: &[i64],
        max_pi: &[i64],
        sub_max: &[Vec<i64>],
        travel_costs: bool,
        node_of_zone: &[u32],
    ) -> Vec<CandidateArc> {
        let za = self.active.len();
        let entries = self.entry_days.len();
        let mut found: Vec<(i64, CandidateArc)> = Vec::new();
        let mut hits = Vec::new();
        let per_zone = self.pricing_arcs_per_zone;
        for &z in active {
            let zi = z as usize;
            if self.zone_complete[zi] {
                continue;
            }
            let zone = &self.zones[zi];
            let office_pi = |o: usize| node_pi[za + o * entries + zone.entry];
            let pi_z = node_pi[node_of_zone[zi] as usize];
            let slack = max_pi[zone.service * entries + zone.entry].saturating_sub(pi_z);
            let radius_km = if travel_costs {
                // Omitted offices are at least (last candidate − 1 m) away (the 1 m covers
                // rounding ties); their reduced cost is then >= 0 when slack is that small.
                if slack < self.zone_last_m[zi] {
                    continue;
                }
                zone.max_km.min(slack as f64 / 1000.0 + 0.001)
            } else {
                if slack <= 0 {
                    continue;
                }
                zone.max_km
            };
            let radius_km = radius_km.min(std::f64::consts::PI * EARTH_RADIUS_KM);
            let index = &self.indexes[zone.service];
            if travel_costs {
                // Only offices whose potential beats the zone's by more than the distance.
                let sub_max = &sub_max[zone.service * entries + zone.entry];
                index.within_gaining(&zone.point, radius_km, pi_z, sub_max, &mut hits);
            } else {
                index.within(&zone.point, radius_km, &mut hits);
            }
            // Only the most negative few per zone and round: the rest are often priced out
            // by the next solve, and every extra arc slows every later pivot.
            let start = found.len();
            for &o in &hits {
                // What the arc's travel cost must stay under to price in; most offices in
                // the radius are ruled out by that without trigonometry (the chord is a
                // lower bound of the great-circle distance).
                let gain = office_pi(o as usize).saturating_sub(pi_z);
                if gain <= 0 {
                    continue;
                }
                if travel_costs {
                    let chord_m = dist2(&zone.point, &self.office_points[o as usize]).sqrt()
                        * EARTH_RADIUS_KM
                        * 1000.0;
                    if chord_m * (1.0 - 1e-9) - 1.0 >= gain as f64 {
                        continue;
                    }
                }
                let Some(d) = zone.metres_to(&self.problem.offices[o as usize]) else {
                    continue;
                };
                let cost = if travel_costs { d } else { 0 };
                let rc = cost + pi_z - office_pi(o as usize);
                if rc < 0 {
                    found.push((
                        rc,
                        CandidateArc {
                            zone: z,
                            office: o,
                            distance_m: d,
                        },
                    ));
                }
            }
            // Sorted whatever the order of the hits (the index's walk order is not part of
            // the answer).
            found[start..].sort_unstable_by_key(|x| (x.0, x.1.office));
            found.truncate(start + per_zone);
        }
        found.into_iter().map(|x| x.1).collect()
    }
}
