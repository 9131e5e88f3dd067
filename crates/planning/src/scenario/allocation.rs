//! A scenario as an allocation problem: its offices with their seats per day over the horizon
//! (from the real calendar and slot rules), and its eligible citizens as applicants.

use std::collections::BTreeSet;

use crate::allocator::{AllocationProblem, Applicant, OfficeDaySeats, OfficeSite};
use nobat_domain::applicant::age_full_years;
use nobat_domain::calendar::HolidayCalendar;
use nobat_domain::slots::seats_per_day;
use nobat_domain::ServiceCode;

use super::Scenario;

/// Age from which applicants are placed first (the elderly priority class).
pub const PRIORITY_AGE_YEARS: u32 = 65;

/// Generation is split over threads only in ranges at least this big.
const CITIZENS_PER_THREAD_MIN: u64 = 50_000;

/// Builds the problem: every office and each day of the horizon with its seats; every citizen
/// eligible on the first day applies for first issuance, the elderly with priority 1.
pub fn allocation_problem(
    scenario: &Scenario,
    holidays: &HolidayCalendar,
    wait_km_per_day: f64,
    max_km: f64,
    lottery_seed: &str,
) -> AllocationProblem {
    let offices = scenario.generate_network();
    let start = scenario.calendar.start_date;
    let days = scenario.calendar.horizon_days;
    let mut seats = Vec::new();
    for (index, office) in offices.iter().enumerate() {
        for day in 0..days {
            let date = start + chrono::Days::new(u64::from(day));
            let n = seats_per_day(office, date, holidays);
            if n > 0 {
                seats.push(OfficeDaySeats {
                    office: index,
                    day,
                    seats: n,
                });
            }
        }
    }
    let sites = offices
        .iter()
        .map(|o| OfficeSite {
            id: o.id.to_string(),
            lat: o.location.lat,
            lon: o.location.lon,
            services: Some(
                o.services
                    .iter()
                    .filter(|s| o.offers(**s))
                    .map(|s| s.to_string())
                    .collect::<BTreeSet<_>>(),
            ),
            stations: Some(u32::from(o.stations)),
            province: Some(o.province.clone()),
        })
        .collect();
    // Citizen i depends on (seed, i) alone: generate ranges on every core, keep the order.
    let generator = scenario.citizen_generator();
    let count = generator.count();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let chunk = count.div_ceil(threads).max(CITIZENS_PER_THREAD_MIN);
    let applicants_in = |from: u64, to: u64| -> Vec<Applicant> {
        (from..to)
            .filter_map(|i| generator.citizen(i))
            .filter(|c| c.eligibility(start).is_eligible())
            .map(|c| Applicant {
                id: c.national_code.to_string(),
                lat: c.location.lat,
                lon: c.location.lon,
                priority: i32::from(age_full_years(c.birth_date, start) >= PRIORITY_AGE_YEARS),
                max_km: None,
                service: Some(ServiceCode::FirstIssuance.to_string()),
                registered_at: None,
                province: Some(c.province),
                earliest_day: None,
                preferred_offices: None,
            })
            .collect()
    };
    let applicants: Vec<Applicant> = std::thread::scope(|scope| {
        let parts: Vec<_> = (0..count)
            .step_by(chunk.max(1) as usize)
            .map(|from| {
                let to = (from + chunk).min(count);
                scope.spawn(move || applicants_in(from, to))
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|part| part.join().expect("citizen generation panicked"))
            .collect()
    });
    AllocationProblem {
        offices: sites,
        seats,
        applicants,
        wait_km_per_day,
        default_max_km: Some(max_km),
        lottery_seed: lottery_seed.to_string(),
    }
}
