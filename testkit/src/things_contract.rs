//! The `ThingRegistry` contract, written once and run against every MQTT-side registry:
//! the in-memory fake (`MemoryRegistry`), SQLite's local stand-in (`SqliteRegistry`) and
//! IoT Core on moto (`IotThingRegistry`) (docs/ARCHITECTURE.md, "Tests").
//!
//! A backend test implements [`ThingsBackend`] and calls each `pub async fn` from a
//! `#[tokio::test(flavor = "multi_thread")]`. Certificates are real X.509 (rcgen, signed
//! by a CA of the suite's own), recorded in the backend's device registry before they are
//! registered, as the flow records them; their id is SHA-256 of the DER, as IoT Core's is.
//! The cases:
//!
//! - [`registering_again_leaves_one_principal`]: the same certificate registered twice,
//!   then [`CONCURRENT`] times at once on several instances, leaves the thing with that
//!   one principal.
//! - [`devices_registered_at_once_keep_their_own_certificates`]: [`CONCURRENT`] devices
//!   registered at once each end with their own certificate alone.
//! - [`a_new_certificate_replaces_the_superseded_one`]: in the flow's order (register the
//!   new one, then retire the old, twice) and in the other (retire, then register), the
//!   new certificate is attached once; that the old one no longer serves is the
//!   backend's check ([`ThingsBackend::check_superseded`]: IoT Core detaches and revokes
//!   it, the local stand-in lists it in the registry's CRL).

use std::future::Future;
use std::sync::Arc;

use provisioner_core::{
    CertificateRecord, CertificateStatus, DeviceKey, DeviceRegistry, ThingRegistry, UnixTime,
};
use sha2::{Digest, Sha256};

use crate::claimed::RecordClaimed;

/// A fixed start time.
pub const NOW: UnixTime = 1_800_000_000;

/// Registrations started at once.
pub const CONCURRENT: usize = 8;

/// A thing registry the contract runs on, with the device registry it reads.
pub trait ThingsBackend: Send + Sync {
    /// The adapter under test.
    type Things: ThingRegistry + Clone + 'static;
    /// The device registry its certificates are recorded in.
    type Registry: DeviceRegistry + 'static;

    /// A thing registry instance over the shared state (another process or client).
    fn things(&self) -> Self::Things;

    /// The device registry.
    fn registry(&self) -> &Self::Registry;

    /// Registers an enabled device with `key` (an import, as the operator would).
    fn add_device(&self, device_id: &str, key: &DeviceKey) -> impl Future<Output = ()>;

    /// The certificate ids attached to thing `device_id` as principals (the serving
    /// region's, where there are several).
    fn principals(&self, device_id: &str) -> impl Future<Output = Vec<String>>;

    /// Checks that `superseded` (REVOKED in the registry, retired) no longer lets the
    /// device connect, by the backend's own means.
    fn check_superseded(
        &self,
        device_id: &str,
        superseded: &CertificateRecord,
    ) -> impl Future<Output = ()>;
}

/// The suite's CA, and the devices' certificates it signs.
pub struct ContractCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    tag: String,
}

impl Default for ContractCa {
    fn default() -> Self {
        Self::new()
    }
}

impl ContractCa {
    /// A self-signed CA with a name of its own.
    pub fn new() -> Self {
        let tag = format!("{:012x}", rand::random::<u64>() >> 16);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("Things contract CA {tag}"),
        );
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        Self {
            issuer: rcgen::Issuer::new(params, key),
            tag,
        }
    }

    /// A device id of its own per run: IoT things outlive one test on a shared moto.
    pub fn device_id(&self, name: &str) -> String {
        format!("{name}-{}", self.tag)
    }

    /// A new certificate for `device_id` with a fresh key, ACTIVE, issued at `at`.
    pub fn certificate(&self, device_id: &str, at: UnixTime) -> CertificateRecord {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, device_id);
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        let public_key =
            DeviceKey::from_spki_der(&rcgen::PublicKeyData::subject_public_key_info(&key)).unwrap();
        CertificateRecord {
            certificate_id: hex::encode(Sha256::digest(certificate.der())),
            device_id: device_id.to_owned(),
            serial: format!("{:016x}", rand::random::<u64>() | 1 << 60),
            issuer: format!("contract-ca-{}", self.tag),
            public_key,
            issued_at: at,
            not_before: at - 300,
            not_after: at + 86_400,
            status: CertificateStatus::Active,
            revoked: None,
            certificate_pem: certificate.pem(),
        }
    }
}

/// A device registered with the backend and its first certificate, recorded.
async fn device_with_certificate<B: ThingsBackend>(
    backend: &B,
    ca: &ContractCa,
    name: &str,
) -> CertificateRecord {
    let device_id = ca.device_id(name);
    let certificate = ca.certificate(&device_id, NOW);
    backend
        .add_device(&device_id, &certificate.public_key)
        .await;
    backend
        .registry()
        .record_claimed(certificate.clone(), vec![], NOW)
        .await
        .unwrap();
    certificate
}

/// A newer certificate for `old`'s device recorded at `at`, superseding `old`; and `old`
/// as the registry now holds it (REVOKED).
async fn renew<B: ThingsBackend>(
    backend: &B,
    ca: &ContractCa,
    old: &CertificateRecord,
    at: UnixTime,
) -> (CertificateRecord, CertificateRecord) {
    let new = ca.certificate(&old.device_id, at);
    backend
        .registry()
        .record_claimed(new.clone(), vec![old.certificate_id.clone()], at)
        .await
        .unwrap();
    let revoked = backend
        .registry()
        .certificate(&old.certificate_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.status, CertificateStatus::Revoked);
    (new, revoked)
}

/// `certificate` registered by `CONCURRENT` instances at once.
async fn register_at_once<B: ThingsBackend>(backend: &B, certificates: &[CertificateRecord]) {
    let barrier = Arc::new(tokio::sync::Barrier::new(certificates.len()));
    let tasks: Vec<_> = certificates
        .iter()
        .map(|certificate| {
            let things = backend.things();
            let certificate = certificate.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                things.register(&certificate.device_id, &certificate).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

/// The same certificate registered twice, then `CONCURRENT` times at once: one thing,
/// that one principal.
pub async fn registering_again_leaves_one_principal<B: ThingsBackend>(backend: &B) {
    // given a device with a recorded certificate
    let ca = ContractCa::new();
    let certificate = device_with_certificate(backend, &ca, "things-again").await;
    let device_id = certificate.device_id.clone();
    let things = backend.things();

    // when it is registered, and again (the device asked again and got the same one)
    things.register(&device_id, &certificate).await.unwrap();
    things.register(&device_id, &certificate).await.unwrap();

    // then the thing has it as its one principal
    assert_eq!(
        backend.principals(&device_id).await,
        std::slice::from_ref(&certificate.certificate_id)
    );

    // and so after CONCURRENT registrations at once on several instances
    register_at_once(backend, &vec![certificate.clone(); CONCURRENT]).await;
    assert_eq!(
        backend.principals(&device_id).await,
        std::slice::from_ref(&certificate.certificate_id)
    );
}

/// `CONCURRENT` devices registered at once each end with their own certificate alone.
pub async fn devices_registered_at_once_keep_their_own_certificates<B: ThingsBackend>(backend: &B) {
    // given CONCURRENT devices, each with a recorded certificate
    let ca = ContractCa::new();
    let mut certificates = Vec::new();
    for n in 0..CONCURRENT {
        certificates.push(device_with_certificate(backend, &ca, &format!("things-many-{n}")).await);
    }

    // when all are registered at once
    register_at_once(backend, &certificates).await;

    // then each thing holds its own certificate, and only it
    for certificate in &certificates {
        assert_eq!(
            backend.principals(&certificate.device_id).await,
            std::slice::from_ref(&certificate.certificate_id),
            "{}",
            certificate.device_id
        );
    }
}

/// A renewal attaches the new certificate once, whichever comes first of its
/// registration and the old one's retirement; retiring is idempotent.
pub async fn a_new_certificate_replaces_the_superseded_one<B: ThingsBackend>(backend: &B) {
    // given a device whose first certificate is registered
    let ca = ContractCa::new();
    let first = device_with_certificate(backend, &ca, "things-renew").await;
    let device_id = first.device_id.clone();
    let things = backend.things();
    things.register(&device_id, &first).await.unwrap();

    // when a second supersedes it, is registered, and the first is retired twice (the
    // flow's order, and a retry)
    let (second, first) = renew(backend, &ca, &first, NOW + 60).await;
    things.register(&device_id, &second).await.unwrap();
    things
        .retire(&device_id, std::slice::from_ref(&first))
        .await
        .unwrap();
    things
        .retire(&device_id, std::slice::from_ref(&first))
        .await
        .unwrap();

    // then the second is attached, once, and the first no longer serves
    let principals = backend.principals(&device_id).await;
    let attached = |id: &str| principals.iter().filter(|p| *p == id).count();
    assert_eq!(attached(&second.certificate_id), 1, "{principals:?}");
    backend.check_superseded(&device_id, &first).await;

    // when a third supersedes the second, which is retired before the third is registered
    let (third, second) = renew(backend, &ca, &second, NOW + 120).await;
    things
        .retire(&device_id, std::slice::from_ref(&second))
        .await
        .unwrap();
    things.register(&device_id, &third).await.unwrap();

    // then the third is attached, once, and neither older one serves
    let principals = backend.principals(&device_id).await;
    let attached = |id: &str| principals.iter().filter(|p| *p == id).count();
    assert_eq!(attached(&third.certificate_id), 1, "{principals:?}");
    backend.check_superseded(&device_id, &second).await;
    backend.check_superseded(&device_id, &first).await;
}
