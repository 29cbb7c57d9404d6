//! A rotation's progress as the config table's [`ROTATION_ITEM`] records it: where it is
//! ([`RotationState`]) and what it did ([`RotationProgress`]), and its item.

use provisioner_core::{RevocationReason, UnixTime};

use super::store::{n, number, optional_number, optional_text, s, text, Item};
use super::{CaError, ROTATION_ITEM};

/// Where a rotation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationState {
    /// Registering the new CA in IoT Core in every region.
    Registering,
    /// Making the new CA the issuing CA, then letting issuers catch up.
    Switching,
    /// Revoking the old CA's certificates.
    Revoking,
    /// Deactivating the old CA in IoT Core, revoking it at its parent.
    Deactivating,
    /// Finished.
    Done,
    /// Stopped by an error in `failedState`; running the rotation again resumes.
    Failed,
}

impl RotationState {
    /// The stored name: `registering`, `switching`, `revoking`, `deactivating`, `done`,
    /// `failed`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Registering => "registering",
            Self::Switching => "switching",
            Self::Revoking => "revoking",
            Self::Deactivating => "deactivating",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    /// Reads a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Registering,
            Self::Switching,
            Self::Revoking,
            Self::Deactivating,
            Self::Done,
            Self::Failed,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// A rotation's progress, as the [`ROTATION_ITEM`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationProgress {
    /// The CA being retired.
    pub from_ca_arn: String,
    /// The CA taking over.
    pub to_ca_arn: String,
    /// Where it is.
    pub state: RotationState,
    /// With [`RotationState::Failed`]: the state it failed in (where it resumes).
    pub failed_state: Option<RotationState>,
    /// Why the old CA's certificates are revoked.
    pub reason: RevocationReason,
    /// Certificates revoked so far (all runs).
    pub revoked: u64,
    /// ACTIVE certificates of the old CA when revoking began.
    pub total: Option<u64>,
    /// Where the current revocation pass resumes (a `certificateId`).
    pub cursor: Option<String>,
    /// When it started.
    pub started_at: UnixTime,
    /// When it last changed.
    pub updated_at: UnixTime,
    /// When it finished.
    pub completed_at: Option<UnixTime>,
    /// The last failure, if it failed.
    pub last_error: Option<String>,
    /// The ACM Private CA that revoked the old intermediate, if one did.
    pub parent_ca_arn: Option<String>,
    /// What the PKI admin must still do, if anything.
    pub admin_action: Option<String>,
}

impl RotationProgress {
    /// The state work resumes in (the failed one for a failed rotation).
    pub fn resume_state(&self) -> RotationState {
        match self.state {
            RotationState::Failed => self.failed_state.unwrap_or(RotationState::Registering),
            other => other,
        }
    }

    /// The [`ROTATION_ITEM`] that records it.
    pub(super) fn to_item(&self) -> Item {
        let mut item = Item::from([
            ("name".to_owned(), s(ROTATION_ITEM)),
            ("fromCaArn".to_owned(), s(&self.from_ca_arn)),
            ("toCaArn".to_owned(), s(&self.to_ca_arn)),
            ("state".to_owned(), s(self.state.name())),
            ("reason".to_owned(), s(self.reason.name())),
            ("revoked".to_owned(), n(self.revoked)),
            ("startedAt".to_owned(), n(self.started_at)),
            ("updatedAt".to_owned(), n(self.updated_at)),
        ]);
        let optional = [
            ("failedState", self.failed_state.map(|f| s(f.name()))),
            ("total", self.total.map(n)),
            ("cursor", self.cursor.as_deref().map(s)),
            ("completedAt", self.completed_at.map(n)),
            ("lastError", self.last_error.as_deref().map(s)),
            ("parentCaArn", self.parent_ca_arn.as_deref().map(s)),
            ("adminAction", self.admin_action.as_deref().map(s)),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                item.insert(name.to_owned(), value);
            }
        }
        item
    }

    /// Reads the [`ROTATION_ITEM`].
    pub(super) fn from_item(item: &Item) -> Result<Self, CaError> {
        let read = || -> Result<Self, String> {
            let state = |name: &str| {
                RotationState::from_name(name).ok_or_else(|| format!("unknown state {name:?}"))
            };
            let reason = text(item, "reason")?;
            Ok(Self {
                from_ca_arn: text(item, "fromCaArn")?,
                to_ca_arn: text(item, "toCaArn")?,
                state: state(&text(item, "state")?)?,
                failed_state: optional_text(item, "failedState")?
                    .map(|f| state(&f))
                    .transpose()?,
                reason: RevocationReason::from_name(&reason)
                    .ok_or_else(|| format!("unknown reason {reason:?}"))?,
                revoked: number(item, "revoked")?,
                total: optional_number(item, "total")?,
                cursor: optional_text(item, "cursor")?,
                started_at: number(item, "startedAt")?,
                updated_at: number(item, "updatedAt")?,
                completed_at: optional_number(item, "completedAt")?,
                last_error: optional_text(item, "lastError")?,
                parent_ca_arn: optional_text(item, "parentCaArn")?,
                admin_action: optional_text(item, "adminAction")?,
            })
        };
        read().map_err(|e| CaError::Corrupt(format!("config item {ROTATION_ITEM}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn rotation_progress_survives_the_item_round_trip() {
        let progress = RotationProgress {
            from_ca_arn: "arn:aws:acm-pca:eu-west-1:1:certificate-authority/old".into(),
            to_ca_arn: "arn:aws:acm-pca:eu-west-1:1:certificate-authority/new".into(),
            state: RotationState::Failed,
            failed_state: Some(RotationState::Revoking),
            reason: RevocationReason::CaCompromise,
            revoked: 250,
            total: Some(1000),
            cursor: Some("ab12".into()),
            started_at: 1_800_000_000,
            updated_at: 1_800_000_100,
            completed_at: None,
            last_error: Some("IoT Core throttled".into()),
            parent_ca_arn: None,
            admin_action: None,
        };
        let item = progress.to_item();
        assert_eq!(item["name"], s(ROTATION_ITEM));
        assert_eq!(item["state"], s("failed"));
        assert_eq!(item["reason"], s("cACompromise"));
        assert!(!item.contains_key("completedAt"));
        let back = RotationProgress::from_item(&item).unwrap();
        assert_eq!(back, progress);
        assert_eq!(back.resume_state(), RotationState::Revoking);
    }

    #[test]
    fn a_damaged_rotation_item_is_corrupt() {
        let mut item = RotationProgress::from_item(
            &RotationProgress {
                from_ca_arn: "a".into(),
                to_ca_arn: "b".into(),
                state: RotationState::Done,
                failed_state: None,
                reason: RevocationReason::Superseded,
                revoked: 0,
                total: None,
                cursor: None,
                started_at: 0,
                updated_at: 0,
                completed_at: Some(0),
                last_error: None,
                parent_ca_arn: None,
                admin_action: None,
            }
            .to_item(),
        )
        .unwrap()
        .to_item();
        item.insert("state".into(), s("sleeping"));
        let error = RotationProgress::from_item(&item).unwrap_err();
        assert!(
            matches!(error, CaError::Corrupt(ref m) if m.contains("sleeping")),
            "{error}"
        );
    }

    #[test]
    fn state_names_round_trip() {
        for state in [
            RotationState::Registering,
            RotationState::Switching,
            RotationState::Revoking,
            RotationState::Deactivating,
            RotationState::Done,
            RotationState::Failed,
        ] {
            assert_eq!(RotationState::from_name(state.name()), Some(state));
        }
        assert_eq!(RotationState::from_name("DONE"), None);
    }
}
