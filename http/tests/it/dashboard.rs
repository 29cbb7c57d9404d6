//! Serving the built dashboard at `/` (in-process, `tower::ServiceExt::oneshot`): the page
//! under a Content-Security-Policy that allows its inline loader by hash and nothing
//! else inline, its files with their content types, and the placeholder page when no
//! dashboard is built. The real page running under that policy in Chromium is
//! `scripts/test-e2e.sh`'s part.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use base64::Engine;
use http_body_util::BodyExt;
use provisioner_http::admin::{
    self, AdminContext, Dashboard, HostedSignIn, DASHBOARD_BUILD_COMMAND, DASHBOARD_CSP,
};
use provisioner_store_local::admin::LocalFleet;
use provisioner_store_local::datadir::DataDir;
use provisioner_store_local::registry::SqliteRegistry;
use sha2::{Digest, Sha256};
use tower::ServiceExt;

/// Trunk's loader, as it writes it into the page (an inline module script).
const LOADER: &str = "\nimport init, * as bindings from '/ui/app-1234.js';\nconst wasm = await init({ module_or_path: '/ui/app-1234_bg.wasm' });\n";

/// A page shaped like Trunk's output: the inline loader and a stylesheet link.
fn index_html() -> String {
    format!(
        "<!doctype html>\n<html><head><script type=\"module\">{LOADER}</script>\
         <link rel=\"stylesheet\" href=\"/ui/style-1.css\"></head><body></body></html>\n"
    )
}

/// The smallest valid WebAssembly module: magic and version.
const WASM: &[u8] = b"\0asm\x01\0\0\0";

fn write_dist(dir: &Path) {
    std::fs::create_dir_all(dir.join("snippets/dep-1")).unwrap();
    std::fs::create_dir_all(dir.join(".stage")).unwrap();
    std::fs::write(dir.join("index.html"), index_html()).unwrap();
    std::fs::write(
        dir.join("app-1234.js"),
        "export default function init() {}\n",
    )
    .unwrap();
    std::fs::write(dir.join("app-1234_bg.wasm"), WASM).unwrap();
    std::fs::write(dir.join("style-1.css"), "body { margin: 0 }\n").unwrap();
    std::fs::write(
        dir.join("snippets/dep-1/inline0.js"),
        "export const x = 1;\n",
    )
    .unwrap();
    std::fs::write(dir.join(".stage/half-built.js"), "partial").unwrap();
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// The admin router over a fresh data directory, with `dashboard`.
fn router(base: &Path, dashboard: Option<Dashboard>) -> Router {
    router_signing_in(base, dashboard, None)
}

/// The same, offering hosted sign-in through `sign_in`.
fn router_signing_in(
    base: &Path,
    dashboard: Option<Dashboard>,
    sign_in: Option<HostedSignIn>,
) -> Router {
    let data_dir = DataDir::new(base.join("data"));
    data_dir.ensure_exists().unwrap();
    let registry = SqliteRegistry::open(data_dir.registry_path()).unwrap();
    let token_file = data_dir.admin_token_path();
    let mut context = AdminContext::new(Arc::new(LocalFleet::new(registry, data_dir)))
        .with_token_file(token_file);
    if let Some(sign_in) = sign_in {
        context = context.with_sign_in(sign_in);
    }
    admin::router_with_dashboard(Arc::new(context), dashboard.map(Arc::new))
}

async fn get(router: &Router, path: &str) -> Answer {
    let response = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: body.to_vec(),
    }
}

#[tokio::test]
async fn the_built_dashboard_is_served_at_the_root_with_its_loader_allowed_by_hash_only() {
    // given a built dashboard
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    write_dist(&dist);
    let dashboard = Dashboard::load(&dist)
        .unwrap()
        .expect("index.html is there");
    assert_eq!(
        dashboard.file_count(),
        4,
        "hidden .stage files are not served"
    );
    let router = router(dir.path(), Some(dashboard));

    // when the page is fetched
    let page = get(&router, "/").await;

    // then it is the page, under the strict policy plus exactly the loader's hash
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.text(), index_html());
    assert!(page.header("content-type").starts_with("text/html"));
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(LOADER));
    let csp = page.header("content-security-policy");
    assert_eq!(
        csp,
        DASHBOARD_CSP.replace(
            "script-src 'self' 'wasm-unsafe-eval'",
            &format!("script-src 'self' 'wasm-unsafe-eval' 'sha256-{hash}'")
        )
    );
    assert!(!csp.contains("unsafe-inline"));
    assert!(csp.contains("style-src 'self';"));
    assert_eq!(page.header("x-content-type-options"), "nosniff");
    assert_eq!(page.header("cache-control"), "no-cache");
}

#[tokio::test]
async fn the_sign_in_settings_are_public_and_hosted_sign_in_widens_only_connect_src() {
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    write_dist(&dist);

    // without hosted sign-in: the token form only, and the page's policy unchanged
    let plain = router(
        dir.path().join("a").as_path(),
        Dashboard::load(&dist).unwrap(),
    );
    let settings = get(&plain, admin::SIGN_IN_PATH).await;
    assert_eq!(settings.status, StatusCode::OK, "no token needed");
    let body: serde_json::Value = serde_json::from_slice(&settings.body).unwrap();
    assert_eq!(body, serde_json::json!({ "token": true, "oidc": null }));
    let plain_csp = get(&plain, "/")
        .await
        .header("content-security-policy")
        .to_owned();
    assert!(plain_csp.contains("connect-src 'self';"));

    // with Cognito's hosted UI
    let sign_in = HostedSignIn::cognito(
        "https://fleet.auth.eu-west-1.amazoncognito.com/",
        "client-1",
    )
    .unwrap();
    let hosted = router_signing_in(
        dir.path().join("b").as_path(),
        Dashboard::load(&dist).unwrap(),
        Some(sign_in),
    );
    let body: serde_json::Value =
        serde_json::from_slice(&get(&hosted, admin::SIGN_IN_PATH).await.body).unwrap();
    assert_eq!(
        body["oidc"]["authorizeUrl"],
        "https://fleet.auth.eu-west-1.amazoncognito.com/oauth2/authorize"
    );
    assert_eq!(
        body["oidc"]["tokenUrl"],
        "https://fleet.auth.eu-west-1.amazoncognito.com/oauth2/token"
    );
    assert_eq!(body["oidc"]["clientId"], "client-1");
    assert_eq!(body["oidc"]["scope"], "openid email profile");
    let csp = get(&hosted, "/")
        .await
        .header("content-security-policy")
        .to_owned();
    assert_eq!(
        csp,
        plain_csp.replace(
            "connect-src 'self';",
            "connect-src 'self' https://fleet.auth.eu-west-1.amazoncognito.com;"
        )
    );

    // and a domain that is not an https origin is refused
    for bad in [
        "fleet.auth.eu-west-1.amazoncognito.com",
        "http://fleet.example.com",
        "https://fleet.example.com/path",
        "https://",
    ] {
        assert!(HostedSignIn::cognito(bad, "client-1").is_err(), "{bad}");
    }
    assert!(HostedSignIn::cognito("http://127.0.0.1:9000", "client-1").is_ok());
    assert!(HostedSignIn::cognito("https://fleet.example.com", "").is_err());
}

#[tokio::test]
async fn the_dashboards_files_are_served_with_their_content_types() {
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    write_dist(&dist);
    let router = router(dir.path(), Dashboard::load(&dist).unwrap());

    let wasm = get(&router, "/ui/app-1234_bg.wasm").await;
    assert_eq!(wasm.status, StatusCode::OK);
    // WebAssembly.instantiateStreaming refuses any other type.
    assert_eq!(wasm.header("content-type"), "application/wasm");
    assert_eq!(wasm.body, WASM);
    assert!(wasm.header("cache-control").contains("immutable"));

    let js = get(&router, "/ui/app-1234.js").await;
    assert!(js.header("content-type").starts_with("text/javascript"));
    let css = get(&router, "/ui/style-1.css").await;
    assert!(css.header("content-type").starts_with("text/css"));
    let nested = get(&router, "/ui/snippets/dep-1/inline0.js").await;
    assert_eq!(nested.status, StatusCode::OK);
    assert_eq!(nested.text(), "export const x = 1;\n");

    // and what is not a file of the build is 404
    for missing in [
        "/ui/nope.js",
        "/ui/.stage/half-built.js",
        "/ui/../index.html",
    ] {
        assert_eq!(
            get(&router, missing).await.status,
            StatusCode::NOT_FOUND,
            "{missing}"
        );
    }
    // and the admin API still wants its token
    let api = get(&router, "/admin/api/devices").await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn without_a_built_dashboard_the_root_says_how_to_build_it() {
    // given a directory without index.html (never built)
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("dist");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(Dashboard::load(&empty).unwrap().is_none());
    assert!(Dashboard::load(&dir.path().join("absent"))
        .unwrap()
        .is_none());

    // when / is fetched
    let router = router(dir.path(), None);
    let page = get(&router, "/").await;

    // then the placeholder names the build command, under the strict policy
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("content-security-policy"), DASHBOARD_CSP);
    assert_eq!(DASHBOARD_BUILD_COMMAND, "bash scripts/build-ui.sh");
    assert!(page.text().contains(DASHBOARD_BUILD_COMMAND));
    assert_eq!(
        get(&router, "/ui/app.js").await.status,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn every_inline_script_is_hashed_and_external_ones_are_not() {
    let page = "<script type=\"module\">a()</script><script src=\"/ui/x.js\"></script><script>b()</script>";
    let csp = admin::dashboard_csp(page);
    let hash = |s: &str| {
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s))
        )
    };
    assert!(csp.contains(&format!(
        "script-src 'self' 'wasm-unsafe-eval' {} {};",
        hash("a()"),
        hash("b()")
    )));
    assert_eq!(csp.matches("'sha256-").count(), 2);
    // a page without inline scripts gets the policy unchanged
    assert_eq!(admin::dashboard_csp("<p>hi</p>"), DASHBOARD_CSP);
}
