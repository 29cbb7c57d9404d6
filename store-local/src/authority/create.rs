//! Making issuing CAs: the development root and its intermediates, CSRs for an external
//! parent, and rotation to a new intermediate.

use std::io;
use std::path::Path;

use provisioner_core::UnixTime;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyIdMethod,
    KeyPair, KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use sha2::{Digest, Sha256};

use super::certificate_parts::{datetime, generate_key, issuer_for, random_serial};
use super::error::{io_error, signing};
use super::files::{
    commit_current, create_private_dir, current_id, issuing_dir, load_root, refuse_if_initialised,
    refuse_if_pending, write_public, CERT, CHAIN, CSR, KEY, PENDING, ROOT_CERT, ROOT_KEY,
};
use super::parsed::{parse_certificate, ParsedCertificate};
use super::{
    AuthorityError, CsrReport, InitReport, LocalAuthority, RotationReport, BACKDATE_SECS,
    ISSUING_VALIDITY_SECS, MAX_COMMON_NAME, ROOT_VALIDITY_SECS,
};
use crate::datadir::write_secret_new;

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
}

/// The CA id of a key: 16 hex characters of the SHA-256 of its SPKI DER.
fn key_id(key: &KeyPair) -> String {
    let digest = Sha256::digest(key.subject_public_key_info());
    hex::encode(&digest[..8])
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
