//! Enrolment offices: what they are, where, how many stations, which services, when open.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::calendar::OfficeCalendar;
use super::error::ValidationError;
use super::geo::GeoPoint;
use super::ids::AreaCode;
use super::service::ServiceCode;

/// An office identifier: 1–32 characters of `[A-Za-z0-9_-]` (generated ones look like `021-0042`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OfficeId(String);

impl OfficeId {
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let s = input.trim();
        if s.is_empty()
            || s.len() > 32
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ValidationError::new(
                "office_id",
                "invalid_office_id",
                "an office id is 1 to 32 characters of letters, digits, '-' and '_'",
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OfficeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfficeKind {
    /// Government e-services office (دفتر پیشخوان دولت).
    Pishkhan,
    /// Civil-registration office (اداره ثبت احوال).
    CivilRegistry,
    /// Post office.
    Post,
    /// A mobile enrolment station that moves between towns.
    MobileStation,
}

impl OfficeKind {
    pub const ALL: [OfficeKind; 4] = [
        OfficeKind::Pishkhan,
        OfficeKind::CivilRegistry,
        OfficeKind::Post,
        OfficeKind::MobileStation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OfficeKind::Pishkhan => "pishkhan",
            OfficeKind::CivilRegistry => "civil_registry",
            OfficeKind::Post => "post",
            OfficeKind::MobileStation => "mobile_station",
        }
    }

    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        Self::ALL.into_iter().find(|k| k.as_str() == input.trim()).ok_or_else(|| {
            ValidationError::new(
                "kind",
                "unknown_office_kind",
                format!("unknown office kind {input:?}; one of: pishkhan, civil_registry, post, mobile_station"),
            )
        })
    }

    /// The services this kind of office may offer, from the catalogue.
    pub fn default_services(self) -> BTreeSet<ServiceCode> {
        ServiceCode::ALL
            .into_iter()
            .filter(|s| s.info().offered_at(self))
            .collect()
    }
}

impl fmt::Display for OfficeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Office {
    pub id: OfficeId,
    pub name: String,
    pub kind: OfficeKind,
    /// Province slug (see [`super::Province`]).
    pub province: String,
    pub city: String,
    pub area_code: AreaCode,
    pub location: GeoPoint,
    /// Enrolment stations: the seats of every slot.
    pub stations: u16,
    pub services: BTreeSet<ServiceCode>,
    /// Weekly hours, Thursday rule, closures: everything that says when the office is open.
    pub calendar: OfficeCalendar,
}

impl Office {
    /// Whether the office offers a service: it must be listed for the office and allowed for
    /// its kind (a pishkhan office never serves re-issue after loss, whatever its list says).
    pub fn offers(&self, service: ServiceCode) -> bool {
        self.services.contains(&service) && service.info().offered_at(self.kind)
    }
}
