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
//!
//! # Layout
//!
//! This module holds [`SqliteRegistry`] itself: opening, the connections and the read
//! pool. `writer` is the group-committing writer thread, `schema` the migrations; the
//! tables are a module per family, each with its `impl SqliteRegistry` block: `devices`
//! (and the import), `certificates`, `issuance` (the [`DeviceRegistry`] port), `claims`,
//! `cas` (and rotation jobs), `things`, `audit`; `error` is [`RegistryError`].
//!
//! [`DeviceRegistry`]: provisioner_core::DeviceRegistry
//! [`DeviceRegistry::record_issuance`]: provisioner_core::DeviceRegistry::record_issuance
//! [`ThingRegistry`]: provisioner_core::ThingRegistry
//! [`AuditLog`]: provisioner_core::AuditLog
//! [`AuditLog::record`]: provisioner_core::AuditLog::record
//! [`PortError::Unavailable`]: provisioner_core::PortError::Unavailable
//! [`DeviceKey`]: provisioner_core::DeviceKey

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

mod audit;
mod cas;
mod certificates;
mod claims;
mod devices;
mod error;
mod issuance;
mod schema;
mod things;
mod writer;

pub use audit::AuditEntry;
pub use cas::{CaRecord, CaState, RotationJob};
pub use certificates::{
    status_name, CertificateFilter, CertificatePosition, Revocation, RevokedEntry,
};
pub use error::RegistryError;
pub use provisioner_app::fleet::{DeviceQuery, DeviceRecord, HourlyDecisions};
pub use provisioner_app::import::{
    ImportError, ImportItem, ImportOptions, ImportSummary, MAX_REPORTED_ERRORS,
};
pub use schema::SCHEMA_VERSION;
pub use things::{Thing, DEVICE_POLICY};

use schema::migrate;
use writer::{run_writer, ReplyJob, WriteJob};

/// Read connections, and reads running at once: a few suffice for point lookups, and
/// more only add threads contending for SQLite's and the allocator's locks.
const READER_POOL: usize = 4;

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

    /// Runs `work` on the writer thread, in its own savepoint of the next batch, and
    /// answers once that batch has committed.
    async fn write<T, F>(&self, work: F) -> Result<T, RegistryError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, RegistryError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.inner.submit(Box::new(ReplyJob::new(work, reply)))?;
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
