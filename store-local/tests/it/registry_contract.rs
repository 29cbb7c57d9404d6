//! The `DeviceRegistry` contract (`provisioner_testkit::registry_contract`) on the in-memory
//! fake and on SQLite, where two `SqliteRegistry` instances over one database file stand
//! for two processes.

use provisioner_testkit::registry_contract;

use std::sync::Arc;

use provisioner_app::memory::MemoryRegistry;
use provisioner_core::{Device, DeviceKey, ManifestReader};
use provisioner_store_local::registry::{ImportItem, ImportOptions, SqliteRegistry};
use registry_contract::ContractBackend;

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

/// One database file; each instance its own connections and writer thread.
struct Sqlite {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Sqlite {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.sqlite3");
        Self { _dir: dir, path }
    }
}

impl ContractBackend for Sqlite {
    type Registry = SqliteRegistry;

    fn instance(&self) -> Self::Registry {
        SqliteRegistry::open(&self.path).unwrap()
    }

    async fn register(&self, device_id: &str, key: &DeviceKey) {
        let registry = self.instance();
        let csv = format!("{device_id},{key}\n");
        let reader = ManifestReader::new();
        let entries = reader.read(csv.as_bytes()).unwrap();
        let summary = registry
            .import(
                entries.map(|entry| ImportItem {
                    source: "contract.csv",
                    entry,
                }),
                &ImportOptions {
                    now: registry_contract::NOW,
                    ..ImportOptions::default()
                },
            )
            .unwrap();
        assert_eq!(summary.imported, 1);
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
