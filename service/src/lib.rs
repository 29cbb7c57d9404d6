//! The provisioning service: the flow of DESIGN.md steps 4-9 over the ports of
//! `provisioner-core`, the device API router, and the local adapters.
//!
//! The same [`flow::Provisioner`] drives the local adapters (`local`, SQLite and an
//! on-disk CA) and, later, the AWS ones; the binaries only build adapters and call it.

#![forbid(unsafe_code)]
// The OpenAPI document is one large `json!` literal (admin.rs).
#![recursion_limit = "256"]
#![warn(missing_docs)]

pub mod admin;
pub mod admin_auth;
pub mod api;
#[cfg(feature = "aws")]
pub mod aws;
pub mod claim;
pub mod fleet;
pub mod flow;
pub mod import;
pub mod latent;
#[cfg(feature = "local")]
pub mod local;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
#[cfg(any(feature = "local", feature = "aws"))]
pub mod pem;
