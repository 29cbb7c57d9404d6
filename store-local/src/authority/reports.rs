//! What the CA's operations report: the ids and files they made, and the facts
//! `ca show` prints.

use std::fmt;
use std::path::PathBuf;

use provisioner_core::UnixTime;

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

/// A TLS server certificate and its new key, for the local MQTT broker.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerCertificate {
    /// The certificate alone, PEM (append
    /// [`LocalAuthority::chain_pem`](super::LocalAuthority::chain_pem) for a certfile).
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
