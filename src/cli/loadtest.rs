//! `nobat loadtest SCENARIO --target URL --out DIR` or `--spawn`: a surge run, its audit and
//! its reports. Exits non-zero when the audit fails.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::loadtest::scenario::LoadScenario;
use crate::loadtest::server::ServerSpec;
use crate::loadtest::{loopback_target, RunConfig, Target};
use crate::store::StoreConfig;

#[derive(Debug, Args)]
pub struct LoadtestArgs {
    /// Surge scenario, e.g. `scenarios/loadtest/surge-day.toml`.
    pub scenario: PathBuf,
    /// A running server (loopback only: 127.0.0.0/8, localhost, [::1]).
    #[arg(long, conflicts_with = "spawn", required_unless_present = "spawn")]
    pub target: Option<String>,
    /// Start the server as a child process on a free loopback port.
    #[arg(long)]
    pub spawn: bool,
    /// Folder for `report.json`, `report.md`, `chart.svg` (and the spawned server's log and
    /// SQLite file); created if missing.
    #[arg(long)]
    pub out: PathBuf,
    /// The database under test: with `--spawn`, the server uses it (PostgreSQL; default a
    /// SQLite file in `--out`); with `--target`, the audit reads it.
    #[arg(long)]
    pub database_url: Option<String>,
    /// The SQLite file of a `--target` server, for the audit.
    #[arg(long, conflicts_with = "database_url")]
    pub sqlite_path: Option<PathBuf>,
    /// With `--spawn`: SIGKILL the server this many seconds into the run, restart it, go on.
    #[arg(long, requires = "spawn")]
    pub crash_after: Option<f64>,
    /// With `--spawn`: pin the server to these CPUs (`taskset -c`), e.g. `0`.
    #[arg(long, requires = "spawn")]
    pub server_cpus: Option<String>,
    /// Pin this generator to these CPUs (`taskset -a -p -c`), e.g. `1`.
    #[arg(long)]
    pub generator_cpus: Option<String>,
    /// Multiply every arrival rate (to find or approach the saturation point).
    #[arg(long, default_value_t = 1.0)]
    pub rate_scale: f64,
    /// Multiply every arrival segment's length.
    #[arg(long, default_value_t = 1.0)]
    pub duration_scale: f64,
    /// The server binary for `--spawn` (default: this executable).
    #[arg(long)]
    pub server_exe: Option<PathBuf>,
    /// A scenario with a waiting room: admit this many applicants a minute (a fixed rate, in
    /// place of the file's admission, after `--rate-scale`): what the server under test books,
    /// measured by a run without the room.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=600_000))]
    pub room_per_minute: Option<u32>,
    /// A scenario with a waiting room: admit by the controller instead (in place of the file's
    /// admission, after `--rate-scale`): `TARGET_P99_MS,MAX_ACTIVE`, e.g. `300,2000`, the
    /// booking p99 it keeps under and the most passes in use.
    #[arg(long, value_parser = parse_room_auto, conflicts_with = "room_per_minute")]
    pub room_auto: Option<(u32, u32)>,
}

/// `TARGET_P99_MS,MAX_ACTIVE`, both at least 1.
fn parse_room_auto(text: &str) -> Result<(u32, u32), String> {
    let (p99, active) = text
        .split_once(',')
        .ok_or("TARGET_P99_MS,MAX_ACTIVE, e.g. 300,2000")?;
    let number = |s: &str, what: &str| {
        s.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or(format!("{what} is a whole number, at least 1"))
    };
    Ok((number(p99, "TARGET_P99_MS")?, number(active, "MAX_ACTIVE")?))
}

pub fn run(args: LoadtestArgs) -> anyhow::Result<()> {
    if let Some(cpus) = &args.generator_cpus {
        // Before the runtime starts its threads, so they all inherit the mask.
        let status = std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
            .stdout(std::process::Stdio::null())
            .status()
            .context("running taskset for --generator-cpus")?;
        anyhow::ensure!(status.success(), "taskset refused CPU list {cpus:?}");
    }
    anyhow::ensure!(
        args.rate_scale > 0.0 && args.rate_scale <= 1_000.0,
        "--rate-scale must be in (0, 1000]"
    );
    anyhow::ensure!(
        args.duration_scale > 0.0 && args.duration_scale <= 100.0,
        "--duration-scale must be in (0, 100]"
    );
    let mut scenario = LoadScenario::load(&args.scenario)?;
    scenario.scale_rates(args.rate_scale);
    scenario.scale_duration(args.duration_scale);
    if let (Some(per_minute), Some(room)) = (args.room_per_minute, scenario.room.as_mut()) {
        room.per_minute = Some(per_minute);
        room.auto_target_p99_ms = None;
        room.auto_max_active = None;
    }
    if let (Some((p99, max_active)), Some(room)) = (args.room_auto, scenario.room.as_mut()) {
        room.per_minute = None;
        room.auto_target_p99_ms = Some(p99);
        room.auto_max_active = Some(max_active);
    }
    scenario.recheck(&args.scenario.display().to_string())?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let target = if args.spawn {
        Target::Spawn(ServerSpec {
            exe: match args.server_exe {
                Some(p) => p,
                None => std::env::current_exe().context("finding this executable")?,
            },
            database_url: args.database_url.clone(),
            sqlite_path: args.out.join("nobat.db"),
            server_cpus: args.server_cpus.clone(),
            log_path: args.out.join("server.log"),
        })
    } else {
        let url = loopback_target(args.target.as_deref().unwrap_or_default())?;
        let audit_store = match (&args.database_url, &args.sqlite_path) {
            (Some(u), _) => StoreConfig::url(u.clone()),
            (None, Some(p)) => StoreConfig::sqlite(p.clone()),
            (None, None) => anyhow::bail!(
                "--target needs --database-url or --sqlite-path: the audit reads the server's database"
            ),
        };
        Target::Url {
            url,
            audit_store,
            sweep_interval_secs: scenario.server.sweep_interval_secs,
        }
    };
    let crash_after = match args.crash_after {
        Some(s) if s > 0.0 && s < scenario.duration_secs() => Some(Duration::from_secs_f64(s)),
        Some(s) => anyhow::bail!(
            "--crash-after {s} must fall inside the arrivals (0 to {:.0} s)",
            scenario.duration_secs()
        ),
        None => None,
    };
    let config = RunConfig {
        scenario,
        scenario_path: args.scenario.clone(),
        rate_scale: args.rate_scale,
        target,
        out_dir: args.out.clone(),
        crash_after,
        generator_cpus: args.generator_cpus.clone(),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let room_compared = config
        .scenario
        .room
        .as_ref()
        .is_some_and(|r| r.compare_without);
    let outcomes = if room_compared {
        runtime.block_on(crate::loadtest::run_room_compared(config))?
    } else if config.scenario.booking.compare.is_empty() {
        vec![runtime.block_on(crate::loadtest::run(config))?]
    } else {
        runtime.block_on(crate::loadtest::run_compared(config))?
    };
    for outcome in &outcomes {
        let r = &outcome.report;
        println!(
            "{} ({}): {} arrivals, {} requests ({} ok, {} refused, {} conflicts, {} errors), {} bookings ({:.2}/s); p50 {} ms, p99 {} ms; audit {}",
            r.scenario.name,
            run_label(r),
            r.totals.arrivals,
            r.totals.requests,
            r.totals.ok,
            r.totals.refused,
            r.totals.conflicts,
            r.totals.errors,
            r.totals.bookings,
            r.totals.bookings_per_sec_mean,
            r.all_requests.p50_ms,
            r.all_requests.p99_ms,
            if r.audit.passed { "passed" } else { "FAILED" }
        );
    }
    println!("reports in {}", args.out.display());
    let failures: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.report.audit.passed)
        .map(|o| format!("{}: {}", run_label(&o.report), o.report.audit.failures()))
        .collect();
    if !failures.is_empty() {
        anyhow::bail!("{}", failures.join("\n"));
    }
    Ok(())
}

/// How a run is named in the summary: its booking mode, and whether a waiting room stood in
/// front of it.
fn run_label(r: &crate::loadtest::report::Report) -> String {
    if r.surge.with_room {
        format!("{}, room", r.scenario.booking)
    } else {
        r.scenario.booking.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_room_auto;

    #[test]
    fn room_auto_takes_a_target_and_a_bound() {
        assert_eq!(parse_room_auto("300,2000"), Ok((300, 2000)));
        assert_eq!(parse_room_auto(" 250 , 9 "), Ok((250, 9)));
        for bad in ["300", "0,10", "300,0", "a,b", "300,2000,1", ""] {
            assert!(parse_room_auto(bad).is_err(), "{bad}");
        }
    }
}
