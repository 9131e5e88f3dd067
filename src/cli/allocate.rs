//! `nobat allocate`: file formats in, assignments and a report out.
//!
//! Every input file is read and checked in full before any work starts; a bad row is refused
//! with `file:line: reason` (line 1 is the header). The in-memory problem is the engine's
//! [`AllocationProblem`], so the `--scenario` path only has to build the same value.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::json;

use crate::domain::office::OfficeKind;
use crate::planning::allocator::{
    allocate_observed, summarise, AllocationProblem, Applicant, Certificate, FlowSolver,
    OfficeDaySeats, OfficeSite, Outcome, Phase, SolverOptions, MAX_PREFERRED_OFFICES,
};

/// `--solver`: which exact min-cost flow algorithm runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SolverChoice {
    /// The primal network simplex (the default: fastest end to end on the instances
    /// measured).
    Simplex,
    /// Successive shortest paths searched over offices: fastest on the first restricted
    /// model, slower than the simplex once pricing rounds re-open zones.
    OfficePaths,
    /// Push–relabel with ε-scaling.
    CostScaling,
}

impl From<SolverChoice> for FlowSolver {
    fn from(choice: SolverChoice) -> Self {
        match choice {
            SolverChoice::OfficePaths => FlowSolver::OfficePaths,
            SolverChoice::Simplex => FlowSolver::NetworkSimplex,
            SolverChoice::CostScaling => FlowSolver::CostScaling,
        }
    }
}

/// `nobat allocate`: allocate (the flags below), or `nobat allocate verify` a result.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AllocateCommand {
    #[command(subcommand)]
    pub command: Option<AllocateSubcommand>,
    #[command(flatten)]
    pub args: AllocateArgs,
}

#[derive(Debug, Subcommand)]
pub enum AllocateSubcommand {
    /// Check an assignment against its certificate, apart from the solver: feasibility,
    /// the dual over every office within reach, complementary slackness, priority order.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub problem: ProblemArgs,
    /// The assignments file `nobat allocate --out` wrote.
    #[arg(long)]
    pub assignments: PathBuf,
    /// The certificate file `nobat allocate --certificate` wrote.
    #[arg(long)]
    pub certificate: PathBuf,
}

/// Runs `nobat allocate` or its subcommand.
pub fn dispatch(command: AllocateCommand) -> anyhow::Result<()> {
    match command.command {
        Some(AllocateSubcommand::Verify(args)) => verify(args),
        None => run(command.args),
    }
}

/// Bound on rows per input file (the national cohort is well below it).
const MAX_ROWS: usize = 50_000_000;

/// The problem: its files (or a scenario) and the cost parameters.
#[derive(Debug, Clone, Args)]
pub struct ProblemArgs {
    /// Offices: office_id,lat,lon[,services,stations,province,kind,...].
    #[arg(
        long,
        required_unless_present = "scenario",
        conflicts_with = "scenario"
    )]
    pub offices: Option<PathBuf>,
    /// Seats: office_id,day,seats (day = 0-based index into the horizon).
    #[arg(
        long,
        required_unless_present = "scenario",
        conflicts_with = "scenario"
    )]
    pub capacity: Option<PathBuf>,
    /// Applicants: applicant_id,lat,lon[,priority,max_km,province,service,registered_at,
    /// earliest_day,preferred_offices]. `earliest_day` is a 0-based day like capacity's;
    /// `preferred_offices` lists office_ids separated by `;`, the only offices the applicant
    /// accepts (at most 32).
    #[arg(
        long,
        required_unless_present = "scenario",
        conflicts_with = "scenario"
    )]
    pub applicants: Option<PathBuf>,
    /// A scenario file that generates offices, seats and applicants instead of the CSVs.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Maximum distance for applicants without their own max_km.
    #[arg(long, default_value_t = 100.0)]
    pub max_km: f64,
    /// Cost of one day of waiting, in kilometres of travel.
    #[arg(long, default_value_t = 5.0)]
    pub wait_km_per_day: f64,
    /// Published lottery seed: ties are broken by SHA-256(seed ‖ applicant_id).
    #[arg(long, default_value = "0")]
    pub seed: String,
}

#[derive(Debug, Args)]
pub struct AllocateArgs {
    #[command(flatten)]
    pub problem: ProblemArgs,
    /// Nearest offices per zone in the first model (speed only; the optimum is exact anyway).
    #[arg(long, default_value_t = SolverOptions::default().candidates_per_zone)]
    pub candidates_per_zone: usize,
    /// The exact min-cost flow solver (all three give the same optimum).
    #[arg(long, value_enum, default_value_t = SolverChoice::Simplex)]
    pub solver: SolverChoice,
    /// Where the assignments go (required unless a subcommand runs).
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Also write the optimum's dual (potentials per zone and office-day, penalties) here,
    /// for `nobat allocate verify`.
    #[arg(long)]
    pub certificate: Option<PathBuf>,
}

pub fn run(args: AllocateArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    crate::keep_freed_memory();
    let problem = load_problem(&args.problem)?;
    let load_ms = ms(started);

    let options = SolverOptions {
        candidates_per_zone: args.candidates_per_zone.max(1),
        solver: args.solver.into(),
        ..SolverOptions::default()
    };
    let mut marks: Vec<(Phase, Instant)> = Vec::new();
    let phase_start = Instant::now();
    let allocation =
        allocate_observed(&problem, &options, &mut |p| marks.push((p, Instant::now())))
            .context("allocation failed")?;
    let assign_end = Instant::now();
    let mark = |phase: Phase| {
        marks
            .iter()
            .find(|m| m.0 == phase)
            .map_or(assign_end, |m| m.1)
    };
    let (built, solved) = (mark(Phase::Built), mark(Phase::Solved));
    let build_ms = (built - phase_start).as_secs_f64() * 1e3;
    let solve_ms = (solved - built).as_secs_f64() * 1e3;
    let assign_ms = (assign_end - solved).as_secs_f64() * 1e3;

    let write_start = Instant::now();
    let Some(out) = &args.out else {
        bail!("pass --out");
    };
    // The two files and the summary are independent: one core each.
    let (written, certified, summary) = std::thread::scope(|scope| {
        let written = scope.spawn(|| write_assignments(out, &problem, &allocation.outcomes));
        let certified = scope.spawn(|| match &args.certificate {
            Some(path) => write_certificate(path, &problem, &allocation.certificate),
            None => Ok(()),
        });
        let summary = summarise(&problem, &allocation);
        let join = |h: std::thread::ScopedJoinHandle<'_, anyhow::Result<()>>| {
            h.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        };
        (join(written), join(certified), summary)
    });
    written?;
    certified?;
    let write_ms = ms(write_start);
    eprintln!(
        "allocated {} of {} applicants (cost {:.1} km) in {:.0} ms",
        summary.assigned,
        summary.applicants,
        summary.total_cost_km,
        ms(started)
    );
    if let Some(path) = &args.report {
        let province_wait = |p: &Option<(String, f64)>| {
            p.as_ref()
                .map(|(name, w)| json!({"province": name, "wait_days_mean": w}))
        };
        let report = json!({
            "applicants": summary.applicants,
            "assigned": summary.assigned,
            "unassigned": {
                "total": summary.unassigned,
                "by_reason": summary.unassigned_by_reason,
            },
            "total_cost_km": summary.total_cost_km,
            "total_cost_m": allocation.stats.total_cost_m,
            "total_distance_km": summary.total_distance_km,
            "distance_km": {
                "mean": summary.distance_km_mean,
                "p95": summary.distance_km_p95,
                "max": summary.distance_km_max,
            },
            "wait_days": {
                "mean": summary.wait_days_mean,
                "p95": summary.wait_days_p95,
            },
            "by_province": summary.by_province.iter().map(|p| json!({
                "province": p.province,
                "applicants": p.applicants,
                "assigned": p.assigned,
                "distance_km_mean": p.distance_km_mean,
                "wait_days_mean": p.wait_days_mean,
            })).collect::<Vec<_>>(),
            "fairness": {
                "worst_province_wait": province_wait(&summary.worst_province_wait),
                "best_province_wait": province_wait(&summary.best_province_wait),
                "jain_index_province_wait": summary.jain_index_wait,
                "jain_index_province_assigned_share": summary.jain_index_assigned_share,
            },
            "office_utilisation": {
                "seats_total": summary.seats_total,
                "seats_used": summary.seats_used,
                "utilisation": if summary.seats_total == 0 { 0.0 } else {
                    summary.seats_used as f64 / summary.seats_total as f64
                },
                "offices_with_seats": summary.offices_with_seats,
                "offices_full": summary.offices_full,
                "office_min": summary.office_utilisation_min,
                "office_mean": summary.office_utilisation_mean,
            },
            "parameters": {
                "max_km": args.problem.max_km,
                "wait_km_per_day": args.problem.wait_km_per_day,
                "wait_m_per_day": allocation.wait_m_per_day,
                "lottery_seed": problem.lottery_seed,
                "lottery_rule": "SHA-256(seed || applicant_id), lower first, after priority (higher first) and registered_at (earlier first)",
            },
            "solver": {
                "zones": allocation.stats.zones,
                "priority_classes": allocation.stats.priority_classes,
                "arcs": allocation.stats.arcs,
                "arcs_added_by_pricing": allocation.stats.arcs_added_by_pricing,
                "arcs_added_by_seeding": allocation.stats.arcs_added_by_seeding,
                "pricing_rounds": allocation.stats.pricing_rounds,
                "algorithm": format!("{:?}", allocation.stats.solver),
                "work": allocation.stats.pivots,
            },
            "timings_ms": {
                "load": load_ms,
                "build": build_ms,
                "solve": solve_ms,
                "assign": assign_ms,
                "write": write_ms,
                "total": ms(started),
            },
            "peak_rss_mb": peak_rss_mb(),
        });
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut w = BufWriter::new(file);
        serde_json::to_writer_pretty(&mut w, &report)?;
        writeln!(w)?;
        w.flush()?;
    }
    Ok(())
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// Peak resident memory of this process (Linux `VmHWM`), if the platform tells.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The in-memory problem, from the CSVs or from a scenario (its offices, their seats per day
/// from the calendar, and its eligible citizens).
pub fn load_problem(args: &ProblemArgs) -> anyhow::Result<AllocationProblem> {
    if !(args.max_km.is_finite() && args.max_km >= 0.0) {
        bail!("--max-km must be a number >= 0, got {}", args.max_km);
    }
    if !(args.wait_km_per_day.is_finite() && args.wait_km_per_day >= 0.0) {
        bail!(
            "--wait-km-per-day must be a number >= 0, got {}",
            args.wait_km_per_day
        );
    }
    if let Some(path) = &args.scenario {
        let scenario = crate::planning::scenario::Scenario::load(path)?;
        let holidays = scenario.holidays();
        return Ok(crate::planning::scenario::allocation::allocation_problem(
            &scenario,
            &holidays,
            args.wait_km_per_day,
            args.max_km,
            &args.seed,
        ));
    }
    let (Some(offices), Some(capacity), Some(applicants)) =
        (&args.offices, &args.capacity, &args.applicants)
    else {
        bail!("pass --offices, --capacity and --applicants (or --scenario)");
    };
    let offices = load_offices(offices)?;
    let seats = load_capacity(capacity, &offices)?;
    let applicants = load_applicants(applicants, &offices)?;
    Ok(AllocationProblem {
        offices,
        seats,
        applicants,
        wait_km_per_day: args.wait_km_per_day,
        default_max_km: Some(args.max_km),
        lottery_seed: args.seed.clone(),
    })
}

/// A CSV file read by header name, with `file:line` on every error.
struct Table<R = File> {
    path: String,
    reader: csv::Reader<R>,
    columns: FxHashMap<String, usize>,
}

impl Table {
    fn open(path: &Path, required: &[&str]) -> anyhow::Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Table::from_reader(path, file, required)
    }
}

impl<R: std::io::Read> Table<R> {
    /// Reads the header of `reader` (the contents of `path`).
    fn from_reader(path: &Path, reader: R, required: &[&str]) -> anyhow::Result<Self> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(reader);
        let name = path.display().to_string();
        let headers = reader
            .headers()
            .map_err(|e| anyhow::anyhow!("{name}:1: cannot read the header: {e}"))?
            .clone();
        let mut columns = FxHashMap::default();
        for (i, h) in headers.iter().enumerate() {
            let h = h.trim_start_matches('\u{feff}').to_ascii_lowercase();
            if columns.insert(h.clone(), i).is_some() {
                bail!("{name}:1: column `{h}` appears twice");
            }
        }
        for r in required {
            if !columns.contains_key(*r) {
                bail!("{name}:1: missing column `{r}`");
            }
        }
        Ok(Self {
            path: name,
            reader,
            columns,
        })
    }

    /// Calls `row` for every record with (line, accessor); stops at the first error.
    fn for_each(
        &mut self,
        mut row: impl FnMut(u64, &Row) -> Result<(), String>,
    ) -> anyhow::Result<()> {
        let mut record = csv::StringRecord::new();
        let mut rows = 0usize;
        loop {
            let more = self.reader.read_record(&mut record).map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                anyhow::anyhow!("{}:{line}: {e}", self.path)
            })?;
            if !more {
                break;
            }
            rows += 1;
            if rows > MAX_ROWS {
                bail!("{}: more than {MAX_ROWS} rows", self.path);
            }
            let line = record.position().map_or(0, |p| p.line());
            let view = Row {
                record: &record,
                columns: &self.columns,
            };
            row(line, &view).map_err(|reason| anyhow::anyhow!("{}:{line}: {reason}", self.path))?;
        }
        Ok(())
    }
}

struct Row<'a> {
    record: &'a csv::StringRecord,
    columns: &'a FxHashMap<String, usize>,
}

impl Row<'_> {
    /// The cell, or `None` when the column is absent or the cell empty.
    fn opt(&self, column: &str) -> Option<&str> {
        let i = *self.columns.get(column)?;
        self.record.get(i).filter(|s| !s.is_empty())
    }

    fn req(&self, column: &str) -> Result<&str, String> {
        self.opt(column)
            .ok_or_else(|| format!("`{column}` is empty"))
    }

    fn float(&self, column: &str) -> Result<f64, String> {
        let raw = self.req(column)?;
        raw.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("`{column}` = {raw:?} is not a number"))
    }

    fn coords(&self) -> Result<(f64, f64), String> {
        let (lat, lon) = (self.float("lat")?, self.float("lon")?);
        if !(-90.0..=90.0).contains(&lat) {
            return Err(format!("`lat` = {lat} is outside [-90, 90]"));
        }
        if !(-180.0..=180.0).contains(&lon) {
            return Err(format!("`lon` = {lon} is outside [-180, 180]"));
        }
        Ok((lat, lon))
    }
}

fn load_offices(path: &Path) -> anyhow::Result<Vec<OfficeSite>> {
    let mut table = Table::open(path, &["office_id", "lat", "lon"])?;
    let mut offices = Vec::new();
    let mut seen: FxHashSet<String> = FxHashSet::default();
    table.for_each(|_, row| {
        let id = row.req("office_id")?.to_string();
        if !seen.insert(id.clone()) {
            return Err(format!("duplicate office_id {id:?}"));
        }
        let (lat, lon) = row.coords()?;
        let kind = row
            .opt("kind")
            .map(|k| OfficeKind::parse(k).map_err(|e| format!("`kind`: {}", e.message)))
            .transpose()?;
        // Services: listed (separated by ';', '|' or spaces), else the kind's defaults, else all.
        let services = match row.opt("services") {
            Some(list) => Some(
                list.split([';', '|', ' '])
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect::<BTreeSet<_>>(),
            ),
            None => kind.map(|k| {
                k.default_services()
                    .into_iter()
                    .map(|s| s.as_str().to_string())
                    .collect()
            }),
        };
        let stations = row
            .opt("stations")
            .map(|s| {
                s.parse::<u32>()
                    .map_err(|_| format!("`stations` = {s:?} is not a whole number >= 0"))
            })
            .transpose()?;
        offices.push(OfficeSite {
            id,
            lat,
            lon,
            services,
            stations,
            province: row.opt("province").map(str::to_string),
        });
        Ok(())
    })?;
    Ok(offices)
}

fn load_capacity(path: &Path, offices: &[OfficeSite]) -> anyhow::Result<Vec<OfficeDaySeats>> {
    let mut table = Table::open(path, &["office_id", "day", "seats"])?;
    let index = office_index(offices);
    let mut seen: FxHashSet<(usize, u32)> = FxHashSet::default();
    let mut seats = Vec::new();
    table.for_each(|_, row| {
        let id = row.req("office_id")?;
        let office = *index
            .get(id)
            .ok_or_else(|| format!("unknown office_id {id:?} (not in the offices file)"))?;
        let raw_day = row.req("day")?;
        let day: u32 = raw_day
            .parse()
            .ok()
            .filter(|&d| d <= 100_000)
            .ok_or_else(|| format!("`day` = {raw_day:?} is not a day index in 0..=100000"))?;
        let raw_seats = row.req("seats")?;
        let n: i64 = raw_seats
            .parse()
            .map_err(|_| format!("`seats` = {raw_seats:?} is not a whole number"))?;
        if n < 0 {
            return Err(format!("`seats` = {n} is negative"));
        }
        let n = u32::try_from(n).map_err(|_| format!("`seats` = {n} is too large"))?;
        if !seen.insert((office, day)) {
            return Err(format!("duplicate row for office {id:?} day {day}"));
        }
        seats.push(OfficeDaySeats {
            office,
            day,
            seats: n,
        });
        Ok(())
    })?;
    Ok(seats)
}

/// Registration time: an integer (e.g. Unix seconds), an RFC 3339 time or a `YYYY-MM-DD` date.
fn parse_registered_at(raw: &str) -> Result<i64, String> {
    if let Ok(v) = raw.parse::<i64>() {
        return Ok(v);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.timestamp());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp());
    }
    Err(format!(
        "`registered_at` = {raw:?} is not an integer, an RFC 3339 time or a YYYY-MM-DD date"
    ))
}

/// Office index by id.
fn office_index(offices: &[OfficeSite]) -> FxHashMap<&str, usize> {
    offices
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id.as_str(), i))
        .collect()
}

/// Applicants files at least this big are parsed in parallel (see [`applicants_in_parallel`]).
const PARALLEL_PARSE_MIN_BYTES: usize = 4 << 20;

fn load_applicants(path: &Path, offices: &[OfficeSite]) -> anyhow::Result<Vec<Applicant>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot open {}", path.display()))?;
    let office_index = office_index(offices);
    if let Some(applicants) = applicants_in_parallel(path, &bytes, &office_index) {
        return Ok(applicants);
    }
    // One pass in file order: the first bad row (or the file's own error) is the one reported.
    let mut table = Table::from_reader(path, &bytes[..], &["applicant_id", "lat", "lon"])?;
    let mut applicants = Vec::new();
    let mut seen: FxHashSet<String> = FxHashSet::default();
    table.for_each(|_, row| {
        let applicant = applicant_row(row, &office_index)?;
        if !seen.insert(applicant.id.clone()) {
            return Err(format!("duplicate applicant_id {:?}", applicant.id));
        }
        applicants.push(applicant);
        Ok(())
    })?;
    Ok(applicants)
}

/// A large applicants file split at line ends into one run of rows per core, each parsed on
/// its own thread, the runs joined in file order. Only the all-good path: a file with a
/// quote (a quoted cell may hold a line end), a row of the wrong width, a bad row or a
/// duplicate id gives `None`, and the caller's single pass then reports the first problem
/// exactly as always.
fn applicants_in_parallel(
    path: &Path,
    bytes: &[u8],
    office_index: &FxHashMap<&str, usize>,
) -> Option<Vec<Applicant>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || bytes.len() < PARALLEL_PARSE_MIN_BYTES || bytes.contains(&b'"') {
        return None;
    }
    // Cut points just after a line end, the first run holding the header.
    let mut cuts = vec![0usize];
    for t in 1..threads {
        let from = (bytes.len() * t / threads).max(*cuts.last()?);
        let cut = from + bytes[from..].iter().position(|&b| b == b'\n')? + 1;
        cuts.push(cut);
    }
    cuts.push(bytes.len());
    let mut first =
        Table::from_reader(path, &bytes[..cuts[1]], &["applicant_id", "lat", "lon"]).ok()?;
    let width = first.reader.headers().ok()?.len();
    let columns = first.columns.clone();
    let parse_run = |reader: &mut csv::Reader<&[u8]>, capacity: usize| -> Option<Vec<Applicant>> {
        let mut record = csv::StringRecord::new();
        let mut run = Vec::with_capacity(capacity);
        while reader.read_record(&mut record).ok()? {
            if record.len() != width {
                return None;
            }
            let row = Row {
                record: &record,
                columns: &columns,
            };
            run.push(applicant_row(&row, office_index).ok()?);
        }
        Some(run)
    };
    // Rows run about 60 bytes in the national files; a guess only sizes the vectors.
    let guess = |len: usize| len / 48 + 16;
    let runs: Vec<Option<Vec<Applicant>>> = std::thread::scope(|scope| {
        let rest: Vec<_> = cuts
            .windows(2)
            .skip(1)
            .map(|w| {
                let slice = &bytes[w[0]..w[1]];
                let parse_run = &parse_run;
                scope.spawn(move || {
                    let mut reader = csv::ReaderBuilder::new()
                        .trim(csv::Trim::All)
                        .has_headers(false)
                        .from_reader(slice);
                    parse_run(&mut reader, guess(slice.len()))
                })
            })
            .collect();
        let mut runs = vec![parse_run(&mut first.reader, guess(cuts[1]))];
        runs.extend(rest.into_iter().map(|h| h.join().ok().flatten()));
        runs
    });
    let total: usize = runs.iter().map(|r| r.as_ref().map_or(0, Vec::len)).sum();
    if total > MAX_ROWS {
        return None;
    }
    let mut applicants = Vec::with_capacity(total);
    for run in runs {
        applicants.extend(run?);
    }
    let mut seen: FxHashSet<&str> = FxHashSet::with_capacity_and_hasher(total, Default::default());
    if !applicants.iter().all(|a| seen.insert(a.id.as_str())) {
        return None;
    }
    Some(applicants)
}

/// One row of the applicants file.
fn applicant_row(row: &Row, office_index: &FxHashMap<&str, usize>) -> Result<Applicant, String> {
    let id = row.req("applicant_id")?.to_string();
    let (lat, lon) = row.coords()?;
    let priority = row
        .opt("priority")
        .map(|p| {
            p.parse::<i32>()
                .map_err(|_| format!("`priority` = {p:?} is not a whole number"))
        })
        .transpose()?
        .unwrap_or(0);
    let max_km = match row.opt("max_km") {
        Some(_) => {
            let m = row.float("max_km")?;
            if m < 0.0 {
                return Err(format!("`max_km` = {m} is negative"));
            }
            Some(m)
        }
        None => None,
    };
    let registered_at = row
        .opt("registered_at")
        .map(parse_registered_at)
        .transpose()?;
    let earliest_day = row
        .opt("earliest_day")
        .map(|d| {
            d.parse::<u32>()
                .map_err(|_| format!("`earliest_day` = {d:?} is not a day index (0, 1, ...)"))
        })
        .transpose()?;
    let preferred_offices = row
        .opt("preferred_offices")
        .map(|cell| parse_preferred_offices(cell, office_index))
        .transpose()?;
    Ok(Applicant {
        id,
        lat,
        lon,
        priority,
        max_km,
        service: row.opt("service").map(str::to_string),
        registered_at,
        province: row.opt("province").map(str::to_string),
        earliest_day,
        preferred_offices,
    })
}

/// `preferred_offices`: office ids separated by `;`, each one in offices.csv.
fn parse_preferred_offices(
    cell: &str,
    office_index: &FxHashMap<&str, usize>,
) -> Result<Vec<usize>, String> {
    let mut list = Vec::new();
    for id in cell.split(';').map(str::trim).filter(|id| !id.is_empty()) {
        if list.len() == MAX_PREFERRED_OFFICES {
            return Err(format!(
                "`preferred_offices` names more than {MAX_PREFERRED_OFFICES} offices"
            ));
        }
        let &o = office_index
            .get(id)
            .ok_or_else(|| format!("`preferred_offices` names unknown office {id:?}"))?;
        list.push(o);
    }
    if list.is_empty() {
        return Err("`preferred_offices` names no office".into());
    }
    Ok(list)
}

fn write_assignments(
    path: &Path,
    problem: &AllocationProblem,
    outcomes: &[Outcome],
) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = csv::WriterBuilder::new()
        .buffer_capacity(1 << 20)
        .from_writer(file);
    for (a, outcome) in problem.applicants.iter().zip(outcomes) {
        if let Outcome::Assigned(s) = outcome {
            w.serialize(AssignmentRow {
                applicant_id: &a.id,
                office_id: &problem.offices[s.office].id,
                day: s.day,
                distance_km: Km(s.distance_km),
                seat: s.seat,
                slot: s.slot,
            })?;
        }
    }
    if !outcomes.iter().any(|o| matches!(o, Outcome::Assigned(_))) {
        // serde writes the header with the first row: without rows, write it by hand.
        w.write_record([
            "applicant_id",
            "office_id",
            "day",
            "distance_km",
            "seat",
            "slot",
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// One row of the assignments file (the field names are its header).
#[derive(serde::Serialize)]
struct AssignmentRow<'a> {
    applicant_id: &'a str,
    office_id: &'a str,
    day: u32,
    distance_km: Km,
    seat: u32,
    slot: u32,
}

/// A distance written to the metre (three decimals), as the file has always had it.
struct Km(f64);

impl serde::Serialize for Km {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Formatted on the stack: a million rows should not cost a million allocations.
        let mut buf = [0u8; 32];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        if write!(cursor, "{:.3}", self.0).is_err() {
            return serializer.collect_str(&format_args!("{:.3}", self.0));
        }
        let len = cursor.position() as usize;
        let text = std::str::from_utf8(&buf[..len]).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(text)
    }
}

/// The certificate file's format tag (bump it when the fields change meaning).
const CERTIFICATE_FORMAT: &str = "nobat-allocation-certificate/1";

/// The certificate file: the dual of the applicant-level LP (see
/// `planning::allocator::Certificate`), in metres, with offices by id and applicants by
/// their order in the applicants file.
#[derive(serde::Serialize, serde::Deserialize)]
struct CertificateFile {
    format: String,
    wait_m_per_day: i64,
    penalties: Vec<PenaltyRow>,
    /// [office_id, day, price_m] per office-day with seats.
    office_days: Vec<(String, u32, i64)>,
    /// `y` per zone.
    zones: Vec<i64>,
    /// The zone of each applicant, in the applicants file's order.
    zone_of_applicant: Vec<u32>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct PenaltyRow {
    priority: i32,
    penalty_m: i64,
}

fn write_certificate(
    path: &Path,
    problem: &AllocationProblem,
    certificate: &Certificate,
) -> anyhow::Result<()> {
    let file = CertificateFile {
        format: CERTIFICATE_FORMAT.into(),
        wait_m_per_day: certificate.wait_m_per_day,
        penalties: certificate
            .penalties
            .iter()
            .map(|&(priority, penalty_m)| PenaltyRow {
                priority,
                penalty_m,
            })
            .collect(),
        office_days: certificate
            .office_day_price_m
            .iter()
            .map(|&(o, day, price)| (problem.offices[o].id.clone(), day, price))
            .collect(),
        zones: certificate.zone_potential_m.clone(),
        zone_of_applicant: certificate.zone_of.clone(),
    };
    let out = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, out);
    serde_json::to_writer(&mut w, &file)?;
    writeln!(w)?;
    w.flush()?;
    Ok(())
}

fn read_certificate(path: &Path, problem: &AllocationProblem) -> anyhow::Result<Certificate> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: CertificateFile = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not a certificate", path.display()))?;
    if file.format != CERTIFICATE_FORMAT {
        bail!(
            "{}: format {:?}, expected {CERTIFICATE_FORMAT:?}",
            path.display(),
            file.format
        );
    }
    let index = office_index(&problem.offices);
    let mut office_day_price_m = Vec::with_capacity(file.office_days.len());
    for (id, day, price) in &file.office_days {
        let Some(&o) = index.get(id.as_str()) else {
            bail!("{}: unknown office {id:?}", path.display());
        };
        office_day_price_m.push((o, *day, *price));
    }
    Ok(Certificate {
        wait_m_per_day: file.wait_m_per_day,
        penalties: file
            .penalties
            .iter()
            .map(|p| (p.priority, p.penalty_m))
            .collect(),
        zone_of: file.zone_of_applicant,
        zone_potential_m: file.zones,
        office_day_price_m,
    })
}

/// The assignments file as (office, day) per applicant of the problem, `None` = unplaced.
fn read_assignments(
    path: &Path,
    problem: &AllocationProblem,
) -> anyhow::Result<Vec<Option<(usize, u32)>>> {
    let applicant_index: FxHashMap<&str, usize> = problem
        .applicants
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id.as_str(), i))
        .collect();
    let office_index = office_index(&problem.offices);
    let mut assignment = vec![None; problem.applicants.len()];
    let mut table = Table::open(path, &["applicant_id", "office_id", "day"])?;
    table.for_each(|_, row| {
        let id = row.req("applicant_id")?;
        let &a = applicant_index
            .get(id)
            .ok_or_else(|| format!("unknown applicant_id {id:?}"))?;
        let office = row.req("office_id")?;
        let &o = office_index
            .get(office)
            .ok_or_else(|| format!("unknown office_id {office:?}"))?;
        let raw_day = row.req("day")?;
        let day: u32 = raw_day
            .parse()
            .map_err(|_| format!("`day` = {raw_day:?} is not a day index"))?;
        if assignment[a].replace((o, day)).is_some() {
            return Err(format!("applicant {id:?} is assigned twice"));
        }
        Ok(())
    })?;
    Ok(assignment)
}

/// `nobat allocate verify`: prints what the certificate proves, or fails with the violations.
pub fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let problem = load_problem(&args.problem)?;
    let assignment = read_assignments(&args.assignments, &problem)?;
    let certificate = read_certificate(&args.certificate, &problem)?;
    let load_ms = ms(started);
    let check_start = Instant::now();
    let verified = crate::planning::certificate::verify(&problem, &assignment, &certificate)
        .map_err(|refuted| {
            anyhow::anyhow!("the certificate does not prove the assignment optimal: {refuted}")
        })?;
    let summary = json!({
        "verified": true,
        "applicants": verified.applicants,
        "placed": verified.placed,
        "total_cost_m": verified.total_cost_m,
        "placed_by_priority": verified.placed_by_priority.iter().map(|&(priority, placed)| json!({
            "priority": priority,
            "placed": placed,
        })).collect::<Vec<_>>(),
        "pairs_checked": verified.pairs_checked,
        "penalty_gap_needed_m": verified.penalty_gap_needed_m,
        "timings_ms": {"load": load_ms, "check": ms(check_start)},
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offices() -> Vec<OfficeSite> {
        ["O1", "O2"]
            .iter()
            .map(|id| OfficeSite {
                id: id.to_string(),
                lat: 35.7,
                lon: 51.4,
                services: None,
                stations: None,
                province: None,
            })
            .collect()
    }

    /// An applicants file past the parallel threshold; `row(i)` may replace row i.
    fn big_file(row: impl Fn(usize) -> Option<String>) -> (tempfile::NamedTempFile, usize) {
        let mut text = String::from("applicant_id,lat,lon,province,priority,service,registered_at,earliest_day,preferred_offices\n");
        let mut rows = 0;
        while text.len() < PARALLEL_PARSE_MIN_BYTES + (1 << 20) {
            let line = row(rows).unwrap_or_else(|| {
                format!(
                    "A{rows:07},{:.2},{:.2},tehran,{},first_issuance,{},{},{}\n",
                    30.0 + (rows % 900) as f64 / 100.0,
                    50.0 + (rows % 700) as f64 / 100.0,
                    rows % 3,
                    1_700_000_000 + rows,
                    if rows % 3 == 0 {
                        "5".to_string()
                    } else {
                        String::new()
                    },
                    if rows % 5 == 0 { "O1;O2" } else { "" },
                )
            });
            text.push_str(&line);
            rows += 1;
        }
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text.as_bytes()).expect("write");
        (file, rows)
    }

    /// The same applicants, in file order, whether the rows are parsed on one core or several.
    #[test]
    fn a_big_file_parsed_in_parallel_matches_one_pass() {
        let (file, rows) = big_file(|_| None);
        let offices = offices();
        let bytes = std::fs::read(file.path()).expect("read");
        let index = office_index(&offices);
        let parallel = applicants_in_parallel(file.path(), &bytes, &index);
        let mut table =
            Table::from_reader(file.path(), &bytes[..], &["applicant_id", "lat", "lon"]).unwrap();
        let mut one_pass = Vec::new();
        table
            .for_each(|_, row| {
                one_pass.push(applicant_row(row, &index)?);
                Ok(())
            })
            .unwrap();
        assert_eq!(one_pass.len(), rows);
        if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
            assert_eq!(parallel.as_ref(), Some(&one_pass));
        }
        assert_eq!(load_applicants(file.path(), &offices).unwrap(), one_pass);
    }

    /// A bad row or a duplicate id late in a big file is reported at its line, as one pass
    /// reports it (the first problem in file order).
    #[test]
    fn a_big_file_reports_its_first_bad_row_by_line() {
        let offices = offices();
        let (file, rows) = big_file(|i| match i {
            70_000 => Some("A9999999,91,51,tehran,0,first_issuance,1,,\n".into()),
            _ => None,
        });
        assert!(rows > 70_000);
        let err = load_applicants(file.path(), &offices)
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(":70002: `lat` = 91 is outside [-90, 90]"),
            "{err}"
        );
        let (file, _) = big_file(|i| match i {
            66_000 => Some("A0000007,35,51,tehran,0,first_issuance,1,,\n".into()),
            69_000 => Some("A0000001,35,51\n".into()),
            _ => None,
        });
        let err = load_applicants(file.path(), &offices)
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(":66002: duplicate applicant_id \"A0000007\""),
            "{err}"
        );
    }
}
