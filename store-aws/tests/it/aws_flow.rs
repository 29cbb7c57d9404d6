//! The whole device flow on the AWS adapter set ([`AwsAdapters`]) against moto's server:
//! the device router over DynamoDB, ACM Private CA and IoT Core in two regions, as the
//! issuer Lambda and `provisioner serve --backend aws` run it.
//!
//! Run by `scripts/test-aws.sh` (moto on 127.0.0.1, `AWS_ENDPOINT_URL`, dummy
//! credentials). What moto cannot show is not claimed here (TOOLCHAIN.md): it ignores the
//! PCA template, validity and idempotency token (those are unit tests of the adapter and
//! the flow), and produces no CRL.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use aws_sdk_iot::types::CertificateStatus as IotStatus;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use http_body_util::BodyExt;
use provisioner_app::flow::{FlowSettings, Provisioner};
use provisioner_app::import::{ImportItem, ImportOptions};
use provisioner_core::{
    CertificateAuthority, CertificateStatus, DeviceRegistry, IssuanceProfile, IssuanceRateLimit,
    ManifestRecord,
};
use provisioner_http::api::{router, DeviceApi};
use provisioner_store_aws::acm_pca::pca_serial;
use provisioner_store_aws::adapters::AwsAdapters;
use provisioner_store_aws::ca::IssuingCaStore;
use provisioner_store_aws::config::AwsSettings;
use serde_json::Value;
use tower::ServiceExt;

const SERVING: &str = "us-east-1";
const OTHER: &str = "eu-west-1";

use provisioner_testkit::moto;

use crate::support::{self, iot};

async fn sdk() -> aws_config::SdkConfig {
    support::sdk()
        .await
        .to_builder()
        .region(aws_config::Region::new(SERVING))
        .build()
}

/// The `device-csr` header (base64 DER) of a new device key's CSR made by openssl.
fn device_csr(dir: &Path, device_id: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(moto::device_csr(dir, device_id))
}

struct Deployment {
    settings: AwsSettings,
    ca_arn: String,
    api: Arc<DeviceApi<AwsAdapters>>,
}

/// Tables with a prefix of this test's own, a root CA recorded as the issuing CA in the
/// config table, two regions, `device_id` imported with the key of `header`'s CSR.
async fn deploy(renew_within_secs: i64, device_id: &str, header: &str) -> Deployment {
    deploy_with_store(renew_within_secs, device_id, header, None).await
}

async fn deploy_with_store(
    renew_within_secs: i64,
    device_id: &str,
    header: &str,
    certificate_store: Option<Arc<dyn provisioner_app::latent::CertificateStore>>,
) -> Deployment {
    let sdk = sdk().await;
    let prefix = format!("flow{:08x}-", rand::random::<u32>());
    let settings = AwsSettings::from_vars(
        &[
            ("AWS_REGION", SERVING),
            ("PROVISIONER_REGIONS", &format!("{SERVING},{OTHER}")),
            ("PROVISIONER_TABLE_PREFIX", &prefix),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    )
    .unwrap();
    let ports = AwsAdapters::with_sdk_config(&sdk, &settings).unwrap();
    ports.registry.create_tables().await.unwrap();
    ports.things.create_registrations_table().await.unwrap();
    let store = IssuingCaStore::new(aws_sdk_dynamodb::Client::new(&sdk), settings.config_table());
    store.create_config_table().await.unwrap();
    let ca_arn = moto::pca_root(&aws_sdk_acmpca::Client::new(&sdk)).await;
    store.set_current(None, &ca_arn, 1).await.unwrap();

    let csr = base64::engine::general_purpose::STANDARD
        .decode(header)
        .unwrap();
    let verified = provisioner_core::CsrVerifier::default()
        .verify_der(&csr)
        .unwrap();
    let summary = ports
        .registry
        .import(
            [ImportItem {
                source: "manifest.csv",
                entry: Ok(ManifestRecord {
                    device_id: device_id.to_owned(),
                    public_key: verified.public_key,
                    line: 1,
                }),
            }],
            &ImportOptions {
                now: 1,
                ..ImportOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(summary.imported, 1, "{summary:?}");

    let flow = FlowSettings {
        profile: IssuanceProfile {
            renew_within_secs,
            ..IssuanceProfile::default()
        },
        rate_limit: IssuanceRateLimit { per_hour: 10 },
        failures_per_minute: 100,
        endpoint: "iot.example:8883".into(),
        claim_wait: provisioner_app::flow::FlowSettings::DEFAULT_CLAIM_WAIT,
    };
    let api = Arc::new(
        DeviceApi::new(
            Provisioner::new(ports, flow),
            b"flow test key",
            600,
            "http://127.0.0.1:9",
        )
        .unwrap()
        .with_certificate_store(certificate_store),
    );
    Deployment {
        settings,
        ca_arn,
        api,
    }
}

async fn post_new(api: &Arc<DeviceApi<AwsAdapters>>, header: &str) -> (StatusCode, Value) {
    let response = router(api.clone())
        .oneshot(
            Request::post("/new")
                .header("device-csr", header)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

async fn iot_status(client: &aws_sdk_iot::Client, certificate_id: &str) -> IotStatus {
    support::iot_certificate_status(client, certificate_id)
        .await
        .unwrap()
}

/// `openssl verify` of the answer's certificate against its chain.
fn openssl_verifies(dir: &Path, answer: &Value) -> bool {
    let chain = dir.join("chain.pem");
    let certificate = dir.join("certificate.pem");
    std::fs::write(&chain, answer["caChainPem"].as_str().unwrap()).unwrap();
    std::fs::write(&certificate, answer["certificatePem"].as_str().unwrap()).unwrap();
    let output = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&chain)
        .arg(&certificate)
        .output()
        .unwrap();
    output.status.success()
}

#[tokio::test]
async fn a_device_is_issued_by_pca_registered_in_both_regions_and_answered_again() {
    let dir = tempfile::tempdir().unwrap();
    let device_id = format!("flow-{:08x}", rand::random::<u32>());
    let header = device_csr(dir.path(), &device_id);
    let deployment = deploy(30 * 86_400, &device_id, &header).await;

    let (status, first) = post_new(&deployment.api, &header).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["endpoint"], "iot.example:8883");
    assert!(
        openssl_verifies(dir.path(), &first),
        "openssl verify failed"
    );
    let certificate_id = first["certificateId"].as_str().unwrap().to_owned();

    // The registry recorded it, issued by the CA the config table names.
    let ports = deployment.api.provisioner.ports();
    let record = ports
        .registry
        .certificate(&certificate_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, CertificateStatus::Active);
    assert_eq!(
        record.issuer,
        provisioner_store_aws::ca::ca_id(&deployment.ca_arn)
    );

    // The serving region held it before the answer; the other once its background
    // registration is done. Both: the certificate ACTIVE, the thing with it as principal.
    ports.things.wait_for_background().await;
    let sdk = sdk().await;
    for region in [SERVING, OTHER] {
        let client = iot(&sdk, region);
        assert_eq!(
            iot_status(&client, &certificate_id).await,
            IotStatus::Active,
            "{region}"
        );
        let principals = client
            .list_thing_principals()
            .thing_name(&device_id)
            .send()
            .await
            .unwrap();
        assert!(
            principals
                .principals()
                .iter()
                .any(|arn| arn.ends_with(&certificate_id)),
            "{region}: {principals:?}"
        );
        let policies = client
            .list_attached_policies()
            .target(principals.principals()[0].clone())
            .send()
            .await
            .unwrap();
        assert!(
            policies
                .policies()
                .iter()
                .any(|p| p.policy_name() == Some(deployment.settings.iot_policy.as_str())),
            "{region}: {policies:?}"
        );
    }
    let rows = ports
        .things
        .registrations_of(&certificate_id)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");

    // Outside the renewal window the same certificate comes back.
    let (status, again) = post_new(&deployment.api, &header).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["certificateId"], first["certificateId"]);
}

#[tokio::test]
async fn inside_the_renewal_window_the_superseded_certificate_is_revoked_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let device_id = format!("flow-{:08x}", rand::random::<u32>());
    let header = device_csr(dir.path(), &device_id);
    // A renewal window as long as the validity: every request renews.
    let deployment = deploy(365 * 86_400, &device_id, &header).await;
    let ports = deployment.api.provisioner.ports();

    let (status, first) = post_new(&deployment.api, &header).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    ports.things.wait_for_background().await;
    let (status, second) = post_new(&deployment.api, &header).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_ne!(second["certificateId"], first["certificateId"]);
    ports.things.wait_for_background().await;

    let old = first["certificateId"].as_str().unwrap();
    let new = second["certificateId"].as_str().unwrap();
    let record = ports.registry.certificate(old).await.unwrap().unwrap();
    assert_eq!(record.status, CertificateStatus::Revoked);
    // ACM Private CA revoked the superseded certificate (so its CRL lists it), not the new one
    let current = ports.registry.certificate(new).await.unwrap().unwrap();
    let at_pca = moto::pca_revocations(&deployment.ca_arn).await;
    assert_eq!(
        at_pca
            .get(&pca_serial(&record.serial).unwrap())
            .map(String::as_str),
        Some("SUPERSEDED"),
        "{at_pca:?}"
    );
    assert!(!at_pca.contains_key(&pca_serial(&current.serial).unwrap()));
    let sdk = sdk().await;
    for region in [SERVING, OTHER] {
        let client = iot(&sdk, region);
        assert_eq!(
            iot_status(&client, old).await,
            IotStatus::Revoked,
            "{region}"
        );
        assert_eq!(
            iot_status(&client, new).await,
            IotStatus::Active,
            "{region}"
        );
    }
}

#[tokio::test]
async fn an_unknown_device_and_a_forged_csr_get_the_contracts_answers() {
    let dir = tempfile::tempdir().unwrap();
    let device_id = format!("flow-{:08x}", rand::random::<u32>());
    let header = device_csr(dir.path(), &device_id);
    let deployment = deploy(30 * 86_400, &device_id, &header).await;

    let stranger = device_csr(dir.path(), "flow-stranger");
    let (status, body) = post_new(&deployment.api, &stranger).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "unknown_device");

    // The registered id with another key: 403.
    let impostor_dir = tempfile::tempdir().unwrap();
    let impostor = device_csr(impostor_dir.path(), &device_id);
    let (status, body) = post_new(&deployment.api, &impostor).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "key_mismatch");
}

#[tokio::test]
async fn latent_delivery_answers_a_presigned_s3_url_that_returns_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let device_id = format!("flow-{:08x}", rand::random::<u32>());
    let header = device_csr(dir.path(), &device_id);
    let bucket = format!("flow-retrieval-{:08x}", rand::random::<u32>());
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk().await)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let store = provisioner_store_aws::s3::S3RetrievalStore::from_env(bucket).await;
    let deployment =
        deploy_with_store(30 * 86_400, &device_id, &header, Some(Arc::new(store))).await;

    let response = router(deployment.api.clone())
        .oneshot(
            Request::post("/new?delivery=url")
                .header("device-csr", &header)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let url = body["retrievalUrl"].as_str().unwrap();
    assert!(
        url.contains("X-Amz-Signature="),
        "not a pre-signed URL: {url}"
    );
    assert!(body["expiresAt"].as_str().unwrap().ends_with('Z'), "{body}");

    let fetched = reqwest::get(url).await.unwrap();
    assert_eq!(fetched.status(), 200);
    let pem = fetched.text().await.unwrap();
    // The certificate, then the chain: what openssl verifies.
    let answer = serde_json::json!({
        "certificatePem": pem,
        "caChainPem": deployment.api.provisioner.ports().authority.chain_pem().await.unwrap(),
    });
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2, "{pem}");
    assert!(
        openssl_verifies(dir.path(), &answer),
        "openssl verify failed"
    );
}
