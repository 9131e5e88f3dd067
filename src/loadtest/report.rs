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
    pub journeys_done: u64,
    pub journeys_cut: u64,
    pub requests: u64,
    pub ok: u64,
    pub refused: u64,
    pub errors: u64,
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
    let totals = Totals {
        arrivals: stats.arrivals,
        shed_by_generator: stats.shed,
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
        },
        crash,
        timeline,
        audit,
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
        "- arrivals: {} over {:.0} s (peak {:.1}/s, rate scale {}), shed by the generator: {}",
        t.arrivals,
        r.scenario.arrival_secs,
        r.scenario.peak_arrivals_per_sec,
        r.scenario.rate_scale,
        t.shed_by_generator
    );
    let _ = writeln!(
        s,
        "- requests: {} ({:.1}/s): {} ok, {} refused (4xx), {} errors (5xx, timeouts, no connection)",
        t.requests, t.requests_per_sec_mean, t.ok, t.refused, t.errors
    );
    let _ = writeln!(
        s,
        "- **confirmed bookings: {} ({:.2}/s mean, {:.2}/s best 10 s)**",
        t.bookings, t.bookings_per_sec_mean, t.bookings_per_sec_peak_10s
    );
    if let Some(c) = &r.crash {
        let _ = writeln!(
            s,
            "- crash: server killed (SIGKILL) at {:.1} s, ready again at {:.1} s ({:.1} s down)",
            c.killed_at_secs, c.ready_again_at_secs, c.downtime_secs
        );
    }
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

/// Two stacked panels over the run's seconds: throughput (arrivals, ok requests, errors,
/// bookings per second) and latency (p50, p99 per second).
pub fn chart_svg(timeline: &[SecondReport]) -> String {
    let (w, h, pad) = (900.0_f64, 260.0_f64, 50.0_f64);
    let n = timeline.len().max(2) as f64;
    let x = |i: usize| pad + (w - 2.0 * pad) * i as f64 / (n - 1.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{}" font-family="sans-serif" font-size="11">"#,
        2.0 * h + 20.0
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let panel = |s: &mut String, top: f64, title: &str, series: &[(&str, &str, Vec<f64>)]| {
        let max = series
            .iter()
            .flat_map(|(_, _, v)| v.iter().copied())
            .fold(1.0, f64::max);
        let y = |v: f64| top + h - pad + (-(h - 2.0 * pad) * v / max);
        let _ = writeln!(
            s,
            r#"<text x="{pad}" y="{}" font-weight="bold">{title}</text>"#,
            top + 20.0
        );
        let _ = writeln!(
            s,
            r#"<line x1="{pad}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
            top + h - pad,
            w - pad,
            top + h - pad
        );
        let _ = writeln!(
            s,
            r#"<line x1="{pad}" y1="{}" x2="{pad}" y2="{}" stroke="black"/>"#,
            top + pad,
            top + h - pad
        );
        let _ = writeln!(
            s,
            r#"<text x="5" y="{}">{max:.0}</text><text x="5" y="{}">0</text>"#,
            top + pad + 4.0,
            top + h - pad
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">{} s</text>"#,
            w - pad - 20.0,
            top + h - pad + 15.0,
            timeline.len()
        );
        for (k, (name, colour, v)) in series.iter().enumerate() {
            let pts: Vec<String> = v
                .iter()
                .enumerate()
                .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
                pts.join(" ")
            );
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" fill="{colour}">{name}</text>"#,
                pad + 10.0 + 150.0 * k as f64 + 150.0,
                top + 20.0
            );
        }
    };
    let col = |f: fn(&SecondReport) -> f64| timeline.iter().map(f).collect::<Vec<f64>>();
    panel(
        &mut s,
        0.0,
        "per second",
        &[
            ("arrivals/s", "gray", col(|r| r.arrivals as f64)),
            ("ok requests/s", "green", col(|r| r.ok as f64)),
            ("errors/s", "red", col(|r| r.errors as f64)),
            ("bookings/s", "blue", col(|r| r.bookings as f64)),
        ],
    );
    panel(
        &mut s,
        h + 20.0,
        "latency, ms",
        &[
            ("p50", "green", col(|r| r.p50_ms)),
            ("p99", "red", col(|r| r.p99_ms)),
        ],
    );
    s.push_str("</svg>\n");
    s
}
