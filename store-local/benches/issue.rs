//! How many device certificates the local CA signs per second on one core.
//!
//! `cargo bench -p provisioner-store-local --bench issue`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use provisioner_core::{CsrVerifier, IssuanceProfile};
use provisioner_store_local::authority::LocalAuthority;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

const NOW: i64 = 1_800_000_000;

fn issue(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    LocalAuthority::init_development(dir.path(), NOW).unwrap();
    let authority = LocalAuthority::load(dir.path()).unwrap();
    let device_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "bench-device-0001");
    let csr = params.serialize_request(&device_key).unwrap();
    let request = CsrVerifier::default().verify_der(csr.der()).unwrap();
    let profile = IssuanceProfile::default();

    let mut group = c.benchmark_group("local_ca");
    group.throughput(Throughput::Elements(1));
    group.bench_function("issue", |b| {
        b.iter(|| {
            authority
                .issue_certificate(&request, &profile, NOW)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, issue);
criterion_main!(benches);
