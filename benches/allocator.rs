//! The allocator on generated national-style instances: offices around the province capitals,
//! applicants on a 0.01° grid, 30 days, seats about 1.1 × demand with some offices nearly
//! closed. Throughput is applicants per second (build + solve + seat assignment).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use nobat::domain::province::Province;
use nobat::planning::allocator::{
    allocate, allocate_observed, AllocationProblem, Applicant, FlowSolver, OfficeDaySeats,
    OfficeSite, Phase, SolverOptions,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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

fn bench_allocate(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine/allocator/allocate");
    group.sample_size(10);
    for &(applicants, offices) in &[(10_000usize, 200usize), (10_000, 2_000), (100_000, 2_000)] {
        let problem = instance(applicants, offices, 30, 7);
        group.throughput(Throughput::Elements(applicants as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{applicants}x{offices}x30")),
            &problem,
            |b, p| {
                b.iter_batched(
                    || (),
                    |_| black_box(allocate(p, &SolverOptions::default()).expect("solves")),
                    BatchSize::LargeInput,
                )
            },
        );
    }
    // The same 100k instance with a third of the applicants naming an earliest day (one of
    // five): each office becomes a chain of entry nodes. The ratio to the plain 100k run
    // above is the price of that constraint.
    let mut problem = instance(100_000, 2_000, 30, 7);
    for (i, a) in problem.applicants.iter_mut().enumerate() {
        if i % 3 == 0 {
            a.earliest_day = Some([1, 3, 7, 10, 14][i / 3 % 5]);
        }
    }
    group.throughput(Throughput::Elements(100_000));
    group.bench_with_input(
        BenchmarkId::from_parameter("100000x2000x30/earliest_days"),
        &problem,
        |b, p| b.iter(|| black_box(allocate(p, &SolverOptions::default()).expect("solves"))),
    );
    group.finish();
}

/// The three exact flow solvers on the same instance (same optimum, different speed).
fn bench_solvers(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine/allocator/solver");
    group.sample_size(10);
    let problem = instance(10_000, 200, 30, 7);
    group.throughput(Throughput::Elements(10_000));
    for solver in [
        FlowSolver::NetworkSimplex,
        FlowSolver::CostScaling,
        FlowSolver::OfficePaths,
    ] {
        let options = SolverOptions {
            solver,
            ..SolverOptions::default()
        };
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{solver:?}/10000x200x30")),
            &problem,
            |b, p| b.iter(|| black_box(allocate(p, &options).expect("solves"))),
        );
    }
    group.finish();
}

/// The national saturation case (issue 26): 2,200 offices, 30 days, seats ≈ 1.1 × demand, so
/// the nearest offices fill and the optimum sends people past them. 200k applicants by
/// default (a minute or two); `NOBAT_BENCH_SATURATED=1000000` runs the full national size
/// (about a minute per sample on a 2-core machine). Prints the mean of each phase (build:
/// zones, candidates, network; solve: coarse seed, simplex, pricing; seat: seat order and
/// outcomes), so a change can be read per phase.
fn bench_saturated(c: &mut Criterion) {
    let applicants: usize = std::env::var("NOBAT_BENCH_SATURATED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut group = c.benchmark_group("engine/allocator/saturated");
    group.sample_size(10);
    group.sampling_mode(criterion::SamplingMode::Flat);
    group.measurement_time(std::time::Duration::from_secs(1));
    group.warm_up_time(std::time::Duration::from_millis(1));
    let problem = instance(applicants, 2_200, 30, 1);
    group.throughput(Throughput::Elements(applicants as u64));
    let mut phases = [std::time::Duration::ZERO; 3];
    let mut runs = 0u32;
    group.bench_with_input(
        BenchmarkId::from_parameter(format!("{applicants}x2200x30")),
        &problem,
        |b, p| {
            b.iter_custom(|iters| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    let start = std::time::Instant::now();
                    let mut marks = Vec::new();
                    let allocation = allocate_observed(p, &SolverOptions::default(), &mut |ph| {
                        marks.push((ph, std::time::Instant::now()))
                    })
                    .expect("solves");
                    let end = std::time::Instant::now();
                    let at = |ph: Phase| marks.iter().find(|m| m.0 == ph).map_or(end, |m| m.1);
                    let (built, solved) = (at(Phase::Built), at(Phase::Solved));
                    phases[0] += built - start;
                    phases[1] += solved - built;
                    phases[2] += end - solved;
                    runs += 1;
                    total += end - start;
                    black_box(allocation);
                }
                total
            })
        },
    );
    if runs > 0 {
        let mean = |d: std::time::Duration| d.as_secs_f64() * 1e3 / f64::from(runs);
        eprintln!(
            "engine/allocator/saturated/{applicants}x2200x30 phases (mean of {runs} runs): build {:.0} ms, solve {:.0} ms, seat {:.0} ms",
            mean(phases[0]),
            mean(phases[1]),
            mean(phases[2])
        );
    }
    group.finish();
}

criterion_group!(benches, bench_allocate, bench_solvers, bench_saturated);
criterion_main!(benches);
