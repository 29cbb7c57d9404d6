//! What the moto modules (`moto`, `admin_moto`) share: the check that `AWS_ENDPOINT_URL`
//! is a local stand-in, and devices imported into DynamoDB as a manifest import writes
//! them.

use provisioner_app::import::{ImportItem, ImportOptions};
use provisioner_core::{DeviceKey, ManifestRecord};
use provisioner_store_aws::dynamodb::DynamoDbRegistry;

use crate::common::START;

/// Panics unless `AWS_ENDPOINT_URL` points at a local stand-in: the tests never create
/// tables in a real account by accident.
pub fn moto_endpoint() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL must point at moto: run scripts/test-aws.sh");
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "AWS_ENDPOINT_URL={endpoint} is not a local stand-in"
    );
}

/// Imports `devices` into `registry`'s tables at [`START`], one manifest line each;
/// every one must be imported.
pub async fn import_devices(registry: &DynamoDbRegistry, devices: &[(&str, &DeviceKey)]) {
    let items = devices
        .iter()
        .enumerate()
        .map(|(line, (id, key))| ImportItem {
            source: "manifest.csv",
            entry: Ok(ManifestRecord {
                device_id: (*id).to_owned(),
                public_key: (*key).clone(),
                line: line + 1,
            }),
        });
    let options = ImportOptions {
        now: START,
        ..ImportOptions::default()
    };
    let summary = registry.import(items, &options).await.unwrap();
    assert_eq!(summary.imported, devices.len() as u64);
}
