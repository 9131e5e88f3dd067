//! Services an office offers, their durations, and fees keyed by Jalali year.
//! Catalogue and fees are data (`data/services.toml`, `data/fees.toml`), not code constants.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use serde::Deserialize;

use super::error::ValidationError;
use super::office::OfficeKind;

/// What an applicant comes for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ServiceCode {
    FirstIssuance,
    #[serde(rename = "reissue_loss_1")]
    ReissueLoss1,
    #[serde(rename = "reissue_loss_2")]
    ReissueLoss2,
    #[serde(rename = "reissue_loss_3plus")]
    ReissueLoss3Plus,
    Replacement,
    EsignatureActivation,
    CardPickup,
}

impl ServiceCode {
    pub const ALL: [ServiceCode; 7] = [
        ServiceCode::FirstIssuance,
        ServiceCode::ReissueLoss1,
        ServiceCode::ReissueLoss2,
        ServiceCode::ReissueLoss3Plus,
        ServiceCode::Replacement,
        ServiceCode::EsignatureActivation,
        ServiceCode::CardPickup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceCode::FirstIssuance => "first_issuance",
            ServiceCode::ReissueLoss1 => "reissue_loss_1",
            ServiceCode::ReissueLoss2 => "reissue_loss_2",
            ServiceCode::ReissueLoss3Plus => "reissue_loss_3plus",
            ServiceCode::Replacement => "replacement",
            ServiceCode::EsignatureActivation => "esignature_activation",
            ServiceCode::CardPickup => "card_pickup",
        }
    }

    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == input.trim())
            .ok_or_else(|| {
                ValidationError::new(
                    "service",
                    "unknown_service",
                    format!(
                        "unknown service {input:?}; one of: {}",
                        Self::ALL.map(|s| s.as_str()).join(", ")
                    ),
                )
            })
    }

    /// The catalogue entry (always present: the tests check the data file covers every code).
    pub fn info(self) -> &'static Service {
        Service::catalogue()
            .iter()
            .find(|s| s.code == self)
            .expect("data/services.toml covers every service code")
    }
}

impl fmt::Display for ServiceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ServiceCode {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Service {
    pub code: ServiceCode,
    pub name_en: String,
    pub name_fa: String,
    pub duration_minutes: u16,
    pub office_kinds: Vec<OfficeKind>,
}

#[derive(Deserialize)]
struct ServicesFile {
    service: Vec<Service>,
}

impl Service {
    pub fn catalogue() -> &'static [Service] {
        static CATALOGUE: OnceLock<Vec<Service>> = OnceLock::new();
        CATALOGUE.get_or_init(|| {
            let file: ServicesFile = toml::from_str(include_str!("../data/services.toml"))
                .unwrap_or_else(|e| panic!("data/services.toml: {e}"));
            file.service
        })
    }

    pub fn offered_at(&self, kind: OfficeKind) -> bool {
        self.office_kinds.contains(&kind)
    }
}

/// Fees per Jalali year. `fee_rials(service, year)` uses the table of the latest year ≤ `year`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeSchedule {
    years: BTreeMap<i32, BTreeMap<ServiceCode, u64>>,
}

#[derive(Deserialize)]
struct FeesFile {
    year: Vec<FeeYear>,
}

#[derive(Deserialize)]
struct FeeYear {
    jalali_year: i32,
    fees_rials: BTreeMap<ServiceCode, u64>,
}

impl FeeSchedule {
    /// The schedule shipped in `data/fees.toml` (1402 and 1403).
    pub fn builtin() -> &'static FeeSchedule {
        static BUILTIN: OnceLock<FeeSchedule> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            Self::from_toml(include_str!("../data/fees.toml"))
                .unwrap_or_else(|e| panic!("data/fees.toml: {e}"))
        })
    }

    pub fn from_toml(text: &str) -> Result<Self, ValidationError> {
        let file: FeesFile = toml::from_str(text)
            .map_err(|e| ValidationError::new("fees", "invalid_fee_table", e.to_string()))?;
        let mut schedule = Self {
            years: BTreeMap::new(),
        };
        for year in file.year {
            schedule.set_year(year.jalali_year, year.fees_rials)?;
        }
        Ok(schedule)
    }

    /// Adds or replaces one year's table (an administrator publishing a new budget law).
    /// Every service must have a fee, so a lookup never falls through to an older year by accident.
    pub fn set_year(
        &mut self,
        jalali_year: i32,
        fees_rials: BTreeMap<ServiceCode, u64>,
    ) -> Result<(), ValidationError> {
        if let Some(missing) = ServiceCode::ALL
            .iter()
            .find(|s| !fees_rials.contains_key(s))
        {
            return Err(ValidationError::new(
                "fees",
                "incomplete_fee_table",
                format!("the {jalali_year} table has no fee for {missing}"),
            ));
        }
        self.years.insert(jalali_year, fees_rials);
        Ok(())
    }

    /// The fee in rials for a service in a Jalali year, or `None` before the first table.
    pub fn fee_rials(&self, service: ServiceCode, jalali_year: i32) -> Option<u64> {
        self.years
            .range(..=jalali_year)
            .next_back()
            .and_then(|(_, table)| table.get(&service).copied())
    }

    pub fn years(&self) -> impl Iterator<Item = (i32, &BTreeMap<ServiceCode, u64>)> {
        self.years.iter().map(|(y, t)| (*y, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_covers_every_code() {
        for code in ServiceCode::ALL {
            assert_eq!(code.info().code, code);
            assert_eq!(ServiceCode::parse(code.as_str()).unwrap(), code);
        }
        assert_eq!(Service::catalogue().len(), ServiceCode::ALL.len());
    }

    #[test]
    fn loss_and_change_of_details_only_at_civil_registry() {
        for code in [
            ServiceCode::ReissueLoss1,
            ServiceCode::ReissueLoss2,
            ServiceCode::ReissueLoss3Plus,
            ServiceCode::Replacement,
        ] {
            assert!(!code.info().offered_at(OfficeKind::Pishkhan), "{code}");
            assert!(code.info().offered_at(OfficeKind::CivilRegistry), "{code}");
        }
        assert!(ServiceCode::FirstIssuance
            .info()
            .offered_at(OfficeKind::Pishkhan));
    }

    #[test]
    fn fees_by_year() {
        let fees = FeeSchedule::builtin();
        assert_eq!(
            fees.fee_rials(ServiceCode::FirstIssuance, 1402),
            Some(600_000)
        );
        assert_eq!(
            fees.fee_rials(ServiceCode::ReissueLoss2, 1402),
            Some(1_200_000)
        );
        assert_eq!(
            fees.fee_rials(ServiceCode::ReissueLoss3Plus, 1402),
            Some(1_800_000)
        );
        assert_eq!(
            fees.fee_rials(ServiceCode::Replacement, 1402),
            Some(500_000)
        );
        assert_eq!(
            fees.fee_rials(ServiceCode::EsignatureActivation, 1402),
            Some(400_000)
        );
        assert_eq!(
            fees.fee_rials(ServiceCode::FirstIssuance, 1403),
            Some(1_450_000)
        );
        assert_eq!(
            fees.fee_rials(ServiceCode::Replacement, 1403),
            Some(1_450_000)
        );
        // A later year without its own table uses the latest one.
        assert_eq!(
            fees.fee_rials(ServiceCode::FirstIssuance, 1405),
            Some(1_450_000)
        );
        assert_eq!(fees.fee_rials(ServiceCode::FirstIssuance, 1401), None);
    }

    #[test]
    fn incomplete_year_is_refused() {
        let mut fees = FeeSchedule::builtin().clone();
        let mut table = BTreeMap::new();
        table.insert(ServiceCode::FirstIssuance, 2_000_000);
        assert!(fees.set_year(1404, table).is_err());
        assert_eq!(
            fees.fee_rials(ServiceCode::FirstIssuance, 1404),
            Some(1_450_000)
        );
    }
}
