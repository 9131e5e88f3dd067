//! The office network of a scenario: listed offices, or offices generated province by province
//! and placed around real towns.

use std::io::Write;

use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::towns::Town;
use super::{derive_seed, GeneratorSpec, NetworkSpec, Scenario, StationDistribution};
use nobat_domain::calendar::{Closure, OfficeCalendar, ThursdayRule};
use nobat_domain::geo::EARTH_RADIUS_KM;
use nobat_domain::{GeoPoint, Office, OfficeId, OfficeKind, Province};

pub(super) fn generate(scenario: &Scenario) -> Vec<Office> {
    let closures: Vec<Closure> = scenario
        .calendar
        .holidays
        .iter()
        .map(|h| Closure {
            from: h.date,
            to: h.date,
            reason: h.name.clone(),
        })
        .collect();
    match &scenario.network {
        NetworkSpec::Explicit(specs) => specs
            .iter()
            .map(|o| Office {
                id: o.id.clone(),
                name: o.name.clone(),
                kind: o.kind,
                province: o.province.slug.clone(),
                city: o.city.clone(),
                area_code: o.province.area_code,
                location: o.location,
                stations: o.stations,
                services: o.services.clone(),
                calendar: standard_calendar(
                    o.thursday.unwrap_or(scenario.calendar.thursday),
                    closures.clone(),
                ),
            })
            .collect(),
        NetworkSpec::Generated(g) => {
            let thursday = g.thursday.unwrap_or(scenario.calendar.thursday);
            let calendar = standard_calendar(thursday, closures);
            let counts = province_counts(g);
            let mut offices = Vec::with_capacity(g.offices_total as usize);
            for (province, count) in g.provinces.iter().zip(counts) {
                generate_province(scenario.seed, g, province, count, &calendar, &mut offices);
            }
            offices
        }
    }
}

/// The standard week until the shared calendar constructor lands: Saturday–Wednesday
/// 08:00–16:00, Thursday by `thursday` (its hours are the full day when open), Friday closed,
/// 15-minute slots.
/// The shared standard week (`OfficeCalendar::standard`) with the scenario's Thursday rule and
/// closures.
fn standard_calendar(thursday: ThursdayRule, closures: Vec<Closure>) -> OfficeCalendar {
    OfficeCalendar {
        thursday,
        closures,
        ..OfficeCalendar::standard()
    }
}

/// Splits `total` in proportion to `weights` by the largest-remainder method; ties go to the
/// earlier index so the result is deterministic.
pub fn largest_remainder(total: u64, weights: &[f64]) -> Vec<u64> {
    let sum: f64 = weights.iter().sum();
    if weights.is_empty() || sum <= 0.0 {
        return vec![0; weights.len()];
    }
    let quotas: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut counts: Vec<u64> = quotas.iter().map(|q| q.floor() as u64).collect();
    let assigned: u64 = counts.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let ra = quotas[a] - quotas[a].floor();
        let rb = quotas[b] - quotas[b].floor();
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &i in order.iter().take(total.saturating_sub(assigned) as usize) {
        counts[i] += 1;
    }
    counts
}

/// Offices per included province: fixed counts first, the rest by population; every province
/// gets at least one (validation guarantees the total allows it).
fn province_counts(g: &GeneratorSpec) -> Vec<u64> {
    let fixed: u64 = g.province_offices.values().map(|&c| u64::from(c)).sum();
    let free_total = u64::from(g.offices_total).saturating_sub(fixed);
    let weights: Vec<f64> = g
        .provinces
        .iter()
        .map(|p| {
            if g.province_offices.contains_key(&p.slug) {
                0.0
            } else {
                p.population_2016 as f64
            }
        })
        .collect();
    let mut counts = largest_remainder(free_total, &weights);
    for (count, p) in counts.iter_mut().zip(&g.provinces) {
        if let Some(&c) = g.province_offices.get(&p.slug) {
            *count = u64::from(c);
        }
    }
    // A small province can round to zero; take its office from the best-served free province.
    for i in 0..counts.len() {
        if counts[i] == 0 {
            let donor = (0..counts.len())
                .filter(|&j| !g.province_offices.contains_key(&g.provinces[j].slug))
                .max_by_key(|&j| (counts[j], std::cmp::Reverse(j)))
                .expect("validation leaves a free province with offices to spare");
            counts[donor] -= 1;
            counts[i] = 1;
        }
    }
    counts
}

fn kind_name_fa(kind: OfficeKind) -> &'static str {
    match kind {
        OfficeKind::Pishkhan => "دفتر پیشخوان",
        OfficeKind::CivilRegistry => "اداره ثبت احوال",
        OfficeKind::Post => "اداره پست",
        OfficeKind::MobileStation => "ایستگاه سیار",
    }
}

/// Writes a number with Persian digits (names are read by people).
pub(crate) fn persian_digits(n: u64) -> String {
    n.to_string()
        .chars()
        .map(|c| char::from_u32(0x06F0 + c.to_digit(10).expect("decimal digit")).expect("digit"))
        .collect()
}

/// Picks an index with probability ∝ weights (which are positive).
pub(crate) fn pick_weighted(rng: &mut ChaCha8Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = rng.gen::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

fn sample_stations(rng: &mut ChaCha8Rng, d: &StationDistribution) -> u16 {
    d.min + pick_weighted(rng, &d.weights) as u16
}

/// Moves `from` by `north_km` and `east_km` on a local flat approximation (good to well under
/// 1% at the few tens of km used here).
pub(crate) fn offset_km(from: GeoPoint, north_km: f64, east_km: f64) -> GeoPoint {
    let km_per_degree = EARTH_RADIUS_KM * std::f64::consts::PI / 180.0;
    let lat = (from.lat + north_km / km_per_degree).clamp(-90.0, 90.0);
    let lon = from.lon + east_km / (km_per_degree * from.lat.to_radians().cos());
    GeoPoint { lat, lon }
}

fn round_to(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

fn generate_province(
    seed: u64,
    g: &GeneratorSpec,
    province: &Province,
    count: u64,
    calendar: &OfficeCalendar,
    out: &mut Vec<Office>,
) {
    // The province's index in the national table (not among the included ones), so a
    // province's offices do not change when another province joins the scenario.
    let table_index = Province::all()
        .iter()
        .position(|p| p.slug == province.slug)
        .expect("validated province") as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, "network", table_index));
    let towns = Town::of_province(&province.slug);
    let by_population: Vec<f64> = towns
        .iter()
        .map(|t| f64::from(t.population_thousands))
        .collect();
    // Mobile stations exist to reach small places, so they favour smaller towns.
    let by_root_population: Vec<f64> = by_population.iter().map(|p| p.sqrt()).collect();

    let mut per_kind = largest_remainder(count, &g.kind_mix);
    let civil = 1;
    if per_kind[civil] == 0 {
        let donor = (0..4)
            .max_by_key(|&k| (per_kind[k], std::cmp::Reverse(k)))
            .expect("four kinds");
        per_kind[donor] -= 1;
        per_kind[civil] = 1;
    }

    let mut sequence = 0u64;
    for (k, kind) in OfficeKind::ALL.into_iter().enumerate() {
        for number in 1..=per_kind[k] {
            sequence += 1;
            let town = if kind == OfficeKind::CivilRegistry && number == 1 {
                towns[0] // the province's main civil-registry office is in the capital
            } else if kind == OfficeKind::MobileStation {
                towns[pick_weighted(&mut rng, &by_root_population)]
            } else {
                towns[pick_weighted(&mut rng, &by_population)]
            };
            // Uniform over a disc of radius jitter_km.
            let r_km = g.jitter_km * rng.gen::<f64>().sqrt();
            let angle = rng.gen::<f64>() * std::f64::consts::TAU;
            let moved = offset_km(town.location, r_km * angle.sin(), r_km * angle.cos());
            let location = GeoPoint {
                lat: round_to(moved.lat, 5),
                lon: round_to(moved.lon, 5),
            };
            let stations = sample_stations(&mut rng, &g.stations[k]);
            out.push(Office {
                id: OfficeId::parse(&format!("{}-{sequence:04}", province.area_code))
                    .expect("generated ids are well formed"),
                name: format!(
                    "{} شماره {} {}",
                    kind_name_fa(kind),
                    persian_digits(number),
                    town.name_fa
                ),
                kind,
                province: province.slug.clone(),
                city: town.name_en.clone(),
                area_code: province.area_code,
                location,
                stations,
                services: kind.default_services(),
                calendar: calendar.clone(),
            });
        }
    }
}

/// What a network amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkSummary {
    pub offices: usize,
    pub provinces: usize,
    pub stations: u64,
    /// Seats (station-slots) on a full standard day (a Saturday) across all offices.
    pub seats_per_standard_day: u64,
}

impl NetworkSummary {
    pub fn of(offices: &[Office]) -> Self {
        let provinces: std::collections::BTreeSet<&str> =
            offices.iter().map(|o| o.province.as_str()).collect();
        let seats_per_standard_day = offices
            .iter()
            .map(|o| {
                let slots = o.calendar.weekly.days[0].map_or(0, |h| {
                    (h.close - h.open).num_minutes().max(0) as u64
                        / u64::from(o.calendar.slot_minutes.max(1))
                });
                slots * u64::from(o.stations)
            })
            .sum();
        Self {
            offices: offices.len(),
            provinces: provinces.len(),
            stations: offices.iter().map(|o| u64::from(o.stations)).sum(),
            seats_per_standard_day,
        }
    }
}

impl std::fmt::Display for NetworkSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} offices in {} provinces, {} stations, {} seats per standard day",
            self.offices, self.provinces, self.stations, self.seats_per_standard_day
        )
    }
}

/// Writes offices as CSV (`office_id,name,kind,province,city,area_code,lat,lon,stations,services`,
/// services `;`-separated). Coordinates have five decimals (about a metre) so that the bytes
/// are the same on every platform.
pub fn write_network_csv<W: Write>(offices: &[Office], out: W) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "office_id",
        "name",
        "kind",
        "province",
        "city",
        "area_code",
        "lat",
        "lon",
        "stations",
        "services",
    ])?;
    for o in offices {
        let services: Vec<&str> = o.services.iter().map(|s| s.as_str()).collect();
        w.write_record([
            o.id.as_str(),
            &o.name,
            o.kind.as_str(),
            &o.province,
            &o.city,
            &o.area_code.to_string(),
            &format!("{:.5}", o.location.lat),
            &format!("{:.5}", o.location.lon),
            &o.stations.to_string(),
            &services.join(";"),
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_remainder_sums_to_total_and_breaks_ties_by_index() {
        assert_eq!(largest_remainder(10, &[1.0, 1.0, 1.0]), vec![4, 3, 3]);
        assert_eq!(largest_remainder(7, &[0.5, 0.25, 0.25]), vec![3, 2, 2]);
        assert_eq!(largest_remainder(0, &[1.0, 2.0]), vec![0, 0]);
        let counts = largest_remainder(2_200, &[13.2, 6.4, 5.1, 0.58, 0.7]);
        assert_eq!(counts.iter().sum::<u64>(), 2_200);
    }

    #[test]
    fn persian_digits_render() {
        assert_eq!(persian_digits(107), "۱۰۷");
    }

    #[test]
    fn offset_moves_by_the_requested_distance() {
        let tehran = GeoPoint::new(35.69, 51.39).unwrap();
        let moved = offset_km(tehran, 3.0, 4.0);
        let d = tehran.distance_km(moved);
        assert!((d - 5.0).abs() < 0.05, "{d}");
    }
}
