use chrono::{NaiveDate, NaiveTime};
use nobat_domain::GeoPoint;
use proptest::prelude::*;

use super::*;

fn date(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2027, 3, d).unwrap()
}

fn at(h: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, 0, 0).unwrap()
}

fn terms() -> BallotTerms {
    BallotTerms {
        service: "first_issuance".into(),
        from_date: date(1),
        to_date: date(5),
        max_km: 50.0,
        wait_km_per_day: 5.0,
        priority_rules: vec![],
    }
}

/// Two offices 0.1° of longitude apart (about 9 km at this latitude).
fn offices() -> Vec<BallotOffice> {
    ["A", "B"]
        .iter()
        .enumerate()
        .map(|(i, id)| BallotOffice {
            id: id.to_string(),
            location: GeoPoint {
                lat: 35.7,
                lon: 51.4 + 0.1 * i as f64,
            },
            province: Some("tehran".into()),
        })
        .collect()
}

fn seats(office: &str, day: u32, hour: u32, n: u32) -> WithheldSeats {
    WithheldSeats {
        office_id: office.into(),
        date: date(day),
        start: at(hour),
        seats: n,
    }
}

fn entry(key: &str, lon: f64) -> Entry {
    Entry {
        key: key.into(),
        home: GeoPoint { lat: 35.7, lon },
        province: Some("tehran".into()),
        priority: 0,
        preferences: Preferences::default(),
    }
}

fn seed() -> BallotSeed {
    BallotSeed::from_bytes([7; 32])
}

fn record(input: BallotInput) -> BallotRecord {
    let outcome = close(&input, &seed()).unwrap();
    BallotRecord {
        format: RECORD_FORMAT,
        ballot_id: "b1".into(),
        commitment: seed().commitment(),
        seed: seed().to_hex(),
        input,
        placements: outcome.placements,
        unplaced: outcome.unplaced,
    }
}

#[test]
fn the_nearest_earliest_seats_go_out_and_part_of_day_is_kept_where_seats_allow() {
    let mut morning = entry("m", 51.4);
    morning.preferences.part_of_day = PartOfDay::Morning;
    let mut afternoon = entry("p", 51.4);
    afternoon.preferences.part_of_day = PartOfDay::Afternoon;
    let input = BallotInput {
        terms: terms(),
        offices: offices(),
        seats: vec![
            seats("A", 1, 9, 1),
            seats("A", 1, 14, 1),
            seats("B", 1, 9, 5),
        ],
        entries: vec![afternoon, morning, entry("z", 51.5)],
    };
    let out = close(&input, &seed()).unwrap();
    let got: Vec<(&str, &str, NaiveTime, bool)> = out
        .placements
        .iter()
        .map(|p| {
            (
                p.key.as_str(),
                p.office_id.as_str(),
                p.start,
                p.part_of_day_kept,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("m", "A", at(9), true),
            ("p", "A", at(14), true),
            ("z", "B", at(9), true)
        ]
    );
    assert_eq!(out.placements[2].cost_m, 0);
    assert!(out.unplaced.is_empty());
    assert_eq!(out.leftover, vec![seats("B", 1, 9, 4)]);
    assert_eq!(
        out.total_cost_m,
        out.placements.iter().map(|p| p.cost_m).sum::<i64>()
    );
}

#[test]
fn a_higher_class_takes_the_last_seat_and_the_waitlist_follows_class_then_lottery() {
    let mut entries: Vec<Entry> = (0..6).map(|i| entry(&format!("e{i}"), 51.4)).collect();
    entries[5].priority = 2;
    entries[3].priority = 1;
    let input = BallotInput {
        terms: terms(),
        offices: offices(),
        seats: vec![seats("A", 1, 9, 1)],
        entries,
    };
    let out = close(&input, &seed()).unwrap();
    assert_eq!(out.placements.len(), 1);
    assert_eq!(out.placements[0].key, "e5");
    let ranks: Vec<(&str, u32)> = out
        .unplaced
        .iter()
        .map(|u| (u.key.as_str(), u.waitlist_rank))
        .collect();
    assert_eq!(ranks[0], ("e3", 1));
    let lottery = seed().to_hex();
    let mut rest: Vec<&str> = ["e0", "e1", "e2", "e4"].to_vec();
    rest.sort_by_key(|k| crate::allocator::lottery_digest(&lottery, k));
    let after: Vec<&str> = ranks[1..].iter().map(|(k, _)| *k).collect();
    assert_eq!(after, rest);
    assert!(out
        .unplaced
        .iter()
        .all(|u| u.reason == UnplacedReason::NoSeatWithinMaxKm));
}

#[test]
fn each_unplaced_entry_says_why() {
    let far = entry("far", 60.0);
    let mut late = entry("late", 51.4);
    late.preferences.earliest_date = Some(date(3));
    let mut gone = entry("gone", 51.4);
    gone.preferences.office_ids = vec!["C".into()];
    let mut named = entry("named", 60.0);
    named.preferences.office_ids = vec!["B".into()];
    let input = BallotInput {
        terms: terms(),
        offices: offices(),
        seats: vec![
            seats("A", 1, 9, 1),
            seats("A", 3, 9, 1),
            seats("B", 3, 9, 1),
            seats("B", 4, 9, 1),
        ],
        entries: vec![far, late, gone, named, entry("x", 51.4), entry("y", 51.4)],
    };
    let out = close(&input, &seed()).unwrap();
    let reason = |k: &str| out.unplaced.iter().find(|u| u.key == k).map(|u| u.reason);
    assert_eq!(reason("far"), Some(UnplacedReason::NoOfficeWithinMaxKm));
    assert_eq!(reason("gone"), Some(UnplacedReason::NoOfficeWithinMaxKm));
    // A named office is taken however far it is (about 780 km here): the entrant chose it.
    assert!(out
        .placements
        .iter()
        .any(|p| p.key == "named" && p.office_id == "B"));
    let placed: Vec<&str> = out.placements.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(placed, ["late", "named", "x", "y"]);
    let results = results(&input, &out);
    assert_eq!(results.entries, 6);
    assert_eq!(results.placed, 4);
    assert_eq!(results.unplaced_by_reason.values().sum::<u64>(), 2);
}

#[test]
fn a_seat_left_before_the_earliest_date_is_named_as_the_reason() {
    let mut late = entry("late", 51.4);
    late.preferences.earliest_date = Some(date(3));
    let input = BallotInput {
        terms: terms(),
        offices: offices(),
        seats: vec![seats("A", 1, 9, 1), seats("A", 3, 9, 1)],
        entries: vec![
            late.clone(),
            Entry {
                key: "other".into(),
                ..late
            },
        ],
    };
    let out = close(&input, &seed()).unwrap();
    assert_eq!(out.placements.len(), 1);
    assert_eq!(
        out.unplaced[0].reason,
        UnplacedReason::NoSeatAfterEarliestDate
    );
    assert_eq!(out.leftover, vec![seats("A", 1, 9, 1)]);
}

#[test]
fn bad_input_is_refused_with_what_is_wrong() {
    let base = BallotInput {
        terms: terms(),
        offices: offices(),
        seats: vec![seats("A", 1, 9, 1)],
        entries: vec![entry("e", 51.4)],
    };
    let mut twice = base.clone();
    twice.entries.push(entry("e", 51.5));
    let mut unknown = base.clone();
    unknown.seats.push(seats("Q", 1, 9, 1));
    let mut outside = base.clone();
    outside.seats.push(seats("A", 9, 9, 1));
    let mut repeated = base.clone();
    repeated.seats.push(seats("A", 1, 9, 2));
    for (bad, says) in [
        (twice, "entry e is listed twice"),
        (unknown, "unknown office Q"),
        (outside, "outside the ballot's days"),
        (repeated, "listed twice"),
    ] {
        match close(&bad, &seed()) {
            Err(CloseError::Input(m)) => assert!(m.contains(says), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_published_record_verifies_and_tampering_is_found() {
    let input = BallotInput {
        terms: terms(),
        offices: offices(),
        seats: vec![seats("A", 1, 9, 2), seats("B", 2, 15, 2)],
        entries: (0..6)
            .map(|i| entry(&format!("e{i}"), 51.4 + 0.02 * i as f64))
            .collect(),
    };
    let good = record(input);
    let verified = verify(&good).unwrap();
    assert_eq!((verified.entries, verified.placed), (6, 4));

    let mut swapped = good.clone();
    let (a, b) = (
        swapped.placements[0].key.clone(),
        swapped.unplaced[0].key.clone(),
    );
    swapped.placements[0].key = b.clone();
    swapped.unplaced[0].key = a;
    let found = verify(&swapped).unwrap_err();
    assert!(
        found
            .iter()
            .any(|f| matches!(f, Finding::Differs { key, .. } if *key == b)),
        "{found:?}"
    );

    let mut other_seed = good.clone();
    other_seed.seed = BallotSeed::from_bytes([8; 32]).to_hex();
    assert!(verify(&other_seed)
        .unwrap_err()
        .contains(&Finding::SeedNotCommitted));

    let mut crowded = good.clone();
    let first = crowded.placements[0].clone();
    for p in crowded.placements.iter_mut() {
        p.office_id = first.office_id.clone();
        p.date = first.date;
        p.start = first.start;
    }
    let found = verify(&crowded).unwrap_err();
    assert!(
        found.iter().any(|f| matches!(
            f,
            Finding::OverCapacity {
                placed: 4,
                seats: 2,
                ..
            }
        )),
        "{found:?}"
    );

    let mut dropped = good.clone();
    let lost = dropped.unplaced.pop().unwrap().key;
    assert!(verify(&dropped)
        .unwrap_err()
        .contains(&Finding::EntryMissing(lost)));

    let json = serde_json::to_string(&good).unwrap();
    let back: BallotRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(verify(&back).unwrap(), verified);
}

fn arb_input() -> impl Strategy<Value = BallotInput> {
    let slot = (
        0usize..3,
        1u32..=5,
        prop::sample::select(vec![8u32, 10, 13, 16]),
        0u32..4,
    );
    let wish = (
        0.0f64..0.6,
        0.0f64..0.6,
        prop::option::of(1u32..=5),
        prop::sample::select(vec![
            PartOfDay::Morning,
            PartOfDay::Afternoon,
            PartOfDay::Any,
        ]),
        0i32..3,
        prop::option::of(0usize..3),
    );
    (
        prop::collection::vec(slot, 1..12),
        prop::collection::vec(wish, 0..40),
    )
        .prop_map(|(slots, wishes)| {
            let offices: Vec<BallotOffice> = (0..3)
                .map(|i| BallotOffice {
                    id: format!("O{i}"),
                    location: GeoPoint {
                        lat: 35.5 + 0.2 * i as f64,
                        lon: 51.2 + 0.1 * i as f64,
                    },
                    province: Some(["tehran", "alborz", "qom"][i].into()),
                })
                .collect();
            let mut seen = std::collections::BTreeSet::new();
            let seats = slots
                .into_iter()
                .filter(|(o, d, h, _)| seen.insert((*o, *d, *h)))
                .map(|(o, d, h, n)| seats(&format!("O{o}"), d, h, n))
                .collect();
            let entries = wishes
                .into_iter()
                .enumerate()
                .map(|(i, (dlat, dlon, earliest, part, class, named))| Entry {
                    key: format!("k{i:03}"),
                    home: GeoPoint {
                        lat: 35.4 + dlat,
                        lon: 51.1 + dlon,
                    },
                    province: Some(["tehran", "alborz", "qom"][i % 3].into()),
                    priority: class,
                    preferences: Preferences {
                        office_ids: named.map(|o| vec![format!("O{o}")]).unwrap_or_default(),
                        earliest_date: earliest.map(date),
                        part_of_day: part,
                        ..Preferences::default()
                    },
                })
                .collect();
            BallotInput {
                terms: BallotTerms {
                    max_km: 30.0,
                    ..terms()
                },
                offices,
                seats,
                entries,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the ballot: no slot over its seats, every entry once, seats placed plus left
    /// over equal the seats withheld, the outcome independent of input order, the record
    /// verifies, and no unplaced entry could have taken a leftover seat within its limits.
    #[test]
    fn closes_keep_capacity_and_replay(input in arb_input(), rotate in 0usize..40) {
        let out = close(&input, &seed()).unwrap();
        let withheld: u32 = input.seats.iter().map(|s| s.seats).sum();
        let left: u32 = out.leftover.iter().map(|s| s.seats).sum();
        prop_assert_eq!(out.placements.len() as u32 + left, withheld);
        prop_assert_eq!(out.placements.len() + out.unplaced.len(), input.entries.len());
        for s in &input.seats {
            let n = out.placements.iter().filter(|p| (&p.office_id, p.date, p.start) == (&s.office_id, s.date, s.start)).count();
            prop_assert!(n as u32 <= s.seats);
        }
        for u in &out.unplaced {
            let e = input.entries.iter().find(|e| e.key == u.key).unwrap();
            let usable = out.leftover.iter().any(|s| {
                let o = input.offices.iter().find(|o| o.id == s.office_id).unwrap();
                let in_reach = if e.preferences.office_ids.is_empty() {
                    nobat_domain::geo::haversine_km(e.home.lat, e.home.lon, o.location.lat, o.location.lon) <= 30.0
                } else {
                    e.preferences.office_ids.contains(&o.id)
                };
                in_reach && e.preferences.earliest_date.is_none_or(|d| s.date >= d)
            });
            prop_assert!(!usable, "{} left out beside a free seat", u.key);
        }
        let mut shuffled = input.clone();
        let n = shuffled.entries.len().max(1);
        shuffled.entries.rotate_left(rotate % n);
        shuffled.seats.reverse();
        shuffled.offices.reverse();
        prop_assert_eq!(close(&shuffled, &seed()).unwrap(), out.clone());
        prop_assert!(verify(&record(input.clone())).is_ok());
        let r = results(&input, &out);
        prop_assert_eq!(r.placed as usize, out.placements.len());
        prop_assert_eq!(r.by_province.iter().map(|p| p.entries).sum::<u64>(), input.entries.len() as u64);
    }
}
