//! The integration tests of `provisioner-http`: one binary, a module per area.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop loudly on broken fixtures

mod admin_api;
mod admin_jwt;
mod dashboard;
mod support;
