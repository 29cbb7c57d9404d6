//! The PKI admin's steps on AWS (docs/ARCHITECTURE.md) and the issuing CA's rotation with
//! cascading revocation: an ACM Private CA subordinate whose CSR a parent CA signs,
//! registered in IoT Core in every region, recorded as the issuing CA in the config table
//! (read by the service at run time, so switching CAs needs no redeploy).
//!
//! # The config table
//!
//! `{prefix}config` ([`AwsSettings::config_table`]), key `name` (S), one item per setting
//! changed at run time; [`IssuingCaStore::create_config_table`] creates it:
//!
//! | `name` | attributes |
//! |---|---|
//! | [`ISSUING_CA_ITEM`] | `caArn` (S, the CA that issues now), `previousCaArns` (L of S, oldest first), `updatedAt` (N) |
//! | [`ROTATION_ITEM`] | the last rotation's progress ([`RotationProgress`]): `fromCaArn`, `toCaArn`, `state`, `failedState`, `reason`, `revoked`, `total`, `cursor`, `startedAt`, `updatedAt`, `completedAt`, `lastError`, `parentCaArn`, `adminAction` |
//! | [`PENDING_CA_ITEM`] | `caArn` of the CA `aws ca create` made and no rotation has put in service yet, `createdAt` |
//! | [`RETIRED_CA_ITEM_PREFIX`]`{caArn}` | one per CA a finished rotation retired: `caArn`, `replacedBy`, `reason`, `retiredAt` (N), kept when later rotations overwrite [`ROTATION_ITEM`] |
//!
//! The issuer reads [`IssuingCaStore::current`] (cached briefly) and falls back to
//! [`AwsSettings::pca_ca_arn`] when no item exists. [`IssuingCaStore::set_current`] is
//! conditional on the ARN it replaces, so two rotations cannot both switch.
//!
//! # Rotation ([`IssuingCaAdmin::rotate`])
//!
//! States, each recorded in the [`ROTATION_ITEM`] before the next begins:
//!
//! 1. `registering`: the new CA's certificate is registered (ACTIVE) in IoT Core in every
//!    region;
//! 2. `switching`: the new CA becomes the issuing CA ([`IssuingCaStore::set_current`]),
//!    then the rotation waits [`RotationOptions::settle`] so every issuer's cached CA
//!    and every issuance in flight under the old one have ended;
//! 3. `revoking`: every ACTIVE certificate of the old CA in the registry (issuer = the old
//!    CA's id) is set REVOKED in IoT Core in every region, then in the registry, a page at
//!    a time; the progress (count, scan cursor) is written after each page, so a crashed
//!    or interrupted rotation resumes from the cursor when run again. A pass that revoked
//!    anything is followed by another from the start, until one finds nothing: a
//!    certificate an issuer with a stale cache recorded behind the cursor is not missed;
//! 4. `deactivating`: the old CA certificate is set INACTIVE in IoT Core in every region,
//!    and the old intermediate is revoked by its parent when the parent is an ACM Private
//!    CA of this account in the serving region; otherwise the progress names what the PKI
//!    admin must do (`adminAction`);
//! 5. `done`. A failure records `failed` with the state it failed in (`failedState`) and
//!    the error; running the rotation again resumes there.
//!
//! Devices whose certificates were revoked fail at IoT Core and come back through `/new`,
//! where the new CA issues.
//!
//! ## Revocation reason
//!
//! `superseded` by default, as the local rotation (`local::operations::rotate_ca`) and
//! the design's re-issue policy use it: a routine rotation replaces certificates, it does
//! not say a key leaked, and devices simply come back. A rotation because the old CA's key
//! is compromised passes `cACompromise` ([`RotationOptions::reason`]); the registry records
//! it, and the parent revokes the old intermediate with it. IoT Core records no reason.
//! The intermediate itself is revoked `cessationOfOperation` (as the local root's CRL
//! lists retired intermediates) unless the reason is `cACompromise`. Device certificates
//! are not revoked at ACM PCA one by one: IoT Core refuses them, and a relying party
//! that checks CRLs refuses the whole old intermediate once its parent revoked it.
//!
//! # What moto cannot show
//!
//! The tests (`tests/it/aws_ca.rs`) run against moto's server, which does not check that
//! the verification certificate's CN is the registration code or that it is signed by
//! the CA being registered; it does not refuse a CA certificate registered twice; its CA
//! keys are RSA whatever the request asks; it computes IoT certificate ids as SHA-256 of
//! the PEM text (not the DER, as IoT Core does and this module relies on) unless started
//! with `use_valid_cert` (`scripts/moto.sh` does; it has no `ListCACertificates`
//! either, and CA certificates are found by that id, never listed); and it produces no CRL, so a parent's revocation of
//! the intermediate is only visible through moto's `GetCertificate` quirk (a revoked
//! certificate answers "in progress"). IoT Core's per-account limits and throttling are
//! not simulated: the backoff on throttling is not exercised there.
//!
//! # Where it is
//!
//! - `error`: [`CaError`], and the AWS SDK's errors mapped to it (throttling retried).
//! - `certificates`: PEM blocks, certificate summaries and CA subjects (pure).
//! - `store`: [`IssuingCaStore`], the config table's CA items.
//! - `progress`: a rotation's recorded progress ([`RotationProgress`]).
//! - `iot_regions`: [`IotRegions`], the CA certificate in IoT Core of every region.
//! - `admin`: [`IssuingCaAdmin`] and the PKI admin's steps (create, install, describe).
//! - `rotation`: the rotation's state machine ([`IssuingCaAdmin::rotate`]).

use std::time::Duration;

use provisioner_core::{Clock, SystemClock, UnixTime};

#[cfg(doc)]
use crate::{acm_pca::AcmPcaConfig, config::AwsSettings};

mod admin;
mod certificates;
mod error;
mod iot_regions;
mod progress;
mod rotation;
mod store;

pub use admin::{CaDescription, CreatedCa, InstalledCa, IssuingCaAdmin};
pub use certificates::{pem_blocks, pem_of, summarize_certificate, CaSubject, CertificateSummary};
pub use error::CaError;
pub use iot_regions::{IotCaRegistration, IotCertificateRevoker, IotRegions};
pub use progress::{RotationProgress, RotationState};
pub use rotation::{RotationOptions, RotationOutcome};
pub use store::{IssuingCa, IssuingCaStore, RetiredCa};

/// The config item naming the issuing CA.
pub const ISSUING_CA_ITEM: &str = "issuing-ca";
/// The config item holding the last CA rotation's progress.
pub const ROTATION_ITEM: &str = "ca-rotation";
/// The config item naming the CA `aws ca create` made, not yet in service.
pub const PENDING_CA_ITEM: &str = "pending-ca";
/// The prefix of the config items recording each CA a finished rotation retired (the CA's
/// ARN follows): [`ROTATION_ITEM`] holds the last rotation only.
pub const RETIRED_CA_ITEM_PREFIX: &str = "retired-ca#";

/// The PCA template that signs IoT Core's verification certificate.
pub const END_ENTITY_TEMPLATE: &str = "arn:aws:acm-pca:::template/EndEntityCertificate/V1";
/// The PCA template a parent ACM Private CA uses to sign an issuing CA (no sub-CAs below).
pub const SUBORDINATE_TEMPLATE: &str =
    "arn:aws:acm-pca:::template/SubordinateCACertificate_PathLen0/V1";

/// Certificates evaluated per rotation page (a `Scan` page of the certificates table).
pub const DEFAULT_ROTATION_PAGE: i32 = 100;
/// How long a rotation waits after switching before it revokes: the issuer's cache of the
/// current CA (30 s, `aws::adapters::CurrentPcaAuthority::REFRESH`) plus an issuance's
/// longest wait for PCA (10 s, [`AcmPcaConfig::new`]) and a margin.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(45);

/// The id of the CA `arn`: its last part (`.../certificate-authority/ID`).
pub fn ca_id(arn: &str) -> &str {
    arn.rsplit_once("certificate-authority/")
        .map_or(arn, |(_, id)| id)
}

/// The time now, by the system clock.
fn now() -> UnixTime {
    SystemClock.now()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn ca_ids_are_the_arns_last_part() {
        assert_eq!(
            ca_id("arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/1111-2222"),
            "1111-2222"
        );
        assert_eq!(ca_id("plain"), "plain");
    }
}
