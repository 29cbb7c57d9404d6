//! The vector suite in Node (the edge function's runtime).

#![cfg(target_arch = "wasm32")]

mod common;

vector_tests!();
