//! `nobat scenario generate|citizens|check`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::planning::scenario::{write_citizens_csv, write_network_csv, NetworkSummary, Scenario};

/// Most citizens one `citizens` call prints: a bound on output size (page with --offset).
const CITIZENS_LIMIT_MAX: u64 = 10_000_000;

#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// Write the office network of a scenario as CSV (stdout or --out); summary on stderr.
    Generate {
        file: PathBuf,
        /// Write the CSV here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print synthetic citizens of a scenario as CSV.
    Citizens {
        file: PathBuf,
        /// How many citizens to print (at most 10,000,000).
        #[arg(long)]
        limit: u64,
        /// Index of the first citizen.
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Load and validate a scenario, printing every problem with its field path.
    Check { file: PathBuf },
}

pub fn run(cmd: ScenarioCommand) -> anyhow::Result<()> {
    match cmd {
        ScenarioCommand::Generate { file, out } => {
            let scenario = Scenario::load(&file)?;
            let offices = scenario.generate_network();
            match &out {
                Some(path) => {
                    let f = std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    let mut w = std::io::BufWriter::new(f);
                    write_network_csv(&offices, &mut w)?;
                    w.flush()
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
                None => write_network_csv(&offices, std::io::stdout().lock())?,
            }
            eprintln!("{}: {}", scenario.name, NetworkSummary::of(&offices));
            Ok(())
        }
        ScenarioCommand::Citizens {
            file,
            limit,
            offset,
        } => {
            anyhow::ensure!(
                limit <= CITIZENS_LIMIT_MAX,
                "--limit is at most {CITIZENS_LIMIT_MAX}; page with --offset"
            );
            let scenario = Scenario::load(&file)?;
            let generator = scenario.citizen_generator();
            let out = std::io::BufWriter::new(std::io::stdout().lock());
            write_citizens_csv(generator.range(offset, limit), out)?;
            Ok(())
        }
        ScenarioCommand::Check { file } => {
            let scenario = Scenario::load(&file)?;
            let offices = scenario.generate_network();
            println!(
                "{}: ok ({}, {} citizens, {} days from {})",
                file.display(),
                NetworkSummary::of(&offices),
                scenario.citizen_count(),
                scenario.calendar.horizon_days,
                scenario.calendar.start_date
            );
            Ok(())
        }
    }
}
