//! WebAssembly bindings of the provisioning verifier.
//!
//! The same decisions as the native service, for the edge function (Node) and the
//! dashboard (browser). Every function throws `{error, status, message}` on refusal,
//! the shape the HTTP API answers with.
//!
//! ```js
//! const { verifyCsr } = require('./provisioner_verifier_wasm.js');
//! const { deviceId, publicKey, fingerprint } = verifyCsr(request.headers['device-csr']);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use js_sys::{Object, Reflect};
use provisioner_core::{CsrPolicy, CsrVerifier, DeviceKey, ErrorCode, VerifiedCsr};
use wasm_bindgen::prelude::*;

/// Builds a plain JS object from string keys and values.
fn object(entries: &[(&str, JsValue)]) -> JsValue {
    let object = Object::new();
    for (key, value) in entries {
        // Setting a property on a fresh plain object cannot fail.
        let _ = Reflect::set(&object, &JsValue::from_str(key), value);
    }
    object.into()
}

/// The refusal as the object JS callers catch: `{error, status, message}`.
fn refusal<E: ErrorCode + std::fmt::Display>(error: &E) -> JsValue {
    object(&[
        ("error", error.code().into()),
        ("status", error.status().into()),
        ("message", error.to_string().into()),
    ])
}

fn verified(csr: &VerifiedCsr) -> JsValue {
    object(&[
        ("deviceId", csr.device_id.as_str().into()),
        ("publicKey", csr.public_key.canonical().into()),
        ("fingerprint", csr.fingerprint.as_str().into()),
        ("signatureAlgorithm", csr.signature_algorithm.name().into()),
    ])
}

/// `options[name]` when it is a boolean, else false.
fn flag(options: &JsValue, name: &str) -> bool {
    options.is_object()
        && Reflect::get(options, &JsValue::from_str(name))
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
}

/// Reads `{ allowP384?: boolean, subjectCnOnly?: boolean }`; anything else means the
/// default policy.
fn verifier(options: &JsValue) -> CsrVerifier {
    CsrVerifier::new(CsrPolicy {
        allow_p384: flag(options, "allowP384"),
        subject_cn_only: flag(options, "subjectCnOnly"),
        ..CsrPolicy::default()
    })
}

/// Verifies a `device-csr` header value: decoding, strict parsing, algorithms, device id
/// and proof of possession. `options` may be `{ allowP384: true }` and
/// `{ subjectCnOnly: true }` (refuse a subject holding more than the CN, as issuance
/// mode iot-core does: `subject_not_cn_only`). A CSR requesting a subjectAltName is
/// refused `subject_alt_name_requested` whatever the options.
///
/// Returns `{deviceId, publicKey, fingerprint, signatureAlgorithm}`; throws
/// `{error, status, message}`.
#[wasm_bindgen(js_name = verifyCsr)]
pub fn verify_csr(header: &str, options: JsValue) -> Result<JsValue, JsValue> {
    verifier(&options)
        .verify_header(header)
        .map(|csr| verified(&csr))
        .map_err(|e| refusal(&e))
}

/// Verifies a header value as [`verify_csr`] does and checks its key is
/// `registered_key` (any accepted encoding); a different key throws `key_mismatch` (403).
#[wasm_bindgen]
pub fn authorize(header: &str, registered_key: &str, options: JsValue) -> Result<JsValue, JsValue> {
    let registered = DeviceKey::parse(registered_key).map_err(|e| refusal(&e))?;
    verifier(&options)
        .authorize(header, &registered)
        .map(|csr| verified(&csr))
        .map_err(|e| refusal(&e))
}

/// Normalises a public key in any accepted encoding (SPKI PEM, base64 SPKI DER, SEC1 or
/// X||Y hex, JWK) to base64 SPKI DER; throws `{error, status, message}`.
#[wasm_bindgen(js_name = normalizePublicKey)]
pub fn normalize_public_key(text: &str) -> Result<String, JsValue> {
    DeviceKey::parse(text)
        .map(|key| key.canonical())
        .map_err(|e| refusal(&e))
}
