//! The in-memory availability view: every bookable slot with its seats taken, kept current by
//! the writer after each commit and rebuilt from the database at start. Reading availability
//! (the hottest query on a surge day) never touches the database or the writer.
//!
//! With several nobat processes on one database this view lags the others' bookings until its
//! next refresh; that is harmless because the writer decides on locked database rows, never on
//! this view.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::{Arc, RwLock};

use crate::booking::{SlotRow, UnixSeconds};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotView {
    pub id: i64,
    pub office_id: Arc<str>,
    pub start_at: UnixSeconds,
    pub duration_minutes: i64,
    pub capacity: i64,
    pub taken: i64,
}

impl SlotView {
    pub fn free(&self) -> i64 {
        (self.capacity - self.taken).max(0)
    }
}

#[derive(Default)]
struct Inner {
    slots: HashMap<i64, SlotView>,
    /// Office → start → slot id.
    by_office: HashMap<Arc<str>, BTreeMap<UnixSeconds, i64>>,
    /// Office → free seats over all its loaded slots, kept current by `apply`, so that listing
    /// thousands of offices by free capacity does not walk their slots.
    free_by_office: HashMap<Arc<str>, i64>,
}

#[derive(Default)]
pub struct Availability {
    inner: RwLock<Inner>,
}

impl Availability {
    /// Replaces the whole view (start-up and periodic refresh).
    pub fn load(&self, rows: Vec<SlotRow>) {
        let mut inner = Inner::default();
        let mut names: HashMap<String, Arc<str>> = HashMap::new();
        for r in rows {
            let office: Arc<str> = names
                .entry(r.office_id.clone())
                .or_insert_with(|| Arc::from(r.office_id.as_str()))
                .clone();
            inner
                .by_office
                .entry(office.clone())
                .or_default()
                .insert(r.start_at, r.id);
            inner.slots.insert(
                r.id,
                SlotView {
                    id: r.id,
                    office_id: office,
                    start_at: r.start_at,
                    duration_minutes: r.duration_minutes,
                    capacity: r.capacity,
                    taken: r.taken,
                },
            );
        }
        for slot in inner.slots.values() {
            *inner
                .free_by_office
                .entry(slot.office_id.clone())
                .or_default() += slot.free();
        }
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = inner;
    }

    /// Applies committed changes of `taken`.
    pub fn apply(&self, deltas: &BTreeMap<i64, i64>) {
        if deltas.is_empty() {
            return;
        }
        let mut guard = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *guard;
        for (id, d) in deltas {
            if let Some(s) = inner.slots.get_mut(id) {
                let free_before = s.free();
                s.taken = (s.taken + d).clamp(0, s.capacity);
                *inner.free_by_office.entry(s.office_id.clone()).or_default() +=
                    s.free() - free_before;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .slots
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn slot(&self, id: i64) -> Option<SlotView> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .slots
            .get(&id)
            .cloned()
    }

    pub fn slot_at(&self, office_id: &str, start_at: UnixSeconds) -> Option<SlotView> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let id = inner.by_office.get(office_id)?.get(&start_at)?;
        inner.slots.get(id).cloned()
    }

    /// Slots of an office starting in `[from, to)`, in time order, at most `limit`.
    pub fn range(
        &self,
        office_id: &str,
        from: UnixSeconds,
        to: UnixSeconds,
        limit: usize,
    ) -> Vec<SlotView> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let Some(starts) = inner.by_office.get(office_id) else {
            return Vec::new();
        };
        starts
            .range(from..to)
            .take(limit)
            .filter_map(|(_, id)| inner.slots.get(id).cloned())
            .collect()
    }

    /// The first `limit` slots with a free seat starting strictly after `after` (a slot that
    /// starts now can no longer be booked).
    pub fn earliest_free(
        &self,
        office_id: &str,
        after: UnixSeconds,
        limit: usize,
    ) -> Vec<SlotView> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let Some(starts) = inner.by_office.get(office_id) else {
            return Vec::new();
        };
        starts
            .range((Excluded(after), Unbounded))
            .filter_map(|(_, id)| inner.slots.get(id))
            .filter(|s| s.free() > 0)
            .take(limit)
            .cloned()
            .collect()
    }

    /// Total free seats per office in slots starting after `after` (for listings sorted by
    /// free capacity).
    pub fn free_seats(&self, office_id: &str, after: UnixSeconds) -> i64 {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let Some(starts) = inner.by_office.get(office_id) else {
            return 0;
        };
        // The running total, less the slots that have started: the view holds only yesterday's
        // and today's, so this walks a few dozen slots, not the whole booking window.
        let started: i64 = starts
            .range(..=after)
            .filter_map(|(_, id)| inner.slots.get(id))
            .map(SlotView::free)
            .sum();
        inner.free_by_office.get(office_id).copied().unwrap_or(0) - started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, office: &str, start: i64, capacity: i64, taken: i64) -> SlotRow {
        SlotRow {
            id,
            office_id: office.into(),
            start_at: start,
            duration_minutes: 15,
            capacity,
            taken,
        }
    }

    #[test]
    fn lookups_and_deltas() {
        let a = Availability::default();
        a.load(vec![
            row(1, "A", 100, 2, 2),
            row(2, "A", 200, 2, 0),
            row(3, "B", 100, 1, 0),
        ]);
        assert_eq!(a.slot_at("A", 200).unwrap().id, 2);
        assert_eq!(
            a.earliest_free("A", 0, 5)
                .iter()
                .map(|s| s.id)
                .collect::<Vec<_>>(),
            vec![2]
        );
        a.apply(&BTreeMap::from([(1, -1), (2, 2)]));
        assert_eq!(
            a.earliest_free("A", 0, 5)
                .iter()
                .map(|s| s.id)
                .collect::<Vec<_>>(),
            vec![1]
        );
        assert_eq!(a.free_seats("A", -1), 1);
        assert_eq!(a.range("A", 100, 201, 10).len(), 2);
    }
}
