//! The admin API's AWS backend: [`AwsFleet`] answers [`FleetAdmin`] from DynamoDB (the
//! registry, the audit log, the config table's CA items), ACM Private CA and IoT Core in
//! every configured region.
//!
//! What runs long is not run here: `POST ca/rotate` only records the rotation
//! ([`IssuingCaAdmin::begin_rotation`], state `registering`), and the scheduled
//! maintenance ([`super::maintenance::Maintenance`]: the maintenance Lambda, or the task
//! `provisioner serve --backend aws` spawns) runs its steps a budget at a time, as it
//! finishes the regional registrations the device flow leaves behind. A request never
//! waits for thousands of IoT Core calls, and a rotation survives any one process.
//!
//! Who may call is the router's business (`AdminContext` in `provisioner-http`): Cognito JWTs
//! in the Lambda, and also the data directory's token under `provisioner serve --backend aws`.
//!
//! # Revocation
//!
//! [`FleetAdmin::revoke`] revokes in the registry first (what the service decides by),
//! then at ACM Private CA (issuance mode `acm-pca`: the certificate's issuer, the current
//! or a previous issuing CA, lists it on its CRL) and in IoT Core in every region. When a
//! later step fails, the registry's revocation stands, the failure is logged, and the
//! answer says `propagated: false`; revoking the same certificate again repeats the later
//! steps (each is idempotent), so the admin retries by asking again.

use aws_sdk_iot::error::{DisplayErrorContext, ProvideErrorMetadata};
use provisioner_core::{
    CertificateRecord, Clock, DeviceRegistry, ManifestEntryError, ManifestFormat, ManifestReader,
    PortError, RevocationReason, SystemClock, UnixTime,
};

use super::acm_pca::{AcmPcaAuthority, AcmPcaConfig};
use super::adapters::AwsParts;
use super::ca::{ca_id, CaError, IssuingCaAdmin, RotationOptions, RotationProgress, RotationState};
use super::config::{AwsSettings, IssuanceMode};
use super::dynamodb::{DynamoDbError, DynamoDbRegistry};
use super::iot::{IotError, IotThingRegistry, RegionRegistration, IOT_CORE_ISSUER_PREFIX};
use super::maintenance::Maintenance;
use provisioner_app::fleet::{
    AuditQuery, CaOverview, CertificateQuery, CrlDocument, DeviceQuery, DeviceRecord, FleetAdmin,
    FleetError, FleetFuture, HourlyDecisions, IssuingCaRecord, Listed, LoggedEvent, ManifestUpload,
    RegistrationRecord, RetriedRegistrations, RevokedCertificate, RotationRequest, RotationStatus,
};
use provisioner_app::import::{ImportItem, ImportSummary};

/// The fleet on AWS (see the module docs).
///
/// Cheap to clone: clones share the SDK clients.
#[derive(Debug, Clone)]
pub struct AwsFleet {
    registry: DynamoDbRegistry,
    ca: IssuingCaAdmin,
    things: IotThingRegistry<DynamoDbRegistry>,
    /// The SDK configuration ACM Private CA clients are made from, each in its CA's
    /// region; `None` in issuance mode `iot-core` (no ACM Private CA).
    pca: Option<aws_config::SdkConfig>,
}

impl AwsFleet {
    /// The fleet of `settings`, over clients from the standard AWS configuration (see
    /// [`AwsAdapters::connect`](super::adapters::AwsAdapters::connect)). Call once per process.
    ///
    /// # Errors
    /// When the regions cannot be served (see [`IotThingRegistry::new`]).
    pub async fn connect(settings: &AwsSettings) -> Result<Self, PortError> {
        let parts = AwsParts::connect(settings).await?;
        let pca = (settings.issuance_mode == IssuanceMode::AcmPca).then_some(parts.sdk);
        Ok(Self::from_parts(
            parts.registry,
            parts.ca,
            parts.things,
            pca,
        ))
    }

    /// The fleet over given parts (tests point them at moto). `pca` is the SDK
    /// configuration ACM Private CA clients are made from (each in its CA's region, as
    /// its ARN names it), `None` in issuance mode `iot-core`.
    pub fn from_parts(
        registry: DynamoDbRegistry,
        ca: IssuingCaAdmin,
        things: IotThingRegistry<DynamoDbRegistry>,
        pca: Option<aws_config::SdkConfig>,
    ) -> Self {
        Self {
            registry,
            ca,
            things,
            pca,
        }
    }

    /// The maintenance over the same clients: what `provisioner serve --backend aws`
    /// spawns next to the admin API.
    pub fn maintenance(&self) -> Maintenance {
        Maintenance::from_parts(
            self.pca.is_some().then(|| self.ca.clone()),
            self.things.clone(),
        )
    }

    /// An ACM Private CA client in the region of the CA `arn`.
    fn pca_client(sdk: &aws_config::SdkConfig, arn: &str) -> aws_sdk_acmpca::Client {
        let mut config = sdk.to_builder();
        if let Some(region) = arn.split(':').nth(3).filter(|r| !r.is_empty()) {
            config = config.region(aws_config::Region::new(region.to_owned()));
        }
        aws_sdk_acmpca::Client::new(&config.build())
    }

    /// The ARN of the CA whose id (what the registry records as `issuer`) is `issuer`:
    /// the CA in effect, or one it replaced.
    async fn arn_of(&self, issuer: &str) -> Result<Option<String>, CaError> {
        let mut known = Vec::new();
        if let Some(recorded) = self.ca.store().current().await? {
            known.push(recorded.ca_arn);
            known.extend(recorded.previous_ca_arns);
        } else if let Some(fallback) = self.ca.current_arn().await? {
            known.push(fallback);
        }
        Ok(known.into_iter().find(|arn| ca_id(arn) == issuer))
    }

    /// Revokes `record` at ACM Private CA and in IoT Core in every region; false (each
    /// failure logged) when any part failed.
    async fn propagate(&self, record: &CertificateRecord, reason: RevocationReason) -> bool {
        let mut complete = true;
        if let Some(sdk) = &self.pca {
            if !record.issuer.starts_with(IOT_CORE_ISSUER_PREFIX) {
                complete &= self.revoke_at_pca(sdk, record, reason).await;
            }
        }
        let summary = self
            .things
            .revoke_in_all_regions(std::slice::from_ref(&record.certificate_id))
            .await;
        for failure in &summary.failed {
            tracing::error!(
                certificate = %record.certificate_id,
                region = %failure.region,
                error = %failure.error,
                "admin revoke: not revoked in IoT Core; revoke the certificate again to retry"
            );
        }
        complete && summary.is_complete()
    }

    async fn revoke_at_pca(
        &self,
        sdk: &aws_config::SdkConfig,
        record: &CertificateRecord,
        reason: RevocationReason,
    ) -> bool {
        let arn = match self.arn_of(&record.issuer).await {
            Ok(Some(arn)) => arn,
            Ok(None) => {
                tracing::error!(
                    certificate = %record.certificate_id,
                    issuer = %record.issuer,
                    "admin revoke: the issuer is neither the issuing CA nor one it replaced \
                     (config table); not revoked at ACM Private CA"
                );
                return false;
            }
            Err(error) => {
                tracing::error!(certificate = %record.certificate_id, %error,
                    "admin revoke: cannot read the issuing CA; not revoked at ACM Private CA");
                return false;
            }
        };
        let authority =
            AcmPcaAuthority::new(Self::pca_client(sdk, &arn), AcmPcaConfig::new(arn.clone()));
        match authority.revoke(&record.serial, reason).await {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(
                    certificate = %record.certificate_id,
                    ca = %arn,
                    %error,
                    "admin revoke: not revoked at ACM Private CA; revoke the certificate again to retry"
                );
                false
            }
        }
    }

    async fn overview(&self) -> Result<CaOverview, FleetError> {
        if self.pca.is_none() {
            // Issuance mode iot-core: IoT Core's own CA signs; no config table to read.
            return Ok(CaOverview {
                current: None,
                previous: Vec::new(),
                pending: None,
                can_create_next_ca: false,
                crls: Vec::new(),
            });
        }
        let store = self.ca.store();
        let (current_arn, previous_arns) = match store.current().await.map_err(FleetError::from)? {
            Some(recorded) => (Some(recorded.ca_arn), recorded.previous_ca_arns),
            None => (self.ca.current_arn().await.map_err(ca_error)?, Vec::new()),
        };
        let rotation = store.rotation().await.map_err(ca_error)?;
        let current = match current_arn {
            Some(arn) => {
                let (summary, chain) = self.ca.certificate_of(&arn).await.map_err(ca_error)?;
                let mut record = ca_record(&arn, summary, "current", None);
                record.chain_pem = Some(chain);
                Some(record)
            }
            None => None,
        };
        let mut previous = Vec::new();
        // Newest first, as the dashboard lists them.
        for arn in previous_arns.iter().rev() {
            let retired_at = store
                .retired(arn)
                .await
                .map_err(ca_error)?
                .map(|r| r.retired_at);
            // A rotation finished before retired CAs were recorded: the last one still shows.
            let revoked_at = retired_at.or_else(|| {
                rotation
                    .as_ref()
                    .filter(|r| r.from_ca_arn == *arn && r.state == RotationState::Done)
                    .and_then(|r| r.completed_at)
            });
            let state = if revoked_at.is_some() {
                "revoked"
            } else {
                "previous"
            };
            match self.ca.certificate_of(arn).await {
                Ok((summary, _)) => previous.push(ca_record(arn, summary, state, revoked_at)),
                // A retired CA may be deleted at ACM Private CA: it is still listed.
                Err(error) => {
                    tracing::warn!(ca = %arn, %error, "admin: a previous CA's certificate cannot be read");
                    previous.push(IssuingCaRecord {
                        id: ca_id(arn).to_owned(),
                        arn: Some(arn.clone()),
                        subject: format!("(its certificate cannot be read: {})", error.code()),
                        serial: String::new(),
                        certificate_id: String::new(),
                        not_before: 0,
                        not_after: 0,
                        state,
                        revoked_at,
                        chain_pem: None,
                    });
                }
            }
        }
        Ok(CaOverview {
            current,
            previous,
            pending: store.pending().await.map_err(ca_error)?,
            can_create_next_ca: false,
            crls: Vec::new(),
        })
    }

    async fn crl_answer(&self) -> FleetError {
        let not_supported = |message: String| FleetError::NotSupported {
            code: "crl_published_by_pca",
            message,
        };
        let Some(sdk) = &self.pca else {
            return not_supported(
                "in issuance mode iot-core, certificates are revoked in IoT Core only: there \
                 is no CRL. A relying party outside IoT Core reads a certificate's status from \
                 IoT Core (aws iot describe-certificate) instead"
                    .into(),
            );
        };
        let arn =
            match self.ca.current_arn().await {
                Ok(Some(arn)) => arn,
                Ok(None) => return not_supported(
                    "ACM Private CA publishes the issuing CA's CRL itself, but no issuing CA is \
                     in effect yet"
                        .into(),
                ),
                Err(error) => return ca_error(error),
            };
        let described = Self::pca_client(sdk, &arn)
            .describe_certificate_authority()
            .certificate_authority_arn(&arn)
            .send()
            .await;
        let revocation = described.as_ref().ok().and_then(|output| {
            output
                .certificate_authority()
                .and_then(|ca| ca.revocation_configuration())
        });
        let ocsp = revocation
            .and_then(|r| r.ocsp_configuration())
            .filter(|o| o.enabled());
        let crl = match &described {
            Ok(_) => revocation
                .and_then(|r| r.crl_configuration())
                .filter(|c| c.enabled()),
            Err(error) => {
                tracing::warn!(ca = %arn, error = %DisplayErrorContext(error), code = ?error.code(),
                    "admin: cannot read the CA's revocation configuration");
                return not_supported(format!(
                    "ACM Private CA publishes the CRL of the issuing CA {arn} itself, as its \
                     revocation configuration says (aws acm-pca describe-certificate-authority \
                     --certificate-authority-arn {arn})"
                ));
            }
        };
        let message = match crl {
            Some(crl) => {
                let bucket = crl.s3_bucket_name().unwrap_or("(none)");
                let path = crl.custom_path().unwrap_or("crl");
                let mut message = format!(
                    "ACM Private CA publishes the CRL of the issuing CA {arn} itself: in S3 \
                     bucket {bucket} under {path}/ (each certificate's CRL Distribution Points \
                     extension gives its URL)"
                );
                if let Some(cname) = crl.custom_cname() {
                    message.push_str(&format!(", served as http://{cname}/{path}/"));
                }
                message
            }
            None => format!(
                "ACM Private CA publishes CRLs, but the issuing CA {arn} has no CRL enabled: \
                 enable one in its revocation configuration (aws acm-pca \
                 update-certificate-authority --certificate-authority-arn {arn} \
                 --revocation-configuration ...) and read it from the S3 bucket it names"
            ),
        };
        not_supported(format!(
            "{message}. {}",
            relying_party_advice(ocsp.is_some())
        ))
    }

    async fn begin(&self, request: RotationRequest) -> Result<RotationStatus, FleetError> {
        if self.pca.is_none() {
            return Err(FleetError::NotSupported {
                code: "no_issuing_ca",
                message: "in issuance mode iot-core, IoT Core's own CA signs: there is no \
                          issuing CA to rotate"
                    .into(),
            });
        }
        let Some(to) = request.to.filter(|to| !to.trim().is_empty()) else {
            return Err(FleetError::Invalid {
                code: "missing_target_ca",
                message: "name the CA to rotate to: POST ca/rotate with {\"to\": \"arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/ID\"}, an ACM Private CA created and installed with `provisioner aws ca create` and `install`".into(),
            });
        };
        let to = to.trim().to_owned();
        if !(to.starts_with("arn:") && to.contains(":acm-pca:") && ca_id(&to) != to) {
            return Err(FleetError::Invalid {
                code: "invalid_target_ca",
                message: format!(
                    "{to:?} is not an ACM Private CA ARN \
                     (arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/ID)"
                ),
            });
        }
        let (progress, resumed) = self
            .ca
            .begin_rotation(&to, &RotationOptions::default())
            .await
            .map_err(ca_error)?;
        tracing::info!(from = %progress.from_ca_arn, to = %progress.to_ca_arn, resumed,
            "admin: CA rotation recorded; the scheduled maintenance runs it");
        Ok(rotation_status(&progress, resumed))
    }
}

/// The admin API's view of a rotation's recorded progress.
pub fn rotation_status(progress: &RotationProgress, resumed: bool) -> RotationStatus {
    let state = match progress.state {
        RotationState::Done => "finished",
        RotationState::Failed => "failed",
        _ => "running",
    };
    RotationStatus {
        job_id: format!("rotation-{}", progress.started_at),
        state,
        // A failed rotation shows the step it failed in, where the next run resumes.
        step: Some(progress.resume_state().name()),
        started_at: progress.started_at,
        finished_at: progress.completed_at,
        old_ca: Some(progress.from_ca_arn.clone()),
        new_ca: Some(progress.to_ca_arn.clone()),
        revoked: progress.revoked,
        total: progress.total,
        resumed,
        error: progress.last_error.clone(),
        admin_action: progress.admin_action.clone(),
    }
}

fn ca_record(
    arn: &str,
    summary: super::ca::CertificateSummary,
    state: &'static str,
    revoked_at: Option<UnixTime>,
) -> IssuingCaRecord {
    IssuingCaRecord {
        id: ca_id(arn).to_owned(),
        arn: Some(arn.to_owned()),
        subject: summary.subject,
        serial: summary.serial,
        certificate_id: summary.sha256,
        not_before: summary.not_before,
        not_after: summary.not_after,
        state,
        revoked_at,
        chain_pem: None,
    }
}

fn registration_record(row: RegionRegistration) -> RegistrationRecord {
    RegistrationRecord {
        certificate_id: row.certificate_id,
        region: row.region,
        device_id: row.device_id,
        status: row.status.name(),
        attempts: row.attempts,
        last_error: row.last_error,
        updated_at: row.updated_at,
    }
}

const BUSY: FleetError = FleetError::Busy {
    retry_after_secs: 1,
};

fn dynamo_error(error: DynamoDbError) -> FleetError {
    match error {
        DynamoDbError::Unavailable { .. } => BUSY,
        // A cursor the caller garbled is the caller's mistake, not the service's.
        e if super::dynamodb_admin::is_bad_cursor(&e) => invalid_cursor(),
        other => {
            tracing::error!(error = %other, "admin API: DynamoDB failure");
            FleetError::Internal(other.to_string())
        }
    }
}

fn iot_error(error: IotError) -> FleetError {
    match error {
        IotError::Unavailable { .. } => BUSY,
        other => {
            tracing::error!(error = %other, "admin API: IoT Core failure");
            FleetError::Internal(other.to_string())
        }
    }
}

/// A CA operation's failure as the admin API answers it.
fn ca_error(error: CaError) -> FleetError {
    match error {
        CaError::Unavailable { .. } => BUSY,
        CaError::Port(port) => port.into(),
        CaError::Conflict(message) => FleetError::Conflict {
            code: "rotation_in_progress",
            message,
        },
        CaError::WrongState(message) => FleetError::Conflict {
            code: "ca_not_ready",
            message,
        },
        CaError::InvalidInput(message) => FleetError::Invalid {
            code: "invalid_target_ca",
            message,
        },
        CaError::NotFound(message) => FleetError::Invalid {
            code: "unknown_ca",
            message,
        },
        other => {
            tracing::error!(error = %other, "admin API: CA failure");
            FleetError::Internal(other.to_string())
        }
    }
}

fn invalid_cursor() -> FleetError {
    FleetError::Invalid {
        code: "invalid_cursor",
        message: "the cursor is not one this list returned: pass the nextCursor of the previous page unchanged, or omit cursor to start at the beginning".into(),
    }
}

impl FleetAdmin for AwsFleet {
    fn backend(&self) -> &'static str {
        "aws"
    }

    fn devices(&self, query: DeviceQuery) -> FleetFuture<'_, Listed<DeviceRecord>> {
        Box::pin(async move {
            self.registry
                .list_devices(&query)
                .await
                .map_err(dynamo_error)
        })
    }

    fn device<'a>(&'a self, device_id: &'a str) -> FleetFuture<'a, Option<DeviceRecord>> {
        Box::pin(async move {
            self.registry
                .device_record(device_id)
                .await
                .map_err(dynamo_error)
        })
    }

    fn set_device_enabled<'a>(
        &'a self,
        device_id: &'a str,
        enabled: bool,
    ) -> FleetFuture<'a, DeviceRecord> {
        Box::pin(async move {
            self.registry
                .set_device_enabled(device_id, enabled)
                .await
                .map_err(dynamo_error)?
                .ok_or_else(|| FleetError::UnknownDevice(device_id.to_owned()))
        })
    }

    fn import(&self, upload: ManifestUpload) -> FleetFuture<'_, ImportSummary> {
        Box::pin(async move {
            if upload.format == ManifestFormat::Microchip {
                // The router refuses them before; a backend does not guess signers.
                return Err(FleetError::Invalid {
                    code: "unsupported_manifest_format",
                    message: "Microchip signed manifests need their signers' certificates: \
                              import them with `provisioner aws import --manifest-signer`"
                        .into(),
                });
            }
            let ManifestUpload {
                bytes,
                format,
                name,
                options,
            } = upload;
            // Parsing a large manifest is CPU work: off the async threads.
            let entries = tokio::task::spawn_blocking(move || {
                let reader = ManifestReader::new().with_format(format);
                match reader.read(&bytes) {
                    // A file that cannot be read at all is its line 0, as the CLI says.
                    Err(e) => vec![Err(ManifestEntryError::new(0, None, &e))],
                    Ok(entries) => entries.collect::<Vec<_>>(),
                }
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "admin API: the manifest parser failed");
                FleetError::Internal("the manifest parser failed".into())
            })?;
            let source = name.as_str();
            self.registry
                .import(
                    entries
                        .into_iter()
                        .map(|entry| ImportItem { source, entry }),
                    &options,
                )
                .await
                .map_err(|error| match error {
                    DynamoDbError::ImportRaced(_) => FleetError::Conflict {
                        code: "import_raced",
                        message: error.to_string(),
                    },
                    other => dynamo_error(other),
                })
        })
    }

    fn certificates(&self, query: CertificateQuery) -> FleetFuture<'_, Listed<CertificateRecord>> {
        Box::pin(async move {
            self.registry
                .list_certificates(&query)
                .await
                .map_err(dynamo_error)
        })
    }

    fn certificate<'a>(
        &'a self,
        certificate_id: &'a str,
    ) -> FleetFuture<'a, Option<CertificateRecord>> {
        Box::pin(async move {
            self.registry
                .certificate(certificate_id)
                .await
                .map_err(FleetError::from)
        })
    }

    fn revoke<'a>(
        &'a self,
        certificate_id: &'a str,
        reason: RevocationReason,
        now: UnixTime,
    ) -> FleetFuture<'a, RevokedCertificate> {
        Box::pin(async move {
            let (certificate, already_revoked) = self
                .registry
                .revoke_certificate(certificate_id, reason, now)
                .await
                .map_err(dynamo_error)?
                .ok_or_else(|| FleetError::UnknownCertificate(certificate_id.to_owned()))?;
            // Already revoked: the later steps are repeated (idempotent), so revoking
            // again finishes what a failed propagation left, with the recorded reason.
            let recorded_reason = certificate.revoked.map_or(reason, |(_, r)| r);
            let propagated = self.propagate(&certificate, recorded_reason).await;
            Ok(RevokedCertificate {
                certificate,
                already_revoked,
                propagated,
                // ACM Private CA publishes the CRL; the service writes none.
                crl_regenerated: false,
                crl_files: Vec::new(),
                // Each region's failure is logged where it happened.
                propagation_error: None,
            })
        })
    }

    fn audit(&self, query: AuditQuery) -> FleetFuture<'_, Listed<LoggedEvent>> {
        Box::pin(async move {
            self.registry
                .list_audit(&query, SystemClock.now())
                .await
                .map_err(dynamo_error)
        })
    }

    fn decisions_per_hour(
        &self,
        since: UnixTime,
        until: UnixTime,
    ) -> FleetFuture<'_, Vec<HourlyDecisions>> {
        Box::pin(async move {
            self.registry
                .decisions_per_hour(since, until)
                .await
                .map_err(dynamo_error)
        })
    }

    fn ca(&self) -> FleetFuture<'_, CaOverview> {
        Box::pin(self.overview())
    }

    fn crl(&self, _now: UnixTime) -> FleetFuture<'_, CrlDocument> {
        Box::pin(async move { Err(self.crl_answer().await) })
    }

    fn start_rotation(
        &self,
        request: RotationRequest,
        _now: UnixTime,
    ) -> FleetFuture<'_, RotationStatus> {
        Box::pin(self.begin(request))
    }

    fn rotation(&self) -> FleetFuture<'_, Option<RotationStatus>> {
        Box::pin(async move {
            if self.pca.is_none() {
                return Ok(None);
            }
            let progress = self.ca.store().rotation().await.map_err(ca_error)?;
            Ok(progress.map(|p| rotation_status(&p, false)))
        })
    }

    fn unfinished_registrations(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> FleetFuture<'_, Listed<RegistrationRecord>> {
        Box::pin(async move {
            let limit = i32::try_from(limit).unwrap_or(i32::MAX);
            let page = self
                .things
                .pending_registrations_limited(after.as_deref(), limit)
                .await
                .map_err(|error| match error {
                    // The only configuration error a page can meet: a cursor not made here.
                    IotError::Config(_) => invalid_cursor(),
                    other => iot_error(other),
                })?;
            Ok(Listed {
                items: page
                    .registrations
                    .into_iter()
                    .map(registration_record)
                    .collect(),
                next: page.next_cursor,
            })
        })
    }

    fn registrations_of<'a>(
        &'a self,
        certificate_id: &'a str,
    ) -> FleetFuture<'a, Vec<RegistrationRecord>> {
        Box::pin(async move {
            let rows = self
                .things
                .registrations_of(certificate_id)
                .await
                .map_err(iot_error)?;
            Ok(rows.into_iter().map(registration_record).collect())
        })
    }

    fn retry_registrations(&self, limit: usize) -> FleetFuture<'_, RetriedRegistrations> {
        Box::pin(async move {
            let summary = self.things.retry_pending(limit).await.map_err(iot_error)?;
            if summary.unknown_region > 0 {
                tracing::warn!(
                    rows = summary.unknown_region,
                    "registrations of regions not configured here (PROVISIONER_REGIONS) were left as they are"
                );
            }
            Ok(RetriedRegistrations {
                attempted: summary.attempted,
                done: summary.done,
                failed: summary.failed,
                in_flight: summary.in_flight,
                more: summary.more,
            })
        })
    }
}

/// What a relying party outside IoT Core must do about revocation on AWS, for the
/// answer of `GET ca/crl`. IoT Core itself needs nothing: it refuses a certificate by its
/// status, which the service sets in every region when it revokes.
fn relying_party_advice(ocsp_enabled: bool) -> String {
    let ocsp = if ocsp_enabled {
        "or ask the CA's OCSP responder (the URL in each certificate's Authority Information \
         Access; it may take up to 60 minutes to reflect a revocation)"
    } else {
        "or enable OCSP on the CA (its revocation configuration) for certificates issued \
         from then on"
    };
    format!(
        "IoT Core does not read this CRL: it refuses a revoked certificate by its status, \
         which the service sets in every region. A relying party outside IoT Core (another \
         broker, a server checking device certificates) must itself fetch the CRL (DER) from \
         the URL in the certificate's CRL Distribution Points and refresh it before its \
         nextUpdate (ACM Private CA updates it about 30 minutes after a revocation), {ocsp}"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn progress(state: RotationState, failed_state: Option<RotationState>) -> RotationProgress {
        RotationProgress {
            from_ca_arn: "arn:aws:acm-pca:us-east-1:1:certificate-authority/old".into(),
            to_ca_arn: "arn:aws:acm-pca:us-east-1:1:certificate-authority/new".into(),
            state,
            failed_state,
            reason: RevocationReason::Superseded,
            revoked: 7,
            total: Some(9),
            cursor: None,
            started_at: 1_800_000_000,
            updated_at: 1_800_000_100,
            completed_at: None,
            last_error: None,
            parent_ca_arn: None,
            admin_action: None,
        }
    }

    #[test]
    fn a_rotation_shows_running_finished_or_failed_with_its_step() {
        for state in [
            RotationState::Registering,
            RotationState::Switching,
            RotationState::Revoking,
            RotationState::Deactivating,
        ] {
            let status = rotation_status(&progress(state, None), false);
            assert_eq!((status.state, status.step), ("running", Some(state.name())));
        }
        let mut done = progress(RotationState::Done, None);
        done.completed_at = Some(1_800_000_200);
        let status = rotation_status(&done, true);
        assert_eq!(
            (status.state, status.step, status.finished_at),
            ("finished", Some("done"), Some(1_800_000_200))
        );
        assert!(status.resumed);
        assert_eq!(status.job_id, "rotation-1800000000");
        assert_eq!((status.revoked, status.total), (7, Some(9)));
        // A failed rotation names the step it failed in: where the next run resumes.
        let mut failed = progress(RotationState::Failed, Some(RotationState::Revoking));
        failed.last_error = Some("IoT Core throttled".into());
        let status = rotation_status(&failed, false);
        assert_eq!((status.state, status.step), ("failed", Some("revoking")));
        assert_eq!(status.error.as_deref(), Some("IoT Core throttled"));
        assert_eq!(status.old_ca.as_deref(), Some(failed.from_ca_arn.as_str()));
    }

    #[test]
    fn ca_failures_map_to_stable_answers() {
        let cases = [
            (CaError::Conflict("x".into()), "rotation_in_progress"),
            (CaError::WrongState("x".into()), "ca_not_ready"),
            (CaError::InvalidInput("x".into()), "invalid_target_ca"),
            (CaError::NotFound("x".into()), "unknown_ca"),
        ];
        for (error, code) in cases {
            let mapped = ca_error(error);
            let got = match &mapped {
                FleetError::Conflict { code, .. } | FleetError::Invalid { code, .. } => *code,
                other => panic!("{other:?}"),
            };
            assert_eq!(got, code);
        }
        let throttled = CaError::Unavailable {
            service: "IoT Core",
            operation: "UpdateCertificate",
            cause: "ThrottlingException".into(),
        };
        assert_eq!(ca_error(throttled), BUSY);
        assert!(matches!(
            ca_error(CaError::Corrupt("damaged".into())),
            FleetError::Internal(_)
        ));
        assert_eq!(
            dynamo_error(DynamoDbError::Unavailable {
                operation: "Query",
                cause: "ThrottlingException".into()
            }),
            BUSY
        );
    }
}
