//! The registration form and the eligibility rules.
//!
//! Parsing collects every problem, not just the first: the frontend shows them all at once.

use chrono::{Datelike, NaiveDate};

use super::error::ValidationError;
use super::ids::{BirthCertificateSerial, Mobile, NationalCode, PostalCode};

/// Full years of age needed for a card.
pub const MINIMUM_AGE_YEARS: u32 = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Female,
    Male,
}

impl Gender {
    pub fn parse(input: &str, field: &'static str) -> Result<Self, ValidationError> {
        match input.trim().to_ascii_lowercase().as_str() {
            "female" | "f" | "زن" => Ok(Gender::Female),
            "male" | "m" | "مرد" => Ok(Gender::Male),
            _ => Err(ValidationError::new(
                field,
                "invalid_gender",
                "gender is female or male",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Female => "female",
            Gender::Male => "male",
        }
    }
}

/// The form as typed, before parsing: what the HTTP layer fills from its JSON body.
#[derive(Debug, Clone, Default)]
pub struct RawApplicationForm {
    pub personal: RawPersonal,
    pub father: RawPerson,
    pub mother: RawPerson,
    pub spouse: Option<RawPerson>,
    pub children: Vec<RawChild>,
    pub mobile: String,
    pub postal_code: String,
    pub address: String,
}

#[derive(Debug, Clone, Default)]
pub struct RawPersonal {
    pub national_code: String,
    pub birth_certificate_serial: String,
    pub first_name: String,
    pub last_name: String,
    pub gender: String,
    pub religion: Option<String>,
    /// ISO date, `YYYY-MM-DD` (Gregorian).
    pub birth_date: String,
    /// ISO 3166-1 alpha-2; `IR` for Iranian nationality.
    pub nationality: String,
    /// Whether the birth certificate carries the holder's photo.
    pub birth_certificate_has_photo: bool,
}

#[derive(Debug, Clone, Default)]
pub struct RawPerson {
    pub first_name: String,
    pub last_name: String,
    pub national_code: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct RawChild {
    pub first_name: String,
    pub national_code: Option<String>,
    pub birth_date: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Personal {
    pub national_code: NationalCode,
    pub birth_certificate_serial: BirthCertificateSerial,
    pub first_name: String,
    pub last_name: String,
    pub gender: Gender,
    pub religion: Option<String>,
    pub birth_date: NaiveDate,
    pub nationality: String,
    pub birth_certificate_has_photo: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub first_name: String,
    pub last_name: String,
    pub national_code: Option<NationalCode>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Child {
    pub first_name: String,
    pub national_code: Option<NationalCode>,
    pub birth_date: NaiveDate,
}

/// A parsed, well-formed registration form. Being well-formed says nothing of eligibility.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplicationForm {
    pub personal: Personal,
    pub father: Person,
    pub mother: Person,
    pub spouse: Option<Person>,
    pub children: Vec<Child>,
    pub mobile: Mobile,
    pub postal_code: PostalCode,
    pub address: String,
}

/// Bounds on free text, so a form cannot carry a novel.
const NAME_CHARS_MAX: usize = 64;
const ADDRESS_CHARS_MIN: usize = 10;
const ADDRESS_CHARS_MAX: usize = 300;
/// Nobody lists more children than this on a form; the bound stops a payload from growing.
pub const CHILDREN_MAX: usize = 20;

fn name(value: &str, field: &'static str, errors: &mut Vec<ValidationError>) -> String {
    let v = value.trim();
    let n = v.chars().count();
    if n == 0 || n > NAME_CHARS_MAX {
        errors.push(ValidationError::new(
            field,
            "invalid_name",
            format!("a name has 1 to {NAME_CHARS_MAX} characters"),
        ));
    } else if v.chars().any(|c| c.is_control() || c.is_ascii_digit()) {
        errors.push(ValidationError::new(
            field,
            "invalid_name",
            "a name has no digits or control characters",
        ));
    }
    v.to_string()
}

fn date(value: &str, field: &'static str, errors: &mut Vec<ValidationError>) -> Option<NaiveDate> {
    match NaiveDate::parse_from_str(
        super::ids::normalize_digits(value.trim()).as_str(),
        "%Y-%m-%d",
    ) {
        Ok(d) => Some(d),
        Err(_) => {
            errors.push(ValidationError::new(
                field,
                "invalid_date",
                "a date is YYYY-MM-DD",
            ));
            None
        }
    }
}

fn keep<T>(result: Result<T, ValidationError>, errors: &mut Vec<ValidationError>) -> Option<T> {
    result.map_err(|e| errors.push(e)).ok()
}

fn person(
    raw: &RawPerson,
    first: &'static str,
    last: &'static str,
    code: &'static str,
    errors: &mut Vec<ValidationError>,
) -> Option<Person> {
    let first_name = name(&raw.first_name, first, errors);
    let last_name = name(&raw.last_name, last, errors);
    let national_code = match raw
        .national_code
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(s) => Some(keep(
            NationalCode::parse(s).map_err(|e| ValidationError { field: code, ..e }),
            errors,
        )?),
        None => None,
    };
    Some(Person {
        first_name,
        last_name,
        national_code,
    })
}

impl ApplicationForm {
    /// Parses every field, returning all problems found.
    pub fn parse(raw: &RawApplicationForm) -> Result<Self, Vec<ValidationError>> {
        let mut errors = Vec::new();
        let p = &raw.personal;
        let national_code = keep(NationalCode::parse(&p.national_code), &mut errors);
        let serial = keep(
            BirthCertificateSerial::parse(&p.birth_certificate_serial),
            &mut errors,
        );
        let first_name = name(&p.first_name, "personal.first_name", &mut errors);
        let last_name = name(&p.last_name, "personal.last_name", &mut errors);
        let gender = keep(Gender::parse(&p.gender, "personal.gender"), &mut errors);
        let birth_date = date(&p.birth_date, "personal.birth_date", &mut errors);
        let nationality = p.nationality.trim().to_ascii_uppercase();
        if nationality.len() != 2 || !nationality.bytes().all(|b| b.is_ascii_uppercase()) {
            errors.push(ValidationError::new(
                "personal.nationality",
                "invalid_nationality",
                "nationality is a two-letter country code, IR for Iran",
            ));
        }
        let religion = p
            .religion
            .as_ref()
            .map(|r| name(r, "personal.religion", &mut errors));
        let father = person(
            &raw.father,
            "father.first_name",
            "father.last_name",
            "father.national_code",
            &mut errors,
        );
        let mother = person(
            &raw.mother,
            "mother.first_name",
            "mother.last_name",
            "mother.national_code",
            &mut errors,
        );
        let spouse = raw.spouse.as_ref().map(|s| {
            person(
                s,
                "spouse.first_name",
                "spouse.last_name",
                "spouse.national_code",
                &mut errors,
            )
        });
        if raw.children.len() > CHILDREN_MAX {
            errors.push(ValidationError::new(
                "children",
                "too_many_children",
                format!("at most {CHILDREN_MAX} children on one form"),
            ));
        }
        let children: Vec<Option<Child>> = raw
            .children
            .iter()
            .take(CHILDREN_MAX)
            .map(|c| {
                let first_name = name(&c.first_name, "children.first_name", &mut errors);
                let birth_date = date(&c.birth_date, "children.birth_date", &mut errors);
                let national_code = match c
                    .national_code
                    .as_deref()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    Some(s) => Some(keep(
                        NationalCode::parse(s).map_err(|e| ValidationError {
                            field: "children.national_code",
                            ..e
                        }),
                        &mut errors,
                    )?),
                    None => None,
                };
                Some(Child {
                    first_name,
                    national_code,
                    birth_date: birth_date?,
                })
            })
            .collect();
        let mobile = keep(Mobile::parse(&raw.mobile), &mut errors);
        let postal_code = keep(PostalCode::parse(&raw.postal_code), &mut errors);
        let address = raw.address.trim().to_string();
        let address_chars = address.chars().count();
        if !(ADDRESS_CHARS_MIN..=ADDRESS_CHARS_MAX).contains(&address_chars) {
            errors.push(ValidationError::new(
                "address",
                "invalid_address",
                format!("an address has {ADDRESS_CHARS_MIN} to {ADDRESS_CHARS_MAX} characters"),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // Every `None` above pushed an error, so all are present here.
        let form = (|| {
            Some(ApplicationForm {
                personal: Personal {
                    national_code: national_code?,
                    birth_certificate_serial: serial?,
                    first_name,
                    last_name,
                    gender: gender?,
                    religion,
                    birth_date: birth_date?,
                    nationality,
                    birth_certificate_has_photo: p.birth_certificate_has_photo,
                },
                father: father?,
                mother: mother?,
                spouse: match spouse {
                    Some(s) => Some(s?),
                    None => None,
                },
                children: children.into_iter().collect::<Option<Vec<_>>>()?,
                mobile: mobile?,
                postal_code: postal_code?,
                address,
            })
        })();
        form.ok_or_else(|| {
            vec![ValidationError::new(
                "form",
                "invalid_form",
                "the form is incomplete",
            )]
        })
    }

    /// Checks the eligibility rules on `today` (Iran date), returning every rule that fails.
    pub fn eligibility(&self, today: NaiveDate) -> Eligibility {
        eligibility(
            self.personal.birth_date,
            &self.personal.nationality,
            self.personal.birth_certificate_has_photo,
            today,
        )
    }
}

/// A rule that keeps an applicant from a card today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IneligibilityReason {
    /// Younger than 15 full years; eligible from `eligible_from`.
    UnderAge {
        age_years: u32,
        eligible_from: NaiveDate,
    },
    NotIranianNational {
        nationality: String,
    },
    BirthCertificateWithoutPhoto,
}

impl IneligibilityReason {
    /// Stable machine-readable code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            IneligibilityReason::UnderAge { .. } => "under_age",
            IneligibilityReason::NotIranianNational { .. } => "not_iranian_national",
            IneligibilityReason::BirthCertificateWithoutPhoto => "birth_certificate_without_photo",
        }
    }

    pub fn message(&self) -> String {
        match self {
            IneligibilityReason::UnderAge { age_years, eligible_from } => format!(
                "the applicant is {age_years} full years old; a card needs {MINIMUM_AGE_YEARS}, reached on {eligible_from}"
            ),
            IneligibilityReason::NotIranianNational { nationality } => {
                format!("the smart national card is for Iranian nationals (nationality given: {nationality})")
            }
            IneligibilityReason::BirthCertificateWithoutPhoto => {
                "a birth certificate with the holder's photo is needed; renew the birth certificate first".to_string()
            }
        }
    }
}

/// The outcome of the eligibility rules: eligible when `failed` is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eligibility {
    pub failed: Vec<IneligibilityReason>,
}

impl Eligibility {
    pub fn is_eligible(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Full years between `birth` and `on` (a 29 February birthday counts on 1 March in common years).
pub fn age_full_years(birth: NaiveDate, on: NaiveDate) -> u32 {
    if on < birth {
        return 0;
    }
    let mut years = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    years.max(0) as u32
}

/// The date a person born on `birth` reaches `years` full years.
pub fn anniversary(birth: NaiveDate, years: u32) -> NaiveDate {
    let year = birth.year() + years as i32;
    NaiveDate::from_ymd_opt(year, birth.month(), birth.day())
        .unwrap_or_else(|| NaiveDate::from_ymd_opt(year, 3, 1).expect("1 March exists"))
}

/// The rules themselves, on plain values so that the synthetic registry can use them too.
pub fn eligibility(
    birth_date: NaiveDate,
    nationality: &str,
    has_photo: bool,
    today: NaiveDate,
) -> Eligibility {
    let mut failed = Vec::new();
    let age_years = age_full_years(birth_date, today);
    if age_years < MINIMUM_AGE_YEARS {
        failed.push(IneligibilityReason::UnderAge {
            age_years,
            eligible_from: anniversary(birth_date, MINIMUM_AGE_YEARS),
        });
    }
    if !nationality.eq_ignore_ascii_case("IR") {
        failed.push(IneligibilityReason::NotIranianNational {
            nationality: nationality.to_string(),
        });
    }
    if !has_photo {
        failed.push(IneligibilityReason::BirthCertificateWithoutPhoto);
    }
    Eligibility { failed }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn valid_raw() -> RawApplicationForm {
        RawApplicationForm {
            personal: RawPersonal {
                national_code: "0499370899".into(),
                birth_certificate_serial: "ج12/345678".into(),
                first_name: "زهرا".into(),
                last_name: "احمدی".into(),
                gender: "female".into(),
                religion: Some("اسلام".into()),
                birth_date: "1990-05-01".into(),
                nationality: "IR".into(),
                birth_certificate_has_photo: true,
            },
            father: RawPerson {
                first_name: "علی".into(),
                last_name: "احمدی".into(),
                national_code: None,
            },
            mother: RawPerson {
                first_name: "مریم".into(),
                last_name: "کریمی".into(),
                national_code: None,
            },
            spouse: None,
            children: vec![],
            mobile: "09121234567".into(),
            postal_code: "1314567890".into(),
            address: "تهران، خیابان انقلاب، پلاک ۱۲".into(),
        }
    }

    #[test]
    fn valid_form_parses_and_is_eligible() {
        let form = ApplicationForm::parse(&valid_raw()).unwrap();
        assert!(form.eligibility(d("2024-06-01")).is_eligible());
    }

    #[test]
    fn every_bad_field_is_reported() {
        let mut raw = valid_raw();
        raw.personal.national_code = "1111111111".into();
        raw.mobile = "123".into();
        raw.postal_code = "0000000000".into();
        raw.address = "x".into();
        let errors = ApplicationForm::parse(&raw).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec!["national_code", "mobile", "postal_code", "address"]
        );
    }

    #[test]
    fn all_failed_rules_are_returned() {
        let e = eligibility(d("2015-03-01"), "AF", false, d("2024-06-01"));
        let codes: Vec<_> = e.failed.iter().map(|r| r.code()).collect();
        assert_eq!(
            codes,
            vec![
                "under_age",
                "not_iranian_national",
                "birth_certificate_without_photo"
            ]
        );
    }

    #[test]
    fn fifteen_full_years_to_the_day() {
        let birth = d("2009-06-02");
        assert!(!eligibility(birth, "IR", true, d("2024-06-01")).is_eligible());
        assert!(eligibility(birth, "IR", true, d("2024-06-02")).is_eligible());
        assert_eq!(age_full_years(d("2008-02-29"), d("2023-02-28")), 14);
        assert_eq!(age_full_years(d("2008-02-29"), d("2023-03-01")), 15);
    }
}
