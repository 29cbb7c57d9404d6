//! The REQUEST authorizer in-process, on API Gateway's event (tests/fixtures), over the
//! in-memory registry and audit log: every decision, the exact `Unauthorized` error, the
//! context API Gateway's gateway responses read, and which decisions it audits.

use crate::common;

use aws_lambda_events::iam::IamPolicyEffect;
use common::*;
use lambda_runtime::Diagnostic;
use provisioner_app::memory::{ManualClock, MemoryRegistry};
use provisioner_core::{
    CertificateRecord, CsrVerifier, Device, DeviceRegistry, PortError, UnixTime,
};
use provisioner_lambdas::authorizer::{Authorizer, AuthorizerError, AuthorizerResponse};
use provisioner_lambdas::origin::OriginSecret;
use std::sync::Arc;

type MemoryAuthorizer = Authorizer<Arc<MemoryRegistry>, Arc<MemoryRegistry>, Arc<ManualClock>>;

fn authorizer(ports: &MemoryPorts) -> MemoryAuthorizer {
    Authorizer::new(
        ports.registry.clone(),
        ports.registry.clone(),
        ports.clock.clone(),
        CsrVerifier::default(),
        OriginSecret::new(Some(ORIGIN_SECRET)),
    )
}

const METHOD_ARN: &str = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/POST/new";

fn effect(response: &AuthorizerResponse) -> &IamPolicyEffect {
    let statement = &response.policy_document.statement;
    assert_eq!(statement.len(), 1);
    assert_eq!(statement[0].resource, [METHOD_ARN]);
    assert_eq!(statement[0].action, ["execute-api:Invoke"]);
    &statement[0].effect
}

#[tokio::test]
async fn a_registered_device_with_its_key_is_allowed_with_its_id_in_the_context() {
    let ports = MemoryPorts::new();
    let (header, id, key) = good_csr("python_p256_der_b64");
    ports.register(&id, &key, true);

    let response = authorizer(&ports)
        .authorize(authorizer_event(Some(&header), Some(ORIGIN_SECRET)))
        .await
        .unwrap();

    assert_eq!(effect(&response), &IamPolicyEffect::Allow);
    assert_eq!(response.principal_id.as_deref(), Some(id.as_str()));
    assert_eq!(response.context.device_id.as_deref(), Some(id.as_str()));
    assert_eq!(response.context.malformed, "false");
    // The wire shape API Gateway reads: PascalCase policy, string-only context.
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(json["policyDocument"]["Version"], "2012-10-17");
    assert_eq!(json["policyDocument"]["Statement"][0]["Effect"], "Allow");
    assert_eq!(
        json["context"],
        serde_json::json!({"deviceId": id, "malformed": "false"})
    );
    // Allowed requests are audited by the issuer, once.
    assert!(ports.registry.audit.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unknown_device_is_the_exact_unauthorized_error_and_is_audited() {
    let ports = MemoryPorts::new();
    let (header, id, _) = good_csr("openssl_p256_der_b64");

    let error = authorizer(&ports)
        .authorize(authorizer_event(Some(&header), Some(ORIGIN_SECRET)))
        .await
        .unwrap_err();

    assert_eq!(error, AuthorizerError::Unauthorized);
    // API Gateway turns only this exact error message into its 401 (then our 404).
    let diagnostic = Diagnostic::from(error);
    assert_eq!(diagnostic.error_message, "Unauthorized");
    let audit = ports.registry.audit.lock().unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].decision, audit[0].code.as_str()),
        ("deny", "unknown_device")
    );
    assert_eq!(audit[0].device_id.as_deref(), Some(id.as_str()));
    assert!(audit[0].fingerprint.is_some());
    // The device's address, not the CloudFront edge's sourceIp.
    assert_eq!(audit[0].remote_addr.as_deref(), Some("203.0.113.7"));
}

#[tokio::test]
async fn a_key_mismatch_is_denied_with_its_code_and_message_in_the_context() {
    let ports = MemoryPorts::new();
    let (header, id, _) = good_csr("openssl_p256_der_b64");
    ports.register(&id, &unrelated_key(), true);

    let response = authorizer(&ports)
        .authorize(authorizer_event(Some(&header), Some(ORIGIN_SECRET)))
        .await
        .unwrap();

    assert_eq!(effect(&response), &IamPolicyEffect::Deny);
    assert_eq!(response.context.error.as_deref(), Some("key_mismatch"));
    assert!(response.context.message.as_deref().unwrap().contains(&id));
    let audit = ports.registry.audit.lock().unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].code, "key_mismatch");
}

#[tokio::test]
async fn a_disabled_device_is_denied_device_disabled() {
    let ports = MemoryPorts::new();
    let (header, id, key) = good_csr("openssl_p256_der_b64");
    ports.register(&id, &key, false);

    let response = authorizer(&ports)
        .authorize(authorizer_event(Some(&header), Some(ORIGIN_SECRET)))
        .await
        .unwrap();

    assert_eq!(effect(&response), &IamPolicyEffect::Deny);
    assert_eq!(response.context.error.as_deref(), Some("device_disabled"));
    assert_eq!(
        ports.registry.audit.lock().unwrap()[0].code,
        "device_disabled"
    );

    // What the device receives: infra/template.yaml's ACCESS_DENIED template, whose
    // variables API Gateway replaces verbatim, must come out as JSON.
    let template =
        r#"{"error":"$context.authorizer.error","message":"$context.authorizer.message"}"#;
    let body = template
        .replace(
            "$context.authorizer.error",
            response.context.error.as_deref().unwrap(),
        )
        .replace(
            "$context.authorizer.message",
            response.context.message.as_deref().unwrap(),
        );
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "device_disabled");
    assert_eq!(body["message"], format!("device {id:?} is disabled"));
}

#[tokio::test]
async fn a_bad_signature_is_denied_not_passed_on() {
    let ports = MemoryPorts::new();
    let (header, code) = bad_csr("bad_signature");
    assert_eq!(code, "bad_signature");

    let response = authorizer(&ports)
        .authorize(authorizer_event(Some(&header), Some(ORIGIN_SECRET)))
        .await
        .unwrap();

    assert_eq!(effect(&response), &IamPolicyEffect::Deny);
    assert_eq!(response.context.error.as_deref(), Some("bad_signature"));
    assert_eq!(response.context.malformed, "false");
    assert_eq!(
        ports.registry.audit.lock().unwrap()[0].code,
        "bad_signature"
    );
}

#[tokio::test]
async fn malformed_and_missing_headers_are_allowed_through_flagged_for_the_issuer() {
    let ports = MemoryPorts::new();
    let cases = [
        (Some(bad_csr("header_not_base64")), "malformed_header"),
        (Some(bad_csr("truncated")), "malformed_csr"),
        (Some(bad_csr("cn_slash")), "invalid_device_id"),
        (
            Some(bad_csr("openssl_p256_san_dns")),
            "subject_alt_name_requested",
        ),
        (Some(bad_csr("header_too_large")), "header_too_large"),
        (None, "missing_header"),
    ];
    for (csr, code) in cases {
        let header = csr.as_ref().map(|(header, _)| header.as_str());
        let response = authorizer(&ports)
            .authorize(authorizer_event(header, Some(ORIGIN_SECRET)))
            .await
            .unwrap();
        assert_eq!(effect(&response), &IamPolicyEffect::Allow, "{code}");
        assert_eq!(response.context.malformed, "true", "{code}");
        assert_eq!(response.context.error.as_deref(), Some(code));
        assert!(!response.context.message.as_deref().unwrap().is_empty());
        assert_eq!(response.context.device_id, None);
    }
    // The issuer answers these 400 and audits them there.
    assert!(ports.registry.audit.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_request_without_the_origin_secret_or_with_a_wrong_one_is_denied_forbidden_origin() {
    let ports = MemoryPorts::new();
    let (header, id, key) = good_csr("python_p256_der_b64");
    ports.register(&id, &key, true);

    for secret in [None, Some("test-origin-secret-0123456789abcdeX"), Some("")] {
        let response = authorizer(&ports)
            .authorize(authorizer_event(Some(&header), secret))
            .await
            .unwrap();
        assert_eq!(effect(&response), &IamPolicyEffect::Deny, "{secret:?}");
        assert_eq!(response.context.error.as_deref(), Some("forbidden_origin"));
        assert!(response
            .context
            .message
            .as_deref()
            .unwrap()
            .contains("CloudFront"));
    }
    let audit = ports.registry.audit.lock().unwrap();
    assert_eq!(audit.len(), 3);
    assert!(audit.iter().all(|e| e.code == "forbidden_origin"));
    // Without the secret, CloudFront-Viewer-Address is anyone's to write: sourceIp counts.
    assert_eq!(audit[0].remote_addr.as_deref(), Some("130.176.1.10"));
}

#[tokio::test]
async fn without_a_configured_secret_nothing_is_checked() {
    let ports = MemoryPorts::new();
    let (header, id, key) = good_csr("python_p256_der_b64");
    ports.register(&id, &key, true);
    let open = Authorizer::new(
        ports.registry.clone(),
        ports.registry.clone(),
        ports.clock.clone(),
        CsrVerifier::default(),
        OriginSecret::new(None),
    );
    let response = open
        .authorize(authorizer_event(Some(&header), None))
        .await
        .unwrap();
    assert_eq!(effect(&response), &IamPolicyEffect::Allow);
}

/// A registry that is down, as DynamoDB is when throttled past the SDK's retries.
struct FailingRegistry;

impl DeviceRegistry for FailingRegistry {
    async fn device(&self, _: &str) -> Result<Option<Device>, PortError> {
        Err(PortError::Internal(
            "ProvisionedThroughputExceededException".into(),
        ))
    }
    async fn certificates_of(
        &self,
        _: &str,
        _: UnixTime,
    ) -> Result<Vec<CertificateRecord>, PortError> {
        unreachable!("the authorizer reads devices only")
    }
    async fn certificate(&self, _: &str) -> Result<Option<CertificateRecord>, PortError> {
        unreachable!("the authorizer reads devices only")
    }
    async fn claim_issuance(
        &self,
        _: &str,
        _: &str,
        _: UnixTime,
        _: i64,
    ) -> Result<provisioner_core::ClaimOutcome, PortError> {
        unreachable!("the authorizer issues nothing")
    }
    async fn release_claim(&self, _: &provisioner_core::IssuanceClaim) -> Result<(), PortError> {
        unreachable!("the authorizer issues nothing")
    }
    async fn record_issuance(
        &self,
        _: CertificateRecord,
        _: Vec<String>,
        _: &provisioner_core::IssuanceClaim,
        _: UnixTime,
    ) -> Result<(), PortError> {
        unreachable!("the authorizer writes no certificates")
    }
}

#[tokio::test]
async fn a_failing_registry_is_an_error_never_an_allow() {
    let ports = MemoryPorts::new();
    let (header, _, _) = good_csr("python_p256_der_b64");
    let authorizer = Authorizer::new(
        FailingRegistry,
        ports.registry.clone(),
        ports.clock.clone(),
        CsrVerifier::default(),
        OriginSecret::new(Some(ORIGIN_SECRET)),
    );
    let error = authorizer
        .authorize(authorizer_event(Some(&header), Some(ORIGIN_SECRET)))
        .await
        .unwrap_err();
    assert!(matches!(error, AuthorizerError::Registry(_)));
    // Not "Unauthorized": API Gateway answers AUTHORIZER_FAILURE, not unknown_device.
    assert_ne!(Diagnostic::from(error).error_message, "Unauthorized");
}

#[tokio::test]
async fn an_event_without_a_method_arn_is_refused_as_a_bad_event() {
    let ports = MemoryPorts::new();
    let mut event = authorizer_event(None, Some(ORIGIN_SECRET));
    event.method_arn = None;
    let error = authorizer(&ports).authorize(event).await.unwrap_err();
    assert_eq!(Diagnostic::from(error).error_type, "BadEvent");
}
