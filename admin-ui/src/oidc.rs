//! Sign-in through Cognito's hosted UI: the OAuth 2.0 authorization-code flow with PKCE
//! (RFC 7636, `S256`), entirely in the browser (a public app client, no secret).
//!
//! 1. [`begin`] draws a random code verifier and `state`, keeps them in this tab's
//!    `sessionStorage`, and gives the hosted UI's authorize URL with the verifier's
//!    SHA-256 challenge; the page goes there.
//! 2. Cognito sends the browser back to the dashboard (`/?code=…&state=…`, or
//!    `?error=…`). [`read_return`] reads that, [`clear_address_query`] takes it out of
//!    the address bar (a reload must not send a used code again), [`check_return`]
//!    checks `state` against the one kept, and [`exchange_code`] trades the code and the
//!    verifier for an ID token at the token endpoint.
//! 3. The ID token is the admin API's bearer, kept like the admin token (see
//!    [`crate::api::Session`]); sign-out goes to Cognito's logout URL ([`logout_url`]).
//!
//! Every failure is a [`SignInFailure`]: a stable code and a sentence, never the
//! identity provider's raw answer. What the service offers comes from
//! `GET /admin/sign-in.json` ([`fetch_sign_in_options`]), public, read before sign-in.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gloo_net::http::Request;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::{storage, ApiError};

/// Where the service says how one signs in (public, outside the admin API).
pub const SIGN_IN_OPTIONS_PATH: &str = "/admin/sign-in.json";

/// The `sessionStorage` key holding the sign-in under way ([`Pending`], JSON).
pub const PENDING_KEY: &str = "provisioner-oidc-pending";

/// Random bytes in a code verifier and in a `state`: 32, as RFC 7636 section 4.1
/// recommends (43 characters of base64url).
pub const RANDOM_BYTES: usize = 32;

/// How the service lets the dashboard sign in (`GET /admin/sign-in.json`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInOptions {
    /// Whether the admin token is accepted (the token form is shown).
    pub token: bool,
    /// Cognito's hosted UI, when the service is configured for it.
    #[serde(default)]
    pub oidc: Option<OidcProvider>,
}

/// Cognito's hosted UI as `GET /admin/sign-in.json` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OidcProvider {
    /// `https://DOMAIN/oauth2/authorize`.
    pub authorize_url: String,
    /// `https://DOMAIN/oauth2/token`.
    pub token_url: String,
    /// `https://DOMAIN/logout`.
    pub logout_url: String,
    /// The app client id (the ID tokens' `aud`).
    pub client_id: String,
    /// The scopes asked for, space-separated (`openid` at least).
    #[serde(default = "default_scope")]
    pub scope: String,
}

fn default_scope() -> String {
    "openid".to_owned()
}

/// A sign-in under way: what [`begin`] kept for the return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The `state` sent; the return must carry the same.
    pub state: String,
    /// The PKCE code verifier; only its challenge was sent.
    pub verifier: String,
}

/// What Cognito sent the browser back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Return {
    /// Signed in: the code to exchange, and the `state` it carries.
    Code {
        /// The authorization code.
        code: String,
        /// The `state` as returned (possibly absent).
        state: Option<String>,
    },
    /// Refused or cancelled (`?error=…`).
    Refused {
        /// The OAuth 2.0 error code (`access_denied`, ...).
        error: String,
        /// Cognito's `error_description`, if any.
        description: Option<String>,
    },
}

/// Why the sign-in through Cognito did not complete, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInFailure {
    /// Stable code: `access_denied` (or another OAuth 2.0 error the provider returned),
    /// `state_mismatch`, `no_pending_sign_in`, `oidc_not_configured`,
    /// `token_endpoint_refused`, `token_endpoint_unreachable`, `no_id_token`,
    /// `no_random_source`, `token_refused_by_service`.
    pub code: String,
    /// What happened and what to do.
    pub message: String,
}

impl SignInFailure {
    fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// The code verifier for `random` bytes: their base64url, unpadded (RFC 7636 4.1).
pub fn code_verifier(random: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(random)
}

/// The `S256` code challenge of `verifier`: BASE64URL(SHA256(ASCII(verifier)))
/// (RFC 7636 4.2).
pub fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// [`RANDOM_BYTES`] from the browser's CSPRNG (`crypto.getRandomValues`), base64url.
///
/// # Errors
/// `no_random_source` when the browser gives no `crypto` (never in a current one).
pub fn random_string() -> Result<String, SignInFailure> {
    let mut bytes = [0_u8; RANDOM_BYTES];
    web_sys::window()
        .and_then(|w| w.crypto().ok())
        .and_then(|c| c.get_random_values_with_u8_array(&mut bytes).ok())
        .ok_or_else(|| {
            SignInFailure::new(
                "no_random_source",
                "This browser gives no secure random numbers (crypto.getRandomValues): use a current browser.",
            )
        })?;
    Ok(code_verifier(&bytes))
}

/// Where Cognito sends the browser back: the dashboard's origin and `/` (the app
/// client's callback URL must be exactly this).
pub fn redirect_uri() -> String {
    let origin = web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default();
    format!("{origin}/")
}

fn encode(value: &str) -> String {
    String::from(js_sys::encode_uri_component(value))
}

/// `url` with `params` added to its query, each percent-encoded.
fn with_query(url: &str, params: &[(&str, &str)]) -> String {
    let mut out = url.to_owned();
    let mut separator = if url.contains('?') { '&' } else { '?' };
    for (name, value) in params {
        out.push(separator);
        out.push_str(name);
        out.push('=');
        out.push_str(&encode(value));
        separator = '&';
    }
    out
}

/// The hosted UI's authorize URL for a code-flow sign-in with `state` and the `S256`
/// `challenge`, returning to `redirect_uri`.
pub fn authorize_url(
    provider: &OidcProvider,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> String {
    with_query(
        &provider.authorize_url,
        &[
            ("response_type", "code"),
            ("client_id", &provider.client_id),
            ("redirect_uri", redirect_uri),
            ("scope", &provider.scope),
            ("state", state),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ],
    )
}

/// Cognito's logout URL, coming back to `logout_uri` (the dashboard, which must be one
/// of the app client's sign-out URLs).
pub fn logout_url(provider: &OidcProvider, logout_uri: &str) -> String {
    with_query(
        &provider.logout_url,
        &[
            ("client_id", &provider.client_id),
            ("logout_uri", logout_uri),
        ],
    )
}

/// Starts a sign-in: draws a verifier and a `state`, keeps them in this tab's
/// `sessionStorage` (replacing any earlier sign-in under way), and returns the URL to
/// go to.
///
/// # Errors
/// `no_random_source`.
pub fn begin(provider: &OidcProvider) -> Result<String, SignInFailure> {
    let pending = Pending {
        state: random_string()?,
        verifier: random_string()?,
    };
    if let (Some(s), Ok(json)) = (storage(), serde_json::to_string(&pending)) {
        let _ = s.set_item(PENDING_KEY, &json);
    }
    Ok(authorize_url(
        provider,
        &redirect_uri(),
        &pending.state,
        &code_challenge(&pending.verifier),
    ))
}

/// The sign-in under way in this tab, removed from `sessionStorage` (a code is
/// exchanged once).
pub fn take_pending() -> Option<Pending> {
    let s = storage()?;
    let json = s.get_item(PENDING_KEY).ok().flatten()?;
    let _ = s.remove_item(PENDING_KEY);
    serde_json::from_str(&json).ok()
}

/// Cognito's answer in the query string `search` (`?code=…&state=…` or `?error=…`), if
/// it is one.
pub fn read_return(search: &str) -> Option<Return> {
    let params = web_sys::UrlSearchParams::new_with_str(search).ok()?;
    if let Some(error) = params.get("error") {
        return Some(Return::Refused {
            error,
            description: params.get("error_description").filter(|d| !d.is_empty()),
        });
    }
    let code = params.get("code").filter(|c| !c.is_empty())?;
    Some(Return::Code {
        code,
        state: params.get("state"),
    })
}

/// The query string of the page's address (`?…`, or empty).
pub fn address_query() -> String {
    web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default()
}

/// Removes the query (and fragment) from the address bar without reloading: the code in
/// it is spent, and must not be bookmarked or sent again by a reload.
pub fn clear_address_query() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let path = window
        .location()
        .pathname()
        .unwrap_or_else(|_| "/".to_owned());
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path));
    }
}

/// The code of a return, once its `state` is the one this tab sent.
///
/// # Errors
/// The provider's refusal (its error code, in words), `no_pending_sign_in` when this
/// tab started no sign-in (or already used it), `state_mismatch` when the `state`
/// differs (an answer to another sign-in, or forged: the code is not used).
pub fn check_return(returned: Return, pending: Option<&Pending>) -> Result<String, SignInFailure> {
    let (code, state) = match returned {
        Return::Refused { error, description } => {
            return Err(refused_by_provider(&error, description))
        }
        Return::Code { code, state } => (code, state),
    };
    let Some(pending) = pending else {
        return Err(SignInFailure::new(
            "no_pending_sign_in",
            "This tab did not start a sign-in with Cognito, or already completed it: sign in again.",
        ));
    };
    if state.as_deref() != Some(pending.state.as_str()) {
        return Err(SignInFailure::new(
            "state_mismatch",
            "The answer from Cognito does not belong to the sign-in started in this tab (its state differs), so it was not used: sign in again.",
        ));
    }
    Ok(code)
}

fn refused_by_provider(error: &str, description: Option<String>) -> SignInFailure {
    // The error code is echoed only if it looks like one: the query is anyone's to write.
    let code = if !error.is_empty()
        && error.len() <= 64
        && error.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        error
    } else {
        "sign_in_refused"
    };
    let headline = match code {
        "access_denied" => "Cognito did not sign you in (access denied or cancelled).".to_owned(),
        "invalid_request"
        | "unauthorized_client"
        | "invalid_scope"
        | "unsupported_response_type" => {
            format!("Cognito refused the sign-in request ({code}): the app client's settings (callback URL, OAuth flows, scopes) do not allow it.")
        }
        "server_error" | "temporarily_unavailable" => {
            format!("Cognito could not sign you in right now ({code}): try again shortly.")
        }
        _ => format!("Cognito did not sign you in ({code})."),
    };
    let message = match description {
        Some(d) => format!(
            "{headline} Cognito says: {}",
            d.chars().take(200).collect::<String>()
        ),
        None => headline,
    };
    SignInFailure::new(code, message)
}

/// The service's sign-in options (`GET /admin/sign-in.json`, no credentials).
///
/// # Errors
/// No answer, a refusal, or an answer not shaped as [`SignInOptions`].
pub async fn fetch_sign_in_options() -> Result<SignInOptions, ApiError> {
    let response = Request::get(SIGN_IN_OPTIONS_PATH)
        .send()
        .await
        .map_err(|_| ApiError::unreachable())?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !(200..300).contains(&status) {
        return Err(ApiError::from_answer(status, &body));
    }
    serde_json::from_str(&body).map_err(|_| ApiError::unreadable(status))
}

/// Trades `code` and its `verifier` for an ID token at the provider's token endpoint
/// (`POST`, form-encoded, `grant_type=authorization_code`).
///
/// # Errors
/// `token_endpoint_unreachable` (no answer: network, CORS, or the page's CSP),
/// `token_endpoint_refused` (a 4xx/5xx, its OAuth 2.0 error code named), `no_id_token`.
pub async fn exchange_code(
    provider: &OidcProvider,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
) -> Result<String, SignInFailure> {
    let form = with_query(
        "",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &provider.client_id),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ],
    );
    let unreachable = || {
        SignInFailure::new(
            "token_endpoint_unreachable",
            format!(
                "Cognito's token endpoint ({}) cannot be reached from this page: check the network, and that the service's sign-in domain is the user pool's.",
                provider.token_url
            ),
        )
    };
    let response = Request::post(&provider.token_url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form.trim_start_matches('?').to_owned())
        .map_err(|_| unreachable())?
        .send()
        .await
        .map_err(|_| unreachable())?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !(200..300).contains(&status) {
        return Err(token_refusal(status, &body));
    }
    #[derive(Deserialize)]
    struct Tokens {
        id_token: Option<String>,
    }
    serde_json::from_str::<Tokens>(&body)
        .ok()
        .and_then(|t| t.id_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            SignInFailure::new(
                "no_id_token",
                "Cognito answered without an ID token: the app client must allow the `openid` scope.",
            )
        })
}

/// A token endpoint's refusal in words: its OAuth 2.0 `error` code when the body has
/// one, the status otherwise; never the body itself.
pub fn token_refusal(status: u16, body: &str) -> SignInFailure {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
    }
    let code = serde_json::from_str::<OAuthError>(body)
        .ok()
        .map(|e| e.error)
        .filter(|e| {
            !e.is_empty() && e.len() <= 64 && e.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        });
    let message = match code.as_deref() {
        Some("invalid_grant") => "Cognito refused to complete the sign-in (invalid_grant): the code expired or was already used. Sign in again.".to_owned(),
        Some("invalid_client" | "unauthorized_client") => format!(
            "Cognito refused the dashboard's app client ({}): the service's --admin-jwt-audience must be a public app client of the user pool, allowed the code flow.",
            code.as_deref().unwrap_or_default()
        ),
        Some(other) => format!("Cognito refused to complete the sign-in ({other}). Sign in again."),
        None => format!("Cognito's token endpoint answered HTTP {status}: the sign-in was not completed. Sign in again."),
    };
    SignInFailure::new("token_endpoint_refused", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_endpoint_refusal_names_its_code_never_its_body() {
        let grant = token_refusal(400, r#"{"error":"invalid_grant"}"#);
        assert_eq!(grant.code, "token_endpoint_refused");
        assert!(grant.message.contains("invalid_grant"));
        let html = token_refusal(502, "<html>{\"x\":1}</html>");
        assert!(html.message.contains("HTTP 502") && !html.message.contains('<'));
        let odd = token_refusal(400, r#"{"error":"<script>"}"#);
        assert!(!odd.message.contains("<script>"));
    }

    #[test]
    fn the_provider_s_refusal_is_named_and_its_description_quoted() {
        let f = refused_by_provider("access_denied", Some("User cancelled".into()));
        assert_eq!(f.code, "access_denied");
        assert!(f.message.contains("access denied") && f.message.contains("User cancelled"));
        let forged = refused_by_provider("{\"raw\":true}", None);
        assert_eq!(forged.code, "sign_in_refused");
        assert!(!forged.message.contains("raw"));
    }
}
