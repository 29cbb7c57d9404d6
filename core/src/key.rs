//! Device public keys: every encoding manufacturers and admins use, one canonical form.
//!
//! The canonical form is base64 (standard alphabet, padded) of the SubjectPublicKeyInfo
//! DER with the uncompressed point. Two keys are the same key exactly when their
//! canonical forms are equal.

use std::fmt;

use base64::Engine;
use const_oid::ObjectIdentifier;
use der::Decode;
use spki::SubjectPublicKeyInfoRef;

use crate::error::KeyError;
use crate::header::decode_base64;

/// id-ecPublicKey.
pub(crate) const EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const PRIME256V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The curves a device key may be on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// NIST P-256 (secp256r1, prime256v1): what secure elements carry.
    P256,
    /// NIST P-384 (secp384r1), where the issuance profile allows it.
    P384,
}

impl Curve {
    /// The JOSE name of the curve (`P-256`, `P-384`).
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
        }
    }

    /// Length of one coordinate in bytes.
    pub fn field_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }

    /// The SPKI DER that precedes the uncompressed point (fixed per curve).
    fn spki_prefix(self) -> &'static [u8] {
        match self {
            // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (66 bytes) }
            Self::P256 => &[
                0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
                0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
            ],
            // SEQUENCE { SEQUENCE { id-ecPublicKey, secp384r1 }, BIT STRING (98 bytes) }
            Self::P384 => &[
                0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
                0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
            ],
        }
    }

    fn from_named_curve(oid: ObjectIdentifier) -> Option<Self> {
        match oid {
            PRIME256V1 => Some(Self::P256),
            SECP384R1 => Some(Self::P384),
            _ => None,
        }
    }
}

/// An elliptic-curve public key, held as its curve and uncompressed SEC1 point.
///
/// Construct it with [`DeviceKey::parse`] (any encoding) or [`DeviceKey::from_spki_der`];
/// both check that the point lies on the curve.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DeviceKey {
    curve: Curve,
    /// `04 || X || Y`.
    point: Vec<u8>,
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceKey({})", self.canonical())
    }
}

impl fmt::Display for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl serde::Serialize for DeviceKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.canonical())
    }
}

fn invalid(message: impl Into<String>) -> KeyError {
    KeyError::InvalidPublicKey(message.into())
}

impl DeviceKey {
    /// Reads a public key in any accepted encoding and checks it is on its curve.
    ///
    /// Accepted: SPKI PEM (`-----BEGIN PUBLIC KEY-----`), base64 of SPKI DER (either
    /// alphabet), SEC1 hex (uncompressed `04...` or compressed `02...`/`03...`), the raw
    /// X||Y hex a secure element reports, and a JWK (`kty` EC, `crv`, `x`, `y`). Hex may
    /// carry a `0x` prefix and `:` or space separators.
    ///
    /// # Errors
    /// [`KeyError::InvalidPublicKey`] when the text is in none of these encodings, has the
    /// wrong length, or names a point that is not on the curve;
    /// [`KeyError::UnsupportedKey`] for a well-formed key that is not EC P-256 or P-384.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid("the public key is empty"));
        }
        if text.starts_with("-----BEGIN") {
            return Self::from_pem(text);
        }
        if text.starts_with('{') {
            return Self::from_jwk(text);
        }
        if let Some(bytes) = hex_bytes(text) {
            return Self::from_hex_bytes(&bytes);
        }
        match decode_base64(text) {
            Some(der) if der.first() == Some(&0x30) => Self::from_spki_der(&der),
            _ => Err(invalid(
                "the public key is in no accepted encoding: use SPKI PEM, base64 SPKI DER, SEC1 or X||Y hex, or a JWK",
            )),
        }
    }

    /// Reads a SubjectPublicKeyInfo DER, checking the point is on the curve.
    ///
    /// # Errors
    /// As [`DeviceKey::parse`].
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let spki = SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| invalid(format!("the SubjectPublicKeyInfo does not parse: {e}")))?;
        let curve = spki_curve(&spki)?;
        let point = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| invalid("the public key bit string has unused bits"))?;
        Self::from_sec1(curve, point)
    }

    /// Builds a key from a SEC1 point (compressed or uncompressed), checking it is on the curve.
    ///
    /// # Errors
    /// [`KeyError::InvalidPublicKey`] when the bytes are not a point on `curve`.
    pub fn from_sec1(curve: Curve, point: &[u8]) -> Result<Self, KeyError> {
        let not_on_curve = |_| invalid(format!("the point is not a valid {} point", curve.name()));
        let uncompressed = match curve {
            Curve::P256 => p256::PublicKey::from_sec1_bytes(point)
                .map_err(not_on_curve)?
                .to_sec1_bytes_uncompressed(),
            #[cfg(feature = "p384")]
            Curve::P384 => p384::PublicKey::from_sec1_bytes(point)
                .map_err(not_on_curve)?
                .to_sec1_bytes_uncompressed(),
            #[cfg(not(feature = "p384"))]
            Curve::P384 => return Err(p384_not_built()),
        };
        Ok(Self {
            curve,
            point: uncompressed,
        })
    }

    /// Wraps an uncompressed point without checking it lies on the curve.
    ///
    /// Only for points whose signature has just verified, which proves they are valid.
    pub(crate) fn from_verified_uncompressed(curve: Curve, point: &[u8]) -> Self {
        Self {
            curve,
            point: point.to_vec(),
        }
    }

    /// The key's curve.
    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// The uncompressed SEC1 point, `04 || X || Y`.
    pub fn sec1_uncompressed(&self) -> &[u8] {
        &self.point
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> Vec<u8> {
        let prefix = self.curve.spki_prefix();
        let mut der = Vec::with_capacity(prefix.len() + self.point.len());
        der.extend_from_slice(prefix);
        der.extend_from_slice(&self.point);
        der
    }

    /// The canonical form: standard base64 of the SPKI DER.
    pub fn canonical(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.spki_der())
    }

    fn from_pem(text: &str) -> Result<Self, KeyError> {
        let normalised = text.replace("\r\n", "\n");
        let (label, der) = pem_rfc7468::decode_vec(normalised.as_bytes())
            .map_err(|e| invalid(format!("the PEM text does not decode: {e}")))?;
        if label != "PUBLIC KEY" {
            return Err(invalid(format!(
                "the PEM label is {label:?}; a public key is labelled \"PUBLIC KEY\" (SubjectPublicKeyInfo)"
            )));
        }
        Self::from_spki_der(&der)
    }

    fn from_hex_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let (curve, sec1) = match bytes.len() {
            65 | 33 => (Curve::P256, bytes.to_vec()),
            97 | 49 => (Curve::P384, bytes.to_vec()),
            // A secure element reports the bare coordinates, X || Y.
            64 => (Curve::P256, [&[0x04], bytes].concat()),
            96 => (Curve::P384, [&[0x04], bytes].concat()),
            n => {
                return Err(invalid(format!(
                    "a hex public key of {n} bytes matches no encoding: expected 65 (04||X||Y), 33 (compressed) or 64 (X||Y) bytes for P-256"
                )))
            }
        };
        Self::from_sec1(curve, &sec1)
    }

    fn from_jwk(text: &str) -> Result<Self, KeyError> {
        #[derive(serde::Deserialize)]
        struct Jwk {
            kty: Option<String>,
            crv: Option<String>,
            x: Option<String>,
            y: Option<String>,
        }
        let jwk: Jwk = serde_json::from_str(text)
            .map_err(|e| invalid(format!("the JWK is not valid JSON: {e}")))?;
        match jwk.kty.as_deref() {
            Some("EC") => {}
            Some(other) => {
                return Err(KeyError::UnsupportedKey(format!(
                    "the JWK's kty is {other:?}; only EC keys (P-256) are accepted"
                )))
            }
            None => return Err(invalid("the JWK has no kty member")),
        }
        let curve = match jwk.crv.as_deref() {
            Some("P-256") => Curve::P256,
            Some("P-384") => Curve::P384,
            Some(other) => {
                return Err(KeyError::UnsupportedKey(format!(
                    "the JWK's curve is {other:?}; only P-256 and P-384 are accepted"
                )))
            }
            None => return Err(invalid("the JWK has no crv member")),
        };
        let coordinate = |name: &str, value: Option<String>| -> Result<Vec<u8>, KeyError> {
            let value = value.ok_or_else(|| invalid(format!("the JWK has no {name} member")))?;
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(value.trim_end_matches('='))
                .map_err(|_| invalid(format!("the JWK's {name} is not base64url")))?;
            if bytes.len() != curve.field_len() {
                return Err(invalid(format!(
                    "the JWK's {name} is {} bytes; {} needs {}",
                    bytes.len(),
                    curve.name(),
                    curve.field_len()
                )));
            }
            Ok(bytes)
        };
        let x = coordinate("x", jwk.x)?;
        let y = coordinate("y", jwk.y)?;
        Self::from_sec1(curve, &[&[0x04][..], &x, &y].concat())
    }
}

/// The refusal of a build without the `p384` feature (the small wasm build).
#[cfg(not(feature = "p384"))]
pub(crate) fn p384_not_built() -> KeyError {
    KeyError::UnsupportedKey(
        "P-384 keys are not supported by this build of the verifier (built without the p384 feature)".into(),
    )
}

/// The curve of an EC SubjectPublicKeyInfo, or why it is not accepted.
pub(crate) fn spki_curve(spki: &SubjectPublicKeyInfoRef<'_>) -> Result<Curve, KeyError> {
    match spki.algorithm.oid {
        EC_PUBLIC_KEY => {}
        RSA_ENCRYPTION => {
            return Err(KeyError::UnsupportedKey(
                "RSA keys are not accepted: the device key must be EC P-256".into(),
            ))
        }
        ED25519 => {
            return Err(KeyError::UnsupportedKey(
                "Ed25519 keys are not accepted: the device key must be EC P-256".into(),
            ))
        }
        other => {
            return Err(KeyError::UnsupportedKey(format!(
                "keys of algorithm {other} are not accepted: the device key must be EC P-256"
            )))
        }
    }
    let named_curve = spki
        .algorithm
        .parameters
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
        .ok_or_else(|| invalid("the EC key does not name its curve"))?;
    Curve::from_named_curve(named_curve).ok_or_else(|| {
        KeyError::UnsupportedKey(format!(
            "the key is on curve {named_curve}; only P-256 (and P-384 where allowed) are accepted"
        ))
    })
}

/// The bytes of a hex string (optional `0x`, `:` or space separators), if it is one.
fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    let text = text.strip_prefix("0x").unwrap_or(text);
    let digits: String = text.chars().filter(|c| !matches!(c, ':' | ' ')).collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    hex::decode(digits).ok()
}

trait UncompressedSec1 {
    fn to_sec1_bytes_uncompressed(&self) -> Vec<u8>;
}

impl UncompressedSec1 for p256::PublicKey {
    fn to_sec1_bytes_uncompressed(&self) -> Vec<u8> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        self.to_encoded_point(false).as_bytes().to_vec()
    }
}

#[cfg(feature = "p384")]
impl UncompressedSec1 for p384::PublicKey {
    fn to_sec1_bytes_uncompressed(&self) -> Vec<u8> {
        use p384::elliptic_curve::sec1::ToEncodedPoint;
        self.to_encoded_point(false).as_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spki_via_der_encoder(oid: ObjectIdentifier, point: &[u8]) -> Vec<u8> {
        use der::Encode;
        spki::SubjectPublicKeyInfoRef {
            algorithm: spki::AlgorithmIdentifierRef {
                oid: EC_PUBLIC_KEY,
                parameters: Some(der::asn1::AnyRef::from(&oid)),
            },
            subject_public_key: der::asn1::BitStringRef::from_bytes(point).unwrap(),
        }
        .to_der()
        .unwrap()
    }

    fn assert_prefix_matches_encoder(curve: Curve, oid: ObjectIdentifier, point: &[u8]) {
        let key = DeviceKey::from_sec1(curve, point).unwrap();
        assert_eq!(key.spki_der(), spki_via_der_encoder(oid, point));
        assert_eq!(DeviceKey::from_spki_der(&key.spki_der()).unwrap(), key);
    }

    #[test]
    fn the_fixed_p256_spki_prefix_matches_the_der_encoder() {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let generator = p256::AffinePoint::GENERATOR.to_encoded_point(false);
        assert_prefix_matches_encoder(Curve::P256, PRIME256V1, generator.as_bytes());
    }

    #[cfg(feature = "p384")]
    #[test]
    fn the_fixed_p384_spki_prefix_matches_the_der_encoder() {
        use p384::elliptic_curve::sec1::ToEncodedPoint;
        let generator = p384::AffinePoint::GENERATOR.to_encoded_point(false);
        assert_prefix_matches_encoder(Curve::P384, SECP384R1, generator.as_bytes());
    }

    #[test]
    fn hex_with_separators_and_prefix_is_read() {
        assert_eq!(hex_bytes("0x04:ab cd"), Some(vec![0x04, 0xab, 0xcd]));
        assert_eq!(hex_bytes("MFkw"), None);
    }
}
