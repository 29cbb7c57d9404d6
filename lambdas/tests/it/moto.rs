//! Both Lambdas' handlers over the real DynamoDB registry and audit log, against moto's
//! server (the SDK's wire protocol): the authorizer reads the devices a manifest import
//! wrote and records its denials in the audit table; the issuer records the certificate.
//! The CA and thing registry stay in memory (their AWS adapters have their own moto tests).
//!
//! Run by `scripts/test-aws.sh`, which starts moto and sets `AWS_ENDPOINT_URL`, dummy
//! credentials and `AWS_REGION`. Each test makes its own tables under a random prefix.

use crate::common;
use crate::moto_support::{import_devices, moto_endpoint};

use std::sync::Arc;

use aws_lambda_events::iam::IamPolicyEffect;
use common::*;
use provisioner_app::flow::{Adapters, Ports};
use provisioner_app::memory::{CountingAuthority, ManualClock, MemoryRegistry};
use provisioner_core::{CsrVerifier, DeviceKey, DeviceRegistry};
use provisioner_lambdas::authorizer::{Authorizer, AuthorizerError};
use provisioner_lambdas::origin::OriginSecret;
use provisioner_store_aws::dynamodb::{DynamoDbRegistry, DynamoDbTables};

/// DynamoDB for the registry and audit log, memory for the rest.
struct MotoAdapters;

impl Adapters for MotoAdapters {
    type Registry = DynamoDbRegistry;
    type Authority = Arc<CountingAuthority>;
    type Things = Arc<MemoryRegistry>;
    type Audit = DynamoDbRegistry;
    type Clock = Arc<ManualClock>;
}

/// Fresh tables holding `devices`, imported as a manifest is.
async fn registry_with(devices: &[(&str, &DeviceKey)]) -> DynamoDbRegistry {
    moto_endpoint();
    let prefix = format!("lambdas-{:016x}-", rand::random::<u64>());
    let registry = DynamoDbRegistry::from_env(DynamoDbTables::with_prefix(&prefix)).await;
    registry.create_tables().await.unwrap();
    import_devices(&registry, devices).await;
    registry
}

fn today() -> time::Date {
    time::OffsetDateTime::from_unix_timestamp(START)
        .unwrap()
        .date()
}

#[tokio::test]
async fn the_authorizer_decides_on_dynamodb_devices_and_audits_its_denials_there() {
    let (header, id, key) = good_csr("python_p256_der_b64");
    let (other_header, other_id, _) = good_csr("openssl_p256_der_b64");
    let (unknown_header, _, _) = good_csr("openssl_p256_secure_element_id");
    let unrelated = unrelated_key();
    let registry = registry_with(&[(&id, &key), (&other_id, &unrelated)]).await;
    let clock = Arc::new(ManualClock(START.into()));
    let authorizer = Authorizer::new(
        registry.clone(),
        registry.clone(),
        clock,
        CsrVerifier::default(),
        OriginSecret::new(Some(ORIGIN_SECRET)),
    );

    let allowed = authorizer
        .authorize(authorizer_event(Some(&header), Some(ORIGIN_SECRET)))
        .await
        .unwrap();
    assert_eq!(
        allowed.policy_document.statement[0].effect,
        IamPolicyEffect::Allow
    );
    assert_eq!(allowed.context.device_id.as_deref(), Some(id.as_str()));

    let mismatch = authorizer
        .authorize(authorizer_event(Some(&other_header), Some(ORIGIN_SECRET)))
        .await
        .unwrap();
    assert_eq!(
        mismatch.policy_document.statement[0].effect,
        IamPolicyEffect::Deny
    );
    assert_eq!(mismatch.context.error.as_deref(), Some("key_mismatch"));

    let unknown = authorizer
        .authorize(authorizer_event(Some(&unknown_header), Some(ORIGIN_SECRET)))
        .await
        .unwrap_err();
    assert_eq!(unknown, AuthorizerError::Unauthorized);

    let mut codes: Vec<String> = registry
        .audit_events_on(today())
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            assert_eq!(e.remote_addr.as_deref(), Some("203.0.113.7"));
            e.code
        })
        .collect();
    codes.sort();
    assert_eq!(codes, ["key_mismatch", "unknown_device"]);
}

#[tokio::test]
async fn the_issuer_answers_the_contract_json_and_records_the_certificate_in_dynamodb() {
    let (header, id, key) = good_csr("python_p256_der_b64");
    let registry = registry_with(&[(&id, &key)]).await;
    let memory = MemoryPorts::new();
    let ports = Ports::<MotoAdapters> {
        registry: registry.clone(),
        authority: memory.authority.clone(),
        things: memory.registry.clone(),
        audit: registry.clone(),
        clock: memory.clock.clone(),
    };
    let issuer = issuer(ports, flow_settings(100));
    let mut event = fixture("issuer-new-request");
    set_header(&mut event, "device-csr", Some(&header));
    set_header(&mut event, "x-device-id", Some("someone-else"));

    let response = call_issuer(&issuer, event.clone()).await;

    assert_eq!(response["statusCode"], 200, "{response}");
    let body = body_json(&response);
    for field in [
        "certificatePem",
        "caChainPem",
        "certificateId",
        "notAfter",
        "endpoint",
    ] {
        assert!(body[field].is_string(), "{field}: {body}");
    }
    let certificate_id = body["certificateId"].as_str().unwrap();
    let recorded = registry.certificate(certificate_id).await.unwrap().unwrap();
    assert_eq!(recorded.device_id, id);

    // A replay returns the same certificate, read back from DynamoDB.
    let again = body_json(&call_issuer(&issuer, event).await);
    assert_eq!(again["certificateId"], certificate_id);
    assert_eq!(memory.authority.minted(), 1);

    let audit = registry.audit_events_on(today()).await.unwrap();
    let mut codes: Vec<&str> = audit.iter().map(|e| e.code.as_str()).collect();
    codes.sort_unstable();
    assert_eq!(codes, ["issued", "returned"]);
}
