//! `provisioner serve --backend aws` in issuance mode iot-core, run as the real binary
//! against moto's server: IoT Core's `CreateCertificateFromCsr` copies the CSR's subject,
//! so a subject beyond the CN is refused (400 `subject_not_cn_only`) before IoT Core is
//! called (issue 11, invariant 3).
//!
//! Run by `scripts/test-aws.sh` (feature `aws`, moto started with `AWS_ENDPOINT_URL` and
//! dummy credentials set).

use std::path::Path;

use provisioner_store_aws::dynamodb::{DynamoDbRegistry, DynamoDbTables};
use serde_json::Value;

use super::support::{endpoint, ok_json, openssl, provisioner_in, serve_command, Served};

/// `provisioner serve --backend aws` in issuance mode iot-core, in the one `region`.
fn serve_iot_core(dir: &Path, prefix: &str, region: &str) -> Served {
    let mut command = serve_command(dir, prefix, region);
    command.env("PROVISIONER_ISSUANCE_MODE", "iot-core");
    Served::spawn(command)
}

#[tokio::test]
async fn in_iot_core_mode_a_subject_beyond_the_cn_is_refused_before_iot_core() {
    use base64::Engine as _;
    endpoint();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let prefix = format!("iotcn-{:016x}-", rand::random::<u64>());
    let region = std::env::var("AWS_REGION").unwrap();
    let served = serve_iot_core(dir, &prefix, &region);
    ok_json(&provisioner_in(
        dir,
        &prefix,
        &region,
        &["device", "fleet", "--count", "1", "--out", "fleet"],
    ));
    ok_json(&provisioner_in(
        dir,
        &prefix,
        &region,
        &["import", "--backend", "aws", "--json", "fleet/manifest.csv"],
    ));
    let manifest = std::fs::read_to_string(dir.join("fleet/manifest.csv")).unwrap();
    let device = manifest.lines().nth(1).unwrap().split(',').next().unwrap();

    // The device's own key, but a subject IoT Core would copy O and OU from.
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &format!("fleet/{device}.key.pem"),
            "-subj",
            &format!("/O=Acme Devices/OU=Sensors/CN={device}"),
            "-outform",
            "DER",
            "-out",
            "asks.csr.der",
        ],
    );
    let header = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(dir.join("asks.csr.der")).unwrap());
    let client = reqwest::Client::new();
    let answer = client
        .post(format!("{}/new", served.url))
        .header("device-csr", header)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "subject_not_cn_only", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("O, OU"),
        "{body}"
    );

    // Nothing was signed: the device has no certificate.
    let registry = DynamoDbRegistry::from_env(DynamoDbTables::with_prefix(&prefix)).await;
    let held = provisioner_core::DeviceRegistry::certificates_of(&registry, device, 0)
        .await
        .unwrap();
    assert!(held.is_empty(), "{held:?}");
}
