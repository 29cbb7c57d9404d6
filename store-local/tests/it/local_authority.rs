//! The on-disk CA, checked by a verifier we did not write: every certificate and CRL it
//! makes is handed to the `openssl` command line, and the requests it signs are built by
//! `openssl req` and verified by `provisioner_core::CsrVerifier`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use provisioner_core::{
    csr_der_from_file, CertificateAuthority, CsrError, CsrVerifier, IssuanceProfile,
    RevocationReason, UnixTime, VerifiedCsr,
};
use provisioner_store_local::authority::{AuthorityError, LocalAuthority, RevokedEntry};
use tempfile::TempDir;
use time::macros::format_description;
use time::OffsetDateTime;

const DAY: i64 = 24 * 60 * 60;

/// The extensions an external parent CA puts on our issuing intermediate.
const INTERMEDIATE_EXTENSIONS: &str = "basicConstraints=critical,CA:TRUE,pathlen:0\n\
keyUsage=critical,digitalSignature,keyCertSign,cRLSign\n\
subjectKeyIdentifier=hash\n\
authorityKeyIdentifier=keyid\n";

fn now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Runs openssl in `dir`; returns success and stdout + stderr.
fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line must be installed for these tests");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn openssl_ok(dir: &Path, args: &[&str]) -> String {
    let (ok, text) = openssl(dir, args);
    assert!(ok, "openssl {args:?} failed:\n{text}");
    text
}

/// A P-256 key and CSR for CN = `name` made by `openssl req`, verified as the service would.
fn openssl_csr(dir: &Path, name: &str, extra: &[&str]) -> VerifiedCsr {
    let der = openssl_csr_der(dir, name, &format!("/CN={name}"), extra);
    CsrVerifier::default().verify_der(&der).unwrap()
}

/// A P-256 key and CSR for `subject` made by `openssl req`, as DER.
fn openssl_csr_der(dir: &Path, name: &str, subject: &str, extra: &[&str]) -> Vec<u8> {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let mut args = vec![
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-subj",
        subject,
        "-out",
        &csr,
    ];
    args.extend_from_slice(extra);
    openssl_ok(dir, &args);
    csr_der_from_file(&fs::read(dir.join(&csr)).unwrap()).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The hex value on the line after `label` in `openssl x509 -text` output.
fn value_after(text: &str, label: &str) -> String {
    let mut lines = text.lines();
    lines.find(|line| line.contains(label)).unwrap();
    lines.next().unwrap().trim().to_owned()
}

fn iso(t: UnixTime) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .unwrap()
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]Z"
        ))
        .unwrap()
}

struct DevelopmentCa {
    _dir: TempDir,
    ca_dir: PathBuf,
    work: PathBuf,
    authority: LocalAuthority,
}

fn development_ca() -> DevelopmentCa {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let work = dir.path().join("work");
    fs::create_dir(&work).unwrap();
    LocalAuthority::init_development(&ca_dir, now()).unwrap();
    let authority = LocalAuthority::load(&ca_dir).unwrap();
    write(&work, "root.pem", authority.root_pem().unwrap());
    write(&work, "intermediate.pem", authority.certificate_pem());
    DevelopmentCa {
        _dir: dir,
        ca_dir,
        work,
        authority,
    }
}

#[tokio::test]
async fn a_device_certificate_verifies_with_openssl_and_has_exactly_the_profile() {
    let ca = development_ca();
    // The CSR asks for more than the profile gives (O, OU, a CA certificate, key
    // usages): the verifier lets it through, the CA ignores all of it.
    let der = openssl_csr_der(
        &ca.work,
        "dev-0001",
        "/O=Acme Devices/OU=Sensors/CN=dev-0001",
        &[
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    let request = CsrVerifier::default().verify_der(&der).unwrap();
    // A requested subjectAltName is refused before any CA sees it.
    let san = openssl_csr_der(
        &ca.work,
        "dev-0001-san",
        "/CN=dev-0001",
        &["-addext", "subjectAltName=DNS:evil.example"],
    );
    assert_eq!(
        CsrVerifier::default().verify_der(&san),
        Err(CsrError::SubjectAltNameRequested)
    );
    let profile = IssuanceProfile::default();
    let issued_at = now();

    let signed = CertificateAuthority::issue(&ca.authority, &request, "key", &profile, issued_at)
        .await
        .unwrap();
    write(&ca.work, "leaf.pem", &signed.pem);

    let verify = openssl_ok(
        &ca.work,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "intermediate.pem",
            "-purpose",
            "sslclient",
            "leaf.pem",
        ],
    );
    assert!(verify.contains("leaf.pem: OK"), "{verify}");

    let text = openssl_ok(&ca.work, &["x509", "-in", "leaf.pem", "-noout", "-text"]);
    assert!(text.contains("Subject: CN = dev-0001\n"), "{text}");
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(text.contains("X509v3 Key Usage: critical"), "{text}");
    assert!(text.contains("Digital Signature\n"), "{text}");
    assert!(
        text.contains("X509v3 Basic Constraints: critical"),
        "{text}"
    );
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(
        !text.contains("Acme") && !text.contains("Sensors"),
        "{text}"
    );
    assert!(!text.contains("Certificate Sign"), "{text}");
    assert!(!text.contains("CA:TRUE"), "{text}");
    assert!(!text.contains("Subject Alternative Name"), "{text}");
    assert_eq!(text.matches("X509v3 ").count(), 6, "{text}");
    assert!(text.contains("ecdsa-with-SHA256"), "{text}");
    // The same, as the issue's one-line check reads it.
    let asked = openssl_ok(
        &ca.work,
        &[
            "x509",
            "-in",
            "leaf.pem",
            "-noout",
            "-subject",
            "-ext",
            "basicConstraints",
        ],
    );
    assert_eq!(
        asked,
        "subject=CN = dev-0001\nX509v3 Basic Constraints: critical\n    CA:FALSE\n"
    );

    let ski = value_after(&text, "X509v3 Subject Key Identifier");
    let aki = value_after(&text, "X509v3 Authority Key Identifier");
    let issuer_text = openssl_ok(
        &ca.work,
        &["x509", "-in", "intermediate.pem", "-noout", "-text"],
    );
    let issuer_ski = value_after(&issuer_text, "X509v3 Subject Key Identifier");
    assert!(!ski.is_empty());
    assert_eq!(aki.trim_start_matches("keyid:"), issuer_ski);

    let serial = openssl_ok(&ca.work, &["x509", "-in", "leaf.pem", "-noout", "-serial"]);
    let serial = serial.trim().trim_start_matches("serial=").to_owned();
    assert_eq!(serial.to_lowercase(), signed.serial);
    assert!(serial.len() >= 32, "serial {serial} is under 16 bytes");
    assert!(u8::from_str_radix(&serial[..2], 16).unwrap() < 0x80);

    let dates = openssl_ok(
        &ca.work,
        &[
            "x509",
            "-in",
            "leaf.pem",
            "-noout",
            "-startdate",
            "-enddate",
            "-dateopt",
            "iso_8601",
        ],
    );
    let (not_before, not_after) = profile.validity_at(issued_at);
    assert_eq!(
        (signed.not_before, signed.not_after),
        (not_before, not_after)
    );
    assert!(
        dates.contains(&format!("notBefore={}", iso(not_before))),
        "{dates}"
    );
    assert!(
        dates.contains(&format!("notAfter={}", iso(not_after))),
        "{dates}"
    );
}

#[tokio::test]
async fn the_chain_the_port_returns_is_the_intermediate_then_the_root() {
    let ca = development_ca();
    let request = openssl_csr(&ca.work, "dev-chain", &[]);
    let signed = ca
        .authority
        .issue_certificate(&request, &IssuanceProfile::default(), now())
        .unwrap();
    let chain = CertificateAuthority::chain_pem(&ca.authority)
        .await
        .unwrap();
    assert_eq!(
        chain,
        format!(
            "{}{}",
            ca.authority.certificate_pem(),
            ca.authority.root_pem().unwrap()
        )
    );
    write(&ca.work, "chain.pem", &chain);
    write(&ca.work, "leaf.pem", &signed.pem);
    // A device that trusts only the root verifies with the chain it was given.
    let verify = openssl_ok(
        &ca.work,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem",
            "leaf.pem",
        ],
    );
    assert!(verify.contains("OK"), "{verify}");
}

#[test]
fn a_revoked_serial_fails_openssl_crl_checks_and_others_pass() {
    let ca = development_ca();
    let profile = IssuanceProfile::default();
    let t = now();
    let revoked = ca
        .authority
        .issue_certificate(&openssl_csr(&ca.work, "dev-revoked", &[]), &profile, t)
        .unwrap();
    let kept = ca
        .authority
        .issue_certificate(&openssl_csr(&ca.work, "dev-kept", &[]), &profile, t)
        .unwrap();
    write(&ca.work, "revoked.pem", &revoked.pem);
    write(&ca.work, "kept.pem", &kept.pem);
    let entry = RevokedEntry {
        serial_hex: revoked.serial.clone(),
        revoked_at: t,
        reason: RevocationReason::Superseded,
    };

    let crl = ca.authority.crl_pem(&[entry], t, 7 * DAY).unwrap();
    write(&ca.work, "crl.pem", &crl);
    write(
        &ca.work,
        "cas.pem",
        &format!(
            "{}{}",
            ca.authority.certificate_pem(),
            ca.authority.root_pem().unwrap()
        ),
    );

    let checked = openssl_ok(
        &ca.work,
        &[
            "crl", "-in", "crl.pem", "-noout", "-verify", "-CAfile", "cas.pem",
        ],
    );
    assert!(checked.contains("verify OK"), "{checked}");
    let text = openssl_ok(&ca.work, &["crl", "-in", "crl.pem", "-noout", "-text"]);
    assert!(text.contains("X509v3 CRL Number"), "{text}");
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    assert!(text.contains("Superseded"), "{text}");
    assert!(text.contains(&revoked.serial.to_uppercase()), "{text}");

    let crl_check = |leaf: &str| {
        openssl(
            &ca.work,
            &[
                "verify",
                "-crl_check",
                "-CAfile",
                "root.pem",
                "-untrusted",
                "intermediate.pem",
                "-CRLfile",
                "crl.pem",
                leaf,
            ],
        )
    };
    let (ok, text) = crl_check("revoked.pem");
    assert!(!ok, "{text}");
    assert!(text.contains("certificate revoked"), "{text}");
    let (ok, text) = crl_check("kept.pem");
    assert!(ok, "{text}");

    // A second CRL in the same second still gets a higher number.
    let next = ca.authority.crl_pem(&[], t, 7 * DAY).unwrap();
    write(&ca.work, "next.pem", &next);
    let number = |file: &str| {
        let text = openssl_ok(&ca.work, &["crl", "-in", file, "-noout", "-crlnumber"]);
        u64::from_str_radix(text.trim().trim_start_matches("crlNumber=0x"), 16).unwrap()
    };
    assert!(number("next.pem") > number("crl.pem"));
}

#[test]
fn key_files_are_owner_only_and_init_twice_is_refused() {
    let ca = development_ca();
    assert_eq!(mode(&ca.ca_dir.join("root.key.pem")), 0o600);
    assert_eq!(
        mode(
            &ca.ca_dir
                .join("issuing")
                .join(ca.authority.id())
                .join("key.pem")
        ),
        0o600
    );
    assert_eq!(mode(&ca.ca_dir), 0o700);

    let again = LocalAuthority::init_development(&ca.ca_dir, now()).unwrap_err();
    assert!(
        matches!(again, AuthorityError::AlreadyInitialised { .. }),
        "{again}"
    );
    let csr_only = LocalAuthority::init_csr_only(&ca.ca_dir, None).unwrap_err();
    assert!(
        matches!(csr_only, AuthorityError::AlreadyInitialised { .. }),
        "{csr_only}"
    );
}

/// An external parent CA made by openssl: `parent.key`, `parent.pem`.
fn external_parent(work: &Path) {
    openssl_ok(
        work,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "parent.key",
            "-subj",
            "/O=Example Corp/CN=Example Root",
            "-days",
            "30",
            "-out",
            "parent.pem",
        ],
    );
    write(work, "intermediate.ext", INTERMEDIATE_EXTENSIONS);
}

/// The external parent signs `csr` as `out` with the extensions in `extfile`.
fn parent_signs(work: &Path, csr: &Path, extfile: &str, out: &str) {
    openssl_ok(
        work,
        &[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            "parent.pem",
            "-CAkey",
            "parent.key",
            "-set_serial",
            "0x1234567890abcdef",
            "-days",
            "30",
            "-extfile",
            extfile,
            "-out",
            out,
        ],
    );
}

#[test]
fn a_csr_signed_by_an_external_parent_is_imported_and_issues_verifiable_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let work = dir.path().to_owned();
    external_parent(&work);

    let pending =
        LocalAuthority::init_csr_only(&ca_dir, Some("Example Devices Issuing CA")).unwrap();
    assert_eq!(
        mode(&ca_dir.join("issuing").join(&pending.id).join("key.pem")),
        0o600
    );
    let error = LocalAuthority::load(&ca_dir).unwrap_err();
    assert!(
        matches!(error, AuthorityError::AwaitingCertificate { .. }),
        "{error}"
    );
    let csr_text = openssl_ok(
        &work,
        &[
            "req",
            "-in",
            pending.csr_path.to_str().unwrap(),
            "-noout",
            "-verify",
            "-subject",
        ],
    );
    assert!(
        csr_text.contains("Example Devices Issuing CA"),
        "{csr_text}"
    );

    // A certificate for another key is refused.
    let other = work.join("other.csr");
    openssl_ok(
        &work,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "other.key",
            "-subj",
            "/CN=Other",
            "-out",
            other.to_str().unwrap(),
        ],
    );
    parent_signs(&work, &other, "intermediate.ext", "other.pem");
    let error = LocalAuthority::import_certificate(
        &ca_dir,
        &fs::read(work.join("other.pem")).unwrap(),
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(error, AuthorityError::KeyMismatch { .. }),
        "{error}"
    );

    // A certificate for the right key that is not a CA is refused.
    write(
        &work,
        "leaf.ext",
        "basicConstraints=critical,CA:FALSE\nsubjectKeyIdentifier=hash\n",
    );
    parent_signs(&work, &pending.csr_path, "leaf.ext", "not-a-ca.pem");
    let error = LocalAuthority::import_certificate(
        &ca_dir,
        &fs::read(work.join("not-a-ca.pem")).unwrap(),
        now(),
    )
    .unwrap_err();
    assert!(matches!(error, AuthorityError::NotACa(_)), "{error}");
    assert!(error.to_string().contains("CA:TRUE"), "{error}");

    // The parent's chain given in the wrong order is refused with a hint.
    parent_signs(
        &work,
        &pending.csr_path,
        "intermediate.ext",
        "intermediate.pem",
    );
    let intermediate = fs::read_to_string(work.join("intermediate.pem")).unwrap();
    let parent = fs::read_to_string(work.join("parent.pem")).unwrap();
    let error = LocalAuthority::import_certificate(
        &ca_dir,
        format!("{parent}{intermediate}").as_bytes(),
        now(),
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("put the issuing CA's certificate first"),
        "{error}"
    );

    // The right one installs and becomes current; alone, its chain stops short of a root.
    let report =
        LocalAuthority::import_certificate(&ca_dir, intermediate.as_bytes(), now()).unwrap();
    assert_eq!(report.id, pending.id);
    assert!(!report.chain_ends_at_root);
    assert_eq!(report.previous_id, None);
    // Importing it again with its parent completes the chain of the same CA.
    let report = LocalAuthority::import_certificate(
        &ca_dir,
        format!("{intermediate}{parent}").as_bytes(),
        now(),
    )
    .unwrap();
    assert_eq!(report.id, pending.id);
    assert!(report.chain_ends_at_root);
    assert_eq!(report.previous_id, None);
    // With no CSR waiting, a certificate for another key is refused.
    let error = LocalAuthority::import_certificate(
        &ca_dir,
        &fs::read(work.join("other.pem")).unwrap(),
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(error, AuthorityError::NoPendingRequest { .. }),
        "{error}"
    );

    let authority = LocalAuthority::load(&ca_dir).unwrap();
    assert_eq!(authority.id(), pending.id);
    assert!(authority.root_pem().is_none());
    let signed = authority
        .issue_certificate(
            &openssl_csr(&work, "dev-ext", &[]),
            &IssuanceProfile::default(),
            now(),
        )
        .unwrap();
    write(&work, "leaf.pem", &signed.pem);
    write(&work, "chain.pem", authority.chain_pem());
    let verify = openssl_ok(
        &work,
        &[
            "verify",
            "-CAfile",
            "parent.pem",
            "-untrusted",
            "chain.pem",
            "leaf.pem",
        ],
    );
    assert!(verify.contains("leaf.pem: OK"), "{verify}");

    let overview = LocalAuthority::overview(&ca_dir).unwrap();
    assert_eq!(overview.current.unwrap().id, pending.id);
    assert!(overview.pending.is_none());
    assert!(!overview.root_key_local);
}

#[test]
fn rotation_issues_through_the_new_intermediate_and_the_root_crl_revokes_the_old_one() {
    let ca = development_ca();
    let profile = IssuanceProfile::default();
    let t = now();
    let old = &ca.authority;
    let old_leaf = old
        .issue_certificate(&openssl_csr(&ca.work, "dev-old", &[]), &profile, t)
        .unwrap();

    let rotation = LocalAuthority::rotate(&ca.ca_dir, t).unwrap();
    assert_eq!(rotation.old_id, old.id());
    assert_ne!(rotation.new_id, rotation.old_id);

    let new = LocalAuthority::load(&ca.ca_dir).unwrap();
    assert_eq!(new.id(), rotation.new_id);
    assert_eq!(
        LocalAuthority::previous_ids(&ca.ca_dir).unwrap(),
        vec![rotation.old_id.clone()]
    );
    let new_leaf = new
        .issue_certificate(&openssl_csr(&ca.work, "dev-new", &[]), &profile, t)
        .unwrap();
    write(&ca.work, "old-leaf.pem", &old_leaf.pem);
    write(&ca.work, "new-leaf.pem", &new_leaf.pem);
    write(&ca.work, "new-intermediate.pem", new.certificate_pem());

    let verify = openssl_ok(
        &ca.work,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "new-intermediate.pem",
            "new-leaf.pem",
        ],
    );
    assert!(verify.contains("new-leaf.pem: OK"), "{verify}");
    // The new leaf does not chain through the old intermediate.
    let (ok, _) = openssl(
        &ca.work,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "intermediate.pem",
            "new-leaf.pem",
        ],
    );
    assert!(!ok);

    // The old CA is still loadable, for its CRL; the root revokes it.
    let previous = LocalAuthority::load_id(&ca.ca_dir, &rotation.old_id).unwrap();
    let old_crl = previous.crl_pem(&[], t, DAY).unwrap();
    let new_crl = new.crl_pem(&[], t, DAY).unwrap();
    let root_crl = LocalAuthority::root_crl_pem(
        &ca.ca_dir,
        &[RevokedEntry {
            serial_hex: previous.serial_hex().to_owned(),
            revoked_at: t,
            reason: RevocationReason::Superseded,
        }],
        t,
        DAY,
    )
    .unwrap();
    write(&ca.work, "old.crl", &old_crl);
    write(&ca.work, "new.crl", &new_crl);
    write(&ca.work, "root.crl", &root_crl);
    let checked = openssl_ok(
        &ca.work,
        &[
            "crl", "-in", "root.crl", "-noout", "-verify", "-CAfile", "root.pem",
        ],
    );
    assert!(checked.contains("verify OK"), "{checked}");

    let (ok, text) = openssl(
        &ca.work,
        &[
            "verify",
            "-crl_check_all",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "intermediate.pem",
            "-CRLfile",
            "root.crl",
            "-CRLfile",
            "old.crl",
            "old-leaf.pem",
        ],
    );
    assert!(!ok, "{text}");
    assert!(text.contains("certificate revoked"), "{text}");
    let (ok, text) = openssl(
        &ca.work,
        &[
            "verify",
            "-crl_check_all",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "new-intermediate.pem",
            "-CRLfile",
            "root.crl",
            "-CRLfile",
            "new.crl",
            "new-leaf.pem",
        ],
    );
    assert!(ok, "{text}");
}

#[test]
fn rotation_through_a_csr_signed_by_the_parent_keeps_the_old_ca_as_previous() {
    let ca = development_ca();
    let old_id = ca.authority.id().to_owned();
    let pending = LocalAuthority::rotate_csr_only(&ca.ca_dir, None).unwrap();
    // Until the import, the old CA stays current.
    assert_eq!(LocalAuthority::load(&ca.ca_dir).unwrap().id(), old_id);
    let error = LocalAuthority::rotate_csr_only(&ca.ca_dir, None).unwrap_err();
    assert!(
        matches!(error, AuthorityError::RequestPending { .. }),
        "{error}"
    );

    write(&ca.work, "intermediate.ext", INTERMEDIATE_EXTENSIONS);
    let root_key = ca.ca_dir.join("root.key.pem");
    openssl_ok(
        &ca.work,
        &[
            "x509",
            "-req",
            "-in",
            pending.csr_path.to_str().unwrap(),
            "-CA",
            "root.pem",
            "-CAkey",
            root_key.to_str().unwrap(),
            "-set_serial",
            "0x7e",
            "-days",
            "30",
            "-extfile",
            "intermediate.ext",
            "-out",
            "rotated.pem",
        ],
    );
    // Only the intermediate: the local root completes the chain.
    let report = LocalAuthority::import_certificate(
        &ca.ca_dir,
        &fs::read(ca.work.join("rotated.pem")).unwrap(),
        now(),
    )
    .unwrap();
    assert_eq!(report.previous_id.as_deref(), Some(old_id.as_str()));
    assert!(report.chain_ends_at_root);

    let new = LocalAuthority::load(&ca.ca_dir).unwrap();
    assert_eq!(new.id(), pending.id);
    let signed = new
        .issue_certificate(
            &openssl_csr(&ca.work, "dev-r", &[]),
            &IssuanceProfile::default(),
            now(),
        )
        .unwrap();
    write(&ca.work, "leaf.pem", &signed.pem);
    write(&ca.work, "chain.pem", new.chain_pem());
    let verify = openssl_ok(
        &ca.work,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem",
            "leaf.pem",
        ],
    );
    assert!(verify.contains("leaf.pem: OK"), "{verify}");
    assert_eq!(
        LocalAuthority::previous_ids(&ca.ca_dir).unwrap(),
        vec![old_id]
    );
}

#[test]
fn the_broker_certificate_verifies_as_a_tls_server_for_localhost() {
    let ca = development_ca();
    let server = ca
        .authority
        .server_certificate(&["broker.internal", "10.0.0.7"], now())
        .unwrap();
    write(&ca.work, "server.pem", &server.certificate_pem);
    write(&ca.work, "server.key", &server.key_pem);

    let verify = openssl_ok(
        &ca.work,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "intermediate.pem",
            "-purpose",
            "sslserver",
            "-verify_hostname",
            "localhost",
            "-verify_ip",
            "127.0.0.1",
            "server.pem",
        ],
    );
    assert!(verify.contains("server.pem: OK"), "{verify}");
    let text = openssl_ok(&ca.work, &["x509", "-in", "server.pem", "-noout", "-text"]);
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    assert!(text.contains("DNS:localhost"), "{text}");
    assert!(text.contains("IP Address:127.0.0.1"), "{text}");
    assert!(text.contains("DNS:broker.internal"), "{text}");
    assert!(text.contains("IP Address:10.0.0.7"), "{text}");
    let certified = openssl_ok(
        &ca.work,
        &["x509", "-in", "server.pem", "-noout", "-pubkey"],
    );
    let from_key = openssl_ok(&ca.work, &["pkey", "-in", "server.key", "-pubout"]);
    assert_eq!(certified, from_key);
}
