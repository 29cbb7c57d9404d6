//! `provisioner ca`: set up the on-disk issuing CA (the PKI admin's steps 1-2), show it,
//! and export the chain devices and brokers need.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use provisioner_core::{Clock, SystemClock, UnixTime};
use provisioner_http::api::rfc3339;
use provisioner_store_local::authority::{CaInfo, LocalAuthority};
use provisioner_store_local::crls::published_crls;
use provisioner_store_local::datadir::DataDir;
use provisioner_store_local::operations;
use provisioner_store_local::registry::SqliteRegistry;
use serde::Serialize;

use super::crl_lifetime::CrlLifetimeArg;
use crate::Global;

/// `provisioner ca ...`
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create the CA in DATA_DIR/ca.
    ///
    /// Without options: a development CA, a root and an issuing intermediate on this
    /// machine, ready to issue. With --csr-only: only the issuing CA's key and a CSR, for
    /// an external parent CA to sign; install the result with `ca import-cert`.
    Init(InitArgs),
    /// Install the certificate an external parent CA issued for the `init --csr-only` CSR.
    ///
    /// FILE holds the issuing CA's certificate first, then optionally its parents up to
    /// the root (PEM). Its key must be the CSR's, and it must be a CA certificate that may
    /// sign certificates and CRLs. It becomes the current issuing CA.
    ImportCert(ImportArgs),
    /// Print the CA's state as JSON: current id, subject, serial, validity, previous ids,
    /// a CSR waiting for its certificate, and whether the root key is on this machine.
    Show,
    /// Print the chain devices need (PEM): the issuing intermediate, then its parents up
    /// to the root.
    ExportChain,
    /// Regenerate every CA's CRL from the registry and print the issuing CA's (PEM).
    ///
    /// Each CRL lists every revocation recorded before it was read; the files are
    /// DATA_DIR/ca/issuing/ID/crl.pem and DATA_DIR/ca/root.crl.pem.
    Crl(CrlArgs),
    /// Rotate the issuing CA and revoke, in batches, every certificate the old one issued.
    ///
    /// A new intermediate signed by the local root becomes current at once (a running
    /// `serve` uses it on its next issuance); the old one is revoked on the root's CRL;
    /// its devices fail at the broker and come back through /new. Resumable: run it again
    /// after an interruption. With --csr-only: write the new intermediate's CSR for an
    /// external parent; `ca import-cert` then completes the rotation.
    Rotate(RotateArgs),
    /// Write what a mosquitto TLS listener on 127.0.0.1 needs into DIR: mosquitto.conf,
    /// ca.pem, crl.pem, server.pem, server.key and acl. Run `mosquitto -c DIR/mosquitto.conf`.
    ExportMosquitto(ExportMosquittoArgs),
}

/// Arguments of `provisioner ca crl`.
#[derive(Debug, Args)]
pub struct CrlArgs {
    #[command(flatten)]
    crl_lifetime: CrlLifetimeArg,
}

/// Arguments of `provisioner ca rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Write only the new intermediate's key and CSR for an external parent CA.
    #[arg(long)]
    csr_only: bool,
    /// The new issuing CA's common name in the CSR.
    #[arg(long, requires = "csr_only")]
    common_name: Option<String>,
    #[command(flatten)]
    crl_lifetime: CrlLifetimeArg,
}

/// Arguments of `provisioner ca export-mosquitto`.
#[derive(Debug, Args)]
pub struct ExportMosquittoArgs {
    /// Directory to write into (created if missing).
    dir: PathBuf,
    /// The listener's port on 127.0.0.1.
    #[arg(long, default_value_t = 8883)]
    port: u16,
    #[command(flatten)]
    crl_lifetime: CrlLifetimeArg,
}

/// What `ca rotate` prints.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Rotated {
    old_ca: String,
    new_ca: String,
    revoked: u64,
    resumed: bool,
}

/// Arguments of `provisioner ca init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Write only the issuing CA's key and a CSR (DATA_DIR/ca/issuing/ID/csr.pem) for
    /// an external parent CA to sign; prints the CSR's path and how to sign it.
    #[arg(long)]
    csr_only: bool,
    /// The issuing CA's common name in the CSR (default `Provisioner Issuing CA <id>`).
    #[arg(long, requires = "csr_only")]
    common_name: Option<String>,
}

/// Arguments of `provisioner ca import-cert`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The signed certificate (PEM, issuing CA first, then its parents).
    file: PathBuf,
    #[command(flatten)]
    crl_lifetime: CrlLifetimeArg,
}

/// What `ca show` prints.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Show {
    ca_dir: String,
    current_id: Option<String>,
    subject: Option<String>,
    serial: Option<String>,
    certificate_id: Option<String>,
    not_before: Option<String>,
    not_after: Option<String>,
    previous_ids: Vec<String>,
    pending_id: Option<String>,
    pending_csr: Option<String>,
    root_key_local: bool,
    /// Each CRL on disk: when it was signed (and how long ago), when it expires.
    crls: Vec<ShownCrl>,
}

/// A CRL as `ca show` prints it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShownCrl {
    /// The issuing CA's id, or `root`.
    issuer: String,
    path: String,
    /// Null while it has not been written.
    this_update: Option<String>,
    age_secs: Option<i64>,
    next_update: Option<String>,
    expires_in_secs: Option<i64>,
    revoked: u64,
}

/// What `ca init` and `ca import-cert` print.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    ca_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    root_certificate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    csr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_id: Option<String>,
}

/// The extensions the parent CA must give the issuing CA, as an openssl extfile.
const PARENT_EXTENSIONS: &str = "basicConstraints=critical,CA:TRUE,pathlen:0\n\
keyUsage=critical,digitalSignature,keyCertSign,cRLSign\n\
subjectKeyIdentifier=hash\n\
authorityKeyIdentifier=keyid";

impl CaCommand {
    /// Runs the subcommand.
    pub async fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let ca_dir = global.data_dir.ca_dir();
        match self {
            Self::Init(args) => {
                global.data_dir.ensure_exists().with_context(|| {
                    format!("cannot create {}", global.data_dir.root().display())
                })?;
                if args.csr_only {
                    let report =
                        LocalAuthority::init_csr_only(&ca_dir, args.common_name.as_deref())?;
                    eprintln!(
                        "Have your parent CA sign {} as a CA certificate, for example:\n  \
                         openssl x509 -req -in {} -CA parent.pem -CAkey parent.key -days 1825 \
                         -extfile ext.cnf -out issuing.pem\nwith ext.cnf:\n{PARENT_EXTENSIONS}\n\
                         then run: provisioner ca import-cert issuing.pem  (append the parent chain to the file)",
                        report.csr_path.display(),
                        report.csr_path.display(),
                    );
                    print_json(&Created {
                        ca_id: report.id,
                        root_certificate: None,
                        chain: None,
                        csr: Some(report.csr_path.display().to_string()),
                        previous_id: None,
                    })?;
                } else {
                    let report = LocalAuthority::init_development(&ca_dir, now())?;
                    eprintln!(
                        "Development CA created; the root key is on this machine. Devices and brokers trust {}.",
                        report.root_certificate.display()
                    );
                    print_json(&Created {
                        ca_id: report.id,
                        root_certificate: Some(report.root_certificate.display().to_string()),
                        chain: Some(report.chain.display().to_string()),
                        csr: None,
                        previous_id: None,
                    })?;
                }
            }
            Self::ImportCert(args) => {
                let bytes = std::fs::read(&args.file)
                    .with_context(|| format!("cannot read {}", args.file.display()))?;
                let report = LocalAuthority::import_certificate(&ca_dir, &bytes, now())?;
                if !report.chain_ends_at_root {
                    eprintln!(
                        "warning: the chain does not reach a root certificate; import {} again with the parent chain appended, or give devices the root separately",
                        args.file.display()
                    );
                }
                let completed = match &report.previous_id {
                    // Installing the successor of a CA that issued: finish its rotation.
                    Some(old) if old != &report.id => {
                        let registry = open_registry(global)?;
                        let outcome = operations::complete_rotation(
                            &global.data_dir,
                            &registry,
                            old,
                            now(),
                            args.crl_lifetime.secs,
                            progress_printer(),
                        )
                        .await?;
                        Some(outcome)
                    }
                    _ => None,
                };
                print_json(&Created {
                    ca_id: report.id,
                    root_certificate: None,
                    chain: None,
                    csr: None,
                    previous_id: report.previous_id,
                })?;
                if let Some(outcome) = completed {
                    eprintln!(
                        "rotation from {} completed: {} certificates revoked",
                        outcome.old_ca, outcome.revoked
                    );
                }
            }
            Self::Show => {
                let overview = LocalAuthority::overview(&ca_dir)?;
                let current = overview.current.as_ref();
                let time = |pick: fn(&CaInfo) -> UnixTime| current.map(|info| rfc3339(pick(info)));
                print_json(&Show {
                    ca_dir: ca_dir.display().to_string(),
                    current_id: current.map(|info| info.id.clone()),
                    subject: current.map(|info| info.subject.clone()),
                    serial: current.map(|info| info.serial.clone()),
                    certificate_id: current.map(|info| info.certificate_id.clone()),
                    not_before: time(|info| info.not_before),
                    not_after: time(|info| info.not_after),
                    previous_ids: overview.previous_ids,
                    pending_id: overview.pending.as_ref().map(|p| p.id.clone()),
                    pending_csr: overview
                        .pending
                        .as_ref()
                        .map(|p| p.csr_path.display().to_string()),
                    root_key_local: overview.root_key_local,
                    crls: shown_crls(&global.data_dir, now())?,
                })?;
            }
            Self::ExportChain => {
                let authority = LocalAuthority::load(&ca_dir)?;
                print!("{}", authority.chain_pem());
            }
            Self::Crl(args) => {
                let registry = open_registry(global)?;
                let written = operations::regenerate_crls(
                    &global.data_dir,
                    &registry,
                    now(),
                    args.crl_lifetime.secs,
                )
                .await?;
                for path in &written {
                    eprintln!("wrote {}", path.display());
                }
                let current = LocalAuthority::load(&ca_dir)?;
                let path = operations::crl_path(&global.data_dir, current.id());
                print!(
                    "{}",
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?
                );
            }
            Self::Rotate(args) => {
                if args.csr_only {
                    let report =
                        LocalAuthority::rotate_csr_only(&ca_dir, args.common_name.as_deref())?;
                    eprintln!(
                        "Have your parent CA sign {} (extensions:\n{PARENT_EXTENSIONS}\n), then run \
                         `provisioner ca import-cert FILE`: it installs the new CA and revokes the old one's certificates.",
                        report.csr_path.display()
                    );
                    print_json(&Created {
                        ca_id: report.id,
                        root_certificate: None,
                        chain: None,
                        csr: Some(report.csr_path.display().to_string()),
                        previous_id: None,
                    })?;
                } else {
                    let registry = open_registry(global)?;
                    let outcome = operations::rotate_ca(
                        &global.data_dir,
                        &registry,
                        now(),
                        args.crl_lifetime.secs,
                        progress_printer(),
                    )
                    .await?;
                    print_json(&Rotated {
                        old_ca: outcome.old_ca,
                        new_ca: outcome.new_ca,
                        revoked: outcome.revoked,
                        resumed: outcome.resumed,
                    })?;
                }
            }
            Self::ExportMosquitto(args) => {
                let registry = open_registry(global)?;
                let export = operations::export_mosquitto(
                    &global.data_dir,
                    &registry,
                    &args.dir,
                    args.port,
                    now(),
                    args.crl_lifetime.secs,
                )
                .await?;
                eprintln!("run: mosquitto -c {}", export.config.display());
                print_json(&serde_json::json!({
                    "config": export.config.display().to_string(),
                    "port": export.port,
                }))?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The CRLs on disk, with their age and time left at `now`.
fn shown_crls(data_dir: &DataDir, now: UnixTime) -> anyhow::Result<Vec<ShownCrl>> {
    Ok(published_crls(data_dir)?
        .into_iter()
        .map(|crl| ShownCrl {
            issuer: crl.issuer,
            path: crl.path.display().to_string(),
            this_update: crl.dates.map(|d| rfc3339(d.this_update)),
            age_secs: crl.dates.map(|d| now - d.this_update),
            next_update: crl.dates.map(|d| rfc3339(d.next_update)),
            expires_in_secs: crl.dates.map(|d| d.next_update - now),
            revoked: crl.dates.map_or(0, |d| d.revoked),
        })
        .collect())
}

fn open_registry(global: &Global) -> anyhow::Result<SqliteRegistry> {
    let path = global.data_dir.registry_path();
    SqliteRegistry::open(&path)
        .with_context(|| format!("cannot open the registry {}", path.display()))
}

/// Reports the cascade's progress on stderr, one line per committed batch.
fn progress_printer() -> impl FnMut(u64) {
    |revoked| eprintln!("revoked {revoked} certificates of the old CA")
}

fn now() -> UnixTime {
    SystemClock.now()
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
