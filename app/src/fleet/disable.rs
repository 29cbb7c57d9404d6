//! Cutting a device off in one step: the use case behind `provisioner devices disable`
//! and `POST /admin/api/devices/{id}/disable`, written once over [`FleetAdmin`] so the
//! local and the AWS backends do exactly the same thing.

use provisioner_core::{CertificateStatus, RevocationReason, UnixTime};

use super::{CertificateQuery, DeviceRecord, FleetAdmin, FleetError, RevokedCertificate};

/// The reason a cut-off device's certificates are revoked with when none is given: the
/// command exists for a stolen or compromised device, and keyCompromise tells relying
/// parties not to trust what the key signed before either.
pub const DEFAULT_CUT_OFF_REASON: RevocationReason = RevocationReason::KeyCompromise;

/// ACTIVE certificates read per page while revoking.
const PAGE: usize = 100;

/// Rounds of "list ACTIVE, revoke them": a request that passed the enabled check just
/// before the device was disabled may record its certificate after the first listing;
/// a later round revokes it.
const ROUNDS: usize = 3;

/// What [`disable_device`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisabledDevice {
    /// The device as now recorded (disabled).
    pub device: DeviceRecord,
    /// Every certificate this call revoked, in the order revoked (empty without
    /// `revoke`).
    pub revoked: Vec<RevokedCertificate>,
}

impl DisabledDevice {
    /// Every revocation reached everything beyond the registry (the CRLs locally; ACM
    /// Private CA and IoT Core in every region on AWS).
    pub fn propagated(&self) -> bool {
        self.revoked.iter().all(|r| r.propagated)
    }
}

/// Disables `device_id` (the flow refuses it from then on) and, when `revoke` names a
/// reason, revokes each of its ACTIVE certificates through [`FleetAdmin::revoke`]: in the
/// registry, and wherever that backend makes a revocation known (the CRLs; ACM Private
/// CA and IoT Core). The device is disabled first, so no new certificate is issued while
/// the old ones are revoked.
///
/// Running it again is harmless: a disabled device stays disabled, and only ACTIVE
/// certificates are revoked.
///
/// # Errors
/// [`FleetError::UnknownDevice`] when there is no such device (nothing changed); the
/// backend's error when a step fails (what was done before it stays done).
pub async fn disable_device<F: FleetAdmin + ?Sized>(
    fleet: &F,
    device_id: &str,
    revoke: Option<RevocationReason>,
    now: UnixTime,
) -> Result<DisabledDevice, FleetError> {
    let device = fleet.set_device_enabled(device_id, false).await?;
    let mut revoked = Vec::new();
    let Some(reason) = revoke else {
        return Ok(DisabledDevice { device, revoked });
    };
    for _ in 0..ROUNDS {
        // An index read (DynamoDB's) may still show one just revoked as ACTIVE: skip it.
        let active: Vec<String> = active_certificates(fleet, device_id)
            .await?
            .into_iter()
            .filter(|id| {
                !revoked
                    .iter()
                    .any(|r: &RevokedCertificate| &r.certificate.certificate_id == id)
            })
            .collect();
        if active.is_empty() {
            break;
        }
        for certificate_id in active {
            revoked.push(fleet.revoke(&certificate_id, reason, now).await?);
        }
    }
    Ok(DisabledDevice { device, revoked })
}

/// The ids of every ACTIVE certificate of the device, all pages read before any is
/// revoked (revoking changes what a status-filtered page holds).
async fn active_certificates<F: FleetAdmin + ?Sized>(
    fleet: &F,
    device_id: &str,
) -> Result<Vec<String>, FleetError> {
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let page = fleet
            .certificates(CertificateQuery {
                device_id: Some(device_id.to_owned()),
                status: Some(CertificateStatus::Active),
                issuer: None,
                after,
                limit: PAGE,
            })
            .await?;
        ids.extend(page.items.into_iter().map(|c| c.certificate_id));
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(ids),
        }
    }
}
