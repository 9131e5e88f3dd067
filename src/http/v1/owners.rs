//! Who owns each application, kept in memory: every hold, booking, payment and waitlist entry
//! names an application, and the request may act on it only for the applicant who filed it.
//! An application never changes once written (no statement updates or deletes one), so a
//! kept owner is never stale, in this process or beside others sharing a PostgreSQL database;
//! what this process does not know it reads from the store. On a surge the read was a third of
//! a hold's own work: a reader's page cache starts again after every commit of the writer, so
//! each lookup paid for its pages afresh (`scenarios/loadtest/README.md`, issue 25).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::ServiceCode;

/// Owners kept per generation. Two generations are kept, so at most twice this many (each a
/// few dozen bytes and an id): a surge's applications act within minutes of being filed, and
/// the older ones are read from the store again.
const OWNERS_PER_GENERATION: usize = 65_536;

/// An application's owner and service: what a request on it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub national_code: Box<str>,
    pub service: ServiceCode,
}

/// Owners by application id, in two generations: a lookup that finds an owner in the older
/// one moves it to the newer, and when the newer is full the older is dropped (a bound, and
/// an approximation of least recently used that costs no bookkeeping per hit).
#[derive(Default)]
pub struct Owners {
    generations: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    newer: HashMap<Arc<str>, Owner>,
    older: HashMap<Arc<str>, Owner>,
}

impl Generations {
    fn put(&mut self, id: Arc<str>, owner: Owner) {
        if self.newer.len() >= OWNERS_PER_GENERATION {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(id, owner);
    }
}

impl Owners {
    /// The kept owner of application `id`, if this process knows it.
    pub fn get(&self, id: &str) -> Option<Owner> {
        let mut kept = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(owner) = kept.newer.get(id) {
            return Some(owner.clone());
        }
        let (id, owner) = kept.older.remove_entry(id)?;
        kept.put(id, owner.clone());
        Some(owner)
    }

    /// Keeps the owner of application `id` (written, or read from the store).
    pub fn put(&self, id: &str, owner: Owner) {
        let mut kept = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        kept.put(id.into(), owner);
    }

    /// Owners kept now (both generations).
    #[cfg(test)]
    fn len(&self) -> usize {
        let kept = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        kept.newer.len() + kept.older.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(code: &str) -> Owner {
        Owner {
            national_code: code.into(),
            service: ServiceCode::FirstIssuance,
        }
    }

    #[test]
    fn kept_owners_are_bounded_and_recently_used_ones_stay() {
        let owners = Owners::default();
        owners.put("app_hot", owner("0012345679"));
        for i in 0..OWNERS_PER_GENERATION {
            owners.put(&format!("app_{i}"), owner("0000000000"));
            if i % 1_000 == 0 {
                // Used all along: moved to the newer generation whenever it ages.
                assert_eq!(owners.get("app_hot"), Some(owner("0012345679")));
            }
        }
        for i in OWNERS_PER_GENERATION..3 * OWNERS_PER_GENERATION {
            owners.put(&format!("app_{i}"), owner("0000000000"));
            if i % 1_000 == 0 {
                assert!(owners.get("app_hot").is_some(), "dropped at {i}");
            }
        }
        assert!(owners.len() <= 2 * OWNERS_PER_GENERATION);
        // Not used since two generations filled: read from the store again.
        assert_eq!(owners.get("app_1"), None);
        assert_eq!(owners.get("no_such_app"), None);
    }
}
