//! What a CSR asks for besides its key and its CN, and which of it is refused.
//!
//! The CA, not the device, chooses a certificate's contents: CN = device id and the
//! profile's extensions. The local CA builds exactly that whatever the CSR asks. ACM
//! Private CA's templates copy a requested subjectAltName into the certificate and
//! nothing can drop it, so a CSR that requests one is refused on every backend
//! ([`refuse_subject_alt_name`]). IoT Core's `CreateCertificateFromCsr` copies the
//! whole subject and has no way to override it, so that mode also refuses a subject
//! holding anything besides the one CN ([`refuse_subject_beyond_cn`]). Other requested
//! extensions (basicConstraints, keyUsage, ...) are left alone: every CA ignores them.

use const_oid::ObjectIdentifier;
use x509_cert::ext::Extension;
use x509_cert::request::CertReqInfo;

use crate::error::CsrError;

/// PKCS#9 extensionRequest (RFC 2985), the attribute a CSR asks for extensions in.
const EXTENSION_REQUEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14");
/// Microsoft's older spelling of the same attribute (msExtReq), which some CAs also read.
const MS_EXTENSION_REQUEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.14");
/// id-ce-subjectAltName (RFC 5280).
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
/// id-at-commonName.
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// The extensions the CSR requests, in every extensionRequest attribute.
///
/// # Errors
/// [`CsrError::MalformedCsr`] when such an attribute does not hold a DER `Extensions`.
pub(crate) fn requested_extensions(info: &CertReqInfo) -> Result<Vec<Extension>, CsrError> {
    let mut requested = Vec::new();
    for attribute in info
        .attributes
        .iter()
        .filter(|a| a.oid == EXTENSION_REQUEST || a.oid == MS_EXTENSION_REQUEST)
    {
        for value in attribute.values.iter() {
            let extensions = value.decode_as::<Vec<Extension>>().map_err(|e| {
                CsrError::MalformedCsr(format!(
                    "the CSR's extensionRequest attribute is not a list of extensions: {e}"
                ))
            })?;
            requested.extend(extensions);
        }
    }
    Ok(requested)
}

/// Refuses a CSR that requests a subjectAltName (see the module docs for why).
///
/// # Errors
/// [`CsrError::SubjectAltNameRequested`]; [`CsrError::MalformedCsr`] as
/// [`requested_extensions`].
pub(crate) fn refuse_subject_alt_name(info: &CertReqInfo) -> Result<(), CsrError> {
    if requested_extensions(info)?
        .iter()
        .any(|extension| extension.extn_id == SUBJECT_ALT_NAME)
    {
        return Err(CsrError::SubjectAltNameRequested);
    }
    Ok(())
}

/// Refuses a subject holding anything besides the one CN, naming what it holds.
///
/// # Errors
/// [`CsrError::SubjectNotCnOnly`].
pub(crate) fn refuse_subject_beyond_cn(info: &CertReqInfo) -> Result<(), CsrError> {
    let others: Vec<&'static str> = info
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid != COMMON_NAME)
        .map(|atv| attribute_name(atv.oid))
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    Err(CsrError::SubjectNotCnOnly(format!(
        "the subject holds {} besides the CN; in this issuance mode (IoT Core's CA) the \
         certificate's subject is copied from the CSR: send a subject of the CN alone, \
         the device id",
        others.join(", ")
    )))
}

/// The short name of the subject attributes devices most often add, else "another attribute".
fn attribute_name(oid: ObjectIdentifier) -> &'static str {
    match oid.to_string().as_str() {
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.5" => "serialNumber",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => "another attribute",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use der::Decode;
    use x509_cert::request::CertReq;

    const WITH_SAN: &[u8] =
        include_bytes!("../tests/vectors/csr/openssl_p256_extra_subject_and_extensions.der");
    const CA_TRUE: &[u8] = include_bytes!("../tests/vectors/csr/openssl_p256_ca_true_o_ou.der");
    const PLAIN: &[u8] = include_bytes!("../tests/vectors/csr/openssl_p256.der");

    fn info(der: &[u8]) -> CertReqInfo {
        CertReq::from_der(der).unwrap().info
    }

    #[test]
    fn a_requested_subject_alt_name_is_refused() {
        assert_eq!(
            refuse_subject_alt_name(&info(WITH_SAN)),
            Err(CsrError::SubjectAltNameRequested)
        );
    }

    #[test]
    fn other_requested_extensions_are_left_to_the_ca() {
        assert_eq!(requested_extensions(&info(CA_TRUE)).unwrap().len(), 1);
        assert_eq!(refuse_subject_alt_name(&info(CA_TRUE)), Ok(()));
        assert_eq!(refuse_subject_alt_name(&info(PLAIN)), Ok(()));
    }

    #[test]
    fn a_subject_beyond_the_cn_is_refused_naming_what_it_holds() {
        let Err(CsrError::SubjectNotCnOnly(message)) = refuse_subject_beyond_cn(&info(CA_TRUE))
        else {
            panic!("expected subject_not_cn_only")
        };
        assert!(message.contains("O, OU"), "{message}");
        assert_eq!(refuse_subject_beyond_cn(&info(PLAIN)), Ok(()));
    }
}
