//! `provisioner certs` (being written).

use std::process::ExitCode;

use clap::Subcommand;

use crate::Global;

/// `provisioner certs ...`
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Placeholder until the subcommands land.
    Pending,
}

impl CertsCommand {
    /// Runs the subcommand.
    pub async fn run(self, _global: &Global) -> anyhow::Result<ExitCode> {
        anyhow::bail!("not written yet")
    }
}
