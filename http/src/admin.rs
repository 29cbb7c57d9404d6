//! The admin API over HTTP: devices, certificates, the CA, the audit log, issuance
//! statistics and (on AWS) the regional registrations, under [`API_PREFIX`]
//! (`/admin/api`), for the dashboard and for scripts. [`router_with_dashboard`] also
//! serves the built dashboard at `/` (without one, `GET /` answers a placeholder page
//! that says how to build it) and its sign-in settings at [`SIGN_IN_PATH`].
//!
//! The routes are the same whatever holds the fleet: they speak to a [`FleetAdmin`],
//! locally `LocalFleet` (`provisioner-store-local`) (SQLite and the data directory), on
//! AWS `AwsFleet` (DynamoDB, ACM Private CA, IoT Core), and never ask which one it is
//! (docs/ARCHITECTURE.md, "The rule: layers call downwards only"). This module owns the
//! HTTP side: queries, cursors, views, and the one mapping of
//! [`FleetError`](provisioner_app::fleet::FleetError) to answers.
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
//! Errors leave through [`ApiError`](crate::api::ApiError), like the device API's: a
//! status and a `{error, message}` body with a stable code. The one richer answer is a
//! refused import: 422 `{error, message, summary}`, so the caller sees every refused row.
//!
//! Lists are pages `{items, nextCursor}`: `limit` (default [`DEFAULT_PAGE_SIZE`], at most
//! [`MAX_PAGE_SIZE`]), and `cursor`, the `nextCursor` of the previous page (null on the
//! last page). A cursor wraps the backend's key of the next page; it stays valid while
//! rows are added.
//!
//! Where things are: this file assembles the router and holds [`AdminContext`]; each
//! resource has its handlers and views in its own module (`devices`, `device_disable`,
//! `import`, `certificates`, `ca`, `registrations`, `audit`, `stats`); `auth` checks the
//! bearer, `error` maps errors to answers, `input` reads queries, paths and bodies,
//! `pagination` makes pages and cursors; `dashboard` serves the dashboard's files,
//! `sign_in` its sign-in settings, and `openapi` the OpenAPI document.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{any, get, post};
use axum::Router;
use provisioner_core::{Clock, SystemClock, UnixTime};

use crate::admin_auth::JwtValidator;
use provisioner_app::fleet::FleetAdmin;

mod audit;
mod auth;
mod ca;
mod certificates;
mod dashboard;
mod device_disable;
mod devices;
mod error;
mod import;
mod input;
mod openapi;
mod pagination;
mod registrations;
mod sign_in;
mod stats;

pub use dashboard::{
    dashboard_csp, Dashboard, DASHBOARD_ASSET_PREFIX, DASHBOARD_BUILD_COMMAND, DASHBOARD_CSP,
};
pub use devices::{DEVICE_AUDIT_EVENTS, DEVICE_CERTIFICATES};
pub use import::MAX_MANIFEST_BYTES;
pub use openapi::openapi_document;
pub use pagination::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
pub use provisioner_app::admin_token::MIN_ADMIN_TOKEN_LEN;
pub use registrations::RETRY_REGISTRATIONS_LIMIT;
pub use sign_in::{HostedSignIn, SIGN_IN_PATH};
pub use stats::{DEFAULT_STATS_HOURS, MAX_STATS_HOURS};

/// Where the admin API is mounted.
pub const API_PREFIX: &str = "/admin/api";

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
    let authenticated = middleware::from_fn_with_state(context.clone(), auth::require_admin_token);
    let dashboard = match (&context.sign_in, dashboard) {
        (Some(sign_in), Some(dashboard)) => Some(Arc::new(
            dashboard.allowing_connections_to(sign_in.token_origin()),
        )),
        (_, dashboard) => dashboard,
    };
    let sign_in = sign_in::settings_route(context.token_file.is_some(), context.sign_in.clone());
    let api = Router::new()
        .route("/devices", get(devices::list_devices))
        // A static segment wins over `{device_id}`: a device named `import` is still
        // readable.
        .route(
            "/devices/import",
            post(import::import_devices)
                .get(devices::device_named_import)
                .layer(DefaultBodyLimit::max(MAX_MANIFEST_BYTES)),
        )
        .route("/devices/{device_id}", get(devices::device))
        .route(
            "/devices/{device_id}/disable",
            post(device_disable::disable_device),
        )
        .route("/devices/{device_id}/enable", post(devices::enable_device))
        .route("/certificates", get(certificates::list_certificates))
        .route(
            "/certificates/{certificate_id}",
            get(certificates::certificate),
        )
        .route(
            "/certificates/{certificate_id}/revoke",
            post(certificates::revoke_certificate),
        )
        .route("/ca", get(ca::ca))
        .route("/ca/crl", get(ca::ca_crl))
        .route("/ca/rotate", post(ca::rotate_ca))
        .route("/ca/rotation", get(ca::rotation))
        .route("/registrations", get(registrations::list_registrations))
        .route(
            "/registrations/retry",
            post(registrations::retry_registrations),
        )
        .route("/audit", get(audit::audit))
        .route("/stats/issuance", get(stats::issuance_stats))
        .route("/openapi.json", get(openapi::openapi))
        .fallback(error::unknown_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(authenticated.clone())
        .with_state(context);
    dashboard::routes(dashboard)
        .route(SIGN_IN_PATH, sign_in)
        // Nesting covers the prefix and what follows a slash, not the bare slash.
        .route(
            &format!("{API_PREFIX}/"),
            any(error::unknown_route).layer(authenticated),
        )
        .nest(API_PREFIX, api)
}
