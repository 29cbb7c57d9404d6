//! The PKI admin's steps on AWS (docs/ARCHITECTURE.md) and the issuing CA's rotation with
//! cascading revocation: an ACM Private CA subordinate whose CSR a parent CA signs,
//! registered in IoT Core in every region, recorded as the issuing CA in the config table
//! (read by the service at run time, so switching CAs needs no redeploy).
//!
//! # The config table
//!
//! `{prefix}config` ([`AwsSettings::config_table`]), key `name` (S), one item per setting
//! changed at run time; [`IssuingCaStore::create_config_table`] creates it:
//!
//! | `name` | attributes |
//! |---|---|
//! | [`ISSUING_CA_ITEM`] | `caArn` (S, the CA that issues now), `previousCaArns` (L of S, oldest first), `updatedAt` (N) |
//! | [`ROTATION_ITEM`] | the last rotation's progress ([`RotationProgress`]): `fromCaArn`, `toCaArn`, `state`, `failedState`, `reason`, `revoked`, `total`, `cursor`, `startedAt`, `updatedAt`, `completedAt`, `lastError`, `parentCaArn`, `adminAction` |
//! | [`PENDING_CA_ITEM`] | `caArn` of the CA `aws ca create` made and no rotation has put in service yet, `createdAt` |
//! | [`RETIRED_CA_ITEM_PREFIX`]`{caArn}` | one per CA a finished rotation retired: `caArn`, `replacedBy`, `reason`, `retiredAt` (N), kept when later rotations overwrite [`ROTATION_ITEM`] |
//!
//! The issuer reads [`IssuingCaStore::current`] (cached briefly) and falls back to
//! [`AwsSettings::pca_ca_arn`] when no item exists. [`IssuingCaStore::set_current`] is
//! conditional on the ARN it replaces, so two rotations cannot both switch.
//!
//! # Rotation ([`IssuingCaAdmin::rotate`])
//!
//! States, each recorded in the [`ROTATION_ITEM`] before the next begins:
//!
//! 1. `registering`: the new CA's certificate is registered (ACTIVE) in IoT Core in every
//!    region;
//! 2. `switching`: the new CA becomes the issuing CA ([`IssuingCaStore::set_current`]),
//!    then the rotation waits [`RotationOptions::settle`] so every issuer's cached CA
//!    and every issuance in flight under the old one have ended;
//! 3. `revoking`: every ACTIVE certificate of the old CA in the registry (issuer = the old
//!    CA's id) is set REVOKED in IoT Core in every region, then in the registry, a page at
//!    a time; the progress (count, scan cursor) is written after each page, so a crashed
//!    or interrupted rotation resumes from the cursor when run again. A pass that revoked
//!    anything is followed by another from the start, until one finds nothing: a
//!    certificate an issuer with a stale cache recorded behind the cursor is not missed;
//! 4. `deactivating`: the old CA certificate is set INACTIVE in IoT Core in every region,
//!    and the old intermediate is revoked by its parent when the parent is an ACM Private
//!    CA of this account in the serving region; otherwise the progress names what the PKI
//!    admin must do (`adminAction`);
//! 5. `done`. A failure records `failed` with the state it failed in (`failedState`) and
//!    the error; running the rotation again resumes there.
//!
//! Devices whose certificates were revoked fail at IoT Core and come back through `/new`,
//! where the new CA issues.
//!
//! ## Revocation reason
//!
//! `superseded` by default, as the local rotation (`local::operations::rotate_ca`) and
//! the design's re-issue policy use it: a routine rotation replaces certificates, it does
//! not say a key leaked, and devices simply come back. A rotation because the old CA's key
//! is compromised passes `cACompromise` ([`RotationOptions::reason`]); the registry records
//! it, and the parent revokes the old intermediate with it. IoT Core records no reason.
//! The intermediate itself is revoked `cessationOfOperation` (as the local root's CRL
//! lists retired intermediates) unless the reason is `cACompromise`. Device certificates
//! are not revoked at ACM PCA one by one: IoT Core refuses them, and a relying party
//! that checks CRLs refuses the whole old intermediate once its parent revoked it.
//!
//! # What moto cannot show
//!
//! The tests (`tests/aws_ca.rs`) run against moto's server, which does not check that
//! the verification certificate's CN is the registration code or that it is signed by
//! the CA being registered; it does not refuse a CA certificate registered twice; its CA
//! keys are RSA whatever the request asks; it computes IoT certificate ids as SHA-256 of
//! the PEM text (not the DER, as IoT Core does and this module relies on) unless started
//! with `use_valid_cert` (`scripts/moto.sh` does; it has no `ListCACertificates`
//! either, and CA certificates are found by that id, never listed); and it produces no CRL, so a parent's revocation of
//! the intermediate is only visible through moto's `GetCertificate` quirk (a revoked
//! certificate answers "in progress"). IoT Core's per-account limits and throttling are
//! not simulated: the backoff on throttling is not exercised there.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{
    Asn1Subject, CertificateAuthorityConfiguration, CertificateAuthorityStatus,
    CertificateAuthorityType, KeyAlgorithm, SigningAlgorithm, Validity, ValidityPeriodType,
};
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_iot::types::{CaCertificateStatus, CertificateStatus as IotCertificateStatus};
// The SDK's error types are the same in every service crate.
use super::is_throttling;
use aws_sdk_iot::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use der::{Decode, Encode};
use provisioner_core::{Clock, PortError, RevocationReason, SystemClock, UnixTime};
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use super::acm_pca::{backoff, pca_reason, pca_serial, AcmPcaAuthority, AcmPcaConfig};
use super::config::AwsSettings;
use super::dynamodb::{DynamoDbError, DynamoDbRegistry};

/// The config item naming the issuing CA.
pub const ISSUING_CA_ITEM: &str = "issuing-ca";
/// The config item holding the last CA rotation's progress.
pub const ROTATION_ITEM: &str = "ca-rotation";
/// The config item naming the CA `aws ca create` made, not yet in service.
pub const PENDING_CA_ITEM: &str = "pending-ca";
/// The prefix of the config items recording each CA a finished rotation retired (the CA's
/// ARN follows): [`ROTATION_ITEM`] holds the last rotation only.
pub const RETIRED_CA_ITEM_PREFIX: &str = "retired-ca#";

/// A CA a finished rotation retired: every certificate it issued was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredCa {
    /// The retired CA.
    pub ca_arn: String,
    /// The CA that took over from it.
    pub replaced_by: String,
    /// Why its certificates were revoked.
    pub reason: RevocationReason,
    /// When its rotation finished.
    pub retired_at: UnixTime,
}

/// The PCA template that signs IoT Core's verification certificate.
pub const END_ENTITY_TEMPLATE: &str = "arn:aws:acm-pca:::template/EndEntityCertificate/V1";
/// The PCA template a parent ACM Private CA uses to sign an issuing CA (no sub-CAs below).
pub const SUBORDINATE_TEMPLATE: &str =
    "arn:aws:acm-pca:::template/SubordinateCACertificate_PathLen0/V1";

/// Certificates evaluated per rotation page (a `Scan` page of the certificates table).
pub const DEFAULT_ROTATION_PAGE: i32 = 100;
/// How long a rotation waits after switching before it revokes: the issuer's cache of the
/// current CA (30 s, `aws::adapters::CurrentPcaAuthority::REFRESH`) plus an issuance's
/// longest wait for PCA (10 s, [`AcmPcaConfig::new`]) and a margin.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(45);

const PCA: &str = "ACM Private CA";
const IOT: &str = "IoT Core";
const DYNAMODB: &str = "DynamoDB";
/// Attempts at a throttled call before giving up.
const MAX_ATTEMPTS: u32 = 8;

// ---------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------

/// Why a CA operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// A service throttled past the retries: run the command again shortly (it resumes).
    #[error("{service} cannot serve {operation} now ({cause}); run it again shortly")]
    Unavailable {
        /// The AWS service.
        service: &'static str,
        /// The operation.
        operation: &'static str,
        /// The error code.
        cause: String,
    },
    /// The request cannot be done as given (bad subject, certificate for another key...).
    #[error("{0}")]
    InvalidInput(String),
    /// Something changed meanwhile (another rotation, another issuing CA).
    #[error("{0}")]
    Conflict(String),
    /// The CA (or certificate) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The CA is not in the state the operation needs (e.g. not ACTIVE yet).
    #[error("{0}")]
    WrongState(String),
    /// A service answered something unusable, or a stored item is damaged.
    #[error("{0}")]
    Corrupt(String),
    /// Any other failure of the SDK or a service, with the SDK error's display.
    #[error("{service} {operation} failed: {message}")]
    Sdk {
        /// The AWS service.
        service: &'static str,
        /// The operation.
        operation: &'static str,
        /// What the SDK reported.
        message: String,
    },
    /// A failure reported through the ports (issuance wait, registry, IoT revocation).
    #[error(transparent)]
    Port(#[from] PortError),
}

impl CaError {
    /// A stable snake_case code for machine-readable output.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } => "unavailable",
            Self::InvalidInput(_) => "invalid_input",
            Self::Conflict(_) => "conflict",
            Self::NotFound(_) => "not_found",
            Self::WrongState(_) => "wrong_state",
            Self::Corrupt(_) => "corrupt",
            Self::Sdk { .. } => "aws_error",
            Self::Port(PortError::Unavailable { .. }) => "unavailable",
            Self::Port(_) => "internal",
        }
    }
}

impl From<CaError> for PortError {
    fn from(error: CaError) -> Self {
        match error {
            CaError::Port(port) => port,
            CaError::Unavailable { service, .. } => PortError::Unavailable {
                what: service.into(),
                retry_after_secs: 1,
            },
            other => PortError::Internal(other.to_string()),
        }
    }
}

impl From<DynamoDbError> for CaError {
    fn from(error: DynamoDbError) -> Self {
        match error {
            DynamoDbError::Unavailable { operation, cause } => CaError::Unavailable {
                service: DYNAMODB,
                operation,
                cause,
            },
            DynamoDbError::Corrupt(message) => CaError::Corrupt(message),
            other => CaError::Sdk {
                service: DYNAMODB,
                operation: "registry",
                message: other.to_string(),
            },
        }
    }
}

fn sdk_error<E, R>(
    service: &'static str,
    operation: &'static str,
    error: &SdkError<E, R>,
) -> CaError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if is_throttling(error.code()) {
        return CaError::Unavailable {
            service,
            operation,
            cause: error.code().unwrap_or_default().to_owned(),
        };
    }
    CaError::Sdk {
        service,
        operation,
        message: DisplayErrorContext(error).to_string(),
    }
}

/// Calls `call` again while it is throttled, backing off from 200 ms to 5 s, at most
/// [`MAX_ATTEMPTS`] times; returns the last answer.
async fn retry_throttled<T, E, R, F, Fut>(mut call: F) -> Result<T, SdkError<E, R>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(error) if is_throttling(error.code()) && attempt + 1 < MAX_ATTEMPTS => {
                tokio::time::sleep(backoff(
                    Duration::from_millis(200),
                    Duration::from_secs(5),
                    attempt,
                ))
                .await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

// ---------------------------------------------------------------------------------
// Certificates and subjects (pure, unit-tested)
// ---------------------------------------------------------------------------------

/// The DER of every `label` block of `pem`, in order.
///
/// # Errors
/// [`CaError::InvalidInput`] for an unterminated block or a body that is not base64.
pub fn pem_blocks(pem: &str, label: &str) -> Result<Vec<Vec<u8>>, CaError> {
    use base64::Engine as _;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut blocks = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(&begin) {
        let body_start = start + begin.len();
        let stop = rest[body_start..]
            .find(&end)
            .ok_or_else(|| CaError::InvalidInput(format!("unterminated PEM {label} block")))?
            + body_start;
        let body: String = rest[body_start..stop]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        blocks.push(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|e| CaError::InvalidInput(format!("PEM {label} is not base64: {e}")))?,
        );
        rest = &rest[stop + end.len()..];
    }
    Ok(blocks)
}

/// PEM text of `der` under `label`, 64 characters a line ([`provisioner_app::pem::encode`]).
pub use provisioner_app::pem::encode as pem_of;

/// What the CA commands show of a CA certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    /// Subject, RFC 4514.
    pub subject: String,
    /// Issuer, RFC 4514.
    pub issuer: String,
    /// Serial, lower-case hex without leading zeros or separators.
    pub serial: String,
    /// Start of validity.
    pub not_before: UnixTime,
    /// End of validity.
    pub not_after: UnixTime,
    /// Hex SHA-256 of the DER: IoT Core's certificate id.
    pub sha256: String,
    /// DER of the subjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// DER of the subject name.
    pub subject_der: Vec<u8>,
    /// DER of the issuer name.
    pub issuer_der: Vec<u8>,
}

/// Reads the summary of the certificate `der`.
///
/// # Errors
/// [`CaError::InvalidInput`] when it is not an X.509 certificate.
pub fn summarize_certificate(der: &[u8]) -> Result<CertificateSummary, CaError> {
    let invalid = |what: &str, e: der::Error| CaError::InvalidInput(format!("{what}: {e}"));
    let certificate = x509_cert::Certificate::from_der(der)
        .map_err(|e| invalid("not an X.509 certificate", e))?;
    let tbs = &certificate.tbs_certificate;
    let serial = tbs.serial_number.as_bytes();
    let start = serial
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(serial.len().saturating_sub(1));
    let time = |t: x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
    };
    Ok(CertificateSummary {
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        serial: hex::encode(&serial[start..]),
        not_before: time(tbs.validity.not_before),
        not_after: time(tbs.validity.not_after),
        sha256: hex::encode(Sha256::digest(der)),
        spki_der: tbs
            .subject_public_key_info
            .to_der()
            .map_err(|e| invalid("subjectPublicKeyInfo", e))?,
        subject_der: tbs.subject.to_der().map_err(|e| invalid("subject", e))?,
        issuer_der: tbs.issuer.to_der().map_err(|e| invalid("issuer", e))?,
    })
}

/// The subjectPublicKeyInfo DER of the CSR `der`.
///
/// # Errors
/// [`CaError::Corrupt`] when it is not a PKCS#10 request.
fn csr_spki(der: &[u8]) -> Result<Vec<u8>, CaError> {
    let request = x509_cert::request::CertReq::from_der(der)
        .map_err(|e| CaError::Corrupt(format!("the CA's CSR does not parse: {e}")))?;
    request
        .info
        .public_key
        .to_der()
        .map_err(|e| CaError::Corrupt(format!("the CA's CSR key: {e}")))
}

/// The subject of a new issuing CA, as `CN=...,O=...` text gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaSubject {
    /// CN (required).
    pub common_name: String,
    /// O.
    pub organization: Option<String>,
    /// OU.
    pub organizational_unit: Option<String>,
    /// C (two letters).
    pub country: Option<String>,
    /// ST.
    pub state: Option<String>,
    /// L.
    pub locality: Option<String>,
}

impl CaSubject {
    /// Reads `CN=Provisioner Issuing CA 2027,O=Example,C=DE`: comma-separated `KEY=value`
    /// pairs with keys CN, O, OU, C, ST, L (any case); `\,` is a comma inside a value.
    ///
    /// # Errors
    /// [`CaError::InvalidInput`] naming the part at fault: no CN, an unknown or repeated
    /// key, an empty value, a country that is not two letters, a value over 64 characters.
    pub fn parse(text: &str) -> Result<Self, CaError> {
        let bad = |message: String| {
            CaError::InvalidInput(format!(
                "subject {text:?}: {message} (expected e.g. \"CN=Provisioner Issuing CA,O=Example,C=DE\"; keys CN, O, OU, C, ST, L)"
            ))
        };
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.extend(chars.next()),
                ',' => parts.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
        parts.push(current);
        let mut subject = CaSubject::default();
        let mut seen = Vec::new();
        for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not KEY=value")))?;
            let key = key.trim().to_ascii_uppercase();
            let value = value.trim().to_owned();
            if value.is_empty() {
                return Err(bad(format!("{key} is empty")));
            }
            if value.chars().count() > 64 {
                return Err(bad(format!("{key} is over 64 characters")));
            }
            if seen.contains(&key) {
                return Err(bad(format!("{key} is given twice")));
            }
            match key.as_str() {
                "CN" => subject.common_name = value,
                "O" => subject.organization = Some(value),
                "OU" => subject.organizational_unit = Some(value),
                "C" if value.len() == 2 && value.chars().all(|c| c.is_ascii_alphabetic()) => {
                    subject.country = Some(value.to_ascii_uppercase())
                }
                "C" => return Err(bad(format!("C must be two letters, not {value:?}"))),
                "ST" => subject.state = Some(value),
                "L" => subject.locality = Some(value),
                other => return Err(bad(format!("unknown key {other}"))),
            }
            seen.push(key);
        }
        if subject.common_name.is_empty() {
            return Err(bad("CN is missing".into()));
        }
        Ok(subject)
    }

    fn to_pca(&self) -> Asn1Subject {
        Asn1Subject::builder()
            .common_name(&self.common_name)
            .set_organization(self.organization.clone())
            .set_organizational_unit(self.organizational_unit.clone())
            .set_country(self.country.clone())
            .set_state(self.state.clone())
            .set_locality(self.locality.clone())
            .build()
    }
}

// ---------------------------------------------------------------------------------
// The config table
// ---------------------------------------------------------------------------------

type Item = HashMap<String, AttributeValue>;

/// The issuing CA as the config table records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuingCa {
    /// The ACM Private CA that issues now.
    pub ca_arn: String,
    /// The CAs that issued before, oldest first.
    pub previous_ca_arns: Vec<String>,
    /// When it became the issuing CA.
    pub updated_at: UnixTime,
}

impl IssuingCa {
    /// The CA's id: the ARN's last part (what the registry's `issuer` records).
    pub fn ca_id(&self) -> &str {
        ca_id(&self.ca_arn)
    }
}

/// The id of the CA `arn`: its last part (`.../certificate-authority/ID`).
pub fn ca_id(arn: &str) -> &str {
    arn.rsplit_once("certificate-authority/")
        .map_or(arn, |(_, id)| id)
}

/// Where a rotation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationState {
    /// Registering the new CA in IoT Core in every region.
    Registering,
    /// Making the new CA the issuing CA, then letting issuers catch up.
    Switching,
    /// Revoking the old CA's certificates.
    Revoking,
    /// Deactivating the old CA in IoT Core, revoking it at its parent.
    Deactivating,
    /// Finished.
    Done,
    /// Stopped by an error in `failedState`; running the rotation again resumes.
    Failed,
}

impl RotationState {
    /// The stored name: `registering`, `switching`, `revoking`, `deactivating`, `done`,
    /// `failed`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Registering => "registering",
            Self::Switching => "switching",
            Self::Revoking => "revoking",
            Self::Deactivating => "deactivating",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    /// Reads a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Registering,
            Self::Switching,
            Self::Revoking,
            Self::Deactivating,
            Self::Done,
            Self::Failed,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// A rotation's progress, as the [`ROTATION_ITEM`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationProgress {
    /// The CA being retired.
    pub from_ca_arn: String,
    /// The CA taking over.
    pub to_ca_arn: String,
    /// Where it is.
    pub state: RotationState,
    /// With [`RotationState::Failed`]: the state it failed in (where it resumes).
    pub failed_state: Option<RotationState>,
    /// Why the old CA's certificates are revoked.
    pub reason: RevocationReason,
    /// Certificates revoked so far (all runs).
    pub revoked: u64,
    /// ACTIVE certificates of the old CA when revoking began.
    pub total: Option<u64>,
    /// Where the current revocation pass resumes (a `certificateId`).
    pub cursor: Option<String>,
    /// When it started.
    pub started_at: UnixTime,
    /// When it last changed.
    pub updated_at: UnixTime,
    /// When it finished.
    pub completed_at: Option<UnixTime>,
    /// The last failure, if it failed.
    pub last_error: Option<String>,
    /// The ACM Private CA that revoked the old intermediate, if one did.
    pub parent_ca_arn: Option<String>,
    /// What the PKI admin must still do, if anything.
    pub admin_action: Option<String>,
}

impl RotationProgress {
    /// The state work resumes in (the failed one for a failed rotation).
    pub fn resume_state(&self) -> RotationState {
        match self.state {
            RotationState::Failed => self.failed_state.unwrap_or(RotationState::Registering),
            other => other,
        }
    }

    fn to_item(&self) -> Item {
        let mut item = Item::from([
            ("name".to_owned(), s(ROTATION_ITEM)),
            ("fromCaArn".to_owned(), s(&self.from_ca_arn)),
            ("toCaArn".to_owned(), s(&self.to_ca_arn)),
            ("state".to_owned(), s(self.state.name())),
            ("reason".to_owned(), s(self.reason.name())),
            ("revoked".to_owned(), n(self.revoked)),
            ("startedAt".to_owned(), n(self.started_at)),
            ("updatedAt".to_owned(), n(self.updated_at)),
        ]);
        let optional = [
            ("failedState", self.failed_state.map(|f| s(f.name()))),
            ("total", self.total.map(n)),
            ("cursor", self.cursor.as_deref().map(s)),
            ("completedAt", self.completed_at.map(n)),
            ("lastError", self.last_error.as_deref().map(s)),
            ("parentCaArn", self.parent_ca_arn.as_deref().map(s)),
            ("adminAction", self.admin_action.as_deref().map(s)),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                item.insert(name.to_owned(), value);
            }
        }
        item
    }

    fn from_item(item: &Item) -> Result<Self, CaError> {
        let read = || -> Result<Self, String> {
            let state = |name: &str| {
                RotationState::from_name(name).ok_or_else(|| format!("unknown state {name:?}"))
            };
            let reason = text(item, "reason")?;
            Ok(Self {
                from_ca_arn: text(item, "fromCaArn")?,
                to_ca_arn: text(item, "toCaArn")?,
                state: state(&text(item, "state")?)?,
                failed_state: optional_text(item, "failedState")?
                    .map(|f| state(&f))
                    .transpose()?,
                reason: RevocationReason::from_name(&reason)
                    .ok_or_else(|| format!("unknown reason {reason:?}"))?,
                revoked: number(item, "revoked")?,
                total: optional_number(item, "total")?,
                cursor: optional_text(item, "cursor")?,
                started_at: number(item, "startedAt")?,
                updated_at: number(item, "updatedAt")?,
                completed_at: optional_number(item, "completedAt")?,
                last_error: optional_text(item, "lastError")?,
                parent_ca_arn: optional_text(item, "parentCaArn")?,
                admin_action: optional_text(item, "adminAction")?,
            })
        };
        read().map_err(|e| CaError::Corrupt(format!("config item {ROTATION_ITEM}: {e}")))
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n<T: ToString>(value: T) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn text(item: &Item, name: &str) -> Result<String, String> {
    optional_text(item, name)?.ok_or_else(|| format!("attribute {name} is missing"))
}

fn optional_text(item: &Item, name: &str) -> Result<Option<String>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(value)) => Ok(Some(value.clone())),
        Some(_) => Err(format!("attribute {name} is not a string")),
    }
}

fn number<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, String> {
    optional_number(item, name)?.ok_or_else(|| format!("attribute {name} is missing"))
}

fn optional_number<T: std::str::FromStr>(item: &Item, name: &str) -> Result<Option<T>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(value)) => value
            .parse()
            .map(Some)
            .map_err(|_| format!("attribute {name} is not a whole number")),
        Some(_) => Err(format!("attribute {name} is not a number")),
    }
}

/// The config table's CA items (see the module docs).
///
/// Cheap to clone: clones share the SDK client.
#[derive(Debug, Clone)]
pub struct IssuingCaStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl IssuingCaStore {
    /// The items of `table` ([`AwsSettings::config_table`]), through `client`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the config table (key `name` S, on-demand) and waits until it is ACTIVE;
    /// an existing table is left as it is.
    ///
    /// # Errors
    /// [`CaError::Sdk`] when it cannot be created or does not become ACTIVE in 5 minutes.
    pub async fn create_config_table(&self) -> Result<(), CaError> {
        let build = |e: aws_sdk_dynamodb::error::BuildError| CaError::Sdk {
            service: DYNAMODB,
            operation: "CreateTable",
            message: e.to_string(),
        };
        let result = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("name")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("name")
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(build)?,
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(error) => return Err(sdk_error(DYNAMODB, "CreateTable", &error)),
        }
        self.client
            .wait_until_table_exists()
            .table_name(&self.table)
            .wait(Duration::from_secs(300))
            .await
            .map_err(|e| CaError::Sdk {
                service: DYNAMODB,
                operation: "DescribeTable",
                message: format!(
                    "table {} did not become ACTIVE: {}",
                    self.table,
                    DisplayErrorContext(&e)
                ),
            })?;
        Ok(())
    }

    /// Creates the config table unless it exists (`DescribeTable` first, so an admin
    /// without `CreateTable` rights can use a table the deployment made).
    ///
    /// # Errors
    /// As [`IssuingCaStore::create_config_table`].
    pub async fn ensure_config_table(&self) -> Result<(), CaError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                self.create_config_table().await
            }
            Err(error) => Err(sdk_error(DYNAMODB, "DescribeTable", &error)),
        }
    }

    async fn item(&self, name: &str) -> Result<Option<Item>, CaError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("name", s(name))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(DYNAMODB, "GetItem", &e))?;
        Ok(output.item)
    }

    /// The issuing CA the table records, if any (a strongly consistent read).
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when throttled; [`PortError::Internal`] for a damaged
    /// item or any other failure.
    pub async fn current(&self) -> Result<Option<IssuingCa>, PortError> {
        Ok(self.read_current().await?)
    }

    async fn read_current(&self) -> Result<Option<IssuingCa>, CaError> {
        let Some(item) = self.item(ISSUING_CA_ITEM).await? else {
            return Ok(None);
        };
        let read = || -> Result<IssuingCa, String> {
            let previous = match item.get("previousCaArns") {
                None => Vec::new(),
                Some(AttributeValue::L(values)) => values
                    .iter()
                    .map(|v| match v {
                        AttributeValue::S(arn) => Ok(arn.clone()),
                        _ => Err("previousCaArns holds a non-string".to_owned()),
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err("previousCaArns is not a list".into()),
            };
            Ok(IssuingCa {
                ca_arn: text(&item, "caArn")?,
                previous_ca_arns: previous,
                updated_at: number(&item, "updatedAt")?,
            })
        };
        read()
            .map(Some)
            .map_err(|e| CaError::Corrupt(format!("config item {ISSUING_CA_ITEM}: {e}")))
    }

    /// Makes `arn` the issuing CA at `now`, replacing `replaces` (the CA in effect: the
    /// recorded one, or the environment's fallback when none is recorded; `None` when no
    /// CA was in effect), which is appended to `previousCaArns`. Conditional: when the
    /// table records a CA other than `replaces` (another rotation won), nothing is written.
    ///
    /// # Errors
    /// [`CaError::Conflict`] when the recorded CA is not `replaces`; a DynamoDB failure.
    pub async fn set_current(
        &self,
        replaces: Option<&str>,
        arn: &str,
        now: UnixTime,
    ) -> Result<IssuingCa, CaError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("name", s(ISSUING_CA_ITEM))
            .update_expression(
                "SET caArn = :arn, updatedAt = :now, \
                 previousCaArns = list_append(if_not_exists(previousCaArns, :empty), :replaced)",
            )
            .expression_attribute_values(":arn", s(arn))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":empty", AttributeValue::L(Vec::new()))
            .expression_attribute_values(
                ":replaced",
                AttributeValue::L(replaces.map(s).into_iter().collect()),
            );
        update = match replaces {
            // No item: the fallback was in effect. An item: it must name `replaces`.
            Some(replaces) => update
                .condition_expression("attribute_not_exists(caArn) OR caArn = :replaces")
                .expression_attribute_values(":replaces", s(replaces)),
            None => update.condition_expression("attribute_not_exists(caArn)"),
        };
        match update.send().await {
            Ok(_) => {}
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                let recorded = self.read_current().await?.map(|c| c.ca_arn);
                return Err(CaError::Conflict(format!(
                    "the issuing CA changed meanwhile: the config table names {}, not {}; \
                     check `provisioner aws ca show` and run the command again",
                    recorded.as_deref().unwrap_or("none"),
                    replaces.unwrap_or("none"),
                )));
            }
            Err(error) => return Err(sdk_error(DYNAMODB, "UpdateItem", &error)),
        }
        self.read_current().await?.ok_or_else(|| {
            CaError::Conflict(format!(
                "config item {ISSUING_CA_ITEM} vanished after writing"
            ))
        })
    }

    /// The last rotation's progress, if any rotation ran.
    ///
    /// # Errors
    /// [`CaError::Corrupt`] for a damaged item; a DynamoDB failure.
    pub async fn rotation(&self) -> Result<Option<RotationProgress>, CaError> {
        self.item(ROTATION_ITEM)
            .await?
            .map(|item| RotationProgress::from_item(&item))
            .transpose()
    }

    /// Records a new rotation, unless one that is not done is recorded.
    async fn start_rotation(&self, progress: &RotationProgress) -> Result<(), CaError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(progress.to_item()))
            .condition_expression("attribute_not_exists(#name) OR #state = :done")
            .expression_attribute_names("#name", "name")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":done", s(RotationState::Done.name()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(CaError::Conflict(
                    "another rotation started meanwhile: see `provisioner aws ca rotation`".into(),
                ))
            }
            Err(error) => Err(sdk_error(DYNAMODB, "PutItem", &error)),
        }
    }

    /// Writes the progress of the rotation to `progress.to_ca_arn`, only if the recorded
    /// rotation is that one.
    async fn save_rotation(&self, progress: &RotationProgress) -> Result<(), CaError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(progress.to_item()))
            .condition_expression("toCaArn = :to AND fromCaArn = :from")
            .expression_attribute_values(":to", s(&progress.to_ca_arn))
            .expression_attribute_values(":from", s(&progress.from_ca_arn))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(CaError::Conflict(format!(
                    "the recorded rotation is no longer {} -> {}",
                    progress.from_ca_arn, progress.to_ca_arn
                )))
            }
            Err(error) => Err(sdk_error(DYNAMODB, "PutItem", &error)),
        }
    }

    /// Records `rotation`'s old CA as retired (idempotent: a rerun writes the same item).
    async fn record_retired(&self, rotation: &RotationProgress) -> Result<(), CaError> {
        let retired_at = rotation.completed_at.unwrap_or(rotation.updated_at);
        self.client
            .put_item()
            .table_name(&self.table)
            .item(
                "name",
                s(&format!("{RETIRED_CA_ITEM_PREFIX}{}", rotation.from_ca_arn)),
            )
            .item("caArn", s(&rotation.from_ca_arn))
            .item("replacedBy", s(&rotation.to_ca_arn))
            .item("reason", s(rotation.reason.name()))
            .item("retiredAt", n(retired_at))
            .send()
            .await
            .map_err(|e| sdk_error(DYNAMODB, "PutItem", &e))?;
        Ok(())
    }

    /// The CA `arn` as a finished rotation retired it, if one did.
    ///
    /// # Errors
    /// [`CaError::Corrupt`] for a damaged item; a DynamoDB failure.
    pub async fn retired(&self, arn: &str) -> Result<Option<RetiredCa>, CaError> {
        let name = format!("{RETIRED_CA_ITEM_PREFIX}{arn}");
        let Some(item) = self.item(&name).await? else {
            return Ok(None);
        };
        let read = || -> Result<RetiredCa, String> {
            let reason = text(&item, "reason")?;
            Ok(RetiredCa {
                ca_arn: text(&item, "caArn")?,
                replaced_by: text(&item, "replacedBy")?,
                reason: RevocationReason::from_name(&reason)
                    .ok_or_else(|| format!("reason {reason:?} is not a revocation reason"))?,
                retired_at: number(&item, "retiredAt")?,
            })
        };
        read()
            .map(Some)
            .map_err(|e| CaError::Corrupt(format!("config item {name}: {e}")))
    }

    /// The CA `aws ca create` made and no rotation has put in service yet, if any.
    ///
    /// # Errors
    /// A DynamoDB failure or a damaged item.
    pub async fn pending(&self) -> Result<Option<String>, CaError> {
        match self.item(PENDING_CA_ITEM).await? {
            Some(item) => text(&item, "caArn")
                .map(Some)
                .map_err(|e| CaError::Corrupt(format!("config item {PENDING_CA_ITEM}: {e}"))),
            None => Ok(None),
        }
    }

    /// Records `arn` as the pending CA.
    ///
    /// # Errors
    /// A DynamoDB failure.
    pub async fn set_pending(&self, arn: &str, now: UnixTime) -> Result<(), CaError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("name", s(PENDING_CA_ITEM))
            .item("caArn", s(arn))
            .item("createdAt", n(now))
            .send()
            .await
            .map_err(|e| sdk_error(DYNAMODB, "PutItem", &e))?;
        Ok(())
    }

    /// Forgets the pending CA if it is `arn`.
    async fn clear_pending(&self, arn: &str) -> Result<(), CaError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("name", s(PENDING_CA_ITEM))
            .condition_expression("caArn = :arn")
            .expression_attribute_values(":arn", s(arn))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(error) => Err(sdk_error(DYNAMODB, "DeleteItem", &error)),
        }
    }
}

// ---------------------------------------------------------------------------------
// IoT Core in every region
// ---------------------------------------------------------------------------------

/// Sets device certificates REVOKED in IoT Core in every configured region: the one IoT
/// call a rotation's cascade needs, so the thing registry adapter can provide it.
pub trait IotCertificateRevoker: Send + Sync {
    /// Sets each of `certificate_ids` (IoT Core certificate ids, which are the registry's
    /// ids) REVOKED in every region; one not registered in a region, or already revoked,
    /// is skipped there. Repeating it is harmless.
    fn revoke_in_all_regions(
        &self,
        certificate_ids: &[String],
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// A CA certificate's registration in one region's IoT Core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IotCaRegistration {
    /// The region.
    pub region: String,
    /// IoT Core's id of the CA certificate, when registered there.
    pub certificate_id: Option<String>,
    /// `ACTIVE` or `INACTIVE`, when registered.
    pub status: Option<String>,
}

/// IoT Core clients for the configured regions (serving region first).
///
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct IotRegions {
    clients: Vec<(String, aws_sdk_iot::Client)>,
    concurrency: usize,
}

impl IotRegions {
    /// A client per region of `regions`, each from `sdk` with its region replaced.
    pub fn new(sdk: &aws_config::SdkConfig, regions: &[String]) -> Self {
        let clients = regions
            .iter()
            .map(|region| {
                let config = aws_sdk_iot::config::Builder::from(sdk)
                    .region(aws_sdk_iot::config::Region::new(region.clone()))
                    .build();
                (region.clone(), aws_sdk_iot::Client::from_conf(config))
            })
            .collect();
        Self {
            clients,
            concurrency: 4,
        }
    }

    /// Over given clients, one per region (serving region first): tests point a region
    /// at an endpoint of their choice.
    pub fn from_clients(clients: Vec<(String, aws_sdk_iot::Client)>) -> Self {
        Self {
            clients,
            concurrency: 4,
        }
    }

    /// Sends at most `requests` certificate updates at once per region (default 4; IoT
    /// Core's `UpdateCertificate` allows about 10 per second per account by default, and
    /// throttled calls back off).
    #[must_use]
    pub fn with_concurrency(mut self, requests: usize) -> Self {
        self.concurrency = requests.max(1);
        self
    }

    /// The regions, serving region first.
    pub fn regions(&self) -> Vec<String> {
        self.clients.iter().map(|(r, _)| r.clone()).collect()
    }

    /// The client of `region`.
    ///
    /// # Errors
    /// [`CaError::InvalidInput`] for a region that is not configured.
    pub fn client(&self, region: &str) -> Result<&aws_sdk_iot::Client, CaError> {
        self.clients
            .iter()
            .find(|(r, _)| r == region)
            .map(|(_, c)| c)
            .ok_or_else(|| {
                CaError::InvalidInput(format!(
                    "region {region} is not configured: add it to PROVISIONER_REGIONS"
                ))
            })
    }

    /// The registration of the CA certificate `der` in `region`: `DescribeCACertificate`
    /// by IoT Core's id of it, the SHA-256 of its DER (moto computes it so only when
    /// started with `use_valid_cert`, as `scripts/moto.sh` starts it).
    ///
    /// # Errors
    /// An IoT Core failure.
    pub async fn find_ca(&self, region: &str, der: &[u8]) -> Result<IotCaRegistration, CaError> {
        let client = self.client(region)?;
        let id = hex::encode(Sha256::digest(der));
        Ok(match describe_ca_status(client, &id, der).await? {
            Some(status) => registration(region, Some(id), Some(status)),
            None => registration(region, None, None),
        })
    }

    /// Sets the CA certificate `id` to `status` in `region`.
    async fn set_ca_status(
        &self,
        region: &str,
        id: &str,
        status: CaCertificateStatus,
    ) -> Result<(), CaError> {
        let client = self.client(region)?;
        retry_throttled(|| {
            client
                .update_ca_certificate()
                .certificate_id(id)
                .new_status(status.clone())
                .send()
        })
        .await
        .map_err(|e| sdk_error(IOT, "UpdateCACertificate", &e))?;
        Ok(())
    }

    async fn revoke_in_region(client: aws_sdk_iot::Client, id: String) -> Result<(), CaError> {
        let result = retry_throttled(|| {
            client
                .update_certificate()
                .certificate_id(&id)
                .new_status(IotCertificateStatus::Revoked)
                .send()
        })
        .await;
        let error = match result {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        match error.as_service_error() {
            // Not registered in this region: nothing to revoke there.
            Some(e) if e.is_resource_not_found_exception() => Ok(()),
            // A revoked certificate cannot change status: fine if it is revoked already.
            Some(e) if e.is_certificate_state_exception() => {
                let described =
                    retry_throttled(|| client.describe_certificate().certificate_id(&id).send())
                        .await
                        .map_err(|e| sdk_error(IOT, "DescribeCertificate", &e))?;
                let status = described
                    .certificate_description()
                    .and_then(|d| d.status())
                    .map(|s| s.as_str().to_owned());
                if status.as_deref() == Some("REVOKED") {
                    Ok(())
                } else {
                    Err(sdk_error(IOT, "UpdateCertificate", &error))
                }
            }
            _ => Err(sdk_error(IOT, "UpdateCertificate", &error)),
        }
    }
}

fn registration(region: &str, id: Option<String>, status: Option<String>) -> IotCaRegistration {
    IotCaRegistration {
        region: region.to_owned(),
        certificate_id: id,
        status,
    }
}

/// The status of CA certificate `id`, if it exists and is the certificate `der`.
async fn describe_ca_status(
    client: &aws_sdk_iot::Client,
    id: &str,
    der: &[u8],
) -> Result<Option<String>, CaError> {
    let result =
        retry_throttled(|| client.describe_ca_certificate().certificate_id(id).send()).await;
    let output = match result {
        Ok(output) => output,
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            return Ok(None)
        }
        Err(error) => return Err(sdk_error(IOT, "DescribeCACertificate", &error)),
    };
    let Some(description) = output.certificate_description() else {
        return Ok(None);
    };
    let registered = description
        .certificate_pem()
        .map(|pem| pem_blocks(pem, "CERTIFICATE"))
        .transpose()?
        .and_then(|blocks| blocks.into_iter().next());
    if registered.as_deref() != Some(der) {
        return Ok(None);
    }
    Ok(description.status().map(|s| s.as_str().to_owned()))
}

impl IotCertificateRevoker for IotRegions {
    /// `UpdateCertificate` REVOKED for each id in each region, at most
    /// [`IotRegions::with_concurrency`] at once per region, throttled calls backing off.
    async fn revoke_in_all_regions(&self, certificate_ids: &[String]) -> Result<(), PortError> {
        for (_, client) in &self.clients {
            let mut running = JoinSet::new();
            for id in certificate_ids {
                while running.len() >= self.concurrency {
                    join_one(&mut running).await?;
                }
                running.spawn(Self::revoke_in_region(client.clone(), id.clone()));
            }
            while !running.is_empty() {
                join_one(&mut running).await?;
            }
        }
        Ok(())
    }
}

impl<R: provisioner_core::DeviceRegistry + 'static> IotCertificateRevoker
    for super::iot::IotThingRegistry<R>
{
    /// [`IotThingRegistry::revoke_in_all_regions`](super::iot::IotThingRegistry::revoke_in_all_regions);
    /// any failure in any region is an error (the rotation retries the whole batch).
    async fn revoke_in_all_regions(&self, certificate_ids: &[String]) -> Result<(), PortError> {
        let summary =
            super::iot::IotThingRegistry::revoke_in_all_regions(self, certificate_ids).await;
        match summary.failed.first() {
            None => Ok(()),
            Some(first) => Err(PortError::Unavailable {
                what: format!(
                    "IoT Core ({} revocations failed, e.g. {} in {}: {})",
                    summary.failed.len(),
                    first.certificate_id,
                    first.region,
                    first.error
                ),
                retry_after_secs: 1,
            }),
        }
    }
}

async fn join_one(running: &mut JoinSet<Result<(), CaError>>) -> Result<(), PortError> {
    match running.join_next().await {
        Some(Ok(result)) => Ok(result?),
        Some(Err(e)) => Err(PortError::Internal(format!(
            "a revocation task failed: {e}"
        ))),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------
// The PKI admin's operations
// ---------------------------------------------------------------------------------

/// A subordinate CA `create_subordinate_ca` made, waiting for its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedCa {
    /// The CA's ARN.
    pub ca_arn: String,
    /// Its CSR, PEM, for the parent CA to sign.
    pub csr_pem: String,
}

/// An installed CA certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledCa {
    /// The CA's ARN.
    pub ca_arn: String,
    /// What the certificate says.
    pub certificate: CertificateSummary,
    /// Certificates in the chain sent with it.
    pub chain_length: usize,
    /// True when it became the issuing CA (no CA was in effect).
    pub became_current: bool,
}

/// What `describe` finds of a CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaDescription {
    /// The CA's ARN.
    pub ca_arn: String,
    /// ACM PCA status (`PENDING_CERTIFICATE`, `ACTIVE`, `DISABLED`...).
    pub status: String,
    /// `ROOT` or `SUBORDINATE`.
    pub ca_type: String,
    /// The installed certificate, if any.
    pub certificate: Option<CertificateSummary>,
    /// Its registration in each region.
    pub iot: Vec<IotCaRegistration>,
}

/// How a rotation runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationOptions {
    /// Certificates evaluated per page (and so at most revoked per batch).
    pub page_size: i32,
    /// The wait after switching before revoking ([`DEFAULT_SETTLE`]).
    pub settle: Duration,
    /// Stop after this many batches (run again to continue); `None`: to the end.
    pub max_batches: Option<u64>,
    /// Why the old CA's certificates are revoked (a new rotation only; a resumed one keeps
    /// its recorded reason).
    pub reason: RevocationReason,
}

impl Default for RotationOptions {
    fn default() -> Self {
        Self {
            page_size: DEFAULT_ROTATION_PAGE,
            settle: DEFAULT_SETTLE,
            max_batches: None,
            reason: RevocationReason::Superseded,
        }
    }
}

/// What a call of [`IssuingCaAdmin::rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationOutcome {
    /// The progress as recorded at the end of the call.
    pub progress: RotationProgress,
    /// True when it continued a rotation an earlier call began.
    pub resumed: bool,
    /// True when the rotation is done (false: stopped after `max_batches`).
    pub finished: bool,
}

/// The PKI admin's operations on ACM Private CA, IoT Core and the config table.
#[derive(Debug, Clone)]
pub struct IssuingCaAdmin {
    pca: aws_sdk_acmpca::Client,
    iot: IotRegions,
    store: IssuingCaStore,
    registry: DynamoDbRegistry,
    fallback_arn: Option<String>,
    serving_region: String,
    deadline: Duration,
}

impl IssuingCaAdmin {
    /// The operations over these clients; `fallback_arn` is the issuing CA in effect when
    /// the config table records none ([`AwsSettings::pca_ca_arn`]); `serving_region` is
    /// where the CAs live.
    pub fn new(
        pca: aws_sdk_acmpca::Client,
        iot: IotRegions,
        store: IssuingCaStore,
        registry: DynamoDbRegistry,
        fallback_arn: Option<String>,
        serving_region: impl Into<String>,
    ) -> Self {
        Self {
            pca,
            iot,
            store,
            registry,
            fallback_arn,
            serving_region: serving_region.into(),
            deadline: Duration::from_secs(120),
        }
    }

    /// Everything from `settings` and the standard AWS configuration (environment,
    /// profile or role; `AWS_ENDPOINT_URL` for a stand-in such as moto).
    pub async fn from_settings(settings: &AwsSettings) -> Self {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.serving_region.clone()))
            .load()
            .await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        Self::new(
            aws_sdk_acmpca::Client::new(&sdk),
            IotRegions::new(&sdk, &settings.regions),
            IssuingCaStore::new(dynamo.clone(), settings.config_table()),
            DynamoDbRegistry::new(
                dynamo,
                super::dynamodb::DynamoDbTables::with_prefix(&settings.table_prefix),
            ),
            settings.pca_ca_arn.clone(),
            settings.serving_region.clone(),
        )
    }

    /// How long to wait for PCA (CA creation, certificates): default 120 s.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The config table's CA items.
    pub fn store(&self) -> &IssuingCaStore {
        &self.store
    }

    /// The IoT Core clients.
    pub fn iot(&self) -> &IotRegions {
        &self.iot
    }

    /// The issuing CA in effect: the recorded one, else the fallback.
    ///
    /// # Errors
    /// A DynamoDB failure.
    pub async fn current_arn(&self) -> Result<Option<String>, CaError> {
        Ok(match self.store.read_current().await? {
            Some(current) => Some(current.ca_arn),
            None => self.fallback_arn.clone(),
        })
    }

    /// Creates an ACM Private CA subordinate named `subject` (EC P-256 key, ECDSA-SHA-256
    /// signatures), waits until it wants its certificate, records it as the pending CA,
    /// and returns its CSR for the parent CA to sign.
    ///
    /// # Errors
    /// [`CaError::WrongState`] when PCA fails to create it or takes longer than the
    /// deadline; any PCA or DynamoDB failure.
    pub async fn create_subordinate_ca(&self, subject: &CaSubject) -> Result<CreatedCa, CaError> {
        let configuration = CertificateAuthorityConfiguration::builder()
            .key_algorithm(KeyAlgorithm::EcPrime256v1)
            .signing_algorithm(SigningAlgorithm::Sha256Withecdsa)
            .subject(subject.to_pca())
            .build()
            .map_err(|e| CaError::InvalidInput(e.to_string()))?;
        let created = self
            .pca
            .create_certificate_authority()
            .certificate_authority_type(CertificateAuthorityType::Subordinate)
            .certificate_authority_configuration(configuration)
            .send()
            .await
            .map_err(|e| sdk_error(PCA, "CreateCertificateAuthority", &e))?;
        let arn = created
            .certificate_authority_arn()
            .ok_or_else(|| CaError::Corrupt("CreateCertificateAuthority answered no ARN".into()))?
            .to_owned();
        self.store.set_pending(&arn, now()).await?;
        self.wait_for_status(&arn, CertificateAuthorityStatus::PendingCertificate)
            .await?;
        let csr_pem = self.csr_pem(&arn).await?;
        Ok(CreatedCa {
            ca_arn: arn,
            csr_pem,
        })
    }

    /// The CSR of the CA `arn`, PEM (`GetCertificateAuthorityCsr`, retried while PCA is
    /// still making it).
    ///
    /// # Errors
    /// [`CaError::WrongState`] when it is not ready by the deadline; a PCA failure.
    pub async fn csr_pem(&self, arn: &str) -> Result<String, CaError> {
        let deadline = tokio::time::Instant::now() + self.deadline;
        let mut attempt = 0;
        loop {
            let result = self
                .pca
                .get_certificate_authority_csr()
                .certificate_authority_arn(arn)
                .send()
                .await;
            match result {
                Ok(output) => {
                    return output.csr().map(str::to_owned).ok_or_else(|| {
                        CaError::Corrupt("GetCertificateAuthorityCsr answered no CSR".into())
                    })
                }
                Err(error)
                    if matches!(error.code(), Some("RequestInProgressException"))
                        || is_throttling(error.code()) =>
                {
                    if tokio::time::Instant::now() > deadline {
                        return Err(CaError::WrongState(format!(
                            "the CSR of {arn} is not ready after {:?}; run the command again later",
                            self.deadline
                        )));
                    }
                }
                Err(error) => return Err(not_found_or(&error, arn, "GetCertificateAuthorityCsr")),
            }
            tokio::time::sleep(backoff(
                Duration::from_millis(500),
                Duration::from_secs(5),
                attempt,
            ))
            .await;
            attempt += 1;
        }
    }

    async fn wait_for_status(
        &self,
        arn: &str,
        wanted: CertificateAuthorityStatus,
    ) -> Result<(), CaError> {
        let deadline = tokio::time::Instant::now() + self.deadline;
        let mut attempt = 0;
        loop {
            let ca = self.describe_pca(arn).await?;
            let status = ca.status().cloned();
            match status {
                Some(status) if status == wanted => return Ok(()),
                Some(CertificateAuthorityStatus::Creating) | None => {}
                Some(other) => {
                    return Err(CaError::WrongState(format!(
                        "CA {arn} is {} ({}), not {}",
                        other.as_str(),
                        ca.failure_reason()
                            .map_or("no reason given", |r| r.as_str()),
                        wanted.as_str()
                    )))
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(CaError::WrongState(format!(
                    "CA {arn} is still being created after {:?}",
                    self.deadline
                )));
            }
            tokio::time::sleep(backoff(
                Duration::from_millis(500),
                Duration::from_secs(5),
                attempt,
            ))
            .await;
            attempt += 1;
        }
    }

    async fn describe_pca(
        &self,
        arn: &str,
    ) -> Result<aws_sdk_acmpca::types::CertificateAuthority, CaError> {
        let output = retry_throttled(|| {
            self.pca
                .describe_certificate_authority()
                .certificate_authority_arn(arn)
                .send()
        })
        .await
        .map_err(|e| not_found_or(&e, arn, "DescribeCertificateAuthority"))?;
        output.certificate_authority().cloned().ok_or_else(|| {
            CaError::Corrupt(format!("DescribeCertificateAuthority of {arn}: empty"))
        })
    }

    /// What the certificate of the ACTIVE CA `arn` says, and its chain as PEM: the CA's
    /// certificate, then the chain installed with it (its parents).
    ///
    /// # Errors
    /// [`CaError::WrongState`] when it has no certificate yet; [`CaError::NotFound`] for
    /// an unknown CA; a PCA failure.
    pub async fn certificate_of(&self, arn: &str) -> Result<(CertificateSummary, String), CaError> {
        let (der, _, chain) = self.ca_certificate(arn).await?;
        let summary = summarize_certificate(&der)?;
        let mut pem = pem_of("CERTIFICATE", &der);
        for link in &chain {
            pem.push_str(&pem_of("CERTIFICATE", link));
        }
        Ok((summary, pem))
    }

    /// The CA certificate and chain (PEM) of the ACTIVE CA `arn`.
    async fn ca_certificate(&self, arn: &str) -> Result<(Vec<u8>, String, Vec<Vec<u8>>), CaError> {
        let output = retry_throttled(|| {
            self.pca
                .get_certificate_authority_certificate()
                .certificate_authority_arn(arn)
                .send()
        })
        .await
        .map_err(|error| match error.code() {
            Some("InvalidStateException") => CaError::WrongState(format!(
                "CA {arn} has no certificate yet: sign its CSR and run `provisioner aws ca install`"
            )),
            _ => not_found_or(&error, arn, "GetCertificateAuthorityCertificate"),
        })?;
        let pem = output.certificate().unwrap_or_default().to_owned();
        let der = pem_blocks(&pem, "CERTIFICATE")?
            .into_iter()
            .next()
            .ok_or_else(|| CaError::Corrupt(format!("CA {arn}: no certificate in the answer")))?;
        let chain = pem_blocks(
            output.certificate_chain().unwrap_or_default(),
            "CERTIFICATE",
        )?;
        Ok((der, pem, chain))
    }

    /// Installs the CA certificate `certificate_pem` (the CA's certificate first; more
    /// certificates after it are taken as the chain when `chain_pem` is `None`) into the
    /// CA `arn` (`ImportCertificateAuthorityCertificate`), after checking that it
    /// certifies the key of the CA's CSR. When no issuing CA is in effect, the CA becomes
    /// the issuing CA.
    ///
    /// # Errors
    /// [`CaError::InvalidInput`] for text that holds no certificate, or a certificate for
    /// another key; [`CaError::NotFound`] for an unknown CA; any PCA failure (PCA checks
    /// the chain).
    pub async fn install_ca_certificate(
        &self,
        arn: &str,
        certificate_pem: &str,
        chain_pem: Option<&str>,
    ) -> Result<InstalledCa, CaError> {
        let mut blocks = pem_blocks(certificate_pem, "CERTIFICATE")?.into_iter();
        let der = blocks.next().ok_or_else(|| {
            CaError::InvalidInput("the file holds no PEM CERTIFICATE block".into())
        })?;
        let summary = summarize_certificate(&der)?;
        let chain: Vec<Vec<u8>> = match chain_pem {
            Some(chain) => pem_blocks(chain, "CERTIFICATE")?,
            None => blocks.collect(),
        };
        for (index, link) in chain.iter().enumerate() {
            summarize_certificate(link).map_err(|e| {
                CaError::InvalidInput(format!("chain certificate {}: {e}", index + 1))
            })?;
        }
        let csr = pem_blocks(&self.csr_pem(arn).await?, "CERTIFICATE REQUEST")?
            .into_iter()
            .next()
            .ok_or_else(|| CaError::Corrupt(format!("CA {arn}: its CSR is not PEM")))?;
        if csr_spki(&csr)? != summary.spki_der {
            return Err(CaError::InvalidInput(format!(
                "the certificate ({}, serial {}) does not certify the key of CA {arn}'s CSR: \
                 have the parent sign that CA's CSR (`provisioner aws ca create` wrote it)",
                summary.subject, summary.serial
            )));
        }
        let chain_text: String = chain.iter().map(|d| pem_of("CERTIFICATE", d)).collect();
        let mut request = self
            .pca
            .import_certificate_authority_certificate()
            .certificate_authority_arn(arn)
            .certificate(Blob::new(pem_of("CERTIFICATE", &der)));
        if !chain.is_empty() {
            request = request.certificate_chain(Blob::new(chain_text));
        }
        request
            .send()
            .await
            .map_err(|e| not_found_or(&e, arn, "ImportCertificateAuthorityCertificate"))?;
        let became_current = self.adopt_if_none(arn).await?;
        Ok(InstalledCa {
            ca_arn: arn.to_owned(),
            certificate: summary,
            chain_length: chain.len(),
            became_current,
        })
    }

    /// Makes `arn` the issuing CA when none is in effect (or the fallback is `arn`).
    /// A CA in service is no longer pending.
    async fn adopt_if_none(&self, arn: &str) -> Result<bool, CaError> {
        let adopted = match self.store.read_current().await? {
            Some(current) => {
                if current.ca_arn == arn {
                    self.store.clear_pending(arn).await?;
                }
                return Ok(false);
            }
            None => match self.fallback_arn.as_deref() {
                Some(fallback) if fallback != arn => false,
                fallback => {
                    self.store.set_current(fallback, arn, now()).await?;
                    true
                }
            },
        };
        if adopted {
            self.store.clear_pending(arn).await?;
        }
        Ok(adopted)
    }

    /// Registers the CA certificate of the ACTIVE CA `arn` in IoT Core in each of
    /// `regions` (configured ones), ACTIVE, without auto-registration: a registration
    /// code from the region (`GetRegistrationCode`), a verification certificate whose CN
    /// is that code signed by the CA itself (`IssueCertificate`, EndEntityCertificate
    /// template, one day), then `RegisterCACertificate`. A region where it is registered
    /// already is left as it is, except that an INACTIVE registration is made ACTIVE.
    /// When no issuing CA is in effect, the CA becomes the issuing CA.
    ///
    /// # Errors
    /// [`CaError::WrongState`] when the CA has no certificate yet; any PCA or IoT failure
    /// (regions done before stay registered; running it again finishes).
    pub async fn register_ca_in_regions(
        &self,
        arn: &str,
        regions: &[String],
    ) -> Result<Vec<IotCaRegistration>, CaError> {
        let (der, pem, _) = self.ca_certificate(arn).await?;
        let mut registrations = Vec::new();
        for region in regions {
            let found = self.iot.find_ca(region, &der).await?;
            let registration = match (&found.certificate_id, found.status.as_deref()) {
                (Some(_), Some("ACTIVE")) => found,
                (Some(id), _) => {
                    self.iot
                        .set_ca_status(region, id, CaCertificateStatus::Active)
                        .await?;
                    registration(region, Some(id.clone()), Some("ACTIVE".into()))
                }
                (None, _) => self.register_in_region(arn, &pem, region).await?,
            };
            registrations.push(registration);
        }
        self.adopt_if_none(arn).await?;
        Ok(registrations)
    }

    async fn register_in_region(
        &self,
        arn: &str,
        ca_pem: &str,
        region: &str,
    ) -> Result<IotCaRegistration, CaError> {
        let client = self.iot.client(region)?;
        let code = retry_throttled(|| client.get_registration_code().send())
            .await
            .map_err(|e| sdk_error(IOT, "GetRegistrationCode", &e))?
            .registration_code()
            .ok_or_else(|| CaError::Corrupt("GetRegistrationCode answered no code".into()))?
            .to_owned();
        let verification = self.verification_certificate(arn, &code).await?;
        let result = retry_throttled(|| {
            client
                .register_ca_certificate()
                .ca_certificate(ca_pem)
                .verification_certificate(&verification)
                .set_as_active(true)
                .allow_auto_registration(false)
                .send()
        })
        .await;
        let id = match result {
            Ok(output) => output.certificate_id().map(str::to_owned),
            Err(error) => match error.as_service_error() {
                Some(aws_sdk_iot::operation::register_ca_certificate::RegisterCACertificateError::ResourceAlreadyExistsException(e)) => {
                    e.resource_id().map(str::to_owned)
                }
                _ => return Err(sdk_error(IOT, "RegisterCACertificate", &error)),
            },
        };
        Ok(registration(region, id, Some("ACTIVE".into())))
    }

    /// A certificate for a fresh key with CN `code`, signed by the CA `arn`, PEM.
    async fn verification_certificate(&self, arn: &str, code: &str) -> Result<String, CaError> {
        let key = rcgen::KeyPair::generate()
            .map_err(|e| CaError::Corrupt(format!("cannot make a key: {e}")))?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| CaError::Corrupt(format!("verification CSR: {e}")))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, code);
        let csr = params
            .serialize_request(&key)
            .and_then(|csr| csr.pem())
            .map_err(|e| CaError::Corrupt(format!("verification CSR: {e}")))?;
        let ca = self.describe_pca(arn).await?;
        let algorithm = ca
            .certificate_authority_configuration()
            .map(|c| c.signing_algorithm().clone())
            .unwrap_or(SigningAlgorithm::Sha256Withecdsa);
        let validity = Validity::builder()
            .r#type(ValidityPeriodType::Days)
            .value(1)
            .build()
            .map_err(|e| CaError::InvalidInput(e.to_string()))?;
        let issued = retry_throttled(|| {
            self.pca
                .issue_certificate()
                .certificate_authority_arn(arn)
                .csr(Blob::new(csr.clone()))
                .signing_algorithm(algorithm.clone())
                .template_arn(END_ENTITY_TEMPLATE)
                .validity(validity.clone())
                .send()
        })
        .await
        .map_err(|e| not_found_or(&e, arn, "IssueCertificate"))?;
        let certificate_arn = issued
            .certificate_arn()
            .ok_or_else(|| CaError::Corrupt("IssueCertificate answered no ARN".into()))?;
        let authority = AcmPcaAuthority::new(self.pca.clone(), self.pca_config(arn));
        Ok(authority.certificate(certificate_arn).await?)
    }

    fn pca_config(&self, arn: &str) -> AcmPcaConfig {
        let mut config = AcmPcaConfig::new(arn);
        config.deadline = self.deadline;
        config
    }

    /// What ACM PCA and IoT Core (in every configured region) say of the CA `arn`.
    ///
    /// # Errors
    /// [`CaError::NotFound`] for an unknown CA; any PCA or IoT failure.
    pub async fn describe(&self, arn: &str) -> Result<CaDescription, CaError> {
        let ca = self.describe_pca(arn).await?;
        let status = ca
            .status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        let ca_type = ca
            .r#type()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default();
        let mut description = CaDescription {
            ca_arn: arn.to_owned(),
            status,
            ca_type,
            certificate: None,
            iot: Vec::new(),
        };
        if !matches!(
            ca.status(),
            Some(CertificateAuthorityStatus::Active | CertificateAuthorityStatus::Disabled)
        ) {
            description.iot = self
                .iot
                .regions()
                .iter()
                .map(|r| registration(r, None, None))
                .collect();
            return Ok(description);
        }
        let (der, _, _) = self.ca_certificate(arn).await?;
        description.certificate = Some(summarize_certificate(&der)?);
        for region in self.iot.regions() {
            description.iot.push(self.iot.find_ca(&region, &der).await?);
        }
        Ok(description)
    }

    // --- rotation -------------------------------------------------------------

    /// Rotates the issuing CA to `to_arn` (an ACTIVE ACM Private CA) and cascades (see the
    /// module docs), or resumes the recorded rotation to `to_arn` that is not done.
    /// `revoker` sets certificates REVOKED in IoT Core in every region ([`IotRegions`],
    /// or the thing registry); `progress` is called after every recorded step and batch.
    ///
    /// # Errors
    /// [`CaError::Conflict`] when another rotation is unfinished or won the switch;
    /// [`CaError::InvalidInput`] when no CA is in effect or `to_arn` is it;
    /// [`CaError::WrongState`] when `to_arn` has no certificate; any service failure, after
    /// which the progress says `failed` and the next call resumes.
    pub async fn rotate(
        &self,
        to_arn: &str,
        options: &RotationOptions,
        revoker: &impl IotCertificateRevoker,
        mut progress: impl FnMut(&RotationProgress),
    ) -> Result<RotationOutcome, CaError> {
        let (mut record, resumed) = self.begin_rotation(to_arn, options).await?;
        progress(&record);
        let mut batches = 0u64;
        loop {
            let state = record.resume_state();
            if record.state == RotationState::Failed {
                // Resuming: the next save records the state it runs in again.
                record.state = state;
                record.failed_state = None;
                record.last_error = None;
            }
            let step = match state {
                RotationState::Done => break,
                RotationState::Registering => self.step_register(&mut record).await,
                RotationState::Switching => self.step_switch(&mut record, options).await,
                RotationState::Revoking => {
                    self.step_revoke(&mut record, options, revoker, &mut batches, &mut progress)
                        .await
                }
                RotationState::Deactivating => self.step_deactivate(&mut record).await,
                RotationState::Failed => Err(CaError::Corrupt("failed state in a step".into())),
            };
            match step {
                Ok(true) => {}
                // Stopped after max_batches: the progress is recorded; resume later.
                Ok(false) => {
                    return Ok(RotationOutcome {
                        progress: record,
                        resumed,
                        finished: false,
                    })
                }
                Err(error) => {
                    record.state = RotationState::Failed;
                    record.failed_state = Some(state);
                    record.last_error = Some(error.to_string());
                    record.updated_at = now();
                    // The error matters more than a failure to record it.
                    if let Err(save) = self.store.save_rotation(&record).await {
                        tracing::warn!(error = %save, "cannot record the rotation's failure");
                    }
                    progress(&record);
                    return Err(error);
                }
            }
            progress(&record);
        }
        self.store.clear_pending(to_arn).await?;
        Ok(RotationOutcome {
            progress: record,
            resumed,
            finished: true,
        })
    }

    /// Records a new rotation to `to_arn` in state `registering`, after the checks
    /// [`IssuingCaAdmin::rotate`] makes before anything changes, without running any step
    /// (the admin API starts a rotation so; the scheduled maintenance, `aws::maintenance`,
    /// runs the steps). A recorded rotation to `to_arn` that is not done is returned
    /// instead, with `true` (resumed).
    ///
    /// # Errors
    /// [`CaError::Conflict`] when a rotation to another CA is unfinished;
    /// [`CaError::InvalidInput`] when no CA is in effect or `to_arn` is it;
    /// [`CaError::WrongState`] when `to_arn` has no certificate; [`CaError::NotFound`] for
    /// an unknown CA; a service failure.
    pub async fn begin_rotation(
        &self,
        to_arn: &str,
        options: &RotationOptions,
    ) -> Result<(RotationProgress, bool), CaError> {
        match self.store.rotation().await? {
            Some(record) if record.state != RotationState::Done => {
                if record.to_ca_arn != to_arn {
                    return Err(CaError::Conflict(format!(
                        "the rotation from {} to {} is not finished ({}); run \
                         `provisioner aws ca rotate --to {}` to finish it first",
                        record.from_ca_arn,
                        record.to_ca_arn,
                        record.state.name(),
                        record.to_ca_arn
                    )));
                }
                Ok((record, true))
            }
            _ => Ok((self.new_rotation(to_arn, options).await?, false)),
        }
    }

    async fn new_rotation(
        &self,
        to_arn: &str,
        options: &RotationOptions,
    ) -> Result<RotationProgress, CaError> {
        let from = self.current_arn().await?.ok_or_else(|| {
            CaError::InvalidInput(
                "no issuing CA is in effect to rotate from: install and register the first \
                 CA (`provisioner aws ca install`, `aws ca register`), or set \
                 PROVISIONER_PCA_CA_ARN"
                    .into(),
            )
        })?;
        if from == to_arn {
            return Err(CaError::InvalidInput(format!(
                "{to_arn} is already the issuing CA: create a new CA first (`provisioner aws ca create`)"
            )));
        }
        // The new CA must be ready to issue before anything changes.
        self.ca_certificate(to_arn).await?;
        let at = now();
        let record = RotationProgress {
            from_ca_arn: from,
            to_ca_arn: to_arn.to_owned(),
            state: RotationState::Registering,
            failed_state: None,
            reason: options.reason,
            revoked: 0,
            total: None,
            cursor: None,
            started_at: at,
            updated_at: at,
            completed_at: None,
            last_error: None,
            parent_ca_arn: None,
            admin_action: None,
        };
        self.store.start_rotation(&record).await?;
        Ok(record)
    }

    async fn advance(
        &self,
        record: &mut RotationProgress,
        next: RotationState,
    ) -> Result<(), CaError> {
        record.state = next;
        record.failed_state = None;
        record.last_error = None;
        record.updated_at = now();
        if next == RotationState::Done {
            record.completed_at = Some(record.updated_at);
            // Before the rotation reads done: a crash between the two reruns this step.
            self.store.record_retired(record).await?;
        }
        self.store.save_rotation(record).await
    }

    async fn step_register(&self, record: &mut RotationProgress) -> Result<bool, CaError> {
        self.register_ca_in_regions(&record.to_ca_arn, &self.iot.regions())
            .await?;
        self.advance(record, RotationState::Switching).await?;
        Ok(true)
    }

    async fn step_switch(
        &self,
        record: &mut RotationProgress,
        options: &RotationOptions,
    ) -> Result<bool, CaError> {
        let recorded = self.store.read_current().await?.map(|c| c.ca_arn);
        if recorded.as_deref() != Some(record.to_ca_arn.as_str()) {
            self.store
                .set_current(Some(&record.from_ca_arn), &record.to_ca_arn, now())
                .await?;
        }
        tokio::time::sleep(options.settle).await;
        let total = self
            .registry
            .count_active_by_issuer(ca_id(&record.from_ca_arn))
            .await?;
        record.total = Some(record.revoked + total);
        record.cursor = None;
        self.advance(record, RotationState::Revoking).await?;
        Ok(true)
    }

    /// Revokes page after page; returns `false` when stopped by `max_batches`.
    async fn step_revoke(
        &self,
        record: &mut RotationProgress,
        options: &RotationOptions,
        revoker: &impl IotCertificateRevoker,
        batches: &mut u64,
        progress: &mut impl FnMut(&RotationProgress),
    ) -> Result<bool, CaError> {
        let issuer = ca_id(&record.from_ca_arn).to_owned();
        // A resumed pass may have revoked before the crash: sweep once more to be sure.
        let mut revoked_this_pass = record.cursor.is_some() || record.revoked > 0;
        loop {
            if options.max_batches.is_some_and(|max| *batches >= max) {
                return Ok(false);
            }
            let (page, next) = self
                .registry
                .active_certificates_by_issuer(&issuer, record.cursor.as_deref(), options.page_size)
                .await?;
            let ids: Vec<String> = page.into_iter().map(|c| c.certificate_id).collect();
            if !ids.is_empty() {
                // IoT first: a certificate the registry shows REVOKED is refused everywhere.
                revoker.revoke_in_all_regions(&ids).await?;
                let revoked = self
                    .registry
                    .revoke_active(&ids, record.reason, now())
                    .await?;
                record.revoked += revoked;
                revoked_this_pass |= revoked > 0;
                *batches += 1;
            }
            record.cursor = next.clone();
            if let Some(total) = record.total {
                record.total = Some(total.max(record.revoked));
            }
            record.updated_at = now();
            self.store.save_rotation(record).await?;
            progress(record);
            if next.is_none() {
                if !revoked_this_pass {
                    break;
                }
                // Another pass from the start: it ends the cascade when it finds nothing.
                revoked_this_pass = false;
            }
        }
        self.advance(record, RotationState::Deactivating).await?;
        Ok(true)
    }

    async fn step_deactivate(&self, record: &mut RotationProgress) -> Result<bool, CaError> {
        let old = &record.from_ca_arn;
        let (der, _, chain) = self.ca_certificate(old).await?;
        for region in self.iot.regions() {
            let found = self.iot.find_ca(&region, &der).await?;
            if let (Some(id), Some(status)) = (&found.certificate_id, found.status.as_deref()) {
                if status != "INACTIVE" {
                    self.iot
                        .set_ca_status(&region, id, CaCertificateStatus::Inactive)
                        .await?;
                }
            }
        }
        let summary = summarize_certificate(&der)?;
        let reason = if record.reason == RevocationReason::CaCompromise {
            RevocationReason::CaCompromise
        } else {
            RevocationReason::CessationOfOperation
        };
        match self.find_parent(old, &summary, chain.first()).await? {
            Some(parent) => {
                self.revoke_at_parent(&parent, &summary.serial, reason)
                    .await?;
                record.parent_ca_arn = Some(parent);
                record.admin_action = Some(format!(
                    "When no certificate of {old} is needed any more, disable it: aws acm-pca \
                     update-certificate-authority --certificate-authority-arn {old} --status DISABLED"
                ));
            }
            None => {
                record.admin_action = Some(format!(
                    "The old issuing CA {old} (subject {subject}, serial {serial}) was signed by \
                     {issuer}, which is not an ACM Private CA of this account in {region}: have \
                     that CA's operator revoke serial {serial} (reason {reason}) and publish its \
                     CRL, so relying parties that check it refuse the old CA. Then disable the old \
                     CA: aws acm-pca update-certificate-authority --certificate-authority-arn \
                     {old} --status DISABLED",
                    subject = summary.subject,
                    serial = summary.serial,
                    issuer = summary.issuer,
                    region = self.serving_region,
                    reason = reason.name(),
                ));
            }
        }
        self.advance(record, RotationState::Done).await?;
        Ok(true)
    }

    /// The ACM Private CA of this account (serving region) that signed `old`'s
    /// certificate: its certificate's subject is `old`'s issuer, and it is the chain's
    /// first certificate when a chain was installed.
    async fn find_parent(
        &self,
        old: &str,
        summary: &CertificateSummary,
        chain_first: Option<&Vec<u8>>,
    ) -> Result<Option<String>, CaError> {
        let mut token = None;
        loop {
            let page = retry_throttled(|| {
                self.pca
                    .list_certificate_authorities()
                    .set_next_token(token.clone())
                    .send()
            })
            .await
            .map_err(|e| sdk_error(PCA, "ListCertificateAuthorities", &e))?;
            for ca in page.certificate_authorities() {
                let Some(arn) = ca.arn() else { continue };
                if arn == old || ca.status() != Some(&CertificateAuthorityStatus::Active) {
                    continue;
                }
                let (der, _, _) = self.ca_certificate(arn).await?;
                let candidate = summarize_certificate(&der)?;
                let same_issuer = candidate.subject_der == summary.issuer_der;
                let same_chain = chain_first.is_none_or(|first| *first == der);
                if same_issuer && same_chain {
                    return Ok(Some(arn.to_owned()));
                }
            }
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => return Ok(None),
            }
        }
    }

    async fn revoke_at_parent(
        &self,
        parent: &str,
        serial_hex: &str,
        reason: RevocationReason,
    ) -> Result<(), CaError> {
        let serial = pca_serial(serial_hex).map_err(|e| CaError::Corrupt(e.to_string()))?;
        let reason = pca_reason(reason).map_err(|e| CaError::InvalidInput(e.to_string()))?;
        let result = retry_throttled(|| {
            self.pca
                .revoke_certificate()
                .certificate_authority_arn(parent)
                .certificate_serial(&serial)
                .revocation_reason(reason.clone())
                .send()
        })
        .await;
        match result {
            Ok(_) => Ok(()),
            // Revoked by an earlier, interrupted run.
            Err(error) if error.code() == Some("RequestAlreadyProcessedException") => Ok(()),
            Err(error) => Err(sdk_error(PCA, "RevokeCertificate", &error)),
        }
    }
}

fn not_found_or<E, R>(error: &SdkError<E, R>, arn: &str, operation: &'static str) -> CaError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error.code() {
        Some("ResourceNotFoundException") => CaError::NotFound(format!(
            "no ACM Private CA {arn} in this account and region (check the ARN and AWS_REGION)"
        )),
        Some("InvalidArnException") => CaError::InvalidInput(format!(
            "{arn:?} is not a CA ARN (arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/ID)"
        )),
        _ => sdk_error(PCA, operation, error),
    }
}

fn now() -> UnixTime {
    SystemClock.now()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn subjects_read_the_usual_keys_and_escaped_commas() {
        let subject =
            CaSubject::parse("CN=Issuing CA 2027, O=Example\\, Inc., c=de,OU=IoT").unwrap();
        assert_eq!(subject.common_name, "Issuing CA 2027");
        assert_eq!(subject.organization.as_deref(), Some("Example, Inc."));
        assert_eq!(subject.country.as_deref(), Some("DE"));
        assert_eq!(subject.organizational_unit.as_deref(), Some("IoT"));
        let pca = subject.to_pca();
        assert_eq!(pca.common_name(), Some("Issuing CA 2027"));
        assert_eq!(pca.state(), None);
    }

    #[test]
    fn bad_subjects_say_what_is_wrong() {
        for (text, expected) in [
            ("O=Example", "CN is missing"),
            ("CN=a,CN=b", "given twice"),
            ("CN=a,X=b", "unknown key X"),
            ("CN=a,C=Germany", "two letters"),
            ("CN=", "CN is empty"),
            ("CN a", "not KEY=value"),
        ] {
            let error = CaSubject::parse(text).unwrap_err();
            assert!(error.to_string().contains(expected), "{text}: {error}");
            assert_eq!(error.code(), "invalid_input");
        }
    }

    #[test]
    fn pem_blocks_are_read_in_order_and_written_back() {
        let text = format!(
            "junk\n{}{}",
            pem_of("CERTIFICATE", b"one"),
            pem_of("CERTIFICATE", &[7u8; 100])
        );
        let blocks = pem_blocks(&text, "CERTIFICATE").unwrap();
        assert_eq!(blocks, vec![b"one".to_vec(), vec![7u8; 100]]);
        assert!(pem_blocks("-----BEGIN CERTIFICATE-----\nAAAA", "CERTIFICATE").is_err());
        assert!(pem_blocks("nothing", "CERTIFICATE").unwrap().is_empty());
    }

    #[test]
    fn rotation_progress_survives_the_item_round_trip() {
        let progress = RotationProgress {
            from_ca_arn: "arn:aws:acm-pca:eu-west-1:1:certificate-authority/old".into(),
            to_ca_arn: "arn:aws:acm-pca:eu-west-1:1:certificate-authority/new".into(),
            state: RotationState::Failed,
            failed_state: Some(RotationState::Revoking),
            reason: RevocationReason::CaCompromise,
            revoked: 250,
            total: Some(1000),
            cursor: Some("ab12".into()),
            started_at: 1_800_000_000,
            updated_at: 1_800_000_100,
            completed_at: None,
            last_error: Some("IoT Core throttled".into()),
            parent_ca_arn: None,
            admin_action: None,
        };
        let item = progress.to_item();
        assert_eq!(item["name"], s(ROTATION_ITEM));
        assert_eq!(item["state"], s("failed"));
        assert_eq!(item["reason"], s("cACompromise"));
        assert!(!item.contains_key("completedAt"));
        let back = RotationProgress::from_item(&item).unwrap();
        assert_eq!(back, progress);
        assert_eq!(back.resume_state(), RotationState::Revoking);
    }

    #[test]
    fn a_damaged_rotation_item_is_corrupt() {
        let mut item = RotationProgress::from_item(
            &RotationProgress {
                from_ca_arn: "a".into(),
                to_ca_arn: "b".into(),
                state: RotationState::Done,
                failed_state: None,
                reason: RevocationReason::Superseded,
                revoked: 0,
                total: None,
                cursor: None,
                started_at: 0,
                updated_at: 0,
                completed_at: Some(0),
                last_error: None,
                parent_ca_arn: None,
                admin_action: None,
            }
            .to_item(),
        )
        .unwrap()
        .to_item();
        item.insert("state".into(), s("sleeping"));
        let error = RotationProgress::from_item(&item).unwrap_err();
        assert!(
            matches!(error, CaError::Corrupt(ref m) if m.contains("sleeping")),
            "{error}"
        );
    }

    #[test]
    fn state_names_round_trip() {
        for state in [
            RotationState::Registering,
            RotationState::Switching,
            RotationState::Revoking,
            RotationState::Deactivating,
            RotationState::Done,
            RotationState::Failed,
        ] {
            assert_eq!(RotationState::from_name(state.name()), Some(state));
        }
        assert_eq!(RotationState::from_name("DONE"), None);
    }

    #[test]
    fn ca_ids_are_the_arns_last_part() {
        assert_eq!(
            ca_id("arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/1111-2222"),
            "1111-2222"
        );
        assert_eq!(ca_id("plain"), "plain");
    }

    #[test]
    fn throttling_is_unavailable_for_the_ports() {
        let port: PortError = CaError::Unavailable {
            service: IOT,
            operation: "UpdateCertificate",
            cause: "ThrottlingException".into(),
        }
        .into();
        assert!(matches!(port, PortError::Unavailable { ref what, .. } if what == IOT));
        let port: PortError = CaError::Conflict("x".into()).into();
        assert_eq!(port, PortError::Internal("x".into()));
    }
}
