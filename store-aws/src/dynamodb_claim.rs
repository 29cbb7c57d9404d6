//! The per-device issuance claim of the DynamoDB registry, and the strongly consistent
//! view of a device's recent certificates that the claim holder decides on.
//!
//! # Where the claim lives
//!
//! On the device's own item in the devices table, as attributes that tables made before
//! the claim simply lack (an item without them is unclaimed), so existing deployments
//! need no migration and no new table:
//!
//! | attribute | meaning |
//! |---|---|
//! | [`CLAIM_HOLDER`] (S) | the holder (random per request) |
//! | [`CLAIM_EXPIRES_AT`] (N) | Unix seconds after which another request may take it |
//! | [`RECENT_CERTIFICATES`] (M of N) | certificate id → `issuedAt` of the last hour's issuances (and the latest), written by each issuance under its claim |
//!
//! - Taking it is one conditional `UpdateItem`: the device exists and no other holder's
//!   unexpired claim is there. A refused take answers until when the other holds it
//!   (from the item DynamoDB returns with the refusal, else a strongly consistent read);
//!   a take refused because the holder's issuance transaction is writing the item
//!   (`TransactionConflictException`) answers `Held` for a second.
//! - Releasing it is a `REMOVE` conditioned on the holder: a no-op for anyone else.
//! - Recording an issuance ([`DeviceRegistry::record_issuance`]) releases it inside the
//!   issuance's `TransactWriteItems`, with the condition that the holder still holds it
//!   (expired but not taken by another is fine): a holder whose claim lapsed and was
//!   taken records nothing and gets
//!   [`PortError::ClaimLost`](provisioner_core::PortError::ClaimLost).
//!
//! # Why the recent certificates are on the device item
//!
//! The certificates table's `byDevice` index is eventually consistent: read under the
//! claim alone, it may not show the certificate the previous holder recorded a moment
//! ago, nor its supersede, and the new holder would sign a second certificate (or pass the
//! rate limit). The device item is read strongly consistently, and every certificate it
//! lists, and every one the index reports ACTIVE, is read again by key (strongly
//! consistent `BatchGetItem`), so the decision sees every issuance of the last hour with
//! its current status. Certificates issued more than an hour ago have long reached the
//! index.
//!
//! [`DeviceRegistry::record_issuance`]: provisioner_core::DeviceRegistry::record_issuance

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use provisioner_core::{
    CertificateRecord, CertificateStatus, ClaimOutcome, IssuanceClaim, IssuanceRateLimit, UnixTime,
};

use super::dynamodb::{
    backoff, build_error, certificate_from_item, corrupt_item, number, number_value, optional_text,
    sdk_error, DynamoDbError, DynamoDbRegistry, Item, BATCH_GET_KEYS, MAX_BATCH_ATTEMPTS,
};

/// The device item's attribute naming the claim's holder.
pub const CLAIM_HOLDER: &str = "issuanceClaimHolder";
/// The device item's attribute holding when the claim lapses (Unix seconds).
pub const CLAIM_EXPIRES_AT: &str = "issuanceClaimExpiresAt";
/// The device item's map of its recent certificates (id → `issuedAt`).
pub const RECENT_CERTIFICATES: &str = "recentCertificates";

/// How many times a take that was refused, then found the claim free on reading, is tried
/// again (the holder released it in between) before answering `Held`.
const CLAIM_ATTEMPTS: u32 = 3;
/// At most this many certificates are listed on the device item (the newest), whatever
/// the rate limit: the item stays small.
const MAX_RECENT: usize = 64;

impl DynamoDbRegistry {
    /// Takes `device_id`'s claim for `holder` until `now + ttl_secs` (see the module
    /// docs).
    ///
    /// # Errors
    /// [`DynamoDbError::UnknownDevice`] when the device is not registered;
    /// [`DynamoDbError::Unavailable`] when throttled; any other failure.
    pub async fn take_claim(
        &self,
        device_id: &str,
        holder: &str,
        now: UnixTime,
        ttl_secs: i64,
    ) -> Result<ClaimOutcome, DynamoDbError> {
        let expires_at = now.saturating_add(ttl_secs.max(1));
        for _ in 0..CLAIM_ATTEMPTS {
            let result = self
                .client()
                .update_item()
                .table_name(&self.tables().devices)
                .key("deviceId", AttributeValue::S(device_id.to_owned()))
                .update_expression("SET #holder = :holder, #expires = :expires")
                .condition_expression(
                    "attribute_exists(deviceId) AND (attribute_not_exists(#holder) \
                     OR #expires <= :now OR #holder = :holder)",
                )
                .expression_attribute_names("#holder", CLAIM_HOLDER)
                .expression_attribute_names("#expires", CLAIM_EXPIRES_AT)
                .expression_attribute_values(":holder", AttributeValue::S(holder.to_owned()))
                .expression_attribute_values(":expires", number_value(expires_at))
                .expression_attribute_values(":now", number_value(now))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let refused = match result {
                Ok(_) => {
                    return Ok(ClaimOutcome::Claimed(IssuanceClaim {
                        device_id: device_id.to_owned(),
                        holder: holder.to_owned(),
                        expires_at,
                    }))
                }
                Err(error) => match error.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                        failed.item.clone()
                    }
                    // The holder's issuance transaction is writing the item right now.
                    Some(UpdateItemError::TransactionConflictException(_)) => {
                        return Ok(ClaimOutcome::Held { until: now + 1 })
                    }
                    _ => return Err(sdk_error("UpdateItem", error)),
                },
            };
            // DynamoDB returns the item that failed the condition; a stand-in may not.
            let item = match refused {
                Some(item) => Some(item),
                None => self.device_item(device_id).await?,
            };
            let Some(item) = item else {
                return Err(DynamoDbError::UnknownDevice(device_id.to_owned()));
            };
            match held_until(&item, device_id)? {
                Some(until) if until > now => return Ok(ClaimOutcome::Held { until }),
                // Released (or lapsed) between the write and the read: try again.
                _ => {}
            }
        }
        // Freed and taken again each time: busy, though nobody holds it for long.
        Ok(ClaimOutcome::Held { until: now + 1 })
    }

    /// Releases `claim` if its holder still holds it; otherwise does nothing.
    ///
    /// # Errors
    /// [`DynamoDbError::Unavailable`] when throttled; any other failure.
    pub async fn drop_claim(&self, claim: &IssuanceClaim) -> Result<(), DynamoDbError> {
        let mut attempt = 0;
        loop {
            match self.try_drop_claim(claim).await {
                // A claim left behind blocks the device until it lapses: worth a retry.
                Err(DynamoDbError::Unavailable { .. }) if attempt < CLAIM_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                outcome => return outcome,
            }
        }
    }

    async fn try_drop_claim(&self, claim: &IssuanceClaim) -> Result<(), DynamoDbError> {
        let result = self
            .client()
            .update_item()
            .table_name(&self.tables().devices)
            .key("deviceId", AttributeValue::S(claim.device_id.clone()))
            .update_expression("REMOVE #holder, #expires")
            .condition_expression("#holder = :holder")
            .expression_attribute_names("#holder", CLAIM_HOLDER)
            .expression_attribute_names("#expires", CLAIM_EXPIRES_AT)
            .expression_attribute_values(":holder", AttributeValue::S(claim.holder.clone()))
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
            Err(error) => Err(sdk_error("UpdateItem", error)),
        }
    }

    /// The device item, strongly consistent.
    pub(crate) async fn device_item(&self, device_id: &str) -> Result<Option<Item>, DynamoDbError> {
        let output = self
            .client()
            .get_item()
            .table_name(&self.tables().devices)
            .key("deviceId", AttributeValue::S(device_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        Ok(output.item)
    }

    /// The issuance transaction's item on the device: the device exists and `claim`'s
    /// holder still holds the claim; the claim is released and `certificate` joins the
    /// device's recent certificates (`recent`, as read under the claim, pruned to the
    /// last hour).
    pub(crate) fn release_in_transaction(
        &self,
        claim: &IssuanceClaim,
        certificate: &CertificateRecord,
        recent: &HashMap<String, UnixTime>,
        now: UnixTime,
    ) -> Result<TransactWriteItem, DynamoDbError> {
        let mut kept: Vec<(&String, UnixTime)> = recent
            .iter()
            .filter(|(id, at)| {
                **at > now - IssuanceRateLimit::WINDOW_SECS && **id != certificate.certificate_id
            })
            .map(|(id, at)| (id, *at))
            .collect();
        kept.sort_by(|a, b| (b.1, b.0).cmp(&(a.1, a.0)));
        kept.truncate(MAX_RECENT - 1);
        let mut map: HashMap<String, AttributeValue> = kept
            .into_iter()
            .map(|(id, at)| (id.clone(), number_value(at)))
            .collect();
        map.insert(
            certificate.certificate_id.clone(),
            number_value(certificate.issued_at),
        );
        let update = Update::builder()
            .table_name(&self.tables().devices)
            .key("deviceId", AttributeValue::S(claim.device_id.clone()))
            .update_expression("SET #recent = :recent REMOVE #holder, #expires")
            .condition_expression("#holder = :holder")
            .expression_attribute_names("#recent", RECENT_CERTIFICATES)
            .expression_attribute_names("#holder", CLAIM_HOLDER)
            .expression_attribute_names("#expires", CLAIM_EXPIRES_AT)
            .expression_attribute_values(":recent", AttributeValue::M(map))
            .expression_attribute_values(":holder", AttributeValue::S(claim.holder.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Why the claim check of an issuance transaction failed: the device is gone, or
    /// another holder has the claim. `returned` is the item DynamoDB returned, if any.
    pub(crate) async fn claim_failure(
        &self,
        claim: &IssuanceClaim,
        returned: Option<&Item>,
    ) -> Result<DynamoDbError, DynamoDbError> {
        let exists = match returned {
            Some(item) => !item.is_empty(),
            None => self.device_item(&claim.device_id).await?.is_some(),
        };
        Ok(if exists {
            DynamoDbError::ClaimLost(claim.device_id.clone())
        } else {
            DynamoDbError::UnknownDevice(claim.device_id.clone())
        })
    }

    /// The device's recent certificates as its item lists them (id → `issuedAt`); empty
    /// for an unknown device or an item written before the list existed.
    pub(crate) async fn recent_certificates(
        &self,
        device_id: &str,
    ) -> Result<HashMap<String, UnixTime>, DynamoDbError> {
        match self.device_item(device_id).await? {
            Some(item) => recent_of(&item, device_id),
            None => Ok(HashMap::new()),
        }
    }

    /// Makes what the `byDevice` index returned strongly consistent (see the module
    /// docs): every certificate the index reports ACTIVE or issued since `issued_since`,
    /// and every one the device item lists, read again by key; those still ACTIVE or
    /// issued since `issued_since` are kept.
    pub(crate) async fn consistent_certificates(
        &self,
        from_index: Vec<CertificateRecord>,
        recent: HashMap<String, UnixTime>,
        issued_since: UnixTime,
    ) -> Result<Vec<CertificateRecord>, DynamoDbError> {
        let mut ids: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        let mut certificates = Vec::new();
        for certificate in from_index {
            if seen.insert(certificate.certificate_id.clone()) {
                // A REVOKED (or INACTIVE) certificate never becomes ACTIVE again: only an
                // ACTIVE one may be stale.
                if certificate.status == CertificateStatus::Active {
                    ids.push(certificate.certificate_id);
                } else {
                    certificates.push(certificate);
                }
            }
        }
        ids.extend(recent.into_keys().filter(|id| seen.insert(id.clone())));
        for chunk in ids.chunks(BATCH_GET_KEYS) {
            for item in self.certificate_items(chunk).await? {
                certificates.push(certificate_from_item(&item)?);
            }
        }
        certificates
            .retain(|c| c.status == CertificateStatus::Active || c.issued_at >= issued_since);
        Ok(certificates)
    }

    /// The certificate items of `ids` (at most 100), strongly consistent; unknown ids
    /// are left out.
    async fn certificate_items(&self, ids: &[String]) -> Result<Vec<Item>, DynamoDbError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let table = &self.tables().certificates;
        let keys = ids
            .iter()
            .map(|id| HashMap::from([("certificateId".to_owned(), AttributeValue::S(id.clone()))]))
            .collect();
        let mut request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(build_error)?;
        let mut found = Vec::new();
        let mut attempt = 0;
        loop {
            let output = self
                .client()
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|e| sdk_error("BatchGetItem", e))?;
            if let Some(items) = output.responses.and_then(|mut r| r.remove(table)) {
                found.extend(items);
            }
            let Some(rest) = output
                .unprocessed_keys
                .and_then(|mut u| u.remove(table))
                .filter(|k| !k.keys().is_empty())
            else {
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
}

/// When the claim on a device item lapses, `None` when unclaimed.
fn held_until(item: &Item, device_id: &str) -> Result<Option<UnixTime>, DynamoDbError> {
    let corrupt = |e: String| corrupt_item("device", device_id, &e);
    if optional_text(item, CLAIM_HOLDER)
        .map_err(corrupt)?
        .is_none()
    {
        return Ok(None);
    }
    number(item, CLAIM_EXPIRES_AT).map(Some).map_err(corrupt)
}

/// The [`RECENT_CERTIFICATES`] map of a device item.
fn recent_of(item: &Item, device_id: &str) -> Result<HashMap<String, UnixTime>, DynamoDbError> {
    let corrupt = |e: &str| corrupt_item("device", device_id, e);
    let map = match item.get(RECENT_CERTIFICATES) {
        None | Some(AttributeValue::Null(_)) => return Ok(HashMap::new()),
        Some(AttributeValue::M(map)) => map,
        Some(_) => {
            return Err(corrupt(&format!(
                "attribute {RECENT_CERTIFICATES} is not a map"
            )))
        }
    };
    map.iter()
        .map(|(id, at)| match at {
            AttributeValue::N(n) => n
                .parse()
                .map(|at| (id.clone(), at))
                .map_err(|_| corrupt(&format!("{RECENT_CERTIFICATES}.{id} is not a time"))),
            _ => Err(corrupt(&format!(
                "{RECENT_CERTIFICATES}.{id} is not a number"
            ))),
        })
        .collect()
}
