//! The `DeviceRegistry` contract, written once and run against every adapter: the
//! in-memory fake and SQLite (`tests/registry_contract.rs`), DynamoDB on moto.
//!
//! Each case drives the real [`Provisioner`] flow over registry instances that share one
//! storage ([`ContractBackend::instance`]: two `SqliteRegistry` over one file are two
//! processes), with [`CountingAuthority`] counting the signing calls, and races dozens of
//! requests per round on a multi-threaded runtime. The cases are the invariants of issue
//! 11: one signing per decision (1), the rate limit under concurrency (2), a replayed CSR
//! costing nothing not already owed (5), and the claim's own contract (expiry, lost claim,
//! idempotent release).
//!
//! A backend test includes this file (`#[path = "support/registry_contract.rs"] mod
//! registry_contract;`), implements [`ContractBackend`] and calls each `pub async fn`
//! from a `#[tokio::test(flavor = "multi_thread")]`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use base64::Engine;
use provisioner_app::flow::{Adapters, FlowError, FlowSettings, Ports, Provisioner};
use provisioner_app::memory::{CountingAuthority, ManualClock, MemoryRegistry};
use provisioner_core::{
    CertificateRecord, CertificateStatus, ClaimOutcome, DeviceKey, DeviceRegistry, IssuanceProfile,
    IssuanceRateLimit, PortError, Refusal, UnixTime,
};

/// A fixed start time.
pub const NOW: UnixTime = 1_800_000_000;
const DAY: i64 = 86_400;

/// Concurrent requests per round.
pub const RACERS: usize = 40;
/// Rounds per case.
pub const ROUNDS: usize = 3;

/// A storage the contract runs on.
pub trait ContractBackend: Send + Sync {
    /// The adapter under test.
    type Registry: DeviceRegistry + 'static;

    /// A new registry instance over the shared storage: each call stands for another
    /// process (another connection, another writer, another SDK client).
    fn instance(&self) -> Self::Registry;

    /// Registers an enabled device with `key` (an import, as the operator would).
    fn register(&self, device_id: &str, key: &DeviceKey) -> impl Future<Output = ()>;
}

/// The flow's adapters for the contract: the registry under test; the rest fakes.
pub struct ContractAdapters<R>(PhantomData<fn() -> R>);

impl<R: DeviceRegistry + 'static> Adapters for ContractAdapters<R> {
    type Registry = R;
    type Authority = Arc<CountingAuthority>;
    type Things = Arc<MemoryRegistry>;
    type Audit = Arc<MemoryRegistry>;
    type Clock = Arc<ManualClock>;
}

/// A simulated device: its id and secure-element key.
pub struct TestDevice {
    /// The device id.
    pub id: String,
    key: rcgen::KeyPair,
}

impl TestDevice {
    /// A device with a fresh P-256 key.
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            key: rcgen::KeyPair::generate().unwrap(),
        }
    }

    /// Its public key as the registry holds it.
    pub fn public_key(&self) -> DeviceKey {
        DeviceKey::parse(&self.key.public_key_pem()).unwrap()
    }

    /// A `device-csr` header: a new CSR each call (ECDSA signatures are randomised), for
    /// the same key and CN = the device id.
    pub fn csr_header(&self) -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, self.id.as_str());
        let csr = params.serialize_request(&self.key).unwrap();
        base64::engine::general_purpose::STANDARD.encode(csr.der())
    }
}

/// Several flows ("processes"), one per registry instance, sharing one CA and clock.
pub struct Fleet<R: DeviceRegistry + 'static> {
    /// The flows.
    pub flows: Vec<Arc<Provisioner<ContractAdapters<R>>>>,
    /// The CA, counting its signing calls.
    pub authority: Arc<CountingAuthority>,
    /// The shared clock.
    pub clock: Arc<ManualClock>,
    /// A registry instance for the test's own reads.
    pub reader: R,
}

fn settings(validity_days: i64, renew_within_days: i64, rate_limit: u32) -> FlowSettings {
    FlowSettings {
        profile: IssuanceProfile {
            validity_secs: validity_days * DAY,
            renew_within_secs: renew_within_days * DAY,
            ..IssuanceProfile::default()
        },
        rate_limit: IssuanceRateLimit {
            per_hour: rate_limit,
        },
        failures_per_minute: 0,
        endpoint: "mqtt.example".into(),
        claim_wait: FlowSettings::DEFAULT_CLAIM_WAIT,
    }
}

/// Two flows over two instances of the backend's storage.
pub fn fleet<B: ContractBackend>(backend: &B, settings: FlowSettings) -> Fleet<B::Registry> {
    let authority = Arc::new(CountingAuthority::default());
    // A CA that takes as long as a quick real one: the racers overlap for real.
    authority.signing_millis.store(20, Ordering::SeqCst);
    let clock = Arc::new(ManualClock(AtomicI64::new(NOW)));
    let side = Arc::new(MemoryRegistry::default());
    let flows = (0..2)
        .map(|_| {
            Arc::new(Provisioner::new(
                Ports::<ContractAdapters<B::Registry>> {
                    registry: backend.instance(),
                    authority: authority.clone(),
                    things: side.clone(),
                    audit: side.clone(),
                    clock: clock.clone(),
                },
                settings.clone(),
            ))
        })
        .collect();
    Fleet {
        flows,
        authority,
        clock,
        reader: backend.instance(),
    }
}

/// One request's answer, as the HTTP layer would classify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200 with this certificate id.
    Certificate(String),
    /// 503 with `Retry-After` (another request is issuing, or lost a race).
    Retry,
    /// 429: the rate limit.
    RateLimited,
}

/// `RACERS` requests at once, spread over the flows, each with its own CSR of the device.
pub async fn race<R: DeviceRegistry + 'static>(
    fleet: &Fleet<R>,
    device: &TestDevice,
    headers: Option<&[String]>,
) -> Vec<Answer> {
    let headers: Vec<String> = match headers {
        Some(given) => given.to_vec(),
        None => (0..4).map(|_| device.csr_header()).collect(),
    };
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let flow = fleet.flows[i % fleet.flows.len()].clone();
            let header = headers[i % headers.len()].clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                flow.provision(Some(&header), None).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(match task.await.unwrap() {
            Ok(provisioned) => Answer::Certificate(provisioned.certificate_id),
            Err(FlowError::IssuanceInProgress { .. })
            | Err(FlowError::Port(PortError::ClaimLost { .. })) => Answer::Retry,
            Err(FlowError::Refused(Refusal::RateLimited { .. })) => Answer::RateLimited,
            Err(other) => panic!("a racing request failed: {other:?}"),
        });
    }
    answers
}

fn ids(answers: &[Answer]) -> BTreeSet<String> {
    answers
        .iter()
        .filter_map(|a| match a {
            Answer::Certificate(id) => Some(id.clone()),
            _ => None,
        })
        .collect()
}

/// The device's ACTIVE certificates as the registry holds them.
pub async fn active<R: DeviceRegistry>(registry: &R, device_id: &str) -> Vec<CertificateRecord> {
    registry
        .certificates_of(device_id, UnixTime::MAX)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.status == CertificateStatus::Active)
        .collect()
}

/// Invariant 1: any number of concurrent requests for one device, on several
/// processes, with different CSRs of the same key, lead to one signing call and one
/// certificate; every answer is that certificate or a retryable 503.
pub async fn invariant_one<B: ContractBackend>(backend: &B) {
    // given a registered device and two processes with the default settings
    let device = TestDevice::new("contract-one");
    backend.register(&device.id, &device.public_key()).await;
    let fleet = fleet(backend, settings(365, 30, 10));

    let mut certificate = None;
    for round in 0..ROUNDS {
        // when RACERS requests arrive at once
        let answers = race(&fleet, &device, None).await;

        // then one signing call in all, and every 200 carries the one certificate
        assert_eq!(fleet.authority.calls(), 1, "round {round}: {answers:?}");
        let issued = ids(&answers);
        assert_eq!(issued.len(), 1, "round {round}: {answers:?}");
        assert!(answers
            .iter()
            .all(|a| matches!(a, Answer::Certificate(_) | Answer::Retry)));
        let id = issued.into_iter().next().unwrap();
        assert_eq!(certificate.get_or_insert(id.clone()), &id);
        let held = active(&fleet.reader, &device.id).await;
        assert_eq!(held.len(), 1, "round {round}");
        assert_eq!(held[0].certificate_id, id);
    }
}

/// Invariant 2: with every request a renewal and a limit of 2 an hour, RACERS
/// concurrent requests in several rounds yield exactly 2 certificates in the hour; the
/// rest get the current certificate or 429 (or a retryable 503).
pub async fn invariant_two<B: ContractBackend>(backend: &B) {
    // given renew-within equal to the validity, so every request renews
    let device = TestDevice::new("contract-two");
    backend.register(&device.id, &device.public_key()).await;
    let fleet = fleet(backend, settings(30, 30, 2));

    let mut answered = Vec::new();
    for _ in 0..ROUNDS {
        answered.extend(race(&fleet, &device, None).await);
        fleet.clock.advance(60);
    }

    // then two signings, two certificates, and only them or 429 or 503 as answers
    assert_eq!(fleet.authority.calls(), 2, "{answered:?}");
    let issued = ids(&answered);
    assert_eq!(issued.len(), 2, "{answered:?}");
    assert!(answered.contains(&Answer::RateLimited));
    let all = fleet
        .reader
        .certificates_of(&device.id, NOW - IssuanceRateLimit::WINDOW_SECS)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(active(&fleet.reader, &device.id).await.len(), 1);
}

/// Invariant 5: a replayed CSR, many times and at once, outside the renewal window gets
/// the current certificate and inside it triggers one renewal at most; the device's own
/// next request succeeds and is never rate-limited.
pub async fn invariant_five<B: ContractBackend>(backend: &B) {
    // given a device provisioned with the defaults (365 days, renew within 30, 10 an hour)
    let device = TestDevice::new("contract-five");
    backend.register(&device.id, &device.public_key()).await;
    let fleet = fleet(backend, settings(365, 30, 10));
    let seen = vec![device.csr_header()];
    let first = fleet.flows[0]
        .provision(Some(&seen[0]), None)
        .await
        .unwrap()
        .certificate_id;

    // when an attacker replays the seen CSR outside the renewal window
    for _ in 0..ROUNDS {
        let answers = race(&fleet, &device, Some(&seen)).await;
        assert!(answers
            .iter()
            .all(|a| a == &Answer::Certificate(first.clone())));
    }
    assert_eq!(fleet.authority.calls(), 1);

    // and again inside the renewal window
    fleet.clock.advance(340 * DAY);
    let mut renewed = BTreeSet::new();
    for _ in 0..ROUNDS {
        let answers = race(&fleet, &device, Some(&seen)).await;
        assert!(!answers.contains(&Answer::RateLimited));
        renewed.extend(ids(&answers));
    }

    // then one renewal at most, and the device's next request gets it, without a 429
    assert_eq!(fleet.authority.calls(), 2);
    assert_eq!(renewed.len(), 1);
    let next = fleet.flows[1]
        .provision(Some(&device.csr_header()), None)
        .await
        .unwrap();
    assert!(renewed.contains(&next.certificate_id));
    assert_ne!(next.certificate_id, first);
    assert_eq!(active(&fleet.reader, &device.id).await.len(), 1);
}

/// A certificate record for the claim cases.
pub fn record(id: &str, device_id: &str, key: &DeviceKey, at: UnixTime) -> CertificateRecord {
    CertificateRecord {
        certificate_id: id.into(),
        device_id: device_id.into(),
        serial: format!("{at:x}"),
        issuer: "contract-ca".into(),
        public_key: key.clone(),
        issued_at: at,
        not_before: at - 300,
        not_after: at + DAY,
        status: CertificateStatus::Active,
        revoked: None,
        certificate_pem: format!("-----BEGIN CERTIFICATE-----\n{id}\n-----END CERTIFICATE-----\n"),
    }
}

fn claimed(outcome: ClaimOutcome) -> provisioner_core::IssuanceClaim {
    match outcome {
        ClaimOutcome::Claimed(claim) => claim,
        ClaimOutcome::Held { until } => panic!("the claim is held until {until}"),
    }
}

/// The claim: exclusive across instances until released or lapsed; a lapsed claim
/// another took is lost (the record is refused); a lapsed one nobody took still records;
/// release is idempotent and only the holder's.
pub async fn claims<B: ContractBackend>(backend: &B) {
    let device = TestDevice::new("contract-claims");
    let key = device.public_key();
    backend.register(&device.id, &key).await;
    let (one, two) = (backend.instance(), backend.instance());
    let ttl = 120;

    // a claim excludes another holder, on another instance, until it lapses
    let a = claimed(one.claim_issuance(&device.id, "a", NOW, ttl).await.unwrap());
    assert_eq!(a.expires_at, NOW + ttl);
    assert_eq!(
        two.claim_issuance(&device.id, "b", NOW + 60, ttl)
            .await
            .unwrap(),
        ClaimOutcome::Held { until: NOW + ttl }
    );
    let b = claimed(
        two.claim_issuance(&device.id, "b", NOW + ttl, ttl)
            .await
            .unwrap(),
    );

    // the first holder's record is refused: its claim was taken
    let refused = one
        .record_issuance(record("c-a", &device.id, &key, NOW), vec![], &a, NOW + ttl)
        .await;
    assert_eq!(
        refused,
        Err(PortError::ClaimLost {
            device_id: device.id.clone()
        })
    );
    assert!(active(&two, &device.id).await.is_empty());

    // its release is a no-op: b still holds the claim
    one.release_claim(&a).await.unwrap();
    assert!(matches!(
        one.claim_issuance(&device.id, "c", NOW + ttl + 1, ttl)
            .await
            .unwrap(),
        ClaimOutcome::Held { .. }
    ));

    // b records long after its claim lapsed, since nobody took it; the record releases it
    two.record_issuance(
        record("c-b", &device.id, &key, NOW),
        vec![],
        &b,
        NOW + 10 * ttl,
    )
    .await
    .unwrap();
    assert_eq!(active(&one, &device.id).await.len(), 1);
    let c = claimed(
        one.claim_issuance(&device.id, "c", NOW + 10 * ttl, ttl)
            .await
            .unwrap(),
    );

    // a released claim is free at once, and releasing twice is harmless
    one.release_claim(&c).await.unwrap();
    one.release_claim(&c).await.unwrap();
    let d = claimed(
        two.claim_issuance(&device.id, "d", NOW + 10 * ttl, ttl)
            .await
            .unwrap(),
    );
    // a record under a claim already used (released) is refused
    assert_eq!(
        one.record_issuance(record("c-c", &device.id, &key, NOW), vec![], &c, NOW)
            .await,
        Err(PortError::ClaimLost {
            device_id: device.id.clone()
        })
    );
    two.release_claim(&d).await.unwrap();
}
