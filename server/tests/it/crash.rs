//! Durability: kill -9 the service while devices are being issued certificates, then
//! check the database is intact and holds every certificate a client received.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use provisioner_store_local::registry::SqliteRegistry;
use support::{assert_exit, json, provisioner};

/// A CSR header for a fleet key, built the way `device provision` builds it.
fn header(fleet: &std::path::Path, id: &str) -> String {
    let pem = std::fs::read_to_string(fleet.join(format!("{id}.key.pem"))).unwrap();
    let key = rcgen::KeyPair::from_pem(&pem).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, id);
    let csr = params.serialize_request(&key).unwrap();
    base64::engine::general_purpose::STANDARD.encode(csr.der())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_certificate_or_audit_record_a_client_received_and_keeps_its_database_intact(
) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let fleet = tmp.path().join("fleet");
    assert_exit(
        &provisioner(&[
            "device",
            "fleet",
            "--count",
            "20",
            "--out",
            fleet.to_str().unwrap(),
        ]),
        0,
    );
    let import = provisioner(&[
        "import",
        fleet.join("manifest.csv").to_str().unwrap(),
        "--json",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_exit(&import, 0);
    assert_eq!(json(&import)["imported"], 20);
    let manifest = std::fs::read_to_string(fleet.join("manifest.csv")).unwrap();
    let headers: Vec<String> = manifest
        .lines()
        .skip(1)
        .map(|line| header(&fleet, line.split(',').next().unwrap()))
        .collect();

    // Every request issues a new certificate (and supersedes the previous one).
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--rate-limit",
            "0",
            "--renew-within-days",
            "36500",
            "--data-dir",
        ])
        .arg(&data)
        .env("PROVISIONER_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();

    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut workers = Vec::new();
    for worker in 0..8 {
        let (client, url, received, headers) = (
            client.clone(),
            url.clone(),
            received.clone(),
            headers.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut i = worker;
            while Instant::now() < deadline {
                let sent = client
                    .post(format!("{url}/new"))
                    .header("device-csr", &headers[i % headers.len()])
                    .send()
                    .await;
                i += 8;
                let Ok(response) = sent else {
                    // The server is gone (killed) or not up yet.
                    if received.lock().unwrap().len() > 50 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                if response.status() == 200 {
                    if let Ok(body) = response.json::<serde_json::Value>().await {
                        received
                            .lock()
                            .unwrap()
                            .push(body["certificateId"].as_str().unwrap().to_owned());
                    }
                }
            }
        }));
    }
    // Kill the server in the middle of the load.
    let started = Instant::now();
    while received.lock().unwrap().len() < 200 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the load never got going"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let _ = child.wait();
    for worker in workers {
        worker.await.unwrap();
    }
    let received = received.lock().unwrap().clone();

    let registry = SqliteRegistry::open(data.join("registry.sqlite3")).unwrap();
    registry.integrity_check().await.unwrap();
    let mut missing = Vec::new();
    for id in &received {
        if provisioner_core::DeviceRegistry::certificate(&registry, id)
            .await
            .unwrap()
            .is_none()
        {
            missing.push(id.clone());
        }
    }
    // Every allow was audited before its answer left: each received certificate has one.
    let audited: std::collections::HashSet<String> = registry
        .audit_since(0, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .filter(|entry| entry.event.decision == "allow")
        .filter_map(|entry| entry.event.certificate_id)
        .collect();
    let unaudited = received.iter().filter(|id| !audited.contains(*id)).count();
    assert_eq!(
        unaudited, 0,
        "received certificates without an allow in the audit log"
    );
    assert!(
        missing.is_empty(),
        "{} of {} received certificates are not in the registry",
        missing.len(),
        received.len()
    );
    assert!(received.len() >= 200);
}
