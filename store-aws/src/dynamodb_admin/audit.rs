//! The admin's audit events: a page of them (of one device from its index, or of every
//! device day by day back from today), and the decisions per hour.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use provisioner_app::fleet::{AuditQuery, HourlyDecisions, Listed, LoggedEvent};
use provisioner_core::UnixTime;
use time::{Date, OffsetDateTime};
use tokio::task::JoinSet;

use super::{bad_cursor, empty, storable_key, wanted, AUDIT_LOOKBACK_DAYS};
use crate::dynamodb::{
    audit_event_from_item, corrupt_item, day_text, sdk_error, text, DynamoDbError,
    DynamoDbRegistry, Item, AUDIT_BY_DEVICE_INDEX,
};

/// At most this many audit days are read at once while the audit list walks back.
const MAX_AUDIT_DAYS_AT_ONCE: usize = 32;

/// At most this many days are counted at once by the decisions per hour.
const MAX_COUNTED_DAYS_AT_ONCE: usize = 8;

impl DynamoDbRegistry {
    /// One page of audit events, newest first, with their `eventId` as
    /// [`LoggedEvent::id`]. `next` is `day/eventId`.
    ///
    /// - With `device_id`: a `Query` of [`AUDIT_BY_DEVICE_INDEX`] with `ScanIndexForward`
    ///   false (event ids sort by time), page after page until `limit + 1` events were
    ///   read or the device has no more: a first page of 50 is one request, reading only
    ///   that device's events, however old (no [`AUDIT_LOOKBACK_DAYS`] window). The index
    ///   is eventually consistent (see the [module docs](super)).
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

/// The day and event id of a `day/eventId` key.
pub(super) fn audit_position(after: &str) -> Option<(Date, &str)> {
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
