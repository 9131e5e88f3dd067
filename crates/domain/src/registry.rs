//! The civil-registration authority as the booking system sees it: the port a deployment
//! implements for the real registry. The planning crate's `SyntheticRegistry` implements it for
//! a scenario's synthetic citizens (tests, simulations, the demo server).

use chrono::NaiveDate;

use crate::applicant::{eligibility, Eligibility, Gender};
use crate::{BirthCertificateSerial, GeoPoint, Mobile, NationalCode, PostalCode};

/// What the civil registry knows about a person.
#[derive(Debug, Clone, PartialEq)]
pub struct CitizenRecord {
    pub national_code: NationalCode,
    pub birth_certificate_serial: BirthCertificateSerial,
    pub birth_date: NaiveDate,
    pub gender: Gender,
    pub first_name: String,
    pub last_name: String,
    /// Province slug.
    pub province: String,
    /// The town the person lives in or near (English name from `data/towns.csv`).
    pub city: String,
    /// Home location rounded to 0.01° (see the planning crate's `CitizenGenerator::citizen`).
    pub location: GeoPoint,
    pub mobile: Mobile,
    pub postal_code: PostalCode,
    /// ISO 3166 alpha-2; `IR` for Iranian nationals.
    pub nationality: String,
    pub birth_certificate_has_photo: bool,
}

impl CitizenRecord {
    /// Whether this person may apply for a card on `today` (every rule, as the API checks it).
    pub fn eligibility(&self, today: NaiveDate) -> Eligibility {
        eligibility(
            self.birth_date,
            &self.nationality,
            self.birth_certificate_has_photo,
            today,
        )
    }
}

/// The civil-registration authority as the booking system sees it. A deployment plugs in the
/// real registry; tests and simulations use the planning crate's `SyntheticRegistry`.
pub trait CivilRegistry: Send + Sync {
    fn lookup(&self, code: &NationalCode) -> Option<CitizenRecord>;

    /// Whether the code and birth-certificate serial belong to the same person (the login check).
    fn verify(&self, code: &NationalCode, serial: &BirthCertificateSerial) -> bool {
        self.lookup(code)
            .is_some_and(|r| &r.birth_certificate_serial == serial)
    }
}
