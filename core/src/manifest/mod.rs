//! Manufacturer manifests: the device ids and public keys a manufacturer ships.
//!
//! Three formats are read, all as bytes already in memory and without any I/O:
//!
//! - CSV, `device_id,public_key` ([RFC 4180]: fields may be double-quoted, so a PEM key
//!   can span lines; `""` is a quote inside a quoted field). A first row whose first
//!   field is `device_id`, `deviceId` or `id` (any case) is a header and is skipped.
//! - JSON lines, one `{"deviceId": "...", "publicKey": "..."}` object per line
//!   (`publicKey` may also be a JWK object).
//! - Microchip Trust&GO / TrustFLEX manifests: a JSON array of signed entries
//!   `{payload, protected, header: {uniqueId}, signature}`. Each entry's ES256 JWS
//!   signature must verify with the manifest signer certificate its protected header
//!   names by `x5t#S256`, among those the caller supplies ([`ManifestSigners`]);
//!   `header.uniqueId` must equal the signed payload's `uniqueId`, which is the device
//!   id; the device key is the JWK with `kid` "0" in the payload's `publicKeySet`. When
//!   that JWK carries an `x5c` chain, its first certificate must hold the same key and,
//!   when a second follows, be signed by it. Certificates are read only as far as their
//!   key and signature: real device certificates carry attributes strict decoders
//!   refuse.
//!
//! [`ManifestReader::read`] yields one item per row, line or entry, lazily: a
//! [`ManifestRecord`] or a [`ManifestEntryError`] naming its line and a stable code. Keys
//! may be in any encoding [`DeviceKey::parse`] accepts but must be P-256; device ids
//! must pass [`DeviceIdRule::default`]. A device listed twice with the same key yields
//! one record; with a different key the later listing is a `duplicate_device` error.
//!
//! [RFC 4180]: https://www.rfc-editor.org/rfc/rfc4180

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use const_oid::ObjectIdentifier;
use der::asn1::{AnyRef, BitStringRef};
use der::{Decode, Reader, SliceReader, Tag, Tagged};
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use thiserror::Error;

use crate::crypto::SignatureBackend;
use crate::device_id::DeviceIdRule;
use crate::error::{ErrorCode, KeyError};
use crate::header::decode_base64;
use crate::key::{Curve, DeviceKey};

mod csv;
mod jsonl;
mod microchip;
mod signers;

use csv::CsvRows;
use jsonl::JsonLines;
use microchip::MicrochipEntries;
pub use signers::{ManifestSigner, ManifestSigners};

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
/// base64url as JWS writes it (no padding), tolerating padding.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a manifest, or one of its entries, was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// A CSV row or JSON line is not a device id and a public key.
    #[error("{0}")]
    InvalidRow(String),
    /// The device id breaks the device id rule.
    #[error("{0}")]
    InvalidDeviceId(String),
    /// The public key is in no accepted encoding, or its point is not on the curve.
    #[error("{0}")]
    InvalidPublicKey(String),
    /// The public key is well formed but not P-256.
    #[error("{0}")]
    UnsupportedKey(String),
    /// The device was listed earlier in the same file with another public key.
    #[error("device {device_id:?} is listed again with another public key; its first listing is at line {first_line}")]
    DuplicateDevice {
        /// The device id listed twice.
        device_id: String,
        /// Line (entry, for Microchip manifests) of its first listing.
        first_line: usize,
    },
    /// A Microchip manifest entry is not a well-formed signed entry.
    #[error("{0}")]
    InvalidManifestEntry(String),
    /// A Microchip entry's signature does not verify with its signer's key.
    #[error("{0}")]
    BadManifestSignature(String),
    /// A Microchip entry names a signer certificate that was not supplied.
    #[error("{0}")]
    UnknownManifestSigner(String),
    /// A Microchip entry's `header.uniqueId` differs from the signed payload's `uniqueId`.
    #[error("the entry's header.uniqueId {header:?} differs from the signed payload's uniqueId {payload:?}")]
    UniqueIdMismatch {
        /// The unsigned `header.uniqueId`.
        header: String,
        /// The signed payload's `uniqueId`.
        payload: String,
    },
    /// The device certificate (`x5c`) does not hold the device key, or is not signed by
    /// the next certificate of the chain.
    #[error("{0}")]
    InvalidDeviceCertificate(String),
    /// A manifest signer certificate supplied by the caller cannot be used.
    #[error("{0}")]
    InvalidSignerCertificate(String),
    /// The whole file cannot be read in its format (or, for a Microchip manifest, no
    /// signer certificate was supplied).
    #[error("{0}")]
    MalformedManifest(String),
    /// The format name is not one of `csv`, `jsonl` or `microchip`.
    #[error("{0:?} is not a manifest format: use csv, jsonl or microchip")]
    UnsupportedFormat(String),
}

impl ErrorCode for ManifestError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidRow(_) => "invalid_row",
            Self::InvalidDeviceId(_) => "invalid_device_id",
            Self::InvalidPublicKey(_) => "invalid_public_key",
            Self::UnsupportedKey(_) => "unsupported_key",
            Self::DuplicateDevice { .. } => "duplicate_device",
            Self::InvalidManifestEntry(_) => "invalid_manifest_entry",
            Self::BadManifestSignature(_) => "bad_manifest_signature",
            Self::UnknownManifestSigner(_) => "unknown_manifest_signer",
            Self::UniqueIdMismatch { .. } => "unique_id_mismatch",
            Self::InvalidDeviceCertificate(_) => "invalid_device_certificate",
            Self::InvalidSignerCertificate(_) => "invalid_signer_certificate",
            Self::MalformedManifest(_) => "malformed_manifest",
            Self::UnsupportedFormat(_) => "unsupported_manifest_format",
        }
    }

    fn status(&self) -> u16 {
        400
    }
}

impl From<KeyError> for ManifestError {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::InvalidPublicKey(m) => Self::InvalidPublicKey(m),
            KeyError::UnsupportedKey(m) => Self::UnsupportedKey(m),
        }
    }
}

/// The layout of a manifest file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ManifestFormat {
    /// `device_id,public_key` rows, header optional.
    Csv,
    /// One `{"deviceId", "publicKey"}` JSON object per line.
    JsonLines,
    /// A Microchip Trust&GO / TrustFLEX manifest: a JSON array of signed entries.
    Microchip,
}

impl ManifestFormat {
    /// Guesses the format from the first byte that is not whitespace (or a UTF-8 byte
    /// order mark): `[` is a Microchip manifest, `{` JSON lines, anything else CSV.
    pub fn detect(bytes: &[u8]) -> Self {
        let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => Self::Microchip,
            Some(b'{') => Self::JsonLines,
            _ => Self::Csv,
        }
    }

    /// The name [`FromStr`] reads: `csv`, `jsonl` or `microchip`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::JsonLines => "jsonl",
            Self::Microchip => "microchip",
        }
    }
}

impl fmt::Display for ManifestFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ManifestFormat {
    type Err = ManifestError;

    /// Reads `csv`, `jsonl` (or `ndjson`, `json-lines`) and `microchip`, in any case.
    fn from_str(name: &str) -> Result<Self, ManifestError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(Self::Csv),
            "jsonl" | "ndjson" | "json-lines" => Ok(Self::JsonLines),
            "microchip" => Ok(Self::Microchip),
            _ => Err(ManifestError::UnsupportedFormat(name.to_owned())),
        }
    }
}

/// A device the manifest lists: its id and its key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestRecord {
    /// The device id, valid under [`DeviceIdRule::default`].
    pub device_id: String,
    /// The device's P-256 public key.
    pub public_key: DeviceKey,
    /// 1-based line the row starts on (CSV, JSON lines), or 1-based entry index
    /// (Microchip manifests).
    pub line: usize,
}

/// A row, line or entry that yields no record, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestEntryError {
    /// 1-based line the row starts on (CSV, JSON lines), or 1-based entry index
    /// (Microchip manifests).
    pub line: usize,
    /// The device id the entry names, when one could be read (it may be invalid, and
    /// for a Microchip entry that fails its checks it is the unverified
    /// `header.uniqueId`).
    pub device_id: Option<String>,
    /// The stable code of the [`ManifestError`].
    pub error: &'static str,
    /// What is wrong and what to fix.
    pub message: String,
}

impl ManifestEntryError {
    /// The refusal of the entry at `line`.
    pub fn new(line: usize, device_id: Option<&str>, error: &ManifestError) -> Self {
        Self {
            line,
            device_id: device_id.map(str::to_owned),
            error: error.code(),
            message: error.to_string(),
        }
    }
}

impl fmt::Display for ManifestEntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.device_id {
            Some(id) => write!(f, "line {} (device {id:?}): {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

impl std::error::Error for ManifestEntryError {}

impl ErrorCode for ManifestEntryError {
    fn code(&self) -> &'static str {
        self.error
    }

    fn status(&self) -> u16 {
        400
    }
}

/// Reads manifests into device records.
///
/// ```
/// use provisioner_core::ManifestReader;
///
/// let csv = b"device_id,public_key\nsensor-01,046B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C2964FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5\n";
/// let reader = ManifestReader::new();
/// let records: Vec<_> = reader.read(csv).unwrap().collect();
/// assert_eq!(records[0].as_ref().unwrap().device_id, "sensor-01");
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManifestReader {
    format: Option<ManifestFormat>,
    signers: ManifestSigners,
    backend: SignatureBackend,
}

impl ManifestReader {
    /// A reader that detects each file's format ([`ManifestFormat::detect`]) and knows
    /// no Microchip manifest signers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads every file as `format` instead of detecting it.
    pub fn with_format(mut self, format: ManifestFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// The certificates Microchip manifests may be signed with.
    pub fn with_signers(mut self, signers: ManifestSigners) -> Self {
        self.signers = signers;
        self
    }

    /// Checks signatures with a chosen backend (the default is the fastest for the target).
    pub fn with_backend(mut self, backend: SignatureBackend) -> Self {
        self.backend = backend;
        self
    }

    /// Starts reading `bytes`; the entries are parsed and checked as the iterator is
    /// advanced. CSV and JSON lines are read row by row in one pass; a Microchip
    /// manifest's JSON array is parsed here, its entries checked one by one later.
    ///
    /// # Errors
    /// Only for failures of the whole file, all [`ManifestError::MalformedManifest`]: a
    /// Microchip manifest that is not a JSON array, or with no signer certificate
    /// given. Every other problem is an item of the iterator.
    pub fn read<'a>(&'a self, bytes: &'a [u8]) -> Result<ManifestEntries<'a>, ManifestError> {
        let format = self.format.unwrap_or_else(|| ManifestFormat::detect(bytes));
        let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
        let source = match format {
            ManifestFormat::Csv => Source::Csv(CsvRows::new(bytes)),
            ManifestFormat::JsonLines => Source::JsonLines(JsonLines::new(bytes)),
            ManifestFormat::Microchip => {
                Source::Microchip(MicrochipEntries::new(bytes, &self.signers, self.backend)?)
            }
        };
        Ok(ManifestEntries {
            format,
            source,
            seen: HashMap::new(),
            duplicates: 0,
        })
    }
}

/// The entries of one manifest, in file order: a record or an error for each row,
/// line or entry (blank lines, a CSV header and repeated identical listings yield
/// nothing).
#[derive(Debug)]
pub struct ManifestEntries<'a> {
    format: ManifestFormat,
    source: Source<'a>,
    /// Truncated SHA-256 of each device id read so far → (of its key, its line): 40
    /// bytes a device however long its id, so a million-row file stays small (a 128-bit
    /// collision between two ids or two keys is not a practical concern).
    seen: HashMap<[u8; 16], ([u8; 16], usize)>,
    duplicates: usize,
}

impl ManifestEntries<'_> {
    /// The format being read.
    pub fn format(&self) -> ManifestFormat {
        self.format
    }

    /// How many listings so far repeated an earlier one (same device, same key) and
    /// were dropped.
    pub fn duplicates(&self) -> usize {
        self.duplicates
    }
}

impl Iterator for ManifestEntries<'_> {
    type Item = Result<ManifestRecord, ManifestEntryError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let record = match self.source.next()? {
                Ok(record) => record,
                Err(error) => return Some(Err(error)),
            };
            let key = truncated_sha256(record.public_key.sec1_uncompressed());
            let (first_key, first_line) = match self
                .seen
                .entry(truncated_sha256(record.device_id.as_bytes()))
            {
                Entry::Vacant(slot) => {
                    slot.insert((key, record.line));
                    return Some(Ok(record));
                }
                Entry::Occupied(first) => *first.get(),
            };
            if first_key == key {
                self.duplicates += 1;
                continue;
            }
            let error = ManifestError::DuplicateDevice {
                device_id: record.device_id.clone(),
                first_line,
            };
            return Some(Err(ManifestEntryError::new(
                record.line,
                Some(&record.device_id),
                &error,
            )));
        }
    }
}

fn truncated_sha256(bytes: &[u8]) -> [u8; 16] {
    let digest = Sha256::digest(bytes);
    let mut out = [0; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

#[derive(Debug)]
enum Source<'a> {
    Csv(CsvRows<'a>),
    JsonLines(JsonLines<'a>),
    Microchip(MicrochipEntries<'a>),
}

impl Source<'_> {
    fn next(&mut self) -> Option<Result<ManifestRecord, ManifestEntryError>> {
        match self {
            Self::Csv(rows) => rows.next(),
            Self::JsonLines(lines) => lines.next(),
            Self::Microchip(entries) => entries.next(),
        }
    }
}

/// The record for a device id and key given as text (CSV, JSON lines).
fn record(line: usize, device_id: &str, key: &str) -> Result<ManifestRecord, ManifestEntryError> {
    let device_id = device_id.trim();
    let refuse = |e: ManifestError| ManifestEntryError::new(line, Some(device_id), &e);
    check_device_id(device_id).map_err(refuse)?;
    let public_key = p256_key(key).map_err(refuse)?;
    Ok(ManifestRecord {
        device_id: device_id.to_owned(),
        public_key,
        line,
    })
}

fn check_device_id(device_id: &str) -> Result<(), ManifestError> {
    if device_id.is_empty() {
        return Err(ManifestError::InvalidDeviceId(
            "the device id is empty".into(),
        ));
    }
    DeviceIdRule::default()
        .check(device_id)
        .map_err(|e| ManifestError::InvalidDeviceId(e.to_string()))
}

fn p256_key(text: &str) -> Result<DeviceKey, ManifestError> {
    require_p256(DeviceKey::parse(text)?)
}

fn p256_key_of(spki: &SubjectPublicKeyInfoRef<'_>) -> Result<DeviceKey, ManifestError> {
    use der::Encode;
    let der = spki
        .to_der()
        .map_err(|e| ManifestError::InvalidPublicKey(format!("the key does not encode: {e}")))?;
    require_p256(DeviceKey::from_spki_der(&der)?)
}

fn require_p256(key: DeviceKey) -> Result<DeviceKey, ManifestError> {
    match key.curve() {
        Curve::P256 => Ok(key),
        other => Err(ManifestError::UnsupportedKey(format!(
            "the key is on {}; manifest keys must be P-256",
            other.name()
        ))),
    }
}

#[cfg(test)]
mod tests;
