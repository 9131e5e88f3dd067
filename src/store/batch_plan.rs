//! What a batch's transaction reads and writes, and in which order, stated once for both
//! backends. The backends are executors: PostgreSQL (`booking::pg_read`, `booking::pg_write`)
//! performs each step with one set-based statement whatever the batch size; SQLite
//! (`lite_writer::read`, `lite_writer::write_effects`) with cached prepared statements on its
//! writer thread. Each has one `match` over the step kinds and no say in their order; a new
//! step kind does not compile until both perform it, and a new field of `Effects` does not
//! compile until [`writes`] places it.
//!
//! The order of the writes, and why:
//! 1. **Hold statuses**, then **appointment updates**, before any new hold or appointment: the
//!    partial unique indexes (`holds_one_live_per_citizen`, `appointments_one_active`) admit a
//!    citizen's new live hold or active appointment only once the old one has left the index,
//!    and a batch may end one and make the other (a release then a new hold; a cancellation
//!    then a booking). A status change never makes a hold live (`decide` only confirms,
//!    releases and expires), so the rows of the first step may be written in any order.
//! 2. **New holds**, **new appointments**.
//! 3. **Capacity raised** (to the larger of the old and the new), **seat deltas**, **final
//!    capacities**: `CHECK (taken <= capacity)` holds after every statement, so a batch that
//!    raises a slot and fills the new seats, or frees seats and then lowers the capacity to
//!    them, is never refused halfway.
//! 4. **Cards**, **outbox** (`ON CONFLICT DO NOTHING`: one notice per appointment and cause),
//!    **events**, **idempotency records**: rows nothing else in the batch depends on.
//!
//! The reads, in order: overdue holds (the batch expires them on the side), waitlist entries by
//! id, holds by id (with the offer holds of those entries), the entries of the waitlist offers
//! among them, appointments by tracking code (all locked: the batch may change them), the
//! active entries of joining citizens, seat releases by id (locked), the live holds and active
//! appointments of the batch's citizens, the cancelling citizens' own cancellations in the
//! window of `Limits` (counted in the event log), payments, applications, then slots (those
//! whose seat count the batch may change locked, in id order; the rest read only), then the
//! waiting entries of the offices of the slots not yet started where the batch may free a seat
//! (a hold not merely confirmed, an appointment, a release, a capacity set, whose new seats
//! are offered like freed ones: `WAITERS_PER_OFFICE` each, earliest
//! joined first), and those waiters' live holds and active appointments, then the idempotency
//! records. Slots come after holds, appointments and releases because those name them; the
//! waiters after the slots because a slot names its office. A batch that frees no seat (the
//! hold→confirm path) reads no waiters.

use std::collections::{BTreeMap, HashMap};

use super::booking::{BatchExtras, IdempotencyRecord};
use crate::booking::{
    ApplicationRef, AppointmentRow, BatchKeys, BatchState, CardRow, Effects, EntryOffice, Event,
    HoldRow, HoldStatus, OutboxRow, PaymentRow, ReleaseStatus, SeatReleaseRow, SlotRow, WaitRow,
};

/// Waiting entries read per office where a batch may free a seat (earliest joined first): a
/// batch frees a few seats per office at most, and a seat goes to the first whose limits fit.
pub(super) const WAITERS_PER_OFFICE: i64 = 32;

/// The prefix of the ids of waitlist offers' holds, so a batch reads the entry of a hold it
/// touches only when the hold is an offer's.
pub const OFFER_HOLD_PREFIX: &str = "offer_";

/// The idempotency records a batch found, by (scope, key).
pub type Stored = HashMap<(String, String), IdempotencyRecord>;

/// One write step of a batch (see the module's list for the order and its reasons).
pub(super) enum WriteStep<'e> {
    /// Hold id → its new status (every one ends a live hold).
    HoldStatus(&'e BTreeMap<String, HoldStatus>),
    /// Rows of existing appointments, by tracking code: status, slot, office, start, update
    /// time.
    AppointmentUpdates(&'e BTreeMap<String, AppointmentRow>),
    /// Rows of existing waitlist entries, by id: status, offer, tracking code, update time; an
    /// entry that ended (booked, left, lapsed) also leaves `waitlist_offices`.
    EntryUpdates(&'e BTreeMap<String, WaitRow>),
    /// Seat release id → its new status.
    ReleaseStatus(&'e BTreeMap<i64, ReleaseStatus>),
    NewHolds(&'e [HoldRow]),
    NewAppointments(&'e [AppointmentRow]),
    NewEntries(&'e [WaitRow]),
    EntryOffices(&'e [EntryOffice]),
    /// New pending releases (the database numbers them).
    NewReleases(&'e [SeatReleaseRow]),
    /// Slot id → capacity: raise each to at least this.
    RaiseCapacity(&'e BTreeMap<i64, i64>),
    /// Slot id → change of `taken`.
    SeatDeltas(&'e BTreeMap<i64, i64>),
    /// Slot id → capacity: set each to exactly this (never below `taken`: `decide` refused that).
    SetCapacity(&'e BTreeMap<i64, i64>),
    NewCards(&'e [CardRow]),
    /// Notices, each at most once per (tracking code, notice key).
    Outbox(&'e [OutboxRow]),
    Events(&'e [Event]),
    /// Records of the batch's idempotency keys, created at the batch's time.
    IdempotencyRecords {
        records: &'e [IdempotencyRecord],
        created_at: i64,
    },
}

impl WriteStep<'_> {
    fn is_empty(&self) -> bool {
        match self {
            WriteStep::HoldStatus(m) => m.is_empty(),
            WriteStep::AppointmentUpdates(m) => m.is_empty(),
            WriteStep::NewHolds(rows) => rows.is_empty(),
            WriteStep::NewAppointments(rows) => rows.is_empty(),
            WriteStep::EntryUpdates(m) => m.is_empty(),
            WriteStep::ReleaseStatus(m) => m.is_empty(),
            WriteStep::NewEntries(rows) => rows.is_empty(),
            WriteStep::EntryOffices(rows) => rows.is_empty(),
            WriteStep::NewReleases(rows) => rows.is_empty(),
            WriteStep::RaiseCapacity(m) | WriteStep::SeatDeltas(m) | WriteStep::SetCapacity(m) => {
                m.is_empty()
            }
            WriteStep::NewCards(rows) => rows.is_empty(),
            WriteStep::Outbox(rows) => rows.is_empty(),
            WriteStep::Events(rows) => rows.is_empty(),
            WriteStep::IdempotencyRecords { records, .. } => records.is_empty(),
        }
    }
}

/// The batch's writes in the order they must run, empty steps left out.
pub(super) fn writes<'e>(
    effects: &'e Effects,
    idempotency: &'e [IdempotencyRecord],
) -> impl Iterator<Item = WriteStep<'e>> {
    // Named field by field, so that a new kind of effect does not compile until it has a step.
    let Effects {
        now,
        new_holds,
        hold_status,
        new_appointments,
        appointment_updates,
        slot_deltas,
        slot_capacity,
        new_cards,
        new_entries,
        entry_offices,
        entry_updates,
        new_releases,
        release_status,
        outbox,
        events,
    } = effects;
    [
        WriteStep::HoldStatus(hold_status),
        WriteStep::AppointmentUpdates(appointment_updates),
        WriteStep::EntryUpdates(entry_updates),
        WriteStep::ReleaseStatus(release_status),
        WriteStep::NewHolds(new_holds),
        WriteStep::NewAppointments(new_appointments),
        WriteStep::NewEntries(new_entries),
        WriteStep::EntryOffices(entry_offices),
        WriteStep::NewReleases(new_releases),
        WriteStep::RaiseCapacity(slot_capacity),
        WriteStep::SeatDeltas(slot_deltas),
        WriteStep::SetCapacity(slot_capacity),
        WriteStep::NewCards(new_cards),
        WriteStep::Outbox(outbox),
        WriteStep::Events(events),
        WriteStep::IdempotencyRecords {
            records: idempotency,
            created_at: *now,
        },
    ]
    .into_iter()
    .filter(|w| !w.is_empty())
}

/// One read of a batch. The executor runs it and hands each row it finds to the [`ReadPlan`]
/// (`hold`, `appointment`, … by the row's kind).
pub(super) enum ReadStep<'k> {
    /// Ids of live holds whose expiry is at or before `now`, oldest first, at most `limit`,
    /// locked. PostgreSQL skips those another writer has locked (that writer handles them).
    DueHolds {
        now: i64,
        limit: i64,
    },
    /// Waitlist entries by id (sorted), read without a lock: their offers' holds are locked
    /// first ([`ReadStep::LockedEntries`] then locks them), so that every batch locks a hold
    /// before its entry. Leaving the waitlist locked the entry and then its offer's hold while
    /// an expiry locked the hold and then its entry: on PostgreSQL two writers could deadlock.
    Entries(&'k [String]),
    /// Holds by id (sorted), locked.
    Holds(Vec<String>),
    /// Waitlist entries whose offer is one of these holds (sorted), locked.
    OfferEntries(Vec<String>),
    /// Waitlist entries by id (sorted), locked, read again after their offers' holds
    /// (PostgreSQL only: on SQLite the transaction holds the database's write lock and the
    /// first read stands). The row read under the lock replaces the first. Should another
    /// writer have given the entry a new offer in between, that offer's hold was not read, and
    /// the batch decides as if the entry had no hold to give up: an accept or decline is
    /// refused as not found, and a leave leaves the offer's seat to its hold's expiry.
    LockedEntries(&'k [String]),
    /// The active (`waiting`, `offered`) waitlist entries of these (national code, service)
    /// (sorted), locked: a joining citizen's, and a booking citizen's (a new appointment ends
    /// the citizen's waiting entry for its service).
    ActiveEntriesOf(Vec<(String, String)>),
    /// Seat releases by id (sorted), locked.
    Releases(&'k [i64]),
    /// Appointments by tracking code (sorted), locked.
    Appointments(&'k [String]),
    /// The live holds of these citizens.
    LiveHoldsOf(&'k [String]),
    /// The active (`booked`, `checked_in`) appointments of these citizens.
    ActiveAppointmentsOf(&'k [String]),
    /// How many appointments each of these citizens cancelled themselves after `after` (their
    /// `appointment_cancelled` events as actor); a citizen with none may be left out.
    CancellationsOf {
        codes: &'k [String],
        after: i64,
    },
    /// Payments by id, with their application's service and national code.
    Payments(&'k [String]),
    Applications(&'k [String]),
    /// Slots whose seat count the batch may change (sorted): locked in id order, so that two
    /// writers lock in one global order.
    LockedSlots(Vec<i64>),
    /// Slots whose seat count the batch leaves alone (sorted): read without a lock, so that a
    /// confirmation does not wait for another writer's seat changes in the same slot.
    Slots(Vec<i64>),
    /// The waiting entries of each office (sorted), at most `per_office` each, earliest
    /// joined first, locked; PostgreSQL skips those another writer has locked. Each row comes
    /// back with its office (`ReadPlan::waiter`).
    Waiters {
        offices: Vec<String>,
        per_office: i64,
    },
    /// The live holds and active appointments of these waiters (sorted).
    WaiterCitizens(Vec<String>),
    /// Idempotency records by (scope, key).
    IdempotencyRecords(&'k [(String, String)]),
}

/// How an executor's reads lock what they read, which decides whether slots are sorted into
/// locked and unlocked ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Locking {
    /// Rows are locked as they are read, and other writers' transactions run beside this one
    /// (PostgreSQL): a slot whose seat count the batch leaves alone is read without a lock.
    Rows,
    /// The transaction holds the database's one write lock (SQLite): nothing else writes until
    /// it ends, so every slot is read alike, as [`ReadStep::LockedSlots`], and the holds read
    /// are not sorted by what their confirmation does to their slot.
    Database,
}

/// Where a [`ReadPlan`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    DueHolds,
    Entries,
    Holds,
    OfferEntries,
    LockEntries,
    Appointments,
    ActiveEntriesOf,
    Releases,
    LiveHoldsOf,
    ActiveAppointmentsOf,
    CancellationsOf,
    Payments,
    Applications,
    LockedSlots,
    Slots,
    Waiters,
    WaiterCitizens,
    IdempotencyRecords,
    Done,
}

impl ReadStep<'_> {
    fn is_empty(&self) -> bool {
        match self {
            ReadStep::DueHolds { .. } => false,
            ReadStep::Holds(ids) | ReadStep::OfferEntries(ids) | ReadStep::WaiterCitizens(ids) => {
                ids.is_empty()
            }
            ReadStep::Entries(ids) | ReadStep::LockedEntries(ids) => ids.is_empty(),
            ReadStep::ActiveEntriesOf(pairs) => pairs.is_empty(),
            ReadStep::Releases(ids) => ids.is_empty(),
            ReadStep::Waiters { offices, .. } => offices.is_empty(),
            ReadStep::Appointments(ids)
            | ReadStep::LiveHoldsOf(ids)
            | ReadStep::ActiveAppointmentsOf(ids)
            | ReadStep::Payments(ids)
            | ReadStep::Applications(ids) => ids.is_empty(),
            ReadStep::CancellationsOf { codes, .. } => codes.is_empty(),
            ReadStep::LockedSlots(ids) | ReadStep::Slots(ids) => ids.is_empty(),
            ReadStep::IdempotencyRecords(keys) => keys.is_empty(),
        }
    }
}

/// The reads of one batch, in order, and the state they build: [`ReadPlan::next`] gives the
/// next read (empty ones left out), the executor hands back the rows it found, and
/// [`ReadPlan::finish`] gives the state to decide on. Which slots are locked depends on the
/// holds found, which is why the plan is stepped rather than listed up front.
pub(super) struct ReadPlan<'k> {
    keys: &'k BatchKeys,
    extras: &'k BatchExtras,
    locking: Locking,
    /// The stage `next` looks at first.
    stage: Stage,
    /// The stage of the read `next` gave last: what the rows handed back belong to.
    reading: Stage,
    state: BatchState,
    stored: Stored,
    hold_ids: Vec<String>,
    locked_slots: Vec<i64>,
    unlocked_slots: Vec<i64>,
    /// Offer holds read whose entry is to be read.
    offer_holds: Vec<String>,
    /// Slots where the batch may free a seat (of holds, appointments and releases read by
    /// key) or add one (a capacity set): their offices' waiters are read.
    freeable_slots: Vec<i64>,
    waiter_codes: Vec<String>,
}

impl<'k> ReadPlan<'k> {
    /// `keys` normalised (sorted, deduplicated: `BatchKeys::normalise`).
    pub fn new(keys: &'k BatchKeys, extras: &'k BatchExtras, locking: Locking) -> Self {
        let mut hold_ids = keys.holds.clone();
        hold_ids.extend(keys.confirmed_holds.iter().cloned());
        ReadPlan {
            keys,
            extras,
            locking,
            stage: Stage::DueHolds,
            reading: Stage::Done,
            state: BatchState::default(),
            stored: Stored::new(),
            hold_ids,
            locked_slots: keys.slots.clone(),
            unlocked_slots: Vec::new(),
            offer_holds: Vec::new(),
            // A raised capacity's new seats are offered like freed ones.
            freeable_slots: keys.capacity_slots.clone(),
            waiter_codes: Vec::new(),
        }
    }

    /// The next read, or `None` when the batch has read everything.
    pub fn next(&mut self) -> Option<ReadStep<'k>> {
        let (keys, extras) = (self.keys, self.extras);
        loop {
            let stage = self.stage;
            let read = match stage {
                Stage::DueHolds => extras.sweep_limit.map(|limit| ReadStep::DueHolds {
                    now: extras.now,
                    limit,
                }),
                Stage::Entries => Some(ReadStep::Entries(&keys.entries)),
                Stage::Holds => {
                    let mut ids = std::mem::take(&mut self.hold_ids);
                    ids.sort_unstable();
                    ids.dedup();
                    Some(ReadStep::Holds(ids))
                }
                Stage::OfferEntries => {
                    let mut ids = std::mem::take(&mut self.offer_holds);
                    ids.sort_unstable();
                    ids.dedup();
                    Some(ReadStep::OfferEntries(ids))
                }
                Stage::LockEntries => (self.locking == Locking::Rows)
                    .then_some(ReadStep::LockedEntries(&keys.entries)),
                Stage::Appointments => Some(ReadStep::Appointments(&keys.appointments)),
                Stage::ActiveEntriesOf => Some(ReadStep::ActiveEntriesOf(self.entry_citizens())),
                Stage::Releases => Some(ReadStep::Releases(&keys.releases)),
                Stage::LiveHoldsOf => Some(ReadStep::LiveHoldsOf(&keys.hold_codes)),
                Stage::ActiveAppointmentsOf => {
                    Some(ReadStep::ActiveAppointmentsOf(&keys.citizen_codes))
                }
                Stage::CancellationsOf => Some(ReadStep::CancellationsOf {
                    codes: &keys.cancelling,
                    after: extras.limits.cancellations_counted_after(extras.now),
                }),
                Stage::Payments => Some(ReadStep::Payments(&keys.payments)),
                Stage::Applications => Some(ReadStep::Applications(&keys.applications)),
                Stage::LockedSlots => {
                    let mut locked = std::mem::take(&mut self.locked_slots);
                    locked.sort_unstable();
                    locked.dedup();
                    let unlocked = &mut self.unlocked_slots;
                    unlocked.sort_unstable();
                    unlocked.dedup();
                    unlocked.retain(|id| locked.binary_search(id).is_err());
                    Some(ReadStep::LockedSlots(locked))
                }
                Stage::Slots => Some(ReadStep::Slots(std::mem::take(&mut self.unlocked_slots))),
                Stage::Waiters => Some(ReadStep::Waiters {
                    offices: self.freeable_offices(),
                    per_office: WAITERS_PER_OFFICE,
                }),
                Stage::WaiterCitizens => {
                    let mut codes = std::mem::take(&mut self.waiter_codes);
                    codes.sort_unstable();
                    codes.dedup();
                    Some(ReadStep::WaiterCitizens(codes))
                }
                Stage::IdempotencyRecords => {
                    Some(ReadStep::IdempotencyRecords(&extras.idempotency_keys))
                }
                Stage::Done => return None,
            };
            self.stage = stage.following();
            if let Some(read) = read.filter(|r| !r.is_empty()) {
                self.reading = stage;
                return Some(read);
            }
        }
    }

    /// The citizens and services whose active entries are read: those the keys name, and
    /// the owners of the holds the batch confirms (read by now), whose waiting entry the
    /// confirmation ends.
    fn entry_citizens(&self) -> Vec<(String, String)> {
        let mut pairs = self.keys.entry_citizens.clone();
        pairs.extend(
            self.keys
                .confirmed_holds
                .iter()
                .filter_map(|id| self.state.holds.get(id))
                .map(|h| (h.national_code.clone(), h.service.clone())),
        );
        pairs.sort_unstable();
        pairs.dedup();
        pairs
    }

    /// What [`ReadStep::DueHolds`] found; they are read (and locked) with the batch's holds.
    pub fn due_holds(&mut self, ids: Vec<String>) {
        debug_assert_eq!(self.reading, Stage::DueHolds);
        self.hold_ids.extend(ids.iter().cloned());
        self.state.due_holds = ids;
    }

    /// A hold [`ReadStep::Holds`] or [`ReadStep::LiveHoldsOf`] found.
    pub fn hold(&mut self, h: HoldRow) {
        match self.reading {
            Stage::Holds => {
                let keeps = keeps_its_seat(&h, self.keys, self.extras.now);
                if self.locking == Locking::Rows && keeps {
                    self.unlocked_slots.push(h.slot_id);
                } else {
                    self.locked_slots.push(h.slot_id);
                }
                if !keeps {
                    self.freeable_slots.push(h.slot_id);
                }
                let entry_read = || {
                    let mut entries = self.state.entries.values();
                    entries.any(|e| e.offer_hold_id.as_deref() == Some(h.id.as_str()))
                };
                if h.id.starts_with(OFFER_HOLD_PREFIX) && !entry_read() {
                    self.offer_holds.push(h.id.clone());
                }
                self.state.holds.insert(h.id.clone(), h);
            }
            // Read again as a citizen's live hold: the row read by id (and locked) stands.
            Stage::LiveHoldsOf | Stage::WaiterCitizens => {
                self.state.holds.entry(h.id.clone()).or_insert(h);
            }
            other => unreachable!("a hold handed back while reading {other:?}"),
        }
    }

    /// An appointment [`ReadStep::Appointments`] or [`ReadStep::ActiveAppointmentsOf`] found.
    pub fn appointment(&mut self, a: AppointmentRow) {
        match self.reading {
            Stage::Appointments => {
                self.locked_slots.push(a.slot_id);
                self.freeable_slots.push(a.slot_id);
                self.state.appointments.insert(a.tracking_code.clone(), a);
            }
            Stage::ActiveAppointmentsOf | Stage::WaiterCitizens => {
                self.state
                    .appointments
                    .entry(a.tracking_code.clone())
                    .or_insert(a);
            }
            other => unreachable!("an appointment handed back while reading {other:?}"),
        }
    }

    /// A waitlist entry [`ReadStep::Entries`], [`ReadStep::OfferEntries`] or
    /// [`ReadStep::ActiveEntriesOf`] found.
    pub fn entry(&mut self, e: WaitRow) {
        match self.reading {
            Stage::Entries => {
                // Its offer's hold is read (and locked) with the batch's holds: leaving the
                // waitlist gives it up.
                if let Some(hold) = &e.offer_hold_id {
                    self.hold_ids.push(hold.clone());
                }
                self.state.entries.insert(e.id.clone(), e);
            }
            Stage::OfferEntries | Stage::ActiveEntriesOf => {
                self.state.entries.entry(e.id.clone()).or_insert(e);
            }
            // Read under its lock: it stands over the first read.
            Stage::LockEntries => {
                self.state.entries.insert(e.id.clone(), e);
            }
            other => unreachable!("an entry handed back while reading {other:?}"),
        }
    }

    /// A waiting entry [`ReadStep::Waiters`] found for `office_id`.
    pub fn waiter(&mut self, office_id: String, e: WaitRow) {
        debug_assert_eq!(self.reading, Stage::Waiters);
        self.waiter_codes.push(e.national_code.clone());
        self.state
            .waiters
            .entry(office_id)
            .or_default()
            .push(e.id.clone());
        self.state.entries.entry(e.id.clone()).or_insert(e);
    }

    /// A seat release [`ReadStep::Releases`] found: its slot is locked, and may be freed.
    pub fn release(&mut self, r: SeatReleaseRow) {
        debug_assert_eq!(self.reading, Stage::Releases);
        self.locked_slots.push(r.slot_id);
        self.freeable_slots.push(r.slot_id);
        self.state.releases.insert(r.id, r);
    }

    /// The offices of the slots not yet started where the batch may free a seat (sorted).
    fn freeable_offices(&mut self) -> Vec<String> {
        let now = self.extras.now;
        let slots = &self.state.slots;
        let mut offices: Vec<String> = std::mem::take(&mut self.freeable_slots)
            .iter()
            .filter_map(|id| slots.get(id))
            .filter(|s| s.start_at > now)
            .map(|s| s.office_id.clone())
            .collect();
        offices.sort_unstable();
        offices.dedup();
        offices
    }

    /// A citizen's count of own cancellations [`ReadStep::CancellationsOf`] found.
    pub fn cancellations(&mut self, national_code: String, count: i64) {
        debug_assert_eq!(self.reading, Stage::CancellationsOf);
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        self.state.recent_cancellations.insert(national_code, count);
    }

    pub fn payment(&mut self, p: PaymentRow) {
        debug_assert_eq!(self.reading, Stage::Payments);
        self.state.payments.insert(p.id.clone(), p);
    }

    pub fn application(&mut self, a: ApplicationRef) {
        debug_assert_eq!(self.reading, Stage::Applications);
        self.state.applications.insert(a.id.clone(), a);
    }

    pub fn slot(&mut self, s: SlotRow) {
        debug_assert!(matches!(self.reading, Stage::LockedSlots | Stage::Slots));
        self.state.slots.insert(s.id, s);
    }

    pub fn record(&mut self, rec: IdempotencyRecord) {
        debug_assert_eq!(self.reading, Stage::IdempotencyRecords);
        self.stored
            .insert((rec.scope.clone(), rec.key.clone()), rec);
    }

    /// The state to decide on (indexed by citizen) and the idempotency records found.
    pub fn finish(mut self) -> (BatchState, Stored) {
        debug_assert_eq!(self.stage, Stage::Done);
        self.state.limits = self.extras.limits;
        self.state.index();
        (self.state, self.stored)
    }
}

impl Stage {
    fn following(self) -> Stage {
        match self {
            Stage::DueHolds => Stage::Entries,
            Stage::Entries => Stage::Holds,
            Stage::Holds => Stage::OfferEntries,
            Stage::OfferEntries => Stage::LockEntries,
            Stage::LockEntries => Stage::Appointments,
            Stage::Appointments => Stage::ActiveEntriesOf,
            Stage::ActiveEntriesOf => Stage::Releases,
            Stage::Releases => Stage::LiveHoldsOf,
            Stage::LiveHoldsOf => Stage::ActiveAppointmentsOf,
            Stage::ActiveAppointmentsOf => Stage::CancellationsOf,
            Stage::CancellationsOf => Stage::Payments,
            Stage::Payments => Stage::Applications,
            Stage::Applications => Stage::LockedSlots,
            Stage::LockedSlots => Stage::Slots,
            Stage::Slots => Stage::Waiters,
            Stage::Waiters => Stage::WaiterCitizens,
            Stage::WaiterCitizens => Stage::IdempotencyRecords,
            Stage::IdempotencyRecords | Stage::Done => Stage::Done,
        }
    }
}

/// Whether deciding the batch leaves the seat count of `hold`'s slot as it is: the hold is only
/// confirmed (no other request of the batch names it), and it is either live until after
/// `now` (its seat moves to the appointment) or no longer live (the confirmation is refused).
/// A live hold that has expired by `now` frees its seat when it is looked at.
fn keeps_its_seat(hold: &HoldRow, keys: &BatchKeys, now: i64) -> bool {
    keys.holds.binary_search(&hold.id).is_err()
        && keys.confirmed_holds.binary_search(&hold.id).is_ok()
        && (hold.status != HoldStatus::Live || hold.expires_at > now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::booking::{AppointmentStatus, Limits};
    use crate::store::StoredAnswer;

    fn hold(id: &str, slot_id: i64, status: HoldStatus, expires_at: i64) -> HoldRow {
        HoldRow {
            id: id.into(),
            slot_id,
            application_id: "a".into(),
            national_code: format!("c_{id}"),
            service: "first_issuance".into(),
            status,
            created_at: 0,
            expires_at,
        }
    }

    fn appointment(code: &str, slot_id: i64) -> AppointmentRow {
        AppointmentRow {
            tracking_code: code.into(),
            slot_id,
            office_id: "021-0001".into(),
            start_at: 0,
            application_id: "a".into(),
            national_code: "c".into(),
            service: "first_issuance".into(),
            payment_id: None,
            status: AppointmentStatus::Booked,
            created_at: 0,
            updated_at: 0,
            reschedules: 0,
        }
    }

    fn kind(w: &WriteStep<'_>) -> &'static str {
        match w {
            WriteStep::HoldStatus(_) => "hold_status",
            WriteStep::AppointmentUpdates(_) => "appointment_updates",
            WriteStep::NewHolds(_) => "new_holds",
            WriteStep::NewAppointments(_) => "new_appointments",
            WriteStep::EntryUpdates(_) => "entry_updates",
            WriteStep::ReleaseStatus(_) => "release_status",
            WriteStep::NewEntries(_) => "new_entries",
            WriteStep::EntryOffices(_) => "entry_offices",
            WriteStep::NewReleases(_) => "new_releases",
            WriteStep::RaiseCapacity(_) => "raise_capacity",
            WriteStep::SeatDeltas(_) => "seat_deltas",
            WriteStep::SetCapacity(_) => "set_capacity",
            WriteStep::NewCards(_) => "new_cards",
            WriteStep::Outbox(_) => "outbox",
            WriteStep::Events(_) => "events",
            WriteStep::IdempotencyRecords { .. } => "idempotency_records",
        }
    }

    #[test]
    fn writes_end_rows_before_new_ones_and_bracket_the_seats_with_capacities() {
        let mut e = Effects {
            now: 42,
            ..Effects::default()
        };
        e.hold_status.insert("h1".into(), HoldStatus::Released);
        e.appointment_updates
            .insert("T1".into(), appointment("T1", 1));
        e.new_holds.push(hold("h2", 1, HoldStatus::Live, 600));
        e.new_appointments.push(appointment("T2", 2));
        e.slot_deltas.insert(1, 1);
        e.slot_capacity.insert(1, 5);
        e.new_cards.push(CardRow {
            tracking_code: "T1".into(),
            office_id: "021-0001".into(),
            ready_date: "2024-10-01".into(),
            pickup_tracking_code: None,
            created_at: 42,
        });
        e.outbox.push(OutboxRow {
            national_code: "c".into(),
            application_id: "a".into(),
            tracking_code: "T1".into(),
            notice_key: "k".into(),
            channel: "sms".into(),
            body: "b".into(),
            created_at: 42,
        });
        e.events.push(Event {
            at: 42,
            kind: "hold_created",
            subject: "h2".into(),
            actor: "c".into(),
            payload_json: "{}".into(),
        });
        let records = [IdempotencyRecord {
            scope: "c".into(),
            key: "k".into(),
            request_hash: "h".into(),
            answer: StoredAnswer::Http {
                status: 201,
                body: "{}".into(),
            },
        }];
        let order: Vec<&str> = writes(&e, &records).map(|w| kind(&w)).collect();
        assert_eq!(
            order,
            [
                "hold_status",
                "appointment_updates",
                "new_holds",
                "new_appointments",
                "raise_capacity",
                "seat_deltas",
                "set_capacity",
                "new_cards",
                "outbox",
                "events",
                "idempotency_records",
            ]
        );
        let created_at = writes(&e, &records).find_map(|w| match w {
            WriteStep::IdempotencyRecords { created_at, .. } => Some(created_at),
            _ => None,
        });
        assert_eq!(
            created_at,
            Some(42),
            "records are stamped with the batch's time"
        );
    }

    #[test]
    fn empty_steps_are_left_out() {
        let mut e = Effects::default();
        assert_eq!(writes(&e, &[]).count(), 0);
        e.slot_deltas.insert(3, -1);
        let order: Vec<&str> = writes(&e, &[]).map(|w| kind(&w)).collect();
        assert_eq!(order, ["seat_deltas"]);
    }

    /// Runs a read plan against rows given by hand, as an executor would, and returns the reads
    /// it asked for (by name and keys).
    fn run_reads(
        keys: &BatchKeys,
        extras: &BatchExtras,
        locking: Locking,
        holds: &[HoldRow],
        due: &[&str],
    ) -> (Vec<String>, BatchState) {
        let mut plan = ReadPlan::new(keys, extras, locking);
        let mut asked = Vec::new();
        while let Some(read) = plan.next() {
            match read {
                ReadStep::DueHolds { now, limit } => {
                    asked.push(format!("due {now} {limit}"));
                    plan.due_holds(due.iter().map(|s| s.to_string()).collect());
                }
                ReadStep::Holds(ids) => {
                    asked.push(format!("holds {ids:?}"));
                    for h in holds.iter().filter(|h| ids.contains(&h.id)) {
                        plan.hold(h.clone());
                    }
                }
                ReadStep::Appointments(c) => asked.push(format!("appointments {c:?}")),
                ReadStep::Entries(c) => asked.push(format!("entries {c:?}")),
                ReadStep::LockedEntries(c) => asked.push(format!("locked entries {c:?}")),
                ReadStep::OfferEntries(c) => asked.push(format!("offer entries {c:?}")),
                ReadStep::ActiveEntriesOf(c) => asked.push(format!("active entries of {c:?}")),
                ReadStep::Releases(c) => asked.push(format!("releases {c:?}")),
                ReadStep::Waiters { offices, .. } => asked.push(format!("waiters {offices:?}")),
                ReadStep::WaiterCitizens(c) => asked.push(format!("waiter citizens {c:?}")),
                ReadStep::LiveHoldsOf(c) => asked.push(format!("live holds of {c:?}")),
                ReadStep::ActiveAppointmentsOf(c) => asked.push(format!("active of {c:?}")),
                ReadStep::CancellationsOf { codes, after } => {
                    asked.push(format!("cancellations of {codes:?} after {after}"));
                    for code in codes {
                        plan.cancellations(code.clone(), 2);
                    }
                }
                ReadStep::Payments(ids) => asked.push(format!("payments {ids:?}")),
                ReadStep::Applications(ids) => asked.push(format!("applications {ids:?}")),
                ReadStep::LockedSlots(ids) => asked.push(format!("locked slots {ids:?}")),
                ReadStep::Slots(ids) => asked.push(format!("slots {ids:?}")),
                ReadStep::IdempotencyRecords(k) => asked.push(format!("records {k:?}")),
            }
        }
        (asked, plan.finish().0)
    }

    #[test]
    fn a_confirmed_live_hold_leaves_its_slot_unlocked_and_overdue_holds_are_read_with_the_rest() {
        let mut keys = BatchKeys {
            slots: vec![9],
            confirmed_holds: vec!["h_live".into(), "h_over".into()],
            payments: vec!["p".into()],
            ..BatchKeys::default()
        };
        keys.normalise();
        let extras = BatchExtras {
            now: 100,
            idempotency_keys: vec![("c".into(), "k".into())],
            sweep_limit: Some(64),
            limits: Limits::default(),
        };
        let holds = [
            hold("h_live", 1, HoldStatus::Live, 600),
            hold("h_over", 2, HoldStatus::Live, 50),
            hold("h_due", 3, HoldStatus::Live, 10),
        ];
        let (asked, state) = run_reads(&keys, &extras, Locking::Rows, &holds, &["h_due"]);
        assert_eq!(
            asked,
            [
                "due 100 64",
                r#"holds ["h_due", "h_live", "h_over"]"#,
                // A confirmation ends its citizen's waiting entry: those are read.
                r#"active entries of [("c_h_live", "first_issuance"), ("c_h_over", "first_issuance")]"#,
                r#"payments ["p"]"#,
                "locked slots [2, 3, 9]",
                "slots [1]",
                r#"records [("c", "k")]"#,
            ]
        );
        assert_eq!(state.due_holds, ["h_due"]);
        assert_eq!(state.holds.len(), 3);
        assert_eq!(
            state.live_hold_by_citizen.len(),
            3,
            "the state is indexed by citizen"
        );
        // Under the database's one lock every slot is read alike.
        let (asked, _) = run_reads(&keys, &extras, Locking::Database, &holds, &["h_due"]);
        assert_eq!(asked[4], "locked slots [1, 2, 3, 9]");
        assert_eq!(asked[5], r#"records [("c", "k")]"#);
    }

    /// Entries named by id are locked only after the holds (a leave locks its offer's hold
    /// before its entry, as an expiry of that offer does): on PostgreSQL they are read first
    /// without a lock, then again under one; on SQLite once.
    #[test]
    fn entries_are_locked_after_the_holds() {
        let mut keys = BatchKeys {
            entries: vec!["w".into()],
            holds: vec!["offer_1".into()],
            ..BatchKeys::default()
        };
        keys.normalise();
        let extras = BatchExtras {
            now: 0,
            idempotency_keys: Vec::new(),
            sweep_limit: None,
            limits: Limits::default(),
        };
        let (asked, _) = run_reads(&keys, &extras, Locking::Rows, &[], &[]);
        assert_eq!(
            asked,
            [
                r#"entries ["w"]"#,
                r#"holds ["offer_1"]"#,
                r#"locked entries ["w"]"#
            ]
        );
        let (asked, _) = run_reads(&keys, &extras, Locking::Database, &[], &[]);
        assert_eq!(asked, [r#"entries ["w"]"#, r#"holds ["offer_1"]"#]);
    }

    #[test]
    fn a_cancellation_reads_its_citizens_own_cancellations_in_the_window() {
        let mut keys = BatchKeys {
            appointments: vec!["T1".into()],
            cancelling: vec!["c".into(), "c".into()],
            ..BatchKeys::default()
        };
        keys.normalise();
        let limits = Limits {
            max_cancellations: 5,
            cancellation_window_days: 10,
            ..Limits::default()
        };
        let extras = BatchExtras {
            now: 20 * 86_400,
            idempotency_keys: Vec::new(),
            sweep_limit: None,
            limits,
        };
        let (asked, state) = run_reads(&keys, &extras, Locking::Rows, &[], &[]);
        assert_eq!(
            asked,
            [
                r#"appointments ["T1"]"#.to_string(),
                format!(r#"cancellations of ["c"] after {}"#, 10 * 86_400),
            ]
        );
        assert_eq!(state.recent_cancellations["c"], 2);
        assert_eq!(
            state.limits, limits,
            "the batch is decided under the writer's caps"
        );
    }

    #[test]
    fn a_slot_both_locked_and_unlocked_is_read_once_locked() {
        let mut keys = BatchKeys {
            slots: vec![1],
            confirmed_holds: vec!["h".into()],
            ..BatchKeys::default()
        };
        keys.normalise();
        let extras = BatchExtras {
            now: 0,
            idempotency_keys: Vec::new(),
            sweep_limit: None,
            limits: Limits::default(),
        };
        let (asked, _) = run_reads(
            &keys,
            &extras,
            Locking::Rows,
            &[hold("h", 1, HoldStatus::Live, 600)],
            &[],
        );
        assert_eq!(
            asked,
            [
                r#"holds ["h"]"#,
                r#"active entries of [("c_h", "first_issuance")]"#,
                "locked slots [1]"
            ]
        );
    }

    /// Runs a plan against `holds` and the slots they name (office `021-0001`, starting at
    /// `start_at`), answering every other read with nothing: the reads it asked for.
    fn reads_with_slots(keys: &BatchKeys, holds: &[HoldRow], start_at: i64) -> Vec<String> {
        let extras = BatchExtras {
            now: 100,
            idempotency_keys: Vec::new(),
            sweep_limit: None,
            limits: Limits::default(),
        };
        let mut plan = ReadPlan::new(keys, &extras, Locking::Database);
        let mut asked = Vec::new();
        while let Some(read) = plan.next() {
            match read {
                ReadStep::Holds(ids) => {
                    for h in holds.iter().filter(|h| ids.contains(&h.id)) {
                        plan.hold(h.clone());
                    }
                    asked.push(format!("holds {ids:?}"));
                }
                ReadStep::LockedSlots(ids) | ReadStep::Slots(ids) => {
                    for &id in &ids {
                        plan.slot(SlotRow {
                            id,
                            office_id: "021-0001".into(),
                            start_at,
                            duration_minutes: 15,
                            capacity: 2,
                            taken: 1,
                            opens_at: None,
                            opens_for: None,
                        });
                    }
                    asked.push(format!("slots {ids:?}"));
                }
                ReadStep::Waiters { offices, .. } => asked.push(format!("waiters {offices:?}")),
                ReadStep::OfferEntries(ids) => asked.push(format!("offer entries {ids:?}")),
                _ => {}
            }
        }
        asked
    }

    #[test]
    fn waiters_are_read_only_where_a_seat_may_be_freed() {
        // A confirmation keeps its hold's seat: no waiters are read (the booking hot path).
        let mut keys = BatchKeys {
            confirmed_holds: vec!["h".into()],
            ..BatchKeys::default()
        };
        keys.normalise();
        let live = [hold("h", 1, HoldStatus::Live, 600)];
        assert_eq!(
            reads_with_slots(&keys, &live, 10_000),
            [r#"holds ["h"]"#, "slots [1]"]
        );
        // A release may free it: the waiters of its slot's office are read, unless the slot
        // has started.
        let mut keys = BatchKeys {
            holds: vec!["h".into()],
            ..BatchKeys::default()
        };
        keys.normalise();
        assert_eq!(
            reads_with_slots(&keys, &live, 10_000),
            [r#"holds ["h"]"#, "slots [1]", r#"waiters ["021-0001"]"#]
        );
        assert_eq!(
            reads_with_slots(&keys, &live, 50),
            [r#"holds ["h"]"#, "slots [1]"]
        );
        // A waitlist offer's hold brings its entry.
        let mut keys = BatchKeys {
            holds: vec!["offer_1".into()],
            ..BatchKeys::default()
        };
        keys.normalise();
        let offer = [hold("offer_1", 1, HoldStatus::Live, 600)];
        assert_eq!(
            reads_with_slots(&keys, &offer, 10_000),
            [
                r#"holds ["offer_1"]"#,
                r#"offer entries ["offer_1"]"#,
                "slots [1]",
                r#"waiters ["021-0001"]"#
            ]
        );
    }
}
