//! The admin API over HTTP, local mode: devices, certificates, the CA, the audit log and
//! issuance statistics, under [`API_PREFIX`] (`/admin/api`), for the dashboard and for
//! scripts. [`router_with_dashboard`] also serves the built dashboard at `/` (without
//! one, `GET /` answers a placeholder page that says how to build it).
//!
//! Every route under `/admin/api`, the OpenAPI document and unknown paths included,
//! requires `Authorization: Bearer TOKEN` with the token of
//! [`DataDir::admin_token`](crate::local::datadir::DataDir::admin_token). The token file
//! is read on every request, so `provisioner admin token --rotate` takes effect at once.
//! A refusal is 401 `unauthorized` with `WWW-Authenticate: Bearer`. With
//! [`AdminContext::with_jwt`] (the AWS deployment), a bearer value shaped like a JWT is
//! judged as a Cognito ID token instead ([`crate::admin_auth`]); a refused one is
//! 401 `invalid_token` with a stable `reason` (`expired`, `wrong_issuer`, ...).
//!
//! Errors leave through [`ApiError`], like the device API's: a status and a
//! `{error, message}` body with a stable code. The one richer answer is a refused
//! import: 422 `{error, message, summary}`, so the caller sees every refused row.
//!
//! Lists are pages `{items, nextCursor}`: `limit` (default [`DEFAULT_PAGE_SIZE`], at most
//! [`MAX_PAGE_SIZE`]), and `cursor`, the `nextCursor` of the previous page (null on the
//! last page). A cursor is the base64url of the last item's key; it stays valid while
//! rows are added.

use std::io;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

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
    CertificateRecord, CertificateStatus, Clock, ManifestEntryError, ManifestFormat,
    ManifestReader, PortError, RevocationReason, SystemClock, UnixTime,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::admin_auth::{JwtError, JwtValidator};
use crate::api::{rfc3339, ApiError, PEM_MEDIA_TYPE};
use crate::local::authority::{AuthorityError, CaInfo, LocalAuthority};
use crate::local::datadir::DataDir;
use crate::local::operations;
use crate::local::registry::{
    status_name, AuditEntry, CaState, CertificateFilter, CertificatePosition, DeviceQuery,
    DeviceRecord, ImportItem, ImportOptions, ImportSummary, RegistryError, SqliteRegistry,
};
use crate::local::LocalError;

/// Where the admin API is mounted.
pub const API_PREFIX: &str = "/admin/api";

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

/// What the admin routes share: the registry, the data directory (CA, CRLs, the token),
/// the clock, and the state of a CA rotation started through the API.
pub struct AdminContext {
    registry: SqliteRegistry,
    data_dir: DataDir,
    clock: Arc<dyn Clock>,
    rotation: Mutex<Option<RotationProgress>>,
    /// CRLs are written to fixed file names: one regeneration at a time.
    crl_lock: tokio::sync::Mutex<()>,
    /// Cognito ID tokens accepted beside the local token, when configured.
    jwt: Option<JwtValidator>,
}

impl std::fmt::Debug for AdminContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminContext")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl AdminContext {
    /// The admin routes over `registry` and the data directory `data_dir` (whose CA,
    /// CRLs and admin token they use), on the system clock.
    pub fn new(registry: SqliteRegistry, data_dir: DataDir) -> Self {
        Self {
            registry,
            data_dir,
            clock: Arc::new(SystemClock),
            rotation: Mutex::new(None),
            crl_lock: tokio::sync::Mutex::new(()),
            jwt: None,
        }
    }

    /// The same on another clock (tests move time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The same, also accepting Cognito ID tokens that `validator` validates (the
    /// AWS deployment's sign-in). A bearer value shaped like a JWT
    /// ([`looks_like_jwt`](crate::admin_auth::looks_like_jwt)) is then judged only as a
    /// JWT; any other value is still compared with the local token, which stays valid
    /// (whoever can read it already has the data directory; without a token file it
    /// matches nothing).
    pub fn with_jwt(mut self, validator: JwtValidator) -> Self {
        self.jwt = Some(validator);
        self
    }

    /// Checks the `Authorization` header: a JWT against the [`JwtValidator`] when one is
    /// configured, otherwise against the token file, read now (so a rotated token counts
    /// at once), compared in constant time, as SHA-256 digests so the length does not
    /// show either.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<(), Response> {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(unauthorized(
                "send the admin token as `Authorization: Bearer TOKEN` (`provisioner admin token` prints it on the server)",
                false,
            ));
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
        let stored = match tokio::fs::read(self.data_dir.admin_token_path()).await {
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
        if stored.is_empty() || !matches {
            tracing::warn!("admin API request with a wrong bearer token refused");
            return Err(unauthorized(
                "the bearer token is not the admin token (it may have been rotated): `provisioner admin token` prints the current one",
                true,
            ));
        }
        Ok(())
    }

    fn now(&self) -> UnixTime {
        self.clock.now()
    }
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
        .route("/devices/{device_id}/disable", post(disable_device))
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
        .route("/audit", get(audit))
        .route("/stats/issuance", get(issuance_stats))
        .route("/openapi.json", get(openapi))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(authenticated.clone())
        .with_state(context);
    dashboard_routes(dashboard)
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

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::UnknownDevice(id) => unknown_device(&id),
            RegistryError::UnknownCertificate(id) => unknown_certificate(&id),
            RegistryError::Busy => ApiError {
                retry_after_secs: Some(1),
                ..error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "registry_busy",
                    "the registry is busy with another write (an import?); retry shortly",
                )
            },
            other => {
                tracing::error!(error = %other, "admin API: registry failure");
                internal()
            }
        }
    }
}

impl From<LocalError> for ApiError {
    fn from(e: LocalError) -> Self {
        match e {
            LocalError::Registry(e) => e.into(),
            LocalError::Authority(e) => e.into(),
            other => {
                tracing::error!(error = %other, "admin API: data directory failure");
                internal()
            }
        }
    }
}

impl From<AuthorityError> for ApiError {
    fn from(e: AuthorityError) -> Self {
        let code = match &e {
            AuthorityError::NotInitialised { .. } | AuthorityError::AwaitingCertificate { .. } => {
                "ca_not_ready"
            }
            AuthorityError::RequestPending { .. } => "ca_request_pending",
            AuthorityError::RootKeyNotLocal { .. } => "root_key_not_local",
            _ => {
                tracing::error!(error = %e, "admin API: CA failure");
                return internal();
            }
        };
        error(StatusCode::CONFLICT, code, e.to_string())
    }
}

/// Runs blocking work (CA files, imports) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        tracing::error!(error = %e, "admin API: a blocking task failed");
        internal()
    })?
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
}

impl CursorKind {
    fn tag(self) -> &'static str {
        match self {
            Self::Devices => "d",
            Self::Certificates => "c",
            Self::Audit => "a",
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

/// Cuts the `limit + 1` rows fetched to a page; a next cursor only when there was more.
fn page<R, T>(
    mut rows: Vec<R>,
    limit: usize,
    key: impl Fn(&R) -> String,
    view: impl Fn(R) -> T,
    kind: CursorKind,
) -> Page<T> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = more
        .then(|| rows.last().map(|last| encode_cursor(kind, &key(last))))
        .flatten();
    Page {
        items: rows.into_iter().map(view).collect(),
        next_cursor,
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
    id: i64,
    at: String,
    device_id: Option<String>,
    decision: &'static str,
    code: String,
    remote_addr: Option<String>,
    fingerprint: Option<String>,
    certificate_id: Option<String>,
}

impl From<AuditEntry> for AuditView {
    fn from(entry: AuditEntry) -> Self {
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
    let rows = context
        .registry
        .list_devices(DeviceQuery {
            prefix: q.prefix,
            enabled,
            after,
            limit: limit + 1,
        })
        .await?;
    Ok(Json(page(
        rows,
        limit,
        |d| d.device_id.clone(),
        DeviceView::from,
        CursorKind::Devices,
    )))
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
        .registry
        .device_record(&device_id)
        .await?
        .ok_or_else(|| unknown_device(&device_id))?;
    let filter = CertificateFilter {
        device_id: Some(device_id.clone()),
        limit: Some(DEVICE_CERTIFICATES),
        ..CertificateFilter::default()
    };
    let certificates = context
        .registry
        .certificates_newest_first(filter, None)
        .await?;
    let audit = context
        .registry
        .audit_newest_first(None, Some(device_id), DEVICE_AUDIT_EVENTS)
        .await?;
    Ok(Json(DeviceDetails {
        device: record.into(),
        certificates: certificates
            .into_iter()
            .map(|c| CertificateView::new(c, false))
            .collect(),
        recent_audit: audit.into_iter().map(AuditView::from).collect(),
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
    let options = ImportOptions {
        replace,
        dry_run,
        now: context.now(),
    };
    let registry = context.registry.clone();
    let mut summary = blocking(move || {
        let reader = ManifestReader::new().with_format(format);
        let source = name.as_str();
        let summary = match reader.read(&bytes) {
            // A file that cannot be read at all is reported as its line 0, as the CLI does.
            Err(e) => registry.import(
                [ImportItem {
                    source,
                    entry: Err(ManifestEntryError::new(0, None, &e)),
                }],
                &options,
            ),
            Ok(entries) => {
                registry.import(entries.map(|entry| ImportItem { source, entry }), &options)
            }
        };
        summary.map_err(ApiError::from)
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

async fn disable_device(
    State(context): State<Arc<AdminContext>>,
    device_id: Result<Path<String>, PathRejection>,
) -> Result<Json<DeviceView>, ApiError> {
    set_enabled(&context, path(device_id)?, false).await
}

async fn enable_device(
    State(context): State<Arc<AdminContext>>,
    device_id: Result<Path<String>, PathRejection>,
) -> Result<Json<DeviceView>, ApiError> {
    set_enabled(&context, path(device_id)?, true).await
}

async fn set_enabled(
    context: &AdminContext,
    device_id: String,
    enabled: bool,
) -> Result<Json<DeviceView>, ApiError> {
    context
        .registry
        .set_device_enabled(&device_id, enabled)
        .await?;
    let record = context
        .registry
        .device_record(&device_id)
        .await?
        .ok_or_else(|| unknown_device(&device_id))?;
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
    let before = q
        .cursor
        .map(|c| {
            let key = decode_cursor(CursorKind::Certificates, &c)?;
            let (at, id) = key.split_once(':').ok_or_else(invalid_cursor)?;
            Ok::<_, ApiError>(CertificatePosition {
                issued_at: at.parse().map_err(|_| invalid_cursor())?,
                certificate_id: id.to_owned(),
            })
        })
        .transpose()?;
    let filter = CertificateFilter {
        device_id: q.device.filter(|d| !d.is_empty()),
        status,
        issuer: q.issuer.filter(|i| !i.is_empty()),
        limit: Some(limit + 1),
    };
    let rows = context
        .registry
        .certificates_newest_first(filter, before)
        .await?;
    Ok(Json(page(
        rows,
        limit,
        |c| format!("{}:{}", c.issued_at, c.certificate_id),
        |c| CertificateView::new(c, false),
        CursorKind::Certificates,
    )))
}

async fn certificate(
    State(context): State<Arc<AdminContext>>,
    certificate_id: Result<Path<String>, PathRejection>,
) -> Result<Json<CertificateView>, ApiError> {
    let record = find_certificate(&context, &path(certificate_id)?).await?;
    Ok(Json(CertificateView::new(record, true)))
}

async fn find_certificate(
    context: &AdminContext,
    certificate_id: &str,
) -> Result<CertificateRecord, ApiError> {
    // The port's point lookup.
    let found = provisioner_core::DeviceRegistry::certificate(&context.registry, certificate_id)
        .await
        .map_err(|e| match e {
            PortError::Unavailable {
                retry_after_secs, ..
            } => ApiError {
                retry_after_secs: Some(retry_after_secs),
                ..error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "registry_busy",
                    "the registry is busy with another write (an import?); retry shortly",
                )
            },
            other => {
                tracing::error!(error = %other, "admin API: registry failure");
                internal()
            }
        })?;
    found.ok_or_else(|| unknown_certificate(certificate_id))
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
    let now = context.now();
    let revocation = context
        .registry
        .revoke_certificate(&certificate_id, reason, now)
        .await?;
    let mut crl_regenerated = false;
    if !revocation.already_revoked {
        // The revocation stands even if the CRLs cannot be written now; GET ca/crl (or
        // `provisioner ca crl`) writes them later.
        let _one_at_a_time = context.crl_lock.lock().await;
        match operations::regenerate_crls(&context.data_dir, &context.registry, now).await {
            Ok(_) => crl_regenerated = true,
            Err(e) => tracing::error!(error = %e, "revoked, but the CRLs could not be regenerated"),
        }
    }
    Ok(Json(RevokedView {
        certificate: CertificateView::new(revocation.certificate, false),
        already_revoked: revocation.already_revoked,
        crl_regenerated,
    }))
}

// ---------------------------------------------------------------------------------
// The CA
// ---------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CaView {
    id: String,
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

impl CaView {
    fn new(info: CaInfo, state: CaState, revoked_at: Option<UnixTime>) -> Self {
        Self {
            id: info.id,
            subject: info.subject,
            serial: info.serial,
            certificate_id: info.certificate_id,
            not_before: rfc3339(info.not_before),
            not_after: rfc3339(info.not_after),
            state: state.name(),
            revoked_at: revoked_at.map(rfc3339),
            chain_pem: None,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CaOverviewView {
    current: Option<CaView>,
    previous: Vec<CaView>,
    pending_csr: Option<String>,
    root_key_local: bool,
}

async fn ca(State(context): State<Arc<AdminContext>>) -> Result<Json<CaOverviewView>, ApiError> {
    let recorded = context.registry.cas().await?;
    let ca_dir = context.data_dir.ca_dir();
    let view = blocking(move || {
        let overview = LocalAuthority::overview(&ca_dir)?;
        let current = match &overview.current {
            Some(info) => {
                let authority = LocalAuthority::load_id(&ca_dir, &info.id)?;
                let mut view = CaView::new(info.clone(), CaState::Current, None);
                view.chain_pem = Some(authority.chain_pem().to_owned());
                Some(view)
            }
            None => None,
        };
        let mut previous = Vec::new();
        for id in &overview.previous_ids {
            let info = LocalAuthority::load_id(&ca_dir, id)?.info();
            let record = recorded.iter().find(|r| &r.ca_id == id);
            let state = record.map_or(CaState::Previous, |r| r.state);
            previous.push(CaView::new(info, state, record.and_then(|r| r.revoked_at)));
        }
        Ok(CaOverviewView {
            current,
            previous,
            pending_csr: overview.pending.map(|p| p.id),
            root_key_local: overview.root_key_local,
        })
    })
    .await?;
    Ok(Json(view))
}

async fn ca_crl(State(context): State<Arc<AdminContext>>) -> Result<Response, ApiError> {
    let ca_dir = context.data_dir.ca_dir();
    // The id first: a rotation meanwhile leaves it on disk, and its CRL is written below.
    let current = blocking(move || Ok(LocalAuthority::load(&ca_dir)?.id().to_owned())).await?;
    let now = context.now();
    {
        let _one_at_a_time = context.crl_lock.lock().await;
        operations::regenerate_crls(&context.data_dir, &context.registry, now).await?;
    }
    let pem = tokio::fs::read_to_string(operations::crl_path(&context.data_dir, &current))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read the CRL just written");
            internal()
        })?;
    Ok(([(CONTENT_TYPE, PEM_MEDIA_TYPE)], pem).into_response())
}

/// A CA rotation started through the API, as far as it got.
#[derive(Debug, Clone)]
struct RotationProgress {
    job_id: String,
    started_at: UnixTime,
    running: bool,
    old_ca: Option<String>,
    new_ca: Option<String>,
    revoked: u64,
    resumed: bool,
    finished_at: Option<UnixTime>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RotationView {
    job_id: String,
    /// `running`, `finished`, `failed`, or `interrupted` (found unfinished in the
    /// registry: POST ca/rotate resumes it).
    state: &'static str,
    finished: bool,
    started_at: String,
    finished_at: Option<String>,
    old_ca: Option<String>,
    new_ca: Option<String>,
    revoked: u64,
    resumed: bool,
    error: Option<String>,
}

async fn rotate_ca(State(context): State<Arc<AdminContext>>) -> Result<Response, ApiError> {
    let ca_dir = context.data_dir.ca_dir();
    let overview = blocking(move || Ok(LocalAuthority::overview(&ca_dir)?)).await?;
    if !overview.root_key_local {
        return Err(error(
            StatusCode::CONFLICT,
            "root_key_not_local",
            "the root CA's key is not on this machine: rotate on the server with `provisioner ca rotate --csr-only` and have the parent CA sign the CSR",
        ));
    }
    if let Some(pending) = overview.pending {
        return Err(error(
            StatusCode::CONFLICT,
            "ca_request_pending",
            format!("the CSR of issuing CA {} waits for its certificate: import it with `provisioner ca import-cert FILE` first", pending.id),
        ));
    }
    let job_id = format!("{:016x}", rand::random::<u64>());
    {
        let mut state = context.rotation.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(running) = state.as_ref().filter(|s| s.running) {
            return Err(error(
                StatusCode::CONFLICT,
                "rotation_in_progress",
                format!(
                    "CA rotation {} is still running: follow it with GET {API_PREFIX}/ca/rotation",
                    running.job_id
                ),
            ));
        }
        *state = Some(RotationProgress {
            job_id: job_id.clone(),
            started_at: context.now(),
            running: true,
            old_ca: None,
            new_ca: None,
            revoked: 0,
            resumed: false,
            finished_at: None,
            error: None,
        });
    }
    let task = tokio::spawn(run_rotation(context.clone()));
    // A panic in the rotation must not leave it "running" forever.
    let watcher = context.clone();
    tokio::spawn(async move {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "the CA rotation task failed");
            update_rotation(&watcher, |p| {
                p.running = false;
                p.error = Some("the rotation stopped unexpectedly; the error is logged. POST ca/rotate resumes it".into());
            });
        }
    });
    let location = format!("{API_PREFIX}/ca/rotation");
    let mut response = (
        StatusCode::ACCEPTED,
        Json(json!({
            "jobId": job_id,
            "state": "running",
            "statusUrl": location,
        })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, value);
    }
    Ok(response)
}

fn update_rotation(context: &AdminContext, change: impl FnOnce(&mut RotationProgress)) {
    let mut state = context.rotation.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(progress) = state.as_mut() {
        change(progress);
    }
}

async fn run_rotation(context: Arc<AdminContext>) {
    let now = context.now();
    let result = operations::rotate_ca(&context.data_dir, &context.registry, now, |revoked| {
        update_rotation(&context, |p| p.revoked = revoked);
    })
    .await;
    let finished_at = context.now();
    match result {
        Ok(outcome) => {
            tracing::info!(
                old_ca = outcome.old_ca,
                new_ca = outcome.new_ca,
                revoked = outcome.revoked,
                "CA rotated through the admin API"
            );
            update_rotation(&context, |p| {
                p.running = false;
                p.old_ca = Some(outcome.old_ca);
                p.new_ca = Some(outcome.new_ca);
                p.revoked = outcome.revoked;
                p.resumed = outcome.resumed;
                p.finished_at = Some(finished_at);
            });
        }
        Err(e) => {
            tracing::error!(error = %e, "the CA rotation failed");
            update_rotation(&context, |p| {
                p.running = false;
                p.error = Some(format!(
                    "{e}; what was committed stays committed, and POST {API_PREFIX}/ca/rotate resumes it"
                ));
            });
        }
    }
}

async fn rotation(
    State(context): State<Arc<AdminContext>>,
) -> Result<Json<RotationView>, ApiError> {
    let progress = context
        .rotation
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(p) = progress {
        let (mut old_ca, mut new_ca, mut revoked) = (p.old_ca, p.new_ca, p.revoked);
        if p.running {
            // The registry knows the pair as soon as the new CA is installed.
            if let Some(job) = context
                .registry
                .unfinished_rotations()
                .await?
                .into_iter()
                .next()
            {
                old_ca = old_ca.or(Some(job.old_ca));
                new_ca = new_ca.or(Some(job.new_ca));
                revoked = revoked.max(job.revoked_count);
            }
        }
        let state = match (p.running, &p.error) {
            (true, _) => "running",
            (false, Some(_)) => "failed",
            (false, None) => "finished",
        };
        return Ok(Json(RotationView {
            job_id: p.job_id,
            state,
            finished: state == "finished",
            started_at: rfc3339(p.started_at),
            finished_at: p.finished_at.map(rfc3339),
            old_ca,
            new_ca,
            revoked,
            resumed: p.resumed,
            error: p.error,
        }));
    }
    // Nothing started since this process began: what the registry remembers.
    let unfinished = context
        .registry
        .unfinished_rotations()
        .await?
        .into_iter()
        .next();
    let job = match unfinished {
        Some(job) => Some(job),
        None => context.registry.last_rotation().await?,
    };
    let job = job.ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "no_rotation",
            format!("no CA rotation has run: start one with POST {API_PREFIX}/ca/rotate"),
        )
    })?;
    let finished = job.finished_at.is_some();
    Ok(Json(RotationView {
        job_id: format!("registry-{}", job.id),
        state: if finished { "finished" } else { "interrupted" },
        finished,
        started_at: rfc3339(job.started_at),
        finished_at: job.finished_at.map(rfc3339),
        old_ca: Some(job.old_ca),
        new_ca: Some(job.new_ca),
        revoked: job.revoked_count,
        resumed: false,
        error: (!finished).then(|| {
            format!("this rotation was interrupted: POST {API_PREFIX}/ca/rotate resumes it")
        }),
    }))
}

// ---------------------------------------------------------------------------------
// Audit and statistics
// ---------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    device: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

async fn audit(
    State(context): State<Arc<AdminContext>>,
    parsed: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Page<AuditView>>, ApiError> {
    let q = query(parsed)?;
    let limit = page_size(q.limit.as_deref())?;
    let before = q
        .cursor
        .map(|c| {
            decode_cursor(CursorKind::Audit, &c)?
                .parse::<i64>()
                .map_err(|_| invalid_cursor())
        })
        .transpose()?;
    let rows = context
        .registry
        .audit_newest_first(before, q.device.filter(|d| !d.is_empty()), limit + 1)
        .await?;
    Ok(Json(page(
        rows,
        limit,
        |e| e.id.to_string(),
        AuditView::from,
        CursorKind::Audit,
    )))
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
    let counted = context.registry.decisions_per_hour(since, until).await?;
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
            "description": "Devices, certificates, the issuing CA, the audit log and issuance statistics of a local provisioner. Every route needs `Authorization: Bearer TOKEN` (`provisioner admin token` prints it). Errors are `{error, message}`: a stable code and what to fix."
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
            "/devices/{deviceId}/disable": { "post": operation("disableDevice", "Disable a device: it is refused certificates",
                json!([device_id.clone()]),
                json!({
                    "200": answer("The device, disabled", "Device"),
                    "404": refusal("No such device", &["unknown_device"])
                })) },
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
            "/ca/crl": { "get": operation("getCrl", "The current issuing CA's CRL, regenerated now",
                json!([]),
                json!({
                    "200": { "description": "The CRL, PEM", "content": { PEM_MEDIA_TYPE: { "schema": { "type": "string" } } } },
                    "409": refusal("The CA is not set up", &["ca_not_ready"])
                })) },
            "/ca/rotate": { "post": operation("rotateCa", "Start a CA rotation in the background: a new intermediate, and every certificate of the old one revoked",
                json!([]),
                json!({
                    "202": {
                        "description": "Started; follow it at ca/rotation",
                        "headers": { "Location": { "schema": { "type": "string" } } },
                        "content": { "application/json": { "schema": schema("RotationStarted") } }
                    },
                    "409": refusal("A rotation is running, or this CA cannot rotate here", &["rotation_in_progress", "root_key_not_local", "ca_request_pending", "ca_not_ready"])
                })) },
            "/ca/rotation": { "get": operation("getRotation", "The progress of the latest CA rotation",
                json!([]),
                json!({
                    "200": answer("The rotation", "Rotation"),
                    "404": refusal("No rotation has run", &["no_rotation"])
                })) },
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
                        "required": ["certificatePem"],
                        "properties": { "certificatePem": string.clone() }
                    }]
                },
                "CertificatePage": page_of("Certificate"),
                "Revoked": {
                    "type": "object",
                    "required": ["certificate", "alreadyRevoked", "crlRegenerated"],
                    "properties": {
                        "certificate": schema("Certificate"),
                        "alreadyRevoked": { "type": "boolean", "description": "Revoked before: nothing changed." },
                        "crlRegenerated": { "type": "boolean", "description": "False when the CRLs could not be written now (the revocation stands; GET ca/crl writes them)." }
                    }
                },
                "AuditEvent": {
                    "type": "object",
                    "required": ["id", "at", "deviceId", "decision", "code", "remoteAddr", "fingerprint", "certificateId"],
                    "properties": {
                        "id": { "type": "integer" },
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
                    "required": ["id", "subject", "serial", "certificateId", "notBefore", "notAfter", "state", "revokedAt"],
                    "properties": {
                        "id": string.clone(),
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
                    "required": ["current", "previous", "pendingCsr", "rootKeyLocal"],
                    "properties": {
                        "current": { "oneOf": [schema("Ca"), { "type": "null" }] },
                        "previous": { "type": "array", "items": schema("Ca") },
                        "pendingCsr": { "type": ["string", "null"], "description": "The id of an issuing CA whose CSR waits for its certificate." },
                        "rootKeyLocal": { "type": "boolean" }
                    }
                },
                "RotationStarted": {
                    "type": "object",
                    "required": ["jobId", "state", "statusUrl"],
                    "properties": {
                        "jobId": string.clone(),
                        "state": { "type": "string", "const": "running" },
                        "statusUrl": string.clone()
                    }
                },
                "Rotation": {
                    "type": "object",
                    "required": ["jobId", "state", "finished", "startedAt", "finishedAt", "oldCa", "newCa", "revoked", "resumed", "error"],
                    "properties": {
                        "jobId": string.clone(),
                        "state": { "type": "string", "enum": ["running", "finished", "failed", "interrupted"], "description": "interrupted: found unfinished in the registry; POST ca/rotate resumes it." },
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

    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

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
        let full = page(vec![1, 2, 3], 2, i32::to_string, |n| n, CursorKind::Audit);
        assert_eq!(full.items, [1, 2]);
        let next = full.next_cursor.unwrap();
        assert_eq!(decode_cursor(CursorKind::Audit, &next).unwrap(), "2");
        let last = page(vec![1, 2], 2, i32::to_string, |n| n, CursorKind::Audit);
        assert_eq!(last.next_cursor, None);
    }

    #[tokio::test]
    async fn a_second_rotation_while_one_runs_is_409() {
        // given a rotation the context records as running
        let dir = tempfile::tempdir().unwrap();
        let data_dir = DataDir::new(dir.path());
        data_dir.ensure_exists().unwrap();
        LocalAuthority::init_development(&data_dir.ca_dir(), 1_800_000_000).unwrap();
        let registry = SqliteRegistry::open(data_dir.registry_path()).unwrap();
        let token = String::from_utf8(data_dir.admin_token().unwrap().bytes).unwrap();
        let context = Arc::new(AdminContext::new(registry, data_dir));
        *context.rotation.lock().unwrap() = Some(RotationProgress {
            job_id: "0123".into(),
            started_at: 1_800_000_000,
            running: true,
            old_ca: None,
            new_ca: None,
            revoked: 7,
            resumed: false,
            finished_at: None,
            error: None,
        });
        let app = router(context);
        let send = |method: &str, path: &str| {
            Request::builder()
                .method(method)
                .uri(path)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap()
        };

        // when another is asked for
        let response = app
            .clone()
            .oneshot(send("POST", "/admin/api/ca/rotate"))
            .await
            .unwrap();

        // then it is refused, and the running one is reported
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "rotation_in_progress");
        let response = app
            .oneshot(send("GET", "/admin/api/ca/rotation"))
            .await
            .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["state"], "running");
        assert_eq!(body["jobId"], "0123");
        assert_eq!(body["revoked"], 7);
        assert_eq!(body["finished"], false);
    }
}
