//! `provisioner device` (being written).

use std::process::ExitCode;

use clap::Subcommand;

use crate::Global;

/// `provisioner device ...`
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Placeholder until the subcommands land.
    Pending,
}

impl DeviceCommand {
    /// Runs the subcommand.
    pub async fn run(self, _global: &Global) -> anyhow::Result<ExitCode> {
        anyhow::bail!("not written yet")
    }
}
