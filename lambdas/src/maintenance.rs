//! The maintenance Lambda: an EventBridge schedule (`rate(1 minute)`, never two runs at
//! once: reserved concurrency 1 in `infra/template.yaml`) runs
//! `provisioner_store_aws::maintenance::Maintenance::run_once`, which resumes a CA
//! rotation a few pages of certificates at a time and retries unfinished regional IoT
//! Core registrations.
//!
//! # The budget
//!
//! A run must end inside the function's timeout, or its last batch is cut off mid-way
//! (harmless: every step is idempotent and recorded, but the run's report is lost). So
//! each run plans its work from the time the invocation has left ([`plan_for`]), with
//! these costs, IoT Core's default rate quotas being the bound (about 10 requests per
//! second per account and region for `UpdateCertificate` and the registration calls;
//! regions are worked in parallel):
//!
//! - the rotation's settle wait, [`SETTLE_SECS`], kept free in every run since any run
//!   may be the one that switches CAs;
//! - a page of 100 certificates of the old CA, revoked in IoT Core in every region and
//!   then in the registry: [`SECS_PER_PAGE`];
//! - a regional registration retried (certificate, thing, policy, attachment):
//!   [`MILLIS_PER_REGISTRATION`];
//! - [`MARGIN_SECS`] for the cold start and the report.
//!
//! With the template's timeout, [`FUNCTION_TIMEOUT_SECS`] (checked by
//! `infra/check_template.py`), a run does at most [`MAX_PAGES_PER_RUN`] pages (300
//! certificates) and [`REGISTRATIONS_PER_RUN`] registrations: a run without the settle
//! wait stays near the minute between schedules, and a large rotation proceeds at about
//! the rate IoT Core's quota allows anyway. A run that finds less time (a shorter timeout
//! configured by hand) does one page and fewer registrations rather than none.
//!
//! # Failures
//!
//! `run_once` never stops at the first error: every part's error is in the report. The
//! handler logs the report as one JSON line and, when the report holds errors, returns
//! them as the invocation's error ([`MaintenanceFailed`]), so the function's `Errors`
//! metric counts failed runs (alarm on it). The schedule's event is not retried (the next
//! minute's run is the retry).

use std::time::Duration;

/// The function's timeout in `infra/template.yaml` (`MaintenanceFunction`), seconds.
pub const FUNCTION_TIMEOUT_SECS: u64 = 120;

/// The CA rotation's wait after switching, reserved in every run, seconds (the
/// service's `DEFAULT_SETTLE`).
pub const SETTLE_SECS: u64 = 45;

/// The time a page of the rotation's revocation is planned to take, seconds.
pub const SECS_PER_PAGE: u64 = 15;

/// The time a retried regional registration is planned to take, milliseconds.
pub const MILLIS_PER_REGISTRATION: u64 = 500;

/// Kept free for the cold start and the report, seconds.
pub const MARGIN_SECS: u64 = 10;

/// The most pages of the old CA's certificates a run revokes.
pub const MAX_PAGES_PER_RUN: u64 = 3;

/// The most regional registrations a run retries.
pub const REGISTRATIONS_PER_RUN: usize = 40;

/// The fewest registrations a run retries, however little time it has.
pub const MIN_REGISTRATIONS_PER_RUN: usize = 5;

/// How much one run does (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunPlan {
    /// Pages of the old CA's certificates a rotation revokes (at least 1).
    pub rotation_batches: u64,
    /// Regional registrations retried.
    pub registrations: usize,
}

impl RunPlan {
    /// The longest the plan is expected to take, the settle wait and the margin
    /// included.
    pub fn worst_case(&self) -> Duration {
        Duration::from_secs(SETTLE_SECS + MARGIN_SECS + self.rotation_batches * SECS_PER_PAGE)
            + Duration::from_millis(self.registrations as u64 * MILLIS_PER_REGISTRATION)
    }
}

/// The work that fits in `remaining` (the invocation's time left): registrations first
/// get their share, pages take the rest (at least one, at most [`MAX_PAGES_PER_RUN`]);
/// when even one page leaves too little, registrations shrink (to
/// [`MIN_REGISTRATIONS_PER_RUN`] at least).
pub fn plan_for(remaining: Duration) -> RunPlan {
    let usable = u64::try_from(remaining.as_millis())
        .unwrap_or(u64::MAX)
        .saturating_sub((SETTLE_SECS + MARGIN_SECS) * 1000);
    let page_ms = SECS_PER_PAGE * 1000;
    let registrations_ms = REGISTRATIONS_PER_RUN as u64 * MILLIS_PER_REGISTRATION;
    let rotation_batches =
        (usable.saturating_sub(registrations_ms) / page_ms).clamp(1, MAX_PAGES_PER_RUN);
    let left = usable.saturating_sub(rotation_batches * page_ms);
    let registrations = usize::try_from(left / MILLIS_PER_REGISTRATION)
        .unwrap_or(usize::MAX)
        .clamp(MIN_REGISTRATIONS_PER_RUN, REGISTRATIONS_PER_RUN);
    RunPlan {
        rotation_batches,
        registrations,
    }
}

/// A run whose report holds errors: the invocation's error, so the function's `Errors`
/// metric counts it (the report itself is in the log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the maintenance run had {} error(s): {}", errors.len(), errors.join("; "))]
pub struct MaintenanceFailed {
    /// The report's errors, rotation first.
    pub errors: Vec<String>,
}

impl From<MaintenanceFailed> for lambda_runtime::Diagnostic {
    fn from(failed: MaintenanceFailed) -> Self {
        Self {
            error_type: "MaintenanceFailed".into(),
            error_message: failed.to_string(),
        }
    }
}

#[cfg(feature = "aws")]
pub use with_aws::{budget_for, handle};

#[cfg(feature = "aws")]
mod with_aws {
    use std::time::{Duration, SystemTime};

    use aws_lambda_events::cloudwatch_events::CloudWatchEvent;
    use lambda_runtime::LambdaEvent;
    use provisioner_store_aws::ca::DEFAULT_SETTLE;
    use provisioner_store_aws::maintenance::{Maintenance, MaintenanceBudget, MaintenanceReport};

    use super::{plan_for, MaintenanceFailed};

    /// The budget of a run with `remaining` time left ([`plan_for`]), with the service's
    /// settle wait.
    pub fn budget_for(remaining: Duration) -> MaintenanceBudget {
        let plan = plan_for(remaining);
        MaintenanceBudget {
            rotation_batches: plan.rotation_batches,
            registrations: plan.registrations,
            settle: DEFAULT_SETTLE,
        }
    }

    /// One scheduled run: plans the budget from the invocation's deadline, runs
    /// `maintenance`, logs the report as JSON.
    ///
    /// # Errors
    /// [`MaintenanceFailed`] with the report's errors, when it has any.
    pub async fn handle(
        maintenance: &Maintenance,
        event: LambdaEvent<CloudWatchEvent>,
    ) -> Result<MaintenanceReport, MaintenanceFailed> {
        let remaining = event
            .context
            .deadline()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let budget = budget_for(remaining);
        tracing::debug!(
            scheduled = %event.payload.time,
            remaining_ms = remaining.as_millis() as u64,
            rotation_batches = budget.rotation_batches,
            registrations = budget.registrations,
            "maintenance run starts"
        );
        let report = maintenance.run_once(&budget).await;
        let json = serde_json::to_string(&report).unwrap_or_default();
        if report.is_ok() {
            tracing::info!(report = %json, "maintenance run done");
            Ok(report)
        } else {
            tracing::error!(report = %json, "maintenance run done with errors");
            Err(MaintenanceFailed {
                errors: report.errors,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_timeout_holds_the_full_plan() {
        let plan = plan_for(Duration::from_secs(FUNCTION_TIMEOUT_SECS));
        assert_eq!(
            plan,
            RunPlan {
                rotation_batches: MAX_PAGES_PER_RUN,
                registrations: REGISTRATIONS_PER_RUN,
            }
        );
        assert!(plan.worst_case() <= Duration::from_secs(FUNCTION_TIMEOUT_SECS));
    }

    #[test]
    fn less_time_means_fewer_pages_first_then_fewer_registrations_never_none() {
        let shorter = plan_for(Duration::from_secs(FUNCTION_TIMEOUT_SECS - SECS_PER_PAGE));
        assert_eq!(shorter.rotation_batches, MAX_PAGES_PER_RUN - 1);
        assert_eq!(shorter.registrations, REGISTRATIONS_PER_RUN);

        let little = plan_for(Duration::from_secs(
            SETTLE_SECS + MARGIN_SECS + SECS_PER_PAGE + 5,
        ));
        assert_eq!(little.rotation_batches, 1);
        assert_eq!(little.registrations, 10);

        let none = plan_for(Duration::ZERO);
        assert_eq!(
            none,
            RunPlan {
                rotation_batches: 1,
                registrations: MIN_REGISTRATIONS_PER_RUN,
            }
        );
        // Plenty of time does not make a run longer than the schedule needs.
        assert_eq!(
            plan_for(Duration::from_secs(900)).rotation_batches,
            MAX_PAGES_PER_RUN
        );
    }

    #[cfg(feature = "aws")]
    #[test]
    fn the_reserved_settle_is_the_services() {
        assert_eq!(
            Duration::from_secs(SETTLE_SECS),
            provisioner_store_aws::ca::DEFAULT_SETTLE
        );
        assert_eq!(
            budget_for(Duration::ZERO).settle,
            Duration::from_secs(SETTLE_SECS)
        );
    }

    #[test]
    fn a_failed_run_is_a_diagnostic_naming_every_error() {
        let failed = MaintenanceFailed {
            errors: vec![
                "CA rotation: boom".into(),
                "registrations: throttled".into(),
            ],
        };
        let diagnostic = lambda_runtime::Diagnostic::from(failed);
        assert_eq!(diagnostic.error_type, "MaintenanceFailed");
        assert!(diagnostic.error_message.contains("2 error(s)"));
        assert!(diagnostic.error_message.contains("throttled"));
    }
}
