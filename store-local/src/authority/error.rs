//! Why the on-disk CA refused ([`AuthorityError`]), and the helpers that build its
//! errors from a failed file access or signature.

use std::io;
use std::path::{Path, PathBuf};

use provisioner_core::PortError;

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

pub(super) fn signing(error: rcgen::Error) -> AuthorityError {
    AuthorityError::Signing(error.to_string())
}

pub(super) fn io_error(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> AuthorityError {
    let path = path.to_owned();
    move |source| AuthorityError::Io {
        action,
        path,
        source,
    }
}

pub(super) fn corrupt(path: &Path, reason: impl Into<String>) -> AuthorityError {
    AuthorityError::Corrupt {
        path: path.to_owned(),
        reason: reason.into(),
    }
}
