//! Certificate revocation lists: the issuing CA's CRL of device certificates, and the
//! local root's CRL of retired intermediates, each with its own increasing CRL number.

use std::path::Path;
use std::sync::Mutex;

use provisioner_core::{RevocationReason, UnixTime};
use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, RevokedCertParams, SerialNumber,
};

use super::certificate_parts::{datetime, issuer_for};
use super::error::{corrupt, signing};
use super::files::{
    issuing_dir, load_root, read_optional, write_public, CRL_NUMBER, ROOT_CERT, ROOT_CRL_NUMBER,
};
use super::{AuthorityError, LocalAuthority};

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

impl LocalAuthority {
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
pub(super) fn next_crl_number(path: &Path, now: UnixTime) -> Result<i64, AuthorityError> {
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

pub(super) fn serial_bytes(text: &str) -> Result<Vec<u8>, AuthorityError> {
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
