//! Start-up data: the office network of a scenario (first start only) and the rolling window
//! of bookable slots (every start, and daily).

use std::collections::HashMap;
use std::path::Path;

use chrono::{Duration, NaiveDate};

use crate::domain::calendar::HolidayCalendar;
use crate::domain::slots::generate_slots;
use crate::domain::Office;
use crate::planning::scenario::Scenario;
use crate::store::{Store, StoreError};

/// The scenario `nobat serve` uses when none is given, compiled in so that the binary works
/// from any directory with no files beside it.
pub const BUNDLED_SCENARIO: &str = include_str!("../../scenarios/small.toml");

/// Loads the scenario file, or the bundled small one.
pub fn load_scenario(path: Option<&Path>) -> anyhow::Result<Scenario> {
    Ok(match path {
        Some(p) => Scenario::load(p)?,
        None => Scenario::from_toml_str(BUNDLED_SCENARIO, "scenarios/small.toml (bundled)")?,
    })
}

/// Writes the scenario's office network into an empty database. Returns whether it did.
pub async fn seed_if_empty(
    store: &Store,
    scenario: &Scenario,
    now_unix: i64,
) -> Result<bool, StoreError> {
    if store.office_count().await? > 0 {
        return Ok(false);
    }
    store
        .upsert_offices(&scenario.generate_network(), now_unix)
        .await?;
    Ok(true)
}

/// Ensures every office has its slots from `today` through `today + days - 1`. Offices that
/// already have slots get only the days after their last one, so a restart costs little.
/// Returns how many slots were added.
pub async fn materialise_slots(
    store: &Store,
    offices: &[Office],
    holidays: &HolidayCalendar,
    today: NaiveDate,
    days: u32,
) -> Result<u64, StoreError> {
    let last_day = today + Duration::days(i64::from(days.max(1)) - 1);
    let latest: HashMap<String, NaiveDate> = store.latest_slot_dates().await?;
    let mut rows = Vec::new();
    let mut added = 0;
    for office in offices {
        let from = match latest.get(office.id.as_str()) {
            Some(d) if *d >= today => *d + Duration::days(1),
            _ => today,
        };
        if from > last_day {
            continue;
        }
        let slots = generate_slots(office, from, last_day, holidays)
            .map_err(|e| StoreError::corrupt(format!("office {}: {e}", office.id)))?;
        rows.extend(slots.into_iter().map(|s| {
            (
                s.office_id.to_string(),
                s.start.timestamp(),
                i64::from(s.duration_minutes),
                i64::from(s.seats),
            )
        }));
        // Bounded memory for national networks: flush every 50,000 slots.
        if rows.len() >= 50_000 {
            added += store.insert_slots(&rows).await?;
            rows.clear();
        }
    }
    added += store.insert_slots(&rows).await?;
    if added > 0 {
        // New slots in the range of a pending release wave are closed like the others.
        let start_of_today = crate::domain::time::iran_instant(today, chrono::NaiveTime::MIN)
            .map_or(0, |t| t.timestamp());
        store.apply_pending_waves(start_of_today).await?;
        // And those in the range of an open ballot are withheld like the others.
        store.apply_open_ballots().await?;
    }
    Ok(added)
}
