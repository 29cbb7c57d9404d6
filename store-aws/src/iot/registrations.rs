//! The registrations table: one row per certificate and region (see the
//! [module docs](super)), its creation, its reads for the admin, and the writes that open
//! and close a row.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use aws_sdk_iot::error::DisplayErrorContext;
use provisioner_core::{DeviceRegistry, UnixTime};

use super::error::{sdk_error, DYNAMODB};
use super::things::Inner;
use super::{
    unix_now, IotError, IotThingRegistry, Item, OPEN, PENDING_PAGE_SIZE, UNFINISHED_INDEX,
};

/// Where a certificate's registration in one region stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationStatus {
    /// Not done yet (in progress, or left by a process that stopped).
    Pending,
    /// Registered (or, for a certificate superseded before it got there, deliberately
    /// left unregistered and not ACTIVE).
    Done,
    /// Every attempt failed: see `last_error`; [`IotThingRegistry::retry_pending`]
    /// tries again.
    Failed,
}

impl RegistrationStatus {
    /// The stored spelling: `PENDING`, `DONE`, `FAILED`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Done => "DONE",
            Self::Failed => "FAILED",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [Self::Pending, Self::Done, Self::Failed]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// One row of the registrations table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionRegistration {
    /// The certificate.
    pub certificate_id: String,
    /// The region.
    pub region: String,
    /// The device (thing name).
    pub device_id: String,
    /// Where it stands.
    pub status: RegistrationStatus,
    /// Registrations tried in that region.
    pub attempts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// Unix seconds of the last change.
    pub updated_at: UnixTime,
}

/// A page of unfinished registrations, oldest change first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistrationPage {
    /// The rows.
    pub registrations: Vec<RegionRegistration>,
    /// Pass to the next call for the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

impl<R: DeviceRegistry + 'static> IotThingRegistry<R> {
    /// Creates the registrations table (on-demand billing, with [`UNFINISHED_INDEX`]) and
    /// waits until it is ACTIVE. An existing table is left as it is, so calling this again
    /// is harmless. For tests and `provisioner serve --backend aws`; the deployment
    /// template defines the same keys.
    ///
    /// # Errors
    /// [`IotError::Sdk`] when the table cannot be created or does not become ACTIVE within
    /// 5 minutes; [`IotError::Unavailable`] when throttled.
    pub async fn create_registrations_table(&self) -> Result<(), IotError> {
        let inner = &self.inner;
        let region = inner.regions[0].region.as_str();
        let build = |e: aws_sdk_dynamodb::error::BuildError| IotError::Config(e.to_string());
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(build)
        };
        let attribute = |name: &str, kind: ScalarAttributeType| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build()
                .map_err(build)
        };
        let unfinished = GlobalSecondaryIndex::builder()
            .index_name(UNFINISHED_INDEX)
            .key_schema(key("queue", KeyType::Hash)?)
            .key_schema(key("updatedAt", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(build)?;
        let created = inner
            .dynamo
            .create_table()
            .table_name(&inner.table)
            .attribute_definitions(attribute("certificateId", ScalarAttributeType::S)?)
            .attribute_definitions(attribute("region", ScalarAttributeType::S)?)
            .attribute_definitions(attribute("queue", ScalarAttributeType::S)?)
            .attribute_definitions(attribute("updatedAt", ScalarAttributeType::N)?)
            .key_schema(key("certificateId", KeyType::Hash)?)
            .key_schema(key("region", KeyType::Range)?)
            .global_secondary_indexes(unfinished)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(error) => return Err(sdk_error(DYNAMODB, "CreateTable", region, &error)),
        }
        inner
            .dynamo
            .wait_until_table_exists()
            .table_name(&inner.table)
            .wait(Duration::from_secs(300))
            .await
            .map_err(|e| IotError::Sdk {
                service: DYNAMODB,
                operation: "DescribeTable",
                region: region.to_owned(),
                message: format!(
                    "table {} did not become ACTIVE: {}",
                    inner.table,
                    DisplayErrorContext(&e)
                ),
            })?;
        Ok(())
    }

    /// Every region's row of `certificate_id`, by region name.
    ///
    /// # Errors
    /// [`IotError::Unavailable`] when DynamoDB throttles; [`IotError::Sdk`] or
    /// [`IotError::Corrupt`] otherwise.
    pub async fn registrations_of(
        &self,
        certificate_id: &str,
    ) -> Result<Vec<RegionRegistration>, IotError> {
        let inner = &self.inner;
        let mut rows = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = inner
                .dynamo
                .query()
                .table_name(&inner.table)
                .key_condition_expression("certificateId = :id")
                .expression_attribute_values(":id", AttributeValue::S(certificate_id.into()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error(DYNAMODB, "Query", inner.home(), &e))?;
            for item in page.items() {
                rows.push(registration_from_item(item)?);
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(rows),
            }
        }
    }

    /// A page of at most [`PENDING_PAGE_SIZE`] unfinished (PENDING or FAILED) rows, oldest
    /// change first, from [`UNFINISHED_INDEX`] (eventually consistent); `cursor` is the
    /// previous page's [`RegistrationPage::next_cursor`] (`None` for the first page).
    ///
    /// # Errors
    /// [`IotError::Config`] for a cursor this method did not make; otherwise as
    /// [`IotThingRegistry::registrations_of`].
    pub async fn pending_registrations(
        &self,
        cursor: Option<&str>,
    ) -> Result<RegistrationPage, IotError> {
        self.pending_registrations_limited(cursor, PENDING_PAGE_SIZE)
            .await
    }

    /// [`IotThingRegistry::pending_registrations`] with pages of at most `limit` rows (at
    /// least 1), for the admin API's page sizes. The cursors are the same.
    ///
    /// # Errors
    /// As [`IotThingRegistry::pending_registrations`].
    pub async fn pending_registrations_limited(
        &self,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<RegistrationPage, IotError> {
        let inner = &self.inner;
        let start = cursor.map(decode_cursor).transpose()?;
        let page = inner
            .dynamo
            .query()
            .table_name(&inner.table)
            .index_name(UNFINISHED_INDEX)
            .key_condition_expression("queue = :open")
            .expression_attribute_values(":open", AttributeValue::S(OPEN.into()))
            .limit(limit.max(1))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| sdk_error(DYNAMODB, "Query", inner.home(), &e))?;
        let registrations = page
            .items()
            .iter()
            .map(registration_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = page
            .last_evaluated_key()
            .filter(|key| !key.is_empty())
            .map(encode_cursor)
            .transpose()?;
        Ok(RegistrationPage {
            registrations,
            next_cursor,
        })
    }
}

impl<R: DeviceRegistry> Inner<R> {
    /// Opens the row of (`id`, region `index`) as PENDING, keeping its attempts and last
    /// error, unless it is DONE already (then `false`: nothing to do there).
    pub(super) async fn open_row(
        &self,
        id: &str,
        index: usize,
        device_id: &str,
    ) -> Result<bool, IotError> {
        let updated = self
            .dynamo
            .update_item()
            .table_name(&self.table)
            .key("certificateId", AttributeValue::S(id.to_owned()))
            .key(
                "region",
                AttributeValue::S(self.regions[index].region.clone()),
            )
            .update_expression(
                "SET #s = :pending, deviceId = :device, updatedAt = :now, queue = :open, \
                 attempts = if_not_exists(attempts, :zero)",
            )
            .condition_expression("attribute_not_exists(certificateId) OR #s <> :done")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":pending", AttributeValue::S("PENDING".into()))
            .expression_attribute_values(":done", AttributeValue::S("DONE".into()))
            .expression_attribute_values(":device", AttributeValue::S(device_id.to_owned()))
            .expression_attribute_values(":now", AttributeValue::N(unix_now().to_string()))
            .expression_attribute_values(":open", AttributeValue::S(OPEN.into()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_error(DYNAMODB, "UpdateItem", self.home(), &e)),
        }
    }

    /// Records one more attempt at (`id`, `region`) with its outcome (creating the row if
    /// absent; `device_id` when known).
    pub(super) async fn update_row(
        &self,
        id: &str,
        region: &str,
        device_id: Option<&str>,
        status: RegistrationStatus,
        error: Option<&str>,
    ) -> Result<(), IotError> {
        let mut set = vec![
            "#s = :status",
            "attempts = if_not_exists(attempts, :zero) + :one",
            "updatedAt = :now",
        ];
        let mut remove = Vec::new();
        let mut request = self
            .dynamo
            .update_item()
            .table_name(&self.table)
            .key("certificateId", AttributeValue::S(id.to_owned()))
            .key("region", AttributeValue::S(region.to_owned()))
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":status", AttributeValue::S(status.name().into()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":now", AttributeValue::N(unix_now().to_string()));
        if let Some(device_id) = device_id {
            set.push("deviceId = :device");
            request = request
                .expression_attribute_values(":device", AttributeValue::S(device_id.to_owned()));
        }
        match error {
            Some(error) => {
                set.push("lastError = :error");
                request = request
                    .expression_attribute_values(":error", AttributeValue::S(error.to_owned()));
            }
            None => remove.push("lastError"),
        }
        if status == RegistrationStatus::Done {
            remove.push("queue");
        } else {
            set.push("queue = :open");
            request = request.expression_attribute_values(":open", AttributeValue::S(OPEN.into()));
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        request
            .update_expression(expression)
            .send()
            .await
            .map_err(|e| sdk_error(DYNAMODB, "UpdateItem", self.home(), &e))?;
        Ok(())
    }
}

fn encode_cursor(key: &Item) -> Result<String, IotError> {
    let text = |name: &str| match key.get(name) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        Some(AttributeValue::N(n)) => Ok(n.clone()),
        _ => Err(IotError::Corrupt(format!("page key without {name}"))),
    };
    Ok(format!(
        "{}/{}/{}",
        text("updatedAt")?,
        text("certificateId")?,
        text("region")?
    ))
}

fn decode_cursor(cursor: &str) -> Result<Item, IotError> {
    let mut parts = cursor.splitn(3, '/');
    let (Some(updated), Some(id), Some(region)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(IotError::Config(format!(
            "cursor {cursor:?} is not one this API made"
        )));
    };
    if updated.parse::<i64>().is_err() || id.is_empty() || region.is_empty() {
        return Err(IotError::Config(format!(
            "cursor {cursor:?} is not one this API made"
        )));
    }
    Ok(HashMap::from([
        ("queue".to_owned(), AttributeValue::S(OPEN.into())),
        (
            "updatedAt".to_owned(),
            AttributeValue::N(updated.to_owned()),
        ),
        ("certificateId".to_owned(), AttributeValue::S(id.to_owned())),
        ("region".to_owned(), AttributeValue::S(region.to_owned())),
    ]))
}

fn registration_from_item(item: &Item) -> Result<RegionRegistration, IotError> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        _ => Err(IotError::Corrupt(format!(
            "registrations row without text attribute {name}"
        ))),
    };
    let number = |name: &str| match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse::<i64>().map_err(|_| {
            IotError::Corrupt(format!("registrations row: {name} {n:?} is not a number"))
        }),
        _ => Err(IotError::Corrupt(format!(
            "registrations row without number attribute {name}"
        ))),
    };
    let status = text("status")?;
    Ok(RegionRegistration {
        certificate_id: text("certificateId")?,
        region: text("region")?,
        device_id: text("deviceId")?,
        status: RegistrationStatus::from_name(&status)
            .ok_or_else(|| IotError::Corrupt(format!("registrations row: status {status:?}")))?,
        attempts: u32::try_from(number("attempts")?.max(0)).unwrap_or(u32::MAX),
        last_error: text("lastError").ok(),
        updated_at: number("updatedAt")?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let key = decode_cursor("1800000000/abc/eu-west-1").unwrap();
        assert_eq!(encode_cursor(&key).unwrap(), "1800000000/abc/eu-west-1");
        assert!(decode_cursor("abc").is_err());
        assert!(decode_cursor("x/abc/eu-west-1").is_err());
    }

    #[test]
    fn rows_read_back_with_their_status() {
        let item = HashMap::from([
            ("certificateId".to_owned(), AttributeValue::S("c".into())),
            ("region".to_owned(), AttributeValue::S("eu-west-1".into())),
            ("deviceId".to_owned(), AttributeValue::S("d".into())),
            ("status".to_owned(), AttributeValue::S("FAILED".into())),
            ("attempts".to_owned(), AttributeValue::N("3".into())),
            ("lastError".to_owned(), AttributeValue::S("boom".into())),
            ("updatedAt".to_owned(), AttributeValue::N("17".into())),
        ]);
        let row = registration_from_item(&item).unwrap();
        assert_eq!(row.status, RegistrationStatus::Failed);
        assert_eq!(row.attempts, 3);
        assert_eq!(row.last_error.as_deref(), Some("boom"));
        let mut bad = item;
        bad.insert("status".into(), AttributeValue::S("MAYBE".into()));
        assert!(registration_from_item(&bad).is_err());
    }
}
