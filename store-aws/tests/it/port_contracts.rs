//! The port contracts of `provisioner_testkit` (`authority_contract`, `things_contract`,
//! `audit_contract`) on the AWS adapters over moto: ACM Private CA, IoT Core and the
//! DynamoDB audit log. Each test makes its own CA, tables, policy and things, so they
//! run in parallel on one moto; without moto (`AWS_ENDPOINT_URL`) they fail.

use crate::support::sdk;

mod audit;
mod authority;
mod things;
