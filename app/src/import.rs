//! What a manifest import takes and reports, whatever registry it writes to (the SQLite
//! registry imports in one transaction; DynamoDB in idempotent batches).

use provisioner_core::{ManifestEntryError, ManifestRecord, UnixTime};

/// At most this many errors are listed in an [`ImportSummary`] (all are counted).
pub const MAX_REPORTED_ERRORS: usize = 100;

/// How an import treats what it finds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Replace the key of a known device listed with another key (otherwise a conflict
    /// refuses the whole import).
    pub replace: bool,
    /// Classify and count everything, write nothing.
    pub dry_run: bool,
    /// The import time recorded on new and replaced devices.
    pub now: UnixTime,
}

/// One item of an import: what the manifest reader made of a row, and where it came from.
#[derive(Debug)]
pub struct ImportItem<'a> {
    /// The manifest's name (its file name), recorded as the device's `source_manifest`.
    pub source: &'a str,
    /// The record, or why the row is invalid.
    pub entry: Result<ManifestRecord, ManifestEntryError>,
}

/// A row an import refused: invalid, or a conflict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportError {
    /// The manifest it is in.
    pub file: String,
    /// 1-based line (CSV, JSON lines) or entry (Microchip); 0 for the whole file.
    pub line: usize,
    /// The device id, when one could be read.
    pub device_id: Option<String>,
    /// A stable code: the manifest error's code, or `key_conflict`.
    pub error: String,
    /// What is wrong and what to fix.
    pub message: String,
}

/// What an import did, or (when not written) would have done.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportSummary {
    /// New devices.
    pub imported: u64,
    /// Devices already registered with the same key.
    pub unchanged: u64,
    /// Known devices whose key was replaced (with [`ImportOptions::replace`]).
    pub replaced: u64,
    /// Known devices listed with another key, refused (without `replace`).
    pub conflicts: u64,
    /// Rows that yield no record.
    pub invalid: u64,
    /// The first [`MAX_REPORTED_ERRORS`] invalid rows and conflicts.
    pub errors: Vec<ImportError>,
    /// Whether the import was committed: false for a dry run, or when any row was
    /// invalid or conflicting (then nothing was written).
    pub written: bool,
    /// Whether the writes were all or nothing. True for SQLite (one transaction). False
    /// for DynamoDB, which has no transaction of this size: everything is classified
    /// before anything is written (an invalid row or a conflict still writes nothing),
    /// but an import that fails while writing leaves part of its devices written; running
    /// it again finishes the job (what was written counts as unchanged).
    pub atomic: bool,
}

impl ImportSummary {
    /// Whether the import is acceptable: no invalid row and no refused conflict.
    pub fn is_clean(&self) -> bool {
        self.invalid == 0 && self.conflicts == 0
    }

    /// Keeps `error` for the report, up to the reported maximum.
    pub fn report(&mut self, error: ImportError) {
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(error);
        }
    }
}
