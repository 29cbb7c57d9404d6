//! Runs every vector made by independent tools (core/tests/vectors/generate.py) through
//! the native verifier, with both signature backends, and checks the expected decision.

#![cfg(all(not(target_arch = "wasm32"), feature = "p384"))]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop loudly on broken fixtures

use provisioner_core::{
    CsrPolicy, CsrVerifier, DeviceKey, ErrorBody, ErrorCode, SignatureBackend, VerifiedCsr,
};
use serde_json::{json, Value};

const VECTORS: &str = include_str!("vectors/vectors.json");

fn vectors(section: &str) -> Vec<Value> {
    let all: Value = serde_json::from_str(VECTORS).expect("vectors.json parses");
    all[section]
        .as_array()
        .expect("section is an array")
        .clone()
}

fn verifier(vector: &Value, backend: SignatureBackend) -> CsrVerifier {
    let policy = CsrPolicy {
        allow_p384: vector["allowP384"].as_bool().unwrap_or(false),
        subject_cn_only: vector["subjectCnOnly"].as_bool().unwrap_or(false),
        ..CsrPolicy::default()
    };
    CsrVerifier::with_backend(policy, backend)
}

fn outcome<E: ErrorCode + std::fmt::Display>(result: Result<VerifiedCsr, E>) -> Value {
    match result {
        Ok(verified) => serde_json::to_value(verified).expect("serialises"),
        Err(e) => {
            let body = ErrorBody::from_error(&e);
            assert!(!body.message.is_empty());
            json!({ "error": body.error, "status": body.status })
        }
    }
}

fn backends() -> [SignatureBackend; 2] {
    [SignatureBackend::Ring, SignatureBackend::RustCrypto]
}

#[test]
fn every_csr_vector_gets_its_expected_decision_on_both_backends() {
    let vectors = vectors("csr");
    assert!(vectors.len() >= 30, "only {} csr vectors", vectors.len());
    let mut failures = Vec::new();
    for vector in &vectors {
        for backend in backends() {
            let got = outcome(
                verifier(vector, backend).verify_header(vector["header"].as_str().unwrap()),
            );
            if got != vector["expect"] {
                failures.push(format!(
                    "{} ({backend:?}): expected {} got {got}",
                    vector["name"], vector["expect"]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_key_vector_normalises_as_expected() {
    let vectors = vectors("keys");
    assert!(vectors.len() >= 15, "only {} key vectors", vectors.len());
    let mut failures = Vec::new();
    for vector in &vectors {
        let got = match DeviceKey::parse(vector["input"].as_str().unwrap()) {
            Ok(key) => json!({ "publicKey": key.canonical() }),
            Err(e) => json!({ "error": e.code(), "status": e.status() }),
        };
        if got != vector["expect"] {
            failures.push(format!(
                "{}: expected {} got {got}",
                vector["name"], vector["expect"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_authorize_vector_gets_its_expected_decision_on_both_backends() {
    let vectors = vectors("authorize");
    assert!(
        vectors.len() >= 8,
        "only {} authorize vectors",
        vectors.len()
    );
    let mut failures = Vec::new();
    for vector in &vectors {
        let registered = DeviceKey::parse(vector["registeredKey"].as_str().unwrap())
            .expect("registered keys in authorize vectors are valid");
        for backend in backends() {
            let got = outcome(
                verifier(vector, backend)
                    .authorize(vector["header"].as_str().unwrap(), &registered),
            );
            if got != vector["expect"] {
                failures.push(format!(
                    "{} ({backend:?}): expected {} got {got}",
                    vector["name"], vector["expect"]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The backends must agree not only on the vectors' expected outcomes but on every
/// signature we can perturb: flip each bit of a good CSR's signature and compare.
#[test]
fn both_backends_agree_on_every_single_bit_corruption_of_a_good_csr() {
    let good = vectors("csr")
        .into_iter()
        .find(|v| v["expect"].get("deviceId").is_some())
        .expect("a good vector");
    let der = provisioner_core::decode_header(good["header"].as_str().unwrap()).unwrap();
    let mut disagreements = Vec::new();
    for index in 0..der.len() {
        for bit in 0..8 {
            let mut corrupted = der.clone();
            corrupted[index] ^= 1 << bit;
            let ring = outcome(
                CsrVerifier::with_backend(CsrPolicy::default(), SignatureBackend::Ring)
                    .verify_der(&corrupted),
            );
            let rust = outcome(
                CsrVerifier::with_backend(CsrPolicy::default(), SignatureBackend::RustCrypto)
                    .verify_der(&corrupted),
            );
            if ring != rust {
                disagreements.push(format!(
                    "byte {index} bit {bit}: ring {ring} rustcrypto {rust}"
                ));
            }
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
