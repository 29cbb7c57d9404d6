//! In-memory fakes of every port, for the flow's and the router's unit tests. The real
//! adapters (`local`) are tested against SQLite and OpenSSL in `tests/`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use provisioner_core::{
    AuditEvent, AuditLog, CertificateAuthority, CertificateRecord, CertificateStatus, ClaimOutcome,
    Clock, Device, DeviceRegistry, IssuanceClaim, IssuanceProfile, PortError, RevocationReason,
    SignedCertificate, ThingRegistry, UnixTime, VerifiedCsr,
};

use crate::flow::Adapters;

/// Devices, certificates, things and audit events in maps.
#[derive(Debug, Default)]
pub struct MemoryRegistry {
    /// Registered devices.
    pub devices: Mutex<HashMap<String, Device>>,
    /// Issued certificates.
    pub certificates: Mutex<Vec<CertificateRecord>>,
    /// thing name -> attached certificate ids.
    pub things: Mutex<HashMap<String, Vec<String>>>,
    /// The audit log.
    pub audit: Mutex<Vec<AuditEvent>>,
    /// device id -> the issuance claim held on it.
    pub claims: Mutex<HashMap<String, IssuanceClaim>>,
    /// Issuers a rotation retired: certificates they sign are refused, as the SQLite
    /// registry refuses those of a CA no longer current.
    pub retired_issuers: Mutex<Vec<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl DeviceRegistry for MemoryRegistry {
    fn device(
        &self,
        device_id: &str,
    ) -> impl Future<Output = Result<Option<Device>, PortError>> + Send {
        let found = lock(&self.devices).get(device_id).cloned();
        async move { Ok(found) }
    }

    fn certificates_of(
        &self,
        device_id: &str,
        issued_since: UnixTime,
    ) -> impl Future<Output = Result<Vec<CertificateRecord>, PortError>> + Send {
        let found: Vec<_> = lock(&self.certificates)
            .iter()
            .filter(|c| c.device_id == device_id)
            .filter(|c| c.status == CertificateStatus::Active || c.issued_at >= issued_since)
            .cloned()
            .collect();
        async move { Ok(found) }
    }

    fn certificate(
        &self,
        certificate_id: &str,
    ) -> impl Future<Output = Result<Option<CertificateRecord>, PortError>> + Send {
        let found = lock(&self.certificates)
            .iter()
            .find(|c| c.certificate_id == certificate_id)
            .cloned();
        async move { Ok(found) }
    }

    fn claim_issuance(
        &self,
        device_id: &str,
        holder: &str,
        now: UnixTime,
        ttl_secs: i64,
    ) -> impl Future<Output = Result<ClaimOutcome, PortError>> + Send {
        let mut claims = lock(&self.claims);
        let outcome = match claims.get(device_id) {
            Some(other) if other.holder != holder && now < other.expires_at => ClaimOutcome::Held {
                until: other.expires_at,
            },
            _ => {
                let claim = IssuanceClaim {
                    device_id: device_id.to_owned(),
                    holder: holder.to_owned(),
                    expires_at: now + ttl_secs,
                };
                claims.insert(device_id.to_owned(), claim.clone());
                ClaimOutcome::Claimed(claim)
            }
        };
        async move { Ok(outcome) }
    }

    fn release_claim(
        &self,
        claim: &IssuanceClaim,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        let mut claims = lock(&self.claims);
        if claims
            .get(&claim.device_id)
            .is_some_and(|held| held.holder == claim.holder)
        {
            claims.remove(&claim.device_id);
        }
        async { Ok(()) }
    }

    fn record_issuance(
        &self,
        certificate: CertificateRecord,
        supersede: Vec<String>,
        claim: &IssuanceClaim,
        now: UnixTime,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        // The claims' lock is held across the write: the check and the insert are one
        // atomic step, as the real registries' transactions are.
        let mut claims = lock(&self.claims);
        let ours = claims
            .get(&certificate.device_id)
            .is_some_and(|held| held.holder == claim.holder);
        if !ours {
            let device_id = certificate.device_id;
            return std::future::ready(Err(PortError::ClaimLost { device_id }));
        }
        if lock(&self.retired_issuers).contains(&certificate.issuer) {
            let issuer = certificate.issuer;
            return std::future::ready(Err(PortError::IssuerRetired { issuer }));
        }
        claims.remove(&certificate.device_id);
        let mut certificates = lock(&self.certificates);
        for c in certificates
            .iter_mut()
            .filter(|c| supersede.contains(&c.certificate_id))
        {
            c.status = CertificateStatus::Revoked;
            c.revoked = Some((now, RevocationReason::Superseded));
        }
        certificates.push(certificate);
        std::future::ready(Ok(()))
    }
}

impl ThingRegistry for MemoryRegistry {
    fn register(
        &self,
        device_id: &str,
        certificate: &CertificateRecord,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        let mut things = lock(&self.things);
        let principals = things.entry(device_id.to_owned()).or_default();
        if !principals.contains(&certificate.certificate_id) {
            principals.push(certificate.certificate_id.clone());
        }
        async { Ok(()) }
    }
}

impl AuditLog for MemoryRegistry {
    fn record(&self, event: AuditEvent) -> impl Future<Output = Result<(), PortError>> + Send {
        lock(&self.audit).push(event);
        async { Ok(()) }
    }
}

/// A CA that "signs" by numbering: its certificates are not X.509, which the flow never
/// looks inside. Like ACM Private CA, it answers a repeated idempotency key with the
/// certificate it already minted. Set `unavailable` to make it answer 503.
#[derive(Debug, Default)]
pub struct CountingAuthority {
    issued: AtomicU64,
    calls: AtomicU64,
    /// The issuer it names (`test-ca` when unset): a test "rotates" it by setting another.
    pub issuer: Mutex<Option<String>>,
    /// idempotency key -> (serial, when first used)
    by_idempotency_key: Mutex<HashMap<String, (u64, UnixTime)>>,
    /// When set, `issue` fails as a throttled CA does.
    pub unavailable: std::sync::atomic::AtomicBool,
    /// Milliseconds each signing takes, as a real CA's does: races between requests need
    /// the time between the registry read and the record to be more than an instant.
    pub signing_millis: AtomicU64,
}

impl CountingAuthority {
    /// How long a key is remembered: ACM Private CA's idempotency tokens time out after
    /// five minutes.
    pub const IDEMPOTENCY_SECS: i64 = 300;

    /// How many distinct certificates were minted.
    pub fn minted(&self) -> u64 {
        self.issued.load(Ordering::SeqCst)
    }

    /// How many times `issue` was called (the CA capacity spent).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl CertificateAuthority for CountingAuthority {
    fn issue(
        &self,
        request: &VerifiedCsr,
        idempotency_key: &str,
        profile: &IssuanceProfile,
        now: UnixTime,
    ) -> impl Future<Output = Result<SignedCertificate, PortError>> + Send {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let issuer = lock(&self.issuer)
            .clone()
            .unwrap_or_else(|| "test-ca".into());
        let result = if self.unavailable.load(Ordering::SeqCst) {
            Err(PortError::Unavailable {
                what: "the test CA".into(),
                retry_after_secs: 7,
            })
        } else {
            let mut keys = lock(&self.by_idempotency_key);
            let serial = match keys.get(idempotency_key) {
                Some(&(serial, at)) if now - at < Self::IDEMPOTENCY_SECS => serial,
                _ => {
                    let serial = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
                    keys.insert(idempotency_key.to_owned(), (serial, now));
                    serial
                }
            };
            let (not_before, not_after) = profile.validity_at(now);
            Ok(SignedCertificate {
                der: format!("{}/{serial}", request.device_id).into_bytes(),
                pem: format!("CERT {} #{serial}\n", request.device_id),
                serial: format!("{serial:032x}"),
                issuer,
                not_before,
                not_after,
            })
        };
        let delay = std::time::Duration::from_millis(self.signing_millis.load(Ordering::SeqCst));
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            result
        }
    }

    async fn chain_pem(&self) -> Result<String, PortError> {
        Ok("CHAIN\n".to_owned())
    }
}

/// A clock the test sets.
#[derive(Debug)]
pub struct ManualClock(pub AtomicI64);

impl ManualClock {
    /// Moves the clock forward.
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        self.0.load(Ordering::SeqCst)
    }
}

/// The in-memory adapter set.
#[derive(Debug)]
pub struct MemoryAdapters;

impl Adapters for MemoryAdapters {
    type Registry = std::sync::Arc<MemoryRegistry>;
    type Authority = std::sync::Arc<CountingAuthority>;
    type Things = std::sync::Arc<MemoryRegistry>;
    type Audit = std::sync::Arc<MemoryRegistry>;
    type Clock = std::sync::Arc<ManualClock>;
}
