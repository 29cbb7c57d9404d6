//! CA rotation with cascading revocation, interrupted and resumed, on a real data
//! directory: the on-disk CA, the SQLite registry, and CRLs read back by OpenSSL.

use claimed::RecordClaimed;
use provisioner_testkit::claimed;

use std::process::Command;

use provisioner_core::{
    CertificateRecord, CertificateStatus, DeviceKey, DeviceRegistry, ManifestReader,
    RevocationReason,
};
use provisioner_store_local::authority::LocalAuthority;
use provisioner_store_local::datadir::DataDir;
use provisioner_store_local::operations::{crl_path, root_crl_path, rotate_ca, CRL_LIFETIME_SECS};
use provisioner_store_local::registry::{CaState, ImportItem, ImportOptions, SqliteRegistry};

const NOW: i64 = 1_800_000_000;

fn certificate(id: &str, key: &DeviceKey, issuer: &str, n: i64) -> CertificateRecord {
    CertificateRecord {
        certificate_id: id.into(),
        device_id: "dev-1".into(),
        serial: format!("{:040x}", 0x4000 + n),
        issuer: issuer.into(),
        public_key: key.clone(),
        issued_at: NOW + n,
        not_before: NOW + n - 300,
        not_after: NOW + n + 86_400,
        status: CertificateStatus::Active,
        revoked: None,
        certificate_pem: String::new(),
    }
}

fn crl_serial_count(path: &std::path::Path) -> usize {
    let out = Command::new("openssl")
        .args(["crl", "-noout", "-text", "-in"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .matches("Serial Number:")
        .count()
}

#[tokio::test]
async fn an_interrupted_rotation_is_resumed_not_repeated_and_revokes_everything_the_old_ca_issued()
{
    // given a CA that issued three certificates
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = DataDir::new(tmp.path().join("data"));
    data_dir.ensure_exists().unwrap();
    let init = LocalAuthority::init_development(&data_dir.ca_dir(), NOW).unwrap();
    let registry = SqliteRegistry::open(data_dir.registry_path()).unwrap();
    let key = DeviceKey::parse(&rcgen::KeyPair::generate().unwrap().public_key_pem()).unwrap();
    let csv = format!("dev-1,{key}\n");
    let reader = ManifestReader::new();
    let entries = reader.read(csv.as_bytes()).unwrap();
    let options = ImportOptions {
        now: NOW,
        ..ImportOptions::default()
    };
    registry
        .import(
            entries.map(|entry| ImportItem {
                source: "m.csv",
                entry,
            }),
            &options,
        )
        .unwrap();
    for n in 0..3 {
        let record = certificate(&format!("c{n}"), &key, &init.id, n);
        registry
            .record_claimed(record, vec![], NOW + n)
            .await
            .unwrap();
    }

    // when a rotation stops after its first batch (the process died)
    let report = LocalAuthority::rotate(&data_dir.ca_dir(), NOW + 10).unwrap();
    let job = registry
        .start_rotation(&report.old_id, &report.new_id, NOW + 10)
        .await
        .unwrap();
    let revoked = registry
        .revoke_batch(
            vec!["c0".into()],
            RevocationReason::Superseded,
            NOW + 10,
            Some(job.id),
        )
        .await
        .unwrap();
    assert_eq!(revoked, 1);

    // then the next run resumes it: the same new CA, every old certificate revoked
    let mut progress = Vec::new();
    let outcome = rotate_ca(&data_dir, &registry, NOW + 20, CRL_LIFETIME_SECS, |n| {
        progress.push(n)
    })
    .await
    .unwrap();
    assert!(outcome.resumed);
    assert_eq!(
        (outcome.old_ca.as_str(), outcome.new_ca.as_str()),
        (report.old_id.as_str(), report.new_id.as_str())
    );
    assert_eq!(outcome.revoked, 3);
    assert_eq!(progress, vec![3]);
    assert_eq!(
        LocalAuthority::load(&data_dir.ca_dir()).unwrap().id(),
        report.new_id
    );
    for n in 0..3 {
        let c = registry
            .certificate(&format!("c{n}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.status, CertificateStatus::Revoked, "c{n}");
    }
    assert!(registry.unfinished_rotations().await.unwrap().is_empty());
    let cas = registry.cas().await.unwrap();
    assert!(cas
        .iter()
        .any(|ca| ca.ca_id == report.old_id && ca.state == CaState::Revoked));
    assert!(cas
        .iter()
        .any(|ca| ca.ca_id == report.new_id && ca.state == CaState::Current));

    // and the CRLs say so: the old CA's lists its three, the root's lists the old CA
    assert_eq!(crl_serial_count(&crl_path(&data_dir, &report.old_id)), 3);
    assert_eq!(crl_serial_count(&crl_path(&data_dir, &report.new_id)), 0);
    assert_eq!(crl_serial_count(&root_crl_path(&data_dir)), 1);

    // and a further run starts a new rotation instead of resuming
    let next = rotate_ca(&data_dir, &registry, NOW + 30, CRL_LIFETIME_SECS, |_| {})
        .await
        .unwrap();
    assert!(!next.resumed);
    assert_eq!(next.old_ca, report.new_id);
    assert_eq!(next.revoked, 0);
}
