//! The registration of a device certificate in one region's IoT Core (steps 1-5 of the
//! [module docs](super)), the status of a certificate there, and the device policy.

use aws_sdk_iot::types::CertificateStatus as IotStatus;
use provisioner_core::{CertificateRecord, CertificateStatus, DeviceRegistry, PortError};

use super::ca_registration::first_certificate;
use super::error::{sdk_error, IOT};
use super::things::{Inner, RegionIot};
use super::{CaRegistration, IotError, IOT_CORE_ISSUER_PREFIX};

impl<R: DeviceRegistry> Inner<R> {
    /// The whole registration in region `index` ([module docs](super), steps 1-5, and the final
    /// re-read of the certificate's status).
    pub(super) async fn register_in(
        &self,
        index: usize,
        certificate: &CertificateRecord,
    ) -> Result<(), IotError> {
        let region = &self.regions[index];
        let name = region.region.as_str();
        let device_id = certificate.device_id.as_str();
        let arn = self.certificate_arn(region, certificate).await?;
        match region
            .client
            .create_thing()
            .thing_name(device_id)
            .send()
            .await
        {
            Ok(_) => {}
            // Exists with other attributes (set by an operator): it is still the thing.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_already_exists_exception()) => {}
            Err(e) => return Err(sdk_error(IOT, "CreateThing", name, &e)),
        }
        self.ensure_policy(region, &arn).await?;
        region
            .client
            .attach_policy()
            .policy_name(&self.policy_name)
            .target(&arn)
            .send()
            .await
            .map_err(|e| sdk_error(IOT, "AttachPolicy", name, &e))?;
        region
            .client
            .attach_thing_principal()
            .thing_name(device_id)
            .principal(&arn)
            .send()
            .await
            .map_err(|e| sdk_error(IOT, "AttachThingPrincipal", name, &e))?;
        self.retire_others(index, device_id, &arn).await?;
        // A rotation may have superseded this certificate while it was attached: the
        // rotation's own registration may have listed the principals before ours was.
        let current = self.recorded(&certificate.certificate_id).await?;
        if current.status != CertificateStatus::Active {
            self.set_status(index, &certificate.certificate_id, current.status)
                .await?;
        }
        Ok(())
    }

    /// The certificate's ARN in `region`, registering it first unless IoT Core signed it.
    async fn certificate_arn(
        &self,
        region: &RegionIot,
        certificate: &CertificateRecord,
    ) -> Result<String, IotError> {
        let name = region.region.as_str();
        let id = certificate.certificate_id.as_str();
        if certificate.issuer.starts_with(IOT_CORE_ISSUER_PREFIX) {
            return describe_arn(region, id).await;
        }
        let registered = match &self.ca {
            CaRegistration::Registered(source) => {
                let chain = source(&certificate.issuer)
                    .await
                    .map_err(IotError::Registry)?;
                let (ca_pem, _) = first_certificate(&chain).map_err(|e| {
                    IotError::Config(format!("CA certificate of {}: {e}", certificate.issuer))
                })?;
                match region
                    .client
                    .register_certificate()
                    .certificate_pem(&certificate.certificate_pem)
                    .ca_certificate_pem(ca_pem)
                    .status(IotStatus::Active)
                    .send()
                    .await
                {
                    Ok(out) => out.certificate_arn().map(str::to_owned),
                    Err(e) => match e.as_service_error() {
                        Some(aws_sdk_iot::operation::register_certificate::RegisterCertificateError::ResourceAlreadyExistsException(exists)) => {
                            exists.resource_arn().map(str::to_owned)
                        }
                        _ => return Err(sdk_error(IOT, "RegisterCertificate", name, &e)),
                    },
                }
            }
            CaRegistration::Unregistered => match region
                .client
                .register_certificate_without_ca()
                .certificate_pem(&certificate.certificate_pem)
                .status(IotStatus::Active)
                .send()
                .await
            {
                Ok(out) => out.certificate_arn().map(str::to_owned),
                Err(e) => match e.as_service_error() {
                    Some(aws_sdk_iot::operation::register_certificate_without_ca::RegisterCertificateWithoutCAError::ResourceAlreadyExistsException(exists)) => {
                        exists.resource_arn().map(str::to_owned)
                    }
                    _ => return Err(sdk_error(IOT, "RegisterCertificateWithoutCA", name, &e)),
                },
            },
        };
        let arn = match registered {
            Some(arn) => arn,
            // Already registered, and the exception did not say where: look it up.
            None => return describe_arn(region, id).await,
        };
        check_arn_id(&arn, id)?;
        Ok(arn)
    }

    /// Creates the device policy in `region` unless this process already saw it there.
    async fn ensure_policy(
        &self,
        region: &RegionIot,
        certificate_arn: &str,
    ) -> Result<(), IotError> {
        region
            .policy_ready
            .get_or_try_init(|| async {
                let document = device_policy_document(certificate_arn);
                match region
                    .client
                    .create_policy()
                    .policy_name(&self.policy_name)
                    .policy_document(document)
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_resource_already_exists_exception()) =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(sdk_error(IOT, "CreatePolicy", &region.region, &e)),
                }
            })
            .await?;
        Ok(())
    }

    /// Gives the thing's other certificate principals their registry status in IoT and
    /// detaches them, when that status is not ACTIVE ([module docs](super): the registry decides).
    async fn retire_others(
        &self,
        index: usize,
        device_id: &str,
        keep_arn: &str,
    ) -> Result<(), IotError> {
        let region = &self.regions[index];
        let name = region.region.as_str();
        let mut principals = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = region
                .client
                .list_thing_principals()
                .thing_name(device_id)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error(IOT, "ListThingPrincipals", name, &e))?;
            principals.extend(page.principals().iter().cloned());
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
        for principal in principals {
            if principal == keep_arn {
                continue;
            }
            let Some(other_id) = certificate_id_of_arn(&principal) else {
                continue;
            };
            let Some(other) = self
                .registry
                .certificate(other_id)
                .await
                .map_err(IotError::Registry)?
            else {
                continue;
            };
            if other.status == CertificateStatus::Active {
                continue;
            }
            self.set_status(index, other_id, other.status).await?;
            match region
                .client
                .detach_thing_principal()
                .thing_name(device_id)
                .principal(&principal)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) => {}
                Err(e) => return Err(sdk_error(IOT, "DetachThingPrincipal", name, &e)),
            }
        }
        Ok(())
    }

    /// Sets certificate `id`'s status in region `index` (REVOKED or INACTIVE; ACTIVE is
    /// never set here). `Ok(false)` when the region does not hold it.
    pub(super) async fn set_status(
        &self,
        index: usize,
        id: &str,
        status: CertificateStatus,
    ) -> Result<bool, IotError> {
        let region = &self.regions[index];
        let wanted = match status {
            CertificateStatus::Revoked => IotStatus::Revoked,
            _ => IotStatus::Inactive,
        };
        match region
            .client
            .update_certificate()
            .certificate_id(id)
            .new_status(wanted.clone())
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(s) if s.is_resource_not_found_exception() => Ok(false),
                // IoT refuses some transitions (out of REVOKED): fine if it is already
                // where we want it, or revoked, which no status of ours overrides.
                Some(s) if s.is_certificate_state_exception() => {
                    let now = describe(region, id).await?;
                    match now.status() {
                        Some(s) if *s == wanted || *s == IotStatus::Revoked => Ok(true),
                        _ => Err(sdk_error(IOT, "UpdateCertificate", &region.region, &e)),
                    }
                }
                _ => Err(sdk_error(IOT, "UpdateCertificate", &region.region, &e)),
            },
        }
    }

    /// The registry's record of `id`.
    pub(super) async fn recorded(&self, id: &str) -> Result<CertificateRecord, IotError> {
        self.registry
            .certificate(id)
            .await
            .map_err(IotError::Registry)?
            .ok_or_else(|| {
                IotError::Registry(PortError::Internal(format!(
                    "certificate {id} is not in the device registry: record it before registering it"
                )))
            })
    }
}

async fn describe(
    region: &RegionIot,
    id: &str,
) -> Result<aws_sdk_iot::types::CertificateDescription, IotError> {
    region
        .client
        .describe_certificate()
        .certificate_id(id)
        .send()
        .await
        .map_err(|e| sdk_error(IOT, "DescribeCertificate", &region.region, &e))?
        .certificate_description
        .ok_or_else(|| IotError::Corrupt(format!("DescribeCertificate {id}: no description")))
}

async fn describe_arn(region: &RegionIot, id: &str) -> Result<String, IotError> {
    let arn = describe(region, id)
        .await?
        .certificate_arn()
        .map(str::to_owned)
        .ok_or_else(|| IotError::Corrupt(format!("DescribeCertificate {id}: no ARN")))?;
    check_arn_id(&arn, id)?;
    Ok(arn)
}

/// The least-privilege device policy for the region and account of `certificate_arn`
/// (`arn:PARTITION:iot:REGION:ACCOUNT:cert/ID`; `*` for parts it lacks): a device may
/// connect only as its own thing name with its certificate attached to that thing,
/// publish and receive on `dt/<thing name>/*`, and subscribe to filters under it.
pub fn device_policy_document(certificate_arn: &str) -> String {
    let parts: Vec<&str> = certificate_arn.split(':').collect();
    let part = |i: usize| {
        parts
            .get(i)
            .copied()
            .filter(|p| !p.is_empty() && parts.len() >= 6)
            .unwrap_or("*")
    };
    let partition = if parts.len() >= 6 { part(1) } else { "aws" };
    let base = format!("arn:{partition}:iot:{}:{}", part(3), part(4));
    let thing = "${iot:Connection.Thing.ThingName}";
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": format!("{base}:client/{thing}"),
                "Condition": { "Bool": { "iot:Connection.Thing.IsAttached": "true" } }
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Publish", "iot:Receive"],
                "Resource": format!("{base}:topic/dt/{thing}/*")
            },
            {
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": format!("{base}:topicfilter/dt/{thing}/*")
            }
        ]
    })
    .to_string()
}

/// The certificate id of a certificate ARN (`…:cert/ID`).
fn certificate_id_of_arn(arn: &str) -> Option<&str> {
    arn.rsplit_once(":cert/").map(|(_, id)| id)
}

fn check_arn_id(arn: &str, id: &str) -> Result<(), IotError> {
    match certificate_id_of_arn(arn) {
        Some(got) if got == id => Ok(()),
        got => Err(IotError::Corrupt(format!(
            "IoT Core names the certificate {} ({arn}), not SHA-256 of its DER {id} (moto: start it with use_valid_cert)",
            got.unwrap_or("?")
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_policy_is_scoped_to_the_thing_name_in_the_certificates_account() {
        let document = device_policy_document("arn:aws:iot:eu-west-1:123456789012:cert/abcdef");
        let policy: serde_json::Value = serde_json::from_str(&document).unwrap();
        let statements = policy["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 3);
        assert_eq!(statements[0]["Action"], "iot:Connect");
        assert_eq!(
            statements[0]["Resource"],
            "arn:aws:iot:eu-west-1:123456789012:client/${iot:Connection.Thing.ThingName}"
        );
        assert_eq!(
            statements[0]["Condition"]["Bool"]["iot:Connection.Thing.IsAttached"],
            "true"
        );
        assert_eq!(
            statements[1]["Action"],
            serde_json::json!(["iot:Publish", "iot:Receive"])
        );
        assert_eq!(
            statements[1]["Resource"],
            "arn:aws:iot:eu-west-1:123456789012:topic/dt/${iot:Connection.Thing.ThingName}/*"
        );
        assert_eq!(statements[2]["Action"], "iot:Subscribe");
        assert_eq!(
            statements[2]["Resource"],
            "arn:aws:iot:eu-west-1:123456789012:topicfilter/dt/${iot:Connection.Thing.ThingName}/*"
        );
        // Nothing broader than the thing's own names.
        assert!(!document.contains("\"*\""), "{document}");
    }

    #[test]
    fn the_policy_uses_wildcards_only_where_the_arn_says_nothing() {
        let document = device_policy_document("not an arn");
        assert!(document.contains("arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"));
        let china = device_policy_document("arn:aws-cn:iot:cn-north-1:1:cert/x");
        assert!(china.contains("arn:aws-cn:iot:cn-north-1:1:topic/dt/"));
    }

    #[test]
    fn certificate_ids_come_from_arns_and_must_match() {
        let arn = "arn:aws:iot:us-east-1:123456789012:cert/ab12";
        assert_eq!(certificate_id_of_arn(arn), Some("ab12"));
        assert_eq!(
            certificate_id_of_arn("arn:aws:iot:us-east-1:1:thing/x"),
            None
        );
        assert!(check_arn_id(arn, "ab12").is_ok());
        assert!(matches!(
            check_arn_id(arn, "cd34"),
            Err(IotError::Corrupt(_))
        ));
    }
}
