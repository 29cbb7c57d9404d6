//! The admin's certificates: a page of them (of one device, newest first, or of all), and
//! one revoked (in the registry only; ACM Private CA and IoT Core are the caller's).

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use provisioner_app::fleet::{CertificateQuery, Listed};
use provisioner_core::{CertificateRecord, CertificateStatus, RevocationReason, UnixTime};

use super::{bad_cursor, empty, storable_key, wanted, Filter};
use crate::dynamodb::{
    certificate_from_item, number_value, sdk_error, status_name, DynamoDbError, DynamoDbRegistry,
    Item, BY_DEVICE_INDEX,
};

impl DynamoDbRegistry {
    /// One page of certificates, filtered by `status` (stored as `ACTIVE`, `INACTIVE`,
    /// `REVOKED`) and `issuer` as `query` asks.
    ///
    /// - With `device_id`: a `Query` of the [`BY_DEVICE_INDEX`] index, newest first
    ///   (`ScanIndexForward` false; by issue time), the filters as a `FilterExpression`.
    ///   The index is eventually consistent (see the [module docs](super)). `next` is
    ///   `issuedAt:certificateId`.
    /// - Without: a strongly consistent `Scan` of the table with the filters, in the
    ///   table's (hash) order, not by time. `next` is the last certificate id.
    ///
    /// Either reads until `limit + 1` matched or the end (see the [module docs](super)).
    ///
    /// # Errors
    /// [`DynamoDbError::Corrupt`] for an item that is not a certificate;
    /// [`DynamoDbError::Unavailable`] when throttled; [`bad_cursor`] for an `after` of
    /// another form; any other failure.
    pub async fn list_certificates(
        &self,
        query: &CertificateQuery,
    ) -> Result<Listed<CertificateRecord>, DynamoDbError> {
        if query.limit == 0 {
            return Ok(empty());
        }
        let mut filter = Filter::default();
        if let Some(status) = query.status {
            filter.when(
                "#status = :status",
                ":status",
                AttributeValue::S(status_name(status).to_owned()),
            );
            filter.names.insert("#status".into(), "status".into());
        }
        if let Some(issuer) = &query.issuer {
            filter.when(
                "issuer = :issuer",
                ":issuer",
                AttributeValue::S(issuer.clone()),
            );
        }
        let filtered = filter.filtered();
        let table = &self.tables().certificates;
        match query.device_id.as_deref() {
            Some(device_id) => {
                let start = query
                    .after
                    .as_deref()
                    .map(|after| {
                        by_device_start(device_id, after)
                            .ok_or_else(|| bad_cursor("device's certificates", after))
                    })
                    .transpose()?;
                let mut values = filter.values().unwrap_or_default();
                values.insert(":device".into(), AttributeValue::S(device_id.to_owned()));
                let request = self
                    .client()
                    .query()
                    .table_name(table)
                    .index_name(BY_DEVICE_INDEX)
                    .key_condition_expression("deviceId = :device")
                    .scan_index_forward(false)
                    .set_filter_expression(filter.expression())
                    .set_expression_attribute_names(filter.names())
                    .set_expression_attribute_values(Some(values));
                let items = self
                    .query_until(request, start, wanted(query.limit), filtered)
                    .await?;
                let certificates = certificates_from(&items)?;
                Ok(Listed::cut(certificates, query.limit, |c| {
                    format!("{}:{}", c.issued_at, c.certificate_id)
                }))
            }
            None => {
                let start = match query.after.as_deref() {
                    None => None,
                    Some(after) if storable_key(after) => Some(HashMap::from([(
                        "certificateId".to_owned(),
                        AttributeValue::S(after.to_owned()),
                    )])),
                    Some(after) => return Err(bad_cursor("certificates", after)),
                };
                let request = self
                    .client()
                    .scan()
                    .table_name(table)
                    .consistent_read(true)
                    .set_filter_expression(filter.expression())
                    .set_expression_attribute_names(filter.names())
                    .set_expression_attribute_values(filter.values());
                let items = self
                    .scan_until(request, start, wanted(query.limit), filtered)
                    .await?;
                let certificates = certificates_from(&items)?;
                Ok(Listed::cut(certificates, query.limit, |c| {
                    c.certificate_id.clone()
                }))
            }
        }
    }

    /// Revokes one certificate (ACTIVE or INACTIVE) at `now` for `reason`, and returns it
    /// as now stored with whether it was revoked already: one `UpdateItem` conditioned on
    /// the certificate existing and not being REVOKED, so of two admins racing, one
    /// revokes and the other is told it was revoked already. A certificate revoked before
    /// is returned unchanged (its first time and reason stand) with `true`. `None`: no
    /// certificate has this id.
    ///
    /// Only the registry changes here: ACM Private CA and IoT Core are the caller's.
    ///
    /// # Errors
    /// [`DynamoDbError::Corrupt`] for an item that is not a certificate;
    /// [`DynamoDbError::Unavailable`] when throttled (or, three times over, when the item
    /// kept changing between the update and the read); any other failure.
    pub async fn revoke_certificate(
        &self,
        certificate_id: &str,
        reason: RevocationReason,
        now: UnixTime,
    ) -> Result<Option<(CertificateRecord, bool)>, DynamoDbError> {
        if !storable_key(certificate_id) {
            return Ok(None);
        }
        for _ in 0..3 {
            let result = self
                .client()
                .update_item()
                .table_name(&self.tables().certificates)
                .key(
                    "certificateId",
                    AttributeValue::S(certificate_id.to_owned()),
                )
                .update_expression(
                    "SET #status = :revoked, revokedAt = :now, revocationReason = :reason",
                )
                .condition_expression("attribute_exists(certificateId) AND #status <> :revoked")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(
                    ":revoked",
                    AttributeValue::S(status_name(CertificateStatus::Revoked).into()),
                )
                .expression_attribute_values(":now", number_value(now))
                .expression_attribute_values(":reason", AttributeValue::S(reason.name().into()))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let stored = match result {
                Ok(output) => {
                    let item = match output.attributes {
                        Some(item) => Some(item),
                        // DynamoDB always returns them; a stand-in might not.
                        None => self.certificate_item(certificate_id).await?,
                    };
                    return match item {
                        Some(item) => Ok(Some((certificate_from_item(&item)?, false))),
                        None => Err(DynamoDbError::Unavailable {
                            operation: "UpdateItem",
                            cause: "the certificate was deleted while it was revoked".into(),
                        }),
                    };
                }
                Err(error) => match error.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                        match failed.item() {
                            Some(item) => Some(item.clone()),
                            None => self.certificate_item(certificate_id).await?,
                        }
                    }
                    _ => return Err(sdk_error("UpdateItem", error)),
                },
            };
            let Some(item) = stored else {
                return Ok(None);
            };
            let certificate = certificate_from_item(&item)?;
            if certificate.status == CertificateStatus::Revoked {
                return Ok(Some((certificate, true)));
            }
            // Not revoked, yet the condition failed: it was created or changed between
            // the update and the read. Try again.
        }
        Err(DynamoDbError::Unavailable {
            operation: "UpdateItem",
            cause: "the certificate kept changing during the revocation".into(),
        })
    }
}

fn certificates_from(items: &[Item]) -> Result<Vec<CertificateRecord>, DynamoDbError> {
    items.iter().map(certificate_from_item).collect()
}

/// The `ExclusiveStartKey` on [`BY_DEVICE_INDEX`] of a `issuedAt:certificateId` key.
pub(super) fn by_device_start(device_id: &str, after: &str) -> Option<Item> {
    let (issued_at, certificate_id) = after.split_once(':')?;
    let issued_at: UnixTime = issued_at.parse().ok()?;
    storable_key(certificate_id).then(|| {
        HashMap::from([
            (
                "deviceId".to_owned(),
                AttributeValue::S(device_id.to_owned()),
            ),
            ("issuedAt".to_owned(), number_value(issued_at)),
            (
                "certificateId".to_owned(),
                AttributeValue::S(certificate_id.to_owned()),
            ),
        ])
    })
}
