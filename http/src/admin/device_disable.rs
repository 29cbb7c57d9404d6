//! `POST /admin/api/devices/{id}/disable`: the HTTP side of
//! [`fleet::disable_device`](provisioner_app::fleet::disable_device).
//!
//! No body (or an empty one) disables the device, as the route always did. The body
//! `{"revoke": true}` also revokes each of its ACTIVE certificates, with
//! `keyCompromise` or the RFC 5280 `reason` given beside it. The answer is the device
//! (the `Device` schema, unchanged) plus `revokedCertificates`, each as
//! `POST certificates/{id}/revoke` answers it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::Json;
use provisioner_core::RevocationReason;
use serde::{Deserialize, Serialize};

use super::certificates::{reason_names, RevokedView};
use super::devices::DeviceView;
use super::error::bad_request;
use super::input::{body, path};
use super::AdminContext;
use crate::api::ApiError;
use provisioner_app::fleet::{self, DEFAULT_CUT_OFF_REASON};

/// The largest body read: it holds two small fields.
const MAX_BODY_BYTES: usize = 4 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisableBody {
    #[serde(default)]
    revoke: bool,
    reason: Option<String>,
}

/// The device, disabled, and what was revoked.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DisabledView {
    #[serde(flatten)]
    device: DeviceView,
    revoked_certificates: Vec<RevokedView>,
}

/// The reason to revoke with, or `None` to leave the certificates alone.
fn revocation(bytes: &[u8]) -> Result<Option<RevocationReason>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let parsed: DisableBody = serde_json::from_slice(bytes).map_err(|e| {
        bad_request(
            "invalid_body",
            format!(
                "the body must be empty or JSON {{\"revoke\": true}} (optionally with \"reason\": an RFC 5280 reason, default {}): {e}",
                DEFAULT_CUT_OFF_REASON.name()
            ),
        )
    })?;
    match (parsed.revoke, parsed.reason) {
        (false, None) => Ok(None),
        (false, Some(_)) => Err(bad_request(
            "invalid_body",
            "reason applies only with \"revoke\": true: send {\"revoke\": true, \"reason\": NAME}, or leave reason out",
        )),
        (true, None) => Ok(Some(DEFAULT_CUT_OFF_REASON)),
        (true, Some(name)) => RevocationReason::from_name(&name).map(Some).ok_or_else(|| {
            bad_request(
                "invalid_reason",
                format!(
                    "{name:?} is not an RFC 5280 revocation reason; use one of: {}",
                    reason_names()
                ),
            )
        }),
    }
}

pub(super) async fn disable_device(
    State(context): State<Arc<AdminContext>>,
    device_id: Result<Path<String>, PathRejection>,
    read: Result<Bytes, BytesRejection>,
) -> Result<Json<DisabledView>, ApiError> {
    let device_id = path(device_id)?;
    let revoke = revocation(&body(read, "body", MAX_BODY_BYTES)?)?;
    let done =
        fleet::disable_device(context.fleet.as_ref(), &device_id, revoke, context.now()).await?;
    Ok(Json(DisabledView {
        device: done.device.into(),
        revoked_certificates: done.revoked.into_iter().map(RevokedView::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn no_body_or_revoke_false_leaves_the_certificates_alone() {
        for text in ["", "  \n", "{}", r#"{"revoke": false}"#] {
            assert_eq!(revocation(text.as_bytes()).unwrap(), None, "{text}");
        }
    }

    #[test]
    fn revoke_true_defaults_to_key_compromise_and_takes_a_reason() {
        assert_eq!(
            revocation(br#"{"revoke": true}"#).unwrap(),
            Some(RevocationReason::KeyCompromise)
        );
        assert_eq!(
            revocation(br#"{"revoke": true, "reason": "cessationOfOperation"}"#).unwrap(),
            Some(RevocationReason::CessationOfOperation)
        );
    }

    #[test]
    fn a_bad_body_is_refused_with_a_stable_code() {
        for (text, code) in [
            ("revoke", "invalid_body"),
            (r#"{"revoke": "yes"}"#, "invalid_body"),
            (r#"{"revoke": true, "why": 1}"#, "invalid_body"),
            (r#"{"reason": "keyCompromise"}"#, "invalid_body"),
            ("null", "invalid_body"),
            (r#"{"revoke": true, "reason": "stolen"}"#, "invalid_reason"),
        ] {
            let refused = revocation(text.as_bytes()).unwrap_err();
            assert_eq!(refused.code, code, "{text}");
            assert_eq!(refused.status, axum::http::StatusCode::BAD_REQUEST);
        }
    }
}
