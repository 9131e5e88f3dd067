//! Iran time and the clock.
//!
//! Every opening hour and slot is Iran local time. Instants are stored as UTC and shown as
//! `DateTime<FixedOffset>` so that RFC 3339 output carries the offset (`+03:30`). Iran observed
//! daylight saving time until 2022; `chrono_tz::Asia::Tehran` knows the history, so past dates
//! may carry `+04:30`.
//!
//! Time is an input: the engine asks a [`Clock`] and tests drive a [`ManualClock`].

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{
    DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
};
use chrono_tz::Tz;

use super::error::ValidationError;

/// Iran Standard Time with its history (UTC+03:30 since DST was abolished in 2022).
pub const IRAN_TZ: Tz = chrono_tz::Asia::Tehran;

/// An instant in Iran time, with the offset that applied then.
pub fn to_iran(instant: DateTime<Utc>) -> DateTime<FixedOffset> {
    instant.with_timezone(&IRAN_TZ).fixed_offset()
}

/// Iran local date and time of an instant.
pub fn iran_local(instant: DateTime<Utc>) -> NaiveDateTime {
    instant.with_timezone(&IRAN_TZ).naive_local()
}

/// Iran local date of an instant ("today" for an office).
pub fn iran_date(instant: DateTime<Utc>) -> NaiveDate {
    iran_local(instant).date()
}

/// The instant of an Iran local date and time. Times that did not exist (skipped by a past
/// spring-forward) are refused; times that occurred twice (a past fall-back) take the earlier.
pub fn iran_instant(
    date: NaiveDate,
    time: NaiveTime,
) -> Result<DateTime<FixedOffset>, ValidationError> {
    match IRAN_TZ.from_local_datetime(&date.and_time(time)) {
        LocalResult::Single(t) => Ok(t.fixed_offset()),
        LocalResult::Ambiguous(earlier, _) => Ok(earlier.fixed_offset()),
        LocalResult::None => Err(ValidationError::new(
            "time",
            "nonexistent_local_time",
            format!("{date} {time} did not exist in Iran time (clocks were moved forward)"),
        )),
    }
}

/// Any instant, re-expressed in Iran time (a request may arrive as `…Z` or `+03:30`).
pub fn in_iran_time(instant: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
    to_iran(instant.with_timezone(&Utc))
}

/// Where the current time comes from. The engine never reads the wall clock itself.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock, for the server and the CLI (the edges), never for the engine's tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to. Thread-safe (a test may share it with a server task);
/// stores microseconds since the Unix epoch in an atomic, so it never blocks or poisons.
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicI64,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            micros: AtomicI64::new(start.timestamp_micros()),
        }
    }

    pub fn set(&self, instant: DateTime<Utc>) {
        self.micros
            .store(instant.timestamp_micros(), Ordering::SeqCst);
    }

    /// Moves the clock by `step` (negative steps move it back, for tests of clock skew).
    pub fn advance(&self, step: chrono::Duration) {
        // A step without a microsecond count (beyond ±292,000 years) saturates rather than wraps.
        let step_micros = step
            .num_microseconds()
            .unwrap_or(if step < chrono::Duration::zero() {
                i64::MIN
            } else {
                i64::MAX
            });
        let _ = self
            .micros
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |m| {
                Some(m.saturating_add(step_micros))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        let micros = self.micros.load(Ordering::SeqCst);
        // Out-of-range values can only come from saturating an absurd `advance`; pin them to
        // the representable extremes instead of panicking.
        DateTime::from_timestamp_micros(micros).unwrap_or(if micros < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summer_2024_is_plus_0330() {
        let d = NaiveDate::from_ymd_opt(2024, 6, 1).unwrap();
        let t = iran_instant(d, NaiveTime::from_hms_opt(12, 0, 0).unwrap()).unwrap();
        assert_eq!(t.offset().local_minus_utc(), 3 * 3600 + 1800);
        assert_eq!(t.to_rfc3339(), "2024-06-01T12:00:00+03:30");
        assert_eq!(
            t.with_timezone(&Utc).to_rfc3339(),
            "2024-06-01T08:30:00+00:00"
        );
    }

    #[test]
    fn summer_2021_had_daylight_saving() {
        let d = NaiveDate::from_ymd_opt(2021, 6, 1).unwrap();
        let t = iran_instant(d, NaiveTime::from_hms_opt(12, 0, 0).unwrap()).unwrap();
        assert_eq!(t.offset().local_minus_utc(), 4 * 3600 + 1800);
    }

    #[test]
    fn skipped_local_time_is_refused() {
        // 2021-03-22 00:00 → 01:00 (DST began at midnight on 2 Farvardin 1400).
        let d = NaiveDate::from_ymd_opt(2021, 3, 22).unwrap();
        let err = iran_instant(d, NaiveTime::from_hms_opt(0, 30, 0).unwrap()).unwrap_err();
        assert_eq!(err.code, "nonexistent_local_time");
    }

    #[test]
    fn utc_instant_to_iran_date_crosses_midnight() {
        // 21:00 UTC is 00:30 the next day in Tehran.
        let t = Utc.with_ymd_and_hms(2024, 6, 1, 21, 0, 0).unwrap();
        assert_eq!(iran_date(t), NaiveDate::from_ymd_opt(2024, 6, 2).unwrap());
        assert_eq!(to_iran(t).to_rfc3339(), "2024-06-02T00:30:00+03:30");
    }

    #[test]
    fn manual_clock_is_settable_and_advanceable_across_threads() {
        let start = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
        let clock = std::sync::Arc::new(ManualClock::new(start));
        assert_eq!(clock.now(), start);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let c = clock.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        c.advance(chrono::Duration::seconds(1));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(clock.now(), start + chrono::Duration::seconds(400));
        clock.set(start);
        assert_eq!(clock.now(), start);
        clock.advance(chrono::Duration::minutes(-1));
        assert_eq!(clock.now(), start - chrono::Duration::minutes(1));
    }
}
