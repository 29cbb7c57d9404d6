//! Fuzz target: public-key text and bytes -> the normalised `DeviceKey`.
//!
//! For every input it checks that nothing panics and:
//! - if the bytes are UTF-8, `DeviceKey::parse` either refuses with a non-empty code and
//!   status 400, or accepts a key that every other encoding of it reads back as the same
//!   key: its canonical form (base64 SPKI DER), SPKI PEM, uncompressed SEC1 hex (upper
//!   and lower case, `0x` prefix, `:` separators), raw X||Y hex of a P-256 key, the SPKI
//!   DER itself and the SEC1 point itself;
//! - the raw bytes as SPKI DER (`from_spki_der`) and as a SEC1 point on each curve
//!   (`from_sec1`) give keys that round-trip the same way;
//! - an accepted key's point is `04 || X || Y` of its curve's size.
//!
//! `bash scripts/fuzz.sh` seeds `fuzz/corpus/key_normalisation/` from the key inputs
//! and registered keys of `core/tests/vectors/vectors.json` and its DER files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisioner_core::{Curve, DeviceKey, ErrorCode, KeyError};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pem(key: &DeviceKey) -> String {
    let base64 = key.canonical();
    let mut text = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in base64.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        text.push('\n');
    }
    text.push_str("-----END PUBLIC KEY-----\n");
    text
}

fn check_refusal(error: &KeyError) {
    assert!(!error.code().is_empty(), "empty code for {error:?}");
    assert_eq!(error.status(), 400, "status for {error:?}");
    assert!(!error.to_string().is_empty());
}

/// Every encoding of an accepted key reads back as that key.
fn check_key(key: &DeviceKey) {
    let point = key.sec1_uncompressed();
    assert_eq!(point.len(), 1 + 2 * key.curve().field_len(), "point length");
    assert_eq!(point[0], 0x04, "not uncompressed");
    let lower = hex(point);
    let mut encodings = vec![
        key.canonical(),
        pem(key),
        lower.clone(),
        lower.to_ascii_uppercase(),
        format!("0x{lower}"),
        point
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
    ];
    if key.curve() == Curve::P256 {
        encodings.push(hex(&point[1..]));
    }
    for text in &encodings {
        assert_eq!(
            DeviceKey::parse(text).as_ref(),
            Ok(key),
            "{text:?} reads differently"
        );
    }
    assert_eq!(DeviceKey::from_spki_der(&key.spki_der()).as_ref(), Ok(key));
    assert_eq!(DeviceKey::from_sec1(key.curve(), point).as_ref(), Ok(key));
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match DeviceKey::parse(text) {
            Ok(key) => check_key(&key),
            Err(error) => check_refusal(&error),
        }
    }
    let from_bytes = [
        DeviceKey::from_spki_der(data),
        DeviceKey::from_sec1(Curve::P256, data),
        DeviceKey::from_sec1(Curve::P384, data),
    ];
    for result in &from_bytes {
        match result {
            Ok(key) => check_key(key),
            Err(error) => check_refusal(error),
        }
    }
});
