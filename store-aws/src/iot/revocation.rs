//! Device certificates set REVOKED in every region's IoT Core
//! ([`IotThingRegistry::revoke_in_all_regions`]): for a CA rotation's cascade and the
//! admin's revoke, a few requests at a time.

use std::sync::Arc;

use provisioner_core::{CertificateStatus, DeviceRegistry};
use tokio::task::JoinSet;

#[cfg(doc)]
use super::RegionRetry;
use super::{IotError, IotThingRegistry};
use crate::acm_pca::backoff;

/// One certificate that could not be set REVOKED in one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationFailure {
    /// The region.
    pub region: String,
    /// The certificate.
    pub certificate_id: String,
    /// Why.
    pub error: String,
}

/// What [`IotThingRegistry::revoke_in_all_regions`] did, counted per (certificate,
/// region).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[must_use = "failures are reported here, not as an error"]
pub struct RevocationSummary {
    /// Now REVOKED in IoT Core (or already were).
    pub revoked: u64,
    /// Not registered in that region: nothing to revoke.
    pub absent: u64,
    /// Failed after the retries.
    pub failed: Vec<RevocationFailure>,
}

impl RevocationSummary {
    /// True when nothing failed.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

impl<R: DeviceRegistry + 'static> IotThingRegistry<R> {
    /// Sets every certificate of `certificate_ids` REVOKED in every region's IoT Core
    /// (`UpdateCertificate`), a few requests at a time ([`IotThingRegistry::with_concurrency`]),
    /// throttled or failed requests retried with [`RegionRetry`]'s backoff. For the CA
    /// rotation's cascading revocation and the admin's revoke; the device registry is not
    /// touched (the caller records the revocation there first). A certificate a region
    /// does not hold is counted absent, not failed.
    pub async fn revoke_in_all_regions(&self, certificate_ids: &[String]) -> RevocationSummary {
        let mut summary = RevocationSummary::default();
        let jobs: Vec<(usize, String)> = (0..self.inner.regions.len())
            .flat_map(|index| certificate_ids.iter().map(move |id| (index, id.clone())))
            .collect();
        let mut jobs = jobs.into_iter();
        let mut running = JoinSet::new();
        loop {
            while running.len() < self.inner.concurrency {
                let Some((index, id)) = jobs.next() else {
                    break;
                };
                let inner = Arc::clone(&self.inner);
                running.spawn(async move {
                    let retry = inner.retry;
                    let mut attempt = 0;
                    loop {
                        let outcome = inner
                            .set_status(index, &id, CertificateStatus::Revoked)
                            .await;
                        match outcome {
                            Err(IotError::Unavailable { .. }) if attempt + 1 < retry.attempts => {
                                tokio::time::sleep(backoff(
                                    retry.first_backoff,
                                    retry.max_backoff,
                                    attempt,
                                ))
                                .await;
                                attempt += 1;
                            }
                            outcome => return (index, id, outcome),
                        }
                    }
                });
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            match joined {
                Ok((_, _, Ok(true))) => summary.revoked += 1,
                Ok((_, _, Ok(false))) => summary.absent += 1,
                Ok((index, id, Err(error))) => summary.failed.push(RevocationFailure {
                    region: self.inner.regions[index].region.clone(),
                    certificate_id: id,
                    error: error.to_string(),
                }),
                Err(error) => summary.failed.push(RevocationFailure {
                    region: String::new(),
                    certificate_id: String::new(),
                    error: format!("a revocation task failed: {error}"),
                }),
            }
        }
        summary
    }
}
