//! `provisioner`: the command-line face of secretless device provisioning.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Secretless IoT device provisioning: devices prove their secure-element key with a CSR
/// and receive an X.509 client certificate.
#[derive(Debug, Parser)]
#[command(name = "provisioner", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with certificate signing requests.
    #[command(subcommand)]
    Csr(commands::csr::CsrCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Csr(command) => command.run(),
    }
}
