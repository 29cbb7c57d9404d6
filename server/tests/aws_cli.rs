//! `provisioner aws ca ...` run as the real binary against moto's server (ACM Private CA,
//! IoT Core in two regions, DynamoDB): the PKI admin's setup, then a rotation.
//!
//! Run by `scripts/test-aws.sh` (feature `aws`, moto started with `AWS_ENDPOINT_URL`
//! and dummy credentials set). The cascade itself (device certificates revoked in
//! every region, resumption) is tested at the library level in
//! `service/tests/aws_ca.rs`; here the commands, their JSON and their exit codes.

#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop loudly on broken fixtures

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use provisioner_service::aws::dynamodb::{DynamoDbRegistry, DynamoDbTables};
use serde_json::Value;

const REGIONS: &str = "us-east-1,eu-west-1";

fn endpoint() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL must point at moto: run scripts/test-aws.sh");
    // Never create CAs in a real account by accident.
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "AWS_ENDPOINT_URL={endpoint} is not a local stand-in"
    );
    endpoint
}

/// Runs `provisioner aws --regions ... --table-prefix PREFIX ARGS` in `dir`.
fn aws(dir: &Path, prefix: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .args(["aws", "--regions", REGIONS, "--table-prefix", prefix])
        .args(args)
        .current_dir(dir)
        .env("PROVISIONER_LOG", "warn")
        .env_remove("PROVISIONER_PCA_CA_ARN")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The stdout of a successful run, as JSON.
fn ok_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        stderr(&output)
    );
}

/// `aws ca create`, the openssl root signs the CSR, `aws ca install`: the CA's ARN.
fn create_and_install(dir: &Path, prefix: &str, name: &str) -> (String, Value) {
    let created = ok_json(&aws(
        dir,
        prefix,
        &[
            "ca",
            "create",
            "--subject",
            &format!(
                "CN=CLI {name} {:08x},O=provisioner tests",
                rand::random::<u32>()
            ),
            "--out",
            &format!("{name}.csr"),
        ],
    ));
    let arn = created["caArn"].as_str().unwrap().to_owned();
    assert!(std::fs::read_to_string(dir.join(format!("{name}.csr")))
        .unwrap()
        .contains("BEGIN CERTIFICATE REQUEST"));
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
            "-extfile",
            "ext.cnf",
            "-out",
            &format!("{name}.pem"),
        ],
    );
    // No --arn: the CA `create` recorded as pending.
    let installed = ok_json(&aws(
        dir,
        prefix,
        &[
            "ca",
            "install",
            &format!("{name}.pem"),
            "--chain",
            "root.pem",
        ],
    ));
    assert_eq!(installed["caArn"], Value::from(arn.clone()));
    (arn, installed)
}

/// An offline root CA made by openssl (`root.pem`, `root.key`) and the extensions it
/// signs intermediates with (`ext.cnf`).
fn offline_root(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-days",
            "3650",
            "-subj",
            "/CN=CLI Offline Root",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=critical,CA:TRUE,pathlen:0\n\
         keyUsage=critical,digitalSignature,keyCertSign,cRLSign\n",
    )
    .unwrap();
}

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

/// `provisioner serve --backend aws` on 127.0.0.1, stopped by its PID when dropped.
struct Served {
    child: Child,
    url: String,
}

impl Served {
    fn start(dir: &Path, prefix: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_provisioner"))
            .args(["serve", "--backend", "aws", "--create-tables"])
            .args(["--listen", "127.0.0.1:0", "--data-dir", "data"])
            .current_dir(dir)
            .env("PROVISIONER_LOG", "warn")
            .env("PROVISIONER_TABLE_PREFIX", prefix)
            .env("PROVISIONER_REGIONS", REGIONS)
            .env("PROVISIONER_MQTT_ENDPOINT", "iot.example:8883")
            .env_remove("PROVISIONER_PCA_CA_ARN")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line was {line:?}"))
            .to_owned();
        // The tables exist once serve says which backend it runs.
        loop {
            line.clear();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "serve stopped");
            if line.starts_with("backend aws") {
                break;
            }
        }
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Self { child, url }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// `provisioner ARGS` in `dir` with the deployment's environment.
fn provisioner(dir: &Path, prefix: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .args(args)
        .current_dir(dir)
        .env("PROVISIONER_LOG", "warn")
        .env("PROVISIONER_TABLE_PREFIX", prefix)
        .env("PROVISIONER_REGIONS", REGIONS)
        .stdin(Stdio::null())
        .output()
        .unwrap()
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
