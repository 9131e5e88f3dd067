//! The simulated world built from a scenario: demand cells, sites with their seats per day
//! (from the real calendar and slot code, with the capacity changes applied), each cell's
//! candidate sites, and the working-day count used to measure waits.

use chrono::{Datelike, Days, NaiveDate, Weekday};

use crate::scenario::{CapacityChange, ChangeTarget, Scenario, Town};
use nobat_domain::calendar::{
    Closure, ExtraOpening, HolidayCalendar, OfficeCalendar, ThursdayOverride,
};
use nobat_domain::geo::EARTH_RADIUS_KM;
use nobat_domain::{GeoPoint, Office, OfficeKind, Province};

/// Most candidate sites an applicant cell weighs (nearest first): enough for every office of
/// a metropolis (Tehran has ≈ 370 in the national network) to serve its people.
pub const CANDIDATES_PER_CELL_MAX: usize = 512;
/// Rural cells around each town: villages lie in these directions at a typical distance.
const RURAL_CELLS_PER_TOWN: usize = 4;

/// Where applicants live: a town centre or a ring of villages around it.
#[derive(Debug, Clone)]
pub struct Cell {
    pub province: usize,
    pub name: String,
    /// The town the cell belongs to (its centre or its villages).
    pub town: String,
    pub location: GeoPoint,
    /// Share of the province's registrations (the province's cells sum to 1).
    pub weight: f64,
}

/// A place with seats: an office of the network, or one leg of a mobile unit's tour.
#[derive(Debug, Clone)]
pub struct Site {
    pub id: String,
    pub province: usize,
    pub kind: OfficeKind,
    pub town: String,
    pub location: GeoPoint,
    /// Enrolment seats per horizon day (after the pickup share is set aside).
    pub enrol_seats: Vec<u32>,
    /// Pickup visits per horizon day.
    pub pickup_visits: Vec<u32>,
    /// Where cards enrolled here are collected (itself, or for a mobile leg the nearest
    /// permanent site of the province).
    pub pickup_site: usize,
    pub is_mobile_leg: bool,
    /// Stations without the added ones.
    pub stations: u16,
}

#[derive(Debug, Clone)]
pub struct World {
    pub start_date: NaiveDate,
    pub horizon_days: u32,
    pub provinces: Vec<&'static Province>,
    pub cells: Vec<Cell>,
    pub sites: Vec<Site>,
    /// Per cell: (site, distance_km), nearest first.
    pub candidates: Vec<Vec<(u32, f64)>>,
    /// `working_days_through[t]`: working days among horizon days 0..=t (the scenario's default
    /// calendar: Saturday–Wednesday and Thursday by rule, less holidays).
    pub working_days_through: Vec<u32>,
    /// Base registrations per province per day.
    pub base_daily: Vec<u32>,
    /// Surge registrations per day per province (horizon × provinces), exact integers.
    pub surge_daily: Vec<Vec<u64>>,
    /// Slots per station on each day under the scenario's default calendar (the planner's
    /// unit of added capacity).
    pub standard_slots: Vec<u32>,
    /// Slots of a full day (Saturday's hours): what a Thursday or Friday opening gives.
    pub full_day_slots: u32,
    /// Whether each day is a public holiday.
    pub is_holiday: Vec<bool>,
    pub pickup_share: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorldError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// The national holiday table plus the scenario's own closures (as the server combines them).
pub fn holidays_for(scenario: &Scenario) -> HolidayCalendar {
    scenario.holidays()
}

pub use crate::scenario::largest_remainder;

fn offset_km(from: GeoPoint, north_km: f64, east_km: f64) -> GeoPoint {
    let km_per_degree = EARTH_RADIUS_KM * std::f64::consts::PI / 180.0;
    let lat = (from.lat + north_km / km_per_degree).clamp(-90.0, 90.0);
    let lon = from.lon + east_km / (km_per_degree * from.lat.to_radians().cos());
    GeoPoint { lat, lon }
}

impl World {
    pub fn date(&self, day: u32) -> NaiveDate {
        self.start_date + Days::new(u64::from(day))
    }

    /// Working days after `from_day` up to and including `to_day`.
    pub fn working_days_between(&self, from_day: u32, to_day: u32) -> u32 {
        self.working_days_through[to_day as usize]
            .saturating_sub(self.working_days_through[from_day as usize])
    }

    /// Registrations on `day` in each province (base plus surges).
    pub fn arrivals(&self, day: u32) -> Vec<u64> {
        self.base_daily
            .iter()
            .zip(&self.surge_daily[day as usize])
            .map(|(&b, &s)| u64::from(b) + s)
            .collect()
    }

    /// Builds the world of a scenario with its network (from `Scenario::generate_network`).
    pub fn build(
        scenario: &Scenario,
        offices: &[Office],
        holidays: &HolidayCalendar,
    ) -> Result<World, WorldError> {
        let horizon = scenario.calendar.horizon_days;
        let start = scenario.calendar.start_date;
        let provinces: Vec<&'static Province> = Province::all()
            .iter()
            .filter(|p| {
                scenario.citizens.provinces.iter().any(|q| q.slug == p.slug)
                    || offices.iter().any(|o| o.province == p.slug)
            })
            .collect();
        let cells = build_cells(scenario, &provinces);
        let base_calendar = default_calendar(scenario, offices);
        let mut drafts = site_drafts(scenario, offices, &provinces, &base_calendar);
        let changes = Changes {
            provinces: &provinces,
            nearest_site_weight: nearest_weights(&cells, &drafts),
            start,
        };
        for (i, change) in scenario.capacity_changes.iter().enumerate() {
            changes.apply(i, change, &mut drafts)?;
        }
        let sites = seat_sites(drafts, scenario, holidays);
        let max_km = scenario.behaviour.max_distance_km;
        let candidates = cells
            .iter()
            .map(|cell| candidate_sites(cell, &sites, max_km))
            .collect();
        let standard_slots: Vec<u32> = (0..horizon)
            .map(|d| {
                base_calendar
                    .hours_on(start + Days::new(u64::from(d)), holidays)
                    .map_or(0, |h| h.slot_count(base_calendar.slot_minutes))
            })
            .collect();
        let working_days_through = {
            let mut acc = 0;
            standard_slots
                .iter()
                .map(|&slots| {
                    acc += u32::from(slots > 0);
                    acc
                })
                .collect()
        };
        let full_day_slots =
            base_calendar.weekly.days[0].map_or(0, |h| h.slot_count(base_calendar.slot_minutes));
        let is_holiday = (0..horizon)
            .map(|d| {
                holidays
                    .is_holiday(start + Days::new(u64::from(d)))
                    .is_some()
            })
            .collect();
        let (base_daily, surge_daily) = registrations(scenario, &provinces);
        Ok(World {
            start_date: start,
            horizon_days: horizon,
            provinces,
            cells,
            sites,
            candidates,
            working_days_through,
            base_daily,
            surge_daily,
            standard_slots,
            full_day_slots,
            is_holiday,
            pickup_share: scenario.policy.pickup_share,
        })
    }
}

/// The scenario's default calendar (the first office's, with the scenario's Thursday rule
/// and no closures, overrides or extra openings): what mobile legs follow and what the
/// planner's unit of added capacity is measured in.
fn default_calendar(scenario: &Scenario, offices: &[Office]) -> OfficeCalendar {
    let mut base_calendar = offices
        .first()
        .map(|o| o.calendar.clone())
        .unwrap_or_else(OfficeCalendar::standard);
    base_calendar.thursday = scenario.calendar.thursday;
    base_calendar.closures.clear();
    base_calendar.thursday_overrides.clear();
    base_calendar.extra_openings.clear();
    base_calendar
}

/// A site before its seats are counted: what it is, its calendar and the stations added to
/// it, as the capacity changes leave them.
struct SiteDraft {
    id: String,
    province: usize,
    kind: OfficeKind,
    town: String,
    location: GeoPoint,
    stations: u16,
    is_mobile_leg: bool,
    /// A mobile leg's first and last day there.
    leg_days: Option<(u32, u32)>,
    calendar: OfficeCalendar,
    /// (first day, last day, stations) of each addition.
    added: Vec<(u32, u32, u32)>,
}

/// Sites: the network's offices, then the mobile legs.
fn site_drafts(
    scenario: &Scenario,
    offices: &[Office],
    provinces: &[&'static Province],
    base_calendar: &OfficeCalendar,
) -> Vec<SiteDraft> {
    let province_index = |slug: &str| provinces.iter().position(|p| p.slug == slug);
    let mut drafts: Vec<SiteDraft> = offices
        .iter()
        .map(|o| SiteDraft {
            id: o.id.to_string(),
            province: province_index(&o.province).expect("provinces include every office's"),
            kind: o.kind,
            town: o.city.clone(),
            location: o.location,
            stations: o.stations,
            is_mobile_leg: false,
            leg_days: None,
            calendar: o.calendar.clone(),
            added: Vec::new(),
        })
        .collect();
    for change in &scenario.capacity_changes {
        if let CapacityChange::MobileUnit {
            id,
            province,
            stations,
            legs,
        } = change
        {
            for (k, leg) in legs.iter().enumerate() {
                drafts.push(SiteDraft {
                    id: format!("{id}#{}", k + 1),
                    province: province_index(&province.slug).expect("validated province"),
                    kind: OfficeKind::MobileStation,
                    town: leg.town.name_en.clone(),
                    location: leg.town.location,
                    stations: *stations,
                    is_mobile_leg: true,
                    leg_days: Some((leg.from_day, leg.to_day)),
                    calendar: base_calendar.clone(),
                    added: Vec::new(),
                });
            }
        }
    }
    drafts
}

/// What applying the capacity changes to the sites needs.
struct Changes<'a> {
    provinces: &'a [&'static Province],
    /// Demand weight each site is the nearest permanent site for.
    nearest_site_weight: Vec<f64>,
    start: NaiveDate,
}

impl Changes<'_> {
    fn date(&self, d: u32) -> NaiveDate {
        self.start + Days::new(u64::from(d))
    }

    fn matches(&self, site: &SiteDraft, target: &ChangeTarget) -> bool {
        match target {
            ChangeTarget::All => true,
            ChangeTarget::Province(p) => self.provinces[site.province].slug == p.slug,
            ChangeTarget::Town(p, town) => {
                self.provinces[site.province].slug == p.slug && site.town == *town
            }
            ChangeTarget::Office(id) => site.id == *id,
        }
    }

    /// Applies change `i` (mobile units are sites already, see `site_drafts`).
    fn apply(
        &self,
        i: usize,
        change: &CapacityChange,
        drafts: &mut [SiteDraft],
    ) -> Result<(), WorldError> {
        match change {
            CapacityChange::AddStations {
                target,
                from_day,
                to_day,
                stations,
            } => self.add_stations(i, target, (*from_day, *to_day), *stations, drafts)?,
            CapacityChange::Thursday {
                target,
                from_day,
                to_day,
                rule,
            } => {
                for site in drafts.iter_mut().filter(|s| self.matches(s, target)) {
                    // The latest change wins: the calendar takes the first override.
                    site.calendar.thursday_overrides.insert(
                        0,
                        ThursdayOverride {
                            from: self.date(*from_day),
                            to: self.date(*to_day),
                            rule: *rule,
                        },
                    );
                }
            }
            CapacityChange::FridayOpening {
                target,
                from_day,
                to_day,
            } => {
                for site in drafts.iter_mut().filter(|s| self.matches(s, target)) {
                    let cal = &mut site.calendar;
                    let Some(hours) = cal.weekly.days[0] else {
                        continue;
                    };
                    for d in *from_day..=*to_day {
                        let dt = self.date(d);
                        if dt.weekday() == Weekday::Fri
                            && !cal.extra_openings.iter().any(|e| e.date == dt)
                        {
                            cal.extra_openings.push(ExtraOpening { date: dt, hours });
                        }
                    }
                }
            }
            CapacityChange::Closure {
                target,
                from_day,
                to_day,
                reason,
            } => {
                for site in drafts.iter_mut().filter(|s| self.matches(s, target)) {
                    site.calendar.closures.push(Closure {
                        from: self.date(*from_day),
                        to: self.date(*to_day),
                        reason: reason.clone(),
                    });
                }
            }
            CapacityChange::MobileUnit { .. } => {}
        }
        Ok(())
    }

    /// Stations added to the permanent sites of `target` over `days` (province-wide
    /// additions go where demand is).
    fn add_stations(
        &self,
        i: usize,
        target: &ChangeTarget,
        days: (u32, u32),
        stations: u16,
        drafts: &mut [SiteDraft],
    ) -> Result<(), WorldError> {
        let (from_day, to_day) = days;
        let targets: Vec<usize> = (0..drafts.len())
            .filter(|&s| !drafts[s].is_mobile_leg && self.matches(&drafts[s], target))
            .collect();
        if targets.is_empty() {
            return Err(WorldError::Invalid {
                path: format!("capacity_changes[{i}]"),
                message: format!("{} has no office to add stations to", target.describe()),
            });
        }
        let shares = if matches!(target, ChangeTarget::Office(_)) {
            vec![u64::from(stations)]
        } else {
            // Fill the shortage first: with T stations in all after the addition, office i
            // should have T × (its share of the demand it is nearest to); the new stations
            // go in proportion to each office's deficit.
            let base: Vec<f64> = targets
                .iter()
                .map(|&s| {
                    f64::from(drafts[s].stations)
                        + drafts[s]
                            .added
                            .iter()
                            .filter(|(a, b, _)| *a <= to_day && from_day <= *b)
                            .map(|x| f64::from(x.2))
                            .sum::<f64>()
                })
                .collect();
            let demand: Vec<f64> = targets
                .iter()
                .map(|&s| self.nearest_site_weight[s])
                .collect();
            let demand_total: f64 = demand.iter().sum();
            let total = base.iter().sum::<f64>() + f64::from(stations);
            let mut w: Vec<f64> = demand
                .iter()
                .zip(&base)
                .map(|(d, b)| {
                    if demand_total > 0.0 {
                        (total * d / demand_total - b).max(0.0)
                    } else {
                        0.0
                    }
                })
                .collect();
            if w.iter().sum::<f64>() <= 0.0 {
                w = vec![1.0; targets.len()];
            }
            largest_remainder(u64::from(stations), &w)
        };
        for (&s, n) in targets.iter().zip(shares) {
            if n > 0 {
                drafts[s].added.push((from_day, to_day, n as u32));
            }
        }
        Ok(())
    }
}

/// Seats per day from each site's calendar: slots of the day × stations on the day, less
/// the pickup share; cards enrolled at a mobile leg are collected at the nearest permanent
/// office of its province.
fn seat_sites(
    drafts: Vec<SiteDraft>,
    scenario: &Scenario,
    holidays: &HolidayCalendar,
) -> Vec<Site> {
    let horizon = scenario.calendar.horizon_days;
    let start = scenario.calendar.start_date;
    let pickup_share = scenario.policy.pickup_share;
    let pickup_minutes = u32::from(scenario.behaviour.pickup_minutes.max(1));
    let mut sites: Vec<Site> = Vec::with_capacity(drafts.len());
    for (s, draft) in drafts.into_iter().enumerate() {
        let cal = &draft.calendar;
        let mut enrol_seats = Vec::with_capacity(horizon as usize);
        let mut pickup_visits = Vec::with_capacity(horizon as usize);
        for d in 0..horizon {
            let in_leg = draft.leg_days.is_none_or(|(a, b)| a <= d && d <= b);
            let slots = if in_leg {
                cal.hours_on(start + Days::new(u64::from(d)), holidays)
                    .map_or(0, |h| h.slot_count(cal.slot_minutes))
            } else {
                0
            };
            let extra: u32 = draft
                .added
                .iter()
                .filter(|(a, b, _)| *a <= d && d <= *b)
                .map(|(_, _, n)| n)
                .sum();
            let seats = slots * (u32::from(draft.stations) + extra);
            let pickup_seats = (f64::from(seats) * pickup_share).floor() as u32;
            enrol_seats.push(seats - pickup_seats);
            pickup_visits.push(pickup_seats * u32::from(cal.slot_minutes) / pickup_minutes);
        }
        sites.push(Site {
            id: draft.id,
            province: draft.province,
            kind: draft.kind,
            town: draft.town,
            location: draft.location,
            enrol_seats,
            pickup_visits,
            pickup_site: s,
            is_mobile_leg: draft.is_mobile_leg,
            stations: draft.stations,
        });
    }
    for s in 0..sites.len() {
        if sites[s].is_mobile_leg {
            let here = sites[s].location;
            let province = sites[s].province;
            if let Some(best) = (0..sites.len())
                .filter(|&t| !sites[t].is_mobile_leg && sites[t].province == province)
                .min_by(|&a, &b| {
                    here.distance_km(sites[a].location)
                        .total_cmp(&here.distance_km(sites[b].location))
                        .then(a.cmp(&b))
                })
            {
                sites[s].pickup_site = best;
            }
        }
    }
    sites
}

/// Registrations per day: the base rate per province, and the surges per day and province
/// (spread over their provinces by population, exact integers).
fn registrations(
    scenario: &Scenario,
    provinces: &[&'static Province],
) -> (Vec<u32>, Vec<Vec<u64>>) {
    let horizon = scenario.calendar.horizon_days;
    let base_daily = provinces
        .iter()
        .map(|p| {
            if scenario.citizens.provinces.iter().any(|q| q.slug == p.slug) {
                scenario.demand.base_daily(p)
            } else {
                0
            }
        })
        .collect();
    let mut surge_daily = vec![vec![0u64; provinces.len()]; horizon as usize];
    for surge in &scenario.demand.surges {
        let weights: Vec<f64> = provinces
            .iter()
            .map(|p| {
                if surge.provinces.iter().any(|q| q.slug == p.slug) {
                    p.population_2016 as f64
                } else {
                    0.0
                }
            })
            .collect();
        for (k, total) in surge.daily_totals().into_iter().enumerate() {
            let day = surge.start_day as usize + k;
            if day >= horizon as usize {
                break;
            }
            for (p, n) in largest_remainder(total, &weights).into_iter().enumerate() {
                surge_daily[day][p] += n;
            }
        }
    }
    (base_daily, surge_daily)
}

/// Town cells and village rings, weighted like the synthetic citizens: town dwellers by town
/// population, villagers by √population (rural life is spread more evenly than town size).
fn build_cells(scenario: &Scenario, provinces: &[&'static Province]) -> Vec<Cell> {
    let rural = scenario.citizens.rural_share;
    let rural_km = scenario.citizens.rural_dispersion_km * 1.25; // mean of a Rayleigh(σ)
    let mut cells = Vec::new();
    for (pi, p) in provinces.iter().enumerate() {
        if !scenario.citizens.provinces.iter().any(|q| q.slug == p.slug) {
            continue;
        }
        let towns: Vec<&Town> = Town::of_province(&p.slug);
        let pop: f64 = towns
            .iter()
            .map(|t| f64::from(t.population_thousands))
            .sum();
        let root: f64 = towns
            .iter()
            .map(|t| f64::from(t.population_thousands).sqrt())
            .sum();
        for t in towns {
            cells.push(Cell {
                province: pi,
                name: t.name_en.clone(),
                town: t.name_en.clone(),
                location: t.location,
                weight: (1.0 - rural) * f64::from(t.population_thousands) / pop,
            });
            if rural > 0.0 {
                let w = rural * f64::from(t.population_thousands).sqrt() / root;
                for k in 0..RURAL_CELLS_PER_TOWN {
                    let angle = std::f64::consts::FRAC_PI_4
                        + k as f64 * std::f64::consts::TAU / RURAL_CELLS_PER_TOWN as f64;
                    cells.push(Cell {
                        province: pi,
                        town: t.name_en.clone(),
                        name: format!("{} villages {}", t.name_en, ["NE", "NW", "SW", "SE"][k]),
                        location: offset_km(
                            t.location,
                            rural_km * angle.sin(),
                            rural_km * angle.cos(),
                        ),
                        weight: w / RURAL_CELLS_PER_TOWN as f64,
                    });
                }
            }
        }
    }
    cells
}

/// Demand weight each site is the nearest permanent site for (within its province).
fn nearest_weights(cells: &[Cell], sites: &[SiteDraft]) -> Vec<f64> {
    let mut w = vec![0.0; sites.len()];
    for c in cells {
        let best = (0..sites.len())
            .filter(|&s| !sites[s].is_mobile_leg && sites[s].province == c.province)
            .min_by(|&a, &b| {
                c.location
                    .distance_km(sites[a].location)
                    .total_cmp(&c.location.distance_km(sites[b].location))
                    .then(a.cmp(&b))
            });
        if let Some(s) = best {
            w[s] += c.weight;
        }
    }
    w
}

/// Sites of the cell's province within reach, nearest first (at most
/// [`CANDIDATES_PER_CELL_MAX`]). Reach is `max_km`, or 1.5 × the nearest permanent office's
/// distance when that is further: people who must travel 80 km anyway will go 120 km for an
/// earlier slot. With no permanent office in reach, the nearest permanent one is added.
fn candidate_sites(cell: &Cell, sites: &[Site], max_km: f64) -> Vec<(u32, f64)> {
    let mut all: Vec<(u32, f64)> = sites
        .iter()
        .enumerate()
        .filter(|(_, s)| s.province == cell.province)
        .map(|(i, s)| (i as u32, cell.location.distance_km(s.location)))
        .collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let nearest_permanent = all
        .iter()
        .find(|&&(s, _)| !sites[s as usize].is_mobile_leg)
        .map_or(0.0, |&(_, d)| d);
    let max_km = max_km.max(1.5 * nearest_permanent);
    let mut chosen: Vec<(u32, f64)> = all
        .iter()
        .copied()
        .filter(|&(_, d)| d <= max_km)
        .take(CANDIDATES_PER_CELL_MAX)
        .collect();
    if !chosen
        .iter()
        .any(|&(s, _)| !sites[s as usize].is_mobile_leg)
    {
        if let Some(&nearest) = all.iter().find(|&&(s, _)| !sites[s as usize].is_mobile_leg) {
            chosen.push(nearest);
        }
    }
    chosen.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    chosen
}
