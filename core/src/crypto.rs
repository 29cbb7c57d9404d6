//! ECDSA verification behind one small interface.
//!
//! Natively the assembly-backed `ring` does the work (several times faster than pure
//! Rust, and what the throughput target needs); on wasm32 the pure-Rust `p256`/`p384`
//! crates do. Both are compiled natively so a differential test can hold them to the
//! same answers on every vector.

use crate::key::Curve;

/// Which implementation checks signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureBackend {
    /// `ring` (assembly-backed); not available on wasm32.
    #[cfg(not(target_arch = "wasm32"))]
    Ring,
    /// RustCrypto `p256`/`p384` (pure Rust, portable).
    RustCrypto,
}

impl Default for SignatureBackend {
    /// The fastest backend for the target.
    fn default() -> Self {
        #[cfg(not(target_arch = "wasm32"))]
        {
            Self::Ring
        }
        #[cfg(target_arch = "wasm32")]
        {
            Self::RustCrypto
        }
    }
}

impl SignatureBackend {
    /// Verifies an ASN.1 DER ECDSA signature over `message`, hashed with the curve's
    /// hash (SHA-256 for P-256, SHA-384 for P-384), under the uncompressed SEC1 `point`.
    ///
    /// Returns `false` for a bad signature, a malformed signature encoding, or a point
    /// that is not on the curve.
    pub fn verify(self, curve: Curve, point: &[u8], message: &[u8], signature: &[u8]) -> bool {
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            Self::Ring => ring_verify(curve, point, message, signature),
            Self::RustCrypto => rustcrypto_verify(curve, point, message, signature),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn ring_verify(curve: Curve, point: &[u8], message: &[u8], signature: &[u8]) -> bool {
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1};
    let algorithm = match curve {
        Curve::P256 => &ECDSA_P256_SHA256_ASN1,
        Curve::P384 => &ECDSA_P384_SHA384_ASN1,
    };
    UnparsedPublicKey::new(algorithm, point)
        .verify(message, signature)
        .is_ok()
}

fn rustcrypto_verify(curve: Curve, point: &[u8], message: &[u8], signature: &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier;
    match curve {
        Curve::P256 => {
            let (Ok(key), Ok(sig)) = (
                p256::ecdsa::VerifyingKey::from_sec1_bytes(point),
                p256::ecdsa::Signature::from_der(signature),
            ) else {
                return false;
            };
            key.verify(message, &sig).is_ok()
        }
        #[cfg(not(feature = "p384"))]
        Curve::P384 => false,
        #[cfg(feature = "p384")]
        Curve::P384 => {
            let (Ok(key), Ok(sig)) = (
                p384::ecdsa::VerifyingKey::from_sec1_bytes(point),
                p384::ecdsa::Signature::from_der(signature),
            ) else {
                return false;
            };
            key.verify(message, &sig).is_ok()
        }
    }
}
