//! The integration tests of `provisioner-store-local`: one binary, a module per area.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop loudly on broken fixtures

mod local_authority;
mod port_contracts;
mod registry_contract;
mod rotation;
mod sqlite_registry;
mod support;
