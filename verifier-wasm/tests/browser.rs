//! The vector suite in a headless browser (the dashboard's runtime).

#![cfg(target_arch = "wasm32")]

mod common;

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

vector_tests!();
