//! Decoding the `device-csr` header value into CSR DER.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

use crate::error::CsrError;

/// The largest header value accepted, in bytes.
pub const MAX_HEADER_LEN: usize = 8 * 1024;

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Decodes base64 in either alphabet, padding optional.
///
/// Returns `None` when the text is not base64.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let url_safe = text.contains(['-', '_']);
    let engine = if url_safe { &URL_SAFE } else { &STANDARD };
    engine.decode(text).ok()
}

/// Turns a `device-csr` header value into the DER bytes of the CSR it carries.
///
/// Accepts base64 of the DER, or base64 of the PEM text, in the standard or URL-safe
/// alphabet, padding optional, surrounding whitespace ignored.
///
/// # Errors
/// [`CsrError::MissingHeader`] for an empty value, [`CsrError::HeaderTooLarge`] over
/// [`MAX_HEADER_LEN`], [`CsrError::MalformedHeader`] for raw PEM, non-base64 text or
/// bytes that are neither DER nor PEM, [`CsrError::MalformedCsr`] for PEM whose label
/// is not a certificate request or whose body is broken.
pub fn decode_header(value: &str) -> Result<Vec<u8>, CsrError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(CsrError::HeaderTooLarge {
            length: value.len(),
            limit: MAX_HEADER_LEN,
        });
    }
    let value = value.trim();
    if value.is_empty() {
        return Err(CsrError::MissingHeader);
    }
    if value.starts_with("-----BEGIN") {
        return Err(CsrError::MalformedHeader(
            "the device-csr header holds raw PEM; headers cannot carry its newlines: send base64 of the PEM text or of the DER".into(),
        ));
    }
    let bytes = decode_base64(value).ok_or_else(|| {
        CsrError::MalformedHeader(
            "the device-csr header is not base64: send base64 (standard or URL-safe) of the CSR's DER or of its PEM text".into(),
        )
    })?;
    if bytes.first() == Some(&0x30) {
        return Ok(bytes);
    }
    if bytes.starts_with(b"-----BEGIN") {
        return pem_to_der(&bytes);
    }
    Err(CsrError::MalformedHeader(
        "the device-csr header decodes to bytes that are neither a DER CSR nor PEM text: base64-encode the CSR's DER or its PEM text".into(),
    ))
}

/// Labels OpenSSL and other tools write around a PKCS#10 request.
const CSR_LABELS: [&str; 2] = ["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"];

fn pem_to_der(pem: &[u8]) -> Result<Vec<u8>, CsrError> {
    // Tolerate CRLF line endings and text after the END line; the body itself is strict.
    let text = std::str::from_utf8(pem)
        .map_err(|_| CsrError::MalformedHeader("the PEM text is not ASCII".into()))?;
    let normalised = text.replace("\r\n", "\n");
    let (label, der) = pem_rfc7468::decode_vec(normalised.trim_end().as_bytes())
        .or_else(|_| pem_rfc7468::decode_vec(first_pem_block(&normalised).as_bytes()))
        .map_err(|e| CsrError::MalformedCsr(format!("the PEM text does not decode: {e}")))?;
    if !CSR_LABELS.contains(&label) {
        let hint = if label == "CERTIFICATE" {
            "this is a certificate, not a certificate request: send the CSR the device built"
                .to_owned()
        } else {
            format!("the PEM label is {label:?}; a CSR is labelled \"CERTIFICATE REQUEST\"")
        };
        return Err(CsrError::MalformedCsr(hint));
    }
    Ok(der)
}

/// The text up to and including the first `-----END ...-----` line.
fn first_pem_block(text: &str) -> &str {
    match text.find("-----END") {
        Some(start) => match text[start + 8..].find("-----") {
            Some(end) => &text[..start + 8 + end + 5],
            None => text,
        },
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_value_is_a_missing_header() {
        assert_eq!(decode_header(" \t\n"), Err(CsrError::MissingHeader));
    }

    #[test]
    fn a_value_over_the_limit_is_too_large_even_if_mostly_whitespace() {
        let value = format!("{}MIIB", " ".repeat(MAX_HEADER_LEN));
        assert!(matches!(
            decode_header(&value),
            Err(CsrError::HeaderTooLarge { .. })
        ));
    }

    #[test]
    fn unpadded_and_url_safe_base64_decode_to_the_same_bytes() {
        let bytes = [0x30u8, 0xfb, 0xff, 0x01];
        let standard = base64::engine::general_purpose::STANDARD.encode(bytes);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        assert_ne!(standard, url);
        assert_eq!(decode_header(&standard), Ok(bytes.to_vec()));
        assert_eq!(decode_header(&url), Ok(bytes.to_vec()));
    }

    #[test]
    fn pem_with_another_label_names_the_label() {
        let pem = "-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n";
        let header = base64::engine::general_purpose::STANDARD.encode(pem);
        let err = decode_header(&header).unwrap_err();
        assert!(
            matches!(&err, CsrError::MalformedCsr(m) if m.contains("PUBLIC KEY")),
            "{err:?}"
        );
    }
}
