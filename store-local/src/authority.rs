//! The on-disk certificate authority: the PKI admin's steps 1-2 on one machine, and the
//! [`CertificateAuthority`] the local service signs device certificates with.
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

use std::fmt;
use std::fs;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use der::oid::{AssociatedOid, ObjectIdentifier};
use der::{Decode, Encode, Tag, Tagged};
use provisioner_core::{
    CertificateAuthority, Curve, DeviceKey, IssuanceProfile, PortError, RevocationReason,
    SignatureBackend, SignedCertificate, UnixTime, VerifiedCsr,
};
use rand::RngCore;
use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PublicKeyData, RevokedCertParams, SanType, SerialNumber, SignatureAlgorithm,
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_cert::ext::pkix::{
    BasicConstraints as X509BasicConstraints, KeyUsage, SubjectKeyIdentifier,
};

use super::datadir::write_secret_new;

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

const ROOT_KEY: &str = "root.key.pem";
const ROOT_CERT: &str = "root.pem";
const ROOT_CRL_NUMBER: &str = "root-crl-number";
const CURRENT: &str = "current";
const PREVIOUS: &str = "previous";
const PENDING: &str = "pending";
const ISSUING: &str = "issuing";
const KEY: &str = "key.pem";
const CSR: &str = "csr.pem";
const CERT: &str = "cert.pem";
const CHAIN: &str = "chain.pem";
const CRL_NUMBER: &str = "crl-number";

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

/// Why the on-disk CA could not do what was asked. Every message says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityError {
    /// `init` found a CA (or the start of one) already in the directory.
    #[error("a CA already exists in {}: see it with `provisioner ca show`; to start over, move that directory away first", ca_dir.display())]
    AlreadyInitialised {
        /// The CA directory.
        ca_dir: PathBuf,
    },
    /// There is no issuing CA in the directory.
    #[error("no issuing CA in {}: run `provisioner ca init` (or `ca init --csr-only`, then `ca import-cert`)", ca_dir.display())]
    NotInitialised {
        /// The CA directory.
        ca_dir: PathBuf,
    },
    /// The only issuing CA is a CSR still waiting for its certificate.
    #[error("the issuing CA's CSR {} has not been imported back yet: have the parent CA sign it, then run `provisioner ca import-cert FILE`", csr_path.display())]
    AwaitingCertificate {
        /// The CSR to have signed.
        csr_path: PathBuf,
    },
    /// A new CSR was asked for while another still waits for its certificate.
    #[error("the CSR {} already waits for its certificate: import it with `provisioner ca import-cert FILE`, or delete {} to start over", csr_path.display(), pending_file.display())]
    RequestPending {
        /// The waiting CSR.
        csr_path: PathBuf,
        /// The file that marks it pending.
        pending_file: PathBuf,
    },
    /// A certificate was given to import but no CSR waits for one (and it is not a new
    /// certificate for the current CA's key).
    #[error("no CSR waits for a certificate in {}, and the certificate is not for the current CA's key: run `provisioner ca init --csr-only` first and have its csr.pem signed", ca_dir.display())]
    NoPendingRequest {
        /// The CA directory.
        ca_dir: PathBuf,
    },
    /// The imported certificate certifies another key than the waiting CSR's.
    #[error("the certificate certifies a different key than the waiting CSR {} (CA {expected_id}){hint}: import the certificate the parent CA issued for that CSR", csr_path.display())]
    KeyMismatch {
        /// The id of the CA whose certificate was expected.
        expected_id: String,
        /// The CSR that was signed.
        csr_path: PathBuf,
        /// A hint, e.g. that the certificates are out of order.
        hint: String,
    },
    /// The certificate is not a CA certificate, or may not sign certificates or CRLs.
    #[error("{0}: the parent CA must sign with basicConstraints=critical,CA:TRUE,pathlen:0 and keyUsage=critical,digitalSignature,keyCertSign,cRLSign")]
    NotACa(String),
    /// A certificate or chain that cannot serve as the issuing CA.
    #[error("invalid CA certificate: {0}")]
    InvalidCertificate(String),
    /// No issuing CA has this id.
    #[error("no issuing CA with id {id} in {}: `provisioner ca show` lists the current and previous ids", ca_dir.display())]
    UnknownCa {
        /// The id asked for.
        id: String,
        /// The CA directory.
        ca_dir: PathBuf,
    },
    /// The operation needs the root's key, which is not on this machine.
    #[error("the root CA's key is not in {} (the root is external): rotate with a CSR instead (`init --csr-only` style) and have the parent CA sign it", ca_dir.display())]
    RootKeyNotLocal {
        /// The CA directory.
        ca_dir: PathBuf,
    },
    /// A file of the CA is damaged or does not belong with the others.
    #[error("{}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An argument is out of range (a time, a serial, a name).
    #[error("{0}")]
    InvalidInput(String),
    /// Reading or writing a file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// `read` or `write`, etc.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The signing library refused (should not happen with the keys this CA makes).
    #[error("signing failed: {0}")]
    Signing(String),
}

impl From<AuthorityError> for PortError {
    fn from(error: AuthorityError) -> Self {
        PortError::Internal(format!("local CA: {error}"))
    }
}

fn signing(error: rcgen::Error) -> AuthorityError {
    AuthorityError::Signing(error.to_string())
}

/// What `init_development` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// The new issuing CA's id (now current).
    pub id: String,
    /// The root certificate (`root.pem`).
    pub root_certificate: PathBuf,
    /// The chain devices need (`issuing/<id>/chain.pem`).
    pub chain: PathBuf,
}

/// What `init_csr_only` / `rotate_csr_only` made: a key and its CSR, awaiting a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrReport {
    /// The id the issuing CA will have.
    pub id: String,
    /// Where the CSR was written.
    pub csr_path: PathBuf,
    /// The CSR, PEM.
    pub csr_pem: String,
}

/// What `import_certificate` installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// The issuing CA now current.
    pub id: String,
    /// The CA that was current before, now listed as previous.
    pub previous_id: Option<String>,
    /// Whether the stored chain ends at a self-signed root (if not, devices and brokers
    /// need the root from elsewhere).
    pub chain_ends_at_root: bool,
}

/// What `rotate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// The issuing CA that was current (kept on disk, listed as previous).
    pub old_id: String,
    /// The new current issuing CA.
    pub new_id: String,
}

/// One revoked certificate on a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The serial number in hex (`:` separators and odd lengths are accepted).
    pub serial_hex: String,
    /// When it was revoked.
    pub revoked_at: UnixTime,
    /// Why.
    pub reason: RevocationReason,
}

/// A TLS server certificate and its new key, for the local MQTT broker.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerCertificate {
    /// The certificate alone, PEM (append [`LocalAuthority::chain_pem`] for a certfile).
    pub certificate_pem: String,
    /// Its private key, PKCS#8 PEM: write it with mode 0600.
    pub key_pem: String,
}

impl fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCertificate")
            .field("certificate_pem", &self.certificate_pem)
            .field("key_pem", &"[secret key elided]")
            .finish()
    }
}

/// The facts `ca show` prints about one issuing CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaInfo {
    /// The CA id.
    pub id: String,
    /// Its subject, RFC 4514.
    pub subject: String,
    /// Its serial number, lowercase hex.
    pub serial: String,
    /// Hex SHA-256 of its certificate DER (what IoT Core calls the certificate id).
    pub certificate_id: String,
    /// Start of validity.
    pub not_before: UnixTime,
    /// End of validity.
    pub not_after: UnixTime,
}

/// A CSR that waits for its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    /// The id the issuing CA will have.
    pub id: String,
    /// The CSR to have signed.
    pub csr_path: PathBuf,
}

/// The state of the CA directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaOverview {
    /// The current issuing CA, if there is one.
    pub current: Option<CaInfo>,
    /// Earlier issuing CAs, oldest first.
    pub previous_ids: Vec<String>,
    /// A CSR waiting for its certificate.
    pub pending: Option<PendingRequest>,
    /// Whether the root's key is on this machine (development CA).
    pub root_key_local: bool,
}

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
    /// Creates a development CA: a root (CA:TRUE, pathlen 1, keyCertSign + cRLSign, ten
    /// years) and an issuing intermediate it signs (CA:TRUE, pathlen 0, digitalSignature +
    /// keyCertSign + cRLSign, five years), made current.
    ///
    /// # Errors
    /// [`AuthorityError::AlreadyInitialised`] if the directory already holds a CA, a root
    /// key or a waiting CSR; [`AuthorityError::Io`] when files cannot be written.
    pub fn init_development(ca_dir: &Path, now: UnixTime) -> Result<InitReport, AuthorityError> {
        refuse_if_initialised(ca_dir)?;
        create_private_dir(ca_dir)?;
        let root_key = generate_key()?;
        let root_tag = &key_id(&root_key)[..8];
        let mut root_params = ca_params(
            &format!("Provisioner Development Root CA {root_tag}"),
            1,
            now,
            ROOT_VALIDITY_SECS,
        )?;
        root_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let root_certificate = root_params.self_signed(&root_key).map_err(signing)?;
        // The root key is written first and exclusively: a concurrent init loses here.
        let root_key_path = ca_dir.join(ROOT_KEY);
        match write_secret_new(&root_key_path, root_key.serialize_pem().as_bytes()) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(AuthorityError::AlreadyInitialised {
                    ca_dir: ca_dir.to_owned(),
                })
            }
            other => other.map_err(io_error("write", &root_key_path))?,
        }
        let root_path = ca_dir.join(ROOT_CERT);
        write_public(&root_path, root_certificate.pem().as_bytes())?;

        let root = parse_certificate(root_certificate.der())
            .map_err(AuthorityError::InvalidCertificate)?;
        let root_issuer = issuer_for(&root, root_key)?;
        let id = new_intermediate(ca_dir, &root_issuer, &root, now)?;
        commit_current(ca_dir, &id)?;
        Ok(InitReport {
            chain: issuing_dir(ca_dir, &id).join(CHAIN),
            id,
            root_certificate: root_path,
        })
    }

    /// Starts an issuing CA whose parent is external: writes only its key and a CSR
    /// (`issuing/<id>/csr.pem`) for the parent CA to sign, and marks it pending. Install
    /// the signed certificate with [`LocalAuthority::import_certificate`].
    ///
    /// `common_name` defaults to `Provisioner Issuing CA <id>`.
    ///
    /// # Errors
    /// [`AuthorityError::AlreadyInitialised`] if a CA or root exists (rotate with
    /// [`LocalAuthority::rotate_csr_only`] instead); [`AuthorityError::RequestPending`]
    /// if a CSR already waits; [`AuthorityError::InvalidInput`] for an empty or overlong
    /// common name; [`AuthorityError::Io`].
    pub fn init_csr_only(
        ca_dir: &Path,
        common_name: Option<&str>,
    ) -> Result<CsrReport, AuthorityError> {
        refuse_if_pending(ca_dir)?;
        refuse_if_initialised(ca_dir)?;
        create_private_dir(ca_dir)?;
        new_pending_request(ca_dir, common_name)
    }

    /// Starts the rotation of the issuing CA through an external parent: as
    /// [`LocalAuthority::init_csr_only`], but requires a current CA. The current CA keeps
    /// issuing until [`LocalAuthority::import_certificate`] installs the new one.
    ///
    /// # Errors
    /// [`AuthorityError::NotInitialised`] without a current CA;
    /// [`AuthorityError::RequestPending`]; [`AuthorityError::InvalidInput`];
    /// [`AuthorityError::Io`].
    pub fn rotate_csr_only(
        ca_dir: &Path,
        common_name: Option<&str>,
    ) -> Result<CsrReport, AuthorityError> {
        refuse_if_pending(ca_dir)?;
        current_id(ca_dir)?;
        new_pending_request(ca_dir, common_name)
    }

    /// Installs the certificate an external parent CA issued for the waiting CSR, and
    /// makes it the current issuing CA (the one before is listed as previous). With no
    /// CSR waiting, a certificate for the current CA's own key replaces its certificate
    /// and chain (to add the parent chain, or renew it).
    ///
    /// `pem` holds the issuing CA's certificate first, then optionally its parents
    /// (PEM; a single DER certificate is accepted too). When the chain does not reach a
    /// self-signed root but the local `root.pem` issued its last certificate, the root is
    /// appended. Parent signatures by EC keys are checked.
    ///
    /// # Errors
    /// [`AuthorityError::NoPendingRequest`] when no CSR waits;
    /// [`AuthorityError::KeyMismatch`] when the first certificate is for another key;
    /// [`AuthorityError::NotACa`] when it is not a CA certificate allowed to sign
    /// certificates and CRLs; [`AuthorityError::InvalidCertificate`] when the file holds
    /// no certificate, the certificate has no subjectKeyIdentifier, is outside its
    /// validity at `now`, or the parents are out of order or do not verify;
    /// [`AuthorityError::Io`].
    pub fn import_certificate(
        ca_dir: &Path,
        pem: &[u8],
        now: UnixTime,
    ) -> Result<ImportReport, AuthorityError> {
        let pending_path = ca_dir.join(PENDING);
        let ders = certificates_from_bytes(pem).map_err(AuthorityError::InvalidCertificate)?;
        let mut chain = ders
            .iter()
            .map(|der| parse_certificate(der).map_err(AuthorityError::InvalidCertificate))
            .collect::<Result<Vec<_>, _>>()?;
        let id = match read_optional(&pending_path)? {
            Some(text) => parse_id(text.trim(), &pending_path)?,
            // Without a waiting CSR, a new certificate (or chain) for the current CA's key
            // may replace its old one.
            None => current_id_for_key(ca_dir, &chain[0].spki_der)?.ok_or_else(|| {
                AuthorityError::NoPendingRequest {
                    ca_dir: ca_dir.to_owned(),
                }
            })?,
        };
        let dir = issuing_dir(ca_dir, &id);
        let csr_path = dir.join(CSR);
        let key = load_key(&dir.join(KEY))?;
        let key_spki = key.subject_public_key_info();
        if chain[0].spki_der != key_spki {
            let hint = if chain.iter().any(|c| c.spki_der == key_spki) {
                "; it is in the file but not first: put the issuing CA's certificate first, then its parents".to_owned()
            } else {
                String::new()
            };
            return Err(AuthorityError::KeyMismatch {
                expected_id: id,
                csr_path,
                hint,
            });
        }
        check_issuing_ca(&chain[0])?;
        if now < chain[0].not_before || now >= chain[0].not_after {
            return Err(AuthorityError::InvalidCertificate(format!(
                "the certificate is valid from {} to {} (Unix seconds), not now ({now}): have the parent CA issue it with a current validity",
                chain[0].not_before, chain[0].not_after
            )));
        }
        let root_path = ca_dir.join(ROOT_CERT);
        if let Some(last) = chain.last() {
            if !last.is_self_issued() {
                if let Some(root_pem) = read_optional(&root_path)? {
                    let root = certificates_from_bytes(root_pem.as_bytes())
                        .and_then(|ders| parse_certificate(&ders[0]))
                        .map_err(|reason| corrupt(&root_path, reason))?;
                    if root.subject_der == last.issuer_der {
                        chain.push(root);
                    }
                }
            }
        }
        check_chain_order(&chain)?;
        let chain_ends_at_root = chain.last().is_some_and(ParsedCertificate::is_self_issued);

        // Build the authority before anything is committed: it checks the key, the
        // name encoding and the signing path.
        let chain_pem = chain_to_pem(&chain);
        let authority = Self::assemble(ca_dir, id.clone(), key, chain, None)?;
        write_public(&dir.join(CERT), authority.certificate_pem.as_bytes())?;
        write_public(&dir.join(CHAIN), chain_pem.as_bytes())?;
        let previous_id = read_optional(&ca_dir.join(CURRENT))?
            .map(|text| text.trim().to_owned())
            .filter(|old| !old.is_empty() && old != &id);
        commit_current(ca_dir, &id)?;
        remove_if_exists(&pending_path)?;
        Ok(ImportReport {
            id,
            previous_id,
            chain_ends_at_root,
        })
    }

    /// Rotates the issuing CA: a new intermediate signed by the local root becomes
    /// current; the old one stays on disk, listed as previous (its certificates still
    /// verify until revoked, and it can still sign CRLs through
    /// [`LocalAuthority::load_id`]).
    ///
    /// # Errors
    /// [`AuthorityError::NotInitialised`]; [`AuthorityError::RootKeyNotLocal`] when the
    /// root is external (use [`LocalAuthority::rotate_csr_only`]);
    /// [`AuthorityError::RequestPending`] while a CSR waits; [`AuthorityError::Io`].
    pub fn rotate(ca_dir: &Path, now: UnixTime) -> Result<RotationReport, AuthorityError> {
        refuse_if_pending(ca_dir)?;
        let old_id = current_id(ca_dir)?;
        let (root, root_key) = load_root(ca_dir)?;
        let root_issuer = issuer_for(&root, root_key)?;
        let new_id = new_intermediate(ca_dir, &root_issuer, &root, now)?;
        commit_current(ca_dir, &new_id)?;
        Ok(RotationReport { old_id, new_id })
    }

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
    /// root (as far as known), PEM. The same text the [`CertificateAuthority`] port returns.
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

    /// Signs a device certificate for a verified request, synchronously (the port's
    /// `issue` calls this).
    ///
    /// The profile, exactly: subject CN = the device id (UTF8String) and nothing else; the
    /// request's public key; keyUsage digitalSignature (critical); extendedKeyUsage
    /// clientAuth; basicConstraints CA:FALSE (critical); subjectKeyIdentifier;
    /// authorityKeyIdentifier = this CA's subjectKeyIdentifier; a random positive 20-byte
    /// serial; validity from [`IssuanceProfile::validity_at`]. Nothing else is taken from
    /// the CSR. A `notAfter` past this CA's own `notAfter` is cut to it (the returned
    /// `not_after` says so).
    ///
    /// # Errors
    /// [`AuthorityError::InvalidInput`] when `now` is out of the representable range;
    /// [`AuthorityError::Signing`] if the signature fails.
    pub fn issue_certificate(
        &self,
        request: &VerifiedCsr,
        profile: &IssuanceProfile,
        now: UnixTime,
    ) -> Result<SignedCertificate, AuthorityError> {
        let (not_before, not_after) = profile.validity_at(now);
        let not_after = not_after.min(self.certificate.not_after);
        let serial = random_serial();
        let mut params = CertificateParams::default();
        params.not_before = datetime(not_before)?;
        params.not_after = datetime(not_after)?;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            DnValue::Utf8String(request.device_id.clone()),
        );
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let certificate = params
            .signed_by(&RequestKey(&request.public_key), &self.issuer)
            .map_err(signing)?;
        Ok(SignedCertificate {
            der: certificate.der().to_vec(),
            pem: certificate.pem(),
            serial: hex::encode(serial),
            issuer: self.id.clone(),
            not_before,
            not_after,
        })
    }

    /// A CRL signed by this issuing CA, listing `revoked`, valid from `now` for
    /// `next_update_secs`. It carries the authorityKeyIdentifier and a CRL number that
    /// increases with every CRL this CA signs (at least `now`, and above the last one,
    /// kept in `issuing/<id>/crl-number`).
    ///
    /// # Errors
    /// [`AuthorityError::InvalidInput`] for a serial that is not hex, a time out of range
    /// or `next_update_secs` < 1; [`AuthorityError::Io`] when the CRL number cannot be
    /// stored; [`AuthorityError::Signing`].
    pub fn crl_pem(
        &self,
        revoked: &[RevokedEntry],
        now: UnixTime,
        next_update_secs: i64,
    ) -> Result<String, AuthorityError> {
        let number_path = issuing_dir(&self.ca_dir, &self.id).join(CRL_NUMBER);
        let _guard = self
            .crl_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        sign_crl(
            &self.issuer,
            &self.subject_key_id,
            &number_path,
            revoked,
            now,
            next_update_secs,
        )
    }

    /// A CRL signed by the local root, listing revoked issuing CAs (for rotation: the old
    /// intermediate, by [`LocalAuthority::serial_hex`]). The CRL number is kept in
    /// `root-crl-number`.
    ///
    /// # Errors
    /// [`AuthorityError::RootKeyNotLocal`] when the root is external; otherwise as
    /// [`LocalAuthority::crl_pem`].
    pub fn root_crl_pem(
        ca_dir: &Path,
        revoked_intermediates: &[RevokedEntry],
        now: UnixTime,
        next_update_secs: i64,
    ) -> Result<String, AuthorityError> {
        let (root, root_key) = load_root(ca_dir)?;
        let subject_key_id = root.subject_key_id.clone().ok_or_else(|| {
            corrupt(
                &ca_dir.join(ROOT_CERT),
                "the root has no subjectKeyIdentifier",
            )
        })?;
        let issuer = issuer_for(&root, root_key)?;
        static ROOT_CRL_LOCK: Mutex<()> = Mutex::new(());
        let _guard = ROOT_CRL_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        sign_crl(
            &issuer,
            &subject_key_id,
            &ca_dir.join(ROOT_CRL_NUMBER),
            revoked_intermediates,
            now,
            next_update_secs,
        )
    }

    /// A TLS server certificate (for the local MQTT broker) with a new P-256 key, issued
    /// by this CA: SAN DNS `localhost` and IP `127.0.0.1` plus `hosts` (IP addresses or
    /// DNS names), CN the first host (or `localhost`), extendedKeyUsage serverAuth,
    /// keyUsage digitalSignature, CA:FALSE, one year (cut at this CA's `notAfter`).
    ///
    /// # Errors
    /// [`AuthorityError::InvalidInput`] for a host that is neither an IP address nor a
    /// DNS name; [`AuthorityError::Signing`].
    pub fn server_certificate(
        &self,
        hosts: &[&str],
        now: UnixTime,
    ) -> Result<ServerCertificate, AuthorityError> {
        let key = generate_key()?;
        let mut names: Vec<SanType> = vec![
            SanType::DnsName(ia5("localhost")?),
            SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
        ];
        for host in hosts {
            let name = match host.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(ia5(host)?),
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let mut params = CertificateParams::default();
        params.not_before = datetime(now - BACKDATE_SECS)?;
        params.not_after = datetime((now + SERVER_VALIDITY_SECS).min(self.certificate.not_after))?;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            DnValue::Utf8String(hosts.first().copied().unwrap_or("localhost").to_owned()),
        );
        params.subject_alt_names = names;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let certificate = params.signed_by(&key, &self.issuer).map_err(signing)?;
        Ok(ServerCertificate {
            certificate_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
        })
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

impl CertificateAuthority for LocalAuthority {
    /// Signs synchronously (tens of microseconds): see [`LocalAuthority::issue_certificate`].
    fn issue(
        &self,
        request: &VerifiedCsr,
        _idempotency_key: &str,
        profile: &IssuanceProfile,
        now: UnixTime,
    ) -> impl Future<Output = Result<SignedCertificate, PortError>> + Send {
        std::future::ready(
            self.issue_certificate(request, profile, now)
                .map_err(PortError::from),
        )
    }

    fn chain_pem(&self) -> impl Future<Output = Result<String, PortError>> + Send {
        std::future::ready(Ok(self.chain_pem.clone()))
    }
}

/// A device's key as rcgen certifies it: the SEC1 point and its curve.
struct RequestKey<'a>(&'a DeviceKey);

impl PublicKeyData for RequestKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0.sec1_uncompressed()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self.0.curve() {
            Curve::P256 => &PKCS_ECDSA_P256_SHA256,
            Curve::P384 => &PKCS_ECDSA_P384_SHA384,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Creating CAs.

fn generate_key() -> Result<KeyPair, AuthorityError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(signing)
}

/// The CA id of a key: 16 hex characters of the SHA-256 of its SPKI DER.
fn key_id(key: &KeyPair) -> String {
    let digest = Sha256::digest(key.subject_public_key_info());
    hex::encode(&digest[..8])
}

fn is_ca_id(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn parse_id(text: &str, path: &Path) -> Result<String, AuthorityError> {
    if is_ca_id(text) {
        Ok(text.to_owned())
    } else {
        Err(corrupt(
            path,
            format!("{text:?} is not a CA id (16 hex digits)"),
        ))
    }
}

fn ca_params(
    common_name: &str,
    path_len: u8,
    now: UnixTime,
    validity_secs: i64,
) -> Result<CertificateParams, AuthorityError> {
    let mut params = CertificateParams::default();
    params.not_before = datetime(now - BACKDATE_SECS)?;
    params.not_after = datetime(now + validity_secs)?;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    params.distinguished_name = ca_name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_identifier_method = KeyIdMethod::Sha256;
    Ok(params)
}

fn ca_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Secretless Provisioner");
    name.push(DnType::CommonName, common_name);
    name
}

/// Makes a new issuing intermediate signed by `root`, writes its directory, and returns
/// its id (not yet current).
fn new_intermediate(
    ca_dir: &Path,
    root_issuer: &Issuer<'_, KeyPair>,
    root: &ParsedCertificate,
    now: UnixTime,
) -> Result<String, AuthorityError> {
    let key = generate_key()?;
    let id = key_id(&key);
    let mut params = ca_params(
        &format!("Provisioner Issuing CA {id}"),
        0,
        now,
        ISSUING_VALIDITY_SECS,
    )?;
    params.not_after = params.not_after.min(datetime(root.not_after)?);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params.use_authority_key_identifier_extension = true;
    let certificate = params.signed_by(&key, root_issuer).map_err(signing)?;
    let dir = issuing_dir(ca_dir, &id);
    create_private_dir(&dir)?;
    let key_path = dir.join(KEY);
    write_secret_new(&key_path, key.serialize_pem().as_bytes())
        .map_err(io_error("write", &key_path))?;
    write_public(&dir.join(CERT), certificate.pem().as_bytes())?;
    let chain = format!(
        "{}{}",
        certificate.pem(),
        provisioner_app::pem::encode("CERTIFICATE", &root.der)
    );
    write_public(&dir.join(CHAIN), chain.as_bytes())?;
    Ok(id)
}

fn new_pending_request(
    ca_dir: &Path,
    common_name: Option<&str>,
) -> Result<CsrReport, AuthorityError> {
    let key = generate_key()?;
    let id = key_id(&key);
    let common_name = match common_name {
        Some(name) => {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > MAX_COMMON_NAME {
                return Err(AuthorityError::InvalidInput(format!(
                    "the common name must be 1 to {MAX_COMMON_NAME} characters"
                )));
            }
            name.to_owned()
        }
        None => format!("Provisioner Issuing CA {id}"),
    };
    let mut params = CertificateParams::default();
    params.distinguished_name = ca_name(&common_name);
    // Requested extensions, for parents that copy them; the parent decides.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let csr_pem = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(signing)?;
    let dir = issuing_dir(ca_dir, &id);
    create_private_dir(&dir)?;
    let key_path = dir.join(KEY);
    write_secret_new(&key_path, key.serialize_pem().as_bytes())
        .map_err(io_error("write", &key_path))?;
    let csr_path = dir.join(CSR);
    write_public(&csr_path, csr_pem.as_bytes())?;
    write_public(&ca_dir.join(PENDING), format!("{id}\n").as_bytes())?;
    Ok(CsrReport {
        id,
        csr_path,
        csr_pem,
    })
}

// ---------------------------------------------------------------------------------------
// The directory.

fn issuing_dir(ca_dir: &Path, id: &str) -> PathBuf {
    ca_dir.join(ISSUING).join(id)
}

fn refuse_if_initialised(ca_dir: &Path) -> Result<(), AuthorityError> {
    let taken = [CURRENT, ROOT_KEY, PENDING]
        .iter()
        .any(|name| ca_dir.join(name).exists());
    if taken {
        Err(AuthorityError::AlreadyInitialised {
            ca_dir: ca_dir.to_owned(),
        })
    } else {
        Ok(())
    }
}

fn pending_request(ca_dir: &Path) -> Result<Option<PendingRequest>, AuthorityError> {
    let path = ca_dir.join(PENDING);
    match read_optional(&path)? {
        Some(text) => {
            let id = parse_id(text.trim(), &path)?;
            Ok(Some(PendingRequest {
                csr_path: issuing_dir(ca_dir, &id).join(CSR),
                id,
            }))
        }
        None => Ok(None),
    }
}

fn refuse_if_pending(ca_dir: &Path) -> Result<(), AuthorityError> {
    match pending_request(ca_dir)? {
        Some(pending) => Err(AuthorityError::RequestPending {
            csr_path: pending.csr_path,
            pending_file: ca_dir.join(PENDING),
        }),
        None => Ok(()),
    }
}

fn current_id(ca_dir: &Path) -> Result<String, AuthorityError> {
    let path = ca_dir.join(CURRENT);
    match read_optional(&path)? {
        Some(text) => parse_id(text.trim(), &path),
        None => match pending_request(ca_dir)? {
            Some(pending) => Err(AuthorityError::AwaitingCertificate {
                csr_path: pending.csr_path,
            }),
            None => Err(AuthorityError::NotInitialised {
                ca_dir: ca_dir.to_owned(),
            }),
        },
    }
}

/// The current CA's id, if its key is the one `spki_der` names.
fn current_id_for_key(ca_dir: &Path, spki_der: &[u8]) -> Result<Option<String>, AuthorityError> {
    let path = ca_dir.join(CURRENT);
    let Some(text) = read_optional(&path)? else {
        return Ok(None);
    };
    let id = parse_id(text.trim(), &path)?;
    let key = load_key(&issuing_dir(ca_dir, &id).join(KEY))?;
    Ok((key.subject_public_key_info() == spki_der).then_some(id))
}

fn previous_ids(ca_dir: &Path) -> Result<Vec<String>, AuthorityError> {
    let path = ca_dir.join(PREVIOUS);
    let Some(text) = read_optional(&path)? else {
        return Ok(Vec::new());
    };
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| parse_id(line, &path))
        .collect()
}

/// Makes `id` current; the CA current before is appended to `previous`. `current` is
/// replaced last and atomically: it is the commit point.
fn commit_current(ca_dir: &Path, id: &str) -> Result<(), AuthorityError> {
    let current_path = ca_dir.join(CURRENT);
    if let Some(old) = read_optional(&current_path)? {
        let old = parse_id(old.trim(), &current_path)?;
        let mut previous = previous_ids(ca_dir)?;
        if old != id && !previous.contains(&old) {
            previous.push(old);
            let text: String = previous.iter().map(|p| format!("{p}\n")).collect();
            write_public(&ca_dir.join(PREVIOUS), text.as_bytes())?;
        }
    }
    write_public(&current_path, format!("{id}\n").as_bytes())
}

fn load_key(path: &Path) -> Result<KeyPair, AuthorityError> {
    let pem = read_optional(path)?.ok_or_else(|| {
        corrupt(
            path,
            "the CA's key is missing: restore it from backup, or start a new CA",
        )
    })?;
    if pem.trim().is_empty() {
        return Err(corrupt(
            path,
            "the CA's key file is empty (an interrupted write?); it is not used: restore it from backup, or start a new CA",
        ));
    }
    let key = KeyPair::from_pem(&pem).map_err(|_| {
        corrupt(
            path,
            "not an unencrypted PKCS#8 private key (-----BEGIN PRIVATE KEY-----)",
        )
    })?;
    if key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
        return Err(corrupt(path, "the CA key must be an ECDSA P-256 key"));
    }
    Ok(key)
}

fn load_root(ca_dir: &Path) -> Result<(ParsedCertificate, KeyPair), AuthorityError> {
    let key_path = ca_dir.join(ROOT_KEY);
    if !key_path.exists() {
        return Err(AuthorityError::RootKeyNotLocal {
            ca_dir: ca_dir.to_owned(),
        });
    }
    let key = load_key(&key_path)?;
    let root_path = ca_dir.join(ROOT_CERT);
    let text = read_optional(&root_path)?
        .ok_or_else(|| corrupt(&root_path, "the root certificate is missing"))?;
    let root = certificates_from_bytes(text.as_bytes())
        .and_then(|ders| parse_certificate(&ders[0]))
        .map_err(|reason| corrupt(&root_path, reason))?;
    if root.spki_der != key.subject_public_key_info() {
        return Err(corrupt(
            &root_path,
            "the root certificate is not for root.key.pem",
        ));
    }
    Ok((root, key))
}

fn create_private_dir(path: &Path) -> Result<(), AuthorityError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_error("create the directory", path))
}

fn read_optional(path: &Path) -> Result<Option<String>, AuthorityError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read", path)(e)),
    }
}

fn remove_if_exists(path: &Path) -> Result<(), AuthorityError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Replaces a file that holds nothing secret, atomically.
fn write_public(path: &Path, bytes: &[u8]) -> Result<(), AuthorityError> {
    super::datadir::write_public_replacing(path, bytes).map_err(io_error("write", path))
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> AuthorityError {
    let path = path.to_owned();
    move |source| AuthorityError::Io {
        action,
        path,
        source,
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> AuthorityError {
    AuthorityError::Corrupt {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------
// Signing helpers.

fn random_serial() -> [u8; SERIAL_LEN] {
    let mut serial = [0u8; SERIAL_LEN];
    rand::thread_rng().fill_bytes(&mut serial);
    serial[0] = (serial[0] & 0x3f) | 0x40;
    serial
}

fn datetime(t: UnixTime) -> Result<OffsetDateTime, AuthorityError> {
    OffsetDateTime::from_unix_timestamp(t)
        .map_err(|_| AuthorityError::InvalidInput(format!("time {t} is out of range")))
}

fn ia5(name: &str) -> Result<Ia5String, AuthorityError> {
    Ia5String::try_from(name).map_err(|_| {
        AuthorityError::InvalidInput(format!("{name:?} is not a DNS name or IP address"))
    })
}

/// An rcgen issuer that names itself exactly as `certificate` does, with its
/// subjectKeyIdentifier as the authorityKeyIdentifier of what it signs.
fn issuer_for(
    certificate: &ParsedCertificate,
    key: KeyPair,
) -> Result<Issuer<'static, KeyPair>, AuthorityError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen_name(&certificate.subject)?;
    if let Some(ski) = &certificate.subject_key_id {
        params.key_identifier_method = KeyIdMethod::PreSpecified(ski.clone());
    }
    params.key_usages = certificate.key_usages.clone();
    Ok(Issuer::new(params, key))
}

/// Converts a parsed name into rcgen's, keeping each value's string type.
fn rcgen_name(name: &x509_cert::name::Name) -> Result<DistinguishedName, AuthorityError> {
    let unsupported = |why: &str| {
        AuthorityError::InvalidCertificate(format!(
            "its subject ({name}) {why}; this CA can only sign under names with one value per attribute type"
        ))
    };
    let mut result = DistinguishedName::new();
    for rdn in name.0.iter() {
        let mut values = rdn.0.iter();
        let (Some(atv), None) = (values.next(), values.next()) else {
            return Err(unsupported("has a multi-valued RDN"));
        };
        let arcs: Vec<u64> = atv.oid.arcs().map(u64::from).collect();
        let ty = DnType::from_oid(&arcs);
        if result.get(&ty).is_some() {
            return Err(unsupported("repeats an attribute type"));
        }
        let bytes = atv.value.value();
        let text = || std::str::from_utf8(bytes).map_err(|_| unsupported("has invalid text"));
        let value = match atv.value.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?.to_owned()),
            Tag::PrintableString => DnValue::PrintableString(
                PrintableString::try_from(text()?).map_err(|_| unsupported("has invalid text"))?,
            ),
            Tag::Ia5String => DnValue::Ia5String(
                Ia5String::try_from(text()?).map_err(|_| unsupported("has invalid text"))?,
            ),
            Tag::TeletexString => DnValue::TeletexString(
                TeletexString::try_from(text()?).map_err(|_| unsupported("has invalid text"))?,
            ),
            Tag::BmpString => DnValue::BmpString(
                BmpString::from_utf16be(bytes.to_vec())
                    .map_err(|_| unsupported("has invalid text"))?,
            ),
            _ => return Err(unsupported("has a value that is not a string")),
        };
        result.push(ty, value);
    }
    Ok(result)
}

fn sign_crl(
    issuer: &Issuer<'_, KeyPair>,
    subject_key_id: &[u8],
    number_path: &Path,
    revoked: &[RevokedEntry],
    now: UnixTime,
    next_update_secs: i64,
) -> Result<String, AuthorityError> {
    if next_update_secs < 1 {
        return Err(AuthorityError::InvalidInput(
            "the CRL's next update must be at least one second after this one".into(),
        ));
    }
    let revoked_certs = revoked
        .iter()
        .map(|entry| {
            Ok(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial_bytes(&entry.serial_hex)?),
                revocation_time: datetime(entry.revoked_at)?,
                reason_code: Some(crl_reason(entry.reason)),
                invalidity_date: None,
            })
        })
        .collect::<Result<Vec<_>, AuthorityError>>()?;
    let this_update = datetime(now)?;
    let next_update = datetime(now.saturating_add(next_update_secs))?;
    let number = next_crl_number(number_path, now)?;
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from_slice(&minimal_be(number)),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::PreSpecified(subject_key_id.to_vec()),
    };
    params
        .signed_by(issuer)
        .and_then(|crl| crl.pem())
        .map_err(signing)
}

/// The next CRL number: at least `now`, above the last one used; stored before use.
fn next_crl_number(path: &Path, now: UnixTime) -> Result<i64, AuthorityError> {
    let last = match read_optional(path)? {
        Some(text) => text
            .trim()
            .parse::<i64>()
            .map_err(|_| corrupt(path, "not a CRL number"))?,
        None => 0,
    };
    let number = now.max(last.saturating_add(1)).max(1);
    write_public(path, format!("{number}\n").as_bytes())?;
    Ok(number)
}

fn minimal_be(value: i64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    bytes[start..].to_vec()
}

fn serial_bytes(text: &str) -> Result<Vec<u8>, AuthorityError> {
    let mut digits: String = text.chars().filter(|c| *c != ':').collect();
    if digits.len() % 2 == 1 {
        digits.insert(0, '0');
    }
    match hex::decode(&digits) {
        Ok(bytes) if !bytes.is_empty() && bytes.len() <= 21 => Ok(bytes),
        _ => Err(AuthorityError::InvalidInput(format!(
            "{text:?} is not a certificate serial number in hex"
        ))),
    }
}

fn crl_reason(reason: RevocationReason) -> rcgen::RevocationReason {
    use rcgen::RevocationReason as R;
    match reason.code() {
        1 => R::KeyCompromise,
        2 => R::CaCompromise,
        3 => R::AffiliationChanged,
        4 => R::Superseded,
        5 => R::CessationOfOperation,
        6 => R::CertificateHold,
        9 => R::PrivilegeWithdrawn,
        _ => R::Unspecified,
    }
}

// ---------------------------------------------------------------------------------------
// Reading certificates.

/// The parts of a certificate the CA needs.
#[derive(Debug, Clone)]
struct ParsedCertificate {
    der: Vec<u8>,
    tbs_der: Vec<u8>,
    signature_algorithm: ObjectIdentifier,
    signature: Vec<u8>,
    subject: x509_cert::name::Name,
    subject_text: String,
    subject_der: Vec<u8>,
    issuer_der: Vec<u8>,
    spki_der: Vec<u8>,
    serial_hex: String,
    not_before: UnixTime,
    not_after: UnixTime,
    basic_constraints: Option<X509BasicConstraints>,
    /// `None` when the certificate has no keyUsage extension.
    key_usage: Option<KeyUsage>,
    key_usages: Vec<KeyUsagePurpose>,
    subject_key_id: Option<Vec<u8>>,
}

impl ParsedCertificate {
    fn is_self_issued(&self) -> bool {
        self.subject_der == self.issuer_der
    }

    fn is_ca(&self) -> bool {
        self.basic_constraints.as_ref().is_some_and(|bc| bc.ca)
    }
}

fn parse_certificate(der: &[u8]) -> Result<ParsedCertificate, String> {
    let certificate = x509_cert::Certificate::from_der(der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let tbs = &certificate.tbs_certificate;
    let encode = |what: &str, r: der::Result<Vec<u8>>| r.map_err(|e| format!("{what}: {e}"));
    let mut basic_constraints = None;
    let mut key_usage = None;
    let mut subject_key_id = None;
    for extension in tbs.extensions.iter().flatten() {
        let value = extension.extn_value.as_bytes();
        let bad = |e: der::Error| format!("extension {} does not parse: {e}", extension.extn_id);
        if extension.extn_id == X509BasicConstraints::OID {
            basic_constraints = Some(X509BasicConstraints::from_der(value).map_err(bad)?);
        } else if extension.extn_id == KeyUsage::OID {
            key_usage = Some(KeyUsage::from_der(value).map_err(bad)?);
        } else if extension.extn_id == SubjectKeyIdentifier::OID {
            let ski = SubjectKeyIdentifier::from_der(value).map_err(bad)?;
            subject_key_id = Some(ski.0.as_bytes().to_vec());
        }
    }
    let key_usages = key_usage
        .as_ref()
        .map(|ku| {
            [
                (ku.digital_signature(), KeyUsagePurpose::DigitalSignature),
                (ku.key_cert_sign(), KeyUsagePurpose::KeyCertSign),
                (ku.crl_sign(), KeyUsagePurpose::CrlSign),
            ]
            .into_iter()
            .filter_map(|(present, purpose)| present.then_some(purpose))
            .collect()
        })
        .unwrap_or_default();
    let serial = tbs.serial_number.as_bytes();
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    Ok(ParsedCertificate {
        der: der.to_vec(),
        tbs_der: encode("tbsCertificate", tbs.to_der())?,
        signature_algorithm: certificate.signature_algorithm.oid,
        signature: certificate.signature.raw_bytes().to_vec(),
        subject_text: tbs.subject.to_string(),
        subject_der: encode("subject", tbs.subject.to_der())?,
        issuer_der: encode("issuer", tbs.issuer.to_der())?,
        spki_der: encode("subjectPublicKeyInfo", tbs.subject_public_key_info.to_der())?,
        serial_hex: hex::encode(&serial[start..]),
        not_before: unix(tbs.validity.not_before.to_unix_duration()),
        not_after: unix(tbs.validity.not_after.to_unix_duration()),
        subject: tbs.subject.clone(),
        basic_constraints,
        key_usage,
        key_usages,
        subject_key_id,
    })
}

fn unix(duration: std::time::Duration) -> UnixTime {
    UnixTime::try_from(duration.as_secs()).unwrap_or(UnixTime::MAX)
}

/// The certificate may act as this service's issuing CA.
fn check_issuing_ca(certificate: &ParsedCertificate) -> Result<(), AuthorityError> {
    if !certificate.is_ca() {
        return Err(AuthorityError::NotACa(format!(
            "the certificate for {} is not a CA certificate (no basicConstraints CA:TRUE)",
            certificate.subject_text
        )));
    }
    if let Some(ku) = &certificate.key_usage {
        if !ku.key_cert_sign() || !ku.crl_sign() {
            return Err(AuthorityError::NotACa(format!(
                "the certificate for {} may not sign certificates and CRLs (keyUsage lacks keyCertSign or cRLSign)",
                certificate.subject_text
            )));
        }
    }
    if certificate.subject_key_id.is_none() {
        return Err(AuthorityError::InvalidCertificate(
            "the certificate has no subjectKeyIdentifier: the parent CA must add subjectKeyIdentifier=hash".into(),
        ));
    }
    Ok(())
}

/// Each certificate after the first must be the issuer of the one before it, a CA, and
/// (when its key is EC) its signature must verify.
fn check_chain_order(chain: &[ParsedCertificate]) -> Result<(), AuthorityError> {
    for (position, pair) in chain.windows(2).enumerate() {
        let (child, parent) = (&pair[0], &pair[1]);
        if child.issuer_der != parent.subject_der {
            return Err(AuthorityError::InvalidCertificate(format!(
                "certificate {} ({}) is not the issuer of certificate {}: list the issuing CA's certificate first, then each parent in order",
                position + 2,
                parent.subject_text,
                position + 1
            )));
        }
        if !parent.is_ca() {
            return Err(AuthorityError::InvalidCertificate(format!(
                "certificate {} ({}) is not a CA certificate",
                position + 2,
                parent.subject_text
            )));
        }
        if let Ok(parent_key) = DeviceKey::from_spki_der(&parent.spki_der) {
            let expected = match parent_key.curve() {
                Curve::P256 => ECDSA_WITH_SHA256,
                Curve::P384 => ECDSA_WITH_SHA384,
            };
            if child.signature_algorithm == expected
                && !SignatureBackend::default().verify(
                    parent_key.curve(),
                    parent_key.sec1_uncompressed(),
                    &child.tbs_der,
                    &child.signature,
                )
            {
                return Err(AuthorityError::InvalidCertificate(format!(
                    "certificate {}'s signature does not verify under certificate {} ({}): is that the right parent?",
                    position + 1,
                    position + 2,
                    parent.subject_text
                )));
            }
        }
    }
    Ok(())
}

/// Certificates from PEM text (every `CERTIFICATE` block, in order) or one DER certificate.
fn certificates_from_bytes(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if bytes.first() == Some(&0x30) {
        return Ok(vec![bytes.to_vec()]);
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| "the file is neither PEM text nor a DER certificate".to_owned())?;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut ders = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let body_and_rest = &rest[start + BEGIN.len()..];
        let stop = body_and_rest
            .find(END)
            .ok_or_else(|| format!("certificate {} has no {END} line", ders.len() + 1))?;
        let body: String = body_and_rest[..stop]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| format!("certificate {} is not valid base64: {e}", ders.len() + 1))?;
        ders.push(der);
        rest = &body_and_rest[stop + END.len()..];
    }
    if ders.is_empty() {
        return Err(format!("no certificate found: expected PEM ({BEGIN})"));
    }
    Ok(ders)
}

fn chain_to_pem(chain: &[ParsedCertificate]) -> String {
    chain
        .iter()
        .map(|c| provisioner_app::pem::encode("CERTIFICATE", &c.der))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use provisioner_core::CsrVerifier;
    use std::os::unix::fs::PermissionsExt;

    const NOW: UnixTime = 1_800_000_000;

    fn verified_csr(device_id: &str) -> VerifiedCsr {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, device_id);
        let csr = params.serialize_request(&key).unwrap();
        CsrVerifier::default().verify_der(csr.der()).unwrap()
    }

    fn parse(der: &[u8]) -> x509_cert::Certificate {
        x509_cert::Certificate::from_der(der).unwrap()
    }

    #[test]
    fn a_development_ca_issues_with_the_profile_validity_and_a_20_byte_serial() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        let report = LocalAuthority::init_development(&ca_dir, NOW).unwrap();
        let authority = LocalAuthority::load(&ca_dir).unwrap();
        assert_eq!(authority.id(), report.id);

        let profile = IssuanceProfile::default();
        let signed = authority
            .issue_certificate(&verified_csr("dev-1"), &profile, NOW)
            .unwrap();

        assert_eq!(signed.issuer, report.id);
        assert_eq!(
            (signed.not_before, signed.not_after),
            profile.validity_at(NOW)
        );
        assert_eq!(signed.serial.len(), 40);
        let cert = parse(&signed.der);
        assert_eq!(
            hex::encode(cert.tbs_certificate.serial_number.as_bytes()),
            signed.serial
        );
        assert_eq!(cert.tbs_certificate.subject.to_string(), "CN=dev-1");
    }

    #[test]
    fn the_leaf_carries_the_requested_key_and_names_its_issuer_exactly() {
        let dir = tempfile::tempdir().unwrap();
        LocalAuthority::init_development(dir.path(), NOW).unwrap();
        let authority = LocalAuthority::load(dir.path()).unwrap();
        let request = verified_csr("dev-2");

        let signed = authority
            .issue_certificate(&request, &IssuanceProfile::default(), NOW)
            .unwrap();

        let leaf = parse(&signed.der);
        assert_eq!(
            leaf.tbs_certificate
                .subject_public_key_info
                .to_der()
                .unwrap(),
            request.public_key.spki_der()
        );
        assert_eq!(
            leaf.tbs_certificate.issuer.to_der().unwrap(),
            authority.certificate.subject_der
        );
    }

    #[test]
    fn a_leaf_never_outlives_its_issuing_ca() {
        let dir = tempfile::tempdir().unwrap();
        LocalAuthority::init_development(dir.path(), NOW).unwrap();
        let authority = LocalAuthority::load(dir.path()).unwrap();
        let late = authority.certificate.not_after - 10 * DAY;

        let signed = authority
            .issue_certificate(&verified_csr("dev-3"), &IssuanceProfile::default(), late)
            .unwrap();

        assert_eq!(signed.not_after, authority.certificate.not_after);
    }

    #[test]
    fn keys_are_written_owner_only_and_a_second_init_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let report = LocalAuthority::init_development(dir.path(), NOW).unwrap();
        for key in [
            dir.path().join(ROOT_KEY),
            issuing_dir(dir.path(), &report.id).join(KEY),
        ] {
            let mode = fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", key.display());
        }
        let again = LocalAuthority::init_development(dir.path(), NOW).unwrap_err();
        assert!(matches!(again, AuthorityError::AlreadyInitialised { .. }));
        assert!(again.to_string().contains("move that directory away"));
    }

    #[test]
    fn an_empty_ca_key_is_refused_with_its_path_not_used() {
        // Given a CA whose issuing key file was left empty
        let dir = tempfile::tempdir().unwrap();
        let report = LocalAuthority::init_development(dir.path(), NOW).unwrap();
        let key = issuing_dir(dir.path(), &report.id).join(KEY);
        fs::write(&key, "").unwrap();

        // When it is loaded, then it is refused, naming the file and saying it is empty
        let error = LocalAuthority::load(dir.path()).unwrap_err();
        assert!(matches!(error, AuthorityError::Corrupt { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(&key.display().to_string()), "{message}");
        assert!(message.contains("empty"), "{message}");
        assert!(message.contains("restore it from backup"), "{message}");
    }

    #[test]
    fn crl_numbers_increase_even_within_one_second() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CRL_NUMBER);
        assert_eq!(next_crl_number(&path, NOW).unwrap(), NOW);
        assert_eq!(next_crl_number(&path, NOW).unwrap(), NOW + 1);
        assert_eq!(next_crl_number(&path, NOW + 100).unwrap(), NOW + 100);
    }

    #[test]
    fn serials_are_hex_with_optional_separators_and_never_empty() {
        assert_eq!(serial_bytes("0a:ff").unwrap(), vec![0x0a, 0xff]);
        assert_eq!(serial_bytes("abc").unwrap(), vec![0x0a, 0xbc]);
        assert!(serial_bytes("").is_err());
        assert!(serial_bytes("xyz").is_err());
    }

    #[test]
    fn loading_an_unknown_or_malformed_id_is_refused_without_touching_other_paths() {
        let dir = tempfile::tempdir().unwrap();
        LocalAuthority::init_development(dir.path(), NOW).unwrap();
        for id in ["0123456789abcdef", "../../etc/passwd", ""] {
            let error = LocalAuthority::load_id(dir.path(), id).unwrap_err();
            assert!(matches!(error, AuthorityError::UnknownCa { .. }), "{id}");
        }
    }

    #[test]
    fn an_empty_directory_says_how_to_initialise() {
        let dir = tempfile::tempdir().unwrap();
        let error = LocalAuthority::load(dir.path()).unwrap_err();
        assert!(error.to_string().contains("provisioner ca init"));
    }

    #[test]
    fn debug_output_never_shows_a_key() {
        let dir = tempfile::tempdir().unwrap();
        LocalAuthority::init_development(dir.path(), NOW).unwrap();
        let authority = LocalAuthority::load(dir.path()).unwrap();
        let server = authority.server_certificate(&[], NOW).unwrap();
        assert!(!format!("{authority:?}").contains("PRIVATE"));
        assert!(!format!("{server:?}").contains("PRIVATE"));
    }
}
