//! The `ThingRegistry` contract (`provisioner_testkit::things_contract`) on the fake
//! `MemoryRegistry` and on SQLite, the local stand-in for IoT Core, where each instance
//! is its own `SqliteRegistry` over one database file (another process).

use std::sync::Arc;

use provisioner_app::memory::MemoryRegistry;
use provisioner_core::{
    CertificateRecord, CertificateStatus, Device, DeviceKey, DeviceRegistry, RevocationReason,
};
use provisioner_store_local::registry::SqliteRegistry;
use provisioner_testkit::things_contract::{self, ThingsBackend};

use crate::support::import_device;

/// The fake: every instance is the same maps.
#[derive(Default)]
struct Memory(Arc<MemoryRegistry>);

impl ThingsBackend for Memory {
    type Things = Arc<MemoryRegistry>;
    type Registry = Arc<MemoryRegistry>;

    fn things(&self) -> Self::Things {
        self.0.clone()
    }

    fn registry(&self) -> &Self::Registry {
        &self.0
    }

    async fn add_device(&self, device_id: &str, key: &DeviceKey) {
        self.0.devices.lock().unwrap().insert(
            device_id.to_owned(),
            Device {
                device_id: device_id.to_owned(),
                public_key: key.clone(),
                enabled: true,
            },
        );
    }

    async fn principals(&self, device_id: &str) -> Vec<String> {
        let things = self.0.things.lock().unwrap();
        things.get(device_id).cloned().unwrap_or_default()
    }

    /// The fake has no MQTT side to refuse a connection: the registry's REVOKED
    /// (superseded) status is all there is.
    async fn check_superseded(&self, _device_id: &str, superseded: &CertificateRecord) {
        let held = self
            .0
            .certificate(&superseded.certificate_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(held.status, CertificateStatus::Revoked);
        assert!(matches!(
            held.revoked,
            Some((_, RevocationReason::Superseded))
        ));
    }
}

/// One database file; each instance its own connections and writer thread.
struct Sqlite {
    _dir: tempfile::TempDir,
    registry: SqliteRegistry,
}

impl Sqlite {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let registry = SqliteRegistry::open(dir.path().join("registry.sqlite3")).unwrap();
        Self {
            _dir: dir,
            registry,
        }
    }
}

impl ThingsBackend for Sqlite {
    type Things = SqliteRegistry;
    type Registry = SqliteRegistry;

    fn things(&self) -> SqliteRegistry {
        SqliteRegistry::open(self.registry.path()).unwrap()
    }

    fn registry(&self) -> &SqliteRegistry {
        &self.registry
    }

    async fn add_device(&self, device_id: &str, key: &DeviceKey) {
        import_device(
            &self.registry,
            "things.csv",
            device_id,
            key,
            things_contract::NOW,
        );
    }

    async fn principals(&self, device_id: &str) -> Vec<String> {
        self.registry
            .thing(device_id)
            .await
            .unwrap()
            .map(|thing| thing.principals)
            .unwrap_or_default()
    }

    /// The local broker refuses what the issuer's CRL lists, and the CRL is made from
    /// the registry's revoked certificates of that issuer: the superseded one must be
    /// among them, reason superseded.
    async fn check_superseded(&self, _device_id: &str, superseded: &CertificateRecord) {
        let listed = self
            .registry
            .revoked_for_issuer(&superseded.issuer)
            .await
            .unwrap();
        assert!(
            listed.iter().any(|entry| entry.serial == superseded.serial
                && entry.reason == RevocationReason::Superseded),
            "{listed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_registering_again_leaves_one_principal() {
    things_contract::registering_again_leaves_one_principal(&Memory::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_devices_registered_at_once_keep_their_own_certificates() {
    things_contract::devices_registered_at_once_keep_their_own_certificates(&Memory::default())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_a_new_certificate_replaces_the_superseded_one() {
    things_contract::a_new_certificate_replaces_the_superseded_one(&Memory::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_registering_again_leaves_one_principal() {
    things_contract::registering_again_leaves_one_principal(&Sqlite::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_devices_registered_at_once_keep_their_own_certificates() {
    things_contract::devices_registered_at_once_keep_their_own_certificates(&Sqlite::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_new_certificate_replaces_the_superseded_one() {
    things_contract::a_new_certificate_replaces_the_superseded_one(&Sqlite::new()).await;
}
