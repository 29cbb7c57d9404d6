//! Header-to-decision verification speed, and its ratio to OpenSSL's own ECDSA P-256
//! verify rate measured in the same run.
//!
//! `cargo bench -p provisioner-core --bench verify`; the last line is
//! `verify_ratio_vs_openssl=<x>` (the target is at least 0.8).

#![allow(clippy::expect_used)] // a benchmark with broken inputs should stop loudly

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::Criterion;
use provisioner_core::{CsrPolicy, CsrVerifier, SignatureBackend};

const VECTORS: &str = include_str!("../tests/vectors/vectors.json");
const MEASURE: Duration = Duration::from_secs(3);

fn good_header() -> String {
    let vectors: serde_json::Value = serde_json::from_str(VECTORS).expect("vectors parse");
    vectors["csr"]
        .as_array()
        .and_then(|all| all.iter().find(|v| v["name"] == "openssl_p256_der_b64"))
        .and_then(|v| v["header"].as_str())
        .expect("the openssl_p256_der_b64 vector")
        .to_owned()
}

/// Verifications per second on one thread, over `MEASURE`.
fn rate(verifier: &CsrVerifier, header: &str) -> f64 {
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < MEASURE {
        for _ in 0..100 {
            black_box(verifier.verify_header(black_box(header))).expect("the vector verifies");
        }
        count += 100;
    }
    count as f64 / start.elapsed().as_secs_f64()
}

/// `openssl speed ecdsap256`'s verify/s (single thread), or why it could not be read.
fn openssl_verify_rate() -> Result<f64, String> {
    let output = Command::new("openssl")
        .args([
            "speed",
            "-seconds",
            &MEASURE.as_secs().to_string(),
            "ecdsap256",
        ])
        .output()
        .map_err(|e| format!("openssl speed did not run: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    // " 256 bits ecdsa (nistp256)   0.0000s   0.0000s  69016.5  23876.3"
    stdout
        .lines()
        .find(|line| line.contains("(nistp256)"))
        .and_then(|line| line.split_whitespace().last())
        .and_then(|verify| verify.parse().ok())
        .ok_or_else(|| format!("no nistp256 line in openssl speed output:\n{stdout}"))
}

fn main() {
    let header = good_header();
    let ring = CsrVerifier::with_backend(CsrPolicy::default(), SignatureBackend::Ring);
    let portable = CsrVerifier::with_backend(CsrPolicy::default(), SignatureBackend::RustCrypto);

    let mut criterion = Criterion::default().configure_from_args();
    criterion.bench_function("verify_header/ring", |b| {
        b.iter(|| ring.verify_header(black_box(&header)))
    });
    criterion.bench_function("verify_header/rustcrypto", |b| {
        b.iter(|| portable.verify_header(black_box(&header)))
    });
    // Everything but the elliptic-curve arithmetic: the signature's DER is broken, so
    // ring refuses before any point multiplication.
    let mut der = provisioner_core::decode_header(&header).expect("the vector decodes");
    let last_sequence = der
        .iter()
        .rposition(|&b| b == 0x30)
        .expect("a signature SEQUENCE");
    der[last_sequence] = 0x31;
    criterion.bench_function("verify_der/parsing_only", |b| {
        b.iter(|| ring.verify_der(black_box(&der)))
    });
    criterion.final_summary();

    // `cargo test --benches` runs this binary without --bench: the checks above ran once
    // each, which is all a test run needs.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let openssl = match openssl_verify_rate() {
        Ok(rate) => rate,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let native = rate(&ring, &header);
    let pure = rate(&portable, &header);
    println!("openssl speed ecdsap256 verify/s: {openssl:.0}");
    println!("verify_header (ring) verify/s: {native:.0}");
    println!("verify_header (rustcrypto p256) verify/s: {pure:.0}");
    println!("verify_ratio_vs_openssl={:.2}", native / openssl);
}
