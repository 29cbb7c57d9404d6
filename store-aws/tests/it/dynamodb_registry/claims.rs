//! What is DynamoDB's own in the per-device issuance claim, beside the generic contract
//! (`contract.rs`): the claim on the device item raced by two SDK clients, the claim
//! taken on tables made before it existed, a lagging `byDevice` index, and a claim asked
//! for while the holder's transaction writes the device item.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use provisioner_core::{ClaimOutcome, IssuanceClaim, PortError};
use provisioner_store_aws::dynamodb_claim::CLAIM_HOLDER;

use super::*;

/// A second registry over `registry`'s tables, through an SDK client of its own.
async fn second_client(registry: &DynamoDbRegistry) -> DynamoDbRegistry {
    DynamoDbRegistry::from_env(registry.tables().clone()).await
}

/// The device item as stored.
async fn device_item(
    registry: &DynamoDbRegistry,
    device_id: &str,
) -> std::collections::HashMap<String, AttributeValue> {
    registry
        .client()
        .get_item()
        .table_name(&registry.tables().devices)
        .key("deviceId", AttributeValue::S(device_id.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect(device_id)
}

async fn is_held(registry: &DynamoDbRegistry, device_id: &str, now: UnixTime) -> bool {
    matches!(
        registry
            .claim_issuance(device_id, &holder(), now, 30)
            .await
            .unwrap(),
        ClaimOutcome::Held { .. }
    )
}

#[tokio::test]
async fn of_many_concurrent_claims_over_two_clients_exactly_one_is_taken() {
    // given one device and two registries with clients of their own
    let first = Arc::new(registry_with_devices(1).await);
    let second = Arc::new(second_client(&first).await);
    // when 40 requests claim it at once, half through each
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..40 {
        let registry = if n % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.spawn(async move {
            registry
                .claim_issuance("dev-0", &format!("h{n}"), NOW, 30)
                .await
                .unwrap()
        });
    }
    let outcomes = tasks.join_all().await;
    // then exactly one holds it, and every other is told until when
    let claimed: Vec<&IssuanceClaim> = outcomes
        .iter()
        .filter_map(|o| match o {
            ClaimOutcome::Claimed(c) => Some(c),
            ClaimOutcome::Held { .. } => None,
        })
        .collect();
    assert_eq!(claimed.len(), 1, "{outcomes:?}");
    assert_eq!(claimed[0].expires_at, NOW + 30);
    for outcome in &outcomes {
        if let ClaimOutcome::Held { until } = outcome {
            assert_eq!(*until, NOW + 30);
        }
    }
    let item = device_item(&first, "dev-0").await;
    assert_eq!(
        item[CLAIM_HOLDER],
        AttributeValue::S(claimed[0].holder.clone())
    );
}

#[tokio::test]
async fn a_holder_asking_again_keeps_its_claim_with_the_new_expiry() {
    let registry = registry_with_devices(1).await;
    let first = registry
        .claim_issuance("dev-0", "A", NOW, 30)
        .await
        .unwrap();
    let again = registry
        .claim_issuance("dev-0", "A", NOW + 10, 30)
        .await
        .unwrap();
    assert!(matches!(first, ClaimOutcome::Claimed(_)));
    assert_eq!(
        again,
        ClaimOutcome::Claimed(IssuanceClaim {
            device_id: "dev-0".into(),
            holder: "A".into(),
            expires_at: NOW + 40
        })
    );
}

/// Writes dev-0 and one ACTIVE certificate exactly as the build before the claim did:
/// a `PutItem` each, without any claim attribute or list of recent certificates.
async fn registry_made_by_the_previous_build() -> DynamoDbRegistry {
    let registry = registry().await;
    let put = |table: &str, item: Vec<(&str, AttributeValue)>| {
        registry
            .client()
            .put_item()
            .table_name(table)
            .set_item(Some(
                item.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ))
            .send()
    };
    let s = |v: &str| AttributeValue::S(v.into());
    let n = |v: i64| AttributeValue::N(v.to_string());
    put(
        &registry.tables().devices,
        vec![
            ("deviceId", s("dev-0")),
            ("publicKey", s(&key(0).canonical())),
            ("enabled", AttributeValue::Bool(true)),
            ("sourceManifest", s("m.csv")),
            ("importedAt", n(NOW - 86_400)),
        ],
    )
    .await
    .unwrap();
    put(
        &registry.tables().certificates,
        vec![
            ("certificateId", s("old")),
            ("deviceId", s("dev-0")),
            ("serial", s("01")),
            ("issuer", s("ca-1")),
            ("publicKey", s(&key(0).canonical())),
            ("issuedAt", n(NOW - 600)),
            ("notBefore", n(NOW - 900)),
            ("notAfter", n(NOW + 86_400)),
            ("status", s("ACTIVE")),
            ("certificatePem", s("pem")),
        ],
    )
    .await
    .unwrap();
    registry
}

#[tokio::test]
async fn tables_made_by_the_previous_build_need_no_migration() {
    // given a device and its certificate as the previous build wrote them
    let registry = registry_made_by_the_previous_build().await;
    // when its certificates are read, then the old one is there
    assert_eq!(ids_of(&registry, "dev-0", NOW - 3600).await, ["old"]);
    // when the device is claimed and a renewal recorded under the claim
    let claim = claim(&registry, "dev-0", NOW).await;
    registry
        .record_issuance(
            certificate("new", "dev-0", NOW),
            vec!["old".into()],
            &claim,
            NOW,
        )
        .await
        .unwrap();
    // then the renewal superseded the old one, and the device is free again
    assert_eq!(
        status(&registry, "old").await.1,
        Some((NOW, RevocationReason::Superseded))
    );
    assert_eq!(ids_of(&registry, "dev-0", NOW - 3600).await, ["old", "new"]);
    assert!(!is_held(&registry, "dev-0", NOW + 1).await);
    // and the device item kept what the previous build stored
    let item = device_item(&registry, "dev-0").await;
    assert_eq!(item["sourceManifest"], AttributeValue::S("m.csv".into()));
    assert_eq!(item["enabled"], AttributeValue::Bool(true));
}

/// Makes the `byDevice` index lag as DynamoDB's may: every `Query` answer leaves out the
/// certificates named in `hidden` and shows every other one ACTIVE (a supersede not
/// propagated yet).
#[derive(Debug)]
struct LaggingIndex {
    hidden: HashSet<String>,
}

impl aws_sdk_dynamodb::config::Intercept for LaggingIndex {
    fn name(&self) -> &'static str {
        "LaggingIndex"
    }

    fn modify_before_attempt_completion(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::FinalizerInterceptorContextMut<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let Some(Ok(output)) = context.output_or_error_mut() else {
            return Ok(());
        };
        let Some(output) = output.downcast_mut::<aws_sdk_dynamodb::operation::query::QueryOutput>()
        else {
            return Ok(());
        };
        let items: Vec<HashMap<String, AttributeValue>> = output
            .items
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|item| match item.get("certificateId") {
                Some(AttributeValue::S(id)) => !self.hidden.contains(id),
                _ => true,
            })
            .map(|mut item| {
                item.insert("status".into(), AttributeValue::S("ACTIVE".into()));
                item.remove("revokedAt");
                item.remove("revocationReason");
                item
            })
            .collect();
        output.count = items.len() as i32;
        output.items = Some(items);
        Ok(())
    }
}

#[tokio::test]
async fn the_next_holder_sees_the_last_issuance_however_far_the_index_lags() {
    // given c1, then c2 superseding it, recorded a moment ago
    let registry = registry_with_devices(1).await;
    issue(&registry, certificate("c1", "dev-0", NOW), vec![], NOW)
        .await
        .unwrap();
    issue(
        &registry,
        certificate("c2", "dev-0", NOW + 1),
        vec!["c1".into()],
        NOW + 1,
    )
    .await
    .unwrap();
    // when another client reads the device's certificates while its index shows c1 still
    // ACTIVE and c2 not at all
    let lagging = faulty_registry(
        registry.tables(),
        LaggingIndex {
            hidden: HashSet::from(["c2".to_owned()]),
        },
    )
    .await;
    let held = lagging.certificates_of("dev-0", NOW - 3600).await.unwrap();
    // then it sees them as they are: c1 REVOKED, c2 ACTIVE
    let seen: Vec<(&str, CertificateStatus)> = held
        .iter()
        .map(|c| (c.certificate_id.as_str(), c.status))
        .collect();
    assert_eq!(
        seen,
        [
            ("c1", CertificateStatus::Revoked),
            ("c2", CertificateStatus::Active)
        ]
    );
    // and with the index showing nothing, the last hour's issuances are still there
    let blind = faulty_registry(
        registry.tables(),
        LaggingIndex {
            hidden: HashSet::from(["c1".to_owned(), "c2".to_owned()]),
        },
    )
    .await;
    assert_eq!(ids_of(&blind, "dev-0", NOW - 3600).await, ["c1", "c2"]);
    // while older than `issued_since` only the ACTIVE one is kept
    assert_eq!(ids_of(&blind, "dev-0", NOW + 1).await, ["c2"]);
}

/// Answers `TransactWriteItems` with a DynamoDB error (the other requests go through),
/// as `faults::Refuse` answers every request.
#[derive(Debug)]
pub struct RefuseTransactions {
    pub refuse: faults::Refuse,
    pub this_one: std::sync::Mutex<bool>,
}

impl aws_sdk_dynamodb::config::Intercept for RefuseTransactions {
    fn name(&self) -> &'static str {
        "RefuseTransactions"
    }

    fn modify_before_serialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextMut<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        // Requests run one at a time in these tests.
        *self.this_one.lock().unwrap() = context
            .input()
            .downcast_ref::<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput>()
            .is_some();
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextMut<'_>,
        components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if *self.this_one.lock().unwrap() {
            aws_sdk_dynamodb::config::Intercept::modify_before_deserialization(
                &self.refuse,
                context,
                components,
                cfg,
            )?;
        }
        Ok(())
    }
}

pub fn refuse_transactions(code: &'static str, extra: serde_json::Value) -> RefuseTransactions {
    RefuseTransactions {
        refuse: faults::Refuse(400, code, extra),
        this_one: std::sync::Mutex::new(false),
    }
}

#[tokio::test]
async fn a_claim_asked_for_while_the_holder_records_is_held_for_a_second() {
    // given a client whose every write meets the holder's issuance transaction on the
    // item (moto applies the write; the answer says it was refused, as DynamoDB refuses)
    let registry = registry_with_devices(1).await;
    let conflicted = faulty_registry(
        registry.tables(),
        faults::Refuse(400, "TransactionConflictException", serde_json::json!({})),
    )
    .await;
    // when it asks for the claim, then it is told to come back in a second (503), not 500
    assert_eq!(
        conflicted
            .claim_issuance("dev-0", "B", NOW, 30)
            .await
            .unwrap(),
        ClaimOutcome::Held { until: NOW + 1 }
    );
    // and a release that meets it is retryable
    let claim = IssuanceClaim {
        device_id: "dev-0".into(),
        holder: "B".into(),
        expires_at: NOW + 30,
    };
    let released = conflicted.release_claim(&claim).await;
    assert!(
        matches!(released, Err(PortError::Unavailable { .. })),
        "{released:?}"
    );
}
