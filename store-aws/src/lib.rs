//! The AWS adapters: the same ports as the local adapters, over AWS services through the
//! AWS SDK for Rust (docs/ARCHITECTURE.md, "The ports and their adapters").
//!
//! - [`dynamodb`]: [`DynamoDbRegistry`](dynamodb::DynamoDbRegistry), the device registry
//!   and audit log in DynamoDB tables, and the manifest import into them.
//! - [`dynamodb_admin`]: what the admin API reads and changes in those tables: pages of
//!   devices, certificates and audit events, revocations, decisions per hour.
//! - [`dynamodb_claim`]: the per-device issuance claim on the device item, which serialises
//!   issuance across processes and Lambdas, and the consistent view of a device's recent
//!   certificates the claim holder decides on.
//! - [`adapters`]: [`AwsAdapters`](adapters::AwsAdapters), the whole adapter set built
//!   from [`AwsSettings`](config::AwsSettings) ([`config`]), for the Lambdas and
//!   `provisioner serve --backend aws`.
//! - [`acm_pca`]: [`AcmPcaAuthority`](acm_pca::AcmPcaAuthority), device certificates from
//!   an ACM Private CA.
//! - [`s3`]: [`S3RetrievalStore`](s3::S3RetrievalStore), latent delivery: certificates
//!   in an S3 bucket, fetched through pre-signed URLs.
//! - [`iot`]: [`IotThingRegistry`](iot::IotThingRegistry), things, policy and device
//!   certificates in IoT Core of every configured region (the serving one before the
//!   device is answered, the others tracked in a registrations table), and
//!   [`IotCoreAuthority`](iot::IotCoreAuthority), certificates from IoT Core's own CA.
//! - [`ca`]: the PKI admin's steps: [`IssuingCaAdmin`](ca::IssuingCaAdmin) creates,
//!   installs and registers the issuing ACM Private CA and rotates it with cascading
//!   revocation; [`IssuingCaStore`](ca::IssuingCaStore), the issuing CA the service reads
//!   at run time from the config table.
//! - [`admin`]: [`AwsFleet`](admin::AwsFleet), the admin API's backend on AWS.
//! - [`maintenance`]: [`Maintenance`](maintenance::Maintenance), the scheduled run that
//!   resumes CA rotations and retries regional registrations.
//!
//! Clients are built from the standard AWS configuration (environment, profile, role);
//! `AWS_ENDPOINT_URL` points them at a stand-in such as moto's server
//! (`scripts/moto.sh`, `scripts/test-aws.sh`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod acm_pca;
pub mod adapters;
pub mod admin;
pub mod ca;
pub mod config;
pub mod dynamodb;
pub mod dynamodb_admin;
pub mod dynamodb_claim;
pub mod iot;
pub mod maintenance;
pub mod s3;
pub mod wiring;

/// Error codes with which AWS services say "too much, too fast" (ACM Private CA, IoT Core,
/// DynamoDB): the SDK retries them, then the adapters answer 503 with Retry-After. S3 says
/// it differently (`s3.rs`).
pub(crate) fn is_throttling(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ThrottlingException"
                | "TooManyRequestsException"
                | "LimitExceededException"
                | "ProvisionedThroughputExceededException"
                | "RequestLimitExceeded"
        )
    )
}
