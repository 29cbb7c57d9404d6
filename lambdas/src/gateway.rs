//! What every Lambda behind API Gateway (REST API, proxy integration) does to a request
//! before an axum router sees it.

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Uri};
use axum::response::Response;
use lambda_http::RequestExt;
use provisioner_http::api::PEM_MEDIA_TYPE;

/// `lambda_http` sends a body as text (not base64) only for content types it knows as
/// text, and for responses carrying this header (value `text`); API Gateway would
/// otherwise hand the client base64 unless the API lists the type among its binary
/// media types.
pub const LAMBDA_TEXT_BODY_HEADER: &str = "x-lambda-http-content-encoding";

/// Routes `request` on API Gateway's resource path (`/new`, `/admin/api/devices`), which
/// the routers know, instead of `lambda_http`'s URI, which may carry the stage in front
/// (`/prod/new`). The query string is kept. A request without a raw path (not from API
/// Gateway, or a path that does not make a URI) is left as it is.
pub fn use_resource_path(request: &mut lambda_http::Request) {
    let raw_path = request.raw_http_path().to_owned();
    if raw_path.is_empty() {
        return;
    }
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    if let Ok(uri) = format!("{raw_path}{query}").parse::<Uri>() {
        *request.uri_mut() = uri;
    }
}

/// Marks a PEM answer (`application/x-pem-file`) to be sent as text, so that clients get
/// the PEM itself whatever the API's binary media types say.
pub fn send_pem_as_text(response: &mut Response) {
    let is_pem = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PEM_MEDIA_TYPE));
    if is_pem {
        response
            .headers_mut()
            .insert(LAMBDA_TEXT_BODY_HEADER, HeaderValue::from_static("text"));
    }
}
