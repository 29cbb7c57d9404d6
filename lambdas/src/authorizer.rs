//! The API Gateway REQUEST authorizer of `POST /new`: who may reach the issuer
//! (docs/ARCHITECTURE.md, "The flow of `POST /new`", step 2).
//!
//! | request | answer | API Gateway's response (infra/template.yaml) |
//! |---|---|---|
//! | origin secret configured, `x-origin-secret` absent or wrong | Deny, context `error = forbidden_origin` | 403 (ACCESS_DENIED) with the context's code and message |
//! | `device-csr` missing or malformed (anything but a bad signature) | Allow, context `malformed = "true"`, `error`, `message` | the issuer answers 400 with the same code |
//! | CSR signature does not verify | Deny, context `error = bad_signature` | 403 |
//! | device unknown | the error `Unauthorized` | 401 (UNAUTHORIZED), re-mapped to 404 `unknown_device` |
//! | device disabled | Deny, context `error = device_disabled` | 403 |
//! | key differs from the registered one | Deny, context `error = key_mismatch` | 403 |
//! | registry unreachable | an error | AUTHORIZER_FAILURE (the template: 503) |
//! | otherwise | Allow, context `deviceId`, `malformed = "false"` | the issuer runs the flow |
//!
//! The policy names the request's exact `methodArn`: with no identity source and TTL 0,
//! API Gateway caches nothing, so a wider resource would buy nothing.
//!
//! # Auditing: each request once
//!
//! The authorizer records the decisions that end at the gateway (every Deny and every
//! unknown device), since those requests never reach the issuer. What it lets through,
//! flagged or not, the issuer's flow decides again and records (issued, returned, or the
//! refusal it finds, including the 400 of a malformed request). So every request that
//! reaches API Gateway's authorizer is audited exactly once.

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use lambda_runtime::Diagnostic;
use provisioner_core::{
    AuditEvent, AuditLog, Clock, CsrError, CsrVerifier, DeviceRegistry, ErrorCode, PortError,
    Refusal, UnixTime,
};
use serde::{Deserialize, Serialize};

use crate::origin::{client_address, OriginSecret, FORBIDDEN_ORIGIN, FORBIDDEN_ORIGIN_MESSAGE};

/// The error message API Gateway maps to 401 (its UNAUTHORIZED gateway response): it
/// must be exactly this string.
pub const UNAUTHORIZED: &str = "Unauthorized";

/// The authorizer's context, as API Gateway passes it on (`$context.authorizer.<key>` in
/// gateway response templates, `requestContext.authorizer` for the issuer). API Gateway
/// takes only string, number or boolean values: every field is a string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerContext {
    /// The CSR's device id, when it verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// `"true"` when the request is let through only for the issuer to answer it 400.
    pub malformed: String,
    /// The refusal's stable code (Deny, or Allow flagged malformed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What to fix (with `error`), JSON-escaped without the quotes: the gateway
    /// response template pastes it verbatim between quotes (`"message":"$context...."`),
    /// and refusal messages quote device ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What the authorizer returns to API Gateway.
pub type AuthorizerResponse = ApiGatewayCustomAuthorizerResponse<AuthorizerContext>;

/// Why the authorizer returns no policy at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizerError {
    /// No device with the CSR's id: API Gateway answers 401, which the deployment's
    /// gateway response turns into 404 `unknown_device`.
    #[error("Unauthorized")]
    Unauthorized,
    /// The registry failed (API Gateway: AUTHORIZER_FAILURE).
    #[error("the device registry failed: {0}")]
    Registry(PortError),
    /// The event lacks what every REQUEST authorizer event has.
    #[error("not an API Gateway REQUEST authorizer event: {0}")]
    BadEvent(&'static str),
}

impl From<AuthorizerError> for Diagnostic {
    fn from(error: AuthorizerError) -> Self {
        let error_type = match error {
            AuthorizerError::Unauthorized => UNAUTHORIZED,
            AuthorizerError::Registry(_) => "RegistryUnavailable",
            AuthorizerError::BadEvent(_) => "BadEvent",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// The authorizer over the ports it needs: the registry, the audit log and the clock.
pub struct Authorizer<R, L, C> {
    registry: R,
    audit: L,
    clock: C,
    verifier: CsrVerifier,
    origin: OriginSecret,
}

impl<R: DeviceRegistry, L: AuditLog, C: Clock> Authorizer<R, L, C> {
    /// An authorizer checking CSRs with `verifier` (the issuance profile's policy, so both
    /// Lambdas agree on what is malformed) and requests against `origin`.
    pub fn new(
        registry: R,
        audit: L,
        clock: C,
        verifier: CsrVerifier,
        origin: OriginSecret,
    ) -> Self {
        Self {
            registry,
            audit,
            clock,
            verifier,
            origin,
        }
    }

    /// Decides one request (see the module docs for every answer).
    ///
    /// # Errors
    /// [`AuthorizerError::Unauthorized`] for an unknown device,
    /// [`AuthorizerError::Registry`] when the registry fails, and
    /// [`AuthorizerError::BadEvent`] for an event without a `methodArn`.
    pub async fn authorize(
        &self,
        event: ApiGatewayCustomAuthorizerRequestTypeRequest,
    ) -> Result<AuthorizerResponse, AuthorizerError> {
        let method_arn = event
            .method_arn
            .clone()
            .filter(|arn| !arn.is_empty())
            .ok_or(AuthorizerError::BadEvent("no methodArn"))?;
        let now = self.clock.now();
        let via_cloudfront = self.origin.admits(&event.headers);
        let source_ip = event
            .request_context
            .identity
            .as_ref()
            .and_then(|identity| identity.source_ip.as_deref());
        let remote = client_address(
            &event.headers,
            source_ip,
            via_cloudfront && self.origin.is_checked(),
        )
        .map(|ip| ip.to_string());
        let audit = |device_id: Option<String>, fingerprint: Option<String>, code: &'static str| {
            self.record(now, device_id, remote.clone(), fingerprint, code)
        };

        if !via_cloudfront {
            audit(None, None, FORBIDDEN_ORIGIN).await;
            return Ok(deny(
                &method_arn,
                None,
                FORBIDDEN_ORIGIN,
                FORBIDDEN_ORIGIN_MESSAGE.into(),
            ));
        }

        let header = match event.headers.get("device-csr").map(|v| v.to_str()) {
            None => "",
            Some(Ok(value)) => value,
            Some(Err(_)) => {
                return Ok(allow_malformed(
                    &method_arn,
                    "malformed_header",
                    "the device-csr header holds bytes that are not visible ASCII: send base64",
                ))
            }
        };
        let request = match self.verifier.verify_header(header) {
            Ok(request) => request,
            // A bad signature is no formatting slip: the sender has not shown it holds the
            // key, so it is refused here, as a key mismatch is.
            Err(error @ CsrError::BadSignature) => {
                audit(None, None, error.code()).await;
                return Ok(deny(&method_arn, None, error.code(), error.to_string()));
            }
            Err(error) => {
                return Ok(allow_malformed(
                    &method_arn,
                    error.code(),
                    &error.to_string(),
                ));
            }
        };

        let device_id = Some(request.device_id.clone());
        let fingerprint = Some(request.fingerprint.clone());
        let device = match self.registry.device(&request.device_id).await {
            Ok(Some(device)) => device,
            Ok(None) => {
                let refusal = Refusal::UnknownDevice(request.device_id.clone());
                audit(device_id, fingerprint, refusal.code()).await;
                return Err(AuthorizerError::Unauthorized);
            }
            Err(error) => {
                tracing::error!(%error, device_id = %request.device_id, "the registry failed");
                audit(device_id, fingerprint, "internal_error").await;
                return Err(AuthorizerError::Registry(error));
            }
        };
        let refusal = if device.enabled {
            request.check_registered_key(&device.public_key).err()
        } else {
            Some(Refusal::DeviceDisabled(device.device_id.clone()))
        };
        if let Some(refusal) = refusal {
            audit(device_id.clone(), fingerprint, refusal.code()).await;
            return Ok(deny(
                &method_arn,
                device_id,
                refusal.code(),
                refusal.to_string(),
            ));
        }
        Ok(policy(
            &method_arn,
            IamPolicyEffect::Allow,
            AuthorizerContext {
                device_id,
                malformed: "false".into(),
                error: None,
                message: None,
            },
        ))
    }

    async fn record(
        &self,
        at: UnixTime,
        device_id: Option<String>,
        remote_addr: Option<String>,
        fingerprint: Option<String>,
        code: &'static str,
    ) {
        let event = AuditEvent {
            at,
            device_id,
            decision: "deny",
            code: code.to_owned(),
            remote_addr,
            fingerprint,
            certificate_id: None,
        };
        // The decision stands without its record: a failing audit log is logged, and the
        // authorizer still answers.
        if let Err(error) = self.audit.record(event).await {
            tracing::error!(%error, "the audit log refused an event");
        }
    }
}

fn allow_malformed(method_arn: &str, code: &str, message: &str) -> AuthorizerResponse {
    policy(
        method_arn,
        IamPolicyEffect::Allow,
        AuthorizerContext {
            device_id: None,
            malformed: "true".into(),
            error: Some(code.to_owned()),
            message: Some(json_escaped(message)),
        },
    )
}

fn deny(
    method_arn: &str,
    device_id: Option<String>,
    code: &str,
    message: String,
) -> AuthorizerResponse {
    policy(
        method_arn,
        IamPolicyEffect::Deny,
        AuthorizerContext {
            device_id,
            malformed: "false".into(),
            error: Some(code.to_owned()),
            message: Some(json_escaped(&message)),
        },
    )
}

/// `text` as the inside of a JSON string literal: `device "d" is disabled` becomes
/// `device \"d\" is disabled`.
pub fn json_escaped(text: &str) -> String {
    let quoted = serde_json::Value::from(text).to_string();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(&quoted)
        .to_owned()
}

// The event types grow an `other` field under aws_lambda_events' `catch-all-fields`
// feature (which any crate in a build may turn on): `..Default::default()` keeps this
// compiling either way.
#[allow(clippy::needless_update)]
fn policy(
    method_arn: &str,
    effect: IamPolicyEffect,
    context: AuthorizerContext,
) -> AuthorizerResponse {
    ApiGatewayCustomAuthorizerResponse {
        principal_id: Some(
            context
                .device_id
                .clone()
                .unwrap_or_else(|| "anonymous".into()),
        ),
        policy_document: ApiGatewayCustomAuthorizerPolicy {
            version: Some("2012-10-17".into()),
            statement: vec![IamPolicyStatement {
                action: vec!["execute-api:Invoke".into()],
                effect,
                resource: vec![method_arn.to_owned()],
                ..Default::default()
            }],
            ..Default::default()
        },
        context,
        ..Default::default()
    }
}
