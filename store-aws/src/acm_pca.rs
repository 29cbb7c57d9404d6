//! The ACM Private CA authority: device certificates signed by an AWS Private CA
//! (`IssueCertificate`, then `GetCertificate`), the chain devices need, and revocation.
//!
//! [`AcmPcaAuthority`] implements the [`CertificateAuthority`] port: `issue` sends the
//! CSR bytes the flow verified ([`VerifiedCsr::der`]) with an idempotency token from the
//! flow's key, and `retire` revokes superseded certificates so the CA's CRL lists them.
//!
//! # Idempotency
//!
//! `IssueCertificate` takes an `IdempotencyToken` (at most 36 characters): the same token
//! within five minutes returns the same certificate instead of signing a second one.
//! [`idempotency_token`] hashes the flow's idempotency key (the CSR fingerprint and the
//! device's current and last hour's certificates) to 32 hex digits: a retry of the same
//! request (same CSR, nothing recorded since) repeats the token and never mints a second
//! certificate; a renewal, or a request after a revocation, has one more certificate in
//! the device's history, so another token, and gets a new certificate.
//!
//! # Waiting for the certificate
//!
//! PCA signs asynchronously: `GetCertificate` answers `RequestInProgressException` until
//! the certificate exists. [`AcmPcaAuthority::issue_csr`] retries it (and throttling) with
//! exponential backoff from [`AcmPcaConfig::first_backoff`], capped at
//! [`AcmPcaConfig::max_backoff`], until [`AcmPcaConfig::deadline`]; past it the answer is
//! [`PortError::Unavailable`] (`what` = "ACM Private CA"). The certificate may still be
//! signed later: a retry with the same idempotency token gets that certificate back.
//!
//! # Errors
//!
//! Throttling (`ThrottlingException`, `TooManyRequestsException`,
//! `LimitExceededException`) and a certificate still in progress at the deadline are
//! [`AcmPcaError::Unavailable`], which the ports answer as [`PortError::Unavailable`].
//! Anything else is [`PortError::Internal`] with the SDK error's display (which never
//! holds credentials).
//!
//! # What the moto tests cannot show
//!
//! moto's ACM PCA (`tests/acm_pca_authority.rs`) signs real certificates with the CSR's
//! key, but ignores `Validity`, `SigningAlgorithm`, `IdempotencyToken` and this template,
//! and never reports "in progress" for a new certificate. The request building
//! ([`validity_of`]) and the backoff are unit-tested here instead; the wait's deadline is
//! tested against moto through a quirk (it answers "in progress" for a revoked
//! certificate).

use std::sync::Arc;
use std::time::Duration;

use super::is_throttling;
use aws_sdk_acmpca::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{
    ApiPassthrough, Asn1Subject, RevocationReason as PcaRevocationReason, SigningAlgorithm,
    Validity, ValidityPeriodType,
};
use aws_sdk_acmpca::Client;
use der::{Decode, Encode};
use provisioner_core::{
    CsrVerifier, DeviceKey, IssuanceProfile, PortError, RevocationReason, SignedCertificate,
    UnixTime,
};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use provisioner_core::{CertificateAuthority, CertificateRecord, VerifiedCsr};

/// The PCA template for device certificates: end entity, clientAuth, in its
/// `APIPassthrough` variant so the subject is the one [`api_passthrough`] sends (CN =
/// device id alone), not the CSR's. It still copies a requested subjectAltName from the
/// CSR (AWS's "template order of operations"): the verifier refuses such CSRs first
/// (`subject_alt_name_requested`). Other requested extensions are the template's.
pub const END_ENTITY_CLIENT_AUTH_TEMPLATE: &str =
    "arn:aws:acm-pca:::template/EndEntityClientAuthCertificate_APIPassthrough/V1";

/// PCA's limit on `IdempotencyToken`.
pub const MAX_IDEMPOTENCY_TOKEN_LEN: usize = 36;

/// What the ports' `Unavailable` names.
const WHAT: &str = "ACM Private CA";

// ---------------------------------------------------------------------------------
// Configuration and errors
// ---------------------------------------------------------------------------------

/// Which CA signs, and how long to wait for a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmPcaConfig {
    /// The issuing CA's ARN (`arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/ID`).
    pub certificate_authority_arn: String,
    /// How long `GetCertificate` is retried while the certificate is in progress.
    pub deadline: Duration,
    /// The first wait between `GetCertificate` attempts (doubled each time).
    pub first_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl AcmPcaConfig {
    /// The CA `certificate_authority_arn`, waiting up to 10 s, backing off from 200 ms to
    /// at most 2 s.
    pub fn new(certificate_authority_arn: impl Into<String>) -> Self {
        Self {
            certificate_authority_arn: certificate_authority_arn.into(),
            deadline: Duration::from_secs(10),
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }

    /// The CA's id: the ARN's last part (what [`SignedCertificate::issuer`] records).
    pub fn certificate_authority_id(&self) -> &str {
        let arn = self.certificate_authority_arn.as_str();
        arn.rsplit_once("certificate-authority/")
            .map_or(arn, |(_, id)| id)
    }
}

/// Why an ACM PCA operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcmPcaError {
    /// PCA throttled the request, or the certificate was still in progress at the
    /// deadline: retry shortly (with the same idempotency token).
    #[error(
        "ACM Private CA cannot serve {operation} now ({cause}); retry after {retry_after_secs} s"
    )]
    Unavailable {
        /// The PCA operation.
        operation: &'static str,
        /// The error code, or why the wait ended.
        cause: String,
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// The caller's input cannot be sent (bad CSR, token, serial or reason).
    #[error("invalid ACM Private CA request: {0}")]
    InvalidInput(String),
    /// PCA answered something this adapter cannot use (unparsable or wrong certificate).
    #[error("ACM Private CA answered an unusable certificate: {0}")]
    Corrupt(String),
    /// Any other failure of the SDK or the service, with the SDK error's display.
    #[error("ACM Private CA {operation} failed: {message}")]
    Sdk {
        /// The PCA operation.
        operation: &'static str,
        /// What the SDK reported.
        message: String,
    },
}

impl From<AcmPcaError> for PortError {
    fn from(error: AcmPcaError) -> Self {
        match error {
            AcmPcaError::Unavailable {
                retry_after_secs, ..
            } => PortError::Unavailable {
                what: WHAT.into(),
                retry_after_secs,
            },
            other => PortError::Internal(other.to_string()),
        }
    }
}

fn sdk_error<E>(operation: &'static str, error: &SdkError<E>) -> AcmPcaError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if is_throttling(error.code()) {
        return AcmPcaError::Unavailable {
            operation,
            cause: error.code().unwrap_or_default().to_owned(),
            retry_after_secs: 1,
        };
    }
    AcmPcaError::Sdk {
        operation,
        message: DisplayErrorContext(error).to_string(),
    }
}

// ---------------------------------------------------------------------------------
// Request building (pure, unit-tested)
// ---------------------------------------------------------------------------------

/// The `IdempotencyToken` for the flow's `idempotency_key`: the first 32 hex digits of
/// its SHA-256, so any key fits PCA's limit.
pub fn idempotency_token(idempotency_key: &str) -> String {
    let mut token = hex::encode(Sha256::digest(idempotency_key.as_bytes()));
    token.truncate(32);
    token
}

/// The `(ValidityNotBefore, Validity)` of a certificate requested at `now` under
/// `profile`: both `ABSOLUTE` Unix seconds, `now - backdate_secs` and
/// `now + validity_secs` (the profile's window, [`IssuanceProfile::validity_at`]). Not
/// `DAYS`: PCA counts days from when it signs, not from the request time.
///
/// # Errors
/// [`AcmPcaError::InvalidInput`] for a window that is empty or before the epoch.
pub fn validity_of(
    profile: &IssuanceProfile,
    now: UnixTime,
) -> Result<(Validity, Validity), AcmPcaError> {
    let (not_before, not_after) = profile.validity_at(now);
    if not_before < 0 || not_after <= not_before {
        return Err(AcmPcaError::InvalidInput(format!(
            "validity window {not_before}..{not_after} is empty or before 1970"
        )));
    }
    let absolute = |value: i64| {
        Validity::builder()
            .r#type(ValidityPeriodType::Absolute)
            .value(value)
            .build()
            .map_err(|e| AcmPcaError::InvalidInput(e.to_string()))
    };
    Ok((absolute(not_before)?, absolute(not_after)?))
}

/// A serial as `RevokeCertificate` takes it: upper-case hex, bytes separated by `:`
/// (`0A:1B:...`), leading zero bytes dropped, padded to whole bytes. moto's stand-in only
/// matches this form (it formats serials with Python's `format(serial, "X")` and joins
/// pairs with `:`); an odd number of digits it splits from the left (`AB:C`), which no
/// byte-wise form matches, so such serials are not revocable on moto.
///
/// # Errors
/// [`AcmPcaError::InvalidInput`] for text that is not hex (`:` separators are accepted).
pub fn pca_serial(serial_hex: &str) -> Result<String, AcmPcaError> {
    let digits: String = serial_hex.chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(AcmPcaError::InvalidInput(format!(
            "serial {serial_hex:?} is not hex"
        )));
    }
    let trimmed = digits.trim_start_matches('0');
    let trimmed = if trimmed.is_empty() { "0" } else { trimmed };
    let mut padded = String::with_capacity(trimmed.len() + 1);
    if trimmed.len() % 2 == 1 {
        padded.push('0');
    }
    padded.push_str(&trimmed.to_ascii_uppercase());
    let pairs: Vec<&str> = padded
        .as_bytes()
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).unwrap_or_default())
        .collect();
    Ok(pairs.join(":"))
}

/// PCA's name for an RFC 5280 reason. PCA has no certificateHold.
///
/// # Errors
/// [`AcmPcaError::InvalidInput`] for certificateHold (and reasons PCA does not know).
pub fn pca_reason(reason: RevocationReason) -> Result<PcaRevocationReason, AcmPcaError> {
    Ok(match reason {
        RevocationReason::Unspecified => PcaRevocationReason::Unspecified,
        RevocationReason::KeyCompromise => PcaRevocationReason::KeyCompromise,
        RevocationReason::CaCompromise => PcaRevocationReason::CertificateAuthorityCompromise,
        RevocationReason::AffiliationChanged => PcaRevocationReason::AffiliationChanged,
        RevocationReason::Superseded => PcaRevocationReason::Superseded,
        RevocationReason::CessationOfOperation => PcaRevocationReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn => PcaRevocationReason::PrivilegeWithdrawn,
        other => {
            return Err(AcmPcaError::InvalidInput(format!(
                "ACM Private CA has no revocation reason {}",
                other.name()
            )))
        }
    })
}

/// The `ApiPassthrough` of a device certificate: the subject CN = `device_id` and nothing
/// else, whatever the CSR's subject holds (O, OU, ...); extensions are the template's.
pub fn api_passthrough(device_id: &str) -> ApiPassthrough {
    ApiPassthrough::builder()
        .subject(Asn1Subject::builder().common_name(device_id).build())
        .build()
}

/// The wait before attempt `attempt + 1` (`attempt` from 0): `first · 2^attempt`, capped.
pub fn backoff(first: Duration, max: Duration, attempt: u32) -> Duration {
    first
        .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max)
}

/// The DER of the first `CERTIFICATE` block of `pem`.
fn der_of_certificate_pem(pem: &str) -> Result<Vec<u8>, AcmPcaError> {
    use base64::Engine as _;
    let begin = "-----BEGIN CERTIFICATE-----";
    let end = "-----END CERTIFICATE-----";
    let start = pem
        .find(begin)
        .ok_or_else(|| AcmPcaError::Corrupt("no PEM CERTIFICATE block".into()))?
        + begin.len();
    let stop = pem[start..]
        .find(end)
        .ok_or_else(|| AcmPcaError::Corrupt("unterminated PEM CERTIFICATE block".into()))?
        + start;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| AcmPcaError::Corrupt(format!("PEM body is not base64: {e}")))
}

/// The signed certificate PCA returned, parsed: serial (lower-case hex, no leading
/// zeros, as the local CA records it), validity, and the certified key.
fn parse_signed(pem: &str, issuer: &str) -> Result<(SignedCertificate, DeviceKey), AcmPcaError> {
    let der = der_of_certificate_pem(pem)?;
    let certificate = x509_cert::Certificate::from_der(&der)
        .map_err(|e| AcmPcaError::Corrupt(format!("not an X.509 certificate: {e}")))?;
    let tbs = &certificate.tbs_certificate;
    let serial = tbs.serial_number.as_bytes();
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    let time = |t: x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs())
            .map_err(|_| AcmPcaError::Corrupt("validity out of range".into()))
    };
    let spki = tbs
        .subject_public_key_info
        .to_der()
        .map_err(|e| AcmPcaError::Corrupt(format!("subjectPublicKeyInfo: {e}")))?;
    let key = DeviceKey::from_spki_der(&spki)
        .map_err(|e| AcmPcaError::Corrupt(format!("certified key: {e}")))?;
    let mut text = pem.trim().to_owned();
    text.push('\n');
    Ok((
        SignedCertificate {
            serial: hex::encode(&serial[start..]),
            issuer: issuer.to_owned(),
            not_before: time(tbs.validity.not_before)?,
            not_after: time(tbs.validity.not_after)?,
            pem: text,
            der,
        },
        key,
    ))
}

// ---------------------------------------------------------------------------------
// The authority
// ---------------------------------------------------------------------------------

/// Device certificates from an ACM Private CA (see the module docs).
///
/// Cheap to clone: clones share the SDK client and the cached chain.
#[derive(Debug, Clone)]
pub struct AcmPcaAuthority {
    client: Client,
    config: Arc<AcmPcaConfig>,
    chain: Arc<OnceCell<String>>,
}

impl AcmPcaAuthority {
    /// The authority of `config`'s CA, through `client`.
    pub fn new(client: Client, config: AcmPcaConfig) -> Self {
        Self {
            client,
            config: Arc::new(config),
            chain: Arc::new(OnceCell::new()),
        }
    }

    /// An authority whose client takes the standard AWS configuration: environment
    /// (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL` for a stand-in such as moto),
    /// profile, or the role of the Lambda or instance.
    pub async fn from_env(config: AcmPcaConfig) -> Self {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::new(Client::new(&sdk), config)
    }

    /// The configuration.
    pub fn config(&self) -> &AcmPcaConfig {
        &self.config
    }

    /// The SDK client (for tests and tools).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Issues a certificate for the CSR `csr_der` of `device_id` under `profile`, at `now`,
    /// with `idempotency_token` (see [`idempotency_token`]): `IssueCertificate` with
    /// [`END_ENTITY_CLIENT_AUTH_TEMPLATE`] and the subject CN = `device_id` alone
    /// ([`api_passthrough`]), ECDSA-SHA-256 and the profile's validity ([`validity_of`]), then `GetCertificate` until it is signed or the deadline passes.
    ///
    /// The CSR is checked first against `profile.csr` (structure, self-signature, device
    /// id), and its CN must be `device_id`; the certificate PCA returns must certify the
    /// CSR's key.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when PCA throttles or is still signing at the deadline
    /// (retry with the same token); [`PortError::Internal`] for a bad CSR or token, or
    /// any other failure.
    pub async fn issue_csr(
        &self,
        csr_der: &[u8],
        device_id: &str,
        profile: &IssuanceProfile,
        now: UnixTime,
        idempotency_token: &str,
    ) -> Result<SignedCertificate, PortError> {
        Ok(self
            .try_issue_csr(csr_der, device_id, profile, now, idempotency_token)
            .await?)
    }

    async fn try_issue_csr(
        &self,
        csr_der: &[u8],
        device_id: &str,
        profile: &IssuanceProfile,
        now: UnixTime,
        token: &str,
    ) -> Result<SignedCertificate, AcmPcaError> {
        if token.is_empty() || token.len() > MAX_IDEMPOTENCY_TOKEN_LEN {
            return Err(AcmPcaError::InvalidInput(format!(
                "idempotency token must be 1 to {MAX_IDEMPOTENCY_TOKEN_LEN} characters, not {}",
                token.len()
            )));
        }
        // Callers outside the flow hand in raw bytes: check them as the flow would.
        let verified = CsrVerifier::new(profile.csr.clone())
            .verify_der(csr_der)
            .map_err(|e| AcmPcaError::InvalidInput(format!("CSR: {e}")))?;
        if verified.device_id != device_id {
            return Err(AcmPcaError::InvalidInput(format!(
                "CSR names {:?}, not device {device_id:?}",
                verified.device_id
            )));
        }
        self.sign_verified(&verified, profile, now, token).await
    }

    /// `IssueCertificate` and the wait, for a request already verified under `profile`
    /// (the flow verified it: checking the signature again would be the same work twice).
    async fn sign_verified(
        &self,
        verified: &VerifiedCsr,
        profile: &IssuanceProfile,
        now: UnixTime,
        token: &str,
    ) -> Result<SignedCertificate, AcmPcaError> {
        let csr_der = verified.der.as_slice();
        let (not_before, not_after) = validity_of(profile, now)?;
        let issued = self
            .client
            .issue_certificate()
            .certificate_authority_arn(&self.config.certificate_authority_arn)
            .csr(Blob::new(provisioner_app::pem::encode(
                "CERTIFICATE REQUEST",
                csr_der,
            )))
            .signing_algorithm(SigningAlgorithm::Sha256Withecdsa)
            .template_arn(END_ENTITY_CLIENT_AUTH_TEMPLATE)
            .api_passthrough(api_passthrough(&verified.device_id))
            .validity(not_after)
            .validity_not_before(not_before)
            .idempotency_token(token)
            .send()
            .await
            .map_err(|e| sdk_error("IssueCertificate", &e))?;
        let certificate_arn = issued.certificate_arn().ok_or_else(|| AcmPcaError::Sdk {
            operation: "IssueCertificate",
            message: "no CertificateArn in the answer".into(),
        })?;
        let pem = self.wait_for_certificate(certificate_arn).await?;
        let (signed, key) = parse_signed(&pem, self.config.certificate_authority_id())?;
        if key != verified.public_key {
            return Err(AcmPcaError::Corrupt(format!(
                "certificate {certificate_arn} does not certify the CSR's key"
            )));
        }
        Ok(signed)
    }

    /// The certificate `certificate_arn`, PEM: `GetCertificate`, retried while in progress
    /// or throttled until the deadline (what [`AcmPcaAuthority::issue_csr`] does after
    /// `IssueCertificate`).
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when still in progress or throttled at the deadline;
    /// [`PortError::Internal`] for any other failure.
    pub async fn certificate(&self, certificate_arn: &str) -> Result<String, PortError> {
        Ok(self.wait_for_certificate(certificate_arn).await?)
    }

    async fn wait_for_certificate(&self, certificate_arn: &str) -> Result<String, AcmPcaError> {
        let config = &self.config;
        let deadline = tokio::time::Instant::now() + config.deadline;
        let mut attempt = 0u32;
        loop {
            let result = self
                .client
                .get_certificate()
                .certificate_authority_arn(&config.certificate_authority_arn)
                .certificate_arn(certificate_arn)
                .send()
                .await;
            let cause = match result {
                Ok(output) => {
                    return output.certificate().map(str::to_owned).ok_or_else(|| {
                        AcmPcaError::Corrupt("GetCertificate answered no certificate".into())
                    })
                }
                Err(error) => match error.code() {
                    Some(code @ "RequestInProgressException") => code.to_owned(),
                    code if is_throttling(code) => code.unwrap_or_default().to_owned(),
                    _ => return Err(sdk_error("GetCertificate", &error)),
                },
            };
            let wait = backoff(config.first_backoff, config.max_backoff, attempt);
            let now = tokio::time::Instant::now();
            if now + wait > deadline {
                return Err(AcmPcaError::Unavailable {
                    operation: "GetCertificate",
                    cause: format!("{cause} after {attempt} retries"),
                    retry_after_secs: config.max_backoff.as_secs().max(1),
                });
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// The chain devices need, PEM: the CA's certificate, then its chain (none for a
    /// root), from `GetCertificateAuthorityCertificate`; fetched once, then cached.
    ///
    /// # Errors
    /// As [`AcmPcaAuthority::issue_csr`] (nothing is cached on failure).
    pub async fn chain_pem(&self) -> Result<String, PortError> {
        let chain = self
            .chain
            .get_or_try_init(|| async {
                let output = self
                    .client
                    .get_certificate_authority_certificate()
                    .certificate_authority_arn(&self.config.certificate_authority_arn)
                    .send()
                    .await
                    .map_err(|e| sdk_error("GetCertificateAuthorityCertificate", &e))?;
                let mut pem = String::new();
                for part in [output.certificate(), output.certificate_chain()]
                    .into_iter()
                    .flatten()
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                {
                    pem.push_str(part);
                    pem.push('\n');
                }
                if pem.is_empty() {
                    return Err(AcmPcaError::Corrupt(
                        "GetCertificateAuthorityCertificate answered no certificate".into(),
                    ));
                }
                Ok::<_, AcmPcaError>(pem)
            })
            .await?;
        Ok(chain.clone())
    }

    /// Revokes the certificate with serial `serial_hex` (any case, `:` separators
    /// accepted; sent as [`pca_serial`] formats it) for `reason`: `RevokeCertificate`.
    /// PCA lists it on the CRL (when the CA has one configured; moto makes none). A
    /// certificate already revoked is not an error.
    ///
    /// # Errors
    /// [`PortError::Internal`] for a serial that is not hex, for certificateHold (PCA
    /// has none), or a failure; [`PortError::Unavailable`] when throttled.
    pub async fn revoke(
        &self,
        serial_hex: &str,
        reason: RevocationReason,
    ) -> Result<(), PortError> {
        let serial = pca_serial(serial_hex)?;
        let reason = pca_reason(reason)?;
        let result = self
            .client
            .revoke_certificate()
            .certificate_authority_arn(&self.config.certificate_authority_arn)
            .certificate_serial(serial)
            .revocation_reason(reason)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Already revoked: what was asked holds (revocation is idempotent here).
            Err(e) if e.code() == Some("RequestAlreadyProcessedException") => Ok(()),
            Err(e) => Err(sdk_error("RevokeCertificate", &e).into()),
        }
    }
}

impl CertificateAuthority for AcmPcaAuthority {
    async fn issue(
        &self,
        request: &VerifiedCsr,
        idempotency_key: &str,
        profile: &IssuanceProfile,
        now: UnixTime,
    ) -> Result<SignedCertificate, PortError> {
        Ok(self
            .sign_verified(request, profile, now, &idempotency_token(idempotency_key))
            .await?)
    }

    async fn chain_pem(&self) -> Result<String, PortError> {
        AcmPcaAuthority::chain_pem(self).await
    }

    /// Revokes, reason superseded, each certificate this CA issued; one another CA issued
    /// (before a CA rotation) is left to that CA's rotation.
    async fn retire(&self, superseded: &[CertificateRecord]) -> Result<(), PortError> {
        let own = self.config.certificate_authority_id();
        for certificate in superseded.iter().filter(|c| c.issuer == own) {
            self.revoke(&certificate.serial, RevocationReason::Superseded)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn validity_is_the_profiles_window_in_absolute_seconds() {
        let profile = IssuanceProfile::default();
        let now = 1_800_000_000;
        let (not_before, not_after) = validity_of(&profile, now).unwrap();
        assert_eq!(not_before.r#type(), &ValidityPeriodType::Absolute);
        assert_eq!(not_before.value(), now - 300);
        assert_eq!(not_after.r#type(), &ValidityPeriodType::Absolute);
        assert_eq!(not_after.value(), now + 365 * 24 * 3600);

        let short = IssuanceProfile {
            validity_secs: 3600,
            backdate_secs: 0,
            ..IssuanceProfile::default()
        };
        let (nb, na) = validity_of(&short, now).unwrap();
        assert_eq!((nb.value(), na.value()), (now, now + 3600));
    }

    #[test]
    fn empty_or_pre_epoch_validity_is_refused() {
        let empty = IssuanceProfile {
            validity_secs: -400,
            ..IssuanceProfile::default()
        };
        assert!(matches!(
            validity_of(&empty, 1_800_000_000),
            Err(AcmPcaError::InvalidInput(_))
        ));
        assert!(matches!(
            validity_of(&IssuanceProfile::default(), 10),
            Err(AcmPcaError::InvalidInput(_))
        ));
    }

    #[test]
    fn tokens_repeat_for_the_same_key_and_fit_pca() {
        let key = "ab".repeat(32);
        let first = idempotency_token(&key);
        assert_eq!(first, idempotency_token(&key));
        assert_ne!(first, idempotency_token(&"cd".repeat(32)));
        assert_eq!(first.len(), 32);
        assert!(first.len() <= MAX_IDEMPOTENCY_TOKEN_LEN);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn serials_are_upper_case_colon_hex_bytes() {
        assert_eq!(pca_serial("0a1b2c").unwrap(), "0A:1B:2C");
        assert_eq!(pca_serial("00a1b2").unwrap(), "A1:B2");
        assert_eq!(pca_serial("a1b2c").unwrap(), "0A:1B:2C");
        assert_eq!(pca_serial("A1:B2").unwrap(), "A1:B2");
        assert_eq!(pca_serial("00").unwrap(), "00");
        assert!(pca_serial("").is_err());
        assert!(pca_serial("xyz").is_err());
    }

    #[test]
    fn reasons_map_to_pca_names_and_hold_is_refused() {
        assert_eq!(
            pca_reason(RevocationReason::KeyCompromise).unwrap(),
            PcaRevocationReason::KeyCompromise
        );
        assert_eq!(
            pca_reason(RevocationReason::Superseded).unwrap(),
            PcaRevocationReason::Superseded
        );
        assert_eq!(
            pca_reason(RevocationReason::CaCompromise).unwrap(),
            PcaRevocationReason::CertificateAuthorityCompromise
        );
        assert!(pca_reason(RevocationReason::CertificateHold).is_err());
    }

    #[test]
    fn backoff_doubles_from_the_first_wait_and_is_capped() {
        let first = Duration::from_millis(200);
        let max = Duration::from_secs(2);
        let waits: Vec<u128> = (0..6).map(|a| backoff(first, max, a).as_millis()).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(backoff(first, max, 100), max);
    }

    #[test]
    fn the_passthrough_subject_is_the_device_id_alone() {
        let passthrough = api_passthrough("sensor-0042");
        let subject = passthrough.subject().unwrap();
        assert_eq!(subject.common_name(), Some("sensor-0042"));
        assert_eq!(
            subject,
            &Asn1Subject::builder().common_name("sensor-0042").build()
        );
        assert!(passthrough.extensions().is_none());
        assert!(END_ENTITY_CLIENT_AUTH_TEMPLATE.ends_with("_APIPassthrough/V1"));
    }

    #[test]
    fn the_ca_id_is_the_arns_last_part() {
        let config = AcmPcaConfig::new(
            "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/11111111-2222",
        );
        assert_eq!(config.certificate_authority_id(), "11111111-2222");
    }

    #[test]
    fn unavailable_becomes_the_ports_unavailable() {
        let port: PortError = AcmPcaError::Unavailable {
            operation: "GetCertificate",
            cause: "RequestInProgressException".into(),
            retry_after_secs: 2,
        }
        .into();
        assert_eq!(
            port,
            PortError::Unavailable {
                what: "ACM Private CA".into(),
                retry_after_secs: 2
            }
        );
    }
}
