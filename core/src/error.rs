//! Refusals and their stable codes.
//!
//! Every refusal carries a stable snake_case `code` (what programs match on), the HTTP
//! status it maps to, and a message (its `Display`) that tells the caller what to fix.
//! The mapping to a transport happens elsewhere, once; this module only names things.

use thiserror::Error;

/// Anything with a stable machine code and the HTTP status it maps to.
pub trait ErrorCode {
    /// The stable snake_case code, e.g. `bad_signature`.
    fn code(&self) -> &'static str;
    /// The HTTP status this refusal maps to.
    fn status(&self) -> u16;
}

/// Why a `device-csr` header value, or the CSR inside it, was refused.
///
/// These are the stateless checks: they need nothing but the request itself.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CsrError {
    /// The header is absent or holds only whitespace.
    #[error("the device-csr header is missing or empty: send the CSR as base64 of its DER or of its PEM text")]
    MissingHeader,
    /// The header value is longer than the limit.
    #[error("the device-csr header is {length} bytes; at most {limit} are accepted")]
    HeaderTooLarge {
        /// Length of the value received.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// The header value is not base64 of a DER or PEM CSR.
    #[error("{0}")]
    MalformedHeader(String),
    /// The bytes are not a strict DER PKCS#10 v1 certification request.
    #[error("{0}")]
    MalformedCsr(String),
    /// The CSR's public key is of a type or curve the profile does not accept.
    #[error("{0}")]
    UnsupportedKey(String),
    /// The CSR is signed with an algorithm the profile does not accept.
    #[error("{0}")]
    UnsupportedAlgorithm(String),
    /// The subject does not hold exactly one common name.
    #[error("{0}")]
    InvalidSubject(String),
    /// The common name is not a valid device id.
    #[error("{0}")]
    InvalidDeviceId(String),
    /// The CSR requests a subjectAltName, which some CAs would copy into the certificate.
    #[error("the CSR requests a subjectAltName extension; the certificate names the device by its CN alone, so leave the extension out of the CSR")]
    SubjectAltNameRequested,
    /// The subject holds more than the CN, where the CA would copy it (IoT Core mode).
    #[error("{0}")]
    SubjectNotCnOnly(String),
    /// The self-signature does not verify: the sender has not proven it holds the key.
    #[error("the CSR's signature does not verify with its public key: the request was altered or signed with another key")]
    BadSignature,
}

impl ErrorCode for CsrError {
    fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader => "missing_header",
            Self::HeaderTooLarge { .. } => "header_too_large",
            Self::MalformedHeader(_) => "malformed_header",
            Self::MalformedCsr(_) => "malformed_csr",
            Self::UnsupportedKey(_) => "unsupported_key",
            Self::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            Self::InvalidSubject(_) => "invalid_subject",
            Self::InvalidDeviceId(_) => "invalid_device_id",
            Self::SubjectAltNameRequested => "subject_alt_name_requested",
            Self::SubjectNotCnOnly(_) => "subject_not_cn_only",
            Self::BadSignature => "bad_signature",
        }
    }

    fn status(&self) -> u16 {
        match self {
            Self::BadSignature => 403,
            _ => 400,
        }
    }
}

/// Why a registered public key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is in no accepted encoding, or the point is not on the curve.
    #[error("{0}")]
    InvalidPublicKey(String),
    /// The key is well formed but of a type or curve that is not accepted.
    #[error("{0}")]
    UnsupportedKey(String),
}

impl ErrorCode for KeyError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidPublicKey(_) => "invalid_public_key",
            Self::UnsupportedKey(_) => "unsupported_key",
        }
    }

    fn status(&self) -> u16 {
        400
    }
}

/// The authorizer's decision when it refuses: every reason a request gets no certificate.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The request itself was refused by the stateless checks.
    #[error(transparent)]
    Csr(#[from] CsrError),
    /// The registered key given to compare against could not be read.
    #[error(transparent)]
    RegisteredKey(#[from] KeyError),
    /// No device with this id is registered.
    #[error("device {0:?} is not registered: import the manufacturer's manifest first")]
    UnknownDevice(String),
    /// The CSR's key is not the key registered for this device.
    #[error("the CSR's public key is not the key registered for device {0:?}")]
    KeyMismatch(String),
    /// The device is registered but disabled by an administrator.
    #[error("device {0:?} is disabled")]
    DeviceDisabled(String),
    /// The device was issued too many new certificates lately.
    #[error("device {device_id:?} was issued too many certificates this hour; retry after {retry_after_secs} s")]
    RateLimited {
        /// The device.
        device_id: String,
        /// Seconds until a request can succeed (the `Retry-After` header).
        retry_after_secs: u64,
    },
}

impl ErrorCode for Refusal {
    fn code(&self) -> &'static str {
        match self {
            Self::Csr(e) => e.code(),
            Self::RegisteredKey(e) => e.code(),
            Self::UnknownDevice(_) => "unknown_device",
            Self::KeyMismatch(_) => "key_mismatch",
            Self::DeviceDisabled(_) => "device_disabled",
            Self::RateLimited { .. } => "rate_limited",
        }
    }

    fn status(&self) -> u16 {
        match self {
            Self::Csr(e) => e.status(),
            Self::RegisteredKey(e) => e.status(),
            Self::UnknownDevice(_) => 404,
            Self::KeyMismatch(_) | Self::DeviceDisabled(_) => 403,
            Self::RateLimited { .. } => 429,
        }
    }
}

/// The JSON shape every part shares for a refusal: `{error, status, message}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// The stable code.
    pub error: String,
    /// The HTTP status it maps to.
    pub status: u16,
    /// What to fix.
    pub message: String,
}

impl ErrorBody {
    /// The body for any refusal.
    pub fn from_error<E: ErrorCode + std::fmt::Display>(error: &E) -> Self {
        Self {
            error: error.code().to_owned(),
            status: error.status(),
            message: error.to_string(),
        }
    }
}
