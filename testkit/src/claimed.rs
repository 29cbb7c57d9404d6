//! Recording a certificate as the flow does, under a fresh claim on its device, for tests
//! that record directly (`provisioner_testkit::claimed`).

use std::future::Future;

use provisioner_core::{CertificateRecord, ClaimOutcome, DeviceRegistry, PortError, UnixTime};

/// [`DeviceRegistry::record_issuance`] under a claim taken just before.
pub trait RecordClaimed {
    /// Claims `certificate`'s device for a fresh holder at `now`, then records.
    fn record_claimed(
        &self,
        certificate: CertificateRecord,
        supersede: Vec<String>,
        now: UnixTime,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

impl<R: DeviceRegistry> RecordClaimed for R {
    async fn record_claimed(
        &self,
        certificate: CertificateRecord,
        supersede: Vec<String>,
        now: UnixTime,
    ) -> Result<(), PortError> {
        let holder = format!("test-{}", certificate.certificate_id);
        let claim = match self
            .claim_issuance(&certificate.device_id, &holder, now, 120)
            .await?
        {
            ClaimOutcome::Claimed(claim) => claim,
            ClaimOutcome::Held { until } => panic!("the device's claim is held until {until}"),
        };
        self.record_issuance(certificate, supersede, &claim, now)
            .await
    }
}
