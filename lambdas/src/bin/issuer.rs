//! The issuer (see `provisioner_lambdas::issuer`): `POST /new` and latent retrieval,
//! the device router of the local service behind API Gateway. Reads the settings and
//! builds the AWS device flow once per container (`provisioner_store_aws::wiring`, as
//! `provisioner serve --backend aws` does), then serves each request.

use std::sync::Arc;

use provisioner_http::api::DeviceApi;
use provisioner_lambdas::issuer::IssuerService;
use provisioner_lambdas::origin::OriginSecret;
use provisioner_lambdas::settings::LambdaSettings;
use provisioner_lambdas::telemetry;
use provisioner_store_aws::config::AwsSettings;
use provisioner_store_aws::wiring::AwsDeviceFlow;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let aws = AwsSettings::from_env()?;
    let settings = LambdaSettings::from_env(aws.origin_secret.as_deref())?;
    settings.require_endpoint()?;
    let Some(url_key) = settings.retrieval_key.as_deref() else {
        return Err(
            "set PROVISIONER_ORIGIN_SECRET or PROVISIONER_RETRIEVAL_KEY: every issuer \
                    container must sign latent retrieval URLs with the same key"
                .into(),
        );
    };
    if settings.public_url.is_empty() {
        tracing::warn!(
            "PROVISIONER_PUBLIC_URL is not set: latent retrieval URLs are relative (/certificates/...)"
        );
    }
    let flow = AwsDeviceFlow::connect(&aws, settings.flow).await?;
    let api = DeviceApi::new(
        flow.provisioner,
        url_key,
        settings.retrieval_ttl_secs,
        settings.public_url,
    )
    .map_err(|e| format!("the retrieval URL key is unusable: {e}"))?
    .with_certificate_store(flow.certificate_store);
    tracing::info!(
        origin_checked = aws.origin_secret.is_some(),
        issuance_mode = aws.issuance_mode.name(),
        "issuer ready"
    );
    lambda_http::run(IssuerService::new(
        Arc::new(api),
        OriginSecret::new(aws.origin_secret.as_deref()),
    ))
    .await
}
