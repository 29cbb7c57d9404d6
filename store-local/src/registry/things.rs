//! The local thing registry: things and their principals (the [`ThingRegistry`] port).

use provisioner_core::{CertificateRecord, PortError, ThingRegistry, UnixTime};
use rusqlite::{params, OptionalExtension};

use super::error::is_foreign_key_violation;
use super::{RegistryError, SqliteRegistry};

/// The policy attached to every thing the local thing registry creates.
pub const DEVICE_POLICY: &str = "provisioner-device-policy";

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

impl SqliteRegistry {
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
