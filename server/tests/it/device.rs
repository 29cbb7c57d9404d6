//! `provisioner device ...` as a device engineer runs it: the real binary against an HTTP
//! stub (with certificates made by the openssl CLI) and a real mosquitto broker.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use provisioner_core::{CsrVerifier, DeviceKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::{
    assert_exit, generate_key, json, openssl, provisioner, BrokerTls, HttpStub, Mosquitto, Pki,
    StubResponse,
};

const DEVICE: &str = "01235A2B3C4D5E6F7A";

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The public key of a private key file, as openssl (independently) derives it.
fn openssl_public_key(dir: &Path, key: &Path) -> DeviceKey {
    let out = openssl(dir, &["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
    DeviceKey::parse(&String::from_utf8(out.stdout).unwrap()).unwrap()
}

fn pem_to_der(dir: &Path, cert: &Path) -> Vec<u8> {
    openssl(
        dir,
        &["x509", "-in", cert.to_str().unwrap(), "-outform", "DER"],
    )
    .stdout
}

/// A device key, a PKI and a certificate for that key: what a 200 answer carries.
struct Provisioned {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    key: PathBuf,
    pki: Pki,
    leaf: support::Issued,
}

fn provisioned(device_id: &str) -> Provisioned {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let key = dir.join(format!("{device_id}.key.pem"));
    generate_key(&dir, &key);
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let pki = Pki::new(&dir.join("pki"), "good");
    let leaf = pki.issue_client(&key, device_id);
    Provisioned {
        _tmp: tmp,
        dir,
        key,
        pki,
        leaf,
    }
}

fn issued_answer(p: &Provisioned) -> Value {
    json!({
        "certificatePem": fs::read_to_string(&p.leaf.cert).unwrap(),
        "caChainPem": p.pki.chain_pem(),
        "certificateId": hex::encode(Sha256::digest(pem_to_der(&p.dir, &p.leaf.cert))),
        "notAfter": "2031-01-01T00:00:00Z",
        "endpoint": "mqtt.example.test:8883",
    })
}

// ---------------------------------------------------------------------------------------
// fleet
// ---------------------------------------------------------------------------------------

#[test]
fn fleet_writes_private_keys_and_a_manifest_that_matches_them() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("fleet");
    let run = provisioner(&[
        "device",
        "fleet",
        "--count",
        "7",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_exit(&run, 0);
    assert_eq!(json(&run)["devices"], 7);

    let manifest = fs::read_to_string(out.join("manifest.csv")).unwrap();
    let mut lines = manifest.lines();
    assert_eq!(lines.next(), Some("device_id,public_key"));
    let rows: Vec<(&str, &str)> = lines.map(|l| l.split_once(',').unwrap()).collect();
    assert_eq!(rows.len(), 7);
    let mut ids: Vec<&str> = rows.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 7, "device ids are unique");

    for (id, key_hex) in rows {
        assert_eq!(id.len(), 18, "{id}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
            "{id} is upper-case hex"
        );
        assert!(
            key_hex.starts_with("04") && key_hex.len() == 130,
            "{key_hex}"
        );
        let key_file = out.join(format!("{id}.key.pem"));
        assert_eq!(mode(&key_file), 0o600, "{}", key_file.display());
        assert!(fs::read_to_string(&key_file)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(
            openssl_public_key(tmp.path(), &key_file),
            DeviceKey::parse(key_hex).unwrap(),
            "the manifest key of {id} is the key in its file"
        );
    }
    let key_files = fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .ends_with(".key.pem")
        })
        .count();
    assert_eq!(key_files, 7);

    // The manifest is what the registry import reads.
    let reader = provisioner_core::ManifestReader::new();
    let records: Vec<_> = reader
        .read(manifest.as_bytes())
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(records.len(), 7);

    // A second fleet into the same directory is refused rather than mixed in.
    let again = provisioner(&[
        "device",
        "fleet",
        "--count",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_exit(&again, 1);
    assert_eq!(json(&again)["error"], "fleet_exists");
}

// ---------------------------------------------------------------------------------------
// provision
// ---------------------------------------------------------------------------------------

#[test]
fn provision_sends_a_valid_csr_and_stores_the_certificate() {
    let p = provisioned(DEVICE);
    let answer = issued_answer(&p);
    let stub = HttpStub::start(10, move |_| StubResponse::json(200, &answer));
    let out = p.dir.join("device");

    let run = provisioner(&[
        "device",
        "provision",
        "--url",
        &stub.url,
        "--key",
        p.key.to_str().unwrap(),
        "--device-id",
        DEVICE,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_exit(&run, 0);
    let summary = json(&run);
    let expected_id = hex::encode(Sha256::digest(pem_to_der(&p.dir, &p.leaf.cert)));
    assert_eq!(
        summary,
        json!({
            "deviceId": DEVICE,
            "certificateId": expected_id,
            "notAfter": "2031-01-01T00:00:00Z",
            "endpoint": "mqtt.example.test:8883",
        })
    );

    // The request: POST /new with a device-csr header our verifier and openssl accept.
    let requests = stub.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/new");
    assert_eq!(requests[0].query, None);
    let header = &requests[0].headers["device-csr"];
    let verified = CsrVerifier::default().verify_header(header).unwrap();
    assert_eq!(verified.device_id, DEVICE);
    assert_eq!(
        verified.public_key,
        openssl_public_key(&p.dir, &p.key),
        "the CSR carries the device's key"
    );
    assert_eq!(verified.signature_algorithm.name(), "ecdsa-with-SHA256");
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(header)
        .unwrap();
    let csr = p.dir.join("sent.csr.der");
    fs::write(&csr, der).unwrap();
    let checked = openssl(
        &p.dir,
        &[
            "req",
            "-in",
            csr.to_str().unwrap(),
            "-inform",
            "DER",
            "-verify",
            "-noout",
            "-subject",
            "-nameopt",
            "RFC2253",
        ],
    );
    let text = String::from_utf8_lossy(&checked.stdout).to_string()
        + &String::from_utf8_lossy(&checked.stderr);
    assert!(text.contains("verify OK"), "{text}");
    assert!(text.contains(&format!("subject=CN={DEVICE}\n")), "{text}");

    // The files: certificate, chain, and the key copied with owner-only access.
    assert_eq!(
        pem_to_der(&p.dir, &out.join(format!("{DEVICE}.cert.pem"))),
        pem_to_der(&p.dir, &p.leaf.cert)
    );
    assert_eq!(
        fs::read_to_string(out.join(format!("{DEVICE}.chain.pem"))).unwrap(),
        p.pki.chain_pem()
    );
    let copied = out.join(format!("{DEVICE}.key.pem"));
    assert_eq!(fs::read(&copied).unwrap(), fs::read(&p.key).unwrap());
    assert_eq!(mode(&copied), 0o600);
    // The stored chain verifies the stored certificate (independently, with openssl).
    let verify = openssl(
        &p.dir,
        &[
            "verify",
            "-CAfile",
            p.pki.root.to_str().unwrap(),
            "-untrusted",
            p.pki.intermediate.to_str().unwrap(),
            "-purpose",
            "sslclient",
            out.join(format!("{DEVICE}.cert.pem")).to_str().unwrap(),
        ],
    );
    assert!(String::from_utf8_lossy(&verify.stdout).contains("OK"));
}

#[test]
fn provision_with_latent_delivery_fetches_the_retrieval_url_and_retries() {
    let p = provisioned(DEVICE);
    let bundle = fs::read_to_string(&p.leaf.cert).unwrap() + &p.pki.chain_pem();
    let misses = std::sync::atomic::AtomicU32::new(0);
    let stub = HttpStub::start(10, move |request| match request.method.as_str() {
        "POST" => StubResponse::json(
            200,
            &json!({
                "retrievalUrl": "/certificates/abc?expires=99&signature=00",
                "expiresAt": "2030-01-01T00:00:00Z",
            }),
        ),
        // Not there yet on the first try.
        _ if misses.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0 => {
            StubResponse::json(404, &json!({"error": "not_found", "message": "not yet"}))
        }
        _ => StubResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/x-pem-file".into())],
            body: bundle.clone(),
        },
    });
    let out = p.dir.join("device");
    let run = provisioner(&[
        "device",
        "provision",
        "--url",
        &stub.url,
        "--key",
        p.key.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--delivery",
        "url",
    ]);
    assert_exit(&run, 0);
    let summary = json(&run);
    assert_eq!(
        summary["deviceId"], DEVICE,
        "the id defaults to the key file's name"
    );
    assert_eq!(
        summary["certificateId"],
        hex::encode(Sha256::digest(pem_to_der(&p.dir, &p.leaf.cert)))
    );
    let end = String::from_utf8(
        openssl(
            &p.dir,
            &[
                "x509",
                "-in",
                p.leaf.cert.to_str().unwrap(),
                "-noout",
                "-enddate",
            ],
        )
        .stdout,
    )
    .unwrap();
    let year = summary["notAfter"].as_str().unwrap()[..4].to_owned();
    assert!(end.contains(&year), "{end} vs {summary}");

    let requests = stub.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert_eq!(requests[0].query.as_deref(), Some("delivery=url"));
    assert_eq!(requests[1].path, "/certificates/abc");
    assert_eq!(
        requests[2].query.as_deref(),
        Some("expires=99&signature=00")
    );
    assert_eq!(
        pem_to_der(&p.dir, &out.join(format!("{DEVICE}.cert.pem"))),
        pem_to_der(&p.dir, &p.leaf.cert)
    );
    assert_eq!(
        fs::read_to_string(out.join(format!("{DEVICE}.chain.pem"))).unwrap(),
        p.pki.chain_pem(),
        "the chain is the rest of the retrieved PEM"
    );
}

#[test]
fn an_error_answer_prints_the_services_body_with_the_status_and_exits_1() {
    let p = provisioned(DEVICE);
    let stub = HttpStub::start(10, |_| {
        StubResponse::json(
            404,
            &json!({"error": "unknown_device", "message": "device 01235A2B3C4D5E6F7A is not in the registry"}),
        )
    });
    let out = p.dir.join("device");
    let run = provisioner(&[
        "device",
        "provision",
        "--url",
        &stub.url,
        "--key",
        p.key.to_str().unwrap(),
        "--device-id",
        DEVICE,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_exit(&run, 1);
    assert_eq!(
        json(&run),
        json!({
            "error": "unknown_device",
            "message": "device 01235A2B3C4D5E6F7A is not in the registry",
            "status": 404,
        })
    );
    assert!(!out.join(format!("{DEVICE}.cert.pem")).exists());
}

#[test]
fn a_rate_limited_answer_says_when_to_retry() {
    let p = provisioned(DEVICE);
    let stub = HttpStub::start(10, |_| {
        StubResponse::json(
            429,
            &json!({"error": "rate_limited", "message": "too many certificates"}),
        )
        .with_header("retry-after", "120")
    });
    let run = provisioner(&[
        "device",
        "provision",
        "--url",
        &stub.url,
        "--key",
        p.key.to_str().unwrap(),
        "--out",
        p.dir.join("device").to_str().unwrap(),
    ]);
    assert_exit(&run, 1);
    let body = json(&run);
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(body["status"], 429);
    assert_eq!(body["retryAfter"], 120);
    assert!(
        body["message"].as_str().unwrap().contains("120 s"),
        "{body}"
    );
}

#[test]
fn a_certificate_for_another_key_is_not_stored() {
    let p = provisioned(DEVICE);
    let other_key = p.dir.join("other.key.pem");
    generate_key(&p.dir, &other_key);
    let other = p.pki.issue_client(&other_key, DEVICE);
    let answer = json!({
        "certificatePem": fs::read_to_string(&other.cert).unwrap(),
        "caChainPem": p.pki.chain_pem(),
        "certificateId": "00",
        "notAfter": "2031-01-01T00:00:00Z",
        "endpoint": null,
    });
    let stub = HttpStub::start(10, move |_| StubResponse::json(200, &answer));
    let out = p.dir.join("device");
    let run = provisioner(&[
        "device",
        "provision",
        "--url",
        &stub.url,
        "--key",
        p.key.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_exit(&run, 1);
    assert_eq!(json(&run)["error"], "certificate_mismatch");
    assert!(!out.join(format!("{DEVICE}.cert.pem")).exists());
}

#[test]
fn an_unreachable_service_is_reported_as_json() {
    let p = provisioned(DEVICE);
    let port = support::free_port();
    let run = provisioner(&[
        "device",
        "provision",
        "--url",
        &format!("http://127.0.0.1:{port}"),
        "--key",
        p.key.to_str().unwrap(),
        "--out",
        p.dir.join("device").to_str().unwrap(),
    ]);
    assert_exit(&run, 1);
    assert_eq!(json(&run)["error"], "unreachable");
}

// ---------------------------------------------------------------------------------------
// connect, against a real mosquitto
// ---------------------------------------------------------------------------------------

/// A device directory as `provision` leaves it.
fn device_dir(root: &Path, name: &str, key: &Path, cert: &Path, chain: &str) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir_all(&dir).unwrap();
    fs::copy(key, dir.join(format!("{DEVICE}.key.pem"))).unwrap();
    fs::copy(cert, dir.join(format!("{DEVICE}.cert.pem"))).unwrap();
    fs::write(dir.join(format!("{DEVICE}.chain.pem")), chain).unwrap();
    dir
}

fn broker(p: &Provisioned, crl: Option<PathBuf>) -> Mosquitto {
    let (certfile, keyfile) = p.pki.issue_server();
    Mosquitto::start(
        &p.dir.join("broker"),
        &BrokerTls {
            cafile: p.pki.chain_file(),
            certfile,
            keyfile,
            crlfile: crl,
        },
    )
}

fn connect(endpoint: &str, dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "device",
        "connect",
        "--mqtt",
        endpoint,
        "--dir",
        dir.to_str().unwrap(),
        "--timeout",
        "10",
    ];
    args.extend_from_slice(extra);
    provisioner(&args)
}

#[test]
fn a_provisioned_device_connects_and_publishes() {
    let p = provisioned(DEVICE);
    let mosquitto = broker(&p, None);
    let dir = device_dir(&p.dir, "device", &p.key, &p.leaf.cert, &p.pki.chain_pem());
    let run = connect(&mosquitto.endpoint(), &dir, &[]);
    assert_exit(&run, 0);
    let result = json(&run);
    assert_eq!(result["deviceId"], DEVICE);
    assert_eq!(result["connected"], true);
    assert_eq!(result["published"], format!("dt/{DEVICE}/hello"));
    let log = mosquitto.log();
    assert!(
        log.contains(&format!("u'{DEVICE}'")),
        "the broker took the CN as the user name:\n{log}"
    );
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let p = provisioned(DEVICE);
    let mosquitto = broker(&p, None);
    let rogue = Pki::new(&p.dir.join("rogue-pki"), "rogue");
    let rogue_leaf = rogue.issue_client(&p.key, DEVICE);
    // The device trusts the real broker (--ca-file) but holds a certificate the broker's
    // CA never issued.
    let dir = device_dir(
        &p.dir,
        "rogue",
        &p.key,
        &rogue_leaf.cert,
        &rogue.chain_pem(),
    );
    let started = Instant::now();
    let run = connect(
        &mosquitto.endpoint(),
        &dir,
        &["--ca-file", p.pki.chain_file().to_str().unwrap()],
    );
    assert_exit(&run, 1);
    let body = json(&run);
    assert!(
        matches!(
            body["error"].as_str(),
            Some("tls_failed" | "connect_refused")
        ),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "refused, not timed out"
    );
}

#[test]
fn a_device_that_does_not_trust_the_broker_fails_tls() {
    let p = provisioned(DEVICE);
    let mosquitto = broker(&p, None);
    let rogue = Pki::new(&p.dir.join("rogue-pki"), "rogue");
    let dir = device_dir(&p.dir, "device", &p.key, &p.leaf.cert, &p.pki.chain_pem());
    let run = connect(
        &mosquitto.endpoint(),
        &dir,
        &["--ca-file", rogue.root.to_str().unwrap()],
    );
    assert_exit(&run, 1);
    let body = json(&run);
    assert_eq!(body["error"], "tls_failed", "{body}");
}

#[test]
fn a_revoked_certificate_is_refused_by_a_broker_checking_the_crl() {
    let p = provisioned(DEVICE);
    // A second, good device on the same broker shows the CRL setup itself works.
    let other_key = p.dir.join("other.key.pem");
    generate_key(&p.dir, &other_key);
    let other = p.pki.issue_client(&other_key, "0123FFEEDDCCBBAA99");
    let crl = p.pki.crl_file(&[&p.leaf]);
    let listed = String::from_utf8(
        openssl(
            &p.dir,
            &["crl", "-in", crl.to_str().unwrap(), "-noout", "-text"],
        )
        .stdout,
    )
    .unwrap();
    assert!(listed.contains(&p.leaf.serial), "{listed}");
    let mosquitto = broker(&p, Some(crl));

    let revoked = device_dir(&p.dir, "revoked", &p.key, &p.leaf.cert, &p.pki.chain_pem());
    let run = connect(&mosquitto.endpoint(), &revoked, &[]);
    assert_exit(&run, 1);
    let body = json(&run);
    assert!(
        matches!(
            body["error"].as_str(),
            Some("tls_failed" | "connect_refused")
        ),
        "{body}"
    );

    let good = p.dir.join("good");
    fs::create_dir_all(&good).unwrap();
    fs::copy(&other_key, good.join("0123FFEEDDCCBBAA99.key.pem")).unwrap();
    fs::copy(&other.cert, good.join("0123FFEEDDCCBBAA99.cert.pem")).unwrap();
    fs::write(good.join("0123FFEEDDCCBBAA99.chain.pem"), p.pki.chain_pem()).unwrap();
    let run = connect(&mosquitto.endpoint(), &good, &[]);
    assert_exit(&run, 0);
}

#[test]
fn connect_to_a_closed_port_is_unreachable() {
    let p = provisioned(DEVICE);
    let dir = device_dir(&p.dir, "device", &p.key, &p.leaf.cert, &p.pki.chain_pem());
    let port = support::free_port();
    let run = connect(&format!("127.0.0.1:{port}"), &dir, &[]);
    assert_exit(&run, 1);
    assert_eq!(json(&run)["error"], "unreachable");
}

// ---------------------------------------------------------------------------------------
// load
// ---------------------------------------------------------------------------------------

fn small_fleet(root: &Path, count: usize) -> PathBuf {
    let fleet = root.join("fleet");
    let run = provisioner(&[
        "device",
        "fleet",
        "--count",
        &count.to_string(),
        "--out",
        fleet.to_str().unwrap(),
    ]);
    assert_exit(&run, 0);
    fleet
}

#[test]
fn load_reports_counts_and_latencies_and_stops_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = small_fleet(tmp.path(), 20);
    let stub = HttpStub::start(50, |_| {
        StubResponse::json(200, &json!({"certificatePem": "x", "caChainPem": "y"}))
    });
    let started = Instant::now();
    let run = provisioner(&[
        "device",
        "load",
        "--url",
        &stub.url,
        "--fleet",
        fleet.to_str().unwrap(),
        "--concurrency",
        "8",
        "--duration",
        "2",
    ]);
    let wall = started.elapsed();
    assert_exit(&run, 0);
    // Only JSON on stdout.
    let report = json(&run);
    for field in [
        "requests",
        "ok",
        "by_status",
        "throughput",
        "p50_ms",
        "p95_ms",
        "p99_ms",
    ] {
        assert!(report.get(field).is_some(), "{field} missing: {report}");
    }
    let requests = report["requests"].as_u64().unwrap();
    assert!(requests > 0, "{report}");
    assert_eq!(report["ok"], report["by_status"]["200"], "{report}");
    assert_eq!(report["ok"].as_u64().unwrap(), requests, "{report}");
    assert!(report["throughput"].as_f64().unwrap() > 0.0);
    assert!(report["p50_ms"].as_f64().unwrap() <= report["p99_ms"].as_f64().unwrap());
    assert!(
        wall < Duration::from_secs(4) + Duration::from_secs(2),
        "took {wall:?} (CSR prebuild plus 2 s)"
    );
    assert_eq!(stub.count(), requests);

    // Every device of the fleet sent a valid CSR, round-robin.
    let seen: std::collections::HashSet<String> = stub
        .requests()
        .iter()
        .map(|r| {
            CsrVerifier::default()
                .verify_header(&r.headers["device-csr"])
                .unwrap()
                .device_id
        })
        .collect();
    assert_eq!(seen.len(), 20.min(stub.requests().len()));
}

#[test]
fn load_stops_after_the_requested_count_and_counts_statuses_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = small_fleet(tmp.path(), 3);
    let stub = HttpStub::start(0, |_| {
        StubResponse::json(404, &json!({"error": "unknown_device", "message": "no"}))
    });
    let run = provisioner(&[
        "device",
        "load",
        "--url",
        &stub.url,
        "--fleet",
        fleet.to_str().unwrap(),
        "--concurrency",
        "4",
        "--duration",
        "30",
        "--requests",
        "25",
    ]);
    assert_exit(&run, 0);
    let report = json(&run);
    assert_eq!(report["requests"], 25, "{report}");
    assert_eq!(report["ok"], 0);
    assert_eq!(report["by_status"], json!({"404": 25}));
    assert_eq!(report["throughput"], 0.0);

    // Nobody listening: every request is a network error, and it still stops.
    let port = support::free_port();
    let started = Instant::now();
    let run = provisioner(&[
        "device",
        "load",
        "--url",
        &format!("http://127.0.0.1:{port}"),
        "--fleet",
        fleet.to_str().unwrap(),
        "--concurrency",
        "2",
        "--duration",
        "1",
    ]);
    assert_exit(&run, 0);
    let report = json(&run);
    assert!(
        report["by_status"]["error"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert_eq!(report["ok"], 0);
    assert!(started.elapsed() < Duration::from_secs(4));
}
