//! The SQLite registry: devices, their certificates, the local thing registry, the CAs,
//! the audit log and CA rotation jobs, in one database file
//! ([`DataDir::registry_path`](super::datadir::DataDir::registry_path)).
//!
//! [`SqliteRegistry`] implements [`DeviceRegistry`], [`ThingRegistry`] and [`AuditLog`],
//! and offers the admin operations (manifest import, listing and revoking certificates,
//! CRL entries, the CA rotation cascade) as inherent methods.
//!
//! # Concurrency and durability
//!
//! - The database is in WAL mode with `synchronous=FULL` (the default; see
//!   [`RegistryOptions::synchronous_full`]): a commit survives a crash of the process
//!   and a power loss; group commit makes that one fsync per batch.
//! - **One writer thread** owns the write connection. Writes are sent to it over a
//!   channel and **group-committed**: it takes whatever is queued (up to
//!   [`RegistryOptions::max_batch`]), runs each request in its own savepoint inside one
//!   transaction (a failing request rolls back alone), commits, and only then answers
//!   each caller. So [`DeviceRegistry::record_issuance`] returns only once the commit
//!   that contains it is done: a device is never handed an unrecorded certificate.
//! - **Reads** use a small pool of read-only connections; WAL lets them proceed while the
//!   writer commits, and they see every write that has already been answered. The
//!   request path's indexed point lookups ([`DeviceRegistry`]'s reads) run on the calling
//!   task: they take microseconds, less than a round trip to a blocking thread. Scans
//!   (listings, CRL entries, the audit log) run on tokio's blocking threads.
//! - **Audit events** go through the same writer, and [`AuditLog::record`] returns once
//!   the batch holding the event has committed: no allow or deny is lost to a crash.
//! - A manifest [import](SqliteRegistry::import) runs as **one transaction** on its own
//!   connection: all or nothing. While it runs, the writer waits for the lock up to
//!   [`RegistryOptions::busy_timeout`] and then answers
//!   [`PortError::Unavailable`] (503 with `Retry-After`).
//!
//! # Schema
//!
//! Migrations are numbered by `PRAGMA user_version`, each applied in its own transaction
//! ([`SCHEMA_VERSION`] is the latest). Times are Unix seconds; keys are the canonical
//! text of [`DeviceKey`] (base64 SPKI DER); certificate statuses are `ACTIVE`,
//! `INACTIVE`, `REVOKED`; revocation reasons are RFC 5280 names.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use provisioner_core::{
    AuditEvent, AuditLog, CertificateRecord, CertificateStatus, ClaimOutcome, Device, DeviceKey,
    DeviceRegistry, IssuanceClaim, PortError, RevocationReason, ThingRegistry, UnixTime,
};

use super::claims;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

/// The policy attached to every thing the local thing registry creates.
pub const DEVICE_POLICY: &str = "provisioner-device-policy";

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Read connections, and reads running at once: a few suffice for point lookups, and
/// more only add threads contending for SQLite's and the allocator's locks.
const READER_POOL: usize = 4;

/// Schema migrations: entry `n` takes the database from version `n` to `n + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "
    CREATE TABLE devices (
        device_id       TEXT PRIMARY KEY NOT NULL,
        public_key      TEXT NOT NULL,
        enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
        source_manifest TEXT,
        imported_at     INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE certificates (
        certificate_id    TEXT PRIMARY KEY NOT NULL,
        device_id         TEXT NOT NULL REFERENCES devices (device_id),
        serial            TEXT NOT NULL,
        issuer            TEXT NOT NULL,
        public_key        TEXT NOT NULL,
        issued_at         INTEGER NOT NULL,
        not_before        INTEGER NOT NULL,
        not_after         INTEGER NOT NULL,
        status            TEXT NOT NULL CHECK (status IN ('ACTIVE', 'INACTIVE', 'REVOKED')),
        revoked_at        INTEGER,
        revocation_reason TEXT,
        certificate_pem   TEXT NOT NULL,
        CHECK ((status = 'REVOKED') = (revoked_at IS NOT NULL AND revocation_reason IS NOT NULL))
    );
    CREATE INDEX certificates_by_device ON certificates (device_id);
    CREATE INDEX certificates_by_issuer_status ON certificates (issuer, status);

    CREATE TABLE things (
        name       TEXT PRIMARY KEY NOT NULL,
        policy     TEXT NOT NULL,
        created_at INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE thing_principals (
        thing          TEXT NOT NULL REFERENCES things (name),
        certificate_id TEXT NOT NULL REFERENCES certificates (certificate_id),
        attached_at    INTEGER NOT NULL,
        PRIMARY KEY (thing, certificate_id)
    ) WITHOUT ROWID;
    CREATE INDEX thing_principals_by_certificate ON thing_principals (certificate_id);

    CREATE TABLE cas (
        ca_id           TEXT PRIMARY KEY NOT NULL,
        certificate_pem TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('current', 'previous', 'revoked')),
        created_at      INTEGER NOT NULL,
        revoked_at      INTEGER
    );
    CREATE UNIQUE INDEX cas_one_current ON cas (state) WHERE state = 'current';

    CREATE TABLE audit (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        at             INTEGER NOT NULL,
        device_id      TEXT,
        decision       TEXT NOT NULL,
        code           TEXT NOT NULL,
        remote_addr    TEXT,
        fingerprint    TEXT,
        certificate_id TEXT
    );
    CREATE INDEX audit_by_at ON audit (at);

    CREATE TABLE rotation_jobs (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        old_ca        TEXT NOT NULL,
        new_ca        TEXT NOT NULL,
        started_at    INTEGER NOT NULL,
        finished_at   INTEGER,
        revoked_count INTEGER NOT NULL DEFAULT 0
    );
    ",
    // 2: the admin API's newest-first listings: certificates by issue time, and a
    // device's audit events, without scanning whole tables.
    "
    CREATE INDEX certificates_by_issued_at ON certificates (issued_at, certificate_id);
    CREATE INDEX audit_by_device ON audit (device_id, id);
    ",
    // 3: the per-device issuance claims (see `claims`).
    super::claims::MIGRATION,
];

use super::registry_error::is_foreign_key_violation;
pub use super::registry_error::RegistryError;
pub use provisioner_app::import::{
    ImportError, ImportItem, ImportOptions, ImportSummary, MAX_REPORTED_ERRORS,
};

const CERTIFICATE_COLUMNS: &str = "certificate_id, device_id, serial, issuer, public_key, \
     issued_at, not_before, not_after, status, revoked_at, revocation_reason, certificate_pem";

// ---------------------------------------------------------------------------------
// Errors and options
// ---------------------------------------------------------------------------------

/// How the registry is opened.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// `synchronous=FULL` instead of `NORMAL`: every commit is also fsynced, so it
    /// survives power loss, not only a crash of the process. Group commit makes this one
    /// fsync per batch, not per certificate.
    pub synchronous_full: bool,
    /// How long a connection waits for another's write lock before failing with
    /// [`RegistryError::Busy`].
    pub busy_timeout: Duration,
    /// At most this many writes are committed together.
    pub max_batch: usize,
}

impl Default for RegistryOptions {
    /// `synchronous=FULL` (a certificate a device holds survives a power cut too; group
    /// commit makes it one fsync per batch, measured at no cost here), a 5 s busy
    /// timeout, batches of up to 256 writes.
    fn default() -> Self {
        Self {
            synchronous_full: true,
            busy_timeout: Duration::from_secs(5),
            max_batch: 256,
        }
    }
}

// ---------------------------------------------------------------------------------
// Admin types
// ---------------------------------------------------------------------------------

pub use provisioner_app::fleet::{DeviceQuery, DeviceRecord, HourlyDecisions};

/// Which certificates [`SqliteRegistry::list_certificates`] returns (all when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateFilter {
    /// Only this device's.
    pub device_id: Option<String>,
    /// Only those in this status.
    pub status: Option<CertificateStatus>,
    /// Only those issued by this CA.
    pub issuer: Option<String>,
    /// At most this many (oldest first).
    pub limit: Option<usize>,
}

/// The outcome of [`SqliteRegistry::revoke_certificate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The certificate as now recorded (status REVOKED). The CRL of its issuer
    /// (`certificate.issuer`) must be regenerated when `already_revoked` is false.
    pub certificate: CertificateRecord,
    /// True when it was revoked before this call: nothing changed, and the recorded
    /// time and reason are the earlier ones.
    pub already_revoked: bool,
}

/// One entry of a CRL: a revoked certificate of one issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Serial number, hex.
    pub serial: String,
    /// When it was revoked.
    pub revoked_at: UnixTime,
    /// Why.
    pub reason: RevocationReason,
}

/// The state of a CA the service has issued with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaState {
    /// The CA that issues now (at most one).
    Current,
    /// Replaced by a newer CA; its certificates may still be valid.
    Previous,
    /// Revoked: its certificates are being, or have been, revoked.
    Revoked,
}

impl CaState {
    /// The name stored in the registry: `current`, `previous`, `revoked`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Previous => "previous",
            Self::Revoked => "revoked",
        }
    }

    fn from_name(name: &str) -> Result<Self, RegistryError> {
        match name {
            "current" => Ok(Self::Current),
            "previous" => Ok(Self::Previous),
            "revoked" => Ok(Self::Revoked),
            other => Err(RegistryError::Corrupt(format!(
                "unknown CA state {other:?}"
            ))),
        }
    }
}

/// A CA as the registry records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaRecord {
    /// The CA's id (what [`CertificateRecord::issuer`] names).
    pub ca_id: String,
    /// Its certificate, PEM.
    pub certificate_pem: String,
    /// Its state.
    pub state: CaState,
    /// When it was first recorded.
    pub created_at: UnixTime,
    /// When it was revoked.
    pub revoked_at: Option<UnixTime>,
}

/// Where a page of [`SqliteRegistry::certificates_newest_first`] starts: the position of
/// the last certificate of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePosition {
    /// Its issue time.
    pub issued_at: UnixTime,
    /// Its id (orders certificates issued in the same second).
    pub certificate_id: String,
}

/// A thing of the local thing registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thing {
    /// The thing name (the device id).
    pub name: String,
    /// The attached policy.
    pub policy: String,
    /// When it was created.
    pub created_at: UnixTime,
    /// The certificate ids attached as principals, oldest first.
    pub principals: Vec<String>,
}

/// An audit event read back, with its position in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Increasing id (insertion order).
    pub id: i64,
    /// The event (`decision` is `allow`, `deny`, or `unknown` for any other stored value).
    pub event: AuditEvent,
}

/// A resumable CA rotation: the certificates of `old_ca` are revoked in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationJob {
    /// The job id.
    pub id: i64,
    /// The CA being retired.
    pub old_ca: String,
    /// The CA that replaces it.
    pub new_ca: String,
    /// When the job started.
    pub started_at: UnixTime,
    /// When the cascade finished.
    pub finished_at: Option<UnixTime>,
    /// Certificates revoked so far by this job.
    pub revoked_count: u64,
}

// ---------------------------------------------------------------------------------
// The registry
// ---------------------------------------------------------------------------------

/// The SQLite registry (see the module docs for its concurrency and durability).
///
/// Cheap to clone: clones share the writer thread and the read pool. The writer thread
/// stops, after committing what is queued, when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct SqliteRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    options: RegistryOptions,
    /// `None` only while dropping.
    writer: Option<mpsc::Sender<Box<dyn WriteJob>>>,
    writer_thread: Option<JoinHandle<()>>,
    readers: Mutex<Vec<Connection>>,
    /// One permit per pooled read connection: reads beyond them wait here rather than
    /// each taking a blocking thread and opening a connection of its own.
    read_permits: tokio::sync::Semaphore,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel lets the writer commit what is queued and exit.
        drop(self.writer.take());
        if let Some(thread) = self.writer_thread.take() {
            if thread.join().is_err() {
                tracing::error!("the registry writer thread panicked");
            }
        }
    }
}

impl SqliteRegistry {
    /// Opens (creating it if needed) the registry at `path` with the default options,
    /// and migrates its schema. Blocking: call it at start-up.
    ///
    /// # Errors
    /// [`RegistryError::Open`] when the file cannot be opened or set up,
    /// [`RegistryError::SchemaTooNew`] when a newer build wrote it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, RegistryError> {
        Self::open_with(path, RegistryOptions::default())
    }

    /// Opens the registry with chosen options. Blocking.
    ///
    /// # Errors
    /// As [`SqliteRegistry::open`].
    pub fn open_with(
        path: impl AsRef<Path>,
        options: RegistryOptions,
    ) -> Result<Self, RegistryError> {
        let path = path.as_ref().to_path_buf();
        let open_error = |source| RegistryError::Open {
            path: path.clone(),
            source,
        };
        let mut connection = open_connection(&path, &options).map_err(open_error)?;
        migrate(&mut connection, &path)?;
        let (sender, receiver) = mpsc::channel::<Box<dyn WriteJob>>();
        let max_batch = options.max_batch.max(1);
        let writer_thread = std::thread::Builder::new()
            .name("registry-writer".into())
            .spawn(move || run_writer(&connection, &receiver, max_batch))
            .map_err(|e| {
                RegistryError::Commit(format!("cannot start the registry writer thread: {e}"))
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                options,
                writer: Some(sender),
                writer_thread: Some(writer_thread),
                readers: Mutex::new(Vec::new()),
                read_permits: tokio::sync::Semaphore::new(READER_POOL),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Waits until every write queued before this call (audit events included) is
    /// committed.
    ///
    /// # Errors
    /// [`RegistryError::WriterStopped`], or the failure of the batch.
    pub async fn flush(&self) -> Result<(), RegistryError> {
        self.write(|_| Ok(())).await
    }

    /// Checks the database: `PRAGMA integrity_check` must answer `ok` and
    /// `PRAGMA foreign_key_check` nothing.
    ///
    /// # Errors
    /// [`RegistryError::Corrupt`] with what the checks found.
    pub async fn integrity_check(&self) -> Result<(), RegistryError> {
        self.read(|c| {
            let mut statement = c.prepare("PRAGMA integrity_check")?;
            let problems = statement
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            if problems != ["ok"] {
                return Err(RegistryError::Corrupt(problems.join("; ")));
            }
            let mut statement = c.prepare("PRAGMA foreign_key_check")?;
            let orphans = statement
                .query_map([], |row| {
                    Ok(format!(
                        "a row of {} refers to a missing row of {}",
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(2)?
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            if !orphans.is_empty() {
                return Err(RegistryError::Corrupt(orphans.join("; ")));
            }
            Ok(())
        })
        .await
    }

    // --- devices --------------------------------------------------------------

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

    // --- certificates ---------------------------------------------------------

    /// The certificates that match `filter`, oldest first.
    ///
    /// # Errors
    /// Database failures; [`RegistryError::Corrupt`] for an unreadable stored value.
    pub async fn list_certificates(
        &self,
        filter: CertificateFilter,
    ) -> Result<Vec<CertificateRecord>, RegistryError> {
        self.read(move |c| select_certificates(c, filter, None, "ASC"))
            .await
    }

    /// One page of the certificates that match `filter`, newest first (by issue time,
    /// then id): those after `before` (the last of the previous page), at most
    /// `filter.limit` (all when `None`).
    ///
    /// # Errors
    /// Database failures; [`RegistryError::Corrupt`] for an unreadable stored value.
    pub async fn certificates_newest_first(
        &self,
        filter: CertificateFilter,
        before: Option<CertificatePosition>,
    ) -> Result<Vec<CertificateRecord>, RegistryError> {
        self.read(move |c| select_certificates(c, filter, before, "DESC"))
            .await
    }

    /// Revokes one certificate at `now` for `reason`, and returns it as recorded.
    ///
    /// A certificate already revoked is not an error: it is returned unchanged with
    /// [`Revocation::already_revoked`] set (its first time and reason stand).
    ///
    /// # Errors
    /// [`RegistryError::UnknownCertificate`]; database failures.
    pub async fn revoke_certificate(
        &self,
        certificate_id: &str,
        reason: RevocationReason,
        now: UnixTime,
    ) -> Result<Revocation, RegistryError> {
        let id = certificate_id.to_owned();
        self.write(move |c| {
            let changed = c
                .prepare_cached(
                    "UPDATE certificates SET status = 'REVOKED', revoked_at = ?2, revocation_reason = ?3
                     WHERE certificate_id = ?1 AND status != 'REVOKED'",
                )?
                .execute(params![id, now, reason.name()])?;
            let certificate =
                query_certificate(c, &id)?.ok_or_else(|| RegistryError::UnknownCertificate(id))?;
            Ok(Revocation {
                certificate,
                already_revoked: changed == 0,
            })
        })
        .await
    }

    /// The revoked certificates of one issuer, for its CRL, by serial.
    ///
    /// # Errors
    /// Database failures; [`RegistryError::Corrupt`] for an unknown stored reason.
    pub async fn revoked_for_issuer(
        &self,
        ca_id: &str,
    ) -> Result<Vec<RevokedEntry>, RegistryError> {
        let ca = ca_id.to_owned();
        self.read(move |c| {
            let mut statement = c.prepare_cached(
                "SELECT serial, revoked_at, revocation_reason FROM certificates
                 WHERE issuer = ?1 AND status = 'REVOKED' ORDER BY serial",
            )?;
            let rows = statement.query_map([ca], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })?;
            rows.map(|row| {
                let (serial, revoked_at, reason) = row?;
                Ok(RevokedEntry {
                    serial,
                    revoked_at,
                    reason: reason_from_name(&reason)?,
                })
            })
            .collect()
        })
        .await
    }

    /// How many certificates of `ca_id` are revoked: it changes exactly when one more
    /// is (a revocation is final and no row is deleted), so the CRL refresher compares it
    /// instead of reading every entry. Counted on the `(issuer, status)` index alone.
    ///
    /// # Errors
    /// Database failures.
    pub async fn revoked_count(&self, ca_id: &str) -> Result<u64, RegistryError> {
        let ca = ca_id.to_owned();
        self.read(move |c| {
            let count: i64 = c
                .prepare_cached(
                    "SELECT count(*) FROM certificates WHERE issuer = ?1 AND status = 'REVOKED'",
                )?
                .query_row([ca], |row| row.get(0))?;
            Ok(u64::try_from(count).unwrap_or_default())
        })
        .await
    }

    /// Up to `limit` ids of certificates issued by `ca_id` that are not revoked (ACTIVE
    /// or INACTIVE): the next batch of a rotation cascade.
    ///
    /// # Errors
    /// Database failures.
    pub async fn active_issued_by(
        &self,
        ca_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, RegistryError> {
        let ca = ca_id.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            let mut statement = c.prepare_cached(
                "SELECT certificate_id FROM certificates
                 WHERE issuer = ?1 AND status IN ('ACTIVE', 'INACTIVE') LIMIT ?2",
            )?;
            let ids = statement
                .query_map(params![ca, limit], |row| row.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(ids)
        })
        .await
    }

    /// Revokes the listed certificates that are not yet revoked, in one commit, and
    /// returns how many it revoked. With `job`, adds that count to the rotation job's
    /// `revoked_count` in the same commit, so a cascade resumes where it stopped.
    ///
    /// # Errors
    /// [`RegistryError::UnknownRotationJob`]; database failures.
    pub async fn revoke_batch(
        &self,
        certificate_ids: Vec<String>,
        reason: RevocationReason,
        now: UnixTime,
        job: Option<i64>,
    ) -> Result<u64, RegistryError> {
        self.write(move |c| {
            let mut revoke = c.prepare_cached(
                "UPDATE certificates SET status = 'REVOKED', revoked_at = ?2, revocation_reason = ?3
                 WHERE certificate_id = ?1 AND status != 'REVOKED'",
            )?;
            let mut revoked = 0u64;
            for id in &certificate_ids {
                revoked += revoke.execute(params![id, now, reason.name()])? as u64;
            }
            if let Some(job) = job {
                let changed = c
                    .prepare_cached(
                        "UPDATE rotation_jobs SET revoked_count = revoked_count + ?2 WHERE id = ?1",
                    )?
                    .execute(params![job, revoked])?;
                if changed == 0 {
                    return Err(RegistryError::UnknownRotationJob(job));
                }
            }
            Ok(revoked)
        })
        .await
    }

    // --- CAs and rotation -----------------------------------------------------

    /// Records a CA, or changes its state. Recording one as [`CaState::Current`] makes
    /// the previous current CA [`CaState::Previous`] in the same commit; recording one
    /// as [`CaState::Revoked`] sets its `revoked_at` (once). Its certificate and
    /// `created_at` are kept from the first recording.
    ///
    /// # Errors
    /// Database failures.
    pub async fn record_ca(
        &self,
        ca_id: &str,
        certificate_pem: &str,
        state: CaState,
        now: UnixTime,
    ) -> Result<(), RegistryError> {
        let (ca, pem) = (ca_id.to_owned(), certificate_pem.to_owned());
        self.write(move |c| {
            if state == CaState::Current {
                c.prepare_cached(
                    "UPDATE cas SET state = 'previous' WHERE state = 'current' AND ca_id != ?1",
                )?
                .execute([&ca])?;
            }
            let revoked_at = (state == CaState::Revoked).then_some(now);
            c.prepare_cached(
                "INSERT INTO cas (ca_id, certificate_pem, state, created_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (ca_id) DO UPDATE SET state = excluded.state,
                     revoked_at = coalesce(cas.revoked_at, excluded.revoked_at)",
            )?
            .execute(params![ca, pem, state.name(), now, revoked_at])?;
            Ok(())
        })
        .await
    }

    /// Every CA recorded, oldest first.
    ///
    /// # Errors
    /// Database failures; [`RegistryError::Corrupt`] for an unknown stored state.
    pub async fn cas(&self) -> Result<Vec<CaRecord>, RegistryError> {
        self.read(|c| {
            let mut statement = c.prepare_cached(
                "SELECT ca_id, certificate_pem, state, created_at, revoked_at FROM cas
                 ORDER BY created_at, ca_id",
            )?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, Option<i64>>(4)?,
                ))
            })?;
            rows.map(|row| {
                let (ca_id, certificate_pem, state, created_at, revoked_at) = row?;
                Ok(CaRecord {
                    ca_id,
                    certificate_pem,
                    state: CaState::from_name(&state)?,
                    created_at,
                    revoked_at,
                })
            })
            .collect()
        })
        .await
    }

    /// Starts the cascade from `old_ca` to `new_ca`, or returns the unfinished job for
    /// the same pair (so an interrupted rotation resumes instead of starting over).
    ///
    /// # Errors
    /// Database failures.
    pub async fn start_rotation(
        &self,
        old_ca: &str,
        new_ca: &str,
        now: UnixTime,
    ) -> Result<RotationJob, RegistryError> {
        let (old, new) = (old_ca.to_owned(), new_ca.to_owned());
        self.write(move |c| {
            let existing = c
                .prepare_cached(
                    "SELECT id FROM rotation_jobs
                     WHERE old_ca = ?1 AND new_ca = ?2 AND finished_at IS NULL
                     ORDER BY id LIMIT 1",
                )?
                .query_row([&old, &new], |row| row.get::<_, i64>(0))
                .optional()?;
            let id = match existing {
                Some(id) => id,
                None => {
                    c.prepare_cached(
                        "INSERT INTO rotation_jobs (old_ca, new_ca, started_at) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![old, new, now])?;
                    c.last_insert_rowid()
                }
            };
            query_rotation(c, id)
        })
        .await
    }

    /// Marks a rotation job finished and returns it.
    ///
    /// # Errors
    /// [`RegistryError::UnknownRotationJob`]; database failures.
    pub async fn finish_rotation(
        &self,
        job: i64,
        now: UnixTime,
    ) -> Result<RotationJob, RegistryError> {
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE rotation_jobs SET finished_at = coalesce(finished_at, ?2) WHERE id = ?1",
            )?
            .execute(params![job, now])?;
            query_rotation(c, job)
        })
        .await
    }

    /// The rotation jobs not yet finished, oldest first (to resume at start-up).
    ///
    /// # Errors
    /// Database failures.
    pub async fn unfinished_rotations(&self) -> Result<Vec<RotationJob>, RegistryError> {
        self.read(|c| {
            let mut statement = c.prepare_cached(&format!(
                "SELECT {ROTATION_COLUMNS} FROM rotation_jobs WHERE finished_at IS NULL ORDER BY id"
            ))?;
            let jobs = statement
                .query_map([], rotation_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(jobs)
        })
        .await
    }

    /// The latest rotation job, finished or not.
    ///
    /// # Errors
    /// Database failures.
    pub async fn last_rotation(&self) -> Result<Option<RotationJob>, RegistryError> {
        self.read(|c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {ROTATION_COLUMNS} FROM rotation_jobs ORDER BY id DESC LIMIT 1"
            ))?
            .query_row([], rotation_from_row)
            .optional()?)
        })
        .await
    }

    // --- things and audit -----------------------------------------------------

    /// A thing of the local thing registry, with its principals.
    ///
    /// # Errors
    /// Database failures.
    pub async fn thing(&self, name: &str) -> Result<Option<Thing>, RegistryError> {
        let name = name.to_owned();
        self.read(move |c| {
            let Some((policy, created_at)) = c
                .prepare_cached("SELECT policy, created_at FROM things WHERE name = ?1")?
                .query_row([&name], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?
            else {
                return Ok(None);
            };
            let principals = c
                .prepare_cached(
                    "SELECT certificate_id FROM thing_principals WHERE thing = ?1
                     ORDER BY attached_at, certificate_id",
                )?
                .query_map([&name], |row| row.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(Some(Thing {
                name,
                policy,
                created_at,
                principals,
            }))
        })
        .await
    }

    /// Audit events at or after `since`, oldest first, at most `limit`.
    ///
    /// # Errors
    /// Database failures.
    pub async fn audit_since(
        &self,
        since: UnixTime,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, RegistryError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            let mut statement = c.prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit WHERE at >= ?1 ORDER BY at, id LIMIT ?2"
            ))?;
            let entries = statement
                .query_map(params![since, limit], audit_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(entries)
        })
        .await
    }

    /// One page of the audit log, newest first: events before the one with id `before`
    /// (the last of the previous page), of `device_id` only when given, at most `limit`.
    ///
    /// # Errors
    /// Database failures.
    pub async fn audit_newest_first(
        &self,
        before: Option<i64>,
        device_id: Option<String>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, RegistryError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            let mut statement = c.prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit
                 WHERE id < ?1 AND (?2 IS NULL OR device_id = ?2)
                 ORDER BY id DESC LIMIT ?3"
            ))?;
            let entries = statement
                .query_map(
                    params![before.unwrap_or(i64::MAX), device_id, limit],
                    audit_from_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(entries)
        })
        .await
    }

    /// Allow and deny decisions per hour, for events at or after `since` and before
    /// `until`, oldest hour first; hours without events are left out.
    ///
    /// # Errors
    /// Database failures.
    pub async fn decisions_per_hour(
        &self,
        since: UnixTime,
        until: UnixTime,
    ) -> Result<Vec<HourlyDecisions>, RegistryError> {
        self.read(move |c| {
            let mut statement = c.prepare_cached(
                "SELECT at - (at % 3600) AS hour,
                        sum(decision = 'allow'), sum(decision = 'deny')
                 FROM audit WHERE at >= ?1 AND at < ?2
                 GROUP BY hour ORDER BY hour",
            )?;
            let hours = statement
                .query_map(params![since, until], |row| {
                    Ok(HourlyDecisions {
                        hour: row.get(0)?,
                        allow: row.get(1)?,
                        deny: row.get(2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(hours)
        })
        .await
    }

    // --- plumbing -------------------------------------------------------------

    /// Runs `work` on the writer thread, in its own savepoint of the next batch, and
    /// answers once that batch has committed.
    async fn write<T, F>(&self, work: F) -> Result<T, RegistryError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, RegistryError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.inner.submit(Box::new(ReplyJob {
            work: Some(work),
            result: None,
            reply,
        }))?;
        answer.await.map_err(|_| RegistryError::WriterStopped)?
    }

    /// Runs `work` (a scan: listings, CRL entries) on a pooled read-only connection, on
    /// a blocking thread.
    async fn read<T, F>(&self, work: F) -> Result<T, RegistryError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, RegistryError> + Send + 'static,
    {
        let _permit = self
            .inner
            .read_permits
            .acquire()
            .await
            .map_err(|_| RegistryError::Commit("the registry is shutting down".into()))?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.with_reader(work))
            .await
            .map_err(|e| RegistryError::Commit(format!("a registry read was aborted: {e}")))?
    }

    /// Runs `work` (an indexed point lookup of a request's path) on a pooled read-only
    /// connection, on the calling task's thread: such a read takes microseconds, less
    /// than handing it to a blocking thread and back (measured: about 25 us of CPU per
    /// read), and in WAL mode it does not wait for the writer.
    fn read_now<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        self.inner.with_reader(work)
    }
}

impl Inner {
    fn submit(&self, job: Box<dyn WriteJob>) -> Result<(), RegistryError> {
        self.writer
            .as_ref()
            .ok_or(RegistryError::WriterStopped)?
            .send(job)
            .map_err(|_| RegistryError::WriterStopped)
    }

    fn with_reader<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let pooled = self.readers.lock().ok().and_then(|mut pool| pool.pop());
        let connection = match pooled {
            Some(connection) => connection,
            None => open_reader(&self.path, &self.options)?,
        };
        let result = work(&connection);
        if let Ok(mut pool) = self.readers.lock() {
            if pool.len() < READER_POOL {
                pool.push(connection);
            }
        }
        result
    }
}

// ---------------------------------------------------------------------------------
// The ports
// ---------------------------------------------------------------------------------

impl DeviceRegistry for SqliteRegistry {
    async fn device(&self, device_id: &str) -> Result<Option<Device>, PortError> {
        let id = device_id.to_owned();
        let device = self.read_now(move |c| {
            let row = c
                .prepare_cached("SELECT public_key, enabled FROM devices WHERE device_id = ?1")?
                .query_row([&id], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?))
                })
                .optional()?;
            row.map(|(key, enabled)| {
                Ok(Device {
                    public_key: parse_stored_key(&key)?,
                    device_id: id,
                    enabled,
                })
            })
            .transpose()
        })?;
        Ok(device)
    }

    async fn certificates_of(
        &self,
        device_id: &str,
        issued_since: UnixTime,
    ) -> Result<Vec<CertificateRecord>, PortError> {
        let id = device_id.to_owned();
        let certificates = self.read_now(move |c| {
            let mut statement = c.prepare_cached(&format!(
                "SELECT {CERTIFICATE_COLUMNS} FROM certificates
                     WHERE device_id = ?1 AND (status = 'ACTIVE' OR issued_at >= ?2)
                     ORDER BY issued_at, certificate_id"
            ))?;
            let rows = statement.query_map(
                rusqlite::params![id, issued_since],
                StoredCertificate::from_row,
            )?;
            let mut keys = KeyMemo::default();
            rows.map(|row| row?.into_record(&mut keys)).collect()
        })?;
        Ok(certificates)
    }

    async fn certificate(
        &self,
        certificate_id: &str,
    ) -> Result<Option<CertificateRecord>, PortError> {
        let id = certificate_id.to_owned();
        Ok(self.read_now(move |c| query_certificate(c, &id))?)
    }

    /// One write through the writer thread: a conditional upsert of the claim row.
    async fn claim_issuance(
        &self,
        device_id: &str,
        holder: &str,
        now: UnixTime,
        ttl_secs: i64,
    ) -> Result<ClaimOutcome, PortError> {
        let (id, holder) = (device_id.to_owned(), holder.to_owned());
        Ok(self
            .write(move |c| claims::take(c, &id, &holder, now, ttl_secs))
            .await?)
    }

    async fn release_claim(&self, claim: &IssuanceClaim) -> Result<(), PortError> {
        let claim = claim.clone();
        self.write(move |c| claims::release(c, &claim)).await?;
        Ok(())
    }

    /// The claim's check and release, the issuer's check, the insert and the superseding
    /// run in one savepoint of the writer's transaction: a `ca rotate` in another process
    /// either commits before it (the record is refused) or after it (its cascade, which
    /// reads after switching the CA's state, revokes the certificate).
    async fn record_issuance(
        &self,
        certificate: CertificateRecord,
        supersede: Vec<String>,
        claim: &IssuanceClaim,
        now: UnixTime,
    ) -> Result<(), PortError> {
        let claim = claim.clone();
        self.write(move |c| {
            claims::check_and_release(c, &claim, &certificate.issuer)?;
            insert_issuance(c, &certificate, &supersede, now)
        })
        .await?;
        Ok(())
    }
}

impl ThingRegistry for SqliteRegistry {
    /// Creates the thing (policy [`DEVICE_POLICY`]) if absent and attaches the
    /// certificate as its principal, at the certificate's issue time; returns once
    /// committed. Registering the same certificate again changes nothing.
    async fn register(
        &self,
        device_id: &str,
        certificate: &CertificateRecord,
    ) -> Result<(), PortError> {
        let (thing, certificate_id, at) = (
            device_id.to_owned(),
            certificate.certificate_id.clone(),
            certificate.issued_at,
        );
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO things (name, policy, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![thing, DEVICE_POLICY, at])?;
            c.prepare_cached(
                "INSERT INTO thing_principals (thing, certificate_id, attached_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![thing, certificate_id, at])
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    RegistryError::UnknownCertificate(certificate_id.clone())
                } else {
                    e.into()
                }
            })?;
            Ok(())
        })
        .await?;
        Ok(())
    }
}

impl AuditLog for SqliteRegistry {
    /// Writes the event in the next group commit and returns once it is committed: an
    /// allow or deny is never lost, even if the process is killed right after.
    ///
    /// # Errors
    /// [`PortError`] when the write fails or the writer has stopped.
    async fn record(&self, event: AuditEvent) -> Result<(), PortError> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO audit (at, device_id, decision, code, remote_addr, fingerprint, certificate_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                event.at,
                event.device_id,
                event.decision,
                event.code,
                event.remote_addr,
                event.fingerprint,
                event.certificate_id
            ])?;
            Ok(())
        })
        .await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// The writer
// ---------------------------------------------------------------------------------

/// A write handed to the writer thread.
trait WriteJob: Send + std::fmt::Debug {
    /// Runs inside the batch transaction (in its own savepoint).
    fn apply(&mut self, connection: &Connection);
    /// Called once the batch has committed (`Ok`) or failed.
    fn finish(self: Box<Self>, batch: Result<(), &RegistryError>);
}

/// A write whose caller awaits its result.
struct ReplyJob<T, F> {
    work: Option<F>,
    result: Option<Result<T, RegistryError>>,
    reply: oneshot::Sender<Result<T, RegistryError>>,
}

impl<T, F> std::fmt::Debug for ReplyJob<T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplyJob")
    }
}

impl<T, F> WriteJob for ReplyJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, RegistryError> + Send,
{
    fn apply(&mut self, connection: &Connection) {
        if let Some(work) = self.work.take() {
            self.result = Some(in_savepoint(connection, work));
        }
    }

    fn finish(self: Box<Self>, batch: Result<(), &RegistryError>) {
        let answer = match (batch, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(RegistryError::WriterStopped),
            (Err(e), _) => Err(e.for_batch_member()),
        };
        // The caller may have given up waiting: nothing to do then.
        let _ = self.reply.send(answer);
    }
}

fn run_writer(connection: &Connection, jobs: &mpsc::Receiver<Box<dyn WriteJob>>, max_batch: usize) {
    while let Ok(first) = jobs.recv() {
        let mut batch = Vec::with_capacity(64);
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcome = commit_batch(connection, &mut batch);
        if let Err(e) = &outcome {
            tracing::warn!(writes = batch.len(), "a registry batch failed: {e}");
        }
        for job in batch {
            job.finish(outcome.as_ref().map(|_| ()));
        }
    }
}

fn commit_batch(
    connection: &Connection,
    batch: &mut [Box<dyn WriteJob>],
) -> Result<(), RegistryError> {
    connection.execute_batch("BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        job.apply(connection);
    }
    if let Err(e) = connection.execute_batch("COMMIT") {
        // Leave the connection usable for the next batch.
        let _ = connection.execute_batch("ROLLBACK");
        return Err(e.into());
    }
    Ok(())
}

/// Runs `work` in a savepoint: its writes are kept only if it succeeds.
fn in_savepoint<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, RegistryError>,
) -> Result<T, RegistryError> {
    connection.execute_batch("SAVEPOINT job")?;
    let result = work(connection);
    let end = match result {
        Ok(_) => connection.execute_batch("RELEASE job"),
        Err(_) => connection.execute_batch("ROLLBACK TO job; RELEASE job"),
    };
    if let Err(e) = end {
        let _ = connection.execute_batch("ROLLBACK TO job; RELEASE job");
        return Err(e.into());
    }
    result
}

fn insert_issuance(
    c: &Connection,
    certificate: &CertificateRecord,
    supersede: &[String],
    now: UnixTime,
) -> Result<(), RegistryError> {
    let cert = certificate;
    let inserted = c
        .prepare_cached(
            "INSERT INTO certificates (certificate_id, device_id, serial, issuer, public_key,
                 issued_at, not_before, not_after, status, certificate_pem)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'ACTIVE', ?9)
             ON CONFLICT (certificate_id) DO NOTHING",
        )?
        .execute(params![
            cert.certificate_id,
            cert.device_id,
            cert.serial,
            cert.issuer,
            cert.public_key.canonical(),
            cert.issued_at,
            cert.not_before,
            cert.not_after,
            cert.certificate_pem,
        ])
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                RegistryError::UnknownDevice(cert.device_id.clone())
            } else {
                e.into()
            }
        })?;
    if inserted == 0 {
        // Recording the same certificate again (a retry) is harmless; for another device
        // it is a bug upstream.
        let recorded_for: String = c
            .prepare_cached("SELECT device_id FROM certificates WHERE certificate_id = ?1")?
            .query_row([&cert.certificate_id], |row| row.get(0))?;
        if recorded_for != cert.device_id {
            return Err(RegistryError::CertificateConflict {
                certificate_id: cert.certificate_id.clone(),
                device_id: cert.device_id.clone(),
                recorded_for,
            });
        }
    }
    let mut revoke = c.prepare_cached(
        "UPDATE certificates SET status = 'REVOKED', revoked_at = ?2, revocation_reason = ?3
         WHERE certificate_id = ?1 AND device_id = ?4 AND status != 'REVOKED'",
    )?;
    for id in supersede.iter().filter(|id| **id != cert.certificate_id) {
        revoke.execute(params![
            id,
            now,
            RevocationReason::Superseded.name(),
            cert.device_id
        ])?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Connections and schema
// ---------------------------------------------------------------------------------

fn open_connection(path: &Path, options: &RegistryOptions) -> Result<Connection, rusqlite::Error> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    connection.busy_timeout(options.busy_timeout)?;
    let mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), "the registry is in journal mode {mode}, not WAL");
    }
    let synchronous = if options.synchronous_full {
        "FULL"
    } else {
        "NORMAL"
    };
    connection.pragma_update(None, "synchronous", synchronous)?;
    connection.pragma_update(None, "foreign_keys", true)?;
    // Truncate the WAL after checkpoints once it has grown past 64 MiB (a big import).
    connection.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

fn open_reader(path: &Path, options: &RegistryOptions) -> Result<Connection, RegistryError> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|source| RegistryError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    connection.busy_timeout(options.busy_timeout)?;
    connection.pragma_update(None, "query_only", true)?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

/// The certificates matching `filter`, ordered by issue time then id (`direction` is
/// `ASC` or `DESC`), starting after `after` in that order, at most `filter.limit`.
fn select_certificates(
    c: &Connection,
    filter: CertificateFilter,
    after: Option<CertificatePosition>,
    direction: &'static str,
) -> Result<Vec<CertificateRecord>, RegistryError> {
    let mut conditions = Vec::new();
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(device) = filter.device_id {
        values.push(device.into());
        conditions.push(format!("device_id = ?{}", values.len()));
    }
    if let Some(status) = filter.status {
        values.push(status_name(status).to_owned().into());
        conditions.push(format!("status = ?{}", values.len()));
    }
    if let Some(issuer) = filter.issuer {
        values.push(issuer.into());
        conditions.push(format!("issuer = ?{}", values.len()));
    }
    if let Some(position) = after {
        let beyond = if direction == "DESC" { "<" } else { ">" };
        values.push(position.issued_at.into());
        let at = values.len();
        values.push(position.certificate_id.into());
        let id = values.len();
        conditions.push(format!(
            "(issued_at {beyond} ?{at} OR (issued_at = ?{at} AND certificate_id {beyond} ?{id}))"
        ));
    }
    let mut sql = format!("SELECT {CERTIFICATE_COLUMNS} FROM certificates");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(&format!(
        " ORDER BY issued_at {direction}, certificate_id {direction}"
    ));
    if let Some(limit) = filter.limit {
        values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
        sql.push_str(&format!(" LIMIT ?{}", values.len()));
    }
    let mut statement = c.prepare_cached(&sql)?;
    let rows = statement.query_map(
        rusqlite::params_from_iter(values),
        StoredCertificate::from_row,
    )?;
    let mut keys = KeyMemo::default();
    rows.map(|row| row?.into_record(&mut keys)).collect()
}

/// Brings the schema to [`SCHEMA_VERSION`], one transaction per migration.
fn migrate(connection: &mut Connection, path: &Path) -> Result<(), RegistryError> {
    let open_error = |source| RegistryError::Open {
        path: path.to_path_buf(),
        source,
    };
    loop {
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(open_error)?;
        // Read under the write lock: another process may have migrated meanwhile.
        let version: i64 = transaction
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(open_error)?;
        if version > SCHEMA_VERSION {
            return Err(RegistryError::SchemaTooNew {
                path: path.to_path_buf(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        let Some(migration) = usize::try_from(version)
            .ok()
            .and_then(|v| MIGRATIONS.get(v))
        else {
            return Ok(());
        };
        transaction.execute_batch(migration).map_err(open_error)?;
        transaction
            .pragma_update(None, "user_version", version + 1)
            .map_err(open_error)?;
        transaction.commit().map_err(open_error)?;
        tracing::info!(path = %path.display(), version = version + 1, "registry schema migrated");
    }
}

// ---------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------

/// A certificate row as stored, before its text fields are interpreted.
struct StoredCertificate {
    certificate_id: String,
    device_id: String,
    serial: String,
    issuer: String,
    public_key: String,
    issued_at: i64,
    not_before: i64,
    not_after: i64,
    status: String,
    revoked_at: Option<i64>,
    revocation_reason: Option<String>,
    certificate_pem: String,
}

impl StoredCertificate {
    /// Reads a row selected with [`CERTIFICATE_COLUMNS`].
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            certificate_id: row.get(0)?,
            device_id: row.get(1)?,
            serial: row.get(2)?,
            issuer: row.get(3)?,
            public_key: row.get(4)?,
            issued_at: row.get(5)?,
            not_before: row.get(6)?,
            not_after: row.get(7)?,
            status: row.get(8)?,
            revoked_at: row.get(9)?,
            revocation_reason: row.get(10)?,
            certificate_pem: row.get(11)?,
        })
    }

    /// Interprets the row; `keys` remembers the last key parsed, as a device's
    /// certificates mostly certify the same key.
    fn into_record(self, keys: &mut KeyMemo) -> Result<CertificateRecord, RegistryError> {
        let status = status_from_name(&self.status)?;
        let revoked = match (self.revoked_at, self.revocation_reason) {
            (Some(at), Some(reason)) => Some((at, reason_from_name(&reason)?)),
            _ => None,
        };
        Ok(CertificateRecord {
            public_key: keys.parse(self.public_key)?,
            certificate_id: self.certificate_id,
            device_id: self.device_id,
            serial: self.serial,
            issuer: self.issuer,
            issued_at: self.issued_at,
            not_before: self.not_before,
            not_after: self.not_after,
            status,
            revoked,
            certificate_pem: self.certificate_pem,
        })
    }
}

/// The last stored key parsed (checking a point is on the curve is the costly part of
/// reading a certificate row).
#[derive(Default)]
struct KeyMemo {
    last: Option<(String, DeviceKey)>,
}

impl KeyMemo {
    fn parse(&mut self, text: String) -> Result<DeviceKey, RegistryError> {
        match &self.last {
            Some((seen, key)) if *seen == text => Ok(key.clone()),
            _ => {
                let key = parse_stored_key(&text)?;
                self.last = Some((text, key.clone()));
                Ok(key)
            }
        }
    }
}

fn query_certificate(c: &Connection, id: &str) -> Result<Option<CertificateRecord>, RegistryError> {
    c.prepare_cached(&format!(
        "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE certificate_id = ?1"
    ))?
    .query_row([id], StoredCertificate::from_row)
    .optional()?
    .map(|row| row.into_record(&mut KeyMemo::default()))
    .transpose()
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

const AUDIT_COLUMNS: &str =
    "id, at, device_id, decision, code, remote_addr, fingerprint, certificate_id";

/// Reads a row selected with [`AUDIT_COLUMNS`].
fn audit_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    let decision: String = row.get(3)?;
    Ok(AuditEntry {
        id: row.get(0)?,
        event: AuditEvent {
            at: row.get(1)?,
            device_id: row.get(2)?,
            decision: match decision.as_str() {
                "allow" => "allow",
                "deny" => "deny",
                _ => "unknown",
            },
            code: row.get(4)?,
            remote_addr: row.get(5)?,
            fingerprint: row.get(6)?,
            certificate_id: row.get(7)?,
        },
    })
}

const ROTATION_COLUMNS: &str = "id, old_ca, new_ca, started_at, finished_at, revoked_count";

fn rotation_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RotationJob> {
    Ok(RotationJob {
        id: row.get(0)?,
        old_ca: row.get(1)?,
        new_ca: row.get(2)?,
        started_at: row.get(3)?,
        finished_at: row.get(4)?,
        revoked_count: row.get(5)?,
    })
}

fn query_rotation(c: &Connection, job: i64) -> Result<RotationJob, RegistryError> {
    c.prepare_cached(&format!(
        "SELECT {ROTATION_COLUMNS} FROM rotation_jobs WHERE id = ?1"
    ))?
    .query_row([job], rotation_from_row)
    .optional()?
    .ok_or(RegistryError::UnknownRotationJob(job))
}

/// The registry's name of a status: `ACTIVE`, `INACTIVE`, `REVOKED`.
pub fn status_name(status: CertificateStatus) -> &'static str {
    match status {
        CertificateStatus::Active => "ACTIVE",
        CertificateStatus::Inactive => "INACTIVE",
        CertificateStatus::Revoked => "REVOKED",
    }
}

fn status_from_name(name: &str) -> Result<CertificateStatus, RegistryError> {
    match name.to_ascii_uppercase().as_str() {
        "ACTIVE" => Ok(CertificateStatus::Active),
        "INACTIVE" => Ok(CertificateStatus::Inactive),
        "REVOKED" => Ok(CertificateStatus::Revoked),
        _ => Err(RegistryError::Corrupt(format!(
            "unknown certificate status {name:?}"
        ))),
    }
}

fn reason_from_name(name: &str) -> Result<RevocationReason, RegistryError> {
    RevocationReason::from_name(name)
        .ok_or_else(|| RegistryError::Corrupt(format!("unknown revocation reason {name:?}")))
}

fn parse_stored_key(text: &str) -> Result<DeviceKey, RegistryError> {
    DeviceKey::parse(text)
        .map_err(|e| RegistryError::Corrupt(format!("a stored public key does not parse: {e}")))
}

/// Whether a stored key (canonical text, normally) is `key`, whose canonical text is
/// `canonical`.
fn same_key(stored: &str, canonical: &str, key: &DeviceKey) -> bool {
    stored == canonical || DeviceKey::parse(stored).is_ok_and(|k| &k == key)
}
