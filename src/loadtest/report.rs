//! Reports, one folder per run: `report.json` for machines, `report.md` and `chart.svg`
//! (throughput and latency over time) for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::audit::AuditReport;
use super::journal::{Journal, Outcomes};
use super::scenario::Scale;
use super::stats::{Endpoint, LatencySummary, Stats};
use crate::planning::report::svg::{line_charts_file, LineChart, Series};

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioInfo {
    pub name: String,
    pub path: String,
    pub description: String,
    pub server_scenario: String,
    pub scale: Scale,
    pub rate_scale: f64,
    pub arrival_secs: f64,
    pub drain_secs: f64,
    pub peak_arrivals_per_sec: f64,
    pub expected_arrivals: f64,
    /// `limits.journeys_in_flight_max`: the generator's bound on journeys running at once.
    pub journeys_in_flight_max: usize,
    /// How booking journeys took their seat (`slot` or `pick`).
    pub booking: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetInfo {
    pub url: String,
    pub spawned: bool,
    pub backend: String,
    pub server_cpus: Option<String>,
    pub generator_cpus: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CrashInfo {
    pub killed_at_secs: f64,
    pub ready_again_at_secs: f64,
    pub downtime_secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EndpointReport {
    pub endpoint: String,
    pub latency: LatencySummary,
    pub statuses: BTreeMap<u16, u64>,
    pub problem_codes: BTreeMap<String, u64>,
    pub timeouts: u64,
    pub connect_errors: u64,
    pub other_errors: u64,
    pub retries: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SecondReport {
    pub t: usize,
    pub arrivals: u64,
    pub shed: u64,
    pub requests: u64,
    pub ok: u64,
    pub refused: u64,
    pub errors: u64,
    pub bookings: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub arrivals: u64,
    pub shed_by_generator: u64,
    /// The most journeys running at once; at the scenario's `journeys_in_flight_max` the
    /// generator sheds arrivals, whatever the server does.
    pub journeys_in_flight_peak: u64,
    pub journeys_done: u64,
    pub journeys_cut: u64,
    pub requests: u64,
    pub ok: u64,
    pub refused: u64,
    pub errors: u64,
    /// Answers 409 (a seat or state someone else got first: `slot_full`,
    /// `no_seat_within_limits`, `already_holding`, …), every endpoint.
    pub conflicts: u64,
    pub bookings: u64,
    /// Confirmed bookings per second over the arrival window.
    pub bookings_per_sec_mean: f64,
    /// Best 10-second window.
    pub bookings_per_sec_peak_10s: f64,
    pub requests_per_sec_mean: f64,
    pub latency_clamped: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct JournalSummary {
    pub bookings_acknowledged: usize,
    pub holds: Outcomes,
    pub confirms: Outcomes,
    pub releases: Outcomes,
    pub cancels: Outcomes,
    pub reschedules: Outcomes,
    /// A ballot day: entry requests (`PUT`) and withdrawals, as answered.
    pub entry_puts: Outcomes,
    pub withdrawals: Outcomes,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: ScenarioInfo,
    pub target: TargetInfo,
    pub started_at: String,
    pub wall_secs: f64,
    pub totals: Totals,
    pub all_requests: LatencySummary,
    pub time_to_book: LatencySummary,
    pub endpoints: Vec<EndpointReport>,
    pub journey_outcomes: BTreeMap<String, u64>,
    pub journal: JournalSummary,
    pub crash: Option<CrashInfo>,
    pub timeline: Vec<SecondReport>,
    pub audit: AuditReport,
    /// The spawned server's CPU over the run (none for a given target or a crash run).
    pub server_cpu: Option<super::cpu::ServerCpu>,
    /// This generator's own CPU from the first arrival to the drain.
    pub generator_cpu: Option<super::cpu::GeneratorCpu>,
    /// What a waiting room is judged by (set after the run; with or without a room).
    pub surge: super::room_report::SurgeFigures,
    /// A ballot day's close (set after the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ballot: Option<super::ballot_audit::BallotFigures>,
}

#[allow(clippy::too_many_arguments)]
pub fn build(
    scenario: ScenarioInfo,
    target: TargetInfo,
    started_at: String,
    wall_secs: f64,
    stats: &Stats,
    journal: &Journal,
    crash: Option<CrashInfo>,
    audit: AuditReport,
) -> Report {
    let mut all =
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, super::stats::LATENCY_US_MAX, 3)
            .expect("static bounds");
    let endpoints = Endpoint::ALL
        .iter()
        .filter_map(|e| stats.endpoints.get(e).map(|s| (e, s)))
        .map(|(e, s)| {
            let _ = all.add(&s.latency_us);
            EndpointReport {
                endpoint: e.label().to_string(),
                latency: LatencySummary::of(&s.latency_us),
                statuses: s.statuses.clone(),
                problem_codes: s.problem_codes.clone(),
                timeouts: s.timeouts,
                connect_errors: s.connect_errors,
                other_errors: s.other_errors,
                retries: s.retries,
            }
        })
        .collect();
    let timeline: Vec<SecondReport> = stats
        .timeline
        .iter()
        .enumerate()
        .map(|(t, s)| SecondReport {
            t,
            arrivals: s.arrivals,
            shed: s.shed,
            requests: s.requests,
            ok: s.ok,
            refused: s.refused,
            errors: s.errors,
            bookings: s.bookings,
            p50_ms: LatencySummary::of(&s.latency_us).p50_ms,
            p99_ms: LatencySummary::of(&s.latency_us).p99_ms,
        })
        .collect();
    let sum = |f: fn(&SecondReport) -> u64| timeline.iter().map(f).sum::<u64>();
    let arrival_secs = scenario.arrival_secs.max(1.0);
    let bookings = sum(|s| s.bookings);
    let peak_10s = timeline
        .windows(10.min(timeline.len().max(1)))
        .map(|w| w.iter().map(|s| s.bookings).sum::<u64>() as f64 / w.len() as f64)
        .fold(0.0, f64::max);
    let conflicts = stats
        .endpoints
        .values()
        .filter_map(|e| e.statuses.get(&409))
        .sum();
    let totals = Totals {
        conflicts,
        arrivals: stats.arrivals,
        shed_by_generator: stats.shed,
        journeys_in_flight_peak: stats.journeys_in_flight_peak,
        journeys_done: stats.journeys_done,
        journeys_cut: stats.journeys_cut,
        requests: sum(|s| s.requests),
        ok: sum(|s| s.ok),
        refused: sum(|s| s.refused),
        errors: sum(|s| s.errors),
        bookings,
        bookings_per_sec_mean: round2(bookings as f64 / arrival_secs),
        bookings_per_sec_peak_10s: round2(peak_10s),
        requests_per_sec_mean: round2(sum(|s| s.requests) as f64 / arrival_secs),
        latency_clamped: stats.latency_clamped,
    };
    let time_to_book = stats
        .time_to_book_us
        .as_ref()
        .map(LatencySummary::of)
        .unwrap_or_else(|| LatencySummary::of(&super::stats::Stats::empty_histogram()));
    Report {
        scenario,
        target,
        started_at,
        wall_secs: round2(wall_secs),
        totals,
        all_requests: LatencySummary::of(&all),
        time_to_book,
        endpoints,
        journey_outcomes: stats.journey_outcomes.clone(),
        journal: JournalSummary {
            bookings_acknowledged: journal.appointments.len(),
            holds: journal.holds,
            confirms: journal.confirms,
            releases: journal.releases,
            cancels: journal.cancels,
            reschedules: journal.reschedules,
            entry_puts: journal.entry_puts,
            withdrawals: journal.withdrawals,
        },
        crash,
        timeline,
        audit,
        server_cpu: None,
        generator_cpu: None,
        surge: Default::default(),
        ballot: None,
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Writes `report.json`, `report.md` and `chart.svg` into `dir`.
pub fn write(dir: &Path, report: &Report) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("report.json"), json)?;
    std::fs::write(dir.join("chart.svg"), chart_svg(&report.timeline))?;
    std::fs::write(dir.join("report.md"), markdown(report))?;
    Ok(())
}

pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let t = &r.totals;
    let _ = writeln!(s, "# Load test: {}\n", r.scenario.name);
    let _ = writeln!(s, "{}\n", r.scenario.description);
    let _ = writeln!(
        s,
        "- started {}, wall time {:.1} s; target {} ({}{})",
        r.started_at,
        r.wall_secs,
        r.target.url,
        r.target.backend,
        if r.target.spawned { ", spawned" } else { "" }
    );
    if let Some(c) = &r.target.server_cpus {
        let _ = writeln!(
            s,
            "- server pinned to CPU {c}; generator on {}",
            r.target.generator_cpus.as_deref().unwrap_or("any")
        );
    }
    let _ = writeln!(
        s,
        "- arrivals: {} over {:.0} s (peak {:.1}/s, rate scale {}), shed by the generator: {} \
         (journeys in flight: at most {} of the {} allowed)",
        t.arrivals,
        r.scenario.arrival_secs,
        r.scenario.peak_arrivals_per_sec,
        r.scenario.rate_scale,
        t.shed_by_generator,
        t.journeys_in_flight_peak,
        r.scenario.journeys_in_flight_max
    );
    let _ = writeln!(
        s,
        "- requests: {} ({:.1}/s): {} ok, {} refused (4xx), {} errors (5xx, timeouts, no connection)",
        t.requests, t.requests_per_sec_mean, t.ok, t.refused, t.errors
    );
    let _ = writeln!(
        s,
        "- **confirmed bookings: {} ({:.2}/s mean, {:.2}/s best 10 s)**; seats taken by {}; conflicts (409): {}",
        t.bookings,
        t.bookings_per_sec_mean,
        t.bookings_per_sec_peak_10s,
        r.scenario.booking,
        t.conflicts
    );
    if let Some(b) = &r.ballot {
        let _ = writeln!(
            s,
            "- **ballot {}: {}; {} entries in the close's input ({} acknowledged entry requests), {} placed of {} seats; bots {} entries, {} placed; published {} s after the close time**",
            b.ballot_id,
            b.status,
            b.entries,
            r.journal.entry_puts.acked,
            b.placed,
            b.seats,
            b.bot_entries,
            b.bot_placed,
            b.close_secs.map_or("-".to_string(), |c| c.to_string())
        );
    }
    if let Some(c) = &r.crash {
        let _ = writeln!(
            s,
            "- crash: server killed (SIGKILL) at {:.1} s, ready again at {:.1} s ({:.1} s down)",
            c.killed_at_secs, c.ready_again_at_secs, c.downtime_secs
        );
    }
    s.extend(r.server_cpu.as_ref().map(super::cpu::markdown));
    s.extend(r.generator_cpu.as_ref().map(super::cpu::generator_markdown));
    let _ = writeln!(
        s,
        "\n## Audit: {}\n",
        if r.audit.passed { "PASSED" } else { "FAILED" }
    );
    let _ = writeln!(s, "| check | result | detail |\n|---|---|---|");
    for c in &r.audit.checks {
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            c.name,
            if c.passed { "pass" } else { "**FAIL**" },
            c.detail
        );
        for e in c.examples.iter().take(5) {
            let _ = writeln!(s, "| | | {e} |");
        }
    }
    let _ = writeln!(
        s,
        "\n## Over time\n\n![throughput and latency over time](chart.svg)\n"
    );
    let _ = writeln!(
        s,
        "## Latency by endpoint (ms, from the intended send time)\n"
    );
    let _ = writeln!(s, "| endpoint | count | p50 | p90 | p99 | p99.9 | max | statuses | problems | timeouts | no connection | retries |");
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|"
    );
    let row = |s: &mut String, name: &str, l: &LatencySummary, rest: String| {
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {} | {} | {} | {rest} |",
            l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
        );
    };
    for e in &r.endpoints {
        let statuses = e
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let codes = e
            .problem_codes
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        row(
            &mut s,
            &e.endpoint,
            &e.latency,
            format!(
                "{statuses} | {codes} | {} | {} | {}",
                e.timeouts, e.connect_errors, e.retries
            ),
        );
    }
    row(&mut s, "all requests", &r.all_requests, " | | | | ".into());
    row(
        &mut s,
        "arrival → booked",
        &r.time_to_book,
        " | | | | ".into(),
    );
    let _ = writeln!(
        s,
        "\n## Journeys\n\n| journey: outcome | count |\n|---|---:|"
    );
    for (k, v) in &r.journey_outcomes {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    s
}

/// One run of a comparison (`booking.compare`): the same arrivals, another booking mode.
#[derive(Debug, Clone, Serialize)]
pub struct ComparedRun {
    pub booking: String,
    pub arrivals: u64,
    pub bookings: u64,
    pub bookings_per_sec_mean: f64,
    pub bookings_per_sec_peak_10s: f64,
    /// 409 answers, every endpoint.
    pub conflicts: u64,
    /// 409 answers to `POST /v1/holds`, by problem code.
    pub hold_conflicts: BTreeMap<String, u64>,
    pub hold_requests: u64,
    pub errors: u64,
    pub p99_all_ms: f64,
    pub p99_hold_ms: f64,
    pub p99_arrival_to_booked_ms: f64,
    pub audit_passed: bool,
}

/// The runs of one invocation side by side.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub scenario: String,
    pub backend: String,
    pub rate_scale: f64,
    pub runs: Vec<ComparedRun>,
}

pub fn comparison(reports: &[&Report]) -> Comparison {
    let runs = reports
        .iter()
        .map(|r| {
            let hold = r
                .endpoints
                .iter()
                .find(|e| e.endpoint == Endpoint::Hold.label());
            ComparedRun {
                booking: r.scenario.booking.clone(),
                arrivals: r.totals.arrivals,
                bookings: r.totals.bookings,
                bookings_per_sec_mean: r.totals.bookings_per_sec_mean,
                bookings_per_sec_peak_10s: r.totals.bookings_per_sec_peak_10s,
                conflicts: r.totals.conflicts,
                hold_conflicts: hold.map_or_else(BTreeMap::new, |h| {
                    h.problem_codes
                        .iter()
                        .filter(|(code, _)| CONFLICT_CODES.contains(&code.as_str()))
                        .map(|(c, n)| (c.clone(), *n))
                        .collect()
                }),
                hold_requests: hold.map_or(0, |h| h.latency.count),
                errors: r.totals.errors,
                p99_all_ms: r.all_requests.p99_ms,
                p99_hold_ms: hold.map_or(0.0, |h| h.latency.p99_ms),
                p99_arrival_to_booked_ms: r.time_to_book.p99_ms,
                audit_passed: r.audit.passed,
            }
        })
        .collect();
    let first = reports.first();
    Comparison {
        scenario: first.map_or_else(String::new, |r| r.scenario.name.clone()),
        backend: first.map_or_else(String::new, |r| r.target.backend.clone()),
        rate_scale: first.map_or(1.0, |r| r.scenario.rate_scale),
        runs,
    }
}

/// The codes a hold is answered 409 with.
const CONFLICT_CODES: &[&str] = &[
    "slot_full",
    "no_seat_within_limits",
    "already_holding",
    "already_booked",
];

pub fn comparison_markdown(c: &Comparison) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Load test: {}, booking modes compared\n\nThe same arrivals (same seed) against a fresh server each, {}, rate scale {}; each run's own report is in the folder named after its mode.\n",
        c.scenario, c.backend, c.rate_scale
    );
    let _ = writeln!(s, "| booking | arrivals | bookings | bookings/s (mean) | bookings/s (best 10 s) | conflicts (409, all) | holds | hold 409s | p99 all (ms) | p99 hold (ms) | p99 arrival → booked (ms) | errors | audit |");
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"
    );
    for r in &c.runs {
        let codes = r
            .hold_conflicts
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.booking,
            r.arrivals,
            r.bookings,
            r.bookings_per_sec_mean,
            r.bookings_per_sec_peak_10s,
            r.conflicts,
            r.hold_requests,
            if codes.is_empty() {
                "none".into()
            } else {
                codes
            },
            r.p99_all_ms,
            r.p99_hold_ms,
            r.p99_arrival_to_booked_ms,
            r.errors,
            if r.audit_passed {
                "passed"
            } else {
                "**FAILED**"
            }
        );
    }
    s
}

/// Writes `compare.json` and `compare.md` into `dir`.
pub fn write_comparison(dir: &Path, c: &Comparison) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(c).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("compare.json"), json)?;
    std::fs::write(dir.join("compare.md"), comparison_markdown(c))?;
    Ok(())
}

/// Two stacked line charts over the run's seconds: throughput (arrivals, ok requests,
/// errors, bookings per second) and latency (p50, p99 per second), drawn by the planning
/// reports' chart module. Series order picks the palette: bookings and p50 first (blue),
/// errors and p99 second (vermilion).
pub fn chart_svg(timeline: &[SecondReport]) -> String {
    let col = |f: fn(&SecondReport) -> f64| timeline.iter().map(f).collect::<Vec<f64>>();
    let seconds: Vec<String> = (0..timeline.len()).map(|t| format!("{t} s")).collect();
    let (bookings, errors) = (col(|r| r.bookings as f64), col(|r| r.errors as f64));
    let (ok, arrivals) = (col(|r| r.ok as f64), col(|r| r.arrivals as f64));
    let (p50, p99) = (col(|r| r.p50_ms), col(|r| r.p99_ms));
    let throughput = [
        Series {
            name: "bookings/s",
            values: &bookings,
        },
        Series {
            name: "errors/s",
            values: &errors,
        },
        Series {
            name: "ok requests/s",
            values: &ok,
        },
        Series {
            name: "arrivals/s",
            values: &arrivals,
        },
    ];
    let latency = [
        Series {
            name: "p50",
            values: &p50,
        },
        Series {
            name: "p99",
            values: &p99,
        },
    ];
    line_charts_file(&[
        LineChart {
            id: "chart-throughput",
            title: "Per second",
            y_label: "per second",
            x_labels: &seconds,
            series: &throughput,
            reference: None,
        },
        LineChart {
            id: "chart-latency",
            title: "Latency per second, ms",
            y_label: "ms",
            x_labels: &seconds,
            series: &latency,
            reference: None,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(t: usize) -> SecondReport {
        SecondReport {
            t,
            arrivals: 10 + t as u64,
            shed: 0,
            requests: 30,
            ok: 28,
            refused: 1,
            errors: 1,
            bookings: 9,
            p50_ms: 4.5,
            p99_ms: 80.0 + t as f64,
        }
    }

    #[test]
    fn the_chart_shows_throughput_and_latency_per_second() {
        let timeline: Vec<SecondReport> = (0..120).map(second).collect();
        let svg = chart_svg(&timeline);
        assert!(svg.contains(r#"id="chart-throughput""#) && svg.contains(r#"id="chart-latency""#));
        for name in [
            "arrivals/s",
            "ok requests/s",
            "errors/s",
            "bookings/s",
            "p50",
            "p99",
        ] {
            assert!(
                svg.contains(&format!("<title>{name}</title></polyline>")),
                "{name}"
            );
        }
        // One point per second in each of the six series.
        let points: Vec<usize> = svg
            .split(r#"points=""#)
            .skip(1)
            .map(|p| p.split('"').next().unwrap().split(' ').count())
            .collect();
        assert_eq!(points, vec![120; 6]);
    }
}
