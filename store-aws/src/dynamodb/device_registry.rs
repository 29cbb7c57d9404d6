//! The [`DeviceRegistry`] port over the tables: strongly consistent reads by key, a
//! device's certificates from the `byDevice` index made consistent with the device item,
//! the issuance claim (`crate::dynamodb_claim`) and the issuance record (`issuance`).

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use provisioner_core::{
    CertificateRecord, ClaimOutcome, Device, DeviceRegistry, IssuanceClaim, PortError, UnixTime,
};

use super::{
    boolean, certificate_from_item, corrupt_item, number_value, sdk_error, stored_key, text,
    DynamoDbError, DynamoDbRegistry, Item, BY_DEVICE_INDEX,
};

impl DynamoDbRegistry {
    /// Every item a query yields, following `LastEvaluatedKey` page after page.
    pub(super) async fn query_all(
        &self,
        query: QueryFluentBuilder,
    ) -> Result<Vec<Item>, DynamoDbError> {
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

    /// The certificate item `certificate_id` (a strongly consistent `GetItem`).
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
}

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
    /// certificates and a `BatchGetItem` (see [`crate::dynamodb_claim`]). Ordered by issue
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

    /// One conditional `UpdateItem` of the device item ([`crate::dynamodb_claim`]).
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
    /// [module docs](super)): returns once DynamoDB has committed it.
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
