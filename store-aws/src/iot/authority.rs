//! [`IotCoreAuthority`]: device certificates signed by AWS IoT Core's own CA (issuance
//! mode `iot-core`), checked before they are handed out.

use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::types::CertificateStatus as IotStatus;
use der::{Decode, Encode};
use provisioner_core::{
    CertificateAuthority, DeviceKey, IssuanceProfile, PortError, SignedCertificate, UnixTime,
    VerifiedCsr,
};
use sha2::{Digest, Sha256};

use super::ca_registration::first_certificate;
use super::error::{sdk_error, IOT};
use super::{iot_client, IotError, IOT_CORE_ISSUER_PREFIX};
use crate::config::AwsSettings;

/// Amazon Root CA 1 (RSA 2048, valid until 2038-01-17), the root that IoT Core's ATS data
/// endpoints (`*-ats.iot.REGION.amazonaws.com`) chain to: what a device must trust to
/// connect. From <https://www.amazontrust.com/repository/AmazonRootCA1.pem> (also
/// Debian's `ca-certificates`, `/etc/ssl/certs/Amazon_Root_CA_1.pem`); SHA-256
/// fingerprint `8ECDE6884F3D87B1125BA31AC3FCB13D7016DE7F57CC904FE1CB97C6AE98196E` (a unit
/// test checks it).
pub const AMAZON_ROOT_CA_1_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIDQTCCAimgAwIBAgITBmyfz5m/jAo54vB4ikPmljZbyjANBgkqhkiG9w0BAQsF
ADA5MQswCQYDVQQGEwJVUzEPMA0GA1UEChMGQW1hem9uMRkwFwYDVQQDExBBbWF6
b24gUm9vdCBDQSAxMB4XDTE1MDUyNjAwMDAwMFoXDTM4MDExNzAwMDAwMFowOTEL
MAkGA1UEBhMCVVMxDzANBgNVBAoTBkFtYXpvbjEZMBcGA1UEAxMQQW1hem9uIFJv
b3QgQ0EgMTCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBALJ4gHHKeNXj
ca9HgFB0fW7Y14h29Jlo91ghYPl0hAEvrAIthtOgQ3pOsqTQNroBvo3bSMgHFzZM
9O6II8c+6zf1tRn4SWiw3te5djgdYZ6k/oI2peVKVuRF4fn9tBb6dNqcmzU5L/qw
IFAGbHrQgLKm+a/sRxmPUDgH3KKHOVj4utWp+UhnMJbulHheb4mjUcAwhmahRWa6
VOujw5H5SNz/0egwLX0tdHA114gk957EWW67c4cX8jJGKLhD+rcdqsq08p8kDi1L
93FcXmn/6pUCyziKrlA4b9v7LWIbxcceVOF34GfID5yHI9Y/QCB/IIDEgEw+OyQm
jgSubJrIqg0CAwEAAaNCMEAwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMC
AYYwHQYDVR0OBBYEFIQYzIU07LwMlJQuCFmcx7IQTgoIMA0GCSqGSIb3DQEBCwUA
A4IBAQCY8jdaQZChGsV2USggNiMOruYou6r4lK5IpDB/G/wkjUu0yKGX9rbxenDI
U5PMCCjjmCXPI6T53iHTfIUJrU6adTrCC2qJeHZERxhlbI1Bjjt/msv0tadQ1wUs
N+gDS63pYaACbvXy8MWy7Vu33PqUXHeeE6V/Uq2V8viTO96LXFvKWlJbYK8U90vv
o/ufQJVtMVT8QtPHRh8jrdkPSHCa2XV4cdFyQzR1bldZwgJcJmApzyMZFo6IQ6XU
5MsI+yMRQ+hDKXJioaldXgjUkK642M4UwtBV8ob2xJNDd2ZhwLnoQdeXeGADbkpy
rqXRfboQnoZsG4q5WTP468SQvvG5
-----END CERTIFICATE-----
";

/// A certificate IoT Core signed, as [`IotCoreAuthority::create_from_csr`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IotCoreCertificate {
    /// What the flow records.
    pub signed: SignedCertificate,
    /// IoT Core's certificate id (checked: hex SHA-256 of the DER).
    pub certificate_id: String,
    /// IoT Core's ARN of it.
    pub certificate_arn: String,
    /// The certified key, or why it is not one this project handles.
    pub certified_key: Result<DeviceKey, String>,
}

/// Device certificates signed by AWS IoT Core's own CA (`CreateCertificateFromCsr`),
/// issuance mode `iot-core`: one region only (no other region's IoT Core knows the
/// certificate, and IoT Core's CA cannot be registered elsewhere; `AwsSettings` refuses
/// several regions in this mode).
///
/// What IoT Core decides, not the [`IssuanceProfile`]: the subject, extensions and
/// validity (IoT Core's certificates are valid until 2049-12-31), and the issuer, an
/// AWS IoT CA (`OU=Amazon Web Services O=Amazon.com Inc.`) whose certificate no API
/// returns. `CreateCertificateFromCsr` has no idempotency token: a retry after a lost
/// answer makes a second certificate (the first stays ACTIVE in IoT but unattached, so
/// it opens no connection: IoT authorises by the policy attached to the certificate).
///
/// [`CertificateAuthority::chain_pem`] is therefore [`AMAZON_ROOT_CA_1_PEM`]: not the
/// issuer of the device certificate (IoT Core itself checks that), but what the device
/// needs to trust the IoT Core endpoint it connects to.
#[derive(Debug, Clone)]
pub struct IotCoreAuthority {
    client: aws_sdk_iot::Client,
    region: String,
}

impl IotCoreAuthority {
    /// The authority of IoT Core in `region`, through `client` (configured for it).
    pub fn new(client: aws_sdk_iot::Client, region: impl Into<String>) -> Self {
        Self {
            client,
            region: region.into(),
        }
    }

    /// The authority of the serving region of `settings`, `sdk` with that region.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, settings: &AwsSettings) -> Self {
        Self::new(
            iot_client(sdk, &settings.serving_region),
            settings.serving_region.clone(),
        )
    }

    /// What [`SignedCertificate::issuer`] says: `iot-core:<region>`.
    pub fn issuer(&self) -> String {
        format!("{IOT_CORE_ISSUER_PREFIX}{}", self.region)
    }

    /// `CreateCertificateFromCsr` (ACTIVE) for the CSR `request.der`, the answer parsed
    /// and its id checked against SHA-256 of the DER, but **not** its key: see
    /// [`IotCoreAuthority::issue`], which checks it. For tests and tools.
    ///
    /// # Errors
    /// [`IotError::Unavailable`] when throttled or unreachable; [`IotError::Corrupt`] for
    /// an unparsable answer or an id that is not SHA-256 of the DER (the certificate is
    /// then set REVOKED, best effort); [`IotError::Sdk`] otherwise (e.g. a CSR IoT Core
    /// refuses).
    pub async fn create_from_csr(
        &self,
        request: &VerifiedCsr,
    ) -> Result<IotCoreCertificate, IotError> {
        let created = self
            .client
            .create_certificate_from_csr()
            .certificate_signing_request(provisioner_app::pem::encode(
                "CERTIFICATE REQUEST",
                &request.der,
            ))
            .set_as_active(true)
            .send()
            .await
            .map_err(|e| sdk_error(IOT, "CreateCertificateFromCsr", &self.region, &e))?;
        let id = created.certificate_id().unwrap_or_default().to_owned();
        let parsed = (|| {
            let pem = created
                .certificate_pem()
                .ok_or_else(|| IotError::Corrupt("no certificatePem in the answer".into()))?;
            let (_, der) = first_certificate(pem).map_err(IotError::Corrupt)?;
            let digest = hex::encode(Sha256::digest(&der));
            if digest != id {
                return Err(IotError::Corrupt(format!(
                    "certificate id {id} is not SHA-256 of its DER ({digest}); moto: start it with use_valid_cert"
                )));
            }
            let arn = created
                .certificate_arn()
                .ok_or_else(|| IotError::Corrupt("no certificateArn in the answer".into()))?;
            let (signed, certified_key) = parse_certificate(&der, &self.issuer())?;
            Ok(IotCoreCertificate {
                signed,
                certificate_id: id.clone(),
                certificate_arn: arn.to_owned(),
                certified_key,
            })
        })();
        if parsed.is_err() {
            self.disable(&id).await;
        }
        parsed
    }

    /// Sets a certificate IoT Core made but we cannot hand out REVOKED, so it is not left
    /// ACTIVE; a failure is logged (the certificate has no policy, so it opens nothing).
    async fn disable(&self, id: &str) {
        if id.is_empty() {
            return;
        }
        if let Err(e) = self
            .client
            .update_certificate()
            .certificate_id(id)
            .new_status(IotStatus::Revoked)
            .send()
            .await
        {
            tracing::error!(certificate_id = %id, error = %DisplayErrorContext(&e), "cannot revoke an unusable IoT Core certificate");
        }
    }
}

impl CertificateAuthority for IotCoreAuthority {
    /// `CreateCertificateFromCsr` in the serving region with the CSR as received, then
    /// checks: id = SHA-256 of the DER, and the certificate certifies the CSR's key (a
    /// certificate failing a check is set REVOKED in IoT Core). `idempotency_key`,
    /// `profile` and `now` are not used: IoT Core has no idempotency token and decides
    /// the certificate's contents.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when IoT Core throttles or cannot be reached;
    /// [`PortError::Internal`] otherwise, including a certificate failing a check (what
    /// moto's stand-in always answers: it certifies a new RSA key).
    async fn issue(
        &self,
        request: &VerifiedCsr,
        _idempotency_key: &str,
        _profile: &IssuanceProfile,
        _now: UnixTime,
    ) -> Result<SignedCertificate, PortError> {
        let created = self.create_from_csr(request).await?;
        if let Err(e) = check_certified_key(&created.certified_key, &request.public_key) {
            self.disable(&created.certificate_id).await;
            return Err(e.into());
        }
        Ok(created.signed)
    }

    /// [`AMAZON_ROOT_CA_1_PEM`] (see the type's docs).
    async fn chain_pem(&self) -> Result<String, PortError> {
        Ok(AMAZON_ROOT_CA_1_PEM.to_owned())
    }
}

/// The parts of a certificate the flow records, read from its DER, and the certified
/// key (`Err` with the reason when it is not a key this project handles, e.g. RSA).
fn parse_certificate(
    der: &[u8],
    issuer: &str,
) -> Result<(SignedCertificate, Result<DeviceKey, String>), IotError> {
    let certificate = x509_cert::Certificate::from_der(der)
        .map_err(|e| IotError::Corrupt(format!("not an X.509 certificate: {e}")))?;
    let tbs = &certificate.tbs_certificate;
    let serial = tbs.serial_number.as_bytes();
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    let time = |t: x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs())
            .map_err(|_| IotError::Corrupt("validity out of range".into()))
    };
    let key = tbs
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())
        .and_then(|spki| DeviceKey::from_spki_der(&spki).map_err(|e| e.to_string()));
    Ok((
        SignedCertificate {
            serial: hex::encode(&serial[start..]),
            issuer: issuer.to_owned(),
            not_before: time(tbs.validity.not_before)?,
            not_after: time(tbs.validity.not_after)?,
            pem: provisioner_app::pem::encode("CERTIFICATE", der),
            der: der.to_vec(),
        },
        key,
    ))
}

/// Checks that a certificate certifies `requested` (the CSR's key).
///
/// # Errors
/// [`IotError::Corrupt`] naming what was certified instead.
pub fn check_certified_key(
    certified: &Result<DeviceKey, String>,
    requested: &DeviceKey,
) -> Result<(), IotError> {
    match certified {
        Ok(key) if key == requested => Ok(()),
        Ok(_) => Err(IotError::Corrupt(
            "the certificate certifies another key than the CSR's".into(),
        )),
        Err(why) => Err(IotError::Corrupt(format!(
            "the certificate certifies a key the CSR did not hold ({why})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_amazon_root_is_the_one_amazon_publishes() {
        let (_, der) = first_certificate(AMAZON_ROOT_CA_1_PEM).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&der)),
            "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e"
        );
        let certificate = x509_cert::Certificate::from_der(&der).unwrap();
        assert!(certificate
            .tbs_certificate
            .subject
            .to_string()
            .contains("CN=Amazon Root CA 1"));
    }

    mod certified_key {
        use super::*;

        /// A self-signed certificate of a fresh P-256 key, made by rcgen (not by this
        /// module): its DER and the key.
        fn certificate_of_fresh_key() -> (Vec<u8>, DeviceKey) {
            let key = rcgen::KeyPair::generate().unwrap();
            let params = rcgen::CertificateParams::new(vec!["dev-1".into()]).unwrap();
            let certificate = params.self_signed(&key).unwrap();
            let device_key =
                DeviceKey::from_spki_der(&rcgen::PublicKeyData::subject_public_key_info(&key))
                    .unwrap();
            (certificate.der().to_vec(), device_key)
        }

        #[test]
        fn a_certificate_of_the_csrs_key_passes_and_of_another_key_fails() {
            let (der, key) = certificate_of_fresh_key();
            let (_, other) = certificate_of_fresh_key();
            let (signed, certified) = parse_certificate(&der, "iot-core:eu-west-1").unwrap();
            assert!(check_certified_key(&certified, &key).is_ok());
            assert!(matches!(
                check_certified_key(&certified, &other),
                Err(IotError::Corrupt(_))
            ));
            assert_eq!(signed.issuer, "iot-core:eu-west-1");
            assert!(signed.not_after > signed.not_before);
            assert!(!signed.serial.is_empty() && !signed.serial.contains(':'));
            assert_eq!(signed.der, der);
            assert_eq!(first_certificate(&signed.pem).unwrap().1, der);
        }
    }
}
