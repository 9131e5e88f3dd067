//! The relocation planner: where the booked appointments of a closed office (or of slots whose
//! capacity was cut) go, given the free seats around them.
//!
//! Pure: the caller reads the free slots and submits the moves; this module only decides.
//! Two methods, chosen by the number of appointments:
//!
//! - fewer than [`ALLOCATOR_MIN_MOVES`]: **greedy**, in the given (booking) order. Each
//!   appointment takes the free slot with the earliest day, then the nearest office (its own
//!   office is nearest), then the earliest start, among the [`CANDIDATE_OFFICES`] nearest
//!   offices offering its service within the radius; seats planned for earlier appointments
//!   are counted, so no slot is planned over its free seats.
//! - from [`ALLOCATOR_MIN_MOVES`] on: the **exact min-cost-flow allocator**: most appointments
//!   moved, then least distance plus the day's wait priced at `wait_km_per_day`. The offices'
//!   free seats form office-days; the seats the allocator hands out inside an office-day map to
//!   that day's free slots in start order. Should the allocator refuse the problem, the greedy
//!   places them instead and the plan says why ([`Method::GreedyFallback`]).
//!
//! A planned seat can still be taken by someone else before the move is made; [`Attempt`]
//! bounds how often the caller plans again with what it then reads.

use std::collections::{BTreeSet, HashMap, HashSet};

use nobat_domain::{GeoPoint, OfficeId, ServiceCode};
use thiserror::Error;

use crate::allocator::{
    allocate, AllocationError, AllocationProblem, Applicant, OfficeDaySeats, OfficeSite, Outcome,
    SolverOptions, UnassignedReason,
};

/// From this many appointments at once, the allocator plans; fewer are placed greedily (a
/// handful of moves gains nothing from the exact method, and greedy is what people expect).
pub const ALLOCATOR_MIN_MOVES: usize = 8;
/// Nearest offices the greedy method weighs per appointment (its own office included).
pub const CANDIDATE_OFFICES: usize = 8;
/// Plans per relocation: a first one, and re-plans for the moves whose seat was taken
/// meanwhile. Each re-plan reads fresh seats, so the bound only stops a pathological race.
pub const ATTEMPTS_MAX: usize = 3;
/// The allocator's lottery seed: ties in seat order are broken the same way every time.
const LOTTERY_SEED: &str = "relocation";

/// An appointment to move.
#[derive(Debug, Clone, PartialEq)]
pub struct Appointment {
    /// Its tracking code (also the allocator's applicant id, so the lottery is stable).
    pub id: String,
    /// Where its office is; `None` when that office is unknown (then it cannot be moved).
    pub origin: Option<GeoPoint>,
    /// The service it was booked for (a [`ServiceCode`] in its text form).
    pub service: String,
    /// When it was booked (Unix seconds): the allocator seats earlier bookings first.
    pub booked_at: i64,
}

/// An office that can take moved appointments, with its free seats.
#[derive(Debug, Clone, PartialEq)]
pub struct Office {
    pub id: OfficeId,
    pub location: GeoPoint,
    /// The services it offers (those its kind allows).
    pub services: BTreeSet<ServiceCode>,
    /// Its free slots in start order (day and start both ascending).
    pub slots: Vec<FreeSlot>,
}

/// A slot with free seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSlot {
    pub id: i64,
    /// The day it falls on, counted from the first day a move may go to (0).
    pub day: u32,
    /// Start, Unix seconds.
    pub start_at: i64,
    /// Seats free in it.
    pub free: u32,
}

/// What a relocation plan is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Relocation {
    /// In booking order: the greedy method places them in this order.
    pub appointments: Vec<Appointment>,
    /// The offices that can take them, in a stable order (the allocator's tie-breaks follow
    /// it); offices beyond the radius of every appointment may be left out.
    pub offices: Vec<Office>,
    /// No appointment moves farther than this from its office.
    pub radius_km: f64,
    /// What a day's later seat costs, in kilometres of travel (allocator only; the greedy
    /// method always takes the earliest day).
    pub wait_km_per_day: f64,
}

/// Where one appointment goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Placement {
    Moved(Destination),
    Unplaced(Unplaced),
}

impl Placement {
    /// The destination slot, if any.
    pub fn slot_id(&self) -> Option<i64> {
        match self {
            Placement::Moved(d) => Some(d.slot_id),
            Placement::Unplaced(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Destination {
    pub slot_id: i64,
    /// Index into [`Relocation::offices`].
    pub office: usize,
    pub day: u32,
    pub start_at: i64,
    pub distance_km: f64,
}

/// Why an appointment has no destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unplaced {
    /// Its office is unknown, so nothing is known to be near it.
    UnknownOffice,
    /// Its service is not one the system knows.
    UnknownService,
    /// No office within the radius offers its service.
    NoOfficeInReach,
    /// Offices in reach offer it, but their free seats went to others or there are none.
    NoFreeSeat,
}

/// How a plan was made.
#[derive(Debug, PartialEq)]
pub enum Method {
    Greedy,
    Allocator,
    /// The allocator refused the problem (the error says why); the greedy method placed them.
    GreedyFallback(AllocationError),
}

/// One placement per appointment, in the order given.
#[derive(Debug, PartialEq)]
pub struct Plan {
    pub placements: Vec<Placement>,
    pub method: Method,
}

#[derive(Debug, Error, PartialEq)]
pub enum RelocationError {
    #[error("the radius must be a finite number of km >= 0, got {0}")]
    InvalidRadius(f64),
    #[error("the cost of a day's wait must be a finite number of km >= 0, got {0}")]
    InvalidWait(f64),
    #[error("office {0} is listed twice")]
    DuplicateOffice(OfficeId),
    #[error("office {office}: slots are not in start order at slot {slot_id}")]
    SlotsOutOfOrder { office: OfficeId, slot_id: i64 },
    #[error("slot {0} is listed twice")]
    DuplicateSlot(i64),
    #[error("allocator: {0}")]
    Allocator(#[from] AllocationError),
}

/// The plan, by the method the number of appointments calls for (see the module docs).
pub fn plan(relocation: &Relocation) -> Result<Plan, RelocationError> {
    validate(relocation)?;
    if relocation.appointments.len() < ALLOCATOR_MIN_MOVES {
        return Ok(Plan {
            placements: greedy(relocation),
            method: Method::Greedy,
        });
    }
    match with_allocator(relocation) {
        Ok(placements) => Ok(Plan {
            placements,
            method: Method::Allocator,
        }),
        Err(RelocationError::Allocator(e)) => Ok(Plan {
            placements: greedy(relocation),
            method: Method::GreedyFallback(e),
        }),
        Err(e) => Err(e),
    }
}

/// The plan of the greedy method, whatever the number of appointments.
pub fn plan_greedy(relocation: &Relocation) -> Result<Plan, RelocationError> {
    validate(relocation)?;
    Ok(Plan {
        placements: greedy(relocation),
        method: Method::Greedy,
    })
}

/// The plan of the allocator, whatever the number of appointments (an error when it refuses).
pub fn plan_with_allocator(relocation: &Relocation) -> Result<Plan, RelocationError> {
    validate(relocation)?;
    Ok(Plan {
        placements: with_allocator(relocation)?,
        method: Method::Allocator,
    })
}

fn validate(r: &Relocation) -> Result<(), RelocationError> {
    if !(r.radius_km.is_finite() && r.radius_km >= 0.0) {
        return Err(RelocationError::InvalidRadius(r.radius_km));
    }
    if !(r.wait_km_per_day.is_finite() && r.wait_km_per_day >= 0.0) {
        return Err(RelocationError::InvalidWait(r.wait_km_per_day));
    }
    let mut offices = HashSet::with_capacity(r.offices.len());
    let mut slots = HashSet::new();
    for o in &r.offices {
        if !offices.insert(&o.id) {
            return Err(RelocationError::DuplicateOffice(o.id.clone()));
        }
        for (i, s) in o.slots.iter().enumerate() {
            if !slots.insert(s.id) {
                return Err(RelocationError::DuplicateSlot(s.id));
            }
            if i > 0 && (s.day, s.start_at) <= (o.slots[i - 1].day, o.slots[i - 1].start_at) {
                return Err(RelocationError::SlotsOutOfOrder {
                    office: o.id.clone(),
                    slot_id: s.id,
                });
            }
        }
    }
    Ok(())
}

/// In order: the earliest day, then the nearest office, then the earliest start, among the
/// nearest offices offering the service.
fn greedy(r: &Relocation) -> Vec<Placement> {
    // Seats planned so far, per office and slot position.
    let mut planned: Vec<Vec<u32>> = r.offices.iter().map(|o| vec![0; o.slots.len()]).collect();
    let mut near: Vec<(f64, usize)> = Vec::new();
    r.appointments
        .iter()
        .map(|a| {
            let Some(origin) = a.origin else {
                return Placement::Unplaced(Unplaced::UnknownOffice);
            };
            let Ok(service) = ServiceCode::parse(&a.service) else {
                return Placement::Unplaced(Unplaced::UnknownService);
            };
            near.clear();
            near.extend(
                r.offices
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| o.services.contains(&service))
                    .map(|(i, o)| (origin.distance_km(o.location), i))
                    .filter(|&(d, _)| d <= r.radius_km),
            );
            near.sort_by(|x, y| {
                x.0.total_cmp(&y.0)
                    .then_with(|| r.offices[x.1].id.cmp(&r.offices[y.1].id))
            });
            near.truncate(CANDIDATE_OFFICES);
            if near.is_empty() {
                return Placement::Unplaced(Unplaced::NoOfficeInReach);
            }
            // (day, distance, start, office, slot position); a tie keeps the nearer office.
            let mut best: Option<(u32, f64, i64, usize, usize)> = None;
            for &(distance_km, o) in &near {
                let slots = &r.offices[o].slots;
                let Some(j) = (0..slots.len()).find(|&j| slots[j].free > planned[o][j]) else {
                    continue;
                };
                let s = &slots[j];
                if best.is_none_or(|b| (s.day, distance_km, s.start_at) < (b.0, b.1, b.2)) {
                    best = Some((s.day, distance_km, s.start_at, o, j));
                }
            }
            let Some((day, distance_km, start_at, o, j)) = best else {
                return Placement::Unplaced(Unplaced::NoFreeSeat);
            };
            planned[o][j] += 1;
            Placement::Moved(Destination {
                slot_id: r.offices[o].slots[j].id,
                office: o,
                day,
                start_at,
                distance_km,
            })
        })
        .collect()
}

/// The allocator's plan: offices' free seats as office-days, appointments as applicants at
/// their old office; the n-th seat of an office-day is in the day's slots in start order.
fn with_allocator(r: &Relocation) -> Result<Vec<Placement>, RelocationError> {
    let offices = r
        .offices
        .iter()
        .map(|o| OfficeSite {
            id: o.id.to_string(),
            lat: o.location.lat,
            lon: o.location.lon,
            services: Some(o.services.iter().map(|s| s.to_string()).collect()),
            stations: None,
            province: None,
        })
        .collect();
    let mut seats_by_day: HashMap<(usize, u32), u32> = HashMap::new();
    for (i, o) in r.offices.iter().enumerate() {
        for s in o.slots.iter().filter(|s| s.free > 0) {
            *seats_by_day.entry((i, s.day)).or_default() += s.free;
        }
    }
    let mut seats: Vec<OfficeDaySeats> = seats_by_day
        .into_iter()
        .map(|((office, day), seats)| OfficeDaySeats { office, day, seats })
        .collect();
    seats.sort_by_key(|s| (s.office, s.day));
    let applicants = r
        .appointments
        .iter()
        .map(|a| Applicant {
            id: a.id.clone(),
            lat: a.origin.map_or(0.0, |o| o.lat),
            lon: a.origin.map_or(0.0, |o| o.lon),
            priority: 0,
            max_km: Some(if a.origin.is_some() { r.radius_km } else { 0.0 }),
            service: Some(a.service.clone()),
            registered_at: Some(a.booked_at),
            province: None,
            earliest_day: None,
            preferred_offices: None,
        })
        .collect();
    let problem = AllocationProblem {
        offices,
        seats,
        applicants,
        wait_km_per_day: r.wait_km_per_day,
        default_max_km: Some(r.radius_km),
        lottery_seed: LOTTERY_SEED.to_string(),
    };
    let allocation = allocate(&problem, &SolverOptions::default())?;
    Ok(r.appointments
        .iter()
        .zip(&allocation.outcomes)
        .map(|(a, outcome)| {
            // The same reasons as the greedy method, whatever the allocator saw.
            if a.origin.is_none() {
                return Placement::Unplaced(Unplaced::UnknownOffice);
            }
            if ServiceCode::parse(&a.service).is_err() {
                return Placement::Unplaced(Unplaced::UnknownService);
            }
            match outcome {
                Outcome::Assigned(x) => seat_slot(&r.offices[x.office], x.day, x.seat).map_or(
                    Placement::Unplaced(Unplaced::NoFreeSeat),
                    |s| {
                        Placement::Moved(Destination {
                            slot_id: s.id,
                            office: x.office,
                            day: x.day,
                            start_at: s.start_at,
                            distance_km: x.distance_km,
                        })
                    },
                ),
                Outcome::Unassigned(UnassignedReason::NoCapacity) => {
                    Placement::Unplaced(Unplaced::NoFreeSeat)
                }
                Outcome::Unassigned(
                    UnassignedReason::NoOfficeWithinMaxKm | UnassignedReason::ServiceNotOffered,
                ) => Placement::Unplaced(Unplaced::NoOfficeInReach),
            }
        })
        .collect())
}

/// The slot that holds seat `seat` (0-based) of `day` at `office`, counting seats in start
/// order.
fn seat_slot(office: &Office, day: u32, seat: u32) -> Option<&FreeSlot> {
    let mut before = 0u32;
    office.slots.iter().filter(|s| s.day == day).find(|s| {
        before += s.free;
        seat < before
    })
}

/// Which plan of a relocation this is: the first, or a re-plan for moves whose planned seat
/// was taken by someone else meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt(usize);

/// What to do with a move whose planned seat was taken meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatTaken {
    /// Plan it again with fresh seats.
    Replan,
    /// Give up: cancel it (the attempts are spent).
    Cancel,
}

impl Attempt {
    /// Every attempt in order, [`ATTEMPTS_MAX`] of them.
    pub fn all() -> impl Iterator<Item = Attempt> {
        (0..ATTEMPTS_MAX).map(Attempt)
    }

    pub fn is_last(self) -> bool {
        self.0 + 1 >= ATTEMPTS_MAX
    }

    pub fn on_seat_taken(self) -> SeatTaken {
        if self.is_last() {
            SeatTaken::Cancel
        } else {
            SeatTaken::Replan
        }
    }
}

#[cfg(test)]
mod tests;
