//! The AWS adapter set: every port over AWS services, built once from [`AwsSettings`].
//!
//! | port | adapter |
//! |---|---|
//! | registry, audit log | [`DynamoDbRegistry`] |
//! | authority | [`AwsAuthority`]: the ACM Private CA named in the config table (or IoT Core's CA) |
//! | thing registry | [`IotThingRegistry`]: IoT Core in every configured region |
//! | clock | [`SystemClock`] |
//!
//! The Lambdas and `provisioner serve --backend aws` call [`AwsAdapters::connect`] once per
//! process (per Lambda container), never per request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use provisioner_core::{
    CertificateAuthority, CertificateRecord, IssuanceProfile, PortError, SignedCertificate,
    SystemClock, UnixTime, VerifiedCsr,
};

use super::acm_pca::{AcmPcaAuthority, AcmPcaConfig};
use super::ca::{IotRegions, IssuingCaAdmin, IssuingCaStore};
use super::config::{AwsSettings, IssuanceMode};
use super::dynamodb::{DynamoDbRegistry, DynamoDbTables};
use super::iot::{CaRegistration, IotCoreAuthority, IotThingRegistry};
use provisioner_app::flow::{Adapters, Ports};

/// The AWS adapter set (see the module docs).
#[derive(Debug)]
pub struct AwsAdapters;

impl Adapters for AwsAdapters {
    type Registry = DynamoDbRegistry;
    type Authority = AwsAuthority;
    type Things = IotThingRegistry<DynamoDbRegistry>;
    type Audit = DynamoDbRegistry;
    type Clock = SystemClock;
}

impl AwsAdapters {
    /// Builds every adapter from `settings` and the standard AWS configuration
    /// (environment, profile or role; `AWS_ENDPOINT_URL` for a stand-in such as moto).
    ///
    /// # Errors
    /// When the regions cannot be served (see [`IotThingRegistry::new`]).
    pub async fn connect(settings: &AwsSettings) -> Result<Ports<Self>, PortError> {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::with_sdk_config(&sdk, settings)
    }

    /// [`AwsAdapters::connect`] with a given SDK configuration (tests point it at moto).
    ///
    /// # Errors
    /// As [`AwsAdapters::connect`].
    pub fn with_sdk_config(
        sdk: &aws_config::SdkConfig,
        settings: &AwsSettings,
    ) -> Result<Ports<Self>, PortError> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let registry = DynamoDbRegistry::new(
            dynamo.clone(),
            DynamoDbTables::with_prefix(&settings.table_prefix),
        );
        let (authority, ca) = match settings.issuance_mode {
            IssuanceMode::AcmPca => {
                let pca = Arc::new(CurrentPcaAuthority::new(
                    sdk.clone(),
                    IssuingCaStore::new(dynamo.clone(), settings.config_table()),
                    settings.pca_ca_arn.clone(),
                ));
                let ca = if settings.iot_ca_registered {
                    let lookup = pca.clone();
                    CaRegistration::from_fn(move |issuer: String| {
                        let pca = lookup.clone();
                        async move { pca.chain_of(&issuer).await }
                    })
                } else {
                    CaRegistration::Unregistered
                };
                (AwsAuthority::AcmPca(pca), ca)
            }
            // IoT Core's certificates are in IoT Core already: nothing to register.
            IssuanceMode::IotCore => (
                AwsAuthority::IotCore(IotCoreAuthority::from_sdk_config(sdk, settings)),
                CaRegistration::Unregistered,
            ),
        };
        let things = IotThingRegistry::from_sdk_config(sdk, dynamo, settings, registry.clone(), ca)
            .map_err(PortError::from)?;
        Ok(Ports {
            audit: registry.clone(),
            registry,
            authority,
            things,
            clock: SystemClock,
        })
    }
}

/// The signer of the configured issuance mode.
#[derive(Debug)]
pub enum AwsAuthority {
    /// ACM Private CA, the CA the config table names.
    AcmPca(Arc<CurrentPcaAuthority>),
    /// IoT Core's own CA (one region).
    IotCore(IotCoreAuthority),
}

impl CertificateAuthority for AwsAuthority {
    async fn issue(
        &self,
        request: &VerifiedCsr,
        idempotency_key: &str,
        profile: &IssuanceProfile,
        now: UnixTime,
    ) -> Result<SignedCertificate, PortError> {
        match self {
            Self::AcmPca(pca) => {
                pca.current()
                    .await?
                    .issue(request, idempotency_key, profile, now)
                    .await
            }
            Self::IotCore(iot) => iot.issue(request, idempotency_key, profile, now).await,
        }
    }

    async fn chain_pem(&self) -> Result<String, PortError> {
        match self {
            Self::AcmPca(pca) => pca.current().await?.chain_pem().await,
            Self::IotCore(iot) => iot.chain_pem().await,
        }
    }

    async fn retire(&self, superseded: &[CertificateRecord]) -> Result<(), PortError> {
        match self {
            Self::AcmPca(pca) => pca.current().await?.retire(superseded).await,
            Self::IotCore(iot) => iot.retire(superseded).await,
        }
    }
}

/// The ACM Private CA that issues now: the one the config table's `issuing-ca` item names
/// (written by `provisioner aws ca install` and `rotate`), else `PROVISIONER_PCA_CA_ARN`.
/// Read again at most every [`CurrentPcaAuthority::REFRESH`], so a CA rotation reaches
/// every running Lambda within that time, without a redeploy.
#[derive(Debug)]
pub struct CurrentPcaAuthority {
    sdk: aws_config::SdkConfig,
    store: IssuingCaStore,
    fallback_arn: Option<String>,
    cached: Mutex<Option<(Instant, AcmPcaAuthority)>>,
}

impl CurrentPcaAuthority {
    /// How long the issuing CA is cached.
    pub const REFRESH: Duration = Duration::from_secs(30);

    /// The CA named in `store`, else `fallback_arn`; clients are made from `sdk`, each in
    /// its CA's region (the one its ARN names).
    pub fn new(
        sdk: aws_config::SdkConfig,
        store: IssuingCaStore,
        fallback_arn: Option<String>,
    ) -> Self {
        Self {
            sdk,
            store,
            fallback_arn,
            cached: Mutex::new(None),
        }
    }

    /// The authority of the CA that issues now.
    ///
    /// # Errors
    /// [`PortError::Internal`] when no CA is configured anywhere (the message says what to
    /// run), or the config table cannot be read.
    pub async fn current(&self) -> Result<AcmPcaAuthority, PortError> {
        let cached = self.lock().clone();
        if let Some((read_at, authority)) = &cached {
            if read_at.elapsed() < Self::REFRESH {
                return Ok(authority.clone());
            }
        }
        let arn = match self.store.current().await? {
            Some(issuing) => issuing.ca_arn,
            None => self.fallback_arn.clone().ok_or_else(|| {
                PortError::Internal(
                    "no issuing CA is configured: run `provisioner aws ca install` or set \
                     PROVISIONER_PCA_CA_ARN"
                        .into(),
                )
            })?,
        };
        // The same CA keeps its authority, and so its cached chain.
        let authority = match cached {
            Some((_, authority)) if authority.config().certificate_authority_arn == arn => {
                authority
            }
            _ => {
                if cached.is_some() {
                    tracing::info!(ca = %arn, "issuing CA changed; using it from now on");
                }
                self.authority_of(arn)
            }
        };
        *self.lock() = Some((Instant::now(), authority.clone()));
        Ok(authority)
    }

    /// The chain of the CA whose id (the ARN's last part, what the registry records as a
    /// certificate's issuer) is `ca_id`: the current CA or one it replaced.
    ///
    /// # Errors
    /// [`PortError::Internal`] for a CA the config table does not know.
    pub async fn chain_of(&self, ca_id: &str) -> Result<String, PortError> {
        let current = self.current().await?;
        if current.config().certificate_authority_id() == ca_id {
            return current.chain_pem().await;
        }
        let previous = self.store.current().await?.and_then(|issuing| {
            issuing
                .previous_ca_arns
                .into_iter()
                .find(|arn| super::ca::ca_id(arn) == ca_id)
        });
        match previous {
            Some(arn) => self.authority_of(arn).chain_pem().await,
            None => Err(PortError::Internal(format!(
                "CA {ca_id} is neither the issuing CA nor one it replaced"
            ))),
        }
    }

    /// The authority of `arn`, through a client in the CA's own region: a CA need not be
    /// in the serving region.
    fn authority_of(&self, arn: String) -> AcmPcaAuthority {
        let mut config = self.sdk.to_builder();
        if let Some(region) = arn.split(':').nth(3).filter(|r| !r.is_empty()) {
            config = config.region(aws_config::Region::new(region.to_owned()));
        }
        let client = aws_sdk_acmpca::Client::new(&config.build());
        AcmPcaAuthority::new(client, AcmPcaConfig::new(arn))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, AcmPcaAuthority)>> {
        self.cached.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Everything an [`AwsFleet`](super::admin::AwsFleet) or a
/// [`Maintenance`](super::maintenance::Maintenance) is built from, made once from the
/// settings: the AWS wiring both share, kept here beside the device flow's.
pub(crate) struct AwsParts {
    pub(crate) registry: DynamoDbRegistry,
    pub(crate) ca: IssuingCaAdmin,
    pub(crate) things: IotThingRegistry<DynamoDbRegistry>,
    pub(crate) sdk: aws_config::SdkConfig,
}

impl AwsParts {
    /// The clients of `settings` from the standard AWS configuration (environment,
    /// profile or role; `AWS_ENDPOINT_URL` for a stand-in such as moto), in the serving
    /// region; the thing registry exactly as the device flow builds it
    /// ([`AwsAdapters::with_sdk_config`]), so retried registrations find their CA the
    /// same way.
    pub(crate) async fn connect(settings: &AwsSettings) -> Result<Self, PortError> {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.serving_region.clone()))
            .load()
            .await;
        let ports = AwsAdapters::with_sdk_config(&sdk, settings)?;
        let ca = IssuingCaAdmin::new(
            aws_sdk_acmpca::Client::new(&sdk),
            IotRegions::new(&sdk, &settings.regions),
            IssuingCaStore::new(aws_sdk_dynamodb::Client::new(&sdk), settings.config_table()),
            ports.registry.clone(),
            settings.pca_ca_arn.clone(),
            settings.serving_region.clone(),
        );
        Ok(Self {
            registry: ports.registry,
            ca,
            things: ports.things,
            sdk,
        })
    }
}
