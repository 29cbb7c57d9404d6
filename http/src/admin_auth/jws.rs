//! A JWS in compact form (RFC 7515), as a Cognito ID token comes: the three base64url
//! parts split and the header read, its algorithm checked before anything else of the
//! token is looked at. The signature is verified by the key's owner
//! ([`jwks`](super::jwks)), the claims judged by the validator.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{JwtError, ALGORITHM, MAX_TOKEN_BYTES};

/// A JWS in compact form, split and its header checked; the signature not yet verified.
#[derive(Debug)]
pub(super) struct CompactJws<'a> {
    pub(super) header: Header,
    /// `BASE64URL(header) '.' BASE64URL(claims)`, what the signature covers.
    pub(super) signing_input: &'a str,
    pub(super) claims: &'a str,
    pub(super) signature: Vec<u8>,
}

/// The header as sent: only the members judged are read.
#[derive(Debug, Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

/// The header's one member used beyond the checks: which key signed the token.
#[derive(Debug)]
pub(super) struct Header {
    pub(super) kid: String,
}

impl<'a> CompactJws<'a> {
    /// Splits `token` and checks its header: at most [`MAX_TOKEN_BYTES`], three parts,
    /// `alg` RS256 (looked at first), a `kid`, no `crit`.
    pub(super) fn parse(token: &'a str) -> Result<Self, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed(
                "it is not three base64url parts separated by dots",
            ));
        };
        let raw: RawHeader = decode_json(header, "the header is not base64url JSON")?;
        // The algorithm first: nothing else of a token signed otherwise is looked at.
        if raw.alg.as_deref() != Some(ALGORITHM) {
            return Err(JwtError::UnsupportedAlgorithm);
        }
        if raw.crit.is_some() {
            return Err(JwtError::Malformed(
                "its header has critical parameters (crit), none of which are understood here",
            ));
        }
        let kid = raw
            .kid
            .ok_or(JwtError::Malformed("its header has no kid"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| JwtError::Malformed("the signature is not base64url"))?;
        Ok(Self {
            header: Header { kid },
            signing_input: &token[..header.len() + 1 + claims.len()],
            claims,
            signature,
        })
    }
}

/// Base64url without padding, then JSON; duplicate members of the fields read are
/// refused by serde, so no claim has two values.
pub(super) fn decode_json<T: DeserializeOwned>(
    part: &str,
    what: &'static str,
) -> Result<T, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed(what))?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed(what))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn token(header: &str, claims: &str, signature: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            b64(header),
            b64(claims),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    #[test]
    fn the_header_must_name_rs256_and_a_kid_and_nothing_critical() {
        let sig = [1u8; 8];
        let t = token(r#"{"alg":"RS256","kid":"k1"}"#, "{}", &sig);
        let parsed = CompactJws::parse(&t).unwrap();
        assert_eq!(parsed.header.kid, "k1");
        assert_eq!(parsed.signature, sig);
        for (header, expected) in [
            (
                r#"{"alg":"none","kid":"k1"}"#,
                JwtError::UnsupportedAlgorithm,
            ),
            (
                r#"{"alg":"HS256","kid":"k1"}"#,
                JwtError::UnsupportedAlgorithm,
            ),
            (
                r#"{"alg":"RS384","kid":"k1"}"#,
                JwtError::UnsupportedAlgorithm,
            ),
            (
                r#"{"alg":"rs256","kid":"k1"}"#,
                JwtError::UnsupportedAlgorithm,
            ),
            (r#"{"kid":"k1"}"#, JwtError::UnsupportedAlgorithm),
            (
                r#"{"alg":"RS256"}"#,
                JwtError::Malformed("its header has no kid"),
            ),
        ] {
            assert_eq!(
                CompactJws::parse(&token(header, "{}", &sig)).unwrap_err(),
                expected,
                "{header}"
            );
        }
        let critical = token(r#"{"alg":"RS256","kid":"k","crit":["exp"]}"#, "{}", &sig);
        assert_eq!(
            CompactJws::parse(&critical).unwrap_err().reason(),
            "malformed"
        );
        // a duplicated algorithm could say one thing to us and another to someone else
        let twice = token(r#"{"alg":"RS256","alg":"none","kid":"k"}"#, "{}", &sig);
        assert_eq!(CompactJws::parse(&twice).unwrap_err().reason(), "malformed");
    }

    #[test]
    fn malformed_and_oversized_tokens_are_refused_before_any_key_is_needed() {
        let header = b64(r#"{"alg":"RS256","kid":"k1"}"#);
        for bad in [
            "garbage".to_owned(),
            "a.b".to_owned(),
            format!("{header}.e30.c2ln.extra"),
            format!("{header}=.e30.c2ln"), // padded
            format!("{header}.e30.c2l+"),  // not base64url
            format!("{}.e30.c2ln", b64("not json")),
        ] {
            assert_eq!(
                CompactJws::parse(&bad).unwrap_err().reason(),
                "malformed",
                "{bad}"
            );
        }
        let huge = format!("{header}.{}.c2ln", "A".repeat(MAX_TOKEN_BYTES));
        assert_eq!(CompactJws::parse(&huge).unwrap_err(), JwtError::TooLarge);
    }

    #[test]
    fn the_signing_input_is_the_first_two_parts_as_sent() {
        let t = token(r#"{"alg":"RS256","kid":"k1"}"#, r#"{"a":1}"#, b"sig");
        let parsed = CompactJws::parse(&t).unwrap();
        let (first_two, _) = t.rsplit_once('.').unwrap();
        assert_eq!(parsed.signing_input, first_two);
        assert_eq!(parsed.claims, b64(r#"{"a":1}"#));
    }
}
