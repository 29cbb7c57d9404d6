//! `provisioner admin token` and the admin API as `provisioner serve` serves it: the real
//! binary on an ephemeral port, spoken to with curl.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{assert_exit, provisioner, Served};

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

/// Runs `provisioner serve` on a data directory it must refuse: it exits by itself within
/// 30 s (else it is stopped by its PID and the test fails). Returns (exit code, stderr).
fn serve_refusing(data_dir: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("PROVISIONER_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
            panic!("serve started on a data directory with an unusable secret");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

#[test]
fn serve_refuses_an_empty_url_signing_key_and_a_short_admin_token_naming_the_file() {
    // given a data directory made by a first start
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    admin_token(&data_dir, false);
    let key = data_dir.join("url-signing.key");

    // when its URL signing key is empty (an interrupted first start), then serve exits
    // non-zero naming the file and the fix, and leaves the file for the operator
    std::fs::write(&key, "").unwrap();
    let (code, stderr) = serve_refusing(&data_dir);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains(&key.display().to_string()), "{stderr}");
    assert!(stderr.contains("is empty"), "{stderr}");
    assert!(stderr.contains("delete the file"), "{stderr}");
    assert_eq!(std::fs::read(&key).unwrap(), b"");

    // and a short one likewise
    std::fs::write(&key, [1u8; 31]).unwrap();
    let (code, stderr) = serve_refusing(&data_dir);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("31 bytes"), "{stderr}");

    // when the key is removed (a new one is made) but the admin token is cut short,
    // then serve and `admin token` refuse it, and `admin token --rotate` is the fix
    std::fs::remove_file(&key).unwrap();
    let token = data_dir.join("admin-token");
    std::fs::write(&token, "short\n").unwrap();
    let (code, stderr) = serve_refusing(&data_dir);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains(&token.display().to_string()), "{stderr}");
    assert!(stderr.contains("--rotate"), "{stderr}");
    let output = provisioner(&["admin", "token", "--data-dir", data_dir.to_str().unwrap()]);
    assert_ne!(output.status.code(), Some(0));
    assert!(output.stdout.is_empty(), "a refused token is never printed");
    let (rotated, _) = admin_token(&data_dir, true);
    assert_eq!(rotated.trim_end().len(), 64);
}

/// GET with an optional bearer token: (status, headers, body).
fn get(served: &Served, path: &str, token: Option<&str>) -> (u16, String, String) {
    let mut command = Command::new("curl");
    command.args(["-s", "-D", "-", "-w", "\n%{http_code}"]);
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = command
        .arg(format!("{}{path}", served.url))
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

#[test]
fn serve_answers_the_admin_api_with_the_current_token_and_the_dashboard_page() {
    // given a running service and its token
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let served = Served::start(&data_dir, &[]);
    let (token, _) = admin_token(&data_dir, false);
    let token = token.trim_end();

    // then the admin API needs the token
    let (status, headers, _) = get(&served, "/admin/api/devices", None);
    assert_eq!(status, 401);
    assert!(headers.contains("www-authenticate: bearer"), "{headers}");
    let (status, _, body) = get(&served, "/admin/api/devices", Some(token));
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(page["items"].as_array().unwrap().is_empty());
    let (status, _, body) = get(&served, "/admin/api/ca", Some(token));
    assert_eq!(status, 200, "{body}");

    // and a rotated token counts at once, without a restart
    let (rotated, _) = admin_token(&data_dir, true);
    assert_eq!(get(&served, "/admin/api/devices", Some(token)).0, 401);
    assert_eq!(
        get(&served, "/admin/api/devices", Some(rotated.trim_end())).0,
        200
    );

    // and the dashboard's placeholder is served under its policy, the device API as before
    let (status, headers, body) = get(&served, "/", None);
    assert_eq!(status, 200);
    assert!(
        headers.contains("content-security-policy: default-src 'self';"),
        "{headers}"
    );
    assert!(body.contains("bash scripts/build-ui.sh"));
    assert_eq!(get(&served, "/healthz", None).0, 200);
}
