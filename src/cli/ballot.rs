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
    /// Write a published ballot's audit record (DIR/ballot.json) from the database: the
    /// anonymised inputs (entries under salted keys), the revealed seed and the assignment.
    Export {
        /// The ballot's id.
        id: String,
        /// The folder to write ballot.json into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// PostgreSQL (`postgres://…`) or SQLite (`sqlite://…`) URL; without it, the SQLite file.
        #[arg(long, env = "DATABASE_URL")]
        database_url: Option<String>,
        /// The server's SQLite file, when no database URL is given.
        #[arg(long, env = "NOBAT_SQLITE_PATH", default_value = "nobat.db")]
        sqlite_path: PathBuf,
    },
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
        BallotCommand::Export {
            id,
            out,
            database_url,
            sqlite_path,
        } => {
            let config = match database_url {
                Some(url) => crate::store::StoreConfig::url(url),
                None => crate::store::StoreConfig::sqlite(sqlite_path),
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let store = crate::store::Store::connect(&config).await?;
                let path = export(&store, &id, &out).await?;
                println!("ballot {id}: record written to {}", path.display());
                Ok(())
            })
        }
    }
}

/// Writes the record of published ballot `id` to `dir/ballot.json`; returns the file's path.
pub async fn export(store: &crate::store::Store, id: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let record = crate::reserve::ballot::export_record(store, id)
        .await?
        .with_context(|| format!("ballot {id}: no such ballot, or not published yet"))?;
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let path = dir.join(RECORD_FILE);
    let file = std::fs::File::create(&path)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    serde_json::to_writer(std::io::BufWriter::new(file), &record)?;
    Ok(path)
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
