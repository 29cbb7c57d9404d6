//! Fuzz target: manifest file bytes -> device records, through every reader.
//!
//! Each input is read as CSV, as JSON lines and as a Microchip manifest (with the test
//! signer of `core/tests/manifests/`, so signed entries get as far as their
//! signature); the format [`ManifestFormat::detect`] picks is read by the detecting
//! reader, so that path is covered without reading anything twice. For every input it
//! checks that nothing panics and:
//! - a whole-file failure is only ever a Microchip manifest's (`malformed_manifest`);
//! - every record has a device id the default rule accepts, a P-256 key whose
//!   canonical form parses back to it, a line from 1, and no device id twice;
//! - every refused entry has a non-empty code, status 400, and a line from 1 (0 only
//!   for a whole-file failure);
//! - the detecting reader reports the format `detect` names;
//! - a Microchip manifest gives the same entries with both signature backends, ring
//!   and RustCrypto (a differential oracle), checked on one input in eight (chosen
//!   from the bytes, so a failure reproduces): RustCrypto under the sanitizer costs
//!   milliseconds a signature, and `header_to_decision` already compares the two
//!   backends' `verify`, which the manifest reader shares.
//!
//! `bash scripts/fuzz.sh` seeds `fuzz/corpus/manifest_readers/` from
//! `core/tests/manifests/` and CSV and JSON lines built from `core/tests/vectors/`.
#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use provisioner_core::{
    Curve, DeviceIdRule, DeviceKey, ErrorCode, ManifestEntryError, ManifestFormat, ManifestReader,
    ManifestRecord, ManifestSigners, SignatureBackend,
};

type Entries = Result<Vec<Result<ManifestRecord, ManifestEntryError>>, &'static str>;

fn signers() -> ManifestSigners {
    ManifestSigners::from_certificates(include_bytes!("../../core/tests/manifests/signer.der"))
        .expect("the test signer is a certificate")
}

/// A reader forcing `format`, or detecting it (`None`), with the test signer.
fn reader(format: Option<ManifestFormat>) -> &'static ManifestReader {
    static READERS: OnceLock<[ManifestReader; 4]> = OnceLock::new();
    let readers = READERS.get_or_init(|| {
        let forced = |format| {
            ManifestReader::new()
                .with_signers(signers())
                .with_format(format)
        };
        [
            forced(ManifestFormat::Csv),
            forced(ManifestFormat::JsonLines),
            forced(ManifestFormat::Microchip),
            ManifestReader::new().with_signers(signers()),
        ]
    });
    match format {
        Some(ManifestFormat::Csv) => &readers[0],
        Some(ManifestFormat::JsonLines) => &readers[1],
        Some(ManifestFormat::Microchip) => &readers[2],
        None => &readers[3],
    }
}

fn rust_crypto_microchip() -> &'static ManifestReader {
    static READER: OnceLock<ManifestReader> = OnceLock::new();
    READER.get_or_init(|| {
        ManifestReader::new()
            .with_signers(signers())
            .with_format(ManifestFormat::Microchip)
            .with_backend(SignatureBackend::RustCrypto)
    })
}

/// Reads everything, checking each item's own invariants.
fn read_checked(reader: &ManifestReader, format: ManifestFormat, data: &[u8]) -> Entries {
    let entries = match reader.read(data) {
        Ok(entries) => entries,
        Err(error) => {
            assert_eq!(
                format,
                ManifestFormat::Microchip,
                "{format} failed whole: {error:?}"
            );
            assert_eq!(error.code(), "malformed_manifest");
            assert_eq!(error.status(), 400);
            return Err(error.code());
        }
    };
    assert_eq!(entries.format(), format);
    let rule = DeviceIdRule::default();
    let mut ids = HashSet::new();
    let items: Vec<_> = entries.collect();
    for item in &items {
        match item {
            Ok(record) => {
                assert!(record.line >= 1, "record at line 0: {record:?}");
                assert!(
                    rule.check(&record.device_id).is_ok(),
                    "bad id in {record:?}"
                );
                assert!(
                    ids.insert(record.device_id.clone()),
                    "{} twice",
                    record.device_id
                );
                assert_eq!(record.public_key.curve(), Curve::P256);
                assert_eq!(
                    DeviceKey::parse(&record.public_key.canonical()).as_ref(),
                    Ok(&record.public_key),
                    "canonical form does not round-trip"
                );
            }
            Err(error) => {
                assert!(!error.error.is_empty(), "empty code: {error:?}");
                assert!(!error.message.is_empty(), "empty message: {error:?}");
                assert!(error.line >= 1, "entry error at line 0: {error:?}");
            }
        }
    }
    Ok(items)
}

fuzz_target!(|data: &[u8]| {
    let detected = ManifestFormat::detect(data);
    let mut microchip = None;
    for format in [
        ManifestFormat::Csv,
        ManifestFormat::JsonLines,
        ManifestFormat::Microchip,
    ] {
        let forced = (format != detected).then_some(format);
        let entries = read_checked(reader(forced), format, data);
        if format == ManifestFormat::Microchip {
            microchip = Some(entries);
        }
    }
    // The second backend, on one input in eight (see the header).
    if data.iter().fold(0u8, |sum, b| sum.wrapping_add(*b)) % 8 != 0 {
        return;
    }
    let other = read_checked(rust_crypto_microchip(), ManifestFormat::Microchip, data);
    assert_eq!(
        microchip,
        Some(other),
        "ring and RustCrypto read the manifest differently"
    );
});
