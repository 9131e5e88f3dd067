//! A ballot's close on the national network (`scenarios/iran-national.toml`: 2,200 offices,
//! every slot of 30 days withheld), with entries from the scenario's synthetic citizens: a
//! third with an earliest date, parts of the day mixed, the elderly in a priority class.
//!
//! Phases are printed once for the full size (`BALLOT_ENTRIES`, default 1,000,000: build,
//! close, results, verify), then criterion samples the close on a tenth of it.
//! `cargo bench --bench ballot`; `BALLOT_ENTRIES=200000` for a quicker run.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nobat::planning::ballot::{
    close, close_observed, entry_key, results, verify, BallotInput, BallotOffice, BallotRecord,
    BallotSeed, BallotTerms, Condition, EntrantFacts, Entry, PartOfDay, Preferences, PriorityRule,
    WithheldSeats, DEFAULT_MAX_KM, DEFAULT_WAIT_KM_PER_DAY, RECORD_FORMAT,
};
use nobat::planning::scenario::Scenario;

const DAYS: u64 = 30;

fn ballot(entries_max: u64) -> BallotInput {
    let scenario = Scenario::load("scenarios/iran-national.toml").expect("iran-national loads");
    let holidays = scenario.holidays();
    let from = scenario.calendar.start_date;
    let offices = scenario.generate_network();
    let terms = BallotTerms {
        service: "first_issuance".into(),
        from_date: from,
        to_date: from + chrono::Days::new(DAYS - 1),
        max_km: DEFAULT_MAX_KM,
        wait_km_per_day: DEFAULT_WAIT_KM_PER_DAY,
        priority_rules: vec![PriorityRule {
            when: Condition::AgeAtLeast(70),
            class: 1,
        }],
    };
    let mut seats = Vec::new();
    for o in &offices {
        for d in 0..DAYS {
            for slot in nobat::domain::slots::slots_on(o, from + chrono::Days::new(d), &holidays) {
                seats.push(WithheldSeats {
                    office_id: o.id.to_string(),
                    date: slot.start.date_naive(),
                    start: slot.start.time(),
                    seats: u32::from(slot.seats),
                });
            }
        }
    }
    let generator = scenario.citizen_generator();
    let salt = [3u8; 32];
    let entries = (0..generator.count())
        .filter_map(|i| generator.citizen(i))
        .filter(|c| c.eligibility(from).is_eligible())
        .take(entries_max as usize)
        .enumerate()
        .map(|(i, c)| {
            let facts = EntrantFacts {
                birth_date: c.birth_date,
                province: &c.province,
                home: c.location,
            };
            Entry {
                key: entry_key(&salt, &c.national_code.to_string()),
                home: c.location,
                province: Some(c.province.clone()),
                priority: terms.priority_of(&facts),
                preferences: Preferences {
                    earliest_date: (i % 3 == 0).then(|| from + chrono::Days::new((i % 10) as u64)),
                    part_of_day: [PartOfDay::Any, PartOfDay::Morning, PartOfDay::Afternoon][i % 3],
                    ..Preferences::default()
                },
            }
        })
        .collect();
    BallotInput {
        terms,
        offices: offices
            .iter()
            .map(|o| BallotOffice {
                id: o.id.to_string(),
                location: o.location,
                province: Some(o.province.clone()),
            })
            .collect(),
        seats,
        entries,
    }
}

fn phases(entries: u64) {
    let started = Instant::now();
    let input = ballot(entries);
    let built = started.elapsed();
    let seed = BallotSeed::from_bytes([1; 32]);
    let t = Instant::now();
    let mut marks = Vec::new();
    let outcome = close_observed(&input, &seed, &mut |p| marks.push((p, t.elapsed())))
        .expect("the close runs");
    let closed = t.elapsed();
    let mut last = std::time::Duration::ZERO;
    let steps: Vec<String> = marks
        .iter()
        .map(|(p, at)| {
            let step = format!("{p:?} {:.1} s", (*at - last).as_secs_f64());
            last = *at;
            step
        })
        .collect();
    let t = Instant::now();
    let figures = results(&input, &outcome);
    let summed = t.elapsed();
    let seats: u64 = input.seats.iter().map(|s| u64::from(s.seats)).sum();
    let record = BallotRecord {
        format: RECORD_FORMAT,
        ballot_id: "bench".into(),
        commitment: seed.commitment(),
        seed: seed.to_hex(),
        input,
        placements: outcome.placements,
        unplaced: outcome.unplaced,
    };
    let t = Instant::now();
    let verified = verify(&record).expect("the record verifies");
    let verify_s = t.elapsed();
    eprintln!(
        "ballot: {} entries, {} seats in {} slots; placed {} (kept part of day {}), objective {} m, \
         Jain {:.3}; build {:.1} s, close {:.1} s ({}, then ranks and leftovers; allocator: \
         {} pricing rounds, {} pivots), results {:.2} s, verify {:.1} s",
        record.input.entries.len(),
        seats,
        record.input.seats.len(),
        verified.placed,
        figures.part_of_day_kept,
        verified.total_cost_m,
        figures.jain_index_placed_share,
        built.as_secs_f64(),
        closed.as_secs_f64(),
        steps.join(", "),
        outcome.stats.pricing_rounds,
        outcome.stats.pivots,
        summed.as_secs_f64(),
        verify_s.as_secs_f64(),
    );
}

fn bench(c: &mut Criterion) {
    let entries: u64 = std::env::var("BALLOT_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    phases(entries);
    let sampled = ballot(entries / 10);
    let seed = BallotSeed::from_bytes([1; 32]);
    let mut group = c.benchmark_group("ballot");
    group.sample_size(10);
    group.throughput(Throughput::Elements(sampled.entries.len() as u64));
    group.bench_function(format!("close/{}", sampled.entries.len()), |b| {
        b.iter(|| black_box(close(&sampled, &seed).expect("the close runs")))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
