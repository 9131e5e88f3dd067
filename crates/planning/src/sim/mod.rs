//! The capacity simulator: a deterministic day-by-day run of registrations, bookings,
//! enrolments and card pickups over a scenario's horizon.
//!
//! Applicants are aggregated: a group is a count of applicants who share a demand cell, a
//! registration day and (once booked) an office-day. Every applicant is in exactly one
//! [`State`] at every moment; [`Simulation::audit`] recounts the states from the data
//! structures and checks they add up to the registrations (the conservation tests run it
//! every day). Random outcomes (no-shows, cancellations, declines) are binomial draws from
//! one ChaCha stream seeded from the scenario seed, so the same scenario gives the same run.
//!
//! One day, in order:
//! 1. cancellations and reschedules that fall due release their seats;
//! 2. today's appointments: no-shows lose their seat (some register again), the rest enrol;
//! 3. cards that are ready join their office's pickup queue; pickups are served FIFO up to
//!    the day's pickup visits;
//! 4. waiting applicants past `abandon_after_days` give up; today's registrations arrive;
//! 5. the booking policy books waiting applicants into office-days from today + lead to
//!    today + window (FCFS: oldest registration first, cells taking turns in small chunks,
//!    each taking the offer with the least `distance + km_per_wait_day × days`).

mod random;
pub mod world;

use std::collections::{BTreeMap, VecDeque};

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::allocator::{
    allocate, AllocationProblem, Applicant, OfficeDaySeats, OfficeSite, Outcome,
};
use crate::scenario::{derive_seed, Behaviour, Policy, PolicyKind, Scenario};
use nobat_domain::Office;

pub use random::binomial;
pub use world::{holidays_for, largest_remainder, World, WorldError};

/// Applicants one cell books per turn within a registration day: small enough that cells
/// competing for the same offices interleave as their registrations would, large enough that
/// a national surge takes few turns.
const FCFS_CHUNK: u64 = 64;
/// Distance bands of the report, in km.
/// Bound on the entries one ballot close assigns (everyone waiting, in practice).
const BALLOT_MAX_ENTRIES: u64 = 2_000_000;

/// Which batch the allocator runs: the daily one (oldest registrations first and ahead in
/// ties) or a ballot's close (everyone waiting, ties by lottery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchRule {
    Daily,
    BallotClose,
}

pub const DISTANCE_BANDS_KM: [f64; 3] = [10.0, 25.0, 50.0];

/// Where an applicant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Registered, no appointment.
    Waiting,
    /// Holds an enrolment appointment.
    Booked,
    /// Enrolled; the card is being produced.
    InProduction,
    /// The card is ready; the applicant has not collected it yet.
    AwaitingPickup,
    Delivered,
    /// Cancelled the booking and left.
    Cancelled,
    /// Gave up waiting for a slot.
    Abandoned,
    /// Missed the appointment and did not register again.
    NoShowDropped,
}

impl State {
    pub const ALL: [State; 8] = [
        State::Waiting,
        State::Booked,
        State::InProduction,
        State::AwaitingPickup,
        State::Delivered,
        State::Cancelled,
        State::Abandoned,
        State::NoShowDropped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Booked => "booked",
            State::InProduction => "in_production",
            State::AwaitingPickup => "awaiting_pickup",
            State::Delivered => "delivered",
            State::Cancelled => "cancelled",
            State::Abandoned => "abandoned",
            State::NoShowDropped => "no_show_dropped",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SimError {
    #[error(transparent)]
    World(#[from] WorldError),
    /// The allocator refused the day's batch (a defect: the batch is built to be valid).
    #[error("the daily allocation failed: {0}")]
    Allocation(String),
    #[error("conservation broken on day {day}: {detail}")]
    Audit { day: u32, detail: String },
}

/// Knobs that never change results.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimOptions {
    /// Recount every state from the data structures after each day (slow; for tests).
    pub audit_every_day: bool,
}

/// One day of the national time series (counts at the end of the day).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayRecord {
    pub day: u32,
    pub registered_today: u64,
    pub registered_total: u64,
    /// Applicants in each state, indexed like [`State::ALL`].
    pub states: [u64; 8],
    pub enrolled_today: u64,
    pub no_shows_today: u64,
    pub cancellations_today: u64,
    pub reschedules_today: u64,
    pub enrol_seats_today: u64,
    pub pickups_today: u64,
    pub pickup_visits_today: u64,
}

impl DayRecord {
    pub fn count(&self, state: State) -> u64 {
        self.states[state as usize]
    }

    /// Registered but not yet enrolled: waiting or booked.
    pub fn backlog(&self) -> u64 {
        self.count(State::Waiting) + self.count(State::Booked)
    }
}

/// Per-province results.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvinceResult {
    pub slug: String,
    pub name_en: String,
    pub registered: u64,
    pub enrolled: u64,
    /// Enrolments by wait in working days (index = days).
    pub wait_histogram: Vec<u64>,
    /// Backlog (waiting + booked) at the end of each day.
    pub backlog_daily: Vec<u64>,
    pub enrolled_daily: Vec<u64>,
    pub enrol_seats: u64,
    pub no_shows: u64,
}

impl ProvinceResult {
    /// The p-th percentile (0 < p ≤ 1) of the wait in working days, `None` without enrolments:
    /// the smallest w such that at least ⌈p·n⌉ enrolments waited w days or less.
    pub fn wait_percentile(&self, p: f64) -> Option<u32> {
        percentile(&self.wait_histogram, p)
    }

    pub fn wait_mean(&self) -> Option<f64> {
        let n: u64 = self.wait_histogram.iter().sum();
        (n > 0).then(|| {
            self.wait_histogram
                .iter()
                .enumerate()
                .map(|(w, &c)| w as f64 * c as f64)
                .sum::<f64>()
                / n as f64
        })
    }
}

pub fn percentile(histogram: &[u64], p: f64) -> Option<u32> {
    let n: u64 = histogram.iter().sum();
    if n == 0 {
        return None;
    }
    let rank = ((p * n as f64).ceil() as u64).clamp(1, n);
    let mut acc = 0;
    for (w, &c) in histogram.iter().enumerate() {
        acc += c;
        if acc >= rank {
            return Some(w as u32);
        }
    }
    Some(histogram.len().saturating_sub(1) as u32)
}

/// Per-site results.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteResult {
    pub id: String,
    pub province: String,
    pub kind: String,
    pub town: String,
    pub enrol_seats: u64,
    pub enrolled: u64,
    pub no_shows: u64,
    pub pickup_visits: u64,
    pub pickups: u64,
}

impl SiteResult {
    pub fn utilisation(&self) -> f64 {
        if self.enrol_seats == 0 {
            0.0
        } else {
            self.enrolled as f64 / self.enrol_seats as f64
        }
    }
}

/// Everything a run produces.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOutput {
    pub days: Vec<DayRecord>,
    pub provinces: Vec<ProvinceResult>,
    pub sites: Vec<SiteResult>,
    /// Enrolments within 10, 25, 50 km and beyond.
    pub distance_bands: [u64; 4],
    /// Enrolled per site-day (site × horizon, row-major), for capacity checks.
    pub enrolled_by_site_day: Vec<u32>,
    /// Enrolment seats per site-day, same layout.
    pub seats_by_site_day: Vec<u32>,
    pub horizon_days: u32,
}

impl SimOutput {
    pub fn national_wait_histogram(&self) -> Vec<u64> {
        let len = self
            .provinces
            .iter()
            .map(|p| p.wait_histogram.len())
            .max()
            .unwrap_or(0);
        let mut h = vec![0; len];
        for p in &self.provinces {
            for (w, c) in p.wait_histogram.iter().enumerate() {
                h[w] += c;
            }
        }
        h
    }

    /// Jain's fairness index of the provinces' mean waits (1 = all equal; 1/n = one province
    /// bears all the waiting). Provinces without enrolments are left out.
    pub fn fairness_jain(&self) -> Option<f64> {
        let means: Vec<f64> = self
            .provinces
            .iter()
            .filter_map(|p| p.wait_mean())
            .collect();
        let sum: f64 = means.iter().sum();
        let sq: f64 = means.iter().map(|m| m * m).sum();
        (!means.is_empty() && sq > 0.0).then(|| sum * sum / (means.len() as f64 * sq))
    }
}

#[derive(Debug, Clone, Copy)]
struct Booking {
    cell: u32,
    site: u32,
    reg_day: u32,
    appt_day: u32,
    count: u64,
}

#[derive(Debug, Clone, Copy)]
struct Release {
    booking: Booking,
    /// Rescheduled (back to waiting) rather than cancelled for good.
    rebook: bool,
}

/// A simulation in progress; [`Simulation::step`] runs one day.
pub struct Simulation<'w> {
    world: &'w World,
    behaviour: Behaviour,
    policy: Policy,
    rng: ChaCha8Rng,
    day: u32,
    /// Per cell: registration day → applicants waiting.
    waiting: Vec<BTreeMap<u32, u64>>,
    /// Bookings by appointment day (the part that will not be released).
    bookings: Vec<Vec<Booking>>,
    /// Releases by the day they happen.
    releases: Vec<Vec<Release>>,
    /// Booked seats per site-day (row-major site × day).
    booked: Vec<u32>,
    enrolled: Vec<u32>,
    /// First day at each site that may have a free seat.
    free_hint: Vec<u32>,
    /// Cards by ready day: (pickup site, count).
    production: Vec<Vec<(u32, u64)>>,
    /// Per site: (ready day, count) awaiting pickup, oldest first.
    pickup_queue: Vec<VecDeque<(u32, u64)>>,
    states: [u64; 8],
    province_waiting_booked: Vec<u64>,
    registered_total: u64,
    out: SimOutput,
}

/// The allocator's "service" of a province in the daily batch: offices serve their own.
fn province_key(p: usize) -> String {
    format!("p{p}")
}

impl<'w> Simulation<'w> {
    pub fn new(world: &'w World, scenario: &Scenario) -> Result<Self, SimError> {
        let h = world.horizon_days as usize;
        let n_sites = world.sites.len();
        let seats_by_site_day: Vec<u32> = world
            .sites
            .iter()
            .flat_map(|s| s.enrol_seats.iter().copied())
            .collect();
        let out = SimOutput {
            days: Vec::with_capacity(h),
            provinces: world
                .provinces
                .iter()
                .enumerate()
                .map(|(pi, p)| ProvinceResult {
                    slug: p.slug.clone(),
                    name_en: p.name_en.clone(),
                    registered: 0,
                    enrolled: 0,
                    wait_histogram: vec![0; h + 1],
                    backlog_daily: Vec::with_capacity(h),
                    enrolled_daily: vec![0; h],
                    enrol_seats: world
                        .sites
                        .iter()
                        .filter(|s| s.province == pi)
                        .map(|s| s.enrol_seats.iter().map(|&x| u64::from(x)).sum::<u64>())
                        .sum(),
                    no_shows: 0,
                })
                .collect(),
            sites: world
                .sites
                .iter()
                .map(|s| SiteResult {
                    id: s.id.clone(),
                    province: world.provinces[s.province].slug.clone(),
                    kind: s.kind.to_string(),
                    town: s.town.clone(),
                    enrol_seats: s.enrol_seats.iter().map(|&x| u64::from(x)).sum(),
                    enrolled: 0,
                    no_shows: 0,
                    pickup_visits: s.pickup_visits.iter().map(|&x| u64::from(x)).sum(),
                    pickups: 0,
                })
                .collect(),
            distance_bands: [0; 4],
            enrolled_by_site_day: vec![0; n_sites * h],
            seats_by_site_day,
            horizon_days: world.horizon_days,
        };
        Ok(Self {
            world,
            behaviour: scenario.behaviour.clone(),
            policy: scenario.policy.clone(),
            rng: ChaCha8Rng::seed_from_u64(derive_seed(scenario.seed, "simulate", 0)),
            day: 0,
            waiting: vec![BTreeMap::new(); world.cells.len()],
            bookings: vec![Vec::new(); h],
            releases: vec![Vec::new(); h],
            booked: vec![0; n_sites * h],
            enrolled: vec![0; n_sites * h],
            free_hint: vec![0; n_sites],
            production: vec![Vec::new(); h],
            pickup_queue: vec![VecDeque::new(); n_sites],
            states: [0; 8],
            province_waiting_booked: vec![0; world.provinces.len()],
            registered_total: 0,
            out,
        })
    }

    fn idx(&self, site: u32, day: u32) -> usize {
        site as usize * self.world.horizon_days as usize + day as usize
    }

    fn mv(&mut self, from: State, to: State, n: u64) {
        debug_assert!(self.states[from as usize] >= n);
        self.states[from as usize] -= n;
        self.states[to as usize] += n;
    }

    fn province_of_cell(&self, cell: u32) -> usize {
        self.world.cells[cell as usize].province
    }

    fn add_waiting(&mut self, cell: u32, reg_day: u32, n: u64) {
        if n > 0 {
            *self.waiting[cell as usize].entry(reg_day).or_insert(0) += n;
        }
    }

    pub fn is_done(&self) -> bool {
        self.day >= self.world.horizon_days
    }

    /// Runs one day. Returns false once the horizon is over.
    pub fn step(&mut self) -> Result<bool, SimError> {
        if self.is_done() {
            return Ok(false);
        }
        let today = self.day;
        let mut rec = DayRecord {
            day: today,
            ..DayRecord::default()
        };
        // The order is the day's: seats freed first, then appointments kept or missed,
        // cards collected, applicants giving up, new registrations, and booking last.
        self.release(today, &mut rec);
        self.appointments(today, &mut rec);
        self.pickups(today, &mut rec);
        self.abandon(today);
        self.arrivals(today, &mut rec);
        match self.policy.kind {
            PolicyKind::Fcfs => self.book_fcfs(today),
            PolicyKind::DailyBatch => self.book_batch(today, BatchRule::Daily)?,
            PolicyKind::Ballot if (today + 1) % self.policy.ballot_every_days == 0 => {
                self.book_batch(today, BatchRule::BallotClose)?
            }
            PolicyKind::Ballot => {}
        }

        rec.registered_total = self.registered_total;
        rec.states = self.states;
        rec.enrol_seats_today = self
            .world
            .sites
            .iter()
            .map(|s| u64::from(s.enrol_seats[today as usize]))
            .sum();
        for (p, pr) in self.out.provinces.iter_mut().enumerate() {
            pr.backlog_daily.push(self.province_waiting_booked[p]);
        }
        self.out.days.push(rec);
        self.day += 1;
        Ok(true)
    }

    /// Bookings cancelled or moved today give their seats back.
    fn release(&mut self, today: u32, rec: &mut DayRecord) {
        for r in std::mem::take(&mut self.releases[today as usize]) {
            let b = r.booking;
            let i = self.idx(b.site, b.appt_day);
            self.booked[i] -= b.count as u32;
            self.free_hint[b.site as usize] = self.free_hint[b.site as usize].min(b.appt_day);
            if r.rebook {
                // A moved booking starts a new wait today: the applicant chose to move it.
                self.mv(State::Booked, State::Waiting, b.count);
                self.add_waiting(b.cell, today, b.count);
                rec.reschedules_today += b.count;
            } else {
                self.mv(State::Booked, State::Cancelled, b.count);
                let p = self.province_of_cell(b.cell);
                self.province_waiting_booked[p] -= b.count;
                rec.cancellations_today += b.count;
            }
        }
    }

    /// Today's appointments: shows enrol (their cards go into production), no-shows lose
    /// the seat and some register again.
    fn appointments(&mut self, today: u32, rec: &mut DayRecord) {
        for b in std::mem::take(&mut self.bookings[today as usize]) {
            let p = self.province_of_cell(b.cell);
            let no_show = binomial(&mut self.rng, b.count, self.behaviour.no_show_rate);
            let show = b.count - no_show;
            let rebook = binomial(&mut self.rng, no_show, self.behaviour.rebook_after_no_show);
            // A no-show who registers again starts a new wait today.
            self.mv(State::Booked, State::Waiting, rebook);
            self.add_waiting(b.cell, today, rebook);
            self.mv(State::Booked, State::NoShowDropped, no_show - rebook);
            self.mv(State::Booked, State::InProduction, show);
            self.province_waiting_booked[p] -= show + no_show - rebook;
            let i = self.idx(b.site, today);
            self.enrolled[i] += show as u32;
            let wait = self.world.working_days_between(b.reg_day, today) as usize;
            let pr = &mut self.out.provinces[p];
            pr.wait_histogram[wait] += show;
            pr.enrolled += show;
            pr.enrolled_daily[today as usize] += show;
            pr.no_shows += no_show;
            let sr = &mut self.out.sites[b.site as usize];
            sr.enrolled += show;
            sr.no_shows += no_show;
            let km = self.world.candidates[b.cell as usize]
                .iter()
                .find(|(s, _)| *s == b.site)
                .map_or(f64::INFINITY, |(_, d)| *d);
            let band = DISTANCE_BANDS_KM
                .iter()
                .position(|&limit| km <= limit)
                .unwrap_or(3);
            self.out.distance_bands[band] += show;
            rec.enrolled_today += show;
            rec.no_shows_today += no_show;
            let ready = today as u64 + u64::from(self.behaviour.card_production_days);
            if show > 0 && ready < u64::from(self.world.horizon_days) {
                let pickup_site = self.world.sites[b.site as usize].pickup_site as u32;
                self.production[ready as usize].push((pickup_site, show));
            }
            // Cards ready after the horizon stay in production at the end.
        }
    }

    /// Cards ready today join their pickup site's queue; each site serves its pickup visits
    /// oldest cards first.
    fn pickups(&mut self, today: u32, rec: &mut DayRecord) {
        for (site, n) in std::mem::take(&mut self.production[today as usize]) {
            self.mv(State::InProduction, State::AwaitingPickup, n);
            self.pickup_queue[site as usize].push_back((today, n));
        }
        for (s, site) in self.world.sites.iter().enumerate() {
            let mut capacity = u64::from(site.pickup_visits[today as usize]);
            rec.pickup_visits_today += capacity;
            let queue = &mut self.pickup_queue[s];
            let mut served = 0;
            while capacity > 0 {
                let Some(front) = queue.front_mut() else {
                    break;
                };
                let take = front.1.min(capacity);
                front.1 -= take;
                capacity -= take;
                served += take;
                if front.1 == 0 {
                    queue.pop_front();
                }
            }
            if served > 0 {
                self.states[State::AwaitingPickup as usize] -= served;
                self.states[State::Delivered as usize] += served;
                self.out.sites[s].pickups += served;
                rec.pickups_today += served;
            }
        }
    }

    /// Applicants waiting longer than the behaviour's limit give up.
    fn abandon(&mut self, today: u32) {
        if let Some(limit) = self.behaviour.abandon_after_days {
            if today >= limit {
                let cutoff = today - limit;
                for cell in 0..self.waiting.len() {
                    let stale: Vec<u32> = self.waiting[cell]
                        .range(..=cutoff)
                        .map(|(&d, _)| d)
                        .collect();
                    for d in stale {
                        let n = self.waiting[cell].remove(&d).unwrap_or(0);
                        self.mv(State::Waiting, State::Abandoned, n);
                        let p = self.world.cells[cell].province;
                        self.province_waiting_booked[p] -= n;
                    }
                }
            }
        }
    }

    /// Today's registrations, spread over each province's cells by weight.
    fn arrivals(&mut self, today: u32, rec: &mut DayRecord) {
        let arrivals = self.world.arrivals(today);
        let mut province_cells: Vec<Vec<usize>> = vec![Vec::new(); self.world.provinces.len()];
        for (c, cell) in self.world.cells.iter().enumerate() {
            province_cells[cell.province].push(c);
        }
        for (p, &n) in arrivals.iter().enumerate() {
            if n == 0 || province_cells[p].is_empty() {
                continue;
            }
            let weights: Vec<f64> = province_cells[p]
                .iter()
                .map(|&c| self.world.cells[c].weight)
                .collect();
            for (&c, k) in province_cells[p].iter().zip(largest_remainder(n, &weights)) {
                self.add_waiting(c as u32, today, k);
            }
            self.states[State::Waiting as usize] += n;
            self.province_waiting_booked[p] += n;
            self.out.provinces[p].registered += n;
            rec.registered_today += n;
            self.registered_total += n;
        }
    }

    /// The best offer for a cell: (site, day, cost), or `None` when nothing is free in reach.
    fn best_offer(&mut self, cell: u32, lo: u32, hi: u32) -> Option<(u32, u32)> {
        let today = self.day;
        let mut best: Option<(u32, u32, f64)> = None;
        for &(site, km) in &self.world.candidates[cell as usize] {
            if best.is_some_and(|(_, _, c)| km >= c) {
                break; // candidates are nearest first: none further can be cheaper
            }
            let start = self.free_hint[site as usize].max(lo);
            let base = site as usize * self.world.horizon_days as usize;
            let seats = &self.world.sites[site as usize].enrol_seats;
            let mut found = None;
            for d in start..=hi {
                if self.booked[base + d as usize] < seats[d as usize] {
                    found = Some(d);
                    break;
                }
            }
            if start == self.free_hint[site as usize] || self.free_hint[site as usize] < lo {
                // Everything before `found` (or the window's end) from the hint is full.
                self.free_hint[site as usize] =
                    found.unwrap_or(hi + 1).max(self.free_hint[site as usize]);
            }
            if let Some(d) = found {
                let cost = km + self.behaviour.km_per_wait_day * f64::from(d - today);
                if best.is_none_or(|(_, _, c)| cost < c) {
                    best = Some((site, d, cost));
                }
            }
        }
        best.map(|(s, d, _)| (s, d))
    }

    fn book_fcfs(&mut self, today: u32) {
        let h = self.world.horizon_days;
        let lo = today + self.policy.lead_days;
        if lo >= h {
            return;
        }
        let hi = (today + self.policy.booking_window_days).min(h - 1);
        // Today's work: (registration day → [(cell, count)]), oldest first.
        let mut by_day: BTreeMap<u32, Vec<(u32, u64)>> = BTreeMap::new();
        for (cell, map) in self.waiting.iter().enumerate() {
            for (&reg, &n) in map {
                by_day.entry(reg).or_default().push((cell as u32, n));
            }
        }
        let mut exhausted = vec![false; self.world.cells.len()];
        for (reg_day, mut group) in by_day {
            loop {
                let mut progressed = false;
                for entry in group.iter_mut() {
                    let (cell, remaining) = *entry;
                    if remaining == 0 || exhausted[cell as usize] {
                        continue;
                    }
                    let mut chunk = remaining.min(FCFS_CHUNK);
                    while chunk > 0 {
                        let Some((site, day)) = self.best_offer(cell, lo, hi) else {
                            exhausted[cell as usize] = true;
                            break;
                        };
                        if let Some(threshold) = self.behaviour.wait_threshold_days {
                            if day - today > threshold {
                                let declined =
                                    binomial(&mut self.rng, chunk, self.behaviour.decline_share);
                                // Decliners stay waiting and try again tomorrow.
                                chunk -= declined;
                                entry.1 -= declined;
                                if chunk == 0 {
                                    break;
                                }
                            }
                        }
                        let i = self.idx(site, day);
                        let free = u64::from(
                            self.world.sites[site as usize].enrol_seats[day as usize]
                                - self.booked[i],
                        );
                        let n = chunk.min(free);
                        self.booked[i] += n as u32;
                        self.book(cell, site, reg_day, day, n);
                        chunk -= n;
                        entry.1 -= n;
                        progressed = true;
                    }
                }
                if !progressed {
                    break;
                }
            }
        }
    }

    /// The daily batch policy: everyone waiting (oldest first, at most `batch_max_applicants`)
    /// is placed at once by the allocator (exact min-cost flow: most placed, then least
    /// distance plus waiting cost), instead of the fastest clicker taking the nearest seat.
    /// Applicants stay within their province (the province is the "service" both sides carry)
    /// and within `max_distance_km`.
    fn book_batch(&mut self, today: u32, rule: BatchRule) -> Result<(), SimError> {
        let h = self.world.horizon_days;
        let lo = today + self.policy.lead_days;
        if lo >= h {
            return Ok(());
        }
        let hi = (today + self.policy.booking_window_days).min(h - 1);
        let applicants = self.batch_applicants(rule);
        if applicants.is_empty() {
            return Ok(());
        }
        let problem = AllocationProblem {
            offices: self
                .world
                .sites
                .iter()
                .map(|s| OfficeSite {
                    id: s.id.clone(),
                    lat: s.location.lat,
                    lon: s.location.lon,
                    services: Some(std::iter::once(province_key(s.province)).collect()),
                    stations: None,
                    province: None,
                })
                .collect(),
            seats: self.batch_seats(today, lo, hi),
            applicants,
            wait_km_per_day: self.behaviour.km_per_wait_day,
            default_max_km: Some(self.behaviour.max_distance_km),
            lottery_seed: match rule {
                BatchRule::Daily => format!("day-{today}"),
                BatchRule::BallotClose => format!("ballot-{today}"),
            },
        };
        let allocation = allocate(&problem, &Default::default())
            .map_err(|e| SimError::Allocation(e.to_string()))?;
        // (cell, registration day, site, day) → how many; ordered, so the draws below replay.
        let mut placed: BTreeMap<(u32, u32, u32, u32), u64> = BTreeMap::new();
        for (a, outcome) in problem.applicants.iter().zip(&allocation.outcomes) {
            if let Outcome::Assigned(x) = outcome {
                let mut parts = a.id.split('/');
                let cell: u32 = parts
                    .next()
                    .and_then(|p| p.parse().ok())
                    .expect("ids are cell/reg/k");
                let reg: u32 = parts
                    .next()
                    .and_then(|p| p.parse().ok())
                    .expect("ids are cell/reg/k");
                *placed
                    .entry((cell, reg, x.office as u32, today + x.day))
                    .or_default() += 1;
            }
        }
        for ((cell, reg, site, day), mut n) in placed {
            if let Some(threshold) = self.behaviour.wait_threshold_days {
                if day - today > threshold {
                    // Offered too late for some: they decline and wait for tomorrow's run.
                    n -= binomial(&mut self.rng, n, self.behaviour.decline_share);
                }
            }
            if n == 0 {
                continue;
            }
            let i = self.idx(site, day);
            self.booked[i] += n as u32;
            self.book(cell, site, reg, day, n);
        }
        Ok(())
    }

    /// The batch: those waiting longest first, at most `batch_max_applicants` a day or
    /// [`BALLOT_MAX_ENTRIES`] at a ballot's close, each an applicant of its cell whose
    /// "service" is its province (offices serve their own). A ballot's entries carry no
    /// registration time: the lottery orders them.
    fn batch_applicants(&self, rule: BatchRule) -> Vec<Applicant> {
        let mut waiting: Vec<(u32, u32, u64)> = Vec::new();
        for (cell, map) in self.waiting.iter().enumerate() {
            for (&reg, &n) in map {
                waiting.push((reg, cell as u32, n));
            }
        }
        waiting.sort_unstable();
        let mut budget = match rule {
            BatchRule::Daily => u64::from(self.policy.batch_max_applicants),
            BatchRule::BallotClose => BALLOT_MAX_ENTRIES,
        };
        let mut applicants = Vec::new();
        for (reg, cell, n) in waiting {
            let take = n.min(budget);
            budget -= take;
            let c = &self.world.cells[cell as usize];
            for k in 0..take {
                applicants.push(Applicant {
                    id: format!("{cell}/{reg}/{k}"),
                    lat: c.location.lat,
                    lon: c.location.lon,
                    priority: 0,
                    max_km: None,
                    service: Some(province_key(c.province)),
                    registered_at: match rule {
                        BatchRule::Daily => Some(i64::from(reg)),
                        BatchRule::BallotClose => None,
                    },
                    province: None,
                    earliest_day: None,
                    preferred_offices: None,
                });
            }
            if budget == 0 {
                break;
            }
        }
        applicants
    }

    /// Free seats of every site on days `lo..=hi`, as days from `today`.
    fn batch_seats(&self, today: u32, lo: u32, hi: u32) -> Vec<OfficeDaySeats> {
        let mut seats = Vec::new();
        for (site, s) in self.world.sites.iter().enumerate() {
            for day in lo..=hi {
                let free = s.enrol_seats[day as usize] - self.booked[self.idx(site as u32, day)];
                if free > 0 {
                    seats.push(OfficeDaySeats {
                        office: site,
                        day: day - today,
                        seats: free,
                    });
                }
            }
        }
        seats
    }

    /// Moves `n` waiting applicants into a booking, drawing who will cancel or reschedule.
    fn book(&mut self, cell: u32, site: u32, reg_day: u32, appt_day: u32, n: u64) {
        let map = &mut self.waiting[cell as usize];
        let left = map.get(&reg_day).copied().unwrap_or(0) - n;
        if left == 0 {
            map.remove(&reg_day);
        } else {
            map.insert(reg_day, left);
        }
        self.mv(State::Waiting, State::Booked, n);
        let cancel = binomial(&mut self.rng, n, self.behaviour.cancel_rate);
        let resched_p = if self.behaviour.cancel_rate < 1.0 {
            self.behaviour.reschedule_rate / (1.0 - self.behaviour.cancel_rate)
        } else {
            0.0
        };
        let resched = binomial(&mut self.rng, n - cancel, resched_p.min(1.0));
        let keep = n - cancel - resched;
        let today = self.day;
        // A change of plan comes half-way to the appointment (at the latest on its day).
        let release_day = (today + (appt_day - today).div_ceil(2)).min(appt_day);
        let booking = Booking {
            cell,
            site,
            reg_day,
            appt_day,
            count: 0,
        };
        for (count, rebook) in [(cancel, false), (resched, true)] {
            if count > 0 {
                self.releases[release_day as usize].push(Release {
                    booking: Booking { count, ..booking },
                    rebook,
                });
            }
        }
        if keep > 0 {
            self.bookings[appt_day as usize].push(Booking {
                count: keep,
                ..booking
            });
        }
    }

    /// Recounts every state from the data structures; an error names what does not add up.
    pub fn audit(&self) -> Result<(), SimError> {
        let fail = |detail: String| SimError::Audit {
            day: self.day,
            detail,
        };
        let sum: u64 = self.states.iter().sum();
        if sum != self.registered_total {
            return Err(fail(format!(
                "states sum to {sum}, registrations to {}",
                self.registered_total
            )));
        }
        let waiting: u64 = self.waiting.iter().flat_map(|m| m.values()).sum();
        let day = self.day as usize;
        let booked: u64 = self.bookings[day.min(self.bookings.len())..]
            .iter()
            .flatten()
            .map(|b| b.count)
            .sum::<u64>()
            + self.releases[day.min(self.releases.len())..]
                .iter()
                .flatten()
                .map(|r| r.booking.count)
                .sum::<u64>();
        let production: u64 = self.production[day.min(self.production.len())..]
            .iter()
            .flatten()
            .map(|(_, n)| n)
            .sum();
        // Cards that will be ready after the horizon are in production but not in the table.
        let awaiting: u64 = self.pickup_queue.iter().flatten().map(|(_, n)| n).sum();
        let checks = [
            (State::Waiting, waiting),
            (State::Booked, booked),
            (State::AwaitingPickup, awaiting),
        ];
        for (state, counted) in checks {
            if self.states[state as usize] != counted {
                return Err(fail(format!(
                    "{} is {} but the structures hold {counted}",
                    state.as_str(),
                    self.states[state as usize]
                )));
            }
        }
        if production > self.states[State::InProduction as usize] {
            return Err(fail(format!(
                "in_production is {} but {production} cards are scheduled",
                self.states[State::InProduction as usize]
            )));
        }
        let booked_seats: u64 = self.booked.iter().map(|&b| u64::from(b)).sum();
        let future_booked_seats: u64 = (0..self.world.sites.len())
            .map(|s| {
                let base = s * self.world.horizon_days as usize;
                self.booked[base + day.min(self.world.horizon_days as usize)
                    ..base + self.world.horizon_days as usize]
                    .iter()
                    .map(|&b| u64::from(b))
                    .sum::<u64>()
            })
            .sum();
        if future_booked_seats != booked {
            return Err(fail(format!(
                "future booked seats {future_booked_seats} differ from booked applicants {booked}"
            )));
        }
        for (i, (&b, &e)) in self.booked.iter().zip(&self.enrolled).enumerate() {
            let seats = self.out.seats_by_site_day[i];
            if b > seats || e > b {
                return Err(fail(format!(
                    "site-day {i}: {b} booked, {e} enrolled, {seats} seats"
                )));
            }
        }
        let _ = booked_seats;
        Ok(())
    }

    /// The results so far (complete once [`Simulation::is_done`]).
    pub fn finish(mut self) -> SimOutput {
        self.out.enrolled_by_site_day = std::mem::take(&mut self.enrolled);
        self.out
    }
}

/// Runs a scenario to the end of its horizon. `progress(day, horizon)` is called after each
/// day (for a progress bar; it cannot change the result).
pub fn simulate(
    scenario: &Scenario,
    offices: &[Office],
    options: SimOptions,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<(World, SimOutput), SimError> {
    let holidays = holidays_for(scenario);
    let world = World::build(scenario, offices, &holidays)?;
    let output = run_world(&world, scenario, options, progress)?;
    Ok((world, output))
}

/// Runs a built world (the planner reuses one world for several runs).
pub fn run_world(
    world: &World,
    scenario: &Scenario,
    options: SimOptions,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<SimOutput, SimError> {
    let mut sim = Simulation::new(world, scenario)?;
    while sim.step()? {
        if options.audit_every_day {
            sim.audit()?;
        }
        progress(sim.day, world.horizon_days);
    }
    Ok(sim.finish())
}
