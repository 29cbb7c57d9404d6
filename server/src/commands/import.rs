//! `provisioner import` (being written).

use std::process::ExitCode;

use clap::Args;

use crate::Global;

/// Arguments of `provisioner import`.
#[derive(Debug, Args)]
pub struct ImportArgs {}

impl ImportArgs {
    /// Runs the subcommand.
    pub async fn run(self, _global: &Global) -> anyhow::Result<ExitCode> {
        anyhow::bail!("not written yet")
    }
}
