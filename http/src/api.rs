//! The device API over HTTP: `POST /new`, latent retrieval, `GET /healthz`.
//!
//! Every error leaves through [`ApiError`], the one place where refusals become HTTP:
//! a status, a `{error, message}` body with a stable code, and `Retry-After` where the
//! caller should come back.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use provisioner_core::{
    CertificateAuthority, CertificateStatus, Clock, DeviceRegistry, ErrorCode, PortError,
};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use provisioner_app::flow::{Adapters, FlowError, Provisioned, Provisioner};
use provisioner_app::latent::{
    CertificateStore, Publication, RetrievalError, UrlSigner, PENDING_PATH,
};

/// The PEM media type devices may ask for with `Accept`.
pub const PEM_MEDIA_TYPE: &str = "application/x-pem-file";

/// An error answer: status, stable code, message, and when to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code.
    pub code: &'static str,
    /// What to fix (never an internal cause).
    pub message: String,
    /// `Retry-After` seconds.
    pub retry_after_secs: Option<u64>,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    error: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorJson {
            error: self.code,
            message: &self.message,
        });
        let mut response = (self.status, body).into_response();
        if let Some(seconds) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<FlowError> for ApiError {
    fn from(error: FlowError) -> Self {
        match error {
            FlowError::Refused(refusal) => {
                let retry_after_secs = match &refusal {
                    provisioner_core::Refusal::RateLimited {
                        retry_after_secs, ..
                    } => Some(*retry_after_secs),
                    _ => None,
                };
                Self {
                    status: status(refusal.status()),
                    code: refusal.code(),
                    message: refusal.to_string(),
                    retry_after_secs,
                }
            }
            FlowError::TooManyFailures { retry_after_secs } => Self {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "too_many_failures",
                message: error.to_string(),
                retry_after_secs: Some(retry_after_secs),
            },
            FlowError::Port(PortError::Unavailable {
                what,
                retry_after_secs,
            }) => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "ca_unavailable",
                message: format!("{what} cannot issue now; retry later"),
                retry_after_secs: Some(retry_after_secs),
            },
            FlowError::IssuanceInProgress { retry_after_secs } => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "issuance_in_progress",
                message: error.to_string(),
                retry_after_secs: Some(retry_after_secs),
            },
            // Both are races another request won (the claim) or a rotation caused: the
            // retry, a second later, gets the certificate.
            FlowError::Port(PortError::ClaimLost { .. }) => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "issuance_in_progress",
                message:
                    "another request for this device was issued its certificate meanwhile; retry"
                        .into(),
                retry_after_secs: Some(1),
            },
            FlowError::Port(PortError::IssuerRetired { .. }) => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "ca_rotated",
                message: "the CA is being rotated; retry".into(),
                retry_after_secs: Some(1),
            },
            FlowError::Port(other) => {
                tracing::error!(error = %other, "internal error");
                Self::internal()
            }
        }
    }
}

impl ApiError {
    fn internal() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal_error",
            message: "the service failed; the error is logged".into(),
            retry_after_secs: None,
        }
    }

    fn forbidden(code: &'static str, message: String) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code,
            message,
            retry_after_secs: None,
        }
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
}

/// Everything the device routes need.
pub struct DeviceApi<B: Adapters> {
    /// The flow.
    pub provisioner: Provisioner<B>,
    /// Signs latent retrieval URLs.
    pub url_signer: UrlSigner,
    /// The service's own base URL (`http://host:port`), for retrieval URLs.
    pub public_url: String,
    /// Where latent delivery leaves certificates; `None`: the signed route above.
    pub certificate_store: Option<Arc<dyn CertificateStore>>,
}

/// Why [`DeviceApi::new`] cannot sign retrieval URLs with the key it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnusableUrlKey(String);

impl<B: Adapters> DeviceApi<B> {
    /// The device API over `provisioner`: latent retrieval URLs are signed with `url_key`,
    /// live `retrieval_ttl_secs` and start with `public_url` (empty: relative URLs);
    /// latent delivery uses the signed route until
    /// [`DeviceApi::with_certificate_store`] names a store. The one assembly `serve`
    /// (both backends) and the issuer Lambda share.
    ///
    /// # Errors
    /// [`UnusableUrlKey`] when `url_key` cannot key the URL signature.
    pub fn new(
        provisioner: Provisioner<B>,
        url_key: &[u8],
        retrieval_ttl_secs: i64,
        public_url: impl Into<String>,
    ) -> Result<Self, UnusableUrlKey> {
        Ok(Self {
            provisioner,
            url_signer: UrlSigner::new(url_key, retrieval_ttl_secs)
                .map_err(|e| UnusableUrlKey(e.to_string()))?,
            public_url: public_url.into(),
            certificate_store: None,
        })
    }

    /// Latent delivery leaves certificates in `store`; `None` keeps the signed route.
    #[must_use]
    pub fn with_certificate_store(mut self, store: Option<Arc<dyn CertificateStore>>) -> Self {
        self.certificate_store = store;
        self
    }

    /// The device router over this API ([`router`]).
    pub fn into_router(self) -> Router {
        router(Arc::new(self))
    }
}

/// The device API router.
pub fn router<B: Adapters>(api: Arc<DeviceApi<B>>) -> Router {
    Router::new()
        .route("/new", post(new_certificate::<B>))
        .route(PENDING_PATH, get(retrieve_pending::<B>))
        .route("/certificates/{certificate_id}", get(retrieve::<B>))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(api)
}

#[derive(Deserialize)]
struct NewQuery {
    delivery: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CertificateJson {
    certificate_pem: String,
    ca_chain_pem: String,
    certificate_id: String,
    not_after: String,
    endpoint: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RetrievalJson {
    retrieval_url: String,
    expires_at: String,
}

/// RFC 3339 UTC for Unix seconds (`2026-01-01T00:00:00Z`); the bare number if out of
/// range. The one time format every answer and command uses.
pub fn rfc3339(seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| seconds.to_string())
}

async fn new_certificate<B: Adapters>(
    State(api): State<Arc<DeviceApi<B>>>,
    connect_info: Option<Extension<ConnectInfo<SocketAddr>>>,
    Query(query): Query<NewQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let latent = match query.delivery.as_deref() {
        None | Some("inline") => false,
        Some("url") => true,
        Some(other) => {
            return Err(ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_delivery",
                message: format!("delivery={other:?} is not known: use delivery=url, or omit it"),
                retry_after_secs: None,
            })
        }
    };
    let header = match headers.get("device-csr") {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "malformed_header",
            message:
                "the device-csr header holds bytes that are not visible ASCII: send base64".into(),
            retry_after_secs: None,
        })?),
    };
    let remote = connect_info.map(|Extension(ConnectInfo(address))| address.ip().to_string());
    let provisioned = match api.provisioner.provision(header, remote.as_deref()).await {
        Ok(provisioned) => provisioned,
        // The CA is still signing (or throttled), or another request for the device is
        // being issued: a latent device gets the URL that will hold its certificate
        // instead of a 503.
        Err(
            FlowError::Port(PortError::Unavailable { .. }) | FlowError::IssuanceInProgress { .. },
        ) if latent => {
            let now = api.provisioner.ports().clock.now();
            let csr = provisioner_core::decode_header(header.unwrap_or(""))
                .map_err(|e| ApiError::from(FlowError::Refused(e.into())))?;
            let signed = api
                .url_signer
                .sign_pending(&URL_SAFE_NO_PAD.encode(csr), now);
            return Ok(Json(RetrievalJson {
                retrieval_url: format!("{}{}", api.public_url, signed.path_and_query),
                expires_at: rfc3339(signed.expires_at),
            })
            .into_response());
        }
        Err(e) => return Err(e.into()),
    };

    if latent {
        let now = api.provisioner.ports().clock.now();
        let publication = match &api.certificate_store {
            Some(store) => {
                let pem = format!(
                    "{}{}",
                    provisioned.certificate_pem, provisioned.ca_chain_pem
                );
                store
                    .publish(
                        &provisioned.certificate_id,
                        &pem,
                        api.url_signer.ttl_secs(),
                        now,
                    )
                    .await
                    .map_err(|e| ApiError::from(FlowError::Port(e)))?
            }
            None => {
                let signed = api.url_signer.sign(&provisioned.certificate_id, now);
                Publication {
                    url: format!("{}{}", api.public_url, signed.path_and_query),
                    expires_at: signed.expires_at,
                }
            }
        };
        return Ok(Json(RetrievalJson {
            retrieval_url: publication.url,
            expires_at: rfc3339(publication.expires_at),
        })
        .into_response());
    }
    if wants_pem(&headers) {
        return Ok(pem_response(&provisioned));
    }
    Ok(Json(CertificateJson {
        not_after: rfc3339(provisioned.not_after),
        certificate_pem: provisioned.certificate_pem,
        ca_chain_pem: provisioned.ca_chain_pem,
        certificate_id: provisioned.certificate_id,
        endpoint: provisioned.endpoint,
    })
    .into_response())
}

fn wants_pem(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains(PEM_MEDIA_TYPE))
}

fn pem_response(provisioned: &Provisioned) -> Response {
    pem_body(format!(
        "{}{}",
        provisioned.certificate_pem, provisioned.ca_chain_pem
    ))
}

fn pem_body(body: String) -> Response {
    ([(CONTENT_TYPE, PEM_MEDIA_TYPE)], body).into_response()
}

#[derive(Deserialize)]
struct PendingQuery {
    csr: Option<String>,
    expires: Option<i64>,
    signature: Option<String>,
}

/// A pending issuance's URL: the request again, now that the CA may have finished; 202
/// with `Retry-After` while it still cannot answer.
async fn retrieve_pending<B: Adapters>(
    State(api): State<Arc<DeviceApi<B>>>,
    connect_info: Option<Extension<ConnectInfo<SocketAddr>>>,
    Query(query): Query<PendingQuery>,
) -> Result<Response, ApiError> {
    let (Some(csr), Some(expires), Some(signature)) = (query.csr, query.expires, query.signature)
    else {
        return Err(ApiError::forbidden(
            "invalid_retrieval_url",
            "the retrieval URL lacks its csr, expires or signature parameter: use it exactly as returned".into(),
        ));
    };
    let now = api.provisioner.ports().clock.now();
    api.url_signer
        .verify_pending(&csr, expires, &signature, now)
        .map_err(retrieval_refused)?;
    let remote = connect_info.map(|Extension(ConnectInfo(address))| address.ip().to_string());
    match api
        .provisioner
        .provision(Some(&csr), remote.as_deref())
        .await
    {
        Ok(provisioned) => Ok(pem_response(&provisioned)),
        Err(
            FlowError::Port(PortError::Unavailable {
                retry_after_secs, ..
            })
            | FlowError::IssuanceInProgress { retry_after_secs },
        ) => {
            let mut response = (
                StatusCode::ACCEPTED,
                Json(ErrorJson {
                    error: "certificate_pending",
                    message: "the CA is still issuing this certificate: fetch this URL again after Retry-After",
                }),
            )
                .into_response();
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
            Ok(response)
        }
        Err(e) => Err(e.into()),
    }
}

fn retrieval_refused(e: RetrievalError) -> ApiError {
    let code = match e {
        RetrievalError::BadSignature => "invalid_retrieval_url",
        RetrievalError::Expired => "retrieval_url_expired",
    };
    ApiError::forbidden(code, e.to_string())
}

#[derive(Deserialize)]
struct RetrievalQuery {
    expires: Option<i64>,
    signature: Option<String>,
}

async fn retrieve<B: Adapters>(
    State(api): State<Arc<DeviceApi<B>>>,
    Path(certificate_id): Path<String>,
    Query(query): Query<RetrievalQuery>,
) -> Result<Response, ApiError> {
    let ports = api.provisioner.ports();
    let (Some(expires), Some(signature)) = (query.expires, query.signature) else {
        return Err(ApiError::forbidden(
            "invalid_retrieval_url",
            "the retrieval URL lacks its expires and signature parameters: use it exactly as returned".into(),
        ));
    };
    api.url_signer
        .verify(&certificate_id, expires, &signature, ports.clock.now())
        .map_err(retrieval_refused)?;
    let certificate = ports
        .registry
        .certificate(&certificate_id)
        .await
        .map_err(|e| ApiError::from(FlowError::Port(e)))?
        .ok_or_else(|| ApiError {
            status: StatusCode::NOT_FOUND,
            code: "unknown_certificate",
            message: "no such certificate".into(),
            retry_after_secs: None,
        })?;
    if certificate.status == CertificateStatus::Revoked {
        return Err(ApiError::forbidden(
            "certificate_revoked",
            "this certificate has been revoked: request a new one with POST /new".into(),
        ));
    }
    let chain = ports
        .authority
        .chain_pem()
        .await
        .map_err(|e| ApiError::from(FlowError::Port(e)))?;
    Ok(pem_body(format!("{}{chain}", certificate.certificate_pem)))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use provisioner_core::{Device, DeviceKey, IssuanceProfile, IssuanceRateLimit};
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use provisioner_app::flow::{FlowSettings, Ports};
    use provisioner_app::memory::{CountingAuthority, ManualClock, MemoryAdapters, MemoryRegistry};

    const VECTORS: &str = include_str!("../../core/tests/vectors/vectors.json");
    const START: i64 = 1_800_000_000;

    /// A good CSR header from the independent vectors, its device id and key.
    fn good_vector(name: &str) -> (String, String, DeviceKey) {
        let all: Value = serde_json::from_str(VECTORS).unwrap();
        let v = all["csr"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap();
        let expect = &v["expect"];
        (
            v["header"].as_str().unwrap().to_owned(),
            expect["deviceId"].as_str().unwrap().to_owned(),
            DeviceKey::parse(expect["publicKey"].as_str().unwrap()).unwrap(),
        )
    }

    #[test]
    fn races_and_rotations_are_503_with_a_retry_a_second_later() {
        for (error, code) in [
            (
                FlowError::IssuanceInProgress {
                    retry_after_secs: 1,
                },
                "issuance_in_progress",
            ),
            (
                FlowError::Port(PortError::ClaimLost {
                    device_id: "dev-1".into(),
                }),
                "issuance_in_progress",
            ),
            (
                FlowError::Port(PortError::IssuerRetired {
                    issuer: "ca-1".into(),
                }),
                "ca_rotated",
            ),
        ] {
            let answer = ApiError::from(error);
            assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(answer.code, code);
            assert_eq!(answer.retry_after_secs, Some(1));
        }
    }

    struct Harness {
        registry: Arc<MemoryRegistry>,
        authority: Arc<CountingAuthority>,
        clock: Arc<ManualClock>,
        router: Router,
    }

    fn harness(settings: impl FnOnce(&mut FlowSettings)) -> Harness {
        let registry = Arc::new(MemoryRegistry::default());
        let authority = Arc::new(CountingAuthority::default());
        let clock = Arc::new(ManualClock(AtomicI64::new(START)));
        let mut flow_settings = FlowSettings {
            profile: IssuanceProfile::default(),
            rate_limit: IssuanceRateLimit { per_hour: 10 },
            failures_per_minute: 100,
            endpoint: "mqtt.example:8883".into(),
            claim_wait: FlowSettings::DEFAULT_CLAIM_WAIT,
        };
        settings(&mut flow_settings);
        let ports = Ports::<MemoryAdapters> {
            registry: registry.clone(),
            authority: authority.clone(),
            things: registry.clone(),
            audit: registry.clone(),
            clock: clock.clone(),
        };
        let api = DeviceApi::new(
            Provisioner::new(ports, flow_settings),
            b"test key",
            600,
            "http://127.0.0.1:9",
        )
        .unwrap();
        Harness {
            registry,
            authority,
            clock,
            router: api.into_router(),
        }
    }

    impl Harness {
        fn register(&self, device_id: &str, key: &DeviceKey, enabled: bool) {
            self.registry.devices.lock().unwrap().insert(
                device_id.to_owned(),
                Device {
                    device_id: device_id.to_owned(),
                    public_key: key.clone(),
                    enabled,
                },
            );
        }

        async fn send(&self, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
            let response = self.router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, headers, String::from_utf8(body.to_vec()).unwrap())
        }

        async fn post_new(
            &self,
            header: Option<&str>,
            query: &str,
        ) -> (StatusCode, HeaderMap, String) {
            let mut request = Request::post(format!("/new{query}"));
            if let Some(header) = header {
                request = request.header("device-csr", header);
            }
            self.send(request.body(Body::empty()).unwrap()).await
        }
    }

    fn json(body: &str) -> Value {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    #[tokio::test]
    async fn a_registered_device_gets_a_certificate_and_then_the_same_one_again() {
        let h = harness(|_| {});
        let (header, id, key) = good_vector("openssl_p256_der_b64");
        h.register(&id, &key, true);

        let (status, _, body) = h.post_new(Some(&header), "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let first = json(&body);
        assert_eq!(first["caChainPem"], "CHAIN\n");
        assert_eq!(first["endpoint"], "mqtt.example:8883");
        assert_eq!(first["notAfter"], rfc3339(START + 365 * 86_400));
        assert!(first["certificatePem"].as_str().unwrap().contains(&id));

        let (status, _, body) = h.post_new(Some(&header), "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json(&body)["certificateId"], first["certificateId"]);
        assert_eq!(
            h.registry.certificates.lock().unwrap().len(),
            1,
            "a replay issues nothing"
        );
        let things = h.registry.things.lock().unwrap();
        assert_eq!(
            things[&id],
            vec![first["certificateId"].as_str().unwrap().to_owned()]
        );
    }

    #[tokio::test]
    async fn inside_the_renewal_window_the_device_rotates_and_the_old_certificate_is_superseded() {
        let h = harness(|_| {});
        let (header, id, key) = good_vector("openssl_p256_der_b64");
        h.register(&id, &key, true);
        let first = json(&h.post_new(Some(&header), "").await.2);
        h.clock.advance(340 * 86_400);
        let (status, _, body) = h.post_new(Some(&header), "").await;
        assert_eq!(status, StatusCode::OK);
        assert_ne!(json(&body)["certificateId"], first["certificateId"]);
        let certificates = h.registry.certificates.lock().unwrap();
        let old = certificates
            .iter()
            .find(|c| c.certificate_id == first["certificateId"])
            .unwrap();
        assert_eq!(old.status, CertificateStatus::Revoked);
        assert_eq!(
            old.revoked.unwrap().1,
            provisioner_core::RevocationReason::Superseded
        );
    }

    #[tokio::test]
    async fn a_revoked_certificate_is_replaced_even_when_the_same_csr_comes_back_at_once() {
        let h = harness(|_| {});
        let (header, id, key) = good_vector("openssl_p256_der_b64");
        h.register(&id, &key, true);
        let first = json(&h.post_new(Some(&header), "").await.2);
        for certificate in h.registry.certificates.lock().unwrap().iter_mut() {
            certificate.status = CertificateStatus::Revoked;
        }
        h.clock.advance(10);
        let (status, _, body) = h.post_new(Some(&header), "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // Same CSR, same fingerprint: only the device's history in the idempotency key
        // keeps a deduplicating CA from handing back the revoked certificate.
        assert_ne!(json(&body)["certificateId"], first["certificateId"]);
        assert_eq!(h.authority.minted(), 2);
    }

    #[tokio::test]
    async fn every_refusal_maps_to_its_status_and_code() {
        let h = harness(|_| {});
        let (header, id, _) = good_vector("openssl_p256_der_b64");
        let (other_header, other_id, other_key) = good_vector("python_p256_der_b64");
        let all: Value = serde_json::from_str(VECTORS).unwrap();
        let mismatch = all["authorize"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "authorize_key_mismatch")
            .unwrap();
        let unrelated_key = DeviceKey::parse(mismatch["registeredKey"].as_str().unwrap()).unwrap();
        h.register(&id, &unrelated_key, true);
        h.register(&other_id, &other_key, false);
        let cases: [(Option<&str>, u16, &str); 6] = [
            (None, 400, "missing_header"),
            (Some("not*base64!"), 400, "malformed_header"),
            (Some("MIIB"), 400, "malformed_csr"),
            (Some(&header), 403, "key_mismatch"),
            (Some(&other_header), 403, "device_disabled"),
            (
                Some(&good_vector("openssl_p256_secure_element_id").0),
                404,
                "unknown_device",
            ),
        ];
        for (value, status, code) in cases {
            let (got, _, body) = h.post_new(value, "").await;
            assert_eq!(got.as_u16(), status, "{code}: {body}");
            let body = json(&body);
            assert_eq!(body["error"], code);
            assert!(!body["message"].as_str().unwrap().is_empty());
        }
        let audit = h.registry.audit.lock().unwrap();
        assert_eq!(audit.len(), 6);
        assert!(audit.iter().all(|e| e.decision == "deny"));
        assert_eq!(audit[3].code, "key_mismatch");
        assert_eq!(audit[3].device_id.as_deref(), Some(id.as_str()));
        assert!(audit[3].fingerprint.is_some());
    }

    #[tokio::test]
    async fn an_unknown_delivery_mode_is_a_400() {
        let h = harness(|_| {});
        let (status, _, body) = h.post_new(None, "?delivery=carrier-pigeon").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(json(&body)["error"], "invalid_delivery");
    }

    #[tokio::test]
    async fn too_many_new_certificates_is_429_with_retry_after() {
        let h = harness(|s| {
            s.profile.renew_within_secs = s.profile.validity_secs;
            s.rate_limit = IssuanceRateLimit { per_hour: 2 };
        });
        let (header, id, key) = good_vector("openssl_p256_der_b64");
        h.register(&id, &key, true);
        for _ in 0..2 {
            assert_eq!(h.post_new(Some(&header), "").await.0, StatusCode::OK);
            h.clock.advance(60);
        }
        let (status, headers, body) = h.post_new(Some(&header), "").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(json(&body)["error"], "rate_limited");
        assert_eq!(headers[RETRY_AFTER], "3480");
    }

    #[tokio::test]
    async fn a_ca_that_cannot_issue_now_is_503_with_retry_after() {
        let h = harness(|_| {});
        let (header, id, key) = good_vector("openssl_p256_der_b64");
        h.register(&id, &key, true);
        h.authority.unavailable.store(true, Ordering::SeqCst);
        let (status, headers, body) = h.post_new(Some(&header), "").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json(&body)["error"], "ca_unavailable");
        assert_eq!(headers[RETRY_AFTER], "7");
    }

    #[tokio::test]
    async fn a_latent_device_gets_a_url_that_finishes_an_issuance_the_ca_could_not() {
        let h = harness(|_| {});
        let (header, id, key) = good_vector("openssl_p256_der_b64");
        h.register(&id, &key, true);
        h.authority.unavailable.store(true, Ordering::SeqCst);
        let (status, _, body) = h.post_new(Some(&header), "?delivery=url").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let url = json(&body)["retrievalUrl"].as_str().unwrap().to_owned();
        let path = url.strip_prefix("http://127.0.0.1:9").unwrap().to_owned();
        assert!(path.starts_with("/certificates/pending?csr="), "{path}");
        let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();

        // Still unavailable: 202, come back later; nothing was issued.
        let (status, headers, body) = h.send(get(&path)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(json(&body)["error"], "certificate_pending");
        assert_eq!(headers[RETRY_AFTER], "7");
        assert!(h.registry.certificates.lock().unwrap().is_empty());

        // The CA has caught up: the same URL returns the certificate and its chain.
        h.authority.unavailable.store(false, Ordering::SeqCst);
        let (status, headers, body) = h.send(get(&path)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers[CONTENT_TYPE], PEM_MEDIA_TYPE);
        assert!(
            body.starts_with("CERT ") && body.ends_with("CHAIN\n"),
            "{body}"
        );
        assert_eq!(h.registry.certificates.lock().unwrap().len(), 1);

        // Another request in the URL, or an expired one, is refused.
        let forged = path.replacen("csr=", "csr=A", 1);
        let (status, _, body) = h.send(get(&forged)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(json(&body)["error"], "invalid_retrieval_url");
        h.clock.advance(601);
        let (status, _, body) = h.send(get(&path)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(json(&body)["error"], "retrieval_url_expired");
    }

    #[tokio::test]
    async fn the_pem_chain_is_returned_when_asked_for() {
        let h = harness(|_| {});
        let (header, id, key) = good_vector("openssl_p256_der_b64");
        h.register(&id, &key, true);
        let request = Request::post("/new")
            .header("device-csr", &header)
            .header(ACCEPT, PEM_MEDIA_TYPE)
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = h.send(request).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[CONTENT_TYPE], PEM_MEDIA_TYPE);
        assert!(
            body.starts_with("CERT ") && body.ends_with("CHAIN\n"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_signed_retrieval_url_returns_the_chain_until_it_expires_and_refuses_tampering() {
        let h = harness(|_| {});
        let (header, id, key) = good_vector("openssl_p256_der_b64");
        h.register(&id, &key, true);
        let (status, _, body) = h.post_new(Some(&header), "?delivery=url").await;
        assert_eq!(status, StatusCode::OK);
        let answer = json(&body);
        assert_eq!(answer["expiresAt"], rfc3339(START + 600));
        let url = answer["retrievalUrl"].as_str().unwrap();
        let path = url.strip_prefix("http://127.0.0.1:9").unwrap().to_owned();
        let get = |path: String| Request::get(path).body(Body::empty()).unwrap();

        for _ in 0..2 {
            let (status, _, body) = h.send(get(path.clone())).await;
            assert_eq!(status, StatusCode::OK);
            assert!(body.starts_with("CERT ") && body.ends_with("CHAIN\n"));
        }
        let tampered = path.replace("expires=", "expires=9");
        let (status, _, body) = h.send(get(tampered)).await;
        assert_eq!(
            (status, json(&body)["error"].clone()),
            (StatusCode::FORBIDDEN, "invalid_retrieval_url".into())
        );
        let unsigned = path.split('?').next().unwrap().to_owned();
        assert_eq!(h.send(get(unsigned)).await.0, StatusCode::FORBIDDEN);
        h.clock.advance(600);
        let (status, _, body) = h.send(get(path)).await;
        assert_eq!(
            (status, json(&body)["error"].clone()),
            (StatusCode::FORBIDDEN, "retrieval_url_expired".into())
        );
    }

    #[tokio::test]
    async fn an_address_that_keeps_failing_is_told_to_wait() {
        let h = harness(|s| s.failures_per_minute = 2);
        let from = |addr: &str| {
            let mut request = Request::post("/new").body(Body::empty()).unwrap();
            let address: SocketAddr = addr.parse().unwrap();
            request.extensions_mut().insert(ConnectInfo(address));
            request
        };
        assert_eq!(
            h.send(from("192.0.2.1:1000")).await.0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            h.send(from("192.0.2.1:1001")).await.0,
            StatusCode::BAD_REQUEST
        );
        let (status, headers, body) = h.send(from("192.0.2.1:1002")).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(json(&body)["error"], "too_many_failures");
        assert_eq!(headers[RETRY_AFTER], "60");
        assert_eq!(
            h.send(from("192.0.2.2:1000")).await.0,
            StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test]
    async fn healthz_answers_ok() {
        let h = harness(|_| {});
        let (status, _, body) = h
            .send(Request::get("/healthz").body(Body::empty()).unwrap())
            .await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    }
}
