//! The close of a ballot: every entry and every withheld seat in, the exact allocation out,
//! seated into concrete slots.
//!
//! The order of decisions is the allocator's: most entries placed, then by priority class,
//! then the least Σ (distance_km + wait_km_per_day × day), ties by `SHA-256(seed_hex ‖ key)`.
//! Entries carry no arrival time: when an applicant entered the window earns nothing. Inputs
//! are sorted first (offices and seats by id and time, entries by key), so the outcome depends
//! on what was entered, never on the order storage returns it in; `verify` relies on that.

use std::collections::{BTreeMap, HashMap};

use chrono::{NaiveDate, NaiveTime};
use nobat_domain::geo::haversine_km;
use nobat_domain::GeoPoint;
use serde::{Deserialize, Serialize};

use super::terms::{BallotTerms, PartOfDay, Preferences};
use super::BallotSeed;
use crate::allocator::{
    allocate_observed, lottery_digest, AllocationError, AllocationProblem, Applicant,
    OfficeDaySeats, OfficeSite, Outcome, Phase, SolveStats, SolverOptions, UnassignedReason,
};

/// Reach of an entry that names its offices: anywhere (it chose them).
const ANYWHERE_KM: f64 = 20_100.0;

/// An office taking part in the ballot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BallotOffice {
    pub id: String,
    pub location: GeoPoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub province: Option<String>,
}

/// The seats of one slot withheld for the ballot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithheldSeats {
    pub office_id: String,
    pub date: NaiveDate,
    pub start: NaiveTime,
    pub seats: u32,
}

/// One entry as the close sees it: under its published key, with its class already decided
/// from the registry (the close reads no registry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    /// Where the entrant lives (the registry's location, rounded to 0.01°): the place to be
    /// near when the preferences name none.
    pub home: GeoPoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub province: Option<String>,
    pub priority: i32,
    pub preferences: Preferences,
}

/// Everything a close decides from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BallotInput {
    pub terms: BallotTerms,
    pub offices: Vec<BallotOffice>,
    pub seats: Vec<WithheldSeats>,
    pub entries: Vec<Entry>,
}

/// An entry's seat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    pub key: String,
    pub office_id: String,
    pub date: NaiveDate,
    pub start: NaiveTime,
    pub distance_km: f64,
    /// The allocator's cost in whole metres: rounded distance plus rounded wait.
    pub cost_m: i64,
    /// Whether the slot is in the part of the day the entry asked for.
    pub part_of_day_kept: bool,
}

/// Why an entry has no seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnplacedReason {
    /// No office of the ballot within the entry's reach (or none of the offices it named
    /// still takes part).
    NoOfficeWithinMaxKm,
    /// Offices within reach, but their seats went to others.
    NoSeatWithinMaxKm,
    /// Seats within reach were left free, but only on days before the entry's earliest date.
    NoSeatAfterEarliestDate,
}

impl UnplacedReason {
    pub fn as_str(self) -> &'static str {
        match self {
            UnplacedReason::NoOfficeWithinMaxKm => "no_office_within_max_km",
            UnplacedReason::NoSeatWithinMaxKm => "no_seat_within_max_km",
            UnplacedReason::NoSeatAfterEarliestDate => "no_seat_after_earliest_date",
        }
    }
}

/// An entry without a seat: its reason and its place on the waitlist (1 first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unplaced {
    pub key: String,
    pub reason: UnplacedReason,
    pub waitlist_rank: u32,
}

/// What a close decided.
#[derive(Debug, Clone, PartialEq)]
pub struct CloseOutcome {
    /// By key.
    pub placements: Vec<Placement>,
    /// By waitlist rank: higher class first, then the lottery.
    pub unplaced: Vec<Unplaced>,
    /// The withheld seats nobody took (they return to first-come booking), by office and time.
    pub leftover: Vec<WithheldSeats>,
    /// Σ cost_m over placements: the objective the allocator minimised.
    pub total_cost_m: i64,
    pub stats: SolveStats,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CloseError {
    #[error("ballot input: {0}")]
    Input(String),
    #[error(transparent)]
    Allocation(#[from] AllocationError),
}

fn input_error(message: impl Into<String>) -> CloseError {
    CloseError::Input(message.into())
}

/// One slot's seats during seating.
struct SlotSeats {
    office: usize,
    day: u32,
    start: NaiveTime,
    free: u32,
}

/// The input in canonical order, indexed.
struct Canonical<'a> {
    terms: &'a BallotTerms,
    offices: Vec<&'a BallotOffice>,
    office_index: HashMap<&'a str, usize>,
    /// By office, day, start.
    slots: Vec<SlotSeats>,
    /// By key.
    entries: Vec<&'a Entry>,
}

impl<'a> Canonical<'a> {
    fn new(input: &'a BallotInput) -> Result<Self, CloseError> {
        if let Some(p) = input.terms.problems().first() {
            return Err(input_error(format!("terms: {}: {}", p.field, p.message)));
        }
        let mut offices: Vec<&BallotOffice> = input.offices.iter().collect();
        offices.sort_by(|a, b| a.id.cmp(&b.id));
        let mut office_index = HashMap::with_capacity(offices.len());
        for (i, o) in offices.iter().enumerate() {
            if office_index.insert(o.id.as_str(), i).is_some() {
                return Err(input_error(format!("office {} is listed twice", o.id)));
            }
        }
        let mut slots = Vec::with_capacity(input.seats.len());
        for s in &input.seats {
            let office = *office_index
                .get(s.office_id.as_str())
                .ok_or_else(|| input_error(format!("seats of unknown office {}", s.office_id)))?;
            let day = input.terms.day_of(s.date).ok_or_else(|| {
                input_error(format!(
                    "seats of {} on {} are outside the ballot's days",
                    s.office_id, s.date
                ))
            })?;
            if s.seats > 0 {
                slots.push(SlotSeats {
                    office,
                    day,
                    start: s.start,
                    free: s.seats,
                });
            }
        }
        slots.sort_by_key(|s| (s.office, s.day, s.start));
        if let Some(w) = slots
            .windows(2)
            .find(|w| (w[0].office, w[0].day, w[0].start) == (w[1].office, w[1].day, w[1].start))
        {
            return Err(input_error(format!(
                "the slot of {} on day {} at {} is listed twice",
                offices[w[0].office].id, w[0].day, w[0].start
            )));
        }
        let mut entries: Vec<&Entry> = input.entries.iter().collect();
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        if let Some(w) = entries.windows(2).find(|w| w[0].key == w[1].key) {
            return Err(input_error(format!("entry {} is listed twice", w[0].key)));
        }
        Ok(Self {
            terms: &input.terms,
            offices,
            office_index,
            slots,
            entries,
        })
    }

    /// The entry's named offices that take part (`None`: it named none).
    fn named_offices(&self, e: &Entry) -> Option<Vec<usize>> {
        (!e.preferences.office_ids.is_empty()).then(|| {
            e.preferences
                .office_ids
                .iter()
                .filter_map(|id| self.office_index.get(id.as_str()).copied())
                .collect()
        })
    }

    fn point(e: &Entry) -> GeoPoint {
        e.preferences.near.unwrap_or(e.home)
    }

    fn reach_km(&self, e: &Entry) -> f64 {
        if e.preferences.office_ids.is_empty() {
            e.preferences
                .max_km
                .unwrap_or(self.terms.max_km)
                .min(self.terms.max_km)
        } else {
            ANYWHERE_KM
        }
    }

    /// The allocation problem: the entries that can be placed anywhere at all, and for each
    /// entry its applicant's index (`None`: none of its named offices takes part).
    fn problem(&self, seed: &BallotSeed) -> (AllocationProblem, Vec<Option<usize>>) {
        let mut seats: BTreeMap<(usize, u32), u32> = BTreeMap::new();
        for s in &self.slots {
            *seats.entry((s.office, s.day)).or_default() += s.free;
        }
        let mut applicants = Vec::with_capacity(self.entries.len());
        let mut applicant_of = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            let named = self.named_offices(e);
            if named.as_ref().is_some_and(|n| n.is_empty()) {
                applicant_of.push(None);
                continue;
            }
            applicant_of.push(Some(applicants.len()));
            let point = Self::point(e);
            applicants.push(Applicant {
                id: e.key.clone(),
                lat: point.lat,
                lon: point.lon,
                priority: e.priority,
                max_km: Some(self.reach_km(e)),
                service: None,
                registered_at: None,
                province: e.province.clone(),
                earliest_day: e
                    .preferences
                    .earliest_date
                    .and_then(|d| self.terms.day_of(d)),
                preferred_offices: named,
            });
        }
        let problem = AllocationProblem {
            offices: self
                .offices
                .iter()
                .map(|o| OfficeSite {
                    id: o.id.clone(),
                    lat: o.location.lat,
                    lon: o.location.lon,
                    services: None,
                    stations: None,
                    province: o.province.clone(),
                })
                .collect(),
            seats: seats
                .into_iter()
                .map(|((office, day), seats)| OfficeDaySeats { office, day, seats })
                .collect(),
            applicants,
            wait_km_per_day: self.terms.wait_km_per_day,
            default_max_km: Some(self.terms.max_km),
            lottery_seed: seed.to_hex(),
        };
        (problem, applicant_of)
    }
}

/// Seats the entries given one office-day (in the allocator's seat order) into its slots:
/// first each entry with a part of the day into the earliest free slot of that part, then
/// the rest (no part asked, or their part full) into the earliest free slot of any part. This
/// keeps the most wishes possible: min(morning wishes, morning seats) + the same for the
/// afternoon. Returns (entry, slot) pairs.
fn seat_office_day(
    slots: &mut [SlotSeats],
    base: usize,
    people: &[(usize, PartOfDay)],
) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(people.len());
    let mut rest = Vec::new();
    for &(entry, part) in people {
        let fit = (part != PartOfDay::Any)
            .then(|| {
                slots
                    .iter()
                    .position(|s| s.free > 0 && PartOfDay::of(s.start) == part)
            })
            .flatten();
        match fit {
            Some(i) => {
                slots[i].free -= 1;
                out.push((entry, base + i));
            }
            None => rest.push(entry),
        }
    }
    for entry in rest {
        let i = slots
            .iter()
            .position(|s| s.free > 0)
            .expect("the allocator placed no more entries than the office-day's seats");
        slots[i].free -= 1;
        out.push((entry, base + i));
    }
    out
}

/// Closes a ballot: allocates every entry exactly, seats each placement into a slot, gives
/// the others a reason and a waitlist rank, and lists the seats left over.
pub fn close(input: &BallotInput, seed: &BallotSeed) -> Result<CloseOutcome, CloseError> {
    close_observed(input, seed, &mut |_| {})
}

/// The stages of [`close`], reported as each one ends (callers time them; the close has no
/// clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosePhase {
    /// The input is checked, sorted and turned into an allocation problem.
    Prepared,
    /// A stage of the allocator ended (its network built, its flow optimal).
    Allocator(Phase),
    /// Every placement has its slot.
    Seated,
}

/// [`close`], calling `on_phase` at the end of each [`ClosePhase`].
pub fn close_observed(
    input: &BallotInput,
    seed: &BallotSeed,
    on_phase: &mut dyn FnMut(ClosePhase),
) -> Result<CloseOutcome, CloseError> {
    let mut c = Canonical::new(input)?;
    let (problem, applicant_of) = c.problem(seed);
    on_phase(ClosePhase::Prepared);
    let allocation = allocate_observed(&problem, &SolverOptions::default(), &mut |p| {
        on_phase(ClosePhase::Allocator(p))
    })?;

    // Entries placed per office-day, in seat order.
    let mut by_office_day: BTreeMap<(usize, u32), Vec<(u32, usize)>> = BTreeMap::new();
    for (entry, applicant) in applicant_of.iter().enumerate() {
        if let Some(Outcome::Assigned(a)) = applicant.map(|i| &allocation.outcomes[i]) {
            by_office_day
                .entry((a.office, a.day))
                .or_default()
                .push((a.seat, entry));
        }
    }
    let mut seat_of: Vec<Option<usize>> = vec![None; c.entries.len()];
    let mut first_slot = 0;
    for ((office, day), mut people) in by_office_day {
        people.sort_unstable();
        while (c.slots[first_slot].office, c.slots[first_slot].day) < (office, day) {
            first_slot += 1;
        }
        let end = first_slot
            + c.slots[first_slot..].partition_point(|s| (s.office, s.day) == (office, day));
        let wishes: Vec<(usize, PartOfDay)> = people
            .iter()
            .map(|&(_, e)| (e, c.entries[e].preferences.part_of_day))
            .collect();
        for (entry, slot) in seat_office_day(&mut c.slots[first_slot..end], first_slot, &wishes) {
            seat_of[entry] = Some(slot);
        }
    }
    on_phase(ClosePhase::Seated);

    let mut placements = Vec::new();
    let mut unplaced = Vec::new();
    let leftover_before = LeftoverDays::new(&c);
    for (entry, e) in c.entries.iter().enumerate() {
        let outcome = applicant_of[entry].map(|i| allocation.outcomes[i]);
        match (outcome, seat_of[entry]) {
            (Some(Outcome::Assigned(a)), Some(slot)) => {
                let s = &c.slots[slot];
                placements.push(Placement {
                    key: e.key.clone(),
                    office_id: c.offices[a.office].id.clone(),
                    date: c.terms.from_date + chrono::Days::new(u64::from(a.day)),
                    start: s.start,
                    distance_km: a.distance_km,
                    cost_m: a.cost_m,
                    part_of_day_kept: e.preferences.part_of_day.accepts(s.start),
                });
            }
            (Some(Outcome::Unassigned(UnassignedReason::NoCapacity)), _) => {
                unplaced.push((entry, leftover_before.reason(&c, e)));
            }
            _ => unplaced.push((entry, UnplacedReason::NoOfficeWithinMaxKm)),
        }
    }
    let lottery = seed.to_hex();
    let mut ranked: Vec<(i32, [u8; 32], usize, UnplacedReason)> = unplaced
        .into_iter()
        .map(|(entry, reason)| {
            let e = c.entries[entry];
            (-e.priority, lottery_digest(&lottery, &e.key), entry, reason)
        })
        .collect();
    ranked.sort_unstable();
    let unplaced = ranked
        .into_iter()
        .enumerate()
        .map(|(rank, (_, _, entry, reason))| Unplaced {
            key: c.entries[entry].key.clone(),
            reason,
            waitlist_rank: rank as u32 + 1,
        })
        .collect();
    let leftover = c
        .slots
        .iter()
        .filter(|s| s.free > 0)
        .map(|s| WithheldSeats {
            office_id: c.offices[s.office].id.clone(),
            date: c.terms.from_date + chrono::Days::new(u64::from(s.day)),
            start: s.start,
            seats: s.free,
        })
        .collect();
    Ok(CloseOutcome {
        placements,
        unplaced,
        leftover,
        total_cost_m: allocation.stats.total_cost_m,
        stats: allocation.stats,
    })
}

/// For each office, the first day with a seat left over, to tell "no seat in reach" from "no
/// seat in reach from your earliest date on".
struct LeftoverDays {
    /// (first day with a free seat, office), by day.
    offices: Vec<(u32, usize)>,
}

impl LeftoverDays {
    fn new(c: &Canonical<'_>) -> Self {
        let mut first: BTreeMap<usize, u32> = BTreeMap::new();
        for s in c.slots.iter().filter(|s| s.free > 0) {
            first.entry(s.office).or_insert(s.day);
        }
        let mut offices: Vec<(u32, usize)> = first.into_iter().map(|(o, d)| (d, o)).collect();
        offices.sort_unstable();
        Self { offices }
    }

    fn reason(&self, c: &Canonical<'_>, e: &Entry) -> UnplacedReason {
        let Some(earliest) = e.preferences.earliest_date.and_then(|d| c.terms.day_of(d)) else {
            return UnplacedReason::NoSeatWithinMaxKm;
        };
        let named = c.named_offices(e);
        let point = Canonical::point(e);
        let reach = c.reach_km(e);
        let earlier_seat_in_reach = self
            .offices
            .iter()
            .take_while(|(day, _)| *day < earliest)
            .any(|&(_, o)| match &named {
                Some(list) => list.contains(&o),
                None => {
                    let at = c.offices[o].location;
                    haversine_km(point.lat, point.lon, at.lat, at.lon) <= reach
                }
            });
        if earlier_seat_in_reach {
            UnplacedReason::NoSeatAfterEarliestDate
        } else {
            UnplacedReason::NoSeatWithinMaxKm
        }
    }
}
