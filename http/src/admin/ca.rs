//! The issuing CA: `GET ca` (the current and previous CAs, the CRLs the service
//! publishes), `GET ca/crl`, and the rotation: `POST ca/rotate` starts it as a job,
//! `GET ca/rotation` follows it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{bad_request, error, internal};
use super::input::body;
use super::{AdminContext, API_PREFIX};
use crate::api::{rfc3339, ApiError, PEM_MEDIA_TYPE};
use provisioner_app::fleet::{IssuingCaRecord, RotationRequest, RotationStatus};

/// One issuing CA (the `Ca` schema).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CaView {
    id: String,
    arn: Option<String>,
    subject: String,
    serial: String,
    certificate_id: String,
    not_before: String,
    not_after: String,
    state: &'static str,
    revoked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chain_pem: Option<String>,
}

impl From<IssuingCaRecord> for CaView {
    fn from(ca: IssuingCaRecord) -> Self {
        Self {
            id: ca.id,
            arn: ca.arn,
            subject: ca.subject,
            serial: ca.serial,
            certificate_id: ca.certificate_id,
            not_before: rfc3339(ca.not_before),
            not_after: rfc3339(ca.not_after),
            state: ca.state,
            revoked_at: ca.revoked_at.map(rfc3339),
            chain_pem: ca.chain_pem,
        }
    }
}

/// The issuing CAs and the CRLs (the `CaOverview` schema).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CaOverviewView {
    backend: &'static str,
    current: Option<CaView>,
    previous: Vec<CaView>,
    pending_csr: Option<String>,
    can_create_next_ca: bool,
    /// The same as `canCreateNextCa` (the name of the first API version).
    root_key_local: bool,
    crls: Vec<crate::admin_crls::CrlView>,
}

/// `GET ca`: the current and previous issuing CAs and the CRLs the service publishes.
pub(super) async fn ca(
    State(context): State<Arc<AdminContext>>,
) -> Result<Json<CaOverviewView>, ApiError> {
    let overview = context.fleet.ca().await?;
    Ok(Json(CaOverviewView {
        backend: context.fleet.backend(),
        current: overview.current.map(CaView::from),
        previous: overview.previous.into_iter().map(CaView::from).collect(),
        pending_csr: overview.pending,
        can_create_next_ca: overview.can_create_next_ca,
        root_key_local: overview.can_create_next_ca,
        crls: crate::admin_crls::crl_views(overview.crls, context.now()),
    }))
}

/// `GET ca/crl`: the current issuing CA's CRL, PEM.
pub(super) async fn ca_crl(State(context): State<Arc<AdminContext>>) -> Result<Response, ApiError> {
    let crl = context.fleet.crl(context.now()).await?;
    Ok(([(CONTENT_TYPE, PEM_MEDIA_TYPE)], crl.pem).into_response())
}

/// A rotation's progress (the `Rotation` schema).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RotationView {
    job_id: String,
    /// `running`, `finished`, `failed`, or `interrupted` (found unfinished: POST
    /// ca/rotate resumes it).
    state: &'static str,
    step: Option<&'static str>,
    finished: bool,
    started_at: String,
    finished_at: Option<String>,
    old_ca: Option<String>,
    new_ca: Option<String>,
    revoked: u64,
    total: Option<u64>,
    resumed: bool,
    error: Option<String>,
    admin_action: Option<String>,
}

impl From<RotationStatus> for RotationView {
    fn from(r: RotationStatus) -> Self {
        Self {
            job_id: r.job_id,
            state: r.state,
            step: r.step,
            finished: r.state == "finished",
            started_at: rfc3339(r.started_at),
            finished_at: r.finished_at.map(rfc3339),
            old_ca: r.old_ca,
            new_ca: r.new_ca,
            revoked: r.revoked,
            total: r.total,
            resumed: r.resumed,
            error: r.error,
            admin_action: r.admin_action,
        }
    }
}

/// The body of `POST ca/rotate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    to: Option<String>,
}

/// `POST ca/rotate`: starts a rotation as a job; 202 with where to follow it.
pub(super) async fn rotate_ca(
    State(context): State<Arc<AdminContext>>,
    read: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body(read, "body", 64 * 1024)?;
    let request = if bytes.iter().all(u8::is_ascii_whitespace) {
        RotationRequest::default()
    } else {
        let parsed: RotateBody = serde_json::from_slice(&bytes).map_err(|e| {
            bad_request(
                "invalid_body",
                format!(
                    "the body must be JSON {{\"to\": CA_ARN}} (on AWS) or empty (locally): {e}"
                ),
            )
        })?;
        RotationRequest {
            to: parsed.to.filter(|to| !to.trim().is_empty()),
        }
    };
    let status = context.fleet.start_rotation(request, context.now()).await?;
    let location = format!("{API_PREFIX}/ca/rotation");
    let mut view = serde_json::to_value(RotationView::from(status)).map_err(|e| {
        tracing::error!(error = %e, "cannot serialise the rotation");
        internal()
    })?;
    view["statusUrl"] = Value::String(location.clone());
    let mut response = (StatusCode::ACCEPTED, Json(view)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, value);
    }
    Ok(response)
}

/// `GET ca/rotation`: the running or last rotation.
pub(super) async fn rotation(
    State(context): State<Arc<AdminContext>>,
) -> Result<Json<RotationView>, ApiError> {
    let status = context.fleet.rotation().await?.ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "no_rotation",
            format!("no CA rotation has run: start one with POST {API_PREFIX}/ca/rotate"),
        )
    })?;
    Ok(Json(status.into()))
}
