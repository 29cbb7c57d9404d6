//! The certificate authority: signs device certificates (the on-disk CA locally, ACM
//! Private CA or IoT Core on AWS).

use std::future::Future;

use super::{CertificateRecord, PortError};
use crate::csr::VerifiedCsr;
use crate::issuance::{IssuanceProfile, UnixTime};

/// A certificate the CA has just signed, not yet recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCertificate {
    /// The certificate DER.
    pub der: Vec<u8>,
    /// The certificate PEM.
    pub pem: String,
    /// Serial number, hex.
    pub serial: String,
    /// The issuing CA's id.
    pub issuer: String,
    /// Start of validity.
    pub not_before: UnixTime,
    /// End of validity.
    pub not_after: UnixTime,
}

/// Signs certificates (the on-disk CA locally, ACM Private CA or IoT Core on AWS).
pub trait CertificateAuthority: Send + Sync {
    /// Issues a certificate for a verified request under `profile`, at `now`: subject CN =
    /// device id, the request's key, nothing else taken from the CSR.
    ///
    /// `idempotency_key` is the same for a retry of one issuance and differs for the
    /// device's next one (the flow derives it from the CSR fingerprint and the device's
    /// recent certificates): a CA that deduplicates requests (ACM Private CA's idempotency
    /// token) returns the certificate it already minted instead of a second one.
    fn issue(
        &self,
        request: &VerifiedCsr,
        idempotency_key: &str,
        profile: &IssuanceProfile,
        now: UnixTime,
    ) -> impl Future<Output = Result<SignedCertificate, PortError>> + Send;

    /// The chain devices need: the issuing intermediate, then the root, PEM.
    fn chain_pem(&self) -> impl Future<Output = Result<String, PortError>> + Send;

    /// Revokes at the CA the certificates a new issuance superseded (already REVOKED in
    /// the registry). A CA whose revocation list is made from the registry (the local CA)
    /// has nothing to do; ACM Private CA is told, so its CRL lists them. Idempotent.
    fn retire(
        &self,
        superseded: &[CertificateRecord],
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        let _ = superseded;
        std::future::ready(Ok(()))
    }
}

impl<T: CertificateAuthority + ?Sized> CertificateAuthority for std::sync::Arc<T> {
    fn issue(
        &self,
        request: &VerifiedCsr,
        idempotency_key: &str,
        profile: &IssuanceProfile,
        now: UnixTime,
    ) -> impl Future<Output = Result<SignedCertificate, PortError>> + Send {
        (**self).issue(request, idempotency_key, profile, now)
    }

    fn chain_pem(&self) -> impl Future<Output = Result<String, PortError>> + Send {
        (**self).chain_pem()
    }

    fn retire(
        &self,
        superseded: &[CertificateRecord],
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        (**self).retire(superseded)
    }
}
