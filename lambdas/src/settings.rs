//! What the Lambdas read from the environment besides the AWS settings
//! (`provisioner_store_aws::config::AwsSettings`): the issuance profile and limits,
//! under the same variables, defaults and conversion as `provisioner serve`
//! (`provisioner_http::api_options`), and the issuer's latent retrieval URLs.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `PROVISIONER_VALIDITY_DAYS` | lifetime of issued certificates | 365 |
//! | `PROVISIONER_RENEW_WITHIN_DAYS` | renewal window before `notAfter` | 30 |
//! | `PROVISIONER_RATE_LIMIT` | new certificates per device per hour, 0 = off | 10 |
//! | `PROVISIONER_FAILED_RATE_LIMIT` | failed requests per client address (IPv6: per /64) per minute, per issuer container (the same limiter as `serve`), 0 = off | 100 |
//! | `PROVISIONER_MQTT_ENDPOINT` | the `endpoint` devices are told | required by the issuer |
//! | `PROVISIONER_ALLOW_P384` | accept P-384 CSRs (`true`/`false`) | false |
//! | `PROVISIONER_PUBLIC_URL` | the devices' base URL (`https://host`), the prefix of latent retrieval URLs | none: retrieval URLs are relative (`/certificates/...`) |
//! | `PROVISIONER_RETRIEVAL_TTL_SECS` | lifetime of a latent retrieval URL | 600 |
//! | `PROVISIONER_RETRIEVAL_KEY` | HMAC key of retrieval URLs (at least 32 characters) | derived from `PROVISIONER_ORIGIN_SECRET` |
//!
//! The admin API's ([`AdminApiSettings`]), under the same variables as `provisioner serve`:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `PROVISIONER_ADMIN_JWT_ISSUER` | the admins' user pool, `https://cognito-idp.REGION.amazonaws.com/POOL_ID` (the `iss` of its ID tokens) | required by the admin API |
//! | `PROVISIONER_ADMIN_JWT_AUDIENCE` | the dashboard's app client id (the `aud` of its ID tokens) | required by the admin API |
//! | `PROVISIONER_ADMIN_USER_POOL_ID` | the pool's id, checked against the issuer's last segment | not checked |
//! | `PROVISIONER_ADMIN_JWT_GROUP` | accept only users in this Cognito group | every user of the pool |
//! | `PROVISIONER_ADMIN_SIGN_IN_DOMAIN` | Cognito's hosted UI (`https://PREFIX.auth.REGION.amazoncognito.com`), offered by the dashboard | none: no hosted sign-in |
//! | `PROVISIONER_DASHBOARD_DIR` | the built dashboard (Trunk's output) | `dashboard` beside the binary (the zip's `dashboard/`) |
//!
//! Every issuer container, in every region, must sign retrieval URLs with the same key
//! (the `GET` may reach another container or, by latency routing, another region), so the
//! key is configuration, never generated per container: `PROVISIONER_RETRIEVAL_KEY`, or
//! else a key derived from the origin secret, which every function of the deployment
//! already shares.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use provisioner_app::flow::FlowSettings;
use provisioner_http::admin::HostedSignIn;
use provisioner_http::admin_auth::{JwtConfigError, JwtValidator};
use provisioner_http::api_options::{IssuanceOptions, DEFAULT_RETRIEVAL_TTL_SECS};
use sha2::Sha256;

/// What the derived retrieval key is an HMAC of, under the origin secret: a label, so the
/// key is not the secret itself and means nothing elsewhere.
const RETRIEVAL_KEY_LABEL: &[u8] = b"provisioner latent retrieval URL key v1";

/// Why the Lambda settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct SettingsError {
    /// The variable at fault.
    pub variable: &'static str,
    /// What to fix.
    pub message: String,
}

/// The Lambdas' settings beyond the AWS ones.
#[derive(Debug, Clone)]
pub struct LambdaSettings {
    /// The flow's profile and limits (`endpoint` empty when unset: see
    /// [`LambdaSettings::require_endpoint`]).
    pub flow: FlowSettings,
    /// Base of retrieval URLs, without a trailing slash; empty for relative URLs.
    pub public_url: String,
    /// Lifetime of a retrieval URL, seconds.
    pub retrieval_ttl_secs: i64,
    /// The HMAC key of retrieval URLs; `None` when neither variable gives one.
    pub retrieval_key: Option<Vec<u8>>,
}

impl LambdaSettings {
    /// Reads the settings from the process environment; `origin_secret` is
    /// `AwsSettings::origin_secret`.
    ///
    /// # Errors
    /// See [`LambdaSettings::from_vars`].
    pub fn from_env(origin_secret: Option<&str>) -> Result<Self, SettingsError> {
        Self::from_vars(&std::env::vars().collect(), origin_secret)
    }

    /// Reads the settings from `vars` (the environment, or a test's map).
    ///
    /// # Errors
    /// A number that does not parse, a boolean other than `true`/`false`, a public URL
    /// that is not `http(s)://...`, or a retrieval key shorter than 32 characters.
    pub fn from_vars(
        vars: &HashMap<String, String>,
        origin_secret: Option<&str>,
    ) -> Result<Self, SettingsError> {
        let get = |name: &str| {
            vars.get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let number = |name: &'static str, default: u32| -> Result<u32, SettingsError> {
            get(name).map_or(Ok(default), |v| {
                v.parse().map_err(|_| SettingsError {
                    variable: name,
                    message: format!("`{v}` is not a whole number"),
                })
            })
        };
        let allow_p384 = match get("PROVISIONER_ALLOW_P384").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(SettingsError {
                    variable: "PROVISIONER_ALLOW_P384",
                    message: format!("`{other}` is not a boolean; use `true` or `false`"),
                })
            }
        };
        let public_url = get("PROVISIONER_PUBLIC_URL").unwrap_or_default();
        let public_url = public_url.trim_end_matches('/').to_owned();
        let is_base_url = public_url.starts_with("https://") || public_url.starts_with("http://");
        if !public_url.is_empty() && !is_base_url {
            return Err(SettingsError {
                variable: "PROVISIONER_PUBLIC_URL",
                message: format!(
                    "`{public_url}` is not a base URL; use the devices' one, e.g. https://provisioning.example.com"
                ),
            });
        }
        let retrieval_key = match get("PROVISIONER_RETRIEVAL_KEY") {
            Some(key) if key.len() < 32 => {
                return Err(SettingsError {
                    variable: "PROVISIONER_RETRIEVAL_KEY",
                    message: format!(
                        "{} characters is too short for an HMAC key; use at least 32 (e.g. `openssl rand -hex 32`)",
                        key.len()
                    ),
                })
            }
            Some(key) => Some(key.into_bytes()),
            None => origin_secret
                .filter(|s| !s.is_empty())
                .map(derived_retrieval_key),
        };
        Ok(Self {
            flow: IssuanceOptions {
                validity_days: number(
                    "PROVISIONER_VALIDITY_DAYS",
                    IssuanceOptions::DEFAULT_VALIDITY_DAYS,
                )?,
                renew_within_days: number(
                    "PROVISIONER_RENEW_WITHIN_DAYS",
                    IssuanceOptions::DEFAULT_RENEW_WITHIN_DAYS,
                )?,
                rate_limit: number(
                    "PROVISIONER_RATE_LIMIT",
                    IssuanceOptions::DEFAULT_RATE_LIMIT,
                )?,
                failed_rate_limit: number(
                    "PROVISIONER_FAILED_RATE_LIMIT",
                    IssuanceOptions::DEFAULT_FAILED_RATE_LIMIT,
                )?,
                allow_p384,
                mqtt_endpoint: get("PROVISIONER_MQTT_ENDPOINT").unwrap_or_default(),
            }
            .flow_settings(),
            public_url,
            retrieval_ttl_secs: i64::from(number(
                "PROVISIONER_RETRIEVAL_TTL_SECS",
                DEFAULT_RETRIEVAL_TTL_SECS,
            )?),
            retrieval_key,
        })
    }

    /// The issuer's check that devices will be told where to connect.
    ///
    /// # Errors
    /// `PROVISIONER_MQTT_ENDPOINT` unset.
    pub fn require_endpoint(&self) -> Result<(), SettingsError> {
        if self.flow.endpoint.is_empty() {
            return Err(SettingsError {
                variable: "PROVISIONER_MQTT_ENDPOINT",
                message: "set the endpoint devices connect to, e.g. the output of `aws iot describe-endpoint --endpoint-type iot:Data-ATS` with `:8883`".into(),
            });
        }
        Ok(())
    }
}

/// The admin API's settings beyond the AWS ones: whose ID tokens it accepts, the hosted
/// sign-in it offers, and where the dashboard's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminApiSettings {
    /// The user pool's issuer URL, as given.
    pub jwt_issuer: String,
    /// The app client id.
    pub jwt_audience: String,
    /// The group every admin must be in, if any.
    pub jwt_group: Option<String>,
    /// Cognito's hosted UI domain, if the dashboard offers it.
    pub sign_in_domain: Option<String>,
    /// The built dashboard's directory.
    pub dashboard_dir: PathBuf,
}

impl AdminApiSettings {
    /// Where the dashboard is looked for without `PROVISIONER_DASHBOARD_DIR`: beside the
    /// binary, as the admin-api zip carries it (`bootstrap`, `dashboard/`).
    pub const DASHBOARD_DIR_NAME: &'static str = "dashboard";

    /// Reads the settings from the process environment; the default dashboard directory
    /// is beside the running binary.
    ///
    /// # Errors
    /// See [`AdminApiSettings::from_vars`].
    pub fn from_env() -> Result<Self, SettingsError> {
        let binary = std::env::current_exe().ok();
        let binary_dir = binary.as_deref().and_then(Path::parent);
        Self::from_vars(&std::env::vars().collect(), binary_dir)
    }

    /// Reads the settings from `vars`; `binary_dir` is where the default dashboard
    /// directory is (none: the working directory).
    ///
    /// # Errors
    /// The issuer or the audience unset; an issuer that is not the pool
    /// `PROVISIONER_ADMIN_USER_POOL_ID` names. The URLs themselves are checked by
    /// [`AdminApiSettings::jwt_validator`] and [`AdminApiSettings::hosted_sign_in`].
    pub fn from_vars(
        vars: &HashMap<String, String>,
        binary_dir: Option<&Path>,
    ) -> Result<Self, SettingsError> {
        let get = |name: &str| {
            vars.get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let jwt_issuer = get("PROVISIONER_ADMIN_JWT_ISSUER").ok_or_else(|| SettingsError {
            variable: "PROVISIONER_ADMIN_JWT_ISSUER",
            message: "set the admins' user pool: https://cognito-idp.REGION.amazonaws.com/POOL_ID (output AdminJwtIssuer of the stack)".into(),
        })?;
        let jwt_audience = get("PROVISIONER_ADMIN_JWT_AUDIENCE").ok_or_else(|| SettingsError {
            variable: "PROVISIONER_ADMIN_JWT_AUDIENCE",
            message:
                "set the dashboard's app client id (output AdminUserPoolClientId of the stack)"
                    .into(),
        })?;
        if let Some(pool) = get("PROVISIONER_ADMIN_USER_POOL_ID") {
            if jwt_issuer.trim_end_matches('/').rsplit('/').next() != Some(pool.as_str()) {
                return Err(SettingsError {
                    variable: "PROVISIONER_ADMIN_JWT_ISSUER",
                    message: format!(
                        "`{jwt_issuer}` is not the issuer of the user pool {pool} \
                         (PROVISIONER_ADMIN_USER_POOL_ID): it must end with /{pool}"
                    ),
                });
            }
        }
        let dashboard_dir = get("PROVISIONER_DASHBOARD_DIR").map_or_else(
            || {
                binary_dir
                    .unwrap_or(Path::new("."))
                    .join(Self::DASHBOARD_DIR_NAME)
            },
            PathBuf::from,
        );
        Ok(Self {
            jwt_issuer,
            jwt_audience,
            jwt_group: get("PROVISIONER_ADMIN_JWT_GROUP"),
            sign_in_domain: get("PROVISIONER_ADMIN_SIGN_IN_DOMAIN"),
            dashboard_dir,
        })
    }

    /// The validator of the admins' ID tokens (no key is fetched yet).
    ///
    /// # Errors
    /// An issuer that is not an `https://` URL (`http://` only on loopback), or the HTTP
    /// client that fetches its keys cannot be built: each names its variable.
    pub fn jwt_validator(&self) -> Result<JwtValidator, SettingsError> {
        let refused = |variable, error: JwtConfigError| SettingsError {
            variable,
            message: error.to_string(),
        };
        let validator = JwtValidator::new(&self.jwt_issuer, &self.jwt_audience).map_err(|e| {
            let variable = match e {
                JwtConfigError::EmptyAudience => "PROVISIONER_ADMIN_JWT_AUDIENCE",
                _ => "PROVISIONER_ADMIN_JWT_ISSUER",
            };
            refused(variable, e)
        })?;
        match &self.jwt_group {
            Some(group) => validator
                .with_required_group(group)
                .map_err(|e| refused("PROVISIONER_ADMIN_JWT_GROUP", e)),
            None => Ok(validator),
        }
    }

    /// The hosted sign-in the dashboard offers, if a domain is set.
    ///
    /// # Errors
    /// A domain that is not an `https://` origin without a path.
    pub fn hosted_sign_in(&self) -> Result<Option<HostedSignIn>, SettingsError> {
        self.sign_in_domain
            .as_deref()
            .map(|domain| {
                HostedSignIn::cognito(domain, &self.jwt_audience).map_err(|message| SettingsError {
                    variable: "PROVISIONER_ADMIN_SIGN_IN_DOMAIN",
                    message,
                })
            })
            .transpose()
    }
}

/// HMAC-SHA256(origin secret, label): the same in every container and region that shares
/// the secret.
fn derived_retrieval_key(origin_secret: &str) -> Vec<u8> {
    // HMAC accepts a key of any length; the fallback is unreachable.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(origin_secret.as_bytes()) else {
        return Vec::new();
    };
    mac.update(RETRIEVAL_KEY_LABEL);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 60 * 60;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_match_the_local_service() {
        let s = LambdaSettings::from_vars(&vars(&[]), None).unwrap();
        assert_eq!(s.flow.profile.validity_secs, 365 * DAY);
        assert_eq!(s.flow.profile.renew_within_secs, 30 * DAY);
        assert_eq!(s.flow.rate_limit.per_hour, 10);
        assert_eq!(s.flow.failures_per_minute, 100);
        assert!(!s.flow.profile.csr.allow_p384);
        assert_eq!((s.public_url.as_str(), s.retrieval_ttl_secs), ("", 600));
        assert_eq!(s.retrieval_key, None);
        assert_eq!(
            s.require_endpoint().unwrap_err().variable,
            "PROVISIONER_MQTT_ENDPOINT"
        );
    }

    #[test]
    fn the_retrieval_key_is_the_same_for_the_same_origin_secret_and_an_explicit_key_wins() {
        let a = LambdaSettings::from_vars(&vars(&[]), Some("secret-one")).unwrap();
        let b = LambdaSettings::from_vars(&vars(&[]), Some("secret-one")).unwrap();
        let c = LambdaSettings::from_vars(&vars(&[]), Some("secret-two")).unwrap();
        assert_eq!(a.retrieval_key, b.retrieval_key);
        assert_ne!(a.retrieval_key, c.retrieval_key);
        assert_ne!(a.retrieval_key.as_deref(), Some(b"secret-one".as_slice()));
        let key = "k".repeat(32);
        let explicit =
            LambdaSettings::from_vars(&vars(&[("PROVISIONER_RETRIEVAL_KEY", &key)]), Some("x"))
                .unwrap();
        assert_eq!(explicit.retrieval_key, Some(key.into_bytes()));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("PROVISIONER_VALIDITY_DAYS", "a year"),
            ("PROVISIONER_ALLOW_P384", "yes"),
            ("PROVISIONER_PUBLIC_URL", "provisioning.example.com"),
            ("PROVISIONER_RETRIEVAL_KEY", "short"),
        ] {
            let error = LambdaSettings::from_vars(&vars(&[(name, value)]), None).unwrap_err();
            assert_eq!(error.variable, name, "{error}");
        }
        let s = LambdaSettings::from_vars(
            &vars(&[("PROVISIONER_PUBLIC_URL", "https://p.example.com/")]),
            None,
        )
        .unwrap();
        assert_eq!(s.public_url, "https://p.example.com");
    }

    const ISSUER: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Pool";

    fn admin_vars(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut all = vars(&[
            ("PROVISIONER_ADMIN_JWT_ISSUER", ISSUER),
            ("PROVISIONER_ADMIN_JWT_AUDIENCE", "client-id"),
            ("PROVISIONER_ADMIN_USER_POOL_ID", "eu-west-1_Pool"),
        ]);
        all.extend(vars(extra));
        all
    }

    #[test]
    fn the_admin_api_needs_its_issuer_and_audience() {
        for missing in [
            "PROVISIONER_ADMIN_JWT_ISSUER",
            "PROVISIONER_ADMIN_JWT_AUDIENCE",
        ] {
            let mut given = admin_vars(&[]);
            given.insert(missing.to_owned(), "  ".to_owned());
            let error = AdminApiSettings::from_vars(&given, None).unwrap_err();
            assert_eq!(error.variable, missing, "{error}");
            assert!(error.message.contains("stack"), "{error}");
        }
    }

    #[test]
    fn the_admin_defaults_serve_the_dashboard_beside_the_binary_without_hosted_sign_in() {
        let s =
            AdminApiSettings::from_vars(&admin_vars(&[]), Some(Path::new("/var/task"))).unwrap();
        assert_eq!(s.dashboard_dir, Path::new("/var/task/dashboard"));
        assert_eq!(s.jwt_group, None);
        assert_eq!(s.hosted_sign_in().unwrap(), None);
        assert_eq!(s.jwt_validator().unwrap().issuer(), ISSUER);
        let elsewhere = AdminApiSettings::from_vars(
            &admin_vars(&[("PROVISIONER_DASHBOARD_DIR", "/opt/ui")]),
            Some(Path::new("/var/task")),
        )
        .unwrap();
        assert_eq!(elsewhere.dashboard_dir, Path::new("/opt/ui"));
    }

    #[test]
    fn invalid_admin_values_name_their_variable() {
        let other_pool = AdminApiSettings::from_vars(
            &admin_vars(&[("PROVISIONER_ADMIN_USER_POOL_ID", "eu-west-1_Other")]),
            None,
        )
        .unwrap_err();
        assert_eq!(other_pool.variable, "PROVISIONER_ADMIN_JWT_ISSUER");
        assert!(
            other_pool.message.contains("eu-west-1_Other"),
            "{other_pool}"
        );

        let plain_http = AdminApiSettings::from_vars(
            &admin_vars(&[(
                "PROVISIONER_ADMIN_JWT_ISSUER",
                "http://cognito.example.com/eu-west-1_Pool",
            )]),
            None,
        )
        .unwrap();
        let error = plain_http.jwt_validator().unwrap_err();
        assert_eq!(error.variable, "PROVISIONER_ADMIN_JWT_ISSUER", "{error}");
        assert!(error.message.contains("not https"), "{error}");

        let domain_with_path = AdminApiSettings::from_vars(
            &admin_vars(&[(
                "PROVISIONER_ADMIN_SIGN_IN_DOMAIN",
                "https://x.auth.eu-west-1.amazoncognito.com/login",
            )]),
            None,
        )
        .unwrap();
        let error = domain_with_path.hosted_sign_in().unwrap_err();
        assert_eq!(
            error.variable, "PROVISIONER_ADMIN_SIGN_IN_DOMAIN",
            "{error}"
        );
    }

    #[test]
    fn a_sign_in_domain_offers_the_hosted_ui_for_the_audience() {
        let s = AdminApiSettings::from_vars(
            &admin_vars(&[
                (
                    "PROVISIONER_ADMIN_SIGN_IN_DOMAIN",
                    "https://fleet.auth.eu-west-1.amazoncognito.com",
                ),
                ("PROVISIONER_ADMIN_JWT_GROUP", "admins"),
            ]),
            None,
        )
        .unwrap();
        let sign_in = s.hosted_sign_in().unwrap().unwrap();
        assert_eq!(
            sign_in.authorize_url,
            "https://fleet.auth.eu-west-1.amazoncognito.com/oauth2/authorize"
        );
        assert_eq!(sign_in.client_id, "client-id");
        assert_eq!(s.jwt_group.as_deref(), Some("admins"));
        assert!(s.jwt_validator().is_ok());
    }
}
