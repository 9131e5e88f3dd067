//! The scenario file as written: serde structures that mirror the TOML one to one. They are
//! turned into the typed [`super::Scenario`] by `super::validate`, which checks the rules serde
//! cannot express and reports each broken rule with its field path.

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use nobat_domain::{OfficeKind, ServiceCode};

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
    /// Simulation and planning sections (all optional; see `scenarios/README.md`).
    pub demand: Option<RawDemand>,
    pub behaviour: Option<RawBehaviour>,
    #[serde(default)]
    pub capacity_changes: Vec<RawCapacityChange>,
    pub policy: Option<RawPolicy>,
    pub plan: Option<RawPlan>,
}

/// A file holding only capacity changes, laid over a scenario (what `nobat plan` writes).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOverlay {
    #[serde(default)]
    pub capacity_changes: Vec<RawCapacityChange>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDemand {
    /// Base registrations per calendar day per million inhabitants (2016 census).
    pub base_daily_per_million: Option<f64>,
    /// Base registrations per day for some provinces, replacing the per-million figure.
    #[serde(default)]
    pub province_daily: BTreeMap<String, u32>,
    #[serde(default)]
    pub surges: Vec<RawSurge>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSurge {
    pub name: String,
    pub total: u64,
    pub start_day: u32,
    pub days: u32,
    pub peak_day: Option<u32>,
    pub shape: Option<RawSurgeShape>,
    pub provinces: Option<ProvinceSelection>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawSurgeShape {
    Flat,
    Triangle,
    FrontLoaded,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBehaviour {
    pub max_distance_km: Option<f64>,
    pub km_per_wait_day: Option<f64>,
    pub wait_threshold_days: Option<u32>,
    pub decline_share: Option<f64>,
    pub no_show_rate: Option<f64>,
    pub rebook_after_no_show: Option<f64>,
    pub cancel_rate: Option<f64>,
    pub reschedule_rate: Option<f64>,
    pub abandon_after_days: Option<u32>,
    pub card_production_days: Option<u32>,
    pub pickup_minutes: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawChangeKind {
    AddStations,
    Thursday,
    FridayOpening,
    Closure,
    MobileUnit,
}

/// One capacity change; which fields apply depends on `kind` (checked with paths in
/// validation, so that a misplaced field is named rather than silently ignored).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCapacityChange {
    pub kind: RawChangeKind,
    pub province: Option<String>,
    /// With `province`: the offices of one town (their `city`).
    pub town: Option<String>,
    pub office: Option<String>,
    pub from_day: Option<u32>,
    pub to_day: Option<u32>,
    pub stations: Option<u16>,
    pub rule: Option<RawThursday>,
    pub reason: Option<String>,
    pub id: Option<String>,
    pub schedule: Option<Vec<RawMobileLeg>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMobileLeg {
    pub town: String,
    pub from_day: u32,
    pub to_day: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawPolicyKind {
    Fcfs,
    DailyBatch,
    Ballot,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub kind: Option<RawPolicyKind>,
    pub booking_window_days: Option<u32>,
    pub lead_days: Option<u32>,
    pub pickup_share: Option<f64>,
    pub batch_max_applicants: Option<u32>,
    pub ballot_every_days: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlan {
    pub target_wait_days_p95: u32,
    pub max_distance_km: Option<f64>,
    pub block_days: Option<u32>,
    pub costs: RawPlanCosts,
    #[serde(default)]
    pub limits: RawPlanLimits,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlanCosts {
    pub station_day: f64,
    pub thursday_office_day: f64,
    pub friday_office_day: Option<f64>,
    pub mobile_unit_day: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlanLimits {
    pub stations_per_province_max: Option<u32>,
    pub mobile_units_per_province_max: Option<u32>,
    pub mobile_unit_stations: Option<u16>,
    pub thursday_openings: Option<bool>,
    pub friday_openings: Option<bool>,
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
