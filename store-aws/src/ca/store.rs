//! The config table's CA items (see the [module docs](super)): [`IssuingCaStore`] reads
//! and writes the issuing CA, the rotation's progress, the pending CA and the retired ones.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_iot::error::DisplayErrorContext;
use provisioner_core::{PortError, RevocationReason, UnixTime};

use super::error::{sdk_error, DYNAMODB};
use super::{
    ca_id, CaError, RotationProgress, RotationState, ISSUING_CA_ITEM, PENDING_CA_ITEM,
    RETIRED_CA_ITEM_PREFIX, ROTATION_ITEM,
};
#[cfg(doc)]
use crate::config::AwsSettings;

/// A config table item.
pub(super) type Item = HashMap<String, AttributeValue>;

/// The issuing CA as the config table records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuingCa {
    /// The ACM Private CA that issues now.
    pub ca_arn: String,
    /// The CAs that issued before, oldest first.
    pub previous_ca_arns: Vec<String>,
    /// When it became the issuing CA.
    pub updated_at: UnixTime,
}

impl IssuingCa {
    /// The CA's id: the ARN's last part (what the registry's `issuer` records).
    pub fn ca_id(&self) -> &str {
        ca_id(&self.ca_arn)
    }
}

/// A CA a finished rotation retired: every certificate it issued was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredCa {
    /// The retired CA.
    pub ca_arn: String,
    /// The CA that took over from it.
    pub replaced_by: String,
    /// Why its certificates were revoked.
    pub reason: RevocationReason,
    /// When its rotation finished.
    pub retired_at: UnixTime,
}

pub(super) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

pub(super) fn n<T: ToString>(value: T) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn text(item: &Item, name: &str) -> Result<String, String> {
    optional_text(item, name)?.ok_or_else(|| format!("attribute {name} is missing"))
}

pub(super) fn optional_text(item: &Item, name: &str) -> Result<Option<String>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(value)) => Ok(Some(value.clone())),
        Some(_) => Err(format!("attribute {name} is not a string")),
    }
}

pub(super) fn number<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, String> {
    optional_number(item, name)?.ok_or_else(|| format!("attribute {name} is missing"))
}

pub(super) fn optional_number<T: std::str::FromStr>(
    item: &Item,
    name: &str,
) -> Result<Option<T>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(value)) => value
            .parse()
            .map(Some)
            .map_err(|_| format!("attribute {name} is not a whole number")),
        Some(_) => Err(format!("attribute {name} is not a number")),
    }
}

/// The config table's CA items (see the [module docs](super)).
///
/// Cheap to clone: clones share the SDK client.
#[derive(Debug, Clone)]
pub struct IssuingCaStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl IssuingCaStore {
    /// The items of `table` ([`AwsSettings::config_table`]), through `client`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the config table (key `name` S, on-demand) and waits until it is ACTIVE;
    /// an existing table is left as it is.
    ///
    /// # Errors
    /// [`CaError::Sdk`] when it cannot be created or does not become ACTIVE in 5 minutes.
    pub async fn create_config_table(&self) -> Result<(), CaError> {
        let build = |e: aws_sdk_dynamodb::error::BuildError| CaError::Sdk {
            service: DYNAMODB,
            operation: "CreateTable",
            message: e.to_string(),
        };
        let result = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("name")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("name")
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(build)?,
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(error) => return Err(sdk_error(DYNAMODB, "CreateTable", &error)),
        }
        self.client
            .wait_until_table_exists()
            .table_name(&self.table)
            .wait(Duration::from_secs(300))
            .await
            .map_err(|e| CaError::Sdk {
                service: DYNAMODB,
                operation: "DescribeTable",
                message: format!(
                    "table {} did not become ACTIVE: {}",
                    self.table,
                    DisplayErrorContext(&e)
                ),
            })?;
        Ok(())
    }

    /// Creates the config table unless it exists (`DescribeTable` first, so an admin
    /// without `CreateTable` rights can use a table the deployment made).
    ///
    /// # Errors
    /// As [`IssuingCaStore::create_config_table`].
    pub async fn ensure_config_table(&self) -> Result<(), CaError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                self.create_config_table().await
            }
            Err(error) => Err(sdk_error(DYNAMODB, "DescribeTable", &error)),
        }
    }

    async fn item(&self, name: &str) -> Result<Option<Item>, CaError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("name", s(name))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(DYNAMODB, "GetItem", &e))?;
        Ok(output.item)
    }

    /// The issuing CA the table records, if any (a strongly consistent read).
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when throttled; [`PortError::Internal`] for a damaged
    /// item or any other failure.
    pub async fn current(&self) -> Result<Option<IssuingCa>, PortError> {
        Ok(self.read_current().await?)
    }

    /// The issuing CA the table records, if any.
    pub(super) async fn read_current(&self) -> Result<Option<IssuingCa>, CaError> {
        let Some(item) = self.item(ISSUING_CA_ITEM).await? else {
            return Ok(None);
        };
        let read = || -> Result<IssuingCa, String> {
            let previous = match item.get("previousCaArns") {
                None => Vec::new(),
                Some(AttributeValue::L(values)) => values
                    .iter()
                    .map(|v| match v {
                        AttributeValue::S(arn) => Ok(arn.clone()),
                        _ => Err("previousCaArns holds a non-string".to_owned()),
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err("previousCaArns is not a list".into()),
            };
            Ok(IssuingCa {
                ca_arn: text(&item, "caArn")?,
                previous_ca_arns: previous,
                updated_at: number(&item, "updatedAt")?,
            })
        };
        read()
            .map(Some)
            .map_err(|e| CaError::Corrupt(format!("config item {ISSUING_CA_ITEM}: {e}")))
    }

    /// Makes `arn` the issuing CA at `now`, replacing `replaces` (the CA in effect: the
    /// recorded one, or the environment's fallback when none is recorded; `None` when no
    /// CA was in effect), which is appended to `previousCaArns`. Conditional: when the
    /// table records a CA other than `replaces` (another rotation won), nothing is written.
    ///
    /// # Errors
    /// [`CaError::Conflict`] when the recorded CA is not `replaces`; a DynamoDB failure.
    pub async fn set_current(
        &self,
        replaces: Option<&str>,
        arn: &str,
        now: UnixTime,
    ) -> Result<IssuingCa, CaError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("name", s(ISSUING_CA_ITEM))
            .update_expression(
                "SET caArn = :arn, updatedAt = :now, \
                 previousCaArns = list_append(if_not_exists(previousCaArns, :empty), :replaced)",
            )
            .expression_attribute_values(":arn", s(arn))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":empty", AttributeValue::L(Vec::new()))
            .expression_attribute_values(
                ":replaced",
                AttributeValue::L(replaces.map(s).into_iter().collect()),
            );
        update = match replaces {
            // No item: the fallback was in effect. An item: it must name `replaces`.
            Some(replaces) => update
                .condition_expression("attribute_not_exists(caArn) OR caArn = :replaces")
                .expression_attribute_values(":replaces", s(replaces)),
            None => update.condition_expression("attribute_not_exists(caArn)"),
        };
        match update.send().await {
            Ok(_) => {}
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                let recorded = self.read_current().await?.map(|c| c.ca_arn);
                return Err(CaError::Conflict(format!(
                    "the issuing CA changed meanwhile: the config table names {}, not {}; \
                     check `provisioner aws ca show` and run the command again",
                    recorded.as_deref().unwrap_or("none"),
                    replaces.unwrap_or("none"),
                )));
            }
            Err(error) => return Err(sdk_error(DYNAMODB, "UpdateItem", &error)),
        }
        self.read_current().await?.ok_or_else(|| {
            CaError::Conflict(format!(
                "config item {ISSUING_CA_ITEM} vanished after writing"
            ))
        })
    }

    /// The last rotation's progress, if any rotation ran.
    ///
    /// # Errors
    /// [`CaError::Corrupt`] for a damaged item; a DynamoDB failure.
    pub async fn rotation(&self) -> Result<Option<RotationProgress>, CaError> {
        self.item(ROTATION_ITEM)
            .await?
            .map(|item| RotationProgress::from_item(&item))
            .transpose()
    }

    /// Records a new rotation, unless one that is not done is recorded.
    pub(super) async fn start_rotation(&self, progress: &RotationProgress) -> Result<(), CaError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(progress.to_item()))
            .condition_expression("attribute_not_exists(#name) OR #state = :done")
            .expression_attribute_names("#name", "name")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":done", s(RotationState::Done.name()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(CaError::Conflict(
                    "another rotation started meanwhile: see `provisioner aws ca rotation`".into(),
                ))
            }
            Err(error) => Err(sdk_error(DYNAMODB, "PutItem", &error)),
        }
    }

    /// Writes the progress of the rotation to `progress.to_ca_arn`, only if the recorded
    /// rotation is that one.
    pub(super) async fn save_rotation(&self, progress: &RotationProgress) -> Result<(), CaError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(progress.to_item()))
            .condition_expression("toCaArn = :to AND fromCaArn = :from")
            .expression_attribute_values(":to", s(&progress.to_ca_arn))
            .expression_attribute_values(":from", s(&progress.from_ca_arn))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(CaError::Conflict(format!(
                    "the recorded rotation is no longer {} -> {}",
                    progress.from_ca_arn, progress.to_ca_arn
                )))
            }
            Err(error) => Err(sdk_error(DYNAMODB, "PutItem", &error)),
        }
    }

    /// Records `rotation`'s old CA as retired (idempotent: a rerun writes the same item).
    pub(super) async fn record_retired(&self, rotation: &RotationProgress) -> Result<(), CaError> {
        let retired_at = rotation.completed_at.unwrap_or(rotation.updated_at);
        self.client
            .put_item()
            .table_name(&self.table)
            .item(
                "name",
                s(&format!("{RETIRED_CA_ITEM_PREFIX}{}", rotation.from_ca_arn)),
            )
            .item("caArn", s(&rotation.from_ca_arn))
            .item("replacedBy", s(&rotation.to_ca_arn))
            .item("reason", s(rotation.reason.name()))
            .item("retiredAt", n(retired_at))
            .send()
            .await
            .map_err(|e| sdk_error(DYNAMODB, "PutItem", &e))?;
        Ok(())
    }

    /// The CA `arn` as a finished rotation retired it, if one did.
    ///
    /// # Errors
    /// [`CaError::Corrupt`] for a damaged item; a DynamoDB failure.
    pub async fn retired(&self, arn: &str) -> Result<Option<RetiredCa>, CaError> {
        let name = format!("{RETIRED_CA_ITEM_PREFIX}{arn}");
        let Some(item) = self.item(&name).await? else {
            return Ok(None);
        };
        let read = || -> Result<RetiredCa, String> {
            let reason = text(&item, "reason")?;
            Ok(RetiredCa {
                ca_arn: text(&item, "caArn")?,
                replaced_by: text(&item, "replacedBy")?,
                reason: RevocationReason::from_name(&reason)
                    .ok_or_else(|| format!("reason {reason:?} is not a revocation reason"))?,
                retired_at: number(&item, "retiredAt")?,
            })
        };
        read()
            .map(Some)
            .map_err(|e| CaError::Corrupt(format!("config item {name}: {e}")))
    }

    /// The CA `aws ca create` made and no rotation has put in service yet, if any.
    ///
    /// # Errors
    /// A DynamoDB failure or a damaged item.
    pub async fn pending(&self) -> Result<Option<String>, CaError> {
        match self.item(PENDING_CA_ITEM).await? {
            Some(item) => text(&item, "caArn")
                .map(Some)
                .map_err(|e| CaError::Corrupt(format!("config item {PENDING_CA_ITEM}: {e}"))),
            None => Ok(None),
        }
    }

    /// Records `arn` as the pending CA.
    ///
    /// # Errors
    /// A DynamoDB failure.
    pub async fn set_pending(&self, arn: &str, now: UnixTime) -> Result<(), CaError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("name", s(PENDING_CA_ITEM))
            .item("caArn", s(arn))
            .item("createdAt", n(now))
            .send()
            .await
            .map_err(|e| sdk_error(DYNAMODB, "PutItem", &e))?;
        Ok(())
    }

    /// Forgets the pending CA if it is `arn`.
    pub(super) async fn clear_pending(&self, arn: &str) -> Result<(), CaError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("name", s(PENDING_CA_ITEM))
            .condition_expression("caArn = :arn")
            .expression_attribute_values(":arn", s(arn))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(error) => Err(sdk_error(DYNAMODB, "DeleteItem", &error)),
        }
    }
}
