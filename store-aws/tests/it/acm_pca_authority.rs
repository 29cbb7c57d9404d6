//! The ACM Private CA authority against moto's server: the real SDK and wire protocol.
//!
//! Run by `scripts/test-aws.sh`, which starts moto on 127.0.0.1 and sets
//! `AWS_ENDPOINT_URL`, dummy credentials and `AWS_REGION`. Each test creates its own root
//! CA, so the tests run in parallel. Device CSRs are made by `openssl req` (P-256), and
//! certificates checked by `openssl verify`.
//!
//! What moto cannot show, and these tests therefore do not claim (TOOLCHAIN.md): moto
//! ignores `Validity`, `SigningAlgorithm`, `IdempotencyToken`, `ApiPassthrough` and the
//! EndEntityClientAuthCertificate_APIPassthrough template (its CA key is RSA whatever the
//! request says), and `GetCertificate` never reports "in progress". What is sent
//! (template and passthrough subject) is read by an SDK interceptor instead. Same token twice gives two
//! certificates on moto, so idempotency is not tested here; the token derivation, the
//! validity and the backoff are unit tests in `aws::acm_pca`.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use aws_sdk_acmpca::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_acmpca::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_acmpca::error::BoxError;
use aws_sdk_acmpca::Client;
use der::{Decode, Encode};
use provisioner_core::{
    CsrPolicy, CsrVerifier, DeviceKey, IssuanceProfile, PortError, RevocationReason,
};
use provisioner_store_aws::acm_pca::{
    idempotency_token, AcmPcaAuthority, AcmPcaConfig, END_ENTITY_CLIENT_AUTH_TEMPLATE,
};
use serde_json::{json, Value};

const NOW: i64 = 1_800_000_000;

use provisioner_testkit::moto;

async fn client() -> Client {
    Client::new(&crate::support::sdk().await)
}

async fn authority() -> AcmPcaAuthority {
    let client = client().await;
    let arn = moto::pca_root(&client).await;
    AcmPcaAuthority::new(client, AcmPcaConfig::new(arn))
}

fn openssl_csr(dir: &Path, device_id: &str) -> Vec<u8> {
    moto::device_csr(dir, device_id)
}

fn csr_key(csr_der: &[u8]) -> (String, DeviceKey) {
    let verified = CsrVerifier::new(CsrPolicy::default())
        .verify_der(csr_der)
        .unwrap();
    (verified.fingerprint, verified.public_key)
}

fn certified_key(der: &[u8]) -> DeviceKey {
    let certificate = x509_cert::Certificate::from_der(der).unwrap();
    let spki = certificate
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .unwrap();
    DeviceKey::from_spki_der(&spki).unwrap()
}

#[tokio::test]
async fn issues_a_certificate_for_the_csrs_key_that_openssl_verifies() {
    let authority = authority().await;
    let dir = tempfile::tempdir().unwrap();
    let csr = openssl_csr(dir.path(), "device-0001");
    let (fingerprint, key) = csr_key(&csr);

    let signed = authority
        .issue_csr(
            &csr,
            "device-0001",
            &IssuanceProfile::default(),
            NOW,
            &idempotency_token(&format!("{fingerprint}:0")),
        )
        .await
        .unwrap();

    // The PEM and DER are the same certificate, and it certifies the CSR's key.
    let certificate = x509_cert::Certificate::from_der(&signed.der).unwrap();
    assert!(signed.pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(certified_key(&signed.der), key);
    let tbs = &certificate.tbs_certificate;
    assert!(
        tbs.subject.to_string().contains("CN=device-0001"),
        "{}",
        tbs.subject
    );
    let serial = tbs.serial_number.as_bytes();
    let start = serial.iter().position(|b| *b != 0).unwrap();
    assert_eq!(signed.serial, hex::encode(&serial[start..]));
    assert_eq!(signed.issuer, authority.config().certificate_authority_id());
    assert!(signed.not_before < signed.not_after);
    assert_eq!(
        signed.not_after,
        i64::try_from(tbs.validity.not_after.to_unix_duration().as_secs()).unwrap()
    );

    // openssl accepts it under the CA's chain; the chain is cached.
    let chain = authority.chain_pem().await.unwrap();
    assert!(chain.contains("-----BEGIN CERTIFICATE-----"));
    assert_eq!(authority.chain_pem().await.unwrap(), chain);
    let chain_file = dir.path().join("chain.pem");
    let leaf_file = dir.path().join("leaf.pem");
    std::fs::write(&chain_file, &chain).unwrap();
    std::fs::write(&leaf_file, &signed.pem).unwrap();
    let output = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&chain_file)
        .arg(&leaf_file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_csr_for_another_device_or_a_bad_token_is_refused_before_pca() {
    let authority = authority().await;
    let dir = tempfile::tempdir().unwrap();
    let csr = openssl_csr(dir.path(), "device-0002");
    let profile = IssuanceProfile::default();

    let other = authority
        .issue_csr(&csr, "device-9999", &profile, NOW, "token")
        .await;
    assert!(matches!(other, Err(PortError::Internal(m)) if m.contains("device-9999")));

    let long = "x".repeat(37);
    let bad_token = authority
        .issue_csr(&csr, "device-0002", &profile, NOW, &long)
        .await;
    assert!(matches!(bad_token, Err(PortError::Internal(m)) if m.contains("token")));

    let not_a_csr = authority
        .issue_csr(b"not a csr", "device-0002", &profile, NOW, "token")
        .await;
    assert!(matches!(not_a_csr, Err(PortError::Internal(_))));
}

#[tokio::test]
async fn revokes_by_serial() {
    let authority = authority().await;
    let dir = tempfile::tempdir().unwrap();
    let csr = openssl_csr(dir.path(), "device-0003");
    let (fingerprint, _) = csr_key(&csr);
    let profile = IssuanceProfile::default();

    // issue until moto can revoke the serial (7 in 8 certificates)
    let mut signed = None;
    for count in 0..16 {
        let s = authority
            .issue_csr(
                &csr,
                "device-0003",
                &profile,
                NOW,
                &idempotency_token(&format!("{fingerprint}:{count}")),
            )
            .await
            .unwrap();
        if moto::revocable_on_moto(&s.serial) {
            signed = Some(s);
            break;
        }
    }
    let signed = signed.expect("no even-length serial in 16 certificates");

    authority
        .revoke(&signed.serial, RevocationReason::KeyCompromise)
        .await
        .unwrap();

    // PCA has no certificateHold; a serial must be hex.
    assert!(matches!(
        authority
            .revoke(&signed.serial, RevocationReason::CertificateHold)
            .await,
        Err(PortError::Internal(_))
    ));
    assert!(matches!(
        authority
            .revoke("not hex", RevocationReason::KeyCompromise)
            .await,
        Err(PortError::Internal(_))
    ));
}

/// Keeps the JSON body of every `IssueCertificate` request as it leaves the SDK.
#[derive(Debug, Clone, Default)]
struct SentIssueCertificate(Arc<Mutex<Vec<Value>>>);

impl SentIssueCertificate {
    fn bodies(&self) -> Vec<Value> {
        self.0.lock().unwrap().clone()
    }
}

impl Intercept for SentIssueCertificate {
    fn name(&self) -> &'static str {
        "SentIssueCertificate"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        if target.ends_with(".IssueCertificate") {
            let body = request
                .body()
                .bytes()
                .ok_or("IssueCertificate body is a stream")?;
            self.0.lock().unwrap().push(serde_json::from_slice(body)?);
        }
        Ok(())
    }
}

/// A P-256 CSR by `openssl req` asking for `subject` and the `-addext` extensions.
fn openssl_csr_asking(dir: &Path, name: &str, subject: &str, extensions: &[&str]) -> Vec<u8> {
    let out = dir.join(format!("{name}.csr.der"));
    let mut command = Command::new("openssl");
    command
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-keyout"])
        .arg(dir.join(format!("{name}.key.pem")))
        .args(["-subj", subject, "-outform", "DER", "-out"])
        .arg(&out);
    for extension in extensions {
        command.args(["-addext", extension]);
    }
    let output = command.output().expect("openssl must be installed");
    assert!(
        output.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read(out).unwrap()
}

#[tokio::test]
async fn pca_is_asked_for_the_passthrough_template_with_the_device_id_as_the_whole_subject() {
    let sent = SentIssueCertificate::default();
    let sdk = crate::support::sdk().await;
    let client = Client::from_conf(
        aws_sdk_acmpca::config::Builder::from(&sdk)
            .interceptor(sent.clone())
            .build(),
    );
    let arn = moto::pca_root(&client).await;
    // (making the root issued its own certificate through the same client)
    let before = sent.bodies().len();
    let authority = AcmPcaAuthority::new(client, AcmPcaConfig::new(arn));
    let dir = tempfile::tempdir().unwrap();
    let profile = IssuanceProfile::default();

    // Given a CSR asking for O, OU and a CA certificate,
    let csr = openssl_csr_asking(
        dir.path(),
        "asks",
        "/O=Acme Devices/OU=Sensors/CN=device-0005",
        &["basicConstraints=critical,CA:TRUE"],
    );
    let (fingerprint, key) = csr_key(&csr);
    // when it is issued,
    let signed = authority
        .issue_csr(
            &csr,
            "device-0005",
            &profile,
            NOW,
            &idempotency_token(&fingerprint),
        )
        .await
        .unwrap();
    assert_eq!(certified_key(&signed.der), key);

    // then PCA was asked for the passthrough template with the subject CN alone.
    let bodies = sent.bodies();
    assert_eq!(bodies.len(), before + 1, "{bodies:?}");
    let issued = &bodies[before];
    assert_eq!(
        issued["TemplateArn"],
        "arn:aws:acm-pca:::template/EndEntityClientAuthCertificate_APIPassthrough/V1"
    );
    assert_eq!(issued["TemplateArn"], END_ENTITY_CLIENT_AUTH_TEMPLATE);
    assert_eq!(
        issued["ApiPassthrough"],
        json!({ "Subject": { "CommonName": "device-0005" } })
    );

    // A CSR requesting a subjectAltName never reaches PCA.
    let san = openssl_csr_asking(
        dir.path(),
        "san",
        "/CN=device-0006",
        &["subjectAltName=DNS:device-0006.example"],
    );
    let refused = authority
        .issue_csr(&san, "device-0006", &profile, NOW, "token-san")
        .await;
    assert!(
        matches!(&refused, Err(PortError::Internal(m)) if m.contains("subjectAltName")),
        "{refused:?}"
    );
    assert_eq!(sent.bodies().len(), before + 1);
}
