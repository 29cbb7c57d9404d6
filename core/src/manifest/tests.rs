use super::*;
use p256::elliptic_curve::sec1::ToEncodedPoint;

const SIGNER_PEM: &[u8] = include_bytes!("../../tests/manifests/signer.pem");
const SIGNER_DER: &[u8] = include_bytes!("../../tests/manifests/signer.der");
const OTHER_SIGNER_PEM: &[u8] = include_bytes!("../../tests/manifests/other_signer.pem");
const VALID: &[u8] = include_bytes!("../../tests/manifests/valid.json");
const TAMPERED_PAYLOAD: &[u8] = include_bytes!("../../tests/manifests/tampered_payload.json");
const UNKNOWN_SIGNER: &[u8] = include_bytes!("../../tests/manifests/unknown_signer.json");
const UNIQUE_ID_MISMATCH: &[u8] = include_bytes!("../../tests/manifests/unique_id_mismatch.json");
const DEVICE_CERTIFICATE_KEY_MISMATCH: &[u8] =
    include_bytes!("../../tests/manifests/device_certificate_key_mismatch.json");
const DEVICE_CERTIFICATE_WRONG_ISSUER: &[u8] =
    include_bytes!("../../tests/manifests/device_certificate_wrong_issuer.json");
const SERIAL_NUMBER_NOT_PRINTABLE: &[u8] =
    include_bytes!("../../tests/manifests/serial_number_not_printable.json");
const SERIAL_NUMBER_NOT_PRINTABLE_CERT: &[u8] =
    include_bytes!("../../tests/manifests/serial_number_not_printable.der");
const EXPECTED: &str = include_str!("../../tests/manifests/expected.json");

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
