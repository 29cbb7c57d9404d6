//! What the admin API reads and changes in the DynamoDB registry: pages of devices,
//! certificates and audit events, a device enabled or disabled, a certificate revoked,
//! and the decisions per hour. `AwsFleet` (the AWS [`FleetAdmin`](provisioner_app::fleet::FleetAdmin))
//! calls these; the tables are those of [`super::dynamodb`] (see its module docs).
//!
//! # Pages
//!
//! Every list returns at most `limit` items and, only when at least one more matched, an
//! opaque `next` key to pass back as `after`. To know that, a list reads until it has
//! `limit + 1` matching items or the table (or the audit window) ends: with a filter
//! that few items match, one page may read far into the table (DynamoDB evaluates a
//! filter after reading, and bills what it read). Each request reads at most
//! [`DynamoDbRegistry::with_page_size`] items when that is set; otherwise exactly what
//! an unfiltered list needs, or DynamoDB's 1 MB pages when a filter applies.
//!
//! The `next` keys (what `AwsFleet` wraps in the API's cursor):
//!
//! | list | `next` | resumes with `ExclusiveStartKey` |
//! |---|---|---|
//! | devices | the last `deviceId` | `{deviceId}` |
//! | certificates of one device | `issuedAt:certificateId` | `{deviceId, issuedAt, certificateId}` on [`BY_DEVICE_INDEX`] |
//! | certificates, any device | the last `certificateId` | `{certificateId}` |
//! | audit | `day/eventId` | `{day, eventId}`, then the days before |
//! | audit of one device | `day/eventId` | `{deviceId, day, eventId}` on [`AUDIT_BY_DEVICE_INDEX`] |
//!
//! A key stays valid while the item it names is deleted: DynamoDB resumes after the
//! position, not the item. An `after` that is not such a key is a [`bad_cursor`]
//! ([`is_bad_cursor`] tells it from DynamoDB's failures).
//!
//! # Order and consistency
//!
//! - Devices, and certificates without a device, come in the table's order (by hash of
//!   the key): not alphabetical, and not by time. moto happens to return them sorted by
//!   key; real DynamoDB does not.
//! - A device's certificates and the audit events come newest first.
//! - The table reads (devices, certificates without a device, audit without a device,
//!   single items) are strongly consistent, so a device just disabled or a certificate
//!   just revoked shows as such. A device's certificates come from the certificates
//!   table's `byDevice` index, and a device's audit events from the audit table's
//!   [`AUDIT_BY_DEVICE_INDEX`]; both are only eventually consistent: a certificate issued
//!   or revoked a moment ago may show its state of a moment ago, and an event recorded a
//!   moment ago (typically well under a second) may be missing from its device's list.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use provisioner_core::{CertificateRecord, CertificateStatus, RevocationReason, UnixTime};
use time::{Date, OffsetDateTime};
use tokio::task::JoinSet;

use super::dynamodb::{
    audit_event_from_item, boolean, certificate_from_item, corrupt_item, day_text, number,
    number_value, optional_text, sdk_error, status_name, stored_key, text, DynamoDbError,
    DynamoDbRegistry, Item, AUDIT_BY_DEVICE_INDEX, BY_DEVICE_INDEX,
};
use provisioner_app::fleet::{
    AuditQuery, CertificateQuery, DeviceQuery, DeviceRecord, HourlyDecisions, Listed, LoggedEvent,
};

/// How many UTC days back from today the audit list of every device reads (today
/// included), and how many days before `until` the decisions per hour count. Older events
/// stay in the table (until a TTL or an export removes them); the admin API shows them
/// only in one device's list, which has no window (it reads an index by device).
pub const AUDIT_LOOKBACK_DAYS: u32 = 400;

/// At most this many audit days are read at once while the audit list walks back.
const MAX_AUDIT_DAYS_AT_ONCE: usize = 32;

/// At most this many days are counted at once by the decisions per hour.
const MAX_COUNTED_DAYS_AT_ONCE: usize = 8;

/// DynamoDB's largest partition key (bytes): no item has a longer one.
const MAX_PARTITION_KEY_BYTES: usize = 2048;

/// The `operation` of the [`DynamoDbError::Sdk`] that [`bad_cursor`] returns.
const CURSOR_OPERATION: &str = "reading a page cursor";

/// The failure for an `after` this registry did not hand out as `next`; [`is_bad_cursor`]
/// recognises it, so that the admin API can answer it 400 `invalid_cursor`.
///
/// `DynamoDbError` has no variant for a bad request, so this is an [`DynamoDbError::Sdk`]
/// with operation `reading a page cursor`. Only a cursor forged or mangled by the caller
/// gets here: every `next` a list returns reads back.
pub fn bad_cursor(list: &str, cursor: &str) -> DynamoDbError {
    DynamoDbError::Sdk {
        operation: CURSOR_OPERATION,
        message: format!("{cursor:?} is not a page key of the {list} list"),
    }
}

/// Whether `error` is a [`bad_cursor`]: the caller's mistake, not DynamoDB's failure.
pub fn is_bad_cursor(error: &DynamoDbError) -> bool {
    matches!(error, DynamoDbError::Sdk { operation, .. } if *operation == CURSOR_OPERATION)
}

/// A filter expression being put together, with its names and values.
#[derive(Debug, Default)]
struct Filter {
    conditions: Vec<&'static str>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Filter {
    fn when(&mut self, condition: &'static str, placeholder: &str, value: AttributeValue) {
        self.conditions.push(condition);
        self.values.insert(placeholder.to_owned(), value);
    }

    fn filtered(&self) -> bool {
        !self.conditions.is_empty()
    }

    fn expression(&self) -> Option<String> {
        self.filtered().then(|| self.conditions.join(" AND "))
    }

    // DynamoDB refuses empty name and value maps: leave them out instead.
    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

impl DynamoDbRegistry {
    // --- devices --------------------------------------------------------------

    /// One page of devices: a strongly consistent `Scan` of the devices table, filtered
    /// with `begins_with(deviceId, :prefix)` and `enabled = :enabled` as `query` asks,
    /// from `query.after`, until `limit + 1` devices matched or the table ended (see the
    /// module docs). In the table's (hash) order, not by id; `next` is the last device's
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

    // --- certificates ---------------------------------------------------------

    /// One page of certificates, filtered by `status` (stored as `ACTIVE`, `INACTIVE`,
    /// `REVOKED`) and `issuer` as `query` asks.
    ///
    /// - With `device_id`: a `Query` of the [`BY_DEVICE_INDEX`] index, newest first
    ///   (`ScanIndexForward` false; by issue time), the filters as a `FilterExpression`.
    ///   The index is eventually consistent (see the module docs). `next` is
    ///   `issuedAt:certificateId`.
    /// - Without: a strongly consistent `Scan` of the table with the filters, in the
    ///   table's (hash) order, not by time. `next` is the last certificate id.
    ///
    /// Either reads until `limit + 1` matched or the end (see the module docs).
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

    // --- audit ----------------------------------------------------------------

    /// One page of audit events, newest first, with their `eventId` as
    /// [`LoggedEvent::id`]. `next` is `day/eventId`.
    ///
    /// - With `device_id`: a `Query` of [`AUDIT_BY_DEVICE_INDEX`] with `ScanIndexForward`
    ///   false (event ids sort by time), page after page until `limit + 1` events were
    ///   read or the device has no more: a first page of 50 is one request, reading only
    ///   that device's events, however old (no [`AUDIT_LOOKBACK_DAYS`] window). The index
    ///   is eventually consistent (see the module docs).
    /// - Without: from `now`'s UTC day (or `query.after`'s) back day by day, each day a
    ///   strongly consistent `Query` of its partition with `ScanIndexForward` false, until
    ///   `limit + 1` events were read or [`AUDIT_LOOKBACK_DAYS`] days (today included)
    ///   were. Several days are read at once (1, 2, 4, ... up to 32) once the first ones
    ///   do not fill the page, so a sparse log costs tens of round trips, not hundreds.
    ///
    /// # Errors
    /// [`DynamoDbError::TimeOutOfRange`] for a `now` past year 9999;
    /// [`DynamoDbError::Corrupt`] for an item that is not an event;
    /// [`DynamoDbError::Unavailable`] when throttled; [`bad_cursor`] for an `after` that
    /// is no `day/eventId`; any other failure (such as an audit table without the index:
    /// [`DynamoDbRegistry::create_tables`] adds it).
    pub async fn list_audit(
        &self,
        query: &AuditQuery,
        now: UnixTime,
    ) -> Result<Listed<LoggedEvent>, DynamoDbError> {
        if query.limit == 0 {
            return Ok(empty());
        }
        if let Some(device_id) = query.device_id.as_deref() {
            return self.list_audit_of_device(device_id, query).await;
        }
        let today = date_of(now)?;
        let oldest = days_before(today, AUDIT_LOOKBACK_DAYS - 1);
        let (mut day, mut resume) = match query.after.as_deref() {
            None => (Some(today), None),
            Some(after) => {
                let (day, event_id) =
                    audit_position(after).ok_or_else(|| bad_cursor("audit", after))?;
                (Some(day), Some(event_id.to_owned()))
            }
        };
        let wanted = wanted(query.limit);
        let mut rows: Vec<(String, LoggedEvent)> = Vec::new();
        let mut at_once = 1;
        'walk: while rows.len() < wanted {
            // The next days to read, newest first.
            let mut days = Vec::new();
            while days.len() < at_once {
                match day {
                    Some(d) if d >= oldest => {
                        days.push(day_text(d));
                        day = d.previous_day();
                    }
                    _ => break,
                }
            }
            if days.is_empty() {
                break;
            }
            let limit = self.read_limit(false, wanted - rows.len());
            let mut reads = JoinSet::new();
            for (index, day) in days.iter().enumerate() {
                let start = resume.take().map(|event_id| audit_key(day, event_id));
                let request = self
                    .audit_day(day)
                    .set_limit(limit)
                    .set_exclusive_start_key(start);
                reads.spawn(async move {
                    (
                        index,
                        request.send().await.map_err(|e| sdk_error("Query", e)),
                    )
                });
            }
            let mut first_pages: Vec<Option<QueryOutput>> = days.iter().map(|_| None).collect();
            while let Some(read) = reads.join_next().await {
                let (index, page) = read.map_err(|e| DynamoDbError::Sdk {
                    operation: "Query",
                    message: format!("the read task failed: {e}"),
                })?;
                if let Some(slot) = first_pages.get_mut(index) {
                    *slot = Some(page?);
                }
            }
            for (day, first_page) in days.iter().zip(first_pages) {
                let mut page = first_page.ok_or_else(|| DynamoDbError::Sdk {
                    operation: "Query",
                    message: format!("no answer for day {day}"),
                })?;
                loop {
                    for item in page.items() {
                        let event = audit_event_from_item(item)?;
                        let id = text(item, "eventId").map_err(DynamoDbError::Corrupt)?;
                        rows.push((day.clone(), LoggedEvent { id, event }));
                    }
                    if rows.len() >= wanted {
                        break 'walk;
                    }
                    match page.last_evaluated_key {
                        Some(key) if !key.is_empty() => {
                            page = self
                                .audit_day(day)
                                .set_limit(self.read_limit(false, wanted - rows.len()))
                                .set_exclusive_start_key(Some(key))
                                .send()
                                .await
                                .map_err(|e| sdk_error("Query", e))?;
                        }
                        _ => break,
                    }
                }
            }
            at_once = (at_once * 2).min(MAX_AUDIT_DAYS_AT_ONCE);
        }
        let page = Listed::cut(rows, query.limit, |(day, event)| {
            format!("{day}/{}", event.id)
        });
        Ok(Listed {
            items: page.items.into_iter().map(|(_, event)| event).collect(),
            next: page.next,
        })
    }

    /// [`Self::list_audit`] of one device: its index, newest first, from `query.after`.
    async fn list_audit_of_device(
        &self,
        device_id: &str,
        query: &AuditQuery,
    ) -> Result<Listed<LoggedEvent>, DynamoDbError> {
        let start = query
            .after
            .as_deref()
            .map(|after| {
                audit_position(after)
                    .map(|(day, event_id)| {
                        let mut key = audit_key(&day_text(day), event_id.to_owned());
                        key.insert("deviceId".into(), AttributeValue::S(device_id.to_owned()));
                        key
                    })
                    .ok_or_else(|| bad_cursor("device's audit", after))
            })
            .transpose()?;
        // No event has such a device id (DynamoDB would refuse the key).
        if !storable_key(device_id) {
            return Ok(empty());
        }
        // No ConsistentRead: a global secondary index has none.
        let request = self
            .client()
            .query()
            .table_name(&self.tables().audit)
            .index_name(AUDIT_BY_DEVICE_INDEX)
            .key_condition_expression("deviceId = :device")
            .expression_attribute_values(":device", AttributeValue::S(device_id.to_owned()))
            .scan_index_forward(false);
        let items = self
            .query_until(request, start, wanted(query.limit), false)
            .await?;
        let rows = items
            .iter()
            .map(|item| {
                let event = audit_event_from_item(item)?;
                let id = text(item, "eventId").map_err(DynamoDbError::Corrupt)?;
                let day = text(item, "day").map_err(|e| corrupt_item("audit event", &id, &e))?;
                Ok((day, LoggedEvent { id, event }))
            })
            .collect::<Result<Vec<_>, DynamoDbError>>()?;
        let page = Listed::cut(rows, query.limit, |(day, event)| {
            format!("{day}/{}", event.id)
        });
        Ok(Listed {
            items: page.items.into_iter().map(|(_, event)| event).collect(),
            next: page.next,
        })
    }

    /// Allow and deny decisions per hour (its start, a multiple of 3600) for the events
    /// at or after `since` and before `until`, oldest hour first; hours without events
    /// are left out. Reads whole UTC days ([`DynamoDbRegistry::audit_events_on`], up to
    /// 8 days at once): those that overlap the range, at most the [`AUDIT_LOOKBACK_DAYS`]
    /// days up to `until` (hours before them are not counted).
    ///
    /// # Errors
    /// [`DynamoDbError::TimeOutOfRange`] for a time past year 9999;
    /// [`DynamoDbError::Corrupt`] for an item that is not an event;
    /// [`DynamoDbError::Unavailable`] when throttled; any other failure.
    pub async fn decisions_per_hour(
        &self,
        since: UnixTime,
        until: UnixTime,
    ) -> Result<Vec<HourlyDecisions>, DynamoDbError> {
        if since >= until {
            return Ok(Vec::new());
        }
        let last = date_of(until - 1)?;
        let first = date_of(since)?.max(days_before(last, AUDIT_LOOKBACK_DAYS - 1));
        let mut days = Vec::new();
        let mut day = Some(first);
        while let Some(d) = day.filter(|d| *d <= last) {
            days.push(d);
            day = d.next_day();
        }
        let mut hours: BTreeMap<UnixTime, (u64, u64)> = BTreeMap::new();
        for chunk in days.chunks(MAX_COUNTED_DAYS_AT_ONCE) {
            let mut reads = JoinSet::new();
            for &day in chunk {
                let registry = self.clone();
                reads.spawn(async move { registry.audit_events_on(day).await });
            }
            while let Some(read) = reads.join_next().await {
                let events = read.map_err(|e| DynamoDbError::Sdk {
                    operation: "Query",
                    message: format!("the read task failed: {e}"),
                })??;
                for event in events.iter().filter(|e| since <= e.at && e.at < until) {
                    let counts = hours
                        .entry(event.at - event.at.rem_euclid(3600))
                        .or_default();
                    match event.decision {
                        "allow" => counts.0 += 1,
                        _ => counts.1 += 1,
                    }
                }
            }
        }
        Ok(hours
            .into_iter()
            .map(|(hour, (allow, deny))| HourlyDecisions { hour, allow, deny })
            .collect())
    }

    // --- reads ----------------------------------------------------------------

    /// DynamoDB's `Limit` for one request that still needs `wanted` matching items.
    fn read_limit(&self, filtered: bool, wanted: usize) -> Option<i32> {
        match self.page_size {
            Some(items) => Some(items),
            // A filter may drop any of them: read whole (1 MB) pages.
            None if filtered => None,
            None => Some(i32::try_from(wanted).unwrap_or(i32::MAX).max(1)),
        }
    }

    /// The items `request` yields from `start`, page after page, until `wanted` were
    /// read or the table ended (a filtered page may hold few or none).
    async fn scan_until(
        &self,
        request: ScanFluentBuilder,
        start: Option<Item>,
        wanted: usize,
        filtered: bool,
    ) -> Result<Vec<Item>, DynamoDbError> {
        self.read_until(start, wanted, filtered, |start, limit| {
            let page = request
                .clone()
                .set_limit(limit)
                .set_exclusive_start_key(start);
            async move {
                let page = page.send().await.map_err(|e| sdk_error("Scan", e))?;
                Ok((page.items.unwrap_or_default(), page.last_evaluated_key))
            }
        })
        .await
    }

    /// [`Self::scan_until`] for a `Query`.
    async fn query_until(
        &self,
        request: QueryFluentBuilder,
        start: Option<Item>,
        wanted: usize,
        filtered: bool,
    ) -> Result<Vec<Item>, DynamoDbError> {
        self.read_until(start, wanted, filtered, |start, limit| {
            let page = request
                .clone()
                .set_limit(limit)
                .set_exclusive_start_key(start);
            async move {
                let page = page.send().await.map_err(|e| sdk_error("Query", e))?;
                Ok((page.items.unwrap_or_default(), page.last_evaluated_key))
            }
        })
        .await
    }

    /// Reads pages with `read_page(start, limit)` (a page's items and where the next
    /// starts) until `wanted` items were read or there is no next page.
    async fn read_until<F, Fut>(
        &self,
        mut start: Option<Item>,
        wanted: usize,
        filtered: bool,
        mut read_page: F,
    ) -> Result<Vec<Item>, DynamoDbError>
    where
        F: FnMut(Option<Item>, Option<i32>) -> Fut,
        Fut: std::future::Future<Output = Result<(Vec<Item>, Option<Item>), DynamoDbError>>,
    {
        let mut items = Vec::new();
        loop {
            let limit = self.read_limit(filtered, wanted - items.len());
            let (page, next) = read_page(start.take(), limit).await?;
            items.extend(page);
            match next {
                Some(key) if !key.is_empty() && items.len() < wanted => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// A strongly consistent `Query` of one audit day, newest first.
    fn audit_day(&self, day: &str) -> QueryFluentBuilder {
        self.client()
            .query()
            .table_name(&self.tables().audit)
            .key_condition_expression("#day = :day")
            .expression_attribute_names("#day", "day")
            .expression_attribute_values(":day", AttributeValue::S(day.to_owned()))
            .scan_index_forward(false)
            .consistent_read(true)
    }
}

// ---------------------------------------------------------------------------------
// Items and keys
// ---------------------------------------------------------------------------------

fn empty<T>() -> Listed<T> {
    Listed {
        items: Vec::new(),
        next: None,
    }
}

/// Rows to read for a page of `limit`: one more, to know whether there is a next page.
fn wanted(limit: usize) -> usize {
    limit.saturating_add(1)
}

/// Whether `id` can be a partition key at all (DynamoDB refuses the request otherwise).
fn storable_key(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_PARTITION_KEY_BYTES
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

fn certificates_from(items: &[Item]) -> Result<Vec<CertificateRecord>, DynamoDbError> {
    items.iter().map(certificate_from_item).collect()
}

/// The `ExclusiveStartKey` on [`BY_DEVICE_INDEX`] of a `issuedAt:certificateId` key.
fn by_device_start(device_id: &str, after: &str) -> Option<Item> {
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

/// The day and event id of a `day/eventId` key.
fn audit_position(after: &str) -> Option<(Date, &str)> {
    let (day, event_id) = after.split_once('/')?;
    let day = Date::parse(
        day,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()?;
    (!event_id.is_empty() && event_id.len() <= 1024).then_some((day, event_id))
}

fn audit_key(day: &str, event_id: String) -> Item {
    HashMap::from([
        ("day".to_owned(), AttributeValue::S(day.to_owned())),
        ("eventId".to_owned(), AttributeValue::S(event_id)),
    ])
}

/// The UTC day of `at`.
fn date_of(at: UnixTime) -> Result<Date, DynamoDbError> {
    OffsetDateTime::from_unix_timestamp(at)
        .map(OffsetDateTime::date)
        .map_err(|_| DynamoDbError::TimeOutOfRange(at))
}

/// `days` days before `day`, or the first representable day.
fn days_before(day: Date, days: u32) -> Date {
    day.checked_sub(time::Duration::days(i64::from(days)))
        .unwrap_or(Date::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_keys_read_back_and_others_are_refused() {
        // a device's certificate key names the index position
        let start = by_device_start("dev-1", "1800000000:abc").unwrap();
        assert_eq!(start["deviceId"], AttributeValue::S("dev-1".into()));
        assert_eq!(start["issuedAt"], AttributeValue::N("1800000000".into()));
        assert_eq!(start["certificateId"], AttributeValue::S("abc".into()));
        for bad in ["abc", "x:abc", "1800000000:", ""] {
            assert!(by_device_start("dev-1", bad).is_none(), "{bad}");
        }
        // an audit key is a day and an event id
        let (day, id) = audit_position("2027-01-15/2027-01-15T08:00:00Z#ab").unwrap();
        assert_eq!(day_text(day), "2027-01-15");
        assert_eq!(id, "2027-01-15T08:00:00Z#ab");
        for bad in ["2027-01-15", "2027-13-01/x", "2027-01-15/", "yesterday/x"] {
            assert!(audit_position(bad).is_none(), "{bad}");
        }
        assert!(is_bad_cursor(&bad_cursor("audit", "x")));
        assert!(!is_bad_cursor(&DynamoDbError::Sdk {
            operation: "Query",
            message: "x".into()
        }));
        assert!(!storable_key(""));
        assert!(!storable_key(&"a".repeat(2049)));
        assert!(storable_key(&"a".repeat(2048)));
    }

    #[test]
    fn days_are_utc_and_the_lookback_is_bounded() {
        // 2027-01-15T08:00:00Z and 2027-01-15T23:59:59Z are one day
        assert_eq!(day_text(date_of(1_800_000_000).unwrap()), "2027-01-15");
        assert_eq!(day_text(date_of(1_800_057_599).unwrap()), "2027-01-15");
        assert_eq!(day_text(date_of(1_800_057_600).unwrap()), "2027-01-16");
        let today = date_of(1_800_000_000).unwrap();
        assert_eq!(
            day_text(days_before(today, AUDIT_LOOKBACK_DAYS - 1)),
            "2025-12-12"
        );
        assert!(matches!(
            date_of(i64::MAX),
            Err(DynamoDbError::TimeOutOfRange(_))
        ));
    }
}
