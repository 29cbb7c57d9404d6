//! The admin API as the dashboard sees it: the JSON shapes of `http/src/admin.rs`
//! (`/admin/api/openapi.json` describes them) and [`Session`], which sends requests
//! with the admin token and turns every failure into an [`ApiError`] to show.
//!
//! The bearer (the admin token, or a Cognito ID token when signed in through the hosted
//! UI, see [`crate::oidc`]) lives in `sessionStorage` only: it goes when the tab closes.
//! A 401 from any route forgets it and sends the user back to the sign-in page.

use gloo_net::http::{Request, RequestBuilder};
use leptos::prelude::*;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Where the admin API is mounted (the dashboard is served by the same origin).
pub const API_PREFIX: &str = "/admin/api";

/// The `sessionStorage` key holding the bearer: the admin token or a Cognito ID token.
pub const TOKEN_KEY: &str = "provisioner-admin-token";

/// The `sessionStorage` key holding where sign-out goes after forgetting the bearer
/// (Cognito's logout URL), when signed in through the hosted UI.
pub const LOGOUT_KEY: &str = "provisioner-admin-logout";

/// What the sign-in page says when a Cognito session ran out (401 `invalid_token`,
/// reason `expired`).
pub const SESSION_EXPIRED: &str = "Your session expired. Sign in again.";

/// A failed request, ready to be shown: never the raw answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status, or 0 when no answer arrived.
    pub status: u16,
    /// The service's stable code (`unauthorized`, `registry_busy`, ...), or one of the
    /// dashboard's own: `unreachable`, `unexpected_answer`.
    pub code: String,
    /// What went wrong and what to do, in words.
    pub message: String,
}

impl ApiError {
    /// The request never got an answer (the service is down, or the network is).
    pub fn unreachable() -> Self {
        Self {
            status: 0,
            code: "unreachable".into(),
            message: "The service cannot be reached. Is `provisioner serve` running?".into(),
        }
    }

    /// Reads an answer with a status outside 2xx: the service's `{error, message}` when
    /// the body is one, otherwise a sentence naming the status (the body itself, HTML
    /// or JSON from a proxy, is never shown).
    pub fn from_answer(status: u16, body: &str) -> Self {
        #[derive(Deserialize)]
        struct Body {
            error: String,
            message: String,
        }
        match serde_json::from_str::<Body>(body) {
            Ok(b) if !b.message.is_empty() => Self {
                status,
                code: b.error,
                message: b.message,
            },
            _ => Self {
                status,
                code: "unexpected_answer".into(),
                message: format!(
                    "The service answered HTTP {status} without an explanation. Its log says more."
                ),
            },
        }
    }

    /// A 2xx answer whose body is not the expected shape (a dashboard older or newer
    /// than the service).
    pub fn unreadable(status: u16) -> Self {
        Self {
            status,
            code: "unexpected_answer".into(),
            message: "The service's answer could not be read: is the dashboard the same version as the service?".into(),
        }
    }

    /// Whether this is the service refusing the token.
    pub fn is_unauthorized(&self) -> bool {
        self.status == 401
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// One page of a list: `{items, nextCursor}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The cursor of the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

/// A registered device.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// The device id (the certificate's CN).
    pub device_id: String,
    /// Base64 SPKI DER.
    pub public_key: String,
    /// Hex SHA-256 of the SPKI DER.
    pub key_fingerprint: String,
    /// Whether the device may be issued certificates.
    pub enabled: bool,
    /// The manifest it was imported from.
    pub source_manifest: Option<String>,
    /// RFC 3339.
    pub imported_at: String,
}

/// The answer of `POST devices/{id}/disable`: the device, and the certificates revoked
/// when `{"revoke": true}` was sent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisabledDevice {
    /// The device as it is now.
    #[serde(flatten)]
    pub device: Device,
    /// Every certificate the request revoked (empty without `revoke`; absent from a
    /// service that predates it).
    #[serde(default)]
    pub revoked_certificates: Vec<Revoked>,
}

/// An issued certificate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    /// Hex SHA-256 of the certificate DER (its fingerprint).
    pub certificate_id: String,
    /// The device it was issued to.
    pub device_id: String,
    /// Hex serial number.
    pub serial: String,
    /// The issuing CA.
    pub issuer: String,
    /// Base64 SPKI DER of the device key.
    pub public_key: String,
    /// RFC 3339.
    pub issued_at: String,
    /// RFC 3339.
    pub not_before: String,
    /// RFC 3339.
    pub not_after: String,
    /// `ACTIVE`, `INACTIVE` or `REVOKED`.
    pub status: String,
    /// RFC 3339, when revoked.
    pub revoked_at: Option<String>,
    /// The RFC 5280 reason name, when revoked.
    pub revocation_reason: Option<String>,
    /// The PEM, in `GET certificates/{id}` only.
    #[serde(default)]
    pub certificate_pem: Option<String>,
    /// Its registration with IoT Core in each region, in `GET certificates/{id}` only
    /// (always empty on the local backend).
    #[serde(default)]
    pub registrations: Vec<Registration>,
}

/// A device certificate's registration with IoT Core in one region (AWS backend):
/// the rows of `GET registrations` and of a certificate's `registrations`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// The certificate (hex SHA-256 of its DER).
    pub certificate_id: String,
    /// The AWS region.
    pub region: String,
    /// The device the certificate belongs to.
    pub device_id: String,
    /// `PENDING`, `FAILED` or `DONE`.
    pub status: String,
    /// Attempts so far.
    pub attempts: u32,
    /// The last failure, in words.
    pub last_error: Option<String>,
    /// RFC 3339: when it last changed.
    pub updated_at: String,
}

/// The answer of `POST registrations/retry`: what one run of the retries did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetriedRegistrations {
    /// Registrations looked at.
    pub attempted: u64,
    /// Now done.
    pub done: u64,
    /// Still failing.
    pub failed: u64,
    /// Changed a moment ago by a request that may still be finishing them: left alone.
    pub in_flight: u64,
    /// More were due than one run takes: retry again.
    pub more: bool,
}

/// The answer of `POST certificates/{id}/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revoked {
    /// The certificate as it is now.
    pub certificate: Certificate,
    /// It was revoked before this request.
    pub already_revoked: bool,
    /// The CRLs were written again.
    #[serde(default)]
    pub crl_regenerated: bool,
    /// Whether the revocation reached everywhere the certificate is trusted (the CRLs
    /// locally; ACM Private CA and IoT Core in every region on AWS). False when part
    /// failed: the revocation stands in the registry and the service retries the rest.
    #[serde(default = "assumed_propagated")]
    pub propagated: bool,
}

/// A service that does not say `propagated` did everything in one go.
fn assumed_propagated() -> bool {
    true
}

/// One allow or deny decision of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Opaque id, unique in the log (a string: its form depends on the backend).
    pub id: String,
    /// RFC 3339.
    pub at: String,
    /// The device, when the request named one.
    pub device_id: Option<String>,
    /// `allow` or `deny`.
    pub decision: String,
    /// The reason's stable code (`issued`, `key_mismatch`, ...).
    pub code: String,
    /// The client's address.
    pub remote_addr: Option<String>,
    /// The CSR fingerprint.
    pub fingerprint: Option<String>,
    /// The certificate issued or returned.
    pub certificate_id: Option<String>,
}

/// Decisions in one hour (`GET stats/issuance`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HourCount {
    /// The hour's start, RFC 3339.
    pub hour: String,
    /// Allowed requests.
    pub allow: u64,
    /// Denied requests.
    pub deny: u64,
}

/// One issuing CA (`GET ca`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuingCa {
    /// The CA's id: its directory locally, its ARN's last part on AWS (what a
    /// certificate's `issuer` names).
    pub id: String,
    /// Its ACM Private CA ARN (AWS backend only).
    #[serde(default)]
    pub arn: Option<String>,
    /// Its subject DN.
    pub subject: String,
    /// Hex serial.
    pub serial: String,
    /// Hex SHA-256 of its certificate.
    pub certificate_id: String,
    /// RFC 3339.
    pub not_before: String,
    /// RFC 3339.
    pub not_after: String,
    /// `current`, `previous`, `revoked`, ...
    pub state: String,
    /// RFC 3339, when its certificates were revoked by a rotation.
    pub revoked_at: Option<String>,
    /// The chain (this CA, then the root), for the current CA only.
    #[serde(default)]
    pub chain_pem: Option<String>,
}

/// The CA overview (`GET ca`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaOverview {
    /// Which backend serves the fleet: `local` or `aws`.
    pub backend: String,
    /// The CA issuing now.
    pub current: Option<IssuingCa>,
    /// Earlier issuing CAs, replaced by rotations.
    pub previous: Vec<IssuingCa>,
    /// A CA waiting for its certificate: its id (local) or ARN (AWS).
    pub pending_csr: Option<String>,
    /// Whether `POST ca/rotate` creates and signs the next CA itself (locally, with the
    /// root key on the server). On AWS the rotation names a CA installed beforehand.
    pub can_create_next_ca: bool,
    /// The CRLs the service publishes: each issuing CA's, then the root's when its key
    /// is the service's own (empty on AWS, where ACM Private CA publishes them).
    #[serde(default)]
    pub crls: Vec<Crl>,
}

/// One CRL the service publishes (`GET ca`, `crls`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Crl {
    /// The issuing CA's id, or `root`.
    pub issuer: String,
    /// RFC 3339, when it was signed; `None` while not written.
    pub this_update: Option<String>,
    /// Seconds since then, when the service answered.
    pub age_secs: Option<i64>,
    /// RFC 3339, when brokers stop accepting it.
    pub next_update: Option<String>,
    /// Seconds until then, when the service answered (negative: expired).
    pub expires_in_secs: Option<i64>,
    /// Within a day of its nextUpdate, past it, or not written.
    pub expires_soon: bool,
    /// Certificates it lists.
    pub revoked: u64,
}

impl CaOverview {
    /// Whether the fleet is on AWS (ACM Private CA, IoT Core in several regions).
    pub fn is_aws(&self) -> bool {
        self.backend == "aws"
    }
}

/// The progress of a CA rotation (`GET ca/rotation`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// The job.
    pub job_id: String,
    /// `running`, `finished`, `failed` or `interrupted`.
    pub state: String,
    /// The step: locally `revoking`; on AWS `registering`, `switching`, `revoking`,
    /// `deactivating`, `done`.
    #[serde(default)]
    pub step: Option<String>,
    /// Whether it finished.
    pub finished: bool,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub finished_at: Option<String>,
    /// The CA replaced.
    pub old_ca: Option<String>,
    /// The CA that replaced it.
    pub new_ca: Option<String>,
    /// Certificates of the old CA revoked so far.
    pub revoked: u64,
    /// How many there are to revoke, when known.
    #[serde(default)]
    pub total: Option<u64>,
    /// Whether it resumed an interrupted rotation.
    pub resumed: bool,
    /// Why it failed or stopped.
    pub error: Option<String>,
    /// What the PKI admin must still do by hand, if anything.
    #[serde(default)]
    pub admin_action: Option<String>,
}

impl Rotation {
    /// Whether the job still runs.
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }
}

/// A row an import refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportRowError {
    /// 1-based line of the file sent.
    pub line: usize,
    /// The device, when known.
    pub device_id: Option<String>,
    /// Stable code (`key_conflict`, ...).
    pub error: String,
    /// What to fix.
    pub message: String,
}

/// What an import did, or would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportSummary {
    /// New devices.
    pub imported: u64,
    /// Devices already registered with the same key.
    pub unchanged: u64,
    /// Keys replaced (with replace).
    pub replaced: u64,
    /// Devices registered with another key.
    pub conflicts: u64,
    /// Rows that yield no device.
    pub invalid: u64,
    /// The first refused rows.
    pub errors: Vec<ImportRowError>,
    /// Whether it was written.
    pub written: bool,
}

impl ImportSummary {
    /// Adds another batch's counts to these.
    pub fn add(&mut self, other: ImportSummary) {
        self.imported += other.imported;
        self.unchanged += other.unchanged;
        self.replaced += other.replaced;
        self.conflicts += other.conflicts;
        self.invalid += other.invalid;
        self.errors.extend(other.errors);
        self.written |= other.written;
    }
}

/// The answer of `POST devices/import`: accepted (200) or refused with the summary (422).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportAnswer {
    /// Whether the service accepted the manifest (no invalid row, no refused conflict).
    pub accepted: bool,
    /// Why it refused, when it did.
    pub message: Option<String>,
    /// Its counts and refused rows.
    pub summary: ImportSummary,
}

/// The signed-in state: the bearer, or why the user must sign in (again).
///
/// Copy: it is a pair of signals, handed to every page.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    token: RwSignal<Option<String>>,
    notice: RwSignal<Option<String>>,
}

impl Session {
    /// The session of this tab: the token kept in `sessionStorage`, if any.
    pub fn restore() -> Self {
        let token = storage()
            .and_then(|s| s.get_item(TOKEN_KEY).ok().flatten())
            .filter(|t| !t.is_empty());
        Self {
            token: RwSignal::new(token),
            notice: RwSignal::new(None),
        }
    }

    /// A session holding `token`, not stored (tests).
    pub fn with_token(token: &str) -> Self {
        Self {
            token: RwSignal::new(Some(token.to_owned())),
            notice: RwSignal::new(None),
        }
    }

    /// Whether a token is held (reactive).
    pub fn is_signed_in(&self) -> bool {
        self.token.with(Option::is_some)
    }

    /// Why the user was sent back to sign in, if they were (reactive).
    pub fn notice(&self) -> Option<String> {
        self.notice.get()
    }

    /// Keeps `token` in `sessionStorage` and signs in.
    pub fn sign_in(&self, token: String) {
        self.sign_in_with_logout(token, None);
    }

    /// Keeps `token` (a Cognito ID token) in `sessionStorage` and signs in; sign-out
    /// then also goes to `logout` (the identity provider's logout URL, complete with its
    /// query), ending the hosted UI's session too.
    pub fn sign_in_with_logout(&self, token: String, logout: Option<String>) {
        if let Some(s) = storage() {
            // A storage that refuses (private mode quota) still leaves the tab signed in.
            let _ = s.set_item(TOKEN_KEY, &token);
            let _ = match &logout {
                Some(url) => s.set_item(LOGOUT_KEY, url),
                None => s.remove_item(LOGOUT_KEY),
            };
        }
        self.notice.set(None);
        self.token.set(Some(token));
    }

    /// Forgets the bearer; `notice` says why, on the sign-in page.
    pub fn sign_out(&self, notice: Option<String>) {
        if let Some(s) = storage() {
            let _ = s.remove_item(TOKEN_KEY);
            let _ = s.remove_item(LOGOUT_KEY);
        }
        self.notice.set(notice);
        self.token.set(None);
    }

    /// The user's "Sign out": forgets the bearer and, when signed in through Cognito's
    /// hosted UI, leaves for its logout URL, which ends that session and comes back to
    /// the dashboard's sign-in page.
    pub fn sign_out_everywhere(&self) {
        let logout = storage().and_then(|s| s.get_item(LOGOUT_KEY).ok().flatten());
        self.sign_out(None);
        if let (Some(url), Some(window)) = (logout, web_sys::window()) {
            let _ = window.location().assign(&url);
        }
    }

    fn authorization(&self) -> String {
        format!("Bearer {}", self.token.get_untracked().unwrap_or_default())
    }

    /// Sends `request`, returns the status and the body text; a 401 signs out.
    async fn exchange(
        &self,
        request: Result<Request, gloo_net::Error>,
    ) -> Result<(u16, String), ApiError> {
        let request = request.map_err(|_| ApiError::unreachable())?;
        let response = request.send().await.map_err(|_| ApiError::unreachable())?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status == 401 {
            self.sign_out(Some(signed_out_notice(&body)));
            return Err(ApiError::from_answer(status, &body));
        }
        Ok((status, body))
    }

    /// Sends `request`; the body of a 2xx answer, or the refusal.
    async fn send(&self, request: Result<Request, gloo_net::Error>) -> Result<String, ApiError> {
        let (status, body) = self.exchange(request).await?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(ApiError::from_answer(status, &body))
        }
    }

    fn get(&self, path: &str) -> RequestBuilder {
        Request::get(&format!("{API_PREFIX}/{path}")).header("Authorization", &self.authorization())
    }

    fn post(&self, path: &str) -> RequestBuilder {
        Request::post(&format!("{API_PREFIX}/{path}"))
            .header("Authorization", &self.authorization())
    }

    /// `GET /admin/api/{path}` read as `T`.
    ///
    /// # Errors
    /// The service's refusal, no answer, or an answer not shaped as `T`.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let body = self.send(self.get(path).build()).await?;
        serde_json::from_str(&body).map_err(|_| ApiError::unreadable(200))
    }

    /// `GET /admin/api/{path}` as text (PEM).
    ///
    /// # Errors
    /// The service's refusal, or no answer.
    pub async fn get_text(&self, path: &str) -> Result<String, ApiError> {
        self.send(self.get(path).build()).await
    }

    /// `POST /admin/api/{path}` with a JSON body (or none), read as `T`.
    ///
    /// # Errors
    /// The service's refusal, no answer, or an answer not shaped as `T`.
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, ApiError> {
        let builder = self.post(path);
        let request = match body {
            Some(value) => builder.json(&value),
            None => builder.build(),
        };
        let text = self.send(request).await?;
        serde_json::from_str(&text).map_err(|_| ApiError::unreadable(200))
    }

    /// `POST devices/import` of a CSV manifest; a 422 refusal is an answer too (its
    /// summary lists the conflicts), not an error.
    ///
    /// # Errors
    /// Any other refusal, or no answer.
    pub async fn import(
        &self,
        csv: &str,
        name: &str,
        dry_run: bool,
        replace: bool,
    ) -> Result<ImportAnswer, ApiError> {
        let query = format!(
            "devices/import?format=csv&dryRun={dry_run}&replace={replace}&name={}",
            String::from(js_sys::encode_uri_component(name))
        );
        let request = self
            .post(&query)
            .header("Content-Type", "text/csv")
            .body(csv.to_owned());
        let (status, body) = self.exchange(request).await?;
        match status {
            200..=299 => {
                let summary: ImportSummary =
                    serde_json::from_str(&body).map_err(|_| ApiError::unreadable(status))?;
                Ok(ImportAnswer {
                    accepted: true,
                    message: None,
                    summary,
                })
            }
            422 => refused_import(&body).ok_or_else(|| ApiError::from_answer(status, &body)),
            _ => Err(ApiError::from_answer(status, &body)),
        }
    }
}

/// This tab's `sessionStorage`, if the browser gives one.
pub(crate) fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

/// What the sign-in page says after a 401 with `body`: a Cognito session that ran out
/// (`invalid_token`, reason `expired`) is the common case and gets its own sentence.
pub fn signed_out_notice(body: &str) -> String {
    #[derive(Deserialize)]
    struct Refusal {
        error: String,
        #[serde(default)]
        reason: Option<String>,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_str::<Refusal>(body) {
        Ok(r) if r.error == "invalid_token" && r.reason.as_deref() == Some("expired") => {
            SESSION_EXPIRED.to_owned()
        }
        Ok(r) if r.error == "invalid_token" && !r.message.is_empty() => {
            format!(
                "The service no longer accepts this sign-in: {}. Sign in again.",
                r.message
            )
        }
        _ => "The service refused the admin token (it may have been rotated). Sign in again."
            .to_owned(),
    }
}

/// Parses the body of a 422 `import_refused`: `{error, message, summary}`.
pub fn refused_import(body: &str) -> Option<ImportAnswer> {
    #[derive(Deserialize)]
    struct Refused {
        message: String,
        summary: ImportSummary,
    }
    let refused: Refused = serde_json::from_str(body).ok()?;
    Some(ImportAnswer {
        accepted: false,
        message: Some(refused.message),
        summary: refused.summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_error_gives_its_message_and_anything_else_a_sentence() {
        let busy = ApiError::from_answer(503, r#"{"error":"registry_busy","message":"retry"}"#);
        assert_eq!(
            (busy.code.as_str(), busy.message.as_str()),
            ("registry_busy", "retry")
        );
        let proxy = ApiError::from_answer(502, "<html>Bad gateway</html>");
        assert_eq!(proxy.code, "unexpected_answer");
        assert!(proxy.message.contains("HTTP 502") && !proxy.message.contains("<html>"));
        assert!(ApiError::from_answer(401, "{}").is_unauthorized());
    }

    #[test]
    fn a_refused_import_carries_its_summary() {
        let body = r#"{"error":"import_refused","message":"nothing written","summary":{"imported":0,"unchanged":1,"replaced":0,"conflicts":2,"invalid":0,"errors":[{"file":"m","line":1,"deviceId":"d","error":"key_conflict","message":"m"}],"written":false,"atomic":true}}"#;
        let answer = refused_import(body).unwrap();
        assert!(!answer.accepted);
        assert_eq!(answer.summary.conflicts, 2);
        assert_eq!(answer.summary.errors[0].error, "key_conflict");
        assert!(refused_import("{}").is_none());
    }

    #[test]
    fn an_expired_cognito_session_is_named_as_such() {
        let expired =
            r#"{"error":"invalid_token","reason":"expired","message":"the token has expired"}"#;
        assert_eq!(signed_out_notice(expired), SESSION_EXPIRED);
        let group =
            r#"{"error":"invalid_token","reason":"missing_group","message":"not in group admins"}"#;
        assert!(signed_out_notice(group).contains("not in group admins"));
        let rotated = r#"{"error":"unauthorized","message":"rotated"}"#;
        assert!(signed_out_notice(rotated).contains("admin token"));
        assert!(signed_out_notice("<html>").contains("Sign in again"));
    }
}
