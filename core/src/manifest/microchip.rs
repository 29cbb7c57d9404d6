//! Microchip Trust&GO / TrustFLEX manifests: signed JWS entries.

use super::*;

#[derive(Debug)]
pub(super) struct MicrochipEntries<'a> {
    entries: std::iter::Enumerate<std::vec::IntoIter<serde_json::Value>>,
    signers: &'a ManifestSigners,
    backend: SignatureBackend,
}

#[derive(serde::Deserialize)]
struct SignedEntry {
    payload: String,
    protected: String,
    signature: String,
    header: Option<EntryHeader>,
}

#[derive(serde::Deserialize)]
struct EntryHeader {
    #[serde(rename = "uniqueId")]
    unique_id: Option<String>,
}

#[derive(serde::Deserialize)]
struct ProtectedHeader {
    alg: Option<String>,
    kid: Option<String>,
    #[serde(rename = "x5t#S256")]
    x5t_s256: Option<String>,
}

#[derive(serde::Deserialize)]
struct EntryPayload {
    #[serde(rename = "uniqueId")]
    unique_id: Option<String>,
    #[serde(rename = "publicKeySet")]
    public_key_set: Option<PublicKeySet>,
}

#[derive(serde::Deserialize)]
struct PublicKeySet {
    keys: Vec<serde_json::Value>,
}

impl<'a> MicrochipEntries<'a> {
    pub(super) fn new(
        bytes: &[u8],
        signers: &'a ManifestSigners,
        backend: SignatureBackend,
    ) -> Result<Self, ManifestError> {
        if signers.is_empty() {
            return Err(ManifestError::MalformedManifest(
                "a Microchip manifest is checked against its signer certificate, and none was given: supply the manifest signer certificate Microchip publishes".into(),
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            ManifestError::MalformedManifest(format!("the Microchip manifest is not JSON: {e}"))
        })?;
        let serde_json::Value::Array(entries) = value else {
            return Err(ManifestError::MalformedManifest(
                "a Microchip manifest is a JSON array of signed entries; this JSON is not an array"
                    .into(),
            ));
        };
        Ok(Self {
            entries: entries.into_iter().enumerate(),
            signers,
            backend,
        })
    }

    pub(super) fn next(&mut self) -> Option<Result<ManifestRecord, ManifestEntryError>> {
        let (index, value) = self.entries.next()?;
        let line = index + 1;
        let label = value
            .pointer("/header/uniqueId")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        Some(self.entry(line, value).map_err(|(device_id, error)| {
            ManifestEntryError::new(line, device_id.or(label).as_deref(), &error)
        }))
    }

    /// The checked record of one entry, or the error with the (signed) device id if
    /// the entry got that far.
    fn entry(
        &self,
        line: usize,
        value: serde_json::Value,
    ) -> Result<ManifestRecord, (Option<String>, ManifestError)> {
        let entry: SignedEntry = serde_json::from_value(value).map_err(|e| {
            (
                None,
                ManifestError::InvalidManifestEntry(format!(
                "the entry is not a signed entry {{payload, protected, header, signature}}: {e}"
            )),
            )
        })?;
        let payload = self.verify(&entry).map_err(|e| (None, e))?;
        let unique_id = payload.unique_id.ok_or_else(|| {
            (
                None,
                ManifestError::InvalidManifestEntry("the signed payload has no uniqueId".into()),
            )
        })?;
        let fail = |e: ManifestError| (Some(unique_id.clone()), e);
        match entry.header.and_then(|h| h.unique_id) {
            Some(header) if header == unique_id => {}
            Some(header) => {
                return Err(fail(ManifestError::UniqueIdMismatch {
                    header,
                    payload: unique_id.clone(),
                }))
            }
            None => {
                return Err(fail(ManifestError::InvalidManifestEntry(
                    "the entry has no header.uniqueId".into(),
                )))
            }
        }
        check_device_id(&unique_id).map_err(fail)?;
        let jwk = payload
            .public_key_set
            .and_then(|set| {
                set.keys
                    .into_iter()
                    .find(|k| k.get("kid").and_then(serde_json::Value::as_str) == Some("0"))
            })
            .ok_or_else(|| {
                fail(ManifestError::InvalidPublicKey(
                    "the payload's publicKeySet has no key with kid \"0\" (the device key)".into(),
                ))
            })?;
        let public_key = p256_key(&jwk.to_string()).map_err(fail)?;
        if let Some(x5c) = jwk.get("x5c") {
            check_device_certificate(x5c, &public_key, self.backend).map_err(fail)?;
        }
        Ok(ManifestRecord {
            device_id: unique_id,
            public_key,
            line,
        })
    }

    /// Checks the entry's ES256 signature with the signer its protected header names
    /// and returns the signed payload.
    fn verify(&self, entry: &SignedEntry) -> Result<EntryPayload, ManifestError> {
        let invalid = |m: String| ManifestError::InvalidManifestEntry(m);
        let protected: ProtectedHeader = decode_json(&entry.protected)
            .map_err(|e| invalid(format!("the entry's protected header {e}")))?;
        match protected.alg.as_deref() {
            Some("ES256") => {}
            Some(other) => {
                return Err(invalid(format!(
                    "the entry is signed with {other:?}; Microchip manifests are signed with ES256"
                )))
            }
            None => return Err(invalid("the entry's protected header has no alg".into())),
        }
        let x5t = protected.x5t_s256.ok_or_else(|| {
            invalid(
                "the entry's protected header has no x5t#S256 naming its signer certificate".into(),
            )
        })?;
        let thumbprint = BASE64URL
            .decode(&x5t)
            .map_err(|_| invalid(format!("the entry's x5t#S256 {x5t:?} is not base64url")))?;
        let signer = self.signers.find(&thumbprint).ok_or_else(|| {
            ManifestError::UnknownManifestSigner(format!(
                "the entry is signed by the certificate with x5t#S256 {x5t} (kid {}), which is not among the {} signer certificate(s) given",
                protected.kid.as_deref().unwrap_or("absent"),
                self.signers.len()
            ))
        })?;
        let bad = |why: &str| {
            ManifestError::BadManifestSignature(format!(
                "the entry's signature {why} (signer x5t#S256 {x5t}): the entry was altered after it was signed, or is not from this signer"
            ))
        };
        let signature = BASE64URL
            .decode(&entry.signature)
            .ok()
            .and_then(|raw| p256::ecdsa::Signature::from_slice(&raw).ok())
            .ok_or_else(|| bad("is not a base64url 64-byte ES256 signature"))?;
        let signing_input = format!("{}.{}", entry.protected, entry.payload);
        if !self.backend.verify(
            Curve::P256,
            signer.public_key().sec1_uncompressed(),
            signing_input.as_bytes(),
            signature.to_der().as_bytes(),
        ) {
            return Err(bad("does not verify"));
        }
        decode_json(&entry.payload).map_err(|e| invalid(format!("the entry's payload {e}")))
    }
}

/// Decodes base64url JSON; the error completes a sentence naming the part.
fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, String> {
    let bytes = BASE64URL
        .decode(part)
        .map_err(|_| "is not base64url".to_owned())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("is not the expected JSON: {e}"))
}

/// Checks the device key's `x5c` chain: the first certificate holds `key` and, when a
/// second follows, is signed by it with ECDSA P-256 SHA-256.
///
/// The chain is not anchored to a trusted root: the manifest signature already vouches
/// for the key, and this catches a manifest whose certificates and keys disagree.
fn check_device_certificate(
    x5c: &serde_json::Value,
    key: &DeviceKey,
    backend: SignatureBackend,
) -> Result<(), ManifestError> {
    let invalid = |m: String| ManifestError::InvalidDeviceCertificate(m);
    let chain = x5c
        .as_array()
        .ok_or_else(|| invalid("the device key's x5c is not an array".into()))?
        .iter()
        .enumerate()
        .map(|(i, cert)| {
            cert.as_str()
                .and_then(decode_base64)
                .ok_or_else(|| invalid(format!("x5c[{i}] is not a base64 certificate")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let device_der = chain
        .first()
        .ok_or_else(|| invalid("the device key's x5c is empty".into()))?;
    let device = CertificateParts::parse(device_der).map_err(|e| {
        invalid(format!(
            "the device certificate (x5c[0]) does not parse: {e}"
        ))
    })?;
    let device_key = p256_key_of(&device.spki)
        .map_err(|e| invalid(format!("the device certificate's key: {e}")))?;
    if &device_key != key {
        return Err(invalid(
            "the device certificate (x5c[0]) holds another public key than the manifest's device key".into(),
        ));
    }
    let Some(issuer_der) = chain.get(1) else {
        return Ok(());
    };
    let issuer = CertificateParts::parse(issuer_der).map_err(|e| {
        invalid(format!(
            "the issuer certificate (x5c[1]) does not parse: {e}"
        ))
    })?;
    let issuer_key = p256_key_of(&issuer.spki)
        .map_err(|e| invalid(format!("the issuer certificate's (x5c[1]) key: {e}")))?;
    if device.algorithm.oid != ECDSA_WITH_SHA256 {
        return Err(invalid(format!(
            "the device certificate is signed with algorithm {}; expected ecdsa-with-SHA256",
            device.algorithm.oid
        )));
    }
    let signature = device
        .signature
        .as_bytes()
        .ok_or_else(|| invalid("the device certificate's signature has unused bits".into()))?;
    if !backend.verify(
        Curve::P256,
        issuer_key.sec1_uncompressed(),
        device.tbs,
        signature,
    ) {
        return Err(invalid(
            "the device certificate (x5c[0]) is not signed by the next certificate in x5c".into(),
        ));
    }
    Ok(())
}

/// The parts of an X.509 certificate this module uses, read without interpreting names
/// or extensions: device certificates in real manifests carry attributes that strict
/// decoders refuse (a serialNumber PrintableString holding `_` or `@`).
pub(super) struct CertificateParts<'a> {
    /// The TBSCertificate exactly as received (header included): the signed bytes.
    tbs: &'a [u8],
    algorithm: AlgorithmIdentifierRef<'a>,
    signature: BitStringRef<'a>,
    pub(super) spki: SubjectPublicKeyInfoRef<'a>,
}

impl<'a> CertificateParts<'a> {
    pub(super) fn parse(der: &'a [u8]) -> der::Result<Self> {
        let certificate = AnyRef::from_der(der)?;
        certificate.tag().assert_eq(Tag::Sequence)?;
        let mut outer = SliceReader::new(certificate.value())?;
        let tbs = outer.tlv_bytes()?;
        let algorithm = AlgorithmIdentifierRef::decode(&mut outer)?;
        let signature = BitStringRef::decode(&mut outer)?;
        outer.finish(())?;

        let tbs_value = AnyRef::from_der(tbs)?;
        tbs_value.tag().assert_eq(Tag::Sequence)?;
        let mut fields = SliceReader::new(tbs_value.value())?;
        // [0] EXPLICIT version, absent for v1.
        if fields.peek_byte() == Some(0xA0) {
            fields.tlv_bytes()?;
        }
        // serialNumber, signature, issuer, validity, subject: not needed.
        for _ in 0..5 {
            fields.tlv_bytes()?;
        }
        let spki = SubjectPublicKeyInfoRef::decode(&mut fields)?;
        Ok(Self {
            tbs,
            algorithm,
            signature,
            spki,
        })
    }
}
