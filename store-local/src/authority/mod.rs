//! The on-disk certificate authority: the PKI admin's steps 1-2 on one machine, and the
//! [`CertificateAuthority`](provisioner_core::CertificateAuthority) the local service signs
//! device certificates with.
//!
//! ```text
//! DATA_DIR/ca/                     0700
//!   root.key.pem                   0600  the development root's key (only after `init_development`)
//!   root.pem                             the development root's certificate
//!   root-crl-number                      the last CRL number the root used
//!   current                              the current issuing CA's id
//!   previous                             earlier issuing CA ids, oldest first, one a line
//!   pending                              the id of an issuing CA whose CSR awaits its certificate
//!   issuing/<id>/                  0700
//!     key.pem                      0600  the issuing CA's key (PKCS#8, P-256)
//!     csr.pem                            its CSR, for an external parent CA (`--csr-only`)
//!     cert.pem                           its certificate
//!     chain.pem                          its certificate, then its parents up to the root
//!     crl-number                         the last CRL number it used
//! ```
//!
//! **CA id**: the first 16 hex characters of the SHA-256 of the issuing CA key's
//! SubjectPublicKeyInfo DER. It is known as soon as the key exists, so a `--csr-only` CA
//! has its final directory before its certificate does, and it stays the same when the
//! same key is certified again.
//!
//! Every key is ECDSA P-256, generated and used by `ring` through `rcgen`; keys are never
//! logged (`Debug` elides them).
//!
//! This module holds [`LocalAuthority`] and its loading; the rest is split by task:
//! `create` (new CAs, CSRs, rotation), `import` (an external parent's certificate),
//! `issue` (device and server certificates, the port), `crl` (CRLs), `files` (the
//! directory), `parsed` (reading certificates), `reports` and `error`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rcgen::{CertificateParams, Issuer, KeyPair, PublicKeyData, SerialNumber};
use sha2::{Digest, Sha256};

mod certificate_parts;
mod create;
mod crl;
mod error;
mod files;
mod import;
mod issue;
mod parsed;
mod reports;
#[cfg(test)]
mod tests;

pub use crl::RevokedEntry;
pub use error::AuthorityError;
pub use reports::{
    CaInfo, CaOverview, CsrReport, ImportReport, InitReport, PendingRequest, RotationReport,
    ServerCertificate,
};

use certificate_parts::issuer_for;
use error::{corrupt, signing};
use files::{
    current_id, is_ca_id, issuing_dir, load_key, pending_request, previous_ids, read_optional,
    CHAIN, CURRENT, KEY, ROOT_CERT, ROOT_KEY,
};
use parsed::{
    certificates_from_bytes, chain_to_pem, check_issuing_ca, parse_certificate, ParsedCertificate,
};

const DAY: i64 = 24 * 60 * 60;
/// The development root lives ten years.
const ROOT_VALIDITY_SECS: i64 = 3650 * DAY;
/// An issuing intermediate lives five years.
const ISSUING_VALIDITY_SECS: i64 = 1825 * DAY;
/// A TLS server certificate (mosquitto's) lives one year.
const SERVER_VALIDITY_SECS: i64 = 365 * DAY;
/// CA and server certificates start a little early, for clocks that lag.
const BACKDATE_SECS: i64 = 5 * 60;
/// Serial numbers: 20 random bytes (RFC 5280's maximum), top bit clear, next bit set, so
/// the minimal encoding is always exactly 20 bytes and never zero.
const SERIAL_LEN: usize = 20;
/// The longest common name X.520 allows (ub-common-name).
const MAX_COMMON_NAME: usize = 64;

/// The on-disk CA: one issuing CA (the current one, or an earlier one by id) loaded with
/// its key, ready to sign device certificates, server certificates and CRLs.
pub struct LocalAuthority {
    id: String,
    ca_dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    certificate: ParsedCertificate,
    certificate_pem: String,
    chain_pem: String,
    root_pem: Option<String>,
    subject_key_id: Vec<u8>,
    crl_lock: Mutex<()>,
}

impl fmt::Debug for LocalAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalAuthority")
            .field("id", &self.id)
            .field("ca_dir", &self.ca_dir)
            .field("subject", &self.certificate.subject_text)
            .finish_non_exhaustive()
    }
}

impl LocalAuthority {
    /// Loads the current issuing CA.
    ///
    /// # Errors
    /// [`AuthorityError::NotInitialised`] or [`AuthorityError::AwaitingCertificate`] when
    /// there is no current CA; otherwise as [`LocalAuthority::load_id`].
    pub fn load(ca_dir: &Path) -> Result<Self, AuthorityError> {
        let id = current_id(ca_dir)?;
        Self::load_id(ca_dir, &id)
    }

    /// Loads the issuing CA with this id, current or previous (e.g. to sign the CRL of a
    /// CA that is no longer current).
    ///
    /// # Errors
    /// [`AuthorityError::UnknownCa`] when no issuing CA has this id;
    /// [`AuthorityError::Corrupt`] when its key, certificate or chain do not parse or do
    /// not belong together; [`AuthorityError::Io`].
    pub fn load_id(ca_dir: &Path, id: &str) -> Result<Self, AuthorityError> {
        let unknown = || AuthorityError::UnknownCa {
            id: id.to_owned(),
            ca_dir: ca_dir.to_owned(),
        };
        if !is_ca_id(id) {
            return Err(unknown());
        }
        let dir = issuing_dir(ca_dir, id);
        let chain_path = dir.join(CHAIN);
        let Some(chain_text) = read_optional(&chain_path)? else {
            return Err(unknown());
        };
        let key = load_key(&dir.join(KEY))?;
        let chain = certificates_from_bytes(chain_text.as_bytes())
            .and_then(|ders| ders.iter().map(|der| parse_certificate(der)).collect())
            .map_err(|reason| corrupt(&chain_path, reason))?;
        let root_pem = if ca_dir.join(ROOT_KEY).exists() {
            read_optional(&ca_dir.join(ROOT_CERT))?
        } else {
            None
        };
        Self::assemble(ca_dir, id.to_owned(), key, chain, root_pem).map_err(|e| match e {
            AuthorityError::InvalidCertificate(reason) | AuthorityError::NotACa(reason) => {
                corrupt(&chain_path, reason)
            }
            other => other,
        })
    }

    /// The state of the CA directory: current CA, previous ids, a waiting CSR, and
    /// whether the root key is local.
    ///
    /// # Errors
    /// [`AuthorityError::NotInitialised`] when there is neither a CA nor a waiting CSR;
    /// as [`LocalAuthority::load`] when the current CA cannot be loaded.
    pub fn overview(ca_dir: &Path) -> Result<CaOverview, AuthorityError> {
        let pending = pending_request(ca_dir)?;
        let current = match read_optional(&ca_dir.join(CURRENT))? {
            Some(id) => Some(Self::load_id(ca_dir, id.trim())?.info()),
            None if pending.is_some() => None,
            None => {
                return Err(AuthorityError::NotInitialised {
                    ca_dir: ca_dir.to_owned(),
                })
            }
        };
        let mut previous_ids = previous_ids(ca_dir)?;
        if let Some(current) = &current {
            previous_ids.retain(|id| id != &current.id);
        }
        Ok(CaOverview {
            current,
            previous_ids,
            pending,
            root_key_local: ca_dir.join(ROOT_KEY).exists(),
        })
    }

    /// This issuing CA's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The chain devices need: this issuing CA's certificate, then its parents up to the
    /// root (as far as known), PEM. The same text the
    /// [`CertificateAuthority`](provisioner_core::CertificateAuthority) port returns.
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    /// The root certificate, PEM, when the root's key is on this machine (development CA).
    pub fn root_pem(&self) -> Option<&str> {
        self.root_pem.as_deref()
    }

    /// This issuing CA's certificate, PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// This issuing CA's serial number, lowercase hex (to revoke it on the root's CRL).
    pub fn serial_hex(&self) -> &str {
        &self.certificate.serial_hex
    }

    /// What `ca show` prints about this CA.
    pub fn info(&self) -> CaInfo {
        CaInfo {
            id: self.id.clone(),
            subject: self.certificate.subject_text.clone(),
            serial: self.certificate.serial_hex.clone(),
            certificate_id: hex::encode(Sha256::digest(&self.certificate.der)),
            not_before: self.certificate.not_before,
            not_after: self.certificate.not_after,
        }
    }

    /// The ids of earlier issuing CAs, oldest first.
    ///
    /// # Errors
    /// [`AuthorityError::Io`]; [`AuthorityError::Corrupt`] for a line that is not an id.
    pub fn previous_ids(ca_dir: &Path) -> Result<Vec<String>, AuthorityError> {
        previous_ids(ca_dir)
    }

    /// Builds the authority from its key and chain, checking that they belong together,
    /// that the certificate is a CA with a subjectKeyIdentifier, and that certificates it
    /// signs name it exactly as its certificate names itself (a probe is signed).
    fn assemble(
        ca_dir: &Path,
        id: String,
        key: KeyPair,
        chain: Vec<ParsedCertificate>,
        root_pem: Option<String>,
    ) -> Result<Self, AuthorityError> {
        let Some(certificate) = chain.first().cloned() else {
            return Err(AuthorityError::InvalidCertificate(
                "the chain holds no certificate".into(),
            ));
        };
        if certificate.spki_der != key.subject_public_key_info() {
            return Err(AuthorityError::InvalidCertificate(
                "the certificate does not certify this CA's key".into(),
            ));
        }
        check_issuing_ca(&certificate)?;
        let subject_key_id = certificate.subject_key_id.clone().ok_or_else(|| {
            AuthorityError::InvalidCertificate("the certificate has no subjectKeyIdentifier: the parent CA must add subjectKeyIdentifier=hash".into())
        })?;
        let issuer = issuer_for(&certificate, key)?;

        // A probe: rcgen re-encodes the issuer name; path building needs the same bytes.
        let mut probe = CertificateParams::default();
        probe.serial_number = Some(SerialNumber::from_slice(&[1]));
        let probe = probe
            .signed_by(issuer.key(), &issuer)
            .map_err(signing)
            .and_then(|c| parse_certificate(c.der()).map_err(AuthorityError::Signing))?;
        if probe.issuer_der != certificate.subject_der {
            return Err(AuthorityError::InvalidCertificate(format!(
                "its subject ({}) uses repeated attributes or string encodings this CA cannot reproduce byte for byte: have the parent CA keep the CSR's subject unchanged",
                certificate.subject_text
            )));
        }
        Ok(Self {
            certificate_pem: provisioner_app::pem::encode("CERTIFICATE", &certificate.der),
            chain_pem: chain_to_pem(&chain),
            id,
            ca_dir: ca_dir.to_owned(),
            issuer,
            certificate,
            root_pem,
            subject_key_id,
            crl_lock: Mutex::new(()),
        })
    }
}
