//! Reading a request's parts in the admin handlers: the query string, a path segment,
//! the body and boolean flags. Each refusal is a 400 (a body too large: 413) with a
//! stable code, so a handler only writes `query(parsed)?`.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::StatusCode;

use super::error::{bad_request, error};
use super::API_PREFIX;
use crate::api::ApiError;

/// The query, or 400 `invalid_query` when it does not deserialise (an unknown
/// parameter, say).
pub(super) fn query<T>(parsed: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    parsed.map(|Query(q)| q).map_err(|e| {
        bad_request(
            "invalid_query",
            format!(
                "{}: GET {API_PREFIX}/openapi.json lists each route's parameters",
                e.body_text()
            ),
        )
    })
}

/// The path segment, or 400 `invalid_path` when it does not decode (percent-encoded
/// bytes that are not UTF-8).
pub(super) fn path(parsed: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    parsed
        .map(|Path(segment)| segment)
        .map_err(|e| bad_request("invalid_path", e.body_text()))
}

/// The body, or 413 `body_too_large` / 400 `invalid_body` when it could not be read
/// (larger than `limit`, or cut off).
pub(super) fn body(
    read: Result<Bytes, BytesRejection>,
    what: &str,
    limit: usize,
) -> Result<Bytes, ApiError> {
    read.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the {what} is larger than {limit} bytes"),
            )
        } else {
            bad_request(
                "invalid_body",
                format!("the {what} could not be read: {}", e.body_text()),
            )
        }
    })
}

/// A boolean query parameter: absent, `false` or `0` is false; empty, `true` or `1` is true.
pub(super) fn flag(name: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0") => Ok(false),
        Some("" | "true" | "1") => Ok(true),
        Some(other) => Err(bad_request(
            "invalid_query",
            format!("{name}={other:?} is not a boolean: use {name}=true or {name}=false"),
        )),
    }
}
