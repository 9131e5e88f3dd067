//! The in-memory availability view: every bookable slot with its seats taken, kept current by
//! the writer after each commit and rebuilt from the database at start. Reading availability
//! (the hottest query on a surge day) never touches the database or the writer.
//!
//! Besides the slots it keeps what listings ask for, so that an answer costs O(its size), not
//! O(the network): per office the free seats in slots not yet started and the offices ranked
//! by them (top-k by free capacity without visiting every office's slots), and per office-day
//! the free seats (the earliest free slot skips full days) and a version that changes with the
//! day's seats (a slot listing renders a day once and reuses it until that version moves).
//! "Not yet started" moves with the clock: every slot is retired once, in start order, by
//! the first read or delta that finds its start passed (`advance`).
//!
//! With several nobat processes on one database this view lags the others' bookings until its
//! next refresh; that is harmless because the writer decides on locked database rows, never on
//! this view.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound::{Excluded, Included};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use chrono::NaiveDate;

use crate::booking::{SlotRow, UnixSeconds};
use crate::domain::time::iran_date;

mod pick;
pub use pick::{Candidate, PartOfDay, PickLimits, Want};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotView {
    pub id: i64,
    pub office_id: Arc<str>,
    pub start_at: UnixSeconds,
    pub duration_minutes: i64,
    pub capacity: i64,
    pub taken: i64,
    /// The opening of the release wave that covers the slot, if any (`SlotRow::opens_at`).
    pub opens_at: Option<UnixSeconds>,
    /// The one service that wave closes the seat to (`SlotRow::opens_for`); `None`: every
    /// service. Slots are not per service: the seat stays open to the others, as the writer
    /// decides (`SlotRow::unreleased_for`).
    pub opens_for: Option<Arc<str>>,
}

impl SlotView {
    pub fn free(&self) -> i64 {
        (self.capacity - self.taken).max(0)
    }

    /// The opening still ahead at `now`, if the slot's wave has not opened.
    pub fn opens_after(&self, now: UnixSeconds) -> Option<UnixSeconds> {
        self.opens_at.filter(|&t| t > now)
    }

    /// Whether the slot's seats are bookable at `now` as far as its release wave goes.
    pub fn released(&self, now: UnixSeconds) -> bool {
        self.opens_after(now).is_none()
    }

    /// The opening still ahead at `now` for a booking of `service` (`None`: any service, so
    /// a one-service wave counts): a wave for another service does not close the seat.
    pub fn opens_after_for(&self, now: UnixSeconds, service: Option<&str>) -> Option<UnixSeconds> {
        let opens = self.opens_after(now)?;
        match (&self.opens_for, service) {
            (Some(closed_to), Some(service)) if &**closed_to != service => None,
            _ => Some(opens),
        }
    }

    /// Whether a booking of `service` may take the slot's seats at `now` (the writer's rule).
    pub fn released_for(&self, now: UnixSeconds, service: Option<&str>) -> bool {
        self.opens_after_for(now, service).is_none()
    }
}

/// A rendering of one office-day that a reader made and others reuse until the day's seats
/// change (the view then hands out a fresh, empty cell) or until the instant it was made to
/// hold before, whichever comes first. What is rendered is the reader's business (the HTTP
/// layer keeps the day's slots as JSON, good until the next of them starts: a started slot
/// shows no free seat).
pub type DayRendering = Arc<DayRenderingCell>;

/// The cell behind a [`DayRendering`]: a reader replaces a rendering that no longer holds.
#[derive(Debug, Default)]
pub struct DayRenderingCell(RwLock<Option<Arc<Rendered>>>);

impl DayRenderingCell {
    /// The kept rendering, if there is one and it holds at `now`.
    pub fn get(&self, now: UnixSeconds) -> Option<Arc<Rendered>> {
        let kept = self.0.read().unwrap_or_else(|p| p.into_inner());
        kept.as_ref().filter(|r| now < r.valid_before).cloned()
    }

    /// Keeps `rendering` for the next readers, in place of any earlier one.
    pub fn set(&self, rendering: Rendered) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(rendering));
    }
}

/// Most bytes the process keeps in shared day renderings: a crawler listing every office-day
/// of the national network would otherwise keep them all (≈ 2,200 offices × 31 days × 4 KB).
pub const RENDERED_BYTES_MAX: usize = 64 << 20;

static RENDERED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// A day's rendering, counted against `RENDERED_BYTES_MAX` while it is kept.
#[derive(Debug)]
pub struct Rendered {
    text: String,
    /// The rendering holds while the clock is before this instant.
    valid_before: UnixSeconds,
}

impl Rendered {
    /// The text to keep until `valid_before`, or `None` when the process keeps enough already
    /// (render per request).
    pub fn keep(text: String, valid_before: UnixSeconds) -> Option<Rendered> {
        let len = text.len();
        RENDERED_BYTES
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held + len <= RENDERED_BYTES_MAX).then_some(held + len)
            })
            .ok()
            .map(|_| Rendered { text, valid_before })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Drop for Rendered {
    fn drop(&mut self) {
        RENDERED_BYTES.fetch_sub(self.text.len(), Ordering::AcqRel);
    }
}

/// One office-day as a slot listing needs it.
#[derive(Debug, Clone)]
pub struct DayPage {
    pub day: NaiveDate,
    pub first_start: UnixSeconds,
    pub last_start: UnixSeconds,
    pub rendering: DayRendering,
    /// A slot of the day carries a one-service wave: its shared rendering (for any service)
    /// is not what a listing for one service shows.
    pub service_bound: bool,
}

#[derive(Debug, Default)]
struct DaySeats {
    /// Free seats over the day's slots, started or not.
    free: i64,
    first_start: UnixSeconds,
    last_start: UnixSeconds,
    rendering: DayRendering,
    /// The earliest wave opening among the day's slots that the rendering may show as
    /// pending: once the clock passes it the rendering is replaced (`day_pages`).
    next_opening: Option<UnixSeconds>,
    /// Some slot of the day carries a wave for one service (`DayPage::service_bound`).
    service_bound: bool,
}

#[derive(Debug, Default)]
struct OfficeSeats {
    /// Start → slot id.
    starts: BTreeMap<UnixSeconds, i64>,
    days: BTreeMap<NaiveDate, DaySeats>,
    /// Free seats in the slots starting after the view's horizon.
    upcoming_free: i64,
    /// The view's `epoch` when the office's seats last changed (`Stamp`).
    version: u64,
    /// The release-wave openings of the office's slots: a cached answer holds until the next.
    openings: BTreeSet<UnixSeconds>,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<i64, SlotView>,
    offices: HashMap<Arc<str>, OfficeSeats>,
    /// Every office by its upcoming free seats, most first, ties by id: listings by free
    /// capacity read the first few instead of totalling every office.
    ranked: BTreeSet<(Reverse<i64>, Arc<str>)>,
    /// Every slot by (start, id): the ones before `retired` have started by `horizon`.
    by_start: Vec<(UnixSeconds, i64)>,
    retired: usize,
    /// The start of the last slot retired: slots starting at or before it are not in
    /// `upcoming_free`, the others are (ties are retired together).
    horizon: UnixSeconds,
    /// Moves with every change of seats (and every load); never goes back over the view's life.
    /// Kept answers check it (`Stamp`), and a list of auto-pick candidates made at one epoch
    /// holds while it stands (`pick::PickMemo`).
    epoch: u64,
    /// The `epoch` of the last change that gave some office free seats (a cancel, a release,
    /// an expired hold, a load): only such a change can bring an office not in a ranked answer
    /// into it.
    gained: u64,
    /// Every release-wave opening of the network.
    openings: BTreeSet<UnixSeconds>,
}

/// What an answer built from the view depends on, read before building it: the answer may be
/// reused while `Availability::unchanged` says these still hold and the clock is in
/// `[made_at, until)` (the next slot start or wave opening changes what is free).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub made_at: UnixSeconds,
    pub until: UnixSeconds,
    /// `gained` when the answer ranks offices by free seats (an office outside it may enter).
    pub gained: Option<u64>,
    /// The offices the answer shows, each with its version.
    pub offices: Vec<(Arc<str>, u64)>,
}

/// What a listing of offices by free capacity keeps: an office's id and upcoming free seats.
pub type Ranked = (Arc<str>, i64);

#[derive(Default)]
pub struct Availability {
    inner: RwLock<Inner>,
    /// Auto-pick candidates shared by the picks of the same limits at one version.
    picks: std::sync::Mutex<pick::PickMemo>,
}

fn slot_day(start_at: UnixSeconds) -> NaiveDate {
    iran_date(chrono::DateTime::from_timestamp(start_at, 0).unwrap_or_default())
}

impl Inner {
    /// Whether a read at `now` must first retire slots that have started.
    fn behind(&self, now: UnixSeconds) -> bool {
        self.by_start
            .get(self.retired)
            .is_some_and(|&(start, _)| start <= now)
    }

    /// Retires every slot starting at or before `now`: its free seats leave its office's
    /// upcoming total. Each slot is retired once over the view's life.
    fn advance(&mut self, now: UnixSeconds) {
        let mut changed: HashMap<Arc<str>, i64> = HashMap::new();
        while let Some(&(start, id)) = self.by_start.get(self.retired) {
            if start > now {
                break;
            }
            self.retired += 1;
            self.horizon = start;
            if let Some(s) = self.slots.get(&id) {
                *changed.entry(s.office_id.clone()).or_default() -= s.free();
            }
        }
        for (office, d) in changed {
            self.add_upcoming(&office, d);
        }
    }

    /// Moves an office's upcoming free seats by `d`, keeping the ranking.
    fn add_upcoming(&mut self, office: &Arc<str>, d: i64) {
        if d == 0 {
            return;
        }
        if let Some(o) = self.offices.get_mut(office) {
            self.ranked
                .remove(&(Reverse(o.upcoming_free), office.clone()));
            o.upcoming_free += d;
            self.ranked
                .insert((Reverse(o.upcoming_free), office.clone()));
        }
    }

    /// Free seats of `office` in slots starting after `after`.
    fn free_after(&self, office: &str, after: UnixSeconds) -> i64 {
        let Some(o) = self.offices.get(office) else {
            return 0;
        };
        if after >= self.horizon {
            // Not behind (the caller advanced), so nothing starts in (horizon, after].
            return o.upcoming_free;
        }
        // The clock went back (a test's clock, or a read that raced an advance): add back
        // the slots started by the horizon but not by `after`.
        o.upcoming_free
            + o.starts
                .range((Excluded(after), Included(self.horizon)))
                .filter_map(|(_, id)| self.slots.get(id))
                .map(SlotView::free)
                .sum::<i64>()
    }
}

impl Availability {
    /// A read guard on a view whose upcoming totals are exact for `now`.
    fn at(&self, now: UnixSeconds) -> RwLockReadGuard<'_, Inner> {
        {
            let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
            if !inner.behind(now) {
                return inner;
            }
        }
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .advance(now);
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the whole view (start-up and periodic refresh). Every slot counts as upcoming
    /// until the first read retires the started ones.
    pub fn load(&self, rows: Vec<SlotRow>) {
        let mut inner = Inner {
            horizon: UnixSeconds::MIN,
            ..Inner::default()
        };
        let mut names: HashMap<String, Arc<str>> = HashMap::new();
        for r in rows {
            let office: Arc<str> = names
                .entry(r.office_id.clone())
                .or_insert_with(|| Arc::from(r.office_id.as_str()))
                .clone();
            let opens_for: Option<Arc<str>> = r.opens_for.as_deref().map(|s| {
                names
                    .entry(s.to_string())
                    .or_insert_with(|| Arc::from(s))
                    .clone()
            });
            let day = slot_day(r.start_at);
            let slot = SlotView {
                id: r.id,
                office_id: office.clone(),
                start_at: r.start_at,
                duration_minutes: r.duration_minutes,
                capacity: r.capacity,
                taken: r.taken,
                opens_at: r.opens_at,
                opens_for,
            };
            let o = inner.offices.entry(office).or_default();
            o.starts.insert(r.start_at, r.id);
            let d = o.days.entry(day).or_insert_with(|| DaySeats {
                first_start: r.start_at,
                last_start: r.start_at,
                ..DaySeats::default()
            });
            d.free += slot.free();
            d.service_bound |= r.opens_at.is_some() && r.opens_for.is_some();
            if let Some(t) = r.opens_at {
                d.next_opening = Some(d.next_opening.map_or(t, |n| n.min(t)));
                o.openings.insert(t);
                inner.openings.insert(t);
            }
            d.first_start = d.first_start.min(r.start_at);
            d.last_start = d.last_start.max(r.start_at);
            o.upcoming_free += slot.free();
            inner.by_start.push((r.start_at, r.id));
            inner.slots.insert(r.id, slot);
        }
        inner.by_start.sort_unstable();
        inner.ranked = inner
            .offices
            .iter()
            .map(|(id, o)| (Reverse(o.upcoming_free), id.clone()))
            .collect();
        let mut guard = self.inner.write().unwrap_or_else(|p| p.into_inner());
        // Answers built from the old view must not match the new one.
        inner.epoch = guard.epoch + 1;
        inner.gained = inner.epoch;
        for o in inner.offices.values_mut() {
            o.version = inner.epoch;
        }
        *guard = inner;
    }

    /// Replaces the whole view, then retires the slots that have started by `now`, so that the
    /// first readers after a (re)load do not pay for it under the write lock.
    pub fn load_at(&self, rows: Vec<SlotRow>, now: UnixSeconds) {
        self.load(rows);
        drop(self.at(now));
    }

    /// Applies committed changes of `taken`.
    pub fn apply(&self, deltas: &BTreeMap<i64, i64>) {
        if deltas.is_empty() {
            return;
        }
        let mut guard = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *guard;
        let epoch = inner.epoch + 1;
        let mut changed = false;
        for (id, d) in deltas {
            let Some(s) = inner.slots.get_mut(id) else {
                continue;
            };
            let free_before = s.free();
            s.taken = (s.taken + d).clamp(0, s.capacity);
            let change = s.free() - free_before;
            if change == 0 {
                continue;
            }
            let (office, start) = (s.office_id.clone(), s.start_at);
            changed = true;
            if change > 0 {
                inner.gained = epoch;
            }
            if let Some(o) = inner.offices.get_mut(&office) {
                o.version = epoch;
                if let Some(day) = o.days.get_mut(&slot_day(start)) {
                    day.free += change;
                    day.rendering = DayRendering::default();
                }
            }
            if start > inner.horizon {
                inner.add_upcoming(&office, change);
            }
        }
        if changed {
            inner.epoch = epoch;
        }
    }

    /// The stamp of an answer about to be built at `now` from the seats of `offices` (their
    /// free seats, earliest free slots or slot listings), and from the ranking by free seats
    /// when `ranked`; `None` when the view changed since `before` (`Availability::epoch`, read
    /// before the answer was built: a change meanwhile may or may not be in it).
    pub fn stamp<'a>(
        &self,
        before: u64,
        now: UnixSeconds,
        ranked: bool,
        offices: impl IntoIterator<Item = &'a str>,
    ) -> Option<Stamp> {
        let inner = self.read();
        if inner.epoch != before {
            return None;
        }
        let after = |set: &BTreeSet<UnixSeconds>| {
            set.range((Excluded(now), std::ops::Bound::Unbounded))
                .next()
                .copied()
        };
        let mut until = after(&inner.openings).unwrap_or(UnixSeconds::MAX);
        let mut versions = Vec::new();
        for id in offices {
            let (key, version) = match inner.offices.get_key_value(id) {
                Some((key, o)) => {
                    if let Some((&start, _)) = o.starts.range(now.saturating_add(1)..).next() {
                        until = until.min(start);
                    }
                    (key.clone(), o.version)
                }
                // No slots yet: any load may bring some.
                None => (Arc::from(id), inner.epoch),
            };
            versions.push((key, version));
        }
        if ranked {
            // Any office may enter the ranking when a slot of its starts.
            let next = inner.by_start.partition_point(|&(start, _)| start <= now);
            if let Some(&(start, _)) = inner.by_start.get(next) {
                until = until.min(start);
            }
        }
        Some(Stamp {
            made_at: now,
            until,
            gained: ranked.then_some(inner.gained),
            offices: versions,
        })
    }

    /// The view's version now: read before building an answer, passed to `stamp` after.
    pub fn epoch(&self) -> u64 {
        self.read().epoch
    }

    /// Whether an answer stamped `stamp` still holds at `now`.
    pub fn unchanged(&self, stamp: &Stamp, now: UnixSeconds) -> bool {
        if now < stamp.made_at || now >= stamp.until {
            return false;
        }
        let inner = self.read();
        stamp.gained.is_none_or(|g| g == inner.gained)
            && stamp.offices.iter().all(|(id, version)| {
                *version == inner.offices.get(id).map_or(inner.epoch, |o| o.version)
            })
    }

    pub fn len(&self) -> usize {
        self.read().slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn slot(&self, id: i64) -> Option<SlotView> {
        self.read().slots.get(&id).cloned()
    }

    pub fn slot_at(&self, office_id: &str, start_at: UnixSeconds) -> Option<SlotView> {
        let inner = self.read();
        let id = inner.offices.get(office_id)?.starts.get(&start_at)?;
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
        let inner = self.read();
        let Some(o) = inner.offices.get(office_id) else {
            return Vec::new();
        };
        if from >= to {
            return Vec::new();
        }
        o.starts
            .range(from..to)
            .take(limit)
            .filter_map(|(_, id)| inner.slots.get(id).cloned())
            .collect()
    }

    /// The office-days of an office with a slot starting in `[from, to)`, in order, each with
    /// the rendering readers share until its seats change or a release wave of the day opens
    /// (a rendering shows the openings pending when it was made; the first read after one
    /// passes gives the day a fresh rendering).
    pub fn day_pages(
        &self,
        office_id: &str,
        from: UnixSeconds,
        to: UnixSeconds,
        now: UnixSeconds,
    ) -> Vec<DayPage> {
        if from >= to {
            return Vec::new();
        }
        let opened = |o: &OfficeSeats| {
            o.days
                .range(slot_day(from)..)
                .take_while(|(_, d)| d.first_start < to)
                .any(|(_, d)| d.next_opening.is_some_and(|t| t <= now))
        };
        let stale = {
            let inner = self.read();
            inner.offices.get(office_id).is_some_and(opened)
        };
        if stale {
            let mut guard = self.inner.write().unwrap_or_else(|p| p.into_inner());
            let inner = &mut *guard;
            if let Some(o) = inner.offices.get_mut(office_id) {
                for d in o.days.values_mut() {
                    if d.next_opening.is_none_or(|t| t > now) {
                        continue;
                    }
                    d.rendering = DayRendering::default();
                    d.next_opening = o
                        .starts
                        .range(d.first_start..=d.last_start)
                        .filter_map(|(_, id)| inner.slots.get(id)?.opens_after(now))
                        .min();
                }
            }
        }
        let inner = self.read();
        let Some(o) = inner.offices.get(office_id) else {
            return Vec::new();
        };
        // Days are keyed by date; a day's slots may begin before `from` only on the first.
        o.days
            .range(slot_day(from)..)
            .take_while(|(_, d)| d.first_start < to)
            .filter(|(_, d)| d.last_start >= from)
            .map(|(day, d)| DayPage {
                day: *day,
                first_start: d.first_start,
                last_start: d.last_start,
                rendering: d.rendering.clone(),
                service_bound: d.service_bound,
            })
            .collect()
    }

    /// The first `limit` slots with a free seat starting strictly after `after` (a slot that
    /// starts now can no longer be booked), leaving out the slots of a release wave not open
    /// at `after` (they are not free now; the day's totals count them, so a day of such
    /// slots is walked slot by slot). Full days are skipped by their totals, so a surge
    /// that filled the next weeks costs a walk over days, not over their slots.
    pub fn earliest_free(
        &self,
        office_id: &str,
        after: UnixSeconds,
        limit: usize,
    ) -> Vec<SlotView> {
        self.earliest_free_for(office_id, after, limit, None)
    }

    /// [`earliest_free`](Self::earliest_free) for a booking of `service`: a seat a wave for
    /// another service holds back is free to it (`None`: closed if closed to any service).
    pub fn earliest_free_for(
        &self,
        office_id: &str,
        after: UnixSeconds,
        limit: usize,
        service: Option<&str>,
    ) -> Vec<SlotView> {
        let inner = self.read();
        let Some(o) = inner.offices.get(office_id) else {
            return Vec::new();
        };
        let mut found = Vec::with_capacity(limit.min(16));
        if limit == 0 {
            return found;
        }
        for d in o.days.range(slot_day(after)..).map(|(_, d)| d) {
            if d.free == 0 || d.last_start <= after {
                continue;
            }
            let from = d.first_start.max(after.saturating_add(1));
            for (_, id) in o.starts.range(from..=d.last_start) {
                let Some(s) = inner.slots.get(id) else {
                    continue;
                };
                if s.free() > 0 && s.released_for(after, service) {
                    found.push(s.clone());
                    if found.len() == limit {
                        return found;
                    }
                }
            }
        }
        found
    }

    /// Free seats of an office in slots starting after `after` (listings by free capacity).
    pub fn free_seats(&self, office_id: &str, after: UnixSeconds) -> i64 {
        self.at(after).free_after(office_id, after)
    }

    /// The offices that `keep` accepts, most upcoming free seats (slots starting after `now`)
    /// first, ties by id, at most `limit`: read off the ranking, so it visits the offices
    /// ahead of the last one returned, not the network.
    pub fn top_offices(
        &self,
        now: UnixSeconds,
        limit: usize,
        mut keep: impl FnMut(&str) -> bool,
    ) -> Vec<Ranked> {
        let inner = self.at(now);
        if now >= inner.horizon {
            return inner
                .ranked
                .iter()
                .filter(|(_, id)| keep(id))
                .take(limit)
                .map(|(Reverse(free), id)| (id.clone(), *free))
                .collect();
        }
        // The clock went back past the horizon: total the kept offices at `now`.
        let mut all: Vec<Ranked> = inner
            .offices
            .keys()
            .filter(|id| keep(id))
            .map(|id| (id.clone(), inner.free_after(id, now)))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(limit);
        all
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn row(id: i64, office: &str, start: i64, capacity: i64, taken: i64) -> SlotRow {
        SlotRow {
            id,
            office_id: office.into(),
            start_at: start,
            duration_minutes: 15,
            capacity,
            taken,
            opens_at: None,
            opens_for: None,
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

/// Stamps of answers: what changes them and what does not.
#[cfg(test)]
mod stamps {
    use super::tests::row;
    use super::*;

    #[test]
    fn a_stamp_holds_until_its_offices_seats_change_or_the_clock_moves_on() {
        let view = Availability::default();
        view.load(vec![
            row(1, "A", 100, 2, 0),
            row(2, "A", 200, 2, 0),
            row(3, "B", 150, 2, 1),
            SlotRow {
                opens_at: Some(300),
                ..row(4, "C", 400, 2, 0)
            },
        ]);
        let before = view.epoch();
        let of_a = view.stamp(before, 0, false, ["A"]).unwrap();
        let ranked = view.stamp(before, 0, true, ["A"]).unwrap();
        assert_eq!(of_a.until, 100, "A's first slot starts");
        assert!(view.unchanged(&of_a, 99));
        assert!(!view.unchanged(&of_a, 100), "a slot started");
        assert!(!view.unchanged(&of_a, -1), "the clock went back");
        // B loses a seat: neither stamp moves (B was not shown; losing seats ranks B lower).
        view.apply(&BTreeMap::from([(3, 1)]));
        assert!(view.unchanged(&of_a, 50) && view.unchanged(&ranked, 50));
        assert!(
            view.stamp(before, 0, false, ["A"]).is_none(),
            "built across a change"
        );
        // B gains a seat: it may now rank above A.
        view.apply(&BTreeMap::from([(3, -1)]));
        assert!(view.unchanged(&of_a, 50));
        assert!(!view.unchanged(&ranked, 50));
        // A's own seats.
        view.apply(&BTreeMap::from([(2, 1)]));
        assert!(!view.unchanged(&of_a, 50));
        // A delta that changes no free seat (more taken in a full slot) changes nothing.
        view.apply(&BTreeMap::from([(2, 5)]));
        let of_a = view.stamp(view.epoch(), 0, false, ["A"]).unwrap();
        view.apply(&BTreeMap::from([(2, 1)]));
        assert!(view.unchanged(&of_a, 50));
        // A wave opening makes seats free without a delta.
        let of_c = view.stamp(view.epoch(), 0, false, ["C"]).unwrap();
        assert_eq!(of_c.until, 300);
        // An office without slots holds until anything changes; a load changes everything.
        let of_none = view.stamp(view.epoch(), 0, false, ["Z"]).unwrap();
        assert!(view.unchanged(&of_none, 10));
        view.load(vec![row(1, "A", 100, 2, 0)]);
        assert!(!view.unchanged(&of_a, 50) && !view.unchanged(&of_none, 50));
    }
}

/// The maintained totals against a recount from the slots, after random bookings, cancels,
/// expiries and clock moves (forward, and back as a test's clock may).
#[cfg(test)]
mod recount {
    use super::*;
    use proptest::prelude::*;

    const HOUR: i64 = 3_600;
    /// 2024-09-21 00:00 Iran time: office days start at 08:00 local.
    const BASE: i64 = 1_726_864_200;

    #[derive(Debug, Clone)]
    enum Op {
        /// Seats taken (positive: a hold or booking; negative: a cancel, release or expiry).
        Delta(usize, i64),
        Clock(i64),
    }

    fn slots() -> impl Strategy<Value = Vec<SlotRow>> {
        // Up to 4 offices × 3 days × 6 slots of 30 minutes from 08:00.
        prop::collection::vec((0..4usize, 0..3i64, 0..6i64, 1..4i64, 0..4i64), 1..40).prop_map(
            |specs| {
                let mut seen = BTreeSet::new();
                specs
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
                    .collect()
            },
        )
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![
                (0..40usize, -2..3i64).prop_map(|(s, d)| Op::Delta(s, d)),
                (-HOUR..4 * 24 * HOUR).prop_map(|t| Op::Clock(BASE + t)),
            ],
            0..60,
        )
    }

    /// What the view answers, worked out from the slots alone.
    fn recount(slots: &BTreeMap<i64, SlotView>, now: UnixSeconds) -> Vec<(String, i64)> {
        let mut free: BTreeMap<String, i64> = BTreeMap::new();
        for s in slots.values() {
            let f = free.entry(s.office_id.to_string()).or_default();
            if s.start_at > now {
                *f += s.free();
            }
        }
        let mut ranked: Vec<(String, i64)> = free.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked
    }

    proptest! {
        #[test]
        fn maintained_totals_equal_a_recount(rows in slots(), ops in ops()) {
            let view = Availability::default();
            view.load(rows.clone());
            let mut model: BTreeMap<i64, SlotView> = rows
                .iter()
                .map(|r| (r.id, SlotView {
                    id: r.id,
                    office_id: Arc::from(r.office_id.as_str()),
                    start_at: r.start_at,
                    duration_minutes: r.duration_minutes,
                    capacity: r.capacity,
                    taken: r.taken,
                    opens_at: None,
                    opens_for: None,
                }))
                .collect();
            let mut now = BASE;
            for op in ops {
                match op {
                    Op::Delta(k, d) => {
                        let id = (k % rows.len()) as i64 + 1;
                        view.apply(&BTreeMap::from([(id, d)]));
                        let s = model.get_mut(&id).unwrap();
                        s.taken = (s.taken + d).clamp(0, s.capacity);
                    }
                    Op::Clock(t) => now = t,
                }
                let expected = recount(&model, now);
                for (office, free) in &expected {
                    prop_assert_eq!(view.free_seats(office, now), *free, "{} at {}", office, now);
                }
                for limit in [1, 2, 10] {
                    let top: Vec<(String, i64)> = view
                        .top_offices(now, limit, |_| true)
                        .into_iter()
                        .map(|(o, f)| (o.to_string(), f))
                        .collect();
                    prop_assert_eq!(&top[..], &expected[..limit.min(expected.len())]);
                }
                let odd: Vec<(String, i64)> = view
                    .top_offices(now, 10, |o| o == "O1" || o == "O3")
                    .into_iter()
                    .map(|(o, f)| (o.to_string(), f))
                    .collect();
                let odd_expected: Vec<(String, i64)> =
                    expected.iter().filter(|(o, _)| o == "O1" || o == "O3").cloned().collect();
                prop_assert_eq!(odd, odd_expected);
                for office in ["O0", "O1", "O2", "O3"] {
                    let walked: Vec<i64> = model
                        .values()
                        .filter(|s| &*s.office_id == office && s.start_at > now && s.free() > 0)
                        .map(|s| (s.start_at, s.id))
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .take(3)
                        .map(|(_, id)| id)
                        .collect();
                    let earliest: Vec<i64> =
                        view.earliest_free(office, now, 3).iter().map(|s| s.id).collect();
                    prop_assert_eq!(earliest, walked, "earliest free of {} after {}", office, now);
                    // Day pages cover exactly the office's days with slots in the range.
                    let (from, to) = (now - 24 * HOUR, now + 24 * HOUR);
                    let days: BTreeSet<NaiveDate> = model
                        .values()
                        .filter(|s| &*s.office_id == office && s.start_at >= from && s.start_at < to)
                        .map(|s| slot_day(s.start_at))
                        .collect();
                    let pages: BTreeSet<NaiveDate> =
                        view.day_pages(office, from, to, BASE).iter().map(|p| p.day).collect();
                    prop_assert_eq!(pages, days);
                }
            }
        }
    }

    /// A rendering shows the openings pending when it was made: the first read after one
    /// passes gets a fresh one; unopened slots are not free now for the earliest-free pointer.
    #[test]
    fn a_day_rendering_is_dropped_when_its_wave_opens() {
        let view = Availability::default();
        let opens = BASE + 10 * HOUR;
        view.load(vec![
            SlotRow {
                opens_at: Some(opens),
                ..super::tests::row(1, "A", BASE + 30 * HOUR, 2, 0)
            },
            super::tests::row(2, "A", BASE + 31 * HOUR, 2, 0),
        ]);
        let pages = view.day_pages("A", BASE, BASE + 48 * HOUR, BASE);
        assert_eq!(pages.len(), 1);
        const FOREVER: UnixSeconds = UnixSeconds::MAX;
        pages[0]
            .rendering
            .set(Rendered::keep("pending".into(), FOREVER).unwrap());
        let before = view.day_pages("A", BASE, BASE + 48 * HOUR, opens - 1);
        let kept = |page: &DayPage, now| page.rendering.get(now).map(|r| r.as_str().to_string());
        assert_eq!(kept(&before[0], opens - 1).as_deref(), Some("pending"));
        let ids = |now| -> Vec<i64> {
            view.earliest_free("A", now, 5)
                .iter()
                .map(|s| s.id)
                .collect()
        };
        assert_eq!(ids(opens - 1), vec![2]);
        let after = view.day_pages("A", BASE, BASE + 48 * HOUR, opens);
        assert_eq!(kept(&after[0], opens), None, "renewed at the opening");
        after[0]
            .rendering
            .set(Rendered::keep("open".into(), FOREVER).unwrap());
        let later = view.day_pages("A", BASE, BASE + 48 * HOUR, opens + HOUR);
        assert_eq!(
            kept(&later[0], opens + HOUR).as_deref(),
            Some("open"),
            "renewed once"
        );
        assert_eq!(ids(opens), vec![1, 2]);
    }

    #[test]
    fn a_day_rendering_is_dropped_when_its_seats_change() {
        let view = Availability::default();
        view.load(vec![
            SlotRow {
                id: 1,
                office_id: "A".into(),
                start_at: BASE + 8 * HOUR,
                duration_minutes: 30,
                capacity: 2,
                taken: 0,
                opens_at: None,
                opens_for: None,
            },
            SlotRow {
                id: 2,
                office_id: "A".into(),
                start_at: BASE + 32 * HOUR,
                duration_minutes: 30,
                capacity: 2,
                taken: 0,
                opens_at: None,
                opens_for: None,
            },
        ]);
        let pages = view.day_pages("A", BASE, BASE + 48 * HOUR, BASE);
        assert_eq!(pages.len(), 2);
        for p in &pages {
            p.rendering
                .set(Rendered::keep("rendered".into(), UnixSeconds::MAX).unwrap());
        }
        view.apply(&BTreeMap::from([(1, 1)]));
        let again = view.day_pages("A", BASE, BASE + 48 * HOUR, BASE);
        assert!(
            again[0].rendering.get(BASE).is_none(),
            "the changed day is rendered afresh"
        );
        assert_eq!(
            again[1]
                .rendering
                .get(BASE)
                .as_deref()
                .map(Rendered::as_str),
            Some("rendered")
        );
        // A delta that changes no free seat (more taken in a full slot) keeps the rendering.
        view.apply(&BTreeMap::from([(2, 2)]));
        let full = view.day_pages("A", BASE, BASE + 48 * HOUR, BASE);
        full[1]
            .rendering
            .set(Rendered::keep("full".into(), UnixSeconds::MAX).unwrap());
        view.apply(&BTreeMap::from([(2, 1)]));
        assert_eq!(
            view.day_pages("A", BASE, BASE + 48 * HOUR, BASE)[1]
                .rendering
                .get(BASE)
                .as_deref()
                .map(Rendered::as_str),
            Some("full")
        );
        view.apply(&BTreeMap::from([(2, -1)]));
        assert!(view.day_pages("A", BASE, BASE + 48 * HOUR, BASE)[1]
            .rendering
            .get(BASE)
            .is_none());
    }

    /// A rendering made to hold until an instant (the next start of one of its slots) is not
    /// handed out from that instant on, and a later one takes its place.
    #[test]
    fn a_day_rendering_holds_until_the_instant_it_was_made_for() {
        let cell = DayRenderingCell::default();
        let text = |now| cell.get(now).map(|r| r.as_str().to_string());
        cell.set(Rendered::keep("before nine".into(), BASE + 9 * HOUR).unwrap());
        assert_eq!(text(BASE + 9 * HOUR - 1).as_deref(), Some("before nine"));
        assert_eq!(text(BASE + 9 * HOUR), None);
        cell.set(Rendered::keep("after nine".into(), BASE + 10 * HOUR).unwrap());
        assert_eq!(text(BASE + 9 * HOUR).as_deref(), Some("after nine"));
        assert_eq!(text(BASE + 10 * HOUR), None);
    }
}
