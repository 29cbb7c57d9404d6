//! Certificates as the admin side sees them: listings, revocation, the entries of an
//! issuer's CRL; and reading certificate rows, which the request path shares.

use provisioner_core::{
    CertificateRecord, CertificateStatus, DeviceKey, RevocationReason, UnixTime,
};
use rusqlite::{params, Connection, OptionalExtension};

use super::devices::parse_stored_key;
use super::{RegistryError, SqliteRegistry};

pub(super) const CERTIFICATE_COLUMNS: &str =
    "certificate_id, device_id, serial, issuer, public_key, \
     issued_at, not_before, not_after, status, revoked_at, revocation_reason, certificate_pem";

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

/// Where a page of [`SqliteRegistry::certificates_newest_first`] starts: the position of
/// the last certificate of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePosition {
    /// Its issue time.
    pub issued_at: UnixTime,
    /// Its id (orders certificates issued in the same second).
    pub certificate_id: String,
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

impl SqliteRegistry {
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

/// A certificate row as stored, before its text fields are interpreted.
pub(super) struct StoredCertificate {
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
    pub(super) fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
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
    pub(super) fn into_record(
        self,
        keys: &mut KeyMemo,
    ) -> Result<CertificateRecord, RegistryError> {
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
pub(super) struct KeyMemo {
    last: Option<(String, DeviceKey)>,
}

impl KeyMemo {
    pub(super) fn parse(&mut self, text: String) -> Result<DeviceKey, RegistryError> {
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

pub(super) fn query_certificate(
    c: &Connection,
    id: &str,
) -> Result<Option<CertificateRecord>, RegistryError> {
    c.prepare_cached(&format!(
        "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE certificate_id = ?1"
    ))?
    .query_row([id], StoredCertificate::from_row)
    .optional()?
    .map(|row| row.into_record(&mut KeyMemo::default()))
    .transpose()
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
