//! Simulator tests: hand-computed runs, conservation of applicants, capacity, determinism,
//! refusal of bad scenario sections, and the HTML report in headless Chromium.

use nobat::planning::scenario::Scenario;
use nobat::planning::sim::{self, SimOptions, SimOutput, State, World};

/// One Qom office with one station, Thursday and Friday closed, no randomness (every rate 0),
/// no seats kept for pickups; the rest of the file is `extra`. 2024-05-18 is a Saturday
/// (29 Ordibehesht 1403); the next public holiday is 14 Khordad (3 June), outside the runs.
fn one_office(horizon_days: u32, extra: &str) -> String {
    format!(
        r#"
name = "hand"
seed = 1
[calendar]
start_date = "2024-05-18"
horizon_days = {horizon_days}
thursday = "closed"
[[network.offices]]
id = "025-0001"
name = "Qom civil registry"
kind = "civil_registry"
province = "qom"
city = "Qom"
lat = 34.64
lon = 50.88
stations = 1
[citizens]
count = 0
rural_share = 0.2
[behaviour]
no_show_rate = 0.0
cancel_rate = 0.0
reschedule_rate = 0.0
card_production_days = 3
[policy]
pickup_share = 0.0
lead_days = 1
booking_window_days = 30
{extra}
"#
    )
}

fn run(text: &str) -> (Scenario, World, SimOutput) {
    let scenario = Scenario::from_toml_str(text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    let offices = scenario.generate_network();
    let (world, out) = sim::simulate(
        &scenario,
        &offices,
        SimOptions {
            audit_every_day: true,
        },
        &mut |_, _| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (scenario, world, out)
}

fn backlog(out: &SimOutput) -> Vec<u64> {
    out.days.iter().map(|d| d.backlog()).collect()
}

#[test]
fn a_single_cohort_drains_at_one_office_as_worked_by_hand() {
    // 100 register on Saturday (day 0). The office has 32 seats a day (08:00–16:00 in
    // 15-minute slots, one station), Saturday to Wednesday. Booking opens the next day, so:
    //   Sun (day 1) 32, Mon 32, Tue 32, Wed (day 4) the last 4.
    // Backlog at the end of each day: 100, 68, 36, 4, 0.
    // Waits in working days after registration: 32 × 1, 32 × 2, 32 × 3, 4 × 4.
    // p50 is the 50th applicant → 2 days; p95 the 95th → 3 days; mean 208 / 100 = 2.08.
    let (_, world, out) = run(&one_office(
        7,
        r#"[demand]
[[demand.surges]]
name = "cohort"
total = 100
start_day = 0
days = 1
shape = "flat""#,
    ));
    assert_eq!(world.sites[0].enrol_seats[..5], [32, 32, 32, 32, 32]);
    assert_eq!(backlog(&out)[..5], [100, 68, 36, 4, 0]);
    let enrolled: Vec<u64> = out.days.iter().map(|d| d.enrolled_today).collect();
    assert_eq!(enrolled, [0, 32, 32, 32, 4, 0, 0]);
    let qom = &out.provinces[0];
    assert_eq!(qom.wait_histogram[..5], [0, 32, 32, 32, 4]);
    assert_eq!(qom.wait_percentile(0.5), Some(2));
    assert_eq!(qom.wait_percentile(0.95), Some(3));
    assert!((qom.wait_mean().unwrap() - 2.08).abs() < 1e-12);
    // Cards are ready three days after enrolment, but no seats are kept for pickups here, so
    // every ready card waits; the 4 enrolled on day 4 are ready only on day 7, after the end.
    let last = out.days.last().unwrap();
    assert_eq!(last.count(State::Delivered), 0);
    assert_eq!(last.count(State::AwaitingPickup), 96);
    assert_eq!(last.count(State::InProduction), 4);
}

#[test]
fn a_steady_flow_over_a_closed_thursday_and_friday_matches_the_hand_computation() {
    // 40 register every day; 32 seats Saturday–Wednesday; Thursday (day 5) and Friday (day 6)
    // closed. Each day's registrants take the earliest free seats from the next day on:
    //   day 0 (Sat): 32 on day 1, 8 on day 2      day 3 (Tue): 8 on day 4, 32 on day 7 (Sat)
    //   day 1 (Sun): 24 on day 2, 16 on day 3      day 4 (Wed): 32 on day 8, 8 on day 9
    //   day 2 (Mon): 16 on day 3, 24 on day 4     (day 9 is past the 9-day horizon: day 4's
    //                                              last 8 and everyone after wait unbooked)
    // Enrolled by the end of day: 0, 32, 64, 96, 128, 128, 128, 160, 192.
    // Backlog = 40·(d+1) − enrolled: 40, 48, 56, 64, 72, 112, 152, 160, 168.
    // Working days through day d (Sat–Wed only): 1, 2, 3, 4, 5, 5, 5, 6, 7, so the waits of
    // the enrolments up to day 8 are: 1 day for 32 + 24 + 16 + 8 = 80 of them; 2 days for
    // 8 + 16 + 24 + 32 (day 3's on Saturday: 6 − 4) + 32 (day 4's on Sunday: 7 − 5) = 112.
    // p50 = rank 96 of 192 → 2 days; mean = (80 + 224) / 192.
    let (_, _, out) = run(&one_office(
        9,
        r#"[demand]
province_daily = { qom = 40 }"#,
    ));
    assert_eq!(backlog(&out), [40, 48, 56, 64, 72, 112, 152, 160, 168]);
    let qom = &out.provinces[0];
    assert_eq!(qom.wait_histogram[..4], [0, 80, 112, 0]);
    assert_eq!(qom.wait_percentile(0.5), Some(2));
    assert!((qom.wait_mean().unwrap() - 304.0 / 192.0).abs() < 1e-12);
    // Nothing can be booked past the horizon: at the end the 168 are all waiting.
    let last = out.days.last().unwrap();
    assert_eq!(last.count(State::Booked), 0);
    assert_eq!(last.count(State::Waiting), 168);
}

#[test]
fn capacity_changes_add_thursdays_and_stations() {
    // Thursday opened full (32 seats) and one station more from day 2: 64 seats a day.
    let (_, world, _) = run(&one_office(
        7,
        r#"[[capacity_changes]]
kind = "thursday"
rule = "open"
[[capacity_changes]]
kind = "add_stations"
office = "025-0001"
stations = 1
from_day = 2"#,
    ));
    assert_eq!(world.sites[0].enrol_seats, [32, 32, 64, 64, 64, 64, 0]);
}

fn noisy_scenario(seed: u64) -> String {
    std::fs::read_to_string("scenarios/small.toml")
        .unwrap()
        .replace("seed = 20240401", &format!("seed = {seed}"))
        + r#"
[demand]
base_daily_per_million = 300

[[demand.surges]]
name = "deadline"
total = 60000
start_day = 3
days = 10
peak_day = 9
shape = "triangle"

[behaviour]
wait_threshold_days = 5
decline_share = 0.3
no_show_rate = 0.1
rebook_after_no_show = 0.5
cancel_rate = 0.05
reschedule_rate = 0.1
abandon_after_days = 12
card_production_days = 4

[[capacity_changes]]
kind = "mobile_unit"
id = "mobile-1"
province = "ilam"
stations = 2
schedule = [{ town = "Dehloran", from_day = 0, to_day = 9 }, { town = "Abdanan", from_day = 12, to_day = 25 }]

[[capacity_changes]]
kind = "closure"
province = "semnan"
from_day = 5
to_day = 8
reason = "strike"

[[capacity_changes]]
kind = "friday_opening"
province = "tehran"
from_day = 7
to_day = 20
"#
}

#[test]
fn every_applicant_is_in_exactly_one_state_every_day() {
    // `run` audits after every day: the states, recounted from the data structures, add up
    // to the registrations, and no site-day is overbooked.
    for seed in [1, 2, 3] {
        let (_, _, out) = run(&noisy_scenario(seed));
        for d in &out.days {
            assert_eq!(
                d.states.iter().sum::<u64>(),
                d.registered_total,
                "day {}",
                d.day
            );
        }
        let last = out.days.last().unwrap();
        assert!(last.registered_total > 60_000);
        for state in [
            State::Delivered,
            State::Cancelled,
            State::NoShowDropped,
            State::Abandoned,
        ] {
            assert!(last.count(state) > 0, "seed {seed}: no {}", state.as_str());
        }
    }
}

#[test]
fn enrolments_never_exceed_the_seats_of_an_office_day() {
    let (_, world, out) = run(&noisy_scenario(9));
    assert_eq!(out.enrolled_by_site_day.len(), out.seats_by_site_day.len());
    let mut full = 0;
    for (e, s) in out.enrolled_by_site_day.iter().zip(&out.seats_by_site_day) {
        assert!(e <= s, "{e} enrolled on {s} seats");
        full += usize::from(e == s && *s > 0);
    }
    assert!(full > 0, "the surge should fill some office-days");
    // The mobile unit stands only during its legs, and the Semnan closure has no seats.
    let leg = world
        .sites
        .iter()
        .position(|s| s.id == "mobile-1#1")
        .unwrap();
    assert!(world.sites[leg].enrol_seats[10..].iter().all(|&s| s == 0));
    assert!(world.sites[leg].enrol_seats[..10].iter().any(|&s| s > 0));
    for s in world
        .sites
        .iter()
        .filter(|s| world.provinces[s.province].slug == "semnan")
    {
        assert!(s.enrol_seats[5..=8].iter().all(|&x| x == 0), "{}", s.id);
    }
}

#[test]
fn the_same_seed_gives_the_same_run_and_reports() {
    let (s1, w1, a) = run(&noisy_scenario(5));
    let (_, _, b) = run(&noisy_scenario(5));
    assert_eq!(a, b);
    let (s2, w2, _) = run(&noisy_scenario(5));
    assert_eq!(
        nobat::planning::report::simulation_html(&s1, &w1, &a),
        nobat::planning::report::simulation_html(&s2, &w2, &b)
    );
    assert_eq!(
        nobat::planning::report::daily_csv(&w1, &a),
        nobat::planning::report::daily_csv(&w2, &b)
    );
    let (_, _, c) = run(&noisy_scenario(6));
    assert_ne!(a.days, c.days, "another seed should draw differently");
}

fn field_errors(text: &str) -> Vec<String> {
    match Scenario::from_toml_str(text, "bad.toml") {
        Ok(_) => panic!("accepted a bad scenario"),
        Err(e) => e.field_errors().iter().map(|f| f.to_string()).collect(),
    }
}

#[test]
fn bad_simulation_sections_are_refused_with_field_paths() {
    let errors = field_errors(&one_office(
        30,
        r#"[demand]
[[demand.surges]]
name = "ok"
total = 10
start_day = 0
days = 5
[[demand.surges]]
name = "late peak"
total = 10
start_day = 20
days = 5
peak_day = 40"#,
    ));
    assert!(
        errors.contains(&"demand.surges[1].peak_day: 40 is beyond the 30-day horizon".to_string()),
        "{errors:?}"
    );

    let errors = field_errors(&one_office(
        30,
        r#"[[capacity_changes]]
kind = "thursday"
rule = "open"
stations = 3
to_day = 31
[[capacity_changes]]
kind = "mobile_unit"
id = "m1"
province = "qom"
schedule = [{ town = "Atlantis", from_day = 0, to_day = 3 }]
[[capacity_changes]]
kind = "add_stations"
office = "nope"
stations = 1"#,
    ));
    let joined = errors.join("\n");
    assert!(
        joined.contains("capacity_changes[0].stations: does not apply to a thursday change"),
        "{joined}"
    );
    assert!(
        joined.contains("capacity_changes[0].to_day: 31 is beyond the 30-day horizon"),
        "{joined}"
    );
    assert!(
        joined.contains("capacity_changes[1].schedule[0].town: \"Atlantis\" is not a town of Qom"),
        "{joined}"
    );

    // Office references are checked against the network once the rest is valid.
    let errors = field_errors(&one_office(
        30,
        r#"[[capacity_changes]]
kind = "add_stations"
office = "nope"
stations = 1"#,
    ));
    assert_eq!(
        errors,
        ["capacity_changes[0].office: no office \"nope\" in the network"]
    );

    let errors =
        field_errors(&one_office(30, "").replace("no_show_rate = 0.0", "no_show_rate = 1.5"));
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("behaviour.no_show_rate")),
        "{errors:?}"
    );
    let errors = field_errors(
        &one_office(30, "").replace("booking_window_days = 30", "booking_window_days = 0"),
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("policy.booking_window_days")),
        "{errors:?}"
    );
    let errors = field_errors(&one_office(30, "[demand]\nsurprise = 1\n"));
    assert!(
        errors[0].starts_with("demand.surprise: unknown field `surprise`"),
        "{errors:?}"
    );
}

#[test]
fn existing_and_shipped_scenarios_load() {
    for entry in std::fs::read_dir("scenarios").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// Renders the HTML report in headless Chromium when it is installed: a screenshot that is
/// not blank, and the SVG charts in the DOM.
#[test]
fn the_report_renders_in_headless_chromium() {
    let chromium = std::path::Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        eprintln!("skipped: /usr/bin/chromium is not installed");
        return;
    }
    let (scenario, world, out) = run(&noisy_scenario(4));
    let dir = tempfile::tempdir().unwrap();
    nobat::planning::report::write_simulation(dir.path(), &scenario, &world, &out).unwrap();
    let report = dir.path().join("report.html");
    let png = dir.path().join("report.png");
    let profile = dir.path().join("profile");
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ];
    let url = format!("file://{}", report.display());
    let status = std::process::Command::new(chromium)
        .args(common)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,2000")
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        png.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.len() > 20_000,
        "a blank page compresses to almost nothing: {} bytes",
        bytes.len()
    );
    if let Ok(keep) = std::env::var("NOBAT_KEEP_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
    let dom = std::process::Command::new(chromium)
        .args(common)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    for id in [
        "chart-backlog",
        "chart-backlog-provinces",
        "chart-waits",
        "chart-utilisation",
        "chart-seats",
        "chart-distance",
        "chart-no-shows",
        "chart-pickups",
    ] {
        assert!(
            dom.contains(&format!("id=\"{id}\"")),
            "{id} missing from the DOM"
        );
    }
    assert!(dom.matches("<polyline").count() >= 10);
    assert!(dom.matches("class=\"bar\"").count() >= 8);
}

#[test]
fn the_daily_batch_policy_places_the_waiting_with_the_allocator() {
    let text =
        noisy_scenario(4) + "\n[policy]\nkind = \"daily_batch\"\nbatch_max_applicants = 3000\n";
    // `run` audits conservation every day.
    let (_, _, a) = run(&text);
    let (_, _, b) = run(&text);
    assert_eq!(a, b, "the same seed replays exactly");
    for (e, s) in a.enrolled_by_site_day.iter().zip(&a.seats_by_site_day) {
        assert!(e <= s, "{e} enrolled on {s} seats");
    }
    let last = a.days.last().unwrap();
    assert!(
        last.count(State::Delivered) > 0,
        "bookings were made and served"
    );
    let (_, _, fcfs) = run(&noisy_scenario(4));
    assert_eq!(
        fcfs.days.last().unwrap().registered_total,
        last.registered_total,
        "the same demand"
    );
}

#[test]
fn the_ballot_policy_books_only_when_a_window_closes() {
    let text = noisy_scenario(4) + "\n[policy]\nkind = \"ballot\"\nballot_every_days = 5\n";
    let (_, _, a) = run(&text);
    let (_, _, b) = run(&text);
    assert_eq!(a, b, "the same seed replays exactly");
    for (e, s) in a.enrolled_by_site_day.iter().zip(&a.seats_by_site_day) {
        assert!(e <= s, "{e} enrolled on {s} seats");
    }
    // Nothing is booked before the first close (day 4); at the close the waiting are placed.
    for d in &a.days[..4] {
        assert_eq!(d.count(State::Booked), 0, "day {}", d.day);
        assert!(d.count(State::Waiting) > 0);
    }
    assert!(a.days[4].count(State::Booked) > 0);
    assert!(a.days.last().unwrap().count(State::Delivered) > 0);
    let (_, _, batch) = run(&(noisy_scenario(4) + "\n[policy]\nkind = \"daily_batch\"\n"));
    assert_eq!(
        batch.days.last().unwrap().registered_total,
        a.days.last().unwrap().registered_total,
        "the same demand"
    );
}

#[test]
fn simulate_compares_policies_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(&file, noisy_scenario(4)).unwrap();
    let out = dir.path().join("out");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_nobat"))
        .args([
            "simulate",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["--compare", "fcfs,daily_batch,ballot"])
        .status()
        .unwrap();
    assert!(status.success());
    for policy in ["fcfs", "daily_batch", "ballot"] {
        let summary: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(policy).join("summary.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(summary["scenario"]["policy"], policy);
    }
    let page = std::fs::read_to_string(out.join("compare.html")).unwrap();
    assert_eq!(
        page.matches("<th>ballot").count(),
        3,
        "a key-figures column and two province columns"
    );
    assert!(page.contains("chart-backlog-policies"));
    assert_eq!(
        page.matches("<polyline").count(),
        3,
        "one backlog line per policy"
    );
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_nobat"))
        .args([
            "simulate",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["--compare", "fcfs,lottery"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown policy \"lottery\""));
}
