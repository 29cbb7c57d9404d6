//! Revocation that reaches the broker by itself: `provisioner serve --mosquitto-export`
//! keeps a real mosquitto's CA bundle and CRLs current and restarts it through
//! `--broker-reload-cmd` (scripts/restart-mosquitto.sh), with no admin action.
//!
//! - A renewal on POST /new supersedes the previous certificate; the broker refuses that
//!   one within the debounce interval plus the restart.
//! - With a CRL lifetime of a few seconds, a device keeps connecting across several
//!   lifetimes (the CRLs are renewed at half their life and the broker restarted), while
//!   a revoked one (`certs revoke` in another process) stays refused.

use crate::support;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{assert_exit, fleet, free_port, json, provisioner, Served};

/// `provisioner serve` keeping a mosquitto export in `broker.dir` and restarting the broker
/// through scripts/restart-mosquitto.sh; its log goes beside the export. Not waited on:
/// the tests wait for the broker instead.
fn serve_exporting(data_dir: &Path, broker: &BrokerFiles, extra: &[&str]) -> Served {
    let reload = format!(
        "bash {} {} {} {} {}",
        restart_script().display(),
        broker.dir.join("mosquitto.conf").display(),
        broker.pid_file.display(),
        broker.port,
        broker.dir.join("mosquitto.log").display(),
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_provisioner"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--mosquitto-export")
        .arg(&broker.dir)
        .args(["--mosquitto-port", &broker.port.to_string()])
        .args(["--broker-reload-cmd", &reload])
        .args(extra)
        .env("PROVISIONER_LOG", "info")
        .stderr(Stdio::from(
            std::fs::File::create(broker.dir.with_extension("serve.log")).unwrap(),
        ));
    Served::spawn(command)
}

/// Where the export goes and the broker's PID file; the broker the reload command
/// started is stopped by that PID when dropped (declare it before [`Served`], so it
/// outlives the service that restarts it).
struct BrokerFiles {
    dir: PathBuf,
    pid_file: PathBuf,
    port: u16,
}

impl BrokerFiles {
    fn new(dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            pid_file: dir.join("mosquitto.pid"),
            dir,
            port: free_port(),
        }
    }

    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> Option<String> {
        std::fs::read_to_string(&self.pid_file)
            .ok()
            .map(|p| p.trim().to_owned())
    }

    /// Waits until the broker listens (the service's first reload starts it).
    fn wait_listening(&self) {
        let started = Instant::now();
        while TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_millis(200),
        )
        .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the broker did not listen: {}",
                std::fs::read_to_string(self.dir.with_extension("serve.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for BrokerFiles {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").arg(&pid).status();
        }
    }
}

fn restart_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/restart-mosquitto.sh")
}

/// `device provision`, which must succeed: the certificate's id.
fn provision(url: &str, fleet_dir: &Path, id: &str, out: &Path) -> String {
    let provisioned = support::provision(url, fleet_dir, id, out);
    assert_exit(&provisioned, 0);
    json(&provisioned)["certificateId"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn connect_once(broker: &BrokerFiles, dir: &Path, id: &str) -> Output {
    provisioner(&[
        "device",
        "connect",
        "--mqtt",
        &broker.endpoint(),
        "--dir",
        dir.to_str().unwrap(),
        "--device-id",
        id,
        "--timeout",
        "3",
    ])
}

/// What the broker says to a device: `Ok` when accepted, else the refusal's code (its
/// certificate refused: a TLS failure or a connection closed before CONNACK). A broker
/// being restarted (unreachable) is tried again for up to 10 s.
fn connect(broker: &BrokerFiles, dir: &Path, id: &str) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let out = connect_once(broker, dir, id);
        if out.status.success() {
            return Ok(());
        }
        let error = json(&out)["error"].as_str().unwrap_or_default().to_owned();
        if matches!(error.as_str(), "tls_failed" | "connect_refused") {
            return Err(error);
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the broker stayed unreachable: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the broker accepts the device within 5 s: a restart can cut one attempt
/// short (a connection closed while the broker stops looks like a refusal).
fn accepted(broker: &BrokerFiles, dir: &Path, id: &str) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if connect(broker, dir, id).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Whether the broker refuses the device twice in a row, 300 ms apart (one refusal could
/// be a restart cutting the attempt short).
fn refused(broker: &BrokerFiles, dir: &Path, id: &str) -> bool {
    connect(broker, dir, id).is_err() && {
        std::thread::sleep(Duration::from_millis(300));
        connect(broker, dir, id).is_err()
    }
}

fn import(data: &Path, fleet_dir: &Path) {
    assert_exit(
        &provisioner(&[
            "import",
            fleet_dir.join("manifest.csv").to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ]),
        0,
    );
}

fn copy_device(from: &Path, to: &Path, id: &str) {
    std::fs::create_dir_all(to).unwrap();
    for file in ["cert.pem", "chain.pem", "key.pem"] {
        let name = format!("{id}.{file}");
        std::fs::copy(from.join(&name), to.join(&name)).unwrap();
    }
}

/// `openssl verify -crl_check_all` of the device's certificate against the broker's
/// exported CA bundle and CRLs: a checker we did not write, which refuses an expired CRL.
fn openssl_accepts(broker: &BrokerFiles, dir: &Path, id: &str) -> Output {
    Command::new("openssl")
        .args(["verify", "-crl_check_all", "-CAfile"])
        .arg(broker.dir.join("ca.pem"))
        .arg("-CRLfile")
        .arg(broker.dir.join("crl.pem"))
        .arg(dir.join(format!("{id}.cert.pem")))
        .output()
        .unwrap()
}

#[test]
fn a_renewals_superseded_certificate_is_refused_by_the_broker_without_any_admin_action() {
    // given serve (every request renews; a look for revocations every second) keeping a
    // real mosquitto's files current, and a device it accepts
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let broker = BrokerFiles::new(tmp.path().join("broker"));
    let served = serve_exporting(
        &data,
        &broker,
        &["--renew-within-days", "365", "--crl-debounce-secs", "1"],
    );
    broker.wait_listening();
    let fleet_dir = tmp.path().join("fleet");
    let id = fleet(&fleet_dir, 1).ids.remove(0);
    import(&data, &fleet_dir);
    let out = tmp.path().join("device");
    provision(&served.url, &fleet_dir, &id, &out);
    assert!(accepted(&broker, &out, &id));
    let old = tmp.path().join("old");
    copy_device(&out, &old, &id);
    let pid_before = broker.pid();

    // when the device renews on POST /new (superseding its certificate) and nobody acts
    let renewed_at = Instant::now();
    provision(&served.url, &fleet_dir, &id, &out);

    // then within the debounce interval plus the restart the broker refuses the old
    // certificate and accepts the new one
    let refused_after = loop {
        let at = renewed_at.elapsed();
        if refused(&broker, &old, &id) {
            break at;
        }
        assert!(
            at < Duration::from_secs(15),
            "the broker still accepts the superseded certificate"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        refused_after < Duration::from_secs(8),
        "refused only after {refused_after:?}"
    );
    assert_ne!(broker.pid(), pid_before, "the broker was restarted");
    assert!(accepted(&broker, &out, &id));
    eprintln!("the superseded certificate was refused {refused_after:?} after the renewal");
}

#[test]
fn with_short_lived_crls_a_device_keeps_connecting_and_a_revoked_one_stays_refused() {
    // given serve with CRLs valid 6 s (renewed at half, looking every second), a device
    // that connects and one revoked by `certs revoke` in another process
    let lifetime = Duration::from_secs(6);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data_arg = data.to_str().unwrap();
    let broker = BrokerFiles::new(tmp.path().join("broker"));
    let served = serve_exporting(
        &data,
        &broker,
        &["--crl-lifetime", "6s", "--crl-debounce-secs", "1"],
    );
    broker.wait_listening();
    let fleet_dir = tmp.path().join("fleet");
    let ids = fleet(&fleet_dir, 2).ids;
    import(&data, &fleet_dir);
    let (good, bad) = (&ids[0], &ids[1]);
    let good_dir = tmp.path().join("good");
    let bad_dir = tmp.path().join("bad");
    provision(&served.url, &fleet_dir, good, &good_dir);
    let revoked = provision(&served.url, &fleet_dir, bad, &bad_dir);
    let revoke = provisioner(&[
        "certs",
        "revoke",
        &revoked,
        "--reason",
        "keyCompromise",
        "--crl-lifetime",
        "6s",
        "--data-dir",
        data_arg,
    ]);
    assert_exit(&revoke, 0);
    // (the service publishes that revocation within its interval plus a restart)
    let revoked_at = Instant::now();
    while !refused(&broker, &bad_dir, bad) {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(15),
            "never refused"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // when serve runs for four lifetimes
    let started = Instant::now();
    let mut pids = std::collections::BTreeSet::new();
    let mut checks = 0;
    while started.elapsed() < lifetime * 4 {
        // then every few seconds the device connects, OpenSSL finds the broker's CRLs
        // current, and the revoked device is refused
        assert!(
            accepted(&broker, &good_dir, good),
            "the device was refused at {:?}",
            started.elapsed()
        );
        let verified = openssl_accepts(&broker, &good_dir, good);
        assert!(
            verified.status.success(),
            "at {:?}: {}{}",
            started.elapsed(),
            String::from_utf8_lossy(&verified.stdout),
            String::from_utf8_lossy(&verified.stderr)
        );
        assert!(
            refused(&broker, &bad_dir, bad),
            "the revoked device connected at {:?}",
            started.elapsed()
        );
        pids.extend(broker.pid());
        checks += 1;
        std::thread::sleep(Duration::from_millis(1500));
    }
    assert!(checks >= 6, "only {checks} checks");
    // The broker was restarted on renewed CRLs (a restart per half lifetime).
    assert!(pids.len() >= 4, "broker PIDs seen: {pids:?}");

    // and the service reports CRLs with time left
    let show = provisioner(&["ca", "show", "--data-dir", data_arg]);
    assert_exit(&show, 0);
    let crls: Vec<Value> = json(&show)["crls"].as_array().unwrap().clone();
    assert_eq!(crls.len(), 2, "{crls:?}");
    for crl in &crls {
        let left = crl["expiresInSecs"].as_i64().unwrap();
        assert!((0..=6).contains(&left), "{crl}");
    }
    assert_eq!(crls[0]["revoked"], 1);
    drop(served);
}
