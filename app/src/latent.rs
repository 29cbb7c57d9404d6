//! Latent retrieval: instead of the certificate, the device gets a short-lived signed URL
//! it fetches (and may fetch again) to collect the chain.
//!
//! The signature is HMAC-SHA256 over the certificate id and the expiry, keyed by a secret
//! in the data directory, and is checked in constant time. A [`CertificateStore`] (S3 on
//! AWS) replaces the signed route with a URL of its own.

use hmac::{Hmac, Mac};
use provisioner_core::UnixTime;
use sha2::Sha256;

/// Why a retrieval URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RetrievalError {
    /// The signature does not match: the URL was altered or made elsewhere.
    #[error(
        "the retrieval URL's signature does not match: use the URL exactly as it was returned"
    )]
    BadSignature,
    /// The URL's expiry has passed.
    #[error("the retrieval URL has expired: request a certificate again")]
    Expired,
}

pub use provisioner_core::ports::{CertificateStore, Publication, PublishFuture};

/// Signs and checks retrieval URLs.
#[derive(Clone)]
pub struct UrlSigner {
    keyed: Hmac<Sha256>,
    ttl_secs: i64,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner")
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

/// The route of pending issuances (see [`UrlSigner::sign_pending`]).
pub const PENDING_PATH: &str = "/certificates/pending";

/// What a pending URL's signature covers: never a certificate id (those are hex), so one
/// kind of URL cannot pass for the other.
fn pending_subject(csr_base64url: &str) -> String {
    format!("pending:{csr_base64url}")
}

/// A signed retrieval path and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPath {
    /// `/certificates/{id}?expires=...&signature=...`
    pub path_and_query: String,
    /// Expiry, Unix seconds.
    pub expires_at: UnixTime,
}

impl UrlSigner {
    /// How long the URLs live, in seconds.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// A signer with `key` whose URLs live `ttl_secs`.
    ///
    /// # Errors
    /// Only if the HMAC implementation refuses the key length (HMAC itself takes any).
    pub fn new(key: &[u8], ttl_secs: i64) -> Result<Self, hmac::digest::InvalidLength> {
        Ok(Self {
            keyed: <Hmac<Sha256> as Mac>::new_from_slice(key)?,
            ttl_secs,
        })
    }

    fn mac(&self, certificate_id: &str, expires_at: UnixTime) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(certificate_id.as_bytes());
        mac.update(b"\n");
        mac.update(expires_at.to_string().as_bytes());
        mac
    }

    /// The retrieval path for a certificate, valid from `now` for the signer's lifetime.
    pub fn sign(&self, certificate_id: &str, now: UnixTime) -> SignedPath {
        let expires_at = now + self.ttl_secs;
        let signature = hex::encode(self.mac(certificate_id, expires_at).finalize().into_bytes());
        SignedPath {
            path_and_query: format!(
                "/certificates/{certificate_id}?expires={expires_at}&signature={signature}"
            ),
            expires_at,
        }
    }

    /// The retrieval path of an issuance the CA could not finish in time: it carries the
    /// request (`csr`, base64url of its DER), so fetching it retries the whole request,
    /// which the CA's idempotency key turns into the certificate it was signing.
    pub fn sign_pending(&self, csr_base64url: &str, now: UnixTime) -> SignedPath {
        let expires_at = now + self.ttl_secs;
        let signature = hex::encode(
            self.mac(&pending_subject(csr_base64url), expires_at)
                .finalize()
                .into_bytes(),
        );
        SignedPath {
            path_and_query: format!(
                "{PENDING_PATH}?csr={csr_base64url}&expires={expires_at}&signature={signature}"
            ),
            expires_at,
        }
    }

    /// Checks a pending-issuance retrieval request, as [`UrlSigner::verify`].
    ///
    /// # Errors
    /// As [`UrlSigner::verify`].
    pub fn verify_pending(
        &self,
        csr_base64url: &str,
        expires_at: UnixTime,
        signature_hex: &str,
        now: UnixTime,
    ) -> Result<(), RetrievalError> {
        self.verify(
            &pending_subject(csr_base64url),
            expires_at,
            signature_hex,
            now,
        )
    }

    /// Checks a retrieval request.
    ///
    /// # Errors
    /// [`RetrievalError::BadSignature`] for a signature that does not match (compared in
    /// constant time), [`RetrievalError::Expired`] after the expiry.
    pub fn verify(
        &self,
        certificate_id: &str,
        expires_at: UnixTime,
        signature_hex: &str,
        now: UnixTime,
    ) -> Result<(), RetrievalError> {
        let signature = hex::decode(signature_hex).map_err(|_| RetrievalError::BadSignature)?;
        self.mac(certificate_id, expires_at)
            .verify_slice(&signature)
            .map_err(|_| RetrievalError::BadSignature)?;
        if now >= expires_at {
            return Err(RetrievalError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(path: &str) -> (String, i64, String) {
        let (route, query) = path.split_once('?').unwrap();
        let id = route.trim_start_matches("/certificates/").to_owned();
        let mut expires = 0;
        let mut signature = String::new();
        for pair in query.split('&') {
            match pair.split_once('=').unwrap() {
                ("expires", v) => expires = v.parse().unwrap(),
                ("signature", v) => signature = v.to_owned(),
                _ => {}
            }
        }
        (id, expires, signature)
    }

    #[test]
    fn a_signed_url_verifies_until_it_expires() {
        let signer = UrlSigner::new(b"secret", 600).unwrap();
        let signed = signer.sign("abc", 1000);
        let (id, expires, signature) = parts(&signed.path_and_query);
        assert_eq!(signed.expires_at, 1600);
        assert_eq!(signer.verify(&id, expires, &signature, 1599), Ok(()));
        assert_eq!(
            signer.verify(&id, expires, &signature, 1600),
            Err(RetrievalError::Expired)
        );
    }

    #[test]
    fn tampering_with_id_expiry_or_signature_is_refused() {
        let signer = UrlSigner::new(b"secret", 600).unwrap();
        let (id, expires, signature) = parts(&signer.sign("abc", 1000).path_and_query);
        assert_eq!(
            signer.verify("abd", expires, &signature, 1000),
            Err(RetrievalError::BadSignature)
        );
        assert_eq!(
            signer.verify(&id, expires + 3600, &signature, 1000),
            Err(RetrievalError::BadSignature)
        );
        let mut flipped = signature.clone();
        flipped.replace_range(0..1, if signature.starts_with('0') { "1" } else { "0" });
        assert_eq!(
            signer.verify(&id, expires, &flipped, 1000),
            Err(RetrievalError::BadSignature)
        );
        assert_eq!(
            signer.verify(&id, expires, "zz", 1000),
            Err(RetrievalError::BadSignature)
        );
        let other = UrlSigner::new(b"other", 600).unwrap();
        assert_eq!(
            other.verify(&id, expires, &signature, 1000),
            Err(RetrievalError::BadSignature)
        );
    }
}
