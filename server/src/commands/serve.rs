//! `provisioner serve` (being written).

use std::process::ExitCode;

use clap::Args;

use crate::Global;

/// Arguments of `provisioner serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {}

impl ServeArgs {
    /// Runs the subcommand.
    pub async fn run(self, _global: &Global) -> anyhow::Result<ExitCode> {
        anyhow::bail!("not written yet")
    }
}
