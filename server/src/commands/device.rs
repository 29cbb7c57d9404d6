//! `provisioner device`: simulated devices. A fleet of secure elements and their
//! manifest, provisioning one device over the device API, connecting it to the MQTT
//! endpoint with mutual TLS, and a load generator for `POST /new`.
//!
//! Every subcommand prints JSON on stdout: its result (exit 0), or
//! `{error, message[, status, retryAfter]}` (exit 1).

mod connect;
mod fleet;
mod load;
mod pki;
mod provision;

use std::process::ExitCode;

use clap::Subcommand;
use serde::Serialize;

use crate::Global;

pub use connect::ConnectArgs;
pub use fleet::FleetArgs;
pub use load::LoadArgs;
pub use provision::ProvisionArgs;

/// `provisioner device ...`
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Make N simulated secure elements: one P-256 key per device and the manifest.
    ///
    /// Writes `DIR/<device id>.key.pem` (PKCS#8 PEM, mode 0600) for each device and
    /// `DIR/manifest.csv` (`device_id,public_key`, the key as SEC1 uncompressed hex), the
    /// file a manufacturer ships and `provisioner import` reads. Device ids look like a
    /// secure element's serial number: 18 upper-case hex digits starting `0123`.
    Fleet(FleetArgs),
    /// Provision one device: send its CSR to `POST {URL}/new` and store the certificate.
    ///
    /// Writes `DIR/<id>.cert.pem`, `DIR/<id>.chain.pem` and (if absent) `DIR/<id>.key.pem`,
    /// and prints `{deviceId, certificateId, notAfter, endpoint}`. A refusal prints the
    /// service's `{error, message}` with `status` and exits 1.
    Provision(ProvisionArgs),
    /// Connect a provisioned device to the MQTT endpoint with mutual TLS and publish once.
    ///
    /// Exits 0 only when the broker accepted the connection (CONNACK) and the QoS 1
    /// message to `dt/<device id>/hello` (PUBACK); otherwise prints
    /// `{error, message}` (`error`: connect_refused, tls_failed, unreachable, timeout,
    /// invalid_files, ...) and exits 1.
    Connect(ConnectArgs),
    /// Load generator: many devices of a fleet requesting certificates concurrently.
    ///
    /// Prints only JSON: `{requests, ok, by_status, throughput, p50_ms, p95_ms, p99_ms,
    /// ...}`, where `throughput` counts 200 answers per second.
    Load(LoadArgs),
}

impl DeviceCommand {
    /// Runs the subcommand, printing its JSON answer on stdout.
    pub async fn run(self, _global: &Global) -> anyhow::Result<ExitCode> {
        let result = match self {
            Self::Fleet(args) => args.run().await,
            Self::Provision(args) => args.run().await,
            Self::Connect(args) => args.run().await,
            Self::Load(args) => args.run().await,
        };
        Ok(match result {
            Ok(value) => {
                print_json(&value);
                ExitCode::SUCCESS
            }
            Err(failure) => {
                print_json(&failure);
                ExitCode::FAILURE
            }
        })
    }
}

fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot print the result as JSON: {e}"),
    }
}

/// Why a device subcommand failed: the error body every part of the project shares,
/// with the HTTP status when the answer came from the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// A stable snake_case code.
    pub error: String,
    /// What happened and what to fix.
    pub message: String,
    /// The HTTP status of the service's answer, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Seconds to wait before retrying (from `Retry-After`), if the service said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Failure {
    /// A failure that did not come from an HTTP answer.
    pub fn new(error: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            message: message.into(),
            status: None,
            retry_after: None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}
