//! The core's vectors through the JS bindings; `node.rs` runs them in Node, `browser.rs`
//! in headless Chromium. The native suite checks the same expectations.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop loudly on broken fixtures

use js_sys::Reflect;
use provisioner_verifier_wasm::{authorize, normalize_public_key, verify_csr};
use serde_json::{json, Value};
use wasm_bindgen::JsValue;

const VECTORS: &str = include_str!("../../../core/tests/vectors/vectors.json");

fn section(name: &str) -> Vec<Value> {
    let all: Value = serde_json::from_str(VECTORS).unwrap();
    all[name].as_array().unwrap().clone()
}

fn field(object: &JsValue, name: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(name)).unwrap()
}

fn options(vector: &Value) -> JsValue {
    let options = js_sys::Object::new();
    let allow = vector["allowP384"].as_bool().unwrap_or(false);
    Reflect::set(&options, &"allowP384".into(), &allow.into()).unwrap();
    let cn_only = vector["subjectCnOnly"].as_bool().unwrap_or(false);
    Reflect::set(&options, &"subjectCnOnly".into(), &cn_only.into()).unwrap();
    options.into()
}

/// The canonical SPKI of every P-384 key starts with these characters.
const P384_SPKI_PREFIX: &str = "MHYwEAYHKoZIzj0CAQYFK4EEACI";

/// What this build must answer: the vector's expectation, except that a build without the
/// `p384` feature refuses every P-384 key as `unsupported_key`.
fn expected(vector: &Value) -> Value {
    let p384 = vector["expect"]["publicKey"]
        .as_str()
        .is_some_and(|key| key.starts_with(P384_SPKI_PREFIX));
    if p384 && !cfg!(feature = "p384") {
        json!({ "error": "unsupported_key", "status": 400 })
    } else {
        vector["expect"].clone()
    }
}

/// Reads a binding's answer back into the JSON shape the vectors expect.
fn outcome(result: Result<JsValue, JsValue>) -> Value {
    match result {
        Ok(ok) => json!({
            "deviceId": field(&ok, "deviceId").as_string().unwrap(),
            "publicKey": field(&ok, "publicKey").as_string().unwrap(),
            "fingerprint": field(&ok, "fingerprint").as_string().unwrap(),
            "signatureAlgorithm": field(&ok, "signatureAlgorithm").as_string().unwrap(),
        }),
        Err(err) => {
            assert!(!field(&err, "message").as_string().unwrap().is_empty());
            json!({
                "error": field(&err, "error").as_string().unwrap(),
                "status": field(&err, "status").as_f64().unwrap() as u16,
            })
        }
    }
}

pub fn every_csr_vector_gets_its_expected_decision() {
    let vectors = section("csr");
    assert!(vectors.len() >= 30);
    for vector in vectors {
        let got = outcome(verify_csr(
            vector["header"].as_str().unwrap(),
            options(&vector),
        ));
        assert_eq!(got, expected(&vector), "{}", vector["name"]);
    }
}

pub fn every_key_vector_normalises_as_expected() {
    let vectors = section("keys");
    assert!(vectors.len() >= 15);
    for vector in vectors {
        let got = match normalize_public_key(vector["input"].as_str().unwrap()) {
            Ok(key) => json!({ "publicKey": key }),
            Err(err) => json!({
                "error": field(&err, "error").as_string().unwrap(),
                "status": field(&err, "status").as_f64().unwrap() as u16,
            }),
        };
        assert_eq!(got, expected(&vector), "{}", vector["name"]);
    }
}

pub fn every_authorize_vector_gets_its_expected_decision() {
    let vectors = section("authorize");
    assert!(vectors.len() >= 8);
    for vector in vectors {
        let got = outcome(authorize(
            vector["header"].as_str().unwrap(),
            vector["registeredKey"].as_str().unwrap(),
            options(&vector),
        ));
        assert_eq!(got, expected(&vector), "{}", vector["name"]);
    }
}

pub fn without_options_p384_is_refused() {
    let p384 = section("csr")
        .into_iter()
        .find(|v| v["allowP384"] == json!(true))
        .expect("a P-384 vector");
    let err = verify_csr(p384["header"].as_str().unwrap(), JsValue::UNDEFINED).unwrap_err();
    assert_eq!(field(&err, "error").as_string().unwrap(), "unsupported_key");
}

/// Declares every vector test as a `#[wasm_bindgen_test]` in the including file.
#[macro_export]
macro_rules! vector_tests {
    () => {
        #[wasm_bindgen_test::wasm_bindgen_test]
        fn every_csr_vector_gets_its_expected_decision() {
            common::every_csr_vector_gets_its_expected_decision()
        }

        #[wasm_bindgen_test::wasm_bindgen_test]
        fn every_key_vector_normalises_as_expected() {
            common::every_key_vector_normalises_as_expected()
        }

        #[wasm_bindgen_test::wasm_bindgen_test]
        fn every_authorize_vector_gets_its_expected_decision() {
            common::every_authorize_vector_gets_its_expected_decision()
        }

        #[wasm_bindgen_test::wasm_bindgen_test]
        fn without_options_p384_is_refused() {
            common::without_options_p384_is_refused()
        }
    };
}
