//! Scenario files and the deterministic synthetic office network and civil registry.
