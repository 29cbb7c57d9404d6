//! Who may call the admin API: the bearer check that runs before every route under
//! `/admin/api` (the admin token, read from its file on every request, or a Cognito ID
//! token judged by [`JwtValidator`](crate::admin_auth::JwtValidator)), and its refusals:
//! 401 with `WWW-Authenticate`, or 503 when the identity provider's keys cannot be
//! fetched. What passes, and what is refused, is answered `Cache-Control: no-store`.

use std::io;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::{error, internal};
use super::{AdminContext, MIN_ADMIN_TOKEN_LEN};
use crate::admin_auth::{looks_like_jwt, JwtError};
use crate::api::ApiError;

impl AdminContext {
    /// Checks the `Authorization` header: a JWT against the [`JwtValidator`](crate::admin_auth::JwtValidator) when one is
    /// configured, otherwise against the token file.
    pub(super) async fn authenticate(&self, headers: &HeaderMap) -> Result<(), Response> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            let how = if self.token_file.is_some() {
                "send the admin token as `Authorization: Bearer TOKEN` (`provisioner admin token` prints it on the server)"
            } else {
                "send the ID token of the dashboard's Cognito sign-in as `Authorization: Bearer TOKEN`"
            };
            return Err(unauthorized(how, false));
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let Some(presented) = presented else {
            return Err(unauthorized(
                "the Authorization header must use the Bearer scheme: `Authorization: Bearer TOKEN`",
                false,
            ));
        };
        if let Some(validator) = &self.jwt {
            if looks_like_jwt(presented) {
                return match validator.validate(presented).await {
                    Ok(user) => {
                        tracing::debug!(subject = %user.subject, "admin API request by a Cognito user");
                        Ok(())
                    }
                    Err(refusal) => Err(jwt_refused(&refusal)),
                };
            }
        }
        let Some(token_file) = &self.token_file else {
            return Err(unauthorized(
                "this deployment signs admins in with Cognito: send the ID token of the dashboard's sign-in as the bearer",
                true,
            ));
        };
        if token_matches(token_file, presented).await? {
            return Ok(());
        }
        tracing::warn!("admin API request with a wrong bearer token refused");
        Err(unauthorized(
            "the bearer token is not the admin token (it may have been rotated): `provisioner admin token` prints the current one",
            true,
        ))
    }
}

/// The middleware in front of every admin API route: the bearer check, then the route.
pub(super) async fn require_admin_token(
    State(context): State<Arc<AdminContext>>,
    request: Request,
    next: Next,
) -> Response {
    if let Err(refusal) = context.authenticate(request.headers()).await {
        return no_store(refusal);
    }
    no_store(next.run(request).await)
}

/// Answers about the registry are not to be kept by caches.
pub(super) fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// 401 with `WWW-Authenticate` (RFC 6750: `error="invalid_token"` when a token was
/// presented and is wrong).
fn unauthorized(message: &str, invalid_token: bool) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    let challenge = if invalid_token {
        r#"Bearer realm="provisioner-admin", error="invalid_token""#
    } else {
        r#"Bearer realm="provisioner-admin""#
    };
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    response
}

/// A refused JWT: 401 `invalid_token` with the stable `reason` beside the message, or
/// 503 `identity_provider_unavailable` when the issuer's keys could not be fetched (the
/// token was not judged). Neither carries the token.
fn jwt_refused(refusal: &JwtError) -> Response {
    if let JwtError::KeySetUnavailable { retry_after_secs } = refusal {
        return ApiError {
            retry_after_secs: Some(*retry_after_secs),
            ..error(
                StatusCode::SERVICE_UNAVAILABLE,
                "identity_provider_unavailable",
                refusal.to_string(),
            )
        }
        .into_response();
    }
    tracing::warn!(
        reason = refusal.reason(),
        "admin API request with a refused JWT"
    );
    let body = Json(json!({
        "error": "invalid_token",
        "reason": refusal.reason(),
        "message": refusal.to_string(),
    }));
    let mut response = (StatusCode::UNAUTHORIZED, body).into_response();
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer realm="provisioner-admin", error="invalid_token""#),
    );
    response
}

/// Whether `presented` is the token in `path`, read now: SHA-256 digests compared in
/// constant time, so neither the token nor its length shows. No file, or one shorter
/// than [`MIN_ADMIN_TOKEN_LEN`], matches nothing.
async fn token_matches(path: &std::path::Path, presented: &str) -> Result<bool, Response> {
    let stored = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the admin token file");
            return Err(internal().into_response());
        }
    };
    let stored = stored.trim_ascii();
    let matches: bool = Sha256::digest(presented.as_bytes())
        .ct_eq(&Sha256::digest(stored))
        .into();
    // A token file emptied or cut short (by hand, or a crash under an older build)
    // matches nothing rather than a guessable token.
    Ok(stored.len() >= MIN_ADMIN_TOKEN_LEN && matches)
}
