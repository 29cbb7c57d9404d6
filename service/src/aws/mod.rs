//! The AWS adapters (cargo feature `aws`): the same ports as the local adapters, over
//! AWS services through the AWS SDK for Rust.
//!
//! - [`dynamodb`]: [`DynamoDbRegistry`](dynamodb::DynamoDbRegistry), the device registry
//!   and audit log in DynamoDB tables, and the manifest import into them.
//! - [`acm_pca`]: [`AcmPcaAuthority`](acm_pca::AcmPcaAuthority), device certificates from
//!   an ACM Private CA (inherent methods; not yet the `CertificateAuthority` port, which
//!   does not pass the CSR bytes PCA needs).
//!
//! Clients are built from the standard AWS configuration (environment, profile, role);
//! `AWS_ENDPOINT_URL` points them at a stand-in such as moto's server
//! (`scripts/moto.sh`, `scripts/test-aws.sh`).

pub mod acm_pca;
pub mod dynamodb;
