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
//!
//! # Where it is
//!
//! - `devices`: the devices list, one device, enabling and disabling.
//! - `certificates`: the certificates lists and the admin's revocation.
//! - `audit`: the audit lists and the decisions per hour.
//! - here: the page keys' failure ([`bad_cursor`]), filters, and the reads page by page.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use provisioner_app::fleet::Listed;

use super::dynamodb::{sdk_error, DynamoDbError, DynamoDbRegistry, Item};
#[cfg(doc)]
use super::dynamodb::{AUDIT_BY_DEVICE_INDEX, BY_DEVICE_INDEX};

mod audit;
mod certificates;
mod devices;

/// How many UTC days back from today the audit list of every device reads (today
/// included), and how many days before `until` the decisions per hour count. Older events
/// stay in the table (until a TTL or an export removes them); the admin API shows them
/// only in one device's list, which has no window (it reads an index by device).
pub const AUDIT_LOOKBACK_DAYS: u32 = 400;

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
}

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

#[cfg(test)]
mod tests {
    use super::audit::audit_position;
    use super::certificates::by_device_start;
    use super::*;
    use crate::dynamodb::day_text;

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
}
