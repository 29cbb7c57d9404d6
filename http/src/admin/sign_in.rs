//! How the dashboard signs in: the settings it reads at [`SIGN_IN_PATH`] before signing
//! in (whether the admin token is accepted, and the hosted sign-in page of an OpenID
//! Connect provider, [`HostedSignIn`], when one is configured).

use axum::response::IntoResponse;
use axum::routing::{get, MethodRouter};
use axum::Json;
use serde::Serialize;
use serde_json::json;

use super::auth::no_store;

/// Where the dashboard reads how to sign in (public: it is read before signing in).
pub const SIGN_IN_PATH: &str = "/admin/sign-in.json";

/// Sign-in through an OpenID Connect provider's hosted page (Cognito's hosted UI): the
/// dashboard runs the authorization-code flow with PKCE against it and sends the ID
/// token it gets as the bearer, which [`AdminContext::with_jwt`](super::AdminContext::with_jwt) validates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostedSignIn {
    /// The authorization endpoint (`DOMAIN/oauth2/authorize` for Cognito).
    pub authorize_url: String,
    /// The token endpoint (`DOMAIN/oauth2/token`).
    pub token_url: String,
    /// Where signing out ends the provider's session (`DOMAIN/logout`).
    pub logout_url: String,
    /// The app client (public, no secret), also the ID token's audience.
    pub client_id: String,
    /// The scopes asked for.
    pub scope: String,
}

impl HostedSignIn {
    /// Cognito's hosted UI at `domain` (`https://PREFIX.auth.REGION.amazoncognito.com`,
    /// or a custom domain) for the app client `client_id`.
    ///
    /// # Errors
    /// A domain that is not an `http(s)://` origin (plain `http` only for loopback).
    pub fn cognito(domain: &str, client_id: &str) -> Result<Self, String> {
        let domain = domain.trim_end_matches('/');
        let origin_ok = match domain.split_once("://") {
            Some(("https", host)) => !host.is_empty() && !host.contains('/'),
            Some(("http", host)) => host.starts_with("127.0.0.1") || host.starts_with("localhost"),
            _ => false,
        };
        if !origin_ok || client_id.is_empty() {
            return Err(format!(
                "the sign-in domain {domain:?} must be an https:// origin without a path (http:// only on 127.0.0.1), with a client id"
            ));
        }
        Ok(Self {
            authorize_url: format!("{domain}/oauth2/authorize"),
            token_url: format!("{domain}/oauth2/token"),
            logout_url: format!("{domain}/logout"),
            client_id: client_id.to_owned(),
            scope: "openid email profile".into(),
        })
    }

    /// The origin the dashboard fetches tokens from (for its `connect-src`).
    pub(super) fn token_origin(&self) -> &str {
        let after_scheme = self.token_url.find("://").map_or(0, |i| i + 3);
        let end = self.token_url[after_scheme..]
            .find('/')
            .map_or(self.token_url.len(), |i| after_scheme + i);
        &self.token_url[..end]
    }
}

/// `GET` [`SIGN_IN_PATH`]: `{token, oidc}`, whether the admin token is accepted and the
/// hosted sign-in, if any. Public: the dashboard reads it before anyone signs in.
pub(super) fn settings_route(token: bool, oidc: Option<HostedSignIn>) -> MethodRouter {
    let settings = json!({ "token": token, "oidc": oidc });
    get(move || {
        let settings = settings.clone();
        async move { no_store(Json(settings).into_response()) }
    })
}
