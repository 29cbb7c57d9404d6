//! The issuer's signing keys, from its JWKS (`{issuer}/.well-known/jwks.json`): fetched
//! on first use and cached by `kid`. A `kid` not in the cache triggers one refetch, at
//! most once every [`KEY_REFETCH_INTERVAL_SECS`] (so a stream of forged `kid`s cannot
//! make us hammer the issuer), which is how a key rotation by Cognito is picked up; each
//! fetch replaces the whole set, so a key the issuer dropped is dropped here too.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use provisioner_core::{Clock, UnixTime};
use ring::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use serde::Deserialize;

use super::{JwtConfigError, JwtError, ALGORITHM, KEY_REFETCH_INTERVAL_SECS, MAX_JWKS_BYTES};

/// How long one JWKS fetch may take, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// One issuer's signing keys by `kid`, and when they were last fetched.
pub(super) struct KeySet {
    /// The issuer, for the log.
    issuer: String,
    url: reqwest::Url,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, Arc<RsaKey>>>,
    /// Held while fetching, so concurrent requests with a new `kid` fetch once.
    refetch: tokio::sync::Mutex<FetchState>,
}

#[derive(Debug, Default)]
struct FetchState {
    last_attempt: Option<UnixTime>,
    last_failed: bool,
}

/// An RSA public key from the JWKS: big-endian modulus and exponent, no leading zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RsaKey {
    n: Vec<u8>,
    e: Vec<u8>,
}

impl KeySet {
    /// The keys of `issuer`, served at `url`; none fetched yet.
    ///
    /// # Errors
    /// [`JwtConfigError::HttpClient`] when the HTTP client cannot be built.
    pub(super) fn new(issuer: &str, url: reqwest::Url) -> Result<Self, JwtConfigError> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            // The JWKS is served where the issuer says; a redirect elsewhere is not it.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| JwtConfigError::HttpClient(e.to_string()))?;
        Ok(Self {
            issuer: issuer.to_owned(),
            url,
            http,
            keys: RwLock::new(HashMap::new()),
            refetch: tokio::sync::Mutex::new(FetchState::default()),
        })
    }

    fn cached(&self, kid: &str) -> Option<Arc<RsaKey>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(kid)
            .cloned()
    }

    /// The key of `kid`: from the cache, or from one refetch of the JWKS if the last
    /// fetch is at least [`KEY_REFETCH_INTERVAL_SECS`] old.
    pub(super) async fn key(&self, kid: &str, clock: &dyn Clock) -> Result<Arc<RsaKey>, JwtError> {
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        let mut state = self.refetch.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        let now = clock.now();
        if let Some(last) = state.last_attempt {
            let since = now - last;
            // A clock that went back allows a fetch rather than blocking them for good.
            if (0..KEY_REFETCH_INTERVAL_SECS).contains(&since) {
                return Err(if state.last_failed {
                    JwtError::KeySetUnavailable {
                        retry_after_secs: u64::try_from(KEY_REFETCH_INTERVAL_SECS - since)
                            .unwrap_or(1),
                    }
                } else {
                    JwtError::UnknownKey
                });
            }
        }
        state.last_attempt = Some(now);
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(issuer = %self.issuer, keys = keys.len(), "fetched the JWKS");
                state.last_failed = false;
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
            }
            Err(why) => {
                tracing::warn!(url = %self.url, error = %why, "cannot fetch the JWKS");
                state.last_failed = true;
                return Err(JwtError::KeySetUnavailable {
                    retry_after_secs: u64::try_from(KEY_REFETCH_INTERVAL_SECS).unwrap_or(60),
                });
            }
        }
        self.cached(kid).ok_or(JwtError::UnknownKey)
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<RsaKey>>, String> {
        let mut response = self
            .http
            .get(self.url.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP status {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body)
    }
}

impl RsaKey {
    /// Whether `signature` is this key's RS256 signature of `message`.
    pub(super) fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), JwtError> {
        RsaPublicKeyComponents {
            n: &self.n,
            e: &self.e,
        }
        .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
        .map_err(|_| JwtError::BadSignature)
    }
}

#[derive(Debug, Deserialize)]
struct Jwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// The RS256 signing keys of a JWKS document by `kid`. Keys of another type, use or
/// algorithm, without a `kid`, or with unreadable numbers are skipped (a JWKS may hold
/// encryption keys too); a repeated `kid` keeps its first key.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<RsaKey>>, String> {
    let jwks: Jwks = serde_json::from_slice(body)
        .map_err(|e| format!("the JWKS is not a JSON object with `keys`: {e}"))?;
    let mut keys = HashMap::new();
    for value in jwks.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        let usable = jwk.kty == "RSA"
            && jwk.use_.as_deref().is_none_or(|u| u == "sig")
            && jwk.alg.as_deref().is_none_or(|a| a == ALGORITHM);
        let (true, Some(kid), Some(n), Some(e)) = (usable, jwk.kid, jwk.n, jwk.e) else {
            continue;
        };
        let (Some(n), Some(e)) = (unsigned(&n), unsigned(&e)) else {
            tracing::warn!(%kid, "a JWKS key has an unreadable modulus or exponent; skipped");
            continue;
        };
        keys.entry(kid).or_insert_with(|| Arc::new(RsaKey { n, e }));
    }
    Ok(keys)
}

/// A base64url big-endian unsigned integer without leading zero bytes (as `ring` wants
/// them; RFC 7518 forbids them, but a stray one should not make a key unusable).
fn unsigned(base64url: &str) -> Option<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(base64url).ok()?;
    let first = bytes.iter().position(|&b| b != 0)?;
    Some(bytes[first..].to_vec())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_jwks_keeps_rs256_signing_keys_by_kid() {
        let n = URL_SAFE_NO_PAD.encode([0u8, 0, 0xc1, 0x02]);
        let body = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "a", "alg": "RS256", "use": "sig", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "b", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": n, "e": "AQAB"},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "RSA", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "bad", "n": "not base64!", "e": "AQAB"},
            {"kty": "RSA", "kid": "zero", "n": "AAAA", "e": "AQAB"},
            {"kty": 7},
            {"kty": "RSA", "kid": "a", "n": "AQ", "e": "AQ"},
        ]});
        let keys = parse_jwks(body.to_string().as_bytes()).unwrap();
        let mut kids: Vec<_> = keys.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["a", "b"]);
        // leading zeros stripped; the first key of a repeated kid kept
        assert_eq!(keys["a"].n, [0xc1, 0x02]);
        assert_eq!(keys["a"].e, [1, 0, 1]);
        assert!(parse_jwks(b"[]").is_err());
        assert!(parse_jwks(b"{\"keys\": 1}").is_err());
    }
}
