//! The registry's schema: its migrations, numbered by `PRAGMA user_version`, and the
//! start-up step that applies those not yet applied.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::RegistryError;

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

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

/// Brings the schema to [`SCHEMA_VERSION`], one transaction per migration.
pub(super) fn migrate(connection: &mut Connection, path: &Path) -> Result<(), RegistryError> {
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
