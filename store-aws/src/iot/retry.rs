//! The regions after the serving one: each registered by a background task with
//! [`RegionRetry`], its row ending DONE or FAILED, and what such a task or a stopped
//! process left finished by [`IotThingRegistry::retry_pending`].

use std::sync::Arc;
use std::time::Duration;

use provisioner_core::{CertificateStatus, DeviceRegistry};
use tokio::task::JoinSet;

use super::things::Inner;
use super::{unix_now, IotError, IotThingRegistry, RegistrationStatus};
use crate::acm_pca::backoff;

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

impl<R: DeviceRegistry + 'static> IotThingRegistry<R> {
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

    /// Spawns the background registration of `certificate_id` in region `index`.
    pub(super) fn spawn_region(&self, index: usize, certificate_id: String) {
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

impl<R: DeviceRegistry> Inner<R> {
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
}
