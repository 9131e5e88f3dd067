//! What a ballot is (its terms) and what an entry asks for (its preferences), with the checks
//! that run where they arrive: every problem is reported with the field it concerns, and
//! nothing is stored unless all pass.

use chrono::NaiveDate;
use nobat_domain::applicant::age_full_years;
use nobat_domain::GeoPoint;
use serde::{Deserialize, Serialize};

/// Default reach of an entry, in kilometres.
pub const DEFAULT_MAX_KM: f64 = 100.0;
/// Default cost of waiting one more day, in kilometres of travel (the allocator's unit).
pub const DEFAULT_WAIT_KM_PER_DAY: f64 = 5.0;
/// Most office-days a ballot spans (the seats it withholds are a surge's, not a year's).
pub const MAX_BALLOT_DAYS: i64 = 62;
/// Most offices an entry may name.
pub const MAX_OFFICE_CHOICES: usize = 5;
/// Most priority rules a ballot may carry.
pub const MAX_PRIORITY_RULES: usize = 16;
/// Highest priority class (classes are small integers; 0 is everyone else).
pub const MAX_PRIORITY_CLASS: i32 = 9;
/// Farthest reach an entry may ask for (Iran spans about 2,300 km).
pub const MAX_REACH_KM: f64 = 2_500.0;

/// A problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field as the request names it (`preferences.max_km`).
    pub field: String,
    /// Machine-readable (`out_of_range`, `conflict`, `unknown_office`, …).
    pub code: &'static str,
    pub message: String,
}

fn problem(field: &str, code: &'static str, message: impl Into<String>) -> FieldProblem {
    FieldProblem {
        field: field.to_string(),
        code,
        message: message.into(),
    }
}

/// When an entry qualifies for a priority class, from what the civil registry knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Aged at least this many full years on the ballot's first seat day.
    AgeAtLeast(u32),
    /// Younger than this many full years on the ballot's first seat day.
    AgeBelow(u32),
    /// Living in one of these provinces (slugs).
    ProvinceIn(Vec<String>),
}

/// Entries meeting `when` compete in class `class` (higher classes are placed first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityRule {
    pub when: Condition,
    pub class: i32,
}

/// What the registry tells the ballot about an entrant (nothing else is used).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EntrantFacts<'a> {
    pub birth_date: NaiveDate,
    pub province: &'a str,
    pub home: GeoPoint,
}

/// A ballot's terms, fixed at creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BallotTerms {
    pub service: String,
    /// First and last day of the seats withheld (inclusive).
    pub from_date: NaiveDate,
    pub to_date: NaiveDate,
    /// Reach of an entry that names no offices (its own `max_km` may only be smaller).
    pub max_km: f64,
    pub wait_km_per_day: f64,
    pub priority_rules: Vec<PriorityRule>,
}

impl BallotTerms {
    /// Every problem of the terms (empty: valid).
    pub fn problems(&self) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        let days = (self.to_date - self.from_date).num_days();
        if days < 0 {
            out.push(problem(
                "seats.to_date",
                "out_of_range",
                "to_date is before from_date",
            ));
        } else if days >= MAX_BALLOT_DAYS {
            out.push(problem(
                "seats.to_date",
                "out_of_range",
                format!("a ballot spans at most {MAX_BALLOT_DAYS} days"),
            ));
        }
        if !(self.max_km.is_finite() && self.max_km > 0.0 && self.max_km <= MAX_REACH_KM) {
            out.push(problem(
                "max_km",
                "out_of_range",
                format!("max_km must be above 0 and at most {MAX_REACH_KM}"),
            ));
        }
        if !(self.wait_km_per_day.is_finite() && (0.0..=1_000.0).contains(&self.wait_km_per_day)) {
            out.push(problem(
                "wait_km_per_day",
                "out_of_range",
                "wait_km_per_day must be between 0 and 1000",
            ));
        }
        if self.priority_rules.len() > MAX_PRIORITY_RULES {
            out.push(problem(
                "priority_rules",
                "too_many",
                format!("at most {MAX_PRIORITY_RULES} priority rules"),
            ));
        }
        for (i, rule) in self.priority_rules.iter().enumerate() {
            if !(1..=MAX_PRIORITY_CLASS).contains(&rule.class) {
                out.push(problem(
                    &format!("priority_rules[{i}].class"),
                    "out_of_range",
                    format!("a priority class is between 1 and {MAX_PRIORITY_CLASS}"),
                ));
            }
            let bad_when = match &rule.when {
                Condition::AgeAtLeast(y) | Condition::AgeBelow(y) => *y > 130,
                Condition::ProvinceIn(p) => p.is_empty() || p.len() > 31,
            };
            if bad_when {
                out.push(problem(
                    &format!("priority_rules[{i}].when"),
                    "out_of_range",
                    "an age is at most 130; a province list names 1 to 31 provinces",
                ));
            }
        }
        out
    }

    /// The entrant's class: the highest class of the rules they meet, 0 for none.
    pub fn priority_of(&self, facts: &EntrantFacts<'_>) -> i32 {
        let age = age_full_years(facts.birth_date, self.from_date);
        self.priority_rules
            .iter()
            .filter(|r| match &r.when {
                Condition::AgeAtLeast(y) => age >= *y,
                Condition::AgeBelow(y) => age < *y,
                Condition::ProvinceIn(list) => list.iter().any(|p| p == facts.province),
            })
            .map(|r| r.class)
            .max()
            .unwrap_or(0)
    }

    /// Days from the first seat day (0-based), or `None` outside the ballot's days.
    pub fn day_of(&self, date: NaiveDate) -> Option<u32> {
        (self.from_date..=self.to_date)
            .contains(&date)
            .then(|| (date - self.from_date).num_days() as u32)
    }
}

/// Which part of the day an entrant would rather come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartOfDay {
    Morning,
    Afternoon,
    #[default]
    Any,
}

impl PartOfDay {
    /// Morning is before noon; a slot starting at 12:00 or later is afternoon.
    pub fn of(start: chrono::NaiveTime) -> PartOfDay {
        if start < chrono::NaiveTime::from_hms_opt(12, 0, 0).expect("noon") {
            PartOfDay::Morning
        } else {
            PartOfDay::Afternoon
        }
    }

    pub fn accepts(self, start: chrono::NaiveTime) -> bool {
        self == PartOfDay::Any || self == PartOfDay::of(start)
    }
}

/// What an entry asks for: a place to be near (home by default) within `max_km`, or up to
/// [`MAX_OFFICE_CHOICES`] named offices; not before `earliest_date`; a part of the day.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub near: Option<GeoPoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_km: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub office_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest_date: Option<NaiveDate>,
    #[serde(default)]
    pub part_of_day: PartOfDay,
}

impl Preferences {
    /// Every problem of these preferences under `terms` (empty: valid). `office_in_ballot`
    /// says whether an office withholds seats in this ballot.
    pub fn problems(
        &self,
        terms: &BallotTerms,
        office_in_ballot: &dyn Fn(&str) -> bool,
    ) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        if let Some(p) = self.near {
            if GeoPoint::new(p.lat, p.lon).is_err() {
                out.push(problem(
                    "preferences.near",
                    "out_of_range",
                    "latitude must be within ±90 and longitude within ±180",
                ));
            }
        }
        if let Some(km) = self.max_km {
            if !(km.is_finite() && km > 0.0 && km <= terms.max_km) {
                out.push(problem(
                    "preferences.max_km",
                    "out_of_range",
                    format!(
                        "max_km must be above 0 and at most the ballot's {}",
                        terms.max_km
                    ),
                ));
            }
        }
        if !self.office_ids.is_empty() {
            if self.near.is_some() || self.max_km.is_some() {
                out.push(problem(
                    "preferences.office_ids",
                    "conflict",
                    "name offices, or a place with a distance, not both",
                ));
            }
            if self.office_ids.len() > MAX_OFFICE_CHOICES {
                out.push(problem(
                    "preferences.office_ids",
                    "too_many",
                    format!("at most {MAX_OFFICE_CHOICES} offices"),
                ));
            }
            for (i, id) in self.office_ids.iter().enumerate() {
                if self.office_ids[..i].contains(id) {
                    out.push(problem(
                        &format!("preferences.office_ids[{i}]"),
                        "duplicate",
                        "this office is named twice",
                    ));
                } else if !office_in_ballot(id) {
                    out.push(problem(
                        &format!("preferences.office_ids[{i}]"),
                        "unknown_office",
                        "this office has no seats in the ballot",
                    ));
                }
            }
        }
        if let Some(d) = self.earliest_date {
            if terms.day_of(d).is_none() {
                out.push(problem(
                    "preferences.earliest_date",
                    "out_of_range",
                    format!(
                        "earliest_date must be within the ballot's days, {} to {}",
                        terms.from_date, terms.to_date
                    ),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, 3, d).unwrap()
    }

    pub(crate) fn terms() -> BallotTerms {
        BallotTerms {
            service: "first_issuance".into(),
            from_date: date(1),
            to_date: date(10),
            max_km: DEFAULT_MAX_KM,
            wait_km_per_day: DEFAULT_WAIT_KM_PER_DAY,
            priority_rules: vec![
                PriorityRule {
                    when: Condition::AgeAtLeast(70),
                    class: 2,
                },
                PriorityRule {
                    when: Condition::ProvinceIn(vec!["ilam".into()]),
                    class: 1,
                },
            ],
        }
    }

    #[test]
    fn the_highest_matching_class_wins_and_age_counts_on_the_first_day() {
        let t = terms();
        let home = GeoPoint {
            lat: 33.6,
            lon: 46.4,
        };
        let facts = |y: i32, m: u32, d: u32, province| EntrantFacts {
            birth_date: NaiveDate::from_ymd_opt(y, m, d).unwrap(),
            province,
            home,
        };
        assert_eq!(t.priority_of(&facts(1957, 3, 1, "tehran")), 2);
        assert_eq!(t.priority_of(&facts(1957, 3, 2, "tehran")), 0);
        assert_eq!(t.priority_of(&facts(1957, 3, 2, "ilam")), 1);
        assert_eq!(t.priority_of(&facts(1950, 1, 1, "ilam")), 2);
        assert!(t.problems().is_empty());
    }

    #[test]
    fn bad_terms_name_each_field() {
        let mut t = terms();
        t.to_date = date(1) - chrono::Days::new(1);
        t.max_km = f64::NAN;
        t.wait_km_per_day = -1.0;
        t.priority_rules[0].class = 0;
        t.priority_rules[1].when = Condition::ProvinceIn(vec![]);
        let fields: Vec<String> = t.problems().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "seats.to_date",
                "max_km",
                "wait_km_per_day",
                "priority_rules[0].class",
                "priority_rules[1].when"
            ]
        );
    }

    #[test]
    fn preferences_are_checked_field_by_field() {
        let t = terms();
        let known = |id: &str| id.starts_with("OF");
        assert!(Preferences::default().problems(&t, &known).is_empty());
        let ok = Preferences {
            office_ids: vec!["OF1".into(), "OF2".into()],
            earliest_date: Some(date(10)),
            part_of_day: PartOfDay::Morning,
            ..Preferences::default()
        };
        assert!(ok.problems(&t, &known).is_empty());
        let bad = Preferences {
            near: Some(GeoPoint {
                lat: 91.0,
                lon: 0.0,
            }),
            max_km: Some(150.0),
            office_ids: vec!["OF1".into(), "OF1".into(), "XX".into()],
            earliest_date: Some(date(11)),
            part_of_day: PartOfDay::Any,
        };
        let got: Vec<(String, &str)> = bad
            .problems(&t, &known)
            .into_iter()
            .map(|p| (p.field, p.code))
            .collect();
        let want = [
            ("preferences.near", "out_of_range"),
            ("preferences.max_km", "out_of_range"),
            ("preferences.office_ids", "conflict"),
            ("preferences.office_ids[1]", "duplicate"),
            ("preferences.office_ids[2]", "unknown_office"),
            ("preferences.earliest_date", "out_of_range"),
        ];
        let want: Vec<(String, &str)> = want.iter().map(|(f, c)| (f.to_string(), *c)).collect();
        assert_eq!(got, want);
        let six = Preferences {
            office_ids: (0..6).map(|i| format!("OF{i}")).collect(),
            ..Preferences::default()
        };
        assert_eq!(six.problems(&t, &known)[0].code, "too_many");
    }

    #[test]
    fn preferences_parse_from_the_wire_and_refuse_unknown_fields() {
        let p: Preferences = serde_json::from_str(
            r#"{"near":{"lat":35.7,"lon":51.4},"max_km":20,"part_of_day":"afternoon"}"#,
        )
        .unwrap();
        assert_eq!(p.part_of_day, PartOfDay::Afternoon);
        assert_eq!(p.max_km, Some(20.0));
        assert!(serde_json::from_str::<Preferences>(r#"{"nearby":1}"#).is_err());
        let rule: PriorityRule =
            serde_json::from_str(r#"{"when":{"age_at_least":70},"class":2}"#).unwrap();
        assert_eq!(rule.when, Condition::AgeAtLeast(70));
    }
}
