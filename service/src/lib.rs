//! The provisioning service: the flow of DESIGN.md steps 4-9 over the ports of
//! `provisioner-core`, the device API router, and the local adapters.
//!
//! The same [`flow::Provisioner`] drives the local adapters (`local`, SQLite and an
//! on-disk CA) and, later, the AWS ones; the binaries only build adapters and call it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "local")]
pub mod admin;
pub mod admin_auth;
pub mod api;
#[cfg(feature = "aws")]
pub mod aws;
pub mod flow;
pub mod import;
pub mod latent;
#[cfg(feature = "local")]
pub mod local;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
