//! Compatibility of the DynamoDB tables with the build before the crate split (commit
//! 75a88cd): the tables that build created and the items it wrote (`serve --backend aws`,
//! `import`, `devices disable --revoke`, over moto) are put back as raw items, and this
//! build's admin API reads them exactly as that build did; it then writes to them.
//!
//! The fixture (`tables.json`: each table's keys and indexes, and its items in DynamoDB
//! JSON) and the expected read-outs come from `scripts/make-compat-fixtures.sh`. The
//! CA's items stay out of the comparison: they name an ACM Private CA of the moto that
//! made the fixture, which no later moto holds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use super::support::{endpoint, provisioner, Served};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/compat-75a88cd/aws")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn expected(name: &str) -> Value {
    read_json(&fixture().join("expected").join(name))
}

/// One DynamoDB API call (`DynamoDB_20120810.TARGET`) against moto, by its JSON protocol,
/// so the old build's items go in byte for byte; moto takes the region from the
/// credential scope and checks no signature.
fn dynamodb(target: &str, body: &Value) -> Value {
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let out = Command::new("curl")
        .args(["-s", "-X", "POST", "-w", "\n%{http_code}"])
        .args(["-H", "Content-Type: application/x-amz-json-1.0"])
        .args(["-H", &format!("X-Amz-Target: DynamoDB_20120810.{target}")])
        .args([
            "-H",
            &format!(
                "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/dynamodb/aws4_request, SignedHeaders=host, Signature=0"
            ),
        ])
        .args(["--data-binary", &body.to_string()])
        .arg(format!("{}/", endpoint()))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (answer, status) = text.rsplit_once('\n').unwrap();
    assert_eq!(status, "200", "{target}: {answer}");
    serde_json::from_str(answer).unwrap()
}

/// Creates the fixture's tables under `prefix` as the old build defined them, and puts
/// every item.
fn put_fixture(prefix: &str) {
    let tables = read_json(&fixture().join("tables.json"));
    for (suffix, table) in tables.as_object().unwrap() {
        let name = format!("{prefix}{suffix}");
        let schema = &table["schema"];
        let mut create = json!({
            "TableName": name,
            "KeySchema": schema["KeySchema"],
            "AttributeDefinitions": schema["AttributeDefinitions"],
            "BillingMode": "PAY_PER_REQUEST",
        });
        if !schema["GlobalSecondaryIndexes"]
            .as_array()
            .unwrap()
            .is_empty()
        {
            create["GlobalSecondaryIndexes"] = schema["GlobalSecondaryIndexes"].clone();
        }
        dynamodb("CreateTable", &create);
        for item in table["items"].as_array().unwrap() {
            dynamodb("PutItem", &json!({"TableName": name, "Item": item}));
        }
    }
}

/// `GET /admin/api/PATH` with the data directory's admin token.
fn admin(served: &Served, token: &str, path: &str) -> Value {
    admin_call(served, token, "GET", path)
}

fn admin_call(served: &Served, token: &str, method: &str, path: &str) -> Value {
    let out = Command::new("curl")
        .args(["-sf", "-X", method])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{}/admin/api/{path}", served.url))
        .output()
        .unwrap();
    assert!(out.status.success(), "{method} {path} failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A page with its items sorted by `key`: DynamoDB lists come in the table's order.
fn sorted(mut page: Value, key: &str) -> Value {
    page["items"]
        .as_array_mut()
        .unwrap()
        .sort_by_key(|item| item[key].as_str().unwrap().to_owned());
    page
}

#[test]
fn dynamodb_items_of_75a88cd_read_back_unchanged_and_take_new_writes() {
    endpoint();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let prefix = format!("compat-{:016x}-", rand::random::<u64>());
    put_fixture(&prefix);

    let served = Served::start(dir, &prefix);
    let token = provisioner(dir, &prefix, &["admin", "token", "--data-dir", "data"]);
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap();
    let token = token.trim();
    let get = |path: &str| admin(&served, token, path);
    assert_eq!(
        sorted(get("devices?limit=500"), "deviceId"),
        expected("admin-devices.json"),
        "GET /admin/api/devices"
    );
    assert_eq!(
        sorted(get("certificates?limit=500"), "certificateId"),
        expected("admin-certificates.json"),
        "GET /admin/api/certificates"
    );
    let devices = expected("devices.json");
    let devices: Vec<&str> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    for (i, device) in devices.iter().enumerate() {
        assert_eq!(
            get(&format!("devices/{device}")),
            expected(&format!("admin-device-{i}.json")),
            "GET /admin/api/devices/{device}"
        );
        assert_eq!(
            get(&format!("audit?limit=500&device={device}")),
            expected(&format!("admin-audit-{i}.json")),
            "GET /admin/api/audit?device={device}"
        );
    }

    // It goes on from there: the stolen device enabled again, one more device imported;
    // everything else reads as before.
    let stolen = devices[1];
    let enabled = admin_call(&served, token, "POST", &format!("devices/{stolen}/enable"));
    assert_eq!(enabled["enabled"], true, "{enabled}");
    let mut was = expected("admin-device-1.json");
    was["enabled"] = Value::Bool(true);
    let now = get(&format!("devices/{stolen}"));
    assert_eq!(now["enabled"], true);
    assert_eq!(now["certificates"], was["certificates"]);

    let fleet = dir.join("fleet");
    let made = provisioner(
        dir,
        &prefix,
        &[
            "device",
            "fleet",
            "--count",
            "1",
            "--out",
            fleet.to_str().unwrap(),
        ],
    );
    assert!(made.status.success());
    let imported = provisioner(
        dir,
        &prefix,
        &[
            "import",
            "--backend",
            "aws",
            "--json",
            fleet.join("manifest.csv").to_str().unwrap(),
        ],
    );
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let listed = sorted(get("devices?limit=500"), "deviceId");
    let old = expected("admin-devices.json");
    let old = old["items"].as_array().unwrap();
    let listed = listed["items"].as_array().unwrap();
    assert_eq!(listed.len(), old.len() + 1);
    for device in old {
        let id = device["deviceId"].as_str().unwrap();
        let now = listed.iter().find(|d| d["deviceId"] == id).unwrap();
        if id == stolen {
            assert_eq!(now["enabled"], true);
        } else {
            assert_eq!(now, device, "device {id}");
        }
    }
    assert_eq!(
        sorted(get("certificates?limit=500"), "certificateId"),
        expected("admin-certificates.json"),
        "the certificates after the writes"
    );
}
