//! The admin API's local backend: [`LocalFleet`] answers [`FleetAdmin`] from the SQLite
//! registry and the data directory (its CA and CRLs).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use provisioner_core::{
    CertificateRecord, Clock, ManifestEntryError, ManifestReader, RevocationReason, SystemClock,
    UnixTime,
};

use crate::authority::{AuthorityError, CaInfo, LocalAuthority};
use crate::crls::{published_crls, CrlWriter};
use crate::datadir::DataDir;
use crate::operations;
use crate::registry::{
    CaState, CertificateFilter, CertificatePosition, RegistryError, SqliteRegistry,
};
use crate::LocalError;
use provisioner_app::fleet::{
    AuditQuery, CaOverview, CertificateQuery, CrlDocument, CrlRecord, DeviceQuery, DeviceRecord,
    FleetAdmin, FleetError, FleetFuture, HourlyDecisions, IssuingCaRecord, Listed, LoggedEvent,
    ManifestUpload, RegistrationRecord, RetriedRegistrations, RevokedCertificate, RotationRequest,
    RotationStatus,
};
use provisioner_app::import::{ImportItem, ImportSummary};

/// The fleet of one machine: the SQLite registry and the data directory.
pub struct LocalFleet {
    registry: SqliteRegistry,
    data_dir: DataDir,
    /// The rotation started through the API by this process, as far as it got.
    rotation: Arc<Mutex<Option<RotationStatus>>>,
    /// Writes the CRLs with the configured lifetime, one regeneration at a time.
    crl_writer: CrlWriter,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for LocalFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalFleet")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl LocalFleet {
    /// The fleet in `registry` and `data_dir` (whose CA and CRLs it uses).
    pub fn new(registry: SqliteRegistry, data_dir: DataDir) -> Self {
        Self {
            registry,
            data_dir,
            rotation: Arc::new(Mutex::new(None)),
            crl_writer: CrlWriter::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The same on another clock (tests move time): when a rotation finished.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The same with CRLs written by `writer` (its lifetime; shared with `serve`'s
    /// refresher so the two take turns).
    #[must_use]
    pub fn with_crl_writer(mut self, writer: CrlWriter) -> Self {
        self.crl_writer = writer;
        self
    }

    /// Writes every CRL again; the files written.
    async fn regenerate_crls(&self, now: UnixTime) -> Result<Vec<PathBuf>, LocalError> {
        self.crl_writer
            .regenerate(&self.data_dir, &self.registry, now)
            .await
    }

    async fn ca_overview(&self) -> Result<CaOverview, FleetError> {
        let recorded = self.registry.cas().await?;
        let data_dir = self.data_dir.clone();
        let ca_dir = self.data_dir.ca_dir();
        blocking(move || {
            let overview = LocalAuthority::overview(&ca_dir)?;
            let current = match &overview.current {
                Some(info) => {
                    let authority = LocalAuthority::load_id(&ca_dir, &info.id)?;
                    let mut record = ca_record(info.clone(), CaState::Current, None);
                    record.chain_pem = Some(authority.chain_pem().to_owned());
                    Some(record)
                }
                None => None,
            };
            let mut previous = Vec::new();
            for id in &overview.previous_ids {
                let info = LocalAuthority::load_id(&ca_dir, id)?.info();
                let recorded = recorded.iter().find(|r| &r.ca_id == id);
                let state = recorded.map_or(CaState::Previous, |r| r.state);
                previous.push(ca_record(info, state, recorded.and_then(|r| r.revoked_at)));
            }
            Ok(CaOverview {
                current,
                previous,
                pending: overview.pending.map(|p| p.id),
                can_create_next_ca: overview.root_key_local,
                crls: crl_records(&data_dir)?,
            })
        })
        .await
    }

    async fn begin_rotation(&self, now: UnixTime) -> Result<RotationStatus, FleetError> {
        let ca_dir = self.data_dir.ca_dir();
        let overview = blocking(move || Ok(LocalAuthority::overview(&ca_dir)?)).await?;
        if !overview.root_key_local {
            return Err(FleetError::Conflict {
                code: "root_key_not_local",
                message: "the root CA's key is not on this machine: rotate on the server with `provisioner ca rotate --csr-only` and have the parent CA sign the CSR".into(),
            });
        }
        if let Some(pending) = overview.pending {
            return Err(FleetError::Conflict {
                code: "ca_request_pending",
                message: format!("the CSR of issuing CA {} waits for its certificate: import it with `provisioner ca import-cert FILE` first", pending.id),
            });
        }
        let status = RotationStatus {
            job_id: format!("{:016x}", rand::random::<u64>()),
            state: "running",
            step: Some("revoking"),
            started_at: now,
            finished_at: None,
            old_ca: None,
            new_ca: None,
            revoked: 0,
            total: None,
            resumed: false,
            error: None,
            admin_action: None,
        };
        {
            let mut state = self.rotation.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(running) = state.as_ref().filter(|s| s.state == "running") {
                return Err(FleetError::Conflict {
                    code: "rotation_in_progress",
                    message: format!(
                        "CA rotation {} is still running: follow it with GET /admin/api/ca/rotation",
                        running.job_id
                    ),
                });
            }
            *state = Some(status.clone());
        }
        let task = tokio::spawn(run_rotation(
            self.registry.clone(),
            self.data_dir.clone(),
            self.rotation.clone(),
            self.clock.clone(),
            now,
            self.crl_writer.lifetime_secs(),
        ));
        // A panic in the rotation must not leave it "running" forever.
        let progress = self.rotation.clone();
        tokio::spawn(async move {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "the CA rotation task failed");
                update(&progress, |p| {
                    p.state = "failed";
                    p.error = Some("the rotation stopped unexpectedly; the error is logged. POST ca/rotate resumes it".into());
                });
            }
        });
        Ok(status)
    }

    async fn rotation_status(&self) -> Result<Option<RotationStatus>, FleetError> {
        let started_here = self
            .rotation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(mut status) = started_here {
            if status.state == "running" {
                // The registry knows the pair as soon as the new CA is installed.
                if let Some(job) = self
                    .registry
                    .unfinished_rotations()
                    .await?
                    .into_iter()
                    .next()
                {
                    status.old_ca = status.old_ca.or(Some(job.old_ca));
                    status.new_ca = status.new_ca.or(Some(job.new_ca));
                    status.revoked = status.revoked.max(job.revoked_count);
                }
            }
            return Ok(Some(status));
        }
        // Nothing started since this process began: what the registry remembers.
        let job = match self
            .registry
            .unfinished_rotations()
            .await?
            .into_iter()
            .next()
        {
            Some(job) => Some(job),
            None => self.registry.last_rotation().await?,
        };
        Ok(job.map(|job| {
            let finished = job.finished_at.is_some();
            RotationStatus {
                job_id: format!("registry-{}", job.id),
                state: if finished { "finished" } else { "interrupted" },
                step: (!finished).then_some("revoking"),
                started_at: job.started_at,
                finished_at: job.finished_at,
                old_ca: Some(job.old_ca),
                new_ca: Some(job.new_ca),
                revoked: job.revoked_count,
                total: None,
                resumed: false,
                error: (!finished).then(|| {
                    "this rotation was interrupted: POST /admin/api/ca/rotate resumes it".into()
                }),
                admin_action: None,
            }
        }))
    }
}

fn update(progress: &Mutex<Option<RotationStatus>>, change: impl FnOnce(&mut RotationStatus)) {
    let mut state = progress.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(status) = state.as_mut() {
        change(status);
    }
}

async fn run_rotation(
    registry: SqliteRegistry,
    data_dir: DataDir,
    progress: Arc<Mutex<Option<RotationStatus>>>,
    clock: Arc<dyn Clock>,
    now: UnixTime,
    crl_lifetime_secs: i64,
) {
    let result = operations::rotate_ca(&data_dir, &registry, now, crl_lifetime_secs, |revoked| {
        update(&progress, |p| p.revoked = revoked);
    })
    .await;
    let finished_at = clock.now();
    match result {
        Ok(outcome) => {
            tracing::info!(
                old_ca = outcome.old_ca,
                new_ca = outcome.new_ca,
                revoked = outcome.revoked,
                "CA rotated through the admin API"
            );
            update(&progress, |p| {
                p.state = "finished";
                p.step = None;
                p.old_ca = Some(outcome.old_ca);
                p.new_ca = Some(outcome.new_ca);
                p.revoked = outcome.revoked;
                p.resumed = outcome.resumed;
                p.finished_at = Some(finished_at);
            });
        }
        Err(e) => {
            tracing::error!(error = %e, "the CA rotation failed");
            update(&progress, |p| {
                p.state = "failed";
                p.error = Some(format!(
                    "{e}; what was committed stays committed, and POST /admin/api/ca/rotate resumes it"
                ));
            });
        }
    }
}

/// The CRLs on disk as the admin API shows them.
fn crl_records(data_dir: &DataDir) -> Result<Vec<CrlRecord>, LocalError> {
    Ok(published_crls(data_dir)?
        .into_iter()
        .map(|crl| CrlRecord {
            issuer: crl.issuer,
            this_update: crl.dates.map(|d| d.this_update),
            next_update: crl.dates.map(|d| d.next_update),
            revoked: crl.dates.map_or(0, |d| d.revoked),
        })
        .collect())
}

fn ca_record(info: CaInfo, state: CaState, revoked_at: Option<UnixTime>) -> IssuingCaRecord {
    IssuingCaRecord {
        id: info.id,
        arn: None,
        subject: info.subject,
        serial: info.serial,
        certificate_id: info.certificate_id,
        not_before: info.not_before,
        not_after: info.not_after,
        state: state.name(),
        revoked_at,
        chain_pem: None,
    }
}

/// Runs blocking work (CA files, imports) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FleetError> + Send + 'static,
) -> Result<T, FleetError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        tracing::error!(error = %e, "admin API: a blocking task failed");
        FleetError::Internal("a blocking task failed".into())
    })?
}

impl From<RegistryError> for FleetError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::UnknownDevice(id) => Self::UnknownDevice(id),
            RegistryError::UnknownCertificate(id) => Self::UnknownCertificate(id),
            RegistryError::Busy => Self::Busy {
                retry_after_secs: 1,
            },
            other => {
                tracing::error!(error = %other, "admin API: registry failure");
                Self::Internal(other.to_string())
            }
        }
    }
}

impl From<AuthorityError> for FleetError {
    fn from(e: AuthorityError) -> Self {
        let code = match &e {
            AuthorityError::NotInitialised { .. } | AuthorityError::AwaitingCertificate { .. } => {
                "ca_not_ready"
            }
            AuthorityError::RequestPending { .. } => "ca_request_pending",
            AuthorityError::RootKeyNotLocal { .. } => "root_key_not_local",
            _ => {
                tracing::error!(error = %e, "admin API: CA failure");
                return Self::Internal(e.to_string());
            }
        };
        Self::Conflict {
            code,
            message: e.to_string(),
        }
    }
}

impl From<LocalError> for FleetError {
    fn from(e: LocalError) -> Self {
        match e {
            LocalError::Registry(e) => e.into(),
            LocalError::Authority(e) => e.into(),
            other => {
                tracing::error!(error = %other, "admin API: data directory failure");
                Self::Internal(other.to_string())
            }
        }
    }
}

/// A certificate page's key: its issue time and id (`ISSUED_AT:ID`).
fn certificate_key(c: &CertificateRecord) -> String {
    format!("{}:{}", c.issued_at, c.certificate_id)
}

fn certificate_position(key: &str) -> Option<CertificatePosition> {
    let (at, id) = key.split_once(':')?;
    Some(CertificatePosition {
        issued_at: at.parse().ok()?,
        certificate_id: id.to_owned(),
    })
}

fn invalid_cursor() -> FleetError {
    FleetError::Invalid {
        code: "invalid_cursor",
        message: "the cursor is not one this list returned: pass the nextCursor of the previous page unchanged, or omit cursor to start at the beginning".into(),
    }
}

impl FleetAdmin for LocalFleet {
    fn backend(&self) -> &'static str {
        "local"
    }

    fn devices(&self, query: DeviceQuery) -> FleetFuture<'_, Listed<DeviceRecord>> {
        Box::pin(async move {
            let limit = query.limit;
            let rows = self
                .registry
                .list_devices(DeviceQuery {
                    limit: limit + 1,
                    ..query
                })
                .await?;
            Ok(Listed::cut(rows, limit, |d| d.device_id.clone()))
        })
    }

    fn device<'a>(&'a self, device_id: &'a str) -> FleetFuture<'a, Option<DeviceRecord>> {
        Box::pin(async move { Ok(self.registry.device_record(device_id).await?) })
    }

    fn set_device_enabled<'a>(
        &'a self,
        device_id: &'a str,
        enabled: bool,
    ) -> FleetFuture<'a, DeviceRecord> {
        Box::pin(async move {
            self.registry.set_device_enabled(device_id, enabled).await?;
            self.registry
                .device_record(device_id)
                .await?
                .ok_or_else(|| FleetError::UnknownDevice(device_id.to_owned()))
        })
    }

    fn import(&self, upload: ManifestUpload) -> FleetFuture<'_, ImportSummary> {
        let registry = self.registry.clone();
        Box::pin(blocking(move || {
            let reader = ManifestReader::new().with_format(upload.format);
            let source = upload.name.as_str();
            let summary = match reader.read(&upload.bytes) {
                // A file that cannot be read at all is reported as its line 0, as the CLI
                // does.
                Err(e) => registry.import(
                    [ImportItem {
                        source,
                        entry: Err(ManifestEntryError::new(0, None, &e)),
                    }],
                    &upload.options,
                ),
                Ok(entries) => registry.import(
                    entries.map(|entry| ImportItem { source, entry }),
                    &upload.options,
                ),
            };
            summary.map_err(FleetError::from)
        }))
    }

    fn certificates(&self, query: CertificateQuery) -> FleetFuture<'_, Listed<CertificateRecord>> {
        Box::pin(async move {
            let before = query
                .after
                .as_deref()
                .map(|key| certificate_position(key).ok_or_else(invalid_cursor))
                .transpose()?;
            let filter = CertificateFilter {
                device_id: query.device_id,
                status: query.status,
                issuer: query.issuer,
                limit: Some(query.limit + 1),
            };
            let rows = self
                .registry
                .certificates_newest_first(filter, before)
                .await?;
            Ok(Listed::cut(rows, query.limit, certificate_key))
        })
    }

    fn all_certificates(&self, query: CertificateQuery) -> FleetFuture<'_, Vec<CertificateRecord>> {
        // One read, oldest first: no page re-sorts a large device's or issuer's rows.
        Box::pin(async move {
            let filter = CertificateFilter {
                device_id: query.device_id,
                status: query.status,
                issuer: query.issuer,
                limit: None,
            };
            Ok(self.registry.list_certificates(filter).await?)
        })
    }

    fn certificate<'a>(
        &'a self,
        certificate_id: &'a str,
    ) -> FleetFuture<'a, Option<CertificateRecord>> {
        Box::pin(async move {
            provisioner_core::DeviceRegistry::certificate(&self.registry, certificate_id)
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
            let revocation = self
                .registry
                .revoke_certificate(certificate_id, reason, now)
                .await?;
            // The revocation stands even if the CRLs cannot be written now; GET ca/crl
            // (or `provisioner ca crl`) writes them later.
            let written = if revocation.already_revoked {
                Ok(Vec::new())
            } else {
                self.regenerate_crls(now).await.map_err(|e| {
                    tracing::error!(error = %e, "revoked, but the CRLs could not be regenerated");
                    e.to_string()
                })
            };
            let propagated = written.is_ok();
            let (crl_files, propagation_error) = match written {
                Ok(files) => (files, None),
                Err(error) => (Vec::new(), Some(error)),
            };
            Ok(RevokedCertificate {
                certificate: revocation.certificate,
                already_revoked: revocation.already_revoked,
                propagated,
                crl_regenerated: propagated && !revocation.already_revoked,
                crl_files,
                propagation_error,
            })
        })
    }

    fn audit(&self, query: AuditQuery) -> FleetFuture<'_, Listed<LoggedEvent>> {
        Box::pin(async move {
            let before = query
                .after
                .as_deref()
                .map(|id| id.parse::<i64>().map_err(|_| invalid_cursor()))
                .transpose()?;
            let rows = self
                .registry
                .audit_newest_first(before, query.device_id, query.limit + 1)
                .await?
                .into_iter()
                .map(|entry| LoggedEvent {
                    id: entry.id.to_string(),
                    event: entry.event,
                })
                .collect();
            Ok(Listed::cut(rows, query.limit, |e: &LoggedEvent| {
                e.id.clone()
            }))
        })
    }

    fn decisions_per_hour(
        &self,
        since: UnixTime,
        until: UnixTime,
    ) -> FleetFuture<'_, Vec<HourlyDecisions>> {
        Box::pin(async move { Ok(self.registry.decisions_per_hour(since, until).await?) })
    }

    fn ca(&self) -> FleetFuture<'_, CaOverview> {
        Box::pin(self.ca_overview())
    }

    fn crl(&self, now: UnixTime) -> FleetFuture<'_, CrlDocument> {
        Box::pin(async move {
            let ca_dir = self.data_dir.ca_dir();
            // The id first: a rotation meanwhile leaves it on disk, and its CRL is
            // written below.
            let current =
                blocking(move || Ok(LocalAuthority::load(&ca_dir)?.id().to_owned())).await?;
            self.regenerate_crls(now).await?;
            let pem = tokio::fs::read_to_string(operations::crl_path(&self.data_dir, &current))
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "cannot read the CRL just written");
                    FleetError::Internal(format!("cannot read the CRL just written: {e}"))
                })?;
            Ok(CrlDocument { pem })
        })
    }

    fn start_rotation(
        &self,
        request: RotationRequest,
        now: UnixTime,
    ) -> FleetFuture<'_, RotationStatus> {
        Box::pin(async move {
            if let Some(to) = request.to {
                return Err(FleetError::Invalid {
                    code: "unexpected_target_ca",
                    message: format!(
                        "the local service creates the next CA itself: POST ca/rotate without a body (or with {{}}), not with {to:?}"
                    ),
                });
            }
            self.begin_rotation(now).await
        })
    }

    fn rotation(&self) -> FleetFuture<'_, Option<RotationStatus>> {
        Box::pin(self.rotation_status())
    }

    fn unfinished_registrations(
        &self,
        _after: Option<String>,
        _limit: usize,
    ) -> FleetFuture<'_, Listed<RegistrationRecord>> {
        // One machine, no regions: nothing is ever registered elsewhere.
        Box::pin(async {
            Ok(Listed {
                items: Vec::new(),
                next: None,
            })
        })
    }

    fn registrations_of<'a>(
        &'a self,
        _certificate_id: &'a str,
    ) -> FleetFuture<'a, Vec<RegistrationRecord>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn retry_registrations(&self, _limit: usize) -> FleetFuture<'_, RetriedRegistrations> {
        Box::pin(async { Ok(RetriedRegistrations::default()) })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::crls::crl_dates;
    use provisioner_app::fleet::all_certificates_by_pages;
    use provisioner_app::import::ImportOptions;
    use provisioner_core::{CertificateStatus, DeviceKey, ManifestRecord};
    use provisioner_testkit::claimed::RecordClaimed;
    use provisioner_testkit::registry_contract::{record, TestDevice};

    const NOW: UnixTime = 1_800_000_000;

    /// A fleet over a fresh data directory with a development CA.
    fn fleet(dir: &std::path::Path) -> (LocalFleet, SqliteRegistry, DataDir) {
        let data_dir = DataDir::new(dir);
        data_dir.ensure_exists().unwrap();
        LocalAuthority::init_development(&data_dir.ca_dir(), NOW).unwrap();
        let registry = SqliteRegistry::open(data_dir.registry_path()).unwrap();
        let fleet = LocalFleet::new(registry.clone(), data_dir.clone());
        (fleet, registry, data_dir)
    }

    /// Imports devices with fresh keys; their keys.
    fn import(registry: &SqliteRegistry, ids: &[&str]) -> Vec<DeviceKey> {
        let keys: Vec<DeviceKey> = ids
            .iter()
            .map(|id| TestDevice::new(id).public_key())
            .collect();
        let items = ids.iter().zip(&keys).map(|(id, key)| ImportItem {
            source: "m.csv",
            entry: Ok(ManifestRecord {
                device_id: (*id).to_owned(),
                public_key: key.clone(),
                line: 1,
            }),
        });
        let options = ImportOptions {
            now: NOW,
            ..ImportOptions::default()
        };
        assert!(registry.import(items, &options).unwrap().written);
        keys
    }

    /// Records `id` for `device`, issued at `at` by `issuer`.
    async fn issue(
        registry: &SqliteRegistry,
        id: &str,
        device: (&str, &DeviceKey),
        issuer: &str,
        at: UnixTime,
    ) {
        let mut certificate = record(id, device.0, device.1, at);
        certificate.issuer = issuer.into();
        registry
            .record_claimed(certificate, vec![], at)
            .await
            .unwrap();
    }

    fn ids(certificates: &[CertificateRecord]) -> Vec<&str> {
        certificates
            .iter()
            .map(|c| c.certificate_id.as_str())
            .collect()
    }

    #[tokio::test]
    async fn all_certificates_is_one_oldest_first_read_that_the_pages_agree_with() {
        // given certificates of two devices and two issuers, several issued in the same
        // second, some revoked
        let dir = tempfile::tempdir().unwrap();
        let (fleet, registry, _) = fleet(dir.path());
        let keys = import(&registry, &["dev-a", "dev-b"]);
        let issued = [
            ("c3", 0, "ca-1", NOW),
            ("c1", 1, "ca-2", NOW),
            ("c2", 0, "ca-1", NOW),
            ("c0", 1, "ca-1", NOW + 1),
            ("c5", 0, "ca-2", NOW + 2),
            ("c4", 0, "ca-1", NOW + 2),
            ("c6", 1, "ca-2", NOW + 3),
        ];
        for (id, device, issuer, at) in issued {
            let name = ["dev-a", "dev-b"][device];
            issue(&registry, id, (name, &keys[device]), issuer, at).await;
        }
        for id in ["c2", "c5"] {
            registry
                .revoke_certificate(id, RevocationReason::Superseded, NOW + 10)
                .await
                .unwrap();
        }

        // when every certificate is listed, unfiltered and filtered
        let everything = fleet
            .all_certificates(CertificateQuery::default())
            .await
            .unwrap();
        let filters = [
            CertificateQuery::default(),
            CertificateQuery {
                device_id: Some("dev-a".into()),
                ..CertificateQuery::default()
            },
            CertificateQuery {
                status: Some(CertificateStatus::Revoked),
                ..CertificateQuery::default()
            },
            CertificateQuery {
                issuer: Some("ca-2".into()),
                status: Some(CertificateStatus::Active),
                ..CertificateQuery::default()
            },
            CertificateQuery {
                issuer: Some("nobody".into()),
                ..CertificateQuery::default()
            },
        ];

        // then they come oldest first (by issue time, then id), as the registry lists
        // them, and reading the admin API's pages to the end gives the same, whatever
        // the page size
        assert_eq!(ids(&everything), ["c1", "c2", "c3", "c0", "c4", "c5", "c6"]);
        for filter in filters {
            let listed = registry
                .list_certificates(CertificateFilter {
                    device_id: filter.device_id.clone(),
                    status: filter.status,
                    issuer: filter.issuer.clone(),
                    limit: None,
                })
                .await
                .unwrap();
            let all = fleet.all_certificates(filter.clone()).await.unwrap();
            assert_eq!(all, listed, "{filter:?}");
            for limit in [0, 1, 2, 3, 100] {
                let query = CertificateQuery {
                    limit,
                    ..filter.clone()
                };
                let paged = all_certificates_by_pages(&fleet, query).await.unwrap();
                assert_eq!(paged, listed, "{filter:?}, pages of {limit}");
            }
        }
    }

    #[tokio::test]
    async fn a_revocation_writes_the_crls_with_the_writers_lifetime_and_names_them() {
        // given an ACTIVE certificate and a fleet writing CRLs valid 90 s
        let dir = tempfile::tempdir().unwrap();
        let (fleet, registry, data_dir) = fleet(dir.path());
        let fleet = fleet.with_crl_writer(CrlWriter::new(90));
        let keys = import(&registry, &["dev-a"]);
        issue(&registry, "c1", ("dev-a", &keys[0]), "ca-1", NOW).await;

        // when it is revoked, then revoked again
        let revoked = fleet
            .revoke("c1", RevocationReason::KeyCompromise, NOW + 5)
            .await
            .unwrap();
        let again = fleet
            .revoke("c1", RevocationReason::Superseded, NOW + 6)
            .await
            .unwrap();

        // then the first wrote every CRL, valid 90 s, and names the files; the second
        // changed and wrote nothing
        let expected: Vec<PathBuf> = published_crls(&data_dir)
            .unwrap()
            .into_iter()
            .map(|crl| crl.path)
            .collect();
        assert_eq!(expected.len(), 2, "the issuing CA's and the root's");
        assert_eq!(revoked.crl_files, expected);
        assert!(revoked.propagated && revoked.crl_regenerated && !revoked.already_revoked);
        assert_eq!(revoked.propagation_error, None);
        for path in &expected {
            let dates = crl_dates(&std::fs::read_to_string(path).unwrap()).unwrap();
            assert_eq!((dates.this_update, dates.next_update), (NOW + 5, NOW + 95));
        }
        assert_eq!(
            revoked.certificate.revoked,
            Some((NOW + 5, RevocationReason::KeyCompromise))
        );
        assert!(again.already_revoked && again.propagated && !again.crl_regenerated);
        assert!(again.crl_files.is_empty());
        assert_eq!(again.certificate.revoked, revoked.certificate.revoked);
    }

    #[tokio::test]
    async fn a_crl_that_cannot_be_written_leaves_the_revocation_and_says_why() {
        // given an ACTIVE certificate, and the issuing CA's CRL path taken by a directory
        let dir = tempfile::tempdir().unwrap();
        let (fleet, registry, data_dir) = fleet(dir.path());
        let keys = import(&registry, &["dev-a"]);
        issue(&registry, "c1", ("dev-a", &keys[0]), "ca-1", NOW).await;
        let current = LocalAuthority::load(&data_dir.ca_dir()).unwrap();
        let crl = operations::crl_path(&data_dir, current.id());
        let _ = std::fs::remove_file(&crl);
        std::fs::create_dir_all(&crl).unwrap();

        // when it is revoked
        let revoked = fleet
            .revoke("c1", RevocationReason::KeyCompromise, NOW + 5)
            .await
            .unwrap();

        // then the revocation is recorded, and the outcome says the CRLs were not written
        // and why
        assert_eq!(revoked.certificate.status, CertificateStatus::Revoked);
        assert!(!revoked.propagated && !revoked.crl_regenerated);
        assert!(revoked.crl_files.is_empty());
        assert!(revoked.propagation_error.is_some_and(|e| !e.is_empty()));
    }

    #[tokio::test]
    async fn revoking_an_unknown_certificate_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let (fleet, _, _) = fleet(dir.path());
        let refused = fleet
            .revoke("nope", RevocationReason::Superseded, NOW)
            .await
            .unwrap_err();
        assert_eq!(refused, FleetError::UnknownCertificate("nope".into()));
    }

    #[tokio::test]
    async fn a_second_rotation_while_one_runs_is_refused_and_the_running_one_reported() {
        // given a rotation recorded as running
        let dir = tempfile::tempdir().unwrap();
        let data_dir = DataDir::new(dir.path());
        data_dir.ensure_exists().unwrap();
        LocalAuthority::init_development(&data_dir.ca_dir(), 1_800_000_000).unwrap();
        let registry = SqliteRegistry::open(data_dir.registry_path()).unwrap();
        let fleet = LocalFleet::new(registry, data_dir);
        *fleet.rotation.lock().unwrap() = Some(RotationStatus {
            job_id: "0123".into(),
            state: "running",
            step: Some("revoking"),
            started_at: 1_800_000_000,
            finished_at: None,
            old_ca: None,
            new_ca: None,
            revoked: 7,
            total: None,
            resumed: false,
            error: None,
            admin_action: None,
        });

        // when another is asked for
        let refused = fleet
            .start_rotation(RotationRequest::default(), 1_800_000_100)
            .await
            .unwrap_err();

        // then it is refused, and the running one is reported
        assert!(
            matches!(refused, FleetError::Conflict { code: "rotation_in_progress", ref message } if message.contains("0123")),
            "{refused:?}"
        );
        let status = fleet.rotation().await.unwrap().unwrap();
        assert_eq!(
            (status.job_id.as_str(), status.state, status.revoked),
            ("0123", "running", 7)
        );
    }
}
