//! Generated allocation instances for benches and examples: deterministic from their seed.

use nobat_domain::province::Province;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{AllocationProblem, Applicant, OfficeDaySeats, OfficeSite};

/// A standard normal draw (Box-Muller; the data only needs a bell shape).
fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    let (u, v): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// A national-style instance: `offices` around the province capitals in proportion to
/// population, `applicants` likewise on a 0.01° grid (5% in a priority class), `days` of
/// seats about 1.1 × demand with 5% of offices nearly closed; fixed by `seed`. The allocator
/// bench's instance and the `saturated` example's.
pub fn national_style_instance(
    applicants: usize,
    offices: usize,
    days: u32,
    seed: u64,
) -> AllocationProblem {
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

/// The earliest days of the earliest-day variant: every third applicant names one, 1, 3, 7,
/// 10 and 14 in turn, so each office becomes a chain of six entry nodes (see `solve.rs`).
pub const EARLIEST_DAYS: [u32; 5] = [1, 3, 7, 10, 14];

/// The earliest day applicant `i` of a generated instance names in the earliest-day variant.
pub fn earliest_day_of(i: usize) -> Option<u32> {
    (i % 3 == 0).then(|| EARLIEST_DAYS[i / 3 % EARLIEST_DAYS.len()])
}

/// `problem` with a third of its applicants naming an earliest day ([`earliest_day_of`]):
/// the earliest-day variant of the saturated instance.
pub fn with_earliest_days(mut problem: AllocationProblem) -> AllocationProblem {
    for (i, a) in problem.applicants.iter_mut().enumerate() {
        a.earliest_day = earliest_day_of(i);
    }
    problem
}
