//! The `CertificateAuthority` contract (`provisioner_testkit::authority_contract`) on the
//! fake `CountingAuthority` and on the on-disk CA, loaded once (`LocalAuthority`) and
//! followed across rotations (`CurrentAuthority`).

use std::sync::Arc;

use provisioner_app::memory::CountingAuthority;
use provisioner_core::{CertificateAuthority, CertificateRecord, IssuanceProfile};
use provisioner_store_local::authority::LocalAuthority;
use provisioner_store_local::CurrentAuthority;
use provisioner_testkit::authority_contract::{self, AuthorityBackend};

/// The fake: it numbers its certificates instead of signing X.509, so
/// `certifies_the_csr` does not apply to it (`memory_signs_no_x509` pins that down).
#[derive(Default)]
struct Memory(Arc<CountingAuthority>);

impl AuthorityBackend for Memory {
    type Authority = CountingAuthority;

    fn authority(&self) -> Arc<CountingAuthority> {
        self.0.clone()
    }

    /// Like the local CA, the fake keeps no revocations: its `retire` is the port's
    /// default (the registry already holds them REVOKED). Nothing more to check.
    async fn check_retired(&self, _retired: &[CertificateRecord], _foreign: &CertificateRecord) {}
}

/// A development CA (root and issuing intermediate) in a directory of its own.
struct OnDisk<A> {
    _dir: tempfile::TempDir,
    authority: Arc<A>,
}

fn ca_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    LocalAuthority::init_development(&dir.path().join("ca"), authority_contract::now()).unwrap();
    dir
}

impl OnDisk<LocalAuthority> {
    fn new() -> Self {
        let dir = ca_dir();
        let authority = LocalAuthority::load(&dir.path().join("ca")).unwrap();
        Self {
            _dir: dir,
            authority: Arc::new(authority),
        }
    }
}

impl OnDisk<CurrentAuthority> {
    fn new() -> Self {
        let dir = ca_dir();
        let authority = CurrentAuthority::open(dir.path().join("ca")).unwrap();
        Self {
            _dir: dir,
            authority: Arc::new(authority),
        }
    }
}

impl<A: CertificateAuthority + 'static> AuthorityBackend for OnDisk<A> {
    type Authority = A;

    fn authority(&self) -> Arc<A> {
        self.authority.clone()
    }

    /// The local CA's CRLs are made from the registry's REVOKED certificates
    /// (`crl_refresh`), so `retire` has nothing to do at the CA (the port's default).
    async fn check_retired(&self, _retired: &[CertificateRecord], _foreign: &CertificateRecord) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_concurrent_issuance_gives_distinct_serials() {
    authority_contract::concurrent_issuance_gives_distinct_serials(&Memory::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_retire_is_idempotent() {
    authority_contract::retire_is_idempotent(&Memory::default()).await;
}

/// Why `certifies_the_csr` is not run on the fake: its certificates are not X.509. If
/// the fake ever signs real certificates, this fails and the case should be added.
#[tokio::test]
async fn memory_signs_no_x509_so_certifies_the_csr_does_not_apply() {
    let request = authority_contract::verified_csr("authority-fake");
    let signed = CountingAuthority::default()
        .issue(&request, "key", &IssuanceProfile::default(), 0)
        .await
        .unwrap();
    assert!(!authority_contract::parses_as_x509(&signed.der));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_ca_certifies_the_csr() {
    authority_contract::certifies_the_csr(&OnDisk::<LocalAuthority>::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_ca_concurrent_issuance_gives_distinct_serials() {
    authority_contract::concurrent_issuance_gives_distinct_serials(
        &OnDisk::<LocalAuthority>::new(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_ca_retire_is_idempotent() {
    authority_contract::retire_is_idempotent(&OnDisk::<LocalAuthority>::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn current_ca_certifies_the_csr() {
    authority_contract::certifies_the_csr(&OnDisk::<CurrentAuthority>::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn current_ca_concurrent_issuance_gives_distinct_serials() {
    authority_contract::concurrent_issuance_gives_distinct_serials(
        &OnDisk::<CurrentAuthority>::new(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn current_ca_retire_is_idempotent() {
    authority_contract::retire_is_idempotent(&OnDisk::<CurrentAuthority>::new()).await;
}
