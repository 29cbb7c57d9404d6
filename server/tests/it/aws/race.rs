//! Real HTTP requests racing against `provisioner serve --backend aws` over moto, with
//! ACM Private CA issuance (issue 11's invariants 1, 2 and 4 on AWS): dozens of identical
//! `POST /new` at once, several rounds, and a CA rotation while devices renew.
//!
//! moto ignores ACM Private CA's idempotency token, so every racer that reached the CA
//! would get a certificate of its own: only the registry's per-device claim can hold
//! the invariants here, as it must for IoT Core's CA anyway.
//!
//! Run by `scripts/test-aws.sh` (feature `aws`, moto started with `AWS_ENDPOINT_URL`
//! and dummy credentials set).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::support::*;
use base64::Engine;
use provisioner_core::{CertificateRecord, CertificateStatus, DeviceRegistry};
use provisioner_store_aws::ca::{ca_id, IssuingCaAdmin};
use provisioner_store_aws::config::AwsSettings;
use provisioner_store_aws::dynamodb::{DynamoDbRegistry, DynamoDbTables};
use serde_json::Value;

const SERVING: &str = "us-east-1";
const OTHER: &str = "eu-west-1";

/// A deployment over moto: an ACM Private CA installed and registered with the commands,
/// `serve --backend aws` with `options`, and `devices` devices imported.
struct Deployment {
    dir: tempfile::TempDir,
    prefix: String,
    ca_arn: String,
    served: Served,
    devices: Vec<String>,
}

impl Deployment {
    async fn start(devices: usize, options: &[&str]) -> Self {
        endpoint();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let prefix = format!("race-{:016x}-", rand::random::<u64>());
        offline_root(path);
        let (ca_arn, _) = create_and_install(path, &prefix, "issuing");
        ok_json(&aws(path, &prefix, &["ca", "register"]));
        let served = Served::start_with(path, &prefix, options);
        let count = devices.to_string();
        ok_json(&provisioner(
            path,
            &prefix,
            &["device", "fleet", "--count", &count, "--out", "fleet"],
        ));
        let imported = ok_json(&provisioner(
            path,
            &prefix,
            &["import", "--backend", "aws", "--json", "fleet/manifest.csv"],
        ));
        assert_eq!(imported["imported"], devices, "{imported}");
        let manifest = std::fs::read_to_string(path.join("fleet/manifest.csv")).unwrap();
        let devices = manifest
            .lines()
            .skip(1)
            .map(|line| line.split(',').next().unwrap().to_owned())
            .collect();
        Self {
            dir,
            prefix,
            ca_arn,
            served,
            devices,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The `device-csr` header of `device`'s CSR, made by openssl with its fleet key.
    fn csr_header(&self, device: &str) -> String {
        let out = format!("{device}.csr.der");
        openssl(
            self.path(),
            &[
                "req",
                "-new",
                "-key",
                &format!("fleet/{device}.key.pem"),
                "-subj",
                &format!("/CN={device}"),
                "-outform",
                "DER",
                "-out",
                &out,
            ],
        );
        base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(self.path().join(out)).unwrap())
    }

    fn registry(&self) -> impl std::future::Future<Output = DynamoDbRegistry> + '_ {
        DynamoDbRegistry::from_env(DynamoDbTables::with_prefix(&self.prefix))
    }

    async fn ca_admin(&self) -> IssuingCaAdmin {
        let vars: HashMap<String, String> = [
            ("AWS_REGION", SERVING),
            ("PROVISIONER_REGIONS", &format!("{SERVING},{OTHER}")),
            ("PROVISIONER_TABLE_PREFIX", &self.prefix),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        IssuingCaAdmin::from_settings(&AwsSettings::from_vars(&vars).unwrap()).await
    }
}

/// One answer to `POST /new`: status, `certificateId` (200), whether `Retry-After` came.
#[derive(Debug)]
struct Answer {
    status: u16,
    certificate_id: Option<String>,
    retry_after: bool,
}

async fn post_new(client: &reqwest::Client, url: &str, header: &str) -> Answer {
    let response = client
        .post(format!("{url}/new"))
        .header("device-csr", header)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    let body: Value = response.json().await.unwrap();
    Answer {
        status,
        certificate_id: body["certificateId"].as_str().map(str::to_owned),
        retry_after,
    }
}

/// `rounds` rounds of `per_round` identical requests sent at once, each round after the
/// last has been answered.
async fn race(url: &str, header: &str, rounds: usize, per_round: usize) -> Vec<Answer> {
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    for _ in 0..rounds {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..per_round {
            let (client, url, header) = (client.clone(), url.to_owned(), header.to_owned());
            tasks.spawn(async move { post_new(&client, &url, &header).await });
        }
        answers.extend(tasks.join_all().await);
    }
    answers
}

/// Every certificate of `device` in the registry (all of them: since time 0).
async fn recorded(registry: &DynamoDbRegistry, device: &str) -> Vec<CertificateRecord> {
    registry.certificates_of(device, 0).await.unwrap()
}

/// The ids of the certificates IoT Core in `region` holds ACTIVE as `device`'s principals.
async fn active_in_iot(admin: &IssuingCaAdmin, region: &str, device: &str) -> BTreeSet<String> {
    let client = admin.iot().client(region).unwrap();
    let principals = client
        .list_thing_principals()
        .thing_name(device)
        .send()
        .await
        .unwrap();
    let mut active = BTreeSet::new();
    for arn in principals.principals() {
        let id = arn.rsplit('/').next().unwrap();
        let described = client
            .describe_certificate()
            .certificate_id(id)
            .send()
            .await
            .unwrap();
        let status = described
            .certificate_description()
            .and_then(|d| d.status())
            .map(|s| s.as_str().to_owned());
        if status.as_deref() == Some("ACTIVE") {
            active.insert(id.to_owned());
        }
    }
    active
}

/// Waits (at most 20 s) until IoT Core in both regions holds exactly `expected` ACTIVE for
/// `device` (the other region registers in the background); fails with what it holds.
async fn assert_iot_active(admin: &IssuingCaAdmin, device: &str, expected: &BTreeSet<String>) {
    let started = Instant::now();
    for region in [SERVING, OTHER] {
        loop {
            let active = active_in_iot(admin, region, device).await;
            if &active == expected {
                break;
            }
            assert!(
                region != SERVING || active.len() <= expected.len(),
                "{region}: ACTIVE {active:?}, expected {expected:?}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{region}: ACTIVE {active:?}, expected {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[tokio::test]
async fn identical_concurrent_requests_get_one_certificate_in_dynamodb_and_iot_core() {
    // given one imported device, default settings
    let deployment = Deployment::start(1, &["--failed-rate-limit", "0"]).await;
    let device = deployment.devices[0].clone();
    let header = deployment.csr_header(&device);
    // when 3 rounds of 24 identical requests race
    let answers = race(&deployment.served.url, &header, 3, 24).await;
    // then every answer is that one certificate (200) or a retryable 503
    let issued: BTreeSet<&str> = answers
        .iter()
        .filter_map(|a| a.certificate_id.as_deref())
        .collect();
    for answer in &answers {
        assert!(
            answer.status == 200 || (answer.status == 503 && answer.retry_after),
            "{answer:?}"
        );
    }
    assert_eq!(issued.len(), 1, "{answers:?}");
    let ok = answers.iter().filter(|a| a.status == 200).count();
    eprintln!("answers: {ok} x 200, {} x 503", answers.len() - ok);
    // and the registry holds exactly that one certificate, ACTIVE
    let registry = deployment.registry().await;
    let held = recorded(&registry, &device).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].status, CertificateStatus::Active);
    assert!(issued.contains(held[0].certificate_id.as_str()));
    // and IoT Core in both regions holds it, and only it, ACTIVE for the thing
    let admin = deployment.ca_admin().await;
    let expected = BTreeSet::from([held[0].certificate_id.clone()]);
    assert_iot_active(&admin, &device, &expected).await;
}

#[tokio::test]
async fn racing_renewals_stop_at_the_rate_limit_with_one_certificate_active() {
    // given every request a renewal (the window longer than the validity), 2 an hour
    let deployment = Deployment::start(
        1,
        &[
            "--rate-limit",
            "2",
            "--validity-days",
            "30",
            // moto's ACM Private CA signs for a year whatever it is asked: a window longer
            // than that makes every request a renewal
            "--renew-within-days",
            "400",
            "--failed-rate-limit",
            "0",
        ],
    )
    .await;
    let device = deployment.devices[0].clone();
    let header = deployment.csr_header(&device);
    // when 3 rounds of 20 identical requests race
    let answers = race(&deployment.served.url, &header, 3, 20).await;
    // then exactly 2 certificates were issued; every other answer is 429 or 503
    let registry = deployment.registry().await;
    let held = recorded(&registry, &device).await;
    assert_eq!(held.len(), 2, "{held:?}");
    let recorded_ids: BTreeSet<&str> = held.iter().map(|c| c.certificate_id.as_str()).collect();
    for answer in &answers {
        match answer.status {
            200 => assert!(recorded_ids.contains(answer.certificate_id.as_deref().unwrap())),
            429 | 503 => assert!(answer.retry_after, "{answer:?}"),
            _ => panic!("{answer:?}"),
        }
    }
    let count = |status| answers.iter().filter(|a| a.status == status).count();
    eprintln!(
        "answers: {} x 200, {} x 429, {} x 503",
        count(200),
        count(429),
        count(503)
    );
    // and the newer superseded the older: one ACTIVE in the registry and in IoT Core
    let active: Vec<&CertificateRecord> = held
        .iter()
        .filter(|c| c.status == CertificateStatus::Active)
        .collect();
    assert_eq!(active.len(), 1, "{held:?}");
    let admin = deployment.ca_admin().await;
    let expected = BTreeSet::from([active[0].certificate_id.clone()]);
    assert_iot_active(&admin, &device, &expected).await;
}

#[tokio::test]
async fn no_certificate_of_the_retired_ca_stays_active_after_a_rotation_under_load() {
    // given 5 devices whose every request renews, and a second CA installed
    let deployment = Deployment::start(
        5,
        &[
            "--rate-limit",
            "0",
            "--validity-days",
            "30",
            // moto's ACM Private CA signs for a year whatever it is asked: a window longer
            // than that makes every request a renewal
            "--renew-within-days",
            "400",
            "--failed-rate-limit",
            "0",
            // the rotation is the command's alone
            "--maintenance-every-secs",
            "0",
        ],
    )
    .await;
    let (next, _) = create_and_install(deployment.path(), &deployment.prefix, "next");
    let mut headers: Vec<(String, String)> = deployment
        .devices
        .iter()
        .map(|d| (d.clone(), deployment.csr_header(d)))
        .collect();
    // and 2 of them provisioned once and then idle: the rotation itself must revoke theirs
    let idle = headers.split_off(3);
    let client = reqwest::Client::new();
    for (device, header) in &idle {
        let answer = post_new(&client, &deployment.served.url, header).await;
        assert_eq!(answer.status, 200, "{device}: {answer:?}");
    }
    // when two clients per device keep renewing while `aws ca rotate` runs in another
    // process (settling 40 s: the issuers' 30 s cache of the CA and an issuance in flight)
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    for (_, header) in headers.iter().chain(headers.iter()) {
        let (url, header, stop) = (deployment.served.url.clone(), header.clone(), stop.clone());
        load.spawn(async move {
            let client = reqwest::Client::new();
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                answers.push(post_new(&client, &url, &header).await);
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            answers
        });
    }
    let (path, prefix) = (deployment.path().to_owned(), deployment.prefix.clone());
    let to = next.clone();
    let rotated = tokio::task::spawn_blocking(move || {
        aws(
            &path,
            &prefix,
            &["ca", "rotate", "--to", &to, "--settle-secs", "40"],
        )
    })
    .await
    .unwrap();
    let rotated = ok_json(&rotated);
    assert_eq!(rotated["rotation"]["state"], "done", "{rotated}");
    // (and the load goes on a moment after it finished)
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let answers: Vec<Answer> = load.join_all().await.into_iter().flatten().collect();
    let issued = answers.iter().filter(|a| a.status == 200).count();
    eprintln!(
        "{} requests during the rotation, {issued} answered 200; revoked by the rotation: {}",
        answers.len(),
        rotated["rotation"]["revoked"]
    );
    for answer in &answers {
        assert!(
            answer.status == 200 || (answer.status == 503 && answer.retry_after),
            "{answer:?}"
        );
    }
    // then nothing of the retired CA is ACTIVE in the registry
    let registry = deployment.registry().await;
    let (old, new) = (ca_id(&deployment.ca_arn), ca_id(&next));
    assert_eq!(registry.count_active_by_issuer(old).await.unwrap(), 0);
    let admin = deployment.ca_admin().await;
    let mut old_certificates = 0;
    for (device, _) in &headers {
        let held = recorded(&registry, device).await;
        let active: Vec<&CertificateRecord> = held
            .iter()
            .filter(|c| c.status == CertificateStatus::Active)
            .collect();
        // each device holds one ACTIVE certificate, of the new CA
        assert_eq!(active.len(), 1, "{device}: {active:?}");
        assert_eq!(active[0].issuer, new, "{device}");
        old_certificates += held.iter().filter(|c| c.issuer == old).count();
        // nor in IoT Core, in either region: only the new CA's one is ACTIVE
        let expected = BTreeSet::from([active[0].certificate_id.clone()]);
        assert_iot_active(&admin, device, &expected).await;
    }
    assert!(old_certificates > 0, "the old CA issued nothing under load");
    // and the idle devices' certificates were revoked by the rotation, here and in IoT Core
    assert!(
        rotated["rotation"]["revoked"].as_u64().unwrap() >= 2,
        "{rotated}"
    );
    for (device, _) in &idle {
        let held = recorded(&registry, device).await;
        assert_eq!(held.len(), 1, "{device}: {held:?}");
        assert_eq!(held[0].status, CertificateStatus::Revoked, "{device}");
        assert_eq!(held[0].issuer, old, "{device}");
        assert_iot_active(&admin, device, &BTreeSet::new()).await;
    }
}
