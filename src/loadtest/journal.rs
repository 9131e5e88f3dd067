//! What the server told the generator, kept for the audit: every booking it acknowledged
//! (with the tracking code, slot and later changes), and per kind of write how many requests
//! were acknowledged, refused, or ended without a definite answer (a timeout, a 5xx, a killed
//! server). An unknown outcome may or may not have been applied, so the audit allows for it.

use std::collections::BTreeMap;

use serde::Serialize;

/// Whether something the generator asked for happened, as far as the server said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Knowledge {
    No,
    Yes,
    /// Asked, but no definite answer came back.
    Unknown,
}

/// A confirmation answered 2xx.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AckedAppointment {
    pub tracking_code: String,
    pub national_code: String,
    pub office_id: String,
    pub start_unix: i64,
    pub cancelled: Knowledge,
    /// Where a 2xx reschedule moved it.
    pub rescheduled_to: Option<(String, i64)>,
    /// A reschedule was sent but its answer never came.
    pub reschedule_unknown: bool,
}

/// Final outcomes of one kind of write request (after retries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    pub acked: u64,
    pub refused: u64,
    pub unknown: u64,
}

impl Outcomes {
    pub fn add(&mut self, k: Knowledge) {
        match k {
            Knowledge::Yes => self.acked += 1,
            Knowledge::No => self.refused += 1,
            Knowledge::Unknown => self.unknown += 1,
        }
    }
}

/// What the server said of one citizen's ballot entry, after the last definite answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AckedEntry {
    /// `Yes`: the last change answered 2xx was an entry (under `entry_key`); `No`: a
    /// withdrawal answered 204 after it; `Unknown`: a change got no definite answer after the
    /// last definite one (it may or may not be stored).
    pub entered: Knowledge,
    pub entry_key: Option<String>,
    /// A bot identity's entry.
    pub bot: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Journal {
    pub appointments: BTreeMap<String, AckedAppointment>,
    pub holds: Outcomes,
    pub confirms: Outcomes,
    pub releases: Outcomes,
    pub cancels: Outcomes,
    pub reschedules: Outcomes,
    /// The latest expiry of any hold the server granted (Unix seconds), so the run can wait
    /// for it before the audit and the expiry check has something to check.
    pub latest_hold_expiry_unix: Option<i64>,
    /// A ballot day: each citizen's entry as the server acknowledged it, by national code.
    pub entries: BTreeMap<String, AckedEntry>,
    pub entry_puts: Outcomes,
    pub withdrawals: Outcomes,
}

impl Journal {
    pub fn booked(&mut self, a: AckedAppointment) {
        self.appointments.insert(a.tracking_code.clone(), a);
    }

    pub fn cancelled(&mut self, tracking_code: &str, k: Knowledge) {
        self.cancels.add(k);
        if let Some(a) = self.appointments.get_mut(tracking_code) {
            a.cancelled = match (a.cancelled, k) {
                (Knowledge::Yes, _) | (_, Knowledge::Yes) => Knowledge::Yes,
                (Knowledge::Unknown, _) | (_, Knowledge::Unknown) => Knowledge::Unknown,
                _ => Knowledge::No,
            };
        }
    }

    /// An entry or a change of it (`PUT`), answered as `k` (with the stored entry's key).
    pub fn entered(&mut self, national_code: &str, k: Knowledge, key: Option<String>, bot: bool) {
        self.entry_puts.add(k);
        self.entry_change(national_code, k, Knowledge::Yes, key, bot);
    }

    /// A withdrawal, answered as `k`.
    pub fn withdrew(&mut self, national_code: &str, k: Knowledge) {
        self.withdrawals.add(k);
        self.entry_change(national_code, k, Knowledge::No, None, false);
    }

    fn entry_change(
        &mut self,
        national_code: &str,
        k: Knowledge,
        made: Knowledge,
        key: Option<String>,
        bot: bool,
    ) {
        let e = self
            .entries
            .entry(national_code.to_string())
            .or_insert(AckedEntry {
                entered: Knowledge::No,
                entry_key: None,
                bot,
            });
        match k {
            Knowledge::Yes => {
                e.entered = made;
                if key.is_some() {
                    e.entry_key = key;
                }
            }
            // Bots share identities and fire at once: an entry some shot got acknowledged
            // stays (bots never withdraw); anyone else's unanswered change leaves it open.
            Knowledge::Unknown if !(bot && e.entered == Knowledge::Yes) => {
                e.entered = Knowledge::Unknown
            }
            _ => {}
        }
    }

    pub fn rescheduled(&mut self, tracking_code: &str, k: Knowledge, to: Option<(String, i64)>) {
        self.reschedules.add(k);
        if let Some(a) = self.appointments.get_mut(tracking_code) {
            match k {
                Knowledge::Yes => a.rescheduled_to = to,
                Knowledge::Unknown => a.reschedule_unknown = true,
                Knowledge::No => {}
            }
        }
    }
}
