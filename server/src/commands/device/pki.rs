//! What a simulated device does with its key and certificates: load the secure
//! element's key, build the CSR, split PEM bundles, read the few certificate fields the
//! device needs, and store private keys with owner-only permissions.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use sha2::{Digest, Sha256};

use super::Failure;

/// The suffix of a device's private key file (`<device id>.key.pem`).
pub const KEY_SUFFIX: &str = ".key.pem";
/// The suffix of a device's certificate file (`<device id>.cert.pem`).
pub const CERT_SUFFIX: &str = ".cert.pem";
/// The suffix of a device's CA chain file (`<device id>.chain.pem`).
pub const CHAIN_SUFFIX: &str = ".chain.pem";

/// A simulated secure element: the device's key pair (it only ever signs).
pub struct DeviceKeyPair {
    /// The key pair, able to sign the CSR.
    pub key_pair: KeyPair,
    /// The PEM text as read from the file.
    pub pem: String,
}

impl DeviceKeyPair {
    /// Reads a P-256 (or P-384) private key: PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY` PEM.
    pub fn load(path: &Path) -> Result<Self, Failure> {
        let pem = std::fs::read_to_string(path).map_err(|e| {
            Failure::new(
                "key_unreadable",
                format!("cannot read the key file {}: {e}", path.display()),
            )
        })?;
        let key_pair = key_pair_from_pem(&pem).map_err(|message| {
            Failure::new("invalid_key", format!("{}: {message}", path.display()))
        })?;
        Ok(Self { key_pair, pem })
    }

    /// The uncompressed SEC1 public point, `04 || X || Y`.
    pub fn public_point(&self) -> &[u8] {
        self.key_pair.public_key_raw()
    }
}

/// Parses a PKCS#8 or SEC1 EC private key PEM into a signing key pair.
pub fn key_pair_from_pem(pem: &str) -> Result<KeyPair, String> {
    let pkcs8 = if pem.contains("-----BEGIN EC PRIVATE KEY-----") {
        use p256::pkcs8::{EncodePrivateKey, LineEnding};
        let secret = p256::SecretKey::from_sec1_pem(pem)
            .map_err(|e| format!("the SEC1 key is not a valid P-256 key: {e}"))?;
        secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| format!("cannot re-encode the SEC1 key as PKCS#8: {e}"))?
            .to_string()
    } else if pem.contains("-----BEGIN PRIVATE KEY-----") {
        pem.to_owned()
    } else {
        return Err(
            "expected a PEM private key (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`)".into(),
        );
    };
    KeyPair::from_pkcs8_pem_and_sign_algo(&pkcs8, &rcgen::PKCS_ECDSA_P256_SHA256)
        .or_else(|_| KeyPair::from_pkcs8_pem_and_sign_algo(&pkcs8, &rcgen::PKCS_ECDSA_P384_SHA384))
        .map_err(|e| format!("not an EC P-256 (or P-384) private key: {e}"))
}

/// Builds the device's PKCS#10 request: subject CN = `device_id` and nothing else,
/// signed by the device key (ECDSA P-256 with SHA-256, or P-384 with SHA-384).
pub fn build_csr_der(key_pair: &KeyPair, device_id: &str) -> Result<Vec<u8>, Failure> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, device_id);
    params.distinguished_name = name;
    let csr = params.serialize_request(key_pair).map_err(|e| {
        Failure::new(
            "csr_failed",
            format!("cannot build the CSR for {device_id}: {e}"),
        )
    })?;
    Ok(csr.der().to_vec())
}

/// The `device-csr` header value: standard base64 of the CSR DER.
pub fn csr_header(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// The device id a key file stands for: its name without `.key.pem` (or `.pem`).
pub fn device_id_from_key_path(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let id = name
        .strip_suffix(KEY_SUFFIX)
        .or_else(|| name.strip_suffix(".pem"))?;
    (!id.is_empty()).then(|| id.to_owned())
}

/// The files in `dir` whose names end with `suffix`, sorted by name.
pub fn files_with_suffix(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>, Failure> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Failure::new(
            "dir_unreadable",
            format!("cannot read the directory {}: {e}", dir.display()),
        )
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            Failure::new(
                "dir_unreadable",
                format!("cannot read the directory {}: {e}", dir.display()),
            )
        })?;
        let path = entry.path();
        let matches = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() > suffix.len() && n.ends_with(suffix));
        if matches && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// Writes a private key readable by its owner only (mode 0600 on Unix). With
/// `create_new`, refuses to replace an existing file.
pub fn write_private(path: &Path, contents: &[u8], create_new: bool) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents)?;
    file.flush()
}

/// One `CERTIFICATE` block of a PEM bundle.
#[derive(Debug, Clone)]
pub struct PemCertificate {
    /// The block's text, from `-----BEGIN` to `-----END CERTIFICATE-----` and a newline.
    pub pem: String,
    /// The certificate DER.
    pub der: Vec<u8>,
}

const BEGIN_CERT: &str = "-----BEGIN CERTIFICATE-----";
const END_CERT: &str = "-----END CERTIFICATE-----";

/// Splits a PEM bundle into its `CERTIFICATE` blocks, in order (other blocks are skipped).
pub fn split_certificates(text: &str) -> Result<Vec<PemCertificate>, String> {
    let mut certificates = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN_CERT) {
        let after_begin = &rest[start + BEGIN_CERT.len()..];
        let end = after_begin
            .find(END_CERT)
            .ok_or_else(|| "a CERTIFICATE block has no END line".to_owned())?;
        let body: String = after_begin[..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| format!("a CERTIFICATE block is not valid base64: {e}"))?;
        let mut pem = String::with_capacity(body.len() + 64);
        pem.push_str(BEGIN_CERT);
        pem.push('\n');
        for line in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str(END_CERT);
        pem.push('\n');
        certificates.push(PemCertificate { pem, der });
        rest = &after_begin[end + END_CERT.len()..];
    }
    Ok(certificates)
}

/// IoT Core's certificate id: hex SHA-256 of the certificate DER.
pub fn certificate_id(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The fields of a certificate a device looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFields {
    /// The end of validity, RFC 3339 UTC.
    pub not_after: String,
    /// The subject public key (the SPKI bit string's bytes: a SEC1 point for EC keys).
    pub public_key: Vec<u8>,
}

/// Reads `notAfter` and the subject public key from a certificate DER.
pub fn certificate_fields(der: &[u8]) -> Result<CertificateFields, String> {
    let bad = |what: &str| format!("the certificate does not parse ({what})");
    let (certificate, _) = tlv(der, 0x30).ok_or_else(|| bad("outer sequence"))?;
    let (tbs, _) = tlv(certificate, 0x30).ok_or_else(|| bad("tbsCertificate"))?;
    let mut rest = tbs;
    if rest.first() == Some(&0xA0) {
        rest = tlv(rest, 0xA0).ok_or_else(|| bad("version"))?.1;
    }
    rest = tlv(rest, 0x02).ok_or_else(|| bad("serial"))?.1;
    rest = tlv(rest, 0x30).ok_or_else(|| bad("signature algorithm"))?.1;
    rest = tlv(rest, 0x30).ok_or_else(|| bad("issuer"))?.1;
    let (validity, after_validity) = tlv(rest, 0x30).ok_or_else(|| bad("validity"))?;
    rest = after_validity;
    let not_before_rest = any_tlv(validity).ok_or_else(|| bad("notBefore"))?.2;
    let (tag, not_after, _) = any_tlv(not_before_rest).ok_or_else(|| bad("notAfter"))?;
    let not_after = der_time(tag, not_after).ok_or_else(|| bad("notAfter time"))?;
    rest = tlv(rest, 0x30).ok_or_else(|| bad("subject"))?.1;
    let (spki, _) = tlv(rest, 0x30).ok_or_else(|| bad("subjectPublicKeyInfo"))?;
    let after_algorithm = tlv(spki, 0x30).ok_or_else(|| bad("key algorithm"))?.1;
    let (bits, _) = tlv(after_algorithm, 0x03).ok_or_else(|| bad("public key"))?;
    let public_key = match bits.split_first() {
        Some((0, key)) => key.to_vec(),
        _ => return Err(bad("public key bit string")),
    };
    Ok(CertificateFields {
        not_after,
        public_key,
    })
}

/// One DER element: (tag, contents, rest).
fn any_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, after_tag) = input.split_first()?;
    let (&first, mut after_len) = after_tag.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 || after_len.len() < count {
            return None;
        }
        let mut len = 0usize;
        for &b in &after_len[..count] {
            len = (len << 8) | usize::from(b);
        }
        after_len = &after_len[count..];
        len
    };
    if after_len.len() < len {
        return None;
    }
    let (contents, rest) = after_len.split_at(len);
    Some((tag, contents, rest))
}

/// One DER element with the expected tag: (contents, rest).
fn tlv(input: &[u8], expected: u8) -> Option<(&[u8], &[u8])> {
    match any_tlv(input)? {
        (tag, contents, rest) if tag == expected => Some((contents, rest)),
        _ => None,
    }
}

/// UTCTime (0x17) or GeneralizedTime (0x18), `...Z`, as RFC 3339.
fn der_time(tag: u8, contents: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(contents).ok()?;
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let full = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: u32 = digits[..2].parse().ok()?;
            let century = if yy >= 50 { "19" } else { "20" };
            format!("{century}{digits}")
        }
        (0x18, 14) => digits.to_owned(),
        _ => return None,
    };
    Some(format!(
        "{}-{}-{}T{}:{}:{}Z",
        &full[..4],
        &full[4..6],
        &full[6..8],
        &full[8..10],
        &full[10..12],
        &full[12..14]
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_csr_names_the_device_and_verifies() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let reloaded = key_pair_from_pem(&key.serialize_pem()).unwrap();
        let der = build_csr_der(&reloaded, "01235A2B3C4D5E6F7A").unwrap();
        let verified = provisioner_core::CsrVerifier::default()
            .verify_header(&csr_header(&der))
            .unwrap();
        assert_eq!(verified.device_id, "01235A2B3C4D5E6F7A");
        assert_eq!(
            verified.public_key.sec1_uncompressed(),
            key.public_key_raw()
        );
    }

    #[test]
    fn certificates_are_split_and_read() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.not_after = rcgen::date_time_ymd(2031, 4, 5);
        let cert = params.self_signed(&key).unwrap();
        let bundle = format!("{}\n{}", cert.pem(), cert.pem().replace('\n', "\r\n"));
        let parts = split_certificates(&bundle).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].der, cert.der().to_vec());
        assert_eq!(parts[1].der, cert.der().to_vec());
        let fields = certificate_fields(&parts[0].der).unwrap();
        assert_eq!(fields.not_after, "2031-04-05T00:00:00Z");
        assert_eq!(fields.public_key, key.public_key_raw());
    }

    #[test]
    fn key_file_names_give_device_ids() {
        assert_eq!(
            device_id_from_key_path(Path::new("/x/0123AB.key.pem")).as_deref(),
            Some("0123AB")
        );
        assert_eq!(device_id_from_key_path(Path::new("/x/.key.pem")), None);
    }
}
