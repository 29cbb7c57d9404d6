//! Signing certificates: device certificates (the [`CertificateAuthority`] port) and the
//! local broker's TLS server certificate.

use std::future::Future;
use std::net::IpAddr;

use provisioner_core::{
    CertificateAuthority, Curve, DeviceKey, IssuanceProfile, PortError, SignedCertificate,
    UnixTime, VerifiedCsr,
};
use rcgen::string::Ia5String;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa,
    KeyIdMethod, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SignatureAlgorithm,
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
};

use super::certificate_parts::{datetime, generate_key, random_serial};
use super::error::signing;
use super::{
    AuthorityError, LocalAuthority, ServerCertificate, BACKDATE_SECS, SERVER_VALIDITY_SECS,
};

impl LocalAuthority {
    /// Signs a device certificate for a verified request, synchronously (the port's
    /// `issue` calls this).
    ///
    /// The profile, exactly: subject CN = the device id (UTF8String) and nothing else; the
    /// request's public key; keyUsage digitalSignature (critical); extendedKeyUsage
    /// clientAuth; basicConstraints CA:FALSE (critical); subjectKeyIdentifier;
    /// authorityKeyIdentifier = this CA's subjectKeyIdentifier; a random positive 20-byte
    /// serial; validity from [`IssuanceProfile::validity_at`]. Nothing else is taken from
    /// the CSR. A `notAfter` past this CA's own `notAfter` is cut to it (the returned
    /// `not_after` says so).
    ///
    /// # Errors
    /// [`AuthorityError::InvalidInput`] when `now` is out of the representable range;
    /// [`AuthorityError::Signing`] if the signature fails.
    pub fn issue_certificate(
        &self,
        request: &VerifiedCsr,
        profile: &IssuanceProfile,
        now: UnixTime,
    ) -> Result<SignedCertificate, AuthorityError> {
        let (not_before, not_after) = profile.validity_at(now);
        let not_after = not_after.min(self.certificate.not_after);
        let serial = random_serial();
        let mut params = CertificateParams::default();
        params.not_before = datetime(not_before)?;
        params.not_after = datetime(not_after)?;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            DnValue::Utf8String(request.device_id.clone()),
        );
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let certificate = params
            .signed_by(&RequestKey(&request.public_key), &self.issuer)
            .map_err(signing)?;
        Ok(SignedCertificate {
            der: certificate.der().to_vec(),
            pem: certificate.pem(),
            serial: hex::encode(serial),
            issuer: self.id.clone(),
            not_before,
            not_after,
        })
    }

    /// A TLS server certificate (for the local MQTT broker) with a new P-256 key, issued
    /// by this CA: SAN DNS `localhost` and IP `127.0.0.1` plus `hosts` (IP addresses or
    /// DNS names), CN the first host (or `localhost`), extendedKeyUsage serverAuth,
    /// keyUsage digitalSignature, CA:FALSE, one year (cut at this CA's `notAfter`).
    ///
    /// # Errors
    /// [`AuthorityError::InvalidInput`] for a host that is neither an IP address nor a
    /// DNS name; [`AuthorityError::Signing`].
    pub fn server_certificate(
        &self,
        hosts: &[&str],
        now: UnixTime,
    ) -> Result<ServerCertificate, AuthorityError> {
        let key = generate_key()?;
        let mut names: Vec<SanType> = vec![
            SanType::DnsName(ia5("localhost")?),
            SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
        ];
        for host in hosts {
            let name = match host.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(ia5(host)?),
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let mut params = CertificateParams::default();
        params.not_before = datetime(now - BACKDATE_SECS)?;
        params.not_after = datetime((now + SERVER_VALIDITY_SECS).min(self.certificate.not_after))?;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            DnValue::Utf8String(hosts.first().copied().unwrap_or("localhost").to_owned()),
        );
        params.subject_alt_names = names;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let certificate = params.signed_by(&key, &self.issuer).map_err(signing)?;
        Ok(ServerCertificate {
            certificate_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl CertificateAuthority for LocalAuthority {
    /// Signs synchronously (tens of microseconds): see [`LocalAuthority::issue_certificate`].
    fn issue(
        &self,
        request: &VerifiedCsr,
        _idempotency_key: &str,
        profile: &IssuanceProfile,
        now: UnixTime,
    ) -> impl Future<Output = Result<SignedCertificate, PortError>> + Send {
        std::future::ready(
            self.issue_certificate(request, profile, now)
                .map_err(PortError::from),
        )
    }

    fn chain_pem(&self) -> impl Future<Output = Result<String, PortError>> + Send {
        std::future::ready(Ok(self.chain_pem.clone()))
    }
}

/// A device's key as rcgen certifies it: the SEC1 point and its curve.
struct RequestKey<'a>(&'a DeviceKey);

impl PublicKeyData for RequestKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0.sec1_uncompressed()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self.0.curve() {
            Curve::P256 => &PKCS_ECDSA_P256_SHA256,
            Curve::P384 => &PKCS_ECDSA_P384_SHA384,
        }
    }
}

fn ia5(name: &str) -> Result<Ia5String, AuthorityError> {
    Ia5String::try_from(name).map_err(|_| {
        AuthorityError::InvalidInput(format!("{name:?} is not a DNS name or IP address"))
    })
}
