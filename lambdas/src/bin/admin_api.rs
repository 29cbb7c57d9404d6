//! The admin API and the dashboard (see `provisioner_lambdas::admin_api`): reads the
//! settings, builds the fleet on AWS and loads the dashboard once per container, then
//! serves each request.

use std::sync::Arc;

use provisioner_lambdas::admin_api::{admin_context, load_dashboard, AdminApiService};
use provisioner_lambdas::origin::OriginSecret;
use provisioner_lambdas::settings::AdminApiSettings;
use provisioner_lambdas::telemetry;
use provisioner_store_aws::admin::AwsFleet;
use provisioner_store_aws::config::AwsSettings;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let aws = AwsSettings::from_env()?;
    let settings = AdminApiSettings::from_env()?;
    let dashboard = load_dashboard(&settings.dashboard_dir)?;
    let fleet = AwsFleet::connect(&aws).await?;
    let context = admin_context(Arc::new(fleet), &settings)?;
    tracing::info!(
        origin_checked = aws.origin_secret.is_some(),
        issuer = %settings.jwt_issuer,
        hosted_sign_in = settings.sign_in_domain.is_some(),
        dashboard = dashboard.is_some(),
        "admin API ready"
    );
    lambda_http::run(AdminApiService::new(
        Arc::new(context),
        dashboard,
        OriginSecret::new(aws.origin_secret.as_deref()),
    ))
    .await
}
