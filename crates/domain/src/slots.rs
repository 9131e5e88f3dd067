//! Appointment slots: the grid of start times an office offers, derived from its calendar.
//!
//! A slot starts at the opening time or a whole number of slot lengths after it, and must end
//! by the closing time. Every slot has `stations` seats. Slots are computed, never stored here.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, Timelike};
use thiserror::Error;

use super::calendar::{ClosedReason, DayHours, HolidayCalendar};
use super::error::ValidationError;
use super::office::{Office, OfficeId};
use super::time::{iran_instant, IRAN_TZ};

/// Longest date range one call of [`generate_slots`] covers, in days (inclusive count): a
/// year, leap or not. Callers page through longer ranges.
pub const MAX_SLOT_RANGE_DAYS: i64 = 366;

/// One appointment slot of an office.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub office_id: OfficeId,
    /// Start, Iran time (RFC 3339 shows `+03:30`).
    pub start: DateTime<FixedOffset>,
    pub duration_minutes: u16,
    /// How many applicants the slot takes: the office's stations.
    pub seats: u16,
}

impl Slot {
    pub fn end(&self) -> DateTime<FixedOffset> {
        self.start + Duration::minutes(i64::from(self.duration_minutes))
    }

    /// The Iran local date of the slot.
    pub fn local_date(&self) -> NaiveDate {
        self.start.with_timezone(&IRAN_TZ).date_naive()
    }
}

/// Why a requested slot start is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SlotRejection {
    #[error("the office is closed that day: {0}")]
    ClosedDay(ClosedReason),
    #[error("the start is outside the office's hours that day ({open}–{close})")]
    OutsideHours { open: NaiveTime, close: NaiveTime },
    #[error("the start is not on the office's {slot_minutes}-minute grid from {open}")]
    OffGrid { open: NaiveTime, slot_minutes: u16 },
}

impl SlotRejection {
    /// Stable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            SlotRejection::ClosedDay(_) => "closed_day",
            SlotRejection::OutsideHours { .. } => "outside_hours",
            SlotRejection::OffGrid { .. } => "off_grid",
        }
    }
}

/// Local start times of the slots of one open day.
fn slot_start_times(hours: DayHours, slot_minutes: u16) -> impl Iterator<Item = NaiveTime> {
    let step = u32::from(slot_minutes);
    (0..hours.slot_count(slot_minutes))
        .map(move |k| hours.open + Duration::minutes(i64::from(k * step)))
}

/// The slots of one office on one date (empty when closed). Assumes a validated calendar.
pub fn slots_on(office: &Office, date: NaiveDate, holidays: &HolidayCalendar) -> Vec<Slot> {
    let calendar = &office.calendar;
    let Some(hours) = calendar.hours_on(date, holidays) else {
        return Vec::new();
    };
    slot_start_times(hours, calendar.slot_minutes)
        // A local time skipped by a past DST change has no instant; no slot starts then.
        .filter_map(|time| iran_instant(date, time).ok())
        .map(|start| Slot {
            office_id: office.id.clone(),
            start,
            duration_minutes: calendar.slot_minutes,
            seats: office.stations,
        })
        .collect()
}

/// All slots of an office from `from` to `to_inclusive`, in time order. Refuses an invalid
/// calendar, a reversed range, and ranges longer than [`MAX_SLOT_RANGE_DAYS`].
pub fn generate_slots(
    office: &Office,
    from: NaiveDate,
    to_inclusive: NaiveDate,
    holidays: &HolidayCalendar,
) -> Result<Vec<Slot>, ValidationError> {
    office.calendar.validate()?;
    if to_inclusive < from {
        return Err(ValidationError::new(
            "to",
            "invalid_range",
            format!("the range ends ({to_inclusive}) before it starts ({from})"),
        ));
    }
    let days = (to_inclusive - from).num_days() + 1;
    if days > MAX_SLOT_RANGE_DAYS {
        return Err(ValidationError::new(
            "to",
            "range_too_long",
            format!("at most {MAX_SLOT_RANGE_DAYS} days per request, got {days}"),
        ));
    }
    Ok(from
        .iter_days()
        .take(days as usize)
        .flat_map(|date| slots_on(office, date, holidays))
        .collect())
}

/// Checks that a requested start is a slot the office offers: an open day, within its hours
/// (the whole slot fits before closing), on the grid. The start may carry any offset; it is
/// read in Iran time.
pub fn check_slot_start(
    office: &Office,
    start: DateTime<FixedOffset>,
    holidays: &HolidayCalendar,
) -> Result<(), SlotRejection> {
    let local = start.with_timezone(&IRAN_TZ).naive_local();
    let calendar = &office.calendar;
    let hours = calendar
        .day_status(local.date(), holidays)
        .map_err(SlotRejection::ClosedDay)?;
    let minute_of_day = local.num_seconds_from_midnight() / 60;
    let slot = u32::from(calendar.slot_minutes);
    if minute_of_day < hours.open_minute_of_day()
        || minute_of_day + slot > hours.close_minute_of_day()
    {
        return Err(SlotRejection::OutsideHours {
            open: hours.open,
            close: hours.close,
        });
    }
    let on_grid = slot > 0
        && local.second() == 0
        && local.nanosecond() == 0
        && (minute_of_day - hours.open_minute_of_day()) % slot == 0;
    if !on_grid {
        return Err(SlotRejection::OffGrid {
            open: hours.open,
            slot_minutes: calendar.slot_minutes,
        });
    }
    Ok(())
}

/// Seats an office offers on a date: slots × stations (0 when closed). Planners and the
/// allocator use this as the day's capacity.
pub fn seats_per_day(office: &Office, date: NaiveDate, holidays: &HolidayCalendar) -> u32 {
    office.calendar.hours_on(date, holidays).map_or(0, |h| {
        h.slot_count(office.calendar.slot_minutes) * u32::from(office.stations)
    })
}

/// Seats over a date range (inclusive), bounded like [`generate_slots`].
pub fn seats_in_range(
    office: &Office,
    from: NaiveDate,
    to_inclusive: NaiveDate,
    holidays: &HolidayCalendar,
) -> Result<u64, ValidationError> {
    if to_inclusive < from || (to_inclusive - from).num_days() + 1 > MAX_SLOT_RANGE_DAYS {
        return Err(ValidationError::new(
            "to",
            "invalid_range",
            format!(
                "a range of 1 to {MAX_SLOT_RANGE_DAYS} days is needed, got {from}..={to_inclusive}"
            ),
        ));
    }
    Ok(from
        .iter_days()
        .take_while(|d| *d <= to_inclusive)
        .map(|d| u64::from(seats_per_day(office, d, holidays)))
        .sum())
}
