//! Devices: the manufacturer manifest import (one transaction), enabling and disabling,
//! and the admin listings.

use provisioner_core::DeviceKey;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{
    open_connection, DeviceQuery, DeviceRecord, ImportError, ImportItem, ImportOptions,
    ImportSummary, RegistryError, SqliteRegistry,
};

impl SqliteRegistry {
    /// Imports manufacturer manifest records in **one transaction**: every record is
    /// classified (new, unchanged, replaced, conflict) and every invalid row counted;
    /// the transaction commits only when there is no invalid row, no refused conflict,
    /// and it is not a dry run. Otherwise nothing is written. A device listed again in
    /// a later item (another file of the same import) is treated like a device
    /// registered before: same key `unchanged`, another key a conflict (or replaced).
    /// Replacing a key leaves the device's certificates as they are.
    ///
    /// Blocking (it runs on the calling thread, on its own connection): call it from
    /// `tokio::task::spawn_blocking` in async code. `items` is consumed lazily, so a
    /// reader on another thread can feed it while rows are inserted.
    ///
    /// # Errors
    /// [`RegistryError::Busy`] when another writer holds the lock past the busy
    /// timeout; any other database failure. Invalid rows and conflicts are not errors:
    /// they are in the summary.
    pub fn import<'a>(
        &self,
        items: impl IntoIterator<Item = ImportItem<'a>>,
        options: &ImportOptions,
    ) -> Result<ImportSummary, RegistryError> {
        let mut connection = open_connection(&self.inner.path, &self.inner.options)?;
        // A big cache keeps the B-tree pages of a large import in memory.
        connection.pragma_update(None, "cache_size", -131_072)?;
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut summary = ImportSummary {
            atomic: true,
            ..ImportSummary::default()
        };
        {
            let mut insert = transaction.prepare(
                "INSERT INTO devices (device_id, public_key, enabled, source_manifest, imported_at)
                 VALUES (?1, ?2, 1, ?3, ?4) ON CONFLICT (device_id) DO NOTHING",
            )?;
            let mut registered = transaction
                .prepare("SELECT public_key, source_manifest FROM devices WHERE device_id = ?1")?;
            let mut replace = transaction.prepare(
                "UPDATE devices SET public_key = ?2, source_manifest = ?3, imported_at = ?4
                 WHERE device_id = ?1",
            )?;
            for item in items {
                let record = match item.entry {
                    Ok(record) => record,
                    Err(error) => {
                        summary.invalid += 1;
                        summary.report(ImportError {
                            file: item.source.to_owned(),
                            line: error.line,
                            device_id: error.device_id,
                            error: error.error.to_owned(),
                            message: error.message,
                        });
                        continue;
                    }
                };
                let key = record.public_key.canonical();
                let id = &record.device_id;
                if insert.execute(params![id, key, item.source, options.now])? == 1 {
                    summary.imported += 1;
                    continue;
                }
                let (stored, stored_from): (String, Option<String>) =
                    registered.query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))?;
                if same_key(&stored, &key, &record.public_key) {
                    summary.unchanged += 1;
                } else if options.replace {
                    replace.execute(params![id, key, item.source, options.now])?;
                    summary.replaced += 1;
                } else {
                    summary.conflicts += 1;
                    let from = stored_from
                        .map(|s| format!(" (from {s})"))
                        .unwrap_or_default();
                    summary.report(ImportError {
                        file: item.source.to_owned(),
                        line: record.line,
                        device_id: Some(id.clone()),
                        error: "key_conflict".into(),
                        message: format!(
                            "device {id:?} is registered with another public key{from}; \
                             import with --replace to replace it with this one"
                        ),
                    });
                }
            }
        }
        if summary.is_clean() && !options.dry_run {
            transaction.commit()?;
            summary.written = true;
        } else {
            transaction.rollback()?;
        }
        Ok(summary)
    }

    /// Enables or disables a device (a disabled device is refused certificates).
    ///
    /// # Errors
    /// [`RegistryError::UnknownDevice`]; database failures.
    pub async fn set_device_enabled(
        &self,
        device_id: &str,
        enabled: bool,
    ) -> Result<(), RegistryError> {
        let id = device_id.to_owned();
        self.write(move |c| {
            let changed = c
                .prepare_cached("UPDATE devices SET enabled = ?2 WHERE device_id = ?1")?
                .execute(params![id, enabled])?;
            if changed == 0 {
                return Err(RegistryError::UnknownDevice(id));
            }
            Ok(())
        })
        .await
    }

    /// How many devices are registered.
    ///
    /// # Errors
    /// Database failures.
    pub async fn count_devices(&self) -> Result<u64, RegistryError> {
        self.read(|c| {
            Ok(c.prepare_cached("SELECT count(*) FROM devices")?
                .query_row([], |row| row.get(0))?)
        })
        .await
    }

    /// One page of devices, by id: those matching `query`, after `query.after`, at most
    /// `query.limit`.
    ///
    /// # Errors
    /// Database failures; [`RegistryError::Corrupt`] for an unreadable stored key.
    pub async fn list_devices(
        &self,
        query: DeviceQuery,
    ) -> Result<Vec<DeviceRecord>, RegistryError> {
        self.read(move |c| {
            let mut conditions = Vec::new();
            let mut values: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(prefix) = query.prefix.filter(|p| !p.is_empty()) {
                // A range, so the primary key index finds the first match and stops after
                // the last: every id with the prefix sorts below prefix + U+10FFFF.
                values.push(format!("{prefix}\u{10FFFF}").into());
                conditions.push(format!("device_id < ?{}", values.len()));
                values.push(prefix.into());
                conditions.push(format!("device_id >= ?{}", values.len()));
            }
            if let Some(enabled) = query.enabled {
                values.push(i64::from(enabled).into());
                conditions.push(format!("enabled = ?{}", values.len()));
            }
            if let Some(after) = query.after {
                values.push(after.into());
                conditions.push(format!("device_id > ?{}", values.len()));
            }
            values.push(i64::try_from(query.limit).unwrap_or(i64::MAX).into());
            let limit = values.len();
            let mut sql = format!("SELECT {DEVICE_COLUMNS} FROM devices");
            if !conditions.is_empty() {
                sql.push_str(" WHERE ");
                sql.push_str(&conditions.join(" AND "));
            }
            sql.push_str(&format!(" ORDER BY device_id LIMIT ?{limit}"));
            let mut statement = c.prepare_cached(&sql)?;
            let rows = statement.query_map(rusqlite::params_from_iter(values), device_from_row)?;
            rows.map(|row| row?).collect()
        })
        .await
    }

    /// One device with where and when it was imported.
    ///
    /// # Errors
    /// Database failures; [`RegistryError::Corrupt`] for an unreadable stored key.
    pub async fn device_record(
        &self,
        device_id: &str,
    ) -> Result<Option<DeviceRecord>, RegistryError> {
        let id = device_id.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = ?1"
            ))?
            .query_row([id], device_from_row)
            .optional()?
            .transpose()
        })
        .await
    }
}

const DEVICE_COLUMNS: &str = "device_id, public_key, enabled, source_manifest, imported_at";

/// Reads a row selected with [`DEVICE_COLUMNS`]; the key is interpreted by the caller's
/// `?` (the outer result is SQLite's, the inner one the stored key's).
fn device_from_row(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<Result<DeviceRecord, RegistryError>> {
    let key: String = row.get(1)?;
    let (device_id, enabled, source_manifest, imported_at) =
        (row.get(0)?, row.get(2)?, row.get(3)?, row.get(4)?);
    Ok(parse_stored_key(&key).map(|public_key| DeviceRecord {
        device_id,
        public_key,
        enabled,
        source_manifest,
        imported_at,
    }))
}

pub(super) fn parse_stored_key(text: &str) -> Result<DeviceKey, RegistryError> {
    DeviceKey::parse(text)
        .map_err(|e| RegistryError::Corrupt(format!("a stored public key does not parse: {e}")))
}

/// Whether a stored key (canonical text, normally) is `key`, whose canonical text is
/// `canonical`.
fn same_key(stored: &str, canonical: &str, key: &DeviceKey) -> bool {
    stored == canonical || DeviceKey::parse(stored).is_ok_and(|k| &k == key)
}
