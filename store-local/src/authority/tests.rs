//! Unit tests of the on-disk CA that need its private parts (the integration tests are
//! in `tests/it/local_authority.rs`).

use std::fs;
use std::os::unix::fs::PermissionsExt;

use der::{Decode, Encode};
use provisioner_core::{CsrVerifier, IssuanceProfile, UnixTime, VerifiedCsr};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use super::crl::{next_crl_number, serial_bytes};
use super::files::{issuing_dir, CRL_NUMBER, KEY, ROOT_KEY};
use super::{AuthorityError, LocalAuthority, DAY};

const NOW: UnixTime = 1_800_000_000;

fn verified_csr(device_id: &str) -> VerifiedCsr {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, device_id);
    let csr = params.serialize_request(&key).unwrap();
    CsrVerifier::default().verify_der(csr.der()).unwrap()
}

fn parse(der: &[u8]) -> x509_cert::Certificate {
    x509_cert::Certificate::from_der(der).unwrap()
}

#[test]
fn a_development_ca_issues_with_the_profile_validity_and_a_20_byte_serial() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let report = LocalAuthority::init_development(&ca_dir, NOW).unwrap();
    let authority = LocalAuthority::load(&ca_dir).unwrap();
    assert_eq!(authority.id(), report.id);

    let profile = IssuanceProfile::default();
    let signed = authority
        .issue_certificate(&verified_csr("dev-1"), &profile, NOW)
        .unwrap();

    assert_eq!(signed.issuer, report.id);
    assert_eq!(
        (signed.not_before, signed.not_after),
        profile.validity_at(NOW)
    );
    assert_eq!(signed.serial.len(), 40);
    let cert = parse(&signed.der);
    assert_eq!(
        hex::encode(cert.tbs_certificate.serial_number.as_bytes()),
        signed.serial
    );
    assert_eq!(cert.tbs_certificate.subject.to_string(), "CN=dev-1");
}

#[test]
fn the_leaf_carries_the_requested_key_and_names_its_issuer_exactly() {
    let dir = tempfile::tempdir().unwrap();
    LocalAuthority::init_development(dir.path(), NOW).unwrap();
    let authority = LocalAuthority::load(dir.path()).unwrap();
    let request = verified_csr("dev-2");

    let signed = authority
        .issue_certificate(&request, &IssuanceProfile::default(), NOW)
        .unwrap();

    let leaf = parse(&signed.der);
    assert_eq!(
        leaf.tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap(),
        request.public_key.spki_der()
    );
    assert_eq!(
        leaf.tbs_certificate.issuer.to_der().unwrap(),
        authority.certificate.subject_der
    );
}

#[test]
fn a_leaf_never_outlives_its_issuing_ca() {
    let dir = tempfile::tempdir().unwrap();
    LocalAuthority::init_development(dir.path(), NOW).unwrap();
    let authority = LocalAuthority::load(dir.path()).unwrap();
    let late = authority.certificate.not_after - 10 * DAY;

    let signed = authority
        .issue_certificate(&verified_csr("dev-3"), &IssuanceProfile::default(), late)
        .unwrap();

    assert_eq!(signed.not_after, authority.certificate.not_after);
}

#[test]
fn keys_are_written_owner_only_and_a_second_init_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let report = LocalAuthority::init_development(dir.path(), NOW).unwrap();
    for key in [
        dir.path().join(ROOT_KEY),
        issuing_dir(dir.path(), &report.id).join(KEY),
    ] {
        let mode = fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }
    let again = LocalAuthority::init_development(dir.path(), NOW).unwrap_err();
    assert!(matches!(again, AuthorityError::AlreadyInitialised { .. }));
    assert!(again.to_string().contains("move that directory away"));
}

#[test]
fn an_empty_ca_key_is_refused_with_its_path_not_used() {
    // Given a CA whose issuing key file was left empty
    let dir = tempfile::tempdir().unwrap();
    let report = LocalAuthority::init_development(dir.path(), NOW).unwrap();
    let key = issuing_dir(dir.path(), &report.id).join(KEY);
    fs::write(&key, "").unwrap();

    // When it is loaded, then it is refused, naming the file and saying it is empty
    let error = LocalAuthority::load(dir.path()).unwrap_err();
    assert!(matches!(error, AuthorityError::Corrupt { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&key.display().to_string()), "{message}");
    assert!(message.contains("empty"), "{message}");
    assert!(message.contains("restore it from backup"), "{message}");
}

#[test]
fn crl_numbers_increase_even_within_one_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(CRL_NUMBER);
    assert_eq!(next_crl_number(&path, NOW).unwrap(), NOW);
    assert_eq!(next_crl_number(&path, NOW).unwrap(), NOW + 1);
    assert_eq!(next_crl_number(&path, NOW + 100).unwrap(), NOW + 100);
}

#[test]
fn serials_are_hex_with_optional_separators_and_never_empty() {
    assert_eq!(serial_bytes("0a:ff").unwrap(), vec![0x0a, 0xff]);
    assert_eq!(serial_bytes("abc").unwrap(), vec![0x0a, 0xbc]);
    assert!(serial_bytes("").is_err());
    assert!(serial_bytes("xyz").is_err());
}

#[test]
fn loading_an_unknown_or_malformed_id_is_refused_without_touching_other_paths() {
    let dir = tempfile::tempdir().unwrap();
    LocalAuthority::init_development(dir.path(), NOW).unwrap();
    for id in ["0123456789abcdef", "../../etc/passwd", ""] {
        let error = LocalAuthority::load_id(dir.path(), id).unwrap_err();
        assert!(matches!(error, AuthorityError::UnknownCa { .. }), "{id}");
    }
}

#[test]
fn an_empty_directory_says_how_to_initialise() {
    let dir = tempfile::tempdir().unwrap();
    let error = LocalAuthority::load(dir.path()).unwrap_err();
    assert!(error.to_string().contains("provisioner ca init"));
}

#[test]
fn debug_output_never_shows_a_key() {
    let dir = tempfile::tempdir().unwrap();
    LocalAuthority::init_development(dir.path(), NOW).unwrap();
    let authority = LocalAuthority::load(dir.path()).unwrap();
    let server = authority.server_certificate(&[], NOW).unwrap();
    assert!(!format!("{authority:?}").contains("PRIVATE"));
    assert!(!format!("{server:?}").contains("PRIVATE"));
}
