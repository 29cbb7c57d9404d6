//! Issuance invariants against the real `provisioner serve` binary on loopback: dozens of
//! concurrent `POST /new` for one device give one certificate (invariant 1), and a `ca
//! rotate` run in another process while every request renews leaves no ACTIVE
//! certificate under the retired CA (invariant 4).

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rcgen::PublicKeyData;
use serde_json::Value;
use support::{assert_exit, json, provisioner, Served};

/// A simulated device with its secure-element key.
struct Device {
    id: String,
    key: rcgen::KeyPair,
}

impl Device {
    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            key: rcgen::KeyPair::generate().unwrap(),
        }
    }

    fn manifest_row(&self) -> String {
        let spki =
            base64::engine::general_purpose::STANDARD.encode(self.key.subject_public_key_info());
        format!("{},{spki}\n", self.id)
    }

    /// A new CSR each call (ECDSA signatures are randomised), same key, CN = the id.
    fn csr_header(&self) -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, self.id.as_str());
        let csr = params.serialize_request(&self.key).unwrap();
        base64::engine::general_purpose::STANDARD.encode(csr.der())
    }
}

fn import<'a>(data_dir: &Path, devices: impl IntoIterator<Item = &'a Device>) {
    let manifest = data_dir.with_extension("manifest.csv");
    let rows: String = devices.into_iter().map(Device::manifest_row).collect();
    std::fs::write(&manifest, rows).unwrap();
    assert_exit(
        &provisioner(&[
            "import",
            manifest.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ]),
        0,
    );
}

/// Every certificate recorded, as `certs list --json` shows them.
fn certificates(data_dir: &Path) -> Vec<Value> {
    let out = provisioner(&[
        "certs",
        "list",
        "--json",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]);
    assert_exit(&out, 0);
    json(&out).as_array().unwrap().clone()
}

/// One answer of `POST /new`: (status, certificateId if 200, Retry-After if present).
type Answer = (u16, Option<String>, Option<String>);

async fn post_new(client: &reqwest::Client, url: &str, header: &str) -> Answer {
    let response = client
        .post(format!("{url}/new"))
        .header("device-csr", header)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let id = body["certificateId"].as_str().map(str::to_owned);
    (status, id, retry_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_for_one_device_get_one_certificate() {
    // given serve with the defaults and three imported devices
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let served = Served::start(&data, &[]);
    let client = reqwest::Client::new();
    let devices: Vec<Device> = (0..3).map(|i| Device::new(&format!("race-{i}"))).collect();
    import(&data, &devices);

    // when, in several rounds, 30 requests per device (different CSRs of its key) race
    let mut answers: BTreeMap<String, Vec<Answer>> = BTreeMap::new();
    for _ in 0..3 {
        let mut tasks = Vec::new();
        for device in &devices {
            let headers: Vec<String> = (0..5).map(|_| device.csr_header()).collect();
            for i in 0..30 {
                let (client, url, header) =
                    (client.clone(), served.url.clone(), headers[i % 5].clone());
                let id = device.id.clone();
                tasks.push(tokio::spawn(async move {
                    (id, post_new(&client, &url, &header).await)
                }));
            }
        }
        for task in tasks {
            let (id, answer) = task.await.unwrap();
            answers.entry(id).or_default().push(answer);
        }
    }

    // then each device got one certificate: every answer is it or 503 with Retry-After
    let recorded = certificates(&data);
    for device in &devices {
        let given = &answers[&device.id];
        let ids: BTreeSet<&String> = given.iter().filter_map(|(_, id, _)| id.as_ref()).collect();
        assert_eq!(ids.len(), 1, "{}: {given:?}", device.id);
        for (status, id, retry_after) in given {
            match status {
                200 => assert!(id.is_some()),
                503 => assert!(retry_after.is_some(), "a 503 without Retry-After"),
                other => panic!("{}: status {other}: {given:?}", device.id),
            }
        }
        let mine: Vec<&Value> = recorded
            .iter()
            .filter(|c| c["deviceId"] == device.id.as_str())
            .collect();
        assert_eq!(mine.len(), 1, "{}: {mine:?}", device.id);
        assert_eq!(mine[0]["status"], "ACTIVE");
        assert_eq!(
            &mine[0]["certificateId"].as_str().unwrap(),
            ids.iter().next().unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotation_under_load_leaves_nothing_active_under_the_retired_ca() {
    // given serve where every request renews, without a rate limit, and eight devices
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let served = Served::start(
        &data,
        &[
            "--validity-days",
            "30",
            "--renew-within-days",
            "30",
            "--rate-limit",
            "0",
        ],
    );
    let client = reqwest::Client::new();
    let devices: Vec<Arc<Device>> = (0..8)
        .map(|i| Arc::new(Device::new(&format!("load-{i}"))))
        .collect();
    import(&data, devices.iter().map(|d| &**d));

    // when every device keeps renewing (three requests at a time each) ...
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for device in &devices {
        for _ in 0..3 {
            let (client, url, device, stop) = (
                client.clone(),
                served.url.clone(),
                device.clone(),
                stop.clone(),
            );
            workers.push(tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    answers.push(post_new(&client, &url, &device.csr_header()).await);
                }
                answers
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // ... and `ca rotate` runs in another process meanwhile
    let data_arg = data.to_str().unwrap().to_owned();
    let rotate = tokio::task::spawn_blocking(move || {
        provisioner(&["ca", "rotate", "--data-dir", &data_arg])
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut answers = Vec::new();
    for worker in workers {
        answers.extend(worker.await.unwrap());
    }

    // then the rotation finished, requests kept succeeding (200, or 503 to retry) ...
    assert_exit(&rotate, 0);
    let old_ca = json(&rotate)["oldCa"].as_str().unwrap().to_owned();
    let new_ca = json(&rotate)["newCa"].as_str().unwrap().to_owned();
    assert!(
        answers
            .iter()
            .all(|(status, _, _)| *status == 200 || *status == 503),
        "{answers:?}"
    );
    let ok = answers
        .iter()
        .filter(|(status, _, _)| *status == 200)
        .count();
    assert!(
        ok > answers.len() / 2,
        "{ok} of {} succeeded",
        answers.len()
    );

    // ... no ACTIVE certificate is left under the retired CA, and each device holds one
    // ACTIVE certificate, under the new CA
    let recorded = certificates(&data);
    let old_active: Vec<&Value> = recorded
        .iter()
        .filter(|c| c["issuer"] == old_ca.as_str() && c["status"] == "ACTIVE")
        .collect();
    assert!(
        old_active.is_empty(),
        "ACTIVE under the retired CA: {old_active:?}"
    );
    assert!(
        recorded.iter().any(|c| c["issuer"] == old_ca.as_str()),
        "no load before the rotation"
    );
    for device in &devices {
        let active: Vec<&Value> = recorded
            .iter()
            .filter(|c| c["deviceId"] == device.id.as_str() && c["status"] == "ACTIVE")
            .collect();
        assert_eq!(active.len(), 1, "{}: {active:?}", device.id);
        assert_eq!(active[0]["issuer"], new_ca.as_str());
    }
    eprintln!(
        "rotation under load: {} requests, {ok} answered 200, {} certificates recorded",
        answers.len(),
        recorded.len()
    );
}

/// The lines `serve` writes to stderr within `wait`, started with `extra`.
fn serve_stderr(data_dir: &Path, extra: &[&str], wait: Duration) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env("PROVISIONER_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("listening on "), "{first:?}");
    let stderr = child.stderr.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    std::thread::sleep(wait);
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    received.try_iter().collect::<Vec<_>>().join("\n")
}

#[test]
fn serve_warns_when_every_request_renews_and_not_with_the_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let warned = serve_stderr(
        &tmp.path().join("a"),
        &["--validity-days", "30", "--renew-within-days", "30"],
        Duration::from_secs(2),
    );
    assert!(
        warned.contains("every request renews") && warned.contains("replayed CSR"),
        "{warned}"
    );
    let quiet = serve_stderr(&tmp.path().join("b"), &[], Duration::from_secs(2));
    assert!(!quiet.contains("every request renews"), "{quiet}");
}
