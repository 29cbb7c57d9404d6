//! Why a SQLite registry operation failed ([`RegistryError`]), and how each failure
//! reaches the flow as a [`PortError`]. Every part of the registry (and the issuance
//! claims) returns it.

use std::path::PathBuf;

use provisioner_core::PortError;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The database file cannot be opened or set up.
    #[error("cannot open the registry {}: {source}; check the data directory path and its permissions", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer build.
    #[error("the registry {} has schema version {found}, newer than the {known} this build knows: use a newer provisioner", path.display())]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// [`SCHEMA_VERSION`](super::SCHEMA_VERSION).
        known: i64,
    },
    /// No certificate has this id.
    #[error(
        "no certificate {0:?} in the registry: `provisioner certs list` shows the certificate ids"
    )]
    UnknownCertificate(String),
    /// No device has this id.
    #[error("no device {0:?} in the registry: import its manufacturer manifest first (`provisioner import`)")]
    UnknownDevice(String),
    /// The certificate id is already recorded for another device.
    #[error("certificate {certificate_id:?} is already recorded for device {recorded_for:?}, not {device_id:?}")]
    CertificateConflict {
        /// The certificate id.
        certificate_id: String,
        /// The device the new record names.
        device_id: String,
        /// The device it is recorded for.
        recorded_for: String,
    },
    /// Another request took the device's issuance claim (see
    /// [`DeviceRegistry::record_issuance`](provisioner_core::DeviceRegistry::record_issuance)).
    #[error("the issuance claim on device {device_id:?} was taken by another request")]
    ClaimLost {
        /// The device.
        device_id: String,
    },
    /// The certificate's issuer is a CA the registry holds as no longer current.
    #[error("the issuing CA {issuer:?} is no longer current (a rotation retired it)")]
    IssuerRetired {
        /// The CA's id.
        issuer: String,
    },
    /// No rotation job has this id.
    #[error("no CA rotation job {0} in the registry")]
    UnknownRotationJob(i64),
    /// Another connection held the write lock past the busy timeout (an import, say).
    #[error("the registry is busy: another process is writing to it (an import?); retry shortly")]
    Busy,
    /// A stored value is not what the schema allows, or the integrity check failed.
    #[error("the registry is damaged: {0}; restore it from a backup")]
    Corrupt(String),
    /// The writer thread has stopped (it panicked, or the registry is shutting down).
    #[error("the registry's writer has stopped: restart the service")]
    WriterStopped,
    /// The batch this write was part of failed to commit.
    #[error("the registry could not commit: {0}")]
    Commit(String),
    /// Any other SQLite failure.
    #[error("the registry failed: {0}")]
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for RegistryError {
    fn from(error: rusqlite::Error) -> Self {
        if is_busy(&error) {
            Self::Busy
        } else {
            Self::Sqlite(error)
        }
    }
}

impl RegistryError {
    /// The same failure for another caller of a failed batch.
    pub(super) fn for_batch_member(&self) -> Self {
        match self {
            Self::Busy => Self::Busy,
            Self::WriterStopped => Self::WriterStopped,
            other => Self::Commit(other.to_string()),
        }
    }
}

impl From<RegistryError> for PortError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::Busy => PortError::Unavailable {
                what: "the device registry".into(),
                retry_after_secs: 1,
            },
            RegistryError::ClaimLost { device_id } => PortError::ClaimLost { device_id },
            RegistryError::IssuerRetired { issuer } => PortError::IssuerRetired { issuer },
            other => PortError::Internal(other.to_string()),
        }
    }
}

pub(super) fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

pub(super) fn is_foreign_key_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
    )
}
