//! The request path: the [`DeviceRegistry`] port, whose point lookups run on the calling
//! task and whose claim and issuance record go through the writer.

use provisioner_core::{
    CertificateRecord, ClaimOutcome, Device, DeviceRegistry, IssuanceClaim, PortError,
    RevocationReason, UnixTime,
};
use rusqlite::{params, Connection, OptionalExtension};

use super::certificates::{query_certificate, KeyMemo, StoredCertificate, CERTIFICATE_COLUMNS};
use super::devices::parse_stored_key;
use super::error::is_foreign_key_violation;
use super::{claims, RegistryError, SqliteRegistry};

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
