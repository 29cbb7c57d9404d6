//! An issuance recorded in one `TransactWriteItems` (see the [module docs](super)): the new
//! certificate, the claim's release and the superseded certificates revoked, all or
//! nothing; a cancelled transaction retried without the items SQLite would skip.

use std::collections::HashSet;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use provisioner_core::{CertificateRecord, IssuanceClaim, RevocationReason, UnixTime};

use super::items::new_certificate_item;
use super::{
    build_error, corrupt_item, number_value, sdk_error, text, DynamoDbError, DynamoDbRegistry,
};

/// DynamoDB's limit of items in one `TransactWriteItems`.
const MAX_TRANSACTION_ITEMS: usize = 100;

impl DynamoDbRegistry {
    /// Records `certificate`, releasing `claim`, and revokes `supersede` (see the
    /// [module docs](super)).
    pub(super) async fn record_certificate(
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
