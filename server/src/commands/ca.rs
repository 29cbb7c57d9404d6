//! `provisioner ca` (being written).

use std::process::ExitCode;

use clap::Subcommand;

use crate::Global;

/// `provisioner ca ...`
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Placeholder until the subcommands land.
    Pending,
}

impl CaCommand {
    /// Runs the subcommand.
    pub async fn run(self, _global: &Global) -> anyhow::Result<ExitCode> {
        anyhow::bail!("not written yet")
    }
}
