//! The `AuditLog` contract (`provisioner_testkit::audit_contract`) on DynamoDB over moto:
//! two registries with SDK clients of their own over fresh tables stand for two Lambdas,
//! and the log is read back by UTC day (`audit_events_on`, the admin's read).

use std::sync::atomic::{AtomicUsize, Ordering};

use provisioner_core::{AuditEvent, UnixTime};
use provisioner_store_aws::dynamodb::{DynamoDbRegistry, DynamoDbTables};
use provisioner_testkit::audit_contract::{self, AuditBackend};
use time::OffsetDateTime;

/// Fresh tables, and two registries over them, each with its own SDK client.
struct Dynamo {
    clients: [DynamoDbRegistry; 2],
    next: AtomicUsize,
}

impl Dynamo {
    async fn new() -> Self {
        let sdk = super::sdk().await;
        let prefix = format!("audit-{:016x}-", rand::random::<u64>());
        let first = DynamoDbRegistry::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            DynamoDbTables::with_prefix(&prefix),
        );
        first.create_tables().await.unwrap();
        let second =
            DynamoDbRegistry::new(aws_sdk_dynamodb::Client::new(&sdk), first.tables().clone());
        Self {
            clients: [first, second],
            next: AtomicUsize::new(0),
        }
    }
}

impl AuditBackend for Dynamo {
    type Log = DynamoDbRegistry;

    /// The two clients in turn (clones share their client).
    fn instance(&self) -> DynamoDbRegistry {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.clients[n % 2].clone()
    }

    async fn kept(&self, from: UnixTime, until: UnixTime) -> Vec<AuditEvent> {
        let date = |at| OffsetDateTime::from_unix_timestamp(at).unwrap().date();
        let mut day = date(from);
        let mut kept = Vec::new();
        while day <= date(until) {
            kept.extend(self.clients[0].audit_events_on(day).await.unwrap());
            day = day.next_day().unwrap();
        }
        kept.retain(|e| (from..=until).contains(&e.at));
        kept
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_concurrent_records_are_all_kept() {
    audit_contract::concurrent_records_are_all_kept(&Dynamo::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_identical_events_are_each_kept() {
    audit_contract::identical_events_are_each_kept(&Dynamo::new().await).await;
}
