//! Fuzz target: `device-csr` header bytes -> the verifier's decision.
//!
//! For every input it checks that nothing panics and:
//! - (a) if the bytes are UTF-8, `verify_header` under both policies (`allow_p384`
//!   false/true) gives the same decision with both signature backends, ring and
//!   RustCrypto (a differential oracle: equal `VerifiedCsr`s, or the same error code);
//! - (b) the raw bytes as DER through `verify_der`: the same checks;
//! - in both, every refusal has a non-empty code and status 400 or 403, and a request
//!   accepted without P-384 is accepted identically with it (allowing P-384 only widens);
//! - (c) if UTF-8, `DeviceKey::parse` returns, and an accepted key's `canonical()` form
//!   parses back to an equal key.
//!
//! Run it with `bash scripts/fuzz.sh [SECONDS]`, which seeds `fuzz/corpus/header_to_decision/`
//! from `core/tests/vectors/`; or by hand from the repository root:
//! `cargo +nightly fuzz run header_to_decision -- -max_len=16384`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisioner_core::{
    CsrError, CsrPolicy, CsrVerifier, DeviceKey, ErrorCode, SignatureBackend, VerifiedCsr,
};

/// Runs `decide` with both backends under both policies and checks the oracles above.
fn check(decide: impl Fn(&CsrVerifier) -> Result<VerifiedCsr, CsrError>) {
    let mut without_p384 = None;
    for allow_p384 in [false, true] {
        let policy = CsrPolicy {
            allow_p384,
            ..CsrPolicy::default()
        };
        let [ring, rust] = [SignatureBackend::Ring, SignatureBackend::RustCrypto]
            .map(|backend| decide(&CsrVerifier::with_backend(policy.clone(), backend)));
        for error in [&ring, &rust].into_iter().filter_map(|r| r.as_ref().err()) {
            assert!(!error.code().is_empty(), "empty code for {error:?}");
            assert!(
                matches!(error.status(), 400 | 403),
                "status {} for {error:?}",
                error.status()
            );
        }
        match (&ring, &rust) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "backends accept differently (allow_p384={allow_p384})"),
            (Err(a), Err(b)) => assert_eq!(
                a.code(),
                b.code(),
                "backends refuse differently (allow_p384={allow_p384}): ring {a:?}, RustCrypto {b:?}"
            ),
            _ => panic!("backends disagree (allow_p384={allow_p384}): ring {ring:?}, RustCrypto {rust:?}"),
        }
        match without_p384.take() {
            None => without_p384 = Some(ring),
            Some(Ok(strict)) => {
                assert_eq!(Ok(strict), ring, "allowing P-384 changed an acceptance")
            }
            Some(Err(_)) => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = std::str::from_utf8(data).ok();
    if let Some(header) = text {
        check(|verifier| verifier.verify_header(header));
    }
    check(|verifier| verifier.verify_der(data));
    if let Some(key) = text.and_then(|t| DeviceKey::parse(t).ok()) {
        assert_eq!(
            DeviceKey::parse(&key.canonical()).as_ref(),
            Ok(&key),
            "canonical form does not round-trip"
        );
    }
});
