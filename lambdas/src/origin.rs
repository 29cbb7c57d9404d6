//! The two facts both Lambdas take from the request's headers: did it come through our
//! CloudFront distribution (the origin secret), and from which client address.

use std::net::IpAddr;

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The header CloudFront adds to every origin request, carrying the origin secret
/// (`AwsSettings::ORIGIN_SECRET_HEADER`; repeated here so the crate's handlers build
/// without the `aws` feature).
pub const ORIGIN_SECRET_HEADER: &str = "x-origin-secret";

/// The header in which CloudFront passes the viewer's `ip:port` to the origin, when the
/// behaviour's origin request policy includes it. Not verified on a real distribution:
/// whether CloudFront replaces a viewer-sent header of this name under the template's
/// `AllViewerExceptHostHeader` policy (if it does not, a device can choose the address it
/// is audited and rate-limited under; the edge function could set a header of its own
/// from the viewer's address instead).
pub const VIEWER_ADDRESS_HEADER: &str = "cloudfront-viewer-address";

/// The `forbidden_origin` refusal's code.
pub const FORBIDDEN_ORIGIN: &str = "forbidden_origin";

/// The `forbidden_origin` refusal's message.
pub const FORBIDDEN_ORIGIN_MESSAGE: &str =
    "this API answers only through its CloudFront distribution: send the request to the public hostname";

/// 403 `forbidden_origin`: the answer of the issuer and the admin API to a request that did
/// not come through CloudFront.
pub fn forbidden_origin() -> provisioner_http::api::ApiError {
    provisioner_http::api::ApiError {
        status: axum::http::StatusCode::FORBIDDEN,
        code: FORBIDDEN_ORIGIN,
        message: FORBIDDEN_ORIGIN_MESSAGE.into(),
        retry_after_secs: None,
    }
}

/// The shared secret CloudFront sends as `x-origin-secret`, when the deployment checks it.
#[derive(Clone)]
pub struct OriginSecret {
    /// SHA-256 of the secret: comparing digests in constant time hides the length too.
    digest: Option<[u8; 32]>,
}

impl std::fmt::Debug for OriginSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginSecret")
            .field("checked", &self.digest.is_some())
            .finish()
    }
}

impl OriginSecret {
    /// The secret to require (`PROVISIONER_ORIGIN_SECRET`), or `None` to check nothing
    /// (a deployment without CloudFront, or the tests).
    pub fn new(secret: Option<&str>) -> Self {
        Self {
            digest: secret
                .filter(|s| !s.is_empty())
                .map(|s| Sha256::digest(s.as_bytes()).into()),
        }
    }

    /// Whether a secret is required.
    pub fn is_checked(&self) -> bool {
        self.digest.is_some()
    }

    /// True when no secret is configured, or when the request carries exactly one
    /// `x-origin-secret` header equal to it (compared in constant time).
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.digest else {
            return true;
        };
        let mut values = headers.get_all(ORIGIN_SECRET_HEADER).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => {
                let got: [u8; 32] = Sha256::digest(value.as_bytes()).into();
                got.ct_eq(expected).into()
            }
            _ => false,
        }
    }
}

/// The device's address, for the audit log and the failed-request limit.
///
/// Behind CloudFront, API Gateway's `sourceIp` is the CloudFront edge's address, shared
/// by every device that edge serves; the viewer's own is in `CloudFront-Viewer-Address`.
/// That header is believed only when `via_cloudfront` (the origin secret was checked and
/// matched), since anyone calling the API directly could set it. Otherwise, `sourceIp`.
pub fn client_address(
    headers: &HeaderMap,
    source_ip: Option<&str>,
    via_cloudfront: bool,
) -> Option<IpAddr> {
    let viewer = via_cloudfront
        .then(|| headers.get(VIEWER_ADDRESS_HEADER)?.to_str().ok())
        .flatten()
        .and_then(|value| {
            // `203.0.113.7:4711` or, unbracketed, `2001:db8::1:4711`.
            let (ip, _port) = value.trim().rsplit_once(':')?;
            ip.trim_matches(['[', ']']).parse().ok()
        });
    viewer.or_else(|| source_ip?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn only_the_exact_secret_once_is_admitted() {
        let secret = OriginSecret::new(Some("s3cret-s3cret"));
        assert!(secret.admits(&headers(&[("x-origin-secret", "s3cret-s3cret")])));
        assert!(!secret.admits(&headers(&[])));
        assert!(!secret.admits(&headers(&[("x-origin-secret", "s3cret-s3cre")])));
        assert!(!secret.admits(&headers(&[
            ("x-origin-secret", "s3cret-s3cret"),
            ("x-origin-secret", "guess")
        ])));
        assert!(OriginSecret::new(None).admits(&headers(&[])));
        assert!(!OriginSecret::new(Some("")).is_checked());
    }

    #[test]
    fn the_viewer_address_is_believed_only_through_cloudfront() {
        let h = headers(&[("cloudfront-viewer-address", "203.0.113.7:4711")]);
        assert_eq!(
            client_address(&h, Some("130.176.1.1"), true),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            client_address(&h, Some("130.176.1.1"), false),
            Some("130.176.1.1".parse().unwrap())
        );
        let v6 = headers(&[("cloudfront-viewer-address", "2001:db8::1:4711")]);
        assert_eq!(
            client_address(&v6, None, true),
            Some("2001:db8::1".parse().unwrap())
        );
        let garbage = headers(&[("cloudfront-viewer-address", "nonsense")]);
        assert_eq!(
            client_address(&garbage, Some("192.0.2.1"), true),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(client_address(&headers(&[]), Some("..."), false), None);
    }
}
