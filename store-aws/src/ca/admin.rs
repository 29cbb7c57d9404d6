//! The PKI admin's steps ([`IssuingCaAdmin`]): create an issuing ACM Private CA, install
//! its certificate, describe it. Registering it in IoT Core is `iot_regions`' part,
//! rotating to it `rotation`'s.

use std::time::Duration;

use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{
    CertificateAuthorityConfiguration, CertificateAuthorityStatus, CertificateAuthorityType,
    KeyAlgorithm, SigningAlgorithm,
};
use aws_sdk_iot::error::ProvideErrorMetadata;

use super::certificates::csr_spki;
use super::error::{not_found_or, retry_throttled, sdk_error, PCA};
use super::iot_regions::registration;
use super::{
    now, pem_blocks, pem_of, summarize_certificate, CaError, CaSubject, CertificateSummary,
    IotCaRegistration, IotRegions, IssuingCaStore,
};
use crate::acm_pca::backoff;
use crate::config::AwsSettings;
use crate::dynamodb::{DynamoDbRegistry, DynamoDbTables};
use crate::is_throttling;

/// A subordinate CA `create_subordinate_ca` made, waiting for its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedCa {
    /// The CA's ARN.
    pub ca_arn: String,
    /// Its CSR, PEM, for the parent CA to sign.
    pub csr_pem: String,
}

/// An installed CA certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledCa {
    /// The CA's ARN.
    pub ca_arn: String,
    /// What the certificate says.
    pub certificate: CertificateSummary,
    /// Certificates in the chain sent with it.
    pub chain_length: usize,
    /// True when it became the issuing CA (no CA was in effect).
    pub became_current: bool,
}

/// What `describe` finds of a CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaDescription {
    /// The CA's ARN.
    pub ca_arn: String,
    /// ACM PCA status (`PENDING_CERTIFICATE`, `ACTIVE`, `DISABLED`...).
    pub status: String,
    /// `ROOT` or `SUBORDINATE`.
    pub ca_type: String,
    /// The installed certificate, if any.
    pub certificate: Option<CertificateSummary>,
    /// Its registration in each region.
    pub iot: Vec<IotCaRegistration>,
}

/// The PKI admin's operations on ACM Private CA, IoT Core and the config table.
#[derive(Debug, Clone)]
pub struct IssuingCaAdmin {
    pub(super) pca: aws_sdk_acmpca::Client,
    pub(super) iot: IotRegions,
    pub(super) store: IssuingCaStore,
    pub(super) registry: DynamoDbRegistry,
    pub(super) fallback_arn: Option<String>,
    pub(super) serving_region: String,
    pub(super) deadline: Duration,
}

impl IssuingCaAdmin {
    /// The operations over these clients; `fallback_arn` is the issuing CA in effect when
    /// the config table records none ([`AwsSettings::pca_ca_arn`]); `serving_region` is
    /// where the CAs live.
    pub fn new(
        pca: aws_sdk_acmpca::Client,
        iot: IotRegions,
        store: IssuingCaStore,
        registry: DynamoDbRegistry,
        fallback_arn: Option<String>,
        serving_region: impl Into<String>,
    ) -> Self {
        Self {
            pca,
            iot,
            store,
            registry,
            fallback_arn,
            serving_region: serving_region.into(),
            deadline: Duration::from_secs(120),
        }
    }

    /// Everything from `settings` and the standard AWS configuration (environment,
    /// profile or role; `AWS_ENDPOINT_URL` for a stand-in such as moto).
    pub async fn from_settings(settings: &AwsSettings) -> Self {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.serving_region.clone()))
            .load()
            .await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        Self::new(
            aws_sdk_acmpca::Client::new(&sdk),
            IotRegions::new(&sdk, &settings.regions),
            IssuingCaStore::new(dynamo.clone(), settings.config_table()),
            DynamoDbRegistry::new(dynamo, DynamoDbTables::with_prefix(&settings.table_prefix)),
            settings.pca_ca_arn.clone(),
            settings.serving_region.clone(),
        )
    }

    /// How long to wait for PCA (CA creation, certificates): default 120 s.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The config table's CA items.
    pub fn store(&self) -> &IssuingCaStore {
        &self.store
    }

    /// The IoT Core clients.
    pub fn iot(&self) -> &IotRegions {
        &self.iot
    }

    /// The issuing CA in effect: the recorded one, else the fallback.
    ///
    /// # Errors
    /// A DynamoDB failure.
    pub async fn current_arn(&self) -> Result<Option<String>, CaError> {
        Ok(match self.store.read_current().await? {
            Some(current) => Some(current.ca_arn),
            None => self.fallback_arn.clone(),
        })
    }

    /// Creates an ACM Private CA subordinate named `subject` (EC P-256 key, ECDSA-SHA-256
    /// signatures), waits until it wants its certificate, records it as the pending CA,
    /// and returns its CSR for the parent CA to sign.
    ///
    /// # Errors
    /// [`CaError::WrongState`] when PCA fails to create it or takes longer than the
    /// deadline; any PCA or DynamoDB failure.
    pub async fn create_subordinate_ca(&self, subject: &CaSubject) -> Result<CreatedCa, CaError> {
        let configuration = CertificateAuthorityConfiguration::builder()
            .key_algorithm(KeyAlgorithm::EcPrime256v1)
            .signing_algorithm(SigningAlgorithm::Sha256Withecdsa)
            .subject(subject.to_pca())
            .build()
            .map_err(|e| CaError::InvalidInput(e.to_string()))?;
        let created = self
            .pca
            .create_certificate_authority()
            .certificate_authority_type(CertificateAuthorityType::Subordinate)
            .certificate_authority_configuration(configuration)
            .send()
            .await
            .map_err(|e| sdk_error(PCA, "CreateCertificateAuthority", &e))?;
        let arn = created
            .certificate_authority_arn()
            .ok_or_else(|| CaError::Corrupt("CreateCertificateAuthority answered no ARN".into()))?
            .to_owned();
        self.store.set_pending(&arn, now()).await?;
        self.wait_for_status(&arn, CertificateAuthorityStatus::PendingCertificate)
            .await?;
        let csr_pem = self.csr_pem(&arn).await?;
        Ok(CreatedCa {
            ca_arn: arn,
            csr_pem,
        })
    }

    /// The CSR of the CA `arn`, PEM (`GetCertificateAuthorityCsr`, retried while PCA is
    /// still making it).
    ///
    /// # Errors
    /// [`CaError::WrongState`] when it is not ready by the deadline; a PCA failure.
    pub async fn csr_pem(&self, arn: &str) -> Result<String, CaError> {
        let deadline = tokio::time::Instant::now() + self.deadline;
        let mut attempt = 0;
        loop {
            let result = self
                .pca
                .get_certificate_authority_csr()
                .certificate_authority_arn(arn)
                .send()
                .await;
            match result {
                Ok(output) => {
                    return output.csr().map(str::to_owned).ok_or_else(|| {
                        CaError::Corrupt("GetCertificateAuthorityCsr answered no CSR".into())
                    })
                }
                Err(error)
                    if matches!(error.code(), Some("RequestInProgressException"))
                        || is_throttling(error.code()) =>
                {
                    if tokio::time::Instant::now() > deadline {
                        return Err(CaError::WrongState(format!(
                            "the CSR of {arn} is not ready after {:?}; run the command again later",
                            self.deadline
                        )));
                    }
                }
                Err(error) => return Err(not_found_or(&error, arn, "GetCertificateAuthorityCsr")),
            }
            tokio::time::sleep(backoff(
                Duration::from_millis(500),
                Duration::from_secs(5),
                attempt,
            ))
            .await;
            attempt += 1;
        }
    }

    async fn wait_for_status(
        &self,
        arn: &str,
        wanted: CertificateAuthorityStatus,
    ) -> Result<(), CaError> {
        let deadline = tokio::time::Instant::now() + self.deadline;
        let mut attempt = 0;
        loop {
            let ca = self.describe_pca(arn).await?;
            let status = ca.status().cloned();
            match status {
                Some(status) if status == wanted => return Ok(()),
                Some(CertificateAuthorityStatus::Creating) | None => {}
                Some(other) => {
                    return Err(CaError::WrongState(format!(
                        "CA {arn} is {} ({}), not {}",
                        other.as_str(),
                        ca.failure_reason()
                            .map_or("no reason given", |r| r.as_str()),
                        wanted.as_str()
                    )))
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(CaError::WrongState(format!(
                    "CA {arn} is still being created after {:?}",
                    self.deadline
                )));
            }
            tokio::time::sleep(backoff(
                Duration::from_millis(500),
                Duration::from_secs(5),
                attempt,
            ))
            .await;
            attempt += 1;
        }
    }

    /// What ACM Private CA says of the CA `arn`.
    pub(super) async fn describe_pca(
        &self,
        arn: &str,
    ) -> Result<aws_sdk_acmpca::types::CertificateAuthority, CaError> {
        let output = retry_throttled(|| {
            self.pca
                .describe_certificate_authority()
                .certificate_authority_arn(arn)
                .send()
        })
        .await
        .map_err(|e| not_found_or(&e, arn, "DescribeCertificateAuthority"))?;
        output.certificate_authority().cloned().ok_or_else(|| {
            CaError::Corrupt(format!("DescribeCertificateAuthority of {arn}: empty"))
        })
    }

    /// What the certificate of the ACTIVE CA `arn` says, and its chain as PEM: the CA's
    /// certificate, then the chain installed with it (its parents).
    ///
    /// # Errors
    /// [`CaError::WrongState`] when it has no certificate yet; [`CaError::NotFound`] for
    /// an unknown CA; a PCA failure.
    pub async fn certificate_of(&self, arn: &str) -> Result<(CertificateSummary, String), CaError> {
        let (der, _, chain) = self.ca_certificate(arn).await?;
        let summary = summarize_certificate(&der)?;
        let mut pem = pem_of("CERTIFICATE", &der);
        for link in &chain {
            pem.push_str(&pem_of("CERTIFICATE", link));
        }
        Ok((summary, pem))
    }

    /// The CA certificate and chain (PEM) of the ACTIVE CA `arn`.
    pub(super) async fn ca_certificate(
        &self,
        arn: &str,
    ) -> Result<(Vec<u8>, String, Vec<Vec<u8>>), CaError> {
        let output = retry_throttled(|| {
            self.pca
                .get_certificate_authority_certificate()
                .certificate_authority_arn(arn)
                .send()
        })
        .await
        .map_err(|error| match error.code() {
            Some("InvalidStateException") => CaError::WrongState(format!(
                "CA {arn} has no certificate yet: sign its CSR and run `provisioner aws ca install`"
            )),
            _ => not_found_or(&error, arn, "GetCertificateAuthorityCertificate"),
        })?;
        let pem = output.certificate().unwrap_or_default().to_owned();
        let der = pem_blocks(&pem, "CERTIFICATE")?
            .into_iter()
            .next()
            .ok_or_else(|| CaError::Corrupt(format!("CA {arn}: no certificate in the answer")))?;
        let chain = pem_blocks(
            output.certificate_chain().unwrap_or_default(),
            "CERTIFICATE",
        )?;
        Ok((der, pem, chain))
    }

    /// Installs the CA certificate `certificate_pem` (the CA's certificate first; more
    /// certificates after it are taken as the chain when `chain_pem` is `None`) into the
    /// CA `arn` (`ImportCertificateAuthorityCertificate`), after checking that it
    /// certifies the key of the CA's CSR. When no issuing CA is in effect, the CA becomes
    /// the issuing CA.
    ///
    /// # Errors
    /// [`CaError::InvalidInput`] for text that holds no certificate, or a certificate for
    /// another key; [`CaError::NotFound`] for an unknown CA; any PCA failure (PCA checks
    /// the chain).
    pub async fn install_ca_certificate(
        &self,
        arn: &str,
        certificate_pem: &str,
        chain_pem: Option<&str>,
    ) -> Result<InstalledCa, CaError> {
        let mut blocks = pem_blocks(certificate_pem, "CERTIFICATE")?.into_iter();
        let der = blocks.next().ok_or_else(|| {
            CaError::InvalidInput("the file holds no PEM CERTIFICATE block".into())
        })?;
        let summary = summarize_certificate(&der)?;
        let chain: Vec<Vec<u8>> = match chain_pem {
            Some(chain) => pem_blocks(chain, "CERTIFICATE")?,
            None => blocks.collect(),
        };
        for (index, link) in chain.iter().enumerate() {
            summarize_certificate(link).map_err(|e| {
                CaError::InvalidInput(format!("chain certificate {}: {e}", index + 1))
            })?;
        }
        let csr = pem_blocks(&self.csr_pem(arn).await?, "CERTIFICATE REQUEST")?
            .into_iter()
            .next()
            .ok_or_else(|| CaError::Corrupt(format!("CA {arn}: its CSR is not PEM")))?;
        if csr_spki(&csr)? != summary.spki_der {
            return Err(CaError::InvalidInput(format!(
                "the certificate ({}, serial {}) does not certify the key of CA {arn}'s CSR: \
                 have the parent sign that CA's CSR (`provisioner aws ca create` wrote it)",
                summary.subject, summary.serial
            )));
        }
        let chain_text: String = chain.iter().map(|d| pem_of("CERTIFICATE", d)).collect();
        let mut request = self
            .pca
            .import_certificate_authority_certificate()
            .certificate_authority_arn(arn)
            .certificate(Blob::new(pem_of("CERTIFICATE", &der)));
        if !chain.is_empty() {
            request = request.certificate_chain(Blob::new(chain_text));
        }
        request
            .send()
            .await
            .map_err(|e| not_found_or(&e, arn, "ImportCertificateAuthorityCertificate"))?;
        let became_current = self.adopt_if_none(arn).await?;
        Ok(InstalledCa {
            ca_arn: arn.to_owned(),
            certificate: summary,
            chain_length: chain.len(),
            became_current,
        })
    }

    /// Makes `arn` the issuing CA when none is in effect (or the fallback is `arn`).
    /// A CA in service is no longer pending.
    pub(super) async fn adopt_if_none(&self, arn: &str) -> Result<bool, CaError> {
        let adopted = match self.store.read_current().await? {
            Some(current) => {
                if current.ca_arn == arn {
                    self.store.clear_pending(arn).await?;
                }
                return Ok(false);
            }
            None => match self.fallback_arn.as_deref() {
                Some(fallback) if fallback != arn => false,
                fallback => {
                    self.store.set_current(fallback, arn, now()).await?;
                    true
                }
            },
        };
        if adopted {
            self.store.clear_pending(arn).await?;
        }
        Ok(adopted)
    }

    /// What ACM PCA and IoT Core (in every configured region) say of the CA `arn`.
    ///
    /// # Errors
    /// [`CaError::NotFound`] for an unknown CA; any PCA or IoT failure.
    pub async fn describe(&self, arn: &str) -> Result<CaDescription, CaError> {
        let ca = self.describe_pca(arn).await?;
        let status = ca
            .status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        let ca_type = ca
            .r#type()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default();
        let mut description = CaDescription {
            ca_arn: arn.to_owned(),
            status,
            ca_type,
            certificate: None,
            iot: Vec::new(),
        };
        if !matches!(
            ca.status(),
            Some(CertificateAuthorityStatus::Active | CertificateAuthorityStatus::Disabled)
        ) {
            description.iot = self
                .iot
                .regions()
                .iter()
                .map(|r| registration(r, None, None))
                .collect();
            return Ok(description);
        }
        let (der, _, _) = self.ca_certificate(arn).await?;
        description.certificate = Some(summarize_certificate(&der)?);
        for region in self.iot.regions() {
            description.iot.push(self.iot.find_ca(&region, &der).await?);
        }
        Ok(description)
    }
}
