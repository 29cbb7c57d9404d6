//! `provisioner csr inspect` as a firmware engineer runs it: the real binary, the
//! independent vectors, JSON on stdout and the exit code.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const VECTORS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/vectors");

fn provisioner(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn vector(section: &str, name: &str) -> Value {
    let all: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{VECTORS_DIR}/vectors.json")).unwrap(),
    )
    .unwrap();
    all[section]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no vector {name}"))
        .clone()
}

#[test]
fn a_good_pem_file_prints_the_verified_request_and_exits_0() {
    let expected = vector("csr", "openssl_p256_pem_b64")["expect"].clone();
    let out = provisioner(
        &[
            "csr",
            "inspect",
            "--file",
            &format!("{VECTORS_DIR}/csr/openssl_p256.pem"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out), expected);
}

#[test]
fn a_der_file_is_read_too() {
    let expected = vector("csr", "python_p256_der_b64")["expect"].clone();
    let out = provisioner(
        &[
            "csr",
            "inspect",
            "-f",
            &format!("{VECTORS_DIR}/csr/python_p256.der"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out), expected);
}

#[test]
fn every_csr_vector_as_an_argument_gives_its_expected_decision() {
    let all: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{VECTORS_DIR}/vectors.json")).unwrap(),
    )
    .unwrap();
    for vector in all["csr"].as_array().unwrap() {
        let header = vector["header"].as_str().unwrap();
        let mut args = vec!["csr", "inspect"];
        if vector["allowP384"] == Value::Bool(true) {
            args.push("--allow-p384");
        }
        if vector["subjectCnOnly"] == Value::Bool(true) {
            args.push("--iot-core");
        }
        // Through stdin, so empty and whitespace-only values arrive as they are.
        let out = provisioner(&args, Some(header));
        let mut got = json(&out);
        let ok = got.get("error").is_none();
        assert_eq!(
            out.status.code(),
            Some(if ok { 0 } else { 1 }),
            "{}",
            vector["name"]
        );
        if !ok {
            assert!(!got["message"].as_str().unwrap().is_empty());
            got.as_object_mut().unwrap().remove("message");
        }
        assert_eq!(got, vector["expect"], "{}", vector["name"]);
    }
}

#[test]
fn a_header_argument_is_accepted() {
    let v = vector("csr", "openssl_p256_der_b64url_nopad");
    let out = provisioner(&["csr", "inspect", v["header"].as_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out), v["expect"]);
}

#[test]
fn a_different_registered_key_is_a_key_mismatch_with_status_403_and_exit_1() {
    let v = vector("authorize", "authorize_key_mismatch");
    let out = provisioner(
        &[
            "csr",
            "inspect",
            "--public-key",
            v["registeredKey"].as_str().unwrap(),
            v["header"].as_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let body = json(&out);
    assert_eq!(body["error"], "key_mismatch");
    assert_eq!(body["status"], 403);
}

#[test]
fn the_registered_key_matches_in_every_encoding() {
    let all: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{VECTORS_DIR}/vectors.json")).unwrap(),
    )
    .unwrap();
    for v in all["authorize"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["expect"].get("deviceId").is_some())
    {
        let mut args = vec![
            "csr",
            "inspect",
            "--public-key",
            v["registeredKey"].as_str().unwrap(),
        ];
        if v["allowP384"] == Value::Bool(true) {
            args.push("--allow-p384");
        }
        args.push(v["header"].as_str().unwrap());
        let out = provisioner(&args, None);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            v["name"],
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(json(&out), v["expect"], "{}", v["name"]);
    }
}

#[test]
fn an_unreadable_file_is_reported_as_json_with_exit_1() {
    let out = provisioner(
        &["csr", "inspect", "--file", "/nonexistent/device.csr"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["error"], "unreadable_input");
}

#[test]
fn a_requested_subject_alt_name_is_refused_saying_what_to_fix() {
    let out = provisioner(
        &[
            "csr",
            "inspect",
            "--file",
            &format!("{VECTORS_DIR}/csr/openssl_p256_san_dns.pem"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let body = json(&out);
    assert_eq!(body["error"], "subject_alt_name_requested");
    assert_eq!(body["status"], 400);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("leave the extension out"));
}

#[test]
fn extra_subject_attributes_pass_unless_checked_as_iot_core() {
    let file = format!("{VECTORS_DIR}/csr/openssl_p256_ca_true_o_ou.pem");
    let out = provisioner(&["csr", "inspect", "--file", &file], None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["deviceId"], "sensor-ca-0042");

    let out = provisioner(&["csr", "inspect", "--iot-core", "--file", &file], None);
    assert_eq!(out.status.code(), Some(1));
    let body = json(&out);
    assert_eq!(body["error"], "subject_not_cn_only");
    assert!(body["message"].as_str().unwrap().contains("O, OU"));
}
