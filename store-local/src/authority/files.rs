//! The CA directory (the layout is in the [module docs](super)): its file names, the
//! `current`, `previous` and `pending` markers, and reading and writing its keys and
//! certificates.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rcgen::{KeyPair, PublicKeyData, PKCS_ECDSA_P256_SHA256};

use super::error::{corrupt, io_error};
use super::parsed::{certificates_from_bytes, parse_certificate, ParsedCertificate};
use super::{AuthorityError, PendingRequest};

pub(super) const ROOT_KEY: &str = "root.key.pem";
pub(super) const ROOT_CERT: &str = "root.pem";
pub(super) const ROOT_CRL_NUMBER: &str = "root-crl-number";
pub(super) const CURRENT: &str = "current";
const PREVIOUS: &str = "previous";
pub(super) const PENDING: &str = "pending";
const ISSUING: &str = "issuing";
pub(super) const KEY: &str = "key.pem";
pub(super) const CSR: &str = "csr.pem";
pub(super) const CERT: &str = "cert.pem";
pub(super) const CHAIN: &str = "chain.pem";
pub(super) const CRL_NUMBER: &str = "crl-number";

pub(super) fn is_ca_id(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(super) fn parse_id(text: &str, path: &Path) -> Result<String, AuthorityError> {
    if is_ca_id(text) {
        Ok(text.to_owned())
    } else {
        Err(corrupt(
            path,
            format!("{text:?} is not a CA id (16 hex digits)"),
        ))
    }
}

pub(super) fn issuing_dir(ca_dir: &Path, id: &str) -> PathBuf {
    ca_dir.join(ISSUING).join(id)
}

pub(super) fn refuse_if_initialised(ca_dir: &Path) -> Result<(), AuthorityError> {
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

pub(super) fn pending_request(ca_dir: &Path) -> Result<Option<PendingRequest>, AuthorityError> {
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

pub(super) fn refuse_if_pending(ca_dir: &Path) -> Result<(), AuthorityError> {
    match pending_request(ca_dir)? {
        Some(pending) => Err(AuthorityError::RequestPending {
            csr_path: pending.csr_path,
            pending_file: ca_dir.join(PENDING),
        }),
        None => Ok(()),
    }
}

pub(super) fn current_id(ca_dir: &Path) -> Result<String, AuthorityError> {
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
pub(super) fn current_id_for_key(
    ca_dir: &Path,
    spki_der: &[u8],
) -> Result<Option<String>, AuthorityError> {
    let path = ca_dir.join(CURRENT);
    let Some(text) = read_optional(&path)? else {
        return Ok(None);
    };
    let id = parse_id(text.trim(), &path)?;
    let key = load_key(&issuing_dir(ca_dir, &id).join(KEY))?;
    Ok((key.subject_public_key_info() == spki_der).then_some(id))
}

pub(super) fn previous_ids(ca_dir: &Path) -> Result<Vec<String>, AuthorityError> {
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
pub(super) fn commit_current(ca_dir: &Path, id: &str) -> Result<(), AuthorityError> {
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

pub(super) fn load_key(path: &Path) -> Result<KeyPair, AuthorityError> {
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

pub(super) fn load_root(ca_dir: &Path) -> Result<(ParsedCertificate, KeyPair), AuthorityError> {
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

pub(super) fn create_private_dir(path: &Path) -> Result<(), AuthorityError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_error("create the directory", path))
}

pub(super) fn read_optional(path: &Path) -> Result<Option<String>, AuthorityError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read", path)(e)),
    }
}

pub(super) fn remove_if_exists(path: &Path) -> Result<(), AuthorityError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Replaces a file that holds nothing secret, atomically.
pub(super) fn write_public(path: &Path, bytes: &[u8]) -> Result<(), AuthorityError> {
    crate::datadir::write_public_replacing(path, bytes).map_err(io_error("write", path))
}
