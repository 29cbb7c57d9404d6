//! Regional registrations with IoT Core (AWS; none locally): `GET registrations` (those
//! not finished, a page) and `POST registrations/retry`. A certificate's own are shown
//! in `GET certificates/{id}`.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::input::query;
use super::pagination::{decode_cursor, page, page_size, CursorKind, Page};
use super::AdminContext;
use crate::api::{rfc3339, ApiError};
use provisioner_app::fleet::RegistrationRecord;

/// Unfinished registrations retried by one `POST registrations/retry`.
pub const RETRY_REGISTRATIONS_LIMIT: usize = 200;

/// A registration as the admin API shows it (the `Registration` schema).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RegistrationView {
    certificate_id: String,
    region: String,
    device_id: String,
    status: &'static str,
    attempts: u32,
    last_error: Option<String>,
    updated_at: String,
}

impl From<RegistrationRecord> for RegistrationView {
    fn from(r: RegistrationRecord) -> Self {
        Self {
            certificate_id: r.certificate_id,
            region: r.region,
            device_id: r.device_id,
            status: r.status,
            attempts: r.attempts,
            last_error: r.last_error,
            updated_at: rfc3339(r.updated_at),
        }
    }
}

/// The query of `GET registrations`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RegistrationListQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

/// `GET registrations`: one page of those not finished, oldest change first.
pub(super) async fn list_registrations(
    State(context): State<Arc<AdminContext>>,
    parsed: Result<Query<RegistrationListQuery>, QueryRejection>,
) -> Result<Json<Page<RegistrationView>>, ApiError> {
    let q = query(parsed)?;
    let limit = page_size(q.limit.as_deref())?;
    let after = q
        .cursor
        .map(|c| decode_cursor(CursorKind::Registrations, &c))
        .transpose()?;
    let listed = context.fleet.unfinished_registrations(after, limit).await?;
    Ok(Json(page(
        listed,
        RegistrationView::from,
        CursorKind::Registrations,
    )))
}

/// `POST registrations/retry`: retries up to [`RETRY_REGISTRATIONS_LIMIT`] now.
pub(super) async fn retry_registrations(
    State(context): State<Arc<AdminContext>>,
) -> Result<Json<Value>, ApiError> {
    let retried = context
        .fleet
        .retry_registrations(RETRY_REGISTRATIONS_LIMIT)
        .await?;
    Ok(Json(json!({
        "attempted": retried.attempted,
        "done": retried.done,
        "failed": retried.failed,
        "inFlight": retried.in_flight,
        "more": retried.more,
    })))
}
