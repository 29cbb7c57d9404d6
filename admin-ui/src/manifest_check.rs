//! The manifest check the browser runs before anything is sent: the service's own reader
//! (`provisioner_core::ManifestReader`, the code verifier-wasm wraps) marks every row
//! valid or invalid with its reason, so the user sees a bad row before the import.
//!
//! Only the valid rows are then sent, re-encoded as `device_id,public_key` CSV with the
//! canonical key ([`ManifestCheck::valid_csv_batches`]): the service re-checks them.

use provisioner_core::{ManifestFormat, ManifestReader};

/// The rows sent in one import request; the progress bar moves once per batch.
pub const IMPORT_BATCH_ROWS: usize = 500;

/// What the browser found in one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOutcome {
    /// A device id and a P-256 key; the key as base64 SPKI DER.
    Valid {
        /// The key, normalised.
        public_key: String,
    },
    /// Refused, with the same code and message the service would give.
    Invalid {
        /// The stable code (`invalid_public_key`, `invalid_device_id`, ...).
        code: String,
        /// What is wrong and what to fix.
        reason: String,
    },
}

/// One row (line, for CSV and JSON lines) of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowCheck {
    /// 1-based line the row starts on.
    pub line: usize,
    /// The device id, when one could be read.
    pub device_id: Option<String>,
    /// Valid or not, and why.
    pub outcome: RowOutcome,
}

impl RowCheck {
    /// Whether the row yields a device.
    pub fn is_valid(&self) -> bool {
        matches!(self.outcome, RowOutcome::Valid { .. })
    }
}

/// A whole manifest, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestCheck {
    /// The file's name (recorded as the devices' source manifest).
    pub file_name: String,
    /// The format detected.
    pub format: ManifestFormat,
    /// Every row that yields a device or an error, in file order (blank lines, the CSV
    /// header and repeated identical listings yield none).
    pub rows: Vec<RowCheck>,
    /// Listings that repeated an earlier one exactly and were dropped.
    pub duplicates: usize,
    /// Why the file as a whole cannot be imported here, if it cannot.
    pub refused: Option<String>,
}

impl ManifestCheck {
    /// Rows that yield a device.
    pub fn valid(&self) -> usize {
        self.rows.iter().filter(|r| r.is_valid()).count()
    }

    /// Rows refused.
    pub fn invalid(&self) -> usize {
        self.rows.len() - self.valid()
    }

    /// The valid rows as CSV (`device_id,public_key`, no header), in batches of at most
    /// `batch_rows` rows: what the import sends.
    pub fn valid_csv_batches(&self, batch_rows: usize) -> Vec<String> {
        let valid: Vec<(&str, &str)> = self
            .rows
            .iter()
            .filter_map(|r| match (&r.device_id, &r.outcome) {
                (Some(id), RowOutcome::Valid { public_key }) => {
                    Some((id.as_str(), public_key.as_str()))
                }
                _ => None,
            })
            .collect();
        valid
            .chunks(batch_rows.max(1))
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|(id, key)| format!("{id},{key}\n"))
                    .collect::<String>()
            })
            .collect()
    }
}

/// Reads and checks a manifest file as the service would, without sending anything.
///
/// Microchip signed manifests are not checked here: their signatures need the signers'
/// certificates, which the import goes through on the server (`provisioner import
/// --manifest-signer`); [`ManifestCheck::refused`] says so.
pub fn check_manifest(file_name: &str, bytes: &[u8]) -> ManifestCheck {
    let format = ManifestFormat::detect(bytes);
    let mut check = ManifestCheck {
        file_name: file_name.to_owned(),
        format,
        rows: Vec::new(),
        duplicates: 0,
        refused: None,
    };
    if format == ManifestFormat::Microchip {
        check.refused = Some(
            "This is a Microchip signed manifest: its signatures are checked against the signers' certificates, which the dashboard does not hold. Import it on the server with `provisioner import --manifest-signer CERT FILE`.".into(),
        );
        return check;
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        check.refused = Some(
            "The file is empty: choose the manufacturer's manifest (CSV or JSON lines).".into(),
        );
        return check;
    }
    let reader = ManifestReader::new().with_format(format);
    let mut entries = match reader.read(bytes) {
        Ok(entries) => entries,
        Err(e) => {
            check.refused = Some(e.to_string());
            return check;
        }
    };
    for entry in entries.by_ref() {
        check.rows.push(match entry {
            Ok(record) => RowCheck {
                line: record.line,
                device_id: Some(record.device_id),
                outcome: RowOutcome::Valid {
                    public_key: record.public_key.canonical(),
                },
            },
            Err(e) => RowCheck {
                line: e.line,
                device_id: e.device_id,
                outcome: RowOutcome::Invalid {
                    code: e.error.to_owned(),
                    reason: e.message,
                },
            },
        });
    }
    check.duplicates = entries.duplicates();
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The P-256 generator point, SEC1 uncompressed hex: a valid key.
    const KEY_HEX: &str = "046B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C2964FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5";

    #[test]
    fn a_bad_key_is_invalid_with_its_reason_and_the_good_rows_stay_valid() {
        // given a CSV manifest with one good row, one bad key and one bad device id
        let csv =
            format!("device_id,public_key\ndev-1,{KEY_HEX}\ndev-2,not-a-key\nbad id,{KEY_HEX}\n");
        // when it is checked
        let check = check_manifest("m.csv", csv.as_bytes());
        // then
        assert_eq!(check.format, ManifestFormat::Csv);
        assert_eq!((check.valid(), check.invalid()), (1, 2));
        assert_eq!(check.rows[1].line, 3);
        assert_eq!(check.rows[1].device_id.as_deref(), Some("dev-2"));
        match &check.rows[1].outcome {
            RowOutcome::Invalid { code, reason } => {
                assert_eq!(code, "invalid_public_key");
                assert!(!reason.is_empty());
            }
            other => panic!("expected invalid, got {other:?}"),
        }
        assert!(
            matches!(&check.rows[2].outcome, RowOutcome::Invalid { code, .. } if code == "invalid_device_id")
        );
    }

    #[test]
    fn only_valid_rows_are_sent_with_canonical_keys_in_batches() {
        let csv = format!("a,{KEY_HEX}\nb,zz\nc,{KEY_HEX}\nd,{KEY_HEX}\n");
        let check = check_manifest("m.csv", csv.as_bytes());
        let batches = check.valid_csv_batches(2);
        assert_eq!(batches.len(), 2);
        assert!(batches[0].starts_with("a,MFkw"));
        assert!(batches[0].contains("\nc,"));
        assert!(batches[1].starts_with("d,"));
        // and what is sent reads back clean
        let again = check_manifest("m.csv", batches.concat().as_bytes());
        assert_eq!((again.valid(), again.invalid()), (3, 0));
    }

    #[test]
    fn microchip_and_empty_files_are_refused_as_a_whole() {
        let microchip = check_manifest("m.json", b"[{\"payload\": \"x\"}]");
        assert!(microchip.refused.unwrap().contains("--manifest-signer"));
        let empty = check_manifest("m.csv", b"\n  \n");
        assert!(empty.refused.is_some());
    }
}
