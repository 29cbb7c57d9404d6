//! The audit log: the [`AuditLog`] port (an event per item, keyed by its UTC day and a
//! time-ordered event id), the events of one day, and the audit item.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use provisioner_core::{AuditEvent, AuditLog, PortError};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{
    corrupt_item, number, number_value, optional_text, sdk_error, text, DynamoDbError,
    DynamoDbRegistry, Item,
};

impl DynamoDbRegistry {
    /// The audit events of one UTC day, oldest first (a paginated `Query`).
    ///
    /// # Errors
    /// [`DynamoDbError::Corrupt`] for an item that is not an event;
    /// [`DynamoDbError::Unavailable`] when throttled; any other failure.
    pub async fn audit_events_on(&self, day: time::Date) -> Result<Vec<AuditEvent>, DynamoDbError> {
        let query = self
            .client
            .query()
            .table_name(&self.tables.audit)
            .key_condition_expression("#day = :day")
            .expression_attribute_names("#day", "day")
            .expression_attribute_values(":day", AttributeValue::S(day_text(day)));
        self.query_all(query)
            .await?
            .iter()
            .map(audit_event_from_item)
            .collect()
    }
}

impl AuditLog for DynamoDbRegistry {
    /// A `PutItem` into the event's UTC day; returns once DynamoDB has stored it.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when throttled; [`PortError::Internal`] otherwise.
    async fn record(&self, event: AuditEvent) -> Result<(), PortError> {
        let item = audit_item(&event)?;
        self.client
            .put_item()
            .table_name(&self.tables.audit)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(eventId)")
            .send()
            .await
            .map_err(|e| sdk_error("PutItem", e))?;
        Ok(())
    }
}

fn audit_item(event: &AuditEvent) -> Result<Item, DynamoDbError> {
    let at = OffsetDateTime::from_unix_timestamp(event.at)
        .map_err(|_| DynamoDbError::TimeOutOfRange(event.at))?;
    let at_text = at
        .format(&Rfc3339)
        .map_err(|_| DynamoDbError::TimeOutOfRange(event.at))?;
    let unique: u128 = rand::random();
    let mut item = HashMap::from([
        ("day".to_owned(), AttributeValue::S(day_text(at.date()))),
        (
            "eventId".to_owned(),
            AttributeValue::S(format!("{at_text}#{unique:032x}")),
        ),
        ("at".to_owned(), number_value(event.at)),
        (
            "decision".to_owned(),
            AttributeValue::S(event.decision.to_owned()),
        ),
        ("code".to_owned(), AttributeValue::S(event.code.clone())),
    ]);
    for (name, value) in [
        ("deviceId", &event.device_id),
        ("remoteAddr", &event.remote_addr),
        ("fingerprint", &event.fingerprint),
        ("certificateId", &event.certificate_id),
    ] {
        // `deviceId` is a key of the audit index, which refuses an empty string (the whole
        // write would fail): an empty device id is stored as none.
        if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
            item.insert(name.to_owned(), AttributeValue::S(value.clone()));
        }
    }
    Ok(item)
}

/// Reads an audit item.
pub(crate) fn audit_event_from_item(item: &Item) -> Result<AuditEvent, DynamoDbError> {
    let read = || -> Result<AuditEvent, String> {
        let decision = match text(item, "decision")?.as_str() {
            "allow" => "allow",
            "deny" => "deny",
            other => return Err(format!("unknown decision {other:?}")),
        };
        Ok(AuditEvent {
            at: number(item, "at")?,
            device_id: optional_text(item, "deviceId")?,
            decision,
            code: text(item, "code")?,
            remote_addr: optional_text(item, "remoteAddr")?,
            fingerprint: optional_text(item, "fingerprint")?,
            certificate_id: optional_text(item, "certificateId")?,
        })
    };
    read().map_err(|e| {
        let id = optional_text(item, "eventId")
            .ok()
            .flatten()
            .unwrap_or_default();
        corrupt_item("audit event", &id, &e)
    })
}

/// The audit table's `day` of `day`: `YYYY-MM-DD`.
pub(crate) fn day_text(day: time::Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_items_are_keyed_by_utc_day_and_time_ordered_event_ids() {
        // given an event at 2027-01-15T08:00:00Z
        let event = AuditEvent {
            at: 1_800_000_000,
            device_id: Some("dev-1".into()),
            decision: "deny",
            code: "unknown_device".into(),
            remote_addr: None,
            fingerprint: None,
            certificate_id: None,
        };
        // when it becomes an item, and back
        let item = audit_item(&event).unwrap();
        // then its day and event id carry its time, and nothing is lost
        assert_eq!(item["day"], AttributeValue::S("2027-01-15".into()));
        let AttributeValue::S(id) = &item["eventId"] else {
            panic!("eventId is a string")
        };
        assert!(id.starts_with("2027-01-15T08:00:00Z#"), "{id}");
        assert_eq!(id.len(), "2027-01-15T08:00:00Z#".len() + 32);
        assert!(!item.contains_key("remoteAddr"));
        assert_eq!(audit_event_from_item(&item).unwrap(), event);
    }

    #[test]
    fn an_empty_device_id_stays_out_of_the_audit_index_key() {
        // given an event whose device id is empty (the index refuses an empty key)
        let event = AuditEvent {
            at: 1_800_000_000,
            device_id: Some(String::new()),
            decision: "deny",
            code: "forbidden_origin".into(),
            remote_addr: Some(String::new()),
            fingerprint: None,
            certificate_id: None,
        };
        // when it becomes an item
        let item = audit_item(&event).unwrap();
        // then it has no deviceId (so the write is not refused), and reads back as none
        assert!(!item.contains_key("deviceId"));
        assert_eq!(audit_event_from_item(&item).unwrap().device_id, None);
    }
}
