//! The API Gateway REQUEST authorizer of `POST /new` (see
//! `provisioner_lambdas::authorizer`): reads the settings and builds its adapters once per
//! container, then decides each request.
//!
//! It needs only the registry and the audit log (DynamoDB), so it builds just those
//! (`provisioner_store_aws::wiring::registry`): no CA or IoT client on its cold start.

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};
use provisioner_core::{CsrVerifier, SystemClock};
use provisioner_lambdas::authorizer::Authorizer;
use provisioner_lambdas::origin::OriginSecret;
use provisioner_lambdas::settings::LambdaSettings;
use provisioner_lambdas::telemetry;
use provisioner_store_aws::config::AwsSettings;
use provisioner_store_aws::wiring;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let aws = AwsSettings::from_env()?;
    let settings = LambdaSettings::from_env(aws.origin_secret.as_deref())?;
    let registry = wiring::registry(&aws).await;
    let authorizer = Arc::new(Authorizer::new(
        registry.clone(),
        registry,
        SystemClock,
        // The issuer's policy, so the authorizer refuses first what the issuer would.
        CsrVerifier::new(
            aws.issuance_mode
                .csr_policy(settings.flow.profile.csr.clone()),
        ),
        OriginSecret::new(aws.origin_secret.as_deref()),
    ));
    tracing::info!(
        origin_checked = aws.origin_secret.is_some(),
        table_prefix = %aws.table_prefix,
        "authorizer ready"
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        let authorizer = Arc::clone(&authorizer);
        async move { authorizer.authorize(event.payload).await }
    }))
    .await
}
