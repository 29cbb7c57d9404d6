//! The issuer: the device router of [`provisioner_http::api`] (the same routes, the
//! same answers as the local service) behind API Gateway, through `lambda_http`.
//!
//! Before the router, [`IssuerService`] adapts what API Gateway delivers:
//!
//! - a request without the origin secret (when one is configured) is refused 403
//!   `forbidden_origin`: the API answers only through CloudFront, even where the
//!   authorizer does not run (the retrieval route);
//! - a client-sent `x-device-id` header is removed: nothing downstream may take the device
//!   id from anywhere but the verified CSR;
//! - the client address (for the failed-request limit and the audit log) comes from the
//!   request context, see [`client_address`];
//! - the path is API Gateway's resource path (`/new`), not `lambda_http`'s default with
//!   the stage in front (`/prod/new`), which the router would not know.
//!
//! The flow verifies the CSR and reads the device again whatever the authorizer decided:
//! a device disabled between the two calls gets nothing, and a request the authorizer let
//! through flagged malformed is answered 400 with the same code by the router.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use axum::Router;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use provisioner_app::flow::Adapters;
use provisioner_http::api::{router, DeviceApi};
use tower::{Service, ServiceExt};

use crate::gateway::{send_pem_as_text, use_resource_path};
use crate::origin::{client_address, forbidden_origin, OriginSecret};

/// The header no client may set: removed before the router sees the request.
pub const DEVICE_ID_HEADER: &str = "x-device-id";

/// The issuer as a `tower` service over `lambda_http` requests: cheap to clone (the
/// router and its state are shared).
#[derive(Clone)]
pub struct IssuerService {
    router: Router,
    origin: Arc<OriginSecret>,
}

impl std::fmt::Debug for IssuerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerService")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl IssuerService {
    /// The device router over `api`, guarded by `origin`.
    pub fn new<B: Adapters>(api: Arc<DeviceApi<B>>, origin: OriginSecret) -> Self {
        Self {
            router: router(api),
            origin: Arc::new(origin),
        }
    }

    /// Any router behind the same adaptation (the tests use one that echoes what it
    /// receives).
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

        request.headers_mut().remove(DEVICE_ID_HEADER);

        let source_ip = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV1(context)) => context.identity.source_ip.clone(),
            _ => None,
        };
        let address = client_address(
            request.headers(),
            source_ip.as_deref(),
            self.origin.is_checked(),
        );
        if let Some(ip) = address {
            // The router reads the client address as axum's connection info; the port is
            // not known behind API Gateway and not used.
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(ip, 0)));
        }

        let Ok(mut response) = self.router.clone().oneshot(request).await;
        // Otherwise API Gateway would hand a device the base64 of its PEM.
        send_pem_as_text(&mut response);
        response
    }
}

impl Service<lambda_http::Request> for IssuerService {
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
