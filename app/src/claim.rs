//! The per-device issuance claim, as the flow uses it: take it before signing, wait a
//! bounded time while another request holds it, and join that request's certificate when
//! it appears. The claim itself is the registry's ([`DeviceRegistry::claim_issuance`]),
//! so it holds across processes and Lambdas sharing one registry.

use std::time::Duration;

use provisioner_core::{
    CertificateRecord, CertificateStatus, ClaimOutcome, Clock, DeviceKey, DeviceRegistry,
    IssuanceClaim, IssuanceRateLimit, PortError,
};
use rand::{Rng, RngCore};

/// How long a claim lives if its holder never releases it (a crashed process). Longer
/// than any CA's bounded wait (ACM Private CA's is 10 s by default) plus the registry
/// writes around it, so a slow but live holder never loses its claim to a waiter; short
/// enough that a crashed holder blocks its device for two minutes at most.
pub const CLAIM_TTL_SECS: i64 = 120;

/// How soon a waiting request first looks again; each later look waits twice as long, up
/// to [`MAX_POLL_INTERVAL`], with jitter. A local CA's holder finishes within the first
/// looks; on DynamoDB, where a refused conditional write still costs a write unit, twenty
/// waiters on one device make a few dozen writes a second instead of hundreds.
const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The longest wait between two looks.
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(400);

/// The wait before look number `attempt` (0-based): exponential from
/// [`FIRST_POLL_INTERVAL`], capped at [`MAX_POLL_INTERVAL`], then half to all of it.
fn poll_interval(attempt: u32) -> Duration {
    let ceiling = FIRST_POLL_INTERVAL
        .saturating_mul(1 << attempt.min(8))
        .min(MAX_POLL_INTERVAL);
    let millis = ceiling.as_millis() as u64;
    Duration::from_millis(rand::thread_rng().gen_range(millis / 2..=millis))
}

/// A fresh holder id: 128 random bits, hex.
pub fn new_holder() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What waiting for the claim gave.
#[derive(Debug)]
pub enum Serialised {
    /// This request holds the claim: it may decide and sign.
    Claimed(IssuanceClaim),
    /// Another request issued a certificate for this key meanwhile: return it.
    Joined(CertificateRecord),
    /// The wait ended with the claim still held by another.
    StillHeld,
}

/// Takes the device's claim for a fresh holder, waiting up to `wait` while another holds
/// it. While waiting, a certificate for `key` that is ACTIVE and was not among `seen`
/// (the certificates read before) is the other request's issuance: it is joined.
///
/// # Errors
/// The registry's failures.
pub async fn serialise(
    registry: &impl DeviceRegistry,
    clock: &impl Clock,
    device_id: &str,
    key: &DeviceKey,
    seen: &[CertificateRecord],
    wait: Duration,
) -> Result<Serialised, PortError> {
    let holder = new_holder();
    let deadline = tokio::time::Instant::now() + wait;
    let mut attempt = 0;
    loop {
        let now = clock.now();
        match registry
            .claim_issuance(device_id, &holder, now, CLAIM_TTL_SECS)
            .await?
        {
            ClaimOutcome::Claimed(claim) => return Ok(Serialised::Claimed(claim)),
            ClaimOutcome::Held { .. } => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Serialised::StillHeld);
        }
        let pause = poll_interval(attempt).min(deadline - tokio::time::Instant::now());
        attempt += 1;
        tokio::time::sleep(pause).await;
        let current = registry
            .certificates_of(device_id, now - IssuanceRateLimit::WINDOW_SECS)
            .await?;
        if let Some(joined) = current.into_iter().find(|c| {
            c.status == CertificateStatus::Active
                && &c.public_key == key
                && !seen.iter().any(|s| s.certificate_id == c.certificate_id)
        }) {
            return Ok(Serialised::Joined(joined));
        }
    }
}

/// Releases `claim`, logging a failure: the claim then lapses after its TTL.
pub async fn release(registry: &impl DeviceRegistry, claim: &IssuanceClaim) {
    if let Err(e) = registry.release_claim(claim).await {
        tracing::warn!(error = %e, device_id = %claim.device_id, "could not release the issuance claim; it lapses by itself");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_poll_interval_doubles_from_50_ms_to_at_most_400_ms_with_jitter() {
        for (attempt, ceiling) in [(0, 50), (1, 100), (2, 200), (3, 400), (4, 400), (40, 400)] {
            for _ in 0..50 {
                let millis = super::poll_interval(attempt).as_millis() as u64;
                assert!(
                    (ceiling / 2..=ceiling).contains(&millis),
                    "{attempt}: {millis}"
                );
            }
        }
    }

    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    use provisioner_core::{Device, IssuanceProfile};
    use serde_json::Value;

    use super::*;
    use crate::flow::{FlowError, FlowSettings, Ports, Provisioner};
    use crate::memory::{CountingAuthority, ManualClock, MemoryAdapters, MemoryRegistry};

    const VECTORS: &str = include_str!("../../core/tests/vectors/vectors.json");
    const START: i64 = 1_800_000_000;

    struct Harness {
        registry: Arc<MemoryRegistry>,
        authority: Arc<CountingAuthority>,
        flow: Arc<Provisioner<MemoryAdapters>>,
        header: String,
        device_id: String,
        key: DeviceKey,
    }

    /// A flow over the fakes with one registered device (an independent test vector).
    fn harness() -> Harness {
        let all: Value = serde_json::from_str(VECTORS).unwrap();
        let vector = all["csr"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "openssl_p256_der_b64")
            .unwrap();
        let device_id = vector["expect"]["deviceId"].as_str().unwrap().to_owned();
        let key = DeviceKey::parse(vector["expect"]["publicKey"].as_str().unwrap()).unwrap();
        let registry = Arc::new(MemoryRegistry::default());
        registry.devices.lock().unwrap().insert(
            device_id.clone(),
            Device {
                device_id: device_id.clone(),
                public_key: key.clone(),
                enabled: true,
            },
        );
        let authority = Arc::new(CountingAuthority::default());
        let settings = FlowSettings {
            profile: IssuanceProfile::default(),
            rate_limit: IssuanceRateLimit { per_hour: 10 },
            failures_per_minute: 0,
            endpoint: "mqtt.example".into(),
            claim_wait: Duration::from_millis(300),
        };
        let flow = Arc::new(Provisioner::new(
            Ports::<MemoryAdapters> {
                registry: registry.clone(),
                authority: authority.clone(),
                things: registry.clone(),
                audit: registry.clone(),
                clock: Arc::new(ManualClock(AtomicI64::new(START))),
            },
            settings,
        ));
        Harness {
            registry,
            authority,
            flow,
            header: vector["header"].as_str().unwrap().to_owned(),
            device_id,
            key,
        }
    }

    impl Harness {
        fn hold_claim(&self, holder: &str) {
            self.registry.claims.lock().unwrap().insert(
                self.device_id.clone(),
                IssuanceClaim {
                    device_id: self.device_id.clone(),
                    holder: holder.into(),
                    expires_at: START + CLAIM_TTL_SECS,
                },
            );
        }

        fn claims(&self) -> usize {
            self.registry.claims.lock().unwrap().len()
        }

        fn last_audit_code(&self) -> String {
            self.registry
                .audit
                .lock()
                .unwrap()
                .last()
                .unwrap()
                .code
                .clone()
        }
    }

    #[tokio::test]
    async fn while_another_request_holds_the_claim_the_answer_is_503_with_retry_after() {
        // given another request holding the device's claim
        let h = harness();
        h.hold_claim("other");

        // when a request comes and the wait ends
        let error = h.flow.provision(Some(&h.header), None).await.unwrap_err();

        // then 503 issuance_in_progress with Retry-After, and nothing signed
        // (provisioner-http answers it 503 with this Retry-After)
        assert_eq!(error.code(), "issuance_in_progress");
        assert!(matches!(
            error,
            FlowError::IssuanceInProgress {
                retry_after_secs: 1
            }
        ));
        assert_eq!(h.authority.calls(), 0);
        assert_eq!(h.last_audit_code(), "issuance_in_progress");
    }

    #[tokio::test]
    async fn a_waiting_request_joins_the_certificate_the_holder_issues() {
        // given another request holding the claim, about to record a certificate
        let h = harness();
        h.hold_claim("other");
        let flow = h.flow.clone();
        let header = h.header.clone();
        let waiting = tokio::spawn(async move { flow.provision(Some(&header), None).await });
        tokio::time::sleep(Duration::from_millis(100)).await;

        // when the holder records it
        let issued = CertificateRecord {
            certificate_id: "theirs".into(),
            device_id: h.device_id.clone(),
            serial: "01".into(),
            issuer: "test-ca".into(),
            public_key: h.key.clone(),
            issued_at: START,
            not_before: START,
            not_after: START + 365 * 86_400,
            status: CertificateStatus::Active,
            revoked: None,
            certificate_pem: "CERT".into(),
        };
        h.registry.certificates.lock().unwrap().push(issued);

        // then the waiting request returns it, without signing, audited as returned
        let provisioned = waiting.await.unwrap().unwrap();
        assert_eq!(provisioned.certificate_id, "theirs");
        assert!(provisioned.returned_existing);
        assert_eq!(h.authority.calls(), 0);
        assert_eq!(h.last_audit_code(), "returned");
    }

    #[tokio::test]
    async fn a_ca_failure_releases_the_claim() {
        // given a CA that cannot issue now
        let h = harness();
        h.authority.unavailable.store(true, Ordering::SeqCst);

        // when a request comes, then 503 and the claim is free again
        let error = h.flow.provision(Some(&h.header), None).await.unwrap_err();
        assert_eq!(error.code(), "ca_unavailable");
        assert_eq!(h.claims(), 0);

        // and the next request, once the CA is back, is issued at once
        h.authority.unavailable.store(false, Ordering::SeqCst);
        h.flow.provision(Some(&h.header), None).await.unwrap();
        assert_eq!(h.claims(), 0, "the record released the claim");
    }

    #[tokio::test]
    async fn a_retired_issuer_is_signed_again_a_bounded_number_of_times() {
        // given a registry that refuses the CA's certificates: it was retired
        let h = harness();
        h.registry
            .retired_issuers
            .lock()
            .unwrap()
            .push("test-ca".into());

        // when a request comes
        let error = h.flow.provision(Some(&h.header), None).await.unwrap_err();

        // then it signed three times, answered 503 ca_rotated, and released the claim
        assert_eq!(h.authority.calls(), 3);
        assert_eq!(error.code(), "ca_rotated");
        assert!(matches!(
            error,
            FlowError::Port(PortError::IssuerRetired { .. })
        ));
        assert_eq!(h.claims(), 0);
        assert!(h.registry.certificates.lock().unwrap().is_empty());

        // and once the CA signing is the current one, the retry is recorded
        *h.authority.issuer.lock().unwrap() = Some("test-ca-2".into());
        let provisioned = h.flow.provision(Some(&h.header), None).await.unwrap();
        assert!(!provisioned.returned_existing);
    }

    #[test]
    fn holders_are_128_bit_hex_and_differ() {
        let (a, b) = (new_holder(), new_holder());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
