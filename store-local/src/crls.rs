//! The local CRL files: who writes them in a process ([`CrlWriter`], with the lifetime
//! the operator chose) and what they say ([`published_crls`]: thisUpdate, nextUpdate),
//! for `provisioner ca show`, the admin API and the refresher of `serve`.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use der::Decode as _;
use provisioner_core::UnixTime;
use x509_cert::crl::CertificateList;

use super::authority::LocalAuthority;
use super::datadir::DataDir;
use super::operations::{self, CRL_LIFETIME_SECS};
use super::registry::SqliteRegistry;
use super::LocalError;

/// What a [`PublishedCrl`] of the root names as its issuer.
pub const ROOT_ISSUER: &str = "root";

/// Writes every CRL with one lifetime, one regeneration at a time in this process (the
/// files have fixed names). Clones share the turn.
#[derive(Debug, Clone)]
pub struct CrlWriter {
    lifetime_secs: i64,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl Default for CrlWriter {
    fn default() -> Self {
        Self::new(CRL_LIFETIME_SECS)
    }
}

impl CrlWriter {
    /// CRLs valid for `lifetime_secs` (at least 1) from when they are written.
    pub fn new(lifetime_secs: i64) -> Self {
        Self {
            lifetime_secs: lifetime_secs.max(1),
            turn: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The lifetime of the CRLs it writes.
    pub fn lifetime_secs(&self) -> i64 {
        self.lifetime_secs
    }

    /// Regenerates every CRL (see [`operations::regenerate_crls`]); the files written.
    ///
    /// # Errors
    /// As [`operations::regenerate_crls`].
    pub async fn regenerate(
        &self,
        data_dir: &DataDir,
        registry: &SqliteRegistry,
        now: UnixTime,
    ) -> Result<Vec<PathBuf>, LocalError> {
        let _turn = self.turn.lock().await;
        operations::regenerate_crls(data_dir, registry, now, self.lifetime_secs).await
    }
}

/// One CRL the data directory should hold, and what the file says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedCrl {
    /// The issuing CA's id, or [`ROOT_ISSUER`].
    pub issuer: String,
    /// Its file.
    pub path: PathBuf,
    /// What the file says; `None` when it is missing or unreadable (it needs writing).
    pub dates: Option<CrlDates>,
}

/// The times (and size) a CRL states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlDates {
    /// thisUpdate: when it was signed.
    pub this_update: UnixTime,
    /// nextUpdate: when relying parties stop accepting it.
    pub next_update: UnixTime,
    /// How many certificates it lists.
    pub revoked: u64,
}

impl CrlDates {
    /// Whether it has reached half its lifetime (or has none left): the refresher writes
    /// a new one then, so a broker always holds one with half a lifetime to spare.
    pub fn renewal_due(&self, now: UnixTime) -> bool {
        let lifetime = self.next_update.saturating_sub(self.this_update);
        now >= self.this_update.saturating_add(lifetime / 2)
    }
}

/// The CRL of every issuing CA on disk (previous ones first), then the root's when its
/// key is on this machine, with what each file says.
///
/// # Errors
/// When the CA directory cannot be read.
pub fn published_crls(data_dir: &DataDir) -> Result<Vec<PublishedCrl>, LocalError> {
    let mut expected: Vec<(String, PathBuf)> = operations::issuing_ca_ids(data_dir)?
        .into_iter()
        .map(|id| {
            let path = operations::crl_path(data_dir, &id);
            (id, path)
        })
        .collect();
    if LocalAuthority::overview(&data_dir.ca_dir())?.root_key_local {
        expected.push((ROOT_ISSUER.to_owned(), operations::root_crl_path(data_dir)));
    }
    Ok(expected
        .into_iter()
        .map(|(issuer, path)| {
            let dates = read_dates(&path);
            PublishedCrl {
                issuer,
                path,
                dates,
            }
        })
        .collect())
}

/// The dates of the CRL in `path`; `None` when it is missing, and logged when it is
/// unreadable (the refresher then writes it again).
fn read_dates(path: &std::path::Path) -> Option<CrlDates> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read a CRL");
            return None;
        }
    };
    match crl_dates(&text) {
        Ok(dates) => Some(dates),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "a CRL file is unreadable");
            None
        }
    }
}

/// The dates of a PEM CRL (`X509 CRL`).
///
/// # Errors
/// When it is not one PEM CRL, or it has no nextUpdate (ours always do).
pub fn crl_dates(pem: &str) -> Result<CrlDates, String> {
    const BEGIN: &str = "-----BEGIN X509 CRL-----";
    const END: &str = "-----END X509 CRL-----";
    let start = pem.find(BEGIN).ok_or("no -----BEGIN X509 CRL-----")? + BEGIN.len();
    let end = pem[start..].find(END).ok_or("no -----END X509 CRL-----")? + start;
    let body: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| format!("not base64: {e}"))?;
    let crl = CertificateList::from_der(&der).map_err(|e| format!("not a CRL: {e}"))?;
    let tbs = &crl.tbs_cert_list;
    let unix = |t: x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs()).map_err(|_| "a time out of range")
    };
    Ok(CrlDates {
        this_update: unix(tbs.this_update)?,
        next_update: unix(tbs.next_update.ok_or("no nextUpdate")?)?,
        revoked: tbs
            .revoked_certificates
            .as_ref()
            .map_or(0, |list| list.len() as u64),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::authority::RevokedEntry;
    use provisioner_core::RevocationReason;

    const NOW: UnixTime = 1_800_000_000;

    #[test]
    fn a_crl_we_sign_reads_back_with_its_dates_and_entries() {
        // given a CRL of a development CA listing one certificate, valid for an hour
        let dir = tempfile::tempdir().unwrap();
        LocalAuthority::init_development(dir.path(), NOW).unwrap();
        let authority = LocalAuthority::load(dir.path()).unwrap();
        let revoked = RevokedEntry {
            serial_hex: "0a0b0c".into(),
            revoked_at: NOW - 10,
            reason: RevocationReason::Superseded,
        };
        let pem = authority.crl_pem(&[revoked], NOW, 3600).unwrap();

        // when its dates are read
        let dates = crl_dates(&pem).unwrap();

        // then they are the ones it was signed with
        assert_eq!(
            dates,
            CrlDates {
                this_update: NOW,
                next_update: NOW + 3600,
                revoked: 1
            }
        );
    }

    #[test]
    fn renewal_is_due_at_half_the_lifetime() {
        let dates = CrlDates {
            this_update: NOW,
            next_update: NOW + 100,
            revoked: 0,
        };
        assert!(!dates.renewal_due(NOW + 49));
        assert!(dates.renewal_due(NOW + 50));
        assert!(dates.renewal_due(NOW + 500));
    }

    #[test]
    fn text_that_is_no_crl_is_refused_with_the_reason() {
        assert!(crl_dates("hello").unwrap_err().contains("BEGIN X509 CRL"));
        let not_der = "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n";
        assert!(crl_dates(not_der).unwrap_err().contains("not a CRL"));
    }

    #[tokio::test]
    async fn every_crl_is_listed_missing_until_written_then_with_the_writers_lifetime() {
        // given a development CA and its registry, no CRL written yet
        let dir = tempfile::tempdir().unwrap();
        let data_dir = DataDir::new(dir.path());
        data_dir.ensure_exists().unwrap();
        LocalAuthority::init_development(&data_dir.ca_dir(), NOW).unwrap();
        let registry = SqliteRegistry::open(data_dir.registry_path()).unwrap();
        let before = published_crls(&data_dir).unwrap();
        assert_eq!(before.len(), 2, "{before:?}");
        assert!(before.iter().all(|crl| crl.dates.is_none()));
        assert_eq!(before[1].issuer, ROOT_ISSUER);

        // when a writer with a 60 s lifetime writes them
        CrlWriter::new(60)
            .regenerate(&data_dir, &registry, NOW)
            .await
            .unwrap();

        // then both say so
        for crl in published_crls(&data_dir).unwrap() {
            let dates = crl.dates.unwrap();
            assert_eq!((dates.this_update, dates.next_update), (NOW, NOW + 60));
        }
    }
}
