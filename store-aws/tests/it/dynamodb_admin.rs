//! The admin API's reads and changes of the DynamoDB registry
//! (`aws::dynamodb_admin`) against moto's server: pages of devices, certificates and
//! audit events, enabling devices, revoking certificates, decisions per hour.
//!
//! Run by `scripts/test-aws.sh`, which starts moto on 127.0.0.1 and sets
//! `AWS_ENDPOINT_URL`, dummy credentials and `AWS_REGION`. Each test creates its own
//! tables under a random prefix, so the tests run in parallel. Most lists are read with
//! DynamoDB pages of 2 or 3 items, so that one page of the list takes several requests
//! and a cut falls in the middle of a DynamoDB page.
//!
//! moto returns a Scan in key order where DynamoDB uses hash order: the tests compare
//! the devices and certificates of unordered lists as sets.

use provisioner_testkit::claimed;
use provisioner_testkit::moto;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, IndexStatus, KeySchemaElement, KeyType, ProjectionType,
    ScalarAttributeType,
};

use claimed::RecordClaimed;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use provisioner_app::fleet::{
    AuditQuery, CertificateQuery, DeviceQuery, DeviceRecord, HourlyDecisions, Listed, LoggedEvent,
};
use provisioner_core::{
    AuditEvent, AuditLog, CertificateRecord, CertificateStatus, Curve, DeviceKey, DeviceRegistry,
    ManifestRecord, PortError, RevocationReason, UnixTime,
};
use provisioner_store_aws::dynamodb::{
    DynamoDbError, DynamoDbRegistry, DynamoDbTables, ImportItem, ImportOptions,
    AUDIT_BY_DEVICE_INDEX,
};
use provisioner_store_aws::dynamodb_admin::{is_bad_cursor, AUDIT_LOOKBACK_DAYS};

/// 2027-01-15T08:00:00Z, the start of an hour.
const NOW: i64 = 1_800_000_000;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// The `n`th test key: (n + 1)·G on P-256, the same for every run.
fn key(n: u64) -> DeviceKey {
    let mut scalar = [0u8; 32];
    scalar[24..].copy_from_slice(&(n + 1).to_be_bytes());
    let secret = p256::SecretKey::from_slice(&scalar).unwrap();
    let point = secret.public_key().to_encoded_point(false);
    DeviceKey::from_sec1(Curve::P256, point.as_bytes()).unwrap()
}

/// A registry over fresh tables of its own holding `ids` (keys `key(0)`, ...), imported
/// from `m.csv` at `NOW`.
async fn registry_with(ids: &[String]) -> DynamoDbRegistry {
    moto::endpoint();
    let prefix = format!("test-{:016x}-", rand::random::<u64>());
    let registry = DynamoDbRegistry::from_env(DynamoDbTables::with_prefix(&prefix)).await;
    registry.create_tables().await.unwrap();
    let records: Vec<ManifestRecord> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| ManifestRecord {
            device_id: id.clone(),
            public_key: key(i as u64),
            line: i + 1,
        })
        .collect();
    let options = ImportOptions {
        now: NOW,
        ..ImportOptions::default()
    };
    let summary = registry
        .import(
            records.into_iter().map(|r| ImportItem {
                source: "m.csv",
                entry: Ok(r),
            }),
            &options,
        )
        .await
        .unwrap();
    assert_eq!(summary.imported, ids.len() as u64);
    registry
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Every page of a list from the start, checking that each holds at most `limit` items,
/// that only the last has no `next`, and that no page but a lone first one is empty.
async fn all_pages<T, F, Fut>(limit: usize, mut page: F) -> Vec<Vec<T>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Listed<T>>,
{
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let listed = page(after.take()).await;
        assert!(listed.items.len() <= limit, "a page longer than {limit}");
        assert!(
            !listed.items.is_empty() || pages.is_empty() && listed.next.is_none(),
            "an empty page in the middle of a list"
        );
        pages.push(listed.items);
        match listed.next {
            Some(next) => after = Some(next),
            None => return pages,
        }
        assert!(pages.len() < 100, "the list does not end");
    }
}

async fn device_pages(
    registry: &DynamoDbRegistry,
    prefix: Option<&str>,
    enabled: Option<bool>,
    limit: usize,
) -> Vec<Vec<DeviceRecord>> {
    all_pages(limit, |after| {
        let query = DeviceQuery {
            prefix: prefix.map(str::to_owned),
            enabled,
            after,
            limit,
        };
        async move { registry.list_devices(&query).await.unwrap() }
    })
    .await
}

/// The ids of `pages`, checking that none appears twice.
fn distinct_ids<T>(pages: &[Vec<T>], id: impl Fn(&T) -> &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for item in pages.iter().flatten() {
        assert!(seen.insert(id(item).to_owned()), "{} twice", id(item));
    }
    seen
}

fn set(ids: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    ids.into_iter().collect()
}

// --- devices ------------------------------------------------------------------------

#[tokio::test]
async fn devices_page_through_prefix_and_status_filters_seeing_each_device_once() {
    // given 15 devices a-0..a-14, 5 of them disabled, and 8 devices b-0..b-7, read in
    // DynamoDB pages of 3
    let all: Vec<String> = ids("a-", 15).into_iter().chain(ids("b-", 8)).collect();
    let registry = registry_with(&all).await.with_page_size(3);
    let disabled = set(["a-0", "a-3", "a-6", "a-9", "a-12"].map(String::from));
    for id in &disabled {
        assert!(registry
            .set_device_enabled(id, false)
            .await
            .unwrap()
            .is_some());
    }
    let a = set(ids("a-", 15));
    let cases: [(Option<&str>, Option<bool>, BTreeSet<String>); 6] = [
        (None, None, set(all.clone())),
        (Some("a-"), None, a.clone()),
        (Some("a-"), Some(false), disabled.clone()),
        (Some("a-"), Some(true), &a - &disabled),
        (None, Some(false), disabled.clone()),
        (Some("b-"), Some(false), BTreeSet::new()),
    ];
    for (prefix, enabled, expected) in cases {
        // when every page of 4 is read
        let pages = device_pages(&registry, prefix, enabled, 4).await;
        // then each matching device comes exactly once, in as few pages as can be
        let seen = distinct_ids(&pages, |d| &d.device_id);
        assert_eq!(seen, expected, "{prefix:?} {enabled:?}");
        assert_eq!(
            pages.len(),
            expected.len().div_ceil(4).max(1),
            "{prefix:?} {enabled:?}"
        );
        for device in pages.iter().flatten() {
            assert_eq!(
                device.enabled,
                !disabled.contains(&device.device_id),
                "{device:?}"
            );
        }
    }
    // and without a page size, a page of 4 from a cursor goes on where it stopped
    let registry = DynamoDbRegistry::new(registry.client().clone(), registry.tables().clone());
    let pages = device_pages(&registry, None, None, 4).await;
    assert_eq!(distinct_ids(&pages, |d| &d.device_id), set(all.clone()));
    assert_eq!(pages.len(), 6);
    // and a device reads back whole
    let listed = pages
        .iter()
        .flatten()
        .find(|d| d.device_id == "a-1")
        .unwrap();
    let expected = DeviceRecord {
        device_id: "a-1".into(),
        public_key: key(1),
        enabled: true,
        source_manifest: Some("m.csv".into()),
        imported_at: NOW,
    };
    assert_eq!(listed, &expected);
    assert_eq!(registry.device_record("a-1").await.unwrap(), Some(expected));
}

#[tokio::test]
async fn a_device_list_cut_mid_page_resumes_after_the_last_device_returned() {
    // given 10 devices read in one DynamoDB page (no page size)
    let registry = registry_with(&ids("d-", 10)).await;
    // when a page of 3 is read, then the rest with a page of 100
    let first = registry
        .list_devices(&DeviceQuery {
            limit: 3,
            ..DeviceQuery::default()
        })
        .await
        .unwrap();
    let next = first.next.clone().expect("more than 3 devices");
    assert_eq!(next, first.items[2].device_id);
    let rest = registry
        .list_devices(&DeviceQuery {
            after: Some(next),
            limit: 100,
            ..DeviceQuery::default()
        })
        .await
        .unwrap();
    // then together they are all 10, each once, and the last page says so
    assert_eq!(rest.next, None);
    let seen = distinct_ids(&[first.items, rest.items], |d| &d.device_id);
    assert_eq!(seen, set(ids("d-", 10)));
    // and a cursor that is no device id is refused
    let error = registry
        .list_devices(&DeviceQuery {
            after: Some(String::new()),
            limit: 3,
            ..DeviceQuery::default()
        })
        .await
        .unwrap_err();
    assert!(is_bad_cursor(&error), "{error:?}");
}

#[tokio::test]
async fn set_device_enabled_changes_a_known_device_and_never_creates_one() {
    // given dev-0 and dev-1, enabled
    let registry = registry_with(&ids("dev-", 2)).await;
    // when dev-0 is disabled
    let disabled = registry
        .set_device_enabled("dev-0", false)
        .await
        .unwrap()
        .expect("dev-0 exists");
    // then it comes back as stored: disabled, the rest unchanged, as the port sees it
    assert_eq!(
        disabled,
        DeviceRecord {
            device_id: "dev-0".into(),
            public_key: key(0),
            enabled: false,
            source_manifest: Some("m.csv".into()),
            imported_at: NOW,
        }
    );
    assert_eq!(
        registry.device_record("dev-0").await.unwrap(),
        Some(disabled)
    );
    assert!(!registry.device("dev-0").await.unwrap().unwrap().enabled);
    assert!(registry.device("dev-1").await.unwrap().unwrap().enabled);
    // and disabling it again is harmless, enabling it undoes it
    let again = registry.set_device_enabled("dev-0", false).await.unwrap();
    assert!(!again.unwrap().enabled);
    let enabled = registry.set_device_enabled("dev-0", true).await.unwrap();
    assert!(enabled.unwrap().enabled);
    assert!(registry.device("dev-0").await.unwrap().unwrap().enabled);
    // when an unknown device is enabled, then nothing is created
    for unknown in ["nobody", "", &"x".repeat(3000)] {
        assert_eq!(
            registry.set_device_enabled(unknown, true).await.unwrap(),
            None
        );
        assert_eq!(registry.device_record(unknown).await.unwrap(), None);
    }
    let pages = device_pages(&registry, None, None, 10).await;
    assert_eq!(distinct_ids(&pages, |d| &d.device_id), set(ids("dev-", 2)));
}

// --- certificates -------------------------------------------------------------------

fn certificate(id: &str, device_id: &str, issuer: &str, issued_at: i64) -> CertificateRecord {
    CertificateRecord {
        certificate_id: id.into(),
        device_id: device_id.into(),
        serial: format!("{issued_at:x}"),
        issuer: issuer.into(),
        public_key: key(0),
        issued_at,
        not_before: issued_at - 300,
        not_after: issued_at + DAY,
        status: CertificateStatus::Active,
        revoked: None,
        certificate_pem: format!("-----BEGIN CERTIFICATE-----\n{id}\n-----END CERTIFICATE-----\n"),
    }
}

/// dev-0 with certificates c-0-0 .. c-0-6 issued 10 s apart (the even ones by ca-2, the
/// odd ones by ca-1), c-0-1 and c-0-4 revoked; dev-1 with c-1-0 .. c-1-2 by ca-1. Read in
/// DynamoDB pages of 2.
async fn registry_with_certificates() -> DynamoDbRegistry {
    let registry = registry_with(&ids("dev-", 2)).await.with_page_size(2);
    for (device, count) in [(0, 7), (1, 3)] {
        for i in 0..count {
            let issuer = if device == 0 && i % 2 == 0 {
                "ca-2"
            } else {
                "ca-1"
            };
            let c = certificate(
                &format!("c-{device}-{i}"),
                &format!("dev-{device}"),
                issuer,
                NOW + 10 * i,
            );
            registry.record_claimed(c, vec![], NOW).await.unwrap();
        }
    }
    for id in ["c-0-1", "c-0-4"] {
        let (_, already) = registry
            .revoke_certificate(id, RevocationReason::KeyCompromise, NOW + 100)
            .await
            .unwrap()
            .unwrap();
        assert!(!already);
    }
    registry
}

async fn certificate_pages(
    registry: &DynamoDbRegistry,
    query: CertificateQuery,
) -> Vec<Vec<CertificateRecord>> {
    let limit = query.limit;
    all_pages(limit, |after| {
        let query = CertificateQuery {
            after,
            ..query.clone()
        };
        async move { registry.list_certificates(&query).await.unwrap() }
    })
    .await
}

fn certificate_ids(pages: &[Vec<CertificateRecord>]) -> Vec<String> {
    pages
        .iter()
        .flatten()
        .map(|c| c.certificate_id.clone())
        .collect()
}

fn names(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn a_devices_certificates_come_newest_first_filtered_and_across_pages() {
    let registry = registry_with_certificates().await;
    let of_dev_0 = |status, issuer: Option<&str>| CertificateQuery {
        device_id: Some("dev-0".into()),
        status,
        issuer: issuer.map(str::to_owned),
        after: None,
        limit: 3,
    };
    // when dev-0's certificates are read in pages of 3
    let pages = certificate_pages(&registry, of_dev_0(None, None)).await;
    // then all 7 come newest first, each once, in 3 pages
    assert_eq!(
        certificate_ids(&pages),
        names(&["c-0-6", "c-0-5", "c-0-4", "c-0-3", "c-0-2", "c-0-1", "c-0-0"])
    );
    assert_eq!(pages.len(), 3);
    // and read back whole, the revoked ones with their revocation
    let c4 = pages.iter().flatten().find(|c| c.certificate_id == "c-0-4");
    let mut expected = certificate("c-0-4", "dev-0", "ca-2", NOW + 40);
    expected.status = CertificateStatus::Revoked;
    expected.revoked = Some((NOW + 100, RevocationReason::KeyCompromise));
    assert_eq!(c4, Some(&expected));
    // and filtered by status and issuer, still newest first across pages
    let revoked =
        certificate_pages(&registry, of_dev_0(Some(CertificateStatus::Revoked), None)).await;
    assert_eq!(certificate_ids(&revoked), names(&["c-0-4", "c-0-1"]));
    let active =
        certificate_pages(&registry, of_dev_0(Some(CertificateStatus::Active), None)).await;
    assert_eq!(
        certificate_ids(&active),
        names(&["c-0-6", "c-0-5", "c-0-3", "c-0-2", "c-0-0"])
    );
    assert_eq!(active.len(), 2);
    let by_ca_2 = certificate_pages(&registry, of_dev_0(None, Some("ca-2"))).await;
    assert_eq!(
        certificate_ids(&by_ca_2),
        names(&["c-0-6", "c-0-4", "c-0-2", "c-0-0"])
    );
    let active_by_ca_2 = certificate_pages(
        &registry,
        of_dev_0(Some(CertificateStatus::Active), Some("ca-2")),
    )
    .await;
    assert_eq!(
        certificate_ids(&active_by_ca_2),
        names(&["c-0-6", "c-0-2", "c-0-0"])
    );
    // and a device without certificates has one empty page
    let none = certificate_pages(
        &registry,
        CertificateQuery {
            device_id: Some("nobody".into()),
            limit: 3,
            ..CertificateQuery::default()
        },
    )
    .await;
    assert_eq!(none, vec![vec![]]);
    // and a cursor of another form is refused
    let error = registry
        .list_certificates(&CertificateQuery {
            after: Some("c-0-3".into()),
            ..of_dev_0(None, None)
        })
        .await
        .unwrap_err();
    assert!(is_bad_cursor(&error), "{error:?}");
}

#[tokio::test]
async fn certificates_of_every_device_are_scanned_with_filters_across_pages() {
    let registry = registry_with_certificates().await;
    let every = |status| CertificateQuery {
        status,
        limit: 3,
        ..CertificateQuery::default()
    };
    // when every certificate is read in pages of 3
    let pages = certificate_pages(&registry, every(None)).await;
    // then each of the 10 comes once, in 4 pages
    let all: BTreeSet<String> = (0..7)
        .map(|i| format!("c-0-{i}"))
        .chain((0..3).map(|i| format!("c-1-{i}")))
        .collect();
    assert_eq!(distinct_ids(&pages, |c| &c.certificate_id), all);
    assert_eq!(pages.len(), 4);
    // and filtered by status or issuer, only those
    let revoked = certificate_pages(&registry, every(Some(CertificateStatus::Revoked))).await;
    assert_eq!(
        distinct_ids(&revoked, |c| &c.certificate_id),
        set(names(&["c-0-1", "c-0-4"]))
    );
    let active = certificate_pages(&registry, every(Some(CertificateStatus::Active))).await;
    assert_eq!(distinct_ids(&active, |c| &c.certificate_id).len(), 8);
    let by_ca_1 = certificate_pages(
        &registry,
        CertificateQuery {
            issuer: Some("ca-1".into()),
            limit: 2,
            ..CertificateQuery::default()
        },
    )
    .await;
    assert_eq!(
        distinct_ids(&by_ca_1, |c| &c.certificate_id),
        set(names(&[
            "c-0-1", "c-0-3", "c-0-5", "c-1-0", "c-1-1", "c-1-2"
        ]))
    );
    assert_eq!(by_ca_1.len(), 3);
}

#[tokio::test]
async fn a_certificate_is_revoked_once_and_its_first_revocation_stands() {
    // given dev-0 with ACTIVE certificates c1 and c2
    let registry = registry_with(&ids("dev-", 1)).await;
    for (id, at) in [("c1", NOW), ("c2", NOW + 1)] {
        registry
            .record_claimed(certificate(id, "dev-0", "ca-1", at), vec![], at)
            .await
            .unwrap();
    }
    // when c1 is revoked
    let (revoked, already) = registry
        .revoke_certificate("c1", RevocationReason::KeyCompromise, NOW + 100)
        .await
        .unwrap()
        .expect("c1 exists");
    // then it is returned and stored as revoked, at that time for that reason
    assert!(!already);
    let mut expected = certificate("c1", "dev-0", "ca-1", NOW);
    expected.status = CertificateStatus::Revoked;
    expected.revoked = Some((NOW + 100, RevocationReason::KeyCompromise));
    assert_eq!(revoked, expected);
    assert_eq!(
        registry.certificate("c1").await.unwrap(),
        Some(expected.clone())
    );
    // when it is revoked again, later and for another reason
    let (again, already) = registry
        .revoke_certificate("c1", RevocationReason::Superseded, NOW + 200)
        .await
        .unwrap()
        .unwrap();
    // then nothing changed and it says so
    assert!(already);
    assert_eq!(again, expected);
    assert_eq!(registry.certificate("c1").await.unwrap(), Some(expected));
    // when two admins revoke c2 at once, then exactly one of them revoked it
    let (first, second) = tokio::join!(
        registry.revoke_certificate("c2", RevocationReason::Unspecified, NOW + 300),
        registry.revoke_certificate("c2", RevocationReason::CessationOfOperation, NOW + 301),
    );
    let (first, second) = (first.unwrap().unwrap(), second.unwrap().unwrap());
    assert!(first.1 != second.1, "{first:?} {second:?}");
    assert_eq!(first.0, second.0);
    let winner = if first.1 { &second.0 } else { &first.0 };
    assert_eq!(
        registry.certificate("c2").await.unwrap().as_ref(),
        Some(winner)
    );
    // and an unknown certificate is not created
    for unknown in ["c9", ""] {
        assert_eq!(
            registry
                .revoke_certificate(unknown, RevocationReason::KeyCompromise, NOW)
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(registry.certificate("c9").await.unwrap(), None);
}

// --- audit --------------------------------------------------------------------------

fn event(at: UnixTime, decision: &'static str, device_id: &str) -> AuditEvent {
    AuditEvent {
        at,
        device_id: Some(device_id.to_owned()),
        decision,
        code: if decision == "allow" {
            "issued"
        } else {
            "unknown_device"
        }
        .into(),
        remote_addr: Some("192.0.2.7".into()),
        fingerprint: None,
        certificate_id: None,
    }
}

async fn audit_pages(
    registry: &DynamoDbRegistry,
    device_id: Option<&str>,
    limit: usize,
    now: UnixTime,
) -> Vec<Vec<LoggedEvent>> {
    all_pages(limit, |after| {
        let query = AuditQuery {
            device_id: device_id.map(str::to_owned),
            after,
            limit,
        };
        async move { registry.list_audit(&query, now).await.unwrap() }
    })
    .await
}

#[tokio::test]
async fn audit_events_come_newest_first_across_days_and_pages() {
    // given events on 2027-01-15 (5, hourly from 04:00), 2027-01-14 (4), 2027-01-10 (2,
    // days before an empty stretch), and one older than the lookback; dev-0 and dev-1 in
    // turn; read in DynamoDB pages of 2
    let registry = registry_with(&[]).await.with_page_size(2);
    let mut times: Vec<i64> = (0..5).map(|k| NOW - k * HOUR).collect();
    times.extend((0..4).map(|k| NOW - DAY - k * 2 * HOUR));
    times.extend([NOW - 5 * DAY, NOW - 5 * DAY - 60]);
    let events: Vec<AuditEvent> = times
        .iter()
        .enumerate()
        .map(|(i, at)| {
            let decision = if i % 3 == 0 { "deny" } else { "allow" };
            event(*at, decision, &format!("dev-{}", i % 2))
        })
        .collect();
    let too_old = event(
        NOW - i64::from(AUDIT_LOOKBACK_DAYS) * DAY - DAY,
        "allow",
        "dev-0",
    );
    // recorded out of order, as concurrent Lambdas would
    for e in events.iter().rev().chain([&too_old]) {
        registry.record(e.clone()).await.unwrap();
    }
    // when every page of 3 is read an hour later
    let pages = audit_pages(&registry, None, 3, NOW + HOUR).await;
    // then the 11 events in the lookback come newest first, each once, in 4 pages, with
    // the event id as id
    let listed: Vec<AuditEvent> = pages.iter().flatten().map(|e| e.event.clone()).collect();
    assert_eq!(listed, events);
    assert_eq!(pages.len(), 4);
    let first = &pages[0][0];
    assert!(
        first.id.starts_with("2027-01-15T08:00:00Z#"),
        "{}",
        first.id
    );
    let ids: BTreeSet<&str> = pages.iter().flatten().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 11);
    // and dev-1's alone, newest first
    let of_dev_1 = audit_pages(&registry, Some("dev-1"), 2, NOW + HOUR).await;
    let expected: Vec<AuditEvent> = events
        .iter()
        .filter(|e| e.device_id.as_deref() == Some("dev-1"))
        .cloned()
        .collect();
    let listed: Vec<AuditEvent> = of_dev_1.iter().flatten().map(|e| e.event.clone()).collect();
    assert_eq!(listed, expected);
    assert_eq!(of_dev_1.len(), 3);
    // and read 30 days later, the same (the walk crosses the empty days)
    let later = audit_pages(&registry, None, 4, NOW + 30 * DAY).await;
    let listed: Vec<AuditEvent> = later.iter().flatten().map(|e| e.event.clone()).collect();
    assert_eq!(listed, events);
    // and read before any of them happened, nothing (the walk reaches its lookback)
    let before = audit_pages(&registry, None, 4, NOW - 450 * DAY).await;
    assert_eq!(before, vec![vec![]]);
    // and a cursor that is no day/event id is refused
    let error = registry
        .list_audit(
            &AuditQuery {
                after: Some("yesterday".into()),
                limit: 3,
                ..AuditQuery::default()
            },
            NOW,
        )
        .await
        .unwrap_err();
    assert!(is_bad_cursor(&error), "{error:?}");
}

// --- audit of one device: the byDevice index ------------------------------------------

/// Counts the requests a client sends (every attempt: DynamoDB bills each), to show what
/// a list costs.
#[derive(Debug, Clone, Default)]
struct CountRequests(Arc<AtomicUsize>);

impl aws_sdk_dynamodb::config::Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "CountRequests"
    }

    fn read_before_transmit(
        &self,
        _: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A registry over `registry`'s tables whose client counts its requests, and the count.
async fn counting(registry: &DynamoDbRegistry) -> (DynamoDbRegistry, Arc<AtomicUsize>) {
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let counter = CountRequests::default();
    let config = aws_sdk_dynamodb::config::Builder::from(&shared)
        .interceptor(counter.clone())
        .build();
    let counted = DynamoDbRegistry::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        registry.tables().clone(),
    );
    (counted, counter.0)
}

/// `device_id`'s events among `events`, newest first.
fn newest_first_of(events: &[AuditEvent], device_id: &str) -> Vec<AuditEvent> {
    let mut of_device: Vec<AuditEvent> = events
        .iter()
        .filter(|e| e.device_id.as_deref() == Some(device_id))
        .cloned()
        .collect();
    of_device.sort_by_key(|e| std::cmp::Reverse(e.at));
    of_device
}

#[tokio::test]
async fn a_devices_events_come_from_its_index_newest_first_across_days_pages_and_the_lookback() {
    // given dev-7's events today, yesterday, 40 days ago and past the lookback, among
    // events of dev-70 (a longer id with the same start), dev-8 and none (a refusal
    // before any CSR was read), recorded out of order; read in DynamoDB pages of 2
    let registry = registry_with(&[]).await.with_page_size(2);
    let too_old = NOW - (i64::from(AUDIT_LOOKBACK_DAYS) + 100) * DAY;
    let mut events = Vec::new();
    for (k, at) in [NOW, NOW - 10, NOW - DAY - HOUR, NOW - 40 * DAY, too_old]
        .into_iter()
        .enumerate()
    {
        let decision = if k % 2 == 0 { "allow" } else { "deny" };
        events.push(event(at, decision, "dev-7"));
        events.push(event(at - 1, "deny", "dev-70"));
        events.push(event(at + 1, "allow", "dev-8"));
    }
    events.push(AuditEvent {
        device_id: None,
        ..event(NOW - 5, "deny", "ignored")
    });
    for e in events.iter().rev() {
        registry.record(e.clone()).await.unwrap();
    }
    // when dev-7's events are read in pages of 2 an hour later
    let pages = audit_pages(&registry, Some("dev-7"), 2, NOW + HOUR).await;
    // then its 5 events come newest first, each once, in 3 pages, the one older than
    // the lookback included, with the event id (its time first) as id
    let listed: Vec<AuditEvent> = pages.iter().flatten().map(|e| e.event.clone()).collect();
    assert_eq!(listed, newest_first_of(&events, "dev-7"));
    assert_eq!(listed.last().map(|e| e.at), Some(too_old));
    assert_eq!(pages.len(), 3);
    assert!(
        pages[0][0].id.starts_with("2027-01-15T08:00:00Z#"),
        "{}",
        pages[0][0].id
    );
    let ids: BTreeSet<&str> = pages.iter().flatten().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 5);
    // and dev-70's are its own (the key is the whole id, not a prefix)
    let of_dev_70 = audit_pages(&registry, Some("dev-70"), 10, NOW + HOUR).await;
    let listed: Vec<AuditEvent> = of_dev_70
        .iter()
        .flatten()
        .map(|e| e.event.clone())
        .collect();
    assert_eq!(listed, newest_first_of(&events, "dev-70"));
    // and a device without events has one empty page
    let none = audit_pages(&registry, Some("dev-9"), 10, NOW + HOUR).await;
    assert_eq!(none, vec![vec![]]);
    // and the list of every device still stops at the lookback, the event without a
    // device included
    let every = audit_pages(&registry, None, 50, NOW + HOUR).await;
    let listed: Vec<AuditEvent> = every.iter().flatten().map(|e| e.event.clone()).collect();
    assert_eq!(listed.len(), events.len() - 3);
    assert!(listed.iter().all(|e| e.at > too_old + 1));
    assert!(listed.iter().any(|e| e.device_id.is_none()));
    // and a cursor that is not one of the device list's is refused
    for bad in ["yesterday", "2027-01-15/"] {
        let error = registry
            .list_audit(
                &AuditQuery {
                    device_id: Some("dev-7".into()),
                    after: Some(bad.into()),
                    limit: 2,
                },
                NOW,
            )
            .await
            .unwrap_err();
        assert!(is_bad_cursor(&error), "{bad}: {error:?}");
    }
}

#[tokio::test]
async fn a_devices_first_page_of_fifty_is_one_request() {
    // given a busy device (2 events a day for 30 days), a quiet one (3 events this
    // week) and other traffic, with DynamoDB's own page size (as deployed)
    let registry = registry_with(&[]).await;
    let mut events = Vec::new();
    for day in 0..30 {
        events.push(event(NOW - day * DAY, "allow", "busy"));
        events.push(event(NOW - day * DAY - HOUR, "deny", "busy"));
        events.push(event(NOW - day * DAY - 2 * HOUR, "allow", "other"));
    }
    for day in [0, 2, 6] {
        events.push(event(NOW - day * DAY - 30, "deny", "quiet"));
    }
    for e in &events {
        registry.record(e.clone()).await.unwrap();
    }
    // when each device's 50 newest are read, as the device details page asks
    let (counted, requests) = counting(&registry).await;
    let mut cost = Vec::new();
    let mut pages = Vec::new();
    for device in ["busy", "quiet"] {
        requests.store(0, Ordering::SeqCst);
        let query = AuditQuery {
            device_id: Some(device.into()),
            after: None,
            limit: 50,
        };
        pages.push(counted.list_audit(&query, NOW + HOUR).await.unwrap());
        cost.push(requests.load(Ordering::SeqCst));
    }
    // then each is one Query of the index (the walk of the days sent 31 and 400)
    assert_eq!(cost, vec![1, 1]);
    let listed = |page: &Listed<LoggedEvent>| -> Vec<AuditEvent> {
        page.items.iter().map(|e| e.event.clone()).collect()
    };
    assert_eq!(listed(&pages[0]), newest_first_of(&events, "busy")[..50]);
    assert!(pages[0].next.is_some());
    assert_eq!(listed(&pages[1]), newest_first_of(&events, "quiet"));
    assert_eq!(pages[1].next, None);
}

#[tokio::test]
async fn an_audit_table_made_without_the_device_index_gets_it_from_create_tables() {
    // given an audit table as an earlier version created it (no index) holding events
    moto::endpoint();
    let prefix = format!("test-{:016x}-", rand::random::<u64>());
    let registry = DynamoDbRegistry::from_env(DynamoDbTables::with_prefix(&prefix)).await;
    let client = registry.client();
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&registry.tables().audit)
        .attribute_definitions(attribute("day"))
        .attribute_definitions(attribute("eventId"))
        .key_schema(key("day", KeyType::Hash))
        .key_schema(key("eventId", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let mut events = vec![
        event(NOW - DAY, "allow", "dev-1"),
        event(NOW - HOUR, "deny", "dev-2"),
        event(NOW, "deny", "dev-1"),
    ];
    for e in &events {
        registry.record(e.clone()).await.unwrap();
    }
    let query = AuditQuery {
        device_id: Some("dev-1".into()),
        after: None,
        limit: 10,
    };
    // (without the index, a device's events cannot be listed: the test needs it)
    let error = registry.list_audit(&query, NOW).await.unwrap_err();
    assert!(!is_bad_cursor(&error), "{error:?}");
    // when the tables are created
    registry.create_tables().await.unwrap();
    // then the audit table has the index, ACTIVE, keyed by device and event id, with
    // every attribute
    let describe = || async {
        client
            .describe_table()
            .table_name(&registry.tables().audit)
            .send()
            .await
            .unwrap()
            .table
            .unwrap()
    };
    let table = describe().await;
    let indexes = table.global_secondary_indexes();
    assert_eq!(indexes.len(), 1, "{indexes:?}");
    let index = &indexes[0];
    assert_eq!(index.index_name(), Some(AUDIT_BY_DEVICE_INDEX));
    assert_eq!(index.index_status(), Some(&IndexStatus::Active));
    let keys: Vec<(&str, &KeyType)> = index
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type()))
        .collect();
    assert_eq!(
        keys,
        vec![("deviceId", &KeyType::Hash), ("eventId", &KeyType::Range)]
    );
    assert_eq!(
        index.projection().and_then(|p| p.projection_type()),
        Some(&ProjectionType::All)
    );
    // and the events recorded before and after are listed by device, newest first
    events.push(event(NOW + 60, "allow", "dev-1"));
    registry.record(events[3].clone()).await.unwrap();
    let listed = registry.list_audit(&query, NOW + HOUR).await.unwrap();
    let listed: Vec<AuditEvent> = listed.items.into_iter().map(|e| e.event).collect();
    assert_eq!(listed, newest_first_of(&events, "dev-1"));
    // and creating the tables again leaves the index as it is
    registry.create_tables().await.unwrap();
    assert_eq!(describe().await.global_secondary_indexes().len(), 1);
}

#[tokio::test]
async fn decisions_per_hour_count_allow_and_deny_in_the_range() {
    // given decisions over two days, and some just outside [NOW - 1 day, NOW + 2 h)
    let registry = registry_with(&[]).await.with_page_size(2);
    let since = NOW - DAY;
    let until = NOW + 2 * HOUR;
    let decisions = [
        (since - 1, "allow"),
        (since, "deny"),
        (since + 100, "allow"),
        (NOW + 10, "allow"),
        (NOW + 20, "allow"),
        (NOW + 30, "deny"),
        (NOW + HOUR + 5, "deny"),
        (until - 1, "allow"),
        (until, "deny"),
        (until + DAY, "allow"),
    ];
    for (at, decision) in decisions {
        registry.record(event(at, decision, "dev-0")).await.unwrap();
    }
    // when they are counted per hour
    let hours = registry.decisions_per_hour(since, until).await.unwrap();
    // then each hour in the range has its counts, oldest first
    let hour = |hour, allow, deny| HourlyDecisions { hour, allow, deny };
    assert_eq!(
        hours,
        vec![hour(since, 1, 1), hour(NOW, 2, 1), hour(NOW + HOUR, 1, 1),]
    );
    // and an empty range counts nothing
    assert_eq!(registry.decisions_per_hour(NOW, NOW).await.unwrap(), vec![]);
    assert_eq!(
        registry.decisions_per_hour(until, since).await.unwrap(),
        vec![]
    );
}

// --- throttling ---------------------------------------------------------------------

/// Answers every request with a DynamoDB `ThrottlingException`, as DynamoDB does once the
/// SDK's retries are spent. It replaces moto's answer, after moto has acted on the
/// request: only what the caller is told is tested, not what DynamoDB would leave.
#[derive(Debug)]
struct Throttle;

impl aws_sdk_dynamodb::config::Intercept for Throttle {
    fn name(&self) -> &'static str {
        "Throttle"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextMut<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let bytes = serde_json::to_vec(&serde_json::json!({
            "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
            "message": "injected by the test",
        }))?;
        let response = context.response_mut();
        *response.status_mut() = 400.try_into()?;
        response.headers_mut().remove("x-amz-crc32");
        response
            .headers_mut()
            .insert("content-length", bytes.len().to_string());
        *response.body_mut() = bytes.into();
        Ok(())
    }
}

#[tokio::test]
async fn throttling_is_unavailable_for_every_admin_read_and_change() {
    // given a registry whose every DynamoDB answer is throttling (no SDK retries)
    let registry = registry_with(&ids("dev-", 1)).await;
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let config = aws_sdk_dynamodb::config::Builder::from(&shared)
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .interceptor(Throttle)
        .build();
    let throttled = DynamoDbRegistry::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        registry.tables().clone(),
    );
    let limit = 3;
    // when each admin operation runs, then each says to retry shortly
    let errors: Vec<(&str, DynamoDbError)> = vec![
        (
            "list_devices",
            throttled
                .list_devices(&DeviceQuery {
                    limit,
                    ..DeviceQuery::default()
                })
                .await
                .unwrap_err(),
        ),
        (
            "device_record",
            throttled.device_record("dev-0").await.unwrap_err(),
        ),
        (
            "set_device_enabled",
            throttled
                .set_device_enabled("dev-0", false)
                .await
                .unwrap_err(),
        ),
        (
            "list_certificates by device",
            throttled
                .list_certificates(&CertificateQuery {
                    device_id: Some("dev-0".into()),
                    limit,
                    ..CertificateQuery::default()
                })
                .await
                .unwrap_err(),
        ),
        (
            "list_certificates",
            throttled
                .list_certificates(&CertificateQuery {
                    limit,
                    ..CertificateQuery::default()
                })
                .await
                .unwrap_err(),
        ),
        (
            "revoke_certificate",
            throttled
                .revoke_certificate("c1", RevocationReason::KeyCompromise, NOW)
                .await
                .unwrap_err(),
        ),
        (
            "list_audit",
            throttled
                .list_audit(
                    &AuditQuery {
                        limit,
                        ..AuditQuery::default()
                    },
                    NOW,
                )
                .await
                .unwrap_err(),
        ),
        (
            "decisions_per_hour",
            throttled
                .decisions_per_hour(NOW - DAY, NOW)
                .await
                .unwrap_err(),
        ),
    ];
    for (operation, error) in errors {
        assert!(
            matches!(error, DynamoDbError::Unavailable { .. }),
            "{operation}: {error:?}"
        );
        assert!(
            matches!(
                PortError::from(error),
                PortError::Unavailable {
                    retry_after_secs: 1,
                    ..
                }
            ),
            "{operation}"
        );
    }
}
