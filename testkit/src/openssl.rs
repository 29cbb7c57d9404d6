//! OpenSSL as the independent party of the tests: the command run in a directory, and an
//! offline root CA of the kind a PKI admin keeps outside the service.

use std::path::Path;
use std::process::Command;

/// Runs `openssl ARGS` in `dir`; panics with its stderr when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// An offline root CA (EC P-256, `subject` as openssl's `-subj`) in `dir`: `root.pem`,
/// `root.key`, and `ext.cnf`, the extensions it signs intermediates with
/// (`openssl x509 -req ... -extfile ext.cnf`).
pub fn offline_root(dir: &Path, subject: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-days",
            "3650",
            "-subj",
            subject,
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=critical,CA:TRUE,pathlen:0\n\
         keyUsage=critical,digitalSignature,keyCertSign,cRLSign\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .expect("ext.cnf is written");
}
