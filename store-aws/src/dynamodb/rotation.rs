//! What the CA rotation (`crate::ca`) reads and changes in the certificates table: the
//! ACTIVE certificates of one issuer, page by page, counted, and revoked.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use provisioner_core::{CertificateRecord, RevocationReason, UnixTime};

use super::{certificate_from_item, number_value, sdk_error, DynamoDbError, DynamoDbRegistry};

impl DynamoDbRegistry {
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
}
