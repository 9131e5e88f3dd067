//! The allocator on a generated saturated national instance (the `allocator` bench's
//! generator), with phase timings: a quick loop for solver work that rebuilds only this
//! crate. `cargo run --release -p nobat-planning --example saturated -- [APPLICANTS] [SEED]`

use nobat_domain::province::Province;
use nobat_planning::allocator::{
    allocate_observed, AllocationProblem, Applicant, OfficeDaySeats, OfficeSite, Phase,
    SolverOptions,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    let (u, v): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn instance(applicants: usize, offices: usize, days: u32, seed: u64) -> AllocationProblem {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let provinces = Province::all();
    let population: f64 = provinces.iter().map(|p| p.population_2016 as f64).sum();
    let pick = |rng: &mut ChaCha8Rng| {
        let mut x = rng.gen_range(0.0..population);
        for p in provinces.iter() {
            x -= p.population_2016 as f64;
            if x < 0.0 {
                return p;
            }
        }
        provinces.last().expect("provinces")
    };
    let around = |rng: &mut ChaCha8Rng, lat: f64, lon: f64| {
        let sd = if rng.gen_bool(0.6) { 0.08 } else { 0.7 };
        let lat = (lat + sd * gaussian(rng)).clamp(25.0, 39.7);
        let lon = (lon + sd * gaussian(rng)).clamp(44.0, 63.3);
        ((lat * 100.0).round() / 100.0, (lon * 100.0).round() / 100.0)
    };
    let mut sites = Vec::with_capacity(offices);
    for i in 0..offices {
        let p = pick(&mut rng);
        let (lat, lon) = around(&mut rng, p.capital.lat, p.capital.lon);
        sites.push(OfficeSite {
            id: format!("O{i:05}"),
            lat,
            lon,
            services: None,
            stations: Some(rng.gen_range(1..6)),
            province: Some(p.slug.clone()),
        });
    }
    let station_sum: f64 = sites.iter().map(|o| o.stations.unwrap_or(1) as f64).sum();
    let mut seats = Vec::new();
    for (i, o) in sites.iter().enumerate() {
        let scale = if rng.gen_bool(0.05) { 0.05 } else { 1.0 };
        let per_day =
            applicants as f64 * 1.1 * o.stations.unwrap_or(1) as f64 / station_sum / days as f64
                * scale;
        for day in 0..days {
            seats.push(OfficeDaySeats {
                office: i,
                day,
                seats: (per_day * rng.gen_range(0.7..1.3)).round() as u32,
            });
        }
    }
    let people = (0..applicants)
        .map(|i| {
            let p = pick(&mut rng);
            let (lat, lon) = around(&mut rng, p.capital.lat, p.capital.lon);
            Applicant {
                id: format!("A{i:07}"),
                lat,
                lon,
                priority: i32::from(rng.gen_range(0..100) < 5),
                max_km: None,
                service: None,
                registered_at: Some(rng.gen_range(0..86_400)),
                province: Some(p.slug.clone()),
                earliest_day: None,
                preferred_offices: None,
            }
        })
        .collect();
    AllocationProblem {
        offices: sites,
        seats,
        applicants: people,
        wait_km_per_day: 5.0,
        default_max_km: Some(100.0),
        lottery_seed: "bench".into(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let applicants: usize = args
        .get(1)
        .map_or(1_000_000, |s| s.parse().expect("applicants"));
    let seed: u64 = args.get(2).map_or(1, |s| s.parse().expect("seed"));
    let problem = instance(applicants, 2_200, 30, seed);
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
    println!(
        "{applicants} seed {seed}: placed {placed} cost {} m pivots {} | build {:.0} ms solve {:.0} ms seat {:.0} ms",
        allocation.stats.total_cost_m,
        allocation.stats.pivots,
        (at(Phase::Built) - start).as_secs_f64() * 1e3,
        (at(Phase::Solved) - at(Phase::Built)).as_secs_f64() * 1e3,
        (end - at(Phase::Solved)).as_secs_f64() * 1e3,
    );
}
