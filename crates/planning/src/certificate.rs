//! An allocation checked against its certificate, independently of the solver.
//!
//! The allocator's outcome is an integral solution of the applicant-level LP written out in
//! [`Certificate`]'s docs; the certificate is a dual solution (`y` per zone, a price per
//! office-day, a penalty per priority class). This module takes neither zones nor arcs from
//! the solver: it reads the problem, the assignment (office and day per applicant) and the
//! certificate, recomputes every cost with [`crate::allocator::cost`], and checks
//!
//! - **primal feasibility**: each assignment is a pair the applicant accepts (office within
//!   reach, offering the service, a preferred office if the applicant named any, a day with
//!   seats at or after the earliest day) and no office-day holds more than its seats;
//! - **dual feasibility**: prices >= 0, `y(a) <= penalty(a)` and `y(a) <= cost(a,o,d) +
//!   price(o,d)` over **every** pair the applicant accepts (every office within `max_km`,
//!   not only the arcs the solver kept), with exact integer arithmetic;
//! - **complementary slackness**: a seated applicant's `y` equals its pair's cost plus price,
//!   an unplaced one's equals its penalty, and an office-day with a positive price is full.
//!
//! Together these prove the assignment has the least `Σ cost + Σ penalty(unplaced)` of all
//! assignments (LP duality; the LP's constraint matrix is totally unimodular, so no
//! fractional solution does better either).
//!
//! **Priority order.** The allocator's objective is lexicographic: most applicants of the top
//! class, then of the next, …, then least cost. The penalties make that exact when every gap
//! between consecutive classes (and the lowest penalty itself) is at least
//! `B = (E × O + 1) × L + W + 1`, with `O` offices, `E` entry days (0 and the distinct
//! earliest days, each moved to the next day with seats), `L` the longest accepted pair's
//! travel cost and `W` the longest wait cost. Why: if a seated set with better class counts
//! existed, the sets of applicants that can be seated together form a matroid, so a single
//! exchange would do: seat one more applicant x, unseating at most one y of a lower class.
//! It travels along an alternating path of seats; removing sub-cycles (each of cost >= 0 at
//! an optimum) leaves a path that visits each (office, entry day) at most once, whose
//! travel cost is below B (days cancel except a free seat's, at most W). Its objective
//! change `< B + penalty(y) − penalty(x) <= 0` would then contradict the optimum. So
//! [`verify`] also checks those gaps; an optimum under penalties that fail them is reported
//! as such (the allocator's two-stage method, used only when stacked penalties overflow,
//! certifies the travel cost given the class counts but not the counts themselves).

use std::collections::HashMap;

use nobat_domain::geo::EARTH_RADIUS_KM;

use crate::allocator::cost::{distance_km, metres};
use crate::allocator::{AllocationProblem, Applicant, Certificate};

/// Violations described in full before the rest are only counted.
const MAX_DESCRIBED: usize = 20;

/// What a certificate proves about an assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub applicants: usize,
    pub placed: usize,
    /// Σ cost over seated applicants, recomputed here.
    pub total_cost_m: i64,
    /// Seated applicants per priority, highest priority first.
    pub placed_by_priority: Vec<(i32, usize)>,
    /// (applicant, office) pairs within reach whose dual constraint was checked.
    pub pairs_checked: u64,
    /// The smallest penalty gap the priority order needs (`B` in the module docs).
    pub penalty_gap_needed_m: i64,
}

/// Why the assignment is not proven optimal: the first violations, and how many there were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refuted {
    pub violations: Vec<String>,
    pub count: usize,
}

impl std::fmt::Display for Refuted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} violation(s)", self.count)?;
        for v in &self.violations {
            writeln!(f, "- {v}")?;
        }
        if self.count > self.violations.len() {
            writeln!(f, "- … and {} more", self.count - self.violations.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for Refuted {}

struct Violations {
    described: Vec<String>,
    count: usize,
}

impl Violations {
    fn add(&mut self, what: impl FnOnce() -> String) {
        self.count += 1;
        if self.described.len() < MAX_DESCRIBED {
            self.described.push(what());
        }
    }
}

/// An office's days with seats, ascending, and from each day on the cheapest `wait × day +
/// price` (a suffix minimum), so an applicant's best day at the office is one search.
struct OfficeDays {
    days: Vec<u32>,
    best_from: Vec<i64>,
}

impl OfficeDays {
    /// The cheapest `wait × day + price` over days >= `earliest`, if any has seats.
    fn best_from(&self, earliest: u32) -> Option<i64> {
        let i = self.days.partition_point(|&d| d < earliest);
        self.best_from.get(i).copied()
    }
}

/// Checks `assignment` (office and day per applicant, `None` = unplaced) against the
/// certificate; see the module docs for what passing proves.
pub fn verify(
    problem: &AllocationProblem,
    assignment: &[Option<(usize, u32)>],
    certificate: &Certificate,
) -> Result<Verified, Refuted> {
    let mut bad = Violations {
        described: Vec::new(),
        count: 0,
    };
    let refuted = |bad: Violations| Refuted {
        violations: bad.described,
        count: bad.count,
    };
    let applicants = &problem.applicants;
    if assignment.len() != applicants.len() || certificate.zone_of.len() != applicants.len() {
        bad.add(|| {
            format!(
                "{} applicants, {} assignments, {} zones of applicants",
                applicants.len(),
                assignment.len(),
                certificate.zone_of.len()
            )
        });
        return Err(refuted(bad));
    }
    let wait_m = metres(problem.wait_km_per_day);
    if certificate.wait_m_per_day != wait_m {
        bad.add(|| {
            format!(
                "the certificate's wait cost is {} m a day, the problem's {wait_m}",
                certificate.wait_m_per_day
            )
        });
    }

    let seats = priced_seats(problem, certificate, &mut bad);
    let office_days = office_days(problem.offices.len(), &seats, wait_m);
    let primal = primal(problem, assignment, &seats, wait_m, &mut bad);
    let dual = dual(
        problem,
        assignment,
        certificate,
        &seats,
        &office_days,
        &primal,
        &mut bad,
    );
    full_where_priced(problem, &seats, &primal.used, &mut bad);
    let gap_needed = priority_gaps(problem, certificate, wait_m, &dual, &mut bad);

    if bad.count > 0 {
        return Err(refuted(bad));
    }
    let mut placed_by_priority: Vec<(i32, usize)> = primal.placed_by_priority.into_iter().collect();
    placed_by_priority.sort_unstable_by_key(|p| std::cmp::Reverse(p.0));
    Ok(Verified {
        applicants: applicants.len(),
        placed: primal.placed,
        total_cost_m: primal.total_cost_m,
        placed_by_priority,
        pairs_checked: dual.pairs_checked,
        penalty_gap_needed_m: gap_needed,
    })
}

/// Seats and price per office-day: (seats, price).
type SeatPrices = HashMap<(usize, u32), (i64, i64)>;

/// The office-days with seats and the certificate's price of each (0 when it names none);
/// a price for a day without seats, or a negative one, is a violation.
fn priced_seats(
    problem: &AllocationProblem,
    certificate: &Certificate,
    bad: &mut Violations,
) -> SeatPrices {
    let mut seats: HashMap<(usize, u32), (i64, i64)> = HashMap::new();
    for s in problem.seats.iter().filter(|s| s.seats > 0) {
        seats.insert((s.office, s.day), (i64::from(s.seats), 0));
    }
    for &(o, day, price) in &certificate.office_day_price_m {
        match seats.get_mut(&(o, day)) {
            Some(entry) => entry.1 = price,
            None => bad.add(|| format!("a price for office {o} day {day}, which has no seats")),
        }
        if price < 0 {
            bad.add(|| format!("office {o} day {day}: negative price {price}"));
        }
    }
    seats
}

/// Each office's days with seats and their suffix minima of `wait × day + price`.
fn office_days(offices: usize, seats: &SeatPrices, wait_m: i64) -> Vec<OfficeDays> {
    let mut office_days: Vec<OfficeDays> = (0..offices)
        .map(|_| OfficeDays {
            days: Vec::new(),
            best_from: Vec::new(),
        })
        .collect();
    let mut by_office: Vec<(usize, u32, i64)> = seats
        .iter()
        .map(|(&(o, d), &(_, price))| (o, d, price))
        .collect();
    by_office.sort_unstable();
    for &(o, d, price) in &by_office {
        office_days[o].days.push(d);
        office_days[o].best_from.push(wait_m * i64::from(d) + price);
    }
    for od in &mut office_days {
        for i in (0..od.best_from.len().saturating_sub(1)).rev() {
            od.best_from[i] = od.best_from[i].min(od.best_from[i + 1]);
        }
    }

    office_days
}

/// What the primal check found: seats used, the cost of each placed applicant.
struct Primal {
    used: HashMap<(usize, u32), i64>,
    placed: usize,
    total_cost_m: i64,
    placed_by_priority: HashMap<i32, usize>,
    /// (cost, office, day) per applicant placed in an accepted seat.
    cost_of: Vec<Option<(i64, usize, u32)>>,
}

/// Primal feasibility: each placed applicant accepts its office and day, and no office-day
/// holds more than its seats.
fn primal(
    problem: &AllocationProblem,
    assignment: &[Option<(usize, u32)>],
    seats: &SeatPrices,
    wait_m: i64,
    bad: &mut Violations,
) -> Primal {
    let (applicants, offices) = (&problem.applicants, &problem.offices);
    let mut used: HashMap<(usize, u32), i64> = HashMap::new();
    let mut placed = 0usize;
    let mut total_cost_m = 0i64;
    let mut placed_by_priority: HashMap<i32, usize> = HashMap::new();
    let mut cost_of = vec![None; applicants.len()];
    for (i, (a, slot)) in applicants.iter().zip(assignment).enumerate() {
        let Some((o, day)) = *slot else { continue };
        let Some(office) = offices.get(o) else {
            bad.add(|| format!("applicant {}: office index {o} out of range", a.id));
            continue;
        };
        let Some(&(cap, _)) = seats.get(&(o, day)) else {
            bad.add(|| {
                format!(
                    "applicant {}: {} has no seats on day {day}",
                    a.id, office.id
                )
            });
            continue;
        };
        match travel_m(problem, a, o) {
            None => bad.add(|| format!("applicant {} does not accept office {}", a.id, office.id)),
            Some(_) if a.earliest_day.is_some_and(|e| day < e) => {
                bad.add(|| format!("applicant {} cannot come on day {day}", a.id))
            }
            Some(t) => {
                let n = used.entry((o, day)).or_insert(0);
                *n += 1;
                if *n == cap + 1 {
                    bad.add(|| format!("{} day {day} holds more than its {cap} seats", office.id));
                }
                let cost = t + wait_m * i64::from(day);
                cost_of[i] = Some((cost, o, day));
                placed += 1;
                total_cost_m += cost;
                *placed_by_priority.entry(a.priority).or_insert(0) += 1;
            }
        }
    }

    Primal {
        used,
        placed,
        total_cost_m,
        placed_by_priority,
        cost_of,
    }
}

/// What the dual check measured, for the priority check.
struct DualFound {
    pairs_checked: u64,
    /// The longest travel to an accepted office with seats.
    longest_m: i64,
    /// How many distinct entry days (snapped to seat days) the applicants have.
    entry_days: usize,
    last_seat_day: u32,
    priorities_seen: Vec<i32>,
}

/// Dual feasibility over every accepted pair within reach, and complementary slackness per
/// applicant (a seated one's potential is its seat's cost plus price, an unplaced one's the
/// penalty).
fn dual(
    problem: &AllocationProblem,
    assignment: &[Option<(usize, u32)>],
    certificate: &Certificate,
    seats: &SeatPrices,
    office_days: &[OfficeDays],
    primal: &Primal,
    bad: &mut Violations,
) -> DualFound {
    let (applicants, offices) = (&problem.applicants, &problem.offices);
    let cost_of = &primal.cost_of;
    let penalty: HashMap<i32, i64> = certificate.penalties.iter().copied().collect();
    let zone_y = |a: usize| -> Option<i64> {
        let z = certificate.zone_of[a] as usize;
        certificate.zone_potential_m.get(z).copied()
    };
    // Offices by latitude: an office more than max_km of latitude away is out of reach.
    let mut by_lat: Vec<(f64, usize)> = offices
        .iter()
        .enumerate()
        .map(|(i, o)| (o.lat, i))
        .collect();
    by_lat.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));

    // Applicants alike in everything the LP sees share their cheapest pair: computed once.
    type Key<'a> = (
        u64,
        u64,
        Option<&'a str>,
        u64,
        Option<u32>,
        Option<&'a [usize]>,
    );
    let mut cheapest: HashMap<Key, Option<(i64, i64)>> = HashMap::new();
    let mut pairs_checked = 0u64;
    let mut longest_m = 0i64;
    let mut entry_days: Vec<u32> = vec![0];
    let seat_days: Vec<u32> = {
        let mut d: Vec<u32> = seats.keys().map(|k| k.1).collect();
        d.sort_unstable();
        d.dedup();
        d
    };
    let mut priorities_seen: Vec<i32> = Vec::new();
    for (i, a) in applicants.iter().enumerate() {
        let max_km = a.max_km.or(problem.default_max_km).unwrap_or(f64::INFINITY);
        let key: Key = (
            (a.lat + 0.0).to_bits(),
            (a.lon + 0.0).to_bits(),
            a.service.as_deref(),
            max_km.to_bits(),
            a.earliest_day,
            a.preferred_offices.as_deref(),
        );
        let best = *cheapest.entry(key).or_insert_with(|| {
            let earliest = a.earliest_day.unwrap_or(0);
            let mut best: Option<(i64, i64)> = None; // (cheapest cost + price, longest travel)
            let mut consider = |o: usize| {
                let Some(t) = travel_m(problem, a, o) else {
                    return;
                };
                let Some(day_m) = office_days[o].best_from(earliest) else {
                    return;
                };
                pairs_checked += 1;
                let (c, l) = best.get_or_insert((i64::MAX, 0));
                *c = (*c).min(t + day_m);
                *l = (*l).max(t);
            };
            match &a.preferred_offices {
                Some(list) => list
                    .iter()
                    .copied()
                    .filter(|&o| o < offices.len())
                    .for_each(&mut consider),
                None if max_km.is_finite() => {
                    // Great-circle distance >= R × |Δlat|; the margin covers rounding.
                    let band = (max_km / EARTH_RADIUS_KM).to_degrees() * (1.0 + 1e-9) + 1e-9;
                    let lo = by_lat.partition_point(|x| x.0 < a.lat - band);
                    let hi = by_lat.partition_point(|x| x.0 <= a.lat + band);
                    by_lat[lo..hi].iter().for_each(|&(_, o)| consider(o));
                }
                None => (0..offices.len()).for_each(&mut consider),
            }
            best
        });
        let Some((cheapest_m, longest)) = best else {
            // Nothing the applicant accepts has seats: unplaced whatever the dual says.
            continue;
        };
        longest_m = longest_m.max(longest);
        let entry = snap(&seat_days, a.earliest_day.unwrap_or(0));
        if !entry_days.contains(&entry) {
            entry_days.push(entry);
        }
        if !priorities_seen.contains(&a.priority) {
            priorities_seen.push(a.priority);
        }
        let Some(y) = zone_y(i) else {
            bad.add(|| format!("applicant {}: zone out of range", a.id));
            continue;
        };
        let Some(&p) = penalty.get(&a.priority) else {
            bad.add(|| format!("no penalty for priority {}", a.priority));
            continue;
        };
        if y > p {
            bad.add(|| format!("applicant {}: y {y} exceeds the penalty {p}", a.id));
        }
        if y > cheapest_m {
            bad.add(|| {
                format!(
                    "applicant {}: y {y} exceeds its cheapest cost plus price {cheapest_m}",
                    a.id
                )
            });
        }
        match cost_of[i] {
            Some((cost, o, day)) => {
                let price = seats[&(o, day)].1;
                if y != cost + price {
                    bad.add(|| {
                        format!(
                            "applicant {} seated at {} day {day}: y {y} != cost {cost} + price {price}",
                            a.id, offices[o].id
                        )
                    });
                }
            }
            None if assignment[i].is_none() && y != p => {
                bad.add(|| format!("applicant {} unplaced: y {y} != penalty {p}", a.id));
            }
            None => {}
        }
    }
    DualFound {
        pairs_checked,
        longest_m,
        entry_days: entry_days.len(),
        last_seat_day: seat_days.last().copied().unwrap_or(0),
        priorities_seen,
    }
}

/// Complementary slackness on the seats' side: an office-day with a price is full.
fn full_where_priced(
    problem: &AllocationProblem,
    seats: &SeatPrices,
    used: &HashMap<(usize, u32), i64>,
    bad: &mut Violations,
) {
    let offices = &problem.offices;
    for (&(o, day), &(cap, price)) in seats {
        if price > 0 && used.get(&(o, day)).copied().unwrap_or(0) < cap {
            bad.add(|| {
                format!(
                    "{} day {day} has a price {price} but free seats",
                    offices[o].id
                )
            });
        }
    }
}

/// The priority order: each class's penalty at least B above the next (B from what the dual
/// check measured; see the module docs). Returns B.
fn priority_gaps(
    problem: &AllocationProblem,
    certificate: &Certificate,
    wait_m: i64,
    dual: &DualFound,
    bad: &mut Violations,
) -> i64 {
    let offices = &problem.offices;
    let penalty: HashMap<i32, i64> = certificate.penalties.iter().copied().collect();
    let mut priorities_seen = dual.priorities_seen.clone();
    let gap_needed = (|| {
        let entries = i128::try_from(dual.entry_days).ok()?;
        let wait_max = i128::from(wait_m) * i128::from(dual.last_seat_day);
        let b = (entries * offices.len() as i128 + 1) * i128::from(dual.longest_m) + wait_max + 1;
        i64::try_from(b).ok()
    })();
    let gap_needed = gap_needed.unwrap_or(i64::MAX);
    priorities_seen.sort_unstable_by(|a, b| b.cmp(a));
    let ladder: Vec<(i32, i64)> = priorities_seen
        .iter()
        .filter_map(|p| penalty.get(p).map(|&pen| (*p, pen)))
        .collect();
    for (i, &(p, pen)) in ladder.iter().enumerate() {
        let below = ladder.get(i + 1).map_or(0, |x| x.1);
        if i128::from(pen) - i128::from(below) < i128::from(gap_needed) {
            bad.add(|| {
                format!(
                    "penalty of priority {p} ({pen}) is not {gap_needed} above the next ({below}): \
                     it does not certify the priority order"
                )
            });
        }
    }

    gap_needed
}

/// The travel cost from applicant `a` to office `o` when the applicant accepts the office
/// (within reach, offers the service, among the preferred offices if any), else `None`.
fn travel_m(problem: &AllocationProblem, a: &Applicant, o: usize) -> Option<i64> {
    let office = &problem.offices[o];
    if let Some(list) = &a.preferred_offices {
        if !list.contains(&o) {
            return None;
        }
    }
    if let (Some(service), Some(offered)) = (&a.service, &office.services) {
        if !offered.contains(service) {
            return None;
        }
    }
    let max_km = a.max_km.or(problem.default_max_km).unwrap_or(f64::INFINITY);
    let km = distance_km(a.lat, a.lon, office);
    (km <= max_km).then(|| metres(km))
}

/// The first day with seats at or after `e` (one past the last when none): earliest days
/// that differ only by seatless days reach the same seats, so they count as one entry day.
fn snap(seat_days: &[u32], e: u32) -> u32 {
    if e == 0 {
        return 0;
    }
    match seat_days.get(seat_days.partition_point(|&d| d < e)) {
        Some(&d) => d,
        None => seat_days.last().map_or(0, |&d| d + 1),
    }
}
