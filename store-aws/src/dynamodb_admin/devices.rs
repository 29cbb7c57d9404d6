//! The admin's devices: a page of them, one with where and when it was imported, and a
//! device enabled or disabled.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use provisioner_app::fleet::{DeviceQuery, DeviceRecord, Listed};

use super::{bad_cursor, empty, storable_key, wanted, Filter};
use crate::dynamodb::{
    boolean, corrupt_item, number, optional_text, sdk_error, stored_key, text, DynamoDbError,
    DynamoDbRegistry, Item,
};

impl DynamoDbRegistry {
    /// One page of devices: a strongly consistent `Scan` of the devices table, filtered
    /// with `begins_with(deviceId, :prefix)` and `enabled = :enabled` as `query` asks,
    /// from `query.after`, until `limit + 1` devices matched or the table ended (see the
    /// [module docs](super)). In the table's (hash) order, not by id; `next` is the last device's
    /// id.
    ///
    /// # Errors
    /// [`DynamoDbError::Corrupt`] for an item that is not a device;
    /// [`DynamoDbError::Unavailable`] when throttled; [`bad_cursor`] for an `after` that
    /// is no device id; any other failure.
    pub async fn list_devices(
        &self,
        query: &DeviceQuery,
    ) -> Result<Listed<DeviceRecord>, DynamoDbError> {
        if query.limit == 0 {
            return Ok(empty());
        }
        let start = match query.after.as_deref() {
            None => None,
            Some(after) if storable_key(after) => Some(HashMap::from([(
                "deviceId".to_owned(),
                AttributeValue::S(after.to_owned()),
            )])),
            Some(after) => return Err(bad_cursor("devices", after)),
        };
        let mut filter = Filter::default();
        if let Some(prefix) = query.prefix.as_deref().filter(|p| !p.is_empty()) {
            filter.when(
                "begins_with(deviceId, :prefix)",
                ":prefix",
                AttributeValue::S(prefix.to_owned()),
            );
        }
        if let Some(enabled) = query.enabled {
            filter.when(
                "enabled = :enabled",
                ":enabled",
                AttributeValue::Bool(enabled),
            );
        }
        let request = self
            .client()
            .scan()
            .table_name(&self.tables().devices)
            .consistent_read(true)
            .set_filter_expression(filter.expression())
            .set_expression_attribute_values(filter.values());
        let items = self
            .scan_until(request, start, wanted(query.limit), filter.filtered())
            .await?;
        let devices = items
            .iter()
            .map(device_record_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Listed::cut(devices, query.limit, |d| d.device_id.clone()))
    }

    /// One device with where and when it was imported (a strongly consistent `GetItem`);
    /// `None` when there is none.
    ///
    /// # Errors
    /// [`DynamoDbError::Corrupt`] for an item that is not a device;
    /// [`DynamoDbError::Unavailable`] when throttled; any other failure.
    pub async fn device_record(
        &self,
        device_id: &str,
    ) -> Result<Option<DeviceRecord>, DynamoDbError> {
        if !storable_key(device_id) {
            return Ok(None);
        }
        let output = self
            .client()
            .get_item()
            .table_name(&self.tables().devices)
            .key("deviceId", AttributeValue::S(device_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        output
            .item
            .as_ref()
            .map(device_record_from_item)
            .transpose()
    }

    /// Enables or disables a device (a disabled device is refused certificates) and
    /// returns it as now stored: one `UpdateItem` conditioned on the device existing
    /// (it never creates one), with `ReturnValues` `ALL_NEW`. `None`: no such device.
    /// Setting the flag it already has is harmless.
    ///
    /// # Errors
    /// [`DynamoDbError::Corrupt`] for an item that is not a device;
    /// [`DynamoDbError::Unavailable`] when throttled; any other failure.
    pub async fn set_device_enabled(
        &self,
        device_id: &str,
        enabled: bool,
    ) -> Result<Option<DeviceRecord>, DynamoDbError> {
        if !storable_key(device_id) {
            return Ok(None);
        }
        let result = self
            .client()
            .update_item()
            .table_name(&self.tables().devices)
            .key("deviceId", AttributeValue::S(device_id.to_owned()))
            .update_expression("SET enabled = :enabled")
            .condition_expression("attribute_exists(deviceId)")
            .expression_attribute_values(":enabled", AttributeValue::Bool(enabled))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => match output.attributes {
                Some(item) => device_record_from_item(&item).map(Some),
                // DynamoDB always returns them; a stand-in might not.
                None => self.device_record(device_id).await,
            },
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(error) => Err(sdk_error("UpdateItem", error)),
        }
    }
}

fn device_record_from_item(item: &Item) -> Result<DeviceRecord, DynamoDbError> {
    let id = text(item, "deviceId").map_err(DynamoDbError::Corrupt)?;
    let read = || -> Result<DeviceRecord, String> {
        Ok(DeviceRecord {
            device_id: id.clone(),
            public_key: stored_key(&text(item, "publicKey")?)?,
            enabled: boolean(item, "enabled")?,
            source_manifest: optional_text(item, "sourceManifest")?,
            imported_at: number(item, "importedAt")?,
        })
    };
    read().map_err(|e| corrupt_item("device", &id, &e))
}
