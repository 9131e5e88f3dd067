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
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::ops::Bound::{Excluded, Included};
use std::sync::Arc;

use chrono::NaiveDate;

use super::{slot_day, Availability, Inner, OfficeSeats};
use crate::booking::UnixSeconds;
use crate::planning::allocator::cost::metres;

/// Which part of the day a slot starts in (Iran time: morning is before 12:00): the booking
/// crate's, which the waitlist's matching uses too, so a pick and a waiter read it alike.
pub use crate::booking::PartOfDay;

/// What an applicant will accept.
#[derive(Debug, Clone, PartialEq)]
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
    /// The time of the pick: a slot whose release wave opens after it is no candidate...
    pub now: UnixSeconds,
    /// ...unless the wave is for another service than this one (`None`: any service).
    pub service: Option<&'static str>,
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

    /// `pick_candidates` with nothing left out, shared by the picks of the same limits while
    /// the view's seats stay as they are: on a surge the picks of one hot group arrive by the
    /// hundred between two commits, and each walked the same office-days and copied the same
    /// list. The first walks for twice the seats it wants (picks in flight only grow until the
    /// next commit), the others take that list while it covers their `want`: the head of the
    /// same order, so a pick tries its seats in exactly the order its own walk would give.
    pub fn pick_candidates_shared(&self, limits: &PickLimits, want: Want) -> Arc<[Candidate]> {
        let key = PickMemo::key(limits);
        let mut memo = self.picks.lock().unwrap_or_else(|p| p.into_inner());
        let inner = self.read();
        if let Some(m) = memo.lists.get(&key) {
            if m.version == inner.epoch
                && m.max_slots == want.max_slots
                && (m.complete || m.seats >= want.seats)
                && m.limits == *limits
            {
                return m.list.clone();
            }
        }
        let asked = Want {
            seats: want.seats.saturating_mul(2),
            ..want
        };
        let list: Arc<[Candidate]> = Walk::new(&inner, limits, &HashSet::new())
            .take(asked)
            .into();
        let covered: i64 = list.iter().map(|c| c.free).sum();
        if memo.lists.len() >= PICK_MEMO_LISTS {
            let version = inner.epoch;
            memo.lists.retain(|_, m| m.version == version);
            if memo.lists.len() >= PICK_MEMO_LISTS {
                memo.lists.clear();
            }
        }
        memo.lists.insert(
            key,
            Memo {
                version: inner.epoch,
                limits: limits.clone(),
                max_slots: want.max_slots,
                seats: covered,
                // Asking for more would find no more.
                complete: covered < asked.seats || list.len() >= asked.max_slots,
                list: list.clone(),
            },
        );
        list
    }
}

/// Candidate lists kept at once (distinct limits between two commits); past it, those of
/// older versions go, then all.
const PICK_MEMO_LISTS: usize = 256;

/// The candidate lists of the current version of the view, by their limits' hash.
#[derive(Default)]
pub(super) struct PickMemo {
    lists: HashMap<u64, Memo>,
}

struct Memo {
    version: u64,
    /// Compared in full on a hit: the hash only finds the entry.
    limits: PickLimits,
    max_slots: usize,
    /// The free seats the list covers, and whether the walk could give no more.
    seats: i64,
    complete: bool,
    list: Arc<[Candidate]>,
}

impl PickMemo {
    fn key(l: &PickLimits) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for (office, km) in &l.offices {
            office.hash(&mut h);
            km.to_bits().hash(&mut h);
        }
        (l.after, l.before, l.today, l.part as u8, l.now, l.service).hash(&mut h);
        l.wait_km_per_day.to_bits().hash(&mut h);
        h.finish()
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
            // An open end (`UnixSeconds::MAX`) is past any date chrono can hold.
            last_day: chrono::DateTime::from_timestamp(limits.before.saturating_sub(1), 0)
                .map_or(NaiveDate::MAX, crate::domain::time::iran_date),
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
        let (day, _) = o
            .days
            .range((lower, Included(self.last_day)))
            .find(|(_, d)| {
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
            if s.free() > 0
                && s.released_for(self.limits.now, self.limits.service)
                && !self.exclude.contains(id)
                && self.limits.part.fits(start)
            {
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
                found[before..]
                    .sort_by(|a, b| (a.start_at, &a.office_id).cmp(&(b.start_at, &b.office_id)));
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::booking::SlotRow;

    const HOUR: i64 = 3_600;
    /// 2024-09-21 00:00 Iran time.
    const BASE: i64 = 1_726_864_200;

    fn limits(offices: &[(&str, f64)], part: PartOfDay) -> PickLimits {
        PickLimits {
            offices: offices.iter().map(|(o, d)| (Arc::from(*o), *d)).collect(),
            after: BASE,
            before: UnixSeconds::MAX,
            today: slot_day(BASE),
            part,
            wait_km_per_day: 5.0,
            now: BASE,
            service: None,
        }
    }

    fn all() -> Want {
        Want {
            max_slots: usize::MAX,
            seats: i64::MAX,
        }
    }

    /// Every free slot within the limits, by (cost, start, office id): what the walk must give.
    fn brute(view: &Availability, rows: &[SlotRow], l: &PickLimits) -> Vec<(i64, i64)> {
        let mut found: Vec<(i64, i64, Arc<str>, i64)> = rows
            .iter()
            .filter_map(|r| {
                let (o, d) = l.offices.iter().find(|(o, _)| **o == *r.office_id)?;
                let s = view.slot(r.id)?;
                let days = (slot_day(r.start_at) - l.today).num_days();
                let cost = metres(*d) + metres(l.wait_km_per_day) * days;
                (s.free() > 0
                    && r.start_at > l.after
                    && r.start_at < l.before
                    && l.part.fits(r.start_at))
                .then(|| (cost, r.start_at, o.clone(), r.id))
            })
            .collect();
        found.sort();
        found.into_iter().map(|(c, _, _, id)| (id, c)).collect()
    }

    #[test]
    fn least_cost_first_ties_by_start_then_office() {
        let view = Availability::default();
        let row = |id, office: &str, start, capacity, taken| SlotRow {
            id,
            office_id: office.into(),
            start_at: start,
            duration_minutes: 30,
            capacity,
            taken,
            opens_at: None,
            opens_for: None,
        };
        let day = 24 * HOUR;
        view.load(vec![
            // A at 0 km: today is full, tomorrow 09:00 free (cost 5 km).
            row(1, "A", BASE + 9 * HOUR, 1, 1),
            row(2, "A", BASE + day + 9 * HOUR, 1, 0),
            // B at 5 km: today 10:00 and 08:00 (cost 5 km, ties with A's tomorrow).
            row(3, "B", BASE + 10 * HOUR, 2, 0),
            row(4, "B", BASE + 8 * HOUR, 1, 0),
            // C at 2 km: today 14:00 (cost 2 km).
            row(5, "C", BASE + 14 * HOUR, 1, 0),
        ]);
        let l = limits(&[("A", 0.0), ("C", 2.0), ("B", 5.0)], PartOfDay::Any);
        let ids = |l: &PickLimits, want| {
            view.pick_candidates(l, &HashSet::new(), want)
                .iter()
                .map(|c| c.slot_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&l, all()), vec![5, 4, 3, 2]);
        let morning = limits(&[("A", 0.0), ("C", 2.0), ("B", 5.0)], PartOfDay::Morning);
        assert_eq!(ids(&morning, all()), vec![4, 3, 2]);
        let afternoon = limits(&[("A", 0.0), ("C", 2.0), ("B", 5.0)], PartOfDay::Afternoon);
        assert_eq!(ids(&afternoon, all()), vec![5]);
        // Enough seats: slot 5 (1) + 4 (1) + 3 (2) cover 3 picks.
        assert_eq!(
            ids(
                &l,
                Want {
                    max_slots: 10,
                    seats: 3
                }
            ),
            vec![5, 4, 3]
        );
    }

    proptest! {
        /// The merge gives what sorting every free slot within the limits gives, however far
        /// it is asked to go.
        #[test]
        fn the_walk_equals_a_sort_of_every_free_slot(
            specs in prop::collection::vec((0..4usize, 0..4i64, 0..16i64, 1..3i64, 0..3i64), 1..60),
            distances in prop::collection::vec(0u32..4, 4),
            part in 0..3usize,
            after_h in 0..60i64,
            span_h in prop_oneof![1..100i64, Just(i64::MAX / 4)],
            seats in 1..12i64,
            wait in 0u32..3,
        ) {
            let mut seen = BTreeSet::new();
            let rows: Vec<SlotRow> = specs
                .into_iter()
                .filter(|(o, d, k, _, _)| seen.insert((*o, *d, *k)))
                .enumerate()
                .map(|(i, (o, d, k, capacity, taken))| SlotRow {
                    id: i as i64 + 1,
                    office_id: format!("O{o}"),
                    start_at: BASE + d * 24 * HOUR + 8 * HOUR + k * 1_800,
                    duration_minutes: 30,
                    capacity,
                    taken: taken.min(capacity),
                    opens_at: None,
                    opens_for: None,
                })
                .collect();
            let view = Availability::default();
            view.load(rows.clone());
            let mut offices: Vec<(Arc<str>, f64)> = (0..4)
                .map(|o| (Arc::from(format!("O{o}").as_str()), distances[o] as f64 * 2.5))
                .collect();
            offices.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
            let l = PickLimits {
                offices,
                after: BASE + after_h * HOUR,
                before: (BASE + after_h * HOUR).saturating_add(span_h.saturating_mul(HOUR)),
                today: slot_day(BASE),
                part: [PartOfDay::Morning, PartOfDay::Afternoon, PartOfDay::Any][part],
                wait_km_per_day: wait as f64 * 2.5,
                now: BASE,
                service: None,
            };
            let expected = brute(&view, &rows, &l);
            let walked: Vec<(i64, i64)> = view
                .pick_candidates(&l, &HashSet::new(), all())
                .iter()
                .map(|c| (c.slot_id, c.cost_m))
                .collect();
            prop_assert_eq!(&walked, &expected);
            // Asked for `seats`, it gives the head of the same order that covers them.
            let head: Vec<Candidate> =
                view.pick_candidates(&l, &HashSet::new(), Want { max_slots: 100, seats });
            let n = head.len();
            prop_assert_eq!(head.iter().map(|c| c.slot_id).collect::<Vec<_>>(),
                expected.iter().take(n).map(|e| e.0).collect::<Vec<_>>());
            let covered: i64 = head.iter().map(|c| c.free).sum();
            prop_assert!(covered >= seats || n == expected.len());
            if n > 0 {
                prop_assert!(covered - head[n - 1].free < seats, "no more than needed");
            }
        }
    }
}
