//! `nobat scenario generate|citizens`.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// Write the office network of a scenario.
    Generate { file: PathBuf },
}

pub fn run(cmd: ScenarioCommand) -> anyhow::Result<()> {
    match cmd {
        ScenarioCommand::Generate { file } => {
            anyhow::bail!("scenario generation is not built yet ({})", file.display())
        }
    }
}
