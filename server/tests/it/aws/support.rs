//! What the `provisioner` binary's AWS tests share (`scripts/test-aws.sh` runs them against
//! moto): the endpoint check, running the commands, an offline root made by openssl, an
//! ACM Private CA created and installed with `provisioner aws ca`, and `provisioner serve
//! --backend aws` on 127.0.0.1.

#![allow(dead_code)] // each test file uses part of it

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

pub use provisioner_testkit::openssl::openssl;
use serde_json::Value;

/// The regions the deployments under test serve.
pub const REGIONS: &str = "us-east-1,eu-west-1";

/// `AWS_ENDPOINT_URL`, which must be a local stand-in.
pub fn endpoint() -> String {
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
pub fn aws(dir: &Path, prefix: &str, args: &[&str]) -> Output {
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
pub fn ok_json(output: &Output) -> Value {
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

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `aws ca create`, the openssl root signs the CSR, `aws ca install`: the CA's ARN.
pub fn create_and_install(dir: &Path, prefix: &str, name: &str) -> (String, Value) {
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
pub fn offline_root(dir: &Path) {
    provisioner_testkit::openssl::offline_root(dir, "/CN=CLI Offline Root");
}

/// `provisioner serve --backend aws` on 127.0.0.1, stopped by its PID when dropped.
pub struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Served {
    /// Starts it in `dir` over the tables of `prefix`, once they exist.
    pub fn start(dir: &Path, prefix: &str) -> Self {
        Self::start_with(dir, prefix, &[])
    }

    /// [`Served::start`] with further options (`--rate-limit 2` ...).
    pub fn start_with(dir: &Path, prefix: &str, options: &[&str]) -> Self {
        let mut command = serve_command(dir, prefix, REGIONS);
        command.args(options);
        Self::spawn(command)
    }

    /// Spawns `command` (a [`serve_command`], stdout taken here) and returns once the
    /// tables exist.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
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

/// `provisioner serve --backend aws --create-tables` on 127.0.0.1 in `dir`, over the
/// tables of `prefix` in `regions`: the command, for more options before
/// [`Served::spawn`].
pub fn serve_command(dir: &Path, prefix: &str, regions: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_provisioner"));
    command
        .args(["serve", "--backend", "aws", "--create-tables"])
        .args(["--listen", "127.0.0.1:0", "--data-dir", "data"])
        .current_dir(dir)
        .env("PROVISIONER_LOG", "warn")
        .env("PROVISIONER_TABLE_PREFIX", prefix)
        .env("PROVISIONER_REGIONS", regions)
        .env("PROVISIONER_MQTT_ENDPOINT", "iot.example:8883")
        .env_remove("PROVISIONER_PCA_CA_ARN")
        .stderr(Stdio::inherit());
    command
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
pub fn provisioner(dir: &Path, prefix: &str, args: &[&str]) -> Output {
    provisioner_in(dir, prefix, REGIONS, args)
}

/// [`provisioner`] in other `regions` (comma-separated).
pub fn provisioner_in(dir: &Path, prefix: &str, regions: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .args(args)
        .current_dir(dir)
        .env("PROVISIONER_LOG", "warn")
        .env("PROVISIONER_TABLE_PREFIX", prefix)
        .env("PROVISIONER_REGIONS", regions)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}
