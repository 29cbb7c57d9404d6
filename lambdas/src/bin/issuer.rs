//! The issuer (see `provisioner_lambdas::issuer`): `POST /new` and latent retrieval,
//! the device router of the local service behind API Gateway. Reads the settings and
//! builds the AWS adapters once per container, then serves each request.

use std::sync::Arc;

use provisioner_app::flow::Provisioner;
use provisioner_app::latent::UrlSigner;
use provisioner_http::api::DeviceApi;
use provisioner_lambdas::issuer::IssuerService;
use provisioner_lambdas::origin::OriginSecret;
use provisioner_lambdas::settings::LambdaSettings;
use provisioner_lambdas::telemetry;
use provisioner_store_aws::adapters::AwsAdapters;
use provisioner_store_aws::config::AwsSettings;
use provisioner_store_aws::s3::S3RetrievalStore;

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
    let ports = AwsAdapters::connect(&aws).await?;
    let mut flow = settings.flow;
    // IoT Core mode: a subject beyond the CN is refused before IoT Core copies it.
    flow.profile.csr = aws.issuance_mode.csr_policy(flow.profile.csr);
    let api = DeviceApi::<AwsAdapters> {
        provisioner: Provisioner::new(ports, flow),
        url_signer: UrlSigner::new(url_key, settings.retrieval_ttl_secs)
            .map_err(|e| format!("the retrieval URL key is unusable: {e}"))?,
        public_url: settings.public_url,
        certificate_store: S3RetrievalStore::for_settings(&aws).await,
    };
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
