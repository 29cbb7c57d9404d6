//! AWS IoT Core: the thing registry of every configured region ([`IotThingRegistry`],
//! the [`ThingRegistry`] port) and IoT Core's own CA as the signer ([`IotCoreAuthority`],
//! the [`CertificateAuthority`] port, issuance mode `iot-core`).
//!
//! # Registering a certificate in one region
//!
//! [`IotThingRegistry`] does, in a region, for a device certificate:
//!
//! 1. The certificate: `RegisterCertificate` with the issuing CA's certificate
//!    ([`CaRegistration::Registered`]: the CA is registered in that region's IoT Core), or
//!    `RegisterCertificateWithoutCA` ([`CaRegistration::Unregistered`]: multi-account
//!    registration, devices connect with SNI), status ACTIVE. A certificate IoT already
//!    holds (`ResourceAlreadyExistsException`) is fine: registering is idempotent (its
//!    IoT status is left as it is: one revoked in IoT stays revoked). A
//!    certificate IoT Core signed itself (issuer `iot-core:…`, see [`IotCoreAuthority`])
//!    is already there and is only looked up (`DescribeCertificate`).
//! 2. The thing named by the device id (`CreateThing`, idempotent).
//! 3. The policy [`AwsSettings::iot_policy`], created once per region if absent
//!    (`CreatePolicy`, document [`device_policy_document`]); an existing policy of that
//!    name is used as it is (the deployment may own it).
//! 4. `AttachPolicy` (policy → certificate) and `AttachThingPrincipal` (thing →
//!    certificate), both idempotent.
//! 5. Rotation: the thing's other certificate principals (`ListThingPrincipals`) are
//!    given the status the device registry holds for them, then detached from the thing.
//!
//! IoT Core's certificate id must be the registry's (hex SHA-256 of the DER), since
//! revocation addresses certificates by id: a registration that yields another id fails
//! ([`IotError::Corrupt`]). Real IoT Core computes it so; moto only with
//! `use_valid_cert` (`scripts/moto.sh` starts it so).
//!
//! ## Which certificates a rotation revokes: the registry decides
//!
//! The flow records a new certificate and, in the same write, sets the device's previous
//! ones REVOKED (reason superseded); then it calls [`ThingRegistry::register`]. The
//! registry learns what to revoke in IoT by asking the device registry: every other
//! certificate principal of the thing whose registry status is not ACTIVE gets that
//! status in IoT (REVOKED, or INACTIVE) and is detached. It does **not** simply revoke
//! every other principal: a late retry of an older certificate's registration (a region
//! finished by [`IotThingRegistry::retry_pending`] after the device has renewed) would
//! then revoke the newer one; certificates the registry does not know (attached by an
//! operator) are left alone. After attaching, the certificate's own status is read
//! again (strongly consistent): if it was superseded meanwhile, it gets its registry
//! status in IoT at once. Of two registrations racing, one therefore sees the other's
//! effect, and no superseded certificate stays ACTIVE in IoT. In each region this
//! happens as part of the new certificate's registration there, so a region that is
//! down gets both when its row is retried; revocations that do not come with a new
//! certificate (the admin's, a CA rotation's) use
//! [`IotThingRegistry::revoke_in_all_regions`].
//!
//! # Several regions
//!
//! The device gets its answer once the region serving the request (the first of
//! [`AwsSettings::regions`]) has registered the certificate: [`ThingRegistry::register`]
//! runs that region inline and its failure is the port's error (throttling and network
//! failures [`PortError::Unavailable`], so the device retries after a 503). The other
//! regions are registered after, tracked per region in the registrations table
//! ([`AwsSettings::registrations_table`]):
//!
//! | attribute | meaning |
//! |---|---|
//! | `certificateId` (S, hash key) | the certificate |
//! | `region` (S, range key) | the region |
//! | `deviceId` (S) | the device (thing name) |
//! | `status` (S) | `PENDING`, `DONE` or `FAILED` |
//! | `attempts` (N) | registrations tried in that region |
//! | `lastError` (S) | the last failure, absent when none |
//! | `updatedAt` (N) | Unix seconds of the last change |
//! | `queue` (S) | `open` while not DONE, removed when DONE: the key of the sparse index [`UNFINISHED_INDEX`] (range key `updatedAt`) |
//!
//! `register` writes the serving region's row DONE and every other region's row PENDING
//! (unless already DONE), then registers those regions in a background task with
//! [`RegionRetry`] (backoff between attempts), each row ending DONE or FAILED with its
//! error. The rows are written before the device is answered, so nothing is dropped: a
//! process that stops before its background task ends (a Lambda frozen after its
//! response, a crash) leaves PENDING rows, which [`IotThingRegistry::retry_pending`] (run
//! on a schedule, or by the admin) finishes, along with the FAILED ones.
//! [`IotThingRegistry::registrations_of`] and [`IotThingRegistry::pending_registrations`]
//! show the rows to the admin.
//!
//! # Errors
//!
//! `ThrottlingException`, `ServiceUnavailableException`, `InternalFailureException`,
//! timeouts and connection failures (after the SDK's own retries) are
//! [`IotError::Unavailable`], answered as [`PortError::Unavailable`] (retry after 1 s).
//! DynamoDB throttling on the registrations table is the same. Anything else is
//! [`PortError::Internal`] with the SDK error's display (which never holds credentials).
//!
//! # What the moto tests cannot show
//!
//! moto (`tests/iot_registry.rs`) keeps IoT state per region and speaks the wire
//! protocol, but never checks a certificate's signature against a registered CA,
//! accepts `RegisterCertificate` for a CA it does not know, does not evaluate policies
//! (the document is checked as text), and its `CreateCertificateFromCsr` self-signs a new
//! RSA key instead of certifying the CSR's (so [`IotCoreAuthority::issue`] refuses its
//! certificates; see there). IoT API rate limits are not simulated: the throttling paths
//! are unit-tested through the error classification only.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use aws_sdk_iot::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_iot::types::CertificateStatus as IotStatus;
use der::{Decode, Encode};
use provisioner_core::{
    CertificateAuthority, CertificateRecord, CertificateStatus, DeviceKey, DeviceRegistry,
    IssuanceProfile, PortError, SignedCertificate, ThingRegistry, UnixTime, VerifiedCsr,
};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tokio::task::JoinSet;

use super::acm_pca::backoff;
use super::config::AwsSettings;
use super::dynamodb::DynamoDbRegistry;

/// The sparse index of the registrations table that holds only unfinished rows (hash key
/// `queue` = `open`, range key `updatedAt`).
pub const UNFINISHED_INDEX: &str = "unfinished";

/// The `queue` value of an unfinished row.
const OPEN: &str = "open";

/// Registrations a page of [`IotThingRegistry::pending_registrations`] holds at most.
pub const PENDING_PAGE_SIZE: i32 = 100;

/// The prefix of [`SignedCertificate::issuer`] for certificates IoT Core signed.
pub const IOT_CORE_ISSUER_PREFIX: &str = "iot-core:";

/// Amazon Root CA 1 (RSA 2048, valid until 2038-01-17), the root that IoT Core's ATS data
/// endpoints (`*-ats.iot.REGION.amazonaws.com`) chain to: what a device must trust to
/// connect. From <https://www.amazontrust.com/repository/AmazonRootCA1.pem> (also
/// Debian's `ca-certificates`, `/etc/ssl/certs/Amazon_Root_CA_1.pem`); SHA-256
/// fingerprint `8ECDE6884F3D87B1125BA31AC3FCB13D7016DE7F57CC904FE1CB97C6AE98196E` (a unit
/// test checks it).
pub const AMAZON_ROOT_CA_1_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIDQTCCAimgAwIBAgITBmyfz5m/jAo54vB4ikPmljZbyjANBgkqhkiG9w0BAQsF
ADA5MQswCQYDVQQGEwJVUzEPMA0GA1UEChMGQW1hem9uMRkwFwYDVQQDExBBbWF6
b24gUm9vdCBDQSAxMB4XDTE1MDUyNjAwMDAwMFoXDTM4MDExNzAwMDAwMFowOTEL
MAkGA1UEBhMCVVMxDzANBgNVBAoTBkFtYXpvbjEZMBcGA1UEAxMQQW1hem9uIFJv
b3QgQ0EgMTCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBALJ4gHHKeNXj
ca9HgFB0fW7Y14h29Jlo91ghYPl0hAEvrAIthtOgQ3pOsqTQNroBvo3bSMgHFzZM
9O6II8c+6zf1tRn4SWiw3te5djgdYZ6k/oI2peVKVuRF4fn9tBb6dNqcmzU5L/qw
IFAGbHrQgLKm+a/sRxmPUDgH3KKHOVj4utWp+UhnMJbulHheb4mjUcAwhmahRWa6
VOujw5H5SNz/0egwLX0tdHA114gk957EWW67c4cX8jJGKLhD+rcdqsq08p8kDi1L
93FcXmn/6pUCyziKrlA4b9v7LWIbxcceVOF34GfID5yHI9Y/QCB/IIDEgEw+OyQm
jgSubJrIqg0CAwEAAaNCMEAwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMC
AYYwHQYDVR0OBBYEFIQYzIU07LwMlJQuCFmcx7IQTgoIMA0GCSqGSIb3DQEBCwUA
A4IBAQCY8jdaQZChGsV2USggNiMOruYou6r4lK5IpDB/G/wkjUu0yKGX9rbxenDI
U5PMCCjjmCXPI6T53iHTfIUJrU6adTrCC2qJeHZERxhlbI1Bjjt/msv0tadQ1wUs
N+gDS63pYaACbvXy8MWy7Vu33PqUXHeeE6V/Uq2V8viTO96LXFvKWlJbYK8U90vv
o/ufQJVtMVT8QtPHRh8jrdkPSHCa2XV4cdFyQzR1bldZwgJcJmApzyMZFo6IQ6XU
5MsI+yMRQ+hDKXJioaldXgjUkK642M4UwtBV8ob2xJNDd2ZhwLnoQdeXeGADbkpy
rqXRfboQnoZsG4q5WTP468SQvvG5
-----END CERTIFICATE-----
";

type Item = HashMap<String, AttributeValue>;

// ---------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------

/// Why an IoT Core operation (or the registrations table behind it) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IotError {
    /// Throttled, unreachable or briefly failing, after the SDK's retries: retry shortly.
    #[error("{service} in {region} cannot serve {operation} now ({cause}); retry shortly")]
    Unavailable {
        /// `AWS IoT Core` or `DynamoDB`.
        service: &'static str,
        /// The operation.
        operation: &'static str,
        /// The region it was sent to.
        region: String,
        /// The error code, or the kind of failure.
        cause: String,
    },
    /// The adapter is configured wrongly (no client, a region twice, no CA certificate).
    #[error("IoT registry configuration: {0}")]
    Config(String),
    /// IoT Core answered something this adapter cannot use (unparsable certificate, an id
    /// that is not SHA-256 of the DER, a key the CSR did not request).
    #[error("AWS IoT Core answered an unusable certificate: {0}")]
    Corrupt(String),
    /// The device registry failed (its own error, passed on unchanged).
    #[error(transparent)]
    Registry(PortError),
    /// Any other failure of the SDK or the service, with the SDK error's display.
    #[error("{service} {operation} in {region} failed: {message}")]
    Sdk {
        /// `AWS IoT Core` or `DynamoDB`.
        service: &'static str,
        /// The operation.
        operation: &'static str,
        /// The region it was sent to.
        region: String,
        /// What the SDK reported.
        message: String,
    },
}

impl From<IotError> for PortError {
    fn from(error: IotError) -> Self {
        match error {
            IotError::Unavailable { service, .. } => PortError::Unavailable {
                what: match service {
                    IOT => "AWS IoT Core".into(),
                    _ => "the registrations table".into(),
                },
                retry_after_secs: 1,
            },
            IotError::Registry(error) => error,
            other => PortError::Internal(other.to_string()),
        }
    }
}

const IOT: &str = "AWS IoT Core";
const DYNAMODB: &str = "DynamoDB";

/// Error codes that mean "too much, too fast" or "briefly broken" in IoT and DynamoDB.
fn is_transient_code(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ThrottlingException"
                | "TooManyRequestsException"
                | "ServiceUnavailableException"
                | "InternalFailureException"
                | "ProvisionedThroughputExceededException"
                | "RequestLimitExceeded"
        )
    )
}

fn sdk_error<E, R>(
    service: &'static str,
    operation: &'static str,
    region: &str,
    error: &SdkError<E, R>,
) -> IotError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    let cause = match error {
        SdkError::TimeoutError(_) => Some("timeout".to_owned()),
        SdkError::DispatchFailure(_) => Some("connection failed".to_owned()),
        _ if is_transient_code(error.code()) => error.code().map(str::to_owned),
        _ => None,
    };
    match cause {
        Some(cause) => IotError::Unavailable {
            service,
            operation,
            region: region.to_owned(),
            cause,
        },
        None => IotError::Sdk {
            service,
            operation,
            region: region.to_owned(),
            message: DisplayErrorContext(error).to_string(),
        },
    }
}

// ---------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------

/// What [`CaRegistration::from_fn`] returns: the issuing CA's certificate (or a chain
/// starting with it), PEM.
pub type CaCertificateFuture = Pin<Box<dyn Future<Output = Result<String, PortError>> + Send>>;

/// Looks up the certificate of the CA that issued a device certificate, given
/// [`CertificateRecord::issuer`] (the CA id the registry recorded).
pub type CaCertificateSource = Arc<dyn Fn(&str) -> CaCertificateFuture + Send + Sync>;

/// How device certificates signed by our CA (ACM Private CA) enter IoT Core.
#[derive(Clone)]
pub enum CaRegistration {
    /// The issuing CA is registered in every region's IoT Core (the PKI admin's set-up):
    /// `RegisterCertificate` with the CA's certificate, the first PEM block of what the
    /// source returns for the certificate's issuer (so a chain is fine). After a CA
    /// rotation the source must still answer for the previous CA's id while its
    /// certificates are registered (pending regions, [`IotThingRegistry::retry_pending`]).
    Registered(CaCertificateSource),
    /// The CA is not registered (multi-account registration; devices connect with SNI):
    /// `RegisterCertificateWithoutCA`.
    Unregistered,
}

impl CaRegistration {
    /// [`CaRegistration::Registered`] with one CA whatever the issuer: the first
    /// certificate of `chain_pem`.
    ///
    /// # Errors
    /// [`IotError::Config`] when `chain_pem` holds no PEM certificate.
    pub fn fixed(chain_pem: &str) -> Result<Self, IotError> {
        let (block, _) = first_certificate(chain_pem)
            .map_err(|e| IotError::Config(format!("the CA certificate: {e}")))?;
        Ok(Self::Registered(Arc::new(move |_issuer: &str| {
            let block = block.clone();
            Box::pin(async move { Ok(block) })
        })))
    }

    /// [`CaRegistration::Registered`] with a lookup by issuer, e.g. the ACM PCA
    /// authority's cached `chain_pem()`, or a table of CA ids after a rotation.
    pub fn from_fn<F, Fut>(lookup: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, PortError>> + Send + 'static,
    {
        Self::Registered(Arc::new(move |issuer: &str| {
            Box::pin(lookup(issuer.to_owned()))
        }))
    }
}

impl fmt::Debug for CaRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Registered(_) => "CaRegistration::Registered(..)",
            Self::Unregistered => "CaRegistration::Unregistered",
        })
    }
}

/// How often, and how patiently, a region is tried in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionRetry {
    /// Attempts before the row is FAILED (at least 1).
    pub attempts: u32,
    /// The wait after the first failure (doubled each time).
    pub first_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl Default for RegionRetry {
    /// 5 attempts, waiting 1, 2, 4 and 8 s between them (at most 30 s).
    fn default() -> Self {
        Self {
            attempts: 5,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Where a certificate's registration in one region stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationStatus {
    /// Not done yet (in progress, or left by a process that stopped).
    Pending,
    /// Registered (or, for a certificate superseded before it got there, deliberately
    /// left unregistered and not ACTIVE).
    Done,
    /// Every attempt failed: see `last_error`; [`IotThingRegistry::retry_pending`]
    /// tries again.
    Failed,
}

impl RegistrationStatus {
    /// The stored spelling: `PENDING`, `DONE`, `FAILED`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Done => "DONE",
            Self::Failed => "FAILED",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [Self::Pending, Self::Done, Self::Failed]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// One row of the registrations table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionRegistration {
    /// The certificate.
    pub certificate_id: String,
    /// The region.
    pub region: String,
    /// The device (thing name).
    pub device_id: String,
    /// Where it stands.
    pub status: RegistrationStatus,
    /// Registrations tried in that region.
    pub attempts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// Unix seconds of the last change.
    pub updated_at: UnixTime,
}

/// A page of unfinished registrations, oldest change first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistrationPage {
    /// The rows.
    pub registrations: Vec<RegionRegistration>,
    /// Pass to the next call for the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// What [`IotThingRegistry::retry_pending`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetrySummary {
    /// Rows tried.
    pub attempted: u64,
    /// Rows now DONE.
    pub done: u64,
    /// Rows now FAILED (their error is in the row).
    pub failed: u64,
    /// PENDING rows changed within the grace period (a background task may hold them):
    /// left for a later run.
    pub in_flight: u64,
    /// Rows of a region this registry has no client for: left as they are.
    pub unknown_region: u64,
    /// True when more unfinished rows remain than `limit` allowed to try.
    pub more: bool,
}

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

// ---------------------------------------------------------------------------------
// The thing registry
// ---------------------------------------------------------------------------------

/// One region's IoT client.
struct RegionIot {
    region: String,
    client: aws_sdk_iot::Client,
    /// Set once the device policy is known to exist there.
    policy_ready: OnceCell<()>,
}

struct Inner<R> {
    /// Serving region first.
    regions: Vec<RegionIot>,
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    policy_name: String,
    registry: R,
    ca: CaRegistration,
    retry: RegionRetry,
    pending_grace: Duration,
    concurrency: usize,
    background: Mutex<JoinSet<()>>,
}

/// The [`ThingRegistry`] over IoT Core in every configured region, with the per-region
/// registrations table (see the module docs).
///
/// `R` is the device registry, read to decide what a rotation revokes and to find a
/// certificate when a pending region is retried. Cheap to clone: clones share the
/// clients and the background tasks.
pub struct IotThingRegistry<R = DynamoDbRegistry> {
    inner: Arc<Inner<R>>,
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

    /// Creates the registrations table (on-demand billing, with [`UNFINISHED_INDEX`]) and
    /// waits until it is ACTIVE. An existing table is left as it is, so calling this again
    /// is harmless. For tests and `provisioner serve --backend aws`; the deployment
    /// template defines the same keys.
    ///
    /// # Errors
    /// [`IotError::Sdk`] when the table cannot be created or does not become ACTIVE within
    /// 5 minutes; [`IotError::Unavailable`] when throttled.
    pub async fn create_registrations_table(&self) -> Result<(), IotError> {
        let inner = &self.inner;
        let region = inner.regions[0].region.as_str();
        let build = |e: aws_sdk_dynamodb::error::BuildError| IotError::Config(e.to_string());
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(build)
        };
        let attribute = |name: &str, kind: ScalarAttributeType| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build()
                .map_err(build)
        };
        let unfinished = GlobalSecondaryIndex::builder()
            .index_name(UNFINISHED_INDEX)
            .key_schema(key("queue", KeyType::Hash)?)
            .key_schema(key("updatedAt", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(build)?;
        let created = inner
            .dynamo
            .create_table()
            .table_name(&inner.table)
            .attribute_definitions(attribute("certificateId", ScalarAttributeType::S)?)
            .attribute_definitions(attribute("region", ScalarAttributeType::S)?)
            .attribute_definitions(attribute("queue", ScalarAttributeType::S)?)
            .attribute_definitions(attribute("updatedAt", ScalarAttributeType::N)?)
            .key_schema(key("certificateId", KeyType::Hash)?)
            .key_schema(key("region", KeyType::Range)?)
            .global_secondary_indexes(unfinished)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(error) => return Err(sdk_error(DYNAMODB, "CreateTable", region, &error)),
        }
        inner
            .dynamo
            .wait_until_table_exists()
            .table_name(&inner.table)
            .wait(Duration::from_secs(300))
            .await
            .map_err(|e| IotError::Sdk {
                service: DYNAMODB,
                operation: "DescribeTable",
                region: region.to_owned(),
                message: format!(
                    "table {} did not become ACTIVE: {}",
                    inner.table,
                    DisplayErrorContext(&e)
                ),
            })?;
        Ok(())
    }

    /// Waits until every background registration this process started has ended (DONE
    /// or FAILED): for tests, and for a graceful shutdown.
    pub async fn wait_for_background(&self) {
        loop {
            let mut tasks = {
                let mut guard = self
                    .inner
                    .background
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                std::mem::take(&mut *guard)
            };
            if tasks.is_empty() {
                return;
            }
            while tasks.join_next().await.is_some() {}
        }
    }

    /// Every region's row of `certificate_id`, by region name.
    ///
    /// # Errors
    /// [`IotError::Unavailable`] when DynamoDB throttles; [`IotError::Sdk`] or
    /// [`IotError::Corrupt`] otherwise.
    pub async fn registrations_of(
        &self,
        certificate_id: &str,
    ) -> Result<Vec<RegionRegistration>, IotError> {
        let inner = &self.inner;
        let mut rows = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = inner
                .dynamo
                .query()
                .table_name(&inner.table)
                .key_condition_expression("certificateId = :id")
                .expression_attribute_values(":id", AttributeValue::S(certificate_id.into()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error(DYNAMODB, "Query", inner.home(), &e))?;
            for item in page.items() {
                rows.push(registration_from_item(item)?);
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(rows),
            }
        }
    }

    /// A page of at most [`PENDING_PAGE_SIZE`] unfinished (PENDING or FAILED) rows, oldest
    /// change first, from [`UNFINISHED_INDEX`] (eventually consistent); `cursor` is the
    /// previous page's [`RegistrationPage::next_cursor`] (`None` for the first page).
    ///
    /// # Errors
    /// [`IotError::Config`] for a cursor this method did not make; otherwise as
    /// [`IotThingRegistry::registrations_of`].
    pub async fn pending_registrations(
        &self,
        cursor: Option<&str>,
    ) -> Result<RegistrationPage, IotError> {
        self.pending_registrations_limited(cursor, PENDING_PAGE_SIZE)
            .await
    }

    /// [`IotThingRegistry::pending_registrations`] with pages of at most `limit` rows (at
    /// least 1), for the admin API's page sizes. The cursors are the same.
    ///
    /// # Errors
    /// As [`IotThingRegistry::pending_registrations`].
    pub async fn pending_registrations_limited(
        &self,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<RegistrationPage, IotError> {
        let inner = &self.inner;
        let start = cursor.map(decode_cursor).transpose()?;
        let page = inner
            .dynamo
            .query()
            .table_name(&inner.table)
            .index_name(UNFINISHED_INDEX)
            .key_condition_expression("queue = :open")
            .expression_attribute_values(":open", AttributeValue::S(OPEN.into()))
            .limit(limit.max(1))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| sdk_error(DYNAMODB, "Query", inner.home(), &e))?;
        let registrations = page
            .items()
            .iter()
            .map(registration_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = page
            .last_evaluated_key()
            .filter(|key| !key.is_empty())
            .map(encode_cursor)
            .transpose()?;
        Ok(RegistrationPage {
            registrations,
            next_cursor,
        })
    }

    /// Finishes unfinished registrations: up to `limit` rows that are FAILED, or PENDING
    /// and unchanged for the pending grace period ([`IotThingRegistry::with_pending_grace`]),
    /// oldest first, each tried once in its region (a few at a time), then marked DONE or
    /// FAILED. For a scheduled Lambda or the admin: what a stopped process or a failed
    /// region left. A certificate superseded meanwhile is not registered; it is only given
    /// its registry status in IoT where it already is.
    ///
    /// # Errors
    /// [`IotError::Unavailable`] or [`IotError::Sdk`] when the table cannot be read or
    /// written; a region's failure is not an error but counted in
    /// [`RetrySummary::failed`] and recorded in its row.
    pub async fn retry_pending(&self, limit: usize) -> Result<RetrySummary, IotError> {
        let mut summary = RetrySummary::default();
        let now = unix_now();
        let grace = i64::try_from(self.inner.pending_grace.as_secs()).unwrap_or(i64::MAX);
        let mut due = Vec::new();
        let mut cursor = None;
        'pages: loop {
            let page = self.pending_registrations(cursor.as_deref()).await?;
            for row in page.registrations {
                if row.status == RegistrationStatus::Pending
                    && now.saturating_sub(row.updated_at) < grace
                {
                    summary.in_flight += 1;
                } else if self.inner.region_index(&row.region).is_none() {
                    summary.unknown_region += 1;
                } else if due.len() == limit {
                    summary.more = true;
                    break 'pages;
                } else {
                    due.push(row);
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let mut running = JoinSet::new();
        let mut rows = due.into_iter();
        loop {
            while running.len() < self.inner.concurrency {
                let Some(row) = rows.next() else { break };
                let inner = Arc::clone(&self.inner);
                running.spawn(async move {
                    let index = inner.region_index(&row.region).unwrap_or(0);
                    let outcome = inner.attempt_region(index, &row.certificate_id).await;
                    let status = match &outcome {
                        Ok(()) => RegistrationStatus::Done,
                        Err(_) => RegistrationStatus::Failed,
                    };
                    let error = outcome.err().map(|e| e.to_string());
                    inner
                        .update_row(
                            &row.certificate_id,
                            &row.region,
                            None,
                            status,
                            error.as_deref(),
                        )
                        .await
                        .map(|()| status)
                });
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let status =
                joined.map_err(|e| IotError::Config(format!("a retry task failed: {e}")))??;
            summary.attempted += 1;
            match status {
                RegistrationStatus::Done => summary.done += 1,
                _ => summary.failed += 1,
            }
        }
        Ok(summary)
    }

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

    /// Spawns the background registration of `certificate_id` in region `index`.
    fn spawn_region(&self, index: usize, certificate_id: String) {
        let inner = Arc::clone(&self.inner);
        let mut tasks = self
            .inner
            .background
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Reap the finished ones so the set stays as small as the work in flight.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move { inner.finish_region(index, certificate_id).await });
    }
}

impl<R: DeviceRegistry + 'static> ThingRegistry for IotThingRegistry<R> {
    /// Registers `certificate` for thing `device_id` in the serving region (see the
    /// module docs), records every region's row, and starts the other regions in the
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
    fn home(&self) -> &str {
        &self.regions[0].region
    }

    fn region_index(&self, region: &str) -> Option<usize> {
        self.regions.iter().position(|r| r.region == region)
    }

    /// The whole registration in region `index` (module docs, steps 1-5, and the final
    /// re-read of the certificate's status).
    async fn register_in(
        &self,
        index: usize,
        certificate: &CertificateRecord,
    ) -> Result<(), IotError> {
        let region = &self.regions[index];
        let name = region.region.as_str();
        let device_id = certificate.device_id.as_str();
        let arn = self.certificate_arn(region, certificate).await?;
        match region
            .client
            .create_thing()
            .thing_name(device_id)
            .send()
            .await
        {
            Ok(_) => {}
            // Exists with other attributes (set by an operator): it is still the thing.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_already_exists_exception()) => {}
            Err(e) => return Err(sdk_error(IOT, "CreateThing", name, &e)),
        }
        self.ensure_policy(region, &arn).await?;
        region
            .client
            .attach_policy()
            .policy_name(&self.policy_name)
            .target(&arn)
            .send()
            .await
            .map_err(|e| sdk_error(IOT, "AttachPolicy", name, &e))?;
        region
            .client
            .attach_thing_principal()
            .thing_name(device_id)
            .principal(&arn)
            .send()
            .await
            .map_err(|e| sdk_error(IOT, "AttachThingPrincipal", name, &e))?;
        self.retire_others(index, device_id, &arn).await?;
        // A rotation may have superseded this certificate while it was attached: the
        // rotation's own registration may have listed the principals before ours was.
        let current = self.recorded(&certificate.certificate_id).await?;
        if current.status != CertificateStatus::Active {
            self.set_status(index, &certificate.certificate_id, current.status)
                .await?;
        }
        Ok(())
    }

    /// The certificate's ARN in `region`, registering it first unless IoT Core signed it.
    async fn certificate_arn(
        &self,
        region: &RegionIot,
        certificate: &CertificateRecord,
    ) -> Result<String, IotError> {
        let name = region.region.as_str();
        let id = certificate.certificate_id.as_str();
        if certificate.issuer.starts_with(IOT_CORE_ISSUER_PREFIX) {
            return describe_arn(region, id).await;
        }
        let registered = match &self.ca {
            CaRegistration::Registered(source) => {
                let chain = source(&certificate.issuer)
                    .await
                    .map_err(IotError::Registry)?;
                let (ca_pem, _) = first_certificate(&chain).map_err(|e| {
                    IotError::Config(format!("CA certificate of {}: {e}", certificate.issuer))
                })?;
                match region
                    .client
                    .register_certificate()
                    .certificate_pem(&certificate.certificate_pem)
                    .ca_certificate_pem(ca_pem)
                    .status(IotStatus::Active)
                    .send()
                    .await
                {
                    Ok(out) => out.certificate_arn().map(str::to_owned),
                    Err(e) => match e.as_service_error() {
                        Some(aws_sdk_iot::operation::register_certificate::RegisterCertificateError::ResourceAlreadyExistsException(exists)) => {
                            exists.resource_arn().map(str::to_owned)
                        }
                        _ => return Err(sdk_error(IOT, "RegisterCertificate", name, &e)),
                    },
                }
            }
            CaRegistration::Unregistered => match region
                .client
                .register_certificate_without_ca()
                .certificate_pem(&certificate.certificate_pem)
                .status(IotStatus::Active)
                .send()
                .await
            {
                Ok(out) => out.certificate_arn().map(str::to_owned),
                Err(e) => match e.as_service_error() {
                    Some(aws_sdk_iot::operation::register_certificate_without_ca::RegisterCertificateWithoutCAError::ResourceAlreadyExistsException(exists)) => {
                        exists.resource_arn().map(str::to_owned)
                    }
                    _ => return Err(sdk_error(IOT, "RegisterCertificateWithoutCA", name, &e)),
                },
            },
        };
        let arn = match registered {
            Some(arn) => arn,
            // Already registered, and the exception did not say where: look it up.
            None => return describe_arn(region, id).await,
        };
        check_arn_id(&arn, id)?;
        Ok(arn)
    }

    /// Creates the device policy in `region` unless this process already saw it there.
    async fn ensure_policy(
        &self,
        region: &RegionIot,
        certificate_arn: &str,
    ) -> Result<(), IotError> {
        region
            .policy_ready
            .get_or_try_init(|| async {
                let document = device_policy_document(certificate_arn);
                match region
                    .client
                    .create_policy()
                    .policy_name(&self.policy_name)
                    .policy_document(document)
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_resource_already_exists_exception()) =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(sdk_error(IOT, "CreatePolicy", &region.region, &e)),
                }
            })
            .await?;
        Ok(())
    }

    /// Gives the thing's other certificate principals their registry status in IoT and
    /// detaches them, when that status is not ACTIVE (module docs: the registry decides).
    async fn retire_others(
        &self,
        index: usize,
        device_id: &str,
        keep_arn: &str,
    ) -> Result<(), IotError> {
        let region = &self.regions[index];
        let name = region.region.as_str();
        let mut principals = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = region
                .client
                .list_thing_principals()
                .thing_name(device_id)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error(IOT, "ListThingPrincipals", name, &e))?;
            principals.extend(page.principals().iter().cloned());
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
        for principal in principals {
            if principal == keep_arn {
                continue;
            }
            let Some(other_id) = certificate_id_of_arn(&principal) else {
                continue;
            };
            let Some(other) = self
                .registry
                .certificate(other_id)
                .await
                .map_err(IotError::Registry)?
            else {
                continue;
            };
            if other.status == CertificateStatus::Active {
                continue;
            }
            self.set_status(index, other_id, other.status).await?;
            match region
                .client
                .detach_thing_principal()
                .thing_name(device_id)
                .principal(&principal)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) => {}
                Err(e) => return Err(sdk_error(IOT, "DetachThingPrincipal", name, &e)),
            }
        }
        Ok(())
    }

    /// Sets certificate `id`'s status in region `index` (REVOKED or INACTIVE; ACTIVE is
    /// never set here). `Ok(false)` when the region does not hold it.
    async fn set_status(
        &self,
        index: usize,
        id: &str,
        status: CertificateStatus,
    ) -> Result<bool, IotError> {
        let region = &self.regions[index];
        let wanted = match status {
            CertificateStatus::Revoked => IotStatus::Revoked,
            _ => IotStatus::Inactive,
        };
        match region
            .client
            .update_certificate()
            .certificate_id(id)
            .new_status(wanted.clone())
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(s) if s.is_resource_not_found_exception() => Ok(false),
                // IoT refuses some transitions (out of REVOKED): fine if it is already
                // where we want it, or revoked, which no status of ours overrides.
                Some(s) if s.is_certificate_state_exception() => {
                    let now = describe(region, id).await?;
                    match now.status() {
                        Some(s) if *s == wanted || *s == IotStatus::Revoked => Ok(true),
                        _ => Err(sdk_error(IOT, "UpdateCertificate", &region.region, &e)),
                    }
                }
                _ => Err(sdk_error(IOT, "UpdateCertificate", &region.region, &e)),
            },
        }
    }

    /// The registry's record of `id`.
    async fn recorded(&self, id: &str) -> Result<CertificateRecord, IotError> {
        self.registry
            .certificate(id)
            .await
            .map_err(IotError::Registry)?
            .ok_or_else(|| {
                IotError::Registry(PortError::Internal(format!(
                    "certificate {id} is not in the device registry: record it before registering it"
                )))
            })
    }

    /// One attempt at region `index` for `id`, as the registry has it now: registered if
    /// ACTIVE; otherwise only given its status there (if the region holds it).
    async fn attempt_region(&self, index: usize, id: &str) -> Result<(), IotError> {
        let certificate = self.recorded(id).await?;
        if certificate.status == CertificateStatus::Active {
            self.register_in(index, &certificate).await
        } else {
            self.set_status(index, id, certificate.status)
                .await
                .map(|_| ())
        }
    }

    /// The background task of one region: attempts with backoff, the row updated after
    /// each, DONE or FAILED at the end.
    async fn finish_region(&self, index: usize, id: String) {
        let region = self.regions[index].region.clone();
        let retry = self.retry;
        for attempt in 0..retry.attempts {
            let outcome = self.attempt_region(index, &id).await;
            let last = attempt + 1 == retry.attempts;
            let (status, error) = match &outcome {
                Ok(()) => (RegistrationStatus::Done, None),
                Err(e) if last => (RegistrationStatus::Failed, Some(e.to_string())),
                Err(e) => (RegistrationStatus::Pending, Some(e.to_string())),
            };
            if let Some(error) = &error {
                tracing::warn!(certificate_id = %id, %region, attempt, %error, "IoT registration failed");
            }
            if let Err(e) = self
                .update_row(&id, &region, None, status, error.as_deref())
                .await
            {
                // The row stays PENDING (or shows an older attempt): retry_pending takes
                // it after the grace period.
                tracing::error!(certificate_id = %id, %region, error = %e, "cannot record the IoT registration");
            }
            if outcome.is_ok() || last {
                return;
            }
            tokio::time::sleep(backoff(retry.first_backoff, retry.max_backoff, attempt)).await;
        }
    }

    /// Opens the row of (`id`, region `index`) as PENDING, keeping its attempts and last
    /// error, unless it is DONE already (then `false`: nothing to do there).
    async fn open_row(&self, id: &str, index: usize, device_id: &str) -> Result<bool, IotError> {
        let updated = self
            .dynamo
            .update_item()
            .table_name(&self.table)
            .key("certificateId", AttributeValue::S(id.to_owned()))
            .key(
                "region",
                AttributeValue::S(self.regions[index].region.clone()),
            )
            .update_expression(
                "SET #s = :pending, deviceId = :device, updatedAt = :now, queue = :open, \
                 attempts = if_not_exists(attempts, :zero)",
            )
            .condition_expression("attribute_not_exists(certificateId) OR #s <> :done")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":pending", AttributeValue::S("PENDING".into()))
            .expression_attribute_values(":done", AttributeValue::S("DONE".into()))
            .expression_attribute_values(":device", AttributeValue::S(device_id.to_owned()))
            .expression_attribute_values(":now", AttributeValue::N(unix_now().to_string()))
            .expression_attribute_values(":open", AttributeValue::S(OPEN.into()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_error(DYNAMODB, "UpdateItem", self.home(), &e)),
        }
    }

    /// Records one more attempt at (`id`, `region`) with its outcome (creating the row if
    /// absent; `device_id` when known).
    async fn update_row(
        &self,
        id: &str,
        region: &str,
        device_id: Option<&str>,
        status: RegistrationStatus,
        error: Option<&str>,
    ) -> Result<(), IotError> {
        let mut set = vec![
            "#s = :status",
            "attempts = if_not_exists(attempts, :zero) + :one",
            "updatedAt = :now",
        ];
        let mut remove = Vec::new();
        let mut request = self
            .dynamo
            .update_item()
            .table_name(&self.table)
            .key("certificateId", AttributeValue::S(id.to_owned()))
            .key("region", AttributeValue::S(region.to_owned()))
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":status", AttributeValue::S(status.name().into()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":now", AttributeValue::N(unix_now().to_string()));
        if let Some(device_id) = device_id {
            set.push("deviceId = :device");
            request = request
                .expression_attribute_values(":device", AttributeValue::S(device_id.to_owned()));
        }
        match error {
            Some(error) => {
                set.push("lastError = :error");
                request = request
                    .expression_attribute_values(":error", AttributeValue::S(error.to_owned()));
            }
            None => remove.push("lastError"),
        }
        if status == RegistrationStatus::Done {
            remove.push("queue");
        } else {
            set.push("queue = :open");
            request = request.expression_attribute_values(":open", AttributeValue::S(OPEN.into()));
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        request
            .update_expression(expression)
            .send()
            .await
            .map_err(|e| sdk_error(DYNAMODB, "UpdateItem", self.home(), &e))?;
        Ok(())
    }
}

async fn describe(
    region: &RegionIot,
    id: &str,
) -> Result<aws_sdk_iot::types::CertificateDescription, IotError> {
    region
        .client
        .describe_certificate()
        .certificate_id(id)
        .send()
        .await
        .map_err(|e| sdk_error(IOT, "DescribeCertificate", &region.region, &e))?
        .certificate_description
        .ok_or_else(|| IotError::Corrupt(format!("DescribeCertificate {id}: no description")))
}

async fn describe_arn(region: &RegionIot, id: &str) -> Result<String, IotError> {
    let arn = describe(region, id)
        .await?
        .certificate_arn()
        .map(str::to_owned)
        .ok_or_else(|| IotError::Corrupt(format!("DescribeCertificate {id}: no ARN")))?;
    check_arn_id(&arn, id)?;
    Ok(arn)
}

/// An IoT client for `region`, otherwise configured as `sdk`.
fn iot_client(sdk: &aws_config::SdkConfig, region: &str) -> aws_sdk_iot::Client {
    let config = sdk
        .to_builder()
        .region(aws_config::Region::new(region.to_owned()))
        .build();
    aws_sdk_iot::Client::new(&config)
}

// ---------------------------------------------------------------------------------
// Pure parts (unit-tested)
// ---------------------------------------------------------------------------------

/// The least-privilege device policy for the region and account of `certificate_arn`
/// (`arn:PARTITION:iot:REGION:ACCOUNT:cert/ID`; `*` for parts it lacks): a device may
/// connect only as its own thing name with its certificate attached to that thing,
/// publish and receive on `dt/<thing name>/*`, and subscribe to filters under it.
pub fn device_policy_document(certificate_arn: &str) -> String {
    let parts: Vec<&str> = certificate_arn.split(':').collect();
    let part = |i: usize| {
        parts
            .get(i)
            .copied()
            .filter(|p| !p.is_empty() && parts.len() >= 6)
            .unwrap_or("*")
    };
    let partition = if parts.len() >= 6 { part(1) } else { "aws" };
    let base = format!("arn:{partition}:iot:{}:{}", part(3), part(4));
    let thing = "${iot:Connection.Thing.ThingName}";
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": format!("{base}:client/{thing}"),
                "Condition": { "Bool": { "iot:Connection.Thing.IsAttached": "true" } }
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Publish", "iot:Receive"],
                "Resource": format!("{base}:topic/dt/{thing}/*")
            },
            {
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": format!("{base}:topicfilter/dt/{thing}/*")
            }
        ]
    })
    .to_string()
}

/// The certificate id of a certificate ARN (`…:cert/ID`).
fn certificate_id_of_arn(arn: &str) -> Option<&str> {
    arn.rsplit_once(":cert/").map(|(_, id)| id)
}

fn check_arn_id(arn: &str, id: &str) -> Result<(), IotError> {
    match certificate_id_of_arn(arn) {
        Some(got) if got == id => Ok(()),
        got => Err(IotError::Corrupt(format!(
            "IoT Core names the certificate {} ({arn}), not SHA-256 of its DER {id} (moto: start it with use_valid_cert)",
            got.unwrap_or("?")
        ))),
    }
}

/// The first `CERTIFICATE` block of `pem`: its text (normalised) and DER.
fn first_certificate(pem: &str) -> Result<(String, Vec<u8>), String> {
    use base64::Engine as _;
    let begin = "-----BEGIN CERTIFICATE-----";
    let end = "-----END CERTIFICATE-----";
    let start = pem.find(begin).ok_or("no PEM CERTIFICATE block")? + begin.len();
    let stop = pem[start..]
        .find(end)
        .ok_or("unterminated PEM CERTIFICATE block")?
        + start;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(&body)
        .map_err(|e| format!("PEM body is not base64: {e}"))?;
    Ok((provisioner_app::pem::encode("CERTIFICATE", &der), der))
}

fn unix_now() -> UnixTime {
    provisioner_core::Clock::now(&provisioner_core::SystemClock)
}

fn encode_cursor(key: &Item) -> Result<String, IotError> {
    let text = |name: &str| match key.get(name) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        Some(AttributeValue::N(n)) => Ok(n.clone()),
        _ => Err(IotError::Corrupt(format!("page key without {name}"))),
    };
    Ok(format!(
        "{}/{}/{}",
        text("updatedAt")?,
        text("certificateId")?,
        text("region")?
    ))
}

fn decode_cursor(cursor: &str) -> Result<Item, IotError> {
    let mut parts = cursor.splitn(3, '/');
    let (Some(updated), Some(id), Some(region)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(IotError::Config(format!(
            "cursor {cursor:?} is not one this API made"
        )));
    };
    if updated.parse::<i64>().is_err() || id.is_empty() || region.is_empty() {
        return Err(IotError::Config(format!(
            "cursor {cursor:?} is not one this API made"
        )));
    }
    Ok(HashMap::from([
        ("queue".to_owned(), AttributeValue::S(OPEN.into())),
        (
            "updatedAt".to_owned(),
            AttributeValue::N(updated.to_owned()),
        ),
        ("certificateId".to_owned(), AttributeValue::S(id.to_owned())),
        ("region".to_owned(), AttributeValue::S(region.to_owned())),
    ]))
}

fn registration_from_item(item: &Item) -> Result<RegionRegistration, IotError> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        _ => Err(IotError::Corrupt(format!(
            "registrations row without text attribute {name}"
        ))),
    };
    let number = |name: &str| match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse::<i64>().map_err(|_| {
            IotError::Corrupt(format!("registrations row: {name} {n:?} is not a number"))
        }),
        _ => Err(IotError::Corrupt(format!(
            "registrations row without number attribute {name}"
        ))),
    };
    let status = text("status")?;
    Ok(RegionRegistration {
        certificate_id: text("certificateId")?,
        region: text("region")?,
        device_id: text("deviceId")?,
        status: RegistrationStatus::from_name(&status)
            .ok_or_else(|| IotError::Corrupt(format!("registrations row: status {status:?}")))?,
        attempts: u32::try_from(number("attempts")?.max(0)).unwrap_or(u32::MAX),
        last_error: text("lastError").ok(),
        updated_at: number("updatedAt")?,
    })
}

/// The parts of a certificate the flow records, read from its DER, and the certified
/// key (`Err` with the reason when it is not a key this project handles, e.g. RSA).
fn parse_certificate(
    der: &[u8],
    issuer: &str,
) -> Result<(SignedCertificate, Result<DeviceKey, String>), IotError> {
    let certificate = x509_cert::Certificate::from_der(der)
        .map_err(|e| IotError::Corrupt(format!("not an X.509 certificate: {e}")))?;
    let tbs = &certificate.tbs_certificate;
    let serial = tbs.serial_number.as_bytes();
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    let time = |t: x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs())
            .map_err(|_| IotError::Corrupt("validity out of range".into()))
    };
    let key = tbs
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())
        .and_then(|spki| DeviceKey::from_spki_der(&spki).map_err(|e| e.to_string()));
    Ok((
        SignedCertificate {
            serial: hex::encode(&serial[start..]),
            issuer: issuer.to_owned(),
            not_before: time(tbs.validity.not_before)?,
            not_after: time(tbs.validity.not_after)?,
            pem: provisioner_app::pem::encode("CERTIFICATE", der),
            der: der.to_vec(),
        },
        key,
    ))
}

/// Checks that a certificate certifies `requested` (the CSR's key).
///
/// # Errors
/// [`IotError::Corrupt`] naming what was certified instead.
pub fn check_certified_key(
    certified: &Result<DeviceKey, String>,
    requested: &DeviceKey,
) -> Result<(), IotError> {
    match certified {
        Ok(key) if key == requested => Ok(()),
        Ok(_) => Err(IotError::Corrupt(
            "the certificate certifies another key than the CSR's".into(),
        )),
        Err(why) => Err(IotError::Corrupt(format!(
            "the certificate certifies a key the CSR did not hold ({why})"
        ))),
    }
}

// ---------------------------------------------------------------------------------
// The IoT Core authority
// ---------------------------------------------------------------------------------

/// A certificate IoT Core signed, as [`IotCoreAuthority::create_from_csr`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IotCoreCertificate {
    /// What the flow records.
    pub signed: SignedCertificate,
    /// IoT Core's certificate id (checked: hex SHA-256 of the DER).
    pub certificate_id: String,
    /// IoT Core's ARN of it.
    pub certificate_arn: String,
    /// The certified key, or why it is not one this project handles.
    pub certified_key: Result<DeviceKey, String>,
}

/// Device certificates signed by AWS IoT Core's own CA (`CreateCertificateFromCsr`),
/// issuance mode `iot-core`: one region only (no other region's IoT Core knows the
/// certificate, and IoT Core's CA cannot be registered elsewhere; `AwsSettings` refuses
/// several regions in this mode).
///
/// What IoT Core decides, not the [`IssuanceProfile`]: the subject, extensions and
/// validity (IoT Core's certificates are valid until 2049-12-31), and the issuer, an
/// AWS IoT CA (`OU=Amazon Web Services O=Amazon.com Inc.`) whose certificate no API
/// returns. `CreateCertificateFromCsr` has no idempotency token: a retry after a lost
/// answer makes a second certificate (the first stays ACTIVE in IoT but unattached, so
/// it opens no connection: IoT authorises by the policy attached to the certificate).
///
/// [`CertificateAuthority::chain_pem`] is therefore [`AMAZON_ROOT_CA_1_PEM`]: not the
/// issuer of the device certificate (IoT Core itself checks that), but what the device
/// needs to trust the IoT Core endpoint it connects to.
#[derive(Debug, Clone)]
pub struct IotCoreAuthority {
    client: aws_sdk_iot::Client,
    region: String,
}

impl IotCoreAuthority {
    /// The authority of IoT Core in `region`, through `client` (configured for it).
    pub fn new(client: aws_sdk_iot::Client, region: impl Into<String>) -> Self {
        Self {
            client,
            region: region.into(),
        }
    }

    /// The authority of the serving region of `settings`, `sdk` with that region.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, settings: &AwsSettings) -> Self {
        Self::new(
            iot_client(sdk, &settings.serving_region),
            settings.serving_region.clone(),
        )
    }

    /// What [`SignedCertificate::issuer`] says: `iot-core:<region>`.
    pub fn issuer(&self) -> String {
        format!("{IOT_CORE_ISSUER_PREFIX}{}", self.region)
    }

    /// `CreateCertificateFromCsr` (ACTIVE) for the CSR `request.der`, the answer parsed
    /// and its id checked against SHA-256 of the DER, but **not** its key: see
    /// [`IotCoreAuthority::issue`], which checks it. For tests and tools.
    ///
    /// # Errors
    /// [`IotError::Unavailable`] when throttled or unreachable; [`IotError::Corrupt`] for
    /// an unparsable answer or an id that is not SHA-256 of the DER (the certificate is
    /// then set REVOKED, best effort); [`IotError::Sdk`] otherwise (e.g. a CSR IoT Core
    /// refuses).
    pub async fn create_from_csr(
        &self,
        request: &VerifiedCsr,
    ) -> Result<IotCoreCertificate, IotError> {
        let created = self
            .client
            .create_certificate_from_csr()
            .certificate_signing_request(provisioner_app::pem::encode(
                "CERTIFICATE REQUEST",
                &request.der,
            ))
            .set_as_active(true)
            .send()
            .await
            .map_err(|e| sdk_error(IOT, "CreateCertificateFromCsr", &self.region, &e))?;
        let id = created.certificate_id().unwrap_or_default().to_owned();
        let parsed = (|| {
            let pem = created
                .certificate_pem()
                .ok_or_else(|| IotError::Corrupt("no certificatePem in the answer".into()))?;
            let (_, der) = first_certificate(pem).map_err(IotError::Corrupt)?;
            let digest = hex::encode(Sha256::digest(&der));
            if digest != id {
                return Err(IotError::Corrupt(format!(
                    "certificate id {id} is not SHA-256 of its DER ({digest}); moto: start it with use_valid_cert"
                )));
            }
            let arn = created
                .certificate_arn()
                .ok_or_else(|| IotError::Corrupt("no certificateArn in the answer".into()))?;
            let (signed, certified_key) = parse_certificate(&der, &self.issuer())?;
            Ok(IotCoreCertificate {
                signed,
                certificate_id: id.clone(),
                certificate_arn: arn.to_owned(),
                certified_key,
            })
        })();
        if parsed.is_err() {
            self.disable(&id).await;
        }
        parsed
    }

    /// Sets a certificate IoT Core made but we cannot hand out REVOKED, so it is not left
    /// ACTIVE; a failure is logged (the certificate has no policy, so it opens nothing).
    async fn disable(&self, id: &str) {
        if id.is_empty() {
            return;
        }
        if let Err(e) = self
            .client
            .update_certificate()
            .certificate_id(id)
            .new_status(IotStatus::Revoked)
            .send()
            .await
        {
            tracing::error!(certificate_id = %id, error = %DisplayErrorContext(&e), "cannot revoke an unusable IoT Core certificate");
        }
    }
}

impl CertificateAuthority for IotCoreAuthority {
    /// `CreateCertificateFromCsr` in the serving region with the CSR as received, then
    /// checks: id = SHA-256 of the DER, and the certificate certifies the CSR's key (a
    /// certificate failing a check is set REVOKED in IoT Core). `idempotency_key`,
    /// `profile` and `now` are not used: IoT Core has no idempotency token and decides
    /// the certificate's contents.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when IoT Core throttles or cannot be reached;
    /// [`PortError::Internal`] otherwise, including a certificate failing a check (what
    /// moto's stand-in always answers: it certifies a new RSA key).
    async fn issue(
        &self,
        request: &VerifiedCsr,
        _idempotency_key: &str,
        _profile: &IssuanceProfile,
        _now: UnixTime,
    ) -> Result<SignedCertificate, PortError> {
        let created = self.create_from_csr(request).await?;
        if let Err(e) = check_certified_key(&created.certified_key, &request.public_key) {
            self.disable(&created.certificate_id).await;
            return Err(e.into());
        }
        Ok(created.signed)
    }

    /// [`AMAZON_ROOT_CA_1_PEM`] (see the type's docs).
    async fn chain_pem(&self) -> Result<String, PortError> {
        Ok(AMAZON_ROOT_CA_1_PEM.to_owned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_policy_is_scoped_to_the_thing_name_in_the_certificates_account() {
        let document = device_policy_document("arn:aws:iot:eu-west-1:123456789012:cert/abcdef");
        let policy: serde_json::Value = serde_json::from_str(&document).unwrap();
        let statements = policy["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 3);
        assert_eq!(statements[0]["Action"], "iot:Connect");
        assert_eq!(
            statements[0]["Resource"],
            "arn:aws:iot:eu-west-1:123456789012:client/${iot:Connection.Thing.ThingName}"
        );
        assert_eq!(
            statements[0]["Condition"]["Bool"]["iot:Connection.Thing.IsAttached"],
            "true"
        );
        assert_eq!(
            statements[1]["Action"],
            serde_json::json!(["iot:Publish", "iot:Receive"])
        );
        assert_eq!(
            statements[1]["Resource"],
            "arn:aws:iot:eu-west-1:123456789012:topic/dt/${iot:Connection.Thing.ThingName}/*"
        );
        assert_eq!(statements[2]["Action"], "iot:Subscribe");
        assert_eq!(
            statements[2]["Resource"],
            "arn:aws:iot:eu-west-1:123456789012:topicfilter/dt/${iot:Connection.Thing.ThingName}/*"
        );
        // Nothing broader than the thing's own names.
        assert!(!document.contains("\"*\""), "{document}");
    }

    #[test]
    fn the_policy_uses_wildcards_only_where_the_arn_says_nothing() {
        let document = device_policy_document("not an arn");
        assert!(document.contains("arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"));
        let china = device_policy_document("arn:aws-cn:iot:cn-north-1:1:cert/x");
        assert!(china.contains("arn:aws-cn:iot:cn-north-1:1:topic/dt/"));
    }

    #[test]
    fn certificate_ids_come_from_arns_and_must_match() {
        let arn = "arn:aws:iot:us-east-1:123456789012:cert/ab12";
        assert_eq!(certificate_id_of_arn(arn), Some("ab12"));
        assert_eq!(
            certificate_id_of_arn("arn:aws:iot:us-east-1:1:thing/x"),
            None
        );
        assert!(check_arn_id(arn, "ab12").is_ok());
        assert!(matches!(
            check_arn_id(arn, "cd34"),
            Err(IotError::Corrupt(_))
        ));
    }

    #[test]
    fn throttling_and_outages_are_unavailable_and_become_503s() {
        for code in [
            "ThrottlingException",
            "ServiceUnavailableException",
            "InternalFailureException",
            "ProvisionedThroughputExceededException",
        ] {
            assert!(is_transient_code(Some(code)), "{code}");
        }
        for code in [
            "InvalidRequestException",
            "LimitExceededException",
            "UnauthorizedException",
        ] {
            assert!(!is_transient_code(Some(code)), "{code}");
        }
        let port: PortError = IotError::Unavailable {
            service: IOT,
            operation: "RegisterCertificate",
            region: "eu-west-1".into(),
            cause: "ThrottlingException".into(),
        }
        .into();
        assert_eq!(
            port,
            PortError::Unavailable {
                what: "AWS IoT Core".into(),
                retry_after_secs: 1
            }
        );
        let port: PortError = IotError::Corrupt("x".into()).into();
        assert!(matches!(port, PortError::Internal(_)));
        // The registry's own errors pass through unchanged.
        let registry = PortError::Unavailable {
            what: "the device registry".into(),
            retry_after_secs: 1,
        };
        assert_eq!(
            PortError::from(IotError::Registry(registry.clone())),
            registry
        );
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let key = decode_cursor("1800000000/abc/eu-west-1").unwrap();
        assert_eq!(encode_cursor(&key).unwrap(), "1800000000/abc/eu-west-1");
        assert!(decode_cursor("abc").is_err());
        assert!(decode_cursor("x/abc/eu-west-1").is_err());
    }

    #[test]
    fn rows_read_back_with_their_status() {
        let item = HashMap::from([
            ("certificateId".to_owned(), AttributeValue::S("c".into())),
            ("region".to_owned(), AttributeValue::S("eu-west-1".into())),
            ("deviceId".to_owned(), AttributeValue::S("d".into())),
            ("status".to_owned(), AttributeValue::S("FAILED".into())),
            ("attempts".to_owned(), AttributeValue::N("3".into())),
            ("lastError".to_owned(), AttributeValue::S("boom".into())),
            ("updatedAt".to_owned(), AttributeValue::N("17".into())),
        ]);
        let row = registration_from_item(&item).unwrap();
        assert_eq!(row.status, RegistrationStatus::Failed);
        assert_eq!(row.attempts, 3);
        assert_eq!(row.last_error.as_deref(), Some("boom"));
        let mut bad = item;
        bad.insert("status".into(), AttributeValue::S("MAYBE".into()));
        assert!(registration_from_item(&bad).is_err());
    }

    #[test]
    fn the_amazon_root_is_the_one_amazon_publishes() {
        let (_, der) = first_certificate(AMAZON_ROOT_CA_1_PEM).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&der)),
            "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e"
        );
        let certificate = x509_cert::Certificate::from_der(&der).unwrap();
        assert!(certificate
            .tbs_certificate
            .subject
            .to_string()
            .contains("CN=Amazon Root CA 1"));
    }

    #[test]
    fn the_first_block_of_a_chain_is_the_ca_certificate() {
        let chain = format!(
            "{AMAZON_ROOT_CA_1_PEM}{}",
            provisioner_app::pem::encode("CERTIFICATE", b"second")
        );
        let (block, der) = first_certificate(&chain).unwrap();
        assert_eq!(block, AMAZON_ROOT_CA_1_PEM);
        assert_ne!(der, b"second");
        assert!(first_certificate("no pem here").is_err());
        assert!(CaRegistration::fixed("no pem here").is_err());
    }

    mod certified_key {
        use super::*;

        /// A self-signed certificate of a fresh P-256 key, made by rcgen (not by this
        /// module): its DER and the key.
        fn certificate_of_fresh_key() -> (Vec<u8>, DeviceKey) {
            let key = rcgen::KeyPair::generate().unwrap();
            let params = rcgen::CertificateParams::new(vec!["dev-1".into()]).unwrap();
            let certificate = params.self_signed(&key).unwrap();
            let device_key =
                DeviceKey::from_spki_der(&rcgen::PublicKeyData::subject_public_key_info(&key))
                    .unwrap();
            (certificate.der().to_vec(), device_key)
        }

        #[test]
        fn a_certificate_of_the_csrs_key_passes_and_of_another_key_fails() {
            let (der, key) = certificate_of_fresh_key();
            let (_, other) = certificate_of_fresh_key();
            let (signed, certified) = parse_certificate(&der, "iot-core:eu-west-1").unwrap();
            assert!(check_certified_key(&certified, &key).is_ok());
            assert!(matches!(
                check_certified_key(&certified, &other),
                Err(IotError::Corrupt(_))
            ));
            assert_eq!(signed.issuer, "iot-core:eu-west-1");
            assert!(signed.not_after > signed.not_before);
            assert!(!signed.serial.is_empty() && !signed.serial.contains(':'));
            assert_eq!(signed.der, der);
            assert_eq!(first_certificate(&signed.pem).unwrap().1, der);
        }
    }
}
