//! The audit log: `GET audit`, a page of allow and deny decisions, newest first.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::input::query;
use super::pagination::{decode_cursor, page, page_size, CursorKind, Page};
use super::AdminContext;
use crate::api::{rfc3339, ApiError};
use provisioner_app::fleet::{AuditQuery, LoggedEvent};

/// A decision as the admin API shows it (the `AuditEvent` schema).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AuditView {
    id: String,
    at: String,
    device_id: Option<String>,
    decision: &'static str,
    code: String,
    remote_addr: Option<String>,
    fingerprint: Option<String>,
    certificate_id: Option<String>,
}

impl From<LoggedEvent> for AuditView {
    fn from(entry: LoggedEvent) -> Self {
        let e = entry.event;
        Self {
            id: entry.id,
            at: rfc3339(e.at),
            device_id: e.device_id,
            decision: e.decision,
            code: e.code,
            remote_addr: e.remote_addr,
            fingerprint: e.fingerprint,
            certificate_id: e.certificate_id,
        }
    }
}

/// The query of `GET audit`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditListQuery {
    device: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

/// `GET audit`: one page of decisions, newest first; `device` filters it.
pub(super) async fn audit(
    State(context): State<Arc<AdminContext>>,
    parsed: Result<Query<AuditListQuery>, QueryRejection>,
) -> Result<Json<Page<AuditView>>, ApiError> {
    let q = query(parsed)?;
    let limit = page_size(q.limit.as_deref())?;
    let after = q
        .cursor
        .map(|c| decode_cursor(CursorKind::Audit, &c))
        .transpose()?;
    let listed = context
        .fleet
        .audit(AuditQuery {
            device_id: q.device.filter(|d| !d.is_empty()),
            after,
            limit,
        })
        .await?;
    Ok(Json(page(listed, AuditView::from, CursorKind::Audit)))
}
