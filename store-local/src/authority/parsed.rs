//! Reading certificates: the parts of an X.509 certificate the CA needs, the checks that
//! it may act as an issuing CA, and PEM or DER input.

use base64::Engine;
use der::oid::{AssociatedOid, ObjectIdentifier};
use der::{Decode, Encode};
use provisioner_core::UnixTime;
use rcgen::KeyUsagePurpose;
use x509_cert::ext::pkix::{
    BasicConstraints as X509BasicConstraints, KeyUsage, SubjectKeyIdentifier,
};

use super::AuthorityError;

/// The parts of a certificate the CA needs.
#[derive(Debug, Clone)]
pub(super) struct ParsedCertificate {
    pub(super) der: Vec<u8>,
    pub(super) tbs_der: Vec<u8>,
    pub(super) signature_algorithm: ObjectIdentifier,
    pub(super) signature: Vec<u8>,
    pub(super) subject: x509_cert::name::Name,
    pub(super) subject_text: String,
    pub(super) subject_der: Vec<u8>,
    pub(super) issuer_der: Vec<u8>,
    pub(super) spki_der: Vec<u8>,
    pub(super) serial_hex: String,
    pub(super) not_before: UnixTime,
    pub(super) not_after: UnixTime,
    pub(super) basic_constraints: Option<X509BasicConstraints>,
    /// `None` when the certificate has no keyUsage extension.
    pub(super) key_usage: Option<KeyUsage>,
    pub(super) key_usages: Vec<KeyUsagePurpose>,
    pub(super) subject_key_id: Option<Vec<u8>>,
}

impl ParsedCertificate {
    pub(super) fn is_self_issued(&self) -> bool {
        self.subject_der == self.issuer_der
    }

    pub(super) fn is_ca(&self) -> bool {
        self.basic_constraints.as_ref().is_some_and(|bc| bc.ca)
    }
}

pub(super) fn parse_certificate(der: &[u8]) -> Result<ParsedCertificate, String> {
    let certificate = x509_cert::Certificate::from_der(der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let tbs = &certificate.tbs_certificate;
    let encode = |what: &str, r: der::Result<Vec<u8>>| r.map_err(|e| format!("{what}: {e}"));
    let mut basic_constraints = None;
    let mut key_usage = None;
    let mut subject_key_id = None;
    for extension in tbs.extensions.iter().flatten() {
        let value = extension.extn_value.as_bytes();
        let bad = |e: der::Error| format!("extension {} does not parse: {e}", extension.extn_id);
        if extension.extn_id == X509BasicConstraints::OID {
            basic_constraints = Some(X509BasicConstraints::from_der(value).map_err(bad)?);
        } else if extension.extn_id == KeyUsage::OID {
            key_usage = Some(KeyUsage::from_der(value).map_err(bad)?);
        } else if extension.extn_id == SubjectKeyIdentifier::OID {
            let ski = SubjectKeyIdentifier::from_der(value).map_err(bad)?;
            subject_key_id = Some(ski.0.as_bytes().to_vec());
        }
    }
    let key_usages = key_usage
        .as_ref()
        .map(|ku| {
            [
                (ku.digital_signature(), KeyUsagePurpose::DigitalSignature),
                (ku.key_cert_sign(), KeyUsagePurpose::KeyCertSign),
                (ku.crl_sign(), KeyUsagePurpose::CrlSign),
            ]
            .into_iter()
            .filter_map(|(present, purpose)| present.then_some(purpose))
            .collect()
        })
        .unwrap_or_default();
    let serial = tbs.serial_number.as_bytes();
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    Ok(ParsedCertificate {
        der: der.to_vec(),
        tbs_der: encode("tbsCertificate", tbs.to_der())?,
        signature_algorithm: certificate.signature_algorithm.oid,
        signature: certificate.signature.raw_bytes().to_vec(),
        subject_text: tbs.subject.to_string(),
        subject_der: encode("subject", tbs.subject.to_der())?,
        issuer_der: encode("issuer", tbs.issuer.to_der())?,
        spki_der: encode("subjectPublicKeyInfo", tbs.subject_public_key_info.to_der())?,
        serial_hex: hex::encode(&serial[start..]),
        not_before: unix(tbs.validity.not_before.to_unix_duration()),
        not_after: unix(tbs.validity.not_after.to_unix_duration()),
        subject: tbs.subject.clone(),
        basic_constraints,
        key_usage,
        key_usages,
        subject_key_id,
    })
}

pub(super) fn unix(duration: std::time::Duration) -> UnixTime {
    UnixTime::try_from(duration.as_secs()).unwrap_or(UnixTime::MAX)
}

/// The certificate may act as this service's issuing CA.
pub(super) fn check_issuing_ca(certificate: &ParsedCertificate) -> Result<(), AuthorityError> {
    if !certificate.is_ca() {
        return Err(AuthorityError::NotACa(format!(
            "the certificate for {} is not a CA certificate (no basicConstraints CA:TRUE)",
            certificate.subject_text
        )));
    }
    if let Some(ku) = &certificate.key_usage {
        if !ku.key_cert_sign() || !ku.crl_sign() {
            return Err(AuthorityError::NotACa(format!(
                "the certificate for {} may not sign certificates and CRLs (keyUsage lacks keyCertSign or cRLSign)",
                certificate.subject_text
            )));
        }
    }
    if certificate.subject_key_id.is_none() {
        return Err(AuthorityError::InvalidCertificate(
            "the certificate has no subjectKeyIdentifier: the parent CA must add subjectKeyIdentifier=hash".into(),
        ));
    }
    Ok(())
}

/// Certificates from PEM text (every `CERTIFICATE` block, in order) or one DER certificate.
pub(super) fn certificates_from_bytes(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if bytes.first() == Some(&0x30) {
        return Ok(vec![bytes.to_vec()]);
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| "the file is neither PEM text nor a DER certificate".to_owned())?;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut ders = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let body_and_rest = &rest[start + BEGIN.len()..];
        let stop = body_and_rest
            .find(END)
            .ok_or_else(|| format!("certificate {} has no {END} line", ders.len() + 1))?;
        let body: String = body_and_rest[..stop]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| format!("certificate {} is not valid base64: {e}", ders.len() + 1))?;
        ders.push(der);
        rest = &body_and_rest[stop + END.len()..];
    }
    if ders.is_empty() {
        return Err(format!("no certificate found: expected PEM ({BEGIN})"));
    }
    Ok(ders)
}

pub(super) fn chain_to_pem(chain: &[ParsedCertificate]) -> String {
    chain
        .iter()
        .map(|c| provisioner_app::pem::encode("CERTIFICATE", &c.der))
        .collect()
}
