//! The integration tests of `provisioner`: one binary, a module per area. They run the
//! real `provisioner` binary (`env!("CARGO_BIN_EXE_provisioner")`); the `aws` modules
//! need the `aws` feature and moto (scripts/test-aws.sh).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop loudly on broken fixtures

mod admin;
#[cfg(feature = "aws")]
mod aws;
mod certs;
mod compat;
mod concurrency;
mod crash;
mod crl_broker;
mod csr_inspect;
mod device;
mod devices;
mod import;
mod provisioning;
mod support;
