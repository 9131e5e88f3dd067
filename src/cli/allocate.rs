//! `nobat allocate`: file formats in, assignments and a report out.

use clap::Args;

#[derive(Debug, Args)]
pub struct AllocateArgs {}

pub fn run(_args: AllocateArgs) -> anyhow::Result<()> {
    anyhow::bail!("the allocator is not built yet")
}
