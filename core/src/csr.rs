//! Parsing a PKCS#10 request strictly and checking its proof of possession.

use const_oid::ObjectIdentifier;
use der::asn1::{AnyRef, BitStringRef};
use der::referenced::OwnedToRef;
use der::{Decode, Encode, Reader, SliceReader, Tag, Tagged};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierRef;
use x509_cert::request::CertReqInfo;

use crate::crypto::SignatureBackend;
use crate::device_id::DeviceIdRule;
use crate::error::{CsrError, KeyError, Refusal};
use crate::header::decode_header;
use crate::key::{spki_curve, Curve, DeviceKey};
use crate::requested::{refuse_subject_alt_name, refuse_subject_beyond_cn};

const ECDSA_WITH_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.1");
const ECDSA_WITH_SHA224: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.1");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_WITH_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// What CSRs an issuance profile accepts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CsrPolicy {
    /// Accept P-384 keys signed with ECDSA-SHA-384 (P-256 with SHA-256 is always accepted).
    pub allow_p384: bool,
    /// Which common names are device ids.
    pub device_id: DeviceIdRule,
    /// Refuse a subject holding anything besides the one CN ([`CsrError::SubjectNotCnOnly`]):
    /// for CAs that copy the CSR's subject into the certificate (IoT Core's).
    pub subject_cn_only: bool,
}

/// The signature algorithms a CSR may be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// ECDSA with SHA-256 over P-256.
    EcdsaWithSha256,
    /// ECDSA with SHA-384 over P-384.
    EcdsaWithSha384,
}

impl SignatureAlgorithm {
    /// The name OpenSSL prints, e.g. `ecdsa-with-SHA256`.
    pub fn name(self) -> &'static str {
        match self {
            Self::EcdsaWithSha256 => "ecdsa-with-SHA256",
            Self::EcdsaWithSha384 => "ecdsa-with-SHA384",
        }
    }
}

impl serde::Serialize for SignatureAlgorithm {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// A certification request whose structure, algorithms, device id and self-signature
/// have all been checked: the sender holds the private key of `public_key`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedCsr {
    /// The subject's common name, a valid device id.
    pub device_id: String,
    /// The requested public key.
    pub public_key: DeviceKey,
    /// Hex SHA-256 of the CertificationRequestInfo DER (unchanged by re-signing).
    pub fingerprint: String,
    /// The algorithm of the self-signature.
    pub signature_algorithm: SignatureAlgorithm,
    /// The CSR's DER, exactly as received: for CAs that sign the request itself (ACM
    /// Private CA, IoT Core) rather than the key and name taken from it. Not part of the
    /// serialized decision (`csr inspect`, the wasm bindings).
    #[serde(skip)]
    pub der: Vec<u8>,
}

impl VerifiedCsr {
    /// The authorizer's key check: the CSR's key must be the device's registered key.
    ///
    /// # Errors
    /// [`Refusal::KeyMismatch`] when the keys differ.
    pub fn check_registered_key(&self, registered: &DeviceKey) -> Result<(), Refusal> {
        if &self.public_key == registered {
            Ok(())
        } else {
            Err(Refusal::KeyMismatch(self.device_id.clone()))
        }
    }
}

/// The outer PKCS#10 structure, with the signed part kept as the bytes received.
#[derive(der::Sequence)]
struct RawCertReq<'a> {
    info: AnyRef<'a>,
    algorithm: AlgorithmIdentifierRef<'a>,
    signature: BitStringRef<'a>,
}

/// Checks `device-csr` header values and CSRs against a [`CsrPolicy`].
#[derive(Debug, Clone, Default)]
pub struct CsrVerifier {
    policy: CsrPolicy,
    backend: SignatureBackend,
}

impl CsrVerifier {
    /// A verifier for `policy` using the fastest signature backend of the target.
    pub fn new(policy: CsrPolicy) -> Self {
        Self {
            policy,
            backend: SignatureBackend::default(),
        }
    }

    /// A verifier using a chosen signature backend (the differential tests use this).
    pub fn with_backend(policy: CsrPolicy, backend: SignatureBackend) -> Self {
        Self { policy, backend }
    }

    /// The policy this verifier enforces.
    pub fn policy(&self) -> &CsrPolicy {
        &self.policy
    }

    /// The edge verifier's whole decision: decodes the header value, parses the CSR,
    /// checks algorithms and device id, and verifies the self-signature.
    ///
    /// # Errors
    /// Any [`CsrError`]: see [`decode_header`] and [`CsrVerifier::verify_der`].
    pub fn verify_header(&self, value: &str) -> Result<VerifiedCsr, CsrError> {
        self.verify_der(&decode_header(value)?)
    }

    /// Verifies a CSR given as DER.
    ///
    /// # Errors
    /// [`CsrError::MalformedCsr`] unless the bytes are exactly one DER PKCS#10 v1 request;
    /// [`CsrError::UnsupportedKey`] for keys other than P-256 (or P-384 where allowed);
    /// [`CsrError::UnsupportedAlgorithm`] for signatures other than ECDSA with the
    /// curve's hash; [`CsrError::InvalidSubject`] unless the subject has exactly one CN;
    /// [`CsrError::InvalidDeviceId`] when the CN breaks the device id rule;
    /// [`CsrError::SubjectAltNameRequested`] when it requests a subjectAltName;
    /// [`CsrError::SubjectNotCnOnly`] when the policy wants the CN alone and the subject
    /// holds more; [`CsrError::BadSignature`] when the self-signature does not verify.
    pub fn verify_der(&self, der: &[u8]) -> Result<VerifiedCsr, CsrError> {
        let raw = RawCertReq::from_der(der).map_err(|e| not_a_csr(der, e))?;
        // Re-encoding an AnyRef reproduces the received bytes: DER headers are canonical
        // (the decoder refuses any other) and the contents are kept as received.
        let info_der = raw.info.to_der().map_err(|e| {
            CsrError::MalformedCsr(format!("the request info does not encode: {e}"))
        })?;
        let info = CertReqInfo::from_der(&info_der).map_err(|e| bad_info(&raw.info, e))?;

        let curve = spki_curve(&info.public_key.owned_to_ref()).map_err(|e| match e {
            KeyError::UnsupportedKey(m) => CsrError::UnsupportedKey(m),
            KeyError::InvalidPublicKey(m) => CsrError::MalformedCsr(m),
        })?;
        if curve == Curve::P384 && !self.policy.allow_p384 {
            return Err(CsrError::UnsupportedKey(
                "P-384 keys are not allowed by this issuance profile: use P-256".into(),
            ));
        }
        let signature_algorithm = signature_algorithm(&raw.algorithm, curve)?;
        #[cfg(not(feature = "p384"))]
        if curve == Curve::P384 {
            return Err(CsrError::UnsupportedKey(
                crate::key::p384_not_built().to_string(),
            ));
        }
        let device_id = common_name(&info)?;
        self.policy.device_id.check(&device_id)?;
        refuse_subject_alt_name(&info)?;
        if self.policy.subject_cn_only {
            refuse_subject_beyond_cn(&info)?;
        }

        let point = info
            .public_key
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| {
                CsrError::MalformedCsr("the public key bit string has unused bits".into())
            })?;
        let public_key = if point.len() == 1 + 2 * curve.field_len() && point[0] == 0x04 {
            DeviceKey::from_verified_uncompressed(curve, point)
        } else {
            // Compressed points are rare; decompressing also checks the point.
            DeviceKey::from_sec1(curve, point).map_err(|_| {
                CsrError::MalformedCsr("the CSR's public key is not a valid point".into())
            })?
        };
        let signature = raw.signature.as_bytes().ok_or_else(|| {
            CsrError::MalformedCsr("the signature bit string has unused bits".into())
        })?;
        if !self
            .backend
            .verify(curve, public_key.sec1_uncompressed(), &info_der, signature)
        {
            return Err(CsrError::BadSignature);
        }
        Ok(VerifiedCsr {
            device_id,
            public_key,
            fingerprint: hex::encode(Sha256::digest(&info_der)),
            signature_algorithm,
            der: der.to_vec(),
        })
    }

    /// The authorizer's decision against a known registered key: the request must
    /// verify and carry exactly that key.
    ///
    /// # Errors
    /// [`Refusal::Csr`] for any [`CsrError`]; [`Refusal::KeyMismatch`] when the keys differ.
    pub fn authorize(&self, header: &str, registered: &DeviceKey) -> Result<VerifiedCsr, Refusal> {
        let verified = self.verify_header(header)?;
        verified.check_registered_key(registered)?;
        Ok(verified)
    }
}

/// Reads a CSR file as tools write it: PEM text or DER.
///
/// # Errors
/// [`CsrError::MalformedCsr`] or [`CsrError::MalformedHeader`] when it is neither.
pub fn csr_der_from_file(bytes: &[u8]) -> Result<Vec<u8>, CsrError> {
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    use base64::Engine;
    let as_header = base64::engine::general_purpose::STANDARD.encode(trim_ascii(bytes));
    decode_header(&as_header).map_err(|e| match e {
        CsrError::MalformedHeader(_) => CsrError::MalformedCsr(
            "the file is neither a PEM CSR (-----BEGIN CERTIFICATE REQUEST-----) nor DER".into(),
        ),
        other => other,
    })
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Explains why bytes starting like DER are not a CSR.
fn not_a_csr(der: &[u8], error: der::Error) -> CsrError {
    if looks_like_certificate(der) {
        return CsrError::MalformedCsr(
            "this is a certificate, not a certificate request: send the CSR the device built"
                .into(),
        );
    }
    CsrError::MalformedCsr(format!(
        "the bytes are not a DER PKCS#10 certification request: {error}"
    ))
}

/// A certificate's signed part opens with its `[0]` version tag, a CSR's with an INTEGER:
/// enough to tell a firmware engineer which file they sent, without parsing X.509 fully.
fn looks_like_certificate(der: &[u8]) -> bool {
    let inner = SliceReader::new(der)
        .ok()
        .and_then(|mut reader| reader.decode::<AnyRef<'_>>().ok())
        .filter(|outer| outer.tag() == Tag::Sequence)
        .and_then(|outer| {
            SliceReader::new(outer.value())
                .ok()?
                .decode::<AnyRef<'_>>()
                .ok()
        });
    matches!(inner, Some(tbs) if tbs.tag() == Tag::Sequence && tbs.value().first() == Some(&0xa0))
}

/// Explains why the CertificationRequestInfo does not parse, naming a wrong version.
fn bad_info(info: &AnyRef<'_>, error: der::Error) -> CsrError {
    let version = SliceReader::new(info.value())
        .ok()
        .and_then(|mut reader| reader.decode::<u64>().ok());
    match version {
        Some(v) if v != 0 => CsrError::MalformedCsr(format!(
            "the request's version field is {v}; PKCS#10 defines only v1 (0)"
        )),
        _ => CsrError::MalformedCsr(format!(
            "the certification request info does not parse: {error}"
        )),
    }
}

fn signature_algorithm(
    algorithm: &AlgorithmIdentifierRef<'_>,
    curve: Curve,
) -> Result<SignatureAlgorithm, CsrError> {
    let found =
        match algorithm.oid {
            ECDSA_WITH_SHA256 => SignatureAlgorithm::EcdsaWithSha256,
            ECDSA_WITH_SHA384 => SignatureAlgorithm::EcdsaWithSha384,
            ECDSA_WITH_SHA1 => return Err(CsrError::UnsupportedAlgorithm(
                "the CSR is signed with ECDSA-SHA1, which is broken: sign with ecdsa-with-SHA256"
                    .into(),
            )),
            ECDSA_WITH_SHA224 | ECDSA_WITH_SHA512 => {
                return Err(CsrError::UnsupportedAlgorithm(format!(
                    "the CSR is signed with {}: sign with ecdsa-with-SHA256",
                    algorithm_name(algorithm.oid)
                )))
            }
            other => {
                return Err(CsrError::UnsupportedAlgorithm(format!(
                    "the CSR is signed with {}; only ecdsa-with-SHA256 (P-256) is accepted",
                    algorithm_name(other)
                )))
            }
        };
    if algorithm.parameters.is_some() {
        return Err(CsrError::UnsupportedAlgorithm(
            "ECDSA signature algorithm identifiers must have no parameters (RFC 5758)".into(),
        ));
    }
    let expected = match curve {
        Curve::P256 => SignatureAlgorithm::EcdsaWithSha256,
        Curve::P384 => SignatureAlgorithm::EcdsaWithSha384,
    };
    if found != expected {
        return Err(CsrError::UnsupportedAlgorithm(format!(
            "a {} key must sign with {}, not {}",
            curve.name(),
            expected.name(),
            found.name()
        )));
    }
    Ok(found)
}

/// A readable name for the signature algorithms devices are most likely to send by mistake.
fn algorithm_name(oid: ObjectIdentifier) -> String {
    let name = match oid.to_string().as_str() {
        "1.2.840.10045.4.3.1" => "ecdsa-with-SHA224",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        "1.3.101.112" => "Ed25519",
        other => return format!("algorithm {other}"),
    };
    name.to_owned()
}

/// The subject's only common name.
fn common_name(info: &CertReqInfo) -> Result<String, CsrError> {
    let mut names = info
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == COMMON_NAME);
    let (Some(cn), None) = (names.next(), names.next()) else {
        let count = info
            .subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .filter(|atv| atv.oid == COMMON_NAME)
            .count();
        return Err(CsrError::InvalidSubject(format!(
            "the subject has {count} common names; it must have exactly one, the device id"
        )));
    };
    match cn.value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
            std::str::from_utf8(cn.value.value())
                .map(str::to_owned)
                .map_err(|_| CsrError::InvalidDeviceId("the common name is not valid UTF-8".into()))
        }
        other => Err(CsrError::InvalidDeviceId(format!(
            "the common name is a {other}; encode the device id as UTF8String or PrintableString"
        ))),
    }
}
