//! What a batch reads (and, on PostgreSQL, locks) before deciding.

/// Everything a batch needs read (and locked) before deciding.
#[derive(Debug, Default, Clone)]
pub struct BatchKeys {
    pub slots: Vec<i64>,
    pub holds: Vec<String>,
    /// Holds a request confirms. They are read like `holds`; but a live, unexpired hold's seat
    /// moves to its appointment and `taken` does not change, so its slot needs no lock (on
    /// PostgreSQL, where a lock held by one writer makes the other wait).
    pub confirmed_holds: Vec<String>,
    pub appointments: Vec<String>,
    pub payments: Vec<String>,
    /// Applications new holds are for.
    pub applications: Vec<String>,
    /// (national code, service) pairs whose live hold and active appointment matter.
    pub citizens: Vec<(String, String)>,
    /// Citizens whose active appointments matter for any service (a confirmation, a pickup
    /// booking; after `normalise` also those of `citizens`).
    pub citizen_codes: Vec<String>,
    /// Citizens whose live hold matters too (filled by `normalise` from `citizens`): a
    /// confirmation names its hold, so only a new hold or booking reads the citizen's others.
    pub hold_codes: Vec<String>,
    /// Waitlist entries by id.
    pub entries: Vec<String>,
    /// (national code, service) pairs whose active waitlist entry matters (a join).
    pub entry_citizens: Vec<(String, String)>,
    /// Seat releases by id.
    pub releases: Vec<i64>,
    /// Slots whose capacity a request may raise: new seats go to the waiters first, so the
    /// waiters of their offices are read (as where a seat may be freed).
    pub capacity_slots: Vec<i64>,
    /// Citizens who cancel: their own cancellations within the window matter
    /// (`Limits::max_cancellations`).
    pub cancelling: Vec<String>,
}

impl BatchKeys {
    /// Sorted and deduplicated, so that locks are always taken in one global order.
    pub fn normalise(&mut self) {
        fn tidy<T: Ord>(v: &mut Vec<T>) {
            v.sort();
            v.dedup();
        }
        tidy(&mut self.slots);
        tidy(&mut self.holds);
        tidy(&mut self.confirmed_holds);
        tidy(&mut self.appointments);
        tidy(&mut self.payments);
        tidy(&mut self.applications);
        tidy(&mut self.citizens);
        tidy(&mut self.entries);
        tidy(&mut self.entry_citizens);
        tidy(&mut self.releases);
        tidy(&mut self.capacity_slots);
        tidy(&mut self.cancelling);
        for (code, _) in &self.citizens {
            self.citizen_codes.push(code.clone());
            self.hold_codes.push(code.clone());
        }
        tidy(&mut self.citizen_codes);
        tidy(&mut self.hold_codes);
    }
}
