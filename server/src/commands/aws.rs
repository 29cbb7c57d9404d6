//! `provisioner aws`: the PKI admin's steps on AWS (docs/ARCHITECTURE.md) and the issuing CA's
//! rotation, over ACM Private CA, IoT Core and the config table
//! (`provisioner_store_aws::ca`).
//!
//! The commands exist in every build, so `--help` shows them; they run only in a build
//! with the cargo feature `aws` (`cargo build --release -p provisioner --features aws`),
//! and say so otherwise.
//!
//! Settings come from the environment as every AWS binary reads them
//! (`AwsSettings::from_env`: `AWS_REGION`, `PROVISIONER_REGIONS`,
//! `PROVISIONER_TABLE_PREFIX`, `PROVISIONER_PCA_CA_ARN`, ...), overridden by the flags
//! of `provisioner aws`. Results are JSON on stdout; guidance and progress on stderr;
//! failures exit 1 with the reason.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

/// `provisioner aws ...`
#[derive(Debug, Args)]
pub struct AwsArgs {
    /// The serving region, where the CAs and tables live (default: AWS_REGION).
    #[arg(long, global = true, value_name = "REGION")]
    region: Option<String>,
    /// Every IoT Core region, comma-separated (default: PROVISIONER_REGIONS; the serving
    /// region is always first).
    #[arg(long, global = true, value_name = "R1,R2")]
    regions: Option<String>,
    /// The DynamoDB table prefix (default: PROVISIONER_TABLE_PREFIX or `provisioner-`).
    #[arg(long, global = true, value_name = "PREFIX")]
    table_prefix: Option<String>,
    #[command(subcommand)]
    command: AwsCommand,
}

#[derive(Debug, Subcommand)]
enum AwsCommand {
    /// The issuing CA on ACM Private CA and IoT Core: create, install, register, show,
    /// rotate.
    #[command(subcommand)]
    Ca(CaCommand),
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Create the issuing CA: an ACM Private CA subordinate (EC P-256, ECDSA-SHA-256)
    /// waiting for its certificate; writes its CSR for the parent CA to sign.
    ///
    /// Prints {caArn, caId, csr}. Creates the config table if it is missing. The CA is
    /// recorded as pending: `install` and `register` take it when --arn is not given.
    Create(CreateArgs),
    /// Install the certificate the parent CA issued for the CA's CSR.
    ///
    /// FILE holds the CA's certificate first, then optionally its parents up to the root
    /// (PEM), unless --chain gives them. Its key must be the CSR's. When no issuing CA is
    /// in effect yet, this CA becomes the issuing CA.
    Install(InstallArgs),
    /// Register the CA certificate in IoT Core in every region (ACTIVE, no
    /// auto-registration), with a verification certificate the CA signs for each region's
    /// registration code. Regions where it is registered already are left as they are.
    Register(RegisterArgs),
    /// Print the issuing CA as JSON: ARN, ACM PCA status, validity, IoT Core registration
    /// per region, previous CAs (with when each was retired), the pending CA, and the last
    /// rotation.
    Show(ShowArgs),
    /// Rotate the issuing CA to --to, and revoke every certificate the old CA issued.
    ///
    /// Registers the new CA in every region, makes it the issuing CA (running issuers
    /// pick it up within 30 s), waits --settle-secs, then sets every ACTIVE certificate of
    /// the old CA REVOKED in IoT Core in every region and in the registry, batch by batch;
    /// then deactivates the old CA certificate in IoT Core and has its parent revoke it
    /// when the parent is an ACM Private CA of this account. Resumable: run it again after
    /// an interruption or failure. Prints the summary and what the PKI admin must still do.
    Rotate(RotateArgs),
    /// Print the last rotation's progress as JSON.
    Rotation,
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The CA's subject, e.g. "CN=Provisioner Issuing CA 2027,O=Example,C=DE" (keys CN,
    /// O, OU, C, ST, L; default "CN=Provisioner Issuing CA YYYY-MM-DD", today).
    #[arg(long)]
    subject: Option<String>,
    /// Where to write the CSR (PEM).
    #[arg(long, value_name = "FILE", default_value = "ca.csr")]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct InstallArgs {
    /// The CA certificate the parent issued (PEM; its chain may follow it).
    file: PathBuf,
    /// The parent chain (PEM), up to the root.
    #[arg(long, value_name = "FILE")]
    chain: Option<PathBuf>,
    /// The CA (default: the one `aws ca create` made).
    #[arg(long, value_name = "ARN")]
    arn: Option<String>,
}

#[derive(Debug, Args)]
struct RegisterArgs {
    /// The CA (default: the pending one `aws ca create` made, else the issuing CA).
    #[arg(long, value_name = "ARN")]
    arn: Option<String>,
}

#[derive(Debug, Args)]
struct ShowArgs {
    /// Show this CA instead of the issuing CA.
    #[arg(long, value_name = "ARN")]
    arn: Option<String>,
}

#[derive(Debug, Args)]
struct RotateArgs {
    /// The new issuing CA: an ACM Private CA with its certificate installed.
    #[arg(long, value_name = "ARN")]
    to: String,
    /// Why the old CA's certificates are revoked: superseded (a routine rotation; devices
    /// come back through /new) or cACompromise (the old CA's key leaked).
    #[arg(long, default_value = "superseded", value_parser = ["superseded", "cACompromise"])]
    reason: String,
    /// Seconds to wait after switching before revoking, so issuers still using the old
    /// CA finish (their cache of the issuing CA lasts 30 s).
    #[arg(long, default_value_t = 45)]
    settle_secs: u64,
    /// Certificates evaluated per batch.
    #[arg(long, default_value_t = 100)]
    page_size: i32,
    /// Stop after this many batches (run the command again to continue).
    #[arg(long)]
    max_batches: Option<u64>,
}

impl AwsArgs {
    /// Runs the subcommand.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        #[cfg(feature = "aws")]
        {
            enabled::run(self).await
        }
        #[cfg(not(feature = "aws"))]
        {
            // Keep the arguments "used" in this build.
            let _ = (
                &self.region,
                &self.regions,
                &self.table_prefix,
                &self.command,
            );
            anyhow::bail!(
                "this provisioner was built without AWS support; build it with \
                 `cargo build --release -p provisioner --features aws` and run that binary"
            )
        }
    }
}

#[cfg(feature = "aws")]
mod enabled {
    use std::collections::HashMap;
    use std::process::ExitCode;
    use std::time::Duration;

    use anyhow::Context;
    use indicatif::{ProgressBar, ProgressStyle};
    use provisioner_core::RevocationReason;
    use provisioner_http::api::rfc3339;
    use provisioner_store_aws::ca::{
        ca_id, CaDescription, CaError, CaSubject, CertificateSummary, IssuingCaAdmin,
        RotationOptions, RotationProgress, RotationState, SUBORDINATE_TEMPLATE,
    };
    use provisioner_store_aws::config::AwsSettings;
    use serde_json::{json, Value};

    use super::{AwsArgs, AwsCommand, CaCommand};

    /// The extensions the parent CA must give the issuing CA, as an openssl extfile.
    const PARENT_EXTENSIONS: &str = "basicConstraints=critical,CA:TRUE,pathlen:0\n\
        keyUsage=critical,digitalSignature,keyCertSign,cRLSign\n\
        subjectKeyIdentifier=hash\n\
        authorityKeyIdentifier=keyid";

    pub(super) async fn run(args: AwsArgs) -> anyhow::Result<ExitCode> {
        let settings = settings(&args)?;
        let admin = IssuingCaAdmin::from_settings(&settings).await;
        let AwsCommand::Ca(command) = args.command;
        match command {
            CaCommand::Create(create) => {
                let subject = match &create.subject {
                    Some(text) => CaSubject::parse(text).map_err(plain)?,
                    None => {
                        let today = time::OffsetDateTime::now_utc().date();
                        CaSubject::parse(&format!(
                            "CN=Provisioner Issuing CA {:04}-{:02}-{:02}",
                            today.year(),
                            u8::from(today.month()),
                            today.day()
                        ))
                        .map_err(plain)?
                    }
                };
                admin.store().ensure_config_table().await.map_err(plain)?;
                let created = admin.create_subordinate_ca(&subject).await.map_err(plain)?;
                std::fs::write(&create.out, &created.csr_pem)
                    .with_context(|| format!("cannot write {}", create.out.display()))?;
                let out = create.out.display();
                eprintln!(
                    "Created {arn} (waiting for its certificate). Have the parent CA sign {out} \
                     as a CA certificate.\n\
                     - parent outside AWS, e.g. openssl:\n    openssl x509 -req -in {out} -CA parent.pem \
                     -CAkey parent.key -days 1825 -sha256 -extfile ext.cnf -out issuing.pem\n  \
                     with ext.cnf:\n{PARENT_EXTENSIONS}\n\
                     - parent an ACM Private CA:\n    aws acm-pca issue-certificate \
                     --certificate-authority-arn PARENT_ARN --csr fileb://{out} --signing-algorithm \
                     SHA256WITHECDSA --template-arn {SUBORDINATE_TEMPLATE} --validity Value=5,Type=YEARS\n\
                     then: provisioner aws ca install issuing.pem --chain parent-chain.pem\n\
                     and:  provisioner aws ca register",
                    arn = created.ca_arn,
                );
                print_json(&json!({
                    "caArn": created.ca_arn,
                    "caId": ca_id(&created.ca_arn),
                    "csr": create.out.display().to_string(),
                }))?;
            }
            CaCommand::Install(install) => {
                let arn = match install.arn {
                    Some(arn) => arn,
                    None => admin.store().pending().await.map_err(plain)?.context(
                        "no CA is pending (none made by `provisioner aws ca create`): pass --arn",
                    )?,
                };
                let text = std::fs::read_to_string(&install.file)
                    .with_context(|| format!("cannot read {}", install.file.display()))?;
                let chain = match &install.chain {
                    Some(path) => Some(
                        std::fs::read_to_string(path)
                            .with_context(|| format!("cannot read {}", path.display()))?,
                    ),
                    None => None,
                };
                admin.store().ensure_config_table().await.map_err(plain)?;
                let installed = admin
                    .install_ca_certificate(&arn, &text, chain.as_deref())
                    .await
                    .map_err(plain)?;
                if installed.became_current {
                    eprintln!("{arn} is now the issuing CA (no CA was in effect).");
                }
                eprintln!(
                    "next: provisioner aws ca register{}",
                    if installed.became_current {
                        String::new()
                    } else {
                        format!(", then provisioner aws ca rotate --to {arn}")
                    }
                );
                print_json(&json!({
                    "caArn": installed.ca_arn,
                    "certificate": certificate_json(&installed.certificate),
                    "chainLength": installed.chain_length,
                    "issuing": installed.became_current,
                }))?;
            }
            CaCommand::Register(register) => {
                let arn = match register.arn {
                    Some(arn) => arn,
                    None => match admin.store().pending().await.map_err(plain)? {
                        Some(arn) => arn,
                        None => admin.current_arn().await.map_err(plain)?.context(
                            "no CA is pending or issuing: pass --arn, or create one with \
                             `provisioner aws ca create`",
                        )?,
                    },
                };
                admin.store().ensure_config_table().await.map_err(plain)?;
                let regions = admin.iot().regions();
                let registrations = admin
                    .register_ca_in_regions(&arn, &regions)
                    .await
                    .map_err(plain)?;
                let issuing = admin.current_arn().await.map_err(plain)?;
                if issuing.as_deref() != Some(arn.as_str()) {
                    eprintln!(
                        "{arn} is registered but does not issue yet: run \
                         `provisioner aws ca rotate --to {arn}`"
                    );
                }
                print_json(&json!({
                    "caArn": arn,
                    "issuing": issuing.as_deref() == Some(arn.as_str()),
                    "regions": registrations.iter().map(|r| json!({
                        "region": r.region,
                        "certificateId": r.certificate_id,
                        "status": r.status,
                    })).collect::<Vec<_>>(),
                }))?;
            }
            CaCommand::Show(show) => {
                let current = admin.store().current().await?;
                let arn = match show.arn {
                    Some(arn) => Some(arn),
                    None => admin.current_arn().await.map_err(plain)?,
                };
                let description = match &arn {
                    Some(arn) => Some(admin.describe(arn).await.map_err(plain)?),
                    None => None,
                };
                let rotation = admin.store().rotation().await.map_err(plain)?;
                let mut retired = Vec::new();
                for previous in current.iter().flat_map(|c| &c.previous_ca_arns) {
                    if let Some(r) = admin.store().retired(previous).await.map_err(plain)? {
                        retired.push(json!({
                            "caArn": r.ca_arn,
                            "replacedBy": r.replaced_by,
                            "reason": r.reason.name(),
                            "retiredAt": rfc3339(r.retired_at),
                        }));
                    }
                }
                print_json(&json!({
                    "issuingCaArn": current.as_ref().map(|c| c.ca_arn.clone())
                        .or_else(|| settings.pca_ca_arn.clone()),
                    "source": match (&current, &settings.pca_ca_arn) {
                        (Some(_), _) => "config table",
                        (None, Some(_)) => "PROVISIONER_PCA_CA_ARN",
                        (None, None) => "none",
                    },
                    "previousCaArns": current.as_ref().map(|c| c.previous_ca_arns.clone()).unwrap_or_default(),
                    "retiredCas": retired,
                    "updatedAt": current.as_ref().map(|c| rfc3339(c.updated_at)),
                    "pendingCaArn": admin.store().pending().await.map_err(plain)?,
                    "ca": description.as_ref().map(description_json),
                    "rotation": rotation.as_ref().map(rotation_json),
                }))?;
                if arn.is_none() {
                    eprintln!(
                        "no issuing CA: create one with `provisioner aws ca create --subject ...`"
                    );
                }
            }
            CaCommand::Rotation => {
                let rotation = admin.store().rotation().await.map_err(plain)?;
                print_json(&rotation.as_ref().map(rotation_json).unwrap_or(Value::Null))?;
                if rotation.is_none() {
                    eprintln!("no rotation has run");
                }
            }
            CaCommand::Rotate(rotate) => {
                let options = RotationOptions {
                    page_size: rotate.page_size.max(1),
                    settle: Duration::from_secs(rotate.settle_secs),
                    max_batches: rotate.max_batches,
                    reason: RevocationReason::from_name(&rotate.reason)
                        .unwrap_or(RevocationReason::Superseded),
                };
                admin.store().ensure_config_table().await.map_err(plain)?;
                let bar = ProgressBar::new(0);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg:12} [{bar:40}] {pos}/{len} revoked ({per_sec}, eta {eta})",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                let mut last_state = None;
                let outcome = admin
                    .rotate(&rotate.to, &options, admin.iot(), |progress| {
                        if last_state != Some(progress.state) {
                            last_state = Some(progress.state);
                            bar.suspend(|| {
                                eprintln!(
                                    "rotation {} -> {}: {}",
                                    ca_id(&progress.from_ca_arn),
                                    ca_id(&progress.to_ca_arn),
                                    progress.state.name()
                                )
                            });
                        }
                        bar.set_message(progress.state.name());
                        bar.set_length(progress.total.unwrap_or(progress.revoked));
                        bar.set_position(progress.revoked);
                    })
                    .await;
                bar.finish_and_clear();
                let outcome = match outcome {
                    Ok(outcome) => outcome,
                    Err(error) => {
                        let recorded = admin.store().rotation().await.ok().flatten();
                        let failed_here = recorded.is_some_and(|r| {
                            r.state == RotationState::Failed && r.to_ca_arn == rotate.to
                        });
                        if failed_here {
                            return Err(anyhow::anyhow!(
                                "{} [{}]\nthe rotation is recorded as failed; run the same command \
                                 again to resume (`provisioner aws ca rotation` shows where it stopped)",
                                error,
                                error.code()
                            ));
                        }
                        return Err(plain(error));
                    }
                };
                let progress = &outcome.progress;
                print_json(&json!({
                    "finished": outcome.finished,
                    "resumed": outcome.resumed,
                    "rotation": rotation_json(progress),
                }))?;
                if outcome.finished {
                    eprintln!(
                        "rotation done: {} certificates of {} revoked; {} issues now.",
                        progress.revoked, progress.from_ca_arn, progress.to_ca_arn
                    );
                    if let Some(parent) = &progress.parent_ca_arn {
                        eprintln!("the old CA was revoked by its parent {parent}.");
                    }
                    if let Some(action) = &progress.admin_action {
                        eprintln!("PKI admin, still to do: {action}");
                    }
                } else {
                    eprintln!(
                        "stopped after {} batches ({} revoked so far, state {}): run the same \
                         command again to continue",
                        rotate.max_batches.unwrap_or_default(),
                        progress.revoked,
                        progress.state.name()
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    /// The settings from the environment, with the flags over them.
    fn settings(args: &AwsArgs) -> anyhow::Result<AwsSettings> {
        let mut vars: HashMap<String, String> = std::env::vars().collect();
        for (name, value) in [
            ("AWS_REGION", &args.region),
            ("PROVISIONER_REGIONS", &args.regions),
            ("PROVISIONER_TABLE_PREFIX", &args.table_prefix),
        ] {
            if let Some(value) = value {
                vars.insert(name.to_owned(), value.clone());
            }
        }
        AwsSettings::from_vars(&vars).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// The error's message with its code, for the CLI (no "caused by" chain to add).
    fn plain(error: CaError) -> anyhow::Error {
        anyhow::anyhow!("{error} [{}]", error.code())
    }

    fn certificate_json(c: &CertificateSummary) -> Value {
        json!({
            "subject": c.subject,
            "issuer": c.issuer,
            "serial": c.serial,
            "notBefore": rfc3339(c.not_before),
            "notAfter": rfc3339(c.not_after),
            "sha256": c.sha256,
        })
    }

    fn description_json(d: &CaDescription) -> Value {
        json!({
            "caArn": d.ca_arn,
            "caId": ca_id(&d.ca_arn),
            "status": d.status,
            "type": d.ca_type,
            "certificate": d.certificate.as_ref().map(certificate_json),
            "iot": d.iot.iter().map(|r| json!({
                "region": r.region,
                "certificateId": r.certificate_id,
                "status": r.status,
            })).collect::<Vec<_>>(),
        })
    }

    fn rotation_json(p: &RotationProgress) -> Value {
        json!({
            "fromCaArn": p.from_ca_arn,
            "toCaArn": p.to_ca_arn,
            "state": p.state.name(),
            "failedState": p.failed_state.map(RotationState::name),
            "reason": p.reason.name(),
            "revoked": p.revoked,
            "total": p.total,
            "cursor": p.cursor,
            "startedAt": rfc3339(p.started_at),
            "updatedAt": rfc3339(p.updated_at),
            "completedAt": p.completed_at.map(rfc3339),
            "lastError": p.last_error,
            "parentCaArn": p.parent_ca_arn,
            "adminAction": p.admin_action,
        })
    }

    fn print_json(value: &Value) -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(value)?);
        Ok(())
    }
}
