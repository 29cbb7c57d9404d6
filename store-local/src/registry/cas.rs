//! The CAs the service has issued with, and CA rotation jobs: the resumable cascade that
//! revokes a retired CA's certificates in batches.

use provisioner_core::{RevocationReason, UnixTime};
use rusqlite::{params, Connection, OptionalExtension};

use super::{RegistryError, SqliteRegistry};

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
    /// The CA's id (what
    /// [`CertificateRecord::issuer`](provisioner_core::CertificateRecord::issuer) names).
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

impl SqliteRegistry {
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
