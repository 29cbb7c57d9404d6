//! `POST devices/import`: a manufacturer manifest (CSV or JSON lines) imported with the
//! CLI's rules, all or nothing. A refused one answers 422 with the summary, so the
//! caller sees every refused row.

use std::str::FromStr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use provisioner_core::ManifestFormat;
use serde::Deserialize;
use serde_json::json;

use super::error::bad_request;
use super::input::{body, flag, query};
use super::AdminContext;
use crate::api::ApiError;
use provisioner_app::fleet::ManifestUpload;
use provisioner_app::import::{ImportOptions, ImportSummary};

/// The largest manifest `POST devices/import` accepts; bigger ones go through
/// `provisioner import`, which streams them.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024 * 1024;

/// The query of `POST devices/import`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ImportQuery {
    format: Option<String>,
    dry_run: Option<String>,
    replace: Option<String>,
    name: Option<String>,
}

/// The name recorded as `sourceManifest` when the caller gives none.
pub(super) const DEFAULT_MANIFEST_NAME: &str = "admin-api";

/// `POST devices/import`: the summary, or 422 when a row is refused (nothing written).
pub(super) async fn import_devices(
    State(context): State<Arc<AdminContext>>,
    parsed: Result<Query<ImportQuery>, QueryRejection>,
    read: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let q = query(parsed)?;
    let dry_run = flag("dryRun", q.dry_run.as_deref())?;
    let replace = flag("replace", q.replace.as_deref())?;
    let name = q.name.unwrap_or_else(|| DEFAULT_MANIFEST_NAME.into());
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(bad_request(
            "invalid_query",
            "name must be 1 to 255 characters without control characters (the manifest's file name)",
        ));
    }
    let bytes = body(read, "manifest", MAX_MANIFEST_BYTES)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(bad_request(
            "empty_manifest",
            "the body is empty: send the manifest file as the request body",
        ));
    }
    let format = match q.format.as_deref() {
        None | Some("") => ManifestFormat::detect(&bytes),
        Some(name) => ManifestFormat::from_str(name)
            .map_err(|e| bad_request("invalid_format", format!("{e}: use csv or jsonl")))?,
    };
    if format == ManifestFormat::Microchip {
        return Err(bad_request(
            "unsupported_manifest_format",
            "Microchip signed manifests need their signers' certificates, which the API does not take: import them on the server with `provisioner import --manifest-signer CERT FILE`",
        ));
    }
    let mut summary = context
        .fleet
        .import(ManifestUpload {
            bytes: bytes.to_vec(),
            format,
            name,
            options: ImportOptions {
                replace,
                dry_run,
                now: context.now(),
            },
        })
        .await?;
    for e in &mut summary.errors {
        e.message = e.message.replace("--replace", "replace=true");
    }
    if summary.is_clean() {
        return Ok(Json(summary).into_response());
    }
    Ok(import_refused(summary))
}

/// 422 with the summary: every refused row is in `summary.errors` (the first 100).
fn import_refused(summary: ImportSummary) -> Response {
    let message = if summary.conflicts > 0 {
        format!(
            "nothing written: {} invalid rows and {} devices registered with another key; fix the rows listed in summary.errors, or import with replace=true to replace the keys",
            summary.invalid, summary.conflicts
        )
    } else {
        format!(
            "nothing written: {} invalid rows; fix the rows listed in summary.errors",
            summary.invalid
        )
    };
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "error": "import_refused",
            "message": message,
            "summary": summary,
        })),
    )
        .into_response()
}
