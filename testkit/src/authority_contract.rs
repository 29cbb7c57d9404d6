//! The `CertificateAuthority` contract, written once and run against every signer: the
//! in-memory fake (`CountingAuthority`), the on-disk CA (`LocalAuthority`,
//! `CurrentAuthority`) and ACM Private CA on moto (docs/ARCHITECTURE.md, "Tests").
//!
//! A backend test implements [`AuthorityBackend`] and calls each `pub async fn` from a
//! `#[tokio::test(flavor = "multi_thread")]`. The cases:
//!
//! - [`certifies_the_csr`]: the certificate names the device (subject CN = device id, and
//!   nothing else for a CN-only request), certifies the request's key, carries the serial
//!   and validity the port reports, and `openssl verify` accepts it under `chain_pem()`.
//!   Only for signers of X.509: the fake numbers its certificates instead
//!   ([`parses_as_x509`] lets its test say so).
//! - [`concurrent_issuance_gives_distinct_serials`]: [`CONCURRENT`] issuances at once all
//!   succeed, with distinct serials and certificates.
//! - [`retire_is_idempotent`]: retiring superseded certificates twice, none, or another
//!   CA's succeeds, leaves the chain as it was and the CA still signing; what the CA
//!   itself keeps of it is the backend's check ([`AuthorityBackend::check_retired`]).
//!
//! Not in the contract, because it does not hold for every signer: deduplication by
//! idempotency key (the fake and ACM Private CA do it; the local CA ignores the key, and
//! moto ignores `IdempotencyToken`), and the requested validity (moto ignores `Validity`).

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use der::{Decode, Encode};
use provisioner_core::{
    CertificateAuthority, CertificateRecord, CertificateStatus, CsrPolicy, CsrVerifier, DeviceKey,
    IssuanceProfile, RevocationReason, SignedCertificate, UnixTime, VerifiedCsr,
};
use sha2::{Digest, Sha256};

/// Issuances started at once by [`concurrent_issuance_gives_distinct_serials`].
pub const CONCURRENT: usize = 20;

/// A signer the contract runs on.
pub trait AuthorityBackend: Send + Sync {
    /// The adapter under test.
    type Authority: CertificateAuthority + 'static;

    /// The authority, shared by concurrent requests as the flow shares it.
    fn authority(&self) -> Arc<Self::Authority>;

    /// Checks what the authority itself keeps of [`CertificateAuthority::retire`]:
    /// `retired` (issued by it, REVOKED superseded in the registry) were retired, twice;
    /// `foreign` (another CA's) was retired with them and must be left to its own CA.
    fn check_retired(
        &self,
        retired: &[CertificateRecord],
        foreign: &CertificateRecord,
    ) -> impl Future<Output = ()>;
}

/// Seconds since the Unix epoch: certificates are checked by `openssl verify` at the
/// real time, so they are issued at it.
pub fn now() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A device id of its own per run: moto's CAs and things outlive one test.
pub fn device_id(name: &str) -> String {
    format!("{name}-{:08x}", rand::random::<u32>())
}

/// A CN-only P-256 CSR for `device_id` (rcgen), verified as the flow verifies it.
pub fn verified_csr(device_id: &str) -> VerifiedCsr {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, device_id);
    let csr = params.serialize_request(&key).unwrap();
    CsrVerifier::new(CsrPolicy::default())
        .verify_der(csr.der())
        .unwrap()
}

/// Whether `der` is an X.509 certificate.
pub fn parses_as_x509(der: &[u8]) -> bool {
    x509_cert::Certificate::from_der(der).is_ok()
}

/// A serial as digits alone: lower case, no separators, no leading zeros.
pub fn normal_serial(serial: &str) -> String {
    let digits: String = serial
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    digits.trim_start_matches('0').to_owned()
}

/// The registry's record of `signed`, issued to `request` at `now`, ACTIVE.
pub fn record_of(
    signed: &SignedCertificate,
    request: &VerifiedCsr,
    now: UnixTime,
) -> CertificateRecord {
    CertificateRecord {
        certificate_id: hex::encode(Sha256::digest(&signed.der)),
        device_id: request.device_id.clone(),
        serial: signed.serial.clone(),
        issuer: signed.issuer.clone(),
        public_key: request.public_key.clone(),
        issued_at: now,
        not_before: signed.not_before,
        not_after: signed.not_after,
        status: CertificateStatus::Active,
        revoked: None,
        certificate_pem: signed.pem.clone(),
    }
}

/// `record` as the registry holds it once a newer certificate superseded it at `now`.
pub fn superseded(mut record: CertificateRecord, now: UnixTime) -> CertificateRecord {
    record.status = CertificateStatus::Revoked;
    record.revoked = Some((now, RevocationReason::Superseded));
    record
}

/// `openssl verify -CAfile chain leaf`: whether it accepts, and what it said.
pub fn openssl_verify(dir: &Path, chain_pem: &str, leaf_pem: &str) -> (bool, String) {
    let chain = dir.join("chain.pem");
    let leaf = dir.join("leaf.pem");
    std::fs::write(&chain, chain_pem).unwrap();
    std::fs::write(&leaf, leaf_pem).unwrap();
    let output = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&chain)
        .arg(&leaf)
        .output()
        .expect("the openssl command line must be installed for these tests");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

/// The DER inside a one-certificate PEM.
fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).unwrap()
}

fn unix(time: x509_cert::time::Time) -> UnixTime {
    i64::try_from(time.to_unix_duration().as_secs()).unwrap()
}

/// A certificate for a verified CN-only request: subject exactly CN = the device id, the
/// request's key, the serial and validity `issue` reported, PEM and DER the same
/// certificate, accepted by `openssl verify` under `chain_pem()` (every certificate of
/// which parses).
pub async fn certifies_the_csr<B: AuthorityBackend>(backend: &B) {
    // given a device's verified request
    let authority = backend.authority();
    let device_id = device_id("authority-cn");
    let request = verified_csr(&device_id);
    let now = now();

    // when the CA issues for it
    let signed = authority
        .issue(&request, "contract-key-1", &IssuanceProfile::default(), now)
        .await
        .unwrap();

    // then the certificate names the device and certifies the request's key
    let certificate = x509_cert::Certificate::from_der(&signed.der).unwrap();
    let tbs = &certificate.tbs_certificate;
    assert_eq!(tbs.subject.to_string(), format!("CN={device_id}"));
    let spki = tbs.subject_public_key_info.to_der().unwrap();
    assert_eq!(DeviceKey::from_spki_der(&spki).unwrap(), request.public_key);
    // with the serial and validity the port reported
    assert_eq!(
        normal_serial(&signed.serial),
        normal_serial(&hex::encode(tbs.serial_number.as_bytes()))
    );
    assert!(!signed.issuer.is_empty());
    assert_eq!(signed.not_before, unix(tbs.validity.not_before));
    assert_eq!(signed.not_after, unix(tbs.validity.not_after));
    // valid when handed out (moto starts the validity when it signs, after `now`)
    let handed_out = self::now();
    assert!(signed.not_before <= handed_out && handed_out < signed.not_after);
    assert_eq!(pem_der(&signed.pem), signed.der);

    // and a verifier we did not write accepts it under the chain the CA hands out
    let chain = authority.chain_pem().await.unwrap();
    let blocks = chain.matches("-----BEGIN CERTIFICATE-----").count();
    assert!(blocks >= 1, "{chain}");
    let dir = tempfile::tempdir().unwrap();
    let (accepted, said) = openssl_verify(dir.path(), &chain, &signed.pem);
    assert!(accepted, "openssl verify: {said}");
    assert_eq!(authority.chain_pem().await.unwrap(), chain);
}

/// [`CONCURRENT`] issuances at once, each for its own device and idempotency key, all
/// succeed with distinct serials and distinct certificates from one issuer.
pub async fn concurrent_issuance_gives_distinct_serials<B: AuthorityBackend>(backend: &B) {
    // given CONCURRENT verified requests
    let authority = backend.authority();
    let now = now();
    let requests: Vec<VerifiedCsr> = (0..CONCURRENT)
        .map(|n| verified_csr(&device_id(&format!("authority-race-{n}"))))
        .collect();

    // when they are issued at once
    let barrier = Arc::new(tokio::sync::Barrier::new(CONCURRENT));
    let tasks: Vec<_> = requests
        .into_iter()
        .enumerate()
        .map(|(n, request)| {
            let authority = authority.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let key = format!("contract-race-{n}");
                authority
                    .issue(&request, &key, &IssuanceProfile::default(), now)
                    .await
            })
        })
        .collect();
    let mut signed = Vec::new();
    for task in tasks {
        signed.push(task.await.unwrap().unwrap());
    }

    // then every one has its own serial and certificate, from the same issuer
    let serials: BTreeSet<String> = signed.iter().map(|s| normal_serial(&s.serial)).collect();
    assert_eq!(serials.len(), CONCURRENT, "{serials:?}");
    assert!(serials
        .iter()
        .all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit())));
    let certificates: BTreeSet<&[u8]> = signed.iter().map(|s| s.der.as_slice()).collect();
    assert_eq!(certificates.len(), CONCURRENT);
    let issuers: BTreeSet<&str> = signed.iter().map(|s| s.issuer.as_str()).collect();
    assert_eq!(issuers.len(), 1, "{issuers:?}");
    assert!(signed.iter().all(|s| s.not_before < s.not_after));
}

/// Retiring superseded certificates is idempotent: twice, with nothing, or with another
/// CA's certificate, it succeeds; the chain stays and the CA still signs.
pub async fn retire_is_idempotent<B: AuthorityBackend>(backend: &B) {
    // given a device's first certificate, superseded by its second
    let authority = backend.authority();
    let now = now();
    let request = verified_csr(&device_id("authority-retire"));
    let profile = IssuanceProfile::default();
    let first = authority
        .issue(&request, "contract-retire-1", &profile, now)
        .await
        .unwrap();
    let second = authority
        .issue(&request, "contract-retire-2", &profile, now)
        .await
        .unwrap();
    assert_ne!(normal_serial(&first.serial), normal_serial(&second.serial));
    let chain = authority.chain_pem().await.unwrap();
    let old = superseded(record_of(&first, &request, now), now);
    let mut foreign = superseded(record_of(&first, &request, now), now);
    foreign.issuer = format!("another-ca-{:08x}", rand::random::<u32>());
    foreign.serial = "7e57ab1e".into();
    foreign.certificate_id = "f0".repeat(32);

    // when it is retired twice (a retry), then with nothing, then another CA's
    authority.retire(std::slice::from_ref(&old)).await.unwrap();
    authority.retire(std::slice::from_ref(&old)).await.unwrap();
    authority.retire(&[]).await.unwrap();
    authority
        .retire(&[old.clone(), foreign.clone()])
        .await
        .unwrap();

    // then the chain is the same and the CA still signs
    assert_eq!(authority.chain_pem().await.unwrap(), chain);
    let third = authority
        .issue(&request, "contract-retire-3", &profile, now)
        .await
        .unwrap();
    assert_ne!(normal_serial(&third.serial), normal_serial(&first.serial));
    // and what the CA keeps of it is right
    backend.check_retired(&[old], &foreign).await;
}
