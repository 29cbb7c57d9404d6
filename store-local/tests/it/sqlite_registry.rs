//! The SQLite registry against real database files in a temporary directory.

use claimed::RecordClaimed;
use provisioner_testkit::claimed;

use std::path::Path;

use provisioner_core::{
    AuditEvent, AuditLog, CertificateRecord, CertificateStatus, DeviceKey, DeviceRegistry,
    ManifestReader, ManifestSigners, RevocationReason, ThingRegistry,
};
use provisioner_store_local::registry::{
    CaState, CertificateFilter, CertificatePosition, DeviceQuery, HourlyDecisions, ImportItem,
    ImportOptions, ImportSummary, RegistryError, SqliteRegistry, DEVICE_POLICY, SCHEMA_VERSION,
};

const NOW: i64 = 1_800_000_000;
const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/manifests");

fn new_key() -> DeviceKey {
    let pair = rcgen::KeyPair::generate().unwrap();
    DeviceKey::parse(&pair.public_key_pem()).unwrap()
}

fn open(dir: &Path) -> SqliteRegistry {
    SqliteRegistry::open(dir.join("registry.sqlite3")).unwrap()
}

/// Imports `rows` (`device_id,key` CSV) as one manifest named `source`.
fn import_csv(
    registry: &SqliteRegistry,
    source: &str,
    csv: &str,
    options: ImportOptions,
) -> ImportSummary {
    let reader = ManifestReader::new();
    let entries = reader.read(csv.as_bytes()).unwrap();
    registry
        .import(entries.map(|entry| ImportItem { source, entry }), &options)
        .unwrap()
}

fn options() -> ImportOptions {
    ImportOptions {
        now: NOW,
        ..ImportOptions::default()
    }
}

fn certificate(id: &str, device_id: &str, key: &DeviceKey, issued_at: i64) -> CertificateRecord {
    CertificateRecord {
        certificate_id: id.into(),
        device_id: device_id.into(),
        serial: format!("{:x}", issued_at),
        issuer: "ca-1".into(),
        public_key: key.clone(),
        issued_at,
        not_before: issued_at - 300,
        not_after: issued_at + 86_400,
        status: CertificateStatus::Active,
        revoked: None,
        certificate_pem: format!("-----BEGIN CERTIFICATE-----\n{id}\n-----END CERTIFICATE-----\n"),
    }
}

/// A registry with one imported device `dev-1`.
fn registry_with_device(dir: &Path) -> (SqliteRegistry, DeviceKey) {
    let registry = open(dir);
    let key = new_key();
    let summary = import_csv(&registry, "m.csv", &format!("dev-1,{key}\n"), options());
    assert_eq!(summary.imported, 1);
    (registry, key)
}

#[tokio::test]
async fn an_empty_file_is_migrated_to_the_latest_schema() {
    // given an empty directory
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.sqlite3");

    // when the registry is opened, closed and opened again
    drop(SqliteRegistry::open(&path).unwrap());
    let registry = SqliteRegistry::open(&path).unwrap();

    // then every table exists, at the latest version, in WAL mode, and the file is sound
    let connection = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = connection
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    for table in [
        "devices",
        "certificates",
        "things",
        "thing_principals",
        "cas",
        "audit",
        "rotation_jobs",
    ] {
        let count: i64 = connection
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(count, 1, "table {table}");
    }
    registry.integrity_check().await.unwrap();
    assert_eq!(registry.count_devices().await.unwrap(), 0);
}

#[test]
fn a_registry_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.sqlite3");
    drop(SqliteRegistry::open(&path).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();

    let error = SqliteRegistry::open(&path).unwrap_err();

    assert!(
        matches!(error, RegistryError::SchemaTooNew { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("newer provisioner"), "{error}");
}

#[tokio::test]
async fn a_recorded_issuance_supersedes_the_previous_certificates_in_the_same_commit() {
    // given a device with an ACTIVE certificate
    let dir = tempfile::tempdir().unwrap();
    let (registry, key) = registry_with_device(dir.path());
    registry
        .record_claimed(certificate("a", "dev-1", &key, NOW), vec![], NOW)
        .await
        .unwrap();

    // when a new certificate is recorded superseding it
    registry
        .record_claimed(
            certificate("b", "dev-1", &key, NOW + 10),
            vec!["a".into()],
            NOW + 10,
        )
        .await
        .unwrap();

    // then the old one is REVOKED (superseded, at that time) and the new one ACTIVE
    let a = registry.certificate("a").await.unwrap().unwrap();
    assert_eq!(a.status, CertificateStatus::Revoked);
    assert_eq!(a.revoked, Some((NOW + 10, RevocationReason::Superseded)));
    let b = registry.certificate("b").await.unwrap().unwrap();
    assert_eq!(b.status, CertificateStatus::Active);
    assert_eq!(b.revoked, None);
    assert_eq!(b, certificate("b", "dev-1", &key, NOW + 10));
    let all = registry.certificates_of("dev-1", i64::MIN).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|c| c.certificate_id.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    // outside the rate-limit window only the ACTIVE one is read back; inside it, both
    let active_only = registry.certificates_of("dev-1", i64::MAX).await.unwrap();
    assert_eq!(active_only.len(), 1);
    assert_eq!(active_only[0].certificate_id, "b");
    let recent = registry.certificates_of("dev-1", NOW).await.unwrap();
    assert_eq!(recent.len(), 2);
}

#[tokio::test]
async fn a_failed_issuance_leaves_the_superseded_certificates_untouched() {
    // given a device with an ACTIVE certificate
    let dir = tempfile::tempdir().unwrap();
    let (registry, key) = registry_with_device(dir.path());
    registry
        .record_claimed(certificate("a", "dev-1", &key, NOW), vec![], NOW)
        .await
        .unwrap();

    // when recording a certificate fails (its id is already another device's)
    let clash = registry.import(
        [ImportItem {
            source: "m.csv",
            entry: Ok(provisioner_core::ManifestRecord {
                device_id: "dev-2".into(),
                public_key: key.clone(),
                line: 1,
            }),
        }],
        &options(),
    );
    assert_eq!(clash.unwrap().imported, 1);
    let error = registry
        .record_claimed(
            certificate("a", "dev-2", &key, NOW + 5),
            vec!["a".into()],
            NOW + 5,
        )
        .await
        .unwrap_err();

    // then nothing of that write remains
    assert!(error.to_string().contains("already recorded"), "{error}");
    let a = registry.certificate("a").await.unwrap().unwrap();
    assert_eq!(a.status, CertificateStatus::Active);
    assert_eq!(a.device_id, "dev-1");
}

#[tokio::test]
async fn an_issuance_for_an_unknown_device_is_refused_and_recording_twice_is_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, key) = registry_with_device(dir.path());

    let error = registry
        .record_claimed(certificate("x", "nobody", &key, NOW), vec![], NOW)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("nobody"), "{error}");

    let record = certificate("a", "dev-1", &key, NOW);
    registry
        .record_claimed(record.clone(), vec![], NOW)
        .await
        .unwrap();
    registry.record_claimed(record, vec![], NOW).await.unwrap();
    assert_eq!(
        registry
            .certificates_of("dev-1", i64::MIN)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_issuances_are_all_durable() {
    // given 50 devices
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let key = new_key();
    let csv: String = (0..50).map(|d| format!("dev-{d},{key}\n")).collect();
    assert_eq!(import_csv(&registry, "m.csv", &csv, options()).imported, 50);

    // when 50 tasks each record 40 certificates, every one superseding the previous
    let mut tasks = Vec::new();
    for d in 0..50 {
        let registry = registry.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let device = format!("dev-{d}");
            let mut previous: Vec<String> = vec![];
            for n in 0..40 {
                let id = format!("{device}-cert-{n}");
                registry
                    .record_claimed(certificate(&id, &device, &key, NOW + n), previous, NOW + n)
                    .await
                    .unwrap();
                registry
                    .record(AuditEvent {
                        at: NOW + n,
                        device_id: Some(device.clone()),
                        decision: "allow",
                        code: "issued".into(),
                        remote_addr: None,
                        fingerprint: None,
                        certificate_id: Some(id.clone()),
                    })
                    .await
                    .unwrap();
                previous = vec![id];
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    drop(registry);

    // then, reopened, all 2,000 are there: the last of each device ACTIVE
    let registry = open(dir.path());
    let all = registry
        .list_certificates(CertificateFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 2_000);
    let active = registry
        .list_certificates(CertificateFilter {
            status: Some(CertificateStatus::Active),
            ..CertificateFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(active.len(), 50);
    assert!(active
        .iter()
        .all(|c| c.certificate_id.ends_with("-cert-39")));
    // and every audit event queued before the drop was committed
    assert_eq!(registry.audit_since(0, 10_000).await.unwrap().len(), 2_000);
    registry.integrity_check().await.unwrap();
}

#[tokio::test]
async fn an_import_with_one_invalid_row_writes_nothing() {
    // given a manifest whose third row has a bad key
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let csv = format!(
        "device_id,public_key\ndev-1,{}\ndev-2,{}\ndev-3,not-a-key\ndev-4,{}\n",
        new_key(),
        new_key(),
        new_key()
    );

    // when it is imported
    let summary = import_csv(&registry, "m.csv", &csv, options());

    // then the row is reported by line, the rest counted, and nothing written
    assert_eq!(summary.imported, 3);
    assert_eq!(summary.invalid, 1);
    assert!(!summary.written);
    assert_eq!(summary.errors.len(), 1);
    let error = &summary.errors[0];
    assert_eq!(error.line, 4);
    assert_eq!(error.device_id.as_deref(), Some("dev-3"));
    assert_eq!(error.error, "invalid_public_key");
    assert_eq!(error.file, "m.csv");
    assert_eq!(registry.count_devices().await.unwrap(), 0);
}

#[tokio::test]
async fn a_conflicting_key_is_refused_unless_replace_is_asked() {
    // given a registered device
    let dir = tempfile::tempdir().unwrap();
    let (registry, old_key) = registry_with_device(dir.path());
    let new = new_key();
    let csv = format!("dev-1,{new}\ndev-9,{}\n", new_key());

    // when the same device comes with another key, without replace
    let refused = import_csv(&registry, "second.csv", &csv, options());

    // then it is a conflict and nothing is written (not even the new device)
    assert_eq!(
        (refused.conflicts, refused.replaced, refused.imported),
        (1, 0, 1)
    );
    assert_eq!(refused.errors[0].error, "key_conflict");
    assert!(refused.errors[0].message.contains("--replace"));
    assert!(refused.errors[0].message.contains("m.csv"));
    assert!(!refused.written);
    let device = registry.device("dev-1").await.unwrap().unwrap();
    assert_eq!(device.public_key, old_key);
    assert!(registry.device("dev-9").await.unwrap().is_none());

    // when it is imported again with replace
    let replace = ImportOptions {
        replace: true,
        ..options()
    };
    let replaced = import_csv(&registry, "second.csv", &csv, replace);

    // then the key is replaced
    assert_eq!(
        (replaced.conflicts, replaced.replaced, replaced.imported),
        (0, 1, 1)
    );
    assert!(replaced.written);
    let device = registry.device("dev-1").await.unwrap().unwrap();
    assert_eq!(device.public_key, new);
}

#[tokio::test]
async fn importing_the_same_manifest_again_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let (k1, k2) = (new_key(), new_key());
    let csv = format!("dev-1,{k1}\ndev-2,{k2}\n");
    let first = import_csv(&registry, "m.csv", &csv, options());
    assert_eq!(first.imported, 2);
    assert!(first.atomic, "the SQLite import is one transaction");

    // the same keys in another encoding (uncompressed SEC1 hex) are the same keys
    let hex_csv = format!(
        "dev-1,{}\ndev-2,{}\n",
        hex::encode(k1.sec1_uncompressed()),
        hex::encode(k2.sec1_uncompressed())
    );
    let again = import_csv(&registry, "m.csv", &hex_csv, options());

    assert_eq!((again.imported, again.unchanged), (0, 2));
    assert!(again.written && again.is_clean());
    assert_eq!(registry.count_devices().await.unwrap(), 2);
}

#[tokio::test]
async fn a_dry_run_counts_but_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let csv = format!("dev-1,{}\n", new_key());
    let dry = ImportOptions {
        dry_run: true,
        ..options()
    };

    let summary = import_csv(&registry, "m.csv", &csv, dry);

    assert_eq!(summary.imported, 1);
    assert!(!summary.written);
    assert_eq!(registry.count_devices().await.unwrap(), 0);
}

#[tokio::test]
async fn a_signed_microchip_manifest_imports_the_expected_devices() {
    // given the Microchip fixtures and their signer
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let manifest = std::fs::read(format!("{MANIFESTS}/valid.json")).unwrap();
    let signer = std::fs::read(format!("{MANIFESTS}/signer.pem")).unwrap();
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{MANIFESTS}/expected.json")).unwrap())
            .unwrap();
    let reader =
        ManifestReader::new().with_signers(ManifestSigners::from_certificates(&signer).unwrap());

    // when it is imported
    let entries = reader.read(&manifest).unwrap();
    let summary = registry
        .import(
            entries.map(|entry| ImportItem {
                source: "valid.json",
                entry,
            }),
            &options(),
        )
        .unwrap();

    // then every expected device is registered with its key
    let devices = expected["valid.json"].as_array().unwrap();
    assert_eq!(summary.imported, devices.len() as u64);
    assert!(summary.written);
    for device in devices {
        let id = device["deviceId"].as_str().unwrap();
        let stored = registry.device(id).await.unwrap().unwrap();
        assert_eq!(
            stored.public_key.canonical(),
            device["publicKey"].as_str().unwrap()
        );
        assert!(stored.enabled);
    }
}

#[tokio::test]
async fn a_tampered_microchip_entry_refuses_the_whole_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let manifest = std::fs::read(format!("{MANIFESTS}/tampered_payload.json")).unwrap();
    let signer = std::fs::read(format!("{MANIFESTS}/signer.pem")).unwrap();
    let reader =
        ManifestReader::new().with_signers(ManifestSigners::from_certificates(&signer).unwrap());

    let entries = reader.read(&manifest).unwrap();
    let summary = registry
        .import(
            entries.map(|entry| ImportItem {
                source: "tampered_payload.json",
                entry,
            }),
            &options(),
        )
        .unwrap();

    assert_eq!((summary.imported, summary.invalid), (1, 1));
    assert_eq!(summary.errors[0].line, 2);
    assert!(!summary.written);
    assert_eq!(registry.count_devices().await.unwrap(), 0);
}

#[tokio::test]
async fn revoking_reports_unknown_ids_and_is_idempotent() {
    // given an ACTIVE certificate
    let dir = tempfile::tempdir().unwrap();
    let (registry, key) = registry_with_device(dir.path());
    registry
        .record_claimed(certificate("a", "dev-1", &key, NOW), vec![], NOW)
        .await
        .unwrap();

    // an unknown id is a clear error
    let error = registry
        .revoke_certificate("nope", RevocationReason::KeyCompromise, NOW)
        .await
        .unwrap_err();
    assert!(matches!(error, RegistryError::UnknownCertificate(_)));
    assert!(error.to_string().contains("certs list"), "{error}");

    // the first revocation records time and reason
    let first = registry
        .revoke_certificate("a", RevocationReason::KeyCompromise, NOW + 1)
        .await
        .unwrap();
    assert!(!first.already_revoked);
    assert_eq!(first.certificate.status, CertificateStatus::Revoked);
    assert_eq!(
        first.certificate.revoked,
        Some((NOW + 1, RevocationReason::KeyCompromise))
    );

    // a second one reports it and keeps the first time and reason
    let second = registry
        .revoke_certificate("a", RevocationReason::Unspecified, NOW + 2)
        .await
        .unwrap();
    assert!(second.already_revoked);
    assert_eq!(second.certificate, first.certificate);

    // and the CRL of its issuer lists it
    let crl = registry.revoked_for_issuer("ca-1").await.unwrap();
    assert_eq!(crl.len(), 1);
    assert_eq!(crl[0].serial, first.certificate.serial);
    assert_eq!(crl[0].reason, RevocationReason::KeyCompromise);
    assert_eq!(crl[0].revoked_at, NOW + 1);
    assert!(registry
        .revoked_for_issuer("ca-2")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_rotation_cascade_revokes_in_batches_and_resumes() {
    // given 5 devices holding certificates of ca-1 and one of ca-2
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let key = new_key();
    let csv: String = (0..5).map(|d| format!("dev-{d},{key}\n")).collect();
    import_csv(&registry, "m.csv", &csv, options());
    for d in 0..5 {
        let device = format!("dev-{d}");
        registry
            .record_claimed(
                certificate(&format!("c{d}"), &device, &key, NOW),
                vec![],
                NOW,
            )
            .await
            .unwrap();
    }
    let mut other = certificate("other", "dev-0", &key, NOW);
    other.issuer = "ca-2".into();
    registry.record_claimed(other, vec![], NOW).await.unwrap();
    registry
        .record_ca("ca-1", "PEM1", CaState::Current, NOW)
        .await
        .unwrap();
    registry
        .record_ca("ca-2", "PEM2", CaState::Current, NOW + 1)
        .await
        .unwrap();

    // when a rotation starts, revokes one batch of 3, and is started again
    let job = registry.start_rotation("ca-1", "ca-2", NOW).await.unwrap();
    let batch = registry.active_issued_by("ca-1", 3).await.unwrap();
    assert_eq!(batch.len(), 3);
    let revoked = registry
        .revoke_batch(batch, RevocationReason::CaCompromise, NOW + 2, Some(job.id))
        .await
        .unwrap();
    assert_eq!(revoked, 3);
    let resumed = registry
        .start_rotation("ca-1", "ca-2", NOW + 3)
        .await
        .unwrap();

    // then it is the same job, with its progress, and the rest can be finished
    assert_eq!(resumed.id, job.id);
    assert_eq!(resumed.revoked_count, 3);
    assert_eq!(
        registry.unfinished_rotations().await.unwrap(),
        vec![resumed]
    );
    let rest = registry.active_issued_by("ca-1", 100).await.unwrap();
    assert_eq!(rest.len(), 2);
    registry
        .revoke_batch(rest, RevocationReason::CaCompromise, NOW + 4, Some(job.id))
        .await
        .unwrap();
    let finished = registry.finish_rotation(job.id, NOW + 5).await.unwrap();
    assert_eq!(finished.revoked_count, 5);
    assert_eq!(finished.finished_at, Some(NOW + 5));
    assert!(registry.unfinished_rotations().await.unwrap().is_empty());
    assert_eq!(registry.revoked_for_issuer("ca-1").await.unwrap().len(), 5);
    let untouched = registry.certificate("other").await.unwrap().unwrap();
    assert_eq!(untouched.status, CertificateStatus::Active);

    // and recording ca-2 as current made ca-1 previous
    let cas = registry.cas().await.unwrap();
    let states: Vec<_> = cas.iter().map(|c| (c.ca_id.as_str(), c.state)).collect();
    assert_eq!(
        states,
        [("ca-1", CaState::Previous), ("ca-2", CaState::Current)]
    );
    registry
        .record_ca("ca-1", "PEM1", CaState::Revoked, NOW + 6)
        .await
        .unwrap();
    let cas = registry.cas().await.unwrap();
    assert_eq!(cas[0].state, CaState::Revoked);
    assert_eq!(cas[0].revoked_at, Some(NOW + 6));
}

#[tokio::test]
async fn certificates_are_listed_by_device_status_and_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, key) = registry_with_device(dir.path());
    registry
        .record_claimed(certificate("a", "dev-1", &key, NOW), vec![], NOW)
        .await
        .unwrap();
    let mut b = certificate("b", "dev-1", &key, NOW + 1);
    b.issuer = "ca-2".into();
    registry
        .record_claimed(b, vec!["a".into()], NOW + 1)
        .await
        .unwrap();

    let list = |filter: CertificateFilter| {
        let registry = registry.clone();
        async move {
            registry
                .list_certificates(filter)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.certificate_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(CertificateFilter::default()).await, ["a", "b"]);
    let revoked = CertificateFilter {
        status: Some(CertificateStatus::Revoked),
        ..CertificateFilter::default()
    };
    assert_eq!(list(revoked).await, ["a"]);
    let by_issuer = CertificateFilter {
        issuer: Some("ca-2".into()),
        device_id: Some("dev-1".into()),
        ..CertificateFilter::default()
    };
    assert_eq!(list(by_issuer).await, ["b"]);
    let other_device = CertificateFilter {
        device_id: Some("dev-2".into()),
        ..CertificateFilter::default()
    };
    assert!(list(other_device).await.is_empty());
}

#[tokio::test]
async fn registering_a_thing_attaches_the_policy_and_the_principal_once() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, key) = registry_with_device(dir.path());
    let a = certificate("a", "dev-1", &key, NOW);
    registry
        .record_claimed(a.clone(), vec![], NOW)
        .await
        .unwrap();

    registry.register("dev-1", &a).await.unwrap();
    registry.register("dev-1", &a).await.unwrap();

    let thing = registry.thing("dev-1").await.unwrap().unwrap();
    assert_eq!(thing.policy, DEVICE_POLICY);
    assert_eq!(thing.principals, ["a"]);
    assert_eq!(thing.created_at, NOW);
    assert!(registry.thing("dev-2").await.unwrap().is_none());
}

#[tokio::test]
async fn audit_events_are_committed_and_listed_from_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    for (at, decision, code) in [
        (NOW, "deny", "unknown_device"),
        (NOW + 5, "allow", "issued"),
    ] {
        registry
            .record(AuditEvent {
                at,
                device_id: Some("dev-1".into()),
                decision,
                code: code.into(),
                remote_addr: Some("192.0.2.1".into()),
                fingerprint: Some("ab".repeat(32)),
                certificate_id: None,
            })
            .await
            .unwrap();
    }
    registry.flush().await.unwrap();

    let all = registry.audit_since(NOW, 10).await.unwrap();
    let later = registry.audit_since(NOW + 1, 10).await.unwrap();

    assert_eq!(all.len(), 2);
    assert_eq!(all[0].event.decision, "deny");
    assert_eq!(all[0].event.code, "unknown_device");
    assert_eq!(all[0].event.remote_addr.as_deref(), Some("192.0.2.1"));
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].event.decision, "allow");
    assert!(all[0].id < all[1].id);
}

#[tokio::test]
async fn a_device_can_be_disabled_and_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _) = registry_with_device(dir.path());

    registry.set_device_enabled("dev-1", false).await.unwrap();
    assert!(!registry.device("dev-1").await.unwrap().unwrap().enabled);
    registry.set_device_enabled("dev-1", true).await.unwrap();
    assert!(registry.device("dev-1").await.unwrap().unwrap().enabled);

    let error = registry
        .set_device_enabled("nobody", false)
        .await
        .unwrap_err();
    assert!(matches!(error, RegistryError::UnknownDevice(_)));
}

#[tokio::test]
async fn a_write_blocked_by_an_import_in_progress_is_unavailable_not_lost() {
    use provisioner_core::PortError;
    use provisioner_store_local::registry::RegistryOptions;
    use std::time::Duration;

    // given a registry with a short busy timeout and another connection holding the lock
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.sqlite3");
    let registry = SqliteRegistry::open_with(
        &path,
        RegistryOptions {
            busy_timeout: Duration::from_millis(100),
            ..RegistryOptions::default()
        },
    )
    .unwrap();
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    // when a certificate is recorded meanwhile
    let key = new_key();
    let error = registry
        .record_claimed(certificate("a", "dev-1", &key, NOW), vec![], NOW)
        .await
        .unwrap_err();

    // then the flow sees a retryable unavailability
    assert!(matches!(error, PortError::Unavailable { .. }), "{error:?}");
    blocker.execute_batch("ROLLBACK").unwrap();
    registry.flush().await.unwrap();
}

#[tokio::test]
async fn devices_are_listed_by_id_in_pages_with_prefix_and_status_filters() {
    // given five devices, one of them disabled
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let csv: String = ["a-1", "b-1", "b-2", "b-3", "bb"]
        .iter()
        .map(|id| format!("{id},{}\n", new_key()))
        .collect();
    assert!(import_csv(&registry, "m.csv", &csv, options()).written);
    registry.set_device_enabled("b-2", false).await.unwrap();
    let ids = |query: DeviceQuery| {
        let registry = registry.clone();
        async move {
            registry
                .list_devices(query)
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.device_id)
                .collect::<Vec<_>>()
        }
    };
    let page = |prefix: Option<&str>, enabled, after: Option<&str>, limit| DeviceQuery {
        prefix: prefix.map(str::to_owned),
        enabled,
        after: after.map(str::to_owned),
        limit,
    };

    // then pages follow one another by id, without gaps or repeats
    assert_eq!(ids(page(None, None, None, 2)).await, ["a-1", "b-1"]);
    assert_eq!(ids(page(None, None, Some("b-1"), 2)).await, ["b-2", "b-3"]);
    assert_eq!(ids(page(None, None, Some("b-3"), 2)).await, ["bb"]);
    assert!(ids(page(None, None, Some("bb"), 2)).await.is_empty());
    // and the filters combine with them
    assert_eq!(
        ids(page(Some("b-"), None, None, 10)).await,
        ["b-1", "b-2", "b-3"]
    );
    assert_eq!(
        ids(page(Some("b"), Some(true), Some("b-1"), 10)).await,
        ["b-3", "bb"]
    );
    assert_eq!(ids(page(None, Some(false), None, 10)).await, ["b-2"]);
    assert!(ids(page(Some("c"), None, None, 10)).await.is_empty());

    // and one device reads back with where it came from
    let record = registry.device_record("b-2").await.unwrap().unwrap();
    assert!(!record.enabled);
    assert_eq!(record.source_manifest.as_deref(), Some("m.csv"));
    assert_eq!(record.imported_at, NOW);
    assert!(registry.device_record("zz").await.unwrap().is_none());
}

#[tokio::test]
async fn certificates_are_paged_newest_first() {
    // given four certificates, two issued in the same second
    let dir = tempfile::tempdir().unwrap();
    let (registry, key) = registry_with_device(dir.path());
    for (id, at) in [("a", NOW), ("b", NOW + 1), ("c", NOW + 1), ("d", NOW + 2)] {
        registry
            .record_claimed(certificate(id, "dev-1", &key, at), vec![], at)
            .await
            .unwrap();
    }
    let page = |before: Option<(i64, &str)>| {
        let registry = registry.clone();
        let before = before.map(|(issued_at, id)| CertificatePosition {
            issued_at,
            certificate_id: id.to_owned(),
        });
        async move {
            let filter = CertificateFilter {
                device_id: Some("dev-1".into()),
                limit: Some(3),
                ..CertificateFilter::default()
            };
            registry
                .certificates_newest_first(filter, before)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.certificate_id)
                .collect::<Vec<_>>()
        }
    };

    assert_eq!(page(None).await, ["d", "c", "b"]);
    assert_eq!(page(Some((NOW + 1, "b"))).await, ["a"]);
    assert_eq!(page(Some((NOW + 1, "c"))).await, ["b", "a"]);
}

#[tokio::test]
async fn the_audit_log_is_paged_newest_first_and_counted_per_hour() {
    // given allows and denies over three hours, for two devices
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let hour = NOW - NOW % 3600;
    let events = [
        (hour - 1, "allow", "dev-1"),
        (hour, "allow", "dev-1"),
        (hour + 10, "deny", "dev-2"),
        (hour + 3599, "deny", "dev-1"),
        (hour + 7200, "allow", "dev-2"),
    ];
    for (at, decision, device) in events {
        registry
            .record(AuditEvent {
                at,
                device_id: Some(device.into()),
                decision,
                code: "x".into(),
                remote_addr: None,
                fingerprint: None,
                certificate_id: None,
            })
            .await
            .unwrap();
    }
    registry.flush().await.unwrap();

    // then pages go from the newest back
    let first = registry.audit_newest_first(None, None, 3).await.unwrap();
    let ats: Vec<i64> = first.iter().map(|e| e.event.at).collect();
    assert_eq!(ats, [hour + 7200, hour + 3599, hour + 10]);
    let rest = registry
        .audit_newest_first(Some(first[2].id), None, 3)
        .await
        .unwrap();
    let ats: Vec<i64> = rest.iter().map(|e| e.event.at).collect();
    assert_eq!(ats, [hour, hour - 1]);
    let of_dev_2 = registry
        .audit_newest_first(None, Some("dev-2".into()), 10)
        .await
        .unwrap();
    assert_eq!(of_dev_2.len(), 2);

    // and the hourly counts cover [since, until) only, empty hours left out
    let counts = registry
        .decisions_per_hour(hour, hour + 3 * 3600)
        .await
        .unwrap();
    assert_eq!(
        counts,
        [
            HourlyDecisions {
                hour,
                allow: 1,
                deny: 2
            },
            HourlyDecisions {
                hour: hour + 7200,
                allow: 1,
                deny: 0
            },
        ]
    );
}

#[tokio::test]
async fn the_last_rotation_is_found_finished_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    assert!(registry.last_rotation().await.unwrap().is_none());
    let first = registry.start_rotation("ca-1", "ca-2", NOW).await.unwrap();
    registry.finish_rotation(first.id, NOW + 1).await.unwrap();
    let second = registry
        .start_rotation("ca-2", "ca-3", NOW + 2)
        .await
        .unwrap();
    let last = registry.last_rotation().await.unwrap().unwrap();
    assert_eq!(last.id, second.id);
    assert_eq!(last.finished_at, None);
}

/// The registry's share of an issuance, at the concurrency the service sees: per request
/// `device`, `certificates_of`, `record_issuance` (superseding the previous one),
/// `register` and an audit event, from 2,048 tasks (10 issuances each) on 2 worker threads. Run with
/// `cargo test --release -p provisioner-service --test sqlite_registry -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_issuance_throughput() {
    const DEVICES: usize = 2048;
    const PER_DEVICE: i64 = 10;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let registry = open(dir.path());
        let key = new_key();
        let csv: String = (0..DEVICES).map(|d| format!("dev-{d},{key}\n")).collect();
        import_csv(&registry, "m.csv", &csv, options());
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            "A".repeat(700)
        );
        let start = std::time::Instant::now();
        let cpu_start = process_cpu_secs();
        let mut tasks = Vec::new();
        for d in 0..DEVICES {
            let registry = registry.clone();
            let pem = pem.clone();
            tasks.push(tokio::spawn(async move {
                let device = format!("dev-{d}");
                for n in 0..PER_DEVICE {
                    let found = registry.device(&device).await.unwrap().unwrap();
                    let held = registry.certificates_of(&device, i64::MAX).await.unwrap();
                    let supersede = held
                        .iter()
                        .filter(|c| c.status == CertificateStatus::Active)
                        .map(|c| c.certificate_id.clone())
                        .collect();
                    let mut record = certificate(
                        &format!("{device}-{n}"),
                        &device,
                        &found.public_key,
                        NOW + n,
                    );
                    record.certificate_pem.clone_from(&pem);
                    registry
                        .record_claimed(record.clone(), supersede, NOW + n)
                        .await
                        .unwrap();
                    registry.register(&device, &record).await.unwrap();
                    registry
                        .record(AuditEvent {
                            at: NOW + n,
                            device_id: Some(device.clone()),
                            decision: "allow",
                            code: "issued".into(),
                            remote_addr: Some("192.0.2.1".into()),
                            fingerprint: Some("ab".repeat(32)),
                            certificate_id: Some(record.certificate_id),
                        })
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        registry.flush().await.unwrap();
        let elapsed = start.elapsed().as_secs_f64();
        let cpu = process_cpu_secs() - cpu_start;
        let total = DEVICES as f64 * PER_DEVICE as f64;
        println!(
            "{total} issuances in {elapsed:.2}s: {:.0} issuances/s (registry share only); \
             CPU {cpu:.2}s, {:.0} us per issuance, so {:.0}/s on 2 idle cores",
            total / elapsed,
            cpu / total * 1e6,
            2.0 * total / cpu
        );
    });
}

/// User + system CPU time of this process so far (Linux `/proc/self/stat`, 100 Hz ticks).
fn process_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::test]
async fn newest_first_listings_read_an_index_instead_of_sorting_the_table() {
    // given a migrated registry
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let connection = rusqlite::Connection::open(dir.path().join("registry.sqlite3")).unwrap();
    let plan = |sql: &str| -> String {
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let rows = statement
            .query_map([], |row| row.get::<_, String>(3))
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    };
    // when the admin API's listings are planned, then no temporary sort is needed
    let certificates = plan(
        "SELECT certificate_id FROM certificates ORDER BY issued_at DESC, certificate_id DESC LIMIT 50",
    );
    assert!(
        certificates.contains("certificates_by_issued_at"),
        "{certificates}"
    );
    assert!(!certificates.contains("TEMP B-TREE"), "{certificates}");
    let audit =
        plan("SELECT id FROM audit WHERE device_id = 'd' AND id < 99 ORDER BY id DESC LIMIT 50");
    assert!(audit.contains("audit_by_device"), "{audit}");
    assert!(!audit.contains("TEMP B-TREE"), "{audit}");
}
