//! The PKI admin's steps and the CA rotation (`aws::ca`) against moto's server: the real
//! SDK and wire protocol for ACM Private CA, IoT Core (two regions) and DynamoDB.
//!
//! Run by `scripts/test-aws.sh`, which starts moto on 127.0.0.1 (with IoT certificate ids
//! computed as AWS computes them: SHA-256 of the DER) and sets `AWS_ENDPOINT_URL`, dummy
//! credentials and `AWS_REGION`. Every test has tables of its own and its own CAs, so the
//! tests run in parallel. The parents are a root made by `openssl` (outside AWS) and an
//! ACM Private CA root (same account).
//!
//! What moto cannot show, and these tests therefore do not claim (TOOLCHAIN.md): moto
//! does not check the verification certificate of `RegisterCACertificate` (its CN, its
//! signer), nor that a device certificate registered with a CA was signed by it; its PCA
//! keys are RSA whatever is asked; it makes no CRL, so the parent's revocation of the old
//! intermediate is seen only through moto's quirk that `GetCertificate` answers "in
//! progress" for a revoked certificate.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_acmpca::types::{Validity, ValidityPeriodType};
use claimed::RecordClaimed;
use provisioner_core::{
    CertificateRecord, CertificateStatus, CsrPolicy, CsrVerifier, DeviceRegistry, IssuanceProfile,
    ManifestRecord, PortError, RevocationReason,
};
use provisioner_store_aws::acm_pca::{AcmPcaAuthority, AcmPcaConfig};
use provisioner_store_aws::ca::{
    ca_id, pem_blocks, summarize_certificate, CaError, CaSubject, IotCertificateRevoker,
    IotRegions, IssuingCaAdmin, IssuingCaStore, RotationOptions, RotationProgress, RotationState,
    SUBORDINATE_TEMPLATE,
};
use provisioner_store_aws::dynamodb::{
    DynamoDbRegistry, DynamoDbTables, ImportItem, ImportOptions,
};
use sha2::{Digest, Sha256};

const NOW: i64 = 1_800_000_000;
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

use moto::endpoint;
use provisioner_testkit::claimed;
use provisioner_testkit::moto;
use provisioner_testkit::openssl::{offline_root, openssl};

use crate::support::{iot, iot_certificate_status, pca_issue};

/// Everything one test needs, over tables of its own.
struct Fixture {
    sdk: aws_config::SdkConfig,
    pca: aws_sdk_acmpca::Client,
    iot: IotRegions,
    registry: DynamoDbRegistry,
    store: IssuingCaStore,
    admin: IssuingCaAdmin,
    dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    endpoint();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGIONS[0]))
        .load()
        .await;
    let prefix = format!("test-{:016x}-", rand::random::<u64>());
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let registry = DynamoDbRegistry::new(dynamo.clone(), DynamoDbTables::with_prefix(&prefix));
    registry.create_tables().await.unwrap();
    let store = IssuingCaStore::new(dynamo, format!("{prefix}config"));
    store.create_config_table().await.unwrap();
    let regions: Vec<String> = REGIONS.iter().map(|r| (*r).to_owned()).collect();
    let iot = IotRegions::new(&sdk, &regions);
    let pca = aws_sdk_acmpca::Client::new(&sdk);
    let admin = IssuingCaAdmin::new(
        pca.clone(),
        iot.clone(),
        store.clone(),
        registry.clone(),
        None,
        REGIONS[0],
    )
    .with_deadline(Duration::from_secs(20));
    Fixture {
        sdk,
        pca,
        iot,
        registry,
        store,
        admin,
        dir: tempfile::tempdir().unwrap(),
    }
}

/// A root CA made by openssl in `dir`: root.pem and root.key.
fn openssl_root(dir: &Path) {
    offline_root(dir, "/CN=Test Offline Root/O=provisioner tests");
}

/// Signs `csr_pem` with the openssl root as a CA certificate; returns its PEM.
fn openssl_sign_ca(dir: &Path, name: &str, csr_pem: &str) -> String {
    std::fs::write(dir.join(format!("{name}.csr")), csr_pem).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-days",
            "365",
            "-sha256",
            "-extfile",
            "ext.cnf",
            "-out",
            &format!("{name}.pem"),
        ],
    );
    std::fs::read_to_string(dir.join(format!("{name}.pem"))).unwrap()
}

fn device_csr(dir: &Path, device_id: &str) -> Vec<u8> {
    moto::device_csr(dir, device_id)
}

fn subject(name: &str) -> CaSubject {
    CaSubject::parse(&format!(
        "CN={name} {:08x},O=provisioner tests",
        rand::random::<u32>()
    ))
    .unwrap()
}

/// A fresh ACTIVE ACM Private CA root (the parent of the same account).
async fn pca_root(pca: &aws_sdk_acmpca::Client) -> String {
    moto::pca_root(pca).await
}

async fn pca_ca_pem(pca: &aws_sdk_acmpca::Client, ca: &str) -> String {
    pca.get_certificate_authority_certificate()
        .certificate_authority_arn(ca)
        .send()
        .await
        .unwrap()
        .certificate()
        .unwrap()
        .to_owned()
}

/// A subordinate created, signed by the openssl root, and installed; returns its ARN.
async fn ca_signed_offline(f: &Fixture, name: &str) -> String {
    let created = f.admin.create_subordinate_ca(&subject(name)).await.unwrap();
    let pem = openssl_sign_ca(f.dir.path(), name, &created.csr_pem);
    let root = std::fs::read_to_string(f.dir.path().join("root.pem")).unwrap();
    f.admin
        .install_ca_certificate(&created.ca_arn, &pem, Some(&root))
        .await
        .unwrap();
    created.ca_arn
}

/// `n` devices with certificates issued by the PCA CA `ca`, recorded in the registry and
/// registered (ACTIVE, with the CA) in IoT Core in both regions. Returns the records.
async fn issue_devices(f: &Fixture, ca: &str, n: usize, tag: &str) -> Vec<CertificateRecord> {
    let authority = AcmPcaAuthority::new(f.pca.clone(), AcmPcaConfig::new(ca));
    let ca_pem = pca_ca_pem(&f.pca, ca).await;
    let profile = IssuanceProfile::default();
    let mut records = Vec::new();
    for i in 0..n {
        let device_id = format!("{tag}-{i:04}");
        let csr = device_csr(f.dir.path(), &device_id);
        let key = CsrVerifier::new(CsrPolicy::default())
            .verify_der(&csr)
            .unwrap()
            .public_key;
        let summary = f
            .registry
            .import(
                [ImportItem {
                    source: "m.csv",
                    entry: Ok(ManifestRecord {
                        device_id: device_id.clone(),
                        public_key: key.clone(),
                        line: 1,
                    }),
                }],
                &ImportOptions {
                    now: NOW,
                    ..ImportOptions::default()
                },
            )
            .await
            .unwrap();
        assert!(summary.written);
        let token = format!("{:032x}", rand::random::<u128>());
        let signed = authority
            .issue_csr(&csr, &device_id, &profile, NOW, &token)
            .await
            .unwrap();
        let certificate_id = hex::encode(Sha256::digest(&signed.der));
        for region in REGIONS {
            let registered = iot(&f.sdk, region)
                .register_certificate()
                .certificate_pem(&signed.pem)
                .ca_certificate_pem(&ca_pem)
                .status(aws_sdk_iot::types::CertificateStatus::Active)
                .send()
                .await
                .unwrap();
            // The registry's id is IoT Core's: revocation addresses certificates by it.
            assert_eq!(
                registered.certificate_id(),
                Some(certificate_id.as_str()),
                "moto must compute IoT certificate ids from the DER (scripts/moto.sh starts it so)"
            );
        }
        let record = CertificateRecord {
            certificate_id,
            device_id: device_id.clone(),
            serial: signed.serial.clone(),
            issuer: signed.issuer.clone(),
            public_key: key,
            issued_at: NOW,
            not_before: signed.not_before,
            not_after: signed.not_after,
            status: CertificateStatus::Active,
            revoked: None,
            certificate_pem: signed.pem.clone(),
        };
        assert_eq!(record.issuer, ca_id(ca));
        f.registry
            .record_claimed(record.clone(), Vec::new(), NOW)
            .await
            .unwrap();
        records.push(record);
    }
    records
}

async fn iot_status(f: &Fixture, region: &str, certificate_id: &str) -> String {
    iot_certificate_status(&iot(&f.sdk, region), certificate_id)
        .await
        .unwrap()
        .as_str()
        .to_owned()
}

async fn iot_ca_status(f: &Fixture, region: &str, ca: &str) -> String {
    let description = f.admin.describe(ca).await.unwrap();
    let registration = description.iot.iter().find(|r| r.region == region).unwrap();
    // Read back through IoT directly, not only through `describe`.
    let id = registration.certificate_id.clone().unwrap();
    iot(&f.sdk, region)
        .describe_ca_certificate()
        .certificate_id(&id)
        .send()
        .await
        .unwrap()
        .certificate_description()
        .unwrap()
        .status()
        .unwrap()
        .as_str()
        .to_owned()
}

async fn registry_status(f: &Fixture, id: &str) -> CertificateRecord {
    f.registry.certificate(id).await.unwrap().unwrap()
}

fn quick() -> RotationOptions {
    RotationOptions {
        page_size: 2,
        settle: Duration::ZERO,
        ..RotationOptions::default()
    }
}

#[tokio::test]
async fn setup_registers_the_ca_in_every_region_and_makes_it_the_issuing_ca() {
    // given a subordinate signed by an openssl root
    let f = fixture().await;
    openssl_root(f.dir.path());
    let created = f
        .admin
        .create_subordinate_ca(&subject("Setup CA"))
        .await
        .unwrap();
    assert!(created.csr_pem.contains("BEGIN CERTIFICATE REQUEST"));
    assert_eq!(
        f.store.pending().await.unwrap(),
        Some(created.ca_arn.clone())
    );
    let before = f.admin.describe(&created.ca_arn).await.unwrap();
    assert_eq!(before.status, "PENDING_CERTIFICATE");
    assert!(before.certificate.is_none());
    let pem = openssl_sign_ca(f.dir.path(), "setup", &created.csr_pem);
    let root = std::fs::read_to_string(f.dir.path().join("root.pem")).unwrap();

    // when it is installed (certificate and chain in one file) and registered
    let installed = f
        .admin
        .install_ca_certificate(&created.ca_arn, &format!("{pem}{root}"), None)
        .await
        .unwrap();
    let registrations = f
        .admin
        .register_ca_in_regions(&created.ca_arn, &f.iot.regions())
        .await
        .unwrap();

    // then it is the issuing CA (none was in effect), ACTIVE at PCA, with its chain
    assert!(installed.became_current);
    assert_eq!(installed.chain_length, 1);
    assert!(installed.certificate.issuer.contains("Test Offline Root"));
    let current = f.store.current().await.unwrap().unwrap();
    assert_eq!(current.ca_arn, created.ca_arn);
    assert!(current.previous_ca_arns.is_empty());
    assert_eq!(
        f.store.pending().await.unwrap(),
        None,
        "in service, so no longer pending"
    );
    // and registered ACTIVE in both regions' IoT Core, as IoT itself reports
    assert_eq!(registrations.len(), 2);
    for region in REGIONS {
        assert_eq!(iot_ca_status(&f, region, &created.ca_arn).await, "ACTIVE");
    }
    let described = f.admin.describe(&created.ca_arn).await.unwrap();
    assert_eq!(described.status, "ACTIVE");
    assert_eq!(
        described.certificate.as_ref().unwrap().sha256,
        registrations[0].certificate_id.clone().unwrap(),
        "IoT's CA certificate id is the DER's SHA-256"
    );
    // and registering again changes nothing
    let again = f
        .admin
        .register_ca_in_regions(&created.ca_arn, &f.iot.regions())
        .await
        .unwrap();
    assert_eq!(again, registrations);
}

#[tokio::test]
async fn install_refuses_a_certificate_for_another_key() {
    let f = fixture().await;
    openssl_root(f.dir.path());
    let created = f
        .admin
        .create_subordinate_ca(&subject("Wrong Key CA"))
        .await
        .unwrap();
    // A CSR of a key the CA does not hold, signed by the right parent.
    openssl(
        f.dir.path(),
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "other.key",
            "-subj",
            "/CN=Other",
            "-out",
            "other.csr",
        ],
    );
    let csr = std::fs::read_to_string(f.dir.path().join("other.csr")).unwrap();
    let pem = openssl_sign_ca(f.dir.path(), "other", &csr);

    let error = f
        .admin
        .install_ca_certificate(&created.ca_arn, &pem, None)
        .await
        .unwrap_err();

    assert!(matches!(error, CaError::InvalidInput(_)), "{error:?}");
    assert!(
        error.to_string().contains("does not certify the key"),
        "{error}"
    );
    assert_eq!(
        f.admin.describe(&created.ca_arn).await.unwrap().status,
        "PENDING_CERTIFICATE"
    );
    assert!(f.store.current().await.unwrap().is_none());
}

#[tokio::test]
async fn switching_names_the_ca_it_replaces_so_two_rotations_cannot_race() {
    let f = fixture().await;
    f.store.set_current(None, "arn:a", 1).await.unwrap();
    // Another writer assumed no CA was in effect, or another CA: refused.
    let error = f.store.set_current(None, "arn:b", 2).await.unwrap_err();
    assert!(matches!(error, CaError::Conflict(_)), "{error:?}");
    let error = f
        .store
        .set_current(Some("arn:x"), "arn:b", 2)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("names arn:a"), "{error}");
    // The writer that names the CA in effect wins, and the old one is kept as previous.
    let current = f
        .store
        .set_current(Some("arn:a"), "arn:b", 3)
        .await
        .unwrap();
    assert_eq!(current.ca_arn, "arn:b");
    assert_eq!(current.previous_ca_arns, ["arn:a"]);
    assert_eq!(current.updated_at, 3);
}

#[tokio::test]
async fn rotation_revokes_the_old_cas_certificates_everywhere_and_its_parent_revokes_it() {
    // given CA A, signed by an ACM Private CA root of this account, issuing and
    // registered in both regions, with five devices, and one certificate of another CA
    let f = fixture().await;
    openssl_root(f.dir.path());
    let root = pca_root(&f.pca).await;
    let created = f
        .admin
        .create_subordinate_ca(&subject("CA A"))
        .await
        .unwrap();
    // (a serial moto can revoke: the test checks A's revocation at its parent)
    let (a_certificate_arn, a_pem) = loop {
        let validity = Validity::builder()
            .r#type(ValidityPeriodType::Years)
            .value(5)
            .build()
            .unwrap();
        let (arn, pem) = pca_issue(
            &f.pca,
            &root,
            &created.csr_pem,
            SUBORDINATE_TEMPLATE,
            validity,
        )
        .await;
        let der = pem_blocks(&pem, "CERTIFICATE").unwrap().remove(0);
        if moto::revocable_on_moto(&summarize_certificate(&der).unwrap().serial) {
            break (arn, pem);
        }
    };
    let old = created.ca_arn;
    let root_pem = pca_ca_pem(&f.pca, &root).await;
    f.admin
        .install_ca_certificate(&old, &a_pem, Some(&root_pem))
        .await
        .unwrap();
    f.admin
        .register_ca_in_regions(&old, &f.iot.regions())
        .await
        .unwrap();
    assert_eq!(f.store.current().await.unwrap().unwrap().ca_arn, old);
    let devices = issue_devices(&f, &old, 5, "rot").await;
    let other = ca_signed_offline(&f, "Other CA").await;
    let bystander = issue_devices(&f, &other, 1, "other").await.remove(0);
    // and CA B, installed, not yet issuing
    let new = ca_signed_offline(&f, "CA B").await;
    assert_eq!(f.store.current().await.unwrap().unwrap().ca_arn, old);

    // when the PKI admin rotates to B
    let mut seen: Vec<RotationProgress> = Vec::new();
    let outcome = f
        .admin
        .rotate(&new, &quick(), &f.iot, |p| seen.push(p.clone()))
        .await
        .unwrap();

    // then the config table names B, with A as previous
    let current = f.store.current().await.unwrap().unwrap();
    assert_eq!(current.ca_arn, new);
    assert_eq!(current.previous_ca_arns, std::slice::from_ref(&old));
    // and the progress item says done, with the right counts
    assert!(outcome.finished && !outcome.resumed);
    let recorded = f.store.rotation().await.unwrap().unwrap();
    assert_eq!(recorded, outcome.progress);
    assert_eq!(recorded.state, RotationState::Done);
    assert_eq!((recorded.revoked, recorded.total), (5, Some(5)));
    assert_eq!(recorded.reason, RevocationReason::Superseded);
    assert!(recorded.completed_at.is_some() && recorded.last_error.is_none());
    let states: Vec<RotationState> = seen.iter().map(|p| p.state).collect();
    for state in [
        RotationState::Registering,
        RotationState::Switching,
        RotationState::Revoking,
        RotationState::Deactivating,
        RotationState::Done,
    ] {
        assert!(
            states.contains(&state),
            "{state:?} not reported: {states:?}"
        );
    }
    // and every certificate of A is REVOKED in IoT in both regions and in the registry
    for device in &devices {
        for region in REGIONS {
            assert_eq!(
                iot_status(&f, region, &device.certificate_id).await,
                "REVOKED"
            );
        }
        let record = registry_status(&f, &device.certificate_id).await;
        assert_eq!(record.status, CertificateStatus::Revoked);
        assert_eq!(record.revoked.unwrap().1, RevocationReason::Superseded);
    }
    // but the other CA's certificate is untouched
    for region in REGIONS {
        assert_eq!(
            iot_status(&f, region, &bystander.certificate_id).await,
            "ACTIVE"
        );
    }
    assert_eq!(
        registry_status(&f, &bystander.certificate_id).await.status,
        CertificateStatus::Active
    );
    // and A's CA certificate is INACTIVE in both regions, B's ACTIVE
    for region in REGIONS {
        assert_eq!(iot_ca_status(&f, region, &old).await, "INACTIVE");
        assert_eq!(iot_ca_status(&f, region, &new).await, "ACTIVE");
    }
    // and the PCA root revoked A (moto shows a revoked certificate as "in progress")
    assert_eq!(recorded.parent_ca_arn.as_deref(), Some(root.as_str()));
    let error = f
        .pca
        .get_certificate()
        .certificate_authority_arn(&root)
        .certificate_arn(&a_certificate_arn)
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{:?}", error).contains("revoked"),
        "A is not revoked at its parent: {error:?}"
    );
    assert!(recorded.admin_action.unwrap().contains("--status DISABLED"));

    // and rotating to B again is refused: it issues already
    let error = f
        .admin
        .rotate(&new, &quick(), &f.iot, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, CaError::InvalidInput(_)), "{error:?}");
}

/// Fails its first call, then revokes through IoT Core: a crash in the middle of a batch.
struct FailOnce<'a> {
    iot: &'a IotRegions,
    failed: AtomicBool,
}

impl IotCertificateRevoker for FailOnce<'_> {
    async fn revoke_in_all_regions(&self, ids: &[String]) -> Result<(), PortError> {
        if !self.failed.swap(true, Ordering::SeqCst) {
            return Err(PortError::Unavailable {
                what: "IoT Core (injected)".into(),
                retry_after_secs: 1,
            });
        }
        self.iot.revoke_in_all_regions(ids).await
    }
}

#[tokio::test]
async fn a_failed_or_interrupted_rotation_resumes_from_its_cursor_and_finishes() {
    // given CA A signed by an offline root, issuing, with five devices, and CA B
    let f = fixture().await;
    openssl_root(f.dir.path());
    let old = ca_signed_offline(&f, "CA A").await;
    f.admin
        .register_ca_in_regions(&old, &f.iot.regions())
        .await
        .unwrap();
    let devices = issue_devices(&f, &old, 5, "res").await;
    let new = ca_signed_offline(&f, "CA B").await;

    // when the first batch fails in IoT Core
    let failing = FailOnce {
        iot: &f.iot,
        failed: AtomicBool::new(false),
    };
    let error = f
        .admin
        .rotate(&new, &quick(), &failing, |_| {})
        .await
        .unwrap_err();
    // then the rotation is recorded as failed while revoking, B already issues
    assert!(error.to_string().contains("injected"), "{error}");
    let failed = f.store.rotation().await.unwrap().unwrap();
    assert_eq!(failed.state, RotationState::Failed);
    assert_eq!(failed.failed_state, Some(RotationState::Revoking));
    assert!(failed.last_error.unwrap().contains("injected"));
    assert_eq!(failed.revoked, 0);
    assert_eq!(f.store.current().await.unwrap().unwrap().ca_arn, new);

    // and a rotation elsewhere is refused until this one is finished
    let error = f
        .admin
        .rotate(
            "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/other",
            &quick(),
            &f.iot,
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(error, CaError::Conflict(_)), "{error:?}");

    // when it is resumed for one batch only (two certificates a page)
    let options = RotationOptions {
        max_batches: Some(1),
        ..quick()
    };
    let partial = f
        .admin
        .rotate(&new, &options, &failing, |_| {})
        .await
        .unwrap();
    // then it stopped while revoking, two revoked, the cursor recorded
    assert!(!partial.finished && partial.resumed);
    let recorded = f.store.rotation().await.unwrap().unwrap();
    assert_eq!(recorded.state, RotationState::Revoking);
    assert_eq!(recorded.revoked, 2);
    assert_eq!(recorded.total, Some(5));
    assert!(recorded.cursor.is_some());
    let mut revoked_now = 0;
    for device in &devices {
        if registry_status(&f, &device.certificate_id).await.status == CertificateStatus::Revoked {
            revoked_now += 1;
            // Revoked in the registry only after IoT Core, in both regions.
            for region in REGIONS {
                assert_eq!(
                    iot_status(&f, region, &device.certificate_id).await,
                    "REVOKED"
                );
            }
        }
    }
    assert_eq!(revoked_now, 2);

    // when it is run again to the end
    let finished = f
        .admin
        .rotate(&new, &quick(), &f.iot, |_| {})
        .await
        .unwrap();

    // then everything is revoked, once, and the progress says done
    assert!(finished.finished && finished.resumed);
    let done = finished.progress;
    assert_eq!(done.state, RotationState::Done);
    assert_eq!((done.revoked, done.total), (5, Some(5)));
    for device in &devices {
        assert_eq!(
            registry_status(&f, &device.certificate_id).await.status,
            CertificateStatus::Revoked
        );
        for region in REGIONS {
            assert_eq!(
                iot_status(&f, region, &device.certificate_id).await,
                "REVOKED"
            );
        }
    }
    for region in REGIONS {
        assert_eq!(iot_ca_status(&f, region, &old).await, "INACTIVE");
    }
    // and the offline parent is not ACM PCA: the admin is told what to revoke
    assert_eq!(done.parent_ca_arn, None);
    let action = done.admin_action.unwrap();
    let serial = f
        .admin
        .describe(&old)
        .await
        .unwrap()
        .certificate
        .unwrap()
        .serial;
    assert!(
        action.contains(&serial) && action.contains("Test Offline Root"),
        "{action}"
    );
}

#[tokio::test]
async fn rotation_needs_an_issuing_ca_and_a_ready_target() {
    let f = fixture().await;
    let nothing = f
        .admin
        .rotate(
            "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/x",
            &quick(),
            &f.iot,
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(nothing.to_string().contains("no issuing CA"), "{nothing}");
    // A target without its certificate is refused before anything changes.
    f.store
        .set_current(
            None,
            "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/old",
            1,
        )
        .await
        .unwrap();
    let pending = f
        .admin
        .create_subordinate_ca(&subject("Pending CA"))
        .await
        .unwrap();
    let error = f
        .admin
        .rotate(&pending.ca_arn, &quick(), &f.iot, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, CaError::WrongState(_)), "{error:?}");
    assert!(f.store.rotation().await.unwrap().is_none());
}

#[tokio::test]
async fn the_registry_pages_a_cas_active_certificates_and_revokes_each_once() {
    let f = fixture().await;
    openssl_root(f.dir.path());
    let ca = ca_signed_offline(&f, "Paged CA").await;
    let devices = issue_devices(&f, &ca, 3, "page").await;
    let issuer = ca_id(&ca);
    assert_eq!(f.registry.count_active_by_issuer(issuer).await.unwrap(), 3);
    assert_eq!(
        f.registry
            .count_active_by_issuer("another-ca")
            .await
            .unwrap(),
        0
    );

    // Pages of one evaluated item, cursor to cursor, find all three once.
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (page, next) = f
            .registry
            .active_certificates_by_issuer(issuer, cursor.as_deref(), 1)
            .await
            .unwrap();
        assert!(page.len() <= 1);
        found.extend(page.into_iter().map(|c| c.certificate_id));
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    found.sort();
    let mut expected: Vec<String> = devices.iter().map(|d| d.certificate_id.clone()).collect();
    expected.sort();
    assert_eq!(found, expected);

    // Revoking counts what it changed: an unknown id, or one revoked already, is not.
    let first = [expected[0].clone(), "unknown".to_owned()];
    let revoked = f
        .registry
        .revoke_active(&first, RevocationReason::CaCompromise, NOW + 5)
        .await
        .unwrap();
    assert_eq!(revoked, 1);
    let revoked = f
        .registry
        .revoke_active(&expected, RevocationReason::Superseded, NOW + 9)
        .await
        .unwrap();
    assert_eq!(revoked, 2);
    let record = registry_status(&f, &expected[0]).await;
    assert_eq!(
        record.revoked,
        Some((NOW + 5, RevocationReason::CaCompromise))
    );
    assert!(f.registry.certificate("unknown").await.unwrap().is_none());
    assert_eq!(f.registry.count_active_by_issuer(issuer).await.unwrap(), 0);
}
