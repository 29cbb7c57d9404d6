//! `provisioner serve --backend aws` in issuance mode iot-core, run as the real binary
//! against moto's server: IoT Core's `CreateCertificateFromCsr` copies the CSR's subject,
//! so a subject beyond the CN is refused (400 `subject_not_cn_only`) before IoT Core is
//! called (issue 11, invariant 3).
//!
//! Run by `scripts/test-aws.sh` (feature `aws`, moto started with `AWS_ENDPOINT_URL` and
//! dummy credentials set).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use provisioner_store_aws::dynamodb::{DynamoDbRegistry, DynamoDbTables};
use serde_json::Value;

fn endpoint() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL must point at moto: run scripts/test-aws.sh");
    // Never touch a real account by accident.
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "AWS_ENDPOINT_URL={endpoint} is not a local stand-in"
    );
    endpoint
}

/// `serve`, stopped by its PID when dropped.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// The stdout of a successful run, as JSON.
fn ok_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `provisioner ARGS` in `dir` with the deployment's environment (one region).
fn provisioner(dir: &Path, prefix: &str, region: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .args(args)
        .current_dir(dir)
        .env("PROVISIONER_LOG", "warn")
        .env("PROVISIONER_TABLE_PREFIX", prefix)
        .env("PROVISIONER_REGIONS", region)
        .stdin(Stdio::null())
        .output()
        .unwrap()
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
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `provisioner serve --backend aws` in issuance mode iot-core, in the one `region`.
fn serve_iot_core(dir: &Path, prefix: &str, region: &str) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .args(["serve", "--backend", "aws", "--create-tables"])
        .args(["--listen", "127.0.0.1:0", "--data-dir", "data"])
        .current_dir(dir)
        .env("PROVISIONER_LOG", "warn")
        .env("PROVISIONER_TABLE_PREFIX", prefix)
        .env("PROVISIONER_ISSUANCE_MODE", "iot-core")
        .env("PROVISIONER_REGIONS", region)
        .env("PROVISIONER_MQTT_ENDPOINT", "iot.example:8883")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let mut url = None;
    // "listening on URL", then "backend aws ..." once the tables exist.
    while !line.starts_with("backend aws") {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "serve stopped");
        if let Some(found) = line.trim().strip_prefix("listening on ") {
            url = Some(found.to_owned());
        }
    }
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    Served {
        child,
        url: url.expect("serve printed no address"),
    }
}

#[tokio::test]
async fn in_iot_core_mode_a_subject_beyond_the_cn_is_refused_before_iot_core() {
    use base64::Engine as _;
    endpoint();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let prefix = format!("iotcn-{:016x}-", rand::random::<u64>());
    let region = std::env::var("AWS_REGION").unwrap();
    let served = serve_iot_core(dir, &prefix, &region);
    ok_json(&provisioner(
        dir,
        &prefix,
        &region,
        &["device", "fleet", "--count", "1", "--out", "fleet"],
    ));
    ok_json(&provisioner(
        dir,
        &prefix,
        &region,
        &["import", "--backend", "aws", "--json", "fleet/manifest.csv"],
    ));
    let manifest = std::fs::read_to_string(dir.join("fleet/manifest.csv")).unwrap();
    let device = manifest.lines().nth(1).unwrap().split(',').next().unwrap();

    // The device's own key, but a subject IoT Core would copy O and OU from.
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &format!("fleet/{device}.key.pem"),
            "-subj",
            &format!("/O=Acme Devices/OU=Sensors/CN={device}"),
            "-outform",
            "DER",
            "-out",
            "asks.csr.der",
        ],
    );
    let header = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(dir.join("asks.csr.der")).unwrap());
    let client = reqwest::Client::new();
    let answer = client
        .post(format!("{}/new", served.url))
        .header("device-csr", header)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "subject_not_cn_only", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("O, OU"),
        "{body}"
    );

    // Nothing was signed: the device has no certificate.
    let registry = DynamoDbRegistry::from_env(DynamoDbTables::with_prefix(&prefix)).await;
    let held = provisioner_core::DeviceRegistry::certificates_of(&registry, device, 0)
        .await
        .unwrap();
    assert!(held.is_empty(), "{held:?}");
}
