//! The pieces every certificate this CA makes is built from: a fresh key, a random
//! serial, a validity time, and the rcgen issuer that names this CA byte for byte as its
//! certificate does. Shared by creating CAs (`create.rs`) and signing (`issue.rs`).

use der::{Tag, Tagged};
use provisioner_core::UnixTime;
use rand::RngCore;
use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, Issuer, KeyIdMethod, KeyPair,
    PKCS_ECDSA_P256_SHA256,
};
use time::OffsetDateTime;

use super::error::signing;
use super::parsed::ParsedCertificate;
use super::{AuthorityError, SERIAL_LEN};

/// A fresh P-256 key (every CA key and the broker's).
pub(super) fn generate_key() -> Result<KeyPair, AuthorityError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(signing)
}

pub(super) fn random_serial() -> [u8; SERIAL_LEN] {
    let mut serial = [0u8; SERIAL_LEN];
    rand::thread_rng().fill_bytes(&mut serial);
    serial[0] = (serial[0] & 0x3f) | 0x40;
    serial
}

pub(super) fn datetime(t: UnixTime) -> Result<OffsetDateTime, AuthorityError> {
    OffsetDateTime::from_unix_timestamp(t)
        .map_err(|_| AuthorityError::InvalidInput(format!("time {t} is out of range")))
}

/// An rcgen issuer that names itself exactly as `certificate` does, with its
/// subjectKeyIdentifier as the authorityKeyIdentifier of what it signs.
pub(super) fn issuer_for(
    certificate: &ParsedCertificate,
    key: KeyPair,
) -> Result<Issuer<'static, KeyPair>, AuthorityError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen_name(&certificate.subject)?;
    if let Some(ski) = &certificate.subject_key_id {
        params.key_identifier_method = KeyIdMethod::PreSpecified(ski.clone());
    }
    params.key_usages = certificate.key_usages.clone();
    Ok(Issuer::new(params, key))
}

/// Converts a parsed name into rcgen's, keeping each value's string type.
fn rcgen_name(name: &x509_cert::name::Name) -> Result<DistinguishedName, AuthorityError> {
    let unsupported = |why: &str| {
        AuthorityError::InvalidCertificate(format!(
            "its subject ({name}) {why}; this CA can only sign under names with one value per attribute type"
        ))
    };
    let mut result = DistinguishedName::new();
    for rdn in name.0.iter() {
        let mut values = rdn.0.iter();
        let (Some(atv), None) = (values.next(), values.next()) else {
            return Err(unsupported("has a multi-valued RDN"));
        };
        let arcs: Vec<u64> = atv.oid.arcs().map(u64::from).collect();
        let ty = DnType::from_oid(&arcs);
        if result.get(&ty).is_some() {
            return Err(unsupported("repeats an attribute type"));
        }
        let bytes = atv.value.value();
        let text = || std::str::from_utf8(bytes).map_err(|_| unsupported("has invalid text"));
        let value = match atv.value.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?.to_owned()),
            Tag::PrintableString => DnValue::PrintableString(
                PrintableString::try_from(text()?).map_err(|_| unsupported("has invalid text"))?,
            ),
            Tag::Ia5String => DnValue::Ia5String(
                Ia5String::try_from(text()?).map_err(|_| unsupported("has invalid text"))?,
            ),
            Tag::TeletexString => DnValue::TeletexString(
                TeletexString::try_from(text()?).map_err(|_| unsupported("has invalid text"))?,
            ),
            Tag::BmpString => DnValue::BmpString(
                BmpString::from_utf16be(bytes.to_vec())
                    .map_err(|_| unsupported("has invalid text"))?,
            ),
            _ => return Err(unsupported("has a value that is not a string")),
        };
        result.push(ty, value);
    }
    Ok(result)
}
