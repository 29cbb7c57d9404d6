//! [`IotThingRegistry`], the [`ThingRegistry`] over IoT Core in every configured region:
//! its regions and settings, and the port's `register` (the serving region inline, the
//! others recorded and started in the background).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use provisioner_core::{
    CertificateRecord, CertificateStatus, DeviceRegistry, PortError, ThingRegistry,
};
use tokio::sync::OnceCell;
use tokio::task::JoinSet;

#[cfg(doc)]
use super::UNFINISHED_INDEX;
use super::{iot_client, CaRegistration, IotError, RegionRetry, RegistrationStatus};
use crate::config::AwsSettings;
use crate::dynamodb::DynamoDbRegistry;

/// One region's IoT client.
pub(super) struct RegionIot {
    pub(super) region: String,
    pub(super) client: aws_sdk_iot::Client,
    /// Set once the device policy is known to exist there.
    pub(super) policy_ready: OnceCell<()>,
}

/// What the clones of an [`IotThingRegistry`] share.
pub(super) struct Inner<R> {
    /// Serving region first.
    pub(super) regions: Vec<RegionIot>,
    pub(super) dynamo: aws_sdk_dynamodb::Client,
    pub(super) table: String,
    pub(super) policy_name: String,
    pub(super) registry: R,
    pub(super) ca: CaRegistration,
    pub(super) retry: RegionRetry,
    pub(super) pending_grace: Duration,
    pub(super) concurrency: usize,
    pub(super) background: Mutex<JoinSet<()>>,
}

/// The [`ThingRegistry`] over IoT Core in every configured region, with the per-region
/// registrations table (see the [module docs](super)).
///
/// `R` is the device registry, read to decide what a rotation revokes and to find a
/// certificate when a pending region is retried. Cheap to clone: clones share the
/// clients and the background tasks.
pub struct IotThingRegistry<R = DynamoDbRegistry> {
    pub(super) inner: Arc<Inner<R>>,
}

impl<R> Clone for IotThingRegistry<R> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<R> fmt::Debug for IotThingRegistry<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IotThingRegistry")
            .field(
                "regions",
                &self
                    .inner
                    .regions
                    .iter()
                    .map(|r| r.region.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("table", &self.inner.table)
            .field("policy", &self.inner.policy_name)
            .field("ca", &self.inner.ca)
            .finish_non_exhaustive()
    }
}

impl<R: DeviceRegistry + 'static> IotThingRegistry<R> {
    /// A registry over `clients` (one IoT client per region, the serving region first:
    /// it is registered before the device is answered), the registrations table of
    /// `settings` through `dynamo`, the policy [`AwsSettings::iot_policy`], the device
    /// `registry`, and `ca` for certificates our CA signed (never used for certificates
    /// IoT Core signed, issuer `iot-core:…`: in issuance mode `iot-core` pass
    /// [`CaRegistration::Unregistered`]). Background retries use [`RegionRetry::default`];
    /// see the `with_*` methods.
    ///
    /// # Errors
    /// [`IotError::Config`] when `clients` is empty, names a region twice, or does not
    /// start with [`AwsSettings::serving_region`].
    pub fn new(
        clients: Vec<(String, aws_sdk_iot::Client)>,
        dynamo: aws_sdk_dynamodb::Client,
        settings: &AwsSettings,
        registry: R,
        ca: CaRegistration,
    ) -> Result<Self, IotError> {
        let Some((first, _)) = clients.first() else {
            return Err(IotError::Config(
                "no IoT client: give one per region".into(),
            ));
        };
        if *first != settings.serving_region {
            return Err(IotError::Config(format!(
                "the first IoT client is for {first}, not the serving region {}",
                settings.serving_region
            )));
        }
        let mut regions: Vec<RegionIot> = Vec::with_capacity(clients.len());
        for (region, client) in clients {
            if regions.iter().any(|r| r.region == region) {
                return Err(IotError::Config(format!("region {region} is given twice")));
            }
            regions.push(RegionIot {
                region,
                client,
                policy_ready: OnceCell::new(),
            });
        }
        Ok(Self {
            inner: Arc::new(Inner {
                regions,
                dynamo,
                table: settings.registrations_table(),
                policy_name: settings.iot_policy.clone(),
                registry,
                ca,
                retry: RegionRetry::default(),
                pending_grace: Duration::from_secs(300),
                concurrency: 4,
                background: Mutex::new(JoinSet::new()),
            }),
        })
    }

    /// [`IotThingRegistry::new`] with one IoT client per region of
    /// [`AwsSettings::regions`], each `sdk` with its region replaced (credentials and
    /// `AWS_ENDPOINT_URL` as `sdk` has them).
    ///
    /// # Errors
    /// As [`IotThingRegistry::new`].
    pub fn from_sdk_config(
        sdk: &aws_config::SdkConfig,
        dynamo: aws_sdk_dynamodb::Client,
        settings: &AwsSettings,
        registry: R,
        ca: CaRegistration,
    ) -> Result<Self, IotError> {
        let clients = settings
            .regions
            .iter()
            .map(|region| (region.clone(), iot_client(sdk, region)))
            .collect();
        Self::new(clients, dynamo, settings, registry, ca)
    }

    /// Background retries with `retry` instead of [`RegionRetry::default`]. Call before
    /// the registry is cloned or used.
    #[must_use]
    pub fn with_retry(mut self, retry: RegionRetry) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.retry = RegionRetry {
                attempts: retry.attempts.max(1),
                ..retry
            };
        }
        self
    }

    /// How long a PENDING row is left to the background task that wrote it before
    /// [`IotThingRegistry::retry_pending`] takes it over (default 5 min; FAILED rows are
    /// always taken). Call before the registry is cloned or used.
    #[must_use]
    pub fn with_pending_grace(mut self, grace: Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.pending_grace = grace;
        }
        self
    }

    /// At most `requests` IoT requests at once in [`IotThingRegistry::revoke_in_all_regions`]
    /// and [`IotThingRegistry::retry_pending`] (default 4: IoT Core's control-plane
    /// operations have low per-account rate quotas, see its service quotas; throttled
    /// requests are retried). Call before the registry is cloned or used.
    #[must_use]
    pub fn with_concurrency(mut self, requests: usize) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.concurrency = requests.max(1);
        }
        self
    }

    /// The regions, serving region first.
    pub fn regions(&self) -> Vec<&str> {
        self.inner
            .regions
            .iter()
            .map(|r| r.region.as_str())
            .collect()
    }

    /// The registrations table's name.
    pub fn registrations_table(&self) -> &str {
        &self.inner.table
    }
}

impl<R: DeviceRegistry + 'static> ThingRegistry for IotThingRegistry<R> {
    /// Registers `certificate` for thing `device_id` in the serving region (see the
    /// [module docs](super)), records every region's row, and starts the other regions in the
    /// background.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when IoT Core or the registrations table throttles or
    /// cannot be reached; [`PortError::Internal`] for any other failure of the serving
    /// region or the table. The other regions' failures are recorded in their rows, never
    /// returned here.
    async fn register(
        &self,
        device_id: &str,
        certificate: &CertificateRecord,
    ) -> Result<(), PortError> {
        let inner = &self.inner;
        if certificate.device_id != device_id {
            return Err(PortError::Internal(format!(
                "certificate {} belongs to {:?}, not thing {device_id:?}",
                certificate.certificate_id, certificate.device_id
            )));
        }
        if certificate.status != CertificateStatus::Active {
            // The flow registers only the certificate it answers with, which is ACTIVE.
            return Err(PortError::Internal(format!(
                "certificate {} is not ACTIVE in the registry: not registering it",
                certificate.certificate_id
            )));
        }
        inner.register_in(0, certificate).await?;
        let id = certificate.certificate_id.as_str();
        inner
            .update_row(
                id,
                inner.home(),
                Some(device_id),
                RegistrationStatus::Done,
                None,
            )
            .await?;
        for index in 1..inner.regions.len() {
            if inner.open_row(id, index, device_id).await? {
                self.spawn_region(index, id.to_owned());
            }
        }
        Ok(())
    }
}

impl<R: DeviceRegistry> Inner<R> {
    /// The serving region's name (where the registrations table lives).
    pub(super) fn home(&self) -> &str {
        &self.regions[0].region
    }

    /// The index of `region`, if it is configured.
    pub(super) fn region_index(&self, region: &str) -> Option<usize> {
        self.regions.iter().position(|r| r.region == region)
    }
}
