//! The admin API on AWS ([`AwsFleet`] behind the real admin router) and the scheduled
//! maintenance ([`Maintenance`]) against moto's server: DynamoDB, ACM Private CA and IoT
//! Core in two regions, through the real SDK and wire protocol.
//!
//! Run by `scripts/test-aws.sh` (moto on 127.0.0.1 with IoT certificate ids computed from
//! the DER, `AWS_ENDPOINT_URL`, dummy credentials). Every test has tables, a policy and
//! CAs of its own, so the tests run in parallel.
//!
//! The deployed admin API signs in with Cognito JWTs only (tested in `admin_jwt.rs`); the
//! router here accepts a fixed test token from a token file, as `provisioner serve
//! --backend aws` accepts its data directory's. What moto cannot show is not claimed
//! (TOOLCHAIN.md): it makes no CRL, and a revocation at ACM Private CA is seen
//! only through its quirk that `GetCertificate` answers "revoked" for a revoked
//! certificate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_acmpca::types::{Validity, ValidityPeriodType};
use aws_sdk_iot::types::CertificateStatus as IotStatus;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use claimed::RecordClaimed;
use http_body_util::BodyExt;
use provisioner_app::fleet::{FleetAdmin, FleetError, RotationRequest};
use provisioner_app::import::{ImportItem, ImportOptions};
use provisioner_core::{
    CertificateRecord, CertificateStatus, CsrVerifier, DeviceRegistry, ManifestRecord,
    RevocationReason, ThingRegistry,
};
use provisioner_http::admin::{self, AdminContext};
use provisioner_store_aws::adapters::CurrentPcaAuthority;
use provisioner_store_aws::admin::AwsFleet;
use provisioner_store_aws::ca::{
    ca_id, pem_blocks, pem_of, summarize_certificate, IotRegions, IssuingCaAdmin, IssuingCaStore,
    END_ENTITY_TEMPLATE,
};
use provisioner_store_aws::config::AwsSettings;
use provisioner_store_aws::dynamodb::{DynamoDbRegistry, DynamoDbTables};
use provisioner_store_aws::iot::{CaRegistration, IotThingRegistry, RegionRetry};
use provisioner_store_aws::maintenance::{Maintenance, MaintenanceBudget};
use serde_json::{json, Value};
use tower::ServiceExt;

const SERVING: &str = "us-east-1";
const OTHER: &str = "eu-west-1";
const REGIONS: [&str; 2] = [SERVING, OTHER];
const NOW: i64 = 1_800_000_000;
const TOKEN: &str = "aws-admin-test-token-0123456789abcdef";

use provisioner_testkit::claimed;
use provisioner_testkit::moto;

use crate::support::{iot, iot_certificate_status, pca_issue, unreachable_iot};

/// A maintenance run that revokes one page per run and does not wait after switching.
const BUDGET: MaintenanceBudget = MaintenanceBudget {
    rotation_batches: 1,
    registrations: 10,
    settle: Duration::ZERO,
};

// ---------------------------------------------------------------------------------------
// The world: tables, CAs, devices
// ---------------------------------------------------------------------------------------

struct World {
    sdk: aws_config::SdkConfig,
    settings: AwsSettings,
    registry: DynamoDbRegistry,
    store: IssuingCaStore,
    ca: IssuingCaAdmin,
    pca: aws_sdk_acmpca::Client,
    dir: tempfile::TempDir,
    tag: String,
}

impl World {
    async fn new() -> Self {
        moto::endpoint();
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(SERVING))
            .load()
            .await;
        let tag = format!("{:010x}", rand::random::<u64>() >> 24);
        let prefix = format!("adm-{tag}-");
        let vars: HashMap<String, String> = [
            ("AWS_REGION", SERVING.to_owned()),
            ("PROVISIONER_REGIONS", REGIONS.join(",")),
            ("PROVISIONER_TABLE_PREFIX", prefix.clone()),
            ("PROVISIONER_IOT_POLICY", format!("device-policy-{tag}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let settings = AwsSettings::from_vars(&vars).unwrap();
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let registry = DynamoDbRegistry::new(dynamo.clone(), DynamoDbTables::with_prefix(&prefix));
        registry.create_tables().await.unwrap();
        let store = IssuingCaStore::new(dynamo, settings.config_table());
        store.create_config_table().await.unwrap();
        let regions: Vec<String> = REGIONS.iter().map(|r| (*r).to_owned()).collect();
        let pca = aws_sdk_acmpca::Client::new(&sdk);
        let ca = IssuingCaAdmin::new(
            pca.clone(),
            IotRegions::new(&sdk, &regions),
            store.clone(),
            registry.clone(),
            None,
            SERVING,
        )
        .with_deadline(Duration::from_secs(20));
        let world = Self {
            sdk,
            settings,
            registry,
            store,
            ca,
            pca,
            dir: tempfile::tempdir().unwrap(),
            tag,
        };
        world
            .things(false)
            .create_registrations_table()
            .await
            .unwrap();
        world
    }

    /// The thing registry as the service builds it (the CA's certificate from the config
    /// table), retrying quickly, pending rows taken over at once. With `broken_other`, the
    /// other region's IoT Core cannot be reached.
    fn things(&self, broken_other: bool) -> IotThingRegistry {
        let clients = REGIONS
            .iter()
            .map(|region| {
                let client = if broken_other && *region == OTHER {
                    unreachable_iot(&self.sdk, region)
                } else {
                    iot(&self.sdk, region)
                };
                ((*region).to_owned(), client)
            })
            .collect();
        let lookup = Arc::new(CurrentPcaAuthority::new(
            self.sdk.clone(),
            self.store.clone(),
            None,
        ));
        let ca = CaRegistration::from_fn(move |issuer: String| {
            let lookup = lookup.clone();
            async move { lookup.chain_of(&issuer).await }
        });
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

    fn fleet(&self, things: IotThingRegistry) -> AwsFleet {
        AwsFleet::from_parts(
            self.registry.clone(),
            self.ca.clone(),
            things,
            Some(self.sdk.clone()),
        )
    }

    fn maintenance(&self, things: IotThingRegistry) -> Maintenance {
        Maintenance::from_parts(Some(self.ca.clone()), things)
    }

    /// A fresh ACM Private CA root, registered in IoT Core in both regions; the issuing
    /// CA when none is in effect yet.
    async fn registered_ca(&self) -> String {
        let arn = moto::pca_root(&self.pca).await;
        let regions: Vec<String> = REGIONS.iter().map(|r| (*r).to_owned()).collect();
        self.ca
            .register_ca_in_regions(&arn, &regions)
            .await
            .unwrap();
        arn
    }

    /// Device `n`: imported, a certificate issued by the PCA `ca` (with a serial moto can
    /// revoke: an even number of hex digits), recorded ACTIVE, and registered by `things`
    /// in both regions. The record and the certificate's ARN at ACM Private CA.
    async fn device(
        &self,
        ca: &str,
        things: &IotThingRegistry,
        n: u32,
    ) -> (CertificateRecord, String) {
        let device_id = format!("dev-{}-{n}", self.tag);
        let csr = moto::device_csr(self.dir.path(), &device_id);
        let key = CsrVerifier::default().verify_der(&csr).unwrap().public_key;
        let summary = self
            .registry
            .import(
                [ImportItem {
                    source: "admin.csv",
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
        assert_eq!(summary.imported, 1);
        let csr_pem = pem_of("CERTIFICATE REQUEST", &csr);
        let (arn, der) = loop {
            let validity = Validity::builder()
                .r#type(ValidityPeriodType::Days)
                .value(365)
                .build()
                .unwrap();
            let (arn, pem) =
                pca_issue(&self.pca, ca, &csr_pem, END_ENTITY_TEMPLATE, validity).await;
            let der = pem_blocks(&pem, "CERTIFICATE").unwrap().remove(0);
            if moto::revocable_on_moto(&summarize_certificate(&der).unwrap().serial) {
                break (arn, der);
            }
        };
        let summary = summarize_certificate(&der).unwrap();
        let record = CertificateRecord {
            certificate_id: summary.sha256.clone(),
            device_id: device_id.clone(),
            serial: summary.serial,
            issuer: ca_id(ca).to_owned(),
            public_key: key,
            issued_at: NOW,
            not_before: summary.not_before,
            not_after: summary.not_after,
            status: CertificateStatus::Active,
            revoked: None,
            certificate_pem: pem_of("CERTIFICATE", &der),
        };
        self.registry
            .record_claimed(record.clone(), Vec::new(), NOW)
            .await
            .unwrap();
        things.register(&device_id, &record).await.unwrap();
        things.wait_for_background().await;
        (record, arn)
    }

    async fn iot_status(&self, region: &str, certificate_id: &str) -> Option<IotStatus> {
        iot_certificate_status(&iot(&self.sdk, region), certificate_id).await
    }

    async fn registry_status(&self, certificate_id: &str) -> CertificateStatus {
        self.registry
            .certificate(certificate_id)
            .await
            .unwrap()
            .unwrap()
            .status
    }

    /// Whether moto's ACM Private CA shows `certificate_arn` revoked (its `GetCertificate`
    /// refuses a revoked certificate, naming the reason).
    async fn revoked_at_pca(&self, ca: &str, certificate_arn: &str) -> bool {
        match self
            .pca
            .get_certificate()
            .certificate_authority_arn(ca)
            .certificate_arn(certificate_arn)
            .send()
            .await
        {
            Ok(_) => false,
            Err(e) => {
                let text = format!("{e:?}");
                assert!(text.contains("revoked"), "unexpected PCA error: {text}");
                true
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The router
// ---------------------------------------------------------------------------------------

/// The admin router over the AWS fleet, accepting the test token from a token file (as
/// `provisioner serve --backend aws` does with its data directory's), so the tests reach
/// the routes without a Cognito pool.
fn router(fleet: AwsFleet) -> Router {
    static TOKEN_DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = TOKEN_DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin-token"), TOKEN).unwrap();
        dir
    });
    admin::router(Arc::new(
        AdminContext::new(Arc::new(fleet)).with_token_file(dir.path().join("admin-token")),
    ))
}

/// `method path` with the test token and, if given, a JSON body; the status and the JSON
/// answer (`Value::Null` when the body is not JSON).
async fn call(
    router: &Router,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {TOKEN}"));
    let body = match body {
        Some(json) => {
            request = request.header("content-type", "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let response = router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_rotation_started_through_the_api_is_finished_by_the_maintenance() {
    // given CA A issuing, three devices with its certificates in both regions, and CA B
    let world = World::new().await;
    let old = world.registered_ca().await;
    let things = world.things(false);
    let mut devices = Vec::new();
    for n in 0..3 {
        devices.push(world.device(&old, &things, n).await.0);
    }
    let new = moto::pca_root(&world.pca).await;
    let fleet = world.fleet(things.clone());
    let app = router(fleet.clone());

    // when the rotation is asked for without a target, or with one that is no ARN
    let (status, body) = call(&app, "POST", "/admin/api/ca/rotate", Some(json!({}))).await;
    // then it is refused, saying what to send
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "missing_target_ca", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("\"to\""),
        "{body}"
    );
    let (status, body) = call(&app, "POST", "/admin/api/ca/rotate", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("missing_target_ca"))
    );
    let (status, body) = call(
        &app,
        "POST",
        "/admin/api/ca/rotate",
        Some(json!({"to": "ca-b"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target_ca"))
    );
    // and rotating to the CA that issues now is refused too
    let (status, body) = call(
        &app,
        "POST",
        "/admin/api/ca/rotate",
        Some(json!({"to": old})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target_ca")),
        "{body}"
    );
    assert!(world.store.rotation().await.unwrap().is_none());

    // when the rotation to B is started through the API
    let (status, started) = call(
        &app,
        "POST",
        "/admin/api/ca/rotate",
        Some(json!({"to": new})),
    )
    .await;

    // then it is accepted and only recorded: registering, nothing switched yet
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["state"], "running");
    assert_eq!(started["step"], "registering");
    assert_eq!(started["oldCa"], old.as_str());
    assert_eq!(started["newCa"], new.as_str());
    assert_eq!(started["resumed"], false);
    let (status, shown) = call(&app, "GET", "/admin/api/ca/rotation", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (shown["state"].as_str(), shown["step"].as_str()),
        (Some("running"), Some("registering"))
    );
    assert_eq!(shown["jobId"], started["jobId"]);
    assert_eq!(world.store.current().await.unwrap().unwrap().ca_arn, old);
    for device in &devices {
        assert_eq!(
            world.registry_status(&device.certificate_id).await,
            CertificateStatus::Active
        );
    }
    // and asking again resumes the same rotation; another target is refused meanwhile
    let (status, again) = call(
        &app,
        "POST",
        "/admin/api/ca/rotate",
        Some(json!({"to": new})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        (again["resumed"].as_bool(), &again["jobId"]),
        (Some(true), &started["jobId"])
    );
    let third = moto::pca_root(&world.pca).await;
    let (status, body) = call(
        &app,
        "POST",
        "/admin/api/ca/rotate",
        Some(json!({"to": third})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("rotation_in_progress")),
        "{body}"
    );

    // when the maintenance runs, one page of certificates a run, until it is finished
    let maintenance = world.maintenance(things.clone());
    let first = maintenance.run_once(&BUDGET).await;
    assert!(first.is_ok(), "{:?}", first.errors);
    let run = first.rotation.unwrap();
    // then the first run registered and switched, revoked one page, and stopped there
    assert_eq!(
        (run.state, run.finished, run.revoked, run.total),
        ("revoking", false, 3, Some(3))
    );
    assert_eq!(world.store.current().await.unwrap().unwrap().ca_arn, new);
    let (_, shown) = call(&app, "GET", "/admin/api/ca/rotation", None).await;
    assert_eq!(
        (shown["state"].as_str(), shown["step"].as_str()),
        (Some("running"), Some("revoking"))
    );
    let mut runs = 1;
    loop {
        let (_, shown) = call(&app, "GET", "/admin/api/ca/rotation", None).await;
        if shown["state"] == "finished" {
            assert_eq!(shown["step"], "done");
            assert_eq!(shown["finished"], true);
            assert_eq!(
                (shown["revoked"].as_u64(), shown["total"].as_u64()),
                (Some(3), Some(3))
            );
            assert!(shown["finishedAt"].is_string(), "{shown}");
            assert!(
                shown["adminAction"].as_str().unwrap().contains(&old),
                "{shown}"
            );
            break;
        }
        assert!(runs < 10, "not finished after {runs} runs: {shown}");
        let report = maintenance.run_once(&BUDGET).await;
        assert!(report.is_ok(), "{:?}", report.errors);
        runs += 1;
    }
    assert_eq!(runs, 2, "the second run finds nothing more and deactivates");
    // and a run after that has nothing to do
    assert_eq!(maintenance.run_once(&BUDGET).await.rotation, None);

    // then every certificate of A is REVOKED in the registry and in IoT Core in both regions
    for device in &devices {
        let record = world
            .registry
            .certificate(&device.certificate_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.status, CertificateStatus::Revoked);
        assert_eq!(record.revoked.unwrap().1, RevocationReason::Superseded);
        for region in REGIONS {
            assert_eq!(
                world.iot_status(region, &device.certificate_id).await,
                Some(IotStatus::Revoked),
                "{} in {region}",
                device.certificate_id
            );
        }
    }
    // and GET ca shows B issuing and A revoked
    let (status, ca) = call(&app, "GET", "/admin/api/ca", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ca["backend"], "aws");
    assert_eq!(ca["current"]["arn"], new.as_str());
    assert_eq!(ca["current"]["id"], ca_id(&new));
    assert_eq!(ca["previous"][0]["arn"], old.as_str());
    assert_eq!(ca["previous"][0]["state"], "revoked", "{ca}");
    assert!(ca["previous"][0]["revokedAt"].is_string());

    // when B is rotated out in turn, to a third CA
    let (status, body) = call(
        &app,
        "POST",
        "/admin/api/ca/rotate",
        Some(json!({"to": third})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    for _ in 0..3 {
        let report = maintenance.run_once(&BUDGET).await;
        assert!(report.is_ok(), "{:?}", report.errors);
    }
    let (_, shown) = call(&app, "GET", "/admin/api/ca/rotation", None).await;
    assert_eq!(
        shown["state"], "finished",
        "B issued nothing to revoke: {shown}"
    );
    // then GET ca lists both earlier CAs revoked, newest first, each with its own time
    let (_, ca) = call(&app, "GET", "/admin/api/ca", None).await;
    assert_eq!(ca["current"]["arn"], third.as_str());
    let previous: Vec<(&str, &str)> = ca["previous"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["arn"].as_str().unwrap(), p["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        previous,
        [(new.as_str(), "revoked"), (old.as_str(), "revoked")],
        "{ca}"
    );
    let retired = world.store.retired(&old).await.unwrap().unwrap();
    assert_eq!(
        (retired.replaced_by.as_str(), retired.reason),
        (new.as_str(), RevocationReason::Superseded)
    );
}

#[tokio::test]
async fn ca_overview_crl_and_revocation_through_the_api() {
    // given CA A issuing, with two devices registered in both regions
    let world = World::new().await;
    let ca = world.registered_ca().await;
    let things = world.things(false);
    let (first, first_arn) = world.device(&ca, &things, 1).await;
    let (second, second_arn) = world.device(&ca, &things, 2).await;
    let fleet = world.fleet(things);
    let app = router(fleet.clone());

    // then the fleet is AWS's, and GET ca names A with its chain
    assert_eq!(fleet.backend(), "aws");
    let (status, overview) = call(&app, "GET", "/admin/api/ca", None).await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    assert_eq!(overview["backend"], "aws");
    assert_eq!(overview["canCreateNextCa"], false);
    let current = &overview["current"];
    assert_eq!(current["arn"], ca.as_str());
    assert_eq!(current["id"], ca_id(&ca));
    assert_eq!(current["state"], "current");
    assert!(
        current["subject"].as_str().unwrap().contains("Test Root"),
        "{current}"
    );
    assert!(current["chainPem"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert_eq!(current["certificateId"].as_str().unwrap().len(), 64);
    assert_eq!(overview["previous"], json!([]));
    assert_eq!(overview["pendingCsr"], Value::Null);

    // and the CRL is ACM Private CA's to publish: first none is enabled, then a bucket
    let (status, body) = call(&app, "GET", "/admin/api/ca/crl", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("crl_published_by_pca")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("no CRL enabled"),
        "{body}"
    );
    let bucket = format!("crl-{}", world.tag);
    world
        .pca
        .update_certificate_authority()
        .certificate_authority_arn(&ca)
        .revocation_configuration(
            aws_sdk_acmpca::types::RevocationConfiguration::builder()
                .crl_configuration(
                    aws_sdk_acmpca::types::CrlConfiguration::builder()
                        .enabled(true)
                        .s3_bucket_name(&bucket)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (status, body) = call(&app, "GET", "/admin/api/ca/crl", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["message"].as_str().unwrap().contains(&bucket),
        "{body}"
    );
    // (and what a relying party outside IoT Core must do)
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("A relying party outside IoT Core (another broker"),
        "{body}"
    );
    assert_eq!(overview["crls"], json!([]));

    // when the first certificate is revoked through the API
    let (status, revoked) = call(
        &app,
        "POST",
        &format!("/admin/api/certificates/{}/revoke", first.certificate_id),
        Some(json!({"reason": "keyCompromise"})),
    )
    .await;

    // then it is REVOKED in the registry, at ACM Private CA and in IoT Core in both regions
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["certificate"]["status"], "REVOKED");
    assert_eq!(revoked["certificate"]["revocationReason"], "keyCompromise");
    assert_eq!(
        (
            revoked["alreadyRevoked"].as_bool(),
            revoked["propagated"].as_bool()
        ),
        (Some(false), Some(true))
    );
    assert_eq!(
        world.registry_status(&first.certificate_id).await,
        CertificateStatus::Revoked
    );
    assert!(world.revoked_at_pca(&ca, &first_arn).await);
    for region in REGIONS {
        assert_eq!(
            world.iot_status(region, &first.certificate_id).await,
            Some(IotStatus::Revoked)
        );
    }
    // but the second certificate is untouched everywhere
    assert_eq!(
        world.registry_status(&second.certificate_id).await,
        CertificateStatus::Active
    );
    assert!(!world.revoked_at_pca(&ca, &second_arn).await);
    for region in REGIONS {
        assert_eq!(
            world.iot_status(region, &second.certificate_id).await,
            Some(IotStatus::Active)
        );
    }
    // and revoking again changes nothing, and says so
    let (status, again) = call(
        &app,
        "POST",
        &format!("/admin/api/certificates/{}/revoke", first.certificate_id),
        Some(json!({"reason": "superseded"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            again["alreadyRevoked"].as_bool(),
            again["propagated"].as_bool()
        ),
        (Some(true), Some(true))
    );
    assert_eq!(again["certificate"]["revocationReason"], "keyCompromise");
    // and an unknown certificate is a 404
    let (status, body) = call(
        &app,
        "POST",
        &format!("/admin/api/certificates/{}/revoke", "0".repeat(64)),
        Some(json!({"reason": "keyCompromise"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_certificate"))
    );
    // and no rotation has run
    let (status, body) = call(&app, "GET", "/admin/api/ca/rotation", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("no_rotation"))
    );
}

#[tokio::test]
async fn disabling_with_revoke_revokes_at_acm_pca_and_in_iot_core_in_every_region() {
    // given two devices with a certificate each, registered in both regions
    let world = World::new().await;
    let ca = world.registered_ca().await;
    let things = world.things(false);
    let (stolen, stolen_arn) = world.device(&ca, &things, 1).await;
    let (other, other_arn) = world.device(&ca, &things, 2).await;
    let app = router(world.fleet(things));
    let path = format!("/admin/api/devices/{}/disable", stolen.device_id);

    // when the body is malformed: 400, and the device stays enabled
    let (status, body) = call(&app, "POST", &path, Some(json!({"revoke": "yes"}))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_body")),
        "{body}"
    );
    let (_, device) = call(
        &app,
        "GET",
        &format!("/admin/api/devices/{}", stolen.device_id),
        None,
    )
    .await;
    assert_eq!(device["enabled"], true);

    // when the first device is disabled with {"revoke": true}
    let (status, answer) = call(&app, "POST", &path, Some(json!({"revoke": true}))).await;

    // then it is disabled, and its certificate revoked for keyCompromise everywhere
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["enabled"], false);
    let revoked = answer["revokedCertificates"].as_array().unwrap();
    assert_eq!(revoked.len(), 1, "{answer}");
    assert_eq!(
        revoked[0]["certificate"]["certificateId"],
        stolen.certificate_id.as_str()
    );
    assert_eq!(
        revoked[0]["certificate"]["revocationReason"],
        "keyCompromise"
    );
    assert_eq!(
        (
            revoked[0]["propagated"].as_bool(),
            revoked[0]["crlRegenerated"].as_bool()
        ),
        (Some(true), Some(false))
    );
    assert_eq!(
        world.registry_status(&stolen.certificate_id).await,
        CertificateStatus::Revoked
    );
    assert!(world.revoked_at_pca(&ca, &stolen_arn).await);
    let at_pca = moto::pca_revocations(&ca).await;
    assert_eq!(
        at_pca.values().map(String::as_str).collect::<Vec<_>>(),
        ["KEY_COMPROMISE"],
        "{at_pca:?}"
    );
    for region in REGIONS {
        assert_eq!(
            world.iot_status(region, &stolen.certificate_id).await,
            Some(IotStatus::Revoked),
            "{region}"
        );
    }
    let (_, device) = call(
        &app,
        "GET",
        &format!("/admin/api/devices/{}", stolen.device_id),
        None,
    )
    .await;
    assert_eq!(device["enabled"], false);

    // and the other device's certificate is untouched everywhere
    assert_eq!(
        world.registry_status(&other.certificate_id).await,
        CertificateStatus::Active
    );
    assert!(!world.revoked_at_pca(&ca, &other_arn).await);
    for region in REGIONS {
        assert_eq!(
            world.iot_status(region, &other.certificate_id).await,
            Some(IotStatus::Active)
        );
    }
}

#[tokio::test]
async fn a_revocation_that_cannot_reach_a_region_stands_and_says_it_did_not_propagate() {
    let world = World::new().await;
    let ca = world.registered_ca().await;
    let (record, certificate_arn) = world.device(&ca, &world.things(false), 1).await;
    // The other region's IoT Core is unreachable for this fleet.
    let broken = world.fleet(world.things(true));

    let revoked = broken
        .revoke(&record.certificate_id, RevocationReason::KeyCompromise, NOW)
        .await
        .unwrap();

    assert!(!revoked.propagated && !revoked.already_revoked);
    assert_eq!(revoked.certificate.status, CertificateStatus::Revoked);
    assert_eq!(
        world.registry_status(&record.certificate_id).await,
        CertificateStatus::Revoked
    );
    assert!(world.revoked_at_pca(&ca, &certificate_arn).await);
    assert_eq!(
        world.iot_status(SERVING, &record.certificate_id).await,
        Some(IotStatus::Revoked)
    );
    assert_eq!(
        world.iot_status(OTHER, &record.certificate_id).await,
        Some(IotStatus::Active)
    );

    // Revoking again once the region is back finishes what was left.
    let fixed = world.fleet(world.things(false));
    let again = fixed
        .revoke(
            &record.certificate_id,
            RevocationReason::KeyCompromise,
            NOW + 1,
        )
        .await
        .unwrap();
    assert!(again.propagated && again.already_revoked);
    assert_eq!(
        world.iot_status(OTHER, &record.certificate_id).await,
        Some(IotStatus::Revoked)
    );
}

#[tokio::test]
async fn failed_registrations_are_listed_and_retried_by_the_api_and_the_maintenance() {
    // given two devices whose registration in the other region failed (unreachable)
    let world = World::new().await;
    let ca = world.registered_ca().await;
    let broken = world.things(true);
    let (first, _) = world.device(&ca, &broken, 1).await;
    let (second, _) = world.device(&ca, &broken, 2).await;
    let app = router(world.fleet(broken.clone()));

    // then the admin sees both, FAILED in the other region, with the error
    let (status, page) = call(&app, "GET", "/admin/api/registrations", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{page}");
    for item in items {
        assert_eq!(item["region"], OTHER);
        assert_eq!(item["status"], "FAILED");
        assert_eq!(item["attempts"], 2);
        assert!(
            item["lastError"]
                .as_str()
                .unwrap()
                .contains("connection failed"),
            "{item}"
        );
    }
    let ids: Vec<&str> = items
        .iter()
        .map(|i| i["certificateId"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&first.certificate_id.as_str())
            && ids.contains(&second.certificate_id.as_str())
    );
    // one a page: the cursor leads to the other
    let (_, one) = call(&app, "GET", "/admin/api/registrations?limit=1", None).await;
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    let cursor = one["nextCursor"].as_str().unwrap();
    let (status, next) = call(
        &app,
        "GET",
        &format!("/admin/api/registrations?limit=1&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_ne!(
        next["items"][0]["certificateId"],
        one["items"][0]["certificateId"]
    );
    // and each region's row of a certificate, with the certificate
    let (status, shown) = call(
        &app,
        "GET",
        &format!("/admin/api/certificates/{}", first.certificate_id),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    let by_region: HashMap<&str, &str> = shown["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["region"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        by_region,
        HashMap::from([(SERVING, "DONE"), (OTHER, "FAILED")])
    );
    assert_eq!(world.iot_status(OTHER, &first.certificate_id).await, None);

    // when retried while still broken: still failed, nothing lost
    let (status, retried) = call(&app, "POST", "/admin/api/registrations/retry", None).await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(
        (
            retried["attempted"].as_u64(),
            retried["done"].as_u64(),
            retried["failed"].as_u64()
        ),
        (Some(2), Some(0), Some(2))
    );
    let report = world.maintenance(broken.clone()).run_once(&BUDGET).await;
    assert_eq!(
        (report.registrations.attempted, report.registrations.failed),
        (2, 2)
    );
    assert_eq!(report.rotation, None);

    // when the region is back and the maintenance runs with a budget of one
    let fixed = world.things(false);
    let one_only = MaintenanceBudget {
        registrations: 1,
        ..BUDGET
    };
    let report = world.maintenance(fixed.clone()).run_once(&one_only).await;
    // then one is DONE and the report says more are due
    assert!(report.is_ok(), "{:?}", report.errors);
    assert_eq!(
        (
            report.registrations.attempted,
            report.registrations.done,
            report.registrations.more
        ),
        (1, 1, true)
    );

    // when the admin retries the rest through the API
    let app = router(world.fleet(fixed));
    let (status, retried) = call(&app, "POST", "/admin/api/registrations/retry", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            retried["attempted"].as_u64(),
            retried["done"].as_u64(),
            retried["failed"].as_u64(),
            retried["more"].as_bool()
        ),
        (Some(1), Some(1), Some(0), Some(false))
    );

    // then nothing is unfinished, and both certificates are ACTIVE in the other region
    let (_, page) = call(&app, "GET", "/admin/api/registrations", None).await;
    assert_eq!(page["items"], json!([]), "{page}");
    for record in [&first, &second] {
        assert_eq!(
            world.iot_status(OTHER, &record.certificate_id).await,
            Some(IotStatus::Active)
        );
    }
    // and a cursor this API did not make is refused
    let (status, body) = call(&app, "GET", "/admin/api/registrations?cursor=bogus", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_cursor");
    // even one of the right kind whose inside DynamoDB cannot read ("a:garbage")
    let (status, body) = call(&app, "GET", "/admin/api/audit?cursor=YTpnYXJiYWdl", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_cursor");
}

#[tokio::test]
async fn a_failed_rotation_is_retried_by_every_run_reported_and_finished_once_it_can() {
    // given a rotation to CA B recorded through the fleet, no device certificates
    let world = World::new().await;
    let old = world.registered_ca().await;
    let new = moto::pca_root(&world.pca).await;
    let fleet = world.fleet(world.things(false));
    let status = fleet
        .start_rotation(
            RotationRequest {
                to: Some(new.clone()),
            },
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(
        (status.state, status.step),
        ("running", Some("registering"))
    );
    assert_eq!(status.old_ca.as_deref(), Some(old.as_str()));

    // when the maintenance runs twice while IoT Core cannot be reached
    let cut_off = IssuingCaAdmin::new(
        world.pca.clone(),
        IotRegions::from_clients(
            REGIONS
                .iter()
                .map(|r| ((*r).to_owned(), unreachable_iot(&world.sdk, r)))
                .collect(),
        ),
        world.store.clone(),
        world.registry.clone(),
        None,
        SERVING,
    );
    let failing = Maintenance::from_parts(Some(cut_off), world.things(false));
    for _ in 0..2 {
        let report = failing.run_once(&BUDGET).await;
        // then each run reports the failure, and the rotation stays failed in registering
        assert!(!report.is_ok());
        let run = report.rotation.unwrap();
        assert_eq!((run.state, run.finished), ("failed", false));
        assert!(run.error.unwrap().contains("IoT Core"));
        assert!(
            report.errors[0].starts_with("CA rotation:"),
            "{:?}",
            report.errors
        );
    }
    let shown = fleet.rotation().await.unwrap().unwrap();
    assert_eq!((shown.state, shown.step), ("failed", Some("registering")));
    assert!(shown.error.is_some());
    assert_eq!(world.store.current().await.unwrap().unwrap().ca_arn, old);
    // and a rotation elsewhere stays refused until it is finished
    let error = fleet
        .start_rotation(
            RotationRequest {
                to: Some(moto::pca_root(&world.pca).await),
            },
            NOW,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            FleetError::Conflict {
                code: "rotation_in_progress",
                ..
            }
        ),
        "{error:?}"
    );

    // when IoT Core is back, the next run finishes it (nothing to revoke)
    let report = world
        .maintenance(world.things(false))
        .run_once(&BUDGET)
        .await;
    assert!(report.is_ok(), "{:?}", report.errors);
    let run = report.rotation.unwrap();
    assert_eq!((run.state, run.finished, run.error), ("done", true, None));
    let shown = fleet.rotation().await.unwrap().unwrap();
    assert_eq!(
        (shown.state, shown.step, shown.error),
        ("finished", Some("done"), None)
    );
    assert_eq!(world.store.current().await.unwrap().unwrap().ca_arn, new);
}

#[tokio::test]
async fn the_spawned_maintenance_finishes_registrations_on_its_own() {
    // given a registration FAILED in the other region
    let world = World::new().await;
    let ca = world.registered_ca().await;
    let (record, _) = world.device(&ca, &world.things(true), 1).await;
    let fixed = world.things(false);
    let fleet = world.fleet(fixed.clone());
    assert_eq!(
        fleet
            .unfinished_registrations(None, 10)
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // when the maintenance is spawned as `serve` spawns it
    let task = Arc::new(world.maintenance(fixed)).spawn_every(Duration::from_secs(1), BUDGET);

    // then it finishes the registration without anyone asking
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !fleet
        .unfinished_registrations(None, 10)
        .await
        .unwrap()
        .items
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still unfinished after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(
        world.iot_status(OTHER, &record.certificate_id).await,
        Some(IotStatus::Active)
    );
}

/// The P-256 generator point, uncompressed: a valid device key for a manifest row.
const KEY_HEX: &str = "046B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C2964FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5";

#[tokio::test]
async fn a_manifest_imported_through_the_api_lands_in_dynamodb() {
    let world = World::new().await;
    let app = router(world.fleet(world.things(false)));
    let device_id = format!("imported-{}", world.tag);
    let csv = format!("device_id,public_key\n{device_id},{KEY_HEX}\n");
    let post = |body: String| {
        let app = app.clone();
        async move {
            let response = app
                .oneshot(
                    Request::post("/admin/api/devices/import?name=batch-7.csv")
                        .header("authorization", format!("Bearer {TOKEN}"))
                        .body(Body::from(body))
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        }
    };

    // A clean manifest is written, non-atomically (DynamoDB), with its name recorded.
    let (status, summary) = post(csv.clone()).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(
        (
            summary["imported"].as_u64(),
            summary["written"].as_bool(),
            summary["atomic"].as_bool()
        ),
        (Some(1), Some(true), Some(false))
    );
    let device = world.registry.device(&device_id).await.unwrap().unwrap();
    assert!(device.enabled);
    let (status, shown) = call(
        &app,
        "GET",
        &format!("/admin/api/devices/{device_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["sourceManifest"], "batch-7.csv", "{shown}");
    // The same again is unchanged; a bad row refuses the whole file, naming the line.
    let (_, again) = post(csv).await;
    assert_eq!(again["unchanged"], 1);
    let (status, refused) = post(format!(
        "device_id,public_key\nother-{},{KEY_HEX}\nbroken,zz\n",
        world.tag
    ))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["summary"]["errors"][0]["line"], 3, "{refused}");
    assert!(world
        .registry
        .device(&format!("other-{}", world.tag))
        .await
        .unwrap()
        .is_none());
}
