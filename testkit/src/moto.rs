//! What the AWS adapters' tests share against moto's server (`scripts/test-aws.sh`):
//! the endpoint check, a root CA in moto's ACM Private CA, and device CSRs made by
//! openssl (the `aws` feature).

#![allow(dead_code)] // each test file uses part of it

use std::path::Path;
use std::process::Command;

use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{
    Asn1Subject, CertificateAuthorityConfiguration, CertificateAuthorityType, KeyAlgorithm,
    SigningAlgorithm, Validity, ValidityPeriodType,
};

/// ACM Private CA's template for a self-signed root.
pub const ROOT_TEMPLATE: &str = "arn:aws:acm-pca:::template/RootCACertificate/V1";

/// `AWS_ENDPOINT_URL`, which must be a local stand-in: tests never create CAs in a real
/// account by accident.
pub fn endpoint() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL must point at moto: run scripts/test-aws.sh");
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "AWS_ENDPOINT_URL={endpoint} is not a local stand-in"
    );
    endpoint
}

/// A fresh ACTIVE root CA in ACM Private CA (EC P-256): created, its CSR self-issued with
/// [`ROOT_TEMPLATE`], the certificate imported. Its ARN.
pub async fn pca_root(client: &aws_sdk_acmpca::Client) -> String {
    let subject = Asn1Subject::builder()
        .common_name(format!("Test Root {:08x}", rand::random::<u32>()))
        .organization("provisioner tests")
        .build();
    let configuration = CertificateAuthorityConfiguration::builder()
        .key_algorithm(KeyAlgorithm::EcPrime256v1)
        .signing_algorithm(SigningAlgorithm::Sha256Withecdsa)
        .subject(subject)
        .build()
        .unwrap();
    let arn = client
        .create_certificate_authority()
        .certificate_authority_type(CertificateAuthorityType::Root)
        .certificate_authority_configuration(configuration)
        .send()
        .await
        .unwrap()
        .certificate_authority_arn()
        .unwrap()
        .to_owned();
    let csr = client
        .get_certificate_authority_csr()
        .certificate_authority_arn(&arn)
        .send()
        .await
        .unwrap()
        .csr()
        .unwrap()
        .to_owned();
    let issued = client
        .issue_certificate()
        .certificate_authority_arn(&arn)
        .csr(Blob::new(csr))
        .signing_algorithm(SigningAlgorithm::Sha256Withecdsa)
        .template_arn(ROOT_TEMPLATE)
        .validity(
            Validity::builder()
                .r#type(ValidityPeriodType::Years)
                .value(10)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let certificate = client
        .get_certificate()
        .certificate_authority_arn(&arn)
        .certificate_arn(issued.certificate_arn().unwrap())
        .send()
        .await
        .unwrap()
        .certificate()
        .unwrap()
        .to_owned();
    client
        .import_certificate_authority_certificate()
        .certificate_authority_arn(&arn)
        .certificate(Blob::new(certificate))
        .send()
        .await
        .unwrap();
    arn
}

/// A P-256 key (`DIR/<id>.key.pem`) and CSR for `device_id` made by `openssl req`; the
/// CSR's DER.
pub fn device_csr(dir: &Path, device_id: &str) -> Vec<u8> {
    let csr = dir.join(format!("{device_id}.csr.der"));
    let output = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-keyout"])
        .arg(dir.join(format!("{device_id}.key.pem")))
        .args([
            "-subj",
            &format!("/CN={device_id}"),
            "-outform",
            "DER",
            "-out",
        ])
        .arg(&csr)
        .output()
        .expect("openssl must be installed");
    assert!(
        output.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read(csr).unwrap()
}

/// Whether moto's ACM Private CA can revoke a certificate with serial `serial_hex`. moto
/// compares `RevokeCertificate`'s serial with Python's `format(serial, "X")` cut into
/// pairs from the left, so a serial of an odd number of hex digits never matches (see
/// `pca_serial`); about one certificate in eight has one. A test that checks a revocation
/// at moto's PCA issues again until this holds.
pub fn revocable_on_moto(serial_hex: &str) -> bool {
    let digits: String = serial_hex.chars().filter(|c| *c != ':').collect();
    digits.trim_start_matches('0').len() % 2 == 0
}

/// The serials moto's ACM Private CA `ca_arn` holds as revoked, each with its reason, as
/// `RevokeCertificate` received them. Read from moto's state dump (`/moto-api/data.json`):
/// moto's PCA writes no CRL and has no call that lists revocations.
pub async fn pca_revocations(ca_arn: &str) -> std::collections::HashMap<String, String> {
    let dump = state_dump().await;
    let authorities = dump["acmpca"]["CertificateAuthority"].as_array().unwrap();
    let authority = authorities
        .iter()
        .find(|ca| ca["arn"] == ca_arn)
        .unwrap_or_else(|| panic!("moto holds no CA {ca_arn}"));
    authority["revoked_certificates"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(serial, revocation)| {
            let reason = revocation["revocation_reason"].as_str().unwrap().to_owned();
            (serial.clone(), reason)
        })
        .collect()
}

/// moto's whole state (`/moto-api/data.json`). moto serialises it while other tests of the
/// same binary keep changing it, and then sometimes answers an error page instead of
/// JSON: the dump is asked for again, a bounded number of times.
pub async fn state_dump() -> serde_json::Value {
    let url = format!("{}/moto-api/data.json", endpoint());
    let mut last = String::new();
    for _ in 0..20 {
        let response = reqwest::get(&url).await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        match serde_json::from_str(&body) {
            Ok(dump) if status.is_success() => return dump,
            _ => last = format!("{status}: {}", body.chars().take(200).collect::<String>()),
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("moto's state dump never answered JSON; last answer {last}");
}
