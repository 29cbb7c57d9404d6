//! Latent retrieval from S3: the certificate and its chain are put in a bucket, and the
//! device gets a pre-signed `GET` URL for them instead of the service's own signed route
//! (`GET /certificates/{id}?expires=&signature=`, [`provisioner_app::latent`]).
//!
//! [`S3RetrievalStore::publish`] puts `certificates/{certificate_id}.pem` (content type
//! `application/x-pem-file`, server-side encryption `AES256`) and pre-signs a `GET` of it.
//! Publishing the same certificate again overwrites the object with the same bytes, so a
//! retried request is harmless. The bucket is `PROVISIONER_RETRIEVAL_BUCKET`
//! ([`AwsSettings::retrieval_bucket`](super::config::AwsSettings::retrieval_bucket)); its
//! lifecycle rule (a day in `infra/template.yaml`), not this adapter, deletes old objects.
//!
//! # How long a URL lives
//!
//! A pre-signed URL stops working when the credentials that signed it expire, whatever
//! its `X-Amz-Expires` says. So the URL's lifetime is the requested TTL capped by
//! [`capped_ttl`]: at most [`MAX_PRESIGNED_TTL`] (SigV4's 7 days) and never past the
//! signing credentials' expiry, which is read from the credentials provider the store
//! was given (STS assume-role, web identity, SSO, the ECS and EC2 role providers report
//! one). The returned [`Retrieval::expires_at`] is the capped time, so the device is never
//! told a URL lives longer than it does. The URL is signed with exactly the credentials
//! whose expiry was read: the store keeps them ([`S3RetrievalStore::publish`] says when it
//! asks the provider again). The provider is passed explicitly because the SDK's client
//! does not reveal its own (`Config::credentials_provider` always answers `None`).
//!
//! Credentials from environment variables carry no expiry in the SDK, and that is how
//! Lambda hands its role's session credentials to a function (`AWS_SESSION_TOKEN`; no
//! expiry variable): there nothing can be capped, and only the caller's TTL bounds the
//! URL. Keep that TTL to minutes: a URL signed just before the session ends stops
//! working with it, before its `expires_at`. (Functions that get their credentials from
//! the container credentials endpoint, as SnapStart functions do, see the expiry and are
//! capped.)
//!
//! # Errors
//!
//! S3 throttling (`SlowDown`, or any HTTP 503) after the SDK's own retries is
//! [`PortError::Unavailable`] (retry after 1 s), and so are signing credentials that have
//! already expired; anything else is [`PortError::Internal`] with the SDK error's display,
//! which never holds credentials.
//!
//! # What the moto tests cannot show
//!
//! moto (`tests/s3_retrieval.rs`) stores the object and serves pre-signed URLs, but checks
//! neither their signature nor their expiry: the tests show the URL reaches the object
//! with the right body and content type and carries the capped `X-Amz-Expires`, not that
//! S3 would refuse it after `expires_at`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::config::{
    Credentials, IdentityCache, ProvideCredentials, SharedCredentialsProvider,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_s3::Client;
use provisioner_core::{PortError, UnixTime};
use tokio::sync::Mutex;

/// The longest lifetime SigV4 allows a pre-signed URL: 7 days.
pub const MAX_PRESIGNED_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The content type of the stored PEM (certificate, then the chain).
pub const PEM_CONTENT_TYPE: &str = "application/x-pem-file";

/// How soon the store may ask the credentials provider again when the credentials it holds
/// would cap a URL's lifetime (the provider may not have newer ones yet).
const REFRESH_INTERVAL_SECS: i64 = 60;

/// What the ports' `Unavailable` names.
const WHAT: &str = "the certificate store (S3)";

/// A published certificate: where the device fetches it, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retrieval {
    /// The pre-signed `GET` URL of the certificate + chain PEM.
    pub url: String,
    /// When the URL stops working, Unix seconds: `now` + the TTL as [`capped_ttl`] capped it.
    pub expires_at: UnixTime,
}

/// The object key of a certificate's PEM: `certificates/{certificate_id}.pem`.
pub fn object_key(certificate_id: &str) -> String {
    format!("certificates/{certificate_id}.pem")
}

/// The lifetime of a URL signed at `now` for `requested`: at most [`MAX_PRESIGNED_TTL`],
/// and ending no later than `credentials_expiry` (Unix seconds) when the signing
/// credentials expire. Zero when they have already expired.
pub fn capped_ttl(
    requested: Duration,
    now: UnixTime,
    credentials_expiry: Option<UnixTime>,
) -> Duration {
    let ttl = requested.min(MAX_PRESIGNED_TTL);
    match credentials_expiry {
        Some(expiry) => {
            let left = u64::try_from(expiry.saturating_sub(now)).unwrap_or(0);
            ttl.min(Duration::from_secs(left))
        }
        None => ttl,
    }
}

/// Whether credentials fetched at `fetched_at` and expiring at `expiry` should be fetched
/// again before signing a URL at `now` for `ttl`: always once expired; when they would
/// cap the URL, at most every [`REFRESH_INTERVAL_SECS`]; never when they do not expire.
fn needs_refresh(
    expiry: Option<UnixTime>,
    fetched_at: UnixTime,
    now: UnixTime,
    ttl: Duration,
) -> bool {
    let Some(expiry) = expiry else {
        return false;
    };
    let wanted_until = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
    expiry <= now || (expiry < wanted_until && now - fetched_at >= REFRESH_INTERVAL_SECS)
}

/// S3's "too much, too fast": error code `SlowDown`, or HTTP 503.
fn is_throttling(code: Option<&str>, status: Option<u16>) -> bool {
    matches!(code, Some("SlowDown")) || status == Some(503)
}

fn sdk_error<E>(operation: &str, error: &SdkError<E>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = error.raw_response().map(|r| r.status().as_u16());
    if is_throttling(error.code(), status) {
        return PortError::Unavailable {
            what: WHAT.into(),
            retry_after_secs: 1,
        };
    }
    PortError::Internal(format!(
        "S3 {operation} failed: {}",
        DisplayErrorContext(error)
    ))
}

fn unix_seconds(time: SystemTime) -> UnixTime {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Credentials the store signs with, and when it fetched them.
#[derive(Debug)]
struct SigningCredentials {
    credentials: Credentials,
    fetched_at: UnixTime,
}

/// Certificates for latent retrieval in an S3 bucket, fetched through pre-signed URLs
/// (see the module docs).
///
/// Cheap to clone: clones share the SDK client and the signing credentials.
#[derive(Debug, Clone)]
pub struct S3RetrievalStore {
    client: Client,
    bucket: String,
    /// Where the signing credentials come from (`None`: the environment had none).
    credentials: Option<SharedCredentialsProvider>,
    signing: Arc<Mutex<Option<SigningCredentials>>>,
}

impl S3RetrievalStore {
    /// A store putting certificates into `bucket` through `client` and signing URLs with
    /// credentials from `credentials` (normally the provider `client` was built with:
    /// `SdkConfig::credentials_provider`).
    pub fn new(
        client: Client,
        credentials: SharedCredentialsProvider,
        bucket: impl Into<String>,
    ) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            credentials: Some(credentials),
            signing: Arc::new(Mutex::new(None)),
        }
    }

    /// A store whose client takes the standard AWS configuration: environment
    /// (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL` for a stand-in such as moto),
    /// profile, or the role of the Lambda or instance. With `AWS_ENDPOINT_URL` (or
    /// `AWS_ENDPOINT_URL_S3`) set, requests and URLs are path-style
    /// (`http://127.0.0.1:PORT/BUCKET/KEY`): a stand-in on an IP address or `localhost`
    /// has no per-bucket host names.
    pub async fn from_env(bucket: impl Into<String>) -> Self {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let stand_in = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
        let config = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(stand_in)
            .build();
        Self {
            client: Client::from_conf(config),
            bucket: bucket.into(),
            credentials: sdk.credentials_provider(),
            signing: Arc::new(Mutex::new(None)),
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The SDK client (for tests and tools).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Puts `chain_pem` (the certificate, then its chain) as
    /// [`object_key`]`(certificate_id)` with content type [`PEM_CONTENT_TYPE`] and
    /// server-side encryption `AES256`, then returns a URL pre-signed at `now` for `ttl`,
    /// capped by [`capped_ttl`] to the signing credentials' expiry. Publishing the same
    /// certificate again overwrites it with the same bytes and returns a new URL.
    ///
    /// The signing credentials come from the client's credentials provider and are kept:
    /// they are fetched again once expired, or (at most once a minute) when they would
    /// cut the URL short. The checks happen before the upload, so a refused publish has
    /// stored nothing.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when S3 throttles (`SlowDown`, 503) past the SDK's
    /// retries, or when the signing credentials have expired and the provider has no
    /// newer ones; [`PortError::Internal`] for a certificate id that cannot name an
    /// object, no credentials, or any other failure.
    pub async fn publish(
        &self,
        certificate_id: &str,
        chain_pem: &str,
        ttl: Duration,
        now: UnixTime,
    ) -> Result<Retrieval, PortError> {
        // Ids are hex digests; anything else (a `/`, a `..`) would name another object.
        if certificate_id.is_empty()
            || certificate_id.len() > 200
            || !certificate_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(PortError::Internal(format!(
                "certificate id {certificate_id:?} cannot name an S3 object \
                 (letters, digits, `-`, `_` only)"
            )));
        }
        let credentials = self.signing_credentials(ttl, now).await?;
        let expiry = credentials.expiry().map(unix_seconds);
        let ttl = capped_ttl(ttl, now, expiry);
        if ttl.is_zero() {
            return Err(PortError::Unavailable {
                what: "the S3 signing credentials (expired)".into(),
                retry_after_secs: 1,
            });
        }

        let key = object_key(certificate_id);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(chain_pem.as_bytes().to_vec()))
            .content_type(PEM_CONTENT_TYPE)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .send()
            .await
            .map_err(|e| sdk_error("PutObject", &e))?;

        let start = UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0));
        let presigning = PresigningConfig::builder()
            .start_time(start)
            .expires_in(ttl)
            .build()
            .map_err(|e| PortError::Internal(format!("S3 pre-signing: {e}")))?;
        // Sign with the very credentials whose expiry capped the TTL; no cache for them
        // (they are static here, and each would take a partition of the client's cache).
        let signer = aws_sdk_s3::config::Builder::default()
            .credentials_provider(credentials)
            .identity_cache(IdentityCache::no_cache());
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .customize()
            .config_override(signer)
            .presigned(presigning)
            .await
            .map_err(|e| sdk_error("GetObject pre-signing", &e))?;
        Ok(Retrieval {
            url: request.uri().to_owned(),
            expires_at: now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
        })
    }

    /// The credentials to sign with, from the store or (see [`needs_refresh`]) fresh
    /// from the provider.
    async fn signing_credentials(
        &self,
        ttl: Duration,
        now: UnixTime,
    ) -> Result<Credentials, PortError> {
        let mut held = self.signing.lock().await;
        if let Some(signing) = held.as_ref() {
            let expiry = signing.credentials.expiry().map(unix_seconds);
            if !needs_refresh(expiry, signing.fetched_at, now, ttl) {
                return Ok(signing.credentials.clone());
            }
        }
        let provider = self.credentials.as_ref().ok_or_else(|| {
            PortError::Internal("no AWS credentials to sign retrieval URLs with".into())
        })?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| PortError::Internal(format!("loading the S3 signing credentials: {e}")))?;
        *held = Some(SigningCredentials {
            credentials: credentials.clone(),
            fetched_at: now,
        });
        Ok(credentials)
    }
}

impl S3RetrievalStore {
    /// The store of [`AwsSettings::retrieval_bucket`](crate::config::AwsSettings::retrieval_bucket) as the device router takes it
    /// (`DeviceApi::certificate_store` in `provisioner-http`), or
    /// `None` when no bucket is configured (latent delivery then uses the signed route).
    pub async fn for_settings(
        settings: &crate::config::AwsSettings,
    ) -> Option<Arc<dyn provisioner_app::latent::CertificateStore>> {
        let bucket = settings.retrieval_bucket.as_ref()?;
        Some(Arc::new(Self::from_env(bucket.clone()).await))
    }
}

impl provisioner_app::latent::CertificateStore for S3RetrievalStore {
    fn publish<'a>(
        &'a self,
        certificate_id: &'a str,
        pem: &'a str,
        ttl_secs: i64,
        now: UnixTime,
    ) -> provisioner_app::latent::PublishFuture<'a> {
        Box::pin(async move {
            let ttl = Duration::from_secs(u64::try_from(ttl_secs.max(1)).unwrap_or(1));
            let retrieval = S3RetrievalStore::publish(self, certificate_id, pem, ttl, now).await?;
            Ok(provisioner_app::latent::Publication {
                url: retrieval.url,
                expires_at: retrieval.expires_at,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = 1_800_000_000;
    const FIFTEEN_MINUTES: Duration = Duration::from_secs(900);

    #[test]
    fn credentials_without_expiry_leave_the_ttl_as_asked() {
        assert_eq!(capped_ttl(FIFTEEN_MINUTES, NOW, None), FIFTEEN_MINUTES);
    }

    #[test]
    fn credentials_expiring_sooner_cap_the_ttl_to_their_expiry() {
        assert_eq!(
            capped_ttl(FIFTEEN_MINUTES, NOW, Some(NOW + 120)),
            Duration::from_secs(120)
        );
    }

    #[test]
    fn credentials_expiring_later_do_not_cap() {
        assert_eq!(
            capped_ttl(FIFTEEN_MINUTES, NOW, Some(NOW + 3600)),
            FIFTEEN_MINUTES
        );
    }

    #[test]
    fn expired_credentials_leave_no_lifetime() {
        assert_eq!(capped_ttl(FIFTEEN_MINUTES, NOW, Some(NOW)), Duration::ZERO);
        assert_eq!(
            capped_ttl(FIFTEEN_MINUTES, NOW, Some(NOW - 10)),
            Duration::ZERO
        );
    }

    #[test]
    fn no_url_lives_past_sigv4s_seven_days() {
        let month = Duration::from_secs(30 * 24 * 3600);
        assert_eq!(capped_ttl(month, NOW, None), MAX_PRESIGNED_TTL);
        assert_eq!(capped_ttl(month, NOW, Some(i64::MAX)), MAX_PRESIGNED_TTL);
    }

    #[test]
    fn credentials_are_fetched_again_once_expired_or_when_they_cap_but_not_too_often() {
        // Never for credentials that do not expire.
        assert!(!needs_refresh(None, NOW - 86_400, NOW, FIFTEEN_MINUTES));
        // Always once expired, however recently fetched.
        assert!(needs_refresh(Some(NOW), NOW, NOW, FIFTEEN_MINUTES));
        // Expiring after the URL would: kept.
        assert!(!needs_refresh(
            Some(NOW + 3600),
            NOW - 600,
            NOW,
            FIFTEEN_MINUTES
        ));
        // Would cap the URL: fetched again, but not within a minute of the last fetch.
        assert!(needs_refresh(
            Some(NOW + 300),
            NOW - 60,
            NOW,
            FIFTEEN_MINUTES
        ));
        assert!(!needs_refresh(
            Some(NOW + 300),
            NOW - 59,
            NOW,
            FIFTEEN_MINUTES
        ));
    }

    #[test]
    fn slow_down_and_503_are_throttling_other_failures_are_not() {
        assert!(is_throttling(Some("SlowDown"), Some(503)));
        assert!(is_throttling(Some("SlowDown"), None));
        assert!(is_throttling(None, Some(503)));
        assert!(!is_throttling(Some("AccessDenied"), Some(403)));
        assert!(!is_throttling(Some("NoSuchBucket"), Some(404)));
        assert!(!is_throttling(None, Some(500)));
    }

    #[test]
    fn objects_are_keyed_by_certificate_id_under_one_prefix() {
        assert_eq!(object_key("ab12"), "certificates/ab12.pem");
    }
}
