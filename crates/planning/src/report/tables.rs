//! The simulation's CSV tables, written with the `csv` crate: values that hold a comma, a
//! quote or a line break are quoted (not altered), everything else is written as it always
//! was (same headers, integers as integers, utilisation with three decimals).

use std::io::Write;

use chrono::NaiveDate;
use serde::Serialize;

use super::jalali;
use crate::sim::{SimOutput, State, World};

/// Columns of `daily.csv` after the day, the registrations and the states.
const DAILY_TAIL: [&str; 8] = [
    "backlog",
    "enrolled_today",
    "no_shows_today",
    "cancellations_today",
    "reschedules_today",
    "enrol_seats_today",
    "pickups_today",
    "pickup_visits_today",
];

/// `daily.csv`: the national time series, one row per day with the count in every state.
pub fn write_daily<W: Write>(to: W, world: &World, out: &SimOutput) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(to);
    let mut header = vec![
        "day",
        "date",
        "date_jalali",
        "registered_today",
        "registered_total",
    ];
    header.extend(State::ALL.iter().map(|s| s.as_str()));
    header.extend(DAILY_TAIL);
    w.write_record(&header)?;
    let mut row: Vec<String> = Vec::with_capacity(header.len());
    for d in &out.days {
        row.clear();
        row.push(d.day.to_string());
        row.push(world.date(d.day).to_string());
        row.push(jalali(world, d.day));
        row.push(d.registered_today.to_string());
        row.push(d.registered_total.to_string());
        row.extend(d.states.iter().map(u64::to_string));
        row.extend(
            [
                d.backlog(),
                d.enrolled_today,
                d.no_shows_today,
                d.cancellations_today,
                d.reschedules_today,
                d.enrol_seats_today,
                d.pickups_today,
                d.pickup_visits_today,
            ]
            .iter()
            .map(u64::to_string),
        );
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}

#[derive(Serialize)]
struct ProvinceDay<'a> {
    day: usize,
    date: NaiveDate,
    province: &'a str,
    backlog: u64,
    enrolled: u64,
}

/// `provinces_daily.csv`: backlog and enrolments per province per day.
pub fn write_provinces_daily<W: Write>(to: W, world: &World, out: &SimOutput) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(to);
    for d in 0..out.days.len() {
        for p in &out.provinces {
            w.serialize(ProvinceDay {
                day: d,
                date: world.date(d as u32),
                province: &p.slug,
                backlog: p.backlog_daily.get(d).copied().unwrap_or(0),
                enrolled: p.enrolled_daily.get(d).copied().unwrap_or(0),
            })?;
        }
    }
    if out.days.is_empty() || out.provinces.is_empty() {
        // serde writes the header with the first row: without rows, write it by hand.
        w.write_record(["day", "date", "province", "backlog", "enrolled"])?;
    }
    w.flush()?;
    Ok(())
}

#[derive(Serialize)]
struct OfficeRow<'a> {
    office: &'a str,
    province: &'a str,
    kind: &'a str,
    town: &'a str,
    enrol_seats: u64,
    enrolled: u64,
    /// Three decimals, as the report has always written it (serde would print every digit).
    utilisation: String,
    no_shows: u64,
    pickup_visits: u64,
    pickups: u64,
}

/// `offices.csv`: seats, enrolments, utilisation and pickups per office (and mobile leg).
pub fn write_offices<W: Write>(to: W, out: &SimOutput) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(to);
    for o in &out.sites {
        w.serialize(OfficeRow {
            office: &o.id,
            province: &o.province,
            kind: &o.kind,
            town: &o.town,
            enrol_seats: o.enrol_seats,
            enrolled: o.enrolled,
            utilisation: format!("{:.3}", o.utilisation()),
            no_shows: o.no_shows,
            pickup_visits: o.pickup_visits,
            pickups: o.pickups,
        })?;
    }
    if out.sites.is_empty() {
        w.write_record([
            "office",
            "province",
            "kind",
            "town",
            "enrol_seats",
            "enrolled",
            "utilisation",
            "no_shows",
            "pickup_visits",
            "pickups",
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// A table written into memory (where writing cannot fail but on a bug).
pub(super) fn in_memory(write: impl FnOnce(&mut Vec<u8>) -> csv::Result<()>) -> String {
    let mut bytes = Vec::new();
    write(&mut bytes).expect("writing CSV to memory does not fail");
    String::from_utf8(bytes).expect("CSV of UTF-8 strings is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::offices_csv;
    use crate::sim::SiteResult;

    fn site(id: &str, town: &str) -> SiteResult {
        SiteResult {
            id: id.to_string(),
            province: "hormozgan".to_string(),
            kind: "post".to_string(),
            town: town.to_string(),
            enrol_seats: 3,
            enrolled: 2,
            no_shows: 1,
            pickup_visits: 0,
            pickups: 0,
        }
    }

    fn output(sites: Vec<SiteResult>) -> SimOutput {
        SimOutput {
            days: Vec::new(),
            provinces: Vec::new(),
            sites,
            distance_bands: [0; 4],
            enrolled_by_site_day: Vec::new(),
            seats_by_site_day: Vec::new(),
            horizon_days: 0,
        }
    }

    #[test]
    fn plain_values_are_written_as_before() {
        let csv = offices_csv(&output(vec![site("076-0001", "Bandar Abbas")]));
        assert_eq!(
            csv,
            "office,province,kind,town,enrol_seats,enrolled,utilisation,no_shows,pickup_visits,pickups\n\
             076-0001,hormozgan,post,Bandar Abbas,3,2,0.667,1,0,0\n"
        );
    }

    #[test]
    fn commas_quotes_and_line_breaks_round_trip() {
        let towns = [
            "Kish, island",
            "the \"old\" port",
            "two\nlines",
            "جزیره، کیش",
        ];
        let sites = towns
            .iter()
            .enumerate()
            .map(|(i, t)| site(&format!("076-000{i}"), t))
            .collect();
        let csv = offices_csv(&output(sites));
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let town = reader
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == "town")
            .unwrap();
        let read: Vec<String> = reader
            .records()
            .map(|r| r.unwrap()[town].to_string())
            .collect();
        assert_eq!(read, towns);
    }

    #[test]
    fn an_empty_table_still_has_its_header() {
        assert_eq!(
            offices_csv(&output(Vec::new())),
            "office,province,kind,town,enrol_seats,enrolled,utilisation,no_shows,pickup_visits,pickups\n"
        );
    }
}
