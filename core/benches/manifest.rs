//! CSV manifest reading speed: rows per second for SEC1-hex and base64-SPKI keys.
//!
//! `cargo bench -p provisioner-core --bench manifest`; after criterion's samples (10,000
//! rows each) it reads 1,000,000 rows of each encoding once and prints
//! `csv_<encoding>_rows_per_s=<n>` (the target: a million rows well under 10 s).

#![allow(clippy::expect_used)] // a benchmark with broken inputs should stop loudly

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use provisioner_core::{Curve, DeviceKey, ManifestReader};

/// Distinct keys to cycle through: deriving a million keys would dwarf the parse.
const KEY_POOL: u64 = 1024;
const LARGE: usize = 1_000_000;

#[derive(Clone, Copy)]
enum Encoding {
    Sec1Hex,
    SpkiBase64,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Self::Sec1Hex => "sec1_hex",
            Self::SpkiBase64 => "spki_base64",
        }
    }
}

fn key_pool(encoding: Encoding) -> Vec<String> {
    (1..=KEY_POOL)
        .map(|scalar| {
            let mut bytes = [0u8; 32];
            bytes[24..].copy_from_slice(&scalar.to_be_bytes());
            let secret = p256::SecretKey::from_slice(&bytes).expect("a valid scalar");
            let point = secret.public_key().to_encoded_point(false);
            match encoding {
                Encoding::Sec1Hex => hex::encode(point.as_bytes()),
                Encoding::SpkiBase64 => DeviceKey::from_sec1(Curve::P256, point.as_bytes())
                    .expect("a valid point")
                    .canonical(),
            }
        })
        .collect()
}

/// A CSV manifest of `rows` distinct devices, with a header.
fn manifest(rows: usize, keys: &[String]) -> Vec<u8> {
    let mut csv = String::with_capacity(rows * (keys[0].len() + 24));
    csv.push_str("device_id,public_key\n");
    for (i, key) in keys.iter().cycle().take(rows).enumerate() {
        csv.push_str(&format!("0123{i:012x}ee,{key}\n"));
    }
    csv.into_bytes()
}

/// Reads the whole manifest; every row must be a record.
fn read_all(reader: &ManifestReader, csv: &[u8]) -> usize {
    let mut records = 0;
    for item in reader.read(csv).expect("CSV never fails as a whole") {
        black_box(item.expect("every generated row is valid"));
        records += 1;
    }
    records
}

fn main() {
    let reader = ManifestReader::new();
    let encodings = [Encoding::Sec1Hex, Encoding::SpkiBase64];
    let pools: Vec<_> = encodings.iter().map(|&e| key_pool(e)).collect();

    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("manifest_csv");
    for (encoding, keys) in encodings.iter().zip(&pools) {
        let small = manifest(10_000, keys);
        group.throughput(Throughput::Elements(10_000));
        group.bench_function(encoding.name(), |b| b.iter(|| read_all(&reader, &small)));
    }
    group.finish();
    criterion.final_summary();

    // `cargo test --benches` runs this binary without --bench: skip the large run.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    for (encoding, keys) in encodings.iter().zip(&pools) {
        let large = manifest(LARGE, keys);
        let start = Instant::now();
        let records = read_all(&reader, &large);
        let elapsed = start.elapsed();
        assert_eq!(records, LARGE);
        println!(
            "csv {}: {LARGE} rows ({} MB) in {:.2} s",
            encoding.name(),
            large.len() / 1_000_000,
            elapsed.as_secs_f64()
        );
        println!(
            "csv_{}_rows_per_s={:.0}",
            encoding.name(),
            LARGE as f64 / elapsed.as_secs_f64()
        );
    }
}
