//! When an office is open: weekly hours, the Thursday rule, closures, extra openings.
//! (Holidays, the Iran time zone and slot generation build on these types.)

use chrono::{NaiveDate, NaiveTime};

/// Opening and closing time of one day, local Iran time; `close` is exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayHours {
    pub open: NaiveTime,
    pub close: NaiveTime,
}

/// Hours per weekday, indexed from Saturday (0) to Friday (6), the Iranian week.
/// `None` is closed. Thursday's entry is what an office keeps when its Thursday rule is `Open`.
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
