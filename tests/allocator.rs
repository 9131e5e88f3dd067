//! The allocator against an independent LP (good_lp + microlp) on random small instances, plus
//! feasibility, determinism and the lottery.

use std::collections::{BTreeSet, HashMap};

use good_lp::{
    constraint, default_solver, variable, Expression, ProblemVariables, Solution, SolverModel,
    Variable,
};
use nobat::domain::geo::haversine_km;
use nobat::planning::allocator::{
    allocate, lottery_digest, AllocationProblem, Applicant, FlowSolver, OfficeDaySeats, OfficeSite,
    Outcome, SolverOptions, UnassignedReason,
};
use nobat::planning::certificate::verify;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn metres(km: f64) -> i64 {
    (km * 1000.0).round() as i64
}

fn random_problem(rng: &mut ChaCha8Rng) -> AllocationProblem {
    let office_count = rng.gen_range(1..8);
    let days = rng.gen_range(1..4);
    let services = ["first_issuance", "replacement"];
    let offices: Vec<OfficeSite> = (0..office_count)
        .map(|i| OfficeSite {
            id: format!("O{i}"),
            lat: rng.gen_range(35.0..35.8),
            lon: rng.gen_range(51.0..51.8),
            services: match rng.gen_range(0..4) {
                0 => Some(BTreeSet::from([services[0].to_string()])),
                1 => Some(BTreeSet::from([services[1].to_string()])),
                _ => None,
            },
            stations: Some(rng.gen_range(1..3)),
            province: Some(if i % 2 == 0 { "tehran" } else { "alborz" }.into()),
        })
        .collect();
    let mut seats = Vec::new();
    for o in 0..office_count {
        for day in 0..days {
            if rng.gen_bool(0.8) {
                seats.push(OfficeDaySeats {
                    office: o,
                    day,
                    seats: rng.gen_range(0..5),
                });
            }
        }
    }
    let n = rng.gen_range(1..40);
    let mut applicants: Vec<Applicant> = Vec::new();
    let classes = rng.gen_range(1..4);
    for i in 0..n {
        // Reuse an earlier place now and then, so zones collapse several applicants.
        let (lat, lon) = if i > 0 && rng.gen_bool(0.3) {
            let j = rng.gen_range(0..applicants.len());
            (applicants[j].lat, applicants[j].lon)
        } else {
            (rng.gen_range(34.9..35.9), rng.gen_range(50.9..51.9))
        };
        applicants.push(Applicant {
            id: format!("A{i:03}"),
            lat,
            lon,
            priority: rng.gen_range(0..classes),
            max_km: if rng.gen_bool(0.3) {
                Some(rng.gen_range(5.0..60.0))
            } else {
                None
            },
            service: match rng.gen_range(0..3) {
                0 => Some(services[0].into()),
                1 => Some(services[1].into()),
                _ => None,
            },
            registered_at: if rng.gen_bool(0.5) {
                Some(rng.gen_range(0..3))
            } else {
                None
            },
            province: Some("tehran".into()),
            // Now and then past the last day, so nobody can place them.
            earliest_day: rng.gen_bool(0.3).then(|| rng.gen_range(0..=days)),
            preferred_offices: rng.gen_bool(0.2).then(|| {
                (0..rng.gen_range(1..3))
                    .map(|_| rng.gen_range(0..office_count))
                    .collect()
            }),
        });
    }
    AllocationProblem {
        offices,
        seats,
        applicants,
        wait_km_per_day: [0.0, 2.5, 5.0, 40.0][rng.gen_range(0..4)],
        default_max_km: if rng.gen_bool(0.5) { Some(70.0) } else { None },
        lottery_seed: "seed".into(),
    }
}

/// Whether the applicant accepts office `o` at all (its preferred offices, if any).
fn accepts(a: &Applicant, o: usize) -> bool {
    a.preferred_offices
        .as_ref()
        .is_none_or(|list| list.contains(&o))
}

/// Distance to office `o` when the applicant may be placed there (on some day).
fn eligible(p: &AllocationProblem, a: &Applicant, o: usize) -> Option<f64> {
    let office = &p.offices[o];
    let km = haversine_km(a.lat, a.lon, office.lat, office.lon);
    let max_km = a.max_km.or(p.default_max_km).unwrap_or(f64::INFINITY);
    let service_ok = match (&a.service, &office.services) {
        (Some(s), Some(set)) => set.contains(s),
        _ => true,
    };
    (km <= max_km && service_ok && accepts(a, o)).then_some(km)
}

/// One LP over the eligible (applicant, seat row) pairs: `weights` per pair, the fixed class
/// counts as `>=` constraints. Returns the optimal objective value.
fn solve_lp(
    p: &AllocationProblem,
    pairs: &[(usize, usize)],
    weights: &[f64],
    maximise: bool,
    fixed: &[(i32, i64)],
) -> f64 {
    let mut vars = ProblemVariables::new();
    let xs: Vec<Variable> = pairs
        .iter()
        .map(|_| vars.add(variable().min(0.0).max(1.0)))
        .collect();
    let objective: Expression = xs.iter().zip(weights).map(|(&x, &w)| w * x).sum();
    let mut model = if maximise {
        vars.maximise(objective).using(default_solver)
    } else {
        vars.minimise(objective).using(default_solver)
    };
    let sum_where = |keep: &dyn Fn(&(usize, usize)) -> bool| -> Expression {
        pairs
            .iter()
            .zip(&xs)
            .filter(|(pair, _)| keep(pair))
            .map(|(_, &x)| x)
            .sum()
    };
    for i in 0..p.applicants.len() {
        let e = sum_where(&|pair| pair.0 == i);
        model = model.with(constraint!(e <= 1));
    }
    for (j, s) in p.seats.iter().enumerate() {
        let e = sum_where(&|pair| pair.1 == j);
        model = model.with(constraint!(e <= s.seats as f64));
    }
    for &(class, count) in fixed {
        let e = sum_where(&|pair| p.applicants[pair.0].priority == class);
        model = model.with(constraint!(e >= count as f64));
    }
    let solution = model.solve().expect("the LP solves");
    xs.iter()
        .zip(weights)
        .map(|(&x, &w)| w * solution.value(x))
        .sum()
}

/// Lexicographic LP: maximise each class's assigned count in turn (top class first), fix it,
/// then minimise the rounded cost. Returns (assigned per class, top first; cost in metres).
fn lp_optimum(p: &AllocationProblem, classes: &[i32]) -> (Vec<i64>, i64) {
    let wait_m = metres(p.wait_km_per_day);
    let mut pairs = Vec::new();
    let mut costs = Vec::new();
    for (i, a) in p.applicants.iter().enumerate() {
        for (j, s) in p.seats.iter().enumerate() {
            if s.seats == 0 {
                continue;
            }
            if s.day < a.earliest_day.unwrap_or(0) {
                continue;
            }
            if let Some(km) = eligible(p, a, s.office) {
                pairs.push((i, j));
                costs.push((metres(km) + wait_m * s.day as i64) as f64);
            }
        }
    }
    let mut fixed: Vec<(i32, i64)> = Vec::new();
    let mut per_class = Vec::new();
    for &class in classes {
        let weights: Vec<f64> = pairs
            .iter()
            .map(|&(i, _)| f64::from(u8::from(p.applicants[i].priority == class)))
            .collect();
        let v = solve_lp(p, &pairs, &weights, true, &fixed);
        let count = v.round() as i64;
        assert!(
            (v - count as f64).abs() < 1e-6,
            "LP count not integral: {v}"
        );
        fixed.push((class, count));
        per_class.push(count);
    }
    let cost = solve_lp(p, &pairs, &costs, false, &fixed);
    let cost_m = cost.round() as i64;
    assert!(
        (cost - cost_m as f64).abs() < 1e-3,
        "LP cost not integral: {cost}"
    );
    (per_class, cost_m)
}

fn check_feasible(p: &AllocationProblem, outcomes: &[Outcome]) {
    let mut used: HashMap<(usize, u32), u32> = HashMap::new();
    let mut seats_seen: HashMap<(usize, u32), BTreeSet<u32>> = HashMap::new();
    for (a, out) in p.applicants.iter().zip(outcomes) {
        match out {
            Outcome::Assigned(s) => {
                assert!(
                    eligible(p, a, s.office).is_some(),
                    "{} placed at ineligible {}",
                    a.id,
                    p.offices[s.office].id
                );
                assert!(
                    s.day >= a.earliest_day.unwrap_or(0),
                    "{} placed on day {} before their earliest day",
                    a.id,
                    s.day
                );
                *used.entry((s.office, s.day)).or_default() += 1;
                assert!(
                    seats_seen
                        .entry((s.office, s.day))
                        .or_default()
                        .insert(s.seat),
                    "seat given twice"
                );
            }
            Outcome::Unassigned(reason) => {
                let any_in_reach = p.offices.iter().enumerate().any(|(i, o)| {
                    let max_km = a.max_km.or(p.default_max_km).unwrap_or(f64::INFINITY);
                    accepts(a, i) && haversine_km(a.lat, a.lon, o.lat, o.lon) <= max_km
                });
                let any_eligible = (0..p.offices.len()).any(|o| eligible(p, a, o).is_some());
                match reason {
                    UnassignedReason::NoOfficeWithinMaxKm => assert!(!any_in_reach),
                    UnassignedReason::ServiceNotOffered => {
                        assert!(any_in_reach && !any_eligible)
                    }
                    UnassignedReason::NoCapacity => assert!(any_eligible),
                }
            }
        }
    }
    for s in &p.seats {
        let u = used.get(&(s.office, s.day)).copied().unwrap_or(0);
        assert!(u <= s.seats, "office-day over capacity");
    }
}

/// An office offering every service, with no station count or province.
fn plain_site(id: &str, lat: f64, lon: f64) -> OfficeSite {
    OfficeSite {
        id: id.into(),
        lat,
        lon,
        services: None,
        stations: None,
        province: None,
    }
}

#[test]
fn random_instances_match_the_lexicographic_lp_optimum() {
    let mut rng = ChaCha8Rng::seed_from_u64(20_260_101);
    // Coverage counters: the instances must exercise pricing, classes and every reason.
    let (mut priced, mut multi_class, mut seeded, mut constrained) = (0, 0, 0, 0);
    let mut reasons: BTreeSet<UnassignedReason> = BTreeSet::new();
    let cases: u64 = std::env::var("NOBAT_LP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    for case in 0..cases {
        let p = random_problem(&mut rng);
        let options = SolverOptions {
            candidates_per_zone: rng.gen_range(1..4),
            force_two_stage: case % 3 == 0,
            // Half the cases start from a coarse problem's seeds, however small.
            seed_min_zones: if case % 2 == 1 { 1 } else { usize::MAX },
            seed_arcs_per_zone: 1 + case as usize % 3,
            ..SolverOptions::default()
        };
        let alloc = allocate(&p, &options).unwrap_or_else(|e| panic!("case {case}: {e}"));
        seeded += usize::from(alloc.stats.arcs_added_by_seeding > 0);
        check_feasible(&p, &alloc.outcomes);
        constrained += usize::from(p.applicants.iter().zip(&alloc.outcomes).any(|(a, o)| {
            matches!(o, Outcome::Assigned(_))
                && (a.earliest_day.unwrap_or(0) > 0 || a.preferred_offices.is_some())
        }));
        let mut classes: Vec<i32> = p
            .applicants
            .iter()
            .map(|a| a.priority)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        classes.reverse();
        let (lp_counts, lp_cost) = lp_optimum(&p, &classes);
        let ours: Vec<i64> = classes
            .iter()
            .map(|&c| {
                p.applicants
                    .iter()
                    .zip(&alloc.outcomes)
                    .filter(|(a, o)| a.priority == c && matches!(o, Outcome::Assigned(_)))
                    .count() as i64
            })
            .collect();
        assert_eq!(ours, lp_counts, "case {case}: assigned per class");
        assert_eq!(alloc.stats.total_cost_m, lp_cost, "case {case}: cost");
        priced += usize::from(alloc.stats.arcs_added_by_pricing > 0);
        multi_class += usize::from(alloc.stats.priority_classes > 1);
        reasons.extend(alloc.outcomes.iter().filter_map(|o| match o {
            Outcome::Unassigned(r) => Some(*r),
            Outcome::Assigned(_) => None,
        }));
    }
    assert!(priced >= 10, "pricing added arcs in only {priced} cases");
    assert!(multi_class >= 30, "{multi_class} multi-class cases");
    assert!(
        constrained >= 30,
        "someone with an earliest day or preferred offices placed in only {constrained} cases"
    );
    assert!(
        seeded >= 20,
        "coarse seeds added arcs in only {seeded} cases"
    );
    assert_eq!(reasons.len(), UnassignedReason::ALL.len(), "{reasons:?}");
}

/// Office and day per applicant, as the certificate check reads an assignment.
fn office_days(outcomes: &[Outcome]) -> Vec<Option<(usize, u32)>> {
    outcomes
        .iter()
        .map(|o| match o {
            Outcome::Assigned(s) => Some((s.office, s.day)),
            Outcome::Unassigned(_) => None,
        })
        .collect()
}

#[test]
fn every_solver_s_certificate_verifies_and_tampering_is_caught() {
    let mut rng = ChaCha8Rng::seed_from_u64(20_261_205);
    let (mut broken_potentials, mut broken_assignments, mut checked) = (0, 0, 0);
    for case in 0..120u64 {
        let p = random_problem(&mut rng);
        for mut options in every_solver(rng.gen_range(1..4)) {
            options.seed_min_zones = if case % 2 == 1 { 1 } else { usize::MAX };
            let alloc = allocate(&p, &options).unwrap_or_else(|e| panic!("case {case}: {e}"));
            let assignment = office_days(&alloc.outcomes);
            let cert = &alloc.certificate;
            match verify(&p, &assignment, cert) {
                Ok(v) => {
                    checked += 1;
                    assert_eq!(v.total_cost_m, alloc.stats.total_cost_m, "case {case}");
                    let placed = assignment.iter().filter(|a| a.is_some()).count();
                    assert_eq!(v.placed, placed, "case {case}");
                }
                // The two-stage method proves the cost given the class counts, not the counts.
                Err(e) if options.force_two_stage => assert!(
                    e.violations.iter().all(|v| v.contains("priority order")),
                    "case {case} {options:?}: {e}"
                ),
                Err(e) => panic!("case {case} {options:?}: {e}"),
            }
            if options.force_two_stage {
                continue;
            }
            let Some(seated) = assignment.iter().position(Option::is_some) else {
                continue;
            };
            // One zone's potential one metre off.
            let mut bad = cert.clone();
            bad.zone_potential_m[bad.zone_of[seated] as usize] += 1;
            assert!(verify(&p, &assignment, &bad).is_err(), "case {case}: y + 1");
            let mut bad = cert.clone();
            bad.zone_potential_m[bad.zone_of[seated] as usize] -= 1;
            assert!(verify(&p, &assignment, &bad).is_err(), "case {case}: y - 1");
            // A price raised where it has no effect on anyone's cheapest pair still breaks
            // slackness or someone's equality.
            let (o, day) = assignment[seated].unwrap();
            let mut bad = cert.clone();
            for x in bad.office_day_price_m.iter_mut() {
                if (x.0, x.1) == (o, day) {
                    x.2 += 1;
                }
            }
            assert!(
                verify(&p, &assignment, &bad).is_err(),
                "case {case}: price + 1"
            );
            broken_potentials += 1;
            // The seated applicant unplaced, or moved to another day of theirs.
            let mut moved = assignment.clone();
            moved[seated] = None;
            assert!(verify(&p, &moved, cert).is_err(), "case {case}: unplaced");
            let other = p.seats.iter().find(|s| {
                s.seats > 0
                    && (s.office, s.day) != (o, day)
                    && eligible(&p, &p.applicants[seated], s.office).is_some()
                    && s.day >= p.applicants[seated].earliest_day.unwrap_or(0)
            });
            if let Some(s) = other {
                let mut moved = assignment.clone();
                moved[seated] = Some((s.office, s.day));
                // Passing would prove it another optimum: then it costs the same.
                match verify(&p, &moved, cert) {
                    Ok(v) => assert_eq!(v.total_cost_m, alloc.stats.total_cost_m, "case {case}"),
                    Err(_) => broken_assignments += 1,
                }
            }
        }
    }
    assert!(checked >= 300, "{checked} certificates verified");
    assert!(broken_potentials >= 100, "{broken_potentials}");
    assert!(broken_assignments >= 50, "{broken_assignments}");
}

#[test]
fn nearest_offices_full_forces_pricing_to_reach_further() {
    // Everyone lives next to office N (one seat); F is 30 km away with room.
    let p = AllocationProblem {
        offices: vec![plain_site("N", 35.70, 51.40), plain_site("F", 35.97, 51.40)],
        seats: vec![
            OfficeDaySeats {
                office: 0,
                day: 0,
                seats: 1,
            },
            OfficeDaySeats {
                office: 1,
                day: 0,
                seats: 10,
            },
        ],
        applicants: (0..5)
            .map(|i| Applicant {
                id: format!("A{i}"),
                lat: 35.70 + i as f64 * 0.001,
                lon: 51.40,
                priority: 0,
                max_km: None,
                service: None,
                registered_at: None,
                province: None,
                earliest_day: None,
                preferred_offices: None,
            })
            .collect(),
        wait_km_per_day: 5.0,
        default_max_km: Some(100.0),
        lottery_seed: "s".into(),
    };
    for options in every_solver(1) {
        let solver = options.solver;
        let alloc = allocate(&p, &options).unwrap();
        let assigned = alloc
            .outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Assigned(_)))
            .count();
        assert_eq!(assigned, 5, "{solver:?}");
        assert!(alloc.stats.arcs_added_by_pricing >= 4, "{solver:?}");
    }
}

/// Each exact solver, with stacked penalties and with the two-stage method, starting from
/// `k` nearest candidates per zone.
fn every_solver(k: usize) -> impl Iterator<Item = SolverOptions> {
    [
        FlowSolver::NetworkSimplex,
        FlowSolver::CostScaling,
        FlowSolver::OfficePaths,
    ]
    .into_iter()
    .flat_map(move |solver| {
        [false, true].map(|force_two_stage| SolverOptions {
            candidates_per_zone: k,
            solver,
            force_two_stage,
            ..SolverOptions::default()
        })
    })
}

/// Assigned applicants per class, top class first.
fn class_counts(p: &AllocationProblem, outcomes: &[Outcome], classes: &[i32]) -> Vec<i64> {
    classes
        .iter()
        .map(|&c| {
            p.applicants
                .iter()
                .zip(outcomes)
                .filter(|(a, o)| a.priority == c && matches!(o, Outcome::Assigned(_)))
                .count() as i64
        })
        .collect()
}

#[test]
fn all_three_solvers_match_each_other_and_the_lp() {
    let mut rng = ChaCha8Rng::seed_from_u64(20_260_505);
    let (mut priced, mut two_stage, mut short, mut seeded) = (0, 0, 0, 0);
    for case in 0..150u64 {
        let mut p = random_problem(&mut rng);
        // A third of the cases: everyone competes for one office's few seats first, so the
        // nearest offices are full and pricing must reach further.
        if case % 3 == 1 && !p.offices.is_empty() {
            let (lat, lon) = (p.offices[0].lat, p.offices[0].lon);
            for a in p.applicants.iter_mut().step_by(2) {
                a.lat = lat + 0.001;
                a.lon = lon;
            }
        }
        let force_two_stage = case % 2 == 0;
        let base = SolverOptions {
            candidates_per_zone: rng.gen_range(1..4),
            force_two_stage,
            seed_min_zones: if case % 4 >= 2 { 1 } else { usize::MAX },
            ..SolverOptions::default()
        };
        let solve = |solver: FlowSolver| {
            allocate(&p, &SolverOptions { solver, ..base })
                .unwrap_or_else(|e| panic!("case {case} {solver:?}: {e}"))
        };
        let simplex = solve(FlowSolver::NetworkSimplex);
        let scaling = solve(FlowSolver::CostScaling);
        check_feasible(&p, &scaling.outcomes);
        let paths = solve(FlowSolver::OfficePaths);
        check_feasible(&p, &paths.outcomes);
        let mut classes: Vec<i32> = p
            .applicants
            .iter()
            .map(|a| a.priority)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        classes.reverse();
        let (lp_counts, lp_cost) = lp_optimum(&p, &classes);
        let ours = class_counts(&p, &scaling.outcomes, &classes);
        assert_eq!(ours, lp_counts, "case {case}: assigned per class vs LP");
        assert_eq!(
            scaling.stats.total_cost_m, lp_cost,
            "case {case}: cost vs LP"
        );
        assert_eq!(
            ours,
            class_counts(&p, &simplex.outcomes, &classes),
            "case {case}: assigned per class vs simplex"
        );
        assert_eq!(
            scaling.stats.total_cost_m, simplex.stats.total_cost_m,
            "case {case}: cost vs simplex"
        );
        assert_eq!(
            ours,
            class_counts(&p, &paths.outcomes, &classes),
            "case {case}: assigned per class, office paths vs LP"
        );
        assert_eq!(
            paths.stats.total_cost_m, lp_cost,
            "case {case}: cost, office paths vs LP"
        );
        priced += usize::from(scaling.stats.arcs_added_by_pricing > 0);
        seeded += usize::from(paths.stats.arcs_added_by_seeding > 0);
        two_stage += usize::from(force_two_stage && scaling.stats.priority_classes > 1);
        short += usize::from(ours.iter().sum::<i64>() < p.applicants.len() as i64);
    }
    assert!(priced >= 10, "pricing added arcs in only {priced} cases");
    assert!(two_stage >= 20, "{two_stage} multi-class two-stage cases");
    assert!(short >= 30, "{short} cases with someone unassigned");
    assert!(
        seeded >= 20,
        "coarse seeds added arcs in only {seeded} cases"
    );
}

#[test]
fn same_seed_same_allocation_and_lottery_is_rechecked() {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut p = random_problem(&mut rng);
    // One office, one day, many equal applicants: the lottery alone orders the seats.
    p.offices.truncate(1);
    p.offices[0].services = None;
    p.offices[0].stations = Some(2);
    p.seats = vec![OfficeDaySeats {
        office: 0,
        day: 0,
        seats: 100,
    }];
    for a in p.applicants.iter_mut() {
        a.priority = 0;
        a.registered_at = Some(7);
        a.max_km = None;
        a.service = None;
        a.earliest_day = None;
        a.preferred_offices = None;
    }
    p.default_max_km = None;
    let first = allocate(&p, &SolverOptions::default()).unwrap();
    let second = allocate(&p, &SolverOptions::default()).unwrap();
    assert_eq!(first, second);
    let mut by_seat: Vec<(u32, [u8; 32], u32)> = p
        .applicants
        .iter()
        .zip(&first.outcomes)
        .map(|(a, o)| match o {
            Outcome::Assigned(s) => (s.seat, lottery_digest(&p.lottery_seed, &a.id), s.slot),
            Outcome::Unassigned(r) => panic!("{} unassigned: {r}", a.id),
        })
        .collect();
    by_seat.sort();
    for w in by_seat.windows(2) {
        assert!(w[0].1 < w[1].1, "seat order follows the lottery digest");
    }
    for (seat, _, slot) in &by_seat {
        assert_eq!(*slot, seat / 2);
    }
    p.lottery_seed = "another".into();
    let third = allocate(&p, &SolverOptions::default()).unwrap();
    assert_ne!(first.outcomes, third.outcomes);
}

/// Beyond what the LP can check: a city-sized instance with earliest days and preferred
/// offices, where the nearest offices run out, solved with and without coarse seeds, with
/// one and with many nearest candidates, and by every solver: one optimum.
#[test]
fn entry_days_keep_pricing_and_seeding_exact_at_city_scale() {
    let mut rng = ChaCha8Rng::seed_from_u64(7_070);
    let offices: Vec<OfficeSite> = (0..60)
        .map(|i| OfficeSite {
            id: format!("O{i}"),
            lat: rng.gen_range(35.5..35.9),
            lon: rng.gen_range(51.2..51.6),
            services: None,
            stations: Some(2),
            province: None,
        })
        .collect();
    let mut seats = Vec::new();
    for office in 0..offices.len() {
        for day in 0..6 {
            seats.push(OfficeDaySeats {
                office,
                day,
                seats: rng.gen_range(0..12),
            });
        }
    }
    // Crowded around the centre, so the nearest offices fill and people go further.
    let applicants: Vec<Applicant> = (0..3_000)
        .map(|i| Applicant {
            id: format!("A{i}"),
            lat: 35.7 + rng.gen_range(-0.06..0.06f64),
            lon: 51.4 + rng.gen_range(-0.06..0.06f64),
            priority: i32::from(rng.gen_bool(0.1)),
            max_km: None,
            service: None,
            registered_at: None,
            province: None,
            earliest_day: rng.gen_bool(0.4).then(|| rng.gen_range(0..7)),
            preferred_offices: rng
                .gen_bool(0.05)
                .then(|| vec![rng.gen_range(0..60), rng.gen_range(0..60)]),
        })
        .collect();
    let p = AllocationProblem {
        offices,
        seats,
        applicants,
        wait_km_per_day: 3.0,
        default_max_km: Some(60.0),
        lottery_seed: "s".into(),
    };
    let mut results = Vec::new();
    for (solver, k, seed_min_zones) in [
        (FlowSolver::NetworkSimplex, 1, usize::MAX),
        (FlowSolver::NetworkSimplex, 1, 1),
        (FlowSolver::NetworkSimplex, 12, usize::MAX),
        (FlowSolver::CostScaling, 2, 1),
        (FlowSolver::OfficePaths, 3, usize::MAX),
    ] {
        let options = SolverOptions {
            solver,
            candidates_per_zone: k,
            seed_min_zones,
            ..SolverOptions::default()
        };
        let alloc = allocate(&p, &options).unwrap();
        check_feasible(&p, &alloc.outcomes);
        let placed = alloc
            .outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Assigned(_)))
            .count();
        if seed_min_zones == 1 {
            assert!(alloc.stats.arcs_added_by_seeding > 0, "{solver:?}");
        }
        if k == 1 {
            assert!(alloc.stats.arcs_added_by_pricing > 0, "{solver:?}");
        }
        results.push((placed, alloc.stats.total_cost_m));
    }
    assert!(results[0].0 < p.applicants.len(), "seats must run short");
    assert!(
        results.iter().all(|r| *r == results[0]),
        "different optima: {results:?}"
    );
}

#[test]
fn earliest_days_and_preferred_offices_bind() {
    // N is next to everyone, with one seat on day 0 and one on day 2; F is 20 km north; R
    // is next door but offers only replacements.
    let site = |id: &str, lat: f64, service: Option<&str>| OfficeSite {
        id: id.into(),
        lat,
        lon: 51.40,
        services: service.map(|s| BTreeSet::from([s.to_string()])),
        stations: None,
        province: None,
    };
    let person =
        |id: &str, priority, earliest_day, preferred_offices: Option<Vec<usize>>| Applicant {
            id: id.into(),
            lat: 35.70,
            lon: 51.40,
            priority,
            max_km: None,
            service: Some("first_issuance".into()),
            registered_at: None,
            province: None,
            earliest_day,
            preferred_offices,
        };
    let seats = |office, day, seats| OfficeDaySeats { office, day, seats };
    let mut unreachable = person("unreachable", 0, None, Some(vec![1]));
    unreachable.max_km = Some(5.0);
    let p = AllocationProblem {
        offices: vec![
            site("N", 35.70, None),
            site("F", 35.88, None),
            site("R", 35.701, Some("replacement")),
        ],
        seats: vec![
            seats(0, 0, 1),
            seats(0, 2, 1),
            seats(1, 0, 5),
            seats(2, 0, 5),
        ],
        applicants: vec![
            // Top class, so first in N's seat order, but cannot come before day 2.
            person("late", 1, Some(2), None),
            person("early", 0, None, None),
            // Only F will do, though N is closer.
            person("far", 0, None, Some(vec![1])),
            person("replacement-office-only", 0, None, Some(vec![2])),
            person("after-the-horizon", 0, Some(9), None),
            unreachable,
        ],
        wait_km_per_day: 5.0,
        default_max_km: Some(100.0),
        lottery_seed: "s".into(),
    };
    for options in every_solver(1) {
        let solver = options.solver;
        let alloc = allocate(&p, &options).unwrap();
        check_feasible(&p, &alloc.outcomes);
        let placed = |i: usize| match alloc.outcomes[i] {
            Outcome::Assigned(s) => Ok((p.offices[s.office].id.as_str(), s.day)),
            Outcome::Unassigned(r) => Err(r),
        };
        assert_eq!(placed(0), Ok(("N", 2)), "{solver:?}");
        assert_eq!(placed(1), Ok(("N", 0)), "{solver:?}");
        assert_eq!(placed(2), Ok(("F", 0)), "{solver:?}");
        assert_eq!(placed(3), Err(UnassignedReason::ServiceNotOffered));
        assert_eq!(placed(4), Err(UnassignedReason::NoCapacity));
        assert_eq!(placed(5), Err(UnassignedReason::NoOfficeWithinMaxKm));
        // Office paths cannot take entry days: the simplex stands in, and says so.
        let expected = match solver {
            FlowSolver::OfficePaths => FlowSolver::NetworkSimplex,
            other => other,
        };
        assert_eq!(alloc.stats.solver, expected);
    }
}

#[test]
fn earliest_days_between_seat_days_share_one_zone() {
    // Seats only on days 0 and 10: asking for day 1 or day 9 reaches the same seats.
    let p = AllocationProblem {
        offices: vec![plain_site("O", 35.7, 51.4)],
        seats: vec![
            OfficeDaySeats {
                office: 0,
                day: 0,
                seats: 5,
            },
            OfficeDaySeats {
                office: 0,
                day: 10,
                seats: 5,
            },
        ],
        applicants: (0..12u32)
            .map(|i| Applicant {
                id: format!("A{i:02}"),
                lat: 35.7,
                lon: 51.4,
                earliest_day: match i {
                    0 | 1 => None,
                    11 => Some(11),
                    day => Some(day - 1),
                },
                ..Applicant::default()
            })
            .collect(),
        wait_km_per_day: 1.0,
        default_max_km: None,
        lottery_seed: "s".into(),
    };
    let alloc = allocate(&p, &SolverOptions::default()).unwrap();
    check_feasible(&p, &alloc.outcomes);
    // Anytime; days 1..=9 (all meaning day 10); past the last seat day.
    assert_eq!(alloc.stats.zones, 3);
    let on_day = |day: u32| {
        alloc
            .outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Assigned(s) if s.day == day))
            .count()
    };
    assert_eq!((on_day(0), on_day(10)), (2, 5));
}

#[test]
fn higher_priority_class_wins_the_last_seat() {
    let mk = |id: &str, priority| Applicant {
        id: id.into(),
        lat: 35.7,
        lon: 51.4,
        priority,
        max_km: None,
        service: None,
        registered_at: None,
        province: None,
        earliest_day: None,
        preferred_offices: None,
    };
    let p = AllocationProblem {
        offices: vec![plain_site("O", 35.71, 51.41)],
        seats: vec![OfficeDaySeats {
            office: 0,
            day: 3,
            seats: 1,
        }],
        applicants: vec![mk("young", 0), mk("elder", 1), mk("young2", 0)],
        wait_km_per_day: 5.0,
        default_max_km: None,
        lottery_seed: "x".into(),
    };
    let alloc = allocate(&p, &SolverOptions::default()).unwrap();
    assert!(matches!(alloc.outcomes[1], Outcome::Assigned(s) if s.day == 3));
    assert_eq!(
        alloc.outcomes[0],
        Outcome::Unassigned(UnassignedReason::NoCapacity)
    );
}

mod csv_input {
    use std::path::{Path, PathBuf};

    use nobat::cli::allocate::{
        load_problem, verify, AllocateArgs, ProblemArgs, SolverChoice, VerifyArgs,
    };

    const OFFICES: &str = "office_id,lat,lon,province,services\nO1,35.70,51.40,tehran,first_issuance\nO2,35.80,51.50,tehran,\n";
    const CAPACITY: &str = "office_id,day,seats\nO1,0,2\nO1,1,3\nO2,0,1\n";
    const APPLICANTS: &str = "applicant_id,lat,lon,priority,max_km,service,registered_at,earliest_day,preferred_offices\nA1,35.71,51.41,1,,first_issuance,2026-01-02,1,O2; O1\nA2,35.72,51.42,,30,,1700000000,,\n";

    fn args(dir: &Path, offices: &str, capacity: &str, applicants: &str) -> AllocateArgs {
        let write = |name: &str, text: &str| -> PathBuf {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        AllocateArgs {
            problem: ProblemArgs {
                offices: Some(write("offices.csv", offices)),
                capacity: Some(write("capacity.csv", capacity)),
                applicants: Some(write("applicants.csv", applicants)),
                scenario: None,
                max_km: 100.0,
                wait_km_per_day: 5.0,
                seed: "s".into(),
            },
            candidates_per_zone: 4,
            solver: SolverChoice::OfficePaths,
            out: Some(dir.join("out.csv")),
            report: None,
            certificate: None,
        }
    }

    #[test]
    fn ids_with_commas_and_quotes_round_trip_through_the_assignments() {
        let dir = tempfile::tempdir().unwrap();
        let offices = "office_id,lat,lon\n\"O,1\",35.70,51.40\n\"O\"\"2\"\"\",35.80,51.50\n";
        let capacity = "office_id,day,seats\n\"O,1\",0,1\n\"O\"\"2\"\"\",0,1\n";
        let applicants =
            "applicant_id,lat,lon\n\"A,1\",35.70,51.40\n\"say \"\"hi\"\"\",35.80,51.50\n";
        let args = args(dir.path(), offices, capacity, applicants);
        let out = args.out.clone().unwrap();
        nobat::cli::allocate::run(args).unwrap();
        let mut reader = csv::Reader::from_path(&out).unwrap();
        assert_eq!(
            reader.headers().unwrap(),
            vec![
                "applicant_id",
                "office_id",
                "day",
                "distance_km",
                "seat",
                "slot"
            ]
        );
        let rows: Vec<(String, String, String)> = reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                (r[0].to_string(), r[1].to_string(), r[3].to_string())
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                ("A,1".to_string(), "O,1".to_string(), "0.000".to_string()),
                (
                    "say \"hi\"".to_string(),
                    "O\"2\"".to_string(),
                    "0.000".to_string()
                ),
            ]
        );
    }

    #[test]
    fn the_certificate_file_verifies_and_a_broken_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        // Three people, two seats near them: someone waits a day, someone goes unplaced.
        let offices = "office_id,lat,lon\nN,35.70,51.40\nF,35.90,51.60\n";
        let capacity = "office_id,day,seats\nN,0,1\nN,1,1\nF,2,1\n";
        let applicants =
            "applicant_id,lat,lon,priority\nA,35.70,51.40,1\nB,35.71,51.41,0\nC,35.70,51.41,0\nD,35.70,51.40,0\n";
        let mut a = args(dir.path(), offices, capacity, applicants);
        a.certificate = Some(dir.path().join("certificate.json"));
        let problem = a.problem.clone();
        nobat::cli::allocate::run(a).unwrap();
        let verify_args = |certificate: &str| VerifyArgs {
            problem: problem.clone(),
            assignments: dir.path().join("out.csv"),
            certificate: dir.path().join(certificate),
        };
        verify(verify_args("certificate.json")).unwrap();
        let text = std::fs::read_to_string(dir.path().join("certificate.json")).unwrap();
        let cert: serde_json::Value = serde_json::from_str(&text).unwrap();
        // Each zone's y one metre up, in turn: every one of them is caught.
        let zones = cert["zones"].as_array().unwrap().len();
        assert!(zones >= 3, "{cert}");
        for z in 0..zones {
            let mut bad = cert.clone();
            bad["zones"][z] = (cert["zones"][z].as_i64().unwrap() + 1).into();
            std::fs::write(dir.path().join("bad.json"), bad.to_string()).unwrap();
            let err = format!("{:#}", verify(verify_args("bad.json")).unwrap_err());
            assert!(err.contains("does not prove"), "{err}");
        }
        // An assignment that drops someone is caught too.
        let out = std::fs::read_to_string(dir.path().join("out.csv")).unwrap();
        let kept: Vec<&str> = out.lines().take(out.lines().count() - 1).collect();
        std::fs::write(dir.path().join("out.csv"), kept.join("\n") + "\n").unwrap();
        let err = format!("{:#}", verify(verify_args("certificate.json")).unwrap_err());
        assert!(err.contains("unplaced"), "{err}");
    }

    #[test]
    fn good_files_load() {
        let dir = tempfile::tempdir().unwrap();
        let p = load_problem(&args(dir.path(), OFFICES, CAPACITY, APPLICANTS).problem).unwrap();
        assert_eq!(p.offices.len(), 2);
        assert_eq!(p.seats.len(), 3);
        assert_eq!(p.applicants[0].priority, 1);
        assert_eq!(p.applicants[0].registered_at, Some(1_767_312_000));
        assert_eq!(p.applicants[1].max_km, Some(30.0));
        assert_eq!(p.applicants[0].earliest_day, Some(1));
        assert_eq!(p.applicants[0].preferred_offices, Some(vec![1, 0]));
        assert_eq!(p.applicants[1].earliest_day, None);
        assert_eq!(p.applicants[1].preferred_offices, None);
        assert!(p.offices[1].services.is_none());
    }

    #[test]
    fn bad_input_is_refused_with_file_line_and_reason() {
        let too_many_preferred = format!(
            "applicant_id,lat,lon,preferred_offices\nA1,35.7,51.4,{}\n",
            vec!["O1"; 33].join(";")
        );
        // (which file is replaced, its text, expected "file:line: reason" fragment)
        let table: &[(&str, &str, &str)] = &[
            (
                "offices",
                "office_id,lat\nO1,35.7\n",
                "offices.csv:1: missing column `lon`",
            ),
            (
                "offices",
                "office_id,lat,lon\nO1,35.7,51.4\nO1,35.8,51.5\n",
                "offices.csv:3: duplicate office_id \"O1\"",
            ),
            (
                "offices",
                "office_id,lat,lon\nO1,abc,51.4\n",
                "offices.csv:2: `lat` = \"abc\" is not a number",
            ),
            (
                "offices",
                "office_id,lat,lon\nO1,95,51.4\n",
                "offices.csv:2: `lat` = 95 is outside [-90, 90]",
            ),
            (
                "capacity",
                "office_id,day,seats\nO1,0,2\nO9,0,1\n",
                "capacity.csv:3: unknown office_id \"O9\"",
            ),
            (
                "capacity",
                "office_id,day,seats\nO1,0,-2\n",
                "capacity.csv:2: `seats` = -2 is negative",
            ),
            (
                "capacity",
                "office_id,day,seats\nO1,x,2\n",
                "capacity.csv:2: `day` = \"x\"",
            ),
            (
                "capacity",
                "office_id,day,seats\nO1,0,2\nO1,0,3\n",
                "capacity.csv:3: duplicate row for office \"O1\" day 0",
            ),
            (
                "capacity",
                "office_id,seats\nO1,2\n",
                "capacity.csv:1: missing column `day`",
            ),
            (
                "applicants",
                "applicant_id,lat,lon\nA1,35.7,51.4\nA1,35.7,51.4\n",
                "applicants.csv:3: duplicate applicant_id \"A1\"",
            ),
            (
                "applicants",
                "applicant_id,lat,lon,max_km\nA1,35.7,51.4,-3\n",
                "applicants.csv:2: `max_km` = -3 is negative",
            ),
            (
                "applicants",
                "applicant_id,lat,lon,priority\nA1,35.7,51.4,high\n",
                "applicants.csv:2: `priority` = \"high\" is not a whole number",
            ),
            (
                "applicants",
                "applicant_id,lat,lon\nA1,35.7\n",
                "applicants.csv:2:",
            ),
            (
                "applicants",
                "applicant_id,lat,lon,registered_at\nA1,35.7,51.4,yesterday\n",
                "applicants.csv:2: `registered_at` = \"yesterday\"",
            ),
            (
                "applicants",
                "applicant_id,lat,lon\n,35.7,51.4\n",
                "applicants.csv:2: `applicant_id` is empty",
            ),
            (
                "applicants",
                "applicant_id,lat,lon,earliest_day\nA1,35.7,51.4,-1\n",
                "applicants.csv:2: `earliest_day` = \"-1\" is not a day index",
            ),
            (
                "applicants",
                "applicant_id,lat,lon,preferred_offices\nA1,35.7,51.4,O1;O9\n",
                "applicants.csv:2: `preferred_offices` names unknown office \"O9\"",
            ),
            (
                "applicants",
                "applicant_id,lat,lon,preferred_offices\nA1,35.7,51.4,;\n",
                "applicants.csv:2: `preferred_offices` names no office",
            ),
            (
                "applicants",
                &too_many_preferred,
                "applicants.csv:2: `preferred_offices` names more than 32 offices",
            ),
        ];
        for &(file, text, expected) in table {
            let dir = tempfile::tempdir().unwrap();
            let (o, c, a) = match file {
                "offices" => (text, CAPACITY, APPLICANTS),
                "capacity" => (OFFICES, text, APPLICANTS),
                _ => (OFFICES, CAPACITY, text),
            };
            let err = load_problem(&args(dir.path(), o, c, a).problem)
                .err()
                .unwrap_or_else(|| panic!("accepted bad {file}: {text:?}"))
                .to_string();
            assert!(err.contains(expected), "{err:?} lacks {expected:?}");
        }
    }

    #[test]
    fn run_writes_assignments_and_report() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(dir.path(), OFFICES, CAPACITY, APPLICANTS);
        a.report = Some(dir.path().join("report.json"));
        nobat::cli::allocate::run(a).unwrap();
        let out = std::fs::read_to_string(dir.path().join("out.csv")).unwrap();
        let mut lines = out.lines();
        assert_eq!(
            lines.next(),
            Some("applicant_id,office_id,day,distance_km,seat,slot")
        );
        assert_eq!(lines.count(), 2);
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
                .unwrap();
        assert_eq!(report["assigned"], 2);
        assert_eq!(report["unassigned"]["total"], 0);
        for phase in ["load", "build", "solve", "assign", "write"] {
            assert!(report["timings_ms"][phase].is_number(), "{phase}");
        }
        for key in [
            "total_cost_km",
            "total_distance_km",
            "distance_km",
            "wait_days",
            "by_province",
            "fairness",
            "office_utilisation",
        ] {
            assert!(!report[key].is_null(), "{key}");
        }
    }

    #[test]
    fn a_scenario_becomes_its_offices_calendar_seats_and_eligible_citizens() {
        let dir = tempfile::tempdir().unwrap();
        let a = args(dir.path(), OFFICES, CAPACITY, APPLICANTS);
        let mut a = a.problem;
        a.offices = None;
        a.capacity = None;
        a.applicants = None;
        a.scenario = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/small.toml").into());
        let p = load_problem(&a).unwrap();
        let scenario =
            nobat::planning::scenario::Scenario::load(a.scenario.as_ref().unwrap()).unwrap();
        assert_eq!(p.offices.len(), scenario.generate_network().len());
        // Seats come from the calendar: none on Fridays, every office-day within 32 slots × stations.
        let start = scenario.calendar.start_date;
        for s in &p.seats {
            let date = start + chrono::Days::new(u64::from(s.day));
            assert_ne!(
                chrono::Datelike::weekday(&date),
                chrono::Weekday::Fri,
                "no seats on a Friday"
            );
            assert!(s.seats <= 32 * p.offices[s.office].stations.unwrap());
        }
        assert!(
            p.applicants.len() > scenario.citizen_count() as usize * 3 / 4,
            "most citizens are eligible"
        );
        assert!(
            p.applicants.len() < scenario.citizen_count() as usize,
            "the under-age and foreign ones are not"
        );
        let allocation = nobat::planning::allocator::allocate(&p, &Default::default()).unwrap();
        let assigned = allocation
            .outcomes
            .iter()
            .filter(|o| matches!(o, nobat::planning::allocator::Outcome::Assigned(_)))
            .count();
        assert!(assigned > 0);
    }

    #[test]
    fn a_bad_scenario_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let a = args(dir.path(), OFFICES, CAPACITY, APPLICANTS);
        let mut a = a.problem;
        a.offices = None;
        a.capacity = None;
        a.applicants = None;
        a.scenario = Some(dir.path().join("missing.toml"));
        let err = format!("{:#}", load_problem(&a).unwrap_err());
        assert!(err.contains("missing.toml"), "{err}");
    }
}

#[test]
fn empty_inputs_are_fine() {
    let office = plain_site("O", 35.7, 51.4);
    let applicant = Applicant {
        id: "A".into(),
        lat: 35.7,
        lon: 51.4,
        priority: 0,
        max_km: Some(0.0),
        service: None,
        registered_at: None,
        province: None,
        earliest_day: None,
        preferred_offices: None,
    };
    let mut p = AllocationProblem {
        offices: vec![office],
        seats: vec![],
        applicants: vec![],
        wait_km_per_day: 0.0,
        default_max_km: None,
        lottery_seed: String::new(),
    };
    assert!(allocate(&p, &SolverOptions::default())
        .unwrap()
        .outcomes
        .is_empty());
    // No seats anywhere: the applicant is in reach but there is no capacity.
    p.applicants.push(applicant);
    let a = allocate(&p, &SolverOptions::default()).unwrap();
    assert_eq!(
        a.outcomes,
        vec![Outcome::Unassigned(UnassignedReason::NoCapacity)]
    );
    // One seat, max_km 0 at the very same place: placed.
    p.seats.push(OfficeDaySeats {
        office: 0,
        day: 0,
        seats: 1,
    });
    let a = allocate(&p, &SolverOptions::default()).unwrap();
    assert!(matches!(a.outcomes[0], Outcome::Assigned(s) if s.distance_km == 0.0));
    // No offices at all.
    p.offices.clear();
    p.seats.clear();
    let a = allocate(&p, &SolverOptions::default()).unwrap();
    assert_eq!(
        a.outcomes,
        vec![Outcome::Unassigned(UnassignedReason::NoOfficeWithinMaxKm)]
    );
}

/// A ballot's record as it would be published: 300 entries around three offices, seats for
/// about half of them, closed with a known seed.
fn ballot_record() -> nobat::planning::ballot::BallotRecord {
    use chrono::{NaiveDate, NaiveTime};
    use nobat::domain::GeoPoint;
    use nobat::planning::ballot::*;
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let from = NaiveDate::from_ymd_opt(2027, 4, 3).unwrap();
    let terms = BallotTerms {
        service: "first_issuance".into(),
        from_date: from,
        to_date: from + chrono::Days::new(4),
        max_km: 40.0,
        wait_km_per_day: DEFAULT_WAIT_KM_PER_DAY,
        priority_rules: vec![],
    };
    let offices: Vec<BallotOffice> = (0..3)
        .map(|i| BallotOffice {
            id: format!("OF-{i}"),
            location: GeoPoint {
                lat: 35.6 + 0.1 * i as f64,
                lon: 51.3 + 0.1 * i as f64,
            },
            province: Some("tehran".into()),
        })
        .collect();
    let mut seats = Vec::new();
    for o in &offices {
        for d in 0..5 {
            for h in [8, 10, 14] {
                seats.push(WithheldSeats {
                    office_id: o.id.clone(),
                    date: from + chrono::Days::new(d),
                    start: NaiveTime::from_hms_opt(h, 0, 0).unwrap(),
                    seats: 3,
                });
            }
        }
    }
    let entries = (0..300)
        .map(|i| Entry {
            key: entry_key(&[9; 32], &format!("{:010}", 1_000_000 + i)),
            home: GeoPoint {
                lat: 35.4 + rng.gen_range(0.0..0.5),
                lon: 51.1 + rng.gen_range(0.0..0.5),
            },
            province: Some(if i % 4 == 0 { "alborz" } else { "tehran" }.into()),
            priority: i32::from(i % 10 == 0),
            preferences: Preferences {
                earliest_date: (i % 3 == 0).then(|| from + chrono::Days::new(2)),
                part_of_day: [PartOfDay::Any, PartOfDay::Morning, PartOfDay::Afternoon][i % 3],
                ..Preferences::default()
            },
        })
        .collect();
    let input = BallotInput {
        terms,
        offices,
        seats,
        entries,
    };
    let seed = BallotSeed::from_bytes([42; 32]);
    let outcome = close(&input, &seed).unwrap();
    BallotRecord {
        format: RECORD_FORMAT,
        ballot_id: "7".into(),
        commitment: seed.commitment(),
        seed: seed.to_hex(),
        input,
        placements: outcome.placements,
        unplaced: outcome.unplaced,
    }
}

fn ballot_verify(record: &nobat::planning::ballot::BallotRecord) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ballot.json"),
        serde_json::to_vec(record).unwrap(),
    )
    .unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_nobat"))
        .args(["ballot", "verify", dir.path().to_str().unwrap()])
        .output()
        .unwrap()
}

#[test]
fn ballot_verify_passes_a_true_record_and_names_what_was_tampered() {
    let record = ballot_record();
    assert_eq!(
        record.placements.len(),
        135,
        "every seat taken: more entries than seats"
    );
    let ok = ballot_verify(&record);
    let said = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(said.contains("300 entries, 135 placed"), "{said}");

    let mut moved = record.clone();
    let other = if moved.placements[0].office_id == "OF-0" {
        "OF-1"
    } else {
        "OF-0"
    };
    moved.placements[0].office_id = other.into();
    let out = ballot_verify(&moved);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "entry {}: published {other}",
            moved.placements[0].key
        )),
        "{err}"
    );

    let mut reseeded = record.clone();
    reseeded.seed = "00".repeat(32);
    let err = String::from_utf8_lossy(&ballot_verify(&reseeded).stderr).to_string();
    assert!(err.contains("does not match the commitment"), "{err}");
}
