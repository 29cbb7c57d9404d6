//! The admin API in-process (`tower::ServiceExt::oneshot`), over a real SQLite registry and
//! a real on-disk development CA in a temporary directory; certificates are issued by the
//! real provisioning flow from CSRs made with rcgen, and CRLs are read back by OpenSSL.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use base64::Engine;
use provisioner_app::flow::{Adapters, FlowError, FlowSettings, Ports, Provisioner};
use provisioner_core::{IssuanceProfile, IssuanceRateLimit};
use provisioner_http::admin::{self, DASHBOARD_CSP};
use provisioner_store_local::authority::LocalAuthority;
use provisioner_store_local::datadir::DataDir;
use provisioner_store_local::registry::SqliteRegistry;
use provisioner_store_local::CurrentAuthority;
use rcgen::PublicKeyData;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{send, Answer, LocalAdmin, TestClock, NOW};

use admin_routes::ROUTES;
use provisioner_testkit::admin_routes;

/// The local adapters on the test clock.
struct TestAdapters;

impl Adapters for TestAdapters {
    type Registry = SqliteRegistry;
    type Authority = CurrentAuthority;
    type Things = SqliteRegistry;
    type Audit = SqliteRegistry;
    type Clock = Arc<TestClock>;
}

/// A simulated device: its id and secure-element key.
struct Device {
    id: String,
    key: rcgen::KeyPair,
}

impl Device {
    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            key: rcgen::KeyPair::generate().unwrap(),
        }
    }

    fn manifest_row(&self) -> String {
        let spki =
            base64::engine::general_purpose::STANDARD.encode(self.key.subject_public_key_info());
        format!("{},{spki}\n", self.id)
    }

    /// The `device-csr` header: base64 of the CSR DER, CN = the device id.
    fn csr_header(&self) -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, self.id.as_str());
        let csr = params.serialize_request(&self.key).unwrap();
        base64::engine::general_purpose::STANDARD.encode(csr.der())
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    data_dir: DataDir,
    registry: SqliteRegistry,
    clock: Arc<TestClock>,
    flow: Provisioner<TestAdapters>,
    router: Router,
    token: String,
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at(NOW);
    let LocalAdmin {
        data_dir,
        registry,
        token,
        context,
    } = LocalAdmin::new(dir.path(), clock.clone());
    let ports = Ports::<TestAdapters> {
        registry: registry.clone(),
        authority: CurrentAuthority::open(data_dir.ca_dir()).unwrap(),
        things: registry.clone(),
        audit: registry.clone(),
        clock: clock.clone(),
    };
    let flow = Provisioner::new(
        ports,
        FlowSettings {
            profile: IssuanceProfile::default(),
            rate_limit: IssuanceRateLimit { per_hour: 0 },
            failures_per_minute: 0,
            endpoint: "127.0.0.1:8883".into(),
            claim_wait: provisioner_app::flow::FlowSettings::DEFAULT_CLAIM_WAIT,
        },
    );
    Harness {
        router: admin::router(Arc::new(context)),
        _dir: dir,
        data_dir,
        registry,
        clock,
        flow,
        token,
    }
}

impl Harness {
    async fn request(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: impl Into<Body>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        send(&self.router, request.body(body.into()).unwrap()).await
    }

    async fn get(&self, path: &str) -> Answer {
        let bearer = format!("Bearer {}", self.token);
        self.request("GET", path, Some(&bearer), Body::empty())
            .await
    }

    async fn post(&self, path: &str, body: impl Into<Body>) -> Answer {
        let bearer = format!("Bearer {}", self.token);
        self.request("POST", path, Some(&bearer), body).await
    }

    /// Imports the devices through the API and checks that it was written.
    async fn import(&self, devices: &[Device]) {
        let csv: String = devices.iter().map(Device::manifest_row).collect();
        let answer = self
            .post("/admin/api/devices/import?name=fleet.csv", csv)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.json()["written"], true);
    }

    /// `GET certificates/{id}`, which must answer 200.
    async fn certificate(&self, certificate_id: &str) -> Value {
        let answer = self
            .get(&format!("/admin/api/certificates/{certificate_id}"))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.json()
    }

    /// A certificate for the device through the real flow: its certificate id.
    async fn provision(&self, device: &Device) -> Result<String, FlowError> {
        let header = device.csr_header();
        let provisioned = self.flow.provision(Some(&header), None).await?;
        Ok(provisioned.certificate_id)
    }
}

fn devices(prefix: &str, n: usize) -> Vec<Device> {
    (0..n)
        .map(|i| Device::new(&format!("{prefix}{i:03}")))
        .collect()
}

fn ids(page: &Value, field: &str) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn every_route_requires_the_bearer_token() {
    // given a registry with a device, so the right token reaches real answers
    let h = harness();
    h.import(&[Device::new("dev-1")]).await;
    let right = format!("Bearer {}", h.token);
    let wrong_token = format!("Bearer {}", "0".repeat(64));
    let lowercase_scheme = format!("bearer {}", h.token);
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{}", h.token))
    );

    for (method, path, _) in ROUTES {
        // when no header, another scheme, or a wrong token is sent
        for (authorization, invalid_token) in [
            (None, false),
            (Some(basic.as_str()), false),
            (Some("Bearer"), false),
            (Some(wrong_token.as_str()), true),
            (Some("Bearer "), true),
        ] {
            let answer = h.request(method, path, authorization, Body::empty()).await;
            // then it is 401 unauthorized with a Bearer challenge
            let context = format!("{method} {path} with {authorization:?}");
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{context}");
            assert_eq!(answer.code(), "unauthorized", "{context}");
            assert!(
                !answer.json()["message"].as_str().unwrap().is_empty(),
                "{context}"
            );
            let challenge = answer.headers["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Bearer "), "{context}: {challenge}");
            assert_eq!(
                challenge.contains(r#"error="invalid_token""#),
                invalid_token,
                "{context}: {challenge}"
            );
            assert!(!answer.body.contains(&h.token), "{context}");
        }

        // and with the right token (either case of the scheme) the route answers
        for authorization in [&right, &lowercase_scheme] {
            let answer = h
                .request(method, path, Some(authorization), Body::empty())
                .await;
            let context = format!("{method} {path}: {} {}", answer.status, answer.body);
            assert_ne!(answer.status, StatusCode::UNAUTHORIZED, "{context}");
            assert_ne!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{context}");
            assert!(!answer.status.is_server_error(), "{context}");
            if answer.status == StatusCode::NOT_FOUND {
                assert_ne!(answer.code(), "unknown_route", "{context}");
            }
            assert_eq!(answer.headers["cache-control"], "no-store", "{context}");
            if *path == "/admin/api/ca/rotate" {
                break; // a second POST would meet the running rotation
            }
        }
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_under_the_api_need_the_token_too_and_answer_json() {
    let h = harness();
    for path in ["/admin/api/nothing-here", "/admin/api", "/admin/api/"] {
        let answer = h.request("GET", path, None, Body::empty()).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let answer = h.get("/admin/api/nothing-here").await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::NOT_FOUND, "unknown_route")
    );
    let answer = h
        .request("DELETE", "/admin/api/devices", None, Body::empty())
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = h.post("/admin/api/devices", Body::empty()).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    // a path segment that is not UTF-8 is the caller's mistake too, answered in JSON
    let answer = h.get("/admin/api/devices/%FF%FE").await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_path")
    );
}

#[tokio::test]
async fn a_rotated_token_takes_effect_without_a_restart() {
    // given a router that has served the first token
    let h = harness();
    assert_eq!(h.get("/admin/api/devices").await.status, StatusCode::OK);

    // when the token is rotated (as `provisioner admin token --rotate` does)
    let rotated = String::from_utf8(h.data_dir.rotate_admin_token().unwrap()).unwrap();

    // then the old token is refused and the new one accepted, by the same router
    let old = h.get("/admin/api/devices").await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let new = h
        .request(
            "GET",
            "/admin/api/devices",
            Some(&format!("Bearer {rotated}")),
            Body::empty(),
        )
        .await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.body);
}

#[tokio::test]
async fn without_a_token_file_every_token_is_refused() {
    let h = harness();
    std::fs::remove_file(h.data_dir.admin_token_path()).unwrap();
    let answer = h.get("/admin/api/devices").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = h
        .request("GET", "/admin/api/devices", Some("Bearer "), Body::empty())
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn devices_are_listed_in_pages_without_repeats_until_the_cursor_runs_out() {
    // given 120 devices imported through the API
    let h = harness();
    let fleet = devices("sensor-", 120);
    h.import(&fleet).await;

    // when they are paged through 50 at a time
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut path = "/admin/api/devices?limit=50".to_owned();
    loop {
        let answer = h.get(&path).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let page = answer.json();
        let page_ids = ids(&page, "deviceId");
        sizes.push(page_ids.len());
        seen.extend(page_ids);
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/admin/api/devices?limit=50&cursor={cursor}"),
            None => {
                assert!(page["nextCursor"].is_null());
                break;
            }
        }
    }

    // then 50, 50, 20, in id order, each device once
    assert_eq!(sizes, [50, 50, 20]);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 120);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);

    // and without limit a page holds 50
    let page = h.get("/admin/api/devices").await.json();
    assert_eq!(ids(&page, "deviceId").len(), 50);
    assert!(page["nextCursor"].is_string());
}

#[tokio::test]
async fn device_filters_combine_and_bad_parameters_are_400_with_their_code() {
    let h = harness();
    let mut fleet = devices("a-", 3);
    fleet.extend(devices("b-", 2));
    h.import(&fleet).await;
    assert_eq!(
        h.post("/admin/api/devices/a-001/disable", Body::empty())
            .await
            .status,
        StatusCode::OK
    );

    let list = |query: &'static str| {
        let h = &h;
        async move {
            let answer = h.get(&format!("/admin/api/devices{query}")).await;
            assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.body);
            ids(&answer.json(), "deviceId")
        }
    };
    assert_eq!(list("?prefix=b-").await, ["b-000", "b-001"]);
    assert_eq!(list("?status=disabled").await, ["a-001"]);
    assert_eq!(list("?prefix=a-&status=enabled").await, ["a-000", "a-002"]);
    assert!(list("?prefix=zz").await.is_empty());

    for (query, code) in [
        ("?status=sleeping", "invalid_status"),
        ("?limit=0", "invalid_limit"),
        ("?limit=501", "invalid_limit"),
        ("?limit=ten", "invalid_limit"),
        ("?cursor=***", "invalid_cursor"),
        ("?cursor=bm90LWEtY3Vyc29y", "invalid_cursor"),
        ("?stauts=enabled", "invalid_query"),
    ] {
        let answer = h.get(&format!("/admin/api/devices{query}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(answer.code(), code, "{query}: {}", answer.body);
        assert!(!answer.json()["message"].as_str().unwrap().is_empty());
    }
    // a cursor of another list is not one of this list
    let audit_cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("a:5");
    let answer = h
        .get(&format!("/admin/api/devices?cursor={audit_cursor}"))
        .await;
    assert_eq!(answer.code(), "invalid_cursor");
}

#[tokio::test]
async fn a_device_shows_its_key_fingerprint_certificates_and_recent_decisions() {
    // given a device that got a certificate, and a refused request for it
    let h = harness();
    let device = Device::new("dev-1");
    h.import(std::slice::from_ref(&device)).await;
    let certificate_id = h.provision(&device).await.unwrap();
    let impostor = Device {
        id: "dev-1".into(),
        key: rcgen::KeyPair::generate().unwrap(),
    };
    assert!(h.provision(&impostor).await.is_err());

    // when it is read
    let answer = h.get("/admin/api/devices/dev-1").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let d = answer.json();

    // then everything about it is there
    assert_eq!(d["deviceId"], "dev-1");
    assert_eq!(d["enabled"], true);
    assert_eq!(d["sourceManifest"], "fleet.csv");
    assert_eq!(d["importedAt"], "2027-01-15T08:00:00Z");
    let spki = device.key.subject_public_key_info();
    assert_eq!(
        d["publicKey"],
        base64::engine::general_purpose::STANDARD.encode(&spki)
    );
    assert_eq!(d["keyFingerprint"], hex::encode(Sha256::digest(&spki)));
    let certificates = d["certificates"].as_array().unwrap();
    assert_eq!(certificates.len(), 1);
    assert_eq!(certificates[0]["certificateId"], certificate_id);
    assert_eq!(certificates[0]["status"], "ACTIVE");
    assert!(certificates[0].get("certificatePem").is_none());
    let audit = d["recentAudit"].as_array().unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(
        (audit[0]["decision"].as_str(), audit[0]["code"].as_str()),
        (Some("deny"), Some("key_mismatch"))
    );
    assert_eq!(audit[1]["decision"], "allow");
    assert_eq!(audit[1]["certificateId"], certificate_id);

    // and an unknown device is 404
    let answer = h.get("/admin/api/devices/nobody").await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::NOT_FOUND, "unknown_device")
    );
}

#[tokio::test]
async fn a_device_named_import_is_still_readable() {
    let h = harness();
    h.import(&[Device::new("import")]).await;
    let answer = h.get("/admin/api/devices/import").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.json()["deviceId"], "import");
}

#[tokio::test]
async fn a_dry_run_import_counts_but_writes_nothing() {
    let h = harness();
    let csv: String = devices("d-", 3).iter().map(Device::manifest_row).collect();

    let answer = h
        .post("/admin/api/devices/import?dryRun=true", csv.clone())
        .await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let summary = answer.json();
    assert_eq!(summary["imported"], 3);
    assert_eq!(summary["written"], false);
    assert_eq!(h.registry.count_devices().await.unwrap(), 0);
    let page = h.get("/admin/api/devices").await.json();
    assert!(ids(&page, "deviceId").is_empty());
}

#[tokio::test]
async fn an_import_with_a_conflict_or_an_invalid_row_is_422_with_the_summary() {
    // given a registered device
    let h = harness();
    let device = Device::new("dev-1");
    h.import(std::slice::from_ref(&device)).await;
    let other_key = Device::new("dev-1").manifest_row();

    // when the same id comes with another key, next to a new device
    let csv = format!("{}{other_key}", Device::new("dev-2").manifest_row());
    let answer = h.post("/admin/api/devices/import", csv.clone()).await;

    // then nothing is written and the summary says why
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    let body = answer.json();
    assert_eq!(body["error"], "import_refused");
    assert!(body["message"].as_str().unwrap().contains("replace=true"));
    let summary = &body["summary"];
    assert_eq!(summary["conflicts"], 1);
    assert_eq!(summary["written"], false);
    assert_eq!(summary["errors"][0]["error"], "key_conflict");
    assert_eq!(summary["errors"][0]["line"], 2);
    assert!(summary["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("replace=true"));
    assert_eq!(h.registry.count_devices().await.unwrap(), 1);

    // and with replace=true it goes through
    let answer = h.post("/admin/api/devices/import?replace=true", csv).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.json()["replaced"], 1);

    // and an invalid row refuses the whole file
    let csv = format!("{}dev-4,not-a-key\n", Device::new("dev-3").manifest_row());
    let answer = h.post("/admin/api/devices/import", csv).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.json()["summary"]["invalid"], 1);
    assert_eq!(h.registry.count_devices().await.unwrap(), 2);
}

#[tokio::test]
async fn imports_that_cannot_be_taken_are_400_with_their_code() {
    let h = harness();
    let row = Device::new("dev-1").manifest_row();
    let microchip = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/tests/manifests/valid.json"
    ))
    .unwrap();
    for (query, body, code) in [
        ("", Vec::new(), "empty_manifest"),
        ("", b"  \n".to_vec(), "empty_manifest"),
        ("?format=xml", row.clone().into_bytes(), "invalid_format"),
        (
            "?format=microchip",
            row.clone().into_bytes(),
            "unsupported_manifest_format",
        ),
        ("", microchip, "unsupported_manifest_format"),
        ("?dryRun=perhaps", row.clone().into_bytes(), "invalid_query"),
        ("?overwrite=true", row.into_bytes(), "invalid_query"),
    ] {
        let answer = h
            .post(&format!("/admin/api/devices/import{query}"), body)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            answer.body
        );
        assert_eq!(answer.code(), code, "{query}");
    }
    let answer = h
        .post(
            "/admin/api/devices/import?format=microchip",
            Device::new("x").manifest_row(),
        )
        .await;
    assert!(answer.json()["message"]
        .as_str()
        .unwrap()
        .contains("provisioner import --manifest-signer"));
    assert_eq!(h.registry.count_devices().await.unwrap(), 0);
}

#[tokio::test]
async fn a_disabled_device_is_refused_by_the_flow_until_enabled_again() {
    let h = harness();
    let device = Device::new("dev-1");
    h.import(std::slice::from_ref(&device)).await;

    let answer = h
        .post("/admin/api/devices/dev-1/disable", Body::empty())
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.json()["enabled"], false);
    let error = h.provision(&device).await.unwrap_err();
    assert_eq!(error.code(), "device_disabled");

    let answer = h
        .post("/admin/api/devices/dev-1/enable", Body::empty())
        .await;
    assert_eq!(answer.json()["enabled"], true);
    h.provision(&device).await.unwrap();

    for action in ["disable", "enable"] {
        let answer = h
            .post(
                &format!("/admin/api/devices/nobody/{action}"),
                Body::empty(),
            )
            .await;
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (StatusCode::NOT_FOUND, "unknown_device")
        );
    }
}

#[tokio::test]
async fn disabling_with_revoke_cuts_a_device_off_and_revokes_only_its_active_certificates() {
    // given a device whose first certificate was superseded by a renewal, and another
    // device with an ACTIVE certificate
    let h = harness();
    let fleet = [Device::new("dev-1"), Device::new("dev-2")];
    let (device, bystander) = (&fleet[0], &fleet[1]);
    h.import(&fleet).await;
    let superseded = h.provision(device).await.unwrap();
    h.clock.set(NOW + 340 * 86_400);
    let current = h.provision(device).await.unwrap();
    assert_ne!(current, superseded);
    let other = h.provision(bystander).await.unwrap();

    // when it is disabled with {"revoke": true}
    let answer = h
        .post("/admin/api/devices/dev-1/disable", r#"{"revoke": true}"#)
        .await;

    // then the answer is the device, disabled, and the one ACTIVE certificate revoked
    // for keyCompromise, the CRLs written
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["deviceId"], "dev-1");
    assert_eq!(body["enabled"], false);
    let revoked = body["revokedCertificates"].as_array().unwrap();
    assert_eq!(revoked.len(), 1, "{body}");
    assert_eq!(revoked[0]["certificate"]["certificateId"], current.as_str());
    assert_eq!(revoked[0]["certificate"]["status"], "REVOKED");
    assert_eq!(
        revoked[0]["certificate"]["revocationReason"],
        "keyCompromise"
    );
    assert_eq!(revoked[0]["alreadyRevoked"], false);
    assert_eq!(revoked[0]["propagated"], true);
    assert_eq!(revoked[0]["crlRegenerated"], true);

    // and the flow refuses the device, the superseded certificate keeps its reason, the
    // other device's certificate is untouched, and OpenSSL reads the serial on the CRL
    assert_eq!(
        h.provision(device).await.unwrap_err().code(),
        "device_disabled"
    );
    assert_eq!(
        h.certificate(&superseded).await["revocationReason"],
        "superseded"
    );
    assert_eq!(h.certificate(&other).await["status"], "ACTIVE");
    let serial = h.certificate(&current).await["serial"]
        .as_str()
        .unwrap()
        .trim_start_matches('0')
        .to_ascii_lowercase();
    let crl = h.get("/admin/api/ca/crl").await;
    let text = openssl_crl_text(&crl.body).to_ascii_lowercase();
    assert!(text.contains(&format!("serial number: {serial}")), "{text}");

    // and disabling again with revoke finds nothing left to revoke
    let again = h
        .post(
            "/admin/api/devices/dev-1/disable",
            r#"{"revoke": true, "reason": "cessationOfOperation"}"#,
        )
        .await
        .json();
    assert_eq!(again["revokedCertificates"], json!([]));

    // and enabled again, the device provisions a new certificate
    h.post("/admin/api/devices/dev-1/enable", Body::empty())
        .await;
    let fresh = h.provision(device).await.unwrap();
    assert_eq!(h.certificate(&fresh).await["status"], "ACTIVE");
}

#[tokio::test]
async fn disabling_without_revoke_leaves_certificates_and_a_bad_body_is_400() {
    // given a device with an ACTIVE certificate
    let h = harness();
    let device = Device::new("dev-1");
    h.import(std::slice::from_ref(&device)).await;
    let certificate_id = h.provision(&device).await.unwrap();
    let path = "/admin/api/devices/dev-1/disable";

    // when the body is malformed, then 400 with a stable code and nothing changes
    for (body, code) in [
        ("revoke", "invalid_body"),
        (r#"{"revoke": "yes"}"#, "invalid_body"),
        (r#"{"revoke": true, "extra": 1}"#, "invalid_body"),
        (r#"{"reason": "keyCompromise"}"#, "invalid_body"),
        (r#"{"revoke": true, "reason": "stolen"}"#, "invalid_reason"),
    ] {
        let answer = h.post(path, body).await;
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (StatusCode::BAD_REQUEST, code),
            "{body}: {}",
            answer.body
        );
        // The message says what to send: the body's shape, or the reasons.
        let message = answer.json()["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains("\"revoke\": true") || message.contains("keyCompromise"),
            "{body}: {message}"
        );
    }
    assert_eq!(
        h.get("/admin/api/devices/dev-1").await.json()["enabled"],
        true
    );

    // when disabled without a body, or with {"revoke": false}
    for body in ["", r#"{"revoke": false}"#] {
        let answer = h.post(path, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.json()["enabled"], false);
        assert_eq!(answer.json()["revokedCertificates"], json!([]));
    }

    // then the certificate stays ACTIVE; an unknown device with revoke is 404
    let certificate = h
        .get(&format!("/admin/api/certificates/{certificate_id}"))
        .await
        .json();
    assert_eq!(certificate["status"], "ACTIVE");
    let answer = h
        .post("/admin/api/devices/nobody/disable", r#"{"revoke": true}"#)
        .await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::NOT_FOUND, "unknown_device")
    );
}

// ---------------------------------------------------------------------------------------
// Certificates and the CA
// ---------------------------------------------------------------------------------------

/// `openssl crl -text` of a PEM CRL.
fn openssl_crl_text(pem: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crl.pem");
    std::fs::write(&path, pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["crl", "-noout", "-text", "-in"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn a_revoked_certificate_is_listed_on_the_crl_openssl_reads() {
    // given a certificate issued by the real flow
    let h = harness();
    let device = Device::new("dev-1");
    h.import(std::slice::from_ref(&device)).await;
    let certificate_id = h.provision(&device).await.unwrap();
    let before = h
        .get(&format!("/admin/api/certificates/{certificate_id}"))
        .await
        .json();
    assert_eq!(before["status"], "ACTIVE");
    assert!(before["certificatePem"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    let serial = before["serial"].as_str().unwrap().to_owned();

    // when it is revoked
    let path = format!("/admin/api/certificates/{certificate_id}/revoke");
    let answer = h.post(&path, r#"{"reason": "keyCompromise"}"#).await;

    // then it is REVOKED, and the current CA's CRL lists its serial
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let revoked = answer.json();
    assert_eq!(revoked["alreadyRevoked"], false);
    assert_eq!(revoked["crlRegenerated"], true);
    assert_eq!(revoked["certificate"]["status"], "REVOKED");
    assert_eq!(revoked["certificate"]["revocationReason"], "keyCompromise");
    let after = h
        .get(&format!("/admin/api/certificates/{certificate_id}"))
        .await
        .json();
    assert_eq!(after["status"], "REVOKED");
    assert_eq!(after["revokedAt"], "2027-01-15T08:00:00Z");

    let crl = h.get("/admin/api/ca/crl").await;
    assert_eq!(crl.status, StatusCode::OK, "{}", crl.body);
    assert_eq!(crl.headers["content-type"], "application/x-pem-file");
    let text = openssl_crl_text(&crl.body).to_ascii_lowercase();
    let serial = serial.trim_start_matches('0');
    assert!(
        text.contains(&format!("serial number: {serial}")),
        "{serial} not in\n{text}"
    );
    assert!(text.contains("key compromise"), "{text}");

    // and revoking again changes nothing
    let again = h.post(&path, r#"{"reason": "superseded"}"#).await.json();
    assert_eq!(again["alreadyRevoked"], true);
    assert_eq!(again["certificate"]["revocationReason"], "keyCompromise");
}

#[tokio::test]
async fn a_revocation_needs_a_known_reason_and_a_known_certificate() {
    let h = harness();
    let device = Device::new("dev-1");
    h.import(std::slice::from_ref(&device)).await;
    let certificate_id = h.provision(&device).await.unwrap();
    let path = format!("/admin/api/certificates/{certificate_id}/revoke");

    for body in [
        "",
        "not json",
        "{}",
        r#"{"reason": "lost it"}"#,
        r#"{"reason": 4}"#,
    ] {
        let answer = h.post(&path, body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.code(), "invalid_reason", "{body}");
        let message = answer.json()["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains("keyCompromise") && message.contains("cessationOfOperation"),
            "{message}"
        );
    }
    let answer = h
        .post(
            "/admin/api/certificates/nothing/revoke",
            r#"{"reason": "superseded"}"#,
        )
        .await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::NOT_FOUND, "unknown_certificate")
    );
    let answer = h.get("/admin/api/certificates/nothing").await;
    assert_eq!(answer.code(), "unknown_certificate");
    let status = h
        .get(&format!("/admin/api/certificates/{certificate_id}"))
        .await
        .json()["status"]
        .clone();
    assert_eq!(status, "ACTIVE");
}

#[tokio::test]
async fn certificates_are_paged_newest_first_and_filtered() {
    // given five devices with a certificate each, issued a minute apart, one revoked
    let h = harness();
    let fleet = devices("dev-", 5);
    h.import(&fleet).await;
    let mut issued = Vec::new();
    for (n, device) in fleet.iter().enumerate() {
        h.clock.set(NOW + 60 * n as i64);
        issued.push(h.provision(device).await.unwrap());
    }
    let revoke = format!("/admin/api/certificates/{}/revoke", issued[1]);
    assert_eq!(
        h.post(&revoke, r#"{"reason":"superseded"}"#).await.status,
        StatusCode::OK
    );

    // when they are paged two at a time
    let mut seen = Vec::new();
    let mut path = "/admin/api/certificates?limit=2".to_owned();
    loop {
        let page = h.get(&path).await.json();
        seen.extend(ids(&page, "certificateId"));
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/admin/api/certificates?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    // then newest first, each once
    let newest_first: Vec<String> = issued.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    // and the filters hold
    let list = |query: String| {
        let h = &h;
        async move {
            let answer = h.get(&format!("/admin/api/certificates{query}")).await;
            assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.body);
            ids(&answer.json(), "certificateId")
        }
    };
    assert_eq!(list("?status=revoked".into()).await, [issued[1].clone()]);
    assert_eq!(list("?status=ACTIVE".into()).await.len(), 4);
    assert_eq!(list("?device=dev-003".into()).await, [issued[3].clone()]);
    let ca_id = LocalAuthority::load(&h.data_dir.ca_dir())
        .unwrap()
        .id()
        .to_owned();
    assert_eq!(list(format!("?issuer={ca_id}")).await.len(), 5);
    assert!(list("?issuer=another-ca".into()).await.is_empty());

    for (query, code) in [
        ("?status=valid", "invalid_status"),
        ("?cursor=%%%", "invalid_cursor"),
        ("?limit=1000", "invalid_limit"),
    ] {
        let answer = h.get(&format!("/admin/api/certificates{query}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(answer.code(), code, "{query}");
    }
    let device_cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("d:dev-001");
    let answer = h
        .get(&format!("/admin/api/certificates?cursor={device_cursor}"))
        .await;
    assert_eq!(answer.code(), "invalid_cursor");
}

#[tokio::test]
async fn the_ca_shows_the_current_intermediate_and_its_chain() {
    let h = harness();
    let answer = h.get("/admin/api/ca").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let ca = answer.json();
    let authority = LocalAuthority::load(&h.data_dir.ca_dir()).unwrap();
    assert_eq!(ca["current"]["id"], authority.id());
    assert_eq!(ca["current"]["state"], "current");
    assert_eq!(ca["current"]["chainPem"], authority.chain_pem());
    assert!(ca["current"]["subject"].as_str().unwrap().contains("CN="));
    // (backdated five minutes from its creation)
    assert_eq!(ca["current"]["notBefore"], "2027-01-15T06:55:00Z");
    assert!(ca["previous"].as_array().unwrap().is_empty());
    assert_eq!(ca["rootKeyLocal"], true);
    assert_eq!(ca["canCreateNextCa"], true);
    assert_eq!(ca["backend"], "local");
    assert!(ca["current"]["arn"].is_null());
    assert!(ca["pendingCsr"].is_null());
}

#[tokio::test]
async fn the_ca_reports_each_crl_with_its_age_and_next_update() {
    // given a CA whose CRLs were never written
    let h = harness();
    let ca = h.get("/admin/api/ca").await.json();
    let crls = ca["crls"].as_array().unwrap();
    let issuers: Vec<&str> = crls.iter().map(|c| c["issuer"].as_str().unwrap()).collect();
    let authority = LocalAuthority::load(&h.data_dir.ca_dir()).unwrap();
    assert_eq!(issuers, [authority.id(), "root"]);
    assert!(crls
        .iter()
        .all(|c| c["thisUpdate"].is_null() && c["expiresSoon"] == true));

    // when GET ca/crl writes them, and a minute passes
    assert_eq!(h.get("/admin/api/ca/crl").await.status, StatusCode::OK);
    h.clock.0.store(NOW + 60, Ordering::SeqCst);

    // then each shows when it was signed, its age and the week it has left
    let ca = h.get("/admin/api/ca").await.json();
    for crl in ca["crls"].as_array().unwrap() {
        assert_eq!(crl["thisUpdate"], "2027-01-15T08:00:00Z", "{crl}");
        assert_eq!(crl["ageSecs"], 60);
        assert_eq!(crl["nextUpdate"], "2027-01-22T08:00:00Z");
        assert_eq!(crl["expiresInSecs"], 7 * 86_400 - 60);
        assert_eq!(crl["expiresSoon"], false);
        assert_eq!(crl["revoked"], 0);
    }
}

#[tokio::test]
async fn a_local_rotation_takes_no_target_and_a_malformed_body_is_400() {
    let h = harness();
    let named = h
        .post(
            "/admin/api/ca/rotate",
            r#"{"to": "arn:aws:acm-pca:eu-west-1:1:certificate-authority/x"}"#,
        )
        .await;
    assert_eq!(named.status, StatusCode::BAD_REQUEST);
    assert_eq!(named.code(), "unexpected_target_ca");
    for body in ["not json", r#"{"to": 3}"#, r#"{"target": "x"}"#] {
        let answer = h.post("/admin/api/ca/rotate", body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.code(), "invalid_body", "{body}");
    }
    // nothing started
    let status = h.get("/admin/api/ca/rotation").await;
    assert_eq!(status.status, StatusCode::NOT_FOUND);
    assert_eq!(status.code(), "no_rotation");
}

#[tokio::test]
async fn one_machine_has_no_regional_registrations() {
    let h = harness();
    let device = Device::new("dev-1");
    h.import(std::slice::from_ref(&device)).await;
    let certificate_id = h.provision(&device).await.unwrap();

    let listed = h.get("/admin/api/registrations").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.json(), json!({ "items": [], "nextCursor": null }));
    let retried = h
        .post("/admin/api/registrations/retry", Body::empty())
        .await;
    assert_eq!(retried.status, StatusCode::OK);
    assert_eq!(
        retried.json(),
        json!({ "attempted": 0, "done": 0, "failed": 0, "inFlight": 0, "more": false })
    );
    let certificate = h
        .get(&format!("/admin/api/certificates/{certificate_id}"))
        .await
        .json();
    assert_eq!(certificate["registrations"], json!([]));
    assert!(certificate["certificatePem"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    let bad = h.get("/admin/api/registrations?cursor=ZDp4").await;
    assert_eq!(bad.code(), "invalid_cursor", "a devices cursor is refused");
}

#[tokio::test]
async fn a_rotation_runs_in_the_background_and_revokes_what_the_old_ca_issued() {
    // given three devices with certificates from the first CA
    let h = harness();
    let fleet = devices("dev-", 3);
    h.import(&fleet).await;
    for device in &fleet {
        h.provision(device).await.unwrap();
    }
    let old_ca = LocalAuthority::load(&h.data_dir.ca_dir())
        .unwrap()
        .id()
        .to_owned();
    let answer = h.get("/admin/api/ca/rotation").await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::NOT_FOUND, "no_rotation")
    );

    // when a rotation is started
    h.clock.set(NOW + 600);
    let answer = h.post("/admin/api/ca/rotate", Body::empty()).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    assert_eq!(answer.headers["location"], "/admin/api/ca/rotation");
    let job_id = answer.json()["jobId"].as_str().unwrap().to_owned();

    // then it finishes, having revoked the three
    let mut status = Value::Null;
    for _ in 0..200 {
        status = h.get("/admin/api/ca/rotation").await.json();
        if status["state"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status["state"], "finished", "{status}");
    assert_eq!(status["finished"], true);
    assert_eq!(status["jobId"], job_id);
    assert_eq!(status["oldCa"], old_ca);
    assert_eq!(status["revoked"], 3);
    assert!(status["error"].is_null());
    let new_ca = status["newCa"].as_str().unwrap().to_owned();
    assert_ne!(new_ca, old_ca);

    // and the CA and the certificates say so
    let ca = h.get("/admin/api/ca").await.json();
    assert_eq!(ca["current"]["id"], new_ca);
    assert_eq!(ca["previous"][0]["id"], old_ca);
    assert_eq!(ca["previous"][0]["state"], "revoked");
    let revoked = h.get("/admin/api/certificates?status=revoked").await.json();
    assert_eq!(ids(&revoked, "certificateId").len(), 3);
    assert!(revoked["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["revocationReason"] == "superseded"));

    // and the devices get certificates from the new CA
    let again = h.provision(&fleet[0]).await.unwrap();
    let certificate = h
        .get(&format!("/admin/api/certificates/{again}"))
        .await
        .json();
    assert_eq!(certificate["issuer"], new_ca);
}

// ---------------------------------------------------------------------------------------
// Audit and statistics
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_audit_log_is_paged_newest_first() {
    let h = harness();
    let device = Device::new("dev-1");
    h.import(std::slice::from_ref(&device)).await;
    let stranger = Device::new("stranger");
    for n in 0..5 {
        h.clock.set(NOW + n);
        let _ = h.provision(&stranger).await;
    }
    h.clock.set(NOW + 10);
    h.provision(&device).await.unwrap();

    let first = h.get("/admin/api/audit?limit=4").await.json();
    let items = first["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["decision"], "allow");
    assert_eq!(items[0]["deviceId"], "dev-1");
    assert_eq!(items[1]["code"], "unknown_device");
    assert_eq!(items[1]["at"], "2027-01-15T08:00:04Z");
    let cursor = first["nextCursor"].as_str().unwrap();
    let rest = h
        .get(&format!("/admin/api/audit?limit=4&cursor={cursor}"))
        .await
        .json();
    assert_eq!(rest["items"].as_array().unwrap().len(), 2);
    assert!(rest["nextCursor"].is_null());
    assert_eq!(rest["items"][1]["at"], "2027-01-15T08:00:00Z");

    let of_device = h.get("/admin/api/audit?device=stranger").await.json();
    assert_eq!(of_device["items"].as_array().unwrap().len(), 5);
    let answer = h.get("/admin/api/audit?cursor=YTpub3Q").await;
    assert_eq!(answer.code(), "invalid_cursor");
}

#[tokio::test]
async fn issuance_statistics_count_allows_and_denies_per_hour() {
    // given decisions two hours ago and in the current hour
    let h = harness();
    let device = Device::new("dev-1");
    h.import(std::slice::from_ref(&device)).await;
    let stranger = Device::new("stranger");
    let hour = NOW - NOW % 3600;
    h.clock.set(hour - 2 * 3600 + 5);
    h.provision(&device).await.unwrap();
    let _ = h.provision(&stranger).await;
    let _ = h.provision(&stranger).await;
    h.clock.set(hour + 1);
    h.provision(&device).await.unwrap();
    // (outside the window asked for)
    h.clock.set(hour - 5 * 3600);
    let _ = h.provision(&stranger).await;
    h.clock.set(hour + 120);

    // when the last three hours are asked for
    let answer = h.get("/admin/api/stats/issuance?hours=3").await;

    // then there is one bucket per hour, oldest first, the last the current hour
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let buckets = answer.json();
    let expected = serde_json::json!([
        {"hour": "2027-01-15T06:00:00Z", "allow": 1, "deny": 2},
        {"hour": "2027-01-15T07:00:00Z", "allow": 0, "deny": 0},
        {"hour": "2027-01-15T08:00:00Z", "allow": 1, "deny": 0},
    ]);
    assert_eq!(buckets, expected);

    // and the default is a day, at most a week
    let day = h.get("/admin/api/stats/issuance").await.json();
    assert_eq!(day.as_array().unwrap().len(), 24);
    let week = h.get("/admin/api/stats/issuance?hours=168").await.json();
    assert_eq!(week.as_array().unwrap().len(), 168);
    for hours in ["0", "169", "a-day", "-1"] {
        let answer = h
            .get(&format!("/admin/api/stats/issuance?hours={hours}"))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{hours}");
        assert_eq!(answer.code(), "invalid_hours");
    }
}

// ---------------------------------------------------------------------------------------
// The dashboard placeholder and the OpenAPI document
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_dashboard_placeholder_says_how_to_build_it_under_a_strict_csp() {
    let h = harness();
    let answer = h.request("GET", "/", None, Body::empty()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-security-policy"], DASHBOARD_CSP);
    assert_eq!(
        DASHBOARD_CSP,
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
         form-action 'none'"
    );
    assert!(answer.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(answer.body.contains(admin::DASHBOARD_BUILD_COMMAND));
    assert!(!answer.body.contains("<script") && !answer.body.contains("style="));
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_only_those() {
    // given the document, fetched like any route (with the token)
    let h = harness();
    let answer = h.get("/admin/api/openapi.json").await;
    assert_eq!(answer.status, StatusCode::OK);
    let doc = answer.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], "/admin/api");
    assert_eq!(
        doc["components"]["securitySchemes"]["adminToken"]["scheme"],
        "bearer"
    );

    // then every route of the table is there with its method, may answer 401, and
    // every schema it refers to exists
    let mut described = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        described += item.as_object().unwrap().len();
        for method in item.as_object().unwrap().keys() {
            let listed = ROUTES
                .iter()
                .any(|(m, _, p)| p == path && m.eq_ignore_ascii_case(method));
            assert!(
                listed,
                "{method} {path} is described but not in the route table"
            );
        }
    }
    for (method, _, path) in ROUTES {
        let operation = &doc["paths"][path][method.to_ascii_lowercase()];
        assert!(operation.is_object(), "{method} {path} is not described");
        assert!(operation["operationId"].is_string(), "{method} {path}");
        assert!(operation["responses"]["401"].is_object(), "{method} {path}");
        let templated: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for name in templated {
            let declared = operation["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == name && p["in"] == "path");
            assert!(declared, "{method} {path}: path parameter {name}");
        }
    }
    assert_eq!(described, ROUTES.len());
    let text = doc.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "missing schema {name}"
        );
    }

    // and an independent validator accepts it, where one is installed
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, &answer.body).unwrap();
    let validated = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys\n\
             try:\n    from openapi_spec_validator import validate\n\
             except ImportError:\n    sys.exit(3)\n\
             validate(json.load(open(sys.argv[1])))",
        ])
        .arg(&path)
        .output();
    match validated.map(|out| (out.status.code(), out)) {
        Ok((Some(0), _)) => {}
        Ok((Some(3), _)) | Err(_) => {
            eprintln!("openapi-spec-validator is not installed: the document was not validated")
        }
        Ok((_, out)) => panic!(
            "openapi-spec-validator refuses the document:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
