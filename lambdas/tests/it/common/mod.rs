//! What the Lambda tests share: the independent CSR vectors, the API Gateway fixtures,
//! the in-memory ports, and a call through `lambda_http` exactly as the runtime makes it.

#![allow(dead_code)] // each test file uses a part

use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent, Service};
use provisioner_app::flow::{Adapters, FlowSettings, Ports, Provisioner};
use provisioner_app::memory::{CountingAuthority, ManualClock, MemoryAdapters, MemoryRegistry};
use provisioner_core::{Device, DeviceKey, IssuanceProfile, IssuanceRateLimit};
use provisioner_http::api::DeviceApi;
use provisioner_lambdas::issuer::IssuerService;
use provisioner_lambdas::origin::OriginSecret;
use serde_json::Value;

/// The origin secret the fixtures carry.
pub const ORIGIN_SECRET: &str = "test-origin-secret-0123456789abcdef";
/// The devices' base URL the issuer tests configure.
pub const PUBLIC_URL: &str = "https://provisioning.example.com";
/// The tests' clock start.
pub const START: i64 = 1_800_000_000;

const VECTORS: &str = include_str!("../../../../core/tests/vectors/vectors.json");

fn vectors() -> Value {
    serde_json::from_str(VECTORS).unwrap()
}

fn find(section: &str, name: &str) -> Value {
    vectors()[section]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no vector {section}/{name}"))
        .clone()
}

/// A good CSR header from the independent vectors, its device id and key.
pub fn good_csr(name: &str) -> (String, String, DeviceKey) {
    let v = find("csr", name);
    (
        v["header"].as_str().unwrap().to_owned(),
        v["expect"]["deviceId"].as_str().unwrap().to_owned(),
        DeviceKey::parse(v["expect"]["publicKey"].as_str().unwrap()).unwrap(),
    )
}

/// The header of a refused CSR vector and the code it is refused with.
pub fn bad_csr(name: &str) -> (String, String) {
    let v = find("csr", name);
    (
        v["header"].as_str().unwrap().to_owned(),
        v["expect"]["error"].as_str().unwrap().to_owned(),
    )
}

/// A key unrelated to the vectors' CSRs (the key-mismatch vector's registered key).
pub fn unrelated_key() -> DeviceKey {
    DeviceKey::parse(
        find("authorize", "authorize_key_mismatch")["registeredKey"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

/// A fixture of `tests/fixtures/`, as JSON.
pub fn fixture(name: &str) -> Value {
    let text = match name {
        "authorizer-request" => include_str!("../../fixtures/authorizer-request.json"),
        "issuer-new-request" => include_str!("../../fixtures/issuer-new-request.json"),
        "issuer-retrieval-request" => include_str!("../../fixtures/issuer-retrieval-request.json"),
        "admin-api-request" => include_str!("../../fixtures/admin-api-request.json"),
        "maintenance-schedule" => include_str!("../../fixtures/maintenance-schedule.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

/// Sets (or, with `None`, removes) a header in both `headers` and `multiValueHeaders`,
/// whatever the case of the name already there.
pub fn set_header(event: &mut Value, name: &str, value: Option<&str>) {
    for (field, wrap) in [("headers", false), ("multiValueHeaders", true)] {
        if event[field].is_null() {
            event[field] = serde_json::json!({});
        }
        let map = event[field].as_object_mut().unwrap();
        map.retain(|k, _| !k.eq_ignore_ascii_case(name));
        if let Some(value) = value {
            let v = if wrap {
                serde_json::json!([value])
            } else {
                Value::from(value)
            };
            map.insert(name.to_owned(), v);
        }
    }
}

/// Sets the query string parameters (single-valued) of a proxy event.
pub fn set_query(event: &mut Value, pairs: &[(&str, &str)]) {
    let single: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    let multi: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::json!([v])))
        .collect();
    event["queryStringParameters"] = Value::Object(single);
    event["multiValueQueryStringParameters"] = Value::Object(multi);
}

/// The authorizer fixture with `device-csr` set (or absent) and the origin secret given.
pub fn authorizer_event(
    csr: Option<&str>,
    origin_secret: Option<&str>,
) -> ApiGatewayCustomAuthorizerRequestTypeRequest {
    let mut event = fixture("authorizer-request");
    set_header(&mut event, "device-csr", csr);
    set_header(&mut event, "x-origin-secret", origin_secret);
    serde_json::from_value(event).unwrap()
}

/// The in-memory ports, with their handles.
pub struct MemoryPorts {
    pub registry: Arc<MemoryRegistry>,
    pub authority: Arc<CountingAuthority>,
    pub clock: Arc<ManualClock>,
}

impl MemoryPorts {
    pub fn new() -> Self {
        Self {
            registry: Arc::new(MemoryRegistry::default()),
            authority: Arc::new(CountingAuthority::default()),
            clock: Arc::new(ManualClock(AtomicI64::new(START))),
        }
    }

    pub fn ports(&self) -> Ports<MemoryAdapters> {
        Ports {
            registry: self.registry.clone(),
            authority: self.authority.clone(),
            things: self.registry.clone(),
            audit: self.registry.clone(),
            clock: self.clock.clone(),
        }
    }

    pub fn register(&self, device_id: &str, key: &DeviceKey, enabled: bool) {
        self.registry.devices.lock().unwrap().insert(
            device_id.to_owned(),
            Device {
                device_id: device_id.to_owned(),
                public_key: key.clone(),
                enabled,
            },
        );
    }
}

/// The flow settings of the tests: the defaults, a known endpoint.
pub fn flow_settings(failures_per_minute: u32) -> FlowSettings {
    FlowSettings {
        profile: IssuanceProfile::default(),
        rate_limit: IssuanceRateLimit { per_hour: 10 },
        failures_per_minute,
        endpoint: "a1b2c3-ats.iot.eu-west-1.amazonaws.com:8883".into(),
        claim_wait: provisioner_app::flow::FlowSettings::DEFAULT_CLAIM_WAIT,
    }
}

/// The issuer over `ports`, checking the fixtures' origin secret.
pub fn issuer<B: Adapters>(ports: Ports<B>, settings: FlowSettings) -> IssuerService {
    let api = DeviceApi::new(
        Provisioner::new(ports, settings),
        b"test retrieval key",
        600,
        PUBLIC_URL,
    )
    .unwrap();
    IssuerService::new(Arc::new(api), OriginSecret::new(Some(ORIGIN_SECRET)))
}

/// Runs `event` through `lambda_http` (event JSON -> request -> the issuer -> the
/// response JSON API Gateway receives), as `lambda_http::run` does for each invocation.
pub async fn call_issuer(service: &IssuerService, event: Value) -> Value {
    let request: LambdaRequest = serde_json::from_value(event).unwrap();
    let mut adapter = lambda_http::Adapter::from(service.clone());
    let response = adapter
        .call(LambdaEvent::new(request, Context::default()))
        .await
        .unwrap();
    serde_json::to_value(response).unwrap()
}

/// The JSON body of a proxy response.
pub fn body_json(response: &Value) -> Value {
    assert_eq!(response["isBase64Encoded"], false, "{response}");
    let body = response["body"]
        .as_str()
        .unwrap_or_else(|| panic!("no body: {response}"));
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// One header value of a proxy response (`lambda_http` puts them in multiValueHeaders).
pub fn response_header(response: &Value, name: &str) -> Option<String> {
    response["multiValueHeaders"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v[0].as_str().unwrap().to_owned())
}
