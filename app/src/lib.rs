//! The use cases of the provisioning service over the ports of `provisioner-core`
//! (docs/ARCHITECTURE.md, "The layers"): the provisioning flow ([`flow::Provisioner`])
//! with its per-device issuance claim and failed-request limit, latent delivery, the
//! manifest import's options, and the fleet's admin operations ([`fleet::FleetAdmin`]).
//!
//! Nothing here knows HTTP, SQLite or the AWS SDK: `provisioner-http` calls these use
//! cases, and the adapters (`provisioner-store-local`, `provisioner-store-aws`) implement
//! the ports they run over.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin_token;
pub mod claim;
pub mod failure_limit;
pub mod fleet;
pub mod flow;
pub mod import;
pub mod latent;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
pub mod pem;
