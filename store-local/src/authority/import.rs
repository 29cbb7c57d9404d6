//! Installing the certificate an external parent CA issued: the chain is checked (key,
//! CA extensions, validity, order, EC signatures) before it becomes current.

use std::path::Path;

use der::oid::ObjectIdentifier;
use provisioner_core::{Curve, DeviceKey, SignatureBackend, UnixTime};
use rcgen::PublicKeyData;

use super::error::corrupt;
use super::files::{
    commit_current, current_id_for_key, issuing_dir, load_key, parse_id, read_optional,
    remove_if_exists, write_public, CERT, CHAIN, CSR, CURRENT, KEY, PENDING, ROOT_CERT,
};
use super::parsed::{
    certificates_from_bytes, chain_to_pem, check_issuing_ca, parse_certificate, ParsedCertificate,
};
use super::{AuthorityError, ImportReport, LocalAuthority};

impl LocalAuthority {
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
}

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

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
