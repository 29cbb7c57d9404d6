//! The scheduled maintenance on AWS: finishes, a budget at a time, what the service leaves
//! to run in the background.
//!
//! - A CA rotation the admin started (`POST /admin/api/ca/rotate`, which only records it)
//!   or one that stopped (a crash, a failure, a budget spent) is resumed through
//!   [`IssuingCaAdmin::rotate`]: registering, switching (with its settle wait), revoking
//!   at most [`MaintenanceBudget::rotation_batches`] pages of the old CA's certificates,
//!   deactivating. A failed rotation is retried by every run, and its error reported,
//!   until it finishes.
//! - Regional IoT Core registrations left PENDING or FAILED (a Lambda frozen after its
//!   answer, a region down) are retried through [`IotThingRegistry::retry_pending`], at
//!   most [`MaintenanceBudget::registrations`] per run.
//!
//! The maintenance Lambda runs [`Maintenance::run_once`] from an EventBridge schedule;
//! `provisioner serve --backend aws` spawns [`Maintenance::spawn_every`]. A run never
//! panics and never stops at the first failure: each part's error is logged and reported
//! in the [`MaintenanceReport`], and the next run tries again.
//!
//! Two runs at once (a schedule firing while a long run still goes on) do the same
//! idempotent work twice: revoking a revoked certificate, registering a registered one,
//! are harmless. Budgets keep a run well inside a Lambda's 15 minutes.

use std::sync::Arc;
use std::time::Duration;

use provisioner_core::PortError;

use super::adapters::AwsParts;
use super::ca::{IssuingCaAdmin, RotationOptions, RotationProgress, RotationState, DEFAULT_SETTLE};
use super::config::{AwsSettings, IssuanceMode};
use super::dynamodb::DynamoDbRegistry;
use super::iot::IotThingRegistry;

/// How much one run may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceBudget {
    /// Pages of the old CA's certificates a rotation revokes per run (at least 1; a page
    /// is [`super::ca::DEFAULT_ROTATION_PAGE`] certificates, each revoked in IoT Core in
    /// every region).
    pub rotation_batches: u64,
    /// Regional registrations retried per run (0: none).
    pub registrations: usize,
    /// The wait after a rotation switches CAs before it revokes
    /// ([`DEFAULT_SETTLE`]: issuers' cached CA and issuances in flight end first).
    pub settle: Duration,
}

impl Default for MaintenanceBudget {
    /// 10 pages (1,000 certificates: with two regions about 2,000 `UpdateCertificate`
    /// calls, a few minutes at IoT Core's default rate quota), 100 registrations, and the
    /// default settle wait.
    fn default() -> Self {
        Self {
            rotation_batches: 10,
            registrations: 100,
            settle: DEFAULT_SETTLE,
        }
    }
}

/// What one run did to the recorded rotation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationRun {
    /// The CA retired.
    pub from_ca_arn: String,
    /// The CA taking over.
    pub to_ca_arn: String,
    /// Its recorded state after the run: `registering`, `switching`, `revoking`,
    /// `deactivating`, `done` or `failed`.
    pub state: &'static str,
    /// True when it is done.
    pub finished: bool,
    /// Certificates of the old CA revoked so far (all runs).
    pub revoked: u64,
    /// How many there are, when known.
    pub total: Option<u64>,
    /// Why this run failed, if it did (the rotation resumes there next run).
    pub error: Option<String>,
}

/// What one run did to the regional registrations.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationRun {
    /// Registrations tried.
    pub attempted: u64,
    /// Now DONE.
    pub done: u64,
    /// Still FAILED (their error is in their row).
    pub failed: u64,
    /// PENDING ones changed a moment ago, left to the process that wrote them.
    pub in_flight: u64,
    /// Of a region not configured here: left as they are.
    pub unknown_region: u64,
    /// More were due than the budget allowed.
    pub more: bool,
    /// Why the registrations table could not be read or written, if so.
    pub error: Option<String>,
}

/// What [`Maintenance::run_once`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceReport {
    /// The rotation worked on; `None` when none was unfinished (or rotations do not
    /// apply: issuance mode `iot-core`).
    pub rotation: Option<RotationRun>,
    /// The registrations retried.
    pub registrations: RegistrationRun,
    /// Every error of the run (each also logged), rotation first.
    pub errors: Vec<String>,
}

impl MaintenanceReport {
    /// True when nothing failed.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The scheduled maintenance (see the module docs).
///
/// Cheap to clone: clones share the SDK clients.
#[derive(Debug, Clone)]
pub struct Maintenance {
    /// `None` in issuance mode `iot-core`: no issuing CA, nothing to rotate.
    ca: Option<IssuingCaAdmin>,
    things: IotThingRegistry<DynamoDbRegistry>,
}

impl Maintenance {
    /// The maintenance of `settings`, over clients from the standard AWS configuration
    /// (environment, profile or role; `AWS_ENDPOINT_URL` for a stand-in such as moto).
    ///
    /// # Errors
    /// When the regions cannot be served (see [`IotThingRegistry::new`]).
    pub async fn connect(settings: &AwsSettings) -> Result<Self, PortError> {
        let parts = AwsParts::connect(settings).await?;
        let ca = (settings.issuance_mode == IssuanceMode::AcmPca).then_some(parts.ca);
        Ok(Self::from_parts(ca, parts.things))
    }

    /// The maintenance over given parts (tests point them at moto): `ca` runs rotations
    /// (`None` in issuance mode `iot-core`), `things` retries registrations and revokes
    /// a rotation's certificates in IoT Core in every region.
    pub fn from_parts(
        ca: Option<IssuingCaAdmin>,
        things: IotThingRegistry<DynamoDbRegistry>,
    ) -> Self {
        Self { ca, things }
    }

    /// One run: resumes the recorded rotation unless it is done, then retries the
    /// unfinished regional registrations, each within `budget`. Never fails: errors are
    /// logged and reported.
    pub async fn run_once(&self, budget: &MaintenanceBudget) -> MaintenanceReport {
        let mut report = MaintenanceReport::default();
        if let Some(ca) = &self.ca {
            match self.resume_rotation(ca, budget).await {
                Ok(run) => {
                    if let Some(error) = run.as_ref().and_then(|r| r.error.clone()) {
                        report.errors.push(format!("CA rotation: {error}"));
                    }
                    report.rotation = run;
                }
                Err(error) => {
                    tracing::error!(%error, "maintenance: cannot read the recorded CA rotation");
                    report
                        .errors
                        .push(format!("CA rotation: cannot read its progress: {error}"));
                }
            }
        }
        if budget.registrations > 0 {
            report.registrations = self.retry_registrations(budget.registrations).await;
            if let Some(error) = &report.registrations.error {
                report.errors.push(format!("registrations: {error}"));
            }
        }
        report
    }

    /// Runs [`Maintenance::run_once`] every `interval` (the first run at once: an
    /// interrupted rotation resumes as the process starts), until the task is aborted.
    /// Runs never overlap: a run longer than `interval` delays the next.
    pub fn spawn_every(
        self: Arc<Self>,
        interval: Duration,
        budget: MaintenanceBudget,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval.max(Duration::from_secs(1)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let report = self.run_once(&budget).await;
                let rotation = report.rotation.as_ref();
                if rotation.is_some() || report.registrations.attempted > 0 {
                    tracing::info!(
                        rotation = rotation.map(|r| r.state),
                        revoked = rotation.map(|r| r.revoked),
                        registrations_done = report.registrations.done,
                        registrations_failed = report.registrations.failed,
                        errors = report.errors.len(),
                        "maintenance run"
                    );
                }
            }
        })
    }

    /// Resumes the recorded rotation if it is not done; `None` when there is none to run.
    async fn resume_rotation(
        &self,
        ca: &IssuingCaAdmin,
        budget: &MaintenanceBudget,
    ) -> Result<Option<RotationRun>, super::ca::CaError> {
        let Some(recorded) = ca.store().rotation().await? else {
            return Ok(None);
        };
        if recorded.state == RotationState::Done {
            return Ok(None);
        }
        let options = RotationOptions {
            settle: budget.settle,
            max_batches: Some(budget.rotation_batches.max(1)),
            // A resumed rotation keeps its recorded reason.
            reason: recorded.reason,
            ..RotationOptions::default()
        };
        let outcome = ca
            .rotate(&recorded.to_ca_arn, &options, &self.things, |progress| {
                tracing::debug!(
                    state = progress.state.name(),
                    revoked = progress.revoked,
                    "maintenance: CA rotation progress"
                );
            })
            .await;
        Ok(Some(match outcome {
            Ok(outcome) => {
                tracing::info!(
                    to = %outcome.progress.to_ca_arn,
                    state = outcome.progress.state.name(),
                    revoked = outcome.progress.revoked,
                    finished = outcome.finished,
                    "maintenance: CA rotation ran"
                );
                rotation_run(&outcome.progress, outcome.finished, None)
            }
            Err(error) => {
                tracing::error!(to = %recorded.to_ca_arn, %error,
                    "maintenance: the CA rotation failed; the next run resumes it");
                // The rotation recorded its failure; read what it recorded.
                let progress = match ca.store().rotation().await {
                    Ok(Some(progress)) => progress,
                    _ => recorded,
                };
                rotation_run(&progress, false, Some(error.to_string()))
            }
        }))
    }

    async fn retry_registrations(&self, limit: usize) -> RegistrationRun {
        match self.things.retry_pending(limit).await {
            Ok(summary) => {
                if summary.failed > 0 {
                    tracing::warn!(
                        failed = summary.failed,
                        "maintenance: regional registrations still fail (see GET /admin/api/registrations)"
                    );
                }
                RegistrationRun {
                    attempted: summary.attempted,
                    done: summary.done,
                    failed: summary.failed,
                    in_flight: summary.in_flight,
                    unknown_region: summary.unknown_region,
                    more: summary.more,
                    error: None,
                }
            }
            Err(error) => {
                tracing::error!(%error, "maintenance: cannot retry the regional registrations");
                RegistrationRun {
                    error: Some(error.to_string()),
                    ..RegistrationRun::default()
                }
            }
        }
    }
}

fn rotation_run(progress: &RotationProgress, finished: bool, error: Option<String>) -> RotationRun {
    RotationRun {
        from_ca_arn: progress.from_ca_arn.clone(),
        to_ca_arn: progress.to_ca_arn.clone(),
        state: progress.state.name(),
        finished: finished || progress.state == RotationState::Done,
        revoked: progress.revoked,
        total: progress.total,
        error,
    }
}
