//! What the SQLite contract modules (`registry_contract`, `port_contracts`) share: one
//! database file that several `SqliteRegistry` instances open (as processes do), and a
//! device imported the way a manifest import writes it.

use provisioner_core::{DeviceKey, ManifestReader, UnixTime};
use provisioner_store_local::registry::{ImportItem, ImportOptions, SqliteRegistry};

/// One database file in a directory of its own; each [`SqliteFile::open`] its own
/// connections and writer thread.
pub struct SqliteFile {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl SqliteFile {
    /// A fresh file (created by the first open).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.sqlite3");
        Self { _dir: dir, path }
    }

    /// A new registry instance over the file.
    pub fn open(&self) -> SqliteRegistry {
        SqliteRegistry::open(&self.path).unwrap()
    }
}

/// Imports `device_id` with `key` into `registry` as the one row of a manifest named
/// `source`, at `now`; it must be imported.
pub fn import_device(
    registry: &SqliteRegistry,
    source: &'static str,
    device_id: &str,
    key: &DeviceKey,
    now: UnixTime,
) {
    let csv = format!("{device_id},{key}\n");
    let reader = ManifestReader::new();
    let entries = reader.read(csv.as_bytes()).unwrap();
    let summary = registry
        .import(
            entries.map(|entry| ImportItem { source, entry }),
            &ImportOptions {
                now,
                ..ImportOptions::default()
            },
        )
        .unwrap();
    assert_eq!(summary.imported, 1);
}
