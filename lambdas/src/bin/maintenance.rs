//! The scheduled maintenance (see `provisioner_lambdas::maintenance`): builds its clients
//! once per container, then runs once per scheduled event.

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};
use provisioner_lambdas::{maintenance, telemetry};
use provisioner_store_aws::config::AwsSettings;
use provisioner_store_aws::maintenance::Maintenance;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let aws = AwsSettings::from_env()?;
    let maintenance = Arc::new(Maintenance::connect(&aws).await?);
    tracing::info!(
        issuance_mode = aws.issuance_mode.name(),
        regions = ?aws.regions,
        "maintenance ready"
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        let maintenance = Arc::clone(&maintenance);
        async move { maintenance::handle(&maintenance, event).await }
    }))
    .await
}
