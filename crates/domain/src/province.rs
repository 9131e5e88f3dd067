//! The 31 provinces, loaded from `data/provinces.csv` (2016 census populations, capitals,
//! landline area codes). The table is data, compiled in so the binary needs no files at run time.

use std::sync::OnceLock;

use super::geo::GeoPoint;
use super::ids::AreaCode;

const PROVINCES_CSV: &str = include_str!("../data/provinces.csv");

#[derive(Debug, Clone, PartialEq)]
pub struct Province {
    /// Stable identifier used in files and URLs, e.g. `sistan-and-baluchestan`.
    pub slug: String,
    pub name_en: String,
    pub name_fa: String,
    pub capital_en: String,
    pub capital_fa: String,
    pub population_2016: u64,
    pub capital: GeoPoint,
    pub area_code: AreaCode,
}

#[derive(serde::Deserialize)]
struct ProvinceRow {
    slug: String,
    name_en: String,
    name_fa: String,
    capital_en: String,
    capital_fa: String,
    population_2016: u64,
    lat: f64,
    lon: f64,
    area_code: String,
}

impl Province {
    /// All provinces, in the order of the data file.
    pub fn all() -> &'static [Province] {
        static ALL: OnceLock<Vec<Province>> = OnceLock::new();
        ALL.get_or_init(|| {
            let mut reader = csv::Reader::from_reader(PROVINCES_CSV.as_bytes());
            reader
                .deserialize::<ProvinceRow>()
                .enumerate()
                .map(|(i, row)| {
                    // The file ships inside the binary; a bad row is a build defect, caught by
                    // the tests below, not a run-time condition.
                    let row =
                        row.unwrap_or_else(|e| panic!("data/provinces.csv row {}: {e}", i + 2));
                    let area: u8 = row
                        .area_code
                        .trim_start_matches('0')
                        .parse()
                        .unwrap_or_else(|e| {
                            panic!("data/provinces.csv row {}: area code: {e}", i + 2)
                        });
                    Province {
                        slug: row.slug,
                        name_en: row.name_en,
                        name_fa: row.name_fa,
                        capital_en: row.capital_en,
                        capital_fa: row.capital_fa,
                        population_2016: row.population_2016,
                        capital: GeoPoint {
                            lat: row.lat,
                            lon: row.lon,
                        },
                        area_code: AreaCode::from_number_unchecked(area),
                    }
                })
                .collect()
        })
    }

    pub fn by_slug(slug: &str) -> Option<&'static Province> {
        Self::all().iter().find(|p| p.slug == slug)
    }

    pub fn by_area_code(code: AreaCode) -> Option<&'static Province> {
        Self::all().iter().find(|p| p.area_code == code)
    }

    /// Looks a province up by slug, English name (any case) or Persian name.
    pub fn find(name: &str) -> Option<&'static Province> {
        let name = name.trim();
        Self::all()
            .iter()
            .find(|p| p.slug == name || p.name_en.eq_ignore_ascii_case(name) || p.name_fa == name)
    }

    pub fn total_population() -> u64 {
        Self::all().iter().map(|p| p.population_2016).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_one_provinces_summing_to_the_census_total() {
        assert_eq!(Province::all().len(), 31);
        assert_eq!(Province::total_population(), 79_926_270);
    }

    #[test]
    fn slugs_and_area_codes_are_unique() {
        let mut slugs: Vec<_> = Province::all().iter().map(|p| &p.slug).collect();
        slugs.sort();
        slugs.dedup();
        assert_eq!(slugs.len(), 31);
        let mut codes: Vec<_> = Province::all().iter().map(|p| p.area_code).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), 31);
    }

    #[test]
    fn lookups() {
        let tehran = Province::by_area_code(AreaCode::parse("021").unwrap()).unwrap();
        assert_eq!(tehran.slug, "tehran");
        assert_eq!(
            Province::find("Sistan and Baluchestan").unwrap().capital_en,
            "Zahedan"
        );
        assert_eq!(Province::find("فارس").unwrap().slug, "fars");
    }
}
