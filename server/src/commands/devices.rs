//! `provisioner devices`: cut a device off, or let it back in, on either backend.
//!
//! `disable ID --revoke` is the one step for a stolen device: the device is disabled
//! (`POST /new` answers 403 `device_disabled`), then each of its ACTIVE certificates is
//! revoked in the registry and wherever the backend makes a revocation known (the CRLs
//! in the data directory; ACM Private CA and IoT Core in every region on AWS), through
//! the same use case as `POST /admin/api/devices/{id}/disable` with `{"revoke": true}`
//! ([`provisioner_app::fleet::disable_device`]). Deployments without the admin API
//! run it from here.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use provisioner_app::fleet::{
    self, DeviceRecord, DisabledDevice, FleetAdmin, FleetError, DEFAULT_CUT_OFF_REASON,
};
use provisioner_core::{CertificateRecord, Clock, RevocationReason, SystemClock};
use provisioner_http::api::rfc3339;
use provisioner_store_local::admin::LocalFleet;
use provisioner_store_local::registry::status_name;
use serde::Serialize;

use super::Backend;
use crate::Global;

/// `provisioner devices ...`
#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// Disable a device: the service refuses it certificates from now on.
    ///
    /// With --revoke, also revoke each of its ACTIVE certificates: in the registry, on the
    /// CRLs (local) or at ACM Private CA and in IoT Core in every region (aws). Exits 1
    /// when a revocation is recorded but did not reach all of those (stderr says how to
    /// finish). With --json, prints {deviceId, enabled, sourceManifest, importedAt,
    /// revokedCertificates: [certificate as `certs list --json` shows it, plus
    /// alreadyRevoked and propagated]}.
    Disable(DisableArgs),
    /// Enable a device again: it may request a certificate.
    ///
    /// Certificates revoked meanwhile stay revoked; the device gets a new one from
    /// `POST /new`. With --json, prints {deviceId, enabled, sourceManifest, importedAt}.
    Enable(EnableArgs),
}

/// Where the device lives and how to print: what both subcommands take.
#[derive(Debug, Args)]
pub struct Target {
    /// The device id.
    #[arg(value_name = "ID")]
    device_id: String,
    /// Print JSON on stdout (a failure as {error, message}).
    #[arg(long)]
    json: bool,
    /// `local` (the data directory's registry and CA) or `aws` (DynamoDB, ACM Private CA
    /// and IoT Core, from the `PROVISIONER_*` and `AWS_*` variables, as `serve --backend
    /// aws` reads them).
    #[arg(long, env = "PROVISIONER_BACKEND", value_enum, default_value_t = Backend::Local)]
    backend: Backend,
}

/// Arguments of `provisioner devices disable`.
#[derive(Debug, Args)]
pub struct DisableArgs {
    #[command(flatten)]
    target: Target,
    /// Also revoke every ACTIVE certificate of the device.
    #[arg(long)]
    revoke: bool,
    /// The RFC 5280 reason for --revoke: unspecified, keyCompromise, cACompromise,
    /// affiliationChanged, superseded, cessationOfOperation, certificateHold,
    /// privilegeWithdrawn [default: keyCompromise, for a stolen or compromised device;
    /// a decommissioned one is cessationOfOperation].
    #[arg(long, requires = "revoke", value_parser = parse_reason)]
    reason: Option<RevocationReason>,
}

/// Arguments of `provisioner devices enable`.
#[derive(Debug, Args)]
pub struct EnableArgs {
    #[command(flatten)]
    target: Target,
}

fn parse_reason(name: &str) -> Result<RevocationReason, String> {
    RevocationReason::from_name(name).ok_or_else(|| {
        let valid: Vec<&str> = RevocationReason::ALL.iter().map(|r| r.name()).collect();
        format!(
            "{name:?} is not an RFC 5280 revocation reason; use one of: {}",
            valid.join(", ")
        )
    })
}

/// A device as the command prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceView {
    device_id: String,
    enabled: bool,
    source_manifest: Option<String>,
    imported_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_certificates: Option<Vec<RevokedView>>,
}

impl From<DeviceRecord> for DeviceView {
    fn from(d: DeviceRecord) -> Self {
        Self {
            device_id: d.device_id,
            enabled: d.enabled,
            source_manifest: d.source_manifest,
            imported_at: rfc3339(d.imported_at),
            revoked_certificates: None,
        }
    }
}

/// A certificate revoked by `disable --revoke`, as `certs list --json` shows it plus what
/// the revocation did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RevokedView {
    certificate_id: String,
    device_id: String,
    serial: String,
    issuer: String,
    not_before: String,
    not_after: String,
    status: &'static str,
    revoked_at: Option<String>,
    revocation_reason: Option<&'static str>,
    already_revoked: bool,
    propagated: bool,
}

impl RevokedView {
    fn new(c: &CertificateRecord, already_revoked: bool, propagated: bool) -> Self {
        Self {
            certificate_id: c.certificate_id.clone(),
            device_id: c.device_id.clone(),
            serial: c.serial.clone(),
            issuer: c.issuer.clone(),
            not_before: rfc3339(c.not_before),
            not_after: rfc3339(c.not_after),
            status: status_name(c.status),
            revoked_at: c.revoked.map(|(at, _)| rfc3339(at)),
            revocation_reason: c.revoked.map(|(_, reason)| reason.name()),
            already_revoked,
            propagated,
        }
    }
}

impl DevicesCommand {
    /// Runs the subcommand.
    ///
    /// # Errors
    /// A registry (or AWS deployment) that cannot be reached, an unknown device (with
    /// `--json`, printed as `{error, message}` on stdout instead).
    pub async fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let (json, backend) = match &self {
            Self::Disable(args) => (args.target.json, args.target.backend),
            Self::Enable(args) => (args.target.json, args.target.backend),
        };
        let result = async {
            let fleet = open_fleet(global, backend).await?;
            let backend = fleet.backend();
            match self {
                Self::Disable(args) => {
                    let revoke = args
                        .revoke
                        .then(|| args.reason.unwrap_or(DEFAULT_CUT_OFF_REASON));
                    let done = fleet::disable_device(
                        fleet.as_ref(),
                        &args.target.device_id,
                        revoke,
                        SystemClock.now(),
                    )
                    .await?;
                    print_disabled(&done, revoke.is_some(), json, backend)
                }
                Self::Enable(args) => {
                    let device = fleet
                        .set_device_enabled(&args.target.device_id, true)
                        .await?;
                    print_device(device, json)
                }
            }
        }
        .await;
        match result {
            Err(e) if json => {
                let code = match e.downcast_ref::<FleetError>() {
                    Some(error) => error_code(error),
                    None => "registry_failed",
                };
                let body = serde_json::json!({ "error": code, "message": format!("{e:#}") });
                println!("{body}");
                Ok(ExitCode::FAILURE)
            }
            other => other,
        }
    }
}

/// The stable code of a failure, as the admin API names it.
fn error_code(error: &FleetError) -> &'static str {
    match error {
        FleetError::UnknownDevice(_) => "unknown_device",
        FleetError::UnknownCertificate(_) => "unknown_certificate",
        FleetError::Busy { .. } => "registry_busy",
        FleetError::Invalid { code, .. }
        | FleetError::Conflict { code, .. }
        | FleetError::NotSupported { code, .. } => code,
        FleetError::Internal(_) => "registry_failed",
    }
}

async fn open_fleet(global: &Global, backend: Backend) -> anyhow::Result<Box<dyn FleetAdmin>> {
    if backend == Backend::Aws {
        return open_aws().await;
    }
    let registry = super::open_local_registry(&global.data_dir)?;
    Ok(Box::new(LocalFleet::new(registry, global.data_dir.clone())))
}

#[cfg(feature = "aws")]
async fn open_aws() -> anyhow::Result<Box<dyn FleetAdmin>> {
    use provisioner_store_aws::admin::AwsFleet;
    use provisioner_store_aws::config::AwsSettings;

    let settings = AwsSettings::from_env()?;
    let fleet = AwsFleet::connect(&settings)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the AWS deployment: {e}"))?;
    Ok(Box::new(fleet))
}

#[cfg(not(feature = "aws"))]
async fn open_aws() -> anyhow::Result<Box<dyn FleetAdmin>> {
    anyhow::bail!(super::NO_AWS_FEATURE)
}

fn print_device(device: DeviceRecord, json: bool) -> anyhow::Result<ExitCode> {
    let view = DeviceView::from(device);
    if json {
        println!("{}", serde_json::to_string(&view)?);
    } else {
        println!(
            "device {} is {}",
            view.device_id,
            if view.enabled { "enabled" } else { "disabled" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_disabled(
    done: &DisabledDevice,
    revoke: bool,
    json: bool,
    backend: &str,
) -> anyhow::Result<ExitCode> {
    let revoked: Vec<RevokedView> = done
        .revoked
        .iter()
        .map(|r| RevokedView::new(&r.certificate, r.already_revoked, r.propagated))
        .collect();
    let unfinished: Vec<String> = revoked
        .iter()
        .filter(|r| !r.propagated)
        .map(|r| r.certificate_id.clone())
        .collect();
    if json {
        let mut view = DeviceView::from(done.device.clone());
        view.revoked_certificates = Some(revoked);
        println!("{}", serde_json::to_string(&view)?);
    } else {
        println!("device {} is disabled", done.device.device_id);
        for r in &revoked {
            println!(
                "revoked certificate {} (serial {}, issuer {}): {}",
                r.certificate_id,
                r.serial,
                r.issuer,
                r.revocation_reason.unwrap_or_default()
            );
        }
        if revoke && revoked.is_empty() {
            println!("it had no ACTIVE certificate: nothing to revoke");
        }
    }
    if unfinished.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let how = if backend == "local" {
        "the CRLs could not be written: run `provisioner ca crl`".to_owned()
    } else {
        format!(
            "it did not reach ACM Private CA or IoT Core in every region (the errors are logged above): \
             repeat it with POST /admin/api/certificates/ID/revoke for each of {}",
            unfinished.join(", ")
        )
    };
    eprintln!("warning: the registry has revoked every certificate listed, but {how}");
    Ok(ExitCode::FAILURE)
}
