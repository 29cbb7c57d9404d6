//! The SQLite side of the per-device issuance claim ([`DeviceRegistry::claim_issuance`]).
//!
//! A claim is a row of `issuance_claims`, written by the registry's one writer thread
//! inside its `BEGIN IMMEDIATE` transaction: every process writing to the database file
//! takes the same write lock, so a claim taken here excludes every other process's. The
//! issuance record checks the row, deletes it and inserts the certificate in one
//! savepoint of one transaction ([`check_and_release`]).
//!
//! A table of its own rather than columns on `devices`: a claim lives for a second, a row
//! exists only while one is held, and the migration creates a table instead of rewriting
//! every device row; the import's transaction never touches it.
//!
//! [`DeviceRegistry::claim_issuance`]: provisioner_core::DeviceRegistry::claim_issuance

use provisioner_core::{ClaimOutcome, IssuanceClaim, UnixTime};
use rusqlite::{params, Connection, OptionalExtension};

use super::RegistryError;

/// Migration 3: the claims table.
pub(super) const MIGRATION: &str = "
    CREATE TABLE issuance_claims (
        device_id  TEXT PRIMARY KEY NOT NULL,
        holder     TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
";

/// Takes the claim for `holder` when no other holder's unexpired claim exists: one
/// conditional upsert.
pub(super) fn take(
    c: &Connection,
    device_id: &str,
    holder: &str,
    now: UnixTime,
    ttl_secs: i64,
) -> Result<ClaimOutcome, RegistryError> {
    let expires_at = now.saturating_add(ttl_secs);
    let taken = c
        .prepare_cached(
            "INSERT INTO issuance_claims (device_id, holder, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (device_id) DO UPDATE
                 SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE issuance_claims.expires_at <= ?4
                    OR issuance_claims.holder = excluded.holder",
        )?
        .execute(params![device_id, holder, expires_at, now])?;
    if taken == 1 {
        return Ok(ClaimOutcome::Claimed(IssuanceClaim {
            device_id: device_id.to_owned(),
            holder: holder.to_owned(),
            expires_at,
        }));
    }
    let until = c
        .prepare_cached("SELECT expires_at FROM issuance_claims WHERE device_id = ?1")?
        .query_row([device_id], |row| row.get(0))?;
    Ok(ClaimOutcome::Held { until })
}

/// Deletes the claim if `claim.holder` still holds it.
pub(super) fn release(c: &Connection, claim: &IssuanceClaim) -> Result<(), RegistryError> {
    c.prepare_cached("DELETE FROM issuance_claims WHERE device_id = ?1 AND holder = ?2")?
        .execute(params![claim.device_id, claim.holder])?;
    Ok(())
}

/// Inside the issuance record's savepoint: the claim must still be `claim.holder`'s
/// (lapsed but not taken by another is fine) and `issuer` must not be a CA the registry
/// knows as anything but current (an unknown issuer passes: the registry records the
/// local CAs only). Then the claim is released.
///
/// # Errors
/// [`RegistryError::ClaimLost`], [`RegistryError::IssuerRetired`], database failures.
pub(super) fn check_and_release(
    c: &Connection,
    claim: &IssuanceClaim,
    issuer: &str,
) -> Result<(), RegistryError> {
    let holder: Option<String> = c
        .prepare_cached("SELECT holder FROM issuance_claims WHERE device_id = ?1")?
        .query_row([&claim.device_id], |row| row.get(0))
        .optional()?;
    if holder.as_deref() != Some(claim.holder.as_str()) {
        // No row: another holder took the lapsed claim and has released it since.
        return Err(RegistryError::ClaimLost {
            device_id: claim.device_id.clone(),
        });
    }
    let state: Option<String> = c
        .prepare_cached("SELECT state FROM cas WHERE ca_id = ?1")?
        .query_row([issuer], |row| row.get(0))
        .optional()?;
    if state.is_some_and(|s| s != "current") {
        return Err(RegistryError::IssuerRetired {
            issuer: issuer.to_owned(),
        });
    }
    release(c, claim)
}

#[cfg(test)]
mod tests {
    use provisioner_core::{
        CertificateRecord, CertificateStatus, DeviceKey, DeviceRegistry, PortError,
    };

    use super::super::schema::{MIGRATIONS, SCHEMA_VERSION};
    use super::super::{CaState, SqliteRegistry};
    use super::*;

    const NOW: UnixTime = 1_800_000_000;
    const KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEKxzv1M4V0MGZz6W8p2PzIU5qwsWRYSG4zwWp8Eu9Isd8PPiM4v96F0bi7Fs45ejsClKfh4IvbKwPDf4cXxUpKA==";

    fn certificate(id: &str, issuer: &str) -> CertificateRecord {
        CertificateRecord {
            certificate_id: id.into(),
            device_id: "dev-1".into(),
            serial: "01".into(),
            issuer: issuer.into(),
            public_key: DeviceKey::parse(KEY).unwrap(),
            issued_at: NOW,
            not_before: NOW - 300,
            not_after: NOW + 86_400,
            status: CertificateStatus::Active,
            revoked: None,
            certificate_pem: "PEM".into(),
        }
    }

    /// A database as the build before claims left it: the first two migrations, a device
    /// and a certificate.
    fn schema_two(path: &std::path::Path) {
        let c = Connection::open(path).unwrap();
        for migration in &MIGRATIONS[..2] {
            c.execute_batch(migration).unwrap();
        }
        c.pragma_update(None, "user_version", 2).unwrap();
        c.execute(
            "INSERT INTO devices (device_id, public_key, imported_at) VALUES ('dev-1', ?1, ?2)",
            params![KEY, NOW],
        )
        .unwrap();
        c.execute(
            "INSERT INTO certificates (certificate_id, device_id, serial, issuer, public_key,
                 issued_at, not_before, not_after, status, certificate_pem)
             VALUES ('old', 'dev-1', '01', 'ca-1', ?1, ?2, ?2, ?3, 'ACTIVE', 'PEM')",
            params![KEY, NOW, NOW + 86_400],
        )
        .unwrap();
    }

    #[tokio::test]
    async fn a_schema_two_registry_migrates_keeps_its_rows_and_takes_claims() {
        // given a registry written by the build before claims
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.sqlite3");
        schema_two(&path);

        // when this build opens it
        let registry = SqliteRegistry::open(&path).unwrap();

        // then it is at the latest schema, with its device and certificate, and claims work
        let version: i64 = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(SCHEMA_VERSION, 3);
        assert!(registry.device("dev-1").await.unwrap().unwrap().enabled);
        let held = registry.certificates_of("dev-1", NOW).await.unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].certificate_id, "old");
        let ClaimOutcome::Claimed(claim) = registry
            .claim_issuance("dev-1", "h", NOW, 120)
            .await
            .unwrap()
        else {
            panic!("a fresh claim was refused");
        };
        registry
            .record_issuance(certificate("new", "ca-1"), vec!["old".into()], &claim, NOW)
            .await
            .unwrap();
        let held = registry.certificates_of("dev-1", NOW).await.unwrap();
        assert_eq!(held.len(), 2);
    }

    #[tokio::test]
    async fn a_certificate_of_a_retired_ca_is_refused_and_the_claim_kept() {
        // given a rotation recorded: ca-2 current, ca-1 previous
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.sqlite3");
        schema_two(&path);
        let registry = SqliteRegistry::open(&path).unwrap();
        registry
            .record_ca("ca-1", "PEM1", CaState::Current, NOW)
            .await
            .unwrap();
        registry
            .record_ca("ca-2", "PEM2", CaState::Current, NOW)
            .await
            .unwrap();
        let ClaimOutcome::Claimed(claim) = registry
            .claim_issuance("dev-1", "h", NOW, 120)
            .await
            .unwrap()
        else {
            panic!("a fresh claim was refused");
        };

        // when a certificate signed by ca-1 is recorded, then it is refused
        let refused = registry
            .record_issuance(
                certificate("by-old", "ca-1"),
                vec!["old".into()],
                &claim,
                NOW,
            )
            .await;
        assert_eq!(
            refused,
            Err(PortError::IssuerRetired {
                issuer: "ca-1".into()
            })
        );
        assert_eq!(registry.certificate("by-old").await.unwrap(), None);

        // and the claim is still ours: the one signed again by ca-2 records
        registry
            .record_issuance(
                certificate("by-new", "ca-2"),
                vec!["old".into()],
                &claim,
                NOW,
            )
            .await
            .unwrap();
        assert!(registry.certificate("by-new").await.unwrap().is_some());
    }
}
