//! The `AuditLog` contract (`provisioner_testkit::audit_contract`) on the fake
//! `MemoryRegistry` and on SQLite, where each instance is its own `SqliteRegistry` over
//! one database file (another process).

use std::sync::Arc;

use provisioner_app::memory::MemoryRegistry;
use provisioner_core::{AuditEvent, UnixTime};
use provisioner_store_local::registry::SqliteRegistry;
use provisioner_testkit::audit_contract::{self, AuditBackend};

// SQLite: one database file; each instance its own connections and writer thread.
use crate::support::SqliteFile as Sqlite;

/// The fake: every instance is the same list.
#[derive(Default)]
struct Memory(Arc<MemoryRegistry>);

impl AuditBackend for Memory {
    type Log = Arc<MemoryRegistry>;

    fn instance(&self) -> Self::Log {
        self.0.clone()
    }

    async fn kept(&self, from: UnixTime, until: UnixTime) -> Vec<AuditEvent> {
        let audit = self.0.audit.lock().unwrap();
        audit
            .iter()
            .filter(|e| (from..=until).contains(&e.at))
            .cloned()
            .collect()
    }
}

impl AuditBackend for Sqlite {
    type Log = SqliteRegistry;

    fn instance(&self) -> SqliteRegistry {
        self.open()
    }

    /// `audit_since`, the admin's read (oldest first), cut at `until`.
    async fn kept(&self, from: UnixTime, until: UnixTime) -> Vec<AuditEvent> {
        self.instance()
            .audit_since(from, 100_000)
            .await
            .unwrap()
            .into_iter()
            .map(|entry| entry.event)
            .filter(|e| e.at <= until)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_concurrent_records_are_all_kept() {
    audit_contract::concurrent_records_are_all_kept(&Memory::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_identical_events_are_each_kept() {
    audit_contract::identical_events_are_each_kept(&Memory::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_records_are_all_kept() {
    audit_contract::concurrent_records_are_all_kept(&Sqlite::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_identical_events_are_each_kept() {
    audit_contract::identical_events_are_each_kept(&Sqlite::new()).await;
}
