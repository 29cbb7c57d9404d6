//! The admin API over HTTP: devices, certificates, the CA, the audit log, issuance
//! statistics and (on AWS) the regional registrations, under [`API_PREFIX`]
//! (`/admin/api`), for the dashboard and for scripts. [`router_with_dashboard`] also
//! serves the built dashboard at `/` (without one, `GET /` answers a placeholder page
//! that says how to build it) and its sign-in settings at [`SIGN_IN_PATH`].
//!
//! The routes are the same whatever holds the fleet: they speak to a
//! [`FleetAdmin`], locally
//! `LocalFleet` (`provisioner-store-local`) (SQLite and the data directory), on
//! AWS `AwsFleet` (DynamoDB, ACM Private CA, IoT Core). This module owns the HTTP side:
//! queries, cursors, views, and the one mapping of [`FleetError`] to answers.
//!
//! Every route under `/admin/api`, the OpenAPI document and unknown paths included,
//! requires `Authorization: Bearer TOKEN`: locally the token of
//! `DataDir::admin_token` (`provisioner-store-local`), read on every
//! request so `provisioner admin token --rotate` takes effect at once. A refusal is 401
//! `unauthorized` with `WWW-Authenticate: Bearer`. With [`AdminContext::with_jwt`] (the
//! AWS deployment), a bearer value shaped like a JWT is judged as a Cognito ID token
//! instead ([`crate::admin_auth`]); a refused one is 401 `invalid_token` with a stable
//! `reason` (`expired`, `wrong_issuer`, ...).
//!
//! Errors leave through [`ApiError`], like the device API's: a status and a
//! `{error, message}` body with a stable code. The one richer answer is a refused
//! import: 422 `{error, message, summary}`, so the caller sees every refused row.
//!
//! Lists are pages `{items, nextCursor}`: `limit` (default [`DEFAULT_PAGE_SIZE`], at most
//! [`MAX_PAGE_SIZE`]), and `cursor`, the `nextCursor` of the previous page (null on the
//! last page). A cursor wraps the backend's key of the next page; it stays valid while
//! rows are added.

use std::io;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY,
    WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use provisioner_core::{
    CertificateRecord, CertificateStatus, Clock, ManifestFormat, RevocationReason, SystemClock,
    UnixTime,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::admin_auth::{JwtError, JwtValidator};
use crate::api::{rfc3339, ApiError, PEM_MEDIA_TYPE};
use provisioner_app::fleet::{
    AuditQuery, CertificateQuery, DeviceQuery, DeviceRecord, FleetAdmin, FleetError,
    IssuingCaRecord, Listed, LoggedEvent, ManifestUpload, RegistrationRecord, RotationRequest,
    RotationStatus,
};
use provisioner_app::import::{ImportOptions, ImportSummary};

mod device_disable;

/// Where the admin API is mounted.
pub const API_PREFIX: &str = "/admin/api";

/// Where the dashboard reads how to sign in (public: it is read before signing in).
pub const SIGN_IN_PATH: &str = "/admin/sign-in.json";

/// Items per page when `limit` is not given.
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// The largest `limit` accepted.
pub const MAX_PAGE_SIZE: usize = 500;

/// The largest manifest `POST devices/import` accepts; bigger ones go through
/// `provisioner import`, which streams them.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024 * 1024;

/// Certificates listed in a device's details (newest first); the rest through
/// `GET certificates?device=ID`.
pub const DEVICE_CERTIFICATES: usize = 100;

/// Audit events listed in a device's details (newest first).
pub const DEVICE_AUDIT_EVENTS: usize = 50;

/// Hours `GET stats/issuance` covers when `hours` is not given, and at most.
pub const DEFAULT_STATS_HOURS: u32 = 24;
/// The largest `hours` accepted (a week).
pub const MAX_STATS_HOURS: u32 = 168;

/// Unfinished registrations retried by one `POST registrations/retry`.
pub const RETRY_REGISTRATIONS_LIMIT: usize = 200;

/// The Content-Security-Policy of the dashboard's pages: its own scripts and WebAssembly
/// only, no inline code, no framing, no forms posting elsewhere.
pub const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

/// The command that builds the dashboard, named by the placeholder page.
pub const DASHBOARD_BUILD_COMMAND: &str = "bash scripts/build-ui.sh";

/// Where the dashboard's files (script, WebAssembly, styles) are served; its page is at
/// `/`. Trunk writes these URLs into the page: `public_url` in `Trunk.toml`.
pub const DASHBOARD_ASSET_PREFIX: &str = "/ui/";

const SECONDS_PER_HOUR: i64 = 3600;

/// Sign-in through an OpenID Connect provider's hosted page (Cognito's hosted UI): the
/// dashboard runs the authorization-code flow with PKCE against it and sends the ID
/// token it gets as the bearer, which [`AdminContext::with_jwt`] validates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostedSignIn {
    /// The authorization endpoint (`DOMAIN/oauth2/authorize` for Cognito).
    pub authorize_url: String,
    /// The token endpoint (`DOMAIN/oauth2/token`).
    pub token_url: String,
    /// Where signing out ends the provider's session (`DOMAIN/logout`).
    pub logout_url: String,
    /// The app client (public, no secret), also the ID token's audience.
    pub client_id: String,
    /// The scopes asked for.
    pub scope: String,
}

impl HostedSignIn {
    /// Cognito's hosted UI at `domain` (`https://PREFIX.auth.REGION.amazoncognito.com`,
    /// or a custom domain) for the app client `client_id`.
    ///
    /// # Errors
    /// A domain that is not an `http(s)://` origin (plain `http` only for loopback).
    pub fn cognito(domain: &str, client_id: &str) -> Result<Self, String> {
        let domain = domain.trim_end_matches('/');
        let origin_ok = match domain.split_once("://") {
            Some(("https", host)) => !host.is_empty() && !host.contains('/'),
            Some(("http", host)) => host.starts_with("127.0.0.1") || host.starts_with("localhost"),
            _ => false,
        };
        if !origin_ok || client_id.is_empty() {
            return Err(format!(
                "the sign-in domain {domain:?} must be an https:// origin without a path (http:// only on 127.0.0.1), with a client id"
            ));
        }
        Ok(Self {
            authorize_url: format!("{domain}/oauth2/authorize"),
            token_url: format!("{domain}/oauth2/token"),
            logout_url: format!("{domain}/logout"),
            client_id: client_id.to_owned(),
            scope: "openid email profile".into(),
        })
    }

    /// The origin the dashboard fetches tokens from (for its `connect-src`).
    fn token_origin(&self) -> &str {
        let after_scheme = self.token_url.find("://").map_or(0, |i| i + 3);
        let end = self.token_url[after_scheme..]
            .find('/')
            .map_or(self.token_url.len(), |i| after_scheme + i);
        &self.token_url[..end]
    }
}

/// What the admin routes share: the fleet, the clock, and how callers sign in.
pub struct AdminContext {
    fleet: Arc<dyn FleetAdmin>,
    clock: Arc<dyn Clock>,
    /// The file holding the admin token, when one is accepted.
    token_file: Option<PathBuf>,
    /// Cognito ID tokens accepted, when configured.
    jwt: Option<JwtValidator>,
    sign_in: Option<HostedSignIn>,
}

impl std::fmt::Debug for AdminContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminContext")
            .field("backend", &self.fleet.backend())
            .field("sign_in", &self.sign_in)
            .finish_non_exhaustive()
    }
}

impl AdminContext {
    /// The admin routes over `fleet`, on the system clock.
    pub fn new(fleet: Arc<dyn FleetAdmin>) -> Self {
        Self {
            fleet,
            clock: Arc::new(SystemClock),
            token_file: None,
            jwt: None,
            sign_in: None,
        }
    }

    /// The same, accepting the admin token stored in `path`
    /// (`DataDir::admin_token_path` in `provisioner-store-local`).
    /// The file is read on every request, so a rotated token counts at once; without the
    /// file no token matches.
    #[must_use]
    pub fn with_token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.token_file = Some(path.into());
        self
    }

    /// The same on another clock (tests move time).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The same, also accepting Cognito ID tokens that `validator` validates (the
    /// AWS deployment's sign-in). A bearer value shaped like a JWT
    /// ([`looks_like_jwt`](crate::admin_auth::looks_like_jwt)) is then judged only as a
    /// JWT; any other value is still compared with the token file, when there is one
    /// (whoever can read it already has the data directory).
    #[must_use]
    pub fn with_jwt(mut self, validator: JwtValidator) -> Self {
        self.jwt = Some(validator);
        self
    }

    /// The same, telling the dashboard to offer sign-in through `sign_in` (published at
    /// [`SIGN_IN_PATH`]; the dashboard's CSP then allows its token endpoint).
    #[must_use]
    pub fn with_sign_in(mut self, sign_in: HostedSignIn) -> Self {
        self.sign_in = Some(sign_in);
        self
    }

    /// Checks the `Authorization` header: a JWT against the [`JwtValidator`] when one is
    /// configured, otherwise against the token file.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<(), Response> {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
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
            if crate::admin_auth::looks_like_jwt(presented) {
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

    fn now(&self) -> UnixTime {
        self.clock.now()
    }
}

pub use provisioner_app::admin_token::MIN_ADMIN_TOKEN_LEN;

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

/// The admin router: `GET /` (the dashboard's placeholder page) and every route under
/// [`API_PREFIX`], all behind the bearer token. Merge it with the device API's router.
pub fn router(context: Arc<AdminContext>) -> Router {
    router_with_dashboard(context, None)
}

/// The admin router with the built dashboard at `/` (its files under
/// [`DASHBOARD_ASSET_PREFIX`]), or, with `None`, the placeholder page that says how to
/// build it.
pub fn router_with_dashboard(
    context: Arc<AdminContext>,
    dashboard: Option<Arc<Dashboard>>,
) -> Router {
    let authenticated = middleware::from_fn_with_state(context.clone(), require_admin_token);
    let dashboard = match (&context.sign_in, dashboard) {
        (Some(sign_in), Some(dashboard)) => Some(Arc::new(
            dashboard.allowing_connections_to(sign_in.token_origin()),
        )),
        (_, dashboard) => dashboard,
    };
    let sign_in = json!({
        "token": context.token_file.is_some(),
        "oidc": context.sign_in,
    });
    let api = Router::new()
        .route("/devices", get(list_devices))
        // A static segment wins over `{device_id}`: a device named `import` is still
        // readable.
        .route(
            "/devices/import",
            post(import_devices)
                .get(device_named_import)
                .layer(DefaultBodyLimit::max(MAX_MANIFEST_BYTES)),
        )
        .route("/devices/{device_id}", get(device))
        .route(
            "/devices/{device_id}/disable",
            post(device_disable::disable_device),
        )
        .route("/devices/{device_id}/enable", post(enable_device))
        .route("/certificates", get(list_certificates))
        .route("/certificates/{certificate_id}", get(certificate))
        .route(
            "/certificates/{certificate_id}/revoke",
            post(revoke_certificate),
        )
        .route("/ca", get(ca))
        .route("/ca/crl", get(ca_crl))
        .route("/ca/rotate", post(rotate_ca))
        .route("/ca/rotation", get(rotation))
        .route("/registrations", get(list_registrations))
        .route("/registrations/retry", post(retry_registrations))
        .route("/audit", get(audit))
        .route("/stats/issuance", get(issuance_stats))
        .route("/openapi.json", get(openapi))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(authenticated.clone())
        .with_state(context);
    dashboard_routes(dashboard)
        .route(
            SIGN_IN_PATH,
            get(move || {
                let sign_in = sign_in.clone();
                async move { no_store(Json(sign_in).into_response()) }
            }),
        )
        // Nesting covers the prefix and what follows a slash, not the bare slash.
        .route(
            &format!("{API_PREFIX}/"),
            any(unknown_route).layer(authenticated),
        )
        .nest(API_PREFIX, api)
}

// ---------------------------------------------------------------------------------
// Authentication, errors, pages
// ---------------------------------------------------------------------------------

async fn require_admin_token(
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
fn no_store(mut response: Response) -> Response {
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

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        code,
        message: message.into(),
        retry_after_secs: None,
    }
}

fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
    error(StatusCode::BAD_REQUEST, code, message)
}

fn internal() -> ApiError {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "the service failed; the error is logged",
    )
}

fn unknown_device(device_id: &str) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        "unknown_device",
        format!("no device {device_id:?} in the registry: import its manufacturer manifest with POST {API_PREFIX}/devices/import"),
    )
}

fn unknown_certificate(certificate_id: &str) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        "unknown_certificate",
        format!("no certificate {certificate_id:?} in the registry: GET {API_PREFIX}/certificates lists the certificate ids"),
    )
}

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

async fn unknown_route() -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        "unknown_route",
        format!("no such admin API route: GET {API_PREFIX}/openapi.json lists them"),
    )
}

async fn method_not_allowed() -> ApiError {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route does not take that method: GET {API_PREFIX}/openapi.json lists the methods of every route"),
    )
}

/// A query string that does not deserialise (an unknown parameter, say).
fn query<T>(parsed: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
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

/// A path segment that does not decode (percent-encoded bytes that are not UTF-8).
fn path(parsed: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    parsed
        .map(|Path(segment)| segment)
        .map_err(|e| bad_request("invalid_path", e.body_text()))
}

/// A body that could not be read (too large, or cut off).
fn body(read: Result<Bytes, BytesRejection>, what: &str, limit: usize) -> Result<Bytes, ApiError> {
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

fn page_size(limit: Option<&str>) -> Result<usize, ApiError> {
    let Some(limit) = limit else {
        return Ok(DEFAULT_PAGE_SIZE);
    };
    match limit.parse::<usize>() {
        Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        _ => Err(bad_request(
            "invalid_limit",
            format!("limit={limit:?} is not a number from 1 to {MAX_PAGE_SIZE}"),
        )),
    }
}

fn flag(name: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0") => Ok(false),
        Some("" | "true" | "1") => Ok(true),
        Some(other) => Err(bad_request(
            "invalid_query",
            format!("{name}={other:?} is not a boolean: use {name}=true or {name}=false"),
        )),
    }
}

/// The kind of list a cursor belongs to, so one from another list is refused.
#[derive(Clone, Copy)]
enum CursorKind {
    Devices,
    Certificates,
    Audit,
    Registrations,
}

impl CursorKind {
    fn tag(self) -> &'static str {
        match self {
            Self::Devices => "d",
            Self::Certificates => "c",
            Self::Audit => "a",
            Self::Registrations => "r",
        }
    }
}

fn encode_cursor(kind: CursorKind, key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{key}", kind.tag()))
}

/// The key inside a cursor of `kind`.
fn decode_cursor(kind: CursorKind, cursor: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor.trim_end_matches('='))
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            text.strip_prefix(kind.tag())
                .and_then(|rest| rest.strip_prefix(':'))
                .map(str::to_owned)
        })
        .ok_or_else(invalid_cursor)
}

fn invalid_cursor() -> ApiError {
    bad_request(
        "invalid_cursor",
        "the cursor is not one this list returned: pass the nextCursor of the previous page unchanged, or omit cursor to start at the beginning",
    )
}

/// One page of a list.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

/// The API's page of a backend's [`Listed`] page.
fn page<R, T>(listed: Listed<R>, view: impl Fn(R) -> T, kind: CursorKind) -> Page<T> {
    Page {
        items: listed.items.into_iter().map(view).collect(),
        next_cursor: listed.next.map(|key| encode_cursor(kind, &key)),
    }
}

// ---------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceView {
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CertificateView {
    certificate_id: String,
    device_id: String,
    serial: String,
    issuer: String,
    public_key: String,
    issued_at: String,
    not_before: String,
    not_after: String,
    status: &'static str,
    revoked_at: Option<String>,
    revocation_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_pem: Option<String>,
}

/// The stored spelling of a certificate status.
fn status_name(status: CertificateStatus) -> &'static str {
    match status {
        CertificateStatus::Active => "ACTIVE",
        CertificateStatus::Inactive => "INACTIVE",
        CertificateStatus::Revoked => "REVOKED",
    }
}

impl CertificateView {
    fn new(c: CertificateRecord, with_pem: bool) -> Self {
        Self {
            certificate_id: c.certificate_id,
            device_id: c.device_id,
            serial: c.serial,
            issuer: c.issuer,
            public_key: c.public_key.canonical(),
            issued_at: rfc3339(c.issued_at),
            not_before: rfc3339(c.not_before),
            not_after: rfc3339(c.not_after),
            status: status_name(c.status),
            revoked_at: c.revoked.map(|(at, _)| rfc3339(at)),
            revocation_reason: c.revoked.map(|(_, reason)| reason.name()),
            certificate_pem: with_pem.then_some(c.certificate_pem),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AuditView {
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RegistrationView {
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

// ---------------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceListQuery {
    prefix: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

async fn list_devices(
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceDetails {
    #[serde(flatten)]
    device: DeviceView,
    certificates: Vec<CertificateView>,
    recent_audit: Vec<AuditView>,
}

async fn device(
    State(context): State<Arc<AdminContext>>,
    device_id: Result<Path<String>, PathRejection>,
) -> Result<Json<DeviceDetails>, ApiError> {
    device_details(&context, path(device_id)?).await
}

async fn device_named_import(
    State(context): State<Arc<AdminContext>>,
) -> Result<Json<DeviceDetails>, ApiError> {
    device_details(&context, "import".into()).await
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ImportQuery {
    format: Option<String>,
    dry_run: Option<String>,
    replace: Option<String>,
    name: Option<String>,
}

/// The name recorded as `sourceManifest` when the caller gives none.
const DEFAULT_MANIFEST_NAME: &str = "admin-api";

async fn import_devices(
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

async fn enable_device(
    State(context): State<Arc<AdminContext>>,
    device_id: Result<Path<String>, PathRejection>,
) -> Result<Json<DeviceView>, ApiError> {
    let device_id = path(device_id)?;
    let record = context.fleet.set_device_enabled(&device_id, true).await?;
    Ok(Json(record.into()))
}

// ---------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateListQuery {
    status: Option<String>,
    device: Option<String>,
    issuer: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

async fn list_certificates(
    State(context): State<Arc<AdminContext>>,
    parsed: Result<Query<CertificateListQuery>, QueryRejection>,
) -> Result<Json<Page<CertificateView>>, ApiError> {
    let q = query(parsed)?;
    let limit = page_size(q.limit.as_deref())?;
    let status = match q.status.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("") => None,
        Some("ACTIVE") => Some(CertificateStatus::Active),
        Some("INACTIVE") => Some(CertificateStatus::Inactive),
        Some("REVOKED") => Some(CertificateStatus::Revoked),
        Some(_) => {
            return Err(bad_request(
                "invalid_status",
                format!(
                    "status={:?} is not a certificate status: use active, inactive or revoked",
                    q.status.unwrap_or_default()
                ),
            ))
        }
    };
    let after = q
        .cursor
        .map(|c| decode_cursor(CursorKind::Certificates, &c))
        .transpose()?;
    let listed = context
        .fleet
        .certificates(CertificateQuery {
            device_id: q.device.filter(|d| !d.is_empty()),
            status,
            issuer: q.issuer.filter(|i| !i.is_empty()),
            after,
            limit,
        })
        .await?;
    Ok(Json(page(
        listed,
        |c| CertificateView::new(c, false),
        CursorKind::Certificates,
    )))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CertificateDetails {
    #[serde(flatten)]
    certificate: CertificateView,
    registrations: Vec<RegistrationView>,
}

async fn certificate(
    State(context): State<Arc<AdminContext>>,
    certificate_id: Result<Path<String>, PathRejection>,
) -> Result<Json<CertificateDetails>, ApiError> {
    let certificate_id = path(certificate_id)?;
    let record = context
        .fleet
        .certificate(&certificate_id)
        .await?
        .ok_or_else(|| unknown_certificate(&certificate_id))?;
    let registrations = context.fleet.registrations_of(&certificate_id).await?;
    Ok(Json(CertificateDetails {
        certificate: CertificateView::new(record, true),
        registrations: registrations
            .into_iter()
            .map(RegistrationView::from)
            .collect(),
    }))
}

#[derive(Deserialize)]
struct RevokeBody {
    reason: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RevokedView {
    certificate: CertificateView,
    already_revoked: bool,
    /// The revocation reached everything beyond the registry (the CRLs locally; ACM
    /// Private CA and IoT Core on AWS).
    propagated: bool,
    /// Locally: the CRLs were written again (`propagated`); always false on AWS, where
    /// ACM Private CA publishes the CRL itself.
    crl_regenerated: bool,
}

fn reason_names() -> String {
    RevocationReason::ALL
        .iter()
        .map(|r| r.name())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn revoke_certificate(
    State(context): State<Arc<AdminContext>>,
    certificate_id: Result<Path<String>, PathRejection>,
    read: Result<Bytes, BytesRejection>,
) -> Result<Json<RevokedView>, ApiError> {
    let certificate_id = path(certificate_id)?;
    let bytes = body(read, "body", 2 * 1024 * 1024)?;
    let no_reason = || {
        bad_request(
            "invalid_reason",
            format!(
                "send JSON {{\"reason\": NAME}} with an RFC 5280 reason: {}",
                reason_names()
            ),
        )
    };
    let parsed: RevokeBody = serde_json::from_slice(&bytes).map_err(|_| no_reason())?;
    let name = parsed.reason.ok_or_else(no_reason)?;
    let reason = RevocationReason::from_name(&name).ok_or_else(|| {
        bad_request(
            "invalid_reason",
            format!(
                "{name:?} is not an RFC 5280 revocation reason; use one of: {}",
                reason_names()
            ),
        )
    })?;
    let revoked = context
        .fleet
        .revoke(&certificate_id, reason, context.now())
        .await?;
    Ok(Json(RevokedView {
        certificate: CertificateView::new(revoked.certificate, false),
        already_revoked: revoked.already_revoked,
        propagated: revoked.propagated,
        crl_regenerated: revoked.crl_regenerated,
    }))
}

// ---------------------------------------------------------------------------------
// The CA
// ---------------------------------------------------------------------------------

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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CaOverviewView {
    backend: &'static str,
    current: Option<CaView>,
    previous: Vec<CaView>,
    pending_csr: Option<String>,
    can_create_next_ca: bool,
    /// The same as `canCreateNextCa` (the name of the first API version).
    root_key_local: bool,
    crls: Vec<crate::admin_crls::CrlView>,
}

async fn ca(State(context): State<Arc<AdminContext>>) -> Result<Json<CaOverviewView>, ApiError> {
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

async fn ca_crl(State(context): State<Arc<AdminContext>>) -> Result<Response, ApiError> {
    let crl = context.fleet.crl(context.now()).await?;
    Ok(([(CONTENT_TYPE, PEM_MEDIA_TYPE)], crl.pem).into_response())
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RotationView {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    to: Option<String>,
}

async fn rotate_ca(
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

async fn rotation(
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

// ---------------------------------------------------------------------------------
// Regional registrations (AWS)
// ---------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistrationListQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

async fn list_registrations(
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

async fn retry_registrations(
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

// ---------------------------------------------------------------------------------
// Audit and statistics
// ---------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditListQuery {
    device: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

async fn audit(
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    hours: Option<String>,
}

#[derive(Debug, Serialize)]
struct HourView {
    hour: String,
    allow: u64,
    deny: u64,
}

async fn issuance_stats(
    State(context): State<Arc<AdminContext>>,
    parsed: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Json<Vec<HourView>>, ApiError> {
    let q = query(parsed)?;
    let hours = match q.hours.as_deref() {
        None => DEFAULT_STATS_HOURS,
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=MAX_STATS_HOURS).contains(&n) => n,
            _ => {
                return Err(bad_request(
                    "invalid_hours",
                    format!("hours={text:?} is not a number from 1 to {MAX_STATS_HOURS}"),
                ))
            }
        },
    };
    // The last bucket is the current (partial) hour.
    let now = context.now();
    let until = now - now.rem_euclid(SECONDS_PER_HOUR) + SECONDS_PER_HOUR;
    let since = until - i64::from(hours) * SECONDS_PER_HOUR;
    let counted = context.fleet.decisions_per_hour(since, until).await?;
    let buckets = (0..i64::from(hours))
        .map(|n| {
            let hour = since + n * SECONDS_PER_HOUR;
            let found = counted.iter().find(|c| c.hour == hour);
            HourView {
                hour: rfc3339(hour),
                allow: found.map_or(0, |c| c.allow),
                deny: found.map_or(0, |c| c.deny),
            }
        })
        .collect();
    Ok(Json(buckets))
}

// ---------------------------------------------------------------------------------
// The dashboard (or its placeholder) and the OpenAPI document
// ---------------------------------------------------------------------------------

/// The built dashboard: Trunk's output directory (`admin-ui/dist`), read into memory
/// when the server starts, so a rebuild meanwhile never serves a page whose files are
/// gone (restart `serve` to serve a new build).
#[derive(Debug, Clone)]
pub struct Dashboard {
    index: Bytes,
    csp: HeaderValue,
    /// Path under [`DASHBOARD_ASSET_PREFIX`] → (content type, bytes).
    files: std::collections::HashMap<String, (&'static str, Bytes)>,
}

impl Dashboard {
    /// Reads the dashboard built into `dir`: `index.html`, served at `/`, and every file
    /// beside it, served under [`DASHBOARD_ASSET_PREFIX`] (hidden ones, such as Trunk's
    /// `.stage`, excepted).
    ///
    /// Returns `Ok(None)` when `dir` holds no `index.html` (not built).
    ///
    /// # Errors
    /// A file that exists but cannot be read, or a page whose inline scripts cannot be
    /// allowed by hash (not UTF-8).
    pub fn load(dir: &std::path::Path) -> io::Result<Option<Self>> {
        let index = match std::fs::read(dir.join("index.html")) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let page = std::str::from_utf8(&index)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "index.html is not UTF-8"))?;
        let csp = HeaderValue::from_str(&dashboard_csp(page))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut files = std::collections::HashMap::new();
        let mut pending = vec![(dir.to_path_buf(), String::new())];
        while let Some((folder, prefix)) = pending.pop() {
            for entry in std::fs::read_dir(&folder)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                // The page only at `/`, under its policy; nothing half-built.
                if name.starts_with('.') || (prefix.is_empty() && name == "index.html") {
                    continue;
                }
                let path = format!("{prefix}{name}");
                if entry.file_type()?.is_dir() {
                    pending.push((entry.path(), format!("{path}/")));
                } else {
                    let bytes = Bytes::from(std::fs::read(entry.path())?);
                    files.insert(path, (dashboard_content_type(&name), bytes));
                }
            }
        }
        Ok(Some(Self {
            index: Bytes::from(index),
            csp,
            files,
        }))
    }

    /// The Content-Security-Policy the page is served with: [`DASHBOARD_CSP`] plus the
    /// SHA-256 of each inline script of the page (Trunk's loader).
    pub fn content_security_policy(&self) -> &str {
        self.csp.to_str().unwrap_or(DASHBOARD_CSP)
    }

    /// How many files are served beside the page.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// The same dashboard whose policy also lets it fetch from `origin` (the sign-in
    /// provider's token endpoint).
    fn allowing_connections_to(&self, origin: &str) -> Self {
        let policy = self.content_security_policy().replacen(
            "connect-src 'self'",
            &format!("connect-src 'self' {origin}"),
            1,
        );
        Self {
            csp: HeaderValue::from_str(&policy).unwrap_or_else(|_| self.csp.clone()),
            ..self.clone()
        }
    }
}

/// [`DASHBOARD_CSP`] with `'sha256-…'` sources for every inline `<script>` of `page`, so
/// exactly those run and no other inline code (no `'unsafe-inline'`).
pub fn dashboard_csp(page: &str) -> String {
    let mut hashes = String::new();
    let mut rest = page;
    while let Some(start) = rest.find("<script") {
        let after = &rest[start..];
        let Some(tag_end) = after.find('>') else {
            break;
        };
        let tag = &after[..tag_end];
        let body_and_rest = &after[tag_end + 1..];
        let Some(close) = body_and_rest.find("</script>") else {
            break;
        };
        if !tag.contains(" src=") {
            let digest = Sha256::digest(&body_and_rest.as_bytes()[..close]);
            hashes.push_str(&format!(
                " 'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            ));
        }
        rest = &body_and_rest[close..];
    }
    DASHBOARD_CSP.replacen(
        "script-src 'self' 'wasm-unsafe-eval'",
        &format!("script-src 'self' 'wasm-unsafe-eval'{hashes}"),
        1,
    )
}

fn dashboard_content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("wasm") => "application/wasm",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `/` (the dashboard or its placeholder) and the dashboard's files.
fn dashboard_routes(dashboard: Option<Arc<Dashboard>>) -> Router {
    match dashboard {
        None => Router::new().route("/", get(dashboard_placeholder)),
        Some(dashboard) => Router::new()
            .route("/", get(dashboard_page))
            .route(
                &format!("{DASHBOARD_ASSET_PREFIX}{{*path}}"),
                get(dashboard_file),
            )
            .with_state(dashboard),
    }
}

/// The headers every page of the dashboard carries.
fn page_headers(response: &mut Response, csp: HeaderValue) {
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, csp);
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

async fn dashboard_page(State(dashboard): State<Arc<Dashboard>>) -> Response {
    let mut response = (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page names the current build's files: always ask again.
            (CACHE_CONTROL, "no-cache"),
        ],
        dashboard.index.clone(),
    )
        .into_response();
    page_headers(&mut response, dashboard.csp.clone());
    response
}

async fn dashboard_file(
    State(dashboard): State<Arc<Dashboard>>,
    Path(path): Path<String>,
) -> Response {
    let Some((content_type, bytes)) = dashboard.files.get(&path) else {
        return (
            StatusCode::NOT_FOUND,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such dashboard file: reload the page (the dashboard may have been rebuilt)\n",
        )
            .into_response();
    };
    (
        [
            (CONTENT_TYPE, *content_type),
            // Trunk puts a content hash in every name: a name never changes content.
            (CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes.clone(),
    )
        .into_response()
}

async fn dashboard_placeholder() -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Provisioner dashboard</title>\n</head>\n<body>\n\
         <h1>The dashboard is not built</h1>\n\
         <p>Build it with <code>{DASHBOARD_BUILD_COMMAND}</code>, then restart \
         <code>provisioner serve</code>.</p>\n\
         <p>The admin API is served at <code>{API_PREFIX}/</code> (bearer token: \
         <code>provisioner admin token</code>); its description is \
         <code>{API_PREFIX}/openapi.json</code>.</p>\n</body>\n</html>\n"
    );
    let mut response = (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        page,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DASHBOARD_CSP),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

/// A reference to a schema of the document's components.
fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// A JSON answer with a schema.
fn answer(description: &str, schema_name: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": schema(schema_name) } }
    })
}

/// An error answer: `{error, message}` with the codes it may carry.
fn refusal(description: &str, codes: &[&str]) -> Value {
    json!({
        "description": format!("{description} (error: {})", codes.join(", ")),
        "content": { "application/json": { "schema": schema("Error") } }
    })
}

/// One operation: summary, parameters, answers; every one may also be 401, and
/// 503 when the registry is busy.
fn operation(id: &str, summary: &str, parameters: Value, mut responses: Value) -> Value {
    if let Some(map) = responses.as_object_mut() {
        map.insert(
            "401".into(),
            json!({ "$ref": "#/components/responses/Unauthorized" }),
        );
        map.insert(
            "503".into(),
            refusal(
                "The registry is busy; retry after Retry-After seconds",
                &["registry_busy"],
            ),
        );
    }
    json!({
        "operationId": id,
        "summary": summary,
        "parameters": parameters,
        "responses": responses,
    })
}

fn query_parameter(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn path_parameter(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
}

/// The OpenAPI 3.1 description of every admin route (served, behind the token, at
/// `GET /admin/api/openapi.json`).
pub fn openapi_document() -> Value {
    let cursor = query_parameter(
        "cursor",
        "The nextCursor of the previous page; omit for the first page.",
        json!({ "type": "string" }),
    );
    let limit = query_parameter(
        "limit",
        &format!("Items per page, 1 to {MAX_PAGE_SIZE}."),
        json!({ "type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE }),
    );
    let device_id = path_parameter("deviceId", "The device id.");
    let certificate_id = path_parameter(
        "certificateId",
        "The certificate id: hex SHA-256 of its DER.",
    );
    let bad_query = |codes: &[&str]| refusal("A parameter is wrong; the message says which", codes);
    let nullable = |t: &str| json!({ "type": [t, "null"] });
    let string = json!({ "type": "string" });
    let time = json!({ "type": "string", "format": "date-time" });
    let nullable_time = json!({ "type": ["string", "null"], "format": "date-time" });
    let page_of = |item: &str| {
        json!({
            "type": "object",
            "required": ["items", "nextCursor"],
            "properties": {
                "items": { "type": "array", "items": schema(item) },
                "nextCursor": { "type": ["string", "null"], "description": "Pass as cursor for the next page; null on the last page." }
            }
        })
    };

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Provisioner admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Devices, certificates, the issuing CA, the audit log, issuance statistics and (on AWS) regional registrations of a provisioner. Every route needs `Authorization: Bearer TOKEN`: the admin token locally (`provisioner admin token` prints it), a Cognito ID token on AWS. Errors are `{error, message}`: a stable code and what to fix."
        },
        "servers": [{ "url": API_PREFIX }],
        "security": [{ "adminToken": [] }],
        "paths": {
            "/devices": { "get": operation("listDevices", "List devices by id",
                json!([
                    query_parameter("prefix", "Only ids starting with this.", string.clone()),
                    query_parameter("status", "Only enabled or disabled devices.", json!({ "type": "string", "enum": ["enabled", "disabled"] })),
                    cursor, limit
                ]),
                json!({
                    "200": answer("A page of devices", "DevicePage"),
                    "400": bad_query(&["invalid_status", "invalid_cursor", "invalid_limit", "invalid_query"])
                })) },
            "/devices/import": { "post": {
                "operationId": "importDevices",
                "summary": "Import a manufacturer manifest (CSV or JSON lines), all or nothing",
                "parameters": [
                    query_parameter("format", "csv or jsonl; detected from the first character when omitted. Microchip manifests are refused: use `provisioner import --manifest-signer`.", json!({ "type": "string", "enum": ["csv", "jsonl"] })),
                    query_parameter("dryRun", "Check and count, write nothing.", json!({ "type": "boolean", "default": false })),
                    query_parameter("replace", "Replace the key of a known device listed with another key.", json!({ "type": "boolean", "default": false })),
                    query_parameter("name", "The manifest's name, recorded as each device's sourceManifest.", json!({ "type": "string", "default": DEFAULT_MANIFEST_NAME }))
                ],
                "requestBody": {
                    "required": true,
                    "description": format!("The manifest file, at most {MAX_MANIFEST_BYTES} bytes."),
                    "content": {
                        "text/csv": { "schema": { "type": "string" } },
                        "application/x-ndjson": { "schema": { "type": "string" } },
                        "application/octet-stream": { "schema": { "type": "string" } }
                    }
                },
                "responses": {
                    "200": answer("Imported (or, with dryRun, would import)", "ImportSummary"),
                    "400": bad_query(&["empty_manifest", "invalid_format", "unsupported_manifest_format", "invalid_query", "invalid_body"]),
                    "401": { "$ref": "#/components/responses/Unauthorized" },
                    "413": refusal("The manifest is too large: use `provisioner import`", &["body_too_large"]),
                    "422": answer("An invalid row or a refused key conflict: nothing written (error: import_refused)", "ImportRefused"),
                    "503": refusal("The registry is busy; retry after Retry-After seconds", &["registry_busy"])
                }
            } },
            "/devices/{deviceId}": { "get": operation("getDevice", "A device, its certificates (newest 100) and recent decisions (newest 50)",
                json!([device_id.clone()]),
                json!({
                    "200": answer("The device", "DeviceDetails"),
                    "404": refusal("No such device", &["unknown_device"])
                })) },
            "/devices/{deviceId}/disable": { "post": {
                "operationId": "disableDevice",
                "summary": "Disable a device: it is refused certificates; with {\"revoke\": true}, also revoke each of its ACTIVE certificates",
                "parameters": [device_id.clone()],
                "requestBody": {
                    "required": false,
                    "description": "Empty: disable only. {\"revoke\": true}: also revoke every ACTIVE certificate of the device, as POST certificates/{certificateId}/revoke does, with reason (default keyCompromise).",
                    "content": { "application/json": { "schema": schema("DisableRequest") } }
                },
                "responses": {
                    "200": answer("The device, disabled, and the certificates revoked", "DisabledDevice"),
                    "400": refusal("The body is not {\"revoke\": BOOLEAN, \"reason\": NAME}", &["invalid_body", "invalid_reason", "invalid_path"]),
                    "401": { "$ref": "#/components/responses/Unauthorized" },
                    "404": refusal("No such device", &["unknown_device"]),
                    "503": refusal("The registry is busy; retry after Retry-After seconds", &["registry_busy"])
                }
            } },
            "/devices/{deviceId}/enable": { "post": operation("enableDevice", "Enable a device",
                json!([device_id]),
                json!({
                    "200": answer("The device, enabled", "Device"),
                    "404": refusal("No such device", &["unknown_device"])
                })) },
            "/certificates": { "get": operation("listCertificates", "List certificates, newest first",
                json!([
                    query_parameter("status", "Only certificates in this status (any case).", json!({ "type": "string", "enum": ["active", "inactive", "revoked", "ACTIVE", "INACTIVE", "REVOKED"] })),
                    query_parameter("device", "Only this device's.", string.clone()),
                    query_parameter("issuer", "Only those issued by this CA id.", string.clone()),
                    cursor, limit
                ]),
                json!({
                    "200": answer("A page of certificates", "CertificatePage"),
                    "400": bad_query(&["invalid_status", "invalid_cursor", "invalid_limit", "invalid_query"])
                })) },
            "/certificates/{certificateId}": { "get": operation("getCertificate", "A certificate, with its PEM",
                json!([certificate_id.clone()]),
                json!({
                    "200": answer("The certificate", "CertificateDetails"),
                    "404": refusal("No such certificate", &["unknown_certificate"])
                })) },
            "/certificates/{certificateId}/revoke": { "post": {
                "operationId": "revokeCertificate",
                "summary": "Revoke a certificate and regenerate the CRLs; revoking again changes nothing",
                "parameters": [certificate_id],
                "requestBody": {
                    "required": true,
                    "content": { "application/json": { "schema": {
                        "type": "object",
                        "required": ["reason"],
                        "properties": { "reason": { "type": "string", "enum": RevocationReason::ALL.iter().map(|r| r.name()).collect::<Vec<_>>() } }
                    } } }
                },
                "responses": {
                    "200": answer("Revoked", "Revoked"),
                    "400": refusal("The body or the reason is wrong", &["invalid_reason", "invalid_body"]),
                    "401": { "$ref": "#/components/responses/Unauthorized" },
                    "404": refusal("No such certificate", &["unknown_certificate"]),
                    "503": refusal("The registry is busy; retry after Retry-After seconds", &["registry_busy"])
                }
            } },
            "/ca": { "get": operation("getCa", "The current issuing CA with its chain, and the previous ones with their states",
                json!([]),
                json!({
                    "200": answer("The CA", "CaOverview"),
                    "409": refusal("The CA is not set up, or waits for its certificate", &["ca_not_ready"])
                })) },
            "/ca/crl": { "get": operation("getCrl", "The current issuing CA's CRL, regenerated now (locally; on AWS ACM Private CA publishes it)",
                json!([]),
                json!({
                    "200": { "description": "The CRL, PEM", "content": { PEM_MEDIA_TYPE: { "schema": { "type": "string" } } } },
                    "404": refusal("On AWS: ACM Private CA publishes the CRL; the message says where, and what a relying party outside IoT Core must do (fetch it from S3 before its nextUpdate, or ask OCSP)", &["crl_published_by_pca"]),
                    "409": refusal("The CA is not set up", &["ca_not_ready"])
                })) },
            "/ca/rotate": { "post": {
                "operationId": "rotateCa",
                "summary": "Start a CA rotation as a job: locally a new intermediate is created; on AWS the body names the installed ACM Private CA to rotate to. Every certificate of the old CA is then revoked",
                "requestBody": { "required": false, "content": { "application/json": { "schema": schema("RotateRequest") } } },
                "responses": {
                    "202": {
                        "description": "Started; follow it at ca/rotation",
                        "headers": { "Location": { "schema": { "type": "string" } } },
                        "content": { "application/json": { "schema": schema("RotationStarted") } }
                    },
                    "400": refusal("The body is wrong for this backend", &["invalid_body", "missing_target_ca", "unexpected_target_ca", "invalid_ca_arn"]),
                    "401": { "$ref": "#/components/responses/Unauthorized" },
                    "409": refusal("A rotation is running, or this CA cannot rotate here", &["rotation_in_progress", "root_key_not_local", "ca_request_pending", "ca_not_ready"]),
                    "503": refusal("The registry is busy; retry after Retry-After seconds", &["registry_busy"])
                }
            } },
            "/ca/rotation": { "get": operation("getRotation", "The progress of the latest CA rotation",
                json!([]),
                json!({
                    "200": answer("The rotation", "Rotation"),
                    "404": refusal("No rotation has run", &["no_rotation"])
                })) },
            "/registrations": { "get": operation("listRegistrations", "Regional IoT Core registrations not finished yet (PENDING or FAILED), oldest change first; always empty locally",
                json!([cursor.clone(), limit.clone()]),
                json!({
                    "200": answer("A page of registrations", "RegistrationPage"),
                    "400": bad_query(&["invalid_cursor", "invalid_limit", "invalid_query"])
                })) },
            "/registrations/retry": { "post": operation("retryRegistrations", &format!("Retry up to {RETRY_REGISTRATIONS_LIMIT} unfinished regional registrations now (a scheduled job does it every minute on AWS)"),
                json!([]),
                json!({ "200": answer("What was retried", "RetriedRegistrations") })) },
            "/audit": { "get": operation("listAudit", "The audit log of allow and deny decisions, newest first",
                json!([
                    query_parameter("device", "Only this device's decisions.", string.clone()),
                    cursor, limit
                ]),
                json!({
                    "200": answer("A page of decisions", "AuditPage"),
                    "400": bad_query(&["invalid_cursor", "invalid_limit", "invalid_query"])
                })) },
            "/stats/issuance": { "get": operation("issuanceStats", "Allow and deny decisions per hour, oldest first; the last bucket is the current hour",
                json!([query_parameter("hours", &format!("How many hours, 1 to {MAX_STATS_HOURS}."), json!({ "type": "integer", "minimum": 1, "maximum": MAX_STATS_HOURS, "default": DEFAULT_STATS_HOURS }))]),
                json!({
                    "200": { "description": "One bucket per hour", "content": { "application/json": { "schema": { "type": "array", "items": schema("HourBucket") } } } },
                    "400": bad_query(&["invalid_hours", "invalid_query"])
                })) },
            "/openapi.json": { "get": operation("openapi", "This document",
                json!([]),
                json!({ "200": { "description": "The OpenAPI document", "content": { "application/json": { "schema": { "type": "object" } } } } })) }
        },
        "components": {
            "securitySchemes": {
                "adminToken": { "type": "http", "scheme": "bearer", "description": "The admin token: `provisioner admin token` prints it, `--rotate` replaces it." }
            },
            "responses": {
                "Unauthorized": {
                    "description": "No token, another scheme, or a wrong token (error: unauthorized)",
                    "headers": { "WWW-Authenticate": { "schema": { "type": "string" } } },
                    "content": { "application/json": { "schema": schema("Error") } }
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": { "type": "string", "description": "A stable snake_case code." },
                        "message": { "type": "string", "description": "What to fix." }
                    }
                },
                "Device": {
                    "type": "object",
                    "required": ["deviceId", "publicKey", "keyFingerprint", "enabled", "sourceManifest", "importedAt"],
                    "properties": {
                        "deviceId": string.clone(),
                        "publicKey": { "type": "string", "description": "Base64 of the SPKI DER." },
                        "keyFingerprint": { "type": "string", "description": "Hex SHA-256 of the SPKI DER." },
                        "enabled": { "type": "boolean" },
                        "sourceManifest": nullable("string"),
                        "importedAt": time.clone()
                    }
                },
                "DeviceDetails": {
                    "allOf": [schema("Device"), {
                        "type": "object",
                        "required": ["certificates", "recentAudit"],
                        "properties": {
                            "certificates": { "type": "array", "items": schema("Certificate") },
                            "recentAudit": { "type": "array", "items": schema("AuditEvent") }
                        }
                    }]
                },
                "DevicePage": page_of("Device"),
                "DisableRequest": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "revoke": { "type": "boolean", "default": false, "description": "Also revoke each ACTIVE certificate of the device." },
                        "reason": { "type": "string", "enum": RevocationReason::ALL.iter().map(|r| r.name()).collect::<Vec<_>>(), "default": "keyCompromise", "description": "The RFC 5280 reason; only with revoke." }
                    }
                },
                "DisabledDevice": {
                    "allOf": [schema("Device"), {
                        "type": "object",
                        "required": ["revokedCertificates"],
                        "properties": {
                            "revokedCertificates": { "type": "array", "items": schema("Revoked"), "description": "The certificates this call revoked (empty without revoke)." }
                        }
                    }]
                },
                "Certificate": {
                    "type": "object",
                    "required": ["certificateId", "deviceId", "serial", "issuer", "publicKey", "issuedAt", "notBefore", "notAfter", "status", "revokedAt", "revocationReason"],
                    "properties": {
                        "certificateId": string.clone(),
                        "deviceId": string.clone(),
                        "serial": { "type": "string", "description": "Hex, no separators." },
                        "issuer": { "type": "string", "description": "The issuing CA's id." },
                        "publicKey": string.clone(),
                        "issuedAt": time.clone(),
                        "notBefore": time.clone(),
                        "notAfter": time.clone(),
                        "status": { "type": "string", "enum": ["ACTIVE", "INACTIVE", "REVOKED"] },
                        "revokedAt": nullable_time.clone(),
                        "revocationReason": nullable("string")
                    }
                },
                "CertificateDetails": {
                    "allOf": [schema("Certificate"), {
                        "type": "object",
                        "required": ["certificatePem", "registrations"],
                        "properties": {
                            "certificatePem": string.clone(),
                            "registrations": { "type": "array", "items": schema("Registration"), "description": "Its registration with IoT Core in each region (AWS; empty locally)." }
                        }
                    }]
                },
                "CertificatePage": page_of("Certificate"),
                "Revoked": {
                    "type": "object",
                    "required": ["certificate", "alreadyRevoked", "propagated", "crlRegenerated"],
                    "properties": {
                        "certificate": schema("Certificate"),
                        "alreadyRevoked": { "type": "boolean", "description": "Revoked before: nothing changed." },
                        "propagated": { "type": "boolean", "description": "The revocation reached everything beyond the registry: the CRLs locally; ACM Private CA and IoT Core in every region on AWS. False: the revocation stands in the registry; the failure is logged." },
                        "crlRegenerated": { "type": "boolean", "description": "False when the CRLs could not be written now (the revocation stands; GET ca/crl writes them)." }
                    }
                },
                "AuditEvent": {
                    "type": "object",
                    "required": ["id", "at", "deviceId", "decision", "code", "remoteAddr", "fingerprint", "certificateId"],
                    "properties": {
                        "id": { "type": "string", "description": "Opaque; unique in the log." },
                        "at": time.clone(),
                        "deviceId": nullable("string"),
                        "decision": { "type": "string", "enum": ["allow", "deny", "unknown"] },
                        "code": { "type": "string", "description": "The refusal's code (deny), or what was done (allow)." },
                        "remoteAddr": nullable("string"),
                        "fingerprint": nullable("string"),
                        "certificateId": nullable("string")
                    }
                },
                "AuditPage": page_of("AuditEvent"),
                "ImportError": {
                    "type": "object",
                    "required": ["file", "line", "deviceId", "error", "message"],
                    "properties": {
                        "file": string.clone(),
                        "line": { "type": "integer", "description": "1-based; 0 for the whole file." },
                        "deviceId": nullable("string"),
                        "error": string.clone(),
                        "message": string.clone()
                    }
                },
                "ImportSummary": {
                    "type": "object",
                    "required": ["imported", "unchanged", "replaced", "conflicts", "invalid", "errors", "written", "atomic"],
                    "properties": {
                        "imported": { "type": "integer" },
                        "unchanged": { "type": "integer" },
                        "replaced": { "type": "integer" },
                        "conflicts": { "type": "integer" },
                        "invalid": { "type": "integer" },
                        "errors": { "type": "array", "items": schema("ImportError"), "description": "The first 100 refused rows." },
                        "written": { "type": "boolean" },
                        "atomic": { "type": "boolean", "description": "Whether the writes were all or nothing (true for the local registry)." }
                    }
                },
                "ImportRefused": {
                    "type": "object",
                    "required": ["error", "message", "summary"],
                    "properties": {
                        "error": { "type": "string", "const": "import_refused" },
                        "message": string.clone(),
                        "summary": schema("ImportSummary")
                    }
                },
                "Ca": {
                    "type": "object",
                    "required": ["id", "arn", "subject", "serial", "certificateId", "notBefore", "notAfter", "state", "revokedAt"],
                    "properties": {
                        "id": string.clone(),
                        "arn": { "type": ["string", "null"], "description": "The ACM Private CA's ARN (AWS)." },
                        "subject": { "type": "string", "description": "RFC 4514." },
                        "serial": string.clone(),
                        "certificateId": string.clone(),
                        "notBefore": time.clone(),
                        "notAfter": time.clone(),
                        "state": { "type": "string", "enum": ["current", "previous", "revoked"] },
                        "revokedAt": nullable_time.clone(),
                        "chainPem": { "type": "string", "description": "The current CA only: the intermediate, then the root." }
                    }
                },
                "CaOverview": {
                    "type": "object",
                    "required": ["backend", "current", "previous", "pendingCsr", "canCreateNextCa", "rootKeyLocal", "crls"],
                    "properties": {
                        "backend": { "type": "string", "enum": ["local", "aws"] },
                        "canCreateNextCa": { "type": "boolean", "description": "POST ca/rotate creates the next CA itself (locally, with the root key here); otherwise it names one." },
                        "current": { "oneOf": [schema("Ca"), { "type": "null" }] },
                        "previous": { "type": "array", "items": schema("Ca") },
                        "pendingCsr": { "type": ["string", "null"], "description": "The id (local) or ARN (AWS) of an issuing CA that waits for its certificate." },
                        "rootKeyLocal": { "type": "boolean", "description": "The same as canCreateNextCa." },
                        "crls": { "type": "array", "items": schema("Crl"), "description": "The CRLs the service publishes (locally each issuing CA's, then the root's when its key is here; empty on AWS, where ACM Private CA publishes them)." }
                    }
                },
                "Crl": crate::admin_crls::crl_schema(),
                "RotateRequest": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "to": { "type": "string", "description": "AWS only: the ARN of the installed ACM Private CA to rotate to (`provisioner aws ca create` and `install` make it)." }
                    }
                },
                "RotationStarted": {
                    "allOf": [schema("Rotation"), {
                        "type": "object",
                        "required": ["statusUrl"],
                        "properties": { "statusUrl": string.clone() }
                    }]
                },
                "Registration": {
                    "type": "object",
                    "required": ["certificateId", "region", "deviceId", "status", "attempts", "lastError", "updatedAt"],
                    "properties": {
                        "certificateId": string.clone(),
                        "region": string.clone(),
                        "deviceId": string.clone(),
                        "status": { "type": "string", "enum": ["PENDING", "DONE", "FAILED"] },
                        "attempts": { "type": "integer" },
                        "lastError": nullable("string"),
                        "updatedAt": time.clone()
                    }
                },
                "RegistrationPage": page_of("Registration"),
                "RetriedRegistrations": {
                    "type": "object",
                    "required": ["attempted", "done", "failed", "inFlight", "more"],
                    "properties": {
                        "attempted": { "type": "integer" },
                        "done": { "type": "integer" },
                        "failed": { "type": "integer" },
                        "inFlight": { "type": "integer", "description": "Pending ones a request may still be finishing: left for later." },
                        "more": { "type": "boolean", "description": "More were due than one call retries." }
                    }
                },
                "Rotation": {
                    "type": "object",
                    "required": ["jobId", "state", "step", "finished", "startedAt", "finishedAt", "oldCa", "newCa", "revoked", "total", "resumed", "error", "adminAction"],
                    "properties": {
                        "jobId": string.clone(),
                        "state": { "type": "string", "enum": ["running", "finished", "failed", "interrupted"], "description": "interrupted: found unfinished in the registry; POST ca/rotate resumes it. On AWS a failed rotation is retried by the scheduled maintenance." },
                        "step": { "type": ["string", "null"], "enum": ["registering", "switching", "revoking", "deactivating", "done", "failed", null] },
                        "total": { "type": ["integer", "null"], "description": "Certificates to revoke, when known." },
                        "adminAction": { "type": ["string", "null"], "description": "What the PKI admin must still do by hand (AWS: revoke the old CA at a parent outside this account)." },
                        "finished": { "type": "boolean" },
                        "startedAt": time.clone(),
                        "finishedAt": nullable_time,
                        "oldCa": nullable("string"),
                        "newCa": nullable("string"),
                        "revoked": { "type": "integer", "description": "Certificates revoked by the cascade so far." },
                        "resumed": { "type": "boolean" },
                        "error": nullable("string")
                    }
                },
                "HourBucket": {
                    "type": "object",
                    "required": ["hour", "allow", "deny"],
                    "properties": {
                        "hour": time,
                        "allow": { "type": "integer" },
                        "deny": { "type": "integer" }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_cursor_reads_back_only_as_its_own_kind() {
        let cursor = encode_cursor(CursorKind::Devices, "dev:1");
        assert_eq!(
            decode_cursor(CursorKind::Devices, &cursor).unwrap(),
            "dev:1"
        );
        assert!(!cursor.contains(['+', '/', '=']));
        let error = decode_cursor(CursorKind::Audit, &cursor).unwrap_err();
        assert_eq!(
            (error.status, error.code),
            (StatusCode::BAD_REQUEST, "invalid_cursor")
        );
        assert!(decode_cursor(CursorKind::Devices, "!!").is_err());
    }

    #[test]
    fn a_page_has_a_next_cursor_only_when_more_rows_were_found() {
        let full = page(
            Listed::cut(vec![1, 2, 3], 2, i32::to_string),
            |n| n,
            CursorKind::Audit,
        );
        assert_eq!(full.items, [1, 2]);
        let next = full.next_cursor.unwrap();
        assert_eq!(decode_cursor(CursorKind::Audit, &next).unwrap(), "2");
        let last = page(
            Listed::cut(vec![1, 2], 2, i32::to_string),
            |n| n,
            CursorKind::Audit,
        );
        assert_eq!(last.next_cursor, None);
    }
}
