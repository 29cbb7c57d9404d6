//! The generic `DeviceRegistry` contract (`provisioner_testkit::registry_contract`) on
//! DynamoDB over moto: two registries with SDK clients of their own over the same tables
//! stand for two Lambdas or two `serve` processes.

use std::sync::atomic::{AtomicUsize, Ordering};

use provisioner_core::DeviceKey;

use super::registry_contract::{self, ContractBackend};
use super::*;

/// Fresh tables, and two registries over them, each with its own SDK client.
struct Dynamo {
    clients: [DynamoDbRegistry; 2],
    next: AtomicUsize,
}

impl Dynamo {
    async fn new() -> Self {
        let first = registry().await;
        let second = DynamoDbRegistry::from_env(first.tables().clone()).await;
        Self {
            clients: [first, second],
            next: AtomicUsize::new(0),
        }
    }
}

impl ContractBackend for Dynamo {
    type Registry = DynamoDbRegistry;

    /// The two clients in turn (clones share their client).
    fn instance(&self) -> DynamoDbRegistry {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.clients[n % 2].clone()
    }

    async fn register(&self, device_id: &str, key: &DeviceKey) {
        let summary = import(
            &self.clients[0],
            "contract.csv",
            vec![record(device_id, key, 1)],
            ImportOptions {
                now: registry_contract::NOW,
                ..ImportOptions::default()
            },
        )
        .await;
        assert_eq!(summary.imported, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_one_signing_per_decision_across_two_clients() {
    registry_contract::invariant_one(&Dynamo::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_rate_limit_under_concurrency_across_two_clients() {
    registry_contract::invariant_two(&Dynamo::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_replay_costs_nothing_not_owed() {
    registry_contract::invariant_five(&Dynamo::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_claims() {
    registry_contract::claims(&Dynamo::new().await).await;
}
