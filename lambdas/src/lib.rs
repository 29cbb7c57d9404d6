//! The provisioning service on AWS Lambda: the API Gateway REQUEST authorizer of
//! `POST /new` ([`authorizer`]), the issuer ([`issuer`]: the device router of
//! `provisioner-service` behind API Gateway), the admin API with the dashboard
//! ([`admin_api`]) and the scheduled maintenance ([`maintenance`]: CA rotation batches,
//! regional registration retries).
//!
//! The handlers are generic over the ports they use, so the tests run them in-process
//! with the in-memory fakes and with the DynamoDB registry against moto; the binaries
//! (`src/bin/`, cargo feature `aws`) only read the settings, build the AWS adapters once
//! per container and hand them to the handlers. Build them with
//! `bash scripts/build-lambdas.sh` (cargo lambda).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin_api;
pub mod authorizer;
pub mod gateway;
pub mod issuer;
pub mod maintenance;
pub mod origin;
pub mod settings;
pub mod telemetry;
