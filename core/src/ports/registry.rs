//! The device registry: devices, their certificates, and the per-device issuance claim
//! (SQLite locally, DynamoDB on AWS).

use std::future::Future;

use super::PortError;
use crate::issuance::{CertificateStatus, UnixTime};
use crate::key::DeviceKey;

/// A per-device issuance claim: while one request holds it, no other signs for that
/// device (one signing call per decision, whatever the concurrency, across processes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuanceClaim {
    /// The device it serialises.
    pub device_id: String,
    /// Random per request: only the holder may record under it or release it.
    pub holder: String,
    /// When it lapses if never released (a crashed holder), Unix seconds.
    pub expires_at: UnixTime,
}

/// What [`DeviceRegistry::claim_issuance`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This request holds the claim.
    Claimed(IssuanceClaim),
    /// Another request holds it until then.
    Held {
        /// When the other holder's claim lapses if it is never released.
        until: UnixTime,
    },
}

/// A registered device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The device id (the CSR's CN, the thing name).
    pub device_id: String,
    /// The key from the manufacturer's manifest.
    pub public_key: DeviceKey,
    /// Disabled devices get nothing.
    pub enabled: bool,
}

/// RFC 5280 revocation reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationReason {
    /// unspecified (0)
    Unspecified,
    /// keyCompromise (1)
    KeyCompromise,
    /// cACompromise (2)
    CaCompromise,
    /// affiliationChanged (3)
    AffiliationChanged,
    /// superseded (4): replaced by a newer certificate (rotation).
    Superseded,
    /// cessationOfOperation (5)
    CessationOfOperation,
    /// certificateHold (6)
    CertificateHold,
    /// privilegeWithdrawn (9)
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// Every reason, for listing them in help and errors.
    pub const ALL: [Self; 8] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::PrivilegeWithdrawn,
    ];

    /// The RFC 5280 name, e.g. `keyCompromise`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }

    /// The CRLReason code.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::CertificateHold => 6,
            Self::PrivilegeWithdrawn => 9,
        }
    }

    /// Reads an RFC 5280 name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(name))
    }
}

/// A certificate as the registry records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    /// Hex SHA-256 of the DER.
    pub certificate_id: String,
    /// The device it was issued to.
    pub device_id: String,
    /// Serial number, hex without separators.
    pub serial: String,
    /// Which CA issued it (the issuing CA's id in the registry).
    pub issuer: String,
    /// The certified key.
    pub public_key: DeviceKey,
    /// When it was issued (the rate limit counts these).
    pub issued_at: UnixTime,
    /// Start of validity (backdated from `issued_at`).
    pub not_before: UnixTime,
    /// End of validity.
    pub not_after: UnixTime,
    /// Registry status.
    pub status: CertificateStatus,
    /// When and why it was revoked.
    pub revoked: Option<(UnixTime, RevocationReason)>,
    /// The certificate, PEM.
    pub certificate_pem: String,
}

/// Where devices and their certificates are recorded (SQLite locally, DynamoDB on AWS).
pub trait DeviceRegistry: Send + Sync {
    /// The device, if registered.
    fn device(
        &self,
        device_id: &str,
    ) -> impl Future<Output = Result<Option<Device>, PortError>> + Send;

    /// The device's certificates that the next decision needs: every ACTIVE one (the
    /// re-issue policy), and every one issued at or after `issued_since` (the rate
    /// limit's window; `UnixTime::MAX` for none). Bounded, however long the history.
    fn certificates_of(
        &self,
        device_id: &str,
        issued_since: UnixTime,
    ) -> impl Future<Output = Result<Vec<CertificateRecord>, PortError>> + Send;

    /// One certificate by id.
    fn certificate(
        &self,
        certificate_id: &str,
    ) -> impl Future<Output = Result<Option<CertificateRecord>, PortError>> + Send;

    /// Takes the device's issuance claim for `holder` until `now + ttl_secs`, with one
    /// conditional write that succeeds only when no other holder's unexpired claim exists
    /// (shared by every process over the same storage).
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the backend is busy; [`PortError::Internal`] otherwise.
    fn claim_issuance(
        &self,
        device_id: &str,
        holder: &str,
        now: UnixTime,
        ttl_secs: i64,
    ) -> impl Future<Output = Result<ClaimOutcome, PortError>> + Send;

    /// Releases a claim. Idempotent; does nothing when `claim.holder` no longer holds it.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the backend is busy; [`PortError::Internal`] otherwise.
    fn release_claim(
        &self,
        claim: &IssuanceClaim,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Records a new ACTIVE certificate and, in the same atomic write: checks `claim` is
    /// still held by `claim.holder` (expired but not taken by another is fine), checks the
    /// issuer is still the current CA where the registry knows the CAs, marks `supersede`
    /// REVOKED (reason superseded, at `now`) and releases the claim. Returns once durable:
    /// only then may the device receive the certificate.
    ///
    /// # Errors
    /// [`PortError::ClaimLost`] when another holder took the claim;
    /// [`PortError::IssuerRetired`] when the certificate's issuer is no longer the current
    /// CA; [`PortError::Unavailable`] when busy; [`PortError::Internal`] otherwise.
    fn record_issuance(
        &self,
        certificate: CertificateRecord,
        supersede: Vec<String>,
        claim: &IssuanceClaim,
        now: UnixTime,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

// A shared adapter serves as its port: one SQLite registry is registry, thing registry
// and audit log at once.
impl<T: DeviceRegistry + ?Sized> DeviceRegistry for std::sync::Arc<T> {
    fn device(
        &self,
        device_id: &str,
    ) -> impl Future<Output = Result<Option<Device>, PortError>> + Send {
        (**self).device(device_id)
    }

    fn certificates_of(
        &self,
        device_id: &str,
        issued_since: UnixTime,
    ) -> impl Future<Output = Result<Vec<CertificateRecord>, PortError>> + Send {
        (**self).certificates_of(device_id, issued_since)
    }

    fn certificate(
        &self,
        certificate_id: &str,
    ) -> impl Future<Output = Result<Option<CertificateRecord>, PortError>> + Send {
        (**self).certificate(certificate_id)
    }

    fn claim_issuance(
        &self,
        device_id: &str,
        holder: &str,
        now: UnixTime,
        ttl_secs: i64,
    ) -> impl Future<Output = Result<ClaimOutcome, PortError>> + Send {
        (**self).claim_issuance(device_id, holder, now, ttl_secs)
    }

    fn release_claim(
        &self,
        claim: &IssuanceClaim,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        (**self).release_claim(claim)
    }

    fn record_issuance(
        &self,
        certificate: CertificateRecord,
        supersede: Vec<String>,
        claim: &IssuanceClaim,
        now: UnixTime,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        (**self).record_issuance(certificate, supersede, claim, now)
    }
}
