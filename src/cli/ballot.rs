//! `nobat ballot verify DIR`: audits a closed ballot from its published record, trusting
//! nothing the operator computed (see `planning::ballot::verify`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

use crate::planning::ballot::{verify, BallotRecord};

/// The record's file inside a ballot's export folder.
pub const RECORD_FILE: &str = "ballot.json";

#[derive(Debug, Subcommand)]
pub enum BallotCommand {
    /// Re-run a closed ballot from its record (DIR/ballot.json): the revealed seed against
    /// its commitment, each entry once, no slot over its seats, and the published assignment
    /// identical to the exact allocator's optimum.
    Verify {
        /// The folder holding ballot.json.
        dir: PathBuf,
    },
}

pub fn run(command: BallotCommand) -> anyhow::Result<()> {
    match command {
        BallotCommand::Verify { dir } => verify_dir(&dir),
    }
}

fn read_record(dir: &Path) -> anyhow::Result<BallotRecord> {
    let path = dir.join(RECORD_FILE);
    let file = std::fs::File::open(&path)
        .with_context(|| format!("{}: cannot read the ballot's record", path.display()))?;
    let reader = std::io::BufReader::new(file);
    let mut de = serde_json::Deserializer::from_reader(reader);
    serde_path_to_error::deserialize(&mut de)
        .with_context(|| format!("{}: not a ballot record", path.display()))
}

fn verify_dir(dir: &Path) -> anyhow::Result<()> {
    let record = read_record(dir)?;
    match verify(&record) {
        Ok(v) => {
            println!(
                "ballot {}: the seed matches its commitment; {} entries, {} placed, objective {} m; \
                 the published assignment is the exact allocator's optimum",
                record.ballot_id, v.entries, v.placed, v.total_cost_m
            );
            Ok(())
        }
        Err(findings) => {
            for f in &findings {
                eprintln!("{f}");
            }
            anyhow::bail!(
                "ballot {}: the record does not verify ({} findings)",
                record.ballot_id,
                findings.len()
            )
        }
    }
}
