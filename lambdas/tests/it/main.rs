//! The integration tests of `provisioner-lambdas`: one binary, a module per area; the
//! moto ones need the `aws` feature and moto (scripts/test-aws.sh).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop loudly on broken fixtures

#[cfg(feature = "aws")]
mod admin_moto;
mod authorizer;
mod common;
mod issuer;
#[cfg(feature = "aws")]
mod moto;
#[cfg(feature = "aws")]
mod moto_support;
