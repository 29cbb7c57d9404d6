//! The admin API and the dashboard behind API Gateway: the admin router of
//! [`provisioner_http::admin`] (the same routes and answers as `provisioner serve`)
//! over the fleet on AWS, through `lambda_http`.
//!
//! API Gateway's Cognito authorizer guards `/admin/api/...` first; the router checks the
//! same ID token again ([`AdminContext::with_jwt`]), so a route the gateway left open by
//! mistake is still closed. The dashboard's page, files and sign-in settings (`/`,
//! `/ui/...`, `/admin/sign-in.json`) are public static files.
//!
//! Before the router, [`AdminApiService`] adapts what API Gateway delivers, as the issuer
//! does:
//!
//! - a request without the origin secret (when one is configured) is refused 403
//!   `forbidden_origin`: the admin API answers only through CloudFront, where the
//!   dashboard's absolute paths (`/ui/...`, `/admin/api/...`) have no stage in front;
//! - the path is API Gateway's resource path (`/admin/api/devices`), not `lambda_http`'s
//!   default with the stage in front ([`use_resource_path`]);
//! - a PEM answer is sent as text ([`send_pem_as_text`]); other binary answers (the
//!   dashboard's WebAssembly) go base64-encoded, which API Gateway decodes because the
//!   admin API lists `*/*` among its binary media types (`infra/template.yaml`).

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use axum::Router;
use provisioner_app::fleet::FleetAdmin;
use provisioner_http::admin::{router_with_dashboard, AdminContext, Dashboard};
use tower::{Service, ServiceExt};

use crate::gateway::{send_pem_as_text, use_resource_path};
use crate::origin::{forbidden_origin, OriginSecret};
use crate::settings::{AdminApiSettings, SettingsError};

/// The admin routes over `fleet` as `settings` configure them: Cognito ID tokens of the
/// configured pool and app client, and the hosted sign-in when a domain is set.
///
/// # Errors
/// A setting that cannot be used ([`AdminApiSettings::jwt_validator`],
/// [`AdminApiSettings::hosted_sign_in`]), naming its variable.
pub fn admin_context(
    fleet: Arc<dyn FleetAdmin>,
    settings: &AdminApiSettings,
) -> Result<AdminContext, SettingsError> {
    let mut context = AdminContext::new(fleet).with_jwt(settings.jwt_validator()?);
    if let Some(sign_in) = settings.hosted_sign_in()? {
        context = context.with_sign_in(sign_in);
    }
    Ok(context)
}

/// The built dashboard in `dir`, or `None` (the router then serves the placeholder page
/// that says how to build it) when `dir` holds no `index.html`: a zip built before the
/// dashboard was (see `scripts/build-lambdas.sh`).
///
/// # Errors
/// A dashboard that is there but cannot be read: a broken zip is a deployment error, not
/// a reason to serve the placeholder.
pub fn load_dashboard(dir: &Path) -> Result<Option<Arc<Dashboard>>, String> {
    match Dashboard::load(dir) {
        Ok(Some(dashboard)) => {
            tracing::info!(dir = %dir.display(), files = dashboard.file_count(), "dashboard loaded");
            Ok(Some(Arc::new(dashboard)))
        }
        Ok(None) => {
            tracing::warn!(
                dir = %dir.display(),
                "no built dashboard (no index.html): `/` serves the placeholder page"
            );
            Ok(None)
        }
        Err(e) => Err(format!(
            "cannot read the dashboard in {}: {e}",
            dir.display()
        )),
    }
}

/// The admin API as a `tower` service over `lambda_http` requests: cheap to clone (the
/// router and its state are shared).
#[derive(Clone)]
pub struct AdminApiService {
    router: Router,
    origin: Arc<OriginSecret>,
}

impl std::fmt::Debug for AdminApiService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminApiService")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl AdminApiService {
    /// The admin router over `context` with `dashboard` (or the placeholder page),
    /// guarded by `origin`.
    pub fn new(
        context: Arc<AdminContext>,
        dashboard: Option<Arc<Dashboard>>,
        origin: OriginSecret,
    ) -> Self {
        Self::with_router(router_with_dashboard(context, dashboard), origin)
    }

    /// Any router behind the same adaptation.
    pub fn with_router(router: Router, origin: OriginSecret) -> Self {
        Self {
            router,
            origin: Arc::new(origin),
        }
    }

    /// Answers one request (never fails: every error is an HTTP answer).
    pub async fn handle(&self, mut request: lambda_http::Request) -> Response {
        if !self.origin.admits(request.headers()) {
            return forbidden_origin().into_response();
        }
        use_resource_path(&mut request);
        let Ok(mut response) = self.router.clone().oneshot(request).await;
        send_pem_as_text(&mut response);
        response
    }
}

impl Service<lambda_http::Request> for AdminApiService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: lambda_http::Request) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(request).await) })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::body::to_bytes;
    use axum::http::{StatusCode, Uri};
    use axum::routing::get;
    use lambda_http::request::LambdaRequest;

    use super::*;
    use crate::origin::FORBIDDEN_ORIGIN;

    const SECRET: &str = "test-origin-secret-0123456789abcdef";

    /// The fixture as `lambda_http` hands it to a service, without the stage variable
    /// that strips the stage (as when `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` is unset).
    fn request(with_secret: bool) -> lambda_http::Request {
        let mut event: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/admin-api-request.json")).unwrap();
        if !with_secret {
            for field in ["headers", "multiValueHeaders"] {
                event[field]
                    .as_object_mut()
                    .unwrap()
                    .remove("x-origin-secret");
            }
        }
        event["queryStringParameters"] = serde_json::json!({"limit": "2"});
        event["multiValueQueryStringParameters"] = serde_json::json!({"limit": ["2"]});
        let request: LambdaRequest = serde_json::from_value(event).unwrap();
        request.into()
    }

    /// A router that answers the URI it was given.
    fn echo() -> AdminApiService {
        let router = Router::new().fallback(get(|uri: Uri| async move { uri.to_string() }));
        AdminApiService::with_router(router, OriginSecret::new(Some(SECRET)))
    }

    #[tokio::test]
    async fn the_router_sees_the_resource_path_and_the_query() {
        let response = echo().handle(request(true)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(body, "/admin/api/devices?limit=2");
    }

    #[tokio::test]
    async fn a_request_without_the_origin_secret_never_reaches_the_router() {
        let response = echo().handle(request(false)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body = to_bytes(response.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], FORBIDDEN_ORIGIN);
    }

    #[test]
    fn a_missing_dashboard_is_the_placeholder_and_an_unreadable_one_an_error() {
        let empty = std::env::temp_dir().join(format!("no-dashboard-{}", std::process::id()));
        assert!(load_dashboard(&empty).unwrap().is_none());
        // A file where the directory should be: index.html cannot be read.
        let not_a_dir = std::env::temp_dir().join(format!("dashboard-file-{}", std::process::id()));
        std::fs::write(&not_a_dir, "x").unwrap();
        let error = load_dashboard(&not_a_dir).unwrap_err();
        std::fs::remove_file(&not_a_dir).unwrap();
        assert!(error.contains("cannot read the dashboard"), "{error}");
    }
}
