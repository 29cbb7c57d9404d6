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

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::is_throttling;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CreateGlobalSecondaryIndexAction,
    GlobalSecondaryIndex, GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType,
    KeysAndAttributes, Projection, ProjectionType, Put, PutRequest,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, Select, TransactWriteItem, Update,
    WriteRequest,
};
use aws_sdk_dynamodb::Client;
use provisioner_core::{
    AuditEvent, AuditLog, CertificateRecord, CertificateStatus, ClaimOutcome, Device, DeviceKey,
    DeviceRegistry, IssuanceClaim, PortError, RevocationReason, UnixTime,
};
use rand::Rng;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::task::JoinSet;

/// The certificates table's index by device: `deviceId` (hash) and `issuedAt` (range).
pub const BY_DEVICE_INDEX: &str = "byDevice";

/// The audit table's index by device: `deviceId` (hash) and `eventId` (range), every
/// attribute. Sparse: an event without a device id is not in it.
pub const AUDIT_BY_DEVICE_INDEX: &str = "byDevice";

pub use provisioner_app::import::{
    ImportError, ImportItem, ImportOptions, ImportSummary, MAX_REPORTED_ERRORS,
};

/// DynamoDB's limit of items in one `TransactWriteItems`.
const MAX_TRANSACTION_ITEMS: usize = 100;
/// DynamoDB's limit of keys in one `BatchGetItem`.
pub(crate) const BATCH_GET_KEYS: usize = 100;
/// DynamoDB's limit of requests in one `BatchWriteItem`.
const BATCH_WRITE_ITEMS: usize = 25;
/// Attempts at a batch whose unprocessed part keeps coming back, before giving up.
pub(crate) const MAX_BATCH_ATTEMPTS: u32 = 10;
/// How long [`DynamoDbRegistry::create_tables`] waits for a new table to become ACTIVE.
const TABLE_WAIT: Duration = Duration::from_secs(300);
/// How long it waits for the audit index added to an existing table: DynamoDB backfills
/// it from every event in the table, minutes for a small table, longer for a large one.
const INDEX_WAIT: Duration = Duration::from_secs(600);
/// How often it asks whether that index is ACTIVE yet.
const INDEX_POLL: Duration = Duration::from_secs(5);

pub(crate) type Item = HashMap<String, AttributeValue>;

// ---------------------------------------------------------------------------------
// Configuration and errors
// ---------------------------------------------------------------------------------

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

/// Why a DynamoDB registry operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DynamoDbError {
    /// DynamoDB throttled the request, or a transaction conflicted with another write,
    /// after the SDK's retries: retry shortly.
    #[error("DynamoDB cannot serve {operation} now ({cause}); retry shortly")]
    Unavailable {
        /// The DynamoDB operation.
        operation: &'static str,
        /// The error or cancellation code.
        cause: String,
    },
    /// No device has this id.
    #[error("no device {0:?} in the registry: import its manufacturer manifest first (`provisioner import`)")]
    UnknownDevice(String),
    /// The certificate id is already recorded for another device.
    #[error("certificate {certificate_id:?} is already recorded for device {recorded_for:?}, not {device_id:?}")]
    CertificateConflict {
        /// The certificate id.
        certificate_id: String,
        /// The device the new record names.
        device_id: String,
        /// The device it is recorded for.
        recorded_for: String,
    },
    /// Another request took the device's issuance claim after this one's lapsed: nothing
    /// was recorded.
    #[error("another request took the issuance claim of device {0:?}; nothing was recorded")]
    ClaimLost(String),
    /// A device's key changed while an import replacing it ran.
    #[error("device {0:?} changed while the import ran; run the import again (it finishes what is left)")]
    ImportRaced(String),
    /// A time cannot be represented (before year -9999 or after 9999).
    #[error("time {0} is out of range")]
    TimeOutOfRange(UnixTime),
    /// A stored item is not what the schema allows.
    #[error("the registry is damaged: {0}")]
    Corrupt(String),
    /// Any other failure of the SDK or the service, with the SDK error's display.
    #[error("DynamoDB {operation} failed: {message}")]
    Sdk {
        /// The DynamoDB operation.
        operation: &'static str,
        /// What the SDK reported.
        message: String,
    },
}

impl From<DynamoDbError> for PortError {
    fn from(error: DynamoDbError) -> Self {
        match error {
            DynamoDbError::Unavailable { .. } => PortError::Unavailable {
                what: "the device registry".into(),
                retry_after_secs: 1,
            },
            DynamoDbError::ClaimLost(device_id) => PortError::ClaimLost { device_id },
            other => PortError::Internal(other.to_string()),
        }
    }
}

pub(crate) fn sdk_error<E>(operation: &'static str, error: SdkError<E>) -> DynamoDbError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    // A write to an item a transaction is changing (a claim or its release while the
    // holder records) is refused, not queued: retry shortly, as for throttling.
    if is_throttling(error.code()) || error.code() == Some("TransactionConflictException") {
        return DynamoDbError::Unavailable {
            operation,
            cause: error.code().unwrap_or_default().to_owned(),
        };
    }
    DynamoDbError::Sdk {
        operation,
        message: DisplayErrorContext(&error).to_string(),
    }
}

pub(crate) fn build_error(error: BuildError) -> DynamoDbError {
    DynamoDbError::Sdk {
        operation: "building a request",
        message: error.to_string(),
    }
}

/// A device as an import finds it registered.
#[derive(Debug)]
struct Registered {
    public_key: String,
    source_manifest: Option<String>,
}

/// A device as the import will leave it.
#[derive(Debug)]
struct Planned {
    device_id: String,
    /// The key it will have (stored text, or canonical text of the manifest's key).
    public_key: String,
    source_manifest: Option<String>,
    /// The key registered before the import (`None`: a new device).
    registered_key: Option<String>,
    /// Whether the import writes it.
    changed: bool,
}

// ---------------------------------------------------------------------------------
// The registry
// ---------------------------------------------------------------------------------

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

    /// Creates the three tables (on-demand billing; see the module docs) and waits until
    /// they are ACTIVE. A table that already exists is left as it is (its schema is not
    /// checked), so calling this again is harmless; except that an audit table created
    /// before [`AUDIT_BY_DEVICE_INDEX`] existed gets that index (`UpdateTable`), and this
    /// waits until it is ACTIVE (DynamoDB fills it from the events already there).
    ///
    /// # Errors
    /// [`DynamoDbError::Sdk`] when a table cannot be created or does not become ACTIVE
    /// within 5 minutes, or the audit index cannot be added or is not ACTIVE within 10
    /// minutes (DynamoDB goes on building it: calling this again waits for it again);
    /// [`DynamoDbError::Unavailable`] when throttled.
    pub async fn create_tables(&self) -> Result<(), DynamoDbError> {
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(build_error)
        };
        let attribute = |name: &str, kind: ScalarAttributeType| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build()
                .map_err(build_error)
        };
        let all = Projection::builder()
            .projection_type(ProjectionType::All)
            .build();
        let by_device = GlobalSecondaryIndex::builder()
            .index_name(BY_DEVICE_INDEX)
            .key_schema(key("deviceId", KeyType::Hash)?)
            .key_schema(key("issuedAt", KeyType::Range)?)
            .projection(all.clone())
            .build()
            .map_err(build_error)?;
        let audit_attributes = vec![
            attribute("day", ScalarAttributeType::S)?,
            attribute("eventId", ScalarAttributeType::S)?,
            attribute("deviceId", ScalarAttributeType::S)?,
        ];
        let audit_index_keys = vec![
            key("deviceId", KeyType::Hash)?,
            key("eventId", KeyType::Range)?,
        ];
        let audit_by_device = GlobalSecondaryIndex::builder()
            .index_name(AUDIT_BY_DEVICE_INDEX)
            .set_key_schema(Some(audit_index_keys.clone()))
            .projection(all.clone())
            .build()
            .map_err(build_error)?;
        let requests = [
            self.client
                .create_table()
                .table_name(&self.tables.devices)
                .attribute_definitions(attribute("deviceId", ScalarAttributeType::S)?)
                .key_schema(key("deviceId", KeyType::Hash)?),
            self.client
                .create_table()
                .table_name(&self.tables.certificates)
                .attribute_definitions(attribute("certificateId", ScalarAttributeType::S)?)
                .attribute_definitions(attribute("deviceId", ScalarAttributeType::S)?)
                .attribute_definitions(attribute("issuedAt", ScalarAttributeType::N)?)
                .key_schema(key("certificateId", KeyType::Hash)?)
                .global_secondary_indexes(by_device),
            self.client
                .create_table()
                .table_name(&self.tables.audit)
                .set_attribute_definitions(Some(audit_attributes.clone()))
                .key_schema(key("day", KeyType::Hash)?)
                .key_schema(key("eventId", KeyType::Range)?)
                .global_secondary_indexes(audit_by_device),
        ];
        for request in requests {
            match request
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await
            {
                Ok(_) => {}
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_in_use_exception()) => {}
                Err(error) => return Err(sdk_error("CreateTable", error)),
            }
        }
        for table in [
            &self.tables.devices,
            &self.tables.certificates,
            &self.tables.audit,
        ] {
            self.client
                .wait_until_table_exists()
                .table_name(table)
                .wait(TABLE_WAIT)
                .await
                .map_err(|e| DynamoDbError::Sdk {
                    operation: "DescribeTable",
                    message: format!(
                        "table {table} did not become ACTIVE: {}",
                        DisplayErrorContext(&e)
                    ),
                })?;
        }
        let add_index = CreateGlobalSecondaryIndexAction::builder()
            .index_name(AUDIT_BY_DEVICE_INDEX)
            .set_key_schema(Some(audit_index_keys))
            .projection(all)
            .build()
            .map_err(build_error)?;
        self.ensure_audit_index(audit_attributes, add_index).await
    }

    /// Adds [`AUDIT_BY_DEVICE_INDEX`] to an audit table created without it (by a version
    /// before the index) and waits until the index is ACTIVE; a table that has it
    /// ACTIVE costs one `DescribeTable`.
    async fn ensure_audit_index(
        &self,
        attributes: Vec<AttributeDefinition>,
        index: CreateGlobalSecondaryIndexAction,
    ) -> Result<(), DynamoDbError> {
        let table = &self.tables.audit;
        let started = tokio::time::Instant::now();
        let mut requested = false;
        loop {
            let described = self
                .client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| sdk_error("DescribeTable", e))?;
            let status = described
                .table()
                .map(|t| t.global_secondary_indexes())
                .unwrap_or_default()
                .iter()
                .find(|i| i.index_name() == Some(AUDIT_BY_DEVICE_INDEX))
                .map(|i| i.index_status().cloned());
            match status {
                Some(Some(IndexStatus::Active)) => return Ok(()),
                // CREATING (backfilling) or UPDATING: wait.
                Some(_) => {}
                // Asked once only: DescribeTable may lag behind the UpdateTable.
                None if !requested => {
                    let update = self
                        .client
                        .update_table()
                        .table_name(table)
                        .set_attribute_definitions(Some(attributes.clone()))
                        .global_secondary_index_updates(
                            GlobalSecondaryIndexUpdate::builder()
                                .create(index.clone())
                                .build(),
                        )
                        .send()
                        .await;
                    match update {
                        // moto (and DynamoDB for an empty table) may answer ACTIVE at
                        // once: look again before sleeping.
                        Ok(_) => {
                            requested = true;
                            continue;
                        }
                        // The table is being updated (another caller adding the index, or
                        // some other change): ask again after the pause.
                        Err(error)
                            if error
                                .as_service_error()
                                .is_some_and(|e| e.is_resource_in_use_exception()) => {}
                        Err(error) => return Err(sdk_error("UpdateTable", error)),
                    }
                }
                None => {}
            }
            if started.elapsed() >= INDEX_WAIT {
                let status = match status {
                    Some(Some(status)) => status.as_str().to_owned(),
                    Some(None) => "without a status".to_owned(),
                    None => "not there yet".to_owned(),
                };
                return Err(DynamoDbError::Sdk {
                    operation: "UpdateTable",
                    message: format!(
                        "index {AUDIT_BY_DEVICE_INDEX} of table {table} is {status} after {} s: \
                         DynamoDB goes on building it from the table's events; run this \
                         again to wait for it",
                        INDEX_WAIT.as_secs()
                    ),
                });
            }
            tokio::time::sleep(INDEX_POLL).await;
        }
    }

    // --- devices --------------------------------------------------------------

    /// Imports manufacturer manifest records with the SQLite registry's rules: every
    /// record is classified (new, unchanged, replaced, conflict) and every invalid row
    /// counted, and the devices are written only when there is no invalid row, no refused
    /// conflict, and it is not a dry run. A device listed again in a later item is treated
    /// like a device registered before: same key `unchanged`, another key a conflict (or
    /// replaced; the last key listed wins). Replacing a key leaves the device's `enabled`
    /// flag and certificates as they are.
    ///
    /// How: the registered devices are read with strongly consistent `BatchGetItem`s
    /// (100 keys each); new devices are written with `BatchWriteItem`s (25 each), several
    /// in flight ([`DynamoDbRegistry::with_import_concurrency`]); the unprocessed part of
    /// a batch is retried with exponential backoff. A replacement is an `UpdateItem`
    /// conditioned on the key the import read. Not atomic, but idempotent: see
    /// [`ImportSummary::atomic`]. A device created by someone else between the read and
    /// the write is overwritten (a batch write cannot be conditional).
    ///
    /// # Errors
    /// [`DynamoDbError::Unavailable`] when throttled past the retries,
    /// [`DynamoDbError::ImportRaced`] when a replaced device changed meanwhile; any other
    /// failure. Invalid rows and conflicts are not errors: they are in the summary.
    pub async fn import<'a>(
        &self,
        items: impl IntoIterator<Item = ImportItem<'a>>,
        options: &ImportOptions,
    ) -> Result<ImportSummary, DynamoDbError> {
        let mut summary = ImportSummary::default();
        let mut records = Vec::new();
        for item in items {
            match item.entry {
                Ok(record) => records.push((item.source, record)),
                Err(error) => {
                    summary.invalid += 1;
                    summary.report(ImportError {
                        file: item.source.to_owned(),
                        line: error.line,
                        device_id: error.device_id,
                        error: error.error.to_owned(),
                        message: error.message,
                    });
                }
            }
        }

        let mut distinct = HashSet::new();
        let ids: Vec<String> = records
            .iter()
            .filter(|(_, r)| distinct.insert(r.device_id.as_str()))
            .map(|(_, r)| r.device_id.clone())
            .collect();
        let registered = self.registered_devices(ids).await?;

        // Classify in manifest order, against the registry as the import leaves it.
        let mut plan: Vec<Planned> = Vec::new();
        let mut planned: HashMap<String, usize> = HashMap::new();
        for (source, record) in &records {
            let key = record.public_key.canonical();
            let id = &record.device_id;
            let index = match planned.entry(id.clone()) {
                Entry::Occupied(entry) => *entry.get(),
                Entry::Vacant(entry) => {
                    entry.insert(plan.len());
                    match registered.get(id) {
                        None => {
                            summary.imported += 1;
                            plan.push(Planned {
                                device_id: id.clone(),
                                public_key: key,
                                source_manifest: Some((*source).to_owned()),
                                registered_key: None,
                                changed: true,
                            });
                            continue;
                        }
                        Some(device) => {
                            plan.push(Planned {
                                device_id: id.clone(),
                                public_key: device.public_key.clone(),
                                source_manifest: device.source_manifest.clone(),
                                registered_key: Some(device.public_key.clone()),
                                changed: false,
                            });
                            plan.len() - 1
                        }
                    }
                }
            };
            let Some(current) = plan.get_mut(index) else {
                continue;
            };
            if same_key(&current.public_key, &key, &record.public_key) {
                summary.unchanged += 1;
            } else if options.replace {
                current.public_key = key;
                current.source_manifest = Some((*source).to_owned());
                current.changed = true;
                summary.replaced += 1;
            } else {
                summary.conflicts += 1;
                let from = current
                    .source_manifest
                    .as_ref()
                    .map(|s| format!(" (from {s})"))
                    .unwrap_or_default();
                summary.report(ImportError {
                    file: (*source).to_owned(),
                    line: record.line,
                    device_id: Some(id.clone()),
                    error: "key_conflict".into(),
                    message: format!(
                        "device {id:?} is registered with another public key{from}; \
                         import with --replace to replace it with this one"
                    ),
                });
            }
        }
        if !summary.is_clean() || options.dry_run {
            return Ok(summary);
        }

        let (new, replaced): (Vec<Planned>, Vec<Planned>) = plan
            .into_iter()
            .filter(|p| p.changed)
            .partition(|p| p.registered_key.is_none());
        let now = options.now;
        let puts: Vec<WriteRequest> = new
            .into_iter()
            .map(|p| {
                let item = device_item(p.device_id, p.public_key, p.source_manifest, now);
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(build_error)
            })
            .collect::<Result<_, _>>()?;
        let batches: Vec<Vec<WriteRequest>> =
            puts.chunks(BATCH_WRITE_ITEMS).map(<[_]>::to_vec).collect();
        let (client, table) = (self.client.clone(), self.tables.devices.clone());
        run_bounded(batches, self.concurrency, |batch| {
            batch_write(client.clone(), table.clone(), batch)
        })
        .await?;
        run_bounded(replaced, self.concurrency, |device| {
            replace_key(client.clone(), table.clone(), device, now)
        })
        .await?;
        summary.written = true;
        Ok(summary)
    }

    /// The registered key and source of those of `ids` that are registered.
    async fn registered_devices(
        &self,
        ids: Vec<String>,
    ) -> Result<HashMap<String, Registered>, DynamoDbError> {
        let batches: Vec<Vec<String>> = ids.chunks(BATCH_GET_KEYS).map(<[_]>::to_vec).collect();
        let (client, table) = (self.client.clone(), self.tables.devices.clone());
        let found = run_bounded(batches, self.concurrency, |batch| {
            batch_get_devices(client.clone(), table.clone(), batch)
        })
        .await?;
        let mut registered = HashMap::new();
        for item in found.into_iter().flatten() {
            let device_id = text(&item, "deviceId").map_err(DynamoDbError::Corrupt)?;
            let device = Registered {
                public_key: text(&item, "publicKey")
                    .map_err(|e| corrupt_item("device", &device_id, &e))?,
                source_manifest: optional_text(&item, "sourceManifest")
                    .map_err(|e| corrupt_item("device", &device_id, &e))?,
            };
            registered.insert(device_id, device);
        }
        Ok(registered)
    }

    /// How many devices are registered (a paginated `Scan` that counts).
    ///
    /// # Errors
    /// [`DynamoDbError::Unavailable`] when throttled; any other failure.
    pub async fn count_devices(&self) -> Result<u64, DynamoDbError> {
        let mut count = 0u64;
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.tables.devices)
                .select(Select::Count)
                .set_limit(self.page_size)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("Scan", e))?;
            count += u64::try_from(page.count).unwrap_or(0);
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(count),
            }
        }
    }

    // --- CA rotation (aws::ca) -------------------------------------------------

    /// One page of the ACTIVE certificates `issuer` (a CA id) issued, and the cursor of
    /// the next page (`None` after the last). A `Scan` filtered on `issuer` and `status`
    /// from `cursor` (the `certificateId` a page ended at), evaluating at most `limit`
    /// items: no index serves it, so a rotation reads the table once; a page may be empty
    /// and still have a next.
    ///
    /// # Errors
    /// [`DynamoDbError::Corrupt`] for an item that is not a certificate;
    /// [`DynamoDbError::Unavailable`] when throttled; any other failure.
    pub async fn active_certificates_by_issuer(
        &self,
        issuer: &str,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<(Vec<CertificateRecord>, Option<String>), DynamoDbError> {
        let start = cursor.map(|id| {
            HashMap::from([("certificateId".to_owned(), AttributeValue::S(id.to_owned()))])
        });
        let page = self
            .client
            .scan()
            .table_name(&self.tables.certificates)
            .filter_expression("issuer = :issuer AND #status = :active")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":issuer", AttributeValue::S(issuer.to_owned()))
            .expression_attribute_values(":active", AttributeValue::S("ACTIVE".into()))
            .consistent_read(true)
            .limit(limit.max(1))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| sdk_error("Scan", e))?;
        let next = match page
            .last_evaluated_key
            .as_ref()
            .map(|k| k.get("certificateId"))
        {
            Some(Some(AttributeValue::S(id))) => Some(id.clone()),
            _ => None,
        };
        let certificates = page
            .items()
            .iter()
            .map(certificate_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((certificates, next))
    }

    /// How many ACTIVE certificates `issuer` issued (paginated `Scan`s that count).
    ///
    /// # Errors
    /// [`DynamoDbError::Unavailable`] when throttled; any other failure.
    pub async fn count_active_by_issuer(&self, issuer: &str) -> Result<u64, DynamoDbError> {
        let mut count = 0u64;
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.tables.certificates)
                .select(Select::Count)
                .filter_expression("issuer = :issuer AND #status = :active")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":issuer", AttributeValue::S(issuer.to_owned()))
                .expression_attribute_values(":active", AttributeValue::S("ACTIVE".into()))
                .set_limit(self.page_size)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("Scan", e))?;
            count += u64::try_from(page.count).unwrap_or(0);
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(count),
            }
        }
    }

    /// Sets each of `certificate_ids` that is still ACTIVE to REVOKED at `now` for
    /// `reason` (one conditional `UpdateItem` each; one that is not ACTIVE or unknown is
    /// left as it is). Returns how many it revoked. Repeating it is harmless.
    ///
    /// # Errors
    /// [`DynamoDbError::Unavailable`] when throttled; any other failure (those before it
    /// stay revoked).
    pub async fn revoke_active(
        &self,
        certificate_ids: &[String],
        reason: RevocationReason,
        now: UnixTime,
    ) -> Result<u64, DynamoDbError> {
        let mut revoked = 0;
        for id in certificate_ids {
            let result = self
                .client
                .update_item()
                .table_name(&self.tables.certificates)
                .key("certificateId", AttributeValue::S(id.clone()))
                .update_expression(
                    "SET #status = :revoked, revokedAt = :now, revocationReason = :reason",
                )
                .condition_expression("#status = :active")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":revoked", AttributeValue::S("REVOKED".into()))
                .expression_attribute_values(":active", AttributeValue::S("ACTIVE".into()))
                .expression_attribute_values(":now", number_value(now))
                .expression_attribute_values(":reason", AttributeValue::S(reason.name().into()))
                .send()
                .await;
            match result {
                Ok(_) => revoked += 1,
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(error) => return Err(sdk_error("UpdateItem", error)),
            }
        }
        Ok(revoked)
    }

    // --- audit ----------------------------------------------------------------

    /// The audit events of one UTC day, oldest first (a paginated `Query`).
    ///
    /// # Errors
    /// [`DynamoDbError::Corrupt`] for an item that is not an event;
    /// [`DynamoDbError::Unavailable`] when throttled; any other failure.
    pub async fn audit_events_on(&self, day: time::Date) -> Result<Vec<AuditEvent>, DynamoDbError> {
        let query = self
            .client
            .query()
            .table_name(&self.tables.audit)
            .key_condition_expression("#day = :day")
            .expression_attribute_names("#day", "day")
            .expression_attribute_values(":day", AttributeValue::S(day_text(day)));
        self.query_all(query)
            .await?
            .iter()
            .map(audit_event_from_item)
            .collect()
    }

    // --- reads ----------------------------------------------------------------

    /// Every item a query yields, following `LastEvaluatedKey` page after page.
    async fn query_all(&self, query: QueryFluentBuilder) -> Result<Vec<Item>, DynamoDbError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = query
                .clone()
                .set_limit(self.page_size)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("Query", e))?;
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    pub(crate) async fn certificate_item(
        &self,
        certificate_id: &str,
    ) -> Result<Option<Item>, DynamoDbError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.certificates)
            .key(
                "certificateId",
                AttributeValue::S(certificate_id.to_owned()),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        Ok(output.item)
    }

    // --- issuance -------------------------------------------------------------

    async fn record_certificate(
        &self,
        certificate: &CertificateRecord,
        supersede: Vec<String>,
        claim: &IssuanceClaim,
        now: UnixTime,
    ) -> Result<(), DynamoDbError> {
        // Read under the claim: no other holder writes the list until the transaction
        // below releases it (its condition checks the claim is still this holder's).
        let recent = self.recent_certificates(&certificate.device_id).await?;
        let release = self.release_in_transaction(claim, certificate, &recent, now)?;
        let mut distinct = HashSet::new();
        let supersede: Vec<String> = supersede
            .into_iter()
            .filter(|id| *id != certificate.certificate_id && distinct.insert(id.clone()))
            .collect();
        // The certificate and the claim's release take two of the first transaction's items.
        let first = supersede.len().min(MAX_TRANSACTION_ITEMS - 2);
        let (first, rest) = supersede.split_at(first);
        let still_claimed = self
            .issuance_transaction(
                Some((certificate, claim, release)),
                first,
                &certificate.device_id,
                now,
            )
            .await?;
        if still_claimed {
            self.drop_claim(claim).await?;
        }
        for chunk in rest.chunks(MAX_TRANSACTION_ITEMS) {
            self.issuance_transaction(None, chunk, &certificate.device_id, now)
                .await?;
        }
        Ok(())
    }

    /// One `TransactWriteItems`: `certificate` (if given) with the release of its claim
    /// (`release`, conditioned on the claim's holder), and the revocation of `supersede`.
    /// A cancelled transaction is retried without the items SQLite would skip (a
    /// certificate already recorded for this device, and with it the claim that record
    /// released; a superseded id that is not this device's ACTIVE certificate); every
    /// retry has fewer items. True when the certificate was found recorded already while
    /// the claim is still held (a holder recording again under a new claim): the caller
    /// releases it.
    async fn issuance_transaction(
        &self,
        certificate: Option<(&CertificateRecord, &IssuanceClaim, TransactWriteItem)>,
        supersede: &[String],
        device_id: &str,
        now: UnixTime,
    ) -> Result<bool, DynamoDbError> {
        let mut certificate = certificate;
        let mut still_claimed = false;
        let mut pending: Vec<&str> = supersede.iter().map(String::as_str).collect();
        loop {
            let lead = if certificate.is_some() { 2 } else { 0 };
            let mut items = Vec::with_capacity(lead + pending.len());
            if let Some((record, _, release)) = &certificate {
                items.push(self.put_certificate(record)?);
                items.push(release.clone());
            }
            for id in &pending {
                items.push(self.revoke_superseded(id, device_id, now)?);
            }
            if items.is_empty() {
                return Ok(still_claimed);
            }
            let error = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
            {
                Ok(_) => return Ok(still_claimed),
                Err(error) => error,
            };
            let reasons = match error.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    cancelled.cancellation_reasons().to_vec()
                }
                _ => return Err(sdk_error("TransactWriteItems", error)),
            };
            let mut already_recorded = false;
            let mut claim_failed = None;
            let mut skip = HashSet::new();
            for (index, reason) in reasons.iter().enumerate() {
                match reason.code() {
                    None | Some("None") => {}
                    Some("ConditionalCheckFailed") => match &certificate {
                        Some((record, _, _)) if index == 0 => {
                            let recorded_for = match reason.item().and_then(|i| i.get("deviceId")) {
                                Some(AttributeValue::S(device)) => Some(device.clone()),
                                _ => match self.certificate_item(&record.certificate_id).await? {
                                    Some(item) => Some(text(&item, "deviceId").map_err(|e| {
                                        corrupt_item("certificate", &record.certificate_id, &e)
                                    })?),
                                    None => None,
                                },
                            };
                            match recorded_for {
                                Some(device) if device == record.device_id => {
                                    already_recorded = true;
                                }
                                Some(device) => {
                                    return Err(DynamoDbError::CertificateConflict {
                                        certificate_id: record.certificate_id.clone(),
                                        device_id: record.device_id.clone(),
                                        recorded_for: device,
                                    })
                                }
                                // Gone again by the time it was read: only a conflicting
                                // writer does that; let the caller retry.
                                None => {
                                    return Err(DynamoDbError::Unavailable {
                                        operation: "TransactWriteItems",
                                        cause: "the certificate changed meanwhile".into(),
                                    })
                                }
                            }
                        }
                        Some((_, claim, _)) if index == 1 => {
                            claim_failed = Some(self.claim_failure(claim, reason.item()).await?);
                        }
                        _ => {
                            skip.insert(index - lead);
                        }
                    },
                    Some(
                        code @ ("TransactionConflict"
                        | "ThrottlingError"
                        | "ProvisionedThroughputExceeded"),
                    ) => {
                        return Err(DynamoDbError::Unavailable {
                            operation: "TransactWriteItems",
                            cause: code.to_owned(),
                        })
                    }
                    Some(code) => {
                        return Err(DynamoDbError::Sdk {
                            operation: "TransactWriteItems",
                            message: format!(
                                "the transaction was cancelled: {code}: {}",
                                reason.message().unwrap_or("no message")
                            ),
                        })
                    }
                }
            }
            // The same certificate recorded before released the claim with it: a retry of
            // that record is harmless. Otherwise the claim decides.
            let claim_held = claim_failed.is_none();
            if let (false, Some(failure)) = (already_recorded, claim_failed) {
                return Err(failure);
            }
            if !already_recorded && skip.is_empty() {
                // Cancelled, yet no item is to blame: not something a retry fixes.
                return Err(sdk_error("TransactWriteItems", error));
            }
            if already_recorded {
                still_claimed = claim_held;
                certificate = None;
            }
            pending = pending
                .into_iter()
                .enumerate()
                .filter(|(index, _)| !skip.contains(index))
                .map(|(_, id)| id)
                .collect();
        }
    }

    fn put_certificate(
        &self,
        certificate: &CertificateRecord,
    ) -> Result<TransactWriteItem, DynamoDbError> {
        let put = Put::builder()
            .table_name(&self.tables.certificates)
            .set_item(Some(new_certificate_item(certificate)))
            .condition_expression("attribute_not_exists(certificateId)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn revoke_superseded(
        &self,
        certificate_id: &str,
        device_id: &str,
        now: UnixTime,
    ) -> Result<TransactWriteItem, DynamoDbError> {
        let update = Update::builder()
            .table_name(&self.tables.certificates)
            .key(
                "certificateId",
                AttributeValue::S(certificate_id.to_owned()),
            )
            .update_expression(
                "SET #status = :revoked, revokedAt = :now, revocationReason = :reason",
            )
            .condition_expression("deviceId = :device AND #status <> :revoked")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":revoked", AttributeValue::S("REVOKED".into()))
            .expression_attribute_values(":now", number_value(now))
            .expression_attribute_values(
                ":reason",
                AttributeValue::S(RevocationReason::Superseded.name().into()),
            )
            .expression_attribute_values(":device", AttributeValue::S(device_id.to_owned()))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

// ---------------------------------------------------------------------------------
// The ports
// ---------------------------------------------------------------------------------

impl DeviceRegistry for DynamoDbRegistry {
    /// A strongly consistent `GetItem`.
    async fn device(&self, device_id: &str) -> Result<Option<Device>, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.devices)
            .key("deviceId", AttributeValue::S(device_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let device = (|| {
            Ok::<_, String>(Device {
                device_id: device_id.to_owned(),
                public_key: stored_key(&text(&item, "publicKey")?)?,
                enabled: boolean(&item, "enabled")?,
            })
        })()
        .map_err(|e| corrupt_item("device", device_id, &e))?;
        Ok(Some(device))
    }

    /// Two `Query`s of the `byDevice` index (eventually consistent), each followed page
    /// by page: the certificates issued at or after `issued_since`, and the older ones
    /// filtered to ACTIVE; made strongly consistent with the device item's list of recent
    /// certificates and a `BatchGetItem` (see [`super::dynamodb_claim`]). Ordered by issue
    /// time, then id, as SQLite orders them.
    async fn certificates_of(
        &self,
        device_id: &str,
        issued_since: UnixTime,
    ) -> Result<Vec<CertificateRecord>, PortError> {
        // A filter cannot name the index's range key, so the "ACTIVE or recent" of
        // SQLite is a range condition on one query and a status filter on the other.
        let by_device = || {
            self.client
                .query()
                .table_name(&self.tables.certificates)
                .index_name(BY_DEVICE_INDEX)
                .expression_attribute_values(":device", AttributeValue::S(device_id.to_owned()))
                .expression_attribute_values(":since", number_value(issued_since))
        };
        let recent =
            by_device().key_condition_expression("deviceId = :device AND issuedAt >= :since");
        let older_active = by_device()
            .key_condition_expression("deviceId = :device AND issuedAt < :since")
            .filter_expression("#status = :active")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":active", AttributeValue::S("ACTIVE".into()));
        let (recent_items, older_items, listed) = tokio::try_join!(
            self.query_all(recent),
            self.query_all(older_active),
            self.recent_certificates(device_id),
        )?;
        let from_index = recent_items
            .iter()
            .chain(&older_items)
            .map(certificate_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let mut certificates = self
            .consistent_certificates(from_index, listed, issued_since)
            .await?;
        certificates.sort_by(|a, b| {
            (a.issued_at, &a.certificate_id).cmp(&(b.issued_at, &b.certificate_id))
        });
        Ok(certificates)
    }

    /// A strongly consistent `GetItem`.
    async fn certificate(
        &self,
        certificate_id: &str,
    ) -> Result<Option<CertificateRecord>, PortError> {
        match self.certificate_item(certificate_id).await? {
            Some(item) => Ok(Some(certificate_from_item(&item)?)),
            None => Ok(None),
        }
    }

    /// One conditional `UpdateItem` of the device item ([`super::dynamodb_claim`]).
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when throttled; [`PortError::Internal`] for an unknown
    /// device or any other failure.
    async fn claim_issuance(
        &self,
        device_id: &str,
        holder: &str,
        now: UnixTime,
        ttl_secs: i64,
    ) -> Result<ClaimOutcome, PortError> {
        Ok(self.take_claim(device_id, holder, now, ttl_secs).await?)
    }

    /// A `REMOVE` conditioned on the holder; a claim another holder has is left alone.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when throttled; [`PortError::Internal`] otherwise.
    async fn release_claim(&self, claim: &IssuanceClaim) -> Result<(), PortError> {
        Ok(self.drop_claim(claim).await?)
    }

    /// A consistent read of the device item, then one `TransactWriteItems` (see the
    /// module docs): returns once DynamoDB has committed it.
    ///
    /// The registry does not know the CAs (the config table is the issuer's), so it never
    /// answers [`PortError::IssuerRetired`]: the rotation's settle-and-repass keeps
    /// certificates of a retired CA from staying ACTIVE (`aws::ca`).
    ///
    /// # Errors
    /// [`PortError::ClaimLost`] when another holder took the claim;
    /// [`PortError::Unavailable`] when throttled or conflicting with another write;
    /// [`PortError::Internal`] for an unknown device, a certificate id recorded for
    /// another device, or any other failure.
    async fn record_issuance(
        &self,
        certificate: CertificateRecord,
        supersede: Vec<String>,
        claim: &IssuanceClaim,
        now: UnixTime,
    ) -> Result<(), PortError> {
        Ok(self
            .record_certificate(&certificate, supersede, claim, now)
            .await?)
    }
}

impl AuditLog for DynamoDbRegistry {
    /// A `PutItem` into the event's UTC day; returns once DynamoDB has stored it.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when throttled; [`PortError::Internal`] otherwise.
    async fn record(&self, event: AuditEvent) -> Result<(), PortError> {
        let item = audit_item(&event)?;
        self.client
            .put_item()
            .table_name(&self.tables.audit)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(eventId)")
            .send()
            .await
            .map_err(|e| sdk_error("PutItem", e))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------------

/// Runs `job` on every input, at most `concurrency` at once, each as its own task; stops
/// at the first failure (the tasks still running are then cancelled).
async fn run_bounded<T, R, F, Fut>(
    inputs: Vec<T>,
    concurrency: usize,
    job: F,
) -> Result<Vec<R>, DynamoDbError>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<R, DynamoDbError>> + Send + 'static,
    R: Send + 'static,
{
    let mut inputs = inputs.into_iter();
    let mut running = JoinSet::new();
    let mut results = Vec::new();
    loop {
        while running.len() < concurrency.max(1) {
            let Some(input) = inputs.next() else { break };
            running.spawn(job(input));
        }
        let Some(done) = running.join_next().await else {
            return Ok(results);
        };
        let result = done.map_err(|e| DynamoDbError::Sdk {
            operation: "a batch",
            message: format!("the batch task failed: {e}"),
        })?;
        results.push(result?);
    }
}

/// How long to wait before retrying the unprocessed part of a batch: exponential from
/// 50 ms, at most 3.2 s, with jitter (half to all of it).
pub(crate) fn backoff(attempt: u32) -> Duration {
    let ceiling = 50u64 << attempt.min(6);
    Duration::from_millis(rand::thread_rng().gen_range(ceiling / 2..=ceiling))
}

async fn batch_get_devices(
    client: Client,
    table: String,
    ids: Vec<String>,
) -> Result<Vec<Item>, DynamoDbError> {
    let keys = ids
        .into_iter()
        .map(|id| HashMap::from([("deviceId".to_owned(), AttributeValue::S(id))]))
        .collect();
    let mut request = KeysAndAttributes::builder()
        .set_keys(Some(keys))
        .consistent_read(true)
        .projection_expression("deviceId, publicKey, sourceManifest")
        .build()
        .map_err(build_error)?;
    let mut found = Vec::new();
    let mut attempt = 0;
    loop {
        let output = client
            .batch_get_item()
            .request_items(&table, request)
            .send()
            .await
            .map_err(|e| sdk_error("BatchGetItem", e))?;
        if let Some(items) = output.responses.and_then(|mut r| r.remove(&table)) {
            found.extend(items);
        }
        let unprocessed = output
            .unprocessed_keys
            .and_then(|mut u| u.remove(&table))
            .filter(|k| !k.keys().is_empty());
        let Some(rest) = unprocessed else {
            return Ok(found);
        };
        attempt += 1;
        if attempt >= MAX_BATCH_ATTEMPTS {
            return Err(DynamoDbError::Unavailable {
                operation: "BatchGetItem",
                cause: format!(
                    "{} keys still unprocessed after {attempt} attempts",
                    rest.keys().len()
                ),
            });
        }
        tokio::time::sleep(backoff(attempt)).await;
        request = rest;
    }
}

async fn batch_write(
    client: Client,
    table: String,
    requests: Vec<WriteRequest>,
) -> Result<(), DynamoDbError> {
    let mut requests = requests;
    let mut attempt = 0;
    loop {
        let output = client
            .batch_write_item()
            .request_items(&table, requests)
            .send()
            .await
            .map_err(|e| sdk_error("BatchWriteItem", e))?;
        let unprocessed = output
            .unprocessed_items
            .and_then(|mut u| u.remove(&table))
            .filter(|r| !r.is_empty());
        let Some(rest) = unprocessed else {
            return Ok(());
        };
        attempt += 1;
        if attempt >= MAX_BATCH_ATTEMPTS {
            return Err(DynamoDbError::Unavailable {
                operation: "BatchWriteItem",
                cause: format!(
                    "{} items still unprocessed after {attempt} attempts",
                    rest.len()
                ),
            });
        }
        tokio::time::sleep(backoff(attempt)).await;
        requests = rest;
    }
}

/// Sets a registered device's new key, if its key is still the one the import read.
async fn replace_key(
    client: Client,
    table: String,
    device: Planned,
    now: UnixTime,
) -> Result<(), DynamoDbError> {
    let registered_key = device.registered_key.unwrap_or_default();
    let result = client
        .update_item()
        .table_name(&table)
        .key("deviceId", AttributeValue::S(device.device_id.clone()))
        .update_expression("SET publicKey = :key, sourceManifest = :source, importedAt = :now")
        .condition_expression("publicKey = :registered")
        .expression_attribute_values(":key", AttributeValue::S(device.public_key))
        .expression_attribute_values(
            ":source",
            device
                .source_manifest
                .map_or(AttributeValue::Null(true), AttributeValue::S),
        )
        .expression_attribute_values(":now", number_value(now))
        .expression_attribute_values(":registered", AttributeValue::S(registered_key))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Err(DynamoDbError::ImportRaced(device.device_id))
        }
        Err(error) => Err(sdk_error("UpdateItem", error)),
    }
}

// ---------------------------------------------------------------------------------
// Items
// ---------------------------------------------------------------------------------

pub(crate) fn number_value(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn device_item(
    device_id: String,
    public_key: String,
    source_manifest: Option<String>,
    now: UnixTime,
) -> Item {
    let mut item = HashMap::from([
        ("deviceId".to_owned(), AttributeValue::S(device_id)),
        ("publicKey".to_owned(), AttributeValue::S(public_key)),
        ("enabled".to_owned(), AttributeValue::Bool(true)),
        ("importedAt".to_owned(), number_value(now)),
    ]);
    if let Some(source) = source_manifest {
        item.insert("sourceManifest".to_owned(), AttributeValue::S(source));
    }
    item
}

/// A new certificate: always ACTIVE, as SQLite records it.
fn new_certificate_item(certificate: &CertificateRecord) -> Item {
    let c = certificate;
    HashMap::from([
        (
            "certificateId".to_owned(),
            AttributeValue::S(c.certificate_id.clone()),
        ),
        (
            "deviceId".to_owned(),
            AttributeValue::S(c.device_id.clone()),
        ),
        ("serial".to_owned(), AttributeValue::S(c.serial.clone())),
        ("issuer".to_owned(), AttributeValue::S(c.issuer.clone())),
        (
            "publicKey".to_owned(),
            AttributeValue::S(c.public_key.canonical()),
        ),
        ("issuedAt".to_owned(), number_value(c.issued_at)),
        ("notBefore".to_owned(), number_value(c.not_before)),
        ("notAfter".to_owned(), number_value(c.not_after)),
        (
            "status".to_owned(),
            AttributeValue::S(status_name(CertificateStatus::Active).into()),
        ),
        (
            "certificatePem".to_owned(),
            AttributeValue::S(c.certificate_pem.clone()),
        ),
    ])
}

pub(crate) fn certificate_from_item(item: &Item) -> Result<CertificateRecord, DynamoDbError> {
    let id = text(item, "certificateId").map_err(DynamoDbError::Corrupt)?;
    let read = || -> Result<CertificateRecord, String> {
        let status = status_from_name(&text(item, "status")?)?;
        let revoked = match (
            optional_number(item, "revokedAt")?,
            optional_text(item, "revocationReason")?,
        ) {
            (Some(at), Some(reason)) => Some((
                at,
                RevocationReason::from_name(&reason)
                    .ok_or_else(|| format!("unknown revocation reason {reason:?}"))?,
            )),
            (None, None) => None,
            _ => return Err("revokedAt and revocationReason go together".into()),
        };
        if (status == CertificateStatus::Revoked) != revoked.is_some() {
            return Err("a REVOKED certificate, and only one, has a revocation".into());
        }
        Ok(CertificateRecord {
            certificate_id: id.clone(),
            device_id: text(item, "deviceId")?,
            serial: text(item, "serial")?,
            issuer: text(item, "issuer")?,
            public_key: stored_key(&text(item, "publicKey")?)?,
            issued_at: number(item, "issuedAt")?,
            not_before: number(item, "notBefore")?,
            not_after: number(item, "notAfter")?,
            status,
            revoked,
            certificate_pem: text(item, "certificatePem")?,
        })
    };
    read().map_err(|e| corrupt_item("certificate", &id, &e))
}

fn audit_item(event: &AuditEvent) -> Result<Item, DynamoDbError> {
    let at = OffsetDateTime::from_unix_timestamp(event.at)
        .map_err(|_| DynamoDbError::TimeOutOfRange(event.at))?;
    let at_text = at
        .format(&Rfc3339)
        .map_err(|_| DynamoDbError::TimeOutOfRange(event.at))?;
    let unique: u128 = rand::random();
    let mut item = HashMap::from([
        ("day".to_owned(), AttributeValue::S(day_text(at.date()))),
        (
            "eventId".to_owned(),
            AttributeValue::S(format!("{at_text}#{unique:032x}")),
        ),
        ("at".to_owned(), number_value(event.at)),
        (
            "decision".to_owned(),
            AttributeValue::S(event.decision.to_owned()),
        ),
        ("code".to_owned(), AttributeValue::S(event.code.clone())),
    ]);
    for (name, value) in [
        ("deviceId", &event.device_id),
        ("remoteAddr", &event.remote_addr),
        ("fingerprint", &event.fingerprint),
        ("certificateId", &event.certificate_id),
    ] {
        // `deviceId` is a key of the audit index, which refuses an empty string (the whole
        // write would fail): an empty device id is stored as none.
        if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
            item.insert(name.to_owned(), AttributeValue::S(value.clone()));
        }
    }
    Ok(item)
}

pub(crate) fn audit_event_from_item(item: &Item) -> Result<AuditEvent, DynamoDbError> {
    let read = || -> Result<AuditEvent, String> {
        let decision = match text(item, "decision")?.as_str() {
            "allow" => "allow",
            "deny" => "deny",
            other => return Err(format!("unknown decision {other:?}")),
        };
        Ok(AuditEvent {
            at: number(item, "at")?,
            device_id: optional_text(item, "deviceId")?,
            decision,
            code: text(item, "code")?,
            remote_addr: optional_text(item, "remoteAddr")?,
            fingerprint: optional_text(item, "fingerprint")?,
            certificate_id: optional_text(item, "certificateId")?,
        })
    };
    read().map_err(|e| {
        let id = optional_text(item, "eventId")
            .ok()
            .flatten()
            .unwrap_or_default();
        corrupt_item("audit event", &id, &e)
    })
}

pub(crate) fn day_text(day: time::Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

pub(crate) fn corrupt_item(kind: &str, id: &str, problem: &str) -> DynamoDbError {
    DynamoDbError::Corrupt(format!("{kind} {id:?}: {problem}"))
}

pub(crate) fn text(item: &Item, name: &str) -> Result<String, String> {
    optional_text(item, name)?.ok_or_else(|| format!("attribute {name} is missing"))
}

pub(crate) fn optional_text(item: &Item, name: &str) -> Result<Option<String>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(value)) => Ok(Some(value.clone())),
        Some(_) => Err(format!("attribute {name} is not a string")),
    }
}

pub(crate) fn number(item: &Item, name: &str) -> Result<i64, String> {
    optional_number(item, name)?.ok_or_else(|| format!("attribute {name} is missing"))
}

pub(crate) fn optional_number(item: &Item, name: &str) -> Result<Option<i64>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(value)) => value
            .parse()
            .map(Some)
            .map_err(|_| format!("attribute {name} is not a whole number of seconds")),
        Some(_) => Err(format!("attribute {name} is not a number")),
    }
}

pub(crate) fn boolean(item: &Item, name: &str) -> Result<bool, String> {
    match item.get(name) {
        Some(AttributeValue::Bool(value)) => Ok(*value),
        None => Err(format!("attribute {name} is missing")),
        Some(_) => Err(format!("attribute {name} is not a boolean")),
    }
}

pub(crate) fn stored_key(text: &str) -> Result<DeviceKey, String> {
    DeviceKey::parse(text).map_err(|e| format!("the stored public key does not parse: {e}"))
}

/// Whether a stored key (canonical text, normally) is `key`, whose canonical text is
/// `canonical`.
fn same_key(stored: &str, canonical: &str, key: &DeviceKey) -> bool {
    stored == canonical || DeviceKey::parse(stored).is_ok_and(|k| &k == key)
}

pub(crate) fn status_name(status: CertificateStatus) -> &'static str {
    match status {
        CertificateStatus::Active => "ACTIVE",
        CertificateStatus::Inactive => "INACTIVE",
        CertificateStatus::Revoked => "REVOKED",
    }
}

fn status_from_name(name: &str) -> Result<CertificateStatus, String> {
    match name {
        "ACTIVE" => Ok(CertificateStatus::Active),
        "INACTIVE" => Ok(CertificateStatus::Inactive),
        "REVOKED" => Ok(CertificateStatus::Revoked),
        other => Err(format!("unknown certificate status {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_are_unavailable_and_others_internal() {
        for code in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
        ] {
            assert!(is_throttling(Some(code)), "{code}");
        }
        assert!(!is_throttling(Some("ValidationException")));
        assert!(!is_throttling(None));
        let port: PortError = DynamoDbError::Unavailable {
            operation: "Query",
            cause: "ThrottlingException".into(),
        }
        .into();
        assert_eq!(
            port,
            PortError::Unavailable {
                what: "the device registry".into(),
                retry_after_secs: 1
            }
        );
        let port: PortError = DynamoDbError::UnknownDevice("dev-1".into()).into();
        assert!(matches!(port, PortError::Internal(m) if m.contains("dev-1")));
    }

    #[test]
    fn audit_items_are_keyed_by_utc_day_and_time_ordered_event_ids() {
        // given an event at 2027-01-15T08:00:00Z
        let event = AuditEvent {
            at: 1_800_000_000,
            device_id: Some("dev-1".into()),
            decision: "deny",
            code: "unknown_device".into(),
            remote_addr: None,
            fingerprint: None,
            certificate_id: None,
        };
        // when it becomes an item, and back
        let item = audit_item(&event).unwrap();
        // then its day and event id carry its time, and nothing is lost
        assert_eq!(item["day"], AttributeValue::S("2027-01-15".into()));
        let AttributeValue::S(id) = &item["eventId"] else {
            panic!("eventId is a string")
        };
        assert!(id.starts_with("2027-01-15T08:00:00Z#"), "{id}");
        assert_eq!(id.len(), "2027-01-15T08:00:00Z#".len() + 32);
        assert!(!item.contains_key("remoteAddr"));
        assert_eq!(audit_event_from_item(&item).unwrap(), event);
    }

    #[test]
    fn an_empty_device_id_stays_out_of_the_audit_index_key() {
        // given an event whose device id is empty (the index refuses an empty key)
        let event = AuditEvent {
            at: 1_800_000_000,
            device_id: Some(String::new()),
            decision: "deny",
            code: "forbidden_origin".into(),
            remote_addr: Some(String::new()),
            fingerprint: None,
            certificate_id: None,
        };
        // when it becomes an item
        let item = audit_item(&event).unwrap();
        // then it has no deviceId (so the write is not refused), and reads back as none
        assert!(!item.contains_key("deviceId"));
        assert_eq!(audit_event_from_item(&item).unwrap().device_id, None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 0..20 {
            let delay = backoff(attempt);
            let ceiling = Duration::from_millis(50 << attempt.min(6));
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{attempt}: {delay:?}"
            );
        }
        assert!(backoff(20) <= Duration::from_millis(3200));
    }
}
