//! Devices: `GET devices` (a page, by id), `GET devices/{id}` (with its newest
//! certificates and decisions) and `POST devices/{id}/enable`. Disabling is in
//! `device_disable`, importing a manifest in `import`.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::audit::AuditView;
use super::certificates::CertificateView;
use super::error::{bad_request, unknown_device};
use super::input::{path, query};
use super::pagination::{decode_cursor, page, page_size, CursorKind, Page};
use super::AdminContext;
use crate::api::{rfc3339, ApiError};
use provisioner_app::fleet::{AuditQuery, CertificateQuery, DeviceQuery, DeviceRecord};

/// Certificates listed in a device's details (newest first); the rest through
/// `GET certificates?device=ID`.
pub const DEVICE_CERTIFICATES: usize = 100;

/// Audit events listed in a device's details (newest first).
pub const DEVICE_AUDIT_EVENTS: usize = 50;

/// A device as the admin API shows it (the `Device` schema).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeviceView {
    device_id: String,
    public_key: String,
    key_fingerprint: String,
    enabled: bool,
    source_manifest: Option<String>,
    imported_at: String,
}

impl From<DeviceRecord> for DeviceView {
    fn from(d: DeviceRecord) -> Self {
        Self {
            key_fingerprint: hex::encode(Sha256::digest(d.public_key.spki_der())),
            public_key: d.public_key.canonical(),
            device_id: d.device_id,
            enabled: d.enabled,
            source_manifest: d.source_manifest,
            imported_at: rfc3339(d.imported_at),
        }
    }
}

/// The query of `GET devices`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeviceListQuery {
    prefix: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

/// `GET devices`: one page, by id; `prefix` and `status` filter it.
pub(super) async fn list_devices(
    State(context): State<Arc<AdminContext>>,
    parsed: Result<Query<DeviceListQuery>, QueryRejection>,
) -> Result<Json<Page<DeviceView>>, ApiError> {
    let q = query(parsed)?;
    let limit = page_size(q.limit.as_deref())?;
    let enabled = match q.status.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => None,
        Some("enabled") => Some(true),
        Some("disabled") => Some(false),
        Some(_) => {
            return Err(bad_request(
                "invalid_status",
                format!(
                    "status={:?} is not a device status: use enabled or disabled",
                    q.status.unwrap_or_default()
                ),
            ))
        }
    };
    let after = q
        .cursor
        .map(|c| decode_cursor(CursorKind::Devices, &c))
        .transpose()?;
    let listed = context
        .fleet
        .devices(DeviceQuery {
            prefix: q.prefix.filter(|p| !p.is_empty()),
            enabled,
            after,
            limit,
        })
        .await?;
    Ok(Json(page(listed, DeviceView::from, CursorKind::Devices)))
}

/// A device with its certificates and recent decisions (the `DeviceDetails` schema).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeviceDetails {
    #[serde(flatten)]
    device: DeviceView,
    certificates: Vec<CertificateView>,
    recent_audit: Vec<AuditView>,
}

/// `GET devices/{id}`: the device with its newest certificates and decisions.
pub(super) async fn device(
    State(context): State<Arc<AdminContext>>,
    device_id: Result<Path<String>, PathRejection>,
) -> Result<Json<DeviceDetails>, ApiError> {
    device_details(&context, path(device_id)?).await
}

/// `GET devices/import`: the device named `import` (the static segment wins the route).
pub(super) async fn device_named_import(
    State(context): State<Arc<AdminContext>>,
) -> Result<Json<DeviceDetails>, ApiError> {
    device_details(&context, "import".into()).await
}

/// A device's details: its record, newest [`DEVICE_CERTIFICATES`] certificates and
/// newest [`DEVICE_AUDIT_EVENTS`] decisions.
async fn device_details(
    context: &AdminContext,
    device_id: String,
) -> Result<Json<DeviceDetails>, ApiError> {
    let record = context
        .fleet
        .device(&device_id)
        .await?
        .ok_or_else(|| unknown_device(&device_id))?;
    let certificates = context
        .fleet
        .certificates(CertificateQuery {
            device_id: Some(device_id.clone()),
            limit: DEVICE_CERTIFICATES,
            ..CertificateQuery::default()
        })
        .await?;
    let audit = context
        .fleet
        .audit(AuditQuery {
            device_id: Some(device_id),
            after: None,
            limit: DEVICE_AUDIT_EVENTS,
        })
        .await?;
    Ok(Json(DeviceDetails {
        device: record.into(),
        certificates: certificates
            .items
            .into_iter()
            .map(|c| CertificateView::new(c, false))
            .collect(),
        recent_audit: audit.items.into_iter().map(AuditView::from).collect(),
    }))
}

/// `POST devices/{id}/enable`: the device, enabled.
pub(super) async fn enable_device(
    State(context): State<Arc<AdminContext>>,
    device_id: Result<Path<String>, PathRejection>,
) -> Result<Json<DeviceView>, ApiError> {
    let device_id = path(device_id)?;
    let record = context.fleet.set_device_enabled(&device_id, true).await?;
    Ok(Json(record.into()))
}
