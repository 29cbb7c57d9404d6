//! The pure parts of the CA commands (unit-tested): PEM blocks, what a CA certificate says
//! ([`CertificateSummary`]), the key of a CA's CSR, and the subject of a new CA
//! ([`CaSubject`]).

use aws_sdk_acmpca::types::Asn1Subject;
use der::{Decode, Encode};
use provisioner_core::UnixTime;
use sha2::{Digest, Sha256};

use super::CaError;

/// The DER of every `label` block of `pem`, in order.
///
/// # Errors
/// [`CaError::InvalidInput`] for an unterminated block or a body that is not base64.
pub fn pem_blocks(pem: &str, label: &str) -> Result<Vec<Vec<u8>>, CaError> {
    use base64::Engine as _;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut blocks = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(&begin) {
        let body_start = start + begin.len();
        let stop = rest[body_start..]
            .find(&end)
            .ok_or_else(|| CaError::InvalidInput(format!("unterminated PEM {label} block")))?
            + body_start;
        let body: String = rest[body_start..stop]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        blocks.push(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|e| CaError::InvalidInput(format!("PEM {label} is not base64: {e}")))?,
        );
        rest = &rest[stop + end.len()..];
    }
    Ok(blocks)
}

/// PEM text of `der` under `label`, 64 characters a line ([`provisioner_app::pem::encode`]).
pub use provisioner_app::pem::encode as pem_of;

/// What the CA commands show of a CA certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    /// Subject, RFC 4514.
    pub subject: String,
    /// Issuer, RFC 4514.
    pub issuer: String,
    /// Serial, lower-case hex without leading zeros or separators.
    pub serial: String,
    /// Start of validity.
    pub not_before: UnixTime,
    /// End of validity.
    pub not_after: UnixTime,
    /// Hex SHA-256 of the DER: IoT Core's certificate id.
    pub sha256: String,
    /// DER of the subjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// DER of the subject name.
    pub subject_der: Vec<u8>,
    /// DER of the issuer name.
    pub issuer_der: Vec<u8>,
}

/// Reads the summary of the certificate `der`.
///
/// # Errors
/// [`CaError::InvalidInput`] when it is not an X.509 certificate.
pub fn summarize_certificate(der: &[u8]) -> Result<CertificateSummary, CaError> {
    let invalid = |what: &str, e: der::Error| CaError::InvalidInput(format!("{what}: {e}"));
    let certificate = x509_cert::Certificate::from_der(der)
        .map_err(|e| invalid("not an X.509 certificate", e))?;
    let tbs = &certificate.tbs_certificate;
    let serial = tbs.serial_number.as_bytes();
    let start = serial
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(serial.len().saturating_sub(1));
    let time = |t: x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
    };
    Ok(CertificateSummary {
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        serial: hex::encode(&serial[start..]),
        not_before: time(tbs.validity.not_before),
        not_after: time(tbs.validity.not_after),
        sha256: hex::encode(Sha256::digest(der)),
        spki_der: tbs
            .subject_public_key_info
            .to_der()
            .map_err(|e| invalid("subjectPublicKeyInfo", e))?,
        subject_der: tbs.subject.to_der().map_err(|e| invalid("subject", e))?,
        issuer_der: tbs.issuer.to_der().map_err(|e| invalid("issuer", e))?,
    })
}

/// The subjectPublicKeyInfo DER of the CSR `der`.
///
/// # Errors
/// [`CaError::Corrupt`] when it is not a PKCS#10 request.
pub(super) fn csr_spki(der: &[u8]) -> Result<Vec<u8>, CaError> {
    let request = x509_cert::request::CertReq::from_der(der)
        .map_err(|e| CaError::Corrupt(format!("the CA's CSR does not parse: {e}")))?;
    request
        .info
        .public_key
        .to_der()
        .map_err(|e| CaError::Corrupt(format!("the CA's CSR key: {e}")))
}

/// The subject of a new issuing CA, as `CN=...,O=...` text gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaSubject {
    /// CN (required).
    pub common_name: String,
    /// O.
    pub organization: Option<String>,
    /// OU.
    pub organizational_unit: Option<String>,
    /// C (two letters).
    pub country: Option<String>,
    /// ST.
    pub state: Option<String>,
    /// L.
    pub locality: Option<String>,
}

impl CaSubject {
    /// Reads `CN=Provisioner Issuing CA 2027,O=Example,C=DE`: comma-separated `KEY=value`
    /// pairs with keys CN, O, OU, C, ST, L (any case); `\,` is a comma inside a value.
    ///
    /// # Errors
    /// [`CaError::InvalidInput`] naming the part at fault: no CN, an unknown or repeated
    /// key, an empty value, a country that is not two letters, a value over 64 characters.
    pub fn parse(text: &str) -> Result<Self, CaError> {
        let bad = |message: String| {
            CaError::InvalidInput(format!(
                "subject {text:?}: {message} (expected e.g. \"CN=Provisioner Issuing CA,O=Example,C=DE\"; keys CN, O, OU, C, ST, L)"
            ))
        };
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.extend(chars.next()),
                ',' => parts.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
        parts.push(current);
        let mut subject = CaSubject::default();
        let mut seen = Vec::new();
        for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not KEY=value")))?;
            let key = key.trim().to_ascii_uppercase();
            let value = value.trim().to_owned();
            if value.is_empty() {
                return Err(bad(format!("{key} is empty")));
            }
            if value.chars().count() > 64 {
                return Err(bad(format!("{key} is over 64 characters")));
            }
            if seen.contains(&key) {
                return Err(bad(format!("{key} is given twice")));
            }
            match key.as_str() {
                "CN" => subject.common_name = value,
                "O" => subject.organization = Some(value),
                "OU" => subject.organizational_unit = Some(value),
                "C" if value.len() == 2 && value.chars().all(|c| c.is_ascii_alphabetic()) => {
                    subject.country = Some(value.to_ascii_uppercase())
                }
                "C" => return Err(bad(format!("C must be two letters, not {value:?}"))),
                "ST" => subject.state = Some(value),
                "L" => subject.locality = Some(value),
                other => return Err(bad(format!("unknown key {other}"))),
            }
            seen.push(key);
        }
        if subject.common_name.is_empty() {
            return Err(bad("CN is missing".into()));
        }
        Ok(subject)
    }

    /// The subject as ACM Private CA takes it.
    pub(super) fn to_pca(&self) -> Asn1Subject {
        Asn1Subject::builder()
            .common_name(&self.common_name)
            .set_organization(self.organization.clone())
            .set_organizational_unit(self.organizational_unit.clone())
            .set_country(self.country.clone())
            .set_state(self.state.clone())
            .set_locality(self.locality.clone())
            .build()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn subjects_read_the_usual_keys_and_escaped_commas() {
        let subject =
            CaSubject::parse("CN=Issuing CA 2027, O=Example\\, Inc., c=de,OU=IoT").unwrap();
        assert_eq!(subject.common_name, "Issuing CA 2027");
        assert_eq!(subject.organization.as_deref(), Some("Example, Inc."));
        assert_eq!(subject.country.as_deref(), Some("DE"));
        assert_eq!(subject.organizational_unit.as_deref(), Some("IoT"));
        let pca = subject.to_pca();
        assert_eq!(pca.common_name(), Some("Issuing CA 2027"));
        assert_eq!(pca.state(), None);
    }

    #[test]
    fn bad_subjects_say_what_is_wrong() {
        for (text, expected) in [
            ("O=Example", "CN is missing"),
            ("CN=a,CN=b", "given twice"),
            ("CN=a,X=b", "unknown key X"),
            ("CN=a,C=Germany", "two letters"),
            ("CN=", "CN is empty"),
            ("CN a", "not KEY=value"),
        ] {
            let error = CaSubject::parse(text).unwrap_err();
            assert!(error.to_string().contains(expected), "{text}: {error}");
            assert_eq!(error.code(), "invalid_input");
        }
    }

    #[test]
    fn pem_blocks_are_read_in_order_and_written_back() {
        let text = format!(
            "junk\n{}{}",
            pem_of("CERTIFICATE", b"one"),
            pem_of("CERTIFICATE", &[7u8; 100])
        );
        let blocks = pem_blocks(&text, "CERTIFICATE").unwrap();
        assert_eq!(blocks, vec![b"one".to_vec(), vec![7u8; 100]]);
        assert!(pem_blocks("-----BEGIN CERTIFICATE-----\nAAAA", "CERTIFICATE").is_err());
        assert!(pem_blocks("nothing", "CERTIFICATE").unwrap().is_empty());
    }
}
