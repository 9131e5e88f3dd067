//! The simulation and planning sections of a scenario: demand, applicant behaviour, capacity
//! changes, the booking policy and the planner's targets and costs. All are optional; a file
//! without them loads with the defaults documented in `scenarios/README.md`.

use std::collections::BTreeMap;

use super::format::{
    RawBehaviour, RawCapacityChange, RawChangeKind, RawDemand, RawMobileLeg, RawPlan, RawPolicy,
    RawPolicyKind, RawSurge, RawSurgeShape,
};
use super::towns::Town;
use super::{thursday_rule, Problems};
use nobat_domain::calendar::ThursdayRule;
use nobat_domain::Province;

/// Most surge events in a scenario.
pub const SURGES_MAX: usize = 100;
/// Most applicants one surge may bring: above Iran's eligible population.
pub const SURGE_TOTAL_MAX: u64 = 100_000_000;
/// Most base registrations per province per day.
pub const BASE_DAILY_MAX: u32 = 1_000_000;
/// Most capacity changes (a plan's overlay included).
pub const CAPACITY_CHANGES_MAX: usize = 10_000;
/// Most legs of one mobile unit's schedule.
pub const MOBILE_LEGS_MAX: usize = 1_000;
/// Longest booking window, in days.
pub const BOOKING_WINDOW_DAYS_MAX: u32 = 365;

/// Registrations: a steady base per province and surge events on top.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DemandSpec {
    pub base_daily_per_million: f64,
    /// Base per day for some provinces (slug → registrations), replacing the per-million rate.
    pub province_daily: BTreeMap<String, u32>,
    pub surges: Vec<Surge>,
}

impl DemandSpec {
    /// Base registrations per calendar day in a province.
    pub fn base_daily(&self, province: &Province) -> u32 {
        self.province_daily
            .get(&province.slug)
            .copied()
            .unwrap_or_else(|| {
                (self.base_daily_per_million * province.population_2016 as f64 / 1e6).round() as u32
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SurgeShape {
    /// The same number every day.
    Flat,
    /// Rising linearly to the peak day, then falling linearly to the last day.
    Triangle,
    /// Highest on the peak day, halving every fifth of the surge's length after it (a
    /// deadline or an opening day: most come at once, then fewer).
    FrontLoaded,
}

/// A cohort of `total` applicants over `days` days from `start_day` (0-based horizon days).
#[derive(Debug, Clone, PartialEq)]
pub struct Surge {
    pub name: String,
    pub total: u64,
    pub start_day: u32,
    pub days: u32,
    pub peak_day: u32,
    pub shape: SurgeShape,
    /// Provinces it falls on, shared by 2016 population.
    pub provinces: Vec<&'static Province>,
}

impl Surge {
    /// Registrations on each day of the surge (length `days`), summing exactly to `total`.
    pub fn daily_totals(&self) -> Vec<u64> {
        let days = self.days.max(1) as usize;
        let peak = (self.peak_day.saturating_sub(self.start_day) as usize).min(days - 1);
        let weights: Vec<f64> = (0..days)
            .map(|k| match self.shape {
                SurgeShape::Flat => 1.0,
                SurgeShape::Triangle => {
                    if k <= peak {
                        (k + 1) as f64 / (peak + 1) as f64
                    } else {
                        (days - k) as f64 / (days - peak) as f64
                    }
                }
                SurgeShape::FrontLoaded => {
                    let half_life = (days as f64 / 5.0).max(1.0);
                    if k < peak {
                        (k + 1) as f64 / (peak + 1) as f64
                    } else {
                        0.5f64.powf((k - peak) as f64 / half_life)
                    }
                }
            })
            .collect();
        super::network::largest_remainder(self.total, &weights)
    }
}

/// What applicants do.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    /// Offices further than this are not considered (when none is nearer, the nearest is).
    pub max_distance_km: f64,
    /// An applicant picks the offer with the least `distance_km + km_per_wait_day × days`.
    pub km_per_wait_day: f64,
    /// Offers further ahead than this (calendar days) are declined by `decline_share` of the
    /// applicants, who try again the next day. `None`: every offer is taken.
    pub wait_threshold_days: Option<u32>,
    pub decline_share: f64,
    /// Share of booked applicants who do not come; their seats are lost.
    pub no_show_rate: f64,
    /// Share of no-shows who register again (keeping their registration day).
    pub rebook_after_no_show: f64,
    /// Share of bookings cancelled for good before the day (the seat is released).
    pub cancel_rate: f64,
    /// Share of bookings moved: released and booked again.
    pub reschedule_rate: f64,
    /// A waiting applicant who has found no slot for this many days gives up.
    pub abandon_after_days: Option<u32>,
    /// Days from enrolment until the card is ready for pickup.
    pub card_production_days: u32,
    /// Length of a pickup visit, in minutes (an enrolment takes one slot).
    pub pickup_minutes: u16,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            max_distance_km: 50.0,
            km_per_wait_day: 5.0,
            wait_threshold_days: None,
            decline_share: 0.0,
            no_show_rate: 0.05,
            rebook_after_no_show: 0.7,
            cancel_rate: 0.02,
            reschedule_rate: 0.04,
            abandon_after_days: None,
            card_production_days: 10,
            pickup_minutes: 5,
        }
    }
}

/// Which offices a change applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeTarget {
    All,
    Province(&'static Province),
    /// The offices of a province whose town (`city`) is this.
    Town(&'static Province, String),
    Office(String),
}

impl ChangeTarget {
    pub fn describe(&self) -> String {
        match self {
            ChangeTarget::All => "every office".into(),
            ChangeTarget::Province(p) => format!("offices in {}", p.name_en),
            ChangeTarget::Town(p, town) => format!("offices in {town}, {}", p.name_en),
            ChangeTarget::Office(id) => format!("office {id}"),
        }
    }
}

/// One leg of a mobile unit's tour: it stands in `town` from `from_day` to `to_day` inclusive.
#[derive(Debug, Clone, PartialEq)]
pub struct MobileLeg {
    pub town: &'static Town,
    pub from_day: u32,
    pub to_day: u32,
}

/// A change to capacity over a range of horizon days (0-based, inclusive).
#[derive(Debug, Clone, PartialEq)]
pub enum CapacityChange {
    /// Extra stations. For a province they are shared among its offices by the demand each
    /// office is nearest to (largest remainder), so they land where people are.
    AddStations {
        target: ChangeTarget,
        from_day: u32,
        to_day: u32,
        stations: u16,
    },
    /// A Thursday rule for the range (e.g. `open` for full Thursdays during a surge).
    Thursday {
        target: ChangeTarget,
        from_day: u32,
        to_day: u32,
        rule: ThursdayRule,
    },
    /// Fridays in the range open with the standard day's hours.
    FridayOpening {
        target: ChangeTarget,
        from_day: u32,
        to_day: u32,
    },
    Closure {
        target: ChangeTarget,
        from_day: u32,
        to_day: u32,
        reason: String,
    },
    /// A mobile unit touring towns; it keeps the standard week while it stands somewhere.
    MobileUnit {
        id: String,
        province: &'static Province,
        stations: u16,
        legs: Vec<MobileLeg>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Each applicant books the earliest acceptable slot when they register (first come, first
    /// served), and retries daily while nothing acceptable is free.
    Fcfs,
    /// Once a day the allocator assigns the waiting applicants to office-days.
    DailyBatch,
    /// Ballot windows: applicants enter while a window is open; when it closes (every
    /// `ballot_every_days`), the allocator assigns everyone waiting at once, ties by lottery
    /// instead of registration time (entering early earns nothing).
    Ballot,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 3] = [PolicyKind::Fcfs, PolicyKind::DailyBatch, PolicyKind::Ballot];

    /// The name scenario files and reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Fcfs => "fcfs",
            PolicyKind::DailyBatch => "daily_batch",
            PolicyKind::Ballot => "ballot",
        }
    }

    pub fn parse(name: &str) -> Option<PolicyKind> {
        PolicyKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub kind: PolicyKind,
    /// Days ahead (from today) whose slots are open for booking.
    pub booking_window_days: u32,
    /// The earliest bookable day is today + lead_days.
    pub lead_days: u32,
    /// Share of each office-day's seats kept for card pickups.
    pub pickup_share: f64,
    /// Most applicants one daily batch run assigns (the oldest first).
    pub batch_max_applicants: u32,
    /// Days between ballot closes (the length of a window).
    pub ballot_every_days: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            kind: PolicyKind::Fcfs,
            booking_window_days: 30,
            lead_days: 1,
            pickup_share: 0.15,
            batch_max_applicants: 20_000,
            ballot_every_days: 7,
        }
    }
}

/// What `nobat plan` aims for and what additions cost.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSpec {
    /// Every province's p95 wait, registration to enrolment, in working days.
    pub target_wait_days_p95: u32,
    /// Reported: applicants further than this from every office.
    pub max_distance_km: Option<f64>,
    /// Additions are decided per block of this many days (a station is hired for a block).
    pub block_days: u32,
    pub station_day_cost: f64,
    pub thursday_office_day_cost: f64,
    pub friday_office_day_cost: Option<f64>,
    pub mobile_unit_day_cost: f64,
    pub stations_per_province_max: u32,
    pub mobile_units_per_province_max: u32,
    pub mobile_unit_stations: u16,
    pub thursday_openings: bool,
    pub friday_openings: bool,
}

fn check_rate(problems: &mut Problems, path: &str, value: Option<f64>, default: f64) -> f64 {
    problems.share(path, value, default)
}

pub(super) fn validate_demand(
    raw: Option<&RawDemand>,
    horizon_days: u32,
    provinces: &[&'static Province],
    problems: &mut Problems,
) -> DemandSpec {
    let Some(raw) = raw else {
        return DemandSpec::default();
    };
    let base = raw.base_daily_per_million.unwrap_or(0.0);
    if !(base.is_finite() && (0.0..=100_000.0).contains(&base)) {
        problems.add(
            "demand.base_daily_per_million",
            format!("must be between 0 and 100000, got {base}"),
        );
    }
    for (slug, &n) in &raw.province_daily {
        let path = format!("demand.province_daily.{slug}");
        if !provinces.iter().any(|p| &p.slug == slug) {
            problems.add(
                &path,
                format!("{slug:?} is not one of the scenario's provinces"),
            );
        }
        if n > BASE_DAILY_MAX {
            problems.add(&path, format!("at most {BASE_DAILY_MAX} a day, got {n}"));
        }
    }
    if raw.surges.len() > SURGES_MAX {
        problems.add(
            "demand.surges",
            format!("at most {SURGES_MAX} surges, got {}", raw.surges.len()),
        );
    }
    let surges = raw
        .surges
        .iter()
        .enumerate()
        .map(|(i, s)| validate_surge(i, s, horizon_days, provinces, problems))
        .collect();
    DemandSpec {
        base_daily_per_million: base,
        province_daily: raw.province_daily.clone(),
        surges,
    }
}

/// Surge `i` of the demand section: its days within the horizon, its peak within its days,
/// its provinces among the scenario's.
fn validate_surge(
    i: usize,
    s: &RawSurge,
    horizon_days: u32,
    provinces: &[&'static Province],
    problems: &mut Problems,
) -> Surge {
    let at = |f: &str| format!("demand.surges[{i}].{f}");
    if s.name.trim().is_empty() {
        problems.add(at("name"), "must not be empty");
    }
    if s.total > SURGE_TOTAL_MAX {
        problems.add(
            at("total"),
            format!("at most {SURGE_TOTAL_MAX}, got {}", s.total),
        );
    }
    if s.start_day >= horizon_days {
        problems.add(
            at("start_day"),
            format!(
                "{} is beyond the {horizon_days}-day horizon (days count from 0)",
                s.start_day
            ),
        );
    }
    if s.days == 0 {
        problems.add(at("days"), "must be at least 1");
    } else if u64::from(s.start_day) + u64::from(s.days) > u64::from(horizon_days) {
        problems.add(
            at("days"),
            format!(
                "days {}..{} run past the {horizon_days}-day horizon",
                s.start_day,
                u64::from(s.start_day) + u64::from(s.days) - 1
            ),
        );
    }
    let peak_day = s.peak_day.unwrap_or(s.start_day);
    if peak_day >= horizon_days {
        problems.add(
            at("peak_day"),
            format!("{peak_day} is beyond the {horizon_days}-day horizon"),
        );
    } else if peak_day < s.start_day
        || u64::from(peak_day) >= u64::from(s.start_day) + u64::from(s.days.max(1))
    {
        problems.add(
            at("peak_day"),
            format!(
                "{peak_day} is outside the surge (days {}..{})",
                s.start_day,
                u64::from(s.start_day) + u64::from(s.days.max(1)) - 1
            ),
        );
    }
    let surge_provinces = match &s.provinces {
        Some(sel) => problems.provinces(&at("provinces"), sel),
        None => provinces.to_vec(),
    };
    for (j, p) in surge_provinces.iter().enumerate() {
        if !provinces.iter().any(|q| q.slug == p.slug) {
            problems.add(
                format!("demand.surges[{i}].provinces[{j}]"),
                format!("{:?} is not one of the scenario's provinces", p.slug),
            );
        }
    }
    Surge {
        name: s.name.trim().to_string(),
        total: s.total,
        start_day: s.start_day,
        days: s.days.max(1),
        peak_day,
        shape: match s.shape.unwrap_or(RawSurgeShape::Triangle) {
            RawSurgeShape::Flat => SurgeShape::Flat,
            RawSurgeShape::Triangle => SurgeShape::Triangle,
            RawSurgeShape::FrontLoaded => SurgeShape::FrontLoaded,
        },
        provinces: surge_provinces,
    }
}

pub(super) fn validate_behaviour(raw: Option<&RawBehaviour>, problems: &mut Problems) -> Behaviour {
    let d = Behaviour::default();
    let Some(r) = raw else {
        return d;
    };
    let max_distance_km = problems.distance(
        "behaviour.max_distance_km",
        r.max_distance_km,
        d.max_distance_km,
        2_000.0,
    );
    let km_per_wait_day = r.km_per_wait_day.unwrap_or(d.km_per_wait_day);
    if !(km_per_wait_day.is_finite() && (0.0..=1_000.0).contains(&km_per_wait_day)) {
        problems.add(
            "behaviour.km_per_wait_day",
            format!("must be between 0 and 1000, got {km_per_wait_day}"),
        );
    }
    let card_production_days = r.card_production_days.unwrap_or(d.card_production_days);
    if card_production_days > 365 {
        problems.add(
            "behaviour.card_production_days",
            format!("at most 365, got {card_production_days}"),
        );
    }
    let pickup_minutes = r.pickup_minutes.unwrap_or(d.pickup_minutes);
    if !(1..=120).contains(&pickup_minutes) {
        problems.add(
            "behaviour.pickup_minutes",
            format!("must be between 1 and 120, got {pickup_minutes}"),
        );
    }
    if r.abandon_after_days == Some(0) {
        problems.add("behaviour.abandon_after_days", "must be at least 1");
    }
    let cancel_rate = check_rate(
        problems,
        "behaviour.cancel_rate",
        r.cancel_rate,
        d.cancel_rate,
    );
    let reschedule_rate = check_rate(
        problems,
        "behaviour.reschedule_rate",
        r.reschedule_rate,
        d.reschedule_rate,
    );
    if cancel_rate + reschedule_rate > 1.0 {
        problems.add(
            "behaviour.reschedule_rate",
            format!("cancel_rate + reschedule_rate must be at most 1, got {cancel_rate} + {reschedule_rate}"),
        );
    }
    Behaviour {
        max_distance_km,
        km_per_wait_day,
        wait_threshold_days: r.wait_threshold_days,
        decline_share: check_rate(
            problems,
            "behaviour.decline_share",
            r.decline_share,
            d.decline_share,
        ),
        no_show_rate: check_rate(
            problems,
            "behaviour.no_show_rate",
            r.no_show_rate,
            d.no_show_rate,
        ),
        rebook_after_no_show: check_rate(
            problems,
            "behaviour.rebook_after_no_show",
            r.rebook_after_no_show,
            d.rebook_after_no_show,
        ),
        cancel_rate,
        reschedule_rate,
        abandon_after_days: r.abandon_after_days,
        card_production_days,
        pickup_minutes,
    }
}

pub(super) fn validate_policy(raw: Option<&RawPolicy>, problems: &mut Problems) -> Policy {
    let d = Policy::default();
    let Some(r) = raw else {
        return d;
    };
    let booking_window_days = r.booking_window_days.unwrap_or(d.booking_window_days);
    if !(1..=BOOKING_WINDOW_DAYS_MAX).contains(&booking_window_days) {
        problems.add(
            "policy.booking_window_days",
            format!("must be between 1 and {BOOKING_WINDOW_DAYS_MAX}, got {booking_window_days}"),
        );
    }
    let lead_days = r.lead_days.unwrap_or(d.lead_days);
    if lead_days > booking_window_days {
        problems.add(
            "policy.lead_days",
            format!("{lead_days} is beyond the {booking_window_days}-day booking window"),
        );
    }
    let pickup_share = check_rate(
        problems,
        "policy.pickup_share",
        r.pickup_share,
        d.pickup_share,
    );
    if pickup_share >= 1.0 {
        problems.add(
            "policy.pickup_share",
            "must leave seats for enrolment (< 1)",
        );
    }
    let batch_max_applicants = r.batch_max_applicants.unwrap_or(d.batch_max_applicants);
    if !(1..=1_000_000).contains(&batch_max_applicants) {
        problems.add(
            "policy.batch_max_applicants",
            format!("must be between 1 and 1000000, got {batch_max_applicants}"),
        );
    }
    let ballot_every_days = r.ballot_every_days.unwrap_or(d.ballot_every_days);
    if !(1..=60).contains(&ballot_every_days) {
        problems.add(
            "policy.ballot_every_days",
            format!("must be between 1 and 60, got {ballot_every_days}"),
        );
    }
    Policy {
        kind: match r.kind.unwrap_or(RawPolicyKind::Fcfs) {
            RawPolicyKind::Fcfs => PolicyKind::Fcfs,
            RawPolicyKind::DailyBatch => PolicyKind::DailyBatch,
            RawPolicyKind::Ballot => PolicyKind::Ballot,
        },
        booking_window_days,
        lead_days,
        pickup_share,
        batch_max_applicants,
        ballot_every_days,
    }
}

pub(super) fn validate_plan(
    raw: Option<&RawPlan>,
    horizon_days: u32,
    problems: &mut Problems,
) -> Option<PlanSpec> {
    let r = raw?;
    if !(1..=horizon_days).contains(&r.target_wait_days_p95) {
        problems.add(
            "plan.target_wait_days_p95",
            format!(
                "must be between 1 and the {horizon_days}-day horizon, got {}",
                r.target_wait_days_p95
            ),
        );
    }
    let block_days = r.block_days.unwrap_or(30);
    if !(1..=horizon_days).contains(&block_days) {
        problems.add(
            "plan.block_days",
            format!("must be between 1 and the {horizon_days}-day horizon, got {block_days}"),
        );
    }
    let max_distance_km = r
        .max_distance_km
        .map(|v| problems.distance("plan.max_distance_km", Some(v), 50.0, 2_000.0));
    let mut cost = |name: &str, v: f64| {
        if !(v.is_finite() && (0.0..=1e12).contains(&v)) {
            problems.add(
                format!("plan.costs.{name}"),
                format!("must be a cost between 0 and 1e12, got {v}"),
            );
        }
        v
    };
    let station_day_cost = cost("station_day", r.costs.station_day);
    let thursday_office_day_cost = cost("thursday_office_day", r.costs.thursday_office_day);
    let friday_office_day_cost = r
        .costs
        .friday_office_day
        .map(|v| cost("friday_office_day", v));
    let mobile_unit_day_cost = cost("mobile_unit_day", r.costs.mobile_unit_day);
    let l = &r.limits;
    let mobile_unit_stations = l.mobile_unit_stations.unwrap_or(2);
    if !(1..=super::STATIONS_MAX).contains(&mobile_unit_stations) {
        problems.add(
            "plan.limits.mobile_unit_stations",
            format!(
                "must be between 1 and {}, got {mobile_unit_stations}",
                super::STATIONS_MAX
            ),
        );
    }
    let stations_per_province_max = l.stations_per_province_max.unwrap_or(2_000);
    let mobile_units_per_province_max = l.mobile_units_per_province_max.unwrap_or(100);
    for (name, v) in [
        ("stations_per_province_max", stations_per_province_max),
        (
            "mobile_units_per_province_max",
            mobile_units_per_province_max,
        ),
    ] {
        if v > 100_000 {
            problems.add(
                format!("plan.limits.{name}"),
                format!("at most 100000, got {v}"),
            );
        }
    }
    let friday_openings = l
        .friday_openings
        .unwrap_or(friday_office_day_cost.is_some());
    if friday_openings && friday_office_day_cost.is_none() {
        problems.add(
            "plan.limits.friday_openings",
            "Friday openings need a cost: set plan.costs.friday_office_day",
        );
    }
    Some(PlanSpec {
        target_wait_days_p95: r.target_wait_days_p95,
        max_distance_km,
        block_days,
        station_day_cost,
        thursday_office_day_cost,
        friday_office_day_cost,
        mobile_unit_day_cost,
        stations_per_province_max,
        mobile_units_per_province_max,
        mobile_unit_stations,
        thursday_openings: l.thursday_openings.unwrap_or(true),
        friday_openings,
    })
}

/// Validates capacity changes; `prefix` is the path of the list (`capacity_changes`).
pub(super) fn validate_changes(
    raw: &[RawCapacityChange],
    prefix: &str,
    horizon_days: u32,
    provinces: &[&'static Province],
    problems: &mut Problems,
) -> Vec<CapacityChange> {
    if raw.len() > CAPACITY_CHANGES_MAX {
        problems.add(
            prefix,
            format!("at most {CAPACITY_CHANGES_MAX} changes, got {}", raw.len()),
        );
        return Vec::new();
    }
    raw.iter()
        .enumerate()
        .filter_map(|(index, c)| {
            let check = ChangeCheck {
                prefix,
                index,
                horizon_days,
                provinces,
            };
            check.validate(c, problems)
        })
        .collect()
}

/// One capacity change being validated: where it is in the file and what it is checked
/// against. Problems are reported in field order, each change's after the previous one's.
struct ChangeCheck<'a> {
    prefix: &'a str,
    index: usize,
    horizon_days: u32,
    provinces: &'a [&'static Province],
}

impl ChangeCheck<'_> {
    fn at(&self, field: &str) -> String {
        format!("{}[{}].{field}", self.prefix, self.index)
    }

    /// The change, or `None` when it lacks what its kind cannot do without.
    fn validate(&self, c: &RawCapacityChange, problems: &mut Problems) -> Option<CapacityChange> {
        self.refuse_foreign_fields(c, problems);
        let province = self.province(c, problems);
        let target = self.target(c, province, problems);
        let from_day = c.from_day.unwrap_or(0);
        let to_day = c.to_day.unwrap_or(self.horizon_days.saturating_sub(1));
        if c.kind != RawChangeKind::MobileUnit {
            check_day_range(
                problems,
                &self.at("from_day"),
                &self.at("to_day"),
                from_day,
                to_day,
                self.horizon_days,
            );
        }
        let change = match c.kind {
            RawChangeKind::AddStations => {
                let stations = c.stations.unwrap_or(0);
                if !(1..=1_000).contains(&stations) {
                    problems.add(
                        self.at("stations"),
                        format!("must be between 1 and 1000, got {stations}"),
                    );
                }
                CapacityChange::AddStations {
                    target,
                    from_day,
                    to_day,
                    stations,
                }
            }
            RawChangeKind::Thursday => {
                let Some(rule) = c.rule else {
                    problems.add(
                        self.at("rule"),
                        "a thursday change needs rule = closed, half_day or open",
                    );
                    return None;
                };
                CapacityChange::Thursday {
                    target,
                    from_day,
                    to_day,
                    rule: thursday_rule(rule),
                }
            }
            RawChangeKind::FridayOpening => CapacityChange::FridayOpening {
                target,
                from_day,
                to_day,
            },
            RawChangeKind::Closure => CapacityChange::Closure {
                target,
                from_day,
                to_day,
                reason: c
                    .reason
                    .as_deref()
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .unwrap_or("closed")
                    .to_string(),
            },
            RawChangeKind::MobileUnit => return self.mobile_unit(c, province, problems),
        };
        Some(change)
    }

    /// Fields that do not belong to the kind are refused, not ignored.
    fn refuse_foreign_fields(&self, c: &RawCapacityChange, problems: &mut Problems) {
        let kind_name = match c.kind {
            RawChangeKind::AddStations => "add_stations",
            RawChangeKind::Thursday => "thursday",
            RawChangeKind::FridayOpening => "friday_opening",
            RawChangeKind::Closure => "closure",
            RawChangeKind::MobileUnit => "mobile_unit",
        };
        let allowed: &[&str] = match c.kind {
            RawChangeKind::AddStations => &[
                "province", "town", "office", "from_day", "to_day", "stations",
            ],
            RawChangeKind::Thursday => {
                &["province", "town", "office", "from_day", "to_day", "rule"]
            }
            RawChangeKind::FridayOpening => &["province", "town", "office", "from_day", "to_day"],
            RawChangeKind::Closure => {
                &["province", "town", "office", "from_day", "to_day", "reason"]
            }
            RawChangeKind::MobileUnit => &["province", "id", "stations", "schedule"],
        };
        let present = [
            ("province", c.province.is_some()),
            ("town", c.town.is_some()),
            ("office", c.office.is_some()),
            ("from_day", c.from_day.is_some()),
            ("to_day", c.to_day.is_some()),
            ("stations", c.stations.is_some()),
            ("rule", c.rule.is_some()),
            ("reason", c.reason.is_some()),
            ("id", c.id.is_some()),
            ("schedule", c.schedule.is_some()),
        ];
        for (field, is_present) in present {
            if is_present && !allowed.contains(&field) {
                problems.add(
                    self.at(field),
                    format!("does not apply to a {kind_name} change"),
                );
            }
        }
    }

    /// The named province, if it exists (reported when it is not one of the scenario's).
    fn province(
        &self,
        c: &RawCapacityChange,
        problems: &mut Problems,
    ) -> Option<&'static Province> {
        let slug = c.province.as_ref()?;
        let p = Province::by_slug(slug);
        match p {
            None => problems.add(
                self.at("province"),
                format!("unknown province slug {slug:?} (see data/provinces.csv)"),
            ),
            Some(p) if !self.provinces.iter().any(|q| q.slug == p.slug) => problems.add(
                self.at("province"),
                format!("{slug:?} is not one of the scenario's provinces"),
            ),
            _ => {}
        }
        p
    }

    /// Which offices the change applies to.
    fn target(
        &self,
        c: &RawCapacityChange,
        province: Option<&'static Province>,
        problems: &mut Problems,
    ) -> ChangeTarget {
        let target = match (&c.office, province) {
            (Some(_), Some(_)) => {
                problems.add(self.at("office"), "give office or province, not both");
                ChangeTarget::All
            }
            (Some(id), None) => ChangeTarget::Office(id.trim().to_string()),
            (None, Some(p)) => match &c.town {
                Some(town) if c.kind != RawChangeKind::MobileUnit => {
                    ChangeTarget::Town(p, town.trim().to_string())
                }
                _ => ChangeTarget::Province(p),
            },
            (None, None) => ChangeTarget::All,
        };
        if c.town.is_some() && c.province.is_none() {
            problems.add(self.at("town"), "a town needs its province");
        }
        target
    }

    fn mobile_unit(
        &self,
        c: &RawCapacityChange,
        province: Option<&'static Province>,
        problems: &mut Problems,
    ) -> Option<CapacityChange> {
        let Some(province) = province else {
            problems.add(self.at("province"), "a mobile unit needs its province");
            return None;
        };
        let id = c.id.clone().unwrap_or_default();
        if nobat_domain::OfficeId::parse(&id).is_err() {
            problems.add(
                self.at("id"),
                "a mobile unit needs an id of 1 to 32 letters, digits, '-' and '_'",
            );
        }
        let stations = c.stations.unwrap_or(1);
        if !(1..=super::STATIONS_MAX).contains(&stations) {
            problems.add(
                self.at("stations"),
                format!(
                    "must be between 1 and {}, got {stations}",
                    super::STATIONS_MAX
                ),
            );
        }
        let schedule = c.schedule.as_deref().unwrap_or(&[]);
        if schedule.is_empty() || schedule.len() > MOBILE_LEGS_MAX {
            problems.add(
                self.at("schedule"),
                format!("needs 1 to {MOBILE_LEGS_MAX} legs, got {}", schedule.len()),
            );
        }
        Some(CapacityChange::MobileUnit {
            id,
            province,
            stations,
            legs: self.mobile_legs(schedule, province, problems),
        })
    }

    /// A mobile unit's legs: in the horizon, in order without overlaps, each in a known
    /// town of the unit's province.
    fn mobile_legs(
        &self,
        schedule: &[RawMobileLeg],
        province: &'static Province,
        problems: &mut Problems,
    ) -> Vec<MobileLeg> {
        let towns = Town::of_province(&province.slug);
        let mut legs: Vec<MobileLeg> = Vec::new();
        for (j, leg) in schedule.iter().enumerate() {
            let lat = |f: &str| format!("{}[{}].schedule[{j}].{f}", self.prefix, self.index);
            check_day_range(
                problems,
                &lat("from_day"),
                &lat("to_day"),
                leg.from_day,
                leg.to_day,
                self.horizon_days,
            );
            if let Some(prev) = legs.last() {
                if leg.from_day <= prev.to_day {
                    problems.add(
                        lat("from_day"),
                        format!(
                            "overlaps the previous leg, which ends on day {}",
                            prev.to_day
                        ),
                    );
                }
            }
            match towns.iter().find(|t| {
                t.name_en.eq_ignore_ascii_case(leg.town.trim()) || t.name_fa == leg.town.trim()
            }) {
                Some(town) => legs.push(MobileLeg {
                    town,
                    from_day: leg.from_day,
                    to_day: leg.to_day,
                }),
                None => problems.add(
                    lat("town"),
                    format!(
                        "{:?} is not a town of {} in data/towns.csv (one of: {})",
                        leg.town,
                        province.name_en,
                        towns
                            .iter()
                            .map(|t| t.name_en.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }
        legs
    }
}

fn check_day_range(
    problems: &mut Problems,
    from_path: &str,
    to_path: &str,
    from_day: u32,
    to_day: u32,
    horizon_days: u32,
) {
    if from_day >= horizon_days {
        problems.add(
            from_path,
            format!("{from_day} is beyond the {horizon_days}-day horizon (days count from 0)"),
        );
    }
    if to_day >= horizon_days {
        problems.add(
            to_path,
            format!("{to_day} is beyond the {horizon_days}-day horizon (days count from 0)"),
        );
    } else if to_day < from_day {
        problems.add(to_path, format!("{to_day} is before from_day {from_day}"));
    }
}
