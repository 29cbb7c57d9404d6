//! Test support for the `provisioner` binary's integration tests:
//!
//! - [`provisioner`]: run the real binary and read its JSON; [`Served`]: `provisioner
//!   serve` as a child process, healthy, stopped by its PID when dropped;
//! - [`Fleet`]: a simulated fleet (`device fleet`), its devices provisioned with
//!   [`provision`] and their certificates listed with [`certs`];
//! - [`Pki`]: a throw-away root and issuing intermediate made with the `openssl` CLI,
//!   issuing client and server certificates and CRLs (`openssl ca -gencrl`);
//! - [`Mosquitto`]: a real mosquitto broker with a mutual-TLS listener on 127.0.0.1,
//!   the stand-in for the MQTT endpoint, stopped by its PID when dropped;
//! - [`HttpStub`]: a tiny HTTP server answering with a closure and recording requests.
//!
//! Tests `mod support;` it; not every test file uses every helper.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // tests stop loudly

use std::collections::HashMap;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

// ---------------------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------------------

/// `provisioner serve` on 127.0.0.1 with a data directory and more options, as a child
/// process: started, waited for until `/healthz` answers 200, stopped by its PID when
/// dropped.
pub struct Served {
    child: Child,
    /// The base URL serve printed (`http://127.0.0.1:PORT`).
    pub url: String,
}

impl Served {
    /// Starts serve over `data_dir` with `extra` options and waits until it is healthy.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_provisioner"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("PROVISIONER_LOG", "warn")
            .stderr(Stdio::inherit());
        let served = Self::spawn(command);
        let started = Instant::now();
        loop {
            let out = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(format!("{}/healthz", served.url))
                .output()
                .expect("curl runs");
            if out.stdout == b"200" {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "serve did not become healthy"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        served
    }

    /// Spawns `serve` as `command` builds it (stdout is taken here) and reads the URL from
    /// its first line, without waiting for `/healthz`.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let mut first = String::new();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
        // Keep reading what serve prints so its stdout never closes under it.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line was {first:?}"))
            .to_owned();
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

/// Runs `provisioner ARGS` and waits for it.
pub fn provisioner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .args(args)
        .env("PROVISIONER_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("the provisioner binary runs")
}

/// The command's stdout as JSON (panics with both streams when it is not).
pub fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Asserts the exit code, showing both streams when it differs.
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit code\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs a tool (`openssl ...`) in `dir`, panicking with its output on failure.
pub fn run(dir: &Path, program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (run scripts/install-tools.sh): {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `openssl ARGS` in `dir`.
pub fn openssl(dir: &Path, args: &[&str]) -> Output {
    run(dir, "openssl", args)
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it right away).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Makes a directory tree and its files readable by other users (mosquitto drops to its
/// own user when started as root).
pub fn world_readable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            world_readable(&path);
        } else {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------
// A simulated fleet
// ---------------------------------------------------------------------------------------

/// A simulated fleet made by `device fleet`: its directory (keys and `manifest.csv`) and
/// its device ids.
pub struct Fleet {
    /// Where the keys and the manifest are.
    pub dir: PathBuf,
    /// The device ids, in the manifest's order.
    pub ids: Vec<String>,
}

/// `device fleet --count COUNT --out DIR`, which must succeed.
pub fn fleet(dir: &Path, count: usize) -> Fleet {
    let out = provisioner(&[
        "device",
        "fleet",
        "--count",
        &count.to_string(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_exit(&out, 0);
    let manifest = fs::read_to_string(dir.join("manifest.csv")).unwrap();
    let ids = manifest
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_owned())
        .collect();
    Fleet {
        dir: dir.to_path_buf(),
        ids,
    }
}

/// `device provision`: the device's request to `POST /new` with its key from `fleet_dir`,
/// the certificate written to `out`.
pub fn provision(url: &str, fleet_dir: &Path, id: &str, out: &Path) -> Output {
    provisioner(&[
        "device",
        "provision",
        "--url",
        url,
        "--key",
        fleet_dir.join(format!("{id}.key.pem")).to_str().unwrap(),
        "--device-id",
        id,
        "--out",
        out.to_str().unwrap(),
    ])
}

/// `certs list --device ID --json` over `data_dir`, which must succeed.
pub fn certs(data_dir: &Path, device: &str) -> Vec<Value> {
    let out = provisioner(&[
        "certs",
        "list",
        "--device",
        device,
        "--json",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]);
    assert_exit(&out, 0);
    json(&out).as_array().unwrap().clone()
}

// ---------------------------------------------------------------------------------------
// A test PKI made with the openssl CLI
// ---------------------------------------------------------------------------------------

static SERIAL: AtomicU64 = AtomicU64::new(1);

/// A certificate made by [`Pki`], with its files.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate PEM file.
    pub cert: PathBuf,
    /// Its serial number, upper-case hex.
    pub serial: String,
}

/// A root CA and an issuing intermediate (both P-256) in a directory.
#[derive(Debug)]
pub struct Pki {
    /// Where every file lives.
    pub dir: PathBuf,
    /// A name distinguishing this PKI's files and subjects.
    pub name: String,
    /// The root certificate.
    pub root: PathBuf,
    /// The root key.
    pub root_key: PathBuf,
    /// The issuing intermediate certificate.
    pub intermediate: PathBuf,
    /// The intermediate's key.
    pub intermediate_key: PathBuf,
}

const CA_EXT: &str = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n";
const INTERMEDIATE_EXT: &str = "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n";
const CLIENT_EXT: &str = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n";
const SERVER_EXT: &str = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n";

impl Pki {
    /// Makes `dir/<name>-root.*` and `dir/<name>-intermediate.*`.
    pub fn new(dir: &Path, name: &str) -> Self {
        fs::create_dir_all(dir).unwrap();
        let pki = Self {
            dir: dir.to_owned(),
            name: name.to_owned(),
            root: dir.join(format!("{name}-root.pem")),
            root_key: dir.join(format!("{name}-root.key")),
            intermediate: dir.join(format!("{name}-intermediate.pem")),
            intermediate_key: dir.join(format!("{name}-intermediate.key")),
        };
        generate_key(dir, &pki.root_key);
        generate_key(dir, &pki.intermediate_key);
        pki.sign(
            &pki.root_key,
            &format!("/CN={name} Test Root CA"),
            None,
            CA_EXT,
            &pki.root,
        );
        pki.sign(
            &pki.intermediate_key,
            &format!("/CN={name} Test Issuing CA"),
            Some((&pki.root, &pki.root_key)),
            INTERMEDIATE_EXT,
            &pki.intermediate,
        );
        pki
    }

    /// The chain as the service returns it (`caChainPem`): the intermediate, then the root.
    pub fn chain_pem(&self) -> String {
        fs::read_to_string(&self.intermediate).unwrap() + &fs::read_to_string(&self.root).unwrap()
    }

    /// Writes [`Pki::chain_pem`] to `dir/<name>-chain.pem`.
    pub fn chain_file(&self) -> PathBuf {
        let path = self.dir.join(format!("{}-chain.pem", self.name));
        fs::write(&path, self.chain_pem()).unwrap();
        path
    }

    /// A client (device) certificate with subject CN = `device_id` for the key in `key`
    /// (any private key PEM), issued by the intermediate.
    pub fn issue_client(&self, key: &Path, device_id: &str) -> Issued {
        let out = self.dir.join(format!("{}-{device_id}.cert.pem", self.name));
        let serial = self.sign(
            key,
            &format!("/CN={device_id}"),
            Some((&self.intermediate, &self.intermediate_key)),
            CLIENT_EXT,
            &out,
        );
        Issued { cert: out, serial }
    }

    /// A server certificate for 127.0.0.1 (and localhost): (certificate followed by the
    /// intermediate, key).
    pub fn issue_server(&self) -> (PathBuf, PathBuf) {
        let key = self.dir.join(format!("{}-server.key", self.name));
        let cert = self.dir.join(format!("{}-server.pem", self.name));
        generate_key(&self.dir, &key);
        self.sign(
            &key,
            "/CN=localhost",
            Some((&self.intermediate, &self.intermediate_key)),
            SERVER_EXT,
            &cert,
        );
        let with_chain = self.dir.join(format!("{}-server-chain.pem", self.name));
        fs::write(
            &with_chain,
            fs::read_to_string(&cert).unwrap() + &fs::read_to_string(&self.intermediate).unwrap(),
        )
        .unwrap();
        (with_chain, key)
    }

    /// CRLs for both CAs in one PEM file (what mosquitto's `crlfile` wants: every CA
    /// in `cafile` needs its CRL), the intermediate's listing `revoked`.
    pub fn crl_file(&self, revoked: &[&Issued]) -> PathBuf {
        let intermediate_crl = self.gencrl(
            "intermediate",
            &self.intermediate,
            &self.intermediate_key,
            revoked,
        );
        let root_crl = self.gencrl("root", &self.root, &self.root_key, &[]);
        let path = self.dir.join(format!("{}-crl.pem", self.name));
        fs::write(&path, intermediate_crl + &root_crl).unwrap();
        path
    }

    /// `openssl ca -revoke` each certificate into a fresh database, then `-gencrl`.
    fn gencrl(&self, which: &str, cert: &Path, key: &Path, revoked: &[&Issued]) -> String {
        let db = self.dir.join(format!("{}-{which}-ca-db", self.name));
        let _ = fs::remove_dir_all(&db);
        fs::create_dir_all(&db).unwrap();
        fs::write(db.join("index.txt"), "").unwrap();
        fs::write(db.join("crlnumber"), "01\n").unwrap();
        let config = db.join("ca.cnf");
        fs::write(
            &config,
            format!(
                "[ ca ]\ndefault_ca = CA_default\n[ CA_default ]\ndatabase = {db}/index.txt\ncrlnumber = {db}/crlnumber\nnew_certs_dir = {db}\ncertificate = {cert}\nprivate_key = {key}\ndefault_md = sha256\ndefault_crl_days = 30\npolicy = policy_any\n[ policy_any ]\ncommonName = supplied\n",
                db = db.display(),
                cert = cert.display(),
                key = key.display(),
            ),
        )
        .unwrap();
        let config = config.to_str().unwrap();
        for issued in revoked {
            openssl(
                &db,
                &[
                    "ca",
                    "-config",
                    config,
                    "-revoke",
                    issued.cert.to_str().unwrap(),
                    "-crl_reason",
                    "superseded",
                ],
            );
        }
        let out = db.join("crl.pem");
        openssl(
            &db,
            &[
                "ca",
                "-config",
                config,
                "-gencrl",
                "-out",
                out.to_str().unwrap(),
            ],
        );
        fs::read_to_string(out).unwrap()
    }

    /// `openssl req` a CSR for `key` and sign it (self-signed when `issuer` is None).
    /// Returns the serial (upper-case hex).
    fn sign(
        &self,
        key: &Path,
        subject: &str,
        issuer: Option<(&Path, &Path)>,
        extensions: &str,
        out: &Path,
    ) -> String {
        let stem = out.file_name().unwrap().to_str().unwrap().to_owned();
        let csr = self.dir.join(format!("{stem}.csr"));
        let ext = self.dir.join(format!("{stem}.ext"));
        fs::write(&ext, extensions).unwrap();
        openssl(
            &self.dir,
            &[
                "req",
                "-new",
                "-key",
                key.to_str().unwrap(),
                "-subj",
                subject,
                "-out",
                csr.to_str().unwrap(),
            ],
        );
        // 8 bytes, first nibble 4: positive, no leading zero byte (printed as given).
        let serial = format!(
            "4{:07X}{:08X}",
            std::process::id() & 0x0FFF_FFFF,
            SERIAL.fetch_add(1, Ordering::Relaxed)
        );
        let set_serial = format!("0x{serial}");
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-days",
            "30",
            "-sha256",
            "-set_serial",
            &set_serial,
            "-extfile",
            ext.to_str().unwrap(),
            "-out",
            out.to_str().unwrap(),
        ];
        let (issuer_cert, issuer_key);
        match issuer {
            Some((cert, key)) => {
                issuer_cert = cert.to_str().unwrap().to_owned();
                issuer_key = key.to_str().unwrap().to_owned();
                args.extend(["-CA", &issuer_cert, "-CAkey", &issuer_key]);
            }
            None => {
                issuer_key = key.to_str().unwrap().to_owned();
                args.extend(["-signkey", &issuer_key]);
            }
        }
        openssl(&self.dir, &args);
        serial
    }
}

/// A fresh P-256 private key (PKCS#8 PEM) at `path`.
pub fn generate_key(dir: &Path, path: &Path) {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            path.to_str().unwrap(),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// A real mosquitto broker
// ---------------------------------------------------------------------------------------

/// What the broker's TLS listener uses.
#[derive(Debug, Clone)]
pub struct BrokerTls {
    /// CA certificates client certificates must chain to (the issuing chain).
    pub cafile: PathBuf,
    /// The server certificate (followed by its intermediate).
    pub certfile: PathBuf,
    /// The server key.
    pub keyfile: PathBuf,
    /// CRLs to check client certificates against (one per CA in `cafile`).
    pub crlfile: Option<PathBuf>,
}

/// A mosquitto child process listening with mutual TLS on 127.0.0.1; killed (by the PID
/// recorded at start) when dropped.
pub struct Mosquitto {
    child: Child,
    /// The PID recorded at start.
    pub pid: u32,
    /// The TLS listener's port.
    pub port: u16,
    /// The broker's log (stderr).
    pub log: PathBuf,
}

impl Mosquitto {
    /// Writes `dir/mosquitto.conf` (mutual TLS, CN as user name, ACL `dt/%u/#`) and starts
    /// `mosquitto -c` on a free port, returning once the port accepts connections.
    pub fn start(dir: &Path, tls: &BrokerTls) -> Self {
        fs::create_dir_all(dir).unwrap();
        let acl = dir.join("mosquitto.acl");
        fs::write(&acl, "pattern readwrite dt/%u/#\n").unwrap();
        let port = free_port();
        let user = String::from_utf8(run(dir, "id", &["-un"]).stdout).unwrap();
        let mut conf = format!(
            "user {user}\nper_listener_settings false\nallow_anonymous false\npersistence false\n\
             log_dest stderr\nlog_type all\nacl_file {acl}\n\
             listener {port} 127.0.0.1\nrequire_certificate true\nuse_identity_as_username true\n\
             cafile {cafile}\ncertfile {certfile}\nkeyfile {keyfile}\n",
            user = user.trim(),
            acl = acl.display(),
            cafile = tls.cafile.display(),
            certfile = tls.certfile.display(),
            keyfile = tls.keyfile.display(),
        );
        if let Some(crl) = &tls.crlfile {
            conf.push_str(&format!("crlfile {}\n", crl.display()));
        }
        let conf_path = dir.join("mosquitto.conf");
        fs::write(&conf_path, conf).unwrap();
        let log = dir.join("mosquitto.log");
        // Readable by the broker even where it drops to its own user.
        for file in [&tls.cafile, &tls.certfile, &tls.keyfile]
            .into_iter()
            .chain(tls.crlfile.as_ref())
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(file, fs::Permissions::from_mode(0o644)).unwrap();
        }
        world_readable(dir);

        let mut child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("mosquitto.out")).unwrap())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start mosquitto (run scripts/install-tools.sh): {e}")
            });
        let pid = child.id();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "mosquitto exited at start ({status}):\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_millis(200),
            )
            .is_ok()
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!(
                    "mosquitto did not listen on {port} within 10 s:\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            pid,
            port,
            log,
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the broker has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        // Child::kill signals exactly the PID recorded at spawn.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// A tiny HTTP stub
// ---------------------------------------------------------------------------------------

/// A request the stub received.
#[derive(Debug, Clone)]
pub struct StubRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, e.g. `/new`.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Header names (lower case) and values.
    pub headers: HashMap<String, String>,
}

/// What the stub answers.
#[derive(Debug, Clone)]
pub struct StubResponse {
    /// The HTTP status.
    pub status: u16,
    /// Extra headers (e.g. `content-type`, `retry-after`).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl StubResponse {
    /// A JSON answer.
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = Arc<dyn Fn(&StubRequest) -> StubResponse + Send + Sync>;

/// An HTTP/1.1 server on 127.0.0.1 (keep-alive, on its own tokio runtime) answering
/// every request with a closure; records the requests it saw.
pub struct HttpStub {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    requests: Arc<Mutex<Vec<StubRequest>>>,
    count: Arc<AtomicU64>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpStub {
    /// Starts the stub; it keeps the first `keep` requests it sees.
    pub fn start(
        keep: usize,
        handler: impl Fn(&StubRequest) -> StubResponse + Send + Sync + 'static,
    ) -> Self {
        let handler: Handler = Arc::new(handler);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicU64::new(0));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let (recorded, counter) = (Arc::clone(&requests), Arc::clone(&count));
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(
                    move |method: axum::http::Method,
                          uri: axum::http::Uri,
                          headers: axum::http::HeaderMap| {
                        let handler = Arc::clone(&handler);
                        let recorded = Arc::clone(&recorded);
                        let counter = Arc::clone(&counter);
                        async move {
                            let request = StubRequest {
                                method: method.to_string(),
                                path: uri.path().to_owned(),
                                query: uri.query().map(str::to_owned),
                                headers: headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (
                                            k.as_str().to_owned(),
                                            v.to_str().unwrap_or_default().to_owned(),
                                        )
                                    })
                                    .collect(),
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                            let answer = handler(&request);
                            {
                                let mut recorded = recorded.lock().unwrap();
                                if recorded.len() < keep {
                                    recorded.push(request);
                                }
                            }
                            let mut response =
                                axum::response::Response::builder().status(answer.status);
                            for (name, value) in &answer.headers {
                                response = response.header(name.as_str(), value.as_str());
                            }
                            response.body(axum::body::Body::from(answer.body)).unwrap()
                        }
                    },
                );
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stop => {}
                }
            });
        });
        Self {
            url,
            requests,
            count,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The requests kept so far.
    pub fn requests(&self) -> Vec<StubRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// How many requests were answered.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for HttpStub {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
