//! `provisioner`: the command-line face of secretless device provisioning.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use provisioner_store_local::datadir::DataDir;

/// Secretless IoT device provisioning: devices prove their secure-element key with a CSR
/// and receive an X.509 client certificate.
#[derive(Debug, Parser)]
#[command(name = "provisioner", version, about, long_about = None)]
struct Cli {
    /// Where the local service keeps its registry, CA and secrets.
    #[arg(
        long,
        global = true,
        env = "PROVISIONER_DATA_DIR",
        default_value = "./.provisioner"
    )]
    data_dir: PathBuf,
    /// Write logs as JSON lines (on stderr).
    #[arg(long, global = true, env = "PROVISIONER_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

/// What every subcommand may use.
#[derive(Debug)]
pub struct Global {
    /// The data directory (`--data-dir`).
    pub data_dir: DataDir,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the provisioning service (device API) on the local adapters.
    Serve(commands::serve::ServeArgs),
    /// Import manufacturer manifests into the device registry.
    Import(commands::import::ImportArgs),
    /// The certificate authority: set up, show, export, revoke lists, rotate.
    #[command(subcommand)]
    Ca(commands::ca::CaCommand),
    /// Issued certificates: list and revoke.
    #[command(subcommand)]
    Certs(commands::certs::CertsCommand),
    /// Registered devices: disable (and revoke, for a stolen device) or enable one.
    #[command(subcommand)]
    Devices(commands::devices::DevicesCommand),
    /// Simulated devices: a fleet, provisioning, MQTT connection, load.
    #[command(subcommand)]
    Device(commands::device::DeviceCommand),
    /// Work with certificate signing requests.
    #[command(subcommand)]
    Csr(commands::csr::CsrCommand),
    /// The admin API's credentials: print or rotate its bearer token.
    #[command(subcommand)]
    Admin(commands::admin::AdminCommand),
    /// The PKI admin's steps on AWS: the issuing ACM Private CA, its IoT Core
    /// registration, and its rotation (needs a build with `--features aws`).
    Aws(commands::aws::AwsArgs),
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PROVISIONER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    let global = Global {
        data_dir: DataDir::new(cli.data_dir),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => args.run(&global).await,
            Command::Import(args) => args.run(&global).await,
            Command::Ca(command) => command.run(&global).await,
            Command::Certs(command) => command.run(&global).await,
            Command::Devices(command) => command.run(&global).await,
            Command::Device(command) => command.run(&global).await,
            Command::Csr(command) => Ok(command.run()),
            Command::Admin(command) => command.run(&global).await,
            Command::Aws(args) => args.run().await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
