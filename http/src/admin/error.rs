//! The admin API's errors: the constructors of its [`ApiError`]s, the answers to unknown
//! routes and methods, and the one mapping of a [`FleetError`] to an HTTP answer
//! (docs/ARCHITECTURE.md, "The rule: layers call downwards only": errors become HTTP in
//! exactly one place per router).
//! A handler returns `Result<_, ApiError>` and lets `?` turn a fleet's refusal into its
//! answer here.

use axum::http::StatusCode;

use super::API_PREFIX;
use crate::api::ApiError;
use provisioner_app::fleet::FleetError;

/// An answer with `status` and its stable `code`.
pub(super) fn error(
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
) -> ApiError {
    ApiError {
        status,
        code,
        message: message.into(),
        retry_after_secs: None,
    }
}

/// 400 with `code`: the request is wrong; the message says how.
pub(super) fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
    error(StatusCode::BAD_REQUEST, code, message)
}

/// 500: the detail is logged where it happened, never shown to the caller.
pub(super) fn internal() -> ApiError {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "the service failed; the error is logged",
    )
}

/// 404 `unknown_device`, saying how a device gets into the registry.
pub(super) fn unknown_device(device_id: &str) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        "unknown_device",
        format!("no device {device_id:?} in the registry: import its manufacturer manifest with POST {API_PREFIX}/devices/import"),
    )
}

/// 404 `unknown_certificate`, saying where the ids are listed.
pub(super) fn unknown_certificate(certificate_id: &str) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        "unknown_certificate",
        format!("no certificate {certificate_id:?} in the registry: GET {API_PREFIX}/certificates lists the certificate ids"),
    )
}

/// The one mapping of a fleet's refusal to an answer.
impl From<FleetError> for ApiError {
    fn from(e: FleetError) -> Self {
        match e {
            FleetError::UnknownDevice(id) => unknown_device(&id),
            FleetError::UnknownCertificate(id) => unknown_certificate(&id),
            FleetError::Busy { retry_after_secs } => ApiError {
                retry_after_secs: Some(retry_after_secs),
                ..error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "registry_busy",
                    "the registry is busy with another write (an import?) or throttled; retry shortly",
                )
            },
            FleetError::Invalid { code, message } => bad_request(code, message),
            FleetError::Conflict { code, message } => error(StatusCode::CONFLICT, code, message),
            FleetError::NotSupported { code, message } => {
                error(StatusCode::NOT_FOUND, code, message)
            }
            // The backend logged the detail; the caller learns only that it failed.
            FleetError::Internal(_) => internal(),
        }
    }
}

/// The fallback of `/admin/api`: 404 `unknown_route`.
pub(super) async fn unknown_route() -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        "unknown_route",
        format!("no such admin API route: GET {API_PREFIX}/openapi.json lists them"),
    )
}

/// A known route asked with another method: 405 `method_not_allowed`.
pub(super) async fn method_not_allowed() -> ApiError {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route does not take that method: GET {API_PREFIX}/openapi.json lists the methods of every route"),
    )
}
