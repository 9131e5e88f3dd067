//! `nobat simulate FILE --out DIR`: runs a scenario day by day and writes the reports.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use crate::planning::report::{comparison_html, PolicyRun};
use crate::planning::scenario::{PolicyKind, Scenario};
use crate::planning::sim::{self, SimOptions};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The scenario file (TOML, see scenarios/README.md).
    pub file: PathBuf,
    /// Directory for summary.json, daily.csv, provinces_daily.csv, offices.csv, report.html.
    #[arg(long)]
    pub out: PathBuf,
    /// Capacity changes to lay over the scenario (the overlay.toml that `nobat plan` writes).
    #[arg(long)]
    pub overlay: Option<PathBuf>,
    /// Recount every applicant's state after each day (slower; a self-check).
    #[arg(long)]
    pub audit: bool,
    /// Run the scenario under each of these policies instead of its own (comma-separated:
    /// fcfs, daily_batch, ballot): each run's reports go to DIR/<policy>/ and the side-by-side
    /// page to DIR/compare.html.
    #[arg(long, value_delimiter = ',', value_parser = parse_policy)]
    pub compare: Vec<PolicyKind>,
}

fn parse_policy(name: &str) -> Result<PolicyKind, String> {
    PolicyKind::parse(name).ok_or_else(|| {
        let known: Vec<&str> = PolicyKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("unknown policy {name:?} (one of {})", known.join(", "))
    })
}

/// Loads a scenario and, when given, lays an overlay over it.
pub fn load_with_overlay(
    file: &std::path::Path,
    overlay: Option<&std::path::Path>,
) -> anyhow::Result<Scenario> {
    let scenario = Scenario::load(file)?;
    Ok(match overlay {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot read the overlay", path.display()))?;
            scenario.with_overlay(&text, &path.display().to_string())?
        }
        None => scenario,
    })
}

/// A one-line progress bar on stderr, only when stderr is a terminal.
pub struct Progress {
    enabled: bool,
    label: &'static str,
    last_shown: u32,
}

impl Progress {
    pub fn new(label: &'static str) -> Self {
        Self {
            enabled: std::io::stderr().is_terminal(),
            label,
            last_shown: u32::MAX,
        }
    }

    pub fn update(&mut self, done: u32, total: u32) {
        if !self.enabled || total == 0 {
            return;
        }
        let percent = done * 100 / total;
        if percent == self.last_shown {
            return;
        }
        self.last_shown = percent;
        let width = 40;
        let filled = (done as usize * width) / total as usize;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{} [{}{}] {done}/{total} days",
            self.label,
            "#".repeat(filled),
            "-".repeat(width - filled)
        );
        if done == total {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    if !args.compare.is_empty() {
        return compare(args);
    }
    let started = Instant::now();
    let scenario = load_with_overlay(&args.file, args.overlay.as_deref())?;
    let offices = scenario.generate_network();
    let mut progress = Progress::new("simulating");
    let (world, output) = sim::simulate(
        &scenario,
        &offices,
        SimOptions {
            audit_every_day: args.audit,
        },
        &mut |d, h| progress.update(d, h),
    )?;
    crate::planning::report::write_simulation(&args.out, &scenario, &world, &output)
        .with_context(|| format!("{}: cannot write the reports", args.out.display()))?;
    let summary = crate::planning::report::simulation_summary(&scenario, &world, &output);
    let t = &summary["totals"];
    eprintln!(
        "{}: {} registered, {} enrolled, backlog {} at the end; wait p50 {} / p95 {} working days; \
         worst province {} (p95 {}); {:.1} s",
        scenario.name,
        t["registered"],
        t["enrolled"],
        t["backlog_end"],
        summary["wait_days"]["p50"],
        summary["wait_days"]["p95"],
        summary["fairness"]["worst_province"],
        summary["fairness"]["wait_days_p95_max"],
        started.elapsed().as_secs_f64()
    );
    eprintln!(
        "reports in {}: summary.json, daily.csv, provinces_daily.csv, offices.csv, report.html",
        args.out.display()
    );
    Ok(())
}

/// `--compare`: the scenario once per policy, each run's reports in its own folder, then the
/// side-by-side page.
fn compare(args: SimulateArgs) -> anyhow::Result<()> {
    let base = load_with_overlay(&args.file, args.overlay.as_deref())?;
    let offices = base.generate_network();
    let mut kinds = args.compare.clone();
    kinds.dedup();
    let mut runs = Vec::with_capacity(kinds.len());
    for kind in kinds {
        let started = Instant::now();
        let mut scenario = base.clone();
        scenario.policy.kind = kind;
        let mut progress = Progress::new(kind.as_str());
        let (world, output) = sim::simulate(
            &scenario,
            &offices,
            SimOptions {
                audit_every_day: args.audit,
            },
            &mut |d, h| progress.update(d, h),
        )?;
        let dir = args.out.join(kind.as_str());
        crate::planning::report::write_simulation(&dir, &scenario, &world, &output)
            .with_context(|| format!("{}: cannot write the reports", dir.display()))?;
        let summary = crate::planning::report::simulation_summary(&scenario, &world, &output);
        eprintln!(
            "{}: enrolled {}, backlog {} at the end; wait p50 {} / p95 {} working days; {:.1} s",
            kind.as_str(),
            summary["totals"]["enrolled"],
            summary["totals"]["backlog_end"],
            summary["wait_days"]["p50"],
            summary["wait_days"]["p95"],
            started.elapsed().as_secs_f64()
        );
        runs.push((scenario, world, output));
    }
    let pages: Vec<PolicyRun<'_>> = runs
        .iter()
        .map(|(scenario, world, out)| PolicyRun {
            scenario,
            world,
            out,
        })
        .collect();
    let path = args.out.join("compare.html");
    std::fs::write(&path, comparison_html(&pages))
        .with_context(|| format!("{}: cannot write the comparison", path.display()))?;
    eprintln!("comparison in {}", path.display());
    Ok(())
}
