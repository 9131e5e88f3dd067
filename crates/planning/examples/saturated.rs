//! The allocator on a generated saturated national instance (the `allocator` bench's
//! generator), with phase timings: a quick loop for solver work that rebuilds only this
//! crate. `cargo run --release -p nobat-planning --example saturated -- [APPLICANTS] [SEED]
//! [earliest]` (`earliest`: a third of the applicants name an earliest day).

use nobat_planning::allocator::synthetic::{national_style_instance, with_earliest_days};
use nobat_planning::allocator::{allocate_observed, Phase, SolverOptions};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let applicants: usize = args
        .get(1)
        .map_or(1_000_000, |s| s.parse().expect("applicants"));
    let seed: u64 = args.get(2).map_or(1, |s| s.parse().expect("seed"));
    let mut problem = national_style_instance(applicants, 2_200, 30, seed);
    let earliest = match args.get(3).map(String::as_str) {
        None => false,
        Some("earliest") => true,
        Some(other) => panic!("unknown variant {other:?} (expected `earliest`)"),
    };
    if earliest {
        problem = with_earliest_days(problem);
    }
    let start = Instant::now();
    let mut marks = Vec::new();
    let allocation = allocate_observed(&problem, &SolverOptions::default(), &mut |p| {
        marks.push((p, Instant::now()))
    })
    .expect("solves");
    let end = Instant::now();
    let at = |ph: Phase| marks.iter().find(|m| m.0 == ph).map_or(end, |m| m.1);
    let placed = allocation
        .outcomes
        .iter()
        .filter(|o| matches!(o, nobat_planning::allocator::Outcome::Assigned(_)))
        .count();
    let st = &allocation.stats;
    println!(
        "zones {} arcs {} (seeded {}, priced {} in {} rounds), warm start {}",
        st.zones,
        st.arcs,
        st.arcs_added_by_seeding,
        st.arcs_added_by_pricing,
        st.pricing_rounds,
        st.warm_started
    );
    println!(
        "{applicants} seed {seed}{}: placed {placed} cost {} m pivots {} | build {:.0} ms solve {:.0} ms seat {:.0} ms",
        if earliest { " earliest days" } else { "" },
        allocation.stats.total_cost_m,
        allocation.stats.pivots,
        (at(Phase::Built) - start).as_secs_f64() * 1e3,
        (at(Phase::Solved) - at(Phase::Built)).as_secs_f64() * 1e3,
        (end - at(Phase::Solved)).as_secs_f64() * 1e3,
    );
}
