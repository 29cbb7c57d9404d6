//! The issuing CA in IoT Core of every configured region: [`IotRegions`] (a client per
//! region) finds the CA certificate and sets its status, registers it
//! ([`IssuingCaAdmin::register_ca_in_regions`]), and sets device certificates REVOKED for
//! a rotation ([`IotCertificateRevoker`]).

use std::future::Future;

use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{SigningAlgorithm, Validity, ValidityPeriodType};
use aws_sdk_iot::types::{CaCertificateStatus, CertificateStatus as IotCertificateStatus};
use provisioner_core::PortError;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use super::error::{not_found_or, retry_throttled, sdk_error, IOT};
use super::{pem_blocks, CaError, IssuingCaAdmin, END_ENTITY_TEMPLATE};
use crate::acm_pca::{AcmPcaAuthority, AcmPcaConfig};

/// Sets device certificates REVOKED in IoT Core in every configured region: the one IoT
/// call a rotation's cascade needs, so the thing registry adapter can provide it.
pub trait IotCertificateRevoker: Send + Sync {
    /// Sets each of `certificate_ids` (IoT Core certificate ids, which are the registry's
    /// ids) REVOKED in every region; one not registered in a region, or already revoked,
    /// is skipped there. Repeating it is harmless.
    fn revoke_in_all_regions(
        &self,
        certificate_ids: &[String],
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// A CA certificate's registration in one region's IoT Core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IotCaRegistration {
    /// The region.
    pub region: String,
    /// IoT Core's id of the CA certificate, when registered there.
    pub certificate_id: Option<String>,
    /// `ACTIVE` or `INACTIVE`, when registered.
    pub status: Option<String>,
}

/// IoT Core clients for the configured regions (serving region first).
///
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct IotRegions {
    clients: Vec<(String, aws_sdk_iot::Client)>,
    concurrency: usize,
}

impl IotRegions {
    /// A client per region of `regions`, each from `sdk` with its region replaced.
    pub fn new(sdk: &aws_config::SdkConfig, regions: &[String]) -> Self {
        let clients = regions
            .iter()
            .map(|region| {
                let config = aws_sdk_iot::config::Builder::from(sdk)
                    .region(aws_sdk_iot::config::Region::new(region.clone()))
                    .build();
                (region.clone(), aws_sdk_iot::Client::from_conf(config))
            })
            .collect();
        Self {
            clients,
            concurrency: 4,
        }
    }

    /// Over given clients, one per region (serving region first): tests point a region
    /// at an endpoint of their choice.
    pub fn from_clients(clients: Vec<(String, aws_sdk_iot::Client)>) -> Self {
        Self {
            clients,
            concurrency: 4,
        }
    }

    /// Sends at most `requests` certificate updates at once per region (default 4; IoT
    /// Core's `UpdateCertificate` allows about 10 per second per account by default, and
    /// throttled calls back off).
    #[must_use]
    pub fn with_concurrency(mut self, requests: usize) -> Self {
        self.concurrency = requests.max(1);
        self
    }

    /// The regions, serving region first.
    pub fn regions(&self) -> Vec<String> {
        self.clients.iter().map(|(r, _)| r.clone()).collect()
    }

    /// The client of `region`.
    ///
    /// # Errors
    /// [`CaError::InvalidInput`] for a region that is not configured.
    pub fn client(&self, region: &str) -> Result<&aws_sdk_iot::Client, CaError> {
        self.clients
            .iter()
            .find(|(r, _)| r == region)
            .map(|(_, c)| c)
            .ok_or_else(|| {
                CaError::InvalidInput(format!(
                    "region {region} is not configured: add it to PROVISIONER_REGIONS"
                ))
            })
    }

    /// The registration of the CA certificate `der` in `region`: `DescribeCACertificate`
    /// by IoT Core's id of it, the SHA-256 of its DER (moto computes it so only when
    /// started with `use_valid_cert`, as `scripts/moto.sh` starts it).
    ///
    /// # Errors
    /// An IoT Core failure.
    pub async fn find_ca(&self, region: &str, der: &[u8]) -> Result<IotCaRegistration, CaError> {
        let client = self.client(region)?;
        let id = hex::encode(Sha256::digest(der));
        Ok(match describe_ca_status(client, &id, der).await? {
            Some(status) => registration(region, Some(id), Some(status)),
            None => registration(region, None, None),
        })
    }

    /// Sets the CA certificate `id` to `status` in `region`.
    pub(super) async fn set_ca_status(
        &self,
        region: &str,
        id: &str,
        status: CaCertificateStatus,
    ) -> Result<(), CaError> {
        let client = self.client(region)?;
        retry_throttled(|| {
            client
                .update_ca_certificate()
                .certificate_id(id)
                .new_status(status.clone())
                .send()
        })
        .await
        .map_err(|e| sdk_error(IOT, "UpdateCACertificate", &e))?;
        Ok(())
    }

    async fn revoke_in_region(client: aws_sdk_iot::Client, id: String) -> Result<(), CaError> {
        let result = retry_throttled(|| {
            client
                .update_certificate()
                .certificate_id(&id)
                .new_status(IotCertificateStatus::Revoked)
                .send()
        })
        .await;
        let error = match result {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        match error.as_service_error() {
            // Not registered in this region: nothing to revoke there.
            Some(e) if e.is_resource_not_found_exception() => Ok(()),
            // A revoked certificate cannot change status: fine if it is revoked already.
            Some(e) if e.is_certificate_state_exception() => {
                let described =
                    retry_throttled(|| client.describe_certificate().certificate_id(&id).send())
                        .await
                        .map_err(|e| sdk_error(IOT, "DescribeCertificate", &e))?;
                let status = described
                    .certificate_description()
                    .and_then(|d| d.status())
                    .map(|s| s.as_str().to_owned());
                if status.as_deref() == Some("REVOKED") {
                    Ok(())
                } else {
                    Err(sdk_error(IOT, "UpdateCertificate", &error))
                }
            }
            _ => Err(sdk_error(IOT, "UpdateCertificate", &error)),
        }
    }
}

/// A registration in `region`, as found or made.
pub(super) fn registration(
    region: &str,
    id: Option<String>,
    status: Option<String>,
) -> IotCaRegistration {
    IotCaRegistration {
        region: region.to_owned(),
        certificate_id: id,
        status,
    }
}

/// The status of CA certificate `id`, if it exists and is the certificate `der`.
async fn describe_ca_status(
    client: &aws_sdk_iot::Client,
    id: &str,
    der: &[u8],
) -> Result<Option<String>, CaError> {
    let result =
        retry_throttled(|| client.describe_ca_certificate().certificate_id(id).send()).await;
    let output = match result {
        Ok(output) => output,
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            return Ok(None)
        }
        Err(error) => return Err(sdk_error(IOT, "DescribeCACertificate", &error)),
    };
    let Some(description) = output.certificate_description() else {
        return Ok(None);
    };
    let registered = description
        .certificate_pem()
        .map(|pem| pem_blocks(pem, "CERTIFICATE"))
        .transpose()?
        .and_then(|blocks| blocks.into_iter().next());
    if registered.as_deref() != Some(der) {
        return Ok(None);
    }
    Ok(description.status().map(|s| s.as_str().to_owned()))
}

impl IotCertificateRevoker for IotRegions {
    /// `UpdateCertificate` REVOKED for each id in each region, at most
    /// [`IotRegions::with_concurrency`] at once per region, throttled calls backing off.
    async fn revoke_in_all_regions(&self, certificate_ids: &[String]) -> Result<(), PortError> {
        for (_, client) in &self.clients {
            let mut running = JoinSet::new();
            for id in certificate_ids {
                while running.len() >= self.concurrency {
                    join_one(&mut running).await?;
                }
                running.spawn(Self::revoke_in_region(client.clone(), id.clone()));
            }
            while !running.is_empty() {
                join_one(&mut running).await?;
            }
        }
        Ok(())
    }
}

impl<R: provisioner_core::DeviceRegistry + 'static> IotCertificateRevoker
    for crate::iot::IotThingRegistry<R>
{
    /// [`IotThingRegistry::revoke_in_all_regions`](crate::iot::IotThingRegistry::revoke_in_all_regions);
    /// any failure in any region is an error (the rotation retries the whole batch).
    async fn revoke_in_all_regions(&self, certificate_ids: &[String]) -> Result<(), PortError> {
        let summary =
            crate::iot::IotThingRegistry::revoke_in_all_regions(self, certificate_ids).await;
        match summary.failed.first() {
            None => Ok(()),
            Some(first) => Err(PortError::Unavailable {
                what: format!(
                    "IoT Core ({} revocations failed, e.g. {} in {}: {})",
                    summary.failed.len(),
                    first.certificate_id,
                    first.region,
                    first.error
                ),
                retry_after_secs: 1,
            }),
        }
    }
}

async fn join_one(running: &mut JoinSet<Result<(), CaError>>) -> Result<(), PortError> {
    match running.join_next().await {
        Some(Ok(result)) => Ok(result?),
        Some(Err(e)) => Err(PortError::Internal(format!(
            "a revocation task failed: {e}"
        ))),
        None => Ok(()),
    }
}

impl IssuingCaAdmin {
    /// Registers the CA certificate of the ACTIVE CA `arn` in IoT Core in each of
    /// `regions` (configured ones), ACTIVE, without auto-registration: a registration
    /// code from the region (`GetRegistrationCode`), a verification certificate whose CN
    /// is that code signed by the CA itself (`IssueCertificate`, EndEntityCertificate
    /// template, one day), then `RegisterCACertificate`. A region where it is registered
    /// already is left as it is, except that an INACTIVE registration is made ACTIVE.
    /// When no issuing CA is in effect, the CA becomes the issuing CA.
    ///
    /// # Errors
    /// [`CaError::WrongState`] when the CA has no certificate yet; any PCA or IoT failure
    /// (regions done before stay registered; running it again finishes).
    pub async fn register_ca_in_regions(
        &self,
        arn: &str,
        regions: &[String],
    ) -> Result<Vec<IotCaRegistration>, CaError> {
        let (der, pem, _) = self.ca_certificate(arn).await?;
        let mut registrations = Vec::new();
        for region in regions {
            let found = self.iot.find_ca(region, &der).await?;
            let registration = match (&found.certificate_id, found.status.as_deref()) {
                (Some(_), Some("ACTIVE")) => found,
                (Some(id), _) => {
                    self.iot
                        .set_ca_status(region, id, CaCertificateStatus::Active)
                        .await?;
                    registration(region, Some(id.clone()), Some("ACTIVE".into()))
                }
                (None, _) => self.register_in_region(arn, &pem, region).await?,
            };
            registrations.push(registration);
        }
        self.adopt_if_none(arn).await?;
        Ok(registrations)
    }

    async fn register_in_region(
        &self,
        arn: &str,
        ca_pem: &str,
        region: &str,
    ) -> Result<IotCaRegistration, CaError> {
        let client = self.iot.client(region)?;
        let code = retry_throttled(|| client.get_registration_code().send())
            .await
            .map_err(|e| sdk_error(IOT, "GetRegistrationCode", &e))?
            .registration_code()
            .ok_or_else(|| CaError::Corrupt("GetRegistrationCode answered no code".into()))?
            .to_owned();
        let verification = self.verification_certificate(arn, &code).await?;
        let result = retry_throttled(|| {
            client
                .register_ca_certificate()
                .ca_certificate(ca_pem)
                .verification_certificate(&verification)
                .set_as_active(true)
                .allow_auto_registration(false)
                .send()
        })
        .await;
        let id = match result {
            Ok(output) => output.certificate_id().map(str::to_owned),
            Err(error) => match error.as_service_error() {
                Some(aws_sdk_iot::operation::register_ca_certificate::RegisterCACertificateError::ResourceAlreadyExistsException(e)) => {
                    e.resource_id().map(str::to_owned)
                }
                _ => return Err(sdk_error(IOT, "RegisterCACertificate", &error)),
            },
        };
        Ok(registration(region, id, Some("ACTIVE".into())))
    }

    /// A certificate for a fresh key with CN `code`, signed by the CA `arn`, PEM.
    async fn verification_certificate(&self, arn: &str, code: &str) -> Result<String, CaError> {
        let key = rcgen::KeyPair::generate()
            .map_err(|e| CaError::Corrupt(format!("cannot make a key: {e}")))?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| CaError::Corrupt(format!("verification CSR: {e}")))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, code);
        let csr = params
            .serialize_request(&key)
            .and_then(|csr| csr.pem())
            .map_err(|e| CaError::Corrupt(format!("verification CSR: {e}")))?;
        let ca = self.describe_pca(arn).await?;
        let algorithm = ca
            .certificate_authority_configuration()
            .map(|c| c.signing_algorithm().clone())
            .unwrap_or(SigningAlgorithm::Sha256Withecdsa);
        let validity = Validity::builder()
            .r#type(ValidityPeriodType::Days)
            .value(1)
            .build()
            .map_err(|e| CaError::InvalidInput(e.to_string()))?;
        let issued = retry_throttled(|| {
            self.pca
                .issue_certificate()
                .certificate_authority_arn(arn)
                .csr(Blob::new(csr.clone()))
                .signing_algorithm(algorithm.clone())
                .template_arn(END_ENTITY_TEMPLATE)
                .validity(validity.clone())
                .send()
        })
        .await
        .map_err(|e| not_found_or(&e, arn, "IssueCertificate"))?;
        let certificate_arn = issued
            .certificate_arn()
            .ok_or_else(|| CaError::Corrupt("IssueCertificate answered no ARN".into()))?;
        let authority = AcmPcaAuthority::new(self.pca.clone(), self.pca_config(arn));
        Ok(authority.certificate(certificate_arn).await?)
    }

    fn pca_config(&self, arn: &str) -> AcmPcaConfig {
        let mut config = AcmPcaConfig::new(arn);
        config.deadline = self.deadline;
        config
    }
}
