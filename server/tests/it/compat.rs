//! Compatibility with the build before the crate split (commit 75a88cd): a data directory
//! that build wrote (two CAs after a rotation, devices one of them disabled, ACTIVE and
//! REVOKED certificates, things, audit events) is read back by this build exactly as that
//! build read it, and this build goes on issuing from it.
//!
//! The fixture and the expected read-outs come from `scripts/make-compat-fixtures.sh`, run
//! with the old binary; it says which fields are left out because they move with the clock.

use crate::support::{assert_exit, Served};

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use provisioner_store_local::registry::SqliteRegistry;
use serde_json::Value;

/// The local half of the fixture: `data/`, `fleet/` and `expected/`.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/compat-75a88cd/local")
}

/// A recorded read-out of the old build.
fn expected(name: &str) -> Value {
    let path = fixture().join("expected").join(name);
    serde_json::from_str(&fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Copies `from` into `to`, secrets and all owner-only (git keeps no modes; the data
/// directory is the old build's, 0700 and 0600 or 0644).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o700)).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
            fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

/// `provisioner ARGS --data-dir data` in `dir`: the paths it prints are the ones the
/// old build printed when run the same way.
fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .args(args)
        .args(["--data-dir", "data"])
        .current_dir(dir)
        .env("PROVISIONER_LOG", "warn")
        .env_remove("PROVISIONER_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout_json(output: &Output) -> Value {
    assert_exit(output, 0);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `GET /admin/api/PATH` with the data directory's admin token.
fn admin(url: &str, token: &str, path: &str) -> Value {
    let out = Command::new("curl")
        .args(["-sf", "-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{url}/admin/api/{path}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "GET {path} failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Removes `keys` from every entry of the `crls` array: what moves with the clock.
fn crls_without(mut value: Value, keys: &[&str]) -> Value {
    for crl in value["crls"].as_array_mut().unwrap() {
        let crl = crl.as_object_mut().unwrap();
        for key in keys {
            crl.remove(*key);
        }
    }
    value
}

/// `device provision` of a fleet device against `url`.
fn provision(dir: &Path, url: &str, id: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .args(["device", "provision", "--url", url, "--device-id", id])
        .args(["--key", &format!("fleet/{id}.key.pem"), "--out", "issued"])
        .current_dir(dir)
        .env("PROVISIONER_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_data_directory_of_75a88cd_reads_back_unchanged_and_keeps_issuing() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    copy_tree(&fixture().join("data"), &dir.join("data"));
    copy_tree(&fixture().join("fleet"), &dir.join("fleet"));
    let devices = expected("devices.json");
    let device = |role: &str| devices[role].as_str().unwrap().to_owned();

    // The command-line read-outs, before serve rewrites the CRLs.
    let certs = stdout_json(&run(dir, &["certs", "list", "--json"]));
    assert_eq!(certs, expected("certs-list.json"), "certs list --json");
    let shown = stdout_json(&run(dir, &["ca", "show"]));
    assert_eq!(
        crls_without(shown.clone(), &["ageSecs", "expiresInSecs"]),
        expected("ca-show.json"),
        "ca show"
    );
    let chain = run(dir, &["ca", "export-chain"]);
    assert_exit(&chain, 0);
    assert_eq!(
        String::from_utf8(chain.stdout).unwrap(),
        fs::read_to_string(fixture().join("expected/ca-export-chain.pem")).unwrap(),
        "ca export-chain"
    );

    // What only the registry holds: every row the old build wrote is there.
    let counts = expected("counts.json");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let registry = SqliteRegistry::open(dir.join("data/registry.sqlite3")).unwrap();
        registry.integrity_check().await.unwrap();
        assert_eq!(
            registry.count_devices().await.unwrap(),
            counts["devices"].as_u64().unwrap()
        );
        assert_eq!(
            registry.cas().await.unwrap().len() as u64,
            counts["cas"].as_u64().unwrap()
        );
        let mut principals = 0;
        for thing in expected("things.json").as_array().unwrap() {
            let name = thing["name"].as_str().unwrap();
            let read = registry.thing(name).await.unwrap().expect("the thing");
            let read = serde_json::json!({
                "name": read.name,
                "policy": read.policy,
                "createdAt": read.created_at,
                "principals": read.principals,
            });
            assert_eq!(&read, thing, "thing {name}");
            principals += thing["principals"].as_array().unwrap().len() as u64;
        }
        assert_eq!(principals, counts["thingPrincipals"].as_u64().unwrap());
        assert!(registry
            .thing(&device("neverProvisioned"))
            .await
            .unwrap()
            .is_none());
    });
    assert_eq!(
        certs.as_array().unwrap().len() as u64,
        counts["certificates"]
    );

    // The admin API's read-outs.
    let served = Served::start(&dir.join("data"), &[]);
    let token = fs::read_to_string(dir.join("data/admin-token")).unwrap();
    let token = token.trim();
    let get = |path: &str| admin(&served.url, token, path);
    for (path, file) in [
        ("devices?limit=500", "admin-devices.json"),
        ("certificates?limit=500", "admin-certificates.json"),
        ("audit?limit=500", "admin-audit.json"),
        ("ca/rotation", "admin-ca-rotation.json"),
    ] {
        assert_eq!(get(path), expected(file), "GET /admin/api/{path}");
    }
    assert_eq!(
        get(&format!("devices/{}", device("renewedTwice"))),
        expected("admin-device.json"),
        "GET /admin/api/devices/ID"
    );
    let clock = [
        "thisUpdate",
        "nextUpdate",
        "ageSecs",
        "expiresInSecs",
        "expiresSoon",
    ];
    assert_eq!(
        crls_without(get("ca"), &clock),
        expected("admin-ca.json"),
        "GET /admin/api/ca"
    );
    assert_eq!(
        get("audit?limit=500")["items"].as_array().unwrap().len() as u64,
        counts["audit"]
    );

    // And it goes on: a device never provisioned and one whose certificate was revoked get
    // certificates of the current CA; the disabled one is still refused.
    let current = shown["currentId"].as_str().unwrap();
    for role in ["neverProvisioned", "revokedKeyCompromise"] {
        let answer = provision(dir, &served.url, &device(role));
        let answer = stdout_json(&answer);
        let id = answer["certificateId"].as_str().unwrap();
        let listed = stdout_json(&run(dir, &["certs", "list", "--json"]));
        let issued = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["certificateId"] == id)
            .expect("the new certificate is listed");
        assert_eq!(issued["issuer"], current, "{role}");
        assert_eq!(issued["status"], "ACTIVE", "{role}");
    }
    let refused = provision(dir, &served.url, &device("disabled"));
    assert_exit(&refused, 1);
    assert!(String::from_utf8_lossy(&refused.stdout).contains("device_disabled"));
    drop(served);

    // The old build's certificates are untouched by the new issuances.
    let listed = stdout_json(&run(dir, &["certs", "list", "--json"]));
    let old = expected("certs-list.json");
    let kept: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| old.as_array().unwrap().contains(c))
        .collect();
    assert_eq!(kept.len(), old.as_array().unwrap().len());
    assert_eq!(listed.as_array().unwrap().len(), kept.len() + 2);
}
