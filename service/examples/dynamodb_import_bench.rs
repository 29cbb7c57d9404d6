//! Rows per second of a manifest import into DynamoDB ([`DynamoDbRegistry::import`]):
//! N new devices (written), then the same N again (read and found unchanged).
//!
//! Against moto's server (the figures then measure moto, not DynamoDB):
//!
//! ```text
//! eval "$(bash scripts/moto.sh start)"
//! cargo run -p provisioner-service --features aws --release \
//!     --example dynamodb_import_bench -- 10000 4
//! bash scripts/moto.sh stop
//! ```
//!
//! Arguments: the number of devices (default 10000) and of batch requests in flight
//! (default 4). The client takes the standard AWS configuration, so without
//! `AWS_ENDPOINT_URL` it writes to the account's real DynamoDB: it creates on-demand
//! tables named `bench-<random>-devices` (and `-certificates`, `-audit`) and leaves them
//! for you to delete.

use std::error::Error;
use std::time::Instant;

use p256::elliptic_curve::sec1::ToEncodedPoint;
use provisioner_core::{Curve, DeviceKey, ManifestRecord};
use provisioner_service::aws::dynamodb::{
    DynamoDbRegistry, DynamoDbTables, ImportItem, ImportOptions,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let devices: u64 = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let concurrency: usize = args.next().map_or(Ok(4), |a| a.parse())?;

    // Distinct valid keys, cheaply: G, 2G, 3G, ...
    let generator = p256::ProjectivePoint::GENERATOR;
    let mut point = generator;
    let mut records = Vec::new();
    for i in 0..devices {
        let encoded = point.to_affine().to_encoded_point(false);
        records.push(ManifestRecord {
            device_id: format!("bench-{i:08}"),
            public_key: DeviceKey::from_sec1(Curve::P256, encoded.as_bytes())?,
            line: usize::try_from(i)? + 1,
        });
        point += generator;
    }

    let prefix = format!("bench-{:08x}-", rand::random::<u32>());
    let registry = DynamoDbRegistry::from_env(DynamoDbTables::with_prefix(&prefix))
        .await
        .with_import_concurrency(concurrency);
    registry.create_tables().await?;
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "AWS".into());
    println!(
        "{devices} devices into {prefix}devices at {endpoint}, batch requests in flight: {concurrency}"
    );

    let options = ImportOptions {
        now: 1_800_000_000,
        ..ImportOptions::default()
    };
    for pass in ["new", "unchanged"] {
        let items = records.iter().map(|r| ImportItem {
            source: "bench.csv",
            entry: Ok(r.clone()),
        });
        let start = Instant::now();
        let summary = registry.import(items, &options).await?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{pass:>9}: {} imported, {} unchanged in {secs:.2} s: {:.0} rows/s",
            summary.imported,
            summary.unchanged,
            devices as f64 / secs
        );
    }
    println!("{} devices registered", registry.count_devices().await?);
    Ok(())
}
