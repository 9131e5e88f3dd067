//! Real towns of each province (`data/towns.csv`): the capital plus a few others, with
//! approximate coordinates and 2016 populations. Offices and synthetic citizens are placed
//! around them. The table is compiled in, like the province table.

use std::sync::OnceLock;

use nobat_domain::{GeoPoint, Province};

const TOWNS_CSV: &str = include_str!("../../data/towns.csv");

#[derive(Debug, Clone, PartialEq)]
pub struct Town {
    pub province: String,
    pub name_en: String,
    pub name_fa: String,
    pub location: GeoPoint,
    pub population_thousands: u32,
}

#[derive(serde::Deserialize)]
struct TownRow {
    province_slug: String,
    town_en: String,
    town_fa: String,
    lat: f64,
    lon: f64,
    population: u32,
}

impl Town {
    /// Every town, in the order of the data file (each province's capital first).
    pub fn all() -> &'static [Town] {
        static ALL: OnceLock<Vec<Town>> = OnceLock::new();
        ALL.get_or_init(|| {
            let mut reader = csv::Reader::from_reader(TOWNS_CSV.as_bytes());
            reader
                .deserialize::<TownRow>()
                .enumerate()
                .map(|(i, row)| {
                    // The file ships inside the binary; a bad row is a build defect caught by
                    // the tests, not a run-time condition.
                    let row = row.unwrap_or_else(|e| panic!("data/towns.csv row {}: {e}", i + 2));
                    let location = GeoPoint::new(row.lat, row.lon)
                        .unwrap_or_else(|e| panic!("data/towns.csv row {}: {e}", i + 2));
                    Town {
                        province: row.province_slug,
                        name_en: row.town_en,
                        name_fa: row.town_fa,
                        location,
                        population_thousands: row.population,
                    }
                })
                .collect()
        })
    }

    /// The towns of one province, capital first; empty for an unknown slug.
    pub fn of_province(slug: &str) -> Vec<&'static Town> {
        Self::all().iter().filter(|t| t.province == slug).collect()
    }

    /// Whether this town is its province's capital.
    pub fn is_capital(&self) -> bool {
        Province::by_slug(&self.province).is_some_and(|p| p.capital_en == self.name_en)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_province_has_its_capital_first_and_two_to_five_more_towns() {
        for p in Province::all() {
            let towns = Town::of_province(&p.slug);
            assert!(
                (3..=6).contains(&towns.len()),
                "{}: {} towns",
                p.slug,
                towns.len()
            );
            assert!(towns[0].is_capital(), "{}: capital first", p.slug);
            assert_eq!(towns[0].name_fa, p.capital_fa, "{}", p.slug);
        }
        for t in Town::all() {
            assert!(Province::by_slug(&t.province).is_some(), "{}", t.province);
            assert!(t.population_thousands > 0, "{}", t.name_en);
        }
    }
}
