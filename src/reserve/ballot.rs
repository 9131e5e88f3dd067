//! The ballots' running part: opening a ballot (its slots withheld from first-come booking),
//! and its close at `closes_at`, exactly once across processes and restartable (see
//! `store::ballots`): read the entries and the withheld seats, run the pure
//! `planning::ballot::close`, and publish every effect in one transaction.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveTime};

use super::Reservations;
use crate::domain::time::iran_local;
use crate::domain::GeoPoint;
use crate::planning::ballot::{
    close, results, BallotInput, BallotOffice, BallotSeed, BallotTerms, CloseOutcome, Entry,
    Preferences, WithheldSeats,
};
use crate::store::{
    BallotRow, CloseEntryRow, ClosePublish, EntryOutcome, EntryRow, PlacedOutcome, PublishTimes,
    SmsTemplate, StoreError, UnplacedOutcome, WithheldSlot, BALLOT_WITHHELD_UNTIL,
};

/// Why an entry took no part in the close: its citizen already had an active appointment
/// for the service (one per citizen and service).
pub const REASON_ALREADY_BOOKED: &str = "already_booked";

/// How long a close's phases took (the bench prints them; the log has the counts).
#[derive(Debug, Clone, PartialEq)]
pub struct CloseReport {
    /// Entries that took part, and those placed.
    pub entries: usize,
    pub placed: usize,
    /// Reading the entries, the seats and the offices, and building the pure input.
    pub read: Duration,
    /// The read's parts: the entries (streamed and parsed, sorted by key), the withheld
    /// slots, the input built (offices read, the slots indexed by office, day and start).
    pub read_steps: Vec<(&'static str, Duration)>,
    /// The pure close: allocate and seat.
    pub decided: Duration,
    /// The rows to write: tracking codes, SMS texts, the results' figures.
    pub prepared: Duration,
    /// The writes of the one transaction, and its commit.
    pub publish: PublishTimes,
}

/// What a listing shows of a slot withheld by a ballot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BallotMark {
    pub ballot_id: String,
    pub office_ids: Vec<String>,
    pub from_unix: i64,
    pub to_unix: i64,
    pub closes_at: i64,
}

impl BallotMark {
    pub fn of(b: &BallotRow) -> Self {
        Self {
            ballot_id: b.id.clone(),
            office_ids: b.office_ids.clone(),
            from_unix: b.from_unix,
            to_unix: b.to_unix,
            closes_at: b.closes_at,
        }
    }

    fn covers(&self, office_id: &str, start_at: i64) -> bool {
        (self.from_unix..self.to_unix).contains(&start_at)
            && (self.office_ids.is_empty() || self.office_ids.iter().any(|o| o == office_id))
    }
}

/// The Iran local date and time of a slot start.
fn local(start_at: i64) -> (NaiveDate, NaiveTime) {
    let t = iran_local(DateTime::from_timestamp(start_at, 0).unwrap_or_default());
    (t.date(), t.time())
}

/// The SMS of a seat won in a ballot: [`ballot_sms_head`], the office, [`SMS_BEFORE_CODE`],
/// the tracking code, [`SMS_END`] (the close assembles the same in SQL from these parts).
pub fn ballot_sms(start_at: i64, office_id: &str, tracking_code: &str) -> String {
    format!(
        "{}{office_id}{SMS_BEFORE_CODE}{tracking_code}{SMS_END}",
        ballot_sms_head(start_at)
    )
}

/// The SMS's text before the office id: it depends on the slot's start only.
pub fn ballot_sms_head(start_at: i64) -> String {
    format!(
        "نتیجهٔ قرعه‌کشی نوبت کارت ملی: برای شما نوبت گرفته شد، {} در دفتر ",
        crate::booking::persian_when(start_at)
    )
}

/// The SMS's text between the office id and the tracking code.
pub const SMS_BEFORE_CODE: &str = "، کد رهگیری ";
/// The SMS's end, after the tracking code.
pub const SMS_END: &str = ".";

/// The withheld slots by (office, date, start), for seating the pure close's placements;
/// offices interned (a national ballot has 1.5 M slots of 2,200 offices).
#[derive(Default)]
pub struct SlotIndex {
    office: HashMap<String, u32>,
    slot: HashMap<(u32, NaiveDate, NaiveTime), (i64, i64)>,
}

impl SlotIndex {
    fn insert(&mut self, s: &WithheldSlot, date: NaiveDate, start: NaiveTime) {
        let office = match self.office.get(&s.office_id) {
            Some(&office) => office,
            None => {
                let next = self.office.len() as u32;
                self.office.insert(s.office_id.clone(), next);
                next
            }
        };
        self.slot
            .insert((office, date, start), (s.slot_id, s.start_at));
    }

    /// (slot id, start) of the slot of `office_id` at `date` `start`.
    fn get(&self, office_id: &str, date: NaiveDate, start: NaiveTime) -> Option<(i64, i64)> {
        let office = *self.office.get(office_id)?;
        self.slot.get(&(office, date, start)).copied()
    }
}

/// A ballot's close input, rebuilt from what is stored (the export rebuilds the same).
pub struct StoredInput {
    pub input: BallotInput,
    pub slot_of: SlotIndex,
}

/// The pure close's entry of a stored one.
fn entry_of(
    key: String,
    home_lat: f64,
    home_lon: f64,
    province: Option<String>,
    priority: i32,
    preferences_json: &str,
) -> Result<Entry, StoreError> {
    let preferences: Preferences = serde_json::from_str(preferences_json)
        .map_err(|err| StoreError::corrupt(format!("ballot preferences: {err}")))?;
    Ok(Entry {
        key,
        home: GeoPoint {
            lat: home_lat,
            lon: home_lon,
        },
        province,
        priority,
        preferences,
    })
}

/// The input of a close from the stored ballot, the entries taking part, the withheld seats
/// and the offices.
pub fn stored_input(
    b: &BallotRow,
    entries: Vec<Entry>,
    slots: &[WithheldSlot],
    offices: Vec<BallotOffice>,
) -> Result<StoredInput, StoreError> {
    let terms: BallotTerms = serde_json::from_str(&b.terms_json)
        .map_err(|e| StoreError::corrupt(format!("ballot terms: {e}")))?;
    let mut slot_of = SlotIndex::default();
    let mut seats = Vec::with_capacity(slots.len());
    let used: HashSet<&str> = slots.iter().map(|s| s.office_id.as_str()).collect();
    // Slot starts repeat across offices (a few hundred in a 30-day ballot of 1.5 M slots):
    // each is converted to Iran's local date and time once.
    let mut local_of: HashMap<i64, (NaiveDate, NaiveTime)> = HashMap::new();
    for s in slots {
        let (date, start) = *local_of
            .entry(s.start_at)
            .or_insert_with(|| local(s.start_at));
        if terms.day_of(date).is_none() || s.seats <= 0 {
            continue;
        }
        seats.push(WithheldSeats {
            office_id: s.office_id.clone(),
            date,
            start,
            seats: s.seats as u32,
        });
        slot_of.insert(s, date, start);
    }
    let offices = offices
        .into_iter()
        .filter(|o| used.contains(o.id.as_str()))
        .collect();
    Ok(StoredInput {
        input: BallotInput {
            terms,
            offices,
            seats,
            entries,
        },
        slot_of,
    })
}

/// The entries of a close as read: those taking part, by key, with their rows (same order),
/// and the outcomes of those left out (their citizen is booked already).
struct CloseEntries {
    entries: Vec<Entry>,
    rows: Vec<i64>,
    left_out: Vec<UnplacedOutcome>,
}

/// Where a close's outcomes go: the entries (by key) with their rows, and the slots.
struct OutcomeRows<'a> {
    entries: &'a [Entry],
    rows: &'a [i64],
    slot_of: &'a SlotIndex,
}

impl OutcomeRows<'_> {
    fn row_of(&self, key: &str) -> Option<i64> {
        let i = self
            .entries
            .binary_search_by(|e| e.key.as_str().cmp(key))
            .ok()?;
        self.rows.get(i).copied()
    }
}

impl Reservations {
    /// The ballot whose withheld seats include this slot (listings show its close time).
    pub fn ballot_of_slot(&self, office_id: &str, start_at: i64) -> Option<BallotMark> {
        self.ballots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|m| m.covers(office_id, start_at))
            .cloned()
    }

    pub(super) async fn reload_ballots(&self) -> Result<(), StoreError> {
        let marks = self
            .store
            .unpublished_ballots()
            .await?
            .iter()
            .map(BallotMark::of)
            .collect();
        *self.ballots.write().unwrap_or_else(|p| p.into_inner()) = marks;
        Ok(())
    }

    /// One pass: opens the ballots due to open, closes those due to close (taking the lease
    /// as `owner`). Returns the ids published by this pass.
    pub async fn ballot_tick(&self, owner: &str) -> Result<Vec<String>, StoreError> {
        let now = self.clock.now().timestamp();
        let mut changed = false;
        let mut published = Vec::new();
        for b in self.store.unpublished_ballots().await? {
            if b.status == "scheduled" && b.opens_at <= now {
                changed |= self.store.open_ballot(&b, now).await?;
            }
            if b.closes_at <= now && self.store.claim_ballot_close(&b.id, owner, now).await? {
                if self.close_ballot(&b, owner, now).await?.is_some() {
                    published.push(b.id.clone());
                }
                changed = true;
            }
        }
        if changed {
            self.refresh().await?;
        }
        if !published.is_empty() {
            self.hand_over_leftovers().await;
        }
        Ok(published)
    }

    /// Hands the leftover seats a close kept for the waiters (seat releases due at once) to
    /// them now, rather than over the sweeper's next passes (each ends at most `sweep_limit`);
    /// the sweeper finishes whatever this leaves.
    async fn hand_over_leftovers(&self) {
        // Bounded: a pass that ends nothing stops it, and no close keeps more seats than this.
        const MAX_PASSES: usize = 10_000;
        for _ in 0..MAX_PASSES {
            match self.sweep_releases().await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(
                        error = &e as &dyn std::error::Error,
                        "handing a ballot's leftovers to the waitlist stopped; the sweeper goes on"
                    );
                    break;
                }
            }
        }
    }

    /// Closes a ballot whose lease `owner` holds (`Store::claim_ballot_close`): `Some` with
    /// the phases' times when this call published it, `None` when another process did.
    pub async fn close_ballot(
        &self,
        b: &BallotRow,
        owner: &str,
        now: i64,
    ) -> Result<Option<CloseReport>, StoreError> {
        let started = Instant::now();
        let read = self.close_entries(b).await?;
        let entries_read = started.elapsed();
        let slots = self.store.withheld_slots(&b.id).await?;
        let slots_read = started.elapsed();
        let offices = self
            .store
            .offices()
            .await?
            .into_iter()
            .map(|o| BallotOffice {
                id: o.id.to_string(),
                location: o.location,
                province: Some(o.province.clone()),
            })
            .collect();
        let stored = stored_input(b, read.entries, &slots, offices)?;
        let seed = BallotSeed::from_hex(&b.seed_hex)
            .map_err(|_| StoreError::corrupt("ballot seed is not 64 hex digits"))?;
        let read_time = started.elapsed();
        let read_steps = vec![
            ("entries", entries_read),
            ("slots", slots_read - entries_read),
            ("input", read_time - slots_read),
        ];
        // The write starts with what the close does not change (the seats it read), beside
        // the allocator; an error there is the publish's.
        let slots = Arc::new(slots);
        let begun = self.store.begin_ballot_publish(&b.id, slots.clone());
        let started = Instant::now();
        let input = Arc::new(stored.input);
        let run = input.clone();
        let outcome = tokio::task::spawn_blocking(move || close(&run, &seed))
            .await
            .map_err(|e| StoreError::corrupt(format!("ballot close panicked: {e}")))?
            .map_err(|e| StoreError::corrupt(format!("ballot close: {e}")))?;
        let decided = started.elapsed();
        let started = Instant::now();
        let results_json =
            serde_json::to_string(&results(&input, &outcome)).expect("results serialise");
        let offices_json = serde_json::to_string(&input.offices).expect("offices serialise");
        let rows = OutcomeRows {
            entries: &input.entries,
            rows: &read.rows,
            slot_of: &stored.slot_of,
        };
        let (placed, mut unplaced, sms) = self.close_rows(&rows, outcome)?;
        unplaced.extend(read.left_out);
        let report = CloseReport {
            entries: input.entries.len(),
            placed: placed.len(),
            read: read_time,
            read_steps,
            decided,
            prepared: started.elapsed(),
            publish: PublishTimes::default(),
        };
        // What the write does not need goes before it (a million entries are most of the
        // close's memory).
        drop((read.rows, stored.slot_of, input));
        let publish = ClosePublish {
            seats: slots,
            placed,
            unplaced,
            sms,
            offices_json,
            results_json,
        };
        let Some(publish) = self
            .store
            .publish_ballot(b, owner, begun, publish, now)
            .await?
        else {
            return Ok(None);
        };
        tracing::info!(
            ballot = %b.id,
            entries = report.entries,
            placed = report.placed,
            "ballot published"
        );
        Ok(Some(CloseReport { publish, ..report }))
    }

    /// The entries of a close, streamed from the store and parsed as they come: only the
    /// pure close's fields and each row's place are kept.
    async fn close_entries(&self, b: &BallotRow) -> Result<CloseEntries, StoreError> {
        let booked: HashSet<String> = self.store.booked_entry_keys(b).await?.into_iter().collect();
        let mut read: Vec<(Entry, i64)> = Vec::new();
        let mut left_out = Vec::new();
        self.store
            .for_each_close_entry(&b.id, |e: CloseEntryRow| {
                if booked.contains(&e.entry_key) {
                    left_out.push(UnplacedOutcome {
                        row: e.row,
                        entry_key: e.entry_key,
                        reason: REASON_ALREADY_BOOKED,
                        waitlist_rank: None,
                    });
                } else {
                    let entry = entry_of(
                        e.entry_key,
                        e.home_lat,
                        e.home_lon,
                        e.province,
                        e.priority,
                        &e.preferences_json,
                    )?;
                    read.push((entry, e.row));
                }
                Ok(())
            })
            .await?;
        // By key, as the pure close orders them: a placement finds its row by binary search.
        read.sort_unstable_by(|a, b| a.0.key.cmp(&b.0.key));
        let rows = read.iter().map(|e| e.1).collect();
        let entries = read.into_iter().map(|e| e.0).collect();
        Ok(CloseEntries {
            entries,
            rows,
            left_out,
        })
    }

    /// The rows a close writes from the pure outcome: each placement's outcome (tracking code,
    /// slot), each other entry's reason and waitlist rank, and the SMS template's heads (one
    /// per slot start placed).
    fn close_rows(
        &self,
        at: &OutcomeRows<'_>,
        outcome: CloseOutcome,
    ) -> Result<(Vec<PlacedOutcome>, Vec<UnplacedOutcome>, SmsTemplate), StoreError> {
        let mut heads = BTreeMap::new();
        let mut placed = Vec::with_capacity(outcome.placements.len());
        for p in outcome.placements {
            let (Some(row), Some((slot_id, start_at))) = (
                at.row_of(&p.key),
                at.slot_of.get(&p.office_id, p.date, p.start),
            ) else {
                return Err(StoreError::corrupt("a placement names no entry or slot"));
            };
            heads
                .entry(start_at)
                .or_insert_with(|| ballot_sms_head(start_at));
            placed.push(PlacedOutcome {
                row,
                entry_key: p.key,
                tracking_code: self.ids.tracking_code(),
                slot_id,
                office_id: p.office_id,
                start_at,
                distance_km: p.distance_km,
                cost_m: p.cost_m,
                part_of_day_kept: p.part_of_day_kept,
            });
        }
        let mut unplaced = Vec::with_capacity(outcome.unplaced.len());
        for u in outcome.unplaced {
            let row = at
                .row_of(&u.key)
                .ok_or_else(|| StoreError::corrupt("an unplaced entry names no entry"))?;
            unplaced.push(UnplacedOutcome {
                row,
                entry_key: u.key,
                reason: u.reason.as_str(),
                waitlist_rank: Some(u.waitlist_rank as i32),
            });
        }
        let sms = SmsTemplate {
            heads: heads.into_iter().collect(),
            before_code: SMS_BEFORE_CODE,
            end: SMS_END,
        };
        Ok((placed, unplaced, sms))
    }

    /// Runs [`Self::ballot_tick`] every `interval` until the engine stops.
    pub fn spawn_ballot_task(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        let owner = self.ids.opaque("node");
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = engine.ballot_tick(&owner).await {
                    tracing::warn!(
                        error = &e as &dyn std::error::Error,
                        "ballot pass failed; will retry"
                    );
                }
                if engine.queues.iter().all(|q| q.is_closed()) {
                    break;
                }
            }
        })
    }
}

/// Whether a slot's `opens_at` is a ballot's withholding.
pub fn withheld(opens_at: Option<i64>) -> bool {
    opens_at == Some(BALLOT_WITHHELD_UNTIL)
}

/// One stored entry into the record: its input (unless it took no part: its citizen was
/// booked already) and its published outcome.
fn export_entry(
    e: EntryRow,
    entries: &mut Vec<Entry>,
    placements: &mut Vec<crate::planning::ballot::Placement>,
    unplaced: &mut Vec<crate::planning::ballot::Unplaced>,
) -> Result<(), StoreError> {
    use crate::planning::ballot::{Placement, Unplaced, UnplacedReason};
    match e.outcome {
        Some(EntryOutcome::Placed {
            office_id,
            start_at,
            distance_km,
            cost_m,
            part_of_day_kept,
            ..
        }) => {
            let (date, start) = local(start_at);
            placements.push(Placement {
                key: e.entry_key.clone(),
                office_id,
                date,
                start,
                distance_km,
                cost_m,
                part_of_day_kept,
            });
        }
        Some(EntryOutcome::Unplaced { reason, .. }) if reason == REASON_ALREADY_BOOKED => {
            return Ok(());
        }
        Some(EntryOutcome::Unplaced {
            reason,
            waitlist_rank,
        }) => {
            let reason =
                serde_json::from_value::<UnplacedReason>(serde_json::Value::String(reason))
                    .map_err(|e| StoreError::corrupt(format!("ballot reason: {e}")))?;
            unplaced.push(Unplaced {
                key: e.entry_key.clone(),
                reason,
                waitlist_rank: waitlist_rank.unwrap_or_default().max(0) as u32,
            });
        }
        None => return Err(StoreError::corrupt("a published entry without an outcome")),
    }
    entries.push(entry_of(
        e.entry_key,
        e.home_lat,
        e.home_lon,
        e.province,
        e.priority,
        &e.preferences_json,
    )?);
    Ok(())
}

/// The audit record of a published ballot, from the database (`None`: no such ballot, or not
/// published): the anonymised input the close decided from (entries under their salted keys,
/// the seats withheld at the close, the offices), the revealed seed and the assignment.
pub async fn export_record(
    store: &crate::store::Store,
    id: &str,
) -> Result<Option<crate::planning::ballot::BallotRecord>, StoreError> {
    use crate::planning::ballot::{BallotRecord, RECORD_FORMAT};
    let Some(b) = store.ballot(id).await? else {
        return Ok(None);
    };
    let Some(offices_json) = b
        .offices_json
        .as_deref()
        .filter(|_| b.status == "published")
    else {
        return Ok(None);
    };
    let offices: Vec<BallotOffice> = serde_json::from_str(offices_json)
        .map_err(|e| StoreError::corrupt(format!("ballot offices: {e}")))?;
    let seats = store.ballot_seats(id).await?;
    let mut input_entries = Vec::new();
    let mut placements = Vec::new();
    let mut unplaced = Vec::new();
    store
        .for_each_entry(id, |e| {
            export_entry(e, &mut input_entries, &mut placements, &mut unplaced)
        })
        .await?;
    input_entries.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    placements.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    let stored = stored_input(&b, input_entries, &seats, offices)?;
    unplaced.sort_by_key(|u| u.waitlist_rank);
    Ok(Some(BallotRecord {
        format: RECORD_FORMAT,
        ballot_id: b.id.clone(),
        commitment: b.commitment.clone(),
        seed: b.seed_hex.clone(),
        input: stored.input,
        placements,
        unplaced,
    }))
}
