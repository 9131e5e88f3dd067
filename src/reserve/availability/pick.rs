//! Candidates for an auto-pick: the free slots within an applicant's limits, least cost first.
//!
//! Cost is the allocator's (`planning::allocator::cost`): whole metres of distance plus
//! `wait_km_per_day` (in metres) for each day from today; ties by start, then office id. For one
//! office the cost of its days rises with the day, so the office-days are walked in cost order
//! by a k-way merge over the offices (a heap holding each office's next day with a free seat),
//! and only the days taken are expanded into their slots. Offices come nearest first and join
//! the merge only when their distance (the least cost they could have) is reached, so a pick
//! visits the office-days ahead of its answer, never every slot of the country.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::ops::Bound::{Excluded, Included};
use std::sync::Arc;

use chrono::{NaiveDate, Timelike};

use super::{slot_day, Availability, Inner, OfficeSeats};
use crate::booking::UnixSeconds;
use crate::domain::time::iran_local;
use crate::planning::allocator::cost::metres;

/// Which part of the day a slot starts in, Iran time: morning is before 12:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartOfDay {
    Morning,
    Afternoon,
    Any,
}

impl PartOfDay {
    pub fn admits(self, start_at: UnixSeconds) -> bool {
        if self == PartOfDay::Any {
            return true;
        }
        let local = iran_local(chrono::DateTime::from_timestamp(start_at, 0).unwrap_or_default());
        (local.hour() < 12) == (self == PartOfDay::Morning)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PartOfDay::Morning => "morning",
            PartOfDay::Afternoon => "afternoon",
            PartOfDay::Any => "any",
        }
    }
}

/// What an applicant will accept.
#[derive(Debug, Clone)]
pub struct PickLimits {
    /// Offices offering the service with their distances in km (0 when named without a point),
    /// nearest first, ties by id.
    pub offices: Vec<(Arc<str>, f64)>,
    /// Slots starting strictly after this instant...
    pub after: UnixSeconds,
    /// ...and strictly before this one.
    pub before: UnixSeconds,
    /// Day 0 of the wait cost.
    pub today: NaiveDate,
    pub part: PartOfDay,
    pub wait_km_per_day: f64,
}

/// A free slot within the limits, with its cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub slot_id: i64,
    pub office_id: Arc<str>,
    pub start_at: UnixSeconds,
    pub free: i64,
    pub distance_km: f64,
    /// distance + wait × days, in whole metres (the allocator's unit).
    pub cost_m: i64,
}

/// How many candidates to gather: stop at `max_slots` slots, or once their free seats reach
/// `seats`.
#[derive(Debug, Clone, Copy)]
pub struct Want {
    pub max_slots: usize,
    pub seats: i64,
}

impl Availability {
    /// The free slots within `limits`, least cost first (ties by start, then office id),
    /// leaving out `exclude`, until `want` is met.
    pub fn pick_candidates(
        &self,
        limits: &PickLimits,
        exclude: &HashSet<i64>,
        want: Want,
    ) -> Vec<Candidate> {
        let inner = self.read();
        Walk::new(&inner, limits, exclude).take(want)
    }
}

/// One office-day in the merge: its cost, then its office's place in `limits.offices`.
type Entry = Reverse<(i64, usize, NaiveDate)>;

struct Walk<'a> {
    inner: &'a Inner,
    limits: &'a PickLimits,
    exclude: &'a HashSet<i64>,
    heap: BinaryHeap<Entry>,
    /// The next office (by distance) not yet in the merge.
    next_office: usize,
    wait_m: i64,
    last_day: NaiveDate,
}

impl<'a> Walk<'a> {
    fn new(inner: &'a Inner, limits: &'a PickLimits, exclude: &'a HashSet<i64>) -> Self {
        Walk {
            inner,
            limits,
            exclude,
            heap: BinaryHeap::new(),
            next_office: 0,
            wait_m: metres(limits.wait_km_per_day).max(0),
            last_day: slot_day(limits.before.saturating_sub(1)),
        }
    }

    fn office(&self, i: usize) -> Option<&'a OfficeSeats> {
        self.inner.offices.get(&*self.limits.offices[i].0)
    }

    /// The office's first day after `after_day` (or from the first day of the limits) with a
    /// free seat and a slot within the limits, with its cost.
    fn next_day(&self, i: usize, after_day: Option<NaiveDate>) -> Option<Entry> {
        let o = self.office(i)?;
        let first = slot_day(self.limits.after.saturating_add(1));
        if self.last_day < first {
            return None;
        }
        let lower = match after_day {
            Some(d) => Excluded(d),
            None => Included(first),
        };
        let (day, _) = o.days.range((lower, Included(self.last_day))).find(|(_, d)| {
            d.free > 0 && d.last_start > self.limits.after && d.first_start < self.limits.before
        })?;
        let days = (*day - self.limits.today).num_days().max(0);
        let cost = metres(self.limits.offices[i].1) + self.wait_m.saturating_mul(days);
        Some(Reverse((cost, i, *day)))
    }

    /// Lets into the merge every office whose distance does not exceed the cheapest
    /// office-day in it (an office's days cost at least its distance).
    fn admit_offices(&mut self) {
        while self.next_office < self.limits.offices.len() {
            let reach = metres(self.limits.offices[self.next_office].1);
            if let Some(Reverse((cost, ..))) = self.heap.peek() {
                if reach > *cost {
                    return;
                }
            }
            if let Some(e) = self.next_day(self.next_office, None) {
                self.heap.push(e);
            }
            self.next_office += 1;
        }
    }

    /// The free slots of the limits in one office-day, not excluded.
    fn expand(&self, i: usize, day: NaiveDate, cost_m: i64, out: &mut Vec<Candidate>) {
        let Some(o) = self.office(i) else { return };
        let Some(d) = o.days.get(&day) else { return };
        let from = d.first_start.max(self.limits.after.saturating_add(1));
        let to = d.last_start.min(self.limits.before.saturating_sub(1));
        if from > to {
            return;
        }
        let (office_id, distance_km) = &self.limits.offices[i];
        for (&start, id) in o.starts.range(from..=to) {
            let Some(s) = self.inner.slots.get(id) else {
                continue;
            };
            if s.free() > 0 && !self.exclude.contains(id) && self.limits.part.admits(start) {
                out.push(Candidate {
                    slot_id: *id,
                    office_id: office_id.clone(),
                    start_at: start,
                    free: s.free(),
                    distance_km: *distance_km,
                    cost_m,
                });
            }
        }
    }

    fn take(mut self, want: Want) -> Vec<Candidate> {
        let mut found = Vec::new();
        let mut seats = 0;
        while found.len() < want.max_slots && seats < want.seats {
            self.admit_offices();
            let Some(Reverse((cost, i, day))) = self.heap.pop() else {
                break;
            };
            // Every office-day of the same cost, so that ties go by start, then office id.
            let mut group = vec![(i, day)];
            loop {
                let last = *group.last().expect("not empty");
                if let Some(e) = self.next_day(last.0, Some(last.1)) {
                    self.heap.push(e);
                }
                self.admit_offices();
                match self.heap.peek() {
                    Some(Reverse((c, j, d))) if *c == cost => {
                        group.push((*j, *d));
                        self.heap.pop();
                    }
                    _ => break,
                }
            }
            let before = found.len();
            for &(j, d) in &group {
                self.expand(j, d, cost, &mut found);
            }
            if group.len() > 1 {
                found[before..].sort_by(|a, b| {
                    (a.start_at, &a.office_id).cmp(&(b.start_at, &b.office_id))
                });
            }
            seats += found[before..].iter().map(|c| c.free).sum::<i64>();
        }
        // The last group may overshoot: keep the slots up to the one meeting `want`.
        let mut total = 0;
        let keep = found
            .iter()
            .position(|c| {
                total += c.free;
                total >= want.seats
            })
            .map_or(found.len(), |p| p + 1)
            .min(want.max_slots);
        found.truncate(keep);
        found
    }
}
