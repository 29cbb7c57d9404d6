//! The integration tests of `provisioner-store-aws`: one binary, a module per area.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop loudly on broken fixtures

mod acm_pca_authority;
mod aws_admin;
mod aws_ca;
mod aws_flow;
mod dynamodb_admin;
mod dynamodb_registry;
mod iot_registry;
mod port_contracts;
mod s3_retrieval;
mod support;
