//! The audit log: allow and deny decisions (the [`AuditLog`] port), read back for the
//! admin API and its hourly chart.

use provisioner_core::{AuditEvent, AuditLog, PortError, UnixTime};
use rusqlite::params;

use super::{HourlyDecisions, RegistryError, SqliteRegistry};

/// An audit event read back, with its position in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Increasing id (insertion order).
    pub id: i64,
    /// The event (`decision` is `allow`, `deny`, or `unknown` for any other stored value).
    pub event: AuditEvent,
}

impl SqliteRegistry {
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
