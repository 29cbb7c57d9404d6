//! The admin API and the maintenance Lambdas over the fleet on AWS, against moto's server:
//! each invoked in-process with the event API Gateway or EventBridge sends
//! (`tests/fixtures/`), through `lambda_http` / `lambda_runtime`'s types, as the runtime
//! does.
//!
//! - The admin API: devices a manifest import wrote to DynamoDB are listed to a Cognito
//!   admin (an RS256 ID token signed by OpenSSL, its JWKS served over HTTP on 127.0.0.1)
//!   and to nobody else (no token, a token for another app client, no origin secret);
//!   the dashboard's page, its WebAssembly and the sign-in settings are served to anyone.
//! - The maintenance: a scheduled run retries an unfinished regional registration in the
//!   registrations table and reports it; a run that cannot read its tables fails the
//!   invocation with every error.
//!
//! Run by `scripts/test-aws.sh`, which starts moto and sets `AWS_ENDPOINT_URL`, dummy
//! credentials and `AWS_REGION`. Each test makes its own tables under a random prefix.

use crate::common;
use crate::moto_support::{import_devices, moto_endpoint};

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::*;
use lambda_http::request::LambdaRequest;
use lambda_http::Service;
use lambda_runtime::{Context, LambdaEvent};
use provisioner_lambdas::admin_api::{admin_context, load_dashboard, AdminApiService};
use provisioner_lambdas::maintenance;
use provisioner_lambdas::origin::OriginSecret;
use provisioner_lambdas::settings::AdminApiSettings;
use provisioner_store_aws::adapters::AwsAdapters;
use provisioner_store_aws::admin::AwsFleet;
use provisioner_store_aws::ca::IssuingCaStore;
use provisioner_store_aws::config::AwsSettings;
use provisioner_store_aws::maintenance::Maintenance;
use serde_json::{json, Value};

const POOL: &str = "eu-west-1_TestPool";
const CLIENT_ID: &str = "dashboard-client";
const SIGN_IN_DOMAIN: &str = "https://fleet-admins.auth.eu-west-1.amazoncognito.com";
const WASM: &[u8] = b"\0asm\x01\0\0\0 not text: \xff\xfe";

// ---------------------------------------------------------------------------------------
// moto: the deployment's tables under a fresh prefix
// ---------------------------------------------------------------------------------------

/// The AWS settings of a fresh deployment on moto (tables under a random prefix, not
/// created).
fn aws_settings() -> AwsSettings {
    moto_endpoint();
    let mut vars: HashMap<String, String> = std::env::vars().collect();
    vars.insert(
        "PROVISIONER_TABLE_PREFIX".into(),
        format!("admin-{:016x}-", rand::random::<u64>()),
    );
    vars.remove("PROVISIONER_REGIONS");
    vars.remove("PROVISIONER_PCA_CA_ARN");
    AwsSettings::from_vars(&vars).unwrap()
}

/// Creates every table of `settings` (the template's five) and imports `devices`.
async fn deploy(settings: &AwsSettings, devices: &[(&str, &provisioner_core::DeviceKey)]) {
    let ports = AwsAdapters::connect(settings).await.unwrap();
    ports.registry.create_tables().await.unwrap();
    ports.things.create_registrations_table().await.unwrap();
    IssuingCaStore::new(ports.registry.client().clone(), settings.config_table())
        .create_config_table()
        .await
        .unwrap();
    import_devices(&ports.registry, devices).await;
}

fn unix_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------
// Cognito's side: an RSA key and ID tokens made by OpenSSL, the JWKS on 127.0.0.1
// ---------------------------------------------------------------------------------------

fn openssl(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The pool's signing key: the private key in PEM, and its JWK.
fn signing_key() -> &'static (String, Value) {
    static KEY: OnceLock<(String, Value)> = OnceLock::new();
    KEY.get_or_init(|| {
        let private = openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
            b"",
        );
        let modulus = String::from_utf8(openssl(&["rsa", "-noout", "-modulus"], &private)).unwrap();
        let n = hex::decode(modulus.trim().strip_prefix("Modulus=").unwrap()).unwrap();
        let jwk = json!({"kty": "RSA", "kid": "key-1", "alg": "RS256", "use": "sig",
                         "n": URL_SAFE_NO_PAD.encode(n), "e": "AQAB"});
        (String::from_utf8(private).unwrap(), jwk)
    })
}

/// An ID token as Cognito writes one for an admin of `issuer`, for the app client
/// `audience`, signed RS256 by OpenSSL.
fn id_token(key_file: &Path, issuer: &str, audience: &str) -> String {
    let header = json!({"kid": "key-1", "alg": "RS256"});
    let claims = json!({
        "sub": "3f1c8e0a-0b7e-4c55-9a27-5c1a2d9e8f10",
        "iss": issuer,
        "aud": audience,
        "token_use": "id",
        "cognito:username": "alice",
        "email": "admin@example.com",
        "auth_time": unix_now() - 60,
        "iat": unix_now() - 60,
        "exp": unix_now() + 3600,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = openssl(
        &["dgst", "-sha256", "-sign", key_file.to_str().unwrap()],
        input.as_bytes(),
    );
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The pool's JWKS served on 127.0.0.1 until the returned sender is dropped or fired.
async fn serve_jwks(jwk: Value) -> (String, tokio::sync::oneshot::Sender<()>) {
    let body = json!({ "keys": [jwk] }).to_string();
    let app = Router::new().route(
        &format!("/{POOL}/.well-known/jwks.json"),
        get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (format!("http://{address}/{POOL}"), stop)
}

// ---------------------------------------------------------------------------------------
// Calls as the runtimes make them
// ---------------------------------------------------------------------------------------

/// Runs `event` through `lambda_http` (event JSON -> request -> the admin API -> the
/// response JSON API Gateway receives).
async fn call_admin_api(service: &AdminApiService, event: Value) -> Value {
    let request: LambdaRequest = serde_json::from_value(event).unwrap();
    let mut adapter = lambda_http::Adapter::from(service.clone());
    let response = adapter
        .call(lambda_http::LambdaEvent::new(
            request,
            lambda_http::Context::default(),
        ))
        .await
        .unwrap();
    serde_json::to_value(response).unwrap()
}

/// The admin API fixture for `method path`, with `authorization` (or none).
fn admin_event(method: &str, path: &str, authorization: Option<&str>) -> Value {
    let mut event = fixture("admin-api-request");
    event["httpMethod"] = json!(method);
    event["path"] = json!(path);
    event["requestContext"]["httpMethod"] = json!(method);
    event["requestContext"]["path"] = json!(format!("/prod{path}"));
    set_header(&mut event, "Authorization", authorization);
    event
}

/// The maintenance function's invocation: the scheduled event, `remaining` before the
/// deadline.
fn scheduled(
    remaining: Duration,
) -> LambdaEvent<aws_lambda_events::cloudwatch_events::CloudWatchEvent> {
    let mut context = Context::default();
    context.deadline = u64::try_from(
        (SystemTime::now() + remaining)
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    LambdaEvent::new(
        serde_json::from_value(fixture("maintenance-schedule")).unwrap(),
        context,
    )
}

// ---------------------------------------------------------------------------------------
// The admin API
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_admin_api_lists_dynamodb_devices_to_a_cognito_admin_and_nobody_else() {
    let (_, first, first_key) = good_csr("python_p256_der_b64");
    let (_, second, second_key) = good_csr("openssl_p256_der_b64");
    let aws = aws_settings();
    deploy(&aws, &[(&first, &first_key), (&second, &second_key)]).await;

    let (private_pem, jwk) = signing_key();
    let (issuer, stop_jwks) = serve_jwks(jwk.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("pool-key.pem");
    std::fs::write(&key_file, private_pem).unwrap();
    // A dashboard as Trunk builds one: a page with an inline loader, files under ui/.
    let dashboard_dir = dir.path().join("dashboard");
    std::fs::create_dir_all(&dashboard_dir).unwrap();
    std::fs::write(
        dashboard_dir.join("index.html"),
        "<!doctype html><title>Fleet</title><script type=\"module\">import('/ui/app.js')</script>",
    )
    .unwrap();
    std::fs::write(dashboard_dir.join("app_bg.wasm"), WASM).unwrap();

    let vars: HashMap<String, String> = [
        ("PROVISIONER_ADMIN_JWT_ISSUER", issuer.as_str()),
        ("PROVISIONER_ADMIN_JWT_AUDIENCE", CLIENT_ID),
        ("PROVISIONER_ADMIN_USER_POOL_ID", POOL),
        ("PROVISIONER_ADMIN_SIGN_IN_DOMAIN", SIGN_IN_DOMAIN),
        ("PROVISIONER_DASHBOARD_DIR", dashboard_dir.to_str().unwrap()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let settings = AdminApiSettings::from_vars(&vars, None).unwrap();
    let fleet = AwsFleet::connect(&aws).await.unwrap();
    let context = admin_context(Arc::new(fleet), &settings).unwrap();
    let dashboard = load_dashboard(&settings.dashboard_dir).unwrap();
    assert!(dashboard.is_some());
    let service = AdminApiService::new(
        Arc::new(context),
        dashboard,
        OriginSecret::new(Some(ORIGIN_SECRET)),
    );

    // No token: refused by the router itself, whatever the gateway did.
    let anonymous = call_admin_api(&service, admin_event("GET", "/admin/api/devices", None)).await;
    assert_eq!(anonymous["statusCode"], 401, "{anonymous}");
    assert_eq!(body_json(&anonymous)["error"], "unauthorized");

    // An admin's ID token: the devices the import wrote to DynamoDB.
    let token = id_token(&key_file, &issuer, CLIENT_ID);
    let bearer = format!("Bearer {token}");
    let listed = call_admin_api(
        &service,
        admin_event("GET", "/admin/api/devices", Some(&bearer)),
    )
    .await;
    assert_eq!(listed["statusCode"], 200, "{listed}");
    assert_eq!(
        response_header(&listed, "cache-control").as_deref(),
        Some("no-store")
    );
    let page = body_json(&listed);
    let mut ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deviceId"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![first.as_str(), second.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected, "{page}");

    // A valid signature for another app client of the pool: not an admin of this API.
    let other_client = id_token(&key_file, &issuer, "another-client");
    let refused = call_admin_api(
        &service,
        admin_event(
            "GET",
            "/admin/api/devices",
            Some(&format!("Bearer {other_client}")),
        ),
    )
    .await;
    assert_eq!(refused["statusCode"], 401, "{refused}");
    assert_eq!(body_json(&refused)["reason"], "wrong_audience", "{refused}");

    // Not through CloudFront: refused before the token is looked at.
    let mut direct = admin_event("GET", "/admin/api/devices", Some(&bearer));
    set_header(&mut direct, "x-origin-secret", None);
    let direct = call_admin_api(&service, direct).await;
    assert_eq!(direct["statusCode"], 403, "{direct}");
    assert_eq!(body_json(&direct)["error"], "forbidden_origin");

    // The dashboard's public files: the page with a CSP that allows the pool's token
    // endpoint, the WebAssembly base64-encoded (API Gateway decodes it), the sign-in.
    let page = call_admin_api(&service, admin_event("GET", "/", None)).await;
    assert_eq!(page["statusCode"], 200, "{page}");
    assert!(page["body"]
        .as_str()
        .unwrap()
        .contains("<title>Fleet</title>"));
    let csp = response_header(&page, "content-security-policy").unwrap();
    assert!(csp.contains(SIGN_IN_DOMAIN), "{csp}");
    assert!(
        csp.contains("'sha256-"),
        "the inline loader is allowed by hash: {csp}"
    );

    let wasm = call_admin_api(&service, admin_event("GET", "/ui/app_bg.wasm", None)).await;
    assert_eq!(wasm["statusCode"], 200, "{wasm}");
    assert_eq!(wasm["isBase64Encoded"], true, "{wasm}");
    assert_eq!(
        STANDARD.decode(wasm["body"].as_str().unwrap()).unwrap(),
        WASM
    );

    let sign_in = call_admin_api(&service, admin_event("GET", "/admin/sign-in.json", None)).await;
    assert_eq!(sign_in["statusCode"], 200, "{sign_in}");
    let sign_in = body_json(&sign_in);
    assert_eq!(sign_in["token"], false, "no token file on AWS: {sign_in}");
    assert_eq!(sign_in["oidc"]["clientId"], CLIENT_ID);
    assert_eq!(
        sign_in["oidc"]["authorizeUrl"],
        format!("{SIGN_IN_DOMAIN}/oauth2/authorize")
    );

    stop_jwks.send(()).unwrap();
}

// ---------------------------------------------------------------------------------------
// The maintenance
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_scheduled_run_retries_unfinished_registrations_and_reports_them() {
    let aws = aws_settings();
    deploy(&aws, &[]).await;
    // A registration the issuer could not finish: FAILED an hour ago in the serving
    // region, for a certificate the registry does not hold (so the retry fails again
    // without IoT Core, and says why).
    let ports = AwsAdapters::connect(&aws).await.unwrap();
    let certificate_id = format!("{:064x}", rand::random::<u128>());
    ports
        .registry
        .client()
        .put_item()
        .table_name(aws.registrations_table())
        .item("certificateId", AttributeValue::S(certificate_id.clone()))
        .item("region", AttributeValue::S(aws.serving_region.clone()))
        .item("deviceId", AttributeValue::S("sensor-0001".into()))
        .item("status", AttributeValue::S("FAILED".into()))
        .item("attempts", AttributeValue::N("1".into()))
        .item("lastError", AttributeValue::S("IoT Core throttled".into()))
        .item(
            "updatedAt",
            AttributeValue::N((unix_now() - 3600).to_string()),
        )
        .item("queue", AttributeValue::S("open".into()))
        .send()
        .await
        .unwrap();

    let maintenance = Maintenance::connect(&aws).await.unwrap();
    let report = maintenance::handle(&maintenance, scheduled(Duration::from_secs(120)))
        .await
        .unwrap();

    assert_eq!(report.rotation, None, "no rotation is recorded");
    assert_eq!(
        (report.registrations.attempted, report.registrations.failed),
        (1, 1),
        "{report:?}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["registrations"]["attempted"], 1, "{json}");
    assert_eq!(json["errors"], json!([]), "{json}");
    let rows = ports
        .things
        .registrations_of(&certificate_id)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].attempts, 2, "the run tried it once more: {rows:?}");
    assert!(
        rows[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("not in the device registry")),
        "{rows:?}"
    );
}

#[tokio::test]
async fn a_run_that_cannot_reach_its_tables_fails_the_invocation_with_every_error() {
    // Settings of a deployment whose tables do not exist.
    let aws = aws_settings();
    let maintenance = Maintenance::connect(&aws).await.unwrap();

    let failed = maintenance::handle(&maintenance, scheduled(Duration::from_secs(120)))
        .await
        .unwrap_err();

    assert_eq!(failed.errors.len(), 2, "{failed}");
    assert!(failed.errors[0].starts_with("CA rotation"), "{failed}");
    assert!(failed.errors[1].starts_with("registrations"), "{failed}");
}
