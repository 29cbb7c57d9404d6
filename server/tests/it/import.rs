//! `provisioner import` and `provisioner certs`, run as the real binary against a data
//! directory in a temporary directory.

use std::path::Path;
use std::process::{Command, Output};

use provisioner_core::{CertificateRecord, CertificateStatus, DeviceKey, DeviceRegistry};
use provisioner_store_local::registry::SqliteRegistry;
use serde_json::Value;

const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/manifests");

fn provisioner(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("PROVISIONER_LOG", "warn")
        .output()
        .unwrap()
}

/// The last line of stdout, as JSON.
fn last_json(output: &Output) -> Value {
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let last = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "no output; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    serde_json::from_str(last).unwrap()
}

/// A fresh P-256 public key, as uncompressed SEC1 hex.
fn key_hex() -> String {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let point =
        p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    hex::encode(point.as_bytes())
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn count_devices(data: &Path) -> u64 {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        SqliteRegistry::open(data.join("registry.sqlite3"))
            .unwrap()
            .count_devices()
            .await
            .unwrap()
    })
}

#[test]
fn a_valid_csv_imports_with_a_json_summary_and_again_as_unchanged() {
    // given a manifest of three devices
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let csv = format!(
        "device_id,public_key\ndev-1,{}\ndev-2,{}\ndev-3,{}\n",
        key_hex(),
        key_hex(),
        key_hex()
    );
    let file = write(dir.path(), "fleet.csv", &csv);

    // when it is imported twice
    let first = provisioner(&data, &["import", &file, "--json"]);
    let second = provisioner(&data, &["import", &file, "--json", "--format", "csv"]);

    // then the first imports all three, the second finds them unchanged
    assert!(first.status.success(), "{first:?}");
    let summary = last_json(&first);
    assert_eq!(summary["imported"], 3);
    assert_eq!(summary["unchanged"], 0);
    assert_eq!(summary["replaced"], 0);
    assert_eq!(summary["conflicts"], 0);
    assert_eq!(summary["invalid"], 0);
    assert_eq!(summary["errors"], serde_json::json!([]));
    assert!(second.status.success(), "{second:?}");
    let again = last_json(&second);
    assert_eq!(
        (again["imported"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(count_devices(&data), 3);
}

#[test]
fn one_invalid_row_writes_nothing_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let csv = format!(
        "dev-1,{}\ndev 2,{}\ndev-3,{}\n",
        key_hex(),
        key_hex(),
        key_hex()
    );
    let file = write(dir.path(), "bad.csv", &csv);

    let output = provisioner(&data, &["import", &file, "--json"]);

    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let summary = last_json(&output);
    assert_eq!(summary["imported"], 2);
    assert_eq!(summary["invalid"], 1);
    let error = &summary["errors"][0];
    assert_eq!(error["line"], 2);
    assert_eq!(error["deviceId"], "dev 2");
    assert_eq!(error["error"], "invalid_device_id");
    assert!(error["message"].as_str().unwrap().len() > 10);
    assert_eq!(count_devices(&data), 0);
}

#[test]
fn a_conflicting_key_is_refused_then_replaced_with_replace() {
    // given a registered device
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = write(dir.path(), "first.csv", &format!("dev-1,{}\n", key_hex()));
    assert!(provisioner(&data, &["import", &first]).status.success());
    let new_key = key_hex();
    let second = write(dir.path(), "second.csv", &format!("dev-1,{new_key}\n"));

    // when another key for it is imported, with and without --replace
    let refused = provisioner(&data, &["import", &second, "--json"]);
    let dry = provisioner(
        &data,
        &["import", &second, "--json", "--replace", "--dry-run"],
    );
    let replaced = provisioner(&data, &["import", &second, "--json", "--replace"]);

    // then it is a conflict first, a successful dry run, then replaced
    assert_eq!(refused.status.code(), Some(1));
    let summary = last_json(&refused);
    assert_eq!(summary["conflicts"], 1);
    assert_eq!(summary["errors"][0]["error"], "key_conflict");
    assert_eq!(summary["errors"][0]["deviceId"], "dev-1");
    assert!(dry.status.success(), "{dry:?}");
    assert_eq!(last_json(&dry)["written"], false);
    assert!(replaced.status.success(), "{replaced:?}");
    let summary = last_json(&replaced);
    assert_eq!(
        (summary["replaced"].as_u64(), summary["conflicts"].as_u64()),
        (Some(1), Some(0))
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let device = runtime.block_on(async {
        let registry = SqliteRegistry::open(data.join("registry.sqlite3")).unwrap();
        registry.device("dev-1").await.unwrap().unwrap()
    });
    assert_eq!(device.public_key, DeviceKey::parse(&new_key).unwrap());
}

#[test]
fn the_human_summary_names_the_refused_rows_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = write(dir.path(), "bad.csv", "dev-1,not-a-key\n");

    let output = provisioner(&data, &["import", &file]);

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stderr.contains("bad.csv line 1 (device \"dev-1\")"),
        "{stderr}"
    );
    assert!(stderr.contains("invalid_public_key"), "{stderr}");
    assert!(stdout.contains("nothing written"), "{stdout}");
}

#[test]
fn a_microchip_manifest_needs_its_signer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let manifest = format!("{MANIFESTS}/valid.json");
    let signer = format!("{MANIFESTS}/signer.pem");
    let expected: Value =
        serde_json::from_slice(&std::fs::read(format!("{MANIFESTS}/expected.json")).unwrap())
            .unwrap();

    let unsigned = provisioner(&data, &["import", &manifest, "--json"]);
    let signed = provisioner(
        &data,
        &["import", &manifest, "--manifest-signer", &signer, "--json"],
    );

    assert_eq!(unsigned.status.code(), Some(1));
    let refusal = last_json(&unsigned);
    assert_eq!(refusal["errors"][0]["error"], "malformed_manifest");
    assert!(refusal["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("--manifest-signer"));
    assert!(signed.status.success(), "{signed:?}");
    let count = expected["valid.json"].as_array().unwrap().len();
    assert_eq!(last_json(&signed)["imported"], count);
}

#[test]
fn with_a_manifest_signer_unsigned_files_refuse_the_run_unless_allowed() {
    // given a signed Microchip manifest and an unsigned CSV of another device
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let manifest = format!("{MANIFESTS}/valid.json");
    let signer = format!("{MANIFESTS}/signer.pem");
    let csv = write(
        dir.path(),
        "extra.csv",
        &format!("unsigned-1,{}\n", key_hex()),
    );
    let jsonl = write(
        dir.path(),
        "extra.jsonl",
        &format!(
            "{{\"deviceId\":\"unsigned-2\",\"publicKey\":\"{}\"}}\n",
            key_hex()
        ),
    );
    let expected: Value =
        serde_json::from_slice(&std::fs::read(format!("{MANIFESTS}/expected.json")).unwrap())
            .unwrap();
    let signed_count = expected["valid.json"].as_array().unwrap().len();

    // when they are imported together with the signer, then nothing is written and the
    // refusal names each unsigned file and the way out, with --json and without
    for unsigned in [&csv, &jsonl] {
        let refused = provisioner(
            &data,
            &[
                "import",
                &manifest,
                unsigned,
                "--manifest-signer",
                &signer,
                "--json",
            ],
        );
        assert_eq!(refused.status.code(), Some(1), "{refused:?}");
        let body = last_json(&refused);
        assert_eq!(body["error"], "unsigned_manifest");
        let message = body["message"].as_str().unwrap();
        let name = Path::new(unsigned).file_name().unwrap().to_str().unwrap();
        assert!(message.contains(name), "{message}");
        assert!(message.contains("--allow-unsigned"), "{message}");
        assert!(!message.contains("valid.json"), "{message}");
    }
    let human = provisioner(
        &data,
        &["import", &csv, &manifest, "--manifest-signer", &signer],
    );
    assert_eq!(human.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&human.stderr).contains("extra.csv (csv)"));
    // a forced format is judged too: CSV read as CSV is still unsigned
    let forced = provisioner(
        &data,
        &[
            "import",
            &csv,
            "--format",
            "csv",
            "--manifest-signer",
            &signer,
            "--json",
        ],
    );
    assert_eq!(last_json(&forced)["error"], "unsigned_manifest");
    // refused before the registry is even opened
    assert!(!data.join("registry.sqlite3").exists());

    // when --allow-unsigned says the mix is meant, then both are imported
    let allowed = provisioner(
        &data,
        &[
            "import",
            &manifest,
            &csv,
            "--manifest-signer",
            &signer,
            "--allow-unsigned",
            "--json",
        ],
    );
    assert!(allowed.status.success(), "{allowed:?}");
    assert_eq!(last_json(&allowed)["imported"], signed_count + 1);
}

#[test]
fn an_unreadable_file_is_an_error_in_the_same_json_shape() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let missing = dir.path().join("missing.csv");

    let output = provisioner(&data, &["import", missing.to_str().unwrap(), "--json"]);

    assert_eq!(output.status.code(), Some(1));
    let body = last_json(&output);
    assert_eq!(body["error"], "import_failed");
    assert!(body["message"].as_str().unwrap().contains("missing.csv"));
}

#[test]
fn certs_list_and_revoke_print_the_recorded_certificates() {
    // given a device with a certificate recorded through the library
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = key_hex();
    let file = write(dir.path(), "m.csv", &format!("dev-1,{key}\n"));
    assert!(provisioner(&data, &["import", &file]).status.success());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let registry = SqliteRegistry::open(data.join("registry.sqlite3")).unwrap();
        let record = CertificateRecord {
            certificate_id: "ab".repeat(32),
            device_id: "dev-1".into(),
            serial: "0a1b2c".into(),
            issuer: "ca-1".into(),
            public_key: DeviceKey::parse(&key).unwrap(),
            issued_at: 1_767_225_600,
            not_before: 1_767_225_300,
            not_after: 1_798_761_600,
            status: CertificateStatus::Active,
            revoked: None,
            certificate_pem: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".into(),
        };
        let provisioner_core::ClaimOutcome::Claimed(claim) = registry
            .claim_issuance("dev-1", "test", 1_767_225_600, 120)
            .await
            .unwrap()
        else {
            panic!("a fresh claim was refused");
        };
        registry
            .record_issuance(record, vec![], &claim, 1_767_225_600)
            .await
            .unwrap();
    });

    // when it is listed, filtered, and revoked
    let listed = provisioner(&data, &["certs", "list", "--json"]);
    let none_revoked = provisioner(&data, &["certs", "list", "--status", "revoked", "--json"]);
    let other_issuer = provisioner(&data, &["certs", "list", "--issuer", "ca-2", "--json"]);
    let bad_reason = provisioner(
        &data,
        &["certs", "revoke", &"ab".repeat(32), "--reason", "lost"],
    );
    let revoked = provisioner(
        &data,
        &[
            "certs",
            "revoke",
            &"ab".repeat(32),
            "--reason",
            "keyCompromise",
            "--json",
        ],
    );
    let again = provisioner(
        &data,
        &[
            "certs",
            "revoke",
            &"ab".repeat(32),
            "--reason",
            "superseded",
            "--json",
        ],
    );
    let unknown = provisioner(&data, &["certs", "revoke", "cd", "--reason", "superseded"]);
    let listed_revoked = provisioner(&data, &["certs", "list", "--status", "REVOKED", "--json"]);

    // then the listing has the documented shape
    assert!(listed.status.success(), "{listed:?}");
    assert_eq!(
        last_json(&listed),
        serde_json::json!([{
            "certificateId": "ab".repeat(32),
            "deviceId": "dev-1",
            "serial": "0a1b2c",
            "issuer": "ca-1",
            "notBefore": "2025-12-31T23:55:00Z",
            "notAfter": "2027-01-01T00:00:00Z",
            "status": "ACTIVE",
        }])
    );
    assert_eq!(last_json(&none_revoked), serde_json::json!([]));
    assert_eq!(last_json(&other_issuer), serde_json::json!([]));
    // a bad reason lists the valid ones
    assert!(!bad_reason.status.success());
    let stderr = String::from_utf8_lossy(&bad_reason.stderr);
    assert!(
        stderr.contains("keyCompromise") && stderr.contains("cessationOfOperation"),
        "{stderr}"
    );
    // revoking records the reason, and again changes nothing
    assert!(revoked.status.success(), "{revoked:?}");
    let body = last_json(&revoked);
    assert_eq!(body["status"], "REVOKED");
    assert_eq!(body["revocationReason"], "keyCompromise");
    assert_eq!(body["alreadyRevoked"], false);
    assert!(again.status.success());
    let body = last_json(&again);
    assert_eq!(body["alreadyRevoked"], true);
    assert_eq!(body["revocationReason"], "keyCompromise");
    // an unknown id says where to find the ids
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("certs list"));
    let list = last_json(&listed_revoked);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["status"], "REVOKED");
    assert!(list[0]["revokedAt"].as_str().unwrap().ends_with('Z'));
}
