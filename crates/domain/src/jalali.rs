//! The Jalali (Solar Hijri) calendar: conversion to and from the Gregorian calendar, parsing,
//! and the Persian way of writing a date.
//!
//! Leap years follow the 33-year arithmetic rule (a year is leap iff `(8·year + 29) mod 33 < 8`),
//! which is what most software uses and agrees with the astronomical calendar for the years
//! this engine will ever see (it drifts only centuries away). Conversion goes through a day
//! count from 1 Farvardin of year 1, so it is exact arithmetic, not a lookup table.

use std::fmt;

use chrono::{Datelike, NaiveDate, Weekday};

use super::error::ValidationError;
use super::ids::normalize_digits;

/// Smallest and largest year [`JalaliDate::new`] and [`JalaliDate::parse`] accept. Dates typed
/// by a person outside this range are mistakes; [`JalaliDate::from_gregorian`] is total and may
/// produce years outside it (proleptic).
pub const MIN_YEAR: i32 = 1;
pub const MAX_YEAR: i32 = 9999;

/// `NaiveDate::num_days_from_ce` of 1 Farvardin year 1 as the 33-year rule extrapolates it back
/// (622-03-21 proleptic Gregorian; the rule is anchored on the present, not on year 1), day 0
/// of our count. Checked in the tests against 1 Farvardin 1403 = 2024-03-20.
const EPOCH_DAYS_FROM_CE: i64 = 226_895;

/// Days in 33 years: 33·365 + 8 leap days. Used only to estimate a year before correcting it.
const DAYS_PER_CYCLE: i64 = 33 * 365 + 8;

pub const MONTH_NAMES_FA: [&str; 12] = [
    "فروردین",
    "اردیبهشت",
    "خرداد",
    "تیر",
    "مرداد",
    "شهریور",
    "مهر",
    "آبان",
    "آذر",
    "دی",
    "بهمن",
    "اسفند",
];

pub const MONTH_NAMES_EN: [&str; 12] = [
    "Farvardin",
    "Ordibehesht",
    "Khordad",
    "Tir",
    "Mordad",
    "Shahrivar",
    "Mehr",
    "Aban",
    "Azar",
    "Dey",
    "Bahman",
    "Esfand",
];

/// Weekday names, Saturday first as in the Iranian week (with the zero-width non-joiner that
/// Persian spelling puts in سه‌شنبه and پنج‌شنبه).
pub const WEEKDAY_NAMES_FA: [&str; 7] = [
    "شنبه",
    "یکشنبه",
    "دوشنبه",
    "سه\u{200c}شنبه",
    "چهارشنبه",
    "پنج\u{200c}شنبه",
    "جمعه",
];

/// Leap iff `(8·year + 29) mod 33 < 8` (1399, 1403 and 1408 are leap; 1400, 1402, 1404 are not).
pub fn is_leap_year(year: i32) -> bool {
    (i64::from(year) * 8 + 29).rem_euclid(33) < 8
}

/// Days in a Jalali month: 31 for months 1–6, 30 for 7–11, 29 or 30 (leap year) for Esfand.
/// Returns 0 for a month outside 1..=12, so a caller's range check always fails on it.
pub fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1..=6 => 31,
        7..=11 => 30,
        12 if is_leap_year(year) => 30,
        12 => 29,
        _ => 0,
    }
}

/// Days in a Jalali year: 366 in a leap year, else 365.
pub fn days_in_year(year: i32) -> u16 {
    if is_leap_year(year) {
        366
    } else {
        365
    }
}

/// Persian month name for a month 1..=12 (`None` otherwise).
pub fn month_name_fa(month: u8) -> Option<&'static str> {
    MONTH_NAMES_FA
        .get(usize::from(month).checked_sub(1)?)
        .copied()
}

/// English transliteration of a month name for a month 1..=12 (`None` otherwise).
pub fn month_name_en(month: u8) -> Option<&'static str> {
    MONTH_NAMES_EN
        .get(usize::from(month).checked_sub(1)?)
        .copied()
}

/// The Persian name of a weekday.
pub fn weekday_name_fa(weekday: Weekday) -> &'static str {
    WEEKDAY_NAMES_FA[iranian_weekday_index(weekday)]
}

/// Index of a weekday in the Iranian week: Saturday 0 … Friday 6.
pub fn iranian_weekday_index(weekday: Weekday) -> usize {
    // chrono counts Monday 0 … Sunday 6; Saturday is 5 there.
    (weekday.num_days_from_monday() as usize + 2) % 7
}

/// Replaces ASCII digits with Persian ones (U+06F0..U+06F9); other characters are kept.
pub fn to_persian_digits(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32(0x06F0 + (c as u32 - '0' as u32)).unwrap_or(c),
            other => other,
        })
        .collect()
}

/// Number of leap years among years 1..year−1 (closed form of the 33-year rule).
fn leap_years_before(year: i64) -> i64 {
    (8 * year + 21).div_euclid(33)
}

/// Day count of 1 Farvardin of `year`, with 1 Farvardin 1 as day 0.
fn first_day_of_year(year: i64) -> i64 {
    365 * (year - 1) + leap_years_before(year)
}

/// Days from 1 Farvardin to the first day of `month` (1..=12).
fn days_before_month(month: u8) -> i64 {
    let m = i64::from(month);
    if m <= 7 {
        31 * (m - 1)
    } else {
        186 + 30 * (m - 7)
    }
}

/// A valid date of the Jalali calendar. Fields are private so that holding one means the
/// month and day exist; build one with [`JalaliDate::new`], [`JalaliDate::parse`] or
/// [`JalaliDate::from_gregorian`]. Orders chronologically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JalaliDate {
    year: i32,
    month: u8,
    day: u8,
}

impl JalaliDate {
    /// A date from year, month (1..=12) and day, refusing days the month does not have
    /// (30 Esfand exists only in leap years).
    pub fn new(year: i32, month: u8, day: u8) -> Result<Self, ValidationError> {
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
            return Err(ValidationError::new(
                "date",
                "invalid_jalali_date",
                format!("year {year} is outside {MIN_YEAR}..={MAX_YEAR}"),
            ));
        }
        if !(1..=12).contains(&month) {
            return Err(ValidationError::new(
                "date",
                "invalid_jalali_date",
                format!("month {month} is outside 1..=12"),
            ));
        }
        let max_day = days_in_month(year, month);
        if day == 0 || day > max_day {
            return Err(ValidationError::new(
                "date",
                "invalid_jalali_date",
                format!(
                    "{} {year} has {max_day} days, not {day}",
                    MONTH_NAMES_EN[usize::from(month - 1)]
                ),
            ));
        }
        Ok(Self { year, month, day })
    }

    /// Parses `1403/01/01` or `1403-01-01` (also `1403/1/1`), with ASCII, Persian or
    /// Arabic-Indic digits, year first.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let normalized = normalize_digits(input.trim());
        let parts: Vec<&str> = normalized.split(['/', '-']).collect();
        let malformed = || {
            ValidationError::new(
                "date",
                "invalid_jalali_date",
                format!("expected a Jalali date like 1403/01/01, got {input:?}"),
            )
        };
        let [year, month, day] = parts.as_slice() else {
            return Err(malformed());
        };
        let numeric = |s: &str, max_len: usize| {
            !s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit())
        };
        if !numeric(year, 4) || !numeric(month, 2) || !numeric(day, 2) {
            return Err(malformed());
        }
        // The length checks above keep every part within its integer type.
        let year: i32 = year.parse().map_err(|_| malformed())?;
        let month: u8 = month.parse().map_err(|_| malformed())?;
        let day: u8 = day.parse().map_err(|_| malformed())?;
        Self::new(year, month, day)
    }

    /// The Jalali date of a Gregorian date. Total: every `NaiveDate` has one.
    pub fn from_gregorian(date: NaiveDate) -> Self {
        let n = i64::from(date.num_days_from_ce()) - EPOCH_DAYS_FROM_CE;
        // Estimate from the mean year length, then correct; the estimate is off by at most one
        // year either way, so each loop runs at most twice.
        let mut year = (33 * n).div_euclid(DAYS_PER_CYCLE) + 1;
        while first_day_of_year(year + 1) <= n {
            year += 1;
        }
        while first_day_of_year(year) > n {
            year -= 1;
        }
        let day_of_year = n - first_day_of_year(year);
        let (month, day) = if day_of_year < 186 {
            (day_of_year / 31 + 1, day_of_year % 31 + 1)
        } else {
            let rest = day_of_year - 186;
            (rest / 30 + 7, rest % 30 + 1)
        };
        Self {
            // NaiveDate spans about ±262,000 years, well inside i32.
            year: year as i32,
            month: month as u8,
            day: day as u8,
        }
    }

    /// The Gregorian date of this Jalali date.
    pub fn to_gregorian(self) -> NaiveDate {
        let days = EPOCH_DAYS_FROM_CE + self.day_count();
        // Every JalaliDate either came from a NaiveDate or has a year within MIN_YEAR..=MAX_YEAR,
        // both of which are inside NaiveDate's range.
        i32::try_from(days)
            .ok()
            .and_then(NaiveDate::from_num_days_from_ce_opt)
            .expect("a JalaliDate always maps into NaiveDate's range")
    }

    /// Days since 1 Farvardin 1 (day 0).
    fn day_count(self) -> i64 {
        first_day_of_year(i64::from(self.year))
            + days_before_month(self.month)
            + i64::from(self.day)
            - 1
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u8 {
        self.month
    }

    pub fn day(self) -> u8 {
        self.day
    }

    /// Day of the year, 1 Farvardin = 1.
    pub fn ordinal(self) -> u16 {
        (days_before_month(self.month) + i64::from(self.day)) as u16
    }

    pub fn weekday(self) -> Weekday {
        self.to_gregorian().weekday()
    }

    /// The Persian name of the weekday (`شنبه` … `جمعه`).
    pub fn weekday_name_fa(self) -> &'static str {
        weekday_name_fa(self.weekday())
    }

    pub fn month_name_fa(self) -> &'static str {
        MONTH_NAMES_FA[usize::from(self.month - 1)]
    }

    pub fn month_name_en(self) -> &'static str {
        MONTH_NAMES_EN[usize::from(self.month - 1)]
    }

    /// The date as a person reads it: `۱ فروردین ۱۴۰۳`.
    pub fn persian_display(self) -> String {
        to_persian_digits(&format!(
            "{} {} {}",
            self.day,
            self.month_name_fa(),
            self.year
        ))
    }

    /// With the weekday: `چهارشنبه ۱ فروردین ۱۴۰۳`.
    pub fn persian_display_with_weekday(self) -> String {
        format!("{} {}", self.weekday_name_fa(), self.persian_display())
    }

    /// The next day.
    pub fn succ(self) -> Self {
        if self.day < days_in_month(self.year, self.month) {
            Self {
                day: self.day + 1,
                ..self
            }
        } else if self.month < 12 {
            Self {
                month: self.month + 1,
                day: 1,
                ..self
            }
        } else {
            Self {
                year: self.year + 1,
                month: 1,
                day: 1,
            }
        }
    }
}

/// `1403-01-01`: ISO-like, sortable, ASCII digits.
impl fmt::Display for JalaliDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl std::str::FromStr for JalaliDate {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl From<NaiveDate> for JalaliDate {
    fn from(date: NaiveDate) -> Self {
        Self::from_gregorian(date)
    }
}

impl From<JalaliDate> for NaiveDate {
    fn from(date: JalaliDate) -> Self {
        date.to_gregorian()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn epoch_constant_matches_the_1403_anchor() {
        let j = JalaliDate::new(1403, 1, 1).unwrap();
        assert_eq!(j.to_gregorian(), g(2024, 3, 20));
        let first = JalaliDate::new(1, 1, 1).unwrap();
        assert_eq!(first.to_gregorian(), g(622, 3, 21));
        // The day before is Esfand of year 0, proleptic.
        let before = JalaliDate::from_gregorian(g(622, 3, 20));
        assert_eq!((before.year(), before.month()), (0, 12));
    }

    #[test]
    fn leap_rule_matches_the_examples() {
        for y in [1399, 1403, 1408] {
            assert!(is_leap_year(y), "{y}");
        }
        for y in [1400, 1401, 1402, 1404] {
            assert!(!is_leap_year(y), "{y}");
        }
    }

    #[test]
    fn year_length_follows_the_leap_rule() {
        for y in 1300..1500 {
            let start = JalaliDate::new(y, 1, 1).unwrap().to_gregorian();
            let next = JalaliDate::new(y + 1, 1, 1).unwrap().to_gregorian();
            assert_eq!((next - start).num_days(), i64::from(days_in_year(y)), "{y}");
        }
    }

    #[test]
    fn month_lengths() {
        assert_eq!(days_in_month(1403, 1), 31);
        assert_eq!(days_in_month(1403, 6), 31);
        assert_eq!(days_in_month(1403, 7), 30);
        assert_eq!(days_in_month(1403, 11), 30);
        assert_eq!(days_in_month(1403, 12), 30);
        assert_eq!(days_in_month(1402, 12), 29);
        assert_eq!(days_in_month(1402, 13), 0);
        assert!(JalaliDate::new(1402, 12, 30).is_err());
        assert!(JalaliDate::new(1403, 12, 30).is_ok());
        assert!(JalaliDate::new(1403, 7, 31).is_err());
        assert!(JalaliDate::new(1403, 0, 1).is_err());
        assert!(JalaliDate::new(1403, 1, 0).is_err());
    }

    #[test]
    fn succ_walks_month_and_year_ends() {
        let d = JalaliDate::new(1403, 6, 31).unwrap().succ();
        assert_eq!(d, JalaliDate::new(1403, 7, 1).unwrap());
        let d = JalaliDate::new(1403, 12, 29).unwrap().succ();
        assert_eq!(d, JalaliDate::new(1403, 12, 30).unwrap());
        let d = JalaliDate::new(1402, 12, 29).unwrap().succ();
        assert_eq!(d, JalaliDate::new(1403, 1, 1).unwrap());
    }

    #[test]
    fn weekday_index_starts_on_saturday() {
        assert_eq!(iranian_weekday_index(Weekday::Sat), 0);
        assert_eq!(iranian_weekday_index(Weekday::Thu), 5);
        assert_eq!(iranian_weekday_index(Weekday::Fri), 6);
        // 1 Farvardin 1403 = 2024-03-20, a Wednesday.
        assert_eq!(
            JalaliDate::new(1403, 1, 1).unwrap().weekday_name_fa(),
            "چهارشنبه"
        );
    }

    #[test]
    fn month_name_lookups_refuse_month_zero_and_thirteen() {
        assert_eq!(month_name_fa(0), None);
        assert_eq!(month_name_en(13), None);
        assert_eq!(month_name_en(12), Some("Esfand"));
        assert_eq!(month_name_fa(1), Some("فروردین"));
    }
}
