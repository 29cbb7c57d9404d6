//! The provisioning flow over the ports: verify, authorise, apply the re-issue policy and
//! the rate limit, issue, record, register, audit (docs/ARCHITECTURE.md, "The flow of
//! `POST /new`").
//!
//! It knows nothing of HTTP, SQLite or AWS; `provisioner_http::api` maps its answers to HTTP.

use provisioner_core::{
    AuditEvent, AuditLog, CertificateAuthority, CertificateRecord, CertificateStatus, Clock,
    CsrVerifier, DeviceRegistry, ErrorCode, HeldCertificate, IssuanceClaim, IssuanceProfile,
    IssuanceRateLimit, PortError, Refusal, ReissueDecision, ThingRegistry, UnixTime, VerifiedCsr,
};

use crate::claim::{self, Serialised};
use sha2::{Digest, Sha256};

use crate::failure_limit::FailureLimiter;

/// Why the flow gave no certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// The request was refused, for a reason the caller can act on.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The client address failed too often lately.
    #[error("too many failed requests from this address; retry after {retry_after_secs} s")]
    TooManyFailures {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Another request for the same device is being issued its certificate and did not
    /// finish within the flow's wait (503 with `Retry-After`).
    #[error("another request for this device is being issued its certificate; retry after {retry_after_secs} s")]
    IssuanceInProgress {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// A backend failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl FlowError {
    /// The stable code, for the audit log.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Refused(refusal) => refusal.code(),
            Self::TooManyFailures { .. } => "too_many_failures",
            Self::IssuanceInProgress { .. } | Self::Port(PortError::ClaimLost { .. }) => {
                "issuance_in_progress"
            }
            Self::Port(PortError::IssuerRetired { .. }) => "ca_rotated",
            Self::Port(PortError::Unavailable { .. }) => "ca_unavailable",
            Self::Port(_) => "internal_error",
        }
    }
}

/// What a device receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The issuing intermediate, then the root, PEM.
    pub ca_chain_pem: String,
    /// Hex SHA-256 of the certificate DER.
    pub certificate_id: String,
    /// End of validity.
    pub not_after: UnixTime,
    /// The MQTT endpoint the device connects to.
    pub endpoint: String,
    /// True when the device's current certificate was returned unchanged.
    pub returned_existing: bool,
}

/// The settings of the flow.
#[derive(Debug, Clone)]
pub struct FlowSettings {
    /// What certificates look like and when they renew.
    pub profile: IssuanceProfile,
    /// New certificates per device per hour.
    pub rate_limit: IssuanceRateLimit,
    /// Failed requests allowed per client address per minute (0 = unlimited).
    pub failures_per_minute: u32,
    /// The MQTT endpoint returned to devices.
    pub endpoint: String,
    /// How long a request waits while another request for the same device is being
    /// issued its certificate, before answering 503 with `Retry-After`.
    pub claim_wait: std::time::Duration,
}

impl FlowSettings {
    /// The default [`FlowSettings::claim_wait`]: a local CA signs in milliseconds, ACM
    /// Private CA usually within a few seconds.
    pub const DEFAULT_CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
}

/// A decision's outcome: the certificate, whether it was the device's current one
/// returned unchanged, and the certificates the new one superseded.
type Decided = (CertificateRecord, bool, Vec<CertificateRecord>);

/// One choice of adapter for every port: the local set, the AWS set, or test fakes.
pub trait Adapters: Send + Sync + 'static {
    /// Devices and certificates.
    type Registry: DeviceRegistry + 'static;
    /// The signer.
    type Authority: CertificateAuthority + 'static;
    /// Things and principals.
    type Things: ThingRegistry + 'static;
    /// Allow and deny records.
    type Audit: AuditLog + 'static;
    /// The time.
    type Clock: Clock + 'static;
}

/// The ports the flow drives.
#[derive(Debug)]
pub struct Ports<B: Adapters> {
    /// Devices and certificates.
    pub registry: B::Registry,
    /// The signer.
    pub authority: B::Authority,
    /// Things and principals.
    pub things: B::Things,
    /// Allow and deny records.
    pub audit: B::Audit,
    /// The time.
    pub clock: B::Clock,
}

/// The provisioning flow.
pub struct Provisioner<B: Adapters> {
    ports: Ports<B>,
    settings: FlowSettings,
    verifier: CsrVerifier,
    failures: FailureLimiter,
}

impl<B: Adapters> Provisioner<B> {
    /// A flow over `ports` with `settings`.
    pub fn new(ports: Ports<B>, settings: FlowSettings) -> Self {
        Self {
            verifier: CsrVerifier::new(settings.profile.csr.clone()),
            failures: FailureLimiter::new(settings.failures_per_minute),
            ports,
            settings,
        }
    }

    /// The ports, for the routes that read them directly (retrieval).
    pub fn ports(&self) -> &Ports<B> {
        &self.ports
    }

    /// `POST /new`: the whole decision for one `device-csr` header value (absent = `None`),
    /// audited whatever the outcome.
    ///
    /// # Errors
    /// [`FlowError::Refused`] with the refusal, [`FlowError::TooManyFailures`] when the
    /// client address has failed too often, [`FlowError::Port`] when a backend fails.
    pub async fn provision(
        &self,
        header: Option<&str>,
        remote_addr: Option<&str>,
    ) -> Result<Provisioned, FlowError> {
        let now = self.ports.clock.now();
        if let Some(address) = remote_addr {
            if let Some(retry_after_secs) = self.failures.blocked(address, now) {
                let error = FlowError::TooManyFailures { retry_after_secs };
                self.audit(now, None, remote_addr, None, Err(&error)).await;
                return Err(error);
            }
        }
        let mut device_id = None;
        let mut fingerprint = None;
        let decided = self
            .decide(header, now, &mut device_id, &mut fingerprint)
            .await;
        match decided {
            Ok((certificate, returned_existing, superseded)) => {
                // Registration (idempotent: it also heals one that failed after an earlier
                // record) and the audit record are awaited together, so they share a
                // group commit instead of waiting for two.
                let outcome = Ok((returned_existing, certificate.certificate_id.as_str()));
                let (registered, ()) = tokio::join!(
                    self.ports
                        .things
                        .register(&certificate.device_id, &certificate),
                    self.audit(now, device_id, remote_addr, fingerprint, outcome),
                );
                registered?;
                if !superseded.is_empty() {
                    self.retire(&certificate.device_id, &superseded).await;
                }
                self.answer(certificate, returned_existing).await
            }
            Err(error) => {
                if let (FlowError::Refused(_), Some(address)) = (&error, remote_addr) {
                    self.failures.record(address, now);
                }
                self.audit(now, device_id, remote_addr, fingerprint, Err(&error))
                    .await;
                Err(error)
            }
        }
    }

    /// Everything up to a recorded certificate: the one to return, whether it is the
    /// device's current one returned unchanged, and the certificates it superseded.
    async fn decide(
        &self,
        header: Option<&str>,
        now: UnixTime,
        device_id: &mut Option<String>,
        fingerprint: &mut Option<String>,
    ) -> Result<Decided, FlowError> {
        let request = self
            .verifier
            .verify_header(header.unwrap_or(""))
            .map_err(Refusal::from)?;
        *device_id = Some(request.device_id.clone());
        *fingerprint = Some(request.fingerprint.clone());

        let device = self
            .ports
            .registry
            .device(&request.device_id)
            .await?
            .ok_or_else(|| Refusal::UnknownDevice(request.device_id.clone()))?;
        if !device.enabled {
            return Err(Refusal::DeviceDisabled(device.device_id).into());
        }
        request.check_registered_key(&device.public_key)?;

        // The fast path, without a write: the device's current certificate.
        let held = self.held(&device.device_id, now).await?;
        if let Some(existing) = self.existing(&request, &held, now) {
            return Ok((existing, true, Vec::new()));
        }

        // A new certificate: one request per device signs at a time, in every process.
        let claimed = claim::serialise(
            &self.ports.registry,
            &self.ports.clock,
            &device.device_id,
            &request.public_key,
            &held,
            self.settings.claim_wait,
        )
        .await?;
        let claim = match claimed {
            Serialised::Claimed(claim) => claim,
            Serialised::Joined(joined) => return Ok((joined, true, Vec::new())),
            Serialised::StillHeld => {
                return Err(FlowError::IssuanceInProgress {
                    retry_after_secs: 1,
                })
            }
        };
        let issued = self.issue_under_claim(&request, &claim, now).await;
        if issued.is_err() {
            // A successful record released the claim; a failure leaves it to us.
            claim::release(&self.ports.registry, &claim).await;
        }
        issued
    }

    /// The device's certificates the decision needs. The last hour's are read even with
    /// the rate limit off: the idempotency key needs them.
    async fn held(
        &self,
        device_id: &str,
        now: UnixTime,
    ) -> Result<Vec<CertificateRecord>, PortError> {
        self.ports
            .registry
            .certificates_of(device_id, now - IssuanceRateLimit::WINDOW_SECS)
            .await
    }

    /// The certificate the re-issue policy returns unchanged, if any.
    fn existing(
        &self,
        request: &VerifiedCsr,
        held: &[CertificateRecord],
        now: UnixTime,
    ) -> Option<CertificateRecord> {
        match self.decision(request, held, now) {
            ReissueDecision::ReturnExisting { certificate_id } => held
                .iter()
                .find(|c| c.certificate_id == certificate_id)
                .cloned(),
            ReissueDecision::IssueNew { .. } => None,
        }
    }

    fn decision(
        &self,
        request: &VerifiedCsr,
        held: &[CertificateRecord],
        now: UnixTime,
    ) -> ReissueDecision {
        let held_view: Vec<HeldCertificate> = held
            .iter()
            .map(|c| HeldCertificate {
                certificate_id: c.certificate_id.clone(),
                public_key: c.public_key.clone(),
                status: c.status,
                not_after: c.not_after,
            })
            .collect();
        self.settings
            .profile
            .reissue_decision(&request.public_key, &held_view, now)
    }

    /// Decides again under the claim (another request may have issued before it was
    /// ours), checks the rate limit, signs and records. A rotation that retired the
    /// signing CA meanwhile makes the record refuse: the certificate is signed again,
    /// under the new CA, a bounded number of times.
    async fn issue_under_claim(
        &self,
        request: &VerifiedCsr,
        claim: &IssuanceClaim,
        now: UnixTime,
    ) -> Result<Decided, FlowError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let held = self.held(&request.device_id, now).await?;
            let supersede = match self.decision(request, &held, now) {
                ReissueDecision::ReturnExisting { certificate_id } => {
                    let existing = held
                        .into_iter()
                        .find(|c| c.certificate_id == certificate_id)
                        .ok_or_else(|| {
                            PortError::Internal("the returned certificate vanished".into())
                        })?;
                    claim::release(&self.ports.registry, claim).await;
                    return Ok((existing, true, Vec::new()));
                }
                ReissueDecision::IssueNew { supersede } => supersede,
            };
            let issued_at: Vec<UnixTime> = held.iter().map(|c| c.issued_at).collect();
            self.settings
                .rate_limit
                .check(&request.device_id, &issued_at, now)?;
            let signed = self
                .ports
                .authority
                .issue(
                    request,
                    &idempotency_key(&request.fingerprint, &held),
                    &self.settings.profile,
                    now,
                )
                .await?;
            let record = CertificateRecord {
                certificate_id: hex::encode(Sha256::digest(&signed.der)),
                device_id: request.device_id.clone(),
                serial: signed.serial,
                issuer: signed.issuer,
                public_key: request.public_key.clone(),
                issued_at: now,
                not_before: signed.not_before,
                not_after: signed.not_after,
                status: CertificateStatus::Active,
                revoked: None,
                certificate_pem: signed.pem,
            };
            let superseded = held
                .into_iter()
                .filter(|c| supersede.contains(&c.certificate_id))
                .collect();
            // Durable before the device sees it: a crash after this line leaves a
            // recorded certificate the device never got, never the reverse.
            match self
                .ports
                .registry
                .record_issuance(record.clone(), supersede, claim, now)
                .await
            {
                Ok(()) => return Ok((record, false, superseded)),
                Err(PortError::IssuerRetired { issuer }) if attempt < Self::SIGNING_ATTEMPTS => {
                    tracing::info!(device_id = %request.device_id, %issuer, "the signing CA was retired meanwhile; signing again under the current CA");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Signings per decision when rotations keep retiring the signing CA.
    const SIGNING_ATTEMPTS: u32 = 3;

    /// Tells the CA and the MQTT side about superseded certificates, which the registry
    /// already holds REVOKED. The device's new certificate is recorded and registered by
    /// now, so a failure here does not withhold it: it is logged with the certificate ids
    /// for the operator (`provisioner certs revoke` repeats the revocation).
    async fn retire(&self, device_id: &str, superseded: &[CertificateRecord]) {
        let (at_ca, at_broker) = tokio::join!(
            self.ports.authority.retire(superseded),
            self.ports.things.retire(device_id, superseded),
        );
        for (side, result) in [("CA", at_ca), ("thing registry", at_broker)] {
            if let Err(e) = result {
                let ids: Vec<&str> = superseded
                    .iter()
                    .map(|c| c.certificate_id.as_str())
                    .collect();
                tracing::error!(error = %e, device_id, superseded = ?ids, "the {side} did not revoke superseded certificates");
            }
        }
    }

    async fn answer(
        &self,
        certificate: CertificateRecord,
        returned_existing: bool,
    ) -> Result<Provisioned, FlowError> {
        Ok(Provisioned {
            ca_chain_pem: self.ports.authority.chain_pem().await?,
            certificate_pem: certificate.certificate_pem,
            certificate_id: certificate.certificate_id,
            not_after: certificate.not_after,
            endpoint: self.settings.endpoint.clone(),
            returned_existing,
        })
    }

    async fn audit(
        &self,
        at: UnixTime,
        device_id: Option<String>,
        remote_addr: Option<&str>,
        fingerprint: Option<String>,
        outcome: Result<(bool, &str), &FlowError>,
    ) {
        let (decision, code, certificate_id) = match outcome {
            Ok((true, id)) => ("allow", "returned".to_owned(), Some(id.to_owned())),
            Ok((false, id)) => ("allow", "issued".to_owned(), Some(id.to_owned())),
            Err(error) => ("deny", error.code().to_owned(), None),
        };
        let event = AuditEvent {
            at,
            device_id,
            decision,
            code,
            remote_addr: remote_addr.map(str::to_owned),
            fingerprint,
            certificate_id,
        };
        if let Err(e) = self.ports.audit.record(event).await {
            tracing::error!(error = %e, "the audit log refused an event");
        }
    }
}

/// The key a deduplicating CA (ACM Private CA's idempotency token) sees: the CSR's
/// fingerprint and the ids of the device's current and last hour's certificates. A retry
/// (the response was lost before the certificate was recorded) sends the same key and
/// gets the certificate already minted; once that certificate is recorded, the device's
/// next issuance (a renewal, or after a revocation) sends another key and gets a new one.
fn idempotency_key(fingerprint: &str, held: &[CertificateRecord]) -> String {
    let mut ids: Vec<&str> = held.iter().map(|c| c.certificate_id.as_str()).collect();
    ids.sort_unstable();
    let mut hasher = Sha256::new();
    hasher.update(fingerprint.as_bytes());
    for id in ids {
        hasher.update(b"\n");
        hasher.update(id.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(certificate_id: &str) -> CertificateRecord {
        CertificateRecord {
            certificate_id: certificate_id.into(),
            device_id: "d".into(),
            serial: "01".into(),
            issuer: "ca".into(),
            public_key: provisioner_core::DeviceKey::parse(
                "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEKxzv1M4V0MGZz6W8p2PzIU5qwsWRYSG4zwWp8Eu9Isd8PPiM4v96F0bi7Fs45ejsClKfh4IvbKwPDf4cXxUpKA==",
            )
            .unwrap(),
            issued_at: 0,
            not_before: 0,
            not_after: 1,
            status: CertificateStatus::Active,
            revoked: None,
            certificate_pem: String::new(),
        }
    }

    #[test]
    fn a_retry_keeps_the_idempotency_key_and_the_next_issuance_changes_it() {
        let first = idempotency_key("f1", &[record("a"), record("b")]);
        assert_eq!(first, idempotency_key("f1", &[record("b"), record("a")]));
        // The certificate minted for `first`, once recorded, is among the device's own.
        assert_ne!(
            first,
            idempotency_key("f1", &[record("a"), record("b"), record("c")])
        );
        assert_ne!(first, idempotency_key("f2", &[record("a"), record("b")]));
        assert_ne!(
            idempotency_key("f1", &[]),
            idempotency_key("f1", &[record("")])
        );
    }
}
