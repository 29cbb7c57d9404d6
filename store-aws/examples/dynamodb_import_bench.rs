//! Rows per second of a manifest import into DynamoDB ([`DynamoDbRegistry::import`]):
//! N new devices (written), then the same N again (read and found unchanged), with the
//! registered count checked after each pass.
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
//! and against dynalite, 100,000 devices: `bash scripts/bench-import-dynalite.sh`.
//!
//! Arguments: `[ROWS] [CONCURRENCY] [--keys K]`: the number of devices (default 10000),
//! of batch requests in flight (default 4), and of distinct keys (default one per
//! device). Making a key costs a field inversion, slow in a debug build: `--keys 1000`
//! cycles 1000 keys over unique ids, which costs the import the same per row (it parses
//! and canonicalises every key regardless, and keys need not be unique).
//!
//! It fails (exit 1) unless the first pass imports every row, the second finds every row
//! unchanged and writes nothing, and the table holds ROWS devices after each. Its last
//! lines are machine-readable: `import_rows_per_sec=`, `reimport_rows_per_sec=`,
//! `import_secs=`, `reimport_secs=`, `devices_registered=`.
//!
//! The client takes the standard AWS configuration, so without `AWS_ENDPOINT_URL` it
//! writes to the account's real DynamoDB: it creates on-demand tables named
//! `bench-<random>-devices` (and `-certificates`, `-audit`) and leaves them for you to
//! delete.

use std::error::Error;
use std::time::Instant;

use p256::elliptic_curve::sec1::ToEncodedPoint;
use provisioner_core::{Curve, DeviceKey, ManifestRecord};
use provisioner_store_aws::dynamodb::{
    DynamoDbRegistry, DynamoDbTables, ImportItem, ImportOptions,
};

/// The command line: positional ROWS and CONCURRENCY, then `--keys K`.
struct Args {
    devices: u64,
    concurrency: usize,
    keys: Option<u64>,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut positional = Vec::new();
    let mut keys = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--keys" {
            let value = args.next().ok_or("--keys needs a number")?;
            keys = Some(value.parse::<u64>()?.max(1));
        } else {
            positional.push(arg);
        }
    }
    if positional.len() > 2 {
        return Err("usage: dynamodb_import_bench [ROWS] [CONCURRENCY] [--keys K]".into());
    }
    let mut positional = positional.into_iter();
    Ok(Args {
        devices: positional.next().map_or(Ok(10_000), |a| a.parse())?,
        concurrency: positional.next().map_or(Ok(4), |a| a.parse())?,
        keys,
    })
}

/// Fails with `what` unless `holds`.
fn check(holds: bool, what: String) -> Result<(), Box<dyn Error>> {
    if holds {
        Ok(())
    } else {
        Err(what.into())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let Args {
        devices,
        concurrency,
        keys,
    } = parse_args()?;
    let distinct = keys.unwrap_or(devices).min(devices).max(1);

    // Distinct valid keys, cheaply: G, 2G, 3G, ...
    let generator = p256::ProjectivePoint::GENERATOR;
    let mut point = generator;
    let mut public_keys = Vec::new();
    for _ in 0..distinct {
        let encoded = point.to_affine().to_encoded_point(false);
        public_keys.push(DeviceKey::from_sec1(Curve::P256, encoded.as_bytes())?);
        point += generator;
    }
    let records: Vec<ManifestRecord> = (0..devices)
        .zip(public_keys.iter().cycle())
        .map(|(i, key)| {
            Ok(ManifestRecord {
                device_id: format!("bench-{i:08}"),
                public_key: key.clone(),
                line: usize::try_from(i)? + 1,
            })
        })
        .collect::<Result<_, Box<dyn Error>>>()?;

    let prefix = format!("bench-{:08x}-", rand::random::<u32>());
    let registry = DynamoDbRegistry::from_env(DynamoDbTables::with_prefix(&prefix))
        .await
        .with_import_concurrency(concurrency);
    let start = Instant::now();
    registry.create_tables().await?;
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "AWS".into());
    println!(
        "{devices} devices ({distinct} distinct keys) into {prefix}devices at {endpoint}, \
         tables ACTIVE in {:.1} s, batch requests in flight: {concurrency}",
        start.elapsed().as_secs_f64()
    );

    let options = ImportOptions {
        now: 1_800_000_000,
        ..ImportOptions::default()
    };
    let mut figures = Vec::new();
    for pass in ["import", "reimport"] {
        let items = records.iter().map(|r| ImportItem {
            source: "bench.csv",
            entry: Ok(r.clone()),
        });
        let start = Instant::now();
        let summary = registry.import(items, &options).await?;
        let secs = start.elapsed().as_secs_f64();
        let registered = registry.count_devices().await?;
        println!(
            "{pass:>9}: {} imported, {} unchanged, written: {} in {secs:.2} s: {:.0} rows/s; \
             {registered} devices registered",
            summary.imported,
            summary.unchanged,
            summary.written,
            devices as f64 / secs
        );
        check(
            summary.is_clean() && summary.written,
            format!("{pass}: not clean or not written: {summary:?}"),
        )?;
        let (imported, unchanged) = if pass == "import" {
            (devices, 0)
        } else {
            (0, devices)
        };
        check(
            summary.imported == imported && summary.unchanged == unchanged,
            format!(
                "{pass}: expected {imported} imported and {unchanged} unchanged, got {} and {}",
                summary.imported, summary.unchanged
            ),
        )?;
        check(
            registered == devices,
            format!("{pass}: {registered} devices registered, expected {devices}"),
        )?;
        figures.push((pass, secs));
    }
    for (pass, secs) in &figures {
        println!("{pass}_rows_per_sec={:.0}", devices as f64 / secs);
        println!("{pass}_secs={secs:.2}");
    }
    println!("devices_registered={}", registry.count_devices().await?);
    Ok(())
}
