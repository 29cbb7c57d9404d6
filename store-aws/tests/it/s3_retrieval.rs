//! The S3 latent-retrieval store against moto's server: the real SDK and wire protocol,
//! and the pre-signed URL fetched with a plain HTTP client, as a device fetches it.
//!
//! Run by `scripts/test-aws.sh`, which starts moto on 127.0.0.1 and sets
//! `AWS_ENDPOINT_URL`, dummy credentials and `AWS_REGION`. Each test creates its own
//! bucket under a random name, so the tests run in parallel.
//!
//! moto checks neither the signature nor the expiry of a pre-signed URL: these tests show
//! that the URL reaches the object with the right body and headers and carries the
//! lifetime the store promises (`X-Amz-Expires`), not that S3 would refuse it later.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_s3::types::ServerSideEncryption;
use provisioner_core::{PortError, UnixTime};
use provisioner_store_aws::s3::{object_key, S3RetrievalStore, PEM_CONTENT_TYPE};
use provisioner_testkit::moto::endpoint;

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBdevice\n-----END CERTIFICATE-----\n\
                   -----BEGIN CERTIFICATE-----\nMIIBissuer\n-----END CERTIFICATE-----\n";
const FIFTEEN_MINUTES: Duration = Duration::from_secs(900);

fn now() -> UnixTime {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn bucket_name() -> String {
    format!("test-retrieval-{:016x}", rand::random::<u64>())
}

async fn create_bucket(store: &S3RetrievalStore) {
    store
        .client()
        .create_bucket()
        .bucket(store.bucket())
        .send()
        .await
        .unwrap();
}

/// A store over a fresh bucket of its own, configured from the environment.
async fn store() -> S3RetrievalStore {
    endpoint();
    let store = S3RetrievalStore::from_env(bucket_name()).await;
    create_bucket(&store).await;
    store
}

/// A store over a fresh bucket whose client signs with `credentials` (for expiries the
/// environment's dummy credentials do not have).
async fn store_signing_with(credentials: Credentials) -> S3RetrievalStore {
    let sdk = crate::support::sdk().await;
    let provider = SharedCredentialsProvider::new(credentials);
    let config = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(true)
        .credentials_provider(provider.clone())
        .build();
    let client = aws_sdk_s3::Client::from_conf(config);
    let store = S3RetrievalStore::new(client, provider, bucket_name());
    create_bucket(&store).await;
    store
}

/// The value of query parameter `name` in `url`.
fn query_param(url: &str, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn fetch(url: &str) -> reqwest::Response {
    reqwest::Client::new().get(url).send().await.unwrap()
}

#[tokio::test]
async fn a_published_certificate_is_fetched_through_its_presigned_url() {
    // Given a store over a fresh bucket
    let store = store().await;
    let now = now();

    // When a certificate is published for 15 minutes
    let retrieval = store
        .publish("ab12cd34", PEM, FIFTEEN_MINUTES, now)
        .await
        .unwrap();

    // Then the URL is path-style on the stand-in, signed at `now` for 900 s
    let prefix = format!(
        "{}/{}/certificates/ab12cd34.pem?",
        endpoint(),
        store.bucket()
    );
    assert!(retrieval.url.starts_with(&prefix), "{}", retrieval.url);
    assert_eq!(retrieval.expires_at, now + 900);
    assert_eq!(
        query_param(&retrieval.url, "X-Amz-Expires").as_deref(),
        Some("900")
    );
    assert_eq!(
        query_param(&retrieval.url, "X-Amz-Algorithm").as_deref(),
        Some("AWS4-HMAC-SHA256")
    );
    let signed_at = time::OffsetDateTime::from_unix_timestamp(now).unwrap();
    let amz_date = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        signed_at.year(),
        u8::from(signed_at.month()),
        signed_at.day(),
        signed_at.hour(),
        signed_at.minute(),
        signed_at.second()
    );
    assert_eq!(
        query_param(&retrieval.url, "X-Amz-Date").as_deref(),
        Some(amz_date.as_str())
    );

    // and a plain HTTP GET of it, without credentials, returns the PEM as a PEM file
    let response = fetch(&retrieval.url).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap(),
        PEM_CONTENT_TYPE
    );
    assert_eq!(response.text().await.unwrap(), PEM);

    // and the object was stored encrypted (AES256) with that content type
    let head = store
        .client()
        .head_object()
        .bucket(store.bucket())
        .key(object_key("ab12cd34"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    assert_eq!(head.content_type(), Some(PEM_CONTENT_TYPE));
}

#[tokio::test]
async fn publishing_the_same_certificate_again_is_harmless() {
    // Given a published certificate
    let store = store().await;
    let now = now();
    let first = store
        .publish("ab12cd34", PEM, FIFTEEN_MINUTES, now)
        .await
        .unwrap();

    // When it is published again (a retried request), a little later
    let second = store
        .publish("ab12cd34", PEM, FIFTEEN_MINUTES, now + 5)
        .await
        .unwrap();

    // Then both URLs serve the same PEM, the later one lives from its own `now`,
    assert_eq!(second.expires_at, now + 5 + 900);
    for retrieval in [&first, &second] {
        let response = fetch(&retrieval.url).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), PEM);
    }
    // and the bucket holds one object for it
    let listed = store
        .client()
        .list_objects_v2()
        .bucket(store.bucket())
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, [object_key("ab12cd34")]);
}

#[tokio::test]
async fn credentials_expiring_before_the_ttl_cap_the_url_to_their_expiry() {
    // Given signing credentials that expire in 2 minutes (as assumed-role credentials do)
    let now = now();
    let expiry = UNIX_EPOCH + Duration::from_secs(u64::try_from(now + 120).unwrap());
    let credentials = Credentials::new(
        "testing",
        "testing",
        Some("session-token".into()),
        Some(expiry),
        "test",
    );
    let store = store_signing_with(credentials).await;

    // When a certificate is published for 15 minutes
    let retrieval = store
        .publish("ab12cd34", PEM, FIFTEEN_MINUTES, now)
        .await
        .unwrap();

    // Then the URL lives 2 minutes, signed with those session credentials, and works
    assert_eq!(retrieval.expires_at, now + 120);
    assert_eq!(
        query_param(&retrieval.url, "X-Amz-Expires").as_deref(),
        Some("120")
    );
    assert_eq!(
        query_param(&retrieval.url, "X-Amz-Security-Token").as_deref(),
        Some("session-token")
    );
    let response = fetch(&retrieval.url).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), PEM);
}

#[tokio::test]
async fn expired_signing_credentials_are_unavailable_and_store_nothing() {
    // Given signing credentials that expired a minute ago, and no newer ones
    let now = now();
    let expiry = UNIX_EPOCH + Duration::from_secs(u64::try_from(now - 60).unwrap());
    let credentials = Credentials::new("testing", "testing", None, Some(expiry), "test");
    let store = store_signing_with(credentials).await;

    // When a certificate is published
    let error = store
        .publish("ab12cd34", PEM, FIFTEEN_MINUTES, now)
        .await
        .unwrap_err();

    // Then the answer is "retry shortly", and nothing was uploaded
    assert!(matches!(error, PortError::Unavailable { .. }), "{error:?}");
    let listed = store
        .client()
        .list_objects_v2()
        .bucket(store.bucket())
        .send()
        .await
        .unwrap();
    assert!(listed.contents().is_empty(), "{:?}", listed.contents());
}

#[tokio::test]
async fn a_missing_bucket_is_an_internal_error_not_a_retry() {
    // Given a store whose bucket does not exist
    endpoint();
    let store = S3RetrievalStore::from_env(bucket_name()).await;

    // When a certificate is published
    let error = store
        .publish("ab12cd34", PEM, FIFTEEN_MINUTES, now())
        .await
        .unwrap_err();

    // Then it is an internal error naming S3's complaint
    match error {
        PortError::Internal(message) => {
            assert!(message.contains("NoSuchBucket"), "{message}");
            assert!(
                !message.contains("testing"),
                "credentials leaked: {message}"
            );
        }
        other => panic!("expected Internal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_certificate_id_that_would_name_another_object_is_refused() {
    let store = store().await;
    for id in ["", "../other", "a/b", "id.pem"] {
        let error = store
            .publish(id, PEM, FIFTEEN_MINUTES, now())
            .await
            .unwrap_err();
        assert!(matches!(error, PortError::Internal(_)), "{id:?}: {error:?}");
    }
}
