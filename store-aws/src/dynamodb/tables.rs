//! The registry's tables made ([`DynamoDbRegistry::create_tables`]): the three tables of
//! the [module docs](super), and the audit index added to an audit table made before it.

use std::time::Duration;

use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType,
};

use super::{
    build_error, sdk_error, DynamoDbError, DynamoDbRegistry, AUDIT_BY_DEVICE_INDEX, BY_DEVICE_INDEX,
};

/// How long [`DynamoDbRegistry::create_tables`] waits for a new table to become ACTIVE.
const TABLE_WAIT: Duration = Duration::from_secs(300);
/// How long it waits for the audit index added to an existing table: DynamoDB backfills
/// it from every event in the table, minutes for a small table, longer for a large one.
const INDEX_WAIT: Duration = Duration::from_secs(600);
/// How often it asks whether that index is ACTIVE yet.
const INDEX_POLL: Duration = Duration::from_secs(5);

impl DynamoDbRegistry {
    /// Creates the three tables (on-demand billing; see the [module docs](super)) and waits until
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
}
