//! The HTTP face of the use cases (docs/ARCHITECTURE.md, "The layers"): the device API
//! router ([`api`]), the same locally and in the issuer Lambda, with the options both
//! configure it with ([`api_options`]), and the admin API router ([`admin`]) with its
//! authentication ([`admin_auth`]), served by `provisioner serve` and the admin-api
//! Lambda. Each router maps errors to HTTP in one place.

#![forbid(unsafe_code)]
// The OpenAPI document's sections are large `json!` literals (admin/openapi/).
#![recursion_limit = "256"]
#![warn(missing_docs)]

pub mod admin;
pub mod admin_auth;
pub mod admin_crls;
pub mod api;
pub mod api_options;
