//! The scenario file as written: serde structures that mirror the TOML one to one. They are
//! turned into the typed [`super::Scenario`] by `super::validate`, which checks the rules serde
//! cannot express and reports each broken rule with its field path.

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::domain::{OfficeKind, ServiceCode};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub seed: u64,
    pub calendar: RawCalendar,
    pub network: RawNetwork,
    pub citizens: RawCitizens,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCalendar {
    pub start_date: IsoDate,
    pub horizon_days: u32,
    #[serde(default)]
    pub holidays: Vec<RawHoliday>,
    pub thursday: Option<RawThursday>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHoliday {
    pub date: IsoDate,
    pub name: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawThursday {
    Closed,
    HalfDay,
    Open,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNetwork {
    #[serde(default)]
    pub offices: Vec<RawOffice>,
    pub generator: Option<RawGenerator>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOffice {
    pub id: String,
    pub name: String,
    pub kind: OfficeKind,
    pub province: String,
    pub city: String,
    pub lat: f64,
    pub lon: f64,
    pub stations: u16,
    pub services: Option<Vec<ServiceCode>>,
    pub thursday: Option<RawThursday>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGenerator {
    pub provinces: ProvinceSelection,
    pub offices_per_million: Option<f64>,
    pub offices_total: Option<u32>,
    /// Fixed office counts for some provinces; the rest of the total goes by population.
    #[serde(default)]
    pub province_offices: BTreeMap<String, u32>,
    pub kind_mix: RawKindMix,
    #[serde(default)]
    pub stations: RawStations,
    pub jitter_km: Option<f64>,
    pub thursday: Option<RawThursday>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKindMix {
    #[serde(default)]
    pub pishkhan: f64,
    #[serde(default)]
    pub civil_registry: f64,
    #[serde(default)]
    pub post: f64,
    #[serde(default)]
    pub mobile_station: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStations {
    pub pishkhan: Option<RawStationRange>,
    pub civil_registry: Option<RawStationRange>,
    pub post: Option<RawStationRange>,
    pub mobile_station: Option<RawStationRange>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStationRange {
    pub min: u16,
    pub max: u16,
    /// Relative weights of min, min+1, …, max; uniform when absent.
    pub weights: Option<Vec<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCitizens {
    pub count: u64,
    pub provinces: Option<ProvinceSelection>,
    pub dispersion_km: Option<f64>,
    pub max_dispersion_km: Option<f64>,
    pub rural_share: Option<f64>,
    pub rural_dispersion_km: Option<f64>,
    pub under_15_share: Option<f64>,
    pub photo_certificate_share: Option<f64>,
    pub female_share: Option<f64>,
    pub foreign_share: Option<f64>,
}

/// `"all"` or a list of province slugs.
#[derive(Debug, Clone)]
pub(crate) enum ProvinceSelection {
    All,
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for ProvinceSelection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SelectionVisitor;
        impl<'de> Visitor<'de> for SelectionVisitor {
            type Value = ProvinceSelection;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"all\" or a list of province slugs")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ProvinceSelection, E> {
                if s == "all" {
                    Ok(ProvinceSelection::All)
                } else {
                    Err(E::custom(format!(
                        "expected \"all\" or a list of province slugs, got {s:?}"
                    )))
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ProvinceSelection, A::Error> {
                let mut slugs = Vec::new();
                while let Some(slug) = seq.next_element::<String>()? {
                    slugs.push(slug);
                }
                Ok(ProvinceSelection::List(slugs))
            }
        }
        deserializer.deserialize_any(SelectionVisitor)
    }
}

/// A Gregorian date written `"2024-04-10"` or as a bare TOML date `2024-04-10`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IsoDate(pub NaiveDate);

impl<'de> Deserialize<'de> for IsoDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DateVisitor;
        impl<'de> Visitor<'de> for DateVisitor {
            type Value = IsoDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ISO date such as \"2024-04-10\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<IsoDate, E> {
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map(IsoDate)
                    .map_err(|e| E::custom(format!("{s:?} is not an ISO date YYYY-MM-DD: {e}")))
            }
            // A bare TOML date reaches serde as a one-entry map holding its text.
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IsoDate, A::Error> {
                match map.next_entry::<String, String>()? {
                    Some((_, text)) => self.visit_str(&text),
                    None => Err(de::Error::custom("expected an ISO date")),
                }
            }
        }
        deserializer.deserialize_any(DateVisitor)
    }
}
