//! The pure domain of secretless device provisioning.
//!
//! A device proves it holds its key by sending a self-signed PKCS#10 request in the
//! `device-csr` header; this crate decides, without any I/O, whether that request is
//! well formed, signed by the key it carries, and names a valid device id
//! ([`CsrVerifier::verify_header`]), and whether that key is the one registered for
//! the device ([`CsrVerifier::authorize`]). Registered keys arrive in many encodings and
//! are normalised by [`DeviceKey::parse`]. Every refusal has a stable code and the HTTP
//! status it maps to ([`ErrorCode`]).
//!
//! It builds for `wasm32-unknown-unknown`; natively it verifies signatures with `ring`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod crypto;
pub mod csr;
pub mod device_id;
pub mod error;
pub mod header;
pub mod issuance;
pub mod key;
pub mod manifest;
pub mod ports;
mod requested;

pub use crypto::SignatureBackend;
pub use csr::{csr_der_from_file, CsrPolicy, CsrVerifier, SignatureAlgorithm, VerifiedCsr};
pub use device_id::{DeviceIdRule, MAX_DEVICE_ID_LEN};
pub use error::{CsrError, ErrorBody, ErrorCode, KeyError, Refusal};
pub use header::{decode_header, MAX_HEADER_LEN};
pub use issuance::{
    CertificateStatus, HeldCertificate, IssuanceProfile, IssuanceRateLimit, ReissueDecision,
    UnixTime,
};
pub use key::{Curve, DeviceKey};
pub use manifest::{
    ManifestEntries, ManifestEntryError, ManifestError, ManifestFormat, ManifestReader,
    ManifestRecord, ManifestSigner, ManifestSigners,
};
pub use ports::{
    AuditEvent, AuditLog, CertificateAuthority, CertificateRecord, ClaimOutcome, Clock, Device,
    DeviceRegistry, IssuanceClaim, PortError, RevocationReason, SignedCertificate, SystemClock,
    ThingRegistry,
};
