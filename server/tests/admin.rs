//! `provisioner admin token` and the admin API as `provisioner serve` serves it: the real
//! binary on an ephemeral port, spoken to with curl.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop loudly

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{assert_exit, provisioner};

/// `provisioner admin token [--rotate]`: (token on stdout, stderr).
fn admin_token(data_dir: &Path, rotate: bool) -> (String, String) {
    let data_dir = data_dir.to_str().unwrap();
    let mut args = vec!["admin", "token", "--data-dir", data_dir];
    if rotate {
        args.push("--rotate");
    }
    let output = provisioner(&args);
    assert_exit(&output, 0);
    (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn the_token_is_printed_alone_on_stdout_kept_0600_and_replaced_on_rotate() {
    // given a fresh data directory
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");

    // when the token is asked for twice, then rotated
    let (first, warning) = admin_token(&data_dir, false);
    let (second, _) = admin_token(&data_dir, false);
    let (rotated, rotate_warning) = admin_token(&data_dir, true);

    // then the same token comes back until rotated, alone on its line, 64 hex digits
    assert_eq!(first, second);
    let token = first.trim_end();
    assert_eq!(first, format!("{token}\n"));
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(rotated, first);
    let stored = std::fs::read_to_string(data_dir.join("admin-token")).unwrap();
    assert_eq!(stored, rotated.trim_end());
    let mode = std::fs::metadata(data_dir.join("admin-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // and stderr says it is a secret, without repeating it
    for text in [&warning, &rotate_warning] {
        assert!(text.contains("secret"), "{text}");
        assert!(!text.contains(token) && !text.contains(rotated.trim_end()));
    }
    assert!(
        rotate_warning.contains("no longer works"),
        "{rotate_warning}"
    );
}

/// `provisioner serve` as a child process, stopped (by its PID) when dropped.
struct Served {
    child: Child,
    url: String,
}

impl Served {
    fn start(data_dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_provisioner"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("PROVISIONER_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line was {first:?}"))
            .to_owned();
        let served = Self { child, url };
        let started = Instant::now();
        while served.get("/healthz", None).0 != 200 {
            assert!(started.elapsed() < Duration::from_secs(20), "not healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
        served
    }

    /// GET with an optional bearer token: (status, headers, body).
    fn get(&self, path: &str, token: Option<&str>) -> (u16, String, String) {
        let mut command = Command::new("curl");
        command.args(["-s", "-D", "-", "-w", "\n%{http_code}"]);
        if let Some(token) = token {
            command.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        let out = command
            .arg(format!("{}{path}", self.url))
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (response, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
        let (headers, body) = response.split_once("\r\n\r\n").unwrap_or(("", response));
        (
            status.trim().parse().unwrap_or(0),
            headers.to_ascii_lowercase(),
            body.to_owned(),
        )
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

#[test]
fn serve_answers_the_admin_api_with_the_current_token_and_the_dashboard_page() {
    // given a running service and its token
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let served = Served::start(&data_dir);
    let (token, _) = admin_token(&data_dir, false);
    let token = token.trim_end();

    // then the admin API needs the token
    let (status, headers, _) = served.get("/admin/api/devices", None);
    assert_eq!(status, 401);
    assert!(headers.contains("www-authenticate: bearer"), "{headers}");
    let (status, _, body) = served.get("/admin/api/devices", Some(token));
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(page["items"].as_array().unwrap().is_empty());
    let (status, _, body) = served.get("/admin/api/ca", Some(token));
    assert_eq!(status, 200, "{body}");

    // and a rotated token counts at once, without a restart
    let (rotated, _) = admin_token(&data_dir, true);
    assert_eq!(served.get("/admin/api/devices", Some(token)).0, 401);
    assert_eq!(
        served.get("/admin/api/devices", Some(rotated.trim_end())).0,
        200
    );

    // and the dashboard's placeholder is served under its policy, the device API as before
    let (status, headers, body) = served.get("/", None);
    assert_eq!(status, 200);
    assert!(
        headers.contains("content-security-policy: default-src 'self';"),
        "{headers}"
    );
    assert!(body.contains("bash scripts/build-ui.sh"));
    assert_eq!(served.get("/healthz", None).0, 200);
}
