//! Latent delivery's store: where a certificate is left for the device to fetch through a
//! URL (`POST /new?delivery=url`; an S3 bucket on AWS).

use super::{BoxFuture, PortError};
use crate::issuance::UnixTime;

/// What a [`CertificateStore`] returns: where the device fetches its certificate, and
/// until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The URL the device fetches (no credentials needed).
    pub url: String,
    /// When it stops working, Unix seconds.
    pub expires_at: UnixTime,
}

/// The future a [`CertificateStore`] returns (boxed, so the store can be a trait object
/// chosen at run time).
pub type PublishFuture<'a> = BoxFuture<'a, Result<Publication, PortError>>;

/// Where latent delivery (`POST /new?delivery=url`) leaves a certificate for the device to
/// fetch: an S3 bucket on AWS. Without one, the answer is the service's own signed
/// retrieval route (`UrlSigner` in `provisioner-app`).
pub trait CertificateStore: Send + Sync {
    /// Stores `pem` (the certificate, then its chain) under `certificate_id` and answers
    /// a URL valid for at most `ttl_secs` from `now`. Idempotent.
    fn publish<'a>(
        &'a self,
        certificate_id: &'a str,
        pem: &'a str,
        ttl_secs: i64,
        now: UnixTime,
    ) -> PublishFuture<'a>;
}
