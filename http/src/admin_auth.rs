//! Cognito user-pool JWTs for the admin API (the AWS deployment), validated by the router
//! itself (on AWS the gateway's Cognito authorizer checks them first), so the same code
//! answers the same 401s wherever the router runs.
//!
//! A [`JwtValidator`] is configured with the pool's issuer URL
//! (`https://cognito-idp.REGION.amazonaws.com/POOL_ID`), the app client id, and
//! optionally a group the user must be in. [`JwtValidator::validate`] accepts a token
//! only when all of these hold:
//!
//! - it is at most [`MAX_TOKEN_BYTES`] long and is a JWS in compact form (three
//!   base64url parts, no padding);
//! - its header names `alg: RS256` (anything else, `none` and `HS256` included, is
//!   refused before any key is looked at) and a `kid`, with no `crit` parameter;
//! - the signature verifies (RSASSA-PKCS1-v1_5 with SHA-256, 2048 to 8192-bit keys) under
//!   the key of that `kid` in the issuer's JWKS (`{issuer}/.well-known/jwks.json`);
//! - `iss` is the issuer exactly, `token_use` is `id` and `aud` is the app client id;
//! - `exp` is in the future and `nbf`/`iat` (when present) are not, each within
//!   [`LEEWAY_SECS`];
//! - `cognito:groups` contains the required group, when one is configured.
//!
//! Only ID tokens are accepted, not access tokens, because the gateway in front of the
//! admin API on AWS (`infra/template.yaml`: a Cognito authorizer without OAuth scopes)
//! admits ID tokens only: the router checks the same token again (defence in depth), so
//! it must take the same kind, or nothing gets through both. An ID token names the app
//! client in the standard `aud` claim (Cognito access tokens use `client_id` instead) and
//! carries `cognito:groups` too. Moving to access tokens means giving the authorizer
//! `AuthorizationScopes` and checking `token_use = access` and `client_id` here.
//!
//! Keys are fetched from the JWKS on first use and cached by `kid`; a `kid` not in the
//! cache triggers one refetch, at most once every [`KEY_REFETCH_INTERVAL_SECS`] (so a
//! stream of forged `kid`s cannot make us hammer the issuer), which is how a key
//! rotation by Cognito is picked up. The whole set is replaced on each fetch, so a key
//! the issuer dropped is dropped here too, at the next refetch (module `jwks`).
//!
//! Signatures are checked with `ring`, already in the workspace (rcgen, rustls): JWS
//! compact parsing is a few lines (module `jws`), and doing it here keeps the algorithm
//! allow-list explicit and gives each refusal its own [`JwtError::reason`]. The token is
//! never logged nor put in an error message.

use std::sync::Arc;

use provisioner_core::{Clock, SystemClock, UnixTime};
use serde::Deserialize;

mod jwks;
mod jws;

use jwks::KeySet;
use jws::{decode_json, CompactJws};

/// The longest bearer value validated as a JWT. Cognito ID tokens are 1-2 KB; a user
/// in its maximum of 100 groups stays well below this.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: i64 = 60;

/// The shortest time between two fetches of the JWKS, in seconds.
pub const KEY_REFETCH_INTERVAL_SECS: i64 = 60;

/// The largest JWKS document accepted (Cognito's holds two keys, about 1 KB).
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// The one signature algorithm accepted, as JWS names it.
const ALGORITHM: &str = "RS256";

/// The `token_use` of a Cognito ID token.
const ID_TOKEN_USE: &str = "id";

/// Whether a bearer value has the shape of a JWS in compact form: exactly three parts
/// separated by dots, each of base64url characters (the last may be empty, as in an
/// unsigned `alg: none` token, so that one is refused as a JWT too). The local admin
/// token is hex, so it never has this shape.
pub fn looks_like_jwt(value: &str) -> bool {
    value.split('.').count() == 3
        && !value.starts_with('.')
        && value
            .bytes()
            .all(|b| b == b'.' || b == b'-' || b == b'_' || b.is_ascii_alphanumeric())
}

/// Why a [`JwtValidator`] cannot be built from its settings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtConfigError {
    /// The issuer is not an `https://` URL (or `http://` on a loopback address, for
    /// tests) without query, fragment or credentials.
    #[error("the JWT issuer {issuer:?} is not usable: {why} (expected https://cognito-idp.REGION.amazonaws.com/POOL_ID)")]
    InvalidIssuer {
        /// The issuer as given.
        issuer: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The audience (app client id) is empty.
    #[error("the JWT audience (the Cognito app client id) is empty")]
    EmptyAudience,
    /// The required group is empty.
    #[error("the required JWT group is empty: leave it out to accept every user of the pool")]
    EmptyGroup,
    /// The HTTP client for the JWKS could not be built (TLS set-up).
    #[error("cannot build the HTTP client that fetches the JWKS: {0}")]
    HttpClient(String),
}

/// Why a token was refused. Each has a stable [`reason`](JwtError::reason) code; all but
/// [`KeySetUnavailable`](JwtError::KeySetUnavailable) are the caller's fault (401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("the token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    /// Not a JWS in compact form, or its header or claims are not the JSON expected.
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    /// The header names another algorithm than RS256 (`none` and `HS256` included).
    #[error("the token is not signed with RS256, the only algorithm accepted")]
    UnsupportedAlgorithm,
    /// No key of the issuer's JWKS has the token's `kid`.
    #[error("the token is signed with a key the issuer does not publish (unknown kid)")]
    UnknownKey,
    /// The signature does not verify under the issuer's key.
    #[error("the token's signature does not verify under the issuer's key")]
    BadSignature,
    /// `exp` has passed.
    #[error("the token has expired: sign in again")]
    Expired,
    /// `nbf` or `iat` is in the future.
    #[error("the token is not valid yet (nbf or iat in the future): check the clocks")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the token was not issued by this admin API's user pool (expected issuer {expected})")]
    WrongIssuer {
        /// The configured issuer.
        expected: String,
    },
    /// `token_use` is not `id` (an access token, for instance).
    #[error(
        "the token is not an ID token: send the ID token of the sign-in, not the access token"
    )]
    WrongTokenUse,
    /// `aud` is not the configured app client (alone).
    #[error("the token was issued to another app client than this admin API's")]
    WrongAudience,
    /// The required group is not in `cognito:groups`.
    #[error("the user is not in the group {group:?} that the admin API requires")]
    MissingGroup {
        /// The required group.
        group: String,
    },
    /// The JWKS could not be fetched (the token was not judged): a server-side problem.
    #[error(
        "the issuer's signing keys cannot be fetched right now; retry in {retry_after_secs} s"
    )]
    KeySetUnavailable {
        /// Seconds until the next fetch is allowed.
        retry_after_secs: u64,
    },
}

impl JwtError {
    /// The stable snake_case code of this refusal.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed(_) => "malformed",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer { .. } => "wrong_issuer",
            Self::WrongTokenUse => "wrong_token_use",
            Self::WrongAudience => "wrong_audience",
            Self::MissingGroup { .. } => "missing_group",
            Self::KeySetUnavailable { .. } => "key_set_unavailable",
        }
    }
}

/// Who a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUser {
    /// `sub`: the user's stable id in the pool.
    pub subject: String,
    /// `cognito:username`, when the token has one.
    pub username: Option<String>,
    /// `cognito:groups`.
    pub groups: Vec<String>,
}
/// Validates Cognito ID tokens against one user pool and app client; see the module
/// documentation for every check. Share one per process: it holds the key cache.
pub struct JwtValidator {
    issuer: String,
    audience: String,
    required_group: Option<String>,
    clock: Arc<dyn Clock>,
    keys: KeySet,
}

impl std::fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtValidator")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("required_group", &self.required_group)
            .finish_non_exhaustive()
    }
}

impl JwtValidator {
    /// A validator for ID tokens of the pool `issuer`
    /// (`https://cognito-idp.REGION.amazonaws.com/POOL_ID`; a trailing slash is ignored)
    /// issued to the app client `audience`, on the system clock. No key is fetched yet.
    ///
    /// # Errors
    /// [`JwtConfigError::InvalidIssuer`] unless the issuer is an `https://` URL (or
    /// `http://` on 127.0.0.1, `[::1]` or `localhost`) without query, fragment or
    /// credentials; [`JwtConfigError::EmptyAudience`]; [`JwtConfigError::HttpClient`].
    pub fn new(issuer: &str, audience: &str) -> Result<Self, JwtConfigError> {
        let issuer = issuer.trim().trim_end_matches('/').to_owned();
        let invalid = |why| JwtConfigError::InvalidIssuer {
            issuer: issuer.clone(),
            why,
        };
        let url = reqwest::Url::parse(&issuer).map_err(|_| invalid("not a URL"))?;
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(invalid("not https")),
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("it has a query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("it has credentials"));
        }
        let jwks_url = reqwest::Url::parse(&format!("{issuer}/.well-known/jwks.json"))
            .map_err(|_| invalid("no JWKS URL can be made from it"))?;
        let audience = audience.trim();
        if audience.is_empty() {
            return Err(JwtConfigError::EmptyAudience);
        }
        let keys = KeySet::new(&issuer, jwks_url)?;
        Ok(Self {
            issuer,
            audience: audience.to_owned(),
            required_group: None,
            clock: Arc::new(SystemClock),
            keys,
        })
    }

    /// The same, accepting only users whose `cognito:groups` contains `group`.
    ///
    /// # Errors
    /// [`JwtConfigError::EmptyGroup`] when `group` is empty.
    pub fn with_required_group(mut self, group: &str) -> Result<Self, JwtConfigError> {
        let group = group.trim();
        if group.is_empty() {
            return Err(JwtConfigError::EmptyGroup);
        }
        self.required_group = Some(group.to_owned());
        Ok(self)
    }

    /// The same on another clock (tests move time; it governs expiry and refetches).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The issuer, without a trailing slash.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Validates `token` (the bearer value, without `Bearer `): see the module
    /// documentation. Fetches the JWKS when the token's `kid` is not cached.
    ///
    /// # Errors
    /// The [`JwtError`] saying what is wrong with the token, or
    /// [`JwtError::KeySetUnavailable`] when its key could not be fetched.
    pub async fn validate(&self, token: &str) -> Result<VerifiedUser, JwtError> {
        let parts = CompactJws::parse(token)?;
        let key = self
            .keys
            .key(&parts.header.kid, self.clock.as_ref())
            .await?;
        key.verify(parts.signing_input.as_bytes(), &parts.signature)?;
        let claims: Claims = decode_json(parts.claims, "the claims are not base64url JSON")?;
        self.check(&claims, self.clock.now())
    }

    /// The claim checks, once the signature is known good.
    fn check(&self, claims: &Claims, now: UnixTime) -> Result<VerifiedUser, JwtError> {
        if claims.iss.as_deref() != Some(self.issuer.as_str()) {
            return Err(JwtError::WrongIssuer {
                expected: self.issuer.clone(),
            });
        }
        if claims.token_use.as_deref() != Some(ID_TOKEN_USE) {
            return Err(JwtError::WrongTokenUse);
        }
        // One audience, ours: a token for several clients is not one this client asked for.
        let audience_is_ours = match &claims.aud {
            Some(Audience::One(aud)) => *aud == self.audience,
            Some(Audience::Many(auds)) => auds.len() == 1 && auds[0] == self.audience,
            None => false,
        };
        if !audience_is_ours {
            return Err(JwtError::WrongAudience);
        }
        let exp = claims
            .exp
            .as_ref()
            .ok_or(JwtError::Malformed("it has no exp claim"))
            .and_then(numeric_date)?;
        if now > exp.saturating_add(LEEWAY_SECS) {
            return Err(JwtError::Expired);
        }
        for date in [&claims.nbf, &claims.iat].into_iter().flatten() {
            if numeric_date(date)? > now.saturating_add(LEEWAY_SECS) {
                return Err(JwtError::NotYetValid);
            }
        }
        let groups = claims.groups.clone().unwrap_or_default();
        if let Some(group) = &self.required_group {
            if !groups.iter().any(|g| g == group) {
                return Err(JwtError::MissingGroup {
                    group: group.clone(),
                });
            }
        }
        let subject = claims
            .sub
            .clone()
            .ok_or(JwtError::Malformed("it has no sub claim"))?;
        Ok(VerifiedUser {
            subject,
            username: claims.username.clone(),
            groups,
        })
    }
}

/// The claims read; the others are ignored.
#[derive(Debug, Default, Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    #[serde(rename = "cognito:username")]
    username: Option<String>,
    token_use: Option<String>,
    aud: Option<Audience>,
    exp: Option<serde_json::Number>,
    nbf: Option<serde_json::Number>,
    iat: Option<serde_json::Number>,
    #[serde(rename = "cognito:groups")]
    groups: Option<Vec<String>>,
}

/// `aud`: one string (Cognito's form) or an array of strings (RFC 7519 allows both).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// A JWT NumericDate (seconds, possibly fractional) as whole seconds.
fn numeric_date(number: &serde_json::Number) -> Result<UnixTime, JwtError> {
    if let Some(seconds) = number.as_i64() {
        return Ok(seconds);
    }
    match number.as_f64() {
        // The cast saturates; the range check keeps the value meaningful.
        Some(seconds) if seconds.is_finite() && seconds.abs() < 1e15 => Ok(seconds as i64),
        _ => Err(JwtError::Malformed(
            "a date claim is not a number of seconds",
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    use super::*;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn validator() -> JwtValidator {
        JwtValidator::new(
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc/",
            "client-1",
        )
        .unwrap()
    }

    fn claims(json: serde_json::Value) -> Claims {
        serde_json::from_value(json).unwrap()
    }

    const NOW: i64 = 1_800_000_000;

    fn good_claims() -> serde_json::Value {
        serde_json::json!({
            "iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc",
            "sub": "user-1",
            "cognito:username": "alice",
            "token_use": "id",
            "aud": "client-1",
            "email": "alice@example.com",
            "exp": NOW + 3600,
            "iat": NOW,
            "cognito:groups": ["admins", "ops"],
        })
    }

    #[test]
    fn the_jwt_shape_is_three_base64url_parts() {
        assert!(looks_like_jwt("eyJh.eyJi.c2ln"));
        assert!(looks_like_jwt("eyJh.eyJi.")); // alg none: still judged as a JWT
        assert!(!looks_like_jwt(&"ab".repeat(32))); // the local token (hex)
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt(".b.c"));
        assert!(!looks_like_jwt("a+b.c.d")); // standard base64 is not base64url
        assert!(!looks_like_jwt("a.b.c="));
    }

    #[test]
    fn a_valid_id_token_names_its_user() {
        let user = validator().check(&claims(good_claims()), NOW).unwrap();
        assert_eq!(user.subject, "user-1");
        assert_eq!(user.username.as_deref(), Some("alice"));
        assert_eq!(user.groups, ["admins", "ops"]);
    }

    #[test]
    fn each_claim_check_has_its_own_reason() {
        let v = validator().with_required_group("admins").unwrap();
        let cases: [(&str, serde_json::Value, &str); 12] = [
            (
                "iss",
                serde_json::json!("https://cognito-idp.eu-west-1.amazonaws.com/other"),
                "wrong_issuer",
            ),
            ("iss", serde_json::Value::Null, "wrong_issuer"),
            ("token_use", serde_json::json!("access"), "wrong_token_use"),
            ("aud", serde_json::json!("client-2"), "wrong_audience"),
            (
                "aud",
                serde_json::json!(["client-1", "client-2"]),
                "wrong_audience",
            ),
            ("aud", serde_json::json!([]), "wrong_audience"),
            ("aud", serde_json::Value::Null, "wrong_audience"),
            ("exp", serde_json::json!(NOW - LEEWAY_SECS - 1), "expired"),
            ("exp", serde_json::Value::Null, "malformed"),
            (
                "nbf",
                serde_json::json!(NOW + LEEWAY_SECS + 1),
                "not_yet_valid",
            ),
            (
                "iat",
                serde_json::json!(NOW + LEEWAY_SECS + 1),
                "not_yet_valid",
            ),
            (
                "cognito:groups",
                serde_json::json!(["ops"]),
                "missing_group",
            ),
        ];
        for (claim, value, reason) in cases {
            let mut json = good_claims();
            json[claim] = value.clone();
            let refused = v.check(&claims(json), NOW).unwrap_err();
            assert_eq!(refused.reason(), reason, "{claim} = {value}");
        }
        // no groups at all is missing the group too
        let mut json = good_claims();
        json.as_object_mut().unwrap().remove("cognito:groups");
        assert_eq!(
            v.check(&claims(json), NOW).unwrap_err().reason(),
            "missing_group"
        );
    }

    #[test]
    fn the_leeway_tolerates_small_clock_skew_only() {
        let v = validator();
        let mut json = good_claims();
        json["exp"] = serde_json::json!(NOW - LEEWAY_SECS);
        json["nbf"] = serde_json::json!(NOW + LEEWAY_SECS);
        json["iat"] = serde_json::json!((NOW + LEEWAY_SECS) as f64 + 0.5); // fractional
        assert!(v.check(&claims(json), NOW).is_ok());
    }

    #[test]
    fn an_access_token_of_the_same_client_is_refused() {
        // given the claims of a Cognito access token: client_id, no aud
        let mut json = good_claims();
        json["token_use"] = serde_json::json!("access");
        json["client_id"] = serde_json::json!("client-1");
        json.as_object_mut().unwrap().remove("aud");
        assert_eq!(
            validator().check(&claims(json), NOW).unwrap_err(),
            JwtError::WrongTokenUse
        );
    }

    #[test]
    fn an_audience_array_of_just_our_client_is_accepted() {
        let mut json = good_claims();
        json["aud"] = serde_json::json!(["client-1"]);
        assert!(validator().check(&claims(json), NOW).is_ok());
    }

    #[test]
    fn claims_of_the_wrong_type_are_malformed() {
        for (claim, value) in [
            ("exp", serde_json::json!("tomorrow")),
            ("cognito:groups", serde_json::json!("admins")),
            ("iss", serde_json::json!(5)),
        ] {
            let mut json = good_claims();
            json[claim] = value;
            let part = b64(&json.to_string());
            assert_eq!(
                decode_json::<Claims>(&part, "claims").unwrap_err().reason(),
                "malformed",
                "{claim}"
            );
        }
    }

    #[test]
    fn the_issuer_must_be_https_except_on_loopback() {
        assert_eq!(
            validator().issuer(),
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc"
        );
        assert!(JwtValidator::new("http://127.0.0.1:9/pool", "c").is_ok());
        assert!(JwtValidator::new("http://localhost:9/pool", "c").is_ok());
        for issuer in [
            "http://cognito-idp.eu-west-1.amazonaws.com/p",
            "ftp://127.0.0.1/p",
            "cognito-idp.eu-west-1.amazonaws.com/p",
            "https://x.example/p?q=1",
            "https://u:p@x.example/p",
            "",
        ] {
            assert!(
                matches!(
                    JwtValidator::new(issuer, "c"),
                    Err(JwtConfigError::InvalidIssuer { .. })
                ),
                "{issuer}"
            );
        }
        assert!(matches!(
            JwtValidator::new("https://x.example/p", " "),
            Err(JwtConfigError::EmptyAudience)
        ));
        assert!(matches!(
            validator().with_required_group(""),
            Err(JwtConfigError::EmptyGroup)
        ));
    }

    #[test]
    fn error_messages_never_carry_token_material() {
        // every refusal's text is fixed or built from our settings only
        let v = validator().with_required_group("admins").unwrap();
        let mut json = good_claims();
        json["iss"] = serde_json::json!("https://evil.example/SECRET-ISSUER");
        json["cognito:groups"] = serde_json::json!(["SECRET-GROUP"]);
        let text = v.check(&claims(json), NOW).unwrap_err().to_string();
        assert!(!text.contains("SECRET"), "{text}");
    }
}
