//! How device certificates our CA signed enter IoT Core ([`CaRegistration`]): with the
//! issuing CA's certificate, which the PKI admin registered in every region, or without a
//! CA (multi-account registration).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use provisioner_core::ports::BoxFuture;
use provisioner_core::PortError;

use super::IotError;
#[cfg(doc)]
use super::IotThingRegistry;
#[cfg(doc)]
use provisioner_core::CertificateRecord;

/// What [`CaRegistration::from_fn`] returns: the issuing CA's certificate (or a chain
/// starting with it), PEM.
pub type CaCertificateFuture = BoxFuture<'static, Result<String, PortError>>;

/// Looks up the certificate of the CA that issued a device certificate, given
/// [`CertificateRecord::issuer`] (the CA id the registry recorded).
pub type CaCertificateSource = Arc<dyn Fn(&str) -> CaCertificateFuture + Send + Sync>;

/// How device certificates signed by our CA (ACM Private CA) enter IoT Core.
#[derive(Clone)]
pub enum CaRegistration {
    /// The issuing CA is registered in every region's IoT Core (the PKI admin's set-up):
    /// `RegisterCertificate` with the CA's certificate, the first PEM block of what the
    /// source returns for the certificate's issuer (so a chain is fine). After a CA
    /// rotation the source must still answer for the previous CA's id while its
    /// certificates are registered (pending regions, [`IotThingRegistry::retry_pending`]).
    Registered(CaCertificateSource),
    /// The CA is not registered (multi-account registration; devices connect with SNI):
    /// `RegisterCertificateWithoutCA`.
    Unregistered,
}

impl CaRegistration {
    /// [`CaRegistration::Registered`] with one CA whatever the issuer: the first
    /// certificate of `chain_pem`.
    ///
    /// # Errors
    /// [`IotError::Config`] when `chain_pem` holds no PEM certificate.
    pub fn fixed(chain_pem: &str) -> Result<Self, IotError> {
        let (block, _) = first_certificate(chain_pem)
            .map_err(|e| IotError::Config(format!("the CA certificate: {e}")))?;
        Ok(Self::Registered(Arc::new(move |_issuer: &str| {
            let block = block.clone();
            Box::pin(async move { Ok(block) })
        })))
    }

    /// [`CaRegistration::Registered`] with a lookup by issuer, e.g. the ACM PCA
    /// authority's cached `chain_pem()`, or a table of CA ids after a rotation.
    pub fn from_fn<F, Fut>(lookup: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, PortError>> + Send + 'static,
    {
        Self::Registered(Arc::new(move |issuer: &str| {
            Box::pin(lookup(issuer.to_owned()))
        }))
    }
}

impl fmt::Debug for CaRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Registered(_) => "CaRegistration::Registered(..)",
            Self::Unregistered => "CaRegistration::Unregistered",
        })
    }
}

/// The first `CERTIFICATE` block of `pem`: its text (normalised) and DER.
pub(super) fn first_certificate(pem: &str) -> Result<(String, Vec<u8>), String> {
    use base64::Engine as _;
    let begin = "-----BEGIN CERTIFICATE-----";
    let end = "-----END CERTIFICATE-----";
    let start = pem.find(begin).ok_or("no PEM CERTIFICATE block")? + begin.len();
    let stop = pem[start..]
        .find(end)
        .ok_or("unterminated PEM CERTIFICATE block")?
        + start;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(&body)
        .map_err(|e| format!("PEM body is not base64: {e}"))?;
    Ok((provisioner_app::pem::encode("CERTIFICATE", &der), der))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::iot::AMAZON_ROOT_CA_1_PEM;

    #[test]
    fn the_first_block_of_a_chain_is_the_ca_certificate() {
        let chain = format!(
            "{AMAZON_ROOT_CA_1_PEM}{}",
            provisioner_app::pem::encode("CERTIFICATE", b"second")
        );
        let (block, der) = first_certificate(&chain).unwrap();
        assert_eq!(block, AMAZON_ROOT_CA_1_PEM);
        assert_ne!(der, b"second");
        assert!(first_certificate("no pem here").is_err());
        assert!(CaRegistration::fixed("no pem here").is_err());
    }
}
