//! The DynamoDB registry: devices, their certificates and the audit log in three
//! DynamoDB tables ([`DynamoDbTables`]), with the port semantics of the SQLite registry
//! (`local::registry`).
//!
//! [`DynamoDbRegistry`] implements [`DeviceRegistry`] and [`AuditLog`], and offers the
//! manifest [import](DynamoDbRegistry::import) and the tables' creation as inherent
//! methods.
//!
//! # Tables
//!
//! All on-demand (pay per request); [`DynamoDbRegistry::create_tables`] creates them (and
//! adds the audit table's index to an audit table created before it), and the deployment
//! template must define the same keys and indexes:
//!
//! | table | key | attributes |
//! |---|---|---|
//! | devices | `deviceId` (S) | `publicKey` (S, canonical base64 SPKI), `enabled` (BOOL), `sourceManifest` (S), `importedAt` (N); the issuance claim and the recent certificates ([`super::dynamodb_claim`]): `issuanceClaimHolder` (S), `issuanceClaimExpiresAt` (N), `recentCertificates` (M) |
//! | certificates | `certificateId` (S); GSI [`BY_DEVICE_INDEX`]: `deviceId` (S) + `issuedAt` (N), all attributes | `serial`, `issuer`, `publicKey`, `notBefore`, `notAfter`, `status` (`ACTIVE`, `INACTIVE`, `REVOKED`), `revokedAt`, `revocationReason` (RFC 5280 name), `certificatePem` |
//! | audit | `day` (S, `YYYY-MM-DD` UTC) + `eventId` (S, RFC 3339 time `#` 32 random hex digits); sparse GSI [`AUDIT_BY_DEVICE_INDEX`]: `deviceId` (S) + `eventId` (S), all attributes (events without a device id are not in it) | `at` (N), `decision`, `code`, `deviceId`, `remoteAddr`, `fingerprint`, `certificateId` (absent when none) |
//!
//! Times are Unix seconds. There is no separate rate-limit counter: the rate limit counts
//! [`DeviceRegistry::certificates_of`], as with SQLite.
//!
//! Tables made before the issuance claim need no migration: the claim's attributes are
//! added to a device item by its first claim, and an item without them is unclaimed.
//!
//! # Consistency and atomicity
//!
//! - [`DeviceRegistry::device`] and [`DeviceRegistry::certificate`] are strongly
//!   consistent reads.
//! - Issuance is serialised per device by a claim on the device item
//!   ([`DeviceRegistry::claim_issuance`], a conditional write shared by every process and
//!   Lambda over the tables), taken before the CA is asked and released by the issuance
//!   record: one signing call per decision, however many requests race.
//! - [`DeviceRegistry::certificates_of`] queries the `byDevice` index, which DynamoDB
//!   keeps eventually consistent, then reads again by key, strongly consistent, every
//!   certificate the index reports ACTIVE and every one the device item lists as issued
//!   in the last hour: a certificate recorded a moment ago, or superseded a moment ago,
//!   is seen as it is (see [`super::dynamodb_claim`]), so the claim holder's decision and
//!   the rate limit see every issuance before it.
//! - The audit table's [`AUDIT_BY_DEVICE_INDEX`] (what the admin API lists one device's
//!   events from) is eventually consistent as well: an event recorded a moment ago may
//!   not be listed yet.
//! - [`DeviceRegistry::record_issuance`] is one `TransactWriteItems`: the new certificate
//!   (only if its id is not recorded yet), the release of the claim on the device item
//!   (conditioned on the holder still holding it: [`PortError::ClaimLost`] otherwise;
//!   the device must exist), and each superseded certificate set REVOKED: all or
//!   nothing. A superseded id that is not the
//!   device's, unknown, or already revoked is skipped, as SQLite skips it (the
//!   transaction is retried without it). Recording the same certificate for the same
//!   device again (a retry) is harmless; for another device it is
//!   [`DynamoDbError::CertificateConflict`]. A transaction holds at most 100 items: past
//!   98 superseded certificates, the rest are revoked by further transactions after the
//!   first one (certificate first), each atomic but not all together.
//! - [`DynamoDbRegistry::import`] is idempotent rather than atomic (see
//!   [`ImportSummary::atomic`]).
//!
//! # Errors
//!
//! Throttling (`ThrottlingException`, `ProvisionedThroughputExceededException`,
//! `RequestLimitExceeded`), and transaction conflicts (`TransactionConflictException`,
//! a cancelled transaction's `TransactionConflict`) are
//! [`DynamoDbError::Unavailable`], which the ports answer as
//! [`PortError::Unavailable`] (503, retry after 1 s), once the SDK's own retries are
//! spent. Anything else is [`PortError::Internal`] with the SDK error's display (which
//! never holds credentials).
//!
//! # Where it is
//!
//! - `error`: [`DynamoDbError`], and the AWS SDK's errors mapped to it.
//! - `tables`: [`DynamoDbRegistry::create_tables`].
//! - `items`: the certificate item and the attribute readers the other modules share.
//! - `device_registry`: the [`DeviceRegistry`] port.
//! - `issuance`: the `TransactWriteItems` that records an issuance.
//! - `import`: [`DynamoDbRegistry::import`], the manifest import in batches.
//! - `rotation`: what the CA rotation (`crate::ca`) reads and revokes by issuer.
//! - `audit`: the [`AuditLog`] port and the audit item.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
#[cfg(doc)]
use provisioner_core::{AuditLog, DeviceRegistry, PortError};

mod audit;
mod device_registry;
mod error;
mod import;
mod issuance;
mod items;
mod rotation;
mod tables;

pub use error::DynamoDbError;
pub use provisioner_app::import::{
    ImportError, ImportItem, ImportOptions, ImportSummary, MAX_REPORTED_ERRORS,
};

pub(crate) use audit::{audit_event_from_item, day_text};
pub(crate) use error::{build_error, sdk_error};
pub(crate) use import::backoff;
pub(crate) use items::{
    boolean, certificate_from_item, corrupt_item, number, number_value, optional_text, status_name,
    stored_key, text,
};

/// The certificates table's index by device: `deviceId` (hash) and `issuedAt` (range).
pub const BY_DEVICE_INDEX: &str = "byDevice";

/// The audit table's index by device: `deviceId` (hash) and `eventId` (range), every
/// attribute. Sparse: an event without a device id is not in it.
pub const AUDIT_BY_DEVICE_INDEX: &str = "byDevice";

/// DynamoDB's limit of keys in one `BatchGetItem`.
pub(crate) const BATCH_GET_KEYS: usize = 100;

/// Attempts at a batch whose unprocessed part keeps coming back, before giving up.
pub(crate) const MAX_BATCH_ATTEMPTS: u32 = 10;

/// A DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The names of the registry's three tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoDbTables {
    /// Devices, by `deviceId`.
    pub devices: String,
    /// Certificates, by `certificateId`, with the [`BY_DEVICE_INDEX`] index.
    pub certificates: String,
    /// Audit events, by `day` and `eventId`, with the [`AUDIT_BY_DEVICE_INDEX`] index.
    pub audit: String,
}

impl DynamoDbTables {
    /// `{prefix}devices`, `{prefix}certificates` and `{prefix}audit`: one prefix per
    /// deployment (or per test).
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            devices: format!("{prefix}devices"),
            certificates: format!("{prefix}certificates"),
            audit: format!("{prefix}audit"),
        }
    }
}

impl Default for DynamoDbTables {
    /// The prefix `provisioner-`.
    fn default() -> Self {
        Self::with_prefix("provisioner-")
    }
}

/// The DynamoDB registry (see the module docs for its tables and consistency).
///
/// Cheap to clone: clones share the SDK client.
#[derive(Debug, Clone)]
pub struct DynamoDbRegistry {
    client: Client,
    tables: Arc<DynamoDbTables>,
    pub(crate) page_size: Option<i32>,
    concurrency: usize,
}

impl DynamoDbRegistry {
    /// A registry over `tables`, through `client`.
    pub fn new(client: Client, tables: DynamoDbTables) -> Self {
        Self {
            client,
            tables: Arc::new(tables),
            page_size: None,
            concurrency: 4,
        }
    }

    /// A registry whose client takes the standard AWS configuration: environment
    /// (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL` for a stand-in such as moto),
    /// profile, or the role of the Lambda or instance.
    pub async fn from_env(tables: DynamoDbTables) -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::new(Client::new(&config), tables)
    }

    /// Reads at most `items` items per `Query` or `Scan` page (DynamoDB's `Limit`;
    /// otherwise its 1 MB pages). Every read follows `LastEvaluatedKey` to the end.
    #[must_use]
    pub fn with_page_size(mut self, items: i32) -> Self {
        self.page_size = Some(items.max(1));
        self
    }

    /// Runs at most `requests` batch requests of an import at once (default 4).
    #[must_use]
    pub fn with_import_concurrency(mut self, requests: usize) -> Self {
        self.concurrency = requests.max(1);
        self
    }

    /// The table names.
    pub fn tables(&self) -> &DynamoDbTables {
        &self.tables
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}
