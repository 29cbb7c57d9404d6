//! `provisioner aws ca ...` run as the real binary against moto's server (ACM Private CA,
//! IoT Core in two regions, DynamoDB): the PKI admin's setup, then a rotation.
//!
//! Run by `scripts/test-aws.sh` (feature `aws`, moto started with `AWS_ENDPOINT_URL`
//! and dummy credentials set). The cascade itself (device certificates revoked in
//! every region, resumption) is tested at the library level in
//! `store-aws/tests/it/aws_ca.rs`; here the commands, their JSON and their exit codes.

use std::path::Path;
use std::process::Command;

use super::support::*;
use provisioner_core::{CertificateStatus, DeviceRegistry};
use provisioner_store_aws::dynamodb::{DynamoDbRegistry, DynamoDbTables};
use serde_json::Value;

#[tokio::test]
async fn the_pki_admin_sets_up_a_ca_and_rotates_it_with_the_commands() {
    endpoint();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let prefix = format!("cli-{:016x}-", rand::random::<u64>());
    // The registry's tables come with the deployment; the config table `create` makes.
    DynamoDbRegistry::from_env(DynamoDbTables::with_prefix(&prefix))
        .await
        .create_tables()
        .await
        .unwrap();
    offline_root(dir);

    // Setup: the first CA becomes the issuing CA and is registered in both regions.
    let (a, installed) = create_and_install(dir, &prefix, "a");
    assert_eq!(installed["issuing"], Value::Bool(true));
    assert_eq!(installed["certificate"]["issuer"], "CN=CLI Offline Root");
    let registered = ok_json(&aws(dir, &prefix, &["ca", "register"]));
    assert_eq!(registered["caArn"], Value::from(a.clone()));
    let regions: Vec<(&str, &str)> = registered["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["region"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(regions, [("us-east-1", "ACTIVE"), ("eu-west-1", "ACTIVE")]);
    let shown = ok_json(&aws(dir, &prefix, &["ca", "show"]));
    assert_eq!(shown["issuingCaArn"], Value::from(a.clone()));
    assert_eq!(shown["source"], "config table");
    assert_eq!(shown["ca"]["status"], "ACTIVE");
    assert_eq!(shown["ca"]["iot"][1]["status"], "ACTIVE");
    assert_eq!(shown["rotation"], Value::Null);

    // A second CA: installed, not issuing until the rotation.
    let (b, installed) = create_and_install(dir, &prefix, "b");
    assert_eq!(installed["issuing"], Value::Bool(false));
    let rotated = aws(
        dir,
        &prefix,
        &["ca", "rotate", "--to", &b, "--settle-secs", "0"],
    );
    let rotated_json = ok_json(&rotated);
    assert_eq!(rotated_json["finished"], Value::Bool(true));
    assert_eq!(rotated_json["rotation"]["state"], "done");
    assert_eq!(
        rotated_json["rotation"]["fromCaArn"],
        Value::from(a.clone())
    );
    assert_eq!(rotated_json["rotation"]["reason"], "superseded");
    // The offline parent is not ACM PCA: the command says what the PKI admin must do.
    assert!(
        stderr(&rotated).contains("PKI admin, still to do")
            && stderr(&rotated).contains("revoke serial"),
        "{}",
        stderr(&rotated)
    );
    let shown = ok_json(&aws(dir, &prefix, &["ca", "show"]));
    assert_eq!(shown["issuingCaArn"], Value::from(b.clone()));
    assert_eq!(shown["previousCaArns"], serde_json::json!([a.clone()]));
    assert_eq!(shown["retiredCas"][0]["caArn"], Value::from(a.clone()));
    assert_eq!(shown["retiredCas"][0]["replacedBy"], Value::from(b.clone()));
    assert_eq!(shown["retiredCas"][0]["reason"], "superseded");
    let old = ok_json(&aws(dir, &prefix, &["ca", "show", "--arn", &a]));
    assert_eq!(old["ca"]["iot"][0]["status"], "INACTIVE");
    assert_eq!(old["ca"]["iot"][1]["status"], "INACTIVE");
    let progress = ok_json(&aws(dir, &prefix, &["ca", "rotation"]));
    assert_eq!(progress["state"], "done");
    assert_eq!(progress["toCaArn"], Value::from(b.clone()));

    // Mistakes exit 1 and say what to fix.
    let again = aws(
        dir,
        &prefix,
        &["ca", "rotate", "--to", &b, "--settle-secs", "0"],
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already the issuing CA"),
        "{}",
        stderr(&again)
    );
    let bad = aws(
        dir,
        &prefix,
        &["ca", "create", "--subject", "O=no common name"],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("CN is missing"), "{}", stderr(&bad));
    let missing = aws(dir, &prefix, &["ca", "install", "nothing.pem", "--arn", &a]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("cannot read nothing.pem"),
        "{}",
        stderr(&missing)
    );
}
#[tokio::test]
async fn the_operator_serves_imports_and_provisions_on_the_aws_backend() {
    endpoint();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let prefix = format!("op-{:016x}-", rand::random::<u64>());

    // The README's order: the issuing CA, the service (which creates the tables), the
    // manifest, a device.
    offline_root(dir);
    let (arn, _) = create_and_install(dir, &prefix, "issuing");
    ok_json(&aws(dir, &prefix, &["ca", "register"]));
    let served = Served::start(dir, &prefix);

    let fleet = provisioner(
        dir,
        &prefix,
        &["device", "fleet", "--count", "2", "--out", "fleet"],
    );
    ok_json(&fleet);
    let imported = ok_json(&provisioner(
        dir,
        &prefix,
        &["import", "--backend", "aws", "--json", "fleet/manifest.csv"],
    ));
    assert_eq!(imported["imported"], 2, "{imported}");
    let manifest = std::fs::read_to_string(dir.join("fleet/manifest.csv")).unwrap();
    let device = manifest.lines().nth(1).unwrap().split(',').next().unwrap();

    let provisioned = ok_json(&provisioner(
        dir,
        &prefix,
        &[
            "device",
            "provision",
            "--url",
            &served.url,
            "--key",
            &format!("fleet/{device}.key.pem"),
            "--device-id",
            device,
            "--out",
            "out",
        ],
    ));
    assert_eq!(provisioned["endpoint"], "iot.example:8883");
    // Issued by the ACM PCA CA the commands installed, under the openssl root.
    openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            &format!("out/{device}.chain.pem"),
            &format!("out/{device}.cert.pem"),
        ],
    );
    let shown = ok_json(&aws(dir, &prefix, &["ca", "show"]));
    assert_eq!(shown["issuingCaArn"], Value::from(arn));

    // An id the manifest does not list is refused as the contract says.
    let stranger = provisioner(
        dir,
        &prefix,
        &[
            "device",
            "provision",
            "--url",
            &served.url,
            "--key",
            &format!("fleet/{device}.key.pem"),
            "--device-id",
            "not-in-the-manifest",
            "--out",
            "out",
        ],
    );
    assert_eq!(stranger.status.code(), Some(1));
    let refusal: Value = serde_json::from_slice(&stranger.stdout).unwrap();
    assert_eq!(refusal["status"], 404, "{refusal}");
    assert_eq!(refusal["error"], "unknown_device");

    // The device admin's view: the admin API of the same serve, over the same tables,
    // with the data directory's token.
    let token = provisioner(dir, &prefix, &["admin", "token", "--data-dir", "data"]);
    assert!(token.status.success(), "{}", stderr(&token));
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    let client = reqwest::Client::new();
    let admin_get = |path: &str, bearer: Option<&str>| {
        let mut request = client.get(format!("{}/admin/api/{path}", served.url));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        async move {
            let answer = request.send().await.unwrap();
            (
                answer.status().as_u16(),
                answer.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, devices) = admin_get("devices", Some(&token)).await;
    assert_eq!(status, 200, "{devices}");
    assert_eq!(devices["items"].as_array().unwrap().len(), 2, "{devices}");
    let (_, certificates) = admin_get(&format!("certificates?device={device}"), Some(&token)).await;
    assert_eq!(
        certificates["items"][0]["status"], "ACTIVE",
        "{certificates}"
    );
    let (_, ca) = admin_get("ca", Some(&token)).await;
    assert_eq!(ca["backend"], "aws");
    assert_eq!(ca["current"]["arn"], shown["issuingCaArn"]);
    // (both decisions fell in the same second, which the audit log orders no further)
    let (_, audit) = admin_get("audit?limit=2", Some(&token)).await;
    let mut codes: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    codes.sort_unstable();
    assert_eq!(codes, ["issued", "unknown_device"], "{audit}");
    let (status, refused) = admin_get("devices", None).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = admin_get("devices", Some("not-the-token")).await;
    assert_eq!(status, 401);
}

/// moto's state (`/moto-api/data.json`): what ACM Private CA `ca_arn` holds as revoked
/// (serial -> reason), and the status of `certificate_id` in IoT Core per region.
async fn moto_state(
    ca_arn: &str,
    certificate_id: &str,
) -> (Vec<(String, String)>, Vec<(String, String)>) {
    // moto serialises its state while other tests change it, and then sometimes
    // answers an error page instead of JSON: ask again, a bounded number of times.
    let url = format!("{}/moto-api/data.json", endpoint());
    let mut dump = None;
    for _ in 0..20 {
        let response = reqwest::get(&url).await.unwrap();
        let ok = response.status().is_success();
        if let (true, Ok(parsed)) = (ok, response.json::<Value>().await) {
            dump = Some(parsed);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let dump = dump.expect("moto's state dump never answered JSON");
    let ca = dump["acmpca"]["CertificateAuthority"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ca| ca["arn"] == ca_arn)
        .unwrap_or_else(|| panic!("moto holds no CA {ca_arn}"));
    let revoked = ca["revoked_certificates"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(serial, r)| {
            let reason = r["revocation_reason"].as_str().unwrap().to_owned();
            (serial.clone(), reason)
        })
        .collect();
    let mut iot: Vec<(String, String)> = dump["iot"]["FakeCertificate"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["certificate_id"] == certificate_id)
        .map(|c| {
            let region = c["arn"].as_str().unwrap().split(':').nth(3).unwrap();
            (region.to_owned(), c["status"].as_str().unwrap().to_owned())
        })
        .collect();
    iot.sort();
    (revoked, iot)
}

/// moto's ACM Private CA revokes only serials of an even number of hex digits.
fn revocable_on_moto(dir: &Path, certificate: &str) -> bool {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in", certificate])
        .current_dir(dir)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let serial = text.trim().trim_start_matches("serial=");
    serial.trim_start_matches('0').len() % 2 == 0
}

#[tokio::test]
async fn the_operator_cuts_a_stolen_device_off_with_the_cli_alone() {
    // given a device provisioned on the AWS backend (every request renews, so it asks
    // again until its certificate has a serial moto's ACM Private CA can revoke)
    endpoint();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let prefix = format!("cut-{:016x}-", rand::random::<u64>());
    offline_root(dir);
    let (arn, _) = create_and_install(dir, &prefix, "issuing");
    ok_json(&aws(dir, &prefix, &["ca", "register"]));
    let served = Served::start_with(dir, &prefix, &["--renew-within-days", "3650"]);
    ok_json(&provisioner(
        dir,
        &prefix,
        &["device", "fleet", "--count", "2", "--out", "fleet"],
    ));
    ok_json(&provisioner(
        dir,
        &prefix,
        &["import", "--backend", "aws", "--json", "fleet/manifest.csv"],
    ));
    let manifest = std::fs::read_to_string(dir.join("fleet/manifest.csv")).unwrap();
    let device = manifest.lines().nth(1).unwrap().split(',').next().unwrap();
    let provision = || {
        provisioner(
            dir,
            &prefix,
            &[
                "device",
                "provision",
                "--url",
                &served.url,
                "--key",
                &format!("fleet/{device}.key.pem"),
                "--device-id",
                device,
                "--out",
                "out",
            ],
        )
    };
    let certificate_id = (0..8)
        .map(|_| {
            ok_json(&provision())["certificateId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .find(|_| revocable_on_moto(dir, &format!("out/{device}.cert.pem")))
        .expect("a serial moto can revoke within 8 certificates");

    // when the operator disables it with --revoke, on the AWS backend, without serve's API
    let disabled = provisioner(
        dir,
        &prefix,
        &[
            "devices",
            "disable",
            device,
            "--revoke",
            "--backend",
            "aws",
            "--json",
        ],
    );

    // then it is disabled and its certificate revoked for keyCompromise everywhere
    let answer = ok_json(&disabled);
    assert_eq!(answer["enabled"], false, "{answer}");
    let revoked = answer["revokedCertificates"].as_array().unwrap();
    assert_eq!(revoked.len(), 1, "{answer}");
    assert_eq!(revoked[0]["certificateId"], certificate_id.as_str());
    assert_eq!(revoked[0]["status"], "REVOKED");
    assert_eq!(revoked[0]["revocationReason"], "keyCompromise");
    assert_eq!(revoked[0]["propagated"], true, "{}", stderr(&disabled));
    let registry = DynamoDbRegistry::from_env(DynamoDbTables::with_prefix(&prefix)).await;
    let record = DeviceRegistry::certificate(&registry, &certificate_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, CertificateStatus::Revoked);
    let (at_pca, in_iot) = moto_state(&arn, &certificate_id).await;
    let compromised: Vec<&(String, String)> = at_pca
        .iter()
        .filter(|(_, r)| r == "KEY_COMPROMISE")
        .collect();
    assert_eq!(compromised.len(), 1, "{at_pca:?}");
    assert_eq!(
        in_iot,
        [
            ("eu-west-1".to_owned(), "REVOKED".to_owned()),
            ("us-east-1".to_owned(), "REVOKED".to_owned())
        ]
    );

    // and the service refuses the device
    let refused = provision();
    assert_eq!(refused.status.code(), Some(1));
    let refusal: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(
        (refusal["status"].as_u64(), refusal["error"].as_str()),
        (Some(403), Some("device_disabled")),
        "{refusal}"
    );

    // and once enabled again it gets a new certificate
    let enabled = ok_json(&provisioner(
        dir,
        &prefix,
        &["devices", "enable", device, "--backend", "aws", "--json"],
    ));
    assert_eq!(enabled["enabled"], true);
    let healed = ok_json(&provision());
    assert_ne!(healed["certificateId"], certificate_id.as_str());

    // and an unknown device is a JSON error with its code
    let unknown = provisioner(
        dir,
        &prefix,
        &["devices", "disable", "nobody", "--backend", "aws", "--json"],
    );
    assert_eq!(unknown.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&unknown.stdout).unwrap();
    assert_eq!(error["error"], "unknown_device", "{error}");
}
