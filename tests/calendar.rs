//! The calendar layer through its public API: Jalali conversion, Iran time, holidays, opening
//! rules and slot generation.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use proptest::prelude::*;

use nobat::domain::calendar::{
    ClosedReason, Closure, DayHours, ExtraOpening, HolidayCalendar, HolidayKind, OfficeCalendar,
    ThursdayOverride, ThursdayRule,
};
use nobat::domain::jalali::{days_in_month, is_leap_year, JalaliDate};
use nobat::domain::slots::{
    check_slot_start, generate_slots, seats_in_range, seats_per_day, SlotRejection,
    MAX_SLOT_RANGE_DAYS,
};
use nobat::domain::time::{iran_instant, to_iran, Clock, ManualClock};
use nobat::domain::{AreaCode, GeoPoint, Office, OfficeId, OfficeKind};

fn g(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn j(y: i32, m: u8, d: u8) -> JalaliDate {
    JalaliDate::new(y, m, d).unwrap()
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

fn office(stations: u16, calendar: OfficeCalendar) -> Office {
    Office {
        id: OfficeId::parse("021-0001").unwrap(),
        name: "Tehran test office".into(),
        kind: OfficeKind::Pishkhan,
        province: "tehran".into(),
        city: "Tehran".into(),
        area_code: AreaCode::parse("021").unwrap(),
        location: GeoPoint::new(35.69, 51.39).unwrap(),
        stations,
        services: OfficeKind::Pishkhan.default_services(),
        calendar,
    }
}

fn holidays() -> &'static HolidayCalendar {
    HolidayCalendar::builtin()
}

fn tehran(date: NaiveDate, h: u32, m: u32) -> DateTime<FixedOffset> {
    iran_instant(date, hm(h, m)).unwrap()
}

// ---------------------------------------------------------------- Jalali

#[test]
fn known_jalali_gregorian_pairs() {
    // (Jalali, Gregorian) pairs from the official calendar and well-known dates.
    let pairs = [
        (j(1403, 1, 1), g(2024, 3, 20)),
        (j(1404, 1, 1), g(2025, 3, 21)),
        (j(1402, 12, 29), g(2024, 3, 19)),
        (j(1403, 12, 30), g(2025, 3, 20)),
        (j(1400, 1, 1), g(2021, 3, 21)),
        (j(1399, 1, 1), g(2020, 3, 20)),
        (j(1398, 1, 1), g(2019, 3, 21)),
        (j(1405, 1, 1), g(2026, 3, 21)),
        // The revolution's victory, 22 Bahman 1357 = 11 February 1979, and Khomeini's return
        // on 12 Bahman 1357 = 1 February 1979; hence 11 Bahman 1357 = 31 January 1979.
        (j(1357, 11, 22), g(1979, 2, 11)),
        (j(1357, 11, 12), g(1979, 2, 1)),
        (j(1357, 11, 11), g(1979, 1, 31)),
        // 1 Mehr 1403 = 22 September 2024 (the school year's first day).
        (j(1403, 7, 1), g(2024, 9, 22)),
    ];
    for (jalali, gregorian) in pairs {
        assert_eq!(jalali.to_gregorian(), gregorian, "{jalali}");
        assert_eq!(JalaliDate::from_gregorian(gregorian), jalali, "{gregorian}");
    }
}

#[test]
fn leap_years_and_month_lengths() {
    assert!(is_leap_year(1399) && is_leap_year(1403) && is_leap_year(1408));
    assert!(!is_leap_year(1400) && !is_leap_year(1402) && !is_leap_year(1404));
    assert_eq!(days_in_month(1403, 12), 30);
    assert_eq!(days_in_month(1404, 12), 29);
    let err = JalaliDate::new(1404, 12, 30).unwrap_err();
    assert_eq!(err.code, "invalid_jalali_date");
    assert!(JalaliDate::new(1403, 7, 31).is_err());
    assert!(JalaliDate::new(1403, 6, 31).is_ok());
}

#[test]
fn every_day_1300_to_1500_round_trips_and_is_consecutive() {
    let first = j(1300, 1, 1).to_gregorian();
    let last = j(1500, 12, days_in_month(1500, 12)).to_gregorian();
    let mut previous = JalaliDate::from_gregorian(first);
    assert_eq!(previous, j(1300, 1, 1));
    let mut count = 1u32;
    for day in first.iter_days().skip(1).take_while(|d| *d <= last) {
        let jalali = JalaliDate::from_gregorian(day);
        assert_eq!(jalali, previous.succ(), "{day} after {previous}");
        assert_eq!(jalali.to_gregorian(), day);
        previous = jalali;
        count += 1;
    }
    assert_eq!(previous, j(1500, 12, days_in_month(1500, 12)));
    let expected: u32 = (1300..=1500)
        .map(|y| if is_leap_year(y) { 366 } else { 365 })
        .sum();
    assert_eq!(count, expected);
}

proptest! {
    #[test]
    fn jalali_round_trip(year in 1300i32..=1500, month in 1u8..=12, day in 1u8..=31) {
        prop_assume!(day <= days_in_month(year, month));
        let date = JalaliDate::new(year, month, day).unwrap();
        let gregorian = date.to_gregorian();
        prop_assert_eq!(JalaliDate::from_gregorian(gregorian), date);
        prop_assert_eq!(
            JalaliDate::from_gregorian(gregorian.succ_opt().unwrap()),
            date.succ()
        );
        prop_assert_eq!(JalaliDate::parse(&date.to_string()).unwrap(), date);
    }

    #[test]
    fn gregorian_round_trip(days in 0i64..200_000) {
        let day = g(1900, 1, 1) + chrono::Duration::days(days);
        prop_assert_eq!(JalaliDate::from_gregorian(day).to_gregorian(), day);
    }
}

#[test]
fn display_and_persian_display() {
    let d = j(1403, 1, 1);
    assert_eq!(d.to_string(), "1403-01-01");
    assert_eq!(d.persian_display(), "۱ فروردین ۱۴۰۳");
    assert_eq!(d.weekday(), Weekday::Wed);
    assert_eq!(d.persian_display_with_weekday(), "چهارشنبه ۱ فروردین ۱۴۰۳");
    assert_eq!(j(1404, 12, 29).persian_display(), "۲۹ اسفند ۱۴۰۴");
    assert_eq!(d.month_name_en(), "Farvardin");
    assert_eq!(j(1403, 7, 5).month_name_en(), "Mehr");
    // 2024-03-22 is a Friday.
    assert_eq!(j(1403, 1, 3).weekday_name_fa(), "جمعه");
}

#[test]
fn parse_accepts_slashes_dashes_and_persian_digits() {
    let d = j(1403, 1, 1);
    assert_eq!(JalaliDate::parse("1403/01/01").unwrap(), d);
    assert_eq!(JalaliDate::parse("1403-01-01").unwrap(), d);
    assert_eq!(JalaliDate::parse(" 1403/1/1 ").unwrap(), d);
    assert_eq!(JalaliDate::parse("۱۴۰۳/۰۱/۰۱").unwrap(), d);
    assert_eq!(JalaliDate::parse("١٤٠٣-٠١-٠١").unwrap(), d);
    for bad in [
        "",
        "1403",
        "1403/01",
        "1403/01/01/01",
        "1403/13/01",
        "1402/12/30",
        "14a3/01/01",
        "1403/001/01",
        "1403//01",
    ] {
        let err = JalaliDate::parse(bad).unwrap_err();
        assert_eq!(err.code, "invalid_jalali_date", "{bad:?}");
    }
}

// ---------------------------------------------------------------- Iran time

#[test]
fn tehran_summer_2024_is_plus_0330() {
    let t = tehran(g(2024, 6, 1), 12, 0);
    assert_eq!(t.to_rfc3339(), "2024-06-01T12:00:00+03:30");
    let utc = Utc.with_ymd_and_hms(2024, 6, 1, 8, 30, 0).unwrap();
    assert_eq!(to_iran(utc), t);
}

#[test]
fn manual_clock_drives_time() {
    let start = Utc.with_ymd_and_hms(2024, 9, 22, 4, 30, 0).unwrap();
    let clock = ManualClock::new(start);
    clock.advance(chrono::Duration::hours(2));
    assert_eq!(
        to_iran(clock.now()).to_rfc3339(),
        "2024-09-22T10:00:00+03:30"
    );
}

// ---------------------------------------------------------------- holidays

#[test]
fn nowruz_and_13_farvardin_1403_are_closed() {
    let cal = OfficeCalendar::standard();
    // 2024-03-20..23 = 1..4 Farvardin 1403 (the 22nd is also a Friday: the holiday is reported).
    for day in 20..=23 {
        let date = g(2024, 3, day);
        assert_eq!(cal.hours_on(date, holidays()), None, "{date}");
        assert_eq!(
            cal.closed_reason(date, holidays()),
            Some(ClosedReason::Holiday("Nowruz".into()))
        );
    }
    // 24 March 2024 (5 Farvardin, a Sunday) is a working day.
    assert!(cal.hours_on(g(2024, 3, 24), holidays()).is_some());
    // 12 Farvardin (Sunday 2024-03-31) and 13 Farvardin (Monday 2024-04-01).
    assert!(matches!(
        cal.closed_reason(g(2024, 3, 31), holidays()),
        Some(ClosedReason::Holiday(_))
    ));
    assert_eq!(
        cal.closed_reason(g(2024, 4, 1), holidays()),
        Some(ClosedReason::Holiday("Nature Day (Sizdah Bedar)".into()))
    );
    // 13 Farvardin 1403 is also the martyrdom of Imam Ali: both are listed.
    assert_eq!(holidays().holidays_on(g(2024, 4, 1)).len(), 2);
    // Eid al-Fitr 1403: 22 and 23 Farvardin = 2024-04-10 (Wed) and 2024-04-11 (Thu).
    assert_eq!(
        holidays()
            .is_holiday(g(2024, 4, 10))
            .map(|h| h.name_en.as_str()),
        Some("Eid al-Fitr")
    );
    assert!(cal.hours_on(g(2024, 4, 11), holidays()).is_none());
    // Ashura 1403 = 2024-07-16.
    assert_eq!(
        holidays()
            .is_holiday(g(2024, 7, 16))
            .map(|h| h.name_en.as_str()),
        Some("Ashura")
    );
}

#[test]
fn fixed_holidays_apply_to_every_year() {
    let h = holidays();
    for year in [1395, 1403, 1410] {
        for (m, d) in [
            (1, 1),
            (1, 4),
            (1, 12),
            (1, 13),
            (3, 14),
            (3, 15),
            (11, 22),
            (12, 29),
        ] {
            let date = j(year, m, d).to_gregorian();
            let holiday = h
                .is_holiday(date)
                .unwrap_or_else(|| panic!("{year}-{m}-{d}"));
            assert_eq!(holiday.kind, HolidayKind::FixedSolar);
        }
        assert!(h.is_holiday(j(year, 1, 5).to_gregorian()).is_none());
    }
}

#[test]
fn builtin_lunar_tables_have_about_fourteen_days_a_year() {
    let h = holidays();
    for year in [1403, 1404, 1405] {
        let lunar = h
            .holidays_in_year(year)
            .into_iter()
            .filter(|d| d.holiday.kind == HolidayKind::Lunar)
            .count();
        assert!((14..=19).contains(&lunar), "{year}: {lunar}");
        assert!(h.has_lunar_table(year));
    }
    assert!(!h.has_lunar_table(1406));
    let all_1403 = h.holidays_in_year(1403);
    assert!(all_1403.windows(2).all(|w| w[0].date <= w[1].date));
    assert_eq!(all_1403.first().unwrap().date, j(1403, 1, 1));
}

#[test]
fn administrator_edits_the_lunar_table() {
    let mut h = holidays().clone();
    let date = j(1406, 1, 14);
    assert!(h.is_holiday(date.to_gregorian()).is_none());
    h.add(date, "شهادت امام جعفر صادق (ع)", "Martyrdom of Imam Sadiq")
        .unwrap();
    assert_eq!(
        h.is_holiday(date.to_gregorian()).unwrap().name_en,
        "Martyrdom of Imam Sadiq"
    );
    assert_eq!(h.add(date, "x", "x").unwrap_err().code, "duplicate_holiday");
    assert_eq!(
        h.add(j(1406, 2, 1), "", "x").unwrap_err().code,
        "invalid_holiday"
    );
    // The edit survives serialisation.
    let reloaded = HolidayCalendar::from_toml(&h.to_toml()).unwrap();
    assert!(reloaded.is_holiday(date.to_gregorian()).is_some());
    assert!(h.remove(date).is_some());
    assert!(h.remove(date).is_none());
    assert!(h.is_holiday(date.to_gregorian()).is_none());
    // Fixed holidays cannot be removed through the lunar table.
    assert!(h.remove(j(1406, 1, 1)).is_none());
    assert!(h.is_holiday(j(1406, 1, 1).to_gregorian()).is_some());
}

// ---------------------------------------------------------------- opening rules

#[test]
fn fridays_are_closed() {
    let cal = OfficeCalendar::standard();
    let friday = g(2024, 10, 4);
    assert_eq!(friday.weekday(), Weekday::Fri);
    assert_eq!(cal.hours_on(friday, holidays()), None);
    assert_eq!(
        cal.closed_reason(friday, holidays()),
        Some(ClosedReason::Friday)
    );
    let saturday = g(2024, 10, 5);
    assert_eq!(
        cal.hours_on(saturday, holidays()),
        Some(DayHours {
            open: hm(8, 0),
            close: hm(16, 0)
        })
    );
}

#[test]
fn thursday_under_each_rule() {
    let thursday = g(2024, 10, 3);
    assert_eq!(thursday.weekday(), Weekday::Thu);
    let mut cal = OfficeCalendar::standard();

    cal.thursday = ThursdayRule::HalfDay;
    assert_eq!(
        cal.hours_on(thursday, holidays()),
        Some(DayHours {
            open: hm(8, 0),
            close: hm(12, 0)
        })
    );

    cal.thursday = ThursdayRule::Open;
    assert_eq!(
        cal.hours_on(thursday, holidays()),
        Some(DayHours {
            open: hm(8, 0),
            close: hm(16, 0)
        })
    );

    cal.thursday = ThursdayRule::Closed;
    assert_eq!(cal.hours_on(thursday, holidays()), None);
    assert_eq!(
        cal.closed_reason(thursday, holidays()),
        Some(ClosedReason::NotAWorkingDay)
    );

    // A Thursday with its own hours: half of 07:30–14:10 (400 min) is 200 min, on a 15-minute
    // grid 195 min, so it closes at 10:45.
    cal.thursday = ThursdayRule::HalfDay;
    cal.weekly.days[5] = Some(DayHours {
        open: hm(7, 30),
        close: hm(14, 10),
    });
    assert_eq!(
        cal.hours_on(thursday, holidays()),
        Some(DayHours {
            open: hm(7, 30),
            close: hm(10, 45)
        })
    );

    // A dated override (a provincial decree for Mehr 1403) beats the default rule.
    let mut cal = OfficeCalendar::standard();
    cal.thursday_overrides.push(ThursdayOverride {
        from: j(1403, 7, 1).to_gregorian(),
        to: j(1403, 7, 30).to_gregorian(),
        rule: ThursdayRule::Closed,
    });
    cal.validate().unwrap();
    assert_eq!(cal.thursday_rule_on(thursday), ThursdayRule::Closed);
    assert_eq!(cal.hours_on(thursday, holidays()), None);
    let next_month_thursday = g(2024, 10, 24);
    assert_eq!(
        cal.thursday_rule_on(next_month_thursday),
        ThursdayRule::HalfDay
    );
    assert!(cal.hours_on(next_month_thursday, holidays()).is_some());
}

#[test]
fn closure_range_is_inclusive() {
    let mut cal = OfficeCalendar::standard();
    cal.closures.push(Closure {
        from: g(2024, 10, 6),
        to: g(2024, 10, 8),
        reason: "renovation".into(),
    });
    cal.validate().unwrap();
    assert!(cal.hours_on(g(2024, 10, 5), holidays()).is_some());
    for day in 6..=8 {
        assert_eq!(
            cal.closed_reason(g(2024, 10, day), holidays()),
            Some(ClosedReason::Closure("renovation".into()))
        );
    }
    assert!(cal.hours_on(g(2024, 10, 9), holidays()).is_some());
}

#[test]
fn extra_openings_win_over_friday_and_holidays() {
    let mut cal = OfficeCalendar::standard();
    let friday = g(2024, 10, 4);
    let surge = DayHours::hm(9, 0, 13, 0).unwrap();
    cal.extra_openings.push(ExtraOpening {
        date: friday,
        hours: surge,
    });
    // Also open on 13 Farvardin 1404 (2025-04-02) and during a closure.
    let sizdah = j(1404, 1, 13).to_gregorian();
    cal.extra_openings.push(ExtraOpening {
        date: sizdah,
        hours: surge,
    });
    cal.closures.push(Closure {
        from: sizdah,
        to: sizdah,
        reason: "x".into(),
    });
    cal.validate().unwrap();
    assert_eq!(cal.hours_on(friday, holidays()), Some(surge));
    assert_eq!(cal.hours_on(sizdah, holidays()), Some(surge));
    assert_eq!(cal.closed_reason(friday, holidays()), None);
    // The Friday after stays closed.
    assert_eq!(cal.hours_on(g(2024, 10, 11), holidays()), None);

    let o = office(2, cal);
    let slots = generate_slots(&o, friday, friday, holidays()).unwrap();
    assert_eq!(slots.len(), 16); // 4 hours of 15-minute slots
    assert_eq!(slots[0].start, tehran(friday, 9, 0));
    assert_eq!(seats_per_day(&o, friday, holidays()), 32);
}

// ---------------------------------------------------------------- slots

#[test]
fn mehr_1403_slot_count() {
    // Mehr 1403 = 2024-09-22 (Sunday) .. 2024-10-21 (Monday), 30 days. Counted by hand from a
    // wall calendar: Fridays 27 Sep, 4, 11, 18 Oct (4); Thursdays 26 Sep, 3, 10, 17 Oct (4);
    // no public holiday in Mehr 1403 (the lunar ones fall on 31 Shahrivar and 15 Azar);
    // so 30 − 4 − 4 = 22 full days.
    let (full_days, thursdays) = (22u32, 4u32);
    // A full day 08:00–16:00 is 32 slots of 15 minutes; a half Thursday 08:00–12:00 is 16.
    let expected_slots = full_days * 32 + thursdays * 16;
    assert_eq!(expected_slots, 768);

    // Cross-check the hand count with chrono weekdays (no holiday logic involved).
    let from = j(1403, 7, 1).to_gregorian();
    let to = j(1403, 7, 30).to_gregorian();
    assert_eq!((from, to), (g(2024, 9, 22), g(2024, 10, 21)));
    let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    assert_eq!(days.len(), 30);
    let count = |w| days.iter().filter(|d| d.weekday() == w).count() as u32;
    assert_eq!(count(Weekday::Fri), 4);
    assert_eq!(count(Weekday::Thu), thursdays);

    let stations = 3;
    let o = office(stations, OfficeCalendar::standard());
    let slots = generate_slots(&o, from, to, holidays()).unwrap();
    assert_eq!(slots.len() as u32, expected_slots);
    assert!(slots
        .iter()
        .all(|s| s.seats == stations && s.duration_minutes == 15));
    assert!(slots.windows(2).all(|w| w[0].start < w[1].start));
    let seats: u32 = days.iter().map(|d| seats_per_day(&o, *d, holidays())).sum();
    assert_eq!(seats, expected_slots * u32::from(stations));
    assert_eq!(
        seats_in_range(&o, from, to, holidays()).unwrap(),
        u64::from(expected_slots * u32::from(stations))
    );

    // First and last slot of the month, in Iran time.
    assert_eq!(slots[0].start.to_rfc3339(), "2024-09-22T08:00:00+03:30");
    assert_eq!(
        slots.last().unwrap().start.to_rfc3339(),
        "2024-10-21T15:45:00+03:30"
    );
    assert_eq!(
        slots.last().unwrap().end().to_rfc3339(),
        "2024-10-21T16:00:00+03:30"
    );
}

#[test]
fn farvardin_1403_loses_its_holidays() {
    // Farvardin 1403 = 2024-03-20..2024-04-19, 31 days. Closed: 1–4 (Nowruz, incl. Friday the
    // 3rd), 12, 13, 22, 23 (Eid al-Fitr; the 23rd is a Thursday); other Fridays: 10, 17, 24, 31
    // Farvardin. Thursdays left: 9, 16, 30 Farvardin. Full days: 31 − 4 − 2 − 2 − 4 − 3 = 16.
    let o = office(1, OfficeCalendar::standard());
    let slots = generate_slots(&o, g(2024, 3, 20), g(2024, 4, 19), holidays()).unwrap();
    assert_eq!(slots.len(), 16 * 32 + 3 * 16);
}

#[test]
fn range_bounds_are_enforced() {
    let o = office(1, OfficeCalendar::standard());
    let from = g(2024, 3, 20);
    let ok_to = from + chrono::Duration::days(MAX_SLOT_RANGE_DAYS - 1);
    assert!(generate_slots(&o, from, ok_to, holidays()).is_ok());
    let err = generate_slots(&o, from, ok_to.succ_opt().unwrap(), holidays()).unwrap_err();
    assert_eq!(err.code, "range_too_long");
    let err = generate_slots(&o, from, from.pred_opt().unwrap(), holidays()).unwrap_err();
    assert_eq!(err.code, "invalid_range");
    let mut bad = OfficeCalendar::standard();
    bad.slot_minutes = 0;
    let err = generate_slots(&office(1, bad), from, from, holidays()).unwrap_err();
    assert_eq!(err.field, "slot_minutes");
}

#[test]
fn requested_starts_are_checked() {
    let o = office(2, OfficeCalendar::standard());
    let sunday = g(2024, 10, 6);
    let h = holidays();
    assert_eq!(check_slot_start(&o, tehran(sunday, 8, 0), h), Ok(()));
    assert_eq!(check_slot_start(&o, tehran(sunday, 15, 45), h), Ok(()));
    // The same instant written in UTC is accepted too.
    let utc: DateTime<FixedOffset> = "2024-10-06T04:30:00Z".parse().unwrap();
    assert_eq!(check_slot_start(&o, utc, h), Ok(()));

    let off_grid = check_slot_start(&o, tehran(sunday, 8, 7), h).unwrap_err();
    assert!(matches!(
        off_grid,
        SlotRejection::OffGrid {
            slot_minutes: 15,
            ..
        }
    ));
    assert_eq!(off_grid.code(), "off_grid");
    let with_seconds = tehran(sunday, 8, 0) + chrono::Duration::seconds(30);
    assert!(matches!(
        check_slot_start(&o, with_seconds, h),
        Err(SlotRejection::OffGrid { .. })
    ));

    for (hh, mm) in [(7, 45), (15, 50), (16, 0), (20, 0)] {
        assert!(
            matches!(
                check_slot_start(&o, tehran(sunday, hh, mm), h),
                Err(SlotRejection::OutsideHours { .. })
            ),
            "{hh}:{mm}"
        );
    }
    // Thursday afternoon is outside the half day.
    assert!(matches!(
        check_slot_start(&o, tehran(g(2024, 10, 3), 12, 0), h),
        Err(SlotRejection::OutsideHours { .. })
    ));
    assert_eq!(
        check_slot_start(&o, tehran(g(2024, 10, 4), 9, 0), h),
        Err(SlotRejection::ClosedDay(ClosedReason::Friday))
    );
    assert!(matches!(
        check_slot_start(&o, tehran(g(2024, 4, 1), 9, 0), h),
        Err(SlotRejection::ClosedDay(ClosedReason::Holiday(_)))
    ));
    // Every generated slot passes the check.
    for slot in generate_slots(&o, sunday, g(2024, 10, 12), h).unwrap() {
        assert_eq!(
            check_slot_start(&o, slot.start, h),
            Ok(()),
            "{}",
            slot.start
        );
    }
}

#[test]
fn invalid_calendars_are_refused() {
    let mut cal = OfficeCalendar::standard();
    cal.slot_minutes = 150;
    assert_eq!(cal.validate().unwrap_err().code, "invalid_slot_minutes");
    let mut cal = OfficeCalendar::standard();
    cal.closures.push(Closure {
        from: g(2024, 1, 2),
        to: g(2024, 1, 1),
        reason: "x".into(),
    });
    assert_eq!(cal.validate().unwrap_err().code, "invalid_range");
    assert!(DayHours::hm(16, 0, 8, 0).is_err());
    assert!(DayHours::hm(8, 0, 8, 0).is_err());
    assert!(DayHours::hm(25, 0, 26, 0).is_err());
}
