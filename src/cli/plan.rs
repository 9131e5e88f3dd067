//! `nobat plan FILE --out DIR`: the cheapest capacity additions that meet the scenario's
//! `[plan]` target, printed and written as an overlay that `nobat simulate` can check.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use crate::planning::plan;
use crate::planning::sim::{self, SimOptions, World};

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The scenario file, with a [plan] section (targets, costs, limits).
    pub file: PathBuf,
    /// Directory for plan.txt, plan.json, plan.html and overlay.toml.
    #[arg(long)]
    pub out: PathBuf,
    /// Also simulate the scenario with the overlay and write its reports to DIR/check.
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: PlanArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let scenario = crate::planning::scenario::Scenario::load(&args.file)?;
    let offices = scenario.generate_network();
    let holidays = sim::holidays_for(&scenario);
    let world = World::build(&scenario, &offices, &holidays)?;
    let result = plan::plan(&scenario, &world)?;
    crate::planning::report::write_plan(&args.out, &scenario, &world, &result)
        .with_context(|| format!("{}: cannot write the plan", args.out.display()))?;
    print!("{}", crate::planning::report::plan_text(&result, &world));
    eprintln!(
        "plan written to {} (plan.txt, plan.json, plan.html, overlay.toml) in {:.1} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    if args.check {
        let overlay = plan::overlay_toml(&result, &scenario.name);
        let checked = scenario.with_overlay(&overlay, "overlay.toml")?;
        let offices = checked.generate_network();
        let mut progress = super::simulate::Progress::new("checking the plan");
        let (world, output) =
            sim::simulate(&checked, &offices, SimOptions::default(), &mut |d, h| {
                progress.update(d, h)
            })?;
        let dir = args.out.join("check");
        crate::planning::report::write_simulation(&dir, &checked, &world, &output)
            .with_context(|| format!("{}: cannot write the check", dir.display()))?;
        let target = result.target_wait_days;
        let over: Vec<String> = output
            .provinces
            .iter()
            .filter_map(|p| {
                p.wait_percentile(0.95)
                    .filter(|&w| w > target)
                    .map(|w| format!("{} (p95 {w})", p.name_en))
            })
            .collect();
        if over.is_empty() {
            println!("Simulated with the overlay: every province's p95 wait is within {target} working days.");
        } else {
            println!(
                "Simulated with the overlay: {} province(s) over {target} working days: {}",
                over.len(),
                over.join(", ")
            );
        }
        eprintln!("check reports in {}", dir.display());
    }
    Ok(())
}
