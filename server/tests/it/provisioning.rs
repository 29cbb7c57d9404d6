//! The whole provisioning flow on one machine, with real parts: the `provisioner serve`
//! binary on an ephemeral port with a fresh data directory, simulated devices, OpenSSL
//! checking the chain, and a real mosquitto broker (mutual TLS, CRL) as the MQTT endpoint.

use crate::support;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{assert_exit, certs, fleet, free_port, json, provision, provisioner, Served};

/// mosquitto started from the `ca export-mosquitto` configuration, stopped by PID.
struct Broker {
    child: Child,
    port: u16,
}

impl Broker {
    fn start(data_dir: &Path, dir: &Path) -> Self {
        let port = free_port();
        let export = provisioner(&[
            "ca",
            "export-mosquitto",
            dir.to_str().unwrap(),
            "--port",
            &port.to_string(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ]);
        assert_exit(&export, 0);
        let mut child = Command::new("mosquitto")
            .arg("-c")
            .arg(dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto runs (scripts/install-tools.sh installs it)");
        let started = Instant::now();
        while TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(200),
        )
        .is_err()
        {
            assert!(
                child.try_wait().unwrap().is_none(),
                "mosquitto exited at start"
            );
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "mosquitto did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }

    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// `curl ARGS`: (stdout, exit success).
fn curl(args: &[&str]) -> (String, bool) {
    let out = Command::new("curl").args(args).output().expect("curl runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.success(),
    )
}

/// POST /new with a header value: (status, body).
fn post_new(url: &str, header: Option<&str>) -> (u16, Value) {
    let mut args = vec![
        "-s".to_owned(),
        "-X".into(),
        "POST".into(),
        "-w".into(),
        "\n%{http_code}".into(),
    ];
    if let Some(value) = header {
        args.push("-H".into());
        args.push(format!("device-csr: {value}"));
    }
    args.push(format!("{url}/new"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, _) = curl(&args);
    let (body, status) = out.rsplit_once('\n').unwrap();
    (
        status.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn connect(broker: &Broker, out: &Path, id: &str) -> Output {
    provisioner(&[
        "device",
        "connect",
        "--mqtt",
        &broker.endpoint(),
        "--dir",
        out.to_str().unwrap(),
        "--device-id",
        id,
        "--timeout",
        "5",
    ])
}

fn openssl_verify(out: &Path, id: &str, root: &Path) -> Output {
    Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(root)
        .arg("-untrusted")
        .arg(out.join(format!("{id}.chain.pem")))
        .arg(out.join(format!("{id}.cert.pem")))
        .output()
        .unwrap()
}

fn certificate_id(output: &Output) -> String {
    json(output)["certificateId"].as_str().unwrap().to_owned()
}

fn status_of(data_dir: &Path, device: &str, certificate: &str) -> String {
    certs(data_dir, device)
        .into_iter()
        .find(|c| c["certificateId"] == certificate)
        .map(|c| c["status"].as_str().unwrap().to_owned())
        .unwrap()
}

#[test]
fn devices_provision_connect_rotate_and_are_revoked_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data_arg = data.to_str().unwrap();
    let root = data.join("ca/root.pem");
    let fleet = fleet(&tmp.path().join("fleet"), 3);
    let out = tmp.path().join("device");

    // The device admin imports the manufacturer's manifest.
    let served = Served::start(&data, &[]);
    let import = provisioner(&[
        "import",
        fleet.dir.join("manifest.csv").to_str().unwrap(),
        "--json",
        "--data-dir",
        data_arg,
    ]);
    assert_exit(&import, 0);
    assert_eq!(json(&import)["imported"], 3);

    // A device provisions; OpenSSL accepts the chain; the broker accepts the device.
    let broker = Broker::start(&data, &tmp.path().join("broker1"));
    let first = &fleet.ids[0];
    let provisioned = provision(&served.url, &fleet.dir, first, &out);
    assert_exit(&provisioned, 0);
    let first_certificate = certificate_id(&provisioned);
    let verified = openssl_verify(&out, first, &root);
    assert!(
        String::from_utf8_lossy(&verified.stdout).ends_with("OK\n"),
        "{verified:?}"
    );
    assert_exit(&connect(&broker, &out, first), 0);

    // A second request returns the same certificate.
    let again = provision(&served.url, &fleet.dir, first, &out);
    assert_exit(&again, 0);
    assert_eq!(certificate_id(&again), first_certificate);
    drop(served);
    drop(broker);

    // Inside the renewal window (here: always) a request rotates the certificate. Keep a
    // copy of the superseded one to show the broker refuses it.
    let old_dir = tmp.path().join("old");
    std::fs::create_dir_all(&old_dir).unwrap();
    for file in ["cert.pem", "chain.pem", "key.pem"] {
        let name = format!("{first}.{file}");
        std::fs::copy(out.join(&name), old_dir.join(&name)).unwrap();
    }
    let served = Served::start(&data, &["--renew-within-days", "365"]);
    let rotated = provision(&served.url, &fleet.dir, first, &out);
    assert_exit(&rotated, 0);
    let second_certificate = certificate_id(&rotated);
    assert_ne!(second_certificate, first_certificate);
    assert_eq!(status_of(&data, first, &first_certificate), "REVOKED");
    drop(served);

    // The broker, with the regenerated CRL, refuses the superseded certificate and
    // accepts the new one.
    let broker = Broker::start(&data, &tmp.path().join("broker2"));
    assert_exit(&connect(&broker, &old_dir, first), 1);
    assert_exit(&connect(&broker, &out, first), 0);

    // Revoking it: the CRL is regenerated and the broker (restarted on it) refuses it.
    let revoke = provisioner(&[
        "certs",
        "revoke",
        &second_certificate,
        "--reason",
        "keyCompromise",
        "--data-dir",
        data_arg,
    ]);
    assert_exit(&revoke, 0);
    drop(broker);
    let broker = Broker::start(&data, &tmp.path().join("broker3"));
    assert_exit(&connect(&broker, &out, first), 1);

    // The device provisions again (it has no ACTIVE certificate) and connects.
    let served = Served::start(&data, &[]);
    let healed = provision(&served.url, &fleet.dir, first, &out);
    assert_exit(&healed, 0);
    assert_exit(&connect(&broker, &out, first), 0);

    // Every device provisions, then the CA rotates: old certificates are refused, and each
    // device provisions again under the new intermediate and connects.
    let outs: Vec<PathBuf> = fleet
        .ids
        .iter()
        .map(|id| tmp.path().join(format!("d-{id}")))
        .collect();
    for (id, dir) in fleet.ids.iter().zip(&outs) {
        assert_exit(&provision(&served.url, &fleet.dir, id, dir), 0);
    }
    let rotate = provisioner(&["ca", "rotate", "--data-dir", data_arg]);
    assert_exit(&rotate, 0);
    let rotation = json(&rotate);
    assert_eq!(rotation["revoked"], 3, "{rotation}");
    drop(broker);
    let broker = Broker::start(&data, &tmp.path().join("broker4"));
    for (id, dir) in fleet.ids.iter().zip(&outs) {
        assert_exit(&connect(&broker, dir, id), 1);
        let again = provision(&served.url, &fleet.dir, id, dir);
        assert_exit(&again, 0);
        let chain = std::fs::read_to_string(dir.join(format!("{id}.chain.pem"))).unwrap();
        let new_ca = std::fs::read_to_string(
            data.join("ca/issuing")
                .join(rotation["newCa"].as_str().unwrap())
                .join("cert.pem"),
        )
        .unwrap();
        assert!(
            chain.starts_with(new_ca.trim_end()),
            "the chain starts with the new intermediate"
        );
        assert_exit(&connect(&broker, dir, id), 0);
    }
}

#[test]
fn every_error_status_of_the_contract_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let fleet = fleet(&tmp.path().join("fleet"), 2);
    let served = Served::start(&data, &["--rate-limit", "1", "--renew-within-days", "365"]);
    // Import only the first device, then disable nothing: the second stays unknown.
    let manifest = std::fs::read_to_string(fleet.dir.join("manifest.csv")).unwrap();
    let one = tmp.path().join("one.csv");
    std::fs::write(
        &one,
        manifest.lines().take(2).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    assert_exit(
        &provisioner(&[
            "import",
            one.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ]),
        0,
    );

    let vectors: Value =
        serde_json::from_str(include_str!("../../../core/tests/vectors/vectors.json")).unwrap();
    let header = |name: &str| -> String {
        vectors["csr"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap()["header"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    let (status, body) = post_new(&served.url, None);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("missing_header"))
    );
    let (status, body) = post_new(&served.url, Some("not*base64!"));
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("malformed_header"))
    );
    let (status, body) = post_new(&served.url, Some(&header("two_cns")));
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_subject"))
    );
    let (status, body) = post_new(&served.url, Some(&header("openssl_p256_san_dns")));
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("subject_alt_name_requested"))
    );
    let (status, body) = post_new(&served.url, Some(&header("bad_signature")));
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("bad_signature"))
    );
    let (status, body) = post_new(&served.url, Some(&header("openssl_p256_der_b64")));
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_device"))
    );

    // The first device: a CSR with another key is a mismatch; its own key succeeds once,
    // then the rate limit (1 per hour, every request issuing) answers 429.
    let first = &fleet.ids[0];
    let out = tmp.path().join("device");
    assert_exit(&provision(&served.url, &fleet.dir, first, &out), 0);
    let limited = provision(&served.url, &fleet.dir, first, &out);
    assert_exit(&limited, 1);
    assert_eq!(json(&limited)["status"], 429);
    let second_key_as_first = provisioner(&[
        "device",
        "provision",
        "--url",
        &served.url,
        "--key",
        fleet
            .dir
            .join(format!("{}.key.pem", fleet.ids[1]))
            .to_str()
            .unwrap(),
        "--device-id",
        first,
        "--out",
        tmp.path().join("x").to_str().unwrap(),
    ]);
    assert_exit(&second_key_as_first, 1);
    assert_eq!(json(&second_key_as_first)["error"], "key_mismatch");
    assert_eq!(json(&second_key_as_first)["status"], 403);
}
