//! The AWS adapters (cargo feature `aws`): the same ports as the local adapters, over
//! AWS services through the AWS SDK for Rust.
//!
//! - [`dynamodb`]: [`DynamoDbRegistry`](dynamodb::DynamoDbRegistry), the device registry
//!   and audit log in DynamoDB tables, and the manifest import into them.
//!
//! Clients are built from the standard AWS configuration (environment, profile, role);
//! `AWS_ENDPOINT_URL` points them at a stand-in such as moto's server
//! (`scripts/moto.sh`, `scripts/test-aws.sh`).

pub mod dynamodb;
