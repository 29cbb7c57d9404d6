//! `provisioner serve`: the provisioning service on the local adapters (or, with
//! `--backend aws`, the AWS ones): the device API, the admin API under `/admin/api`
//! (bearer token: `provisioner admin token`), and the dashboard at `/`
//! (`--dashboard-dir`, built by `bash scripts/build-ui.sh`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use provisioner_app::fleet::FleetAdmin;
use provisioner_app::flow::{Adapters, Provisioner};
use provisioner_http::admin::{self, AdminContext, HostedSignIn};
use provisioner_http::admin_auth::JwtValidator;
use provisioner_http::api::DeviceApi;
use provisioner_http::api_options::{IssuanceOptions, DEFAULT_RETRIEVAL_TTL_SECS};
use provisioner_store_local::admin::LocalFleet;
use provisioner_store_local::datadir::DataDir;
use provisioner_store_local::LocalAdapters;

use super::Backend;
use crate::Global;

/// Arguments of `provisioner serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, env = "PROVISIONER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Lifetime of issued certificates, in days.
    #[arg(
        long,
        env = "PROVISIONER_VALIDITY_DAYS",
        default_value_t = IssuanceOptions::DEFAULT_VALIDITY_DAYS
    )]
    validity_days: u32,
    /// A request within this many days of the current certificate's expiry gets a new one
    /// (a value at or above the validity makes every request issue, and a replayed CSR
    /// revoke the device's current certificate: serve warns at start-up).
    #[arg(
        long,
        env = "PROVISIONER_RENEW_WITHIN_DAYS",
        default_value_t = IssuanceOptions::DEFAULT_RENEW_WITHIN_DAYS
    )]
    renew_within_days: u32,
    /// New certificates per device per hour (0 = no limit).
    #[arg(
        long,
        env = "PROVISIONER_RATE_LIMIT",
        default_value_t = IssuanceOptions::DEFAULT_RATE_LIMIT
    )]
    rate_limit: u32,
    /// Failed requests per client address per minute (0 = no limit); generous, since a
    /// factory line may sit behind one address.
    #[arg(
        long,
        env = "PROVISIONER_FAILED_RATE_LIMIT",
        default_value_t = IssuanceOptions::DEFAULT_FAILED_RATE_LIMIT
    )]
    failed_rate_limit: u32,
    /// The MQTT endpoint returned to devices.
    #[arg(
        long,
        env = "PROVISIONER_MQTT_ENDPOINT",
        default_value = "127.0.0.1:8883"
    )]
    mqtt_endpoint: String,
    /// How long a latent retrieval URL stays valid, in seconds.
    #[arg(
        long,
        env = "PROVISIONER_RETRIEVAL_TTL_SECS",
        default_value_t = DEFAULT_RETRIEVAL_TTL_SECS
    )]
    retrieval_ttl_secs: u32,
    /// Accept P-384 device keys signed with SHA-384.
    #[arg(long, env = "PROVISIONER_ALLOW_P384")]
    allow_p384: bool,
    /// Also accept, on the admin API, ID tokens of this Cognito user pool
    /// (`https://cognito-idp.REGION.amazonaws.com/POOL_ID`); the admin token stays valid.
    #[arg(
        long,
        env = "PROVISIONER_ADMIN_JWT_ISSUER",
        requires = "admin_jwt_audience"
    )]
    admin_jwt_issuer: Option<String>,
    /// The app client id those ID tokens must be issued to (their `aud`).
    #[arg(
        long,
        env = "PROVISIONER_ADMIN_JWT_AUDIENCE",
        requires = "admin_jwt_issuer"
    )]
    admin_jwt_audience: Option<String>,
    /// Accept only users in this Cognito group (`cognito:groups`).
    #[arg(
        long,
        env = "PROVISIONER_ADMIN_JWT_GROUP",
        requires = "admin_jwt_issuer"
    )]
    admin_jwt_group: Option<String>,
    /// Offer sign-in through this Cognito hosted UI domain
    /// (`https://PREFIX.auth.REGION.amazoncognito.com`) on the dashboard: the
    /// authorization-code flow with PKCE for the `--admin-jwt-audience` app client.
    #[arg(
        long,
        env = "PROVISIONER_ADMIN_SIGN_IN_DOMAIN",
        requires = "admin_jwt_audience"
    )]
    admin_sign_in_domain: Option<String>,
    /// The built dashboard (Trunk's output, `bash scripts/build-ui.sh`), served at `/`;
    /// read at start. Without an `index.html` there, `/` says how to build it.
    #[arg(
        long,
        env = "PROVISIONER_DASHBOARD_DIR",
        default_value = "admin-ui/dist"
    )]
    dashboard_dir: std::path::PathBuf,
    /// Which adapters serve: `local` (SQLite registry and on-disk CA in the data
    /// directory) or `aws` (DynamoDB, ACM Private CA or IoT Core, IoT Core things; set up
    /// by the `PROVISIONER_*` and `AWS_*` variables of the deployment, with
    /// `AWS_ENDPOINT_URL` for a stand-in such as moto). `aws` needs a build with
    /// `--features aws`; the admin API then speaks to the same AWS services and accepts
    /// the data directory's admin token (and Cognito ID tokens with `--admin-jwt-*`).
    #[arg(long, env = "PROVISIONER_BACKEND", value_enum, default_value_t = Backend::Local)]
    backend: Backend,
    /// With `--backend aws`: create the DynamoDB tables when absent (to try the service
    /// against moto, dynalite or a fresh account without deploying the template).
    #[arg(long)]
    create_tables: bool,
    /// With `--backend aws`: every this many seconds, resume an unfinished CA rotation and
    /// retry unfinished regional IoT Core registrations (what the maintenance Lambda does
    /// when deployed); 0 turns it off (when the deployed one runs against the same tables).
    #[arg(long, env = "PROVISIONER_MAINTENANCE_EVERY_SECS", default_value_t = 60)]
    maintenance_every_secs: u64,
    /// With `--backend aws`: seconds a CA rotation waits after switching issuance before
    /// it revokes, so issuers still using the old CA finish first (they cache the issuing
    /// CA for 30 s). Lower it only when nothing else issues from the same tables.
    #[arg(long, env = "PROVISIONER_ROTATION_SETTLE_SECS", default_value_t = 45)]
    rotation_settle_secs: u64,
    #[command(flatten)]
    crls: super::crl_upkeep::CrlUpkeepArgs,
}

impl ServeArgs {
    /// Binds, initialises a fresh data directory, and serves until SIGINT or SIGTERM.
    pub async fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        if self.issuance().renews_every_request() {
            // The proof of possession has no freshness: anyone who saw a CSR can resend it.
            tracing::warn!(
                renew_within_days = self.renew_within_days,
                validity_days = self.validity_days,
                "--renew-within-days is at least --validity-days: every request renews, so a replayed CSR revokes the device's current certificate"
            );
        }
        // A wrong JWT or sign-in setting stops us before anything listens or is created.
        let jwt = self.admin_jwt_validator()?;
        let sign_in = self.hosted_sign_in()?;
        self.crls.check()?;
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("cannot listen on {}", self.listen))?;
        let address = listener.local_addr()?;
        // The first line, which scripts and tests wait for.
        say(&format!("listening on http://{address}"));
        if self.backend == Backend::Aws {
            return self.serve_aws(listener, global, jwt, sign_in).await;
        }

        let data_dir = &global.data_dir;
        let created = provisioner_store_local::initialise(data_dir)?;
        for line in &created.messages {
            say(line);
        }
        if let Some(token) = &created.admin_token {
            show_new_admin_token(data_dir, token);
        }

        let ports = LocalAdapters::open(data_dir)?;
        let crl_writer = self.crls.writer();
        let fleet = LocalFleet::new(ports.registry.clone(), data_dir.clone())
            .with_crl_writer(crl_writer.clone());
        let _crl_refresher = self
            .crls
            .start(data_dir, &ports.registry, crl_writer, say)
            .await?;
        let admin = admin_context(Arc::new(fleet), jwt, sign_in)
            .with_token_file(data_dir.admin_token_path());
        let flow = Provisioner::new(ports, self.issuance().flow_settings());
        let api = self.device_api(flow, global, address)?;
        self.serve_until_stopped(listener, api.into_router(), admin)
            .await
    }

    /// Serves the device API, the admin API under /admin/api and the dashboard at / until
    /// SIGINT or SIGTERM.
    async fn serve_until_stopped(
        &self,
        listener: tokio::net::TcpListener,
        device_api: axum::Router,
        admin: AdminContext,
    ) -> anyhow::Result<ExitCode> {
        let address = listener.local_addr()?;
        let dashboard = self.dashboard(address)?;
        let app = device_api
            .merge(admin::router_with_dashboard(
                Arc::new(admin),
                dashboard.map(Arc::new),
            ))
            .into_make_service_with_connect_info::<SocketAddr>();
        tracing::info!(%address, "serving (device API; admin API under {})", admin::API_PREFIX);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("the server failed")?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    }

    /// The issuance flags as the device API's options (`provisioner_http::api_options`,
    /// shared with the issuer Lambda's variables).
    fn issuance(&self) -> IssuanceOptions {
        IssuanceOptions {
            validity_days: self.validity_days,
            renew_within_days: self.renew_within_days,
            rate_limit: self.rate_limit,
            failed_rate_limit: self.failed_rate_limit,
            allow_p384: self.allow_p384,
            mqtt_endpoint: self.mqtt_endpoint.clone(),
        }
    }

    /// The device API over `flow` at `address`; on both backends its retrieval URLs are
    /// signed with the data directory's key.
    fn device_api<B: Adapters>(
        &self,
        flow: Provisioner<B>,
        global: &Global,
        address: SocketAddr,
    ) -> anyhow::Result<DeviceApi<B>> {
        let url_key = global.data_dir.url_signing_key()?.bytes;
        let ttl_secs = i64::from(self.retrieval_ttl_secs);
        DeviceApi::new(flow, &url_key, ttl_secs, format!("http://{address}"))
            .map_err(|e| anyhow::anyhow!("the URL signing key is unusable: {e}"))
    }

    /// The built dashboard, if there is one; says where it is served.
    fn dashboard(&self, address: SocketAddr) -> anyhow::Result<Option<admin::Dashboard>> {
        let dashboard = admin::Dashboard::load(&self.dashboard_dir).with_context(|| {
            format!(
                "cannot read the dashboard in {}",
                self.dashboard_dir.display()
            )
        })?;
        match &dashboard {
            Some(_) => say(&format!(
                "dashboard: http://{address}/ (from {})",
                self.dashboard_dir.display()
            )),
            None => say(&format!(
                "dashboard: not built in {} (`{}` builds it); / says so",
                self.dashboard_dir.display(),
                admin::DASHBOARD_BUILD_COMMAND
            )),
        }
        Ok(dashboard)
    }

    /// The hosted sign-in of `--admin-sign-in-domain`, if given.
    fn hosted_sign_in(&self) -> anyhow::Result<Option<HostedSignIn>> {
        let (Some(domain), Some(client_id)) =
            (&self.admin_sign_in_domain, &self.admin_jwt_audience)
        else {
            return Ok(None);
        };
        HostedSignIn::cognito(domain, client_id)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("--admin-sign-in-domain: {e}"))
    }

    /// The Cognito ID-token validator of the `--admin-jwt-*` flags, if given.
    fn admin_jwt_validator(&self) -> anyhow::Result<Option<JwtValidator>> {
        let (Some(issuer), Some(audience)) = (&self.admin_jwt_issuer, &self.admin_jwt_audience)
        else {
            return Ok(None);
        };
        let mut validator = JwtValidator::new(issuer, audience)?;
        if let Some(group) = &self.admin_jwt_group {
            validator = validator.with_required_group(group)?;
        }
        Ok(Some(validator))
    }

    /// The device API on the AWS adapters (the issuer Lambda's wiring,
    /// `provisioner_store_aws::wiring`). Retrieval URLs are signed with the data
    /// directory's key, as locally.
    #[cfg(feature = "aws")]
    async fn serve_aws(
        self,
        listener: tokio::net::TcpListener,
        global: &Global,
        jwt: Option<JwtValidator>,
        sign_in: Option<HostedSignIn>,
    ) -> anyhow::Result<ExitCode> {
        use provisioner_store_aws::admin::AwsFleet;
        use provisioner_store_aws::config::AwsSettings;
        use provisioner_store_aws::maintenance::MaintenanceBudget;
        use provisioner_store_aws::wiring::AwsDeviceFlow;

        let address = listener.local_addr()?;
        let aws = AwsSettings::from_env()?;
        let flow = AwsDeviceFlow::connect(&aws, self.issuance().flow_settings())
            .await
            .map_err(|e| anyhow::anyhow!("cannot set up the AWS adapters: {e}"))?;
        if self.create_tables {
            flow.create_tables(&aws).await?;
            say(&format!("tables ready (prefix {})", aws.table_prefix));
        }
        say(&format!(
            "backend aws: issuance {}, regions {}, tables {}*",
            aws.issuance_mode.name(),
            aws.regions.join(","),
            aws.table_prefix
        ));
        let data_dir = &global.data_dir;
        data_dir.ensure_exists()?;
        let api = self
            .device_api(flow.provisioner, global, address)?
            .with_certificate_store(flow.certificate_store);
        let fleet = AwsFleet::connect(&aws)
            .await
            .map_err(|e| anyhow::anyhow!("cannot set up the admin API on AWS: {e}"))?;
        let _maintenance = (self.maintenance_every_secs > 0).then(|| {
            Arc::new(fleet.maintenance()).spawn_every(
                std::time::Duration::from_secs(self.maintenance_every_secs),
                MaintenanceBudget {
                    settle: std::time::Duration::from_secs(self.rotation_settle_secs),
                    ..MaintenanceBudget::default()
                },
            )
        });
        let token = data_dir.admin_token()?;
        if token.created {
            show_new_admin_token(data_dir, &String::from_utf8_lossy(&token.bytes));
        }
        let admin = admin_context(Arc::new(fleet), jwt, sign_in)
            .with_token_file(data_dir.admin_token_path());
        self.serve_until_stopped(listener, api.into_router(), admin)
            .await
    }

    #[cfg(not(feature = "aws"))]
    async fn serve_aws(
        self,
        _listener: tokio::net::TcpListener,
        _global: &Global,
        _jwt: Option<JwtValidator>,
        _sign_in: Option<HostedSignIn>,
    ) -> anyhow::Result<ExitCode> {
        anyhow::bail!(super::NO_AWS_FEATURE)
    }
}

/// Prints a token created just now, once, to the operator's terminal; never logged.
fn show_new_admin_token(data_dir: &DataDir, token: &str) {
    say(&format!(
        "admin token (shown once; stored in {}): {token}",
        data_dir.admin_token_path().display()
    ));
}

/// The admin API's context over `fleet`, with the JWT validation and hosted sign-in
/// configured.
fn admin_context(
    fleet: Arc<dyn FleetAdmin>,
    jwt: Option<JwtValidator>,
    sign_in: Option<HostedSignIn>,
) -> AdminContext {
    let mut admin = AdminContext::new(fleet);
    if let Some(validator) = jwt {
        tracing::info!(
            issuer = validator.issuer(),
            "admin API: Cognito ID tokens accepted"
        );
        admin = admin.with_jwt(validator);
    }
    if let Some(sign_in) = sign_in {
        tracing::info!(authorize = %sign_in.authorize_url, "dashboard: hosted sign-in offered");
        admin = admin.with_sign_in(sign_in);
    }
    admin
}

/// Prints a line on stdout; a closed stdout (the reader went away) must not stop serving.
fn say(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
