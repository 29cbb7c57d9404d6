//! The DynamoDB registry against moto's server: the real SDK and wire protocol.
//!
//! Run by `scripts/test-aws.sh`, which starts moto on 127.0.0.1 and sets
//! `AWS_ENDPOINT_URL`, dummy credentials and `AWS_REGION`. Each test creates its own
//! tables under a random prefix, so the tests run in parallel.

use aws_sdk_dynamodb::types::{AttributeValue, BillingMode, KeyType};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use provisioner_core::{
    AuditEvent, AuditLog, CertificateRecord, CertificateStatus, ClaimOutcome, Curve, DeviceKey,
    DeviceRegistry, IssuanceClaim, ManifestReader, ManifestRecord, PortError, RevocationReason,
    UnixTime,
};
use provisioner_store_aws::dynamodb::{
    DynamoDbRegistry, DynamoDbTables, ImportItem, ImportOptions, ImportSummary, BY_DEVICE_INDEX,
};

#[path = "dynamodb_registry/claims.rs"]
mod claims;
#[path = "dynamodb_registry/contract.rs"]
mod contract;
use provisioner_testkit::moto::endpoint;
use provisioner_testkit::registry_contract;

const NOW: i64 = 1_800_000_000;

/// The `n`th test key: (n + 1)·G on P-256, the same for every run.
fn key(n: u64) -> DeviceKey {
    let mut scalar = [0u8; 32];
    scalar[24..].copy_from_slice(&(n + 1).to_be_bytes());
    let secret = p256::SecretKey::from_slice(&scalar).unwrap();
    let point = secret.public_key().to_encoded_point(false);
    DeviceKey::from_sec1(Curve::P256, point.as_bytes()).unwrap()
}

/// A registry over fresh tables of its own.
async fn registry() -> DynamoDbRegistry {
    let registry = unprepared_registry().await;
    registry.create_tables().await.unwrap();
    registry
}

async fn unprepared_registry() -> DynamoDbRegistry {
    endpoint();
    let prefix = format!("test-{:016x}-", rand::random::<u64>());
    DynamoDbRegistry::from_env(DynamoDbTables::with_prefix(&prefix)).await
}

fn options() -> ImportOptions {
    ImportOptions {
        now: NOW,
        ..ImportOptions::default()
    }
}

fn record(device_id: &str, key: &DeviceKey, line: usize) -> ManifestRecord {
    ManifestRecord {
        device_id: device_id.into(),
        public_key: key.clone(),
        line,
    }
}

async fn import(
    registry: &DynamoDbRegistry,
    source: &str,
    records: Vec<ManifestRecord>,
    options: ImportOptions,
) -> ImportSummary {
    let items = records.into_iter().map(|r| ImportItem {
        source,
        entry: Ok(r),
    });
    registry.import(items, &options).await.unwrap()
}

/// A registry with devices `dev-0` .. `dev-{n-1}`, keys `key(0)` ...
async fn registry_with_devices(n: u64) -> DynamoDbRegistry {
    let registry = registry().await;
    let records = (0..n)
        .map(|i| record(&format!("dev-{i}"), &key(i), i as usize + 1))
        .collect();
    let summary = import(&registry, "m.csv", records, options()).await;
    assert_eq!(summary.imported, n);
    registry
}

fn certificate(id: &str, device_id: &str, issued_at: i64) -> CertificateRecord {
    CertificateRecord {
        certificate_id: id.into(),
        device_id: device_id.into(),
        serial: format!("{issued_at:x}"),
        issuer: "ca-1".into(),
        public_key: key(0),
        issued_at,
        not_before: issued_at - 300,
        not_after: issued_at + 86_400,
        status: CertificateStatus::Active,
        revoked: None,
        certificate_pem: format!("-----BEGIN CERTIFICATE-----\n{id}\n-----END CERTIFICATE-----\n"),
    }
}

async fn status(
    registry: &DynamoDbRegistry,
    id: &str,
) -> (CertificateStatus, Option<(UnixTime, RevocationReason)>) {
    let c = registry.certificate(id).await.unwrap().expect(id);
    (c.status, c.revoked)
}

async fn ids_of(registry: &DynamoDbRegistry, device_id: &str, since: UnixTime) -> Vec<String> {
    registry
        .certificates_of(device_id, since)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.certificate_id)
        .collect()
}

const ACTIVE: (CertificateStatus, Option<(UnixTime, RevocationReason)>) =
    (CertificateStatus::Active, None);

/// A holder name of its own, as the flow makes one per request.
fn holder() -> String {
    format!("holder-{:016x}", rand::random::<u64>())
}

/// `device_id`'s claim for a new holder; the test fails if another holds it.
async fn claim(registry: &DynamoDbRegistry, device_id: &str, now: UnixTime) -> IssuanceClaim {
    match registry
        .claim_issuance(device_id, &holder(), now, 30)
        .await
        .unwrap()
    {
        ClaimOutcome::Claimed(claim) => claim,
        held => panic!("{device_id} is held: {held:?}"),
    }
}

/// Records `certificate` as the flow does: under its device's claim, taken just before.
async fn issue(
    registry: &DynamoDbRegistry,
    certificate: CertificateRecord,
    supersede: Vec<String>,
    now: UnixTime,
) -> Result<(), PortError> {
    let claim = claim(registry, &certificate.device_id, now).await;
    registry
        .record_issuance(certificate, supersede, &claim, now)
        .await
}

// --- tables ---------------------------------------------------------------------

#[tokio::test]
async fn create_tables_makes_on_demand_tables_with_the_by_device_index_and_is_repeatable() {
    // given fresh tables
    let registry = registry().await;
    // when they are created again
    registry.create_tables().await.unwrap();
    // then the certificates table is on demand, keyed by id, indexed by device and time
    let table = registry
        .client()
        .describe_table()
        .table_name(&registry.tables().certificates)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert_eq!(
        table.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    let index = &table.global_secondary_indexes()[0];
    assert_eq!(index.index_name(), Some(BY_DEVICE_INDEX));
    let keys: Vec<_> = index
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().clone()))
        .collect();
    assert_eq!(
        keys,
        vec![("deviceId", KeyType::Hash), ("issuedAt", KeyType::Range)]
    );
    // and the audit table is keyed by day and event id
    let audit = registry
        .client()
        .describe_table()
        .table_name(&registry.tables().audit)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let keys: Vec<_> = audit
        .key_schema()
        .iter()
        .map(|k| k.attribute_name())
        .collect();
    assert_eq!(keys, vec!["day", "eventId"]);
}

#[tokio::test]
async fn missing_tables_are_an_internal_error_that_names_the_failure_not_the_credentials() {
    // given a registry whose tables were never created
    let registry = unprepared_registry().await;
    // when a device is looked up
    let error = registry.device("dev-1").await.unwrap_err();
    // then it is an internal error with the SDK's reason, and no secret
    let PortError::Internal(message) = error else {
        panic!("expected Internal, got {error:?}")
    };
    assert!(message.contains("ResourceNotFound"), "{message}");
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default();
    assert!(secret.is_empty() || !message.contains(&secret), "{message}");
}

// --- issuance ---------------------------------------------------------------------

#[tokio::test]
async fn record_issuance_records_the_new_certificate_and_revokes_the_superseded_together() {
    // given dev-0 with an ACTIVE certificate c1
    let registry = registry_with_devices(1).await;
    issue(&registry, certificate("c1", "dev-0", NOW), vec![], NOW)
        .await
        .unwrap();
    assert_eq!(status(&registry, "c1").await, ACTIVE);
    // when c2 is recorded superseding c1
    let c2 = certificate("c2", "dev-0", NOW + 10);
    issue(&registry, c2.clone(), vec!["c1".into()], NOW + 10)
        .await
        .unwrap();
    // then c2 reads back as recorded and c1 is revoked (superseded, at that time)
    assert_eq!(registry.certificate("c2").await.unwrap(), Some(c2));
    assert_eq!(
        status(&registry, "c1").await,
        (
            CertificateStatus::Revoked,
            Some((NOW + 10, RevocationReason::Superseded))
        )
    );
    assert_eq!(registry.certificate("nope").await.unwrap(), None);
}

#[tokio::test]
async fn a_certificate_id_recorded_for_another_device_fails_and_supersedes_nothing() {
    // given x recorded for dev-1, and dev-0 with an ACTIVE c1
    let registry = registry_with_devices(2).await;
    issue(&registry, certificate("x", "dev-1", NOW), vec![], NOW)
        .await
        .unwrap();
    issue(&registry, certificate("c1", "dev-0", NOW), vec![], NOW)
        .await
        .unwrap();
    // when x is recorded for dev-0, superseding c1
    let error = issue(
        &registry,
        certificate("x", "dev-0", NOW + 10),
        vec!["c1".into()],
        NOW + 10,
    )
    .await
    .unwrap_err();
    // then the transaction fails as a whole: c1 stays ACTIVE, x stays dev-1's
    assert!(
        matches!(&error, PortError::Internal(m) if m.contains("already recorded for device \"dev-1\"")),
        "{error:?}"
    );
    assert_eq!(status(&registry, "c1").await, ACTIVE);
    let x = registry.certificate("x").await.unwrap().unwrap();
    assert_eq!((x.device_id.as_str(), x.issued_at), ("dev-1", NOW));
}

#[tokio::test]
async fn recording_the_same_certificate_again_is_harmless_and_finishes_its_supersede() {
    // given c2 recorded for dev-0, while c1 is still ACTIVE (the revocation was lost)
    let registry = registry_with_devices(1).await;
    for id in ["c1", "c2"] {
        issue(&registry, certificate(id, "dev-0", NOW), vec![], NOW)
            .await
            .unwrap();
    }
    // when c2 is recorded again, superseding c1 (a retry)
    issue(
        &registry,
        certificate("c2", "dev-0", NOW),
        vec!["c1".into()],
        NOW + 5,
    )
    .await
    .unwrap();
    // then c2 is unchanged and c1 is revoked
    assert_eq!(status(&registry, "c2").await, ACTIVE);
    assert_eq!(
        status(&registry, "c1").await.1,
        Some((NOW + 5, RevocationReason::Superseded))
    );
}

#[tokio::test]
async fn superseded_ids_that_are_not_the_devices_active_certificates_are_skipped() {
    // given dev-1's ACTIVE y, and dev-0's r already revoked at NOW
    let registry = registry_with_devices(2).await;
    issue(&registry, certificate("y", "dev-1", NOW), vec![], NOW)
        .await
        .unwrap();
    for (id, supersede) in [("r", vec![]), ("c1", vec!["r".to_owned()])] {
        issue(&registry, certificate(id, "dev-0", NOW), supersede, NOW)
            .await
            .unwrap();
    }
    // when c2 supersedes c1 and also names y, r and an unknown id
    let supersede = ["c1", "y", "r", "unknown"].map(String::from).to_vec();
    issue(
        &registry,
        certificate("c2", "dev-0", NOW + 60),
        supersede,
        NOW + 60,
    )
    .await
    .unwrap();
    // then only c1 is revoked; y, r and the unknown id are left as they were
    assert_eq!(
        status(&registry, "c1").await.1,
        Some((NOW + 60, RevocationReason::Superseded))
    );
    assert_eq!(status(&registry, "y").await, ACTIVE);
    assert_eq!(
        status(&registry, "r").await.1,
        Some((NOW, RevocationReason::Superseded))
    );
    assert_eq!(registry.certificate("unknown").await.unwrap(), None);
    assert_eq!(status(&registry, "c2").await, ACTIVE);
}

#[tokio::test]
async fn an_issuance_for_an_unknown_device_is_refused_and_records_nothing() {
    // given no device "ghost"
    let registry = registry_with_devices(1).await;
    // when its claim is asked for, then it is refused, and no device item is made
    let error = registry
        .claim_issuance("ghost", "h", NOW, 30)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PortError::Internal(m) if m.contains("no device \"ghost\"")),
        "{error:?}"
    );
    assert_eq!(registry.device("ghost").await.unwrap(), None);
    // and a record under a made-up claim is refused and records nothing
    let claim = IssuanceClaim {
        device_id: "ghost".into(),
        holder: "h".into(),
        expires_at: NOW + 30,
    };
    let error = registry
        .record_issuance(certificate("g", "ghost", NOW), vec![], &claim, NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PortError::Internal(m) if m.contains("no device \"ghost\"")),
        "{error:?}"
    );
    assert_eq!(registry.certificate("g").await.unwrap(), None);
    assert_eq!(registry.device("ghost").await.unwrap(), None);
}

#[tokio::test]
async fn more_superseded_certificates_than_one_transaction_holds_are_all_revoked() {
    // given dev-0 with 150 ACTIVE certificates (a transaction holds 100 items)
    let registry = registry_with_devices(1).await;
    let old: Vec<String> = (0..150).map(|i| format!("old-{i:03}")).collect();
    for (i, id) in old.iter().enumerate() {
        issue(
            &registry,
            certificate(id, "dev-0", NOW + i as i64),
            vec![],
            NOW,
        )
        .await
        .unwrap();
    }
    // when a new one supersedes them all
    issue(
        &registry,
        certificate("new", "dev-0", NOW + 1000),
        old.clone(),
        NOW + 1000,
    )
    .await
    .unwrap();
    // then the new one is the only ACTIVE certificate, and each old one is revoked
    assert_eq!(ids_of(&registry, "dev-0", UnixTime::MAX).await, ["new"]);
    for id in [&old[0], &old[97], &old[98], &old[149]] {
        assert_eq!(
            status(&registry, id).await.1,
            Some((NOW + 1000, RevocationReason::Superseded)),
            "{id}"
        );
    }
}

// --- certificates_of ------------------------------------------------------------------

/// dev-0's a (1000, revoked by b), b (2000, ACTIVE), c (5000, revoked by d), d (6000).
async fn registry_with_history() -> DynamoDbRegistry {
    let registry = registry_with_devices(2).await;
    for (id, at, supersede) in [
        ("a", 1000, vec![]),
        ("b", 2000, vec!["a".to_owned()]),
        ("c", 5000, vec![]),
        ("d", 6000, vec!["c".to_owned()]),
    ] {
        issue(&registry, certificate(id, "dev-0", at), supersede, at)
            .await
            .unwrap();
    }
    // another device's certificate, which must never show up
    issue(&registry, certificate("other", "dev-1", 5500), vec![], 5500)
        .await
        .unwrap();
    registry
}

#[tokio::test]
async fn certificates_of_returns_every_active_one_and_every_recent_one() {
    let registry = registry_with_history().await;
    // ACTIVE ones, plus those issued since 4000 whatever their status
    assert_eq!(ids_of(&registry, "dev-0", 4000).await, ["b", "c", "d"]);
    // no window: only the ACTIVE ones
    assert_eq!(ids_of(&registry, "dev-0", UnixTime::MAX).await, ["b", "d"]);
    // the whole history
    assert_eq!(ids_of(&registry, "dev-0", 0).await, ["a", "b", "c", "d"]);
    assert!(ids_of(&registry, "dev-9", 0).await.is_empty());
}

#[tokio::test]
async fn certificates_of_follows_the_pages_to_the_end() {
    // given the history read two items per page
    let registry = registry_with_history().await.with_page_size(2);
    // moto honours Limit: one page of the index does not hold the history
    let page = registry
        .client()
        .query()
        .table_name(&registry.tables().certificates)
        .index_name(BY_DEVICE_INDEX)
        .key_condition_expression("deviceId = :d")
        .expression_attribute_values(":d", AttributeValue::S("dev-0".into()))
        .limit(2)
        .send()
        .await
        .unwrap();
    assert_eq!(page.items().len(), 2);
    assert!(page.last_evaluated_key().is_some());
    // then every page is read, in both queries
    assert_eq!(ids_of(&registry, "dev-0", 0).await, ["a", "b", "c", "d"]);
    assert_eq!(ids_of(&registry, "dev-0", 4000).await, ["b", "c", "d"]);
    assert_eq!(ids_of(&registry, "dev-0", UnixTime::MAX).await, ["b", "d"]);
    // and so does the device count's scan
    assert_eq!(registry.count_devices().await.unwrap(), 2);
}

// --- import ---------------------------------------------------------------------------

#[tokio::test]
async fn an_import_of_300_devices_writes_them_all_and_again_changes_nothing() {
    // given 300 devices (13 write batches, 3 read batches)
    let registry = registry().await.with_page_size(100);
    let records: Vec<_> = (0..300)
        .map(|i| record(&format!("dev-{i:03}"), &key(i), i as usize + 1))
        .collect();
    // when imported
    let summary = import(&registry, "m.csv", records.clone(), options()).await;
    // then all are new and written, and the summary says it was not atomic
    assert_eq!(
        (
            summary.imported,
            summary.unchanged,
            summary.written,
            summary.atomic
        ),
        (300, 0, true, false)
    );
    assert_eq!(registry.count_devices().await.unwrap(), 300);
    for i in [0, 24, 25, 199, 299] {
        let device = registry
            .device(&format!("dev-{i:03}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((device.public_key, device.enabled), (key(i), true));
    }
    // when imported again
    let again = import(&registry, "m.csv", records, options()).await;
    // then every device is unchanged
    assert_eq!(
        (
            again.imported,
            again.unchanged,
            again.conflicts,
            again.written
        ),
        (0, 300, 0, true)
    );
    assert_eq!(registry.count_devices().await.unwrap(), 300);
}

#[tokio::test]
async fn an_import_finishes_what_a_partial_one_left() {
    // given 60 of 100 devices already written (as a failed run leaves them)
    let registry = registry().await;
    let records: Vec<_> = (0..100)
        .map(|i| record(&format!("dev-{i:03}"), &key(i), i as usize + 1))
        .collect();
    import(&registry, "m.csv", records[..60].to_vec(), options()).await;
    // when the whole manifest is imported
    let summary = import(&registry, "m.csv", records, options()).await;
    // then the rest is written
    assert_eq!((summary.imported, summary.unchanged), (40, 60));
    assert_eq!(registry.count_devices().await.unwrap(), 100);
}

async fn stored_source(registry: &DynamoDbRegistry, device_id: &str) -> Option<String> {
    let item = registry
        .client()
        .get_item()
        .table_name(&registry.tables().devices)
        .key("deviceId", AttributeValue::S(device_id.into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    item.get("sourceManifest")
        .and_then(|v| v.as_s().ok())
        .cloned()
}

#[tokio::test]
async fn another_key_is_a_conflict_unless_replaced_and_replacing_keeps_the_device_disabled() {
    // given dev-0 registered with key 0 from a.csv, then disabled
    let registry = registry_with_devices(1).await;
    registry
        .client()
        .update_item()
        .table_name(&registry.tables().devices)
        .key("deviceId", AttributeValue::S("dev-0".into()))
        .update_expression("SET enabled = :f")
        .expression_attribute_values(":f", AttributeValue::Bool(false))
        .send()
        .await
        .unwrap();
    let listed = || vec![record("dev-0", &key(7), 3), record("dev-new", &key(8), 4)];

    // when b.csv lists it with key 7, without replace
    let refused = import(&registry, "b.csv", listed(), options()).await;
    // then the conflict refuses the whole import
    assert_eq!(
        (refused.conflicts, refused.imported, refused.written),
        (1, 1, false)
    );
    let error = &refused.errors[0];
    assert_eq!(
        (error.error.as_str(), error.line, error.device_id.as_deref()),
        ("key_conflict", 3, Some("dev-0"))
    );
    assert!(error.message.contains("(from m.csv)"), "{}", error.message);
    assert_eq!(registry.device("dev-new").await.unwrap(), None);

    // when it is a dry run with replace
    let dry = ImportOptions {
        replace: true,
        dry_run: true,
        ..options()
    };
    let dry_run = import(&registry, "b.csv", listed(), dry).await;
    // then it counts a replacement and writes nothing
    assert_eq!((dry_run.replaced, dry_run.written), (1, false));
    assert_eq!(
        registry.device("dev-0").await.unwrap().unwrap().public_key,
        key(0)
    );

    // when imported with replace
    let replace = ImportOptions {
        replace: true,
        ..options()
    };
    let replaced = import(&registry, "b.csv", listed(), replace).await;
    // then the key and source are replaced, and the device stays disabled
    assert_eq!(
        (replaced.replaced, replaced.imported, replaced.written),
        (1, 1, true)
    );
    let device = registry.device("dev-0").await.unwrap().unwrap();
    assert_eq!((device.public_key, device.enabled), (key(7), false));
    assert_eq!(
        stored_source(&registry, "dev-0").await.as_deref(),
        Some("b.csv")
    );
    assert!(registry.device("dev-new").await.unwrap().is_some());
}

#[tokio::test]
async fn a_device_listed_twice_in_one_import_is_checked_against_its_first_listing() {
    let registry = registry().await;
    let twice = || vec![record("dev-0", &key(1), 1), record("dev-0", &key(2), 2)];
    // without replace: the second key conflicts with the first
    let refused = import(&registry, "a.csv", twice(), options()).await;
    assert_eq!(
        (refused.imported, refused.conflicts, refused.written),
        (1, 1, false)
    );
    assert_eq!(registry.count_devices().await.unwrap(), 0);
    // with replace: the last key listed wins
    let replace = ImportOptions {
        replace: true,
        ..options()
    };
    let summary = import(&registry, "a.csv", twice(), replace).await;
    assert_eq!(
        (summary.imported, summary.replaced, summary.written),
        (1, 1, true)
    );
    assert_eq!(
        registry.device("dev-0").await.unwrap().unwrap().public_key,
        key(2)
    );
}

#[tokio::test]
async fn an_invalid_row_refuses_the_whole_import() {
    // given a CSV manifest with one good row and one bad key
    let registry = registry().await;
    let csv = format!("dev-1,{}\ndev-2,not-a-key\n", key(1));
    let reader = ManifestReader::new();
    let entries = reader.read(csv.as_bytes()).unwrap();
    // when imported
    let summary = registry
        .import(
            entries.map(|entry| ImportItem {
                source: "bad.csv",
                entry,
            }),
            &options(),
        )
        .await
        .unwrap();
    // then the bad row is reported and nothing is written
    assert_eq!(
        (summary.imported, summary.invalid, summary.written),
        (1, 1, false)
    );
    assert_eq!(
        (summary.errors[0].file.as_str(), summary.errors[0].line),
        ("bad.csv", 2)
    );
    assert_eq!(registry.count_devices().await.unwrap(), 0);
}

// --- audit ----------------------------------------------------------------------------

#[tokio::test]
async fn audit_events_are_stored_under_their_utc_day_in_time_order() {
    let registry = registry().await;
    let event = |at: i64, decision: &'static str, device: Option<&str>| AuditEvent {
        at,
        device_id: device.map(Into::into),
        decision,
        code: if decision == "allow" {
            "issued"
        } else {
            "unknown_device"
        }
        .into(),
        remote_addr: Some("192.0.2.7".into()),
        fingerprint: None,
        certificate_id: (decision == "allow").then(|| "c1".to_owned()),
    };
    // 2027-01-15T08:00:00Z, 08:01, and the next day
    let first = event(NOW, "allow", Some("dev-1"));
    let second = event(NOW + 60, "deny", None);
    let next_day = event(NOW + 86_400, "deny", Some("dev-2"));
    for e in [&second, &next_day, &first] {
        registry.record(e.clone()).await.unwrap();
    }
    let day = time::macros::date!(2027 - 01 - 15);
    assert_eq!(
        registry.audit_events_on(day).await.unwrap(),
        vec![first, second]
    );
    assert_eq!(
        registry
            .audit_events_on(day.next_day().unwrap())
            .await
            .unwrap(),
        vec![next_day]
    );
}

// --- what moto never does: partial batches, throttling, transaction conflicts ---------
//
// Interceptors on the SDK client alter moto's traffic: one takes part of a batch out of
// the request before it is sent and hands it back as unprocessed in the parsed response,
// as DynamoDB does under load; the other answers with a throttling or cancellation
// error on the wire, which the SDK parses as it would DynamoDB's.

mod faults {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use aws_sdk_dynamodb::config::interceptors::{
        BeforeDeserializationInterceptorContextMut, BeforeSerializationInterceptorContextMut,
        FinalizerInterceptorContextMut,
    };
    use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
    use aws_sdk_dynamodb::error::BoxError;
    use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemInput, BatchGetItemOutput};
    use aws_sdk_dynamodb::operation::batch_write_item::{
        BatchWriteItemInput, BatchWriteItemOutput,
    };
    use aws_sdk_dynamodb::types::{KeysAndAttributes, WriteRequest};
    use serde_json::Value;

    /// What the current request left out, to hand back as unprocessed.
    #[derive(Debug)]
    enum LeftOut {
        Keys(String, KeysAndAttributes),
        Items(String, Vec<WriteRequest>),
    }

    /// Leaves half of each of the first `faulty` batch reads and of the first `faulty`
    /// batch writes unprocessed, and records the calls and the largest batches seen.
    /// Requests must run one at a time (import concurrency 1).
    #[derive(Debug, Default)]
    pub struct PartialBatches {
        faulty: usize,
        pub batch_get_calls: AtomicUsize,
        pub batch_write_calls: AtomicUsize,
        pub largest_get: AtomicUsize,
        pub largest_write: AtomicUsize,
        left_out: Mutex<Option<LeftOut>>,
    }

    impl PartialBatches {
        /// Faults the first `faulty` batch reads and the first `faulty` batch writes.
        pub fn first(faulty: usize) -> Self {
            Self {
                faulty,
                ..Self::default()
            }
        }
    }

    impl Intercept for PartialBatches {
        fn name(&self) -> &'static str {
            "PartialBatches"
        }

        fn modify_before_serialization(
            &self,
            context: &mut BeforeSerializationInterceptorContextMut<'_>,
            _: &RuntimeComponents,
            _: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let input = context.input_mut();
            let left_out = if let Some(get) = input.downcast_mut::<BatchGetItemInput>() {
                let call = self.batch_get_calls.fetch_add(1, Ordering::SeqCst);
                let (table, keys) = get
                    .request_items
                    .as_mut()
                    .and_then(|tables| tables.iter_mut().next())
                    .ok_or("no RequestItems")?;
                let len = keys.keys.len();
                self.largest_get.fetch_max(len, Ordering::SeqCst);
                if call >= self.faulty || len < 2 {
                    return Ok(());
                }
                let mut rest = keys.clone();
                rest.keys = keys.keys.split_off(len / 2);
                LeftOut::Keys(table.clone(), rest)
            } else if let Some(write) = input.downcast_mut::<BatchWriteItemInput>() {
                let call = self.batch_write_calls.fetch_add(1, Ordering::SeqCst);
                let (table, requests) = write
                    .request_items
                    .as_mut()
                    .and_then(|tables| tables.iter_mut().next())
                    .ok_or("no RequestItems")?;
                let len = requests.len();
                self.largest_write.fetch_max(len, Ordering::SeqCst);
                if call >= self.faulty || len < 2 {
                    return Ok(());
                }
                LeftOut::Items(table.clone(), requests.split_off(len / 2))
            } else {
                return Ok(());
            };
            *self.left_out.lock().unwrap() = Some(left_out);
            Ok(())
        }

        fn modify_before_attempt_completion(
            &self,
            context: &mut FinalizerInterceptorContextMut<'_>,
            _: &RuntimeComponents,
            _: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let Some(left_out) = self.left_out.lock().unwrap().take() else {
                return Ok(());
            };
            let Some(Ok(output)) = context.output_or_error_mut() else {
                return Err("the faulted request failed".into());
            };
            match left_out {
                LeftOut::Keys(table, keys) => {
                    let output = output
                        .downcast_mut::<BatchGetItemOutput>()
                        .ok_or("not a BatchGetItem output")?;
                    assert!(output
                        .unprocessed_keys
                        .as_ref()
                        .is_none_or(HashMap::is_empty));
                    output.unprocessed_keys = Some(HashMap::from([(table, keys)]));
                }
                LeftOut::Items(table, requests) => {
                    let output = output
                        .downcast_mut::<BatchWriteItemOutput>()
                        .ok_or("not a BatchWriteItem output")?;
                    assert!(output
                        .unprocessed_items
                        .as_ref()
                        .is_none_or(HashMap::is_empty));
                    output.unprocessed_items = Some(HashMap::from([(table, requests)]));
                }
            }
            Ok(())
        }
    }

    /// Answers every request with a DynamoDB error: `(status, __type, extra members)`.
    #[derive(Debug)]
    pub struct Refuse(pub u16, pub &'static str, pub Value);

    impl Intercept for Refuse {
        fn name(&self) -> &'static str {
            "Refuse"
        }

        fn modify_before_deserialization(
            &self,
            context: &mut BeforeDeserializationInterceptorContextMut<'_>,
            _: &RuntimeComponents,
            _: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let mut body = self.2.clone();
            body["__type"] = format!("com.amazonaws.dynamodb.v20120810#{}", self.1).into();
            body["message"] = "injected by the test".into();
            let bytes = serde_json::to_vec(&body)?;
            let response = context.response_mut();
            *response.status_mut() = self.0.try_into()?;
            response.headers_mut().remove("x-amz-crc32");
            // The SDK reads the error's type from this header before the body.
            response.headers_mut().remove("x-amzn-errortype");
            response
                .headers_mut()
                .insert("content-length", bytes.len().to_string());
            *response.body_mut() = bytes.into();
            Ok(())
        }
    }
}

/// A registry over `tables` whose client goes through `interceptor`, without the
/// SDK's own retries.
async fn faulty_registry(
    tables: &DynamoDbTables,
    interceptor: impl aws_sdk_dynamodb::config::Intercept + 'static,
) -> DynamoDbRegistry {
    let shared = crate::support::sdk().await;
    let config = aws_sdk_dynamodb::config::Builder::from(&shared)
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .interceptor(interceptor)
        .build();
    DynamoDbRegistry::new(aws_sdk_dynamodb::Client::from_conf(config), tables.clone())
}

#[tokio::test]
async fn unprocessed_keys_and_items_are_retried_until_the_import_is_whole() {
    // given 40 of 100 devices registered, and a client whose first 3 batch reads and
    // first 3 batch writes each come back half unprocessed
    let registry = registry().await;
    let records: Vec<_> = (0..100)
        .map(|i| record(&format!("dev-{i:03}"), &key(i), i as usize + 1))
        .collect();
    import(&registry, "m.csv", records[..40].to_vec(), options()).await;
    let faults = std::sync::Arc::new(faults::PartialBatches::first(3));
    let flaky = faulty_registry(
        registry.tables(),
        aws_sdk_dynamodb::config::SharedInterceptor::new(ArcIntercept(faults.clone())),
    )
    .await
    .with_import_concurrency(1);
    // when the 100 are imported through it
    let summary = import(&flaky, "m.csv", records, options()).await;
    // then the registered 40 were all found (their keys re-read) and the 60 all written
    assert_eq!((summary.imported, summary.unchanged), (60, 40));
    assert_eq!(registry.count_devices().await.unwrap(), 100);
    // 1 read of 100 keys, answered in 4 calls (50, 25, 12, 13 processed); 3 writes
    // (25, 25, 10), the first answered in 4 calls
    use std::sync::atomic::Ordering::SeqCst;
    assert_eq!(faults.batch_get_calls.load(SeqCst), 4);
    assert_eq!(faults.batch_write_calls.load(SeqCst), 6);
    assert_eq!(faults.largest_get.load(SeqCst), 100);
    assert_eq!(faults.largest_write.load(SeqCst), 25);
}

/// Lets the test keep a handle on the interceptor it gives the client.
#[derive(Debug)]
struct ArcIntercept(std::sync::Arc<faults::PartialBatches>);

impl aws_sdk_dynamodb::config::Intercept for ArcIntercept {
    fn name(&self) -> &'static str {
        "ArcIntercept"
    }

    fn modify_before_serialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextMut<'_>,
        components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0.modify_before_serialization(context, components, cfg)
    }

    fn modify_before_attempt_completion(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::FinalizerInterceptorContextMut<'_>,
        components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0
            .modify_before_attempt_completion(context, components, cfg)
    }
}

#[tokio::test]
async fn throttling_is_unavailable_with_a_retry_after_of_one_second() {
    let registry = registry_with_devices(1).await;
    for code in [
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
    ] {
        // given a client DynamoDB throttles
        let throttled = faulty_registry(
            registry.tables(),
            faults::Refuse(400, code, serde_json::json!({})),
        )
        .await;
        // when the device is read, then the caller is told to retry in a second
        let error = throttled.device("dev-0").await.unwrap_err();
        assert!(
            matches!(
                error,
                PortError::Unavailable {
                    retry_after_secs: 1,
                    ..
                }
            ),
            "{code}: {error:?}"
        );
    }
    // while a validation error is internal
    let refused = faulty_registry(
        registry.tables(),
        faults::Refuse(400, "ValidationException", serde_json::json!({})),
    )
    .await;
    let error = refused.device("dev-0").await.unwrap_err();
    assert!(
        matches!(&error, PortError::Internal(m) if m.contains("ValidationException")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_transaction_conflict_is_unavailable() {
    // given a transaction DynamoDB cancels for a conflict on the superseded item
    let registry = registry_with_devices(1).await;
    let reasons = serde_json::json!({
        "CancellationReasons": [{"Code": "None"}, {"Code": "None"}, {"Code": "TransactionConflict"}]
    });
    let conflicted = faulty_registry(
        registry.tables(),
        claims::refuse_transactions("TransactionCanceledException", reasons),
    )
    .await;
    // when an issuance is recorded under the device's claim
    let claim = claim(&registry, "dev-0", NOW).await;
    let error = conflicted
        .record_issuance(
            certificate("c2", "dev-0", NOW),
            vec!["c1".into()],
            &claim,
            NOW,
        )
        .await
        .unwrap_err();
    // then the caller is told to retry
    assert!(matches!(error, PortError::Unavailable { .. }), "{error:?}");
}
