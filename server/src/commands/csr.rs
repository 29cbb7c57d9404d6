//! `provisioner csr inspect`: why is my CSR refused?

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use provisioner_core::{
    csr_der_from_file, CsrError, CsrPolicy, CsrVerifier, DeviceKey, ErrorBody, Refusal, VerifiedCsr,
};
use serde::Serialize;

/// `provisioner csr ...`
#[derive(Debug, Subcommand)]
pub enum CsrCommand {
    /// Check a CSR exactly as the provisioning endpoint would, and say why it is refused.
    ///
    /// Prints JSON `{deviceId, publicKey, fingerprint, signatureAlgorithm}` and exits 0,
    /// or `{error, status, message}` and exits 1.
    Inspect(InspectArgs),
}

/// Arguments of `provisioner csr inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The `device-csr` header value (base64 of the DER or of the PEM text); read from
    /// standard input when neither this nor --file is given.
    #[arg(conflicts_with = "file")]
    header: Option<String>,
    /// Read the CSR from a PEM or DER file instead of a header value.
    #[arg(long, short)]
    file: Option<PathBuf>,
    /// Also compare the CSR's key with this registered key (SPKI PEM, base64 SPKI DER,
    /// SEC1 or X||Y hex, or JWK), as the authorizer does.
    #[arg(long, allow_hyphen_values = true, conflicts_with = "public_key_file")]
    public_key: Option<String>,
    /// Like --public-key, reading the registered key from a file (e.g. an SPKI PEM).
    #[arg(long)]
    public_key_file: Option<PathBuf>,
    /// Accept P-384 keys signed with SHA-384, as a profile that allows them does.
    #[arg(long)]
    allow_p384: bool,
    /// Check as issuance mode iot-core does, where IoT Core copies the CSR's subject into
    /// the certificate: a subject holding more than the CN is `subject_not_cn_only`.
    #[arg(long)]
    iot_core: bool,
}

/// The success output: the verified request and its signature algorithm.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Inspection<'a> {
    device_id: &'a str,
    public_key: String,
    fingerprint: &'a str,
    signature_algorithm: &'static str,
}

impl CsrCommand {
    /// Runs the subcommand, printing its JSON answer on stdout.
    pub fn run(self) -> ExitCode {
        match self {
            Self::Inspect(args) => {
                let (json, code) = match inspect(&args) {
                    Ok(csr) => (
                        to_json(&Inspection {
                            device_id: &csr.device_id,
                            public_key: csr.public_key.canonical(),
                            fingerprint: &csr.fingerprint,
                            signature_algorithm: csr.signature_algorithm.name(),
                        }),
                        ExitCode::SUCCESS,
                    ),
                    Err(body) => (to_json(&body), ExitCode::FAILURE),
                };
                println!("{json}");
                code
            }
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value)
        .unwrap_or_else(|e| format!("{{\"error\":\"internal\",\"message\":\"{e}\"}}"))
}

fn inspect(args: &InspectArgs) -> Result<VerifiedCsr, ErrorBody> {
    let verifier = CsrVerifier::new(CsrPolicy {
        allow_p384: args.allow_p384,
        subject_cn_only: args.iot_core,
        ..CsrPolicy::default()
    });
    let key_text = match &args.public_key_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| unreadable(&format!("{}: {e}", path.display())))?,
        ),
        None => args.public_key.clone(),
    };
    let registered = key_text
        .as_deref()
        .map(DeviceKey::parse)
        .transpose()
        .map_err(|e| ErrorBody::from_error(&Refusal::RegisteredKey(e)))?;
    let verified = match (&args.file, &args.header) {
        (Some(path), _) => {
            let bytes = std::fs::read(path).map_err(|e| unreadable(&format!("{}: {e}", path.display())))?;
            csr_der_from_file(&bytes).and_then(|der| verifier.verify_der(&der))
        }
        (None, Some(header)) => verifier.verify_header(header),
        (None, None) => {
            if std::io::stdin().is_terminal() {
                return Err(unreadable(
                    "no CSR given: pass the header value as an argument, --file PATH, or pipe it on stdin",
                ));
            }
            let mut header = String::new();
            std::io::stdin()
                .read_to_string(&mut header)
                .map_err(|e| unreadable(&format!("standard input: {e}")))?;
            verifier.verify_header(&header)
        }
    }
    .map_err(|e: CsrError| ErrorBody::from_error(&e))?;
    if let Some(registered) = registered {
        verified
            .check_registered_key(&registered)
            .map_err(|e| ErrorBody::from_error(&e))?;
    }
    Ok(verified)
}

/// The input itself could not be read: the caller's mistake, reported in the same shape.
fn unreadable(message: &str) -> ErrorBody {
    ErrorBody {
        error: "unreadable_input".into(),
        status: 400,
        message: message.to_owned(),
    }
}
