//! The `nobat` command line: one subcommand per job. Each subcommand parses its arguments into
//! domain types and calls the library; `main.rs` only calls [`run`].

use clap::{Parser, Subcommand};

pub mod allocate;
pub mod ballot;
pub mod loadtest;
pub mod plan;
pub mod scenario;
pub mod serve;
pub mod simulate;

#[derive(Debug, Parser)]
#[command(
    name = "nobat",
    version,
    about = "Appointment scheduling and capacity engine for the smart national ID card"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the reservation server (SQLite by default, PostgreSQL with DATABASE_URL).
    Serve(serve::ServeArgs),
    /// Generate the office network or synthetic citizens from a scenario file.
    #[command(subcommand)]
    Scenario(scenario::ScenarioCommand),
    /// Assign applicants to offices and days (min-cost flow), or `allocate verify` a result.
    Allocate(allocate::AllocateCommand),
    /// Surge-day load test against a loopback server (or one it spawns), then an audit.
    Loadtest(loadtest::LoadtestArgs),
    /// Simulate a scenario day by day; write a JSON summary, CSV series and an HTML report.
    Simulate(simulate::SimulateArgs),
    /// Find the cheapest capacity additions that meet the scenario's [plan] target.
    Plan(plan::PlanArgs),
    /// Audit a closed ballot from its published record.
    #[command(subcommand)]
    Ballot(ballot::BallotCommand),
}

/// Parses the command line and runs the chosen subcommand.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Scenario(cmd) => scenario::run(cmd),
        Command::Allocate(command) => allocate::dispatch(command),
        Command::Loadtest(args) => loadtest::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Ballot(cmd) => ballot::run(cmd),
    }
}
