//! The dashboard's static files: the built page at `/` (or, when it is not built, a
//! placeholder that says how to build it) and its files under
//! [`DASHBOARD_ASSET_PREFIX`], each with its content type (the MIME table below),
//! caching rules and the page's Content-Security-Policy.

use std::io;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::API_PREFIX;

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
    pub(super) fn allowing_connections_to(&self, origin: &str) -> Self {
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

/// The content type of a dashboard file, by its extension (the MIME table).
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
pub(super) fn routes(dashboard: Option<Arc<Dashboard>>) -> Router {
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

/// `GET /`: the built page, under its policy.
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

/// `GET /ui/{path}`: one of the page's files, cached for good (its name is its content).
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

/// `GET /` without a build: a page that says how to build the dashboard.
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
