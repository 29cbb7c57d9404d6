//! What the AWS adapters' test modules share against moto, beside `provisioner_testkit::moto`:
//! the SDK configuration, IoT Core clients (one that answers, one that cannot connect), a
//! certificate's status in IoT Core, and a certificate signed by an ACM Private CA.

use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{SigningAlgorithm, Validity};
use aws_sdk_iot::types::CertificateStatus as IotStatus;
use provisioner_testkit::moto;

/// The standard AWS configuration, pointed at moto (and only at a local stand-in).
pub async fn sdk() -> aws_config::SdkConfig {
    moto::endpoint();
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// An IoT Core client for `region`.
pub fn iot(sdk: &aws_config::SdkConfig, region: &str) -> aws_sdk_iot::Client {
    aws_sdk_iot::Client::from_conf(
        aws_sdk_iot::config::Builder::from(sdk)
            .region(aws_sdk_iot::config::Region::new(region.to_owned()))
            .build(),
    )
}

/// An IoT client for `region` that cannot connect: a port nothing listens on, no SDK
/// retries, so each attempt fails at once.
pub fn unreachable_iot(sdk: &aws_config::SdkConfig, region: &str) -> aws_sdk_iot::Client {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    aws_sdk_iot::Client::from_conf(
        aws_sdk_iot::config::Builder::from(sdk)
            .region(aws_sdk_iot::config::Region::new(region.to_owned()))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .retry_config(aws_sdk_iot::config::retry::RetryConfig::disabled())
            .build(),
    )
}

/// The certificate's status in the IoT Core of `iot` (`None`: not registered there).
pub async fn iot_certificate_status(
    iot: &aws_sdk_iot::Client,
    certificate_id: &str,
) -> Option<IotStatus> {
    match iot
        .describe_certificate()
        .certificate_id(certificate_id)
        .send()
        .await
    {
        Ok(output) => output
            .certificate_description()
            .and_then(|d| d.status())
            .cloned(),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            None
        }
        Err(e) => panic!("DescribeCertificate: {e:?}"),
    }
}

/// Has the PCA `ca` sign `csr_pem` with `template` for `validity`; returns (certificate
/// ARN, PEM).
pub async fn pca_issue(
    pca: &aws_sdk_acmpca::Client,
    ca: &str,
    csr_pem: &str,
    template: &str,
    validity: Validity,
) -> (String, String) {
    let issued = pca
        .issue_certificate()
        .certificate_authority_arn(ca)
        .csr(Blob::new(csr_pem))
        .signing_algorithm(SigningAlgorithm::Sha256Withecdsa)
        .template_arn(template)
        .validity(validity)
        .send()
        .await
        .unwrap();
    let arn = issued.certificate_arn().unwrap().to_owned();
    let pem = pca
        .get_certificate()
        .certificate_authority_arn(ca)
        .certificate_arn(&arn)
        .send()
        .await
        .unwrap()
        .certificate()
        .unwrap()
        .to_owned();
    (arn, pem)
}
