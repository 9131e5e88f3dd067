//! The office directory: every office, in memory, with lookups by id, province and area code
//! and a nearest-first search. Loaded from storage at start; offices change rarely (admin
//! edits reload it).

use std::collections::HashMap;

use crate::domain::{AreaCode, GeoPoint, Office, ServiceCode};

pub struct Directory {
    offices: Vec<Office>,
    by_id: HashMap<String, usize>,
}

impl Directory {
    pub fn new(offices: Vec<Office>) -> Self {
        let by_id = offices
            .iter()
            .enumerate()
            .map(|(i, o)| (o.id.to_string(), i))
            .collect();
        Self { offices, by_id }
    }

    pub fn get(&self, id: &str) -> Option<&Office> {
        self.by_id.get(id).map(|&i| &self.offices[i])
    }

    pub fn all(&self) -> &[Office] {
        &self.offices
    }

    pub fn len(&self) -> usize {
        self.offices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offices.is_empty()
    }

    /// Offices matching the filters; with `near`, sorted nearest first with their distances.
    pub fn search(
        &self,
        area_code: Option<AreaCode>,
        province: Option<&str>,
        near: Option<GeoPoint>,
        service: Option<ServiceCode>,
    ) -> Vec<(&Office, Option<f64>)> {
        let mut found: Vec<(&Office, Option<f64>)> = self
            .offices
            .iter()
            .filter(|o| area_code.is_none_or(|a| o.area_code == a))
            .filter(|o| province.is_none_or(|p| o.province == p))
            .filter(|o| service.is_none_or(|s| o.offers(s)))
            .map(|o| (o, near.map(|p| p.distance_km(o.location))))
            .collect();
        if near.is_some() {
            found.sort_by(|a, b| {
                a.1.unwrap_or(f64::MAX)
                    .total_cmp(&b.1.unwrap_or(f64::MAX))
                    .then_with(|| a.0.id.cmp(&b.0.id))
            });
        }
        found
    }
}
