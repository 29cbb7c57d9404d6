//! What the integration tests of several crates share (docs/ARCHITECTURE.md, "Tests"):
//! the port contract suites, written once against a port and run on the in-memory fakes,
//! the local adapters and the AWS ones over moto, and the helpers for moto itself.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support stops loudly on broken fixtures
#![allow(missing_docs)]

pub mod admin_routes;
pub mod audit_contract;
pub mod authority_contract;
pub mod claimed;
#[cfg(feature = "aws")]
pub mod moto;
pub mod openssl;
pub mod registry_contract;
pub mod things_contract;
