//! The AWS deployment's settings, read from the environment by every binary that runs on
//! AWS (the Lambdas, `provisioner serve --backend aws`, `provisioner aws ...`), so one
//! deployment template configures them all.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `PROVISIONER_TABLE_PREFIX` | prefix of every DynamoDB table name | `provisioner-` |
//! | `PROVISIONER_ISSUANCE_MODE` | `acm-pca` or `iot-core` | `acm-pca` |
//! | `PROVISIONER_PCA_CA_ARN` | the issuing CA before any `aws ca` command recorded one in the config table | none |
//! | `PROVISIONER_REGIONS` | comma-separated IoT Core regions holding every certificate; the serving region (`AWS_REGION`) first if absent | the serving region |
//! | `PROVISIONER_IOT_POLICY` | the IoT policy attached to every device certificate | `provisioner-device` |
//! | `PROVISIONER_IOT_CA_REGISTERED` | `true`: the issuing CA is registered in IoT Core (`provisioner aws ca register`) and certificates are registered with it; `false`: `RegisterCertificateWithoutCA` (multi-account mode, devices connect with SNI) | `true` |
//! | `PROVISIONER_RETRIEVAL_BUCKET` | S3 bucket for latent delivery (`?delivery=url`) | none: latent delivery uses the service's own signed route |
//! | `PROVISIONER_ORIGIN_SECRET` | the value CloudFront sends in `x-origin-secret`; requests without it are refused | none: not checked |
//!
//! The issuance profile and limits use the same variables as the local service
//! (`PROVISIONER_VALIDITY_DAYS`, `PROVISIONER_RENEW_WITHIN_DAYS`, `PROVISIONER_RATE_LIMIT`,
//! `PROVISIONER_MQTT_ENDPOINT`, `PROVISIONER_ALLOW_P384`).

use std::collections::HashMap;

use provisioner_core::CsrPolicy;

/// Which service signs device certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuanceMode {
    /// ACM Private CA (`IssueCertificate`), registered in every configured region.
    AcmPca,
    /// IoT Core's own CA (`CreateCertificateFromCsr`): one region only.
    IotCore,
}

impl IssuanceMode {
    /// The configuration spelling: `acm-pca` or `iot-core`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AcmPca => "acm-pca",
            Self::IotCore => "iot-core",
        }
    }

    /// `policy` with what this mode's CA needs of a CSR. IoT Core's
    /// `CreateCertificateFromCsr` copies the CSR's subject into the certificate and takes
    /// no template, so in `iot-core` mode the subject must be the CN alone
    /// ([`CsrPolicy::subject_cn_only`]), refused before IoT Core is called. ACM Private CA
    /// sets the subject itself (see `acm_pca`): its policy is unchanged.
    pub fn csr_policy(self, policy: CsrPolicy) -> CsrPolicy {
        match self {
            Self::AcmPca => policy,
            Self::IotCore => CsrPolicy {
                subject_cn_only: true,
                ..policy
            },
        }
    }
}

/// Why the AWS settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    /// The variable at fault.
    pub variable: &'static str,
    /// What to fix.
    pub message: String,
}

/// The AWS deployment's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// Prefix of every DynamoDB table name.
    pub table_prefix: String,
    /// Which service signs.
    pub issuance_mode: IssuanceMode,
    /// The issuing CA's ARN from the environment (the config table's record wins).
    pub pca_ca_arn: Option<String>,
    /// The serving region (the SDK's region).
    pub serving_region: String,
    /// Every region whose IoT Core holds the certificates, serving region first.
    pub regions: Vec<String>,
    /// The IoT policy attached to every device certificate.
    pub iot_policy: String,
    /// Whether the issuing CA is registered in IoT Core (else certificates are registered
    /// without it).
    pub iot_ca_registered: bool,
    /// The S3 bucket of latent delivery, if any.
    pub retrieval_bucket: Option<String>,
    /// The shared secret CloudFront adds as `x-origin-secret`, if checked.
    pub origin_secret: Option<String>,
}

impl AwsSettings {
    /// The header CloudFront adds to every origin request, carrying the origin secret.
    pub const ORIGIN_SECRET_HEADER: &'static str = "x-origin-secret";

    /// Reads the settings from the process environment.
    ///
    /// # Errors
    /// See [`AwsSettings::from_vars`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads the settings from `vars` (the environment, or a test's map).
    ///
    /// # Errors
    /// A missing region, an unknown issuance mode, an empty region name, or IoT Core mode
    /// with several regions (its certificates come from IoT Core's CA of one region).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            vars.get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let serving_region = get("AWS_REGION")
            .or_else(|| get("AWS_DEFAULT_REGION"))
            .ok_or_else(|| ConfigError {
                variable: "AWS_REGION",
                message: "set the serving region, e.g. AWS_REGION=eu-west-1".into(),
            })?;
        let issuance_mode = match get("PROVISIONER_ISSUANCE_MODE").as_deref() {
            None | Some("acm-pca") => IssuanceMode::AcmPca,
            Some("iot-core") => IssuanceMode::IotCore,
            Some(other) => {
                return Err(ConfigError {
                    variable: "PROVISIONER_ISSUANCE_MODE",
                    message: format!("`{other}` is not a mode; use `acm-pca` or `iot-core`"),
                })
            }
        };
        let mut regions = vec![serving_region.clone()];
        if let Some(list) = get("PROVISIONER_REGIONS") {
            for region in list.split(',').map(str::trim) {
                if region.is_empty() {
                    return Err(ConfigError {
                        variable: "PROVISIONER_REGIONS",
                        message: format!("`{list}` has an empty region name"),
                    });
                }
                if !regions.iter().any(|r| r == region) {
                    regions.push(region.to_owned());
                }
            }
        }
        if issuance_mode == IssuanceMode::IotCore && regions.len() > 1 {
            return Err(ConfigError {
                variable: "PROVISIONER_REGIONS",
                message: format!(
                    "issuance mode iot-core signs with IoT Core's own CA in {serving_region} \
                     only, which no other region trusts; use acm-pca for several regions \
                     ({} configured)",
                    regions.join(", ")
                ),
            });
        }
        let iot_ca_registered = match get("PROVISIONER_IOT_CA_REGISTERED").as_deref() {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(ConfigError {
                    variable: "PROVISIONER_IOT_CA_REGISTERED",
                    message: format!("`{other}` is not `true` or `false`"),
                })
            }
        };
        Ok(Self {
            iot_ca_registered,
            table_prefix: get("PROVISIONER_TABLE_PREFIX").unwrap_or_else(|| "provisioner-".into()),
            issuance_mode,
            pca_ca_arn: get("PROVISIONER_PCA_CA_ARN"),
            serving_region,
            regions,
            iot_policy: get("PROVISIONER_IOT_POLICY")
                .unwrap_or_else(|| "provisioner-device".into()),
            retrieval_bucket: get("PROVISIONER_RETRIEVAL_BUCKET"),
            origin_secret: get("PROVISIONER_ORIGIN_SECRET"),
        })
    }

    /// The config table's name: one item per setting changed at run time (the issuing CA).
    pub fn config_table(&self) -> String {
        format!("{}config", self.table_prefix)
    }

    /// The table of per-region registrations (certificate id + region).
    pub fn registrations_table(&self) -> String {
        format!("{}registrations", self.table_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_serve_one_region_with_acm_pca() {
        let settings = AwsSettings::from_vars(&vars(&[("AWS_REGION", "eu-west-1")])).unwrap();
        assert_eq!(settings.issuance_mode, IssuanceMode::AcmPca);
        assert_eq!(settings.regions, ["eu-west-1"]);
        assert_eq!(settings.config_table(), "provisioner-config");
    }

    #[test]
    fn the_serving_region_comes_first_and_once() {
        let settings = AwsSettings::from_vars(&vars(&[
            ("AWS_REGION", "eu-west-1"),
            ("PROVISIONER_REGIONS", "us-east-1, eu-west-1,ap-south-1"),
        ]))
        .unwrap();
        assert_eq!(settings.regions, ["eu-west-1", "us-east-1", "ap-south-1"]);
    }

    #[test]
    fn iot_core_mode_with_several_regions_is_refused() {
        let error = AwsSettings::from_vars(&vars(&[
            ("AWS_REGION", "eu-west-1"),
            ("PROVISIONER_ISSUANCE_MODE", "iot-core"),
            ("PROVISIONER_REGIONS", "us-east-1"),
        ]))
        .unwrap_err();
        assert_eq!(error.variable, "PROVISIONER_REGIONS");
        assert!(error.message.contains("use acm-pca"), "{error}");
    }

    #[test]
    fn only_iot_core_mode_wants_a_subject_of_the_cn_alone() {
        let base = CsrPolicy {
            allow_p384: true,
            ..CsrPolicy::default()
        };
        let iot = IssuanceMode::IotCore.csr_policy(base.clone());
        assert!(iot.subject_cn_only);
        assert!(iot.allow_p384);
        assert_eq!(IssuanceMode::AcmPca.csr_policy(base.clone()), base);
    }

    #[test]
    fn an_unknown_mode_or_a_missing_region_says_what_to_set() {
        let error = AwsSettings::from_vars(&vars(&[
            ("AWS_REGION", "eu-west-1"),
            ("PROVISIONER_ISSUANCE_MODE", "pca"),
        ]))
        .unwrap_err();
        assert!(error.message.contains("acm-pca"), "{error}");
        let error = AwsSettings::from_vars(&vars(&[])).unwrap_err();
        assert_eq!(error.variable, "AWS_REGION");
    }
}
