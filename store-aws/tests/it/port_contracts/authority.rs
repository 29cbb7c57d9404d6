//! The `CertificateAuthority` contract (`provisioner_testkit::authority_contract`) on ACM
//! Private CA over moto, under a root of its own (`moto::pca_root`).
//!
//! What moto cannot show here (see `acm_pca_authority.rs`): it ignores `Validity` and
//! `IdempotencyToken` (neither is in the contract), and it accepts a second
//! `RevokeCertificate` of a serial silently, where AWS answers
//! `RequestAlreadyProcessedException`: retiring twice therefore does not reach the
//! adapter's handling of that answer on moto.

use std::sync::Arc;

use provisioner_core::CertificateRecord;
use provisioner_store_aws::acm_pca::{pca_serial, AcmPcaAuthority, AcmPcaConfig};
use provisioner_testkit::authority_contract::{self, AuthorityBackend};
use provisioner_testkit::moto;

/// An ACTIVE root CA of its own in moto's ACM Private CA.
struct Pca {
    arn: String,
    authority: Arc<AcmPcaAuthority>,
}

impl Pca {
    async fn new() -> Self {
        let client = aws_sdk_acmpca::Client::new(&super::sdk().await);
        let arn = moto::pca_root(&client).await;
        let authority = AcmPcaAuthority::new(client, AcmPcaConfig::new(arn.clone()));
        Self {
            arn,
            authority: Arc::new(authority),
        }
    }
}

impl AuthorityBackend for Pca {
    type Authority = AcmPcaAuthority;

    fn authority(&self) -> Arc<AcmPcaAuthority> {
        self.authority.clone()
    }

    /// PCA holds the retired serials as revoked, reason superseded (read from moto's
    /// state: its PCA writes no CRL), and not the other CA's serial.
    async fn check_retired(&self, retired: &[CertificateRecord], foreign: &CertificateRecord) {
        let revoked = moto::pca_revocations(&self.arn).await;
        for certificate in retired {
            let serial = pca_serial(&certificate.serial).unwrap();
            assert_eq!(
                revoked.get(&serial).map(String::as_str),
                Some("SUPERSEDED"),
                "{serial}: {revoked:?}"
            );
        }
        let other = pca_serial(&foreign.serial).unwrap();
        assert!(!revoked.contains_key(&other), "{revoked:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acm_pca_certifies_the_csr() {
    authority_contract::certifies_the_csr(&Pca::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acm_pca_concurrent_issuance_gives_distinct_serials() {
    authority_contract::concurrent_issuance_gives_distinct_serials(&Pca::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acm_pca_retire_is_idempotent() {
    authority_contract::retire_is_idempotent(&Pca::new().await).await;
}
