//! The certificates whose keys sign Microchip manifest entries.

use super::microchip::CertificateParts;
use super::*;

/// A certificate whose key signs Microchip manifest entries.
#[derive(Clone, PartialEq, Eq)]
pub struct ManifestSigner {
    /// SHA-256 of the certificate DER: what an entry's `x5t#S256` names.
    thumbprint: [u8; 32],
    key: DeviceKey,
}

impl fmt::Debug for ManifestSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManifestSigner(x5t#S256={})", self.thumbprint())
    }
}

impl ManifestSigner {
    /// Reads a signer certificate from its DER.
    ///
    /// Only the public key and the DER's SHA-256 are used; the rest of the certificate
    /// (names, validity, extensions) is not interpreted.
    ///
    /// # Errors
    /// [`ManifestError::InvalidSignerCertificate`] when the bytes are not an X.509
    /// certificate or its key is not EC P-256.
    pub fn from_der(der: &[u8]) -> Result<Self, ManifestError> {
        let invalid = |m: String| ManifestError::InvalidSignerCertificate(m);
        let parts = CertificateParts::parse(der)
            .map_err(|e| invalid(format!("the signer certificate does not parse: {e}")))?;
        let key = p256_key_of(&parts.spki)
            .map_err(|e| invalid(format!("the signer certificate's key: {e}")))?;
        Ok(Self {
            thumbprint: Sha256::digest(der).into(),
            key,
        })
    }

    /// The certificate's `x5t#S256`: base64url (no padding) of the SHA-256 of its DER.
    pub fn thumbprint(&self) -> String {
        BASE64URL.encode(self.thumbprint)
    }

    /// The signer's public key.
    pub fn public_key(&self) -> &DeviceKey {
        &self.key
    }
}

/// The manifest signer certificates a Microchip manifest may be signed with.
#[derive(Debug, Clone, Default)]
pub struct ManifestSigners {
    signers: Vec<ManifestSigner>,
}

impl ManifestSigners {
    /// No signers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The signers in a certificate file: see [`ManifestSigners::add_certificates`].
    ///
    /// # Errors
    /// As [`ManifestSigners::add_certificates`].
    pub fn from_certificates(file: &[u8]) -> Result<Self, ManifestError> {
        let mut signers = Self::new();
        signers.add_certificates(file)?;
        Ok(signers)
    }

    /// Adds the certificates of a file: one DER certificate, or PEM text holding one or
    /// more `CERTIFICATE` blocks. Returns how many were added.
    ///
    /// # Errors
    /// [`ManifestError::InvalidSignerCertificate`] when the file is neither, holds a PEM
    /// block of another kind, or any certificate is unusable (nothing is added then).
    pub fn add_certificates(&mut self, file: &[u8]) -> Result<usize, ManifestError> {
        let invalid = |m: String| ManifestError::InvalidSignerCertificate(m);
        let ders = if file.first() == Some(&0x30) {
            vec![file.to_vec()]
        } else {
            let text = std::str::from_utf8(file).map_err(|_| {
                invalid("the signer certificate file is neither DER nor PEM text".into())
            })?;
            pem_certificates(text).map_err(invalid)?
        };
        let added = ders
            .iter()
            .map(|der| ManifestSigner::from_der(der))
            .collect::<Result<Vec<_>, _>>()?;
        let count = added.len();
        self.signers.extend(added);
        Ok(count)
    }

    /// Adds one signer.
    pub fn push(&mut self, signer: ManifestSigner) {
        self.signers.push(signer);
    }

    /// How many signers there are.
    pub fn len(&self) -> usize {
        self.signers.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.signers.is_empty()
    }

    /// The signers, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = &ManifestSigner> {
        self.signers.iter()
    }

    pub(super) fn find(&self, thumbprint: &[u8]) -> Option<&ManifestSigner> {
        self.signers.iter().find(|s| s.thumbprint == thumbprint)
    }
}

/// The DER of every PEM `CERTIFICATE` block in `text`, or why there are none.
fn pem_certificates(text: &str) -> Result<Vec<Vec<u8>>, String> {
    const BEGIN: &str = "-----BEGIN ";
    let text = text.replace("\r\n", "\n");
    let mut ders = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find(BEGIN) {
        let block = &rest[start..];
        let end = block
            .find("-----END ")
            .and_then(|end| {
                block[end + 9..]
                    .find("-----")
                    .map(|tail| end + 9 + tail + 5)
            })
            .ok_or("a PEM block in the signer certificate file has no END line")?;
        let (label, der) = pem_rfc7468::decode_vec(&block.as_bytes()[..end]).map_err(|e| {
            format!("a PEM block in the signer certificate file does not decode: {e}")
        })?;
        if label != "CERTIFICATE" {
            return Err(format!(
                "the signer certificate file holds a {label:?} PEM block; only CERTIFICATE blocks are accepted"
            ));
        }
        ders.push(der);
        rest = &block[end..];
    }
    if ders.is_empty() {
        return Err(
            "the signer certificate file is neither DER nor PEM text with a CERTIFICATE block"
                .into(),
        );
    }
    Ok(ders)
}
