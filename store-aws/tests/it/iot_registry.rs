//! The IoT Core adapters against moto's server: the real SDK and wire protocol, IoT state
//! kept per region (so two regions are two real registries).
//!
//! Run by `scripts/test-aws.sh`, which starts moto on 127.0.0.1 through
//! `scripts/moto_server.py` (certificate ids = SHA-256 of the DER, as AWS computes them)
//! and sets `AWS_ENDPOINT_URL`, dummy credentials and `AWS_REGION`. Every test uses its
//! own table prefix, policy name and device ids, so the tests run in parallel. Certificates
//! are made by rcgen (a test CA and device certificates), not by the code under test.
//!
//! What moto cannot show, and these tests therefore do not claim (TOOLCHAIN.md, and the
//! module docs of `aws::iot`): signatures against the registered CA, policy evaluation
//! (the policy is checked as text), IoT rate limits, and an IoT Core certificate of the
//! CSR's key (moto self-signs a new RSA key, so `issue` must refuse it; the key check
//! itself is a unit test with rcgen certificates).

use provisioner_testkit::claimed;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_iot::types::CertificateStatus as IotStatus;
use claimed::RecordClaimed;
use provisioner_core::{
    CertificateAuthority, CertificateRecord, CertificateStatus, CsrPolicy, CsrVerifier, DeviceKey,
    IssuanceProfile, ManifestRecord, PortError, ThingRegistry,
};
use provisioner_store_aws::config::AwsSettings;
use provisioner_store_aws::dynamodb::{
    DynamoDbRegistry, DynamoDbTables, ImportItem, ImportOptions,
};
use provisioner_store_aws::iot::{
    CaRegistration, IotCoreAuthority, IotThingRegistry, RegionRetry, RegistrationStatus,
    AMAZON_ROOT_CA_1_PEM,
};
use rcgen::{CertificateParams, DnType, Issuer, KeyPair, PublicKeyData};
use sha2::{Digest, Sha256};

use crate::support::{iot, iot_certificate_status, sdk, unreachable_iot};

const SERVING: &str = "us-east-1";
const OTHER: &str = "eu-west-1";
const NOW: i64 = 1_800_000_000;

/// One test's world: its tables, policy, devices and a CA.
struct World {
    sdk: aws_config::SdkConfig,
    settings: AwsSettings,
    registry: DynamoDbRegistry,
    ca: TestCa,
    tag: String,
}

struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl World {
    /// Fresh tables and policy name; `regions` configured, serving region first.
    async fn new(regions: &[&str]) -> Self {
        let sdk = sdk().await;
        let tag = format!("{:012x}", rand::random::<u64>() >> 16);
        let prefix = format!("iot-{tag}-");
        let vars: HashMap<String, String> = [
            ("AWS_REGION", SERVING.to_owned()),
            ("PROVISIONER_REGIONS", regions.join(",")),
            ("PROVISIONER_TABLE_PREFIX", prefix.clone()),
            ("PROVISIONER_IOT_POLICY", format!("device-policy-{tag}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let settings = AwsSettings::from_vars(&vars).unwrap();
        let registry = DynamoDbRegistry::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            DynamoDbTables::with_prefix(&prefix),
        );
        registry.create_tables().await.unwrap();
        Self {
            sdk,
            settings,
            registry,
            ca: TestCa::new(&tag),
            tag,
        }
    }

    /// A thing registry over `clients` (default: a working client per configured
    /// region), registering with the test CA's certificate, retrying quickly.
    fn things_with(
        &self,
        clients: Vec<(String, aws_sdk_iot::Client)>,
        ca: CaRegistration,
    ) -> IotThingRegistry {
        IotThingRegistry::new(
            clients,
            aws_sdk_dynamodb::Client::new(&self.sdk),
            &self.settings,
            self.registry.clone(),
            ca,
        )
        .unwrap()
        .with_retry(RegionRetry {
            attempts: 2,
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(50),
        })
        .with_pending_grace(Duration::ZERO)
    }

    async fn things(&self) -> IotThingRegistry {
        let clients = self
            .settings
            .regions
            .iter()
            .map(|r| (r.clone(), iot(&self.sdk, r)))
            .collect();
        let things = self.things_with(clients, CaRegistration::fixed(&self.ca.pem).unwrap());
        things.create_registrations_table().await.unwrap();
        things
    }

    fn device_id(&self, n: u32) -> String {
        format!("dev-{}-{n}", self.tag)
    }

    /// Imports device `n` (the registry refuses certificates of unknown devices).
    async fn import_device(&self, n: u32) -> String {
        let device_id = self.device_id(n);
        let key = device_key(&KeyPair::generate().unwrap());
        let items = [ImportItem {
            source: "iot.csv",
            entry: Ok(ManifestRecord {
                device_id: device_id.clone(),
                public_key: key,
                line: 1,
            }),
        }];
        let options = ImportOptions {
            now: NOW,
            ..ImportOptions::default()
        };
        self.registry.import(items, &options).await.unwrap();
        device_id
    }

    /// A certificate for `device_id` signed by the test CA, recorded ACTIVE, superseding
    /// `supersede`.
    async fn issue(&self, device_id: &str, supersede: &[&CertificateRecord]) -> CertificateRecord {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, device_id);
        let certificate = params.signed_by(&key, &self.ca.issuer).unwrap();
        let record = CertificateRecord {
            certificate_id: hex::encode(Sha256::digest(certificate.der())),
            device_id: device_id.to_owned(),
            serial: "01".into(),
            issuer: "test-ca".into(),
            public_key: device_key(&key),
            issued_at: NOW,
            not_before: NOW - 300,
            not_after: NOW + 86_400,
            status: CertificateStatus::Active,
            revoked: None,
            certificate_pem: certificate.pem(),
        };
        let supersede = supersede.iter().map(|c| c.certificate_id.clone()).collect();
        self.registry
            .record_claimed(record.clone(), supersede, NOW)
            .await
            .unwrap();
        record
    }

    fn iot(&self, region: &str) -> aws_sdk_iot::Client {
        iot(&self.sdk, region)
    }

    /// The certificate's status in `region`'s IoT Core (`None`: not registered there).
    async fn status_in(&self, region: &str, certificate_id: &str) -> Option<IotStatus> {
        iot_certificate_status(&self.iot(region), certificate_id).await
    }

    async fn principals_in(&self, region: &str, device_id: &str) -> Vec<String> {
        self.iot(region)
            .list_thing_principals()
            .thing_name(device_id)
            .send()
            .await
            .unwrap()
            .principals()
            .to_vec()
    }

    async fn row_status(
        &self,
        things: &IotThingRegistry,
        certificate_id: &str,
    ) -> HashMap<String, (RegistrationStatus, u32, Option<String>)> {
        things
            .registrations_of(certificate_id)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.region, (r.status, r.attempts, r.last_error)))
            .collect()
    }
}

impl TestCa {
    fn new(tag: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("IoT test CA {tag}"));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: Issuer::new(params, key),
            pem,
        }
    }
}

fn device_key(key: &KeyPair) -> DeviceKey {
    DeviceKey::from_spki_der(&key.subject_public_key_info()).unwrap()
}

fn arn_id(arn: &str) -> &str {
    arn.rsplit_once(":cert/").unwrap().1
}

#[tokio::test]
async fn register_leaves_the_thing_its_certificate_and_the_least_privilege_policy() {
    let world = World::new(&[SERVING]).await;
    let things = world.things().await;
    let device_id = world.import_device(1).await;
    let certificate = world.issue(&device_id, &[]).await;

    things.register(&device_id, &certificate).await.unwrap();

    let iot = world.iot(SERVING);
    let principals = world.principals_in(SERVING, &device_id).await;
    assert_eq!(principals.len(), 1, "{principals:?}");
    let arn = &principals[0];
    assert_eq!(
        arn_id(arn),
        certificate.certificate_id,
        "IoT's id is SHA-256 of the DER"
    );
    assert_eq!(
        world.status_in(SERVING, &certificate.certificate_id).await,
        Some(IotStatus::Active)
    );
    let attached = iot
        .list_attached_policies()
        .target(arn)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = attached
        .policies()
        .iter()
        .filter_map(|p| p.policy_name())
        .collect();
    assert_eq!(names, [world.settings.iot_policy.as_str()]);

    let policy = iot
        .get_policy()
        .policy_name(&world.settings.iot_policy)
        .send()
        .await
        .unwrap();
    let document: serde_json::Value =
        serde_json::from_str(policy.policy_document().unwrap()).unwrap();
    let account_and_region = format!("arn:aws:iot:{SERVING}:{}:", arn.split(':').nth(4).unwrap());
    let statements = document["Statement"].as_array().unwrap();
    let connect = &statements[0];
    assert_eq!(connect["Action"], "iot:Connect");
    assert_eq!(
        connect["Resource"],
        format!("{account_and_region}client/${{iot:Connection.Thing.ThingName}}")
    );
    assert_eq!(
        connect["Condition"]["Bool"]["iot:Connection.Thing.IsAttached"],
        "true"
    );
    assert_eq!(
        statements[1]["Resource"],
        format!("{account_and_region}topic/dt/${{iot:Connection.Thing.ThingName}}/*")
    );
    assert_eq!(
        statements[2]["Resource"],
        format!("{account_and_region}topicfilter/dt/${{iot:Connection.Thing.ThingName}}/*")
    );

    // Registering again (the device asked again and got the same certificate) changes
    // nothing: one principal, one policy, still ACTIVE.
    things.register(&device_id, &certificate).await.unwrap();
    assert_eq!(world.principals_in(SERVING, &device_id).await, principals);
    let attached = iot
        .list_attached_policies()
        .target(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(attached.policies().len(), 1);

    // The serving region's row is there for the admin, DONE.
    let rows = world.row_status(&things, &certificate.certificate_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[SERVING].0, RegistrationStatus::Done);
}

#[tokio::test]
async fn the_ca_certificate_goes_with_the_registration_or_not_at_all() {
    let world = World::new(&[SERVING]).await;
    let iot = world.iot(SERVING);
    let ca_id = iot
        .register_ca_certificate()
        .ca_certificate(&world.ca.pem)
        .set_as_active(true)
        .send()
        .await
        .unwrap()
        .certificate_id()
        .unwrap()
        .to_owned();
    let with_ca = world.things().await;
    let device_id = world.import_device(1).await;
    let first = world.issue(&device_id, &[]).await;
    with_ca.register(&device_id, &first).await.unwrap();
    // moto's DescribeCertificate omits caCertificateId; ListCertificatesByCA shows it.
    assert_eq!(
        certificates_of_ca(&iot, &ca_id).await,
        std::slice::from_ref(&first.certificate_id),
        "RegisterCertificate named the issuing CA"
    );

    let without_ca = world.things_with(
        vec![(SERVING.to_owned(), world.iot(SERVING))],
        CaRegistration::Unregistered,
    );
    let other_device = world.import_device(2).await;
    let second = world.issue(&other_device, &[]).await;
    without_ca.register(&other_device, &second).await.unwrap();
    let described = iot
        .describe_certificate()
        .certificate_id(&second.certificate_id)
        .send()
        .await
        .unwrap();
    let description = described.certificate_description().unwrap();
    assert_eq!(description.status(), Some(&IotStatus::Active));
    assert_eq!(
        certificates_of_ca(&iot, &ca_id).await,
        std::slice::from_ref(&first.certificate_id),
        "RegisterCertificateWithoutCA named no CA"
    );
    assert_eq!(world.principals_in(SERVING, &other_device).await.len(), 1);
}

#[tokio::test]
async fn every_configured_region_holds_the_certificate_and_the_table_says_done() {
    let world = World::new(&[SERVING, OTHER]).await;
    let things = world.things().await;
    let device_id = world.import_device(1).await;
    let certificate = world.issue(&device_id, &[]).await;

    things.register(&device_id, &certificate).await.unwrap();
    // The serving region is registered before register returns.
    assert_eq!(
        world.status_in(SERVING, &certificate.certificate_id).await,
        Some(IotStatus::Active)
    );
    things.wait_for_background().await;

    for region in [SERVING, OTHER] {
        assert_eq!(
            world.status_in(region, &certificate.certificate_id).await,
            Some(IotStatus::Active),
            "{region}"
        );
        let principals = world.principals_in(region, &device_id).await;
        assert_eq!(principals.len(), 1, "{region}: {principals:?}");
        let policies = world
            .iot(region)
            .list_attached_policies()
            .target(&principals[0])
            .send()
            .await
            .unwrap();
        assert_eq!(policies.policies().len(), 1, "{region}");
        // moto keeps IoT per region: the ARN names the region it lives in.
        assert!(
            principals[0].contains(&format!(":iot:{region}:")),
            "{region}"
        );
    }
    let rows = world.row_status(&things, &certificate.certificate_id).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[SERVING], (RegistrationStatus::Done, 1, None));
    assert_eq!(rows[OTHER], (RegistrationStatus::Done, 1, None));
    assert!(things
        .pending_registrations(None)
        .await
        .unwrap()
        .registrations
        .is_empty());

    // The device asks again and gets the same certificate: the serving region is
    // registered again (idempotent, it heals), the other region, DONE, is left alone.
    things.register(&device_id, &certificate).await.unwrap();
    things.wait_for_background().await;
    let rows = world.row_status(&things, &certificate.certificate_id).await;
    assert_eq!(rows[SERVING], (RegistrationStatus::Done, 2, None));
    assert_eq!(rows[OTHER], (RegistrationStatus::Done, 1, None));
}

#[tokio::test]
async fn a_failing_region_is_recorded_failed_and_finished_by_retry_pending() {
    let world = World::new(&[SERVING, OTHER]).await;
    let broken = world.things_with(
        vec![
            (SERVING.to_owned(), world.iot(SERVING)),
            (OTHER.to_owned(), unreachable_iot(&world.sdk, OTHER)),
        ],
        CaRegistration::fixed(&world.ca.pem).unwrap(),
    );
    broken.create_registrations_table().await.unwrap();
    let device_id = world.import_device(1).await;
    let certificate = world.issue(&device_id, &[]).await;

    // The device is answered: the serving region worked.
    broken.register(&device_id, &certificate).await.unwrap();
    broken.wait_for_background().await;

    let rows = world.row_status(&broken, &certificate.certificate_id).await;
    assert_eq!(rows[SERVING].0, RegistrationStatus::Done);
    let (status, attempts, error) = &rows[OTHER];
    assert_eq!(*status, RegistrationStatus::Failed);
    assert_eq!(*attempts, 2, "both attempts counted");
    let error = error.as_deref().unwrap();
    assert!(
        error.contains(OTHER) && error.contains("connection failed"),
        "{error}"
    );
    assert_eq!(
        world.status_in(OTHER, &certificate.certificate_id).await,
        None
    );

    // The admin sees it.
    let page = broken.pending_registrations(None).await.unwrap();
    assert_eq!(page.registrations.len(), 1);
    assert_eq!(
        page.registrations[0].certificate_id,
        certificate.certificate_id
    );
    assert_eq!(page.registrations[0].region, OTHER);
    assert_eq!(page.registrations[0].device_id, device_id);

    // Retried while still broken: still FAILED, one more attempt, nothing lost.
    let summary = broken.retry_pending(10).await.unwrap();
    assert_eq!((summary.attempted, summary.done, summary.failed), (1, 0, 1));
    assert_eq!(
        world.row_status(&broken, &certificate.certificate_id).await[OTHER].1,
        3
    );

    // Fixed (a working client for the region): the retry finishes it.
    let fixed = world.things().await;
    let summary = fixed.retry_pending(10).await.unwrap();
    assert_eq!((summary.attempted, summary.done, summary.failed), (1, 1, 0));
    let rows = world.row_status(&fixed, &certificate.certificate_id).await;
    assert_eq!(rows[OTHER], (RegistrationStatus::Done, 4, None));
    assert_eq!(
        world.status_in(OTHER, &certificate.certificate_id).await,
        Some(IotStatus::Active)
    );
    assert_eq!(world.principals_in(OTHER, &device_id).await.len(), 1);
    assert!(fixed
        .pending_registrations(None)
        .await
        .unwrap()
        .registrations
        .is_empty());
    assert_eq!(fixed.retry_pending(10).await.unwrap().attempted, 0);
}

#[tokio::test]
async fn a_pending_row_inside_its_grace_period_is_left_to_its_task() {
    let world = World::new(&[SERVING, OTHER]).await;
    let broken = world
        .things_with(
            vec![
                (SERVING.to_owned(), world.iot(SERVING)),
                (OTHER.to_owned(), unreachable_iot(&world.sdk, OTHER)),
            ],
            CaRegistration::fixed(&world.ca.pem).unwrap(),
        )
        .with_retry(RegionRetry {
            attempts: 50,
            first_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(10),
        });
    broken.create_registrations_table().await.unwrap();
    let device_id = world.import_device(1).await;
    let certificate = world.issue(&device_id, &[]).await;
    broken.register(&device_id, &certificate).await.unwrap();

    // The background task is sleeping between attempts: its row is PENDING, with the
    // first attempt's error.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = world.row_status(&broken, &certificate.certificate_id).await;
    assert_eq!(rows[OTHER].0, RegistrationStatus::Pending);
    assert!(rows[OTHER].2.is_some());

    let patient = world
        .things()
        .await
        .with_pending_grace(Duration::from_secs(3600));
    let summary = patient.retry_pending(10).await.unwrap();
    assert_eq!((summary.attempted, summary.in_flight), (0, 1));
}

#[tokio::test]
async fn a_rotation_revokes_the_superseded_certificate_in_every_region() {
    let world = World::new(&[SERVING, OTHER]).await;
    let things = world.things().await;
    let device_id = world.import_device(1).await;
    let old = world.issue(&device_id, &[]).await;
    things.register(&device_id, &old).await.unwrap();
    things.wait_for_background().await;

    // What the flow does: record the new one with the old one superseded, then register.
    let new = world.issue(&device_id, &[&old]).await;
    things.register(&device_id, &new).await.unwrap();
    things.wait_for_background().await;

    for region in [SERVING, OTHER] {
        assert_eq!(
            world.status_in(region, &old.certificate_id).await,
            Some(IotStatus::Revoked),
            "{region}"
        );
        assert_eq!(
            world.status_in(region, &new.certificate_id).await,
            Some(IotStatus::Active),
            "{region}"
        );
        let principals = world.principals_in(region, &device_id).await;
        assert_eq!(principals.len(), 1, "{region}: {principals:?}");
        assert_eq!(arn_id(&principals[0]), new.certificate_id, "{region}");
    }
}

#[tokio::test]
async fn a_late_retry_of_a_superseded_certificate_leaves_the_new_one_alone() {
    let world = World::new(&[SERVING, OTHER]).await;
    let broken = world.things_with(
        vec![
            (SERVING.to_owned(), world.iot(SERVING)),
            (OTHER.to_owned(), unreachable_iot(&world.sdk, OTHER)),
        ],
        CaRegistration::fixed(&world.ca.pem).unwrap(),
    );
    broken.create_registrations_table().await.unwrap();
    let device_id = world.import_device(1).await;
    let old = world.issue(&device_id, &[]).await;
    broken.register(&device_id, &old).await.unwrap();
    broken.wait_for_background().await;
    assert_eq!(
        world.row_status(&broken, &old.certificate_id).await[OTHER].0,
        RegistrationStatus::Failed
    );

    // The device renews before the other region was fixed; then the region comes back.
    let things = world.things().await;
    let new = world.issue(&device_id, &[&old]).await;
    things.register(&device_id, &new).await.unwrap();
    things.wait_for_background().await;
    let summary = things.retry_pending(10).await.unwrap();
    assert_eq!((summary.attempted, summary.done), (1, 1));

    // The old certificate never reached the other region, and the new one is untouched.
    assert_eq!(world.status_in(OTHER, &old.certificate_id).await, None);
    assert_eq!(
        world.status_in(OTHER, &new.certificate_id).await,
        Some(IotStatus::Active)
    );
    assert_eq!(
        world.status_in(SERVING, &old.certificate_id).await,
        Some(IotStatus::Revoked)
    );
    let principals = world.principals_in(OTHER, &device_id).await;
    assert_eq!(principals.len(), 1);
    assert_eq!(arn_id(&principals[0]), new.certificate_id);
}

#[tokio::test]
async fn revoke_in_all_regions_revokes_everywhere_and_counts_the_absent() {
    let world = World::new(&[SERVING, OTHER]).await;
    let things = world.things().await;
    let mut ids = Vec::new();
    for n in 1..=2 {
        let device_id = world.import_device(n).await;
        let certificate = world.issue(&device_id, &[]).await;
        things.register(&device_id, &certificate).await.unwrap();
        ids.push(certificate.certificate_id);
    }
    things.wait_for_background().await;
    ids.push("0".repeat(64)); // registered nowhere

    let summary = things.revoke_in_all_regions(&ids).await;
    assert!(summary.is_complete(), "{:?}", summary.failed);
    assert_eq!((summary.revoked, summary.absent), (4, 2));
    for region in [SERVING, OTHER] {
        for id in &ids[..2] {
            assert_eq!(
                world.status_in(region, id).await,
                Some(IotStatus::Revoked),
                "{region} {id}"
            );
        }
    }
    // Again: already revoked is still revoked, not a failure.
    let again = things.revoke_in_all_regions(&ids[..2]).await;
    assert!(again.is_complete(), "{:?}", again.failed);
    assert_eq!(again.revoked, 4);
}

#[tokio::test]
async fn a_region_that_cannot_be_reached_is_reported_by_revoke_in_all_regions() {
    let world = World::new(&[SERVING, OTHER]).await;
    let things = world
        .things_with(
            vec![
                (SERVING.to_owned(), world.iot(SERVING)),
                (OTHER.to_owned(), unreachable_iot(&world.sdk, OTHER)),
            ],
            CaRegistration::Unregistered,
        )
        .with_retry(RegionRetry {
            attempts: 1,
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        });
    let summary = things.revoke_in_all_regions(&["ab".repeat(32)]).await;
    assert_eq!(summary.absent, 1);
    assert_eq!(summary.failed.len(), 1);
    assert_eq!(summary.failed[0].region, OTHER);
    assert!(summary.failed[0].error.contains("connection failed"));
}

/// A P-256 CSR for `device_id` (rcgen), verified as the flow verifies it.
fn verified_csr(device_id: &str) -> provisioner_core::VerifiedCsr {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, device_id);
    let csr = params.serialize_request(&key).unwrap();
    CsrVerifier::new(CsrPolicy::default())
        .verify_der(csr.der())
        .unwrap()
}

#[tokio::test]
async fn iot_core_mode_signs_in_iot_core_and_the_registry_only_attaches() {
    let world = World::new(&[SERVING]).await;
    let authority = IotCoreAuthority::from_sdk_config(&world.sdk, &world.settings);
    assert_eq!(authority.chain_pem().await.unwrap(), AMAZON_ROOT_CA_1_PEM);
    let device_id = world.import_device(1).await;
    let request = verified_csr(&device_id);

    // What moto can show: IoT Core made an ACTIVE certificate for the CSR's subject, with
    // the id AWS gives it (SHA-256 of the DER).
    let created = authority.create_from_csr(&request).await.unwrap();
    let signed = &created.signed;
    assert_eq!(
        created.certificate_id,
        hex::encode(Sha256::digest(&signed.der))
    );
    assert_eq!(signed.issuer, format!("iot-core:{SERVING}"));
    assert!(signed.not_after > signed.not_before);
    assert!(!signed.serial.is_empty() && signed.serial.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        world.status_in(SERVING, &created.certificate_id).await,
        Some(IotStatus::Active)
    );
    let parsed = <x509_cert::Certificate as der::Decode>::from_der(&signed.der).unwrap();
    assert!(parsed
        .tbs_certificate
        .subject
        .to_string()
        .contains(&format!("CN={device_id}")));
    // ... and what it cannot: moto certifies a new RSA key, not the CSR's.
    assert!(created.certified_key.is_err());

    // So `issue` refuses moto's certificate rather than hand out one the device's key
    // cannot use, and revokes it in IoT Core.
    let before = certificate_ids(&world.iot(SERVING)).await;
    let refused = authority
        .issue(&request, "key", &IssuanceProfile::default(), NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, PortError::Internal(m) if m.contains("key")),
        "{refused:?}"
    );
    let made: Vec<String> = certificate_ids(&world.iot(SERVING))
        .await
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    let mine = {
        let mut mine = Vec::new();
        for id in made {
            let pem = world
                .iot(SERVING)
                .describe_certificate()
                .certificate_id(&id)
                .send()
                .await
                .unwrap()
                .certificate_description()
                .unwrap()
                .certificate_pem()
                .unwrap()
                .to_owned();
            if pem.contains("BEGIN") && subject_cn_is(&pem, &device_id) {
                mine.push(id);
            }
        }
        mine
    };
    assert_eq!(mine.len(), 1, "issue made one certificate for the device");
    assert_eq!(
        world.status_in(SERVING, &mine[0]).await,
        Some(IotStatus::Revoked)
    );

    // The registry registers nothing for an IoT Core certificate (a CA source that fails
    // if asked proves it) and attaches it to the thing.
    let things = world.things_with(
        vec![(SERVING.to_owned(), world.iot(SERVING))],
        CaRegistration::from_fn(|issuer| async move {
            Err(PortError::Internal(format!("asked for the CA of {issuer}")))
        }),
    );
    things.create_registrations_table().await.unwrap();
    let record = CertificateRecord {
        certificate_id: created.certificate_id.clone(),
        device_id: device_id.clone(),
        serial: signed.serial.clone(),
        issuer: signed.issuer.clone(),
        public_key: request.public_key.clone(),
        issued_at: NOW,
        not_before: signed.not_before,
        not_after: signed.not_after,
        status: CertificateStatus::Active,
        revoked: None,
        certificate_pem: signed.pem.clone(),
    };
    world
        .registry
        .record_claimed(record.clone(), vec![], NOW)
        .await
        .unwrap();
    things.register(&device_id, &record).await.unwrap();
    let principals = world.principals_in(SERVING, &device_id).await;
    assert_eq!(principals, std::slice::from_ref(&created.certificate_arn));
}

async fn certificates_of_ca(iot: &aws_sdk_iot::Client, ca_id: &str) -> Vec<String> {
    iot.list_certificates_by_ca()
        .ca_certificate_id(ca_id)
        .send()
        .await
        .unwrap()
        .certificates()
        .iter()
        .filter_map(|c| c.certificate_id().map(str::to_owned))
        .collect()
}

/// Every certificate id in the region, page after page (a moto shared with the other AWS
/// tests holds hundreds).
async fn certificate_ids(iot: &aws_sdk_iot::Client) -> Vec<String> {
    let mut ids = Vec::new();
    let mut marker = None;
    loop {
        let page = iot
            .list_certificates()
            .page_size(250)
            .set_marker(marker)
            .send()
            .await
            .unwrap();
        ids.extend(
            page.certificates()
                .iter()
                .filter_map(|c| c.certificate_id().map(str::to_owned)),
        );
        match page.next_marker() {
            Some(next) if !next.is_empty() => marker = Some(next.to_owned()),
            _ => return ids,
        }
    }
}

fn subject_cn_is(pem: &str, device_id: &str) -> bool {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).unwrap();
    let parsed = <x509_cert::Certificate as der::Decode>::from_der(&der).unwrap();
    parsed.tbs_certificate.subject.to_string() == format!("CN={device_id}")
}

#[tokio::test]
async fn a_thing_registry_without_clients_or_with_the_wrong_first_region_is_refused() {
    let world = World::new(&[SERVING, OTHER]).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&world.sdk);
    let none = IotThingRegistry::new(
        vec![],
        dynamo.clone(),
        &world.settings,
        world.registry.clone(),
        CaRegistration::Unregistered,
    );
    assert!(none.is_err());
    let wrong_first = IotThingRegistry::new(
        vec![(OTHER.to_owned(), world.iot(OTHER))],
        dynamo,
        &world.settings,
        world.registry.clone(),
        CaRegistration::Unregistered,
    );
    assert!(wrong_first.unwrap_err().to_string().contains(SERVING));
    let from_settings = IotThingRegistry::from_sdk_config(
        &world.sdk,
        aws_sdk_dynamodb::Client::new(&world.sdk),
        &world.settings,
        world.registry.clone(),
        CaRegistration::Unregistered,
    )
    .unwrap();
    assert_eq!(from_settings.regions(), [SERVING, OTHER]);
}
