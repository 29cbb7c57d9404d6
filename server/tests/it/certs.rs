//! `provisioner certs list` and `certs revoke`, byte for byte: the table, the `wrote PATH`
//! lines, the messages, the `--json` failure and the CRLs' `--crl-lifetime`, on a copy of
//! the compatibility fixture's data directory (two issuing CAs, ACTIVE and REVOKED
//! certificates).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use provisioner_store_local::crls::crl_dates;

/// An ACTIVE certificate of the fixture, issued by its current CA.
const ACTIVE: &str = "6c99140f7c9a7224049284b6c96db1709981a868a38e924d4526720617c294a6";
/// Another ACTIVE one, of the same CA.
const OTHER_ACTIVE: &str = "b70628d0b8c68097882453f34ba132ad252ab2faf66e116e3b7c4f49df422362";
/// The fixture's current issuing CA.
const CURRENT_CA: &str = "a255b32c638fb7cf";

/// A copy of the fixture's data directory as `data` in a fresh directory.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/compat-75a88cd/local/data");
    copy_tree(&fixture, &dir.path().join("data"));
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `provisioner ARGS --data-dir data` in `dir`, logging warnings and errors only.
fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .args(args)
        .args(["--data-dir", "data"])
        .current_dir(dir)
        .env("PROVISIONER_LOG", "warn")
        .env_remove("PROVISIONER_DATA_DIR")
        .env_remove("PROVISIONER_CRL_LIFETIME")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// The CRL files a revocation writes, relative to the run's directory, in order.
fn crl_files() -> Vec<PathBuf> {
    [
        "data/ca/issuing/d1541efb4136a901/crl.pem",
        "data/ca/issuing/a255b32c638fb7cf/crl.pem",
        "data/ca/root.crl.pem",
    ]
    .map(PathBuf::from)
    .to_vec()
}

#[test]
fn the_list_prints_a_table_oldest_first_and_says_when_nothing_matches() {
    let dir = data_dir();

    let table = run(
        dir.path(),
        &["certs", "list", "--device", "01232B5BC8F5E55123"],
    );
    let nothing = run(dir.path(), &["certs", "list", "--issuer", "nope"]);
    let nothing_json = run(dir.path(), &["certs", "list", "--issuer", "nope", "--json"]);

    assert_eq!(table.status.code(), Some(0), "{table:?}");
    assert_eq!(
        stdout(&table),
        "CERTIFICATE ID                                                    DEVICE                    STATUS    NOT AFTER             ISSUER\n\
         1f9c1738e7ff2c41ab719761679c83dc0fae13f8f4e63dfad3979d1a7c478e25  01232B5BC8F5E55123        REVOKED   2027-12-05T13:26:32Z  d1541efb4136a901\n\
         cc02857b78a884a8dce2f843ec0a35bd6750a29ffc23940d66a02e09d14ab268  01232B5BC8F5E55123        REVOKED   2027-12-05T13:26:32Z  d1541efb4136a901\n\
         b70628d0b8c68097882453f34ba132ad252ab2faf66e116e3b7c4f49df422362  01232B5BC8F5E55123        ACTIVE    2027-12-05T13:26:33Z  a255b32c638fb7cf\n"
    );
    assert_eq!(stderr(&table), "");
    assert_eq!(nothing.status.code(), Some(0));
    assert_eq!(
        (stdout(&nothing).as_str(), stderr(&nothing).as_str()),
        ("", "no certificate matches\n")
    );
    assert_eq!(stdout(&nothing_json), "[]\n");
}

#[test]
fn a_revocation_names_the_crls_it_wrote_and_a_second_one_changes_nothing() {
    let dir = data_dir();

    let revoked = run(
        dir.path(),
        &["certs", "revoke", ACTIVE, "--reason", "keyCompromise"],
    );
    let again = run(
        dir.path(),
        &["certs", "revoke", ACTIVE, "--reason", "superseded"],
    );
    let again_json = run(
        dir.path(),
        &[
            "certs",
            "revoke",
            ACTIVE,
            "--reason",
            "superseded",
            "--json",
        ],
    );

    assert_eq!(revoked.status.code(), Some(0), "{revoked:?}");
    let wrote: String = crl_files()
        .iter()
        .map(|path| format!("wrote {}\n", path.display()))
        .collect();
    assert_eq!(stderr(&revoked), wrote);
    let line = stdout(&revoked);
    let at = line
        .strip_prefix(&format!(
            "revoked certificate {ACTIVE} of device 0123138A01F417B896 (serial 6481af47647cc96e6502ec08da300408bbb1cc03, issuer {CURRENT_CA}) at "
        ))
        .and_then(|rest| rest.strip_suffix(": keyCompromise\n"))
        .unwrap_or_else(|| panic!("{line}"));
    assert!(at.len() == 20 && at.ends_with('Z'), "{at}");
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(stderr(&again), "", "nothing is written again");
    assert_eq!(
        stdout(&again),
        format!("certificate {ACTIVE} of device 0123138A01F417B896 was already revoked at {at} (keyCompromise); nothing changed\n")
    );
    let body: serde_json::Value = serde_json::from_str(&stdout(&again_json)).unwrap();
    assert_eq!(body["alreadyRevoked"], true);
    assert_eq!(body["revocationReason"], "keyCompromise");
    assert_eq!(body["revokedAt"], at);
}

#[test]
fn the_crls_of_a_revocation_live_as_long_as_crl_lifetime_says() {
    let dir = data_dir();

    let revoked = run(
        dir.path(),
        &[
            "certs",
            "revoke",
            OTHER_ACTIVE,
            "--reason",
            "superseded",
            "--json",
            "--crl-lifetime",
            "90s",
        ],
    );

    assert_eq!(revoked.status.code(), Some(0), "{revoked:?}");
    let body: serde_json::Value = serde_json::from_str(&stdout(&revoked)).unwrap();
    assert_eq!(
        (&body["status"], &body["alreadyRevoked"]),
        (&"REVOKED".into(), &false.into())
    );
    for path in crl_files() {
        let dates = crl_dates(&fs::read_to_string(dir.path().join(&path)).unwrap()).unwrap();
        assert_eq!(
            dates.next_update - dates.this_update,
            90,
            "{}",
            path.display()
        );
    }
}

#[test]
fn an_unknown_certificate_is_named_with_its_code() {
    let dir = data_dir();

    let plain = run(
        dir.path(),
        &["certs", "revoke", "cd", "--reason", "superseded"],
    );
    let json = run(
        dir.path(),
        &["certs", "revoke", "cd", "--reason", "superseded", "--json"],
    );

    let message =
        "no certificate \"cd\" in the registry: `provisioner certs list` shows the certificate ids";
    assert_eq!(plain.status.code(), Some(1));
    assert_eq!(
        (stdout(&plain), stderr(&plain)),
        (String::new(), format!("error: {message}\n"))
    );
    assert_eq!(json.status.code(), Some(1));
    assert_eq!(
        stdout(&json),
        format!(
            "{}\n",
            serde_json::json!({ "error": "unknown_certificate", "message": message })
        )
    );
}

#[test]
fn a_crl_that_cannot_be_written_leaves_the_revocation_and_says_how_to_finish() {
    // given the current CA's CRL path taken by a directory
    let dir = data_dir();
    let crl = dir.path().join(&crl_files()[1]);
    fs::remove_file(&crl).unwrap();
    fs::create_dir(&crl).unwrap();

    let revoked = run(
        dir.path(),
        &[
            "certs",
            "revoke",
            ACTIVE,
            "--reason",
            "keyCompromise",
            "--json",
        ],
    );

    assert_eq!(revoked.status.code(), Some(0), "{revoked:?}");
    let body: serde_json::Value = serde_json::from_str(&stdout(&revoked)).unwrap();
    assert_eq!(body["status"], "REVOKED");
    assert_eq!(
        stderr(&revoked).lines().last(),
        Some("warning: the revocation is recorded, but the CRL could not be regenerated (Is a directory (os error 21)); run `provisioner ca crl`")
    );
    assert!(!stderr(&revoked).contains("wrote "));
}
