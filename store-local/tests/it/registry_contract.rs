//! The `DeviceRegistry` contract (`provisioner_testkit::registry_contract`) on the in-memory
//! fake and on SQLite, where two `SqliteRegistry` instances over one database file stand
//! for two processes.

use provisioner_testkit::registry_contract;

use std::sync::Arc;

use provisioner_app::memory::MemoryRegistry;
use provisioner_core::{Device, DeviceKey};
use provisioner_store_local::registry::SqliteRegistry;
use registry_contract::ContractBackend;

// SQLite: one database file; each instance its own connections and writer thread.
use crate::support::{import_device, SqliteFile as Sqlite};

/// The fake: every instance is the same maps.
#[derive(Default)]
struct Memory(Arc<MemoryRegistry>);

impl ContractBackend for Memory {
    type Registry = Arc<MemoryRegistry>;

    fn instance(&self) -> Self::Registry {
        self.0.clone()
    }

    async fn register(&self, device_id: &str, key: &DeviceKey) {
        self.0.devices.lock().unwrap().insert(
            device_id.to_owned(),
            Device {
                device_id: device_id.to_owned(),
                public_key: key.clone(),
                enabled: true,
            },
        );
    }
}

impl ContractBackend for Sqlite {
    type Registry = SqliteRegistry;

    fn instance(&self) -> Self::Registry {
        self.open()
    }

    async fn register(&self, device_id: &str, key: &DeviceKey) {
        import_device(
            &self.instance(),
            "contract.csv",
            device_id,
            key,
            registry_contract::NOW,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_one_signing_per_decision() {
    registry_contract::invariant_one(&Memory::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_rate_limit_under_concurrency() {
    registry_contract::invariant_two(&Memory::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_replay_costs_nothing_not_owed() {
    registry_contract::invariant_five(&Memory::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_claims() {
    registry_contract::claims(&Memory::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_one_signing_per_decision_across_two_processes() {
    registry_contract::invariant_one(&Sqlite::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_rate_limit_under_concurrency_across_two_processes() {
    registry_contract::invariant_two(&Sqlite::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_replay_costs_nothing_not_owed() {
    registry_contract::invariant_five(&Sqlite::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_claims() {
    registry_contract::claims(&Sqlite::new()).await;
}
