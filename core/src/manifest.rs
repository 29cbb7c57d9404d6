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

/// A certificate whose key signs Microchip manifest entries.
#[derive(Clone, PartialEq, Eq)]
pub struct ManifestSigner {
    /// SHA-256 of the certificate DER: what an entry's `x5t#S256` names.
    thumbprint: [u8; 32],
    key: DeviceKey,
}

impl fmt::Debug for ManifestSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManifestSigner(x5t#S256={})", self.thumbprint())
    }
}

impl ManifestSigner {
    /// Reads a signer certificate from its DER.
    ///
    /// Only the public key and the DER's SHA-256 are used; the rest of the certificate
    /// (names, validity, extensions) is not interpreted.
    ///
    /// # Errors
    /// [`ManifestError::InvalidSignerCertificate`] when the bytes are not an X.509
    /// certificate or its key is not EC P-256.
    pub fn from_der(der: &[u8]) -> Result<Self, ManifestError> {
        let invalid = |m: String| ManifestError::InvalidSignerCertificate(m);
        let parts = CertificateParts::parse(der)
            .map_err(|e| invalid(format!("the signer certificate does not parse: {e}")))?;
        let key = p256_key_of(&parts.spki)
            .map_err(|e| invalid(format!("the signer certificate's key: {e}")))?;
        Ok(Self {
            thumbprint: Sha256::digest(der).into(),
            key,
        })
    }

    /// The certificate's `x5t#S256`: base64url (no padding) of the SHA-256 of its DER.
    pub fn thumbprint(&self) -> String {
        BASE64URL.encode(self.thumbprint)
    }

    /// The signer's public key.
    pub fn public_key(&self) -> &DeviceKey {
        &self.key
    }
}

/// The manifest signer certificates a Microchip manifest may be signed with.
#[derive(Debug, Clone, Default)]
pub struct ManifestSigners {
    signers: Vec<ManifestSigner>,
}

impl ManifestSigners {
    /// No signers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The signers in a certificate file: see [`ManifestSigners::add_certificates`].
    ///
    /// # Errors
    /// As [`ManifestSigners::add_certificates`].
    pub fn from_certificates(file: &[u8]) -> Result<Self, ManifestError> {
        let mut signers = Self::new();
        signers.add_certificates(file)?;
        Ok(signers)
    }

    /// Adds the certificates of a file: one DER certificate, or PEM text holding one or
    /// more `CERTIFICATE` blocks. Returns how many were added.
    ///
    /// # Errors
    /// [`ManifestError::InvalidSignerCertificate`] when the file is neither, holds a PEM
    /// block of another kind, or any certificate is unusable (nothing is added then).
    pub fn add_certificates(&mut self, file: &[u8]) -> Result<usize, ManifestError> {
        let invalid = |m: String| ManifestError::InvalidSignerCertificate(m);
        let ders = if file.first() == Some(&0x30) {
            vec![file.to_vec()]
        } else {
            let text = std::str::from_utf8(file).map_err(|_| {
                invalid("the signer certificate file is neither DER nor PEM text".into())
            })?;
            pem_certificates(text).map_err(invalid)?
        };
        let added = ders
            .iter()
            .map(|der| ManifestSigner::from_der(der))
            .collect::<Result<Vec<_>, _>>()?;
        let count = added.len();
        self.signers.extend(added);
        Ok(count)
    }

    /// Adds one signer.
    pub fn push(&mut self, signer: ManifestSigner) {
        self.signers.push(signer);
    }

    /// How many signers there are.
    pub fn len(&self) -> usize {
        self.signers.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.signers.is_empty()
    }

    /// The signers, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = &ManifestSigner> {
        self.signers.iter()
    }

    fn find(&self, thumbprint: &[u8]) -> Option<&ManifestSigner> {
        self.signers.iter().find(|s| s.thumbprint == thumbprint)
    }
}

/// The DER of every PEM `CERTIFICATE` block in `text`, or why there are none.
fn pem_certificates(text: &str) -> Result<Vec<Vec<u8>>, String> {
    const BEGIN: &str = "-----BEGIN ";
    let text = text.replace("\r\n", "\n");
    let mut ders = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find(BEGIN) {
        let block = &rest[start..];
        let end = block
            .find("-----END ")
            .and_then(|end| {
                block[end + 9..]
                    .find("-----")
                    .map(|tail| end + 9 + tail + 5)
            })
            .ok_or("a PEM block in the signer certificate file has no END line")?;
        let (label, der) = pem_rfc7468::decode_vec(&block.as_bytes()[..end]).map_err(|e| {
            format!("a PEM block in the signer certificate file does not decode: {e}")
        })?;
        if label != "CERTIFICATE" {
            return Err(format!(
                "the signer certificate file holds a {label:?} PEM block; only CERTIFICATE blocks are accepted"
            ));
        }
        ders.push(der);
        rest = &block[end..];
    }
    if ders.is_empty() {
        return Err(
            "the signer certificate file is neither DER nor PEM text with a CERTIFICATE block"
                .into(),
        );
    }
    Ok(ders)
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

// ---------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------

/// RFC 4180 rows over the whole file, one row per call.
#[derive(Debug)]
struct CsvRows<'a> {
    text: &'a [u8],
    pos: usize,
    /// The 1-based line `pos` is on.
    line: usize,
    /// Whether a row has been read yet (only the first may be a header).
    started: bool,
}

/// What ended a field.
enum FieldEnd {
    Comma,
    Row,
}

impl<'a> CsvRows<'a> {
    fn new(text: &'a [u8]) -> Self {
        Self {
            text,
            pos: 0,
            line: 1,
            started: false,
        }
    }

    fn next(&mut self) -> Option<Result<ManifestRecord, ManifestEntryError>> {
        loop {
            if self.pos >= self.text.len() {
                return None;
            }
            if self.skip_blank_line() {
                continue;
            }
            let line = self.line;
            let first_row = !std::mem::replace(&mut self.started, true);
            let fields = match self.row() {
                Ok(fields) => fields,
                Err(message) => {
                    let error = ManifestError::InvalidRow(message);
                    return Some(Err(ManifestEntryError::new(line, None, &error)));
                }
            };
            let device_id = match utf8_field(line, &fields[0]) {
                Ok(id) => id.trim(),
                Err(error) => return Some(Err(error)),
            };
            if first_row && is_header(device_id) {
                continue;
            }
            if fields.len() != 2 {
                let error = ManifestError::InvalidRow(format!(
                    "the row has {} field(s); expected 2: device_id,public_key (quote a field that holds a comma)",
                    fields.len()
                ));
                let id = Some(device_id).filter(|id| !id.is_empty());
                return Some(Err(ManifestEntryError::new(line, id, &error)));
            }
            return Some(utf8_field(line, &fields[1]).and_then(|key| record(line, device_id, key)));
        }
    }

    /// Consumes a line holding only whitespace, if `pos` starts one.
    fn skip_blank_line(&mut self) -> bool {
        let rest = &self.text[self.pos..];
        let blank = rest
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\r'))
            .count();
        match rest.get(blank) {
            None => {
                self.pos = self.text.len();
                true
            }
            Some(b'\n') => {
                self.pos += blank + 1;
                self.line += 1;
                true
            }
            Some(_) => false,
        }
    }

    /// The fields of the row at `pos`, which is consumed with its line end even when
    /// it is malformed.
    fn row(&mut self) -> Result<Vec<Cow<'a, [u8]>>, String> {
        let mut fields = Vec::with_capacity(2);
        loop {
            match self.field() {
                Ok((field, end)) => {
                    fields.push(field);
                    if let FieldEnd::Row = end {
                        return Ok(fields);
                    }
                }
                Err(message) => {
                    self.skip_line();
                    return Err(message);
                }
            }
        }
    }

    fn field(&mut self) -> Result<(Cow<'a, [u8]>, FieldEnd), String> {
        let text = self.text;
        let content = self.pos
            + text[self.pos..]
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .count();
        if text.get(content) == Some(&b'"') {
            return self.quoted(content + 1);
        }
        let end = self.pos
            + text[self.pos..]
                .iter()
                .position(|&b| b == b',' || b == b'\n')
                .unwrap_or(text.len() - self.pos);
        let value = &text[self.pos..end];
        Ok((Cow::Borrowed(value), self.consume_separator(end)))
    }

    /// A quoted field whose content starts at `open` (just after the quote).
    fn quoted(&mut self, open: usize) -> Result<(Cow<'a, [u8]>, FieldEnd), String> {
        let text = self.text;
        let first_line = self.line;
        // Owned only once an escaped quote (`""`) has been seen.
        let mut unescaped: Option<Vec<u8>> = None;
        let mut chunk = open;
        let close = loop {
            let Some(quote) = text[chunk..].iter().position(|&b| b == b'"') else {
                self.line += count_newlines(&text[chunk..]);
                self.pos = text.len();
                return Err(format!(
                    "the quoted field opened on line {first_line} is never closed"
                ));
            };
            let quote = chunk + quote;
            self.line += count_newlines(&text[chunk..quote]);
            if text.get(quote + 1) != Some(&b'"') {
                break quote;
            }
            unescaped
                .get_or_insert_with(Vec::new)
                .extend_from_slice(&text[chunk..=quote]);
            chunk = quote + 2;
        };
        let value = match unescaped {
            None => Cow::Borrowed(&text[open..close]),
            Some(mut value) => {
                value.extend_from_slice(&text[chunk..close]);
                Cow::Owned(value)
            }
        };
        let after = close
            + 1
            + text[close + 1..]
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t' | b'\r'))
                .count();
        match text.get(after) {
            None | Some(b',' | b'\n') => Ok((value, self.consume_separator(after))),
            Some(_) => {
                self.pos = after;
                Err(format!(
                    "text follows the closing quote of a field on line {}: quote the whole field and double any quote inside it",
                    self.line
                ))
            }
        }
    }

    /// Moves past the separator at `at` (a comma, a newline or the end of the text).
    fn consume_separator(&mut self, at: usize) -> FieldEnd {
        match self.text.get(at) {
            Some(b',') => {
                self.pos = at + 1;
                FieldEnd::Comma
            }
            Some(_) => {
                self.pos = at + 1;
                self.line += 1;
                FieldEnd::Row
            }
            None => {
                self.pos = at;
                FieldEnd::Row
            }
        }
    }

    /// Moves past the end of the current line.
    fn skip_line(&mut self) {
        match self.text[self.pos..].iter().position(|&b| b == b'\n') {
            Some(newline) => {
                self.pos += newline + 1;
                self.line += 1;
            }
            None => self.pos = self.text.len(),
        }
    }
}

fn utf8_field(line: usize, field: &[u8]) -> Result<&str, ManifestEntryError> {
    std::str::from_utf8(field).map_err(|_| {
        let error = ManifestError::InvalidRow("the row is not UTF-8 text".into());
        ManifestEntryError::new(line, None, &error)
    })
}

fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

fn is_header(first_field: &str) -> bool {
    ["device_id", "deviceid", "id"]
        .iter()
        .any(|name| first_field.eq_ignore_ascii_case(name))
}

// ---------------------------------------------------------------------------------
// JSON lines
// ---------------------------------------------------------------------------------

#[derive(Debug)]
struct JsonLines<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
}

#[derive(serde::Deserialize)]
struct JsonLine {
    #[serde(rename = "deviceId", alias = "device_id")]
    device_id: Option<serde_json::Value>,
    #[serde(rename = "publicKey", alias = "public_key")]
    public_key: Option<serde_json::Value>,
}

impl<'a> JsonLines<'a> {
    fn new(text: &'a [u8]) -> Self {
        Self {
            text,
            pos: 0,
            line: 1,
        }
    }

    fn next(&mut self) -> Option<Result<ManifestRecord, ManifestEntryError>> {
        while self.pos < self.text.len() {
            let rest = &self.text[self.pos..];
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let line = self.line;
            self.pos += end + 1;
            self.line += 1;
            let content = &rest[..end];
            if content.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(json_line(line, content));
        }
        None
    }
}

fn json_line(line: usize, content: &[u8]) -> Result<ManifestRecord, ManifestEntryError> {
    let invalid = |id: Option<&str>, message: String| {
        ManifestEntryError::new(line, id, &ManifestError::InvalidRow(message))
    };
    let parsed: JsonLine = serde_json::from_slice(content).map_err(|e| {
        invalid(
            None,
            format!("the line is not a JSON object {{\"deviceId\", \"publicKey\"}}: {e}"),
        )
    })?;
    let device_id = match parsed.device_id {
        Some(serde_json::Value::String(id)) => id,
        Some(_) => return Err(invalid(None, "deviceId must be a string".into())),
        None => return Err(invalid(None, "the line has no deviceId".into())),
    };
    let key = match parsed.public_key {
        Some(serde_json::Value::String(key)) => key,
        Some(jwk @ serde_json::Value::Object(_)) => jwk.to_string(),
        Some(_) => {
            return Err(invalid(
                Some(&device_id),
                "publicKey must be a string or a JWK object".into(),
            ))
        }
        None => {
            return Err(invalid(
                Some(&device_id),
                "the line has no publicKey".into(),
            ))
        }
    };
    record(line, &device_id, &key)
}

// ---------------------------------------------------------------------------------
// Microchip Trust&GO / TrustFLEX
// ---------------------------------------------------------------------------------

#[derive(Debug)]
struct MicrochipEntries<'a> {
    entries: std::iter::Enumerate<std::vec::IntoIter<serde_json::Value>>,
    signers: &'a ManifestSigners,
    backend: SignatureBackend,
}

#[derive(serde::Deserialize)]
struct SignedEntry {
    payload: String,
    protected: String,
    signature: String,
    header: Option<EntryHeader>,
}

#[derive(serde::Deserialize)]
struct EntryHeader {
    #[serde(rename = "uniqueId")]
    unique_id: Option<String>,
}

#[derive(serde::Deserialize)]
struct ProtectedHeader {
    alg: Option<String>,
    kid: Option<String>,
    #[serde(rename = "x5t#S256")]
    x5t_s256: Option<String>,
}

#[derive(serde::Deserialize)]
struct EntryPayload {
    #[serde(rename = "uniqueId")]
    unique_id: Option<String>,
    #[serde(rename = "publicKeySet")]
    public_key_set: Option<PublicKeySet>,
}

#[derive(serde::Deserialize)]
struct PublicKeySet {
    keys: Vec<serde_json::Value>,
}

impl<'a> MicrochipEntries<'a> {
    fn new(
        bytes: &[u8],
        signers: &'a ManifestSigners,
        backend: SignatureBackend,
    ) -> Result<Self, ManifestError> {
        if signers.is_empty() {
            return Err(ManifestError::MalformedManifest(
                "a Microchip manifest is checked against its signer certificate, and none was given: supply the manifest signer certificate Microchip publishes".into(),
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            ManifestError::MalformedManifest(format!("the Microchip manifest is not JSON: {e}"))
        })?;
        let serde_json::Value::Array(entries) = value else {
            return Err(ManifestError::MalformedManifest(
                "a Microchip manifest is a JSON array of signed entries; this JSON is not an array"
                    .into(),
            ));
        };
        Ok(Self {
            entries: entries.into_iter().enumerate(),
            signers,
            backend,
        })
    }

    fn next(&mut self) -> Option<Result<ManifestRecord, ManifestEntryError>> {
        let (index, value) = self.entries.next()?;
        let line = index + 1;
        let label = value
            .pointer("/header/uniqueId")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        Some(self.entry(line, value).map_err(|(device_id, error)| {
            ManifestEntryError::new(line, device_id.or(label).as_deref(), &error)
        }))
    }

    /// The checked record of one entry, or the error with the (signed) device id if
    /// the entry got that far.
    fn entry(
        &self,
        line: usize,
        value: serde_json::Value,
    ) -> Result<ManifestRecord, (Option<String>, ManifestError)> {
        let entry: SignedEntry = serde_json::from_value(value).map_err(|e| {
            (
                None,
                ManifestError::InvalidManifestEntry(format!(
                "the entry is not a signed entry {{payload, protected, header, signature}}: {e}"
            )),
            )
        })?;
        let payload = self.verify(&entry).map_err(|e| (None, e))?;
        let unique_id = payload.unique_id.ok_or_else(|| {
            (
                None,
                ManifestError::InvalidManifestEntry("the signed payload has no uniqueId".into()),
            )
        })?;
        let fail = |e: ManifestError| (Some(unique_id.clone()), e);
        match entry.header.and_then(|h| h.unique_id) {
            Some(header) if header == unique_id => {}
            Some(header) => {
                return Err(fail(ManifestError::UniqueIdMismatch {
                    header,
                    payload: unique_id.clone(),
                }))
            }
            None => {
                return Err(fail(ManifestError::InvalidManifestEntry(
                    "the entry has no header.uniqueId".into(),
                )))
            }
        }
        check_device_id(&unique_id).map_err(fail)?;
        let jwk = payload
            .public_key_set
            .and_then(|set| {
                set.keys
                    .into_iter()
                    .find(|k| k.get("kid").and_then(serde_json::Value::as_str) == Some("0"))
            })
            .ok_or_else(|| {
                fail(ManifestError::InvalidPublicKey(
                    "the payload's publicKeySet has no key with kid \"0\" (the device key)".into(),
                ))
            })?;
        let public_key = p256_key(&jwk.to_string()).map_err(fail)?;
        if let Some(x5c) = jwk.get("x5c") {
            check_device_certificate(x5c, &public_key, self.backend).map_err(fail)?;
        }
        Ok(ManifestRecord {
            device_id: unique_id,
            public_key,
            line,
        })
    }

    /// Checks the entry's ES256 signature with the signer its protected header names
    /// and returns the signed payload.
    fn verify(&self, entry: &SignedEntry) -> Result<EntryPayload, ManifestError> {
        let invalid = |m: String| ManifestError::InvalidManifestEntry(m);
        let protected: ProtectedHeader = decode_json(&entry.protected)
            .map_err(|e| invalid(format!("the entry's protected header {e}")))?;
        match protected.alg.as_deref() {
            Some("ES256") => {}
            Some(other) => {
                return Err(invalid(format!(
                    "the entry is signed with {other:?}; Microchip manifests are signed with ES256"
                )))
            }
            None => return Err(invalid("the entry's protected header has no alg".into())),
        }
        let x5t = protected.x5t_s256.ok_or_else(|| {
            invalid(
                "the entry's protected header has no x5t#S256 naming its signer certificate".into(),
            )
        })?;
        let thumbprint = BASE64URL
            .decode(&x5t)
            .map_err(|_| invalid(format!("the entry's x5t#S256 {x5t:?} is not base64url")))?;
        let signer = self.signers.find(&thumbprint).ok_or_else(|| {
            ManifestError::UnknownManifestSigner(format!(
                "the entry is signed by the certificate with x5t#S256 {x5t} (kid {}), which is not among the {} signer certificate(s) given",
                protected.kid.as_deref().unwrap_or("absent"),
                self.signers.len()
            ))
        })?;
        let bad = |why: &str| {
            ManifestError::BadManifestSignature(format!(
                "the entry's signature {why} (signer x5t#S256 {x5t}): the entry was altered after it was signed, or is not from this signer"
            ))
        };
        let signature = BASE64URL
            .decode(&entry.signature)
            .ok()
            .and_then(|raw| p256::ecdsa::Signature::from_slice(&raw).ok())
            .ok_or_else(|| bad("is not a base64url 64-byte ES256 signature"))?;
        let signing_input = format!("{}.{}", entry.protected, entry.payload);
        if !self.backend.verify(
            Curve::P256,
            signer.key.sec1_uncompressed(),
            signing_input.as_bytes(),
            signature.to_der().as_bytes(),
        ) {
            return Err(bad("does not verify"));
        }
        decode_json(&entry.payload).map_err(|e| invalid(format!("the entry's payload {e}")))
    }
}

/// Decodes base64url JSON; the error completes a sentence naming the part.
fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, String> {
    let bytes = BASE64URL
        .decode(part)
        .map_err(|_| "is not base64url".to_owned())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("is not the expected JSON: {e}"))
}

/// Checks the device key's `x5c` chain: the first certificate holds `key` and, when a
/// second follows, is signed by it with ECDSA P-256 SHA-256.
///
/// The chain is not anchored to a trusted root: the manifest signature already vouches
/// for the key, and this catches a manifest whose certificates and keys disagree.
fn check_device_certificate(
    x5c: &serde_json::Value,
    key: &DeviceKey,
    backend: SignatureBackend,
) -> Result<(), ManifestError> {
    let invalid = |m: String| ManifestError::InvalidDeviceCertificate(m);
    let chain = x5c
        .as_array()
        .ok_or_else(|| invalid("the device key's x5c is not an array".into()))?
        .iter()
        .enumerate()
        .map(|(i, cert)| {
            cert.as_str()
                .and_then(decode_base64)
                .ok_or_else(|| invalid(format!("x5c[{i}] is not a base64 certificate")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let device_der = chain
        .first()
        .ok_or_else(|| invalid("the device key's x5c is empty".into()))?;
    let device = CertificateParts::parse(device_der).map_err(|e| {
        invalid(format!(
            "the device certificate (x5c[0]) does not parse: {e}"
        ))
    })?;
    let device_key = p256_key_of(&device.spki)
        .map_err(|e| invalid(format!("the device certificate's key: {e}")))?;
    if &device_key != key {
        return Err(invalid(
            "the device certificate (x5c[0]) holds another public key than the manifest's device key".into(),
        ));
    }
    let Some(issuer_der) = chain.get(1) else {
        return Ok(());
    };
    let issuer = CertificateParts::parse(issuer_der).map_err(|e| {
        invalid(format!(
            "the issuer certificate (x5c[1]) does not parse: {e}"
        ))
    })?;
    let issuer_key = p256_key_of(&issuer.spki)
        .map_err(|e| invalid(format!("the issuer certificate's (x5c[1]) key: {e}")))?;
    if device.algorithm.oid != ECDSA_WITH_SHA256 {
        return Err(invalid(format!(
            "the device certificate is signed with algorithm {}; expected ecdsa-with-SHA256",
            device.algorithm.oid
        )));
    }
    let signature = device
        .signature
        .as_bytes()
        .ok_or_else(|| invalid("the device certificate's signature has unused bits".into()))?;
    if !backend.verify(
        Curve::P256,
        issuer_key.sec1_uncompressed(),
        device.tbs,
        signature,
    ) {
        return Err(invalid(
            "the device certificate (x5c[0]) is not signed by the next certificate in x5c".into(),
        ));
    }
    Ok(())
}

/// The parts of an X.509 certificate this module uses, read without interpreting names
/// or extensions: device certificates in real manifests carry attributes that strict
/// decoders refuse (a serialNumber PrintableString holding `_` or `@`).
struct CertificateParts<'a> {
    /// The TBSCertificate exactly as received (header included): the signed bytes.
    tbs: &'a [u8],
    algorithm: AlgorithmIdentifierRef<'a>,
    signature: BitStringRef<'a>,
    spki: SubjectPublicKeyInfoRef<'a>,
}

impl<'a> CertificateParts<'a> {
    fn parse(der: &'a [u8]) -> der::Result<Self> {
        let certificate = AnyRef::from_der(der)?;
        certificate.tag().assert_eq(Tag::Sequence)?;
        let mut outer = SliceReader::new(certificate.value())?;
        let tbs = outer.tlv_bytes()?;
        let algorithm = AlgorithmIdentifierRef::decode(&mut outer)?;
        let signature = BitStringRef::decode(&mut outer)?;
        outer.finish(())?;

        let tbs_value = AnyRef::from_der(tbs)?;
        tbs_value.tag().assert_eq(Tag::Sequence)?;
        let mut fields = SliceReader::new(tbs_value.value())?;
        // [0] EXPLICIT version, absent for v1.
        if fields.peek_byte() == Some(0xA0) {
            fields.tlv_bytes()?;
        }
        // serialNumber, signature, issuer, validity, subject: not needed.
        for _ in 0..5 {
            fields.tlv_bytes()?;
        }
        let spki = SubjectPublicKeyInfoRef::decode(&mut fields)?;
        Ok(Self {
            tbs,
            algorithm,
            signature,
            spki,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::elliptic_curve::sec1::ToEncodedPoint;

    const SIGNER_PEM: &[u8] = include_bytes!("../tests/manifests/signer.pem");
    const SIGNER_DER: &[u8] = include_bytes!("../tests/manifests/signer.der");
    const OTHER_SIGNER_PEM: &[u8] = include_bytes!("../tests/manifests/other_signer.pem");
    const VALID: &[u8] = include_bytes!("../tests/manifests/valid.json");
    const TAMPERED_PAYLOAD: &[u8] = include_bytes!("../tests/manifests/tampered_payload.json");
    const UNKNOWN_SIGNER: &[u8] = include_bytes!("../tests/manifests/unknown_signer.json");
    const UNIQUE_ID_MISMATCH: &[u8] = include_bytes!("../tests/manifests/unique_id_mismatch.json");
    const DEVICE_CERTIFICATE_KEY_MISMATCH: &[u8] =
        include_bytes!("../tests/manifests/device_certificate_key_mismatch.json");
    const DEVICE_CERTIFICATE_WRONG_ISSUER: &[u8] =
        include_bytes!("../tests/manifests/device_certificate_wrong_issuer.json");
    const SERIAL_NUMBER_NOT_PRINTABLE: &[u8] =
        include_bytes!("../tests/manifests/serial_number_not_printable.json");
    const SERIAL_NUMBER_NOT_PRINTABLE_CERT: &[u8] =
        include_bytes!("../tests/manifests/serial_number_not_printable.der");
    const EXPECTED: &str = include_str!("../tests/manifests/expected.json");

    type Item = Result<ManifestRecord, ManifestEntryError>;

    /// The P-256 public key of the private scalar `[seed; 32]`.
    fn point(seed: u8) -> Vec<u8> {
        let secret = p256::SecretKey::from_slice(&[seed; 32]).unwrap();
        secret
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    fn key(seed: u8) -> DeviceKey {
        DeviceKey::from_sec1(Curve::P256, &point(seed)).unwrap()
    }

    fn sec1_hex(seed: u8) -> String {
        hex::encode(point(seed))
    }

    fn spki_base64(seed: u8) -> String {
        key(seed).canonical()
    }

    fn spki_pem(seed: u8, ending: pem_rfc7468::LineEnding) -> String {
        pem_rfc7468::encode_string("PUBLIC KEY", ending, &key(seed).spki_der()).unwrap()
    }

    fn read(bytes: &[u8]) -> Vec<Item> {
        ManifestReader::new().read(bytes).unwrap().collect()
    }

    fn read_microchip(bytes: &[u8]) -> Vec<Item> {
        let signers = ManifestSigners::from_certificates(SIGNER_PEM).unwrap();
        ManifestReader::new()
            .with_signers(signers)
            .read(bytes)
            .unwrap()
            .collect()
    }

    fn records(items: &[Item]) -> Vec<(String, DeviceKey, usize)> {
        items
            .iter()
            .map(|item| {
                let r = item.as_ref().unwrap();
                (r.device_id.clone(), r.public_key.clone(), r.line)
            })
            .collect()
    }

    fn error(item: &Item) -> &ManifestEntryError {
        item.as_ref().unwrap_err()
    }

    fn expected(manifest: &str) -> Vec<(String, String)> {
        let all: serde_json::Value = serde_json::from_str(EXPECTED).unwrap();
        all[manifest]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["deviceId"].as_str().unwrap().to_owned(),
                    d["publicKey"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    // --- CSV ---

    #[test]
    fn csv_without_header_yields_one_record_per_row() {
        // given rows with SEC1 hex and base64 SPKI keys, no header
        let csv = format!("dev-1,{}\ndev-2,{}\n", sec1_hex(1), spki_base64(2));
        // when read
        let items = read(csv.as_bytes());
        // then each row is a record with its line
        assert_eq!(
            records(&items),
            vec![("dev-1".into(), key(1), 1), ("dev-2".into(), key(2), 2)]
        );
    }

    #[test]
    fn csv_header_row_is_skipped_whatever_its_spelling() {
        for header in [
            "device_id,public_key",
            "deviceId,publicKey",
            "ID,Key",
            "\"id\",\"key\"",
        ] {
            // given a header then one row
            let csv = format!("{header}\ndev-1,{}\n", sec1_hex(1));
            // when read
            let items = read(csv.as_bytes());
            // then only the row is a record, on line 2
            assert_eq!(
                records(&items),
                vec![("dev-1".into(), key(1), 2)],
                "{header}"
            );
        }
    }

    #[test]
    fn csv_quoted_multiline_pem_key_is_read_and_lines_keep_counting() {
        // given a PEM key in a quoted field spanning 4 lines, then another row
        let pem = spki_pem(1, pem_rfc7468::LineEnding::LF);
        let csv = format!(
            "device_id,public_key\n\"dev-1\",\"{pem}\"\ndev-2,{}\n",
            sec1_hex(2)
        );
        // when read
        let items = read(csv.as_bytes());
        // then the PEM key is read and the next row's line counts the PEM's lines
        let pem_lines = pem.matches('\n').count();
        assert_eq!(
            records(&items),
            vec![
                ("dev-1".into(), key(1), 2),
                ("dev-2".into(), key(2), 3 + pem_lines)
            ]
        );
    }

    #[test]
    fn csv_with_crlf_line_endings_is_read() {
        // given CRLF rows, one with a CRLF PEM key inside quotes
        let pem = spki_pem(2, pem_rfc7468::LineEnding::CRLF);
        let csv = format!(
            "device_id,public_key\r\ndev-1,{}\r\ndev-2,\"{pem}\"\r\n",
            sec1_hex(1)
        );
        // when read
        let items = read(csv.as_bytes());
        // then both rows are records
        assert_eq!(
            records(&items),
            vec![("dev-1".into(), key(1), 2), ("dev-2".into(), key(2), 3)]
        );
    }

    #[test]
    fn csv_blank_lines_are_skipped_but_counted() {
        // given blank and whitespace-only lines around the rows
        let csv = format!("\n  \r\ndev-1,{}\n\n\t\ndev-2,{}", sec1_hex(1), sec1_hex(2));
        // when read
        let items = read(csv.as_bytes());
        // then only the rows are records, with their real line numbers
        assert_eq!(
            records(&items),
            vec![("dev-1".into(), key(1), 3), ("dev-2".into(), key(2), 6)]
        );
    }

    #[test]
    fn csv_bad_rows_are_reported_with_their_line_and_reading_goes_on() {
        // given bad rows between good ones
        let csv = format!(
            "device_id,public_key\n\
             dev-1,{k1}\n\
             dev-2\n\
             dev/3,{k1}\n\
             dev-4,not-a-key\n\
             dev-5,{k1},extra\n\
             \"dev-6\"x,{k1}\n\
             dev-7,{k2}\n",
            k1 = sec1_hex(1),
            k2 = sec1_hex(2)
        );
        // when read
        let items = read(csv.as_bytes());
        // then each bad row is one error naming its line and code, the good rows import
        let outcome: Vec<_> = items
            .iter()
            .map(|item| match item {
                Ok(r) => (r.line, "ok"),
                Err(e) => (e.line, e.error),
            })
            .collect();
        assert_eq!(
            outcome,
            vec![
                (2, "ok"),
                (3, "invalid_row"),
                (4, "invalid_device_id"),
                (5, "invalid_public_key"),
                (6, "invalid_row"),
                (7, "invalid_row"),
                (8, "ok"),
            ]
        );
        assert_eq!(error(&items[1]).device_id.as_deref(), Some("dev-2"));
        assert_eq!(error(&items[2]).device_id.as_deref(), Some("dev/3"));
    }

    #[test]
    fn csv_escaped_quotes_are_unescaped_and_an_unclosed_quote_is_reported() {
        // given a field with a doubled quote, then a quote never closed
        let csv = format!("\"dev\"\"1\",{}\n\"dev-2,{}\n", sec1_hex(1), sec1_hex(2));
        // when read
        let items = read(csv.as_bytes());
        // then the first id is read unescaped (and refused for its quote)
        let first = error(&items[0]);
        assert_eq!(
            (first.error, first.device_id.as_deref()),
            ("invalid_device_id", Some("dev\"1"))
        );
        // and the unclosed quote is one invalid row at the line it opened on
        let second = error(&items[1]);
        assert_eq!((second.line, second.error), (2, "invalid_row"));
        assert!(
            second.message.contains("never closed"),
            "{}",
            second.message
        );
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn csv_same_device_and_key_twice_is_one_record() {
        // given a device listed twice with the same key in two encodings
        let csv = format!("dev-1,{}\ndev-1,{}\n", sec1_hex(1), spki_base64(1));
        // when read
        let reader = ManifestReader::new();
        let mut entries = reader.read(csv.as_bytes()).unwrap();
        let items: Vec<_> = entries.by_ref().collect();
        // then one record, and the repeat is counted
        assert_eq!(records(&items), vec![("dev-1".into(), key(1), 1)]);
        assert_eq!(entries.duplicates(), 1);
    }

    #[test]
    fn csv_same_device_with_another_key_is_a_duplicate_on_the_later_line() {
        // given a device listed twice with different keys
        let csv = format!(
            "dev-1,{}\ndev-2,{}\ndev-1,{}\n",
            sec1_hex(1),
            sec1_hex(2),
            sec1_hex(3)
        );
        // when read
        let items = read(csv.as_bytes());
        // then the first listing imports and the later one is refused
        assert_eq!(items[0].as_ref().unwrap().public_key, key(1));
        let duplicate = error(&items[2]);
        assert_eq!(
            (
                duplicate.line,
                duplicate.error,
                duplicate.device_id.as_deref()
            ),
            (3, "duplicate_device", Some("dev-1"))
        );
        assert!(
            duplicate.message.contains("line 1"),
            "{}",
            duplicate.message
        );
    }

    #[cfg(feature = "p384")]
    #[test]
    fn csv_p384_key_is_unsupported() {
        // given a row with a P-384 key (the generator)
        use p384::elliptic_curve::sec1::ToEncodedPoint as _;
        let point = p384::AffinePoint::GENERATOR.to_encoded_point(false);
        let csv = format!("dev-1,{}\n", hex::encode(point.as_bytes()));
        // when read
        let items = read(csv.as_bytes());
        // then it is refused as unsupported
        assert_eq!(error(&items[0]).error, "unsupported_key");
    }

    #[test]
    fn csv_utf8_byte_order_mark_does_not_hide_the_header() {
        // given a spreadsheet export starting with a BOM
        let csv = format!("\u{feff}device_id,public_key\ndev-1,{}\n", sec1_hex(1));
        // when read, then the header is recognised
        assert_eq!(
            records(&read(csv.as_bytes())),
            vec![("dev-1".into(), key(1), 2)]
        );
    }

    // --- JSON lines ---

    #[test]
    fn jsonl_good_lines_are_records() {
        // given JSON lines with a PEM, a hex and a JWK key, and a blank line
        let pem = spki_pem(1, pem_rfc7468::LineEnding::LF);
        let jwk = key(3).sec1_uncompressed().to_vec();
        let b64 = |b: &[u8]| BASE64URL.encode(b);
        let jsonl = format!(
            "{}\n\n{}\r\n{}\n",
            serde_json::json!({"deviceId": "dev-1", "publicKey": pem}),
            serde_json::json!({"deviceId": "dev-2", "publicKey": sec1_hex(2), "batch": 7}),
            serde_json::json!({"deviceId": "dev-3", "publicKey": {
                "kty": "EC", "crv": "P-256", "x": b64(&jwk[1..33]), "y": b64(&jwk[33..])}}),
        );
        // when read (detected as JSON lines)
        let reader = ManifestReader::new();
        let entries = reader.read(jsonl.as_bytes()).unwrap();
        assert_eq!(entries.format(), ManifestFormat::JsonLines);
        let items: Vec<_> = entries.collect();
        // then every line is a record with its line number
        assert_eq!(
            records(&items),
            vec![
                ("dev-1".into(), key(1), 1),
                ("dev-2".into(), key(2), 3),
                ("dev-3".into(), key(3), 4)
            ]
        );
    }

    #[test]
    fn jsonl_bad_lines_are_reported_with_their_line() {
        // given lines that are not JSON, miss a member, or carry a bad id or key
        let jsonl = format!(
            "{{\"deviceId\": \"dev-1\", \"publicKey\": \"{}\"}}\n\
             {{not json\n\
             {{\"deviceId\": \"dev-3\"}}\n\
             {{\"deviceId\": 4, \"publicKey\": \"{}\"}}\n\
             {{\"deviceId\": \"dev 5\", \"publicKey\": \"{}\"}}\n\
             {{\"deviceId\": \"dev-6\", \"publicKey\": \"MFkw\"}}\n",
            sec1_hex(1),
            sec1_hex(1),
            sec1_hex(1)
        );
        // when read
        let items = read(jsonl.as_bytes());
        // then each bad line is one error with its line and code
        let errors: Vec<_> = items[1..]
            .iter()
            .map(|i| (error(i).line, error(i).error))
            .collect();
        assert_eq!(
            errors,
            vec![
                (2, "invalid_row"),
                (3, "invalid_row"),
                (4, "invalid_row"),
                (5, "invalid_device_id"),
                (6, "invalid_public_key"),
            ]
        );
        assert!(items[0].is_ok());
    }

    // --- format ---

    #[test]
    fn the_format_is_detected_from_the_first_non_blank_byte() {
        assert_eq!(
            ManifestFormat::detect(b"  \n[{}]"),
            ManifestFormat::Microchip
        );
        assert_eq!(
            ManifestFormat::detect(b"\xEF\xBB\xBF{\"a\":1}"),
            ManifestFormat::JsonLines
        );
        assert_eq!(
            ManifestFormat::detect(b"device_id,public_key"),
            ManifestFormat::Csv
        );
        assert_eq!(ManifestFormat::detect(b""), ManifestFormat::Csv);
    }

    #[test]
    fn an_explicit_format_overrides_detection() {
        // given a JSON line read as CSV
        let jsonl = format!(
            "{{\"deviceId\":\"dev-1\",\"publicKey\":\"{}\"}}\n",
            sec1_hex(1)
        );
        let reader = ManifestReader::new().with_format(ManifestFormat::Csv);
        // when read, then it is a CSV row (with the wrong number of fields)
        let items: Vec<_> = reader.read(jsonl.as_bytes()).unwrap().collect();
        assert_eq!(error(&items[0]).error, "invalid_row");
    }

    #[test]
    fn format_names_round_trip_and_unknown_names_are_refused() {
        for format in [
            ManifestFormat::Csv,
            ManifestFormat::JsonLines,
            ManifestFormat::Microchip,
        ] {
            assert_eq!(format.name().parse::<ManifestFormat>(), Ok(format));
        }
        assert_eq!(
            "NDJSON".parse::<ManifestFormat>(),
            Ok(ManifestFormat::JsonLines)
        );
        let err = "xml".parse::<ManifestFormat>().unwrap_err();
        assert_eq!(err.code(), "unsupported_manifest_format");
    }

    // --- Microchip ---

    #[test]
    fn microchip_valid_manifest_yields_its_three_devices() {
        // given the valid manifest and its signer certificate (PEM)
        // when read
        let items = read_microchip(VALID);
        // then the three devices import with the keys cryptography computed
        let got: Vec<_> = items
            .iter()
            .map(|i| {
                let r = i.as_ref().unwrap();
                (r.device_id.clone(), r.public_key.canonical())
            })
            .collect();
        assert_eq!(got, expected("valid.json"));
        let lines: Vec<_> = items.iter().map(|i| i.as_ref().unwrap().line).collect();
        assert_eq!(lines, vec![1, 2, 3]);
    }

    #[test]
    fn microchip_signer_may_be_given_as_der_and_both_backends_agree() {
        // given the signer as DER
        let signers = ManifestSigners::from_certificates(SIGNER_DER).unwrap();
        for backend in [SignatureBackend::default(), SignatureBackend::RustCrypto] {
            // when read with each backend
            let reader = ManifestReader::new()
                .with_signers(signers.clone())
                .with_backend(backend);
            let items: Vec<_> = reader.read(VALID).unwrap().collect();
            // then all three import
            assert!(items.iter().all(Result::is_ok), "{backend:?}: {items:?}");
            assert_eq!(items.len(), 3);
        }
    }

    #[test]
    fn microchip_tampered_payload_is_a_bad_signature_and_the_other_entry_imports() {
        // given a good entry and one whose payload was changed after signing
        // when read
        let items = read_microchip(TAMPERED_PAYLOAD);
        // then the good one imports and the tampered one is refused
        assert_eq!(
            items[0].as_ref().unwrap().public_key.canonical(),
            expected("tampered_payload.json")[0].1
        );
        let tampered = error(&items[1]);
        assert_eq!(
            (tampered.line, tampered.error),
            (2, "bad_manifest_signature")
        );
        assert_eq!(tampered.device_id.as_deref(), Some("0123000000000005ee"));
    }

    #[test]
    fn microchip_entry_from_an_unknown_signer_is_refused() {
        // given an entry signed by a signer whose certificate is not given
        // when read
        let items = read_microchip(UNKNOWN_SIGNER);
        // then it is refused naming the signer
        let refused = error(&items[0]);
        assert_eq!(refused.error, "unknown_manifest_signer");
        assert!(refused.message.contains("x5t#S256"), "{}", refused.message);
    }

    #[test]
    fn microchip_several_signers_may_be_given_in_one_pem_file() {
        // given both signer certificates in one PEM file
        let both = [SIGNER_PEM, OTHER_SIGNER_PEM].concat();
        let signers = ManifestSigners::from_certificates(&both).unwrap();
        assert_eq!(signers.len(), 2);
        // when the other signer's manifest is read
        let reader = ManifestReader::new().with_signers(signers);
        let items: Vec<_> = reader.read(UNKNOWN_SIGNER).unwrap().collect();
        // then it imports
        assert!(items[0].is_ok(), "{items:?}");
    }

    #[test]
    fn microchip_header_unique_id_must_match_the_payload() {
        // given an entry whose unsigned header names another device
        // when read
        let items = read_microchip(UNIQUE_ID_MISMATCH);
        // then it is refused, naming the signed id
        let refused = error(&items[0]);
        assert_eq!(refused.error, "unique_id_mismatch");
        assert!(
            refused.message.contains("0123000000000099ee"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn microchip_device_certificate_with_another_key_is_refused() {
        // given an entry whose x5c device certificate holds another key than the JWK
        // when read
        let items = read_microchip(DEVICE_CERTIFICATE_KEY_MISMATCH);
        // then it is refused
        let refused = error(&items[0]);
        assert_eq!(refused.error, "invalid_device_certificate");
        assert!(
            refused.message.contains("another public key"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn microchip_device_certificate_not_signed_by_the_next_certificate_is_refused() {
        // given an entry whose device certificate was issued by another CA than x5c[1]
        // when read
        let items = read_microchip(DEVICE_CERTIFICATE_WRONG_ISSUER);
        // then it is refused
        let refused = error(&items[0]);
        assert_eq!(refused.error, "invalid_device_certificate");
        assert!(
            refused.message.contains("not signed"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn microchip_device_certificate_with_a_non_printable_serial_number_still_imports() {
        // given a device certificate whose subject and SAN carry a serialNumber
        // PrintableString holding '_' and '@' (which PrintableString does not allow)
        let attribute = b"\x06\x03\x55\x04\x05\x13\x17eui48_0004A3@0BEEF_mchp";
        let occurrences = SERIAL_NUMBER_NOT_PRINTABLE_CERT
            .windows(attribute.len())
            .filter(|w| w == attribute)
            .count();
        assert_eq!(
            occurrences, 2,
            "the fixture carries the attribute in subject and SAN"
        );
        // when its manifest is read
        let items = read_microchip(SERIAL_NUMBER_NOT_PRINTABLE);
        // then the device imports
        let record = items[0].as_ref().unwrap();
        assert_eq!(
            vec![(record.device_id.clone(), record.public_key.canonical())],
            expected("serial_number_not_printable.json")
        );
    }

    #[test]
    fn x509_cert_also_parses_the_non_printable_serial_number() {
        // x509-cert 0.2 keeps attribute values and extensions undecoded, so it too
        // accepts this certificate; this module still reads only what it needs.
        let certificate = x509_cert::Certificate::from_der(SERIAL_NUMBER_NOT_PRINTABLE_CERT);
        assert!(certificate.is_ok(), "{certificate:?}");
    }

    #[test]
    fn microchip_manifest_that_is_not_an_array_fails_as_a_whole() {
        let signers = ManifestSigners::from_certificates(SIGNER_PEM).unwrap();
        let reader = ManifestReader::new()
            .with_signers(signers)
            .with_format(ManifestFormat::Microchip);
        for file in [
            &b"{\"payload\": \"x\"}"[..],
            b"[{\"payload\": ",
            b"not json",
        ] {
            // when read, then the whole file is refused
            let err = reader.read(file).unwrap_err();
            assert_eq!(err.code(), "malformed_manifest", "{err}");
        }
    }

    #[test]
    fn microchip_manifest_without_signers_fails_as_a_whole() {
        let err = ManifestReader::new().read(VALID).unwrap_err();
        assert_eq!(err.code(), "malformed_manifest");
        assert!(err.to_string().contains("signer certificate"), "{err}");
    }

    #[test]
    fn microchip_entry_that_is_not_a_signed_entry_is_refused_and_the_rest_imports() {
        // given a manifest whose first entry is not an object
        let mut entries: Vec<serde_json::Value> = serde_json::from_slice(VALID).unwrap();
        entries.insert(0, serde_json::json!("garbage"));
        let manifest = serde_json::to_vec(&entries).unwrap();
        // when read
        let items = read_microchip(&manifest);
        // then that entry is refused and the three others import
        assert_eq!(
            (error(&items[0]).line, error(&items[0]).error),
            (1, "invalid_manifest_entry")
        );
        assert!(items[1..].iter().all(Result::is_ok));
    }

    #[test]
    fn microchip_entry_with_another_algorithm_is_refused() {
        // given an entry whose protected header says ES384
        let mut entries: Vec<serde_json::Value> = serde_json::from_slice(VALID).unwrap();
        let protected = entries[0]["protected"].as_str().unwrap();
        let mut header: serde_json::Value =
            serde_json::from_slice(&BASE64URL.decode(protected).unwrap()).unwrap();
        header["alg"] = "ES384".into();
        entries[0]["protected"] = BASE64URL.encode(header.to_string()).into();
        let manifest = serde_json::to_vec(&entries).unwrap();
        // when read
        let items = read_microchip(&manifest);
        // then it is refused, labelled with its header's unique id
        let refused = error(&items[0]);
        assert_eq!(refused.error, "invalid_manifest_entry");
        assert!(refused.message.contains("ES384"), "{}", refused.message);
        assert_eq!(
            refused.device_id.as_deref(),
            Some(expected("valid.json")[0].0.as_str())
        );
    }

    #[test]
    fn signer_files_that_are_not_certificates_are_refused() {
        let key_pem = spki_pem(1, pem_rfc7468::LineEnding::LF);
        for file in [&b"hello"[..], b"\x30\x03\x02\x01\x01", key_pem.as_bytes()] {
            let err = ManifestSigners::from_certificates(file).unwrap_err();
            assert_eq!(err.code(), "invalid_signer_certificate", "{err}");
        }
    }

    #[test]
    fn the_signer_thumbprint_is_the_x5t_of_its_certificate() {
        let signer = ManifestSigner::from_der(SIGNER_DER).unwrap();
        let entries: Vec<serde_json::Value> = serde_json::from_slice(VALID).unwrap();
        let protected = entries[0]["protected"].as_str().unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&BASE64URL.decode(protected).unwrap()).unwrap();
        assert_eq!(
            header["x5t#S256"].as_str(),
            Some(signer.thumbprint().as_str())
        );
    }

    // --- errors ---

    #[test]
    fn every_error_has_a_snake_case_code_and_status_400() {
        let all = [
            ManifestError::InvalidRow(String::new()),
            ManifestError::InvalidDeviceId(String::new()),
            ManifestError::InvalidPublicKey(String::new()),
            ManifestError::UnsupportedKey(String::new()),
            ManifestError::DuplicateDevice {
                device_id: String::new(),
                first_line: 1,
            },
            ManifestError::InvalidManifestEntry(String::new()),
            ManifestError::BadManifestSignature(String::new()),
            ManifestError::UnknownManifestSigner(String::new()),
            ManifestError::UniqueIdMismatch {
                header: String::new(),
                payload: String::new(),
            },
            ManifestError::InvalidDeviceCertificate(String::new()),
            ManifestError::InvalidSignerCertificate(String::new()),
            ManifestError::MalformedManifest(String::new()),
            ManifestError::UnsupportedFormat(String::new()),
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(ErrorCode::code).collect();
        assert_eq!(codes.len(), all.len(), "codes are distinct");
        for error in &all {
            assert!(error
                .code()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_'));
            assert_eq!(error.status(), 400);
        }
    }

    #[test]
    fn an_entry_error_serialises_as_the_shared_shape() {
        let error = ManifestEntryError::new(
            7,
            Some("dev-1"),
            &ManifestError::InvalidPublicKey("bad".into()),
        );
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            serde_json::json!({"line": 7, "deviceId": "dev-1", "error": "invalid_public_key", "message": "bad"})
        );
    }
}
