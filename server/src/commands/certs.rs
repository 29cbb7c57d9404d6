//! `provisioner certs`: list and revoke the certificates the registry has recorded.
//!
//! Both go through the admin API's role over the data directory ([`LocalFleet`] as
//! [`FleetAdmin`], docs/ARCHITECTURE.md, "The rule: layers call downwards only"): the
//! listing is the certificates `GET /admin/api/certificates` pages through, and a
//! revocation is the one of `POST /admin/api/certificates/{id}/revoke`, CRLs included.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use provisioner_app::fleet::{CertificateQuery, FleetAdmin, FleetError};
use provisioner_core::{
    CertificateRecord, CertificateStatus, Clock, RevocationReason, SystemClock,
};
use provisioner_http::api::rfc3339;
use provisioner_store_local::admin::LocalFleet;
use provisioner_store_local::crls::CrlWriter;
use provisioner_store_local::registry::{status_name, RegistryError};
use serde::Serialize;

use crate::Global;

/// `provisioner certs ...`
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// List recorded certificates, oldest first.
    ///
    /// With --json, an array of {certificateId, deviceId, serial, issuer, notBefore,
    /// notAfter, status} (times RFC 3339 UTC; revoked ones add revokedAt and
    /// revocationReason).
    List(ListArgs),
    /// Revoke a certificate: the registry marks it REVOKED with the time and reason.
    ///
    /// Revoking a certificate already revoked changes nothing and is not an error.
    Revoke(RevokeArgs),
}

/// Arguments of `provisioner certs list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this device's certificates.
    #[arg(long, value_name = "ID")]
    device: Option<String>,
    /// Only certificates in this status.
    #[arg(long, value_enum, ignore_case = true)]
    status: Option<StatusArg>,
    /// Only certificates issued by this CA (its id).
    #[arg(long, value_name = "CA")]
    issuer: Option<String>,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// A certificate status on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum StatusArg {
    Active,
    Inactive,
    Revoked,
}

impl From<StatusArg> for CertificateStatus {
    fn from(status: StatusArg) -> Self {
        match status {
            StatusArg::Active => Self::Active,
            StatusArg::Inactive => Self::Inactive,
            StatusArg::Revoked => Self::Revoked,
        }
    }
}

/// Arguments of `provisioner certs revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The certificate id (hex SHA-256 of its DER), as `certs list` shows it.
    #[arg(value_name = "ID")]
    certificate_id: String,
    /// The RFC 5280 reason: unspecified, keyCompromise, cACompromise, affiliationChanged,
    /// superseded, cessationOfOperation, certificateHold, privilegeWithdrawn.
    #[arg(long, value_parser = parse_reason)]
    reason: RevocationReason,
    /// Print JSON on stdout: the certificate as `certs list --json` shows it, plus
    /// alreadyRevoked.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    crl_lifetime: super::crl_lifetime::CrlLifetimeArg,
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

/// A certificate as the command prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CertificateView {
    certificate_id: String,
    device_id: String,
    serial: String,
    issuer: String,
    not_before: String,
    not_after: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation_reason: Option<&'static str>,
}

impl From<&CertificateRecord> for CertificateView {
    fn from(c: &CertificateRecord) -> Self {
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
        }
    }
}

impl CertsCommand {
    /// Runs the subcommand.
    ///
    /// # Errors
    /// A registry that cannot be opened or read; an unknown certificate id (with
    /// `--json`, printed as `{error, message}` on stdout instead).
    pub async fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let json = match &self {
            Self::List(args) => args.json,
            Self::Revoke(args) => args.json,
        };
        let result = async {
            let registry = super::open_local_registry(&global.data_dir)?;
            let fleet = LocalFleet::new(registry, global.data_dir.clone());
            match self {
                Self::List(args) => list(&fleet, args).await,
                Self::Revoke(args) => {
                    // The CRLs this revocation writes live as long as --crl-lifetime says.
                    let fleet = fleet.with_crl_writer(CrlWriter::new(args.crl_lifetime.secs));
                    revoke(&fleet, args).await
                }
            }
        }
        .await;
        match result {
            Err(e) if json => {
                let code = match e.downcast_ref::<RegistryError>() {
                    Some(RegistryError::UnknownCertificate(_)) => "unknown_certificate",
                    _ => "registry_failed",
                };
                let body = serde_json::json!({ "error": code, "message": format!("{e:#}") });
                println!("{body}");
                Ok(ExitCode::FAILURE)
            }
            other => other,
        }
    }
}

/// The same failure in the local registry's words (the way `certs` has always named it,
/// and the code its `--json` failure shows).
fn in_registry_words(error: FleetError) -> anyhow::Error {
    match error {
        FleetError::UnknownCertificate(id) => RegistryError::UnknownCertificate(id).into(),
        FleetError::Busy { .. } => RegistryError::Busy.into(),
        other => other.into(),
    }
}

async fn list(fleet: &LocalFleet, args: ListArgs) -> anyhow::Result<ExitCode> {
    let query = CertificateQuery {
        device_id: args.device,
        status: args.status.map(CertificateStatus::from),
        issuer: args.issuer,
        ..CertificateQuery::default()
    };
    let certificates = fleet
        .all_certificates(query)
        .await
        .map_err(in_registry_words)?;
    let views: Vec<CertificateView> = certificates.iter().map(CertificateView::from).collect();
    if args.json {
        println!("{}", serde_json::to_string(&views)?);
        return Ok(ExitCode::SUCCESS);
    }
    if views.is_empty() {
        eprintln!("no certificate matches");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<64}  {:<24}  {:<8}  {:<20}  ISSUER",
        "CERTIFICATE ID", "DEVICE", "STATUS", "NOT AFTER"
    );
    for v in &views {
        println!(
            "{:<64}  {:<24}  {:<8}  {:<20}  {}",
            v.certificate_id, v.device_id, v.status, v.not_after, v.issuer
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn revoke(fleet: &LocalFleet, args: RevokeArgs) -> anyhow::Result<ExitCode> {
    // The same revocation as `POST /admin/api/certificates/{id}/revoke`: recorded, then
    // the CRLs written again (brokers learn of it through them). The revocation stands
    // even if the CRLs cannot be written; the operator is told how to finish.
    let revocation = fleet
        .revoke(&args.certificate_id, args.reason, SystemClock.now())
        .await
        .map_err(in_registry_words)?;
    for path in &revocation.crl_files {
        eprintln!("wrote {}", path.display());
    }
    if !revocation.propagated {
        eprintln!(
            "warning: the revocation is recorded, but the CRL could not be regenerated ({}); run `provisioner ca crl`",
            revocation.propagation_error.as_deref().unwrap_or_default()
        );
    }
    let certificate = &revocation.certificate;
    if args.json {
        let mut body = serde_json::to_value(CertificateView::from(certificate))?;
        if let Some(object) = body.as_object_mut() {
            object.insert(
                "alreadyRevoked".into(),
                serde_json::Value::Bool(revocation.already_revoked),
            );
        }
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let (at, reason) = certificate
        .revoked
        .map(|(at, reason)| (rfc3339(at), reason.name()))
        .unwrap_or_default();
    if revocation.already_revoked {
        println!(
            "certificate {} of device {} was already revoked at {at} ({reason}); nothing changed",
            certificate.certificate_id, certificate.device_id
        );
    } else {
        println!(
            "revoked certificate {} of device {} (serial {}, issuer {}) at {at}: {reason}",
            certificate.certificate_id,
            certificate.device_id,
            certificate.serial,
            certificate.issuer
        );
    }
    Ok(ExitCode::SUCCESS)
}
