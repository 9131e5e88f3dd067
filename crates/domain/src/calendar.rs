//! When an office is open: weekly hours, the Thursday rule, closures, extra openings, and the
//! public holidays (fixed solar ones plus a per-year lunar table). Slot generation
//! ([`super::slots`]) and the Iran time zone ([`super::time`]) build on these types.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use chrono::{Datelike, NaiveDate, NaiveTime, Timelike, Weekday};
use serde::{Deserialize, Serialize};

use super::error::ValidationError;
use super::jalali::{days_in_month, iranian_weekday_index, JalaliDate};

/// Opening and closing time of one day, local Iran time; `close` is exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayHours {
    pub open: NaiveTime,
    pub close: NaiveTime,
}

/// Hours per weekday, indexed from Saturday (0) to Friday (6), the Iranian week.
/// `None` is closed. Thursday's entry is what an office keeps when its Thursday rule is `Open`
/// (and halves under `HalfDay`); when it is `None` the Thursday rule uses Saturday's hours.
/// Friday's entry must be `None` (Friday opens only through an [`ExtraOpening`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklyHours {
    pub days: [Option<DayHours>; 7],
}

/// What an office does on Thursdays; set by decree and by province, so it is per office and
/// may be overridden for date ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThursdayRule {
    Closed,
    /// Opens at the usual time and closes half-way through the usual day.
    HalfDay,
    Open,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThursdayOverride {
    pub from: NaiveDate,
    /// Inclusive.
    pub to: NaiveDate,
    pub rule: ThursdayRule,
}

/// The office is closed from `from` to `to` inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub reason: String,
}

/// A day the office opens although its week says closed (a Friday opening during a surge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraOpening {
    pub date: NaiveDate,
    pub hours: DayHours,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficeCalendar {
    pub weekly: WeeklyHours,
    pub thursday: ThursdayRule,
    pub thursday_overrides: Vec<ThursdayOverride>,
    pub closures: Vec<Closure>,
    pub extra_openings: Vec<ExtraOpening>,
    /// Length of one slot in minutes; every slot has `stations` seats.
    pub slot_minutes: u16,
}

/// Upper bound on each of an office's closures, Thursday overrides and extra openings: an
/// administrator's list, not a data feed. Keeps every per-day lookup cheap.
pub const MAX_CALENDAR_ENTRIES: usize = 1_000;

/// Smallest and largest slot length accepted, in minutes.
pub const SLOT_MINUTES_MIN: u16 = 5;
pub const SLOT_MINUTES_MAX: u16 = 120;

impl DayHours {
    /// Hours from `HH:MM` pairs; the close must be after the open, both on whole minutes.
    pub fn new(open: NaiveTime, close: NaiveTime) -> Result<Self, ValidationError> {
        let hours = Self { open, close };
        hours.validate("hours")?;
        Ok(hours)
    }

    /// Shorthand for fixed, known-good hours in code and tests (`DayHours::hm(8, 0, 16, 0)`).
    /// Returns an error for invalid times, like [`DayHours::new`].
    pub fn hm(
        open_hour: u32,
        open_minute: u32,
        close_hour: u32,
        close_minute: u32,
    ) -> Result<Self, ValidationError> {
        let time = |h, m| {
            NaiveTime::from_hms_opt(h, m, 0).ok_or_else(|| {
                ValidationError::new(
                    "hours",
                    "invalid_time",
                    format!("{h:02}:{m:02} is not a time"),
                )
            })
        };
        Self::new(
            time(open_hour, open_minute)?,
            time(close_hour, close_minute)?,
        )
    }

    fn validate(&self, field: &'static str) -> Result<(), ValidationError> {
        if self.open.second() != 0
            || self.open.nanosecond() != 0
            || self.close.second() != 0
            || self.close.nanosecond() != 0
        {
            return Err(ValidationError::new(
                field,
                "invalid_hours",
                "opening hours are whole minutes",
            ));
        }
        if self.close <= self.open {
            return Err(ValidationError::new(
                field,
                "invalid_hours",
                format!(
                    "closing time {} is not after opening time {}",
                    self.close.format("%H:%M"),
                    self.open.format("%H:%M")
                ),
            ));
        }
        Ok(())
    }

    /// Minutes from midnight of the opening time.
    pub fn open_minute_of_day(&self) -> u32 {
        self.open.num_seconds_from_midnight() / 60
    }

    /// Minutes from midnight of the (exclusive) closing time.
    pub fn close_minute_of_day(&self) -> u32 {
        self.close.num_seconds_from_midnight() / 60
    }

    /// Length of the day in minutes.
    pub fn length_minutes(&self) -> u32 {
        self.close_minute_of_day()
            .saturating_sub(self.open_minute_of_day())
    }

    /// Slots of `slot_minutes` that fit: starts at open, open+slot, … while start+slot ≤ close.
    pub fn slot_count(&self, slot_minutes: u16) -> u32 {
        if slot_minutes == 0 {
            return 0;
        }
        self.length_minutes() / u32::from(slot_minutes)
    }

    /// The same day closing half-way, rounded down to the slot grid (the Thursday half day).
    /// `None` when not even one slot fits in the half.
    pub fn first_half(&self, slot_minutes: u16) -> Option<DayHours> {
        let slot = u32::from(slot_minutes.max(1));
        let half = self.length_minutes() / 2 / slot * slot;
        if half == 0 {
            return None;
        }
        let close = self.open + chrono::Duration::minutes(i64::from(half));
        Some(DayHours {
            open: self.open,
            close,
        })
    }
}

impl WeeklyHours {
    /// Hours of a weekday (Saturday-first indexing is internal).
    pub fn on(&self, weekday: Weekday) -> Option<DayHours> {
        self.days[iranian_weekday_index(weekday)]
    }
}

/// Why an office is closed on a day: what an API returns instead of an empty slot list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClosedReason {
    Friday,
    /// A public holiday (its English name).
    Holiday(String),
    /// An office closure (its reason).
    Closure(String),
    /// The weekly hours or the Thursday rule close the office on this weekday.
    NotAWorkingDay,
}

impl ClosedReason {
    /// Stable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            ClosedReason::Friday => "friday",
            ClosedReason::Holiday(_) => "holiday",
            ClosedReason::Closure(_) => "office_closure",
            ClosedReason::NotAWorkingDay => "not_a_working_day",
        }
    }
}

impl fmt::Display for ClosedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClosedReason::Friday => f.write_str("offices are closed on Fridays"),
            ClosedReason::Holiday(name) => write!(f, "public holiday: {name}"),
            ClosedReason::Closure(reason) => write!(f, "the office is closed: {reason}"),
            ClosedReason::NotAWorkingDay => f.write_str("the office does not open on this day"),
        }
    }
}

impl OfficeCalendar {
    /// The usual office week: Saturday–Wednesday 08:00–16:00, Thursday a half day
    /// (08:00–12:00), Friday closed, 15-minute slots.
    pub fn standard() -> Self {
        let day = Some(DayHours {
            open: NaiveTime::from_hms_opt(8, 0, 0).expect("valid time"),
            close: NaiveTime::from_hms_opt(16, 0, 0).expect("valid time"),
        });
        Self {
            // Saturday … Wednesday open; Thursday takes Saturday's hours under its rule; Friday closed.
            weekly: WeeklyHours {
                days: [day, day, day, day, day, None, None],
            },
            thursday: ThursdayRule::HalfDay,
            thursday_overrides: Vec::new(),
            closures: Vec::new(),
            extra_openings: Vec::new(),
            slot_minutes: 15,
        }
    }

    /// Checks every rule a calendar must keep; run it wherever a calendar enters the system.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(SLOT_MINUTES_MIN..=SLOT_MINUTES_MAX).contains(&self.slot_minutes) {
            return Err(ValidationError::new(
                "slot_minutes",
                "invalid_slot_minutes",
                format!(
                    "slot length must be {SLOT_MINUTES_MIN}..={SLOT_MINUTES_MAX} minutes, got {}",
                    self.slot_minutes
                ),
            ));
        }
        for hours in self.weekly.days.iter().flatten() {
            hours.validate("weekly")?;
        }
        if self.weekly.days[6].is_some() {
            return Err(ValidationError::new(
                "weekly",
                "friday_hours",
                "offices are closed on Fridays; open a Friday with an extra opening instead",
            ));
        }
        for (field, len) in [
            ("thursday_overrides", self.thursday_overrides.len()),
            ("closures", self.closures.len()),
            ("extra_openings", self.extra_openings.len()),
        ] {
            if len > MAX_CALENDAR_ENTRIES {
                return Err(ValidationError::new(
                    field,
                    "too_many_entries",
                    format!("at most {MAX_CALENDAR_ENTRIES} entries, got {len}"),
                ));
            }
        }
        for c in &self.closures {
            if c.from > c.to {
                return Err(ValidationError::new(
                    "closures",
                    "invalid_range",
                    format!(
                        "closure {:?} ends ({}) before it starts ({})",
                        c.reason, c.to, c.from
                    ),
                ));
            }
        }
        let mut overrides: Vec<&ThursdayOverride> = self.thursday_overrides.iter().collect();
        for o in &overrides {
            if o.from > o.to {
                return Err(ValidationError::new(
                    "thursday_overrides",
                    "invalid_range",
                    format!("override ends ({}) before it starts ({})", o.to, o.from),
                ));
            }
        }
        // Overlapping overrides would make the rule of a Thursday depend on list order.
        overrides.sort_by_key(|o| o.from);
        if let Some(pair) = overrides.windows(2).find(|w| w[1].from <= w[0].to) {
            return Err(ValidationError::new(
                "thursday_overrides",
                "overlapping_overrides",
                format!(
                    "overrides {}..{} and {}..{} overlap",
                    pair[0].from, pair[0].to, pair[1].from, pair[1].to
                ),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for e in &self.extra_openings {
            e.hours.validate("extra_openings")?;
            if !seen.insert(e.date) {
                return Err(ValidationError::new(
                    "extra_openings",
                    "duplicate_date",
                    format!("two extra openings on {}", e.date),
                ));
            }
        }
        Ok(())
    }

    /// The Thursday rule in force on a date (an override covering it, else the default).
    pub fn thursday_rule_on(&self, date: NaiveDate) -> ThursdayRule {
        self.thursday_overrides
            .iter()
            .find(|o| o.from <= date && date <= o.to)
            .map_or(self.thursday, |o| o.rule)
    }

    /// Opening hours on a date, or `None` when closed. See [`OfficeCalendar::day_status`].
    pub fn hours_on(&self, date: NaiveDate, holidays: &HolidayCalendar) -> Option<DayHours> {
        self.day_status(date, holidays).ok()
    }

    /// Why the office is closed on a date, or `None` when it opens.
    pub fn closed_reason(
        &self,
        date: NaiveDate,
        holidays: &HolidayCalendar,
    ) -> Option<ClosedReason> {
        self.day_status(date, holidays).err()
    }

    /// Hours on a date, or why closed. Rules apply in this order, the first that decides wins:
    /// an extra opening; a closure; a public holiday; Friday; the Thursday rule (with dated
    /// overrides; a half day closes at the midpoint of Thursday's hours, or of Saturday's when
    /// Thursday has none, rounded down to the slot grid); the weekly hours.
    pub fn day_status(
        &self,
        date: NaiveDate,
        holidays: &HolidayCalendar,
    ) -> Result<DayHours, ClosedReason> {
        if let Some(extra) = self.extra_openings.iter().find(|e| e.date == date) {
            return Ok(extra.hours);
        }
        if let Some(c) = self
            .closures
            .iter()
            .find(|c| c.from <= date && date <= c.to)
        {
            return Err(ClosedReason::Closure(c.reason.clone()));
        }
        if let Some(h) = holidays.is_holiday(date) {
            return Err(ClosedReason::Holiday(h.name_en.clone()));
        }
        match date.weekday() {
            Weekday::Fri => Err(ClosedReason::Friday),
            Weekday::Thu => {
                let base = self
                    .weekly
                    .on(Weekday::Thu)
                    .or(self.weekly.on(Weekday::Sat));
                let hours = match self.thursday_rule_on(date) {
                    ThursdayRule::Closed => None,
                    ThursdayRule::Open => base,
                    ThursdayRule::HalfDay => base.and_then(|h| h.first_half(self.slot_minutes)),
                };
                hours.ok_or(ClosedReason::NotAWorkingDay)
            }
            weekday => self.weekly.on(weekday).ok_or(ClosedReason::NotAWorkingDay),
        }
    }
}

/// One public holiday.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holiday {
    pub name_fa: String,
    pub name_en: String,
    pub kind: HolidayKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HolidayKind {
    /// Same Jalali month and day every year.
    FixedSolar,
    /// A lunar holiday, dated per Jalali year.
    Lunar,
}

/// A holiday on a date, as listed by [`HolidayCalendar::holidays_in_year`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatedHoliday<'a> {
    pub date: JalaliDate,
    pub holiday: &'a Holiday,
}

/// Upper bound on lunar holidays per Jalali year (about 17 in practice); a larger table is a
/// data error, not a calendar.
pub const MAX_LUNAR_HOLIDAYS_PER_YEAR: usize = 40;
/// Upper bound on the size of a holiday file an administrator uploads, in bytes.
pub const MAX_HOLIDAY_FILE_BYTES: usize = 1 << 20;

/// Public holidays: fixed solar ones and a per-year table of lunar ones an administrator edits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HolidayCalendar {
    /// Keyed by Jalali (month, day).
    fixed: BTreeMap<(u8, u8), Holiday>,
    lunar: BTreeMap<JalaliDate, Holiday>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HolidaysFile {
    #[serde(default)]
    fixed: Vec<FixedEntry>,
    #[serde(default)]
    lunar: Vec<LunarEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixedEntry {
    month: u8,
    day: u8,
    name_fa: String,
    name_en: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LunarEntry {
    /// A Jalali date, `1403-01-22`.
    date: String,
    name_fa: String,
    name_en: String,
}

fn holiday_error(message: String) -> ValidationError {
    ValidationError::new("holidays", "invalid_holiday_table", message)
}

fn check_names(name_fa: &str, name_en: &str) -> Result<(), String> {
    for (which, name) in [("name_fa", name_fa), ("name_en", name_en)] {
        let len = name.trim().chars().count();
        if len == 0 || len > 200 {
            return Err(format!("{which} must be 1 to 200 characters"));
        }
    }
    Ok(())
}

impl HolidayCalendar {
    /// The table shipped in `data/holidays.toml` (fixed holidays; lunar tables for 1403, 1404
    /// and, provisionally, 1405). Clone it to edit.
    pub fn builtin() -> &'static HolidayCalendar {
        static BUILTIN: OnceLock<HolidayCalendar> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            Self::from_toml(include_str!("../data/holidays.toml"))
                .unwrap_or_else(|e| panic!("data/holidays.toml: {e}"))
        })
    }

    /// Parses a holiday file (the format of `data/holidays.toml`). Errors name the entry.
    pub fn from_toml(text: &str) -> Result<Self, ValidationError> {
        if text.len() > MAX_HOLIDAY_FILE_BYTES {
            return Err(holiday_error(format!(
                "the file is {} bytes; at most {MAX_HOLIDAY_FILE_BYTES}",
                text.len()
            )));
        }
        let file: HolidaysFile = toml::from_str(text).map_err(|e| holiday_error(e.to_string()))?;
        let mut calendar = Self::default();
        for (i, entry) in file.fixed.into_iter().enumerate() {
            // Esfand 30 exists only in leap years; a fixed holiday there would be skipped three
            // years in four, so accept days up to the month's length in a leap year.
            if !(1..=12).contains(&entry.month)
                || entry.day == 0
                || entry.day > days_in_month(1403, entry.month)
            {
                return Err(holiday_error(format!(
                    "fixed[{i}]: month {} day {} is not a Jalali date",
                    entry.month, entry.day
                )));
            }
            check_names(&entry.name_fa, &entry.name_en)
                .map_err(|m| holiday_error(format!("fixed[{i}]: {m}")))?;
            let holiday = Holiday {
                name_fa: entry.name_fa,
                name_en: entry.name_en,
                kind: HolidayKind::FixedSolar,
            };
            if calendar
                .fixed
                .insert((entry.month, entry.day), holiday)
                .is_some()
            {
                return Err(holiday_error(format!(
                    "fixed[{i}]: month {} day {} is listed twice",
                    entry.month, entry.day
                )));
            }
        }
        for (i, entry) in file.lunar.into_iter().enumerate() {
            let date = JalaliDate::parse(&entry.date)
                .map_err(|e| holiday_error(format!("lunar[{i}] date: {}", e.message)))?;
            calendar
                .add(date, entry.name_fa, entry.name_en)
                .map_err(|e| holiday_error(format!("lunar[{i}]: {}", e.message)))?;
        }
        Ok(calendar)
    }

    /// The calendar in the format of `data/holidays.toml` (comments are not kept).
    pub fn to_toml(&self) -> String {
        let file = HolidaysFile {
            fixed: self
                .fixed
                .iter()
                .map(|(&(month, day), h)| FixedEntry {
                    month,
                    day,
                    name_fa: h.name_fa.clone(),
                    name_en: h.name_en.clone(),
                })
                .collect(),
            lunar: self
                .lunar
                .iter()
                .map(|(date, h)| LunarEntry {
                    date: date.to_string(),
                    name_fa: h.name_fa.clone(),
                    name_en: h.name_en.clone(),
                })
                .collect(),
        };
        toml::to_string(&file).expect("a holiday table of strings and integers always serialises")
    }

    /// Adds a lunar holiday on a date. Refuses a second lunar holiday on the same date (merge the
    /// names instead), empty names, and more than [`MAX_LUNAR_HOLIDAYS_PER_YEAR`] in a year.
    pub fn add(
        &mut self,
        date: JalaliDate,
        name_fa: impl Into<String>,
        name_en: impl Into<String>,
    ) -> Result<(), ValidationError> {
        let (name_fa, name_en) = (name_fa.into(), name_en.into());
        check_names(&name_fa, &name_en)
            .map_err(|m| ValidationError::new("holiday", "invalid_holiday", m))?;
        if self.lunar.contains_key(&date) {
            return Err(ValidationError::new(
                "holiday",
                "duplicate_holiday",
                format!("{date} already has a lunar holiday"),
            ));
        }
        if self.lunar_in_year(date.year()).count() >= MAX_LUNAR_HOLIDAYS_PER_YEAR {
            return Err(ValidationError::new(
                "holiday",
                "too_many_holidays",
                format!(
                    "{} already has {MAX_LUNAR_HOLIDAYS_PER_YEAR} lunar holidays",
                    date.year()
                ),
            ));
        }
        self.lunar.insert(
            date,
            Holiday {
                name_fa,
                name_en,
                kind: HolidayKind::Lunar,
            },
        );
        Ok(())
    }

    /// Removes the lunar holiday on a date, returning it. Fixed holidays are law and change
    /// only through the file.
    pub fn remove(&mut self, date: JalaliDate) -> Option<Holiday> {
        self.lunar.remove(&date)
    }

    fn lunar_in_year(&self, year: i32) -> impl Iterator<Item = (&JalaliDate, &Holiday)> {
        let first = JalaliDate::new(year, 1, 1).ok();
        let last = JalaliDate::new(year, 12, days_in_month(year, 12)).ok();
        let range = first.zip(last);
        range
            .into_iter()
            .flat_map(move |(first, last)| self.lunar.range(first..=last))
    }

    /// Every holiday of a Jalali year in date order, fixed and lunar (a day may appear twice
    /// when a lunar holiday falls on a fixed one, fixed first).
    pub fn holidays_in_year(&self, year: i32) -> Vec<DatedHoliday<'_>> {
        let mut out: Vec<DatedHoliday<'_>> = self
            .fixed
            .iter()
            .filter_map(|(&(month, day), holiday)| {
                JalaliDate::new(year, month, day)
                    .ok()
                    .map(|date| DatedHoliday { date, holiday })
            })
            .chain(
                self.lunar_in_year(year)
                    .map(|(&date, holiday)| DatedHoliday { date, holiday }),
            )
            .collect();
        // Stable sort keeps fixed before lunar on a shared date.
        out.sort_by_key(|d| d.date);
        out
    }

    /// Whether a lunar table exists for a Jalali year; without one, only fixed holidays are known
    /// and planners should warn.
    pub fn has_lunar_table(&self, year: i32) -> bool {
        self.lunar_in_year(year).next().is_some()
    }

    /// Jalali years that have a lunar table.
    pub fn lunar_years(&self) -> Vec<i32> {
        let mut years: Vec<i32> = self.lunar.keys().map(|d| d.year()).collect();
        years.dedup();
        years
    }

    /// The holiday on a Gregorian date, if any (the fixed one when both apply).
    pub fn is_holiday(&self, date: NaiveDate) -> Option<&Holiday> {
        let j = JalaliDate::from_gregorian(date);
        self.fixed
            .get(&(j.month(), j.day()))
            .or_else(|| self.lunar.get(&j))
    }

    /// Every holiday on a Gregorian date (zero, one or two).
    pub fn holidays_on(&self, date: NaiveDate) -> Vec<&Holiday> {
        let j = JalaliDate::from_gregorian(date);
        self.fixed
            .get(&(j.month(), j.day()))
            .into_iter()
            .chain(self.lunar.get(&j))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn standard_calendar_is_valid() {
        OfficeCalendar::standard().validate().unwrap();
    }

    #[test]
    fn half_day_rounds_down_to_the_grid() {
        let h = DayHours::hm(8, 0, 15, 30).unwrap();
        // 7.5 h / 2 = 225 min; on a 20-minute grid that is 220 min → 11:40.
        assert_eq!(
            h.first_half(20).unwrap().close,
            NaiveTime::from_hms_opt(11, 40, 0).unwrap()
        );
        assert_eq!(
            h.first_half(15).unwrap().close,
            NaiveTime::from_hms_opt(11, 45, 0).unwrap()
        );
        let short = DayHours::hm(8, 0, 8, 50).unwrap();
        assert_eq!(short.first_half(30), None);
    }

    #[test]
    fn validation_catches_each_rule() {
        let mut c = OfficeCalendar::standard();
        c.slot_minutes = 4;
        assert_eq!(c.validate().unwrap_err().field, "slot_minutes");
        c.slot_minutes = 121;
        assert_eq!(c.validate().unwrap_err().field, "slot_minutes");

        let mut c = OfficeCalendar::standard();
        c.weekly.days[0] = Some(DayHours {
            open: NaiveTime::from_hms_opt(16, 0, 0).unwrap(),
            close: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
        });
        assert_eq!(c.validate().unwrap_err().code, "invalid_hours");

        let mut c = OfficeCalendar::standard();
        c.closures.push(Closure {
            from: g(2024, 5, 2),
            to: g(2024, 5, 1),
            reason: "x".into(),
        });
        assert_eq!(c.validate().unwrap_err().code, "invalid_range");

        let mut c = OfficeCalendar::standard();
        let o = |from, to| ThursdayOverride {
            from,
            to,
            rule: ThursdayRule::Open,
        };
        c.thursday_overrides = vec![
            o(g(2024, 5, 1), g(2024, 6, 1)),
            o(g(2024, 6, 1), g(2024, 7, 1)),
        ];
        assert_eq!(c.validate().unwrap_err().code, "overlapping_overrides");

        let mut c = OfficeCalendar::standard();
        c.weekly.days[6] = c.weekly.days[0];
        assert_eq!(c.validate().unwrap_err().code, "friday_hours");

        let mut c = OfficeCalendar::standard();
        let hours = DayHours::hm(8, 0, 12, 0).unwrap();
        c.extra_openings = vec![
            ExtraOpening {
                date: g(2024, 5, 3),
                hours,
            },
            ExtraOpening {
                date: g(2024, 5, 3),
                hours,
            },
        ];
        assert_eq!(c.validate().unwrap_err().code, "duplicate_date");
    }

    #[test]
    fn builtin_table_loads_and_round_trips_through_toml() {
        let builtin = HolidayCalendar::builtin();
        assert_eq!(builtin.lunar_years(), vec![1403, 1404, 1405]);
        let again = HolidayCalendar::from_toml(&builtin.to_toml()).unwrap();
        assert_eq!(&again, builtin);
    }

    #[test]
    fn bad_files_name_the_entry() {
        let err = HolidayCalendar::from_toml(
            "[[lunar]]\ndate = \"1402-12-30\"\nname_fa = \"x\"\nname_en = \"x\"\n",
        )
        .unwrap_err();
        assert!(err.message.contains("lunar[0]"), "{}", err.message);
        let err = HolidayCalendar::from_toml(
            "[[fixed]]\nmonth = 13\nday = 1\nname_fa = \"x\"\nname_en = \"x\"\n",
        )
        .unwrap_err();
        assert!(err.message.contains("fixed[0]"), "{}", err.message);
        let err = HolidayCalendar::from_toml("[[fixed]]\nmonth = 1\n").unwrap_err();
        assert_eq!(err.code, "invalid_holiday_table");
    }
}
