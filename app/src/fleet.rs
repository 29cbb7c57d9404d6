//! What the admin API reads and changes, whichever backend holds the fleet: the
//! [`FleetAdmin`] role and the records it speaks in.
//!
//! The admin router (`provisioner_http::admin`) owns HTTP (queries, cursors, views, errors);
//! a backend owns storage: `provisioner_store_local::admin::LocalFleet` over SQLite and the
//! data directory, `provisioner_store_aws::admin::AwsFleet` over DynamoDB, ACM Private CA and
//! IoT Core. Both answer the same routes; where a backend cannot do something (a CRL
//! on AWS is published by ACM Private CA itself, regional registrations do not exist
//! locally) it says so with a [`FleetError::NotSupported`] that names the way to do it.
//!
//! Lists are [`Listed`] pages: a backend returns at most `limit` items and, when there
//! may be more, an opaque `next` key that it alone understands (the router wraps it in
//! the API's cursor).

use std::path::PathBuf;

use provisioner_core::{
    AuditEvent, CertificateRecord, CertificateStatus, DeviceKey, ManifestFormat, RevocationReason,
    UnixTime,
};

use crate::import::{ImportOptions, ImportSummary};

mod all_certificates;
mod disable;

pub use all_certificates::all_certificates_by_pages;
pub use disable::{disable_device, DisabledDevice, DEFAULT_CUT_OFF_REASON};

/// The future a [`FleetAdmin`] method returns: the ports' one boxed form (the role is
/// held as a trait object, chosen at run time).
pub type FleetFuture<'a, T> = provisioner_core::ports::BoxFuture<'a, Result<T, FleetError>>;

/// Why a [`FleetAdmin`] call failed; the admin router maps each to one HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    /// 404 `unknown_device`.
    #[error("no device {0:?}")]
    UnknownDevice(String),
    /// 404 `unknown_certificate`.
    #[error("no certificate {0:?}")]
    UnknownCertificate(String),
    /// 503 with `Retry-After`: the store is busy or throttled.
    #[error("the registry is busy; retry in {retry_after_secs} s")]
    Busy {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// 400: the request names something wrong (a CA ARN that is no CA, say).
    #[error("{message}")]
    Invalid {
        /// Stable code.
        code: &'static str,
        /// What to fix.
        message: String,
    },
    /// 409: the state forbids it now (a rotation running, a CA not ready).
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// What to do first.
        message: String,
    },
    /// 404 with the code: this backend does not do it; the message says what does.
    #[error("{message}")]
    NotSupported {
        /// Stable code.
        code: &'static str,
        /// Where to do it instead.
        message: String,
    },
    /// 500: logged by the backend; the caller sees only that the service failed.
    #[error("{0}")]
    Internal(String),
}

impl From<provisioner_core::PortError> for FleetError {
    /// A port's refusal as the admin API answers it: unavailable is busy (503 with its
    /// wait); anything else is logged here and answered 500.
    fn from(error: provisioner_core::PortError) -> Self {
        match error {
            provisioner_core::PortError::Unavailable {
                retry_after_secs, ..
            } => Self::Busy { retry_after_secs },
            provisioner_core::PortError::ClaimLost { .. }
            | provisioner_core::PortError::IssuerRetired { .. } => Self::Busy {
                retry_after_secs: 1,
            },
            other => {
                tracing::error!(error = %other, "admin API: a port failed");
                Self::Internal(other.to_string())
            }
        }
    }
}

/// One page of a list, and where the next one starts (`None`: this was the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<T> {
    /// The items, at most the `limit` asked for.
    pub items: Vec<T>,
    /// The backend's opaque key of the next page.
    pub next: Option<String>,
}

impl<T> Listed<T> {
    /// Cuts `rows`, fetched with `limit + 1`, to a page; `key` gives the next page's key
    /// from the last item kept, only when there was more.
    pub fn cut(mut rows: Vec<T>, limit: usize, key: impl Fn(&T) -> String) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = more.then(|| rows.last().map(&key)).flatten();
        Self { items: rows, next }
    }
}

/// A device as the registry records it, with where and when it was imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The device id.
    pub device_id: String,
    /// The key from the manufacturer's manifest.
    pub public_key: DeviceKey,
    /// Disabled devices get nothing.
    pub enabled: bool,
    /// The manifest it was last imported from (its file name).
    pub source_manifest: Option<String>,
    /// When it was imported (or its key last replaced).
    pub imported_at: UnixTime,
}

/// Which devices to list: one page. Locally in device-id order; on DynamoDB in the
/// table's (hash) order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceQuery {
    /// Only ids that start with this (byte-wise, case-sensitive).
    pub prefix: Option<String>,
    /// Only enabled (`Some(true)`) or disabled (`Some(false)`) devices.
    pub enabled: Option<bool>,
    /// Where to start: the `next` of the previous page.
    pub after: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// Which certificates to list: one page, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateQuery {
    /// Only this device's.
    pub device_id: Option<String>,
    /// Only those in this status.
    pub status: Option<CertificateStatus>,
    /// Only those issued by this CA (its id).
    pub issuer: Option<String>,
    /// Where to start: the `next` of the previous page.
    pub after: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// Which audit events to list: one page, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this device's.
    pub device_id: Option<String>,
    /// Where to start: the `next` of the previous page.
    pub after: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// An audit event read back, with its id in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Its id: unique, and newer events sort after older ones within a backend.
    pub id: String,
    /// The event.
    pub event: AuditEvent,
}

/// How many allow and deny decisions the audit log holds for one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourlyDecisions {
    /// The start of the hour (Unix seconds, a multiple of 3600).
    pub hour: UnixTime,
    /// Decisions that gave a certificate.
    pub allow: u64,
    /// Refusals.
    pub deny: u64,
}

/// A manifest sent to the admin API to import.
#[derive(Debug, Clone)]
pub struct ManifestUpload {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Its format (never [`ManifestFormat::Microchip`]: its signers are not sent).
    pub format: ManifestFormat,
    /// The name recorded as the devices' source manifest.
    pub name: String,
    /// Replace keys, dry run, the time recorded.
    pub options: ImportOptions,
}

/// The outcome of a revocation through the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCertificate {
    /// The certificate as now recorded.
    pub certificate: CertificateRecord,
    /// It was revoked before: nothing changed.
    pub already_revoked: bool,
    /// What was done beyond the registry, and whether it all succeeded: the CRLs
    /// written again (local), the certificate revoked at ACM Private CA and in IoT Core
    /// in every region (AWS). False when part failed; the revocation in the registry
    /// stands, and the failure is logged and retried by the next run.
    pub propagated: bool,
    /// This call wrote the service's own CRLs again (locally, when it revoked something
    /// and the CRLs were written). Always false on AWS, where ACM Private CA publishes
    /// the CRL itself: the admin API shows it without asking which backend runs.
    pub crl_regenerated: bool,
    /// The CRL files this call wrote (locally, when `crl_regenerated`); always empty on
    /// AWS. `provisioner certs revoke` names them.
    pub crl_files: Vec<PathBuf>,
    /// Why the revocation did not reach everything beyond the registry, when the backend
    /// can say it in one line (locally: why the CRLs could not be written). `None` when
    /// `propagated`, and on AWS, which logs each region's failure instead.
    pub propagation_error: Option<String>,
}

/// One issuing CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuingCaRecord {
    /// The CA's id: its directory locally, its ARN's last part on AWS (what a
    /// certificate's `issuer` names).
    pub id: String,
    /// Its ARN (AWS only).
    pub arn: Option<String>,
    /// Its subject DN.
    pub subject: String,
    /// Its serial, hex.
    pub serial: String,
    /// SHA-256 of its certificate, hex.
    pub certificate_id: String,
    /// Validity.
    pub not_before: UnixTime,
    /// Validity.
    pub not_after: UnixTime,
    /// `current`, `previous` or `revoked`.
    pub state: &'static str,
    /// When its certificates were revoked by a rotation.
    pub revoked_at: Option<UnixTime>,
    /// The chain (this CA, then its parents), for the current CA.
    pub chain_pem: Option<String>,
}

/// The issuing CAs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaOverview {
    /// The CA issuing now.
    pub current: Option<IssuingCaRecord>,
    /// Earlier issuing CAs.
    pub previous: Vec<IssuingCaRecord>,
    /// A CA waiting for its certificate (its id locally, its ARN on AWS).
    pub pending: Option<String>,
    /// Whether `POST ca/rotate` can create and sign the next CA itself (locally, with
    /// the root key on this machine). On AWS the next CA is created and installed with
    /// `provisioner aws ca create` and `install`, and the rotation names it.
    pub can_create_next_ca: bool,
    /// The CRLs the service publishes itself: locally each issuing CA's, then the root's
    /// when its key is local. Empty on AWS (ACM Private CA publishes them).
    pub crls: Vec<CrlRecord>,
}

/// One CRL the service publishes, as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlRecord {
    /// The issuing CA's id, or `root`.
    pub issuer: String,
    /// Its thisUpdate and nextUpdate; `None` while it is not written yet.
    pub this_update: Option<UnixTime>,
    /// Its nextUpdate, after which relying parties refuse it.
    pub next_update: Option<UnixTime>,
    /// How many certificates it lists.
    pub revoked: u64,
}

/// A request to rotate the issuing CA.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RotationRequest {
    /// The CA to rotate to (AWS: an installed ACM Private CA's ARN). Locally the next CA
    /// is created, so this must be `None`.
    pub to: Option<String>,
}

/// Where a rotation is, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationStatus {
    /// Its id.
    pub job_id: String,
    /// `running`, `finished`, `failed` or `interrupted`.
    pub state: &'static str,
    /// The step: locally `revoking`; on AWS `registering`, `switching`, `revoking`,
    /// `deactivating`, `done`.
    pub step: Option<&'static str>,
    /// When it started.
    pub started_at: UnixTime,
    /// When it finished.
    pub finished_at: Option<UnixTime>,
    /// The CA replaced.
    pub old_ca: Option<String>,
    /// The CA replacing it.
    pub new_ca: Option<String>,
    /// Certificates of the old CA revoked so far.
    pub revoked: u64,
    /// How many there are to revoke, when known.
    pub total: Option<u64>,
    /// Whether it continued an interrupted rotation.
    pub resumed: bool,
    /// Why it failed or stopped.
    pub error: Option<String>,
    /// What the PKI admin must still do by hand, if anything.
    pub admin_action: Option<String>,
}

/// A device certificate's registration with IoT Core in one region (AWS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationRecord {
    /// The certificate.
    pub certificate_id: String,
    /// The region.
    pub region: String,
    /// Its device.
    pub device_id: String,
    /// `PENDING`, `DONE` or `FAILED`.
    pub status: &'static str,
    /// Attempts so far.
    pub attempts: u32,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it last changed.
    pub updated_at: UnixTime,
}

/// What one run of the registration retries did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetriedRegistrations {
    /// Registrations looked at.
    pub attempted: u64,
    /// Now done.
    pub done: u64,
    /// Still failing.
    pub failed: u64,
    /// Pending ones changed a moment ago (a request may still be finishing them): left
    /// for a later run.
    pub in_flight: u64,
    /// More were due than `limit` allowed.
    pub more: bool,
}

/// The answer to a CRL request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlDocument {
    /// The CRL, PEM.
    pub pem: String,
}

/// The fleet as the admin API sees it: devices, certificates, the audit log, the
/// issuing CA and, on AWS, the regional registrations.
///
/// Methods take `&self` and return boxed futures so that the router holds one
/// `Arc<dyn FleetAdmin>` whatever the backend.
pub trait FleetAdmin: Send + Sync + 'static {
    /// `local` or `aws`, shown to the dashboard (`GET ca` says it). For display only:
    /// no caller branches on it (docs/ARCHITECTURE.md, "The rule: layers call downwards
    /// only"); what differs between backends is in the answers of the other methods,
    /// such as [`RevokedCertificate::crl_regenerated`].
    fn backend(&self) -> &'static str;

    /// One page of devices.
    fn devices(&self, query: DeviceQuery) -> FleetFuture<'_, Listed<DeviceRecord>>;

    /// One device.
    fn device<'a>(&'a self, device_id: &'a str) -> FleetFuture<'a, Option<DeviceRecord>>;

    /// Enables or disables a device; the device as now recorded.
    /// [`FleetError::UnknownDevice`] when there is none.
    fn set_device_enabled<'a>(
        &'a self,
        device_id: &'a str,
        enabled: bool,
    ) -> FleetFuture<'a, DeviceRecord>;

    /// Imports (or, with `dry_run`, classifies) a manifest with the CLI's rules.
    fn import(&self, upload: ManifestUpload) -> FleetFuture<'_, ImportSummary>;

    /// One page of certificates, newest first.
    fn certificates(&self, query: CertificateQuery) -> FleetFuture<'_, Listed<CertificateRecord>>;

    /// Every certificate `query` matches (its device, status and issuer), oldest first
    /// where the backend orders them by issue time (locally; on AWS with a device): what
    /// `provisioner certs list` prints. `query.after` is where to start and `query.limit`
    /// how many to read at a time for a backend that pages; one that reads them in one go
    /// (the SQLite registry, in a single snapshot) ignores both. By default, the pages of
    /// [`certificates`](Self::certificates): [`all_certificates_by_pages`].
    fn all_certificates(&self, query: CertificateQuery) -> FleetFuture<'_, Vec<CertificateRecord>> {
        Box::pin(all_certificates_by_pages(self, query))
    }

    /// One certificate, with its PEM.
    fn certificate<'a>(
        &'a self,
        certificate_id: &'a str,
    ) -> FleetFuture<'a, Option<CertificateRecord>>;

    /// Revokes a certificate everywhere it is trusted.
    fn revoke<'a>(
        &'a self,
        certificate_id: &'a str,
        reason: RevocationReason,
        now: UnixTime,
    ) -> FleetFuture<'a, RevokedCertificate>;

    /// One page of audit events, newest first.
    fn audit(&self, query: AuditQuery) -> FleetFuture<'_, Listed<LoggedEvent>>;

    /// Decisions per hour in `[since, until)`; hours without any may be left out.
    fn decisions_per_hour(
        &self,
        since: UnixTime,
        until: UnixTime,
    ) -> FleetFuture<'_, Vec<HourlyDecisions>>;

    /// The issuing CAs.
    fn ca(&self) -> FleetFuture<'_, CaOverview>;

    /// The current issuing CA's CRL, up to date.
    fn crl(&self, now: UnixTime) -> FleetFuture<'_, CrlDocument>;

    /// Starts a rotation as a job (or resumes an interrupted one); its first status.
    fn start_rotation(
        &self,
        request: RotationRequest,
        now: UnixTime,
    ) -> FleetFuture<'_, RotationStatus>;

    /// The running or last rotation, if any ran.
    fn rotation(&self) -> FleetFuture<'_, Option<RotationStatus>>;

    /// One page of the regional registrations not finished yet (`PENDING` or `FAILED`),
    /// oldest change first.
    fn unfinished_registrations(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> FleetFuture<'_, Listed<RegistrationRecord>>;

    /// Every region's registration of one certificate (empty locally).
    fn registrations_of<'a>(
        &'a self,
        certificate_id: &'a str,
    ) -> FleetFuture<'a, Vec<RegistrationRecord>>;

    /// Retries up to `limit` pending or failed regional registrations now.
    fn retry_registrations(&self, limit: usize) -> FleetFuture<'_, RetriedRegistrations>;
}
