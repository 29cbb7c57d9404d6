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
//! moto (`tests/it/iot_registry.rs`) keeps IoT state per region and speaks the wire
//! protocol, but never checks a certificate's signature against a registered CA,
//! accepts `RegisterCertificate` for a CA it does not know, does not evaluate policies
//! (the document is checked as text), and its `CreateCertificateFromCsr` self-signs a new
//! RSA key instead of certifying the CSR's (so [`IotCoreAuthority::issue`] refuses its
//! certificates; see there). IoT API rate limits are not simulated: the throttling paths
//! are unit-tested through the error classification only.
//!
//! # Where it is
//!
//! - `error`: [`IotError`], and the AWS SDK's errors mapped to it.
//! - `things`: [`IotThingRegistry`] itself, and the [`ThingRegistry`] port.
//! - `region`: the registration of a certificate in one region (steps 1-5 above).
//! - `ca_registration`: [`CaRegistration`], how our CA's certificates enter IoT Core.
//! - `registrations`: the registrations table and its rows.
//! - `retry`: the other regions, in the background and by [`IotThingRegistry::retry_pending`].
//! - `revocation`: [`IotThingRegistry::revoke_in_all_regions`].
//! - `authority`: [`IotCoreAuthority`].

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use provisioner_core::UnixTime;

mod authority;
mod ca_registration;
mod error;
mod region;
mod registrations;
mod retry;
mod revocation;
mod things;

pub use authority::{
    check_certified_key, IotCoreAuthority, IotCoreCertificate, AMAZON_ROOT_CA_1_PEM,
};
pub use ca_registration::{CaCertificateFuture, CaCertificateSource, CaRegistration};
pub use error::IotError;
pub use region::device_policy_document;
pub use registrations::{RegionRegistration, RegistrationPage, RegistrationStatus};
pub use retry::{RegionRetry, RetrySummary};
pub use revocation::{RevocationFailure, RevocationSummary};
pub use things::IotThingRegistry;

#[cfg(doc)]
use crate::config::AwsSettings;
#[cfg(doc)]
use provisioner_core::{CertificateAuthority, PortError, SignedCertificate, ThingRegistry};

/// The sparse index of the registrations table that holds only unfinished rows (hash key
/// `queue` = `open`, range key `updatedAt`).
pub const UNFINISHED_INDEX: &str = "unfinished";

/// The `queue` value of an unfinished row.
const OPEN: &str = "open";

/// Registrations a page of [`IotThingRegistry::pending_registrations`] holds at most.
pub const PENDING_PAGE_SIZE: i32 = 100;

/// The prefix of [`SignedCertificate::issuer`] for certificates IoT Core signed.
pub const IOT_CORE_ISSUER_PREFIX: &str = "iot-core:";

/// A registrations table item.
type Item = HashMap<String, AttributeValue>;

/// An IoT client for `region`, otherwise configured as `sdk`.
fn iot_client(sdk: &aws_config::SdkConfig, region: &str) -> aws_sdk_iot::Client {
    let config = sdk
        .to_builder()
        .region(aws_config::Region::new(region.to_owned()))
        .build();
    aws_sdk_iot::Client::new(&config)
}

fn unix_now() -> UnixTime {
    provisioner_core::Clock::now(&provisioner_core::SystemClock)
}
