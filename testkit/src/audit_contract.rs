//! The `AuditLog` contract, written once and run against every audit log: the in-memory
//! fake (`MemoryRegistry`), SQLite (`SqliteRegistry`) and DynamoDB on moto
//! (`DynamoDbRegistry`) (docs/ARCHITECTURE.md, "Tests").
//!
//! A backend test implements [`AuditBackend`] (its [`AuditBackend::kept`] reads the log
//! back through whatever the backend offers) and calls each `pub async fn` from a
//! `#[tokio::test(flavor = "multi_thread")]`. The cases:
//!
//! - [`concurrent_records_are_all_kept`]: [`EVENTS`] different events recorded at once
//!   by several instances are all kept, each with its decision, code and every field.
//! - [`identical_events_are_each_kept`]: the same event recorded several times (at once,
//!   and one after another) is kept as many times: an audit log never merges entries.
//!
//! Not in the contract: the order of reading (each backend's read has its own), and empty
//! strings (DynamoDB stores an empty device id or address as none, since an index key
//! cannot be empty; SQLite keeps it).

use std::future::Future;
use std::sync::Arc;

use provisioner_core::{AuditEvent, AuditLog, UnixTime};

/// A fixed start time (2027-01-15T08:00:00Z): every event of a case falls on one UTC day.
pub const NOW: UnixTime = 1_800_000_000;

/// Events recorded at once by [`concurrent_records_are_all_kept`].
pub const EVENTS: usize = 60;

/// Instances (processes, clients) the events are spread over.
pub const INSTANCES: usize = 3;

/// An audit log the contract runs on.
pub trait AuditBackend: Send + Sync {
    /// The adapter under test.
    type Log: AuditLog + 'static;

    /// An audit log instance over the shared storage (another process or client).
    fn instance(&self) -> Self::Log;

    /// Every event kept with `at` in `from..=until`, in any order.
    fn kept(&self, from: UnixTime, until: UnixTime) -> impl Future<Output = Vec<AuditEvent>>;
}

/// The codes the flow writes: what was done (allow) or the refusal's code (deny).
const CODES: [(&str, &str); 6] = [
    ("allow", "issued"),
    ("allow", "returned"),
    ("deny", "unknown_device"),
    ("deny", "key_mismatch"),
    ("deny", "rate_limited"),
    ("deny", "bad_csr"),
];

/// The `n`th event: its own time, device and code; every fourth without the optional
/// fields (a request that named no device and sent no parsable CSR).
pub fn event(n: usize) -> AuditEvent {
    let (decision, code) = CODES[n % CODES.len()];
    let full = n % 4 != 3;
    AuditEvent {
        at: NOW + n as i64,
        device_id: full.then(|| format!("audit-device-{n}")),
        decision,
        code: code.to_owned(),
        remote_addr: full.then(|| format!("203.0.113.{}", n % 250)),
        fingerprint: full.then(|| format!("{n:064x}")),
        certificate_id: (full && decision == "allow").then(|| format!("{:064x}", n + 1000)),
    }
}

/// Records `events` at once, spread over [`INSTANCES`] instances.
pub async fn record_at_once<B: AuditBackend>(backend: &B, events: Vec<AuditEvent>) {
    let logs: Vec<Arc<B::Log>> = (0..INSTANCES)
        .map(|_| Arc::new(backend.instance()))
        .collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(events.len()));
    let tasks: Vec<_> = events
        .into_iter()
        .enumerate()
        .map(|(n, event)| {
            let log = logs[n % INSTANCES].clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                log.record(event).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

/// Sorted by everything, to compare kept with recorded whatever the read order.
fn sorted(mut events: Vec<AuditEvent>) -> Vec<AuditEvent> {
    events.sort_by(|a, b| {
        (
            a.at,
            &a.device_id,
            a.decision,
            &a.code,
            &a.remote_addr,
            &a.fingerprint,
            &a.certificate_id,
        )
            .cmp(&(
                b.at,
                &b.device_id,
                b.decision,
                &b.code,
                &b.remote_addr,
                &b.fingerprint,
                &b.certificate_id,
            ))
    });
    events
}

/// [`EVENTS`] different events recorded at once are all kept, with their codes and
/// every field.
pub async fn concurrent_records_are_all_kept<B: AuditBackend>(backend: &B) {
    // given EVENTS different events
    let events: Vec<AuditEvent> = (0..EVENTS).map(event).collect();

    // when they are recorded at once by several instances
    record_at_once(backend, events.clone()).await;

    // then each is kept, once, as it was recorded
    let kept = backend.kept(NOW, NOW + EVENTS as i64).await;
    assert_eq!(kept.len(), EVENTS, "{kept:?}");
    for (kept, recorded) in sorted(kept).iter().zip(&sorted(events)) {
        assert_eq!(kept, recorded);
    }
}

/// The same event recorded five times at once and twice more after is kept seven times.
pub async fn identical_events_are_each_kept<B: AuditBackend>(backend: &B) {
    // given one event (a device retrying the same refused request within the second)
    let same = event(2);

    // when it is recorded five times at once, then twice more
    record_at_once(backend, vec![same.clone(); 5]).await;
    let log = backend.instance();
    log.record(same.clone()).await.unwrap();
    log.record(same.clone()).await.unwrap();

    // then the log holds it seven times
    let kept = backend.kept(NOW, NOW + EVENTS as i64).await;
    assert_eq!(kept, vec![same; 7]);
}
