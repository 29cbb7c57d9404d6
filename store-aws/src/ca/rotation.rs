//! The issuing CA's rotation with cascading revocation (see the [module docs](super)):
//! the state machine [`IssuingCaAdmin::rotate`] runs, each state recorded before the next.

use std::time::Duration;

use aws_sdk_acmpca::types::CertificateAuthorityStatus;
use aws_sdk_iot::error::ProvideErrorMetadata;
use aws_sdk_iot::types::CaCertificateStatus;
use provisioner_core::RevocationReason;

use super::error::{retry_throttled, sdk_error, PCA};
#[cfg(doc)]
use super::IotRegions;
use super::{
    ca_id, now, summarize_certificate, CaError, CertificateSummary, IotCertificateRevoker,
    IssuingCaAdmin, RotationProgress, RotationState, DEFAULT_ROTATION_PAGE, DEFAULT_SETTLE,
};
use crate::acm_pca::{pca_reason, pca_serial};

/// How a rotation runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationOptions {
    /// Certificates evaluated per page (and so at most revoked per batch).
    pub page_size: i32,
    /// The wait after switching before revoking ([`DEFAULT_SETTLE`]).
    pub settle: Duration,
    /// Stop after this many batches (run again to continue); `None`: to the end.
    pub max_batches: Option<u64>,
    /// Why the old CA's certificates are revoked (a new rotation only; a resumed one keeps
    /// its recorded reason).
    pub reason: RevocationReason,
}

impl Default for RotationOptions {
    fn default() -> Self {
        Self {
            page_size: DEFAULT_ROTATION_PAGE,
            settle: DEFAULT_SETTLE,
            max_batches: None,
            reason: RevocationReason::Superseded,
        }
    }
}

/// What a call of [`IssuingCaAdmin::rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationOutcome {
    /// The progress as recorded at the end of the call.
    pub progress: RotationProgress,
    /// True when it continued a rotation an earlier call began.
    pub resumed: bool,
    /// True when the rotation is done (false: stopped after `max_batches`).
    pub finished: bool,
}

impl IssuingCaAdmin {
    /// Rotates the issuing CA to `to_arn` (an ACTIVE ACM Private CA) and cascades (see the
    /// [module docs](super)), or resumes the recorded rotation to `to_arn` that is not done.
    /// `revoker` sets certificates REVOKED in IoT Core in every region ([`IotRegions`],
    /// or the thing registry); `progress` is called after every recorded step and batch.
    ///
    /// # Errors
    /// [`CaError::Conflict`] when another rotation is unfinished or won the switch;
    /// [`CaError::InvalidInput`] when no CA is in effect or `to_arn` is it;
    /// [`CaError::WrongState`] when `to_arn` has no certificate; any service failure, after
    /// which the progress says `failed` and the next call resumes.
    pub async fn rotate(
        &self,
        to_arn: &str,
        options: &RotationOptions,
        revoker: &impl IotCertificateRevoker,
        mut progress: impl FnMut(&RotationProgress),
    ) -> Result<RotationOutcome, CaError> {
        let (mut record, resumed) = self.begin_rotation(to_arn, options).await?;
        progress(&record);
        let mut batches = 0u64;
        loop {
            let state = record.resume_state();
            if record.state == RotationState::Failed {
                // Resuming: the next save records the state it runs in again.
                record.state = state;
                record.failed_state = None;
                record.last_error = None;
            }
            let step = match state {
                RotationState::Done => break,
                RotationState::Registering => self.step_register(&mut record).await,
                RotationState::Switching => self.step_switch(&mut record, options).await,
                RotationState::Revoking => {
                    self.step_revoke(&mut record, options, revoker, &mut batches, &mut progress)
                        .await
                }
                RotationState::Deactivating => self.step_deactivate(&mut record).await,
                RotationState::Failed => Err(CaError::Corrupt("failed state in a step".into())),
            };
            match step {
                Ok(true) => {}
                // Stopped after max_batches: the progress is recorded; resume later.
                Ok(false) => {
                    return Ok(RotationOutcome {
                        progress: record,
                        resumed,
                        finished: false,
                    })
                }
                Err(error) => {
                    record.state = RotationState::Failed;
                    record.failed_state = Some(state);
                    record.last_error = Some(error.to_string());
                    record.updated_at = now();
                    // The error matters more than a failure to record it.
                    if let Err(save) = self.store.save_rotation(&record).await {
                        tracing::warn!(error = %save, "cannot record the rotation's failure");
                    }
                    progress(&record);
                    return Err(error);
                }
            }
            progress(&record);
        }
        self.store.clear_pending(to_arn).await?;
        Ok(RotationOutcome {
            progress: record,
            resumed,
            finished: true,
        })
    }

    /// Records a new rotation to `to_arn` in state `registering`, after the checks
    /// [`IssuingCaAdmin::rotate`] makes before anything changes, without running any step
    /// (the admin API starts a rotation so; the scheduled maintenance, `aws::maintenance`,
    /// runs the steps). A recorded rotation to `to_arn` that is not done is returned
    /// instead, with `true` (resumed).
    ///
    /// # Errors
    /// [`CaError::Conflict`] when a rotation to another CA is unfinished;
    /// [`CaError::InvalidInput`] when no CA is in effect or `to_arn` is it;
    /// [`CaError::WrongState`] when `to_arn` has no certificate; [`CaError::NotFound`] for
    /// an unknown CA; a service failure.
    pub async fn begin_rotation(
        &self,
        to_arn: &str,
        options: &RotationOptions,
    ) -> Result<(RotationProgress, bool), CaError> {
        match self.store.rotation().await? {
            Some(record) if record.state != RotationState::Done => {
                if record.to_ca_arn != to_arn {
                    return Err(CaError::Conflict(format!(
                        "the rotation from {} to {} is not finished ({}); run \
                         `provisioner aws ca rotate --to {}` to finish it first",
                        record.from_ca_arn,
                        record.to_ca_arn,
                        record.state.name(),
                        record.to_ca_arn
                    )));
                }
                Ok((record, true))
            }
            _ => Ok((self.new_rotation(to_arn, options).await?, false)),
        }
    }

    async fn new_rotation(
        &self,
        to_arn: &str,
        options: &RotationOptions,
    ) -> Result<RotationProgress, CaError> {
        let from = self.current_arn().await?.ok_or_else(|| {
            CaError::InvalidInput(
                "no issuing CA is in effect to rotate from: install and register the first \
                 CA (`provisioner aws ca install`, `aws ca register`), or set \
                 PROVISIONER_PCA_CA_ARN"
                    .into(),
            )
        })?;
        if from == to_arn {
            return Err(CaError::InvalidInput(format!(
                "{to_arn} is already the issuing CA: create a new CA first (`provisioner aws ca create`)"
            )));
        }
        // The new CA must be ready to issue before anything changes.
        self.ca_certificate(to_arn).await?;
        let at = now();
        let record = RotationProgress {
            from_ca_arn: from,
            to_ca_arn: to_arn.to_owned(),
            state: RotationState::Registering,
            failed_state: None,
            reason: options.reason,
            revoked: 0,
            total: None,
            cursor: None,
            started_at: at,
            updated_at: at,
            completed_at: None,
            last_error: None,
            parent_ca_arn: None,
            admin_action: None,
        };
        self.store.start_rotation(&record).await?;
        Ok(record)
    }

    async fn advance(
        &self,
        record: &mut RotationProgress,
        next: RotationState,
    ) -> Result<(), CaError> {
        record.state = next;
        record.failed_state = None;
        record.last_error = None;
        record.updated_at = now();
        if next == RotationState::Done {
            record.completed_at = Some(record.updated_at);
            // Before the rotation reads done: a crash between the two reruns this step.
            self.store.record_retired(record).await?;
        }
        self.store.save_rotation(record).await
    }

    async fn step_register(&self, record: &mut RotationProgress) -> Result<bool, CaError> {
        self.register_ca_in_regions(&record.to_ca_arn, &self.iot.regions())
            .await?;
        self.advance(record, RotationState::Switching).await?;
        Ok(true)
    }

    async fn step_switch(
        &self,
        record: &mut RotationProgress,
        options: &RotationOptions,
    ) -> Result<bool, CaError> {
        let recorded = self.store.read_current().await?.map(|c| c.ca_arn);
        if recorded.as_deref() != Some(record.to_ca_arn.as_str()) {
            self.store
                .set_current(Some(&record.from_ca_arn), &record.to_ca_arn, now())
                .await?;
        }
        tokio::time::sleep(options.settle).await;
        let total = self
            .registry
            .count_active_by_issuer(ca_id(&record.from_ca_arn))
            .await?;
        record.total = Some(record.revoked + total);
        record.cursor = None;
        self.advance(record, RotationState::Revoking).await?;
        Ok(true)
    }

    /// Revokes page after page; returns `false` when stopped by `max_batches`.
    async fn step_revoke(
        &self,
        record: &mut RotationProgress,
        options: &RotationOptions,
        revoker: &impl IotCertificateRevoker,
        batches: &mut u64,
        progress: &mut impl FnMut(&RotationProgress),
    ) -> Result<bool, CaError> {
        let issuer = ca_id(&record.from_ca_arn).to_owned();
        // A resumed pass may have revoked before the crash: sweep once more to be sure.
        let mut revoked_this_pass = record.cursor.is_some() || record.revoked > 0;
        loop {
            if options.max_batches.is_some_and(|max| *batches >= max) {
                return Ok(false);
            }
            let (page, next) = self
                .registry
                .active_certificates_by_issuer(&issuer, record.cursor.as_deref(), options.page_size)
                .await?;
            let ids: Vec<String> = page.into_iter().map(|c| c.certificate_id).collect();
            if !ids.is_empty() {
                // IoT first: a certificate the registry shows REVOKED is refused everywhere.
                revoker.revoke_in_all_regions(&ids).await?;
                let revoked = self
                    .registry
                    .revoke_active(&ids, record.reason, now())
                    .await?;
                record.revoked += revoked;
                revoked_this_pass |= revoked > 0;
                *batches += 1;
            }
            record.cursor = next.clone();
            if let Some(total) = record.total {
                record.total = Some(total.max(record.revoked));
            }
            record.updated_at = now();
            self.store.save_rotation(record).await?;
            progress(record);
            if next.is_none() {
                if !revoked_this_pass {
                    break;
                }
                // Another pass from the start: it ends the cascade when it finds nothing.
                revoked_this_pass = false;
            }
        }
        self.advance(record, RotationState::Deactivating).await?;
        Ok(true)
    }

    async fn step_deactivate(&self, record: &mut RotationProgress) -> Result<bool, CaError> {
        let old = &record.from_ca_arn;
        let (der, _, chain) = self.ca_certificate(old).await?;
        for region in self.iot.regions() {
            let found = self.iot.find_ca(&region, &der).await?;
            if let (Some(id), Some(status)) = (&found.certificate_id, found.status.as_deref()) {
                if status != "INACTIVE" {
                    self.iot
                        .set_ca_status(&region, id, CaCertificateStatus::Inactive)
                        .await?;
                }
            }
        }
        let summary = summarize_certificate(&der)?;
        let reason = if record.reason == RevocationReason::CaCompromise {
            RevocationReason::CaCompromise
        } else {
            RevocationReason::CessationOfOperation
        };
        match self.find_parent(old, &summary, chain.first()).await? {
            Some(parent) => {
                self.revoke_at_parent(&parent, &summary.serial, reason)
                    .await?;
                record.parent_ca_arn = Some(parent);
                record.admin_action = Some(format!(
                    "When no certificate of {old} is needed any more, disable it: aws acm-pca \
                     update-certificate-authority --certificate-authority-arn {old} --status DISABLED"
                ));
            }
            None => {
                record.admin_action = Some(format!(
                    "The old issuing CA {old} (subject {subject}, serial {serial}) was signed by \
                     {issuer}, which is not an ACM Private CA of this account in {region}: have \
                     that CA's operator revoke serial {serial} (reason {reason}) and publish its \
                     CRL, so relying parties that check it refuse the old CA. Then disable the old \
                     CA: aws acm-pca update-certificate-authority --certificate-authority-arn \
                     {old} --status DISABLED",
                    subject = summary.subject,
                    serial = summary.serial,
                    issuer = summary.issuer,
                    region = self.serving_region,
                    reason = reason.name(),
                ));
            }
        }
        self.advance(record, RotationState::Done).await?;
        Ok(true)
    }

    /// The ACM Private CA of this account (serving region) that signed `old`'s
    /// certificate: its certificate's subject is `old`'s issuer, and it is the chain's
    /// first certificate when a chain was installed.
    async fn find_parent(
        &self,
        old: &str,
        summary: &CertificateSummary,
        chain_first: Option<&Vec<u8>>,
    ) -> Result<Option<String>, CaError> {
        let mut token = None;
        loop {
            let page = retry_throttled(|| {
                self.pca
                    .list_certificate_authorities()
                    .set_next_token(token.clone())
                    .send()
            })
            .await
            .map_err(|e| sdk_error(PCA, "ListCertificateAuthorities", &e))?;
            for ca in page.certificate_authorities() {
                let Some(arn) = ca.arn() else { continue };
                if arn == old || ca.status() != Some(&CertificateAuthorityStatus::Active) {
                    continue;
                }
                let (der, _, _) = self.ca_certificate(arn).await?;
                let candidate = summarize_certificate(&der)?;
                let same_issuer = candidate.subject_der == summary.issuer_der;
                let same_chain = chain_first.is_none_or(|first| *first == der);
                if same_issuer && same_chain {
                    return Ok(Some(arn.to_owned()));
                }
            }
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => return Ok(None),
            }
        }
    }

    async fn revoke_at_parent(
        &self,
        parent: &str,
        serial_hex: &str,
        reason: RevocationReason,
    ) -> Result<(), CaError> {
        let serial = pca_serial(serial_hex).map_err(|e| CaError::Corrupt(e.to_string()))?;
        let reason = pca_reason(reason).map_err(|e| CaError::InvalidInput(e.to_string()))?;
        let result = retry_throttled(|| {
            self.pca
                .revoke_certificate()
                .certificate_authority_arn(parent)
                .certificate_serial(&serial)
                .revocation_reason(reason.clone())
                .send()
        })
        .await;
        match result {
            Ok(_) => Ok(()),
            // Revoked by an earlier, interrupted run.
            Err(error) if error.code() == Some("RequestAlreadyProcessedException") => Ok(()),
            Err(error) => Err(sdk_error(PCA, "RevokeCertificate", &error)),
        }
    }
}
