//! The issuer in-process: API Gateway's proxy event (tests/fixtures) through `lambda_http`
//! into the device router and back to the proxy response JSON, over the in-memory ports.
//! What the issuer adds to the router is tested here; the router's own answers are
//! `provisioner-service`'s tests.

use crate::common;

use axum::http::HeaderMap;
use axum::routing::any;
use axum::{Json, Router};
use common::*;
use provisioner_lambdas::issuer::IssuerService;
use provisioner_lambdas::origin::OriginSecret;
use serde_json::Value;

fn new_request(csr: Option<&str>) -> Value {
    let mut event = fixture("issuer-new-request");
    set_header(&mut event, "device-csr", csr);
    event
}

#[tokio::test]
async fn a_good_request_returns_the_contract_json_and_is_audited_with_the_device_address() {
    let ports = MemoryPorts::new();
    let (header, id, key) = good_csr("python_p256_der_b64");
    ports.register(&id, &key, true);
    let issuer = issuer(ports.ports(), flow_settings(100));

    // The fixture's path is `/new` under stage `prod`: routed only if the issuer drops
    // the stage lambda_http would put in front.
    let response = call_issuer(&issuer, new_request(Some(&header))).await;

    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(
        response_header(&response, "content-type").as_deref(),
        Some("application/json")
    );
    let body = body_json(&response);
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "caChainPem",
            "certificateId",
            "certificatePem",
            "endpoint",
            "notAfter"
        ]
    );
    assert!(body["certificatePem"].as_str().unwrap().contains(&id));
    assert_eq!(body["caChainPem"], "CHAIN\n");
    assert_eq!(
        body["endpoint"],
        "a1b2c3-ats.iot.eu-west-1.amazonaws.com:8883"
    );
    assert_eq!(body["notAfter"], "2028-01-15T08:00:00Z");
    let certificates = ports.registry.certificates.lock().unwrap();
    assert_eq!(certificates.len(), 1);
    assert_eq!(body["certificateId"], certificates[0].certificate_id);

    let audit = ports.registry.audit.lock().unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].decision, audit[0].code.as_str()),
        ("allow", "issued")
    );
    assert_eq!(audit[0].remote_addr.as_deref(), Some("203.0.113.7"));
}

#[tokio::test]
async fn a_malformed_request_is_400_with_its_stable_code() {
    let ports = MemoryPorts::new();
    let issuer = issuer(ports.ports(), flow_settings(100));
    for (header, code) in [
        (Some(bad_csr("header_not_base64").0), "malformed_header"),
        (Some(bad_csr("truncated").0), "malformed_csr"),
        (Some(bad_csr("cn_space").0), "invalid_device_id"),
        (
            Some(bad_csr("openssl_p256_san_dns").0),
            "subject_alt_name_requested",
        ),
        (None, "missing_header"),
    ] {
        let response = call_issuer(&issuer, new_request(header.as_deref())).await;
        assert_eq!(response["statusCode"], 400, "{code}: {response}");
        let body = body_json(&response);
        assert_eq!(body["error"], code);
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    let audit = ports.registry.audit.lock().unwrap();
    assert_eq!(
        audit.len(),
        5,
        "the issuer audits what the authorizer let through"
    );
    assert!(audit.iter().all(|e| e.decision == "deny"));
}

#[tokio::test]
async fn a_spoofed_device_id_header_never_reaches_the_router() {
    // A router that reports the headers it received.
    let echo = Router::new().route(
        "/new",
        any(|headers: HeaderMap| async move {
            Json(serde_json::json!({
                "deviceIdHeader": headers.get("x-device-id").map(|v| v.to_str().unwrap().to_owned()),
                "csr": headers.get("device-csr").map(|v| v.to_str().unwrap().to_owned()),
            }))
        }),
    );
    let service = IssuerService::with_router(echo, OriginSecret::new(Some(ORIGIN_SECRET)));
    let mut event = new_request(Some("AAAA"));
    set_header(&mut event, "X-Device-Id", Some("someone-else"));
    let seen = body_json(&call_issuer(&service, event).await);
    assert_eq!(seen["deviceIdHeader"], Value::Null);
    assert_eq!(seen["csr"], "AAAA");
}

#[tokio::test]
async fn a_spoofed_device_id_gets_the_csr_s_device_its_certificate_and_no_other() {
    let ports = MemoryPorts::new();
    let (header, id, key) = good_csr("python_p256_der_b64");
    let (_, other_id, other_key) = good_csr("openssl_p256_der_b64");
    ports.register(&id, &key, true);
    ports.register(&other_id, &other_key, true);
    let issuer = issuer(ports.ports(), flow_settings(100));
    let mut event = new_request(Some(&header));
    set_header(&mut event, "x-device-id", Some(&other_id));

    let response = call_issuer(&issuer, event).await;

    assert_eq!(response["statusCode"], 200, "{response}");
    let certificates = ports.registry.certificates.lock().unwrap();
    assert_eq!(certificates.len(), 1);
    assert_eq!(certificates[0].device_id, id);
}

#[tokio::test]
async fn a_request_without_the_origin_secret_is_403_forbidden_origin() {
    let ports = MemoryPorts::new();
    let (header, id, key) = good_csr("python_p256_der_b64");
    ports.register(&id, &key, true);
    let issuer = issuer(ports.ports(), flow_settings(100));
    for secret in [None, Some("wrong")] {
        let mut event = new_request(Some(&header));
        set_header(&mut event, "x-origin-secret", secret);
        let response = call_issuer(&issuer, event).await;
        assert_eq!(response["statusCode"], 403, "{response}");
        assert_eq!(body_json(&response)["error"], "forbidden_origin");
    }
    // The retrieval route has no authorizer: the issuer's own check is its only guard.
    let mut retrieval = fixture("issuer-retrieval-request");
    set_header(&mut retrieval, "x-origin-secret", None);
    let response = call_issuer(&issuer, retrieval).await;
    assert_eq!(response["statusCode"], 403);
    assert!(ports.registry.certificates.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_device_disabled_after_the_authorizer_allowed_it_gets_nothing() {
    let ports = MemoryPorts::new();
    let (header, id, key) = good_csr("python_p256_der_b64");
    // The fixture carries the authorizer's Allow for this device; it was disabled since.
    ports.register(&id, &key, false);
    let issuer = issuer(ports.ports(), flow_settings(100));
    let response = call_issuer(&issuer, new_request(Some(&header))).await;
    assert_eq!(response["statusCode"], 403);
    assert_eq!(body_json(&response)["error"], "device_disabled");
    assert_eq!(ports.authority.minted(), 0);
}

#[tokio::test]
async fn the_pem_chain_is_sent_as_text_not_base64() {
    let ports = MemoryPorts::new();
    let (header, id, key) = good_csr("python_p256_der_b64");
    ports.register(&id, &key, true);
    let issuer = issuer(ports.ports(), flow_settings(100));
    let mut event = new_request(Some(&header));
    set_header(&mut event, "Accept", Some("application/x-pem-file"));

    let response = call_issuer(&issuer, event).await;

    assert_eq!(response["statusCode"], 200);
    // API Gateway would pass a base64 body on verbatim unless the API listed the type
    // among its binary media types.
    assert_eq!(response["isBase64Encoded"], false, "{response}");
    let body = response["body"].as_str().unwrap();
    assert!(
        body.starts_with("CERT ") && body.ends_with("CHAIN\n"),
        "{body}"
    );
}

#[tokio::test]
async fn latent_delivery_returns_an_absolute_url_that_the_retrieval_route_honours() {
    let ports = MemoryPorts::new();
    let (header, id, key) = good_csr("python_p256_der_b64");
    ports.register(&id, &key, true);
    let issuer = issuer(ports.ports(), flow_settings(100));
    let mut event = new_request(Some(&header));
    set_query(&mut event, &[("delivery", "url")]);

    let response = call_issuer(&issuer, event).await;
    assert_eq!(response["statusCode"], 200, "{response}");
    let url = body_json(&response)["retrievalUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let rest = url
        .strip_prefix(&format!("{PUBLIC_URL}/certificates/"))
        .unwrap_or_else(|| panic!("{url}"));
    let (certificate_id, query) = rest.split_once('?').unwrap();
    let params: Vec<(&str, &str)> = query
        .split('&')
        .map(|p| p.split_once('=').unwrap())
        .collect();

    // The device fetches it: API Gateway hands the issuer the path and decoded query.
    let mut retrieval = fixture("issuer-retrieval-request");
    retrieval["path"] = Value::from(format!("/certificates/{certificate_id}"));
    retrieval["pathParameters"] = serde_json::json!({ "id": certificate_id });
    set_query(&mut retrieval, &params);
    let fetched = call_issuer(&issuer, retrieval.clone()).await;
    assert_eq!(fetched["statusCode"], 200, "{fetched}");
    assert_eq!(fetched["isBase64Encoded"], false);
    assert!(fetched["body"]
        .as_str()
        .unwrap()
        .starts_with(&format!("CERT {id}")));

    set_query(&mut retrieval, &[params[0]]);
    let unsigned = call_issuer(&issuer, retrieval).await;
    assert_eq!(unsigned["statusCode"], 403);
    assert_eq!(body_json(&unsigned)["error"], "invalid_retrieval_url");
}

#[tokio::test]
async fn the_failure_limit_counts_per_device_address_not_per_cloudfront_edge() {
    let ports = MemoryPorts::new();
    let issuer = issuer(ports.ports(), flow_settings(2));
    let from = |viewer: &str| {
        let mut event = new_request(None);
        set_header(&mut event, "CloudFront-Viewer-Address", Some(viewer));
        event
    };
    for _ in 0..2 {
        let response = call_issuer(&issuer, from("203.0.113.7:1000")).await;
        assert_eq!(response["statusCode"], 400);
    }
    let blocked = call_issuer(&issuer, from("203.0.113.7:1001")).await;
    assert_eq!(blocked["statusCode"], 429, "{blocked}");
    assert_eq!(body_json(&blocked)["error"], "too_many_failures");
    assert_eq!(
        response_header(&blocked, "retry-after").as_deref(),
        Some("60")
    );
    // Another device behind the same CloudFront edge (same sourceIp) is not blocked.
    let other = call_issuer(&issuer, from("198.51.100.23:2000")).await;
    assert_eq!(other["statusCode"], 400);
}

#[tokio::test]
async fn healthz_answers_through_api_gateway_too() {
    let ports = MemoryPorts::new();
    let issuer = issuer(ports.ports(), flow_settings(100));
    let mut event = fixture("issuer-retrieval-request");
    event["path"] = Value::from("/healthz");
    event["resource"] = Value::from("/healthz");
    let response = call_issuer(&issuer, event).await;
    assert_eq!(response["statusCode"], 200);
    assert_eq!(response["body"], "ok");
}
