//! `provisioner serve`: the provisioning service on the local adapters: the device API,
//! the admin API under `/admin/api` (bearer token: `provisioner admin token`), and the
//! dashboard's page at `/`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use provisioner_core::{CsrPolicy, IssuanceProfile, IssuanceRateLimit};
use provisioner_service::admin::{self, AdminContext};
use provisioner_service::api::{router, DeviceApi};
use provisioner_service::flow::{FlowSettings, Provisioner};
use provisioner_service::latent::UrlSigner;
use provisioner_service::local::LocalAdapters;

use crate::Global;

const DAY: i64 = 24 * 60 * 60;

/// Arguments of `provisioner serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, env = "PROVISIONER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Lifetime of issued certificates, in days.
    #[arg(long, env = "PROVISIONER_VALIDITY_DAYS", default_value_t = 365)]
    validity_days: u32,
    /// A request within this many days of the current certificate's expiry gets a new one
    /// (a value at or above the validity makes every request issue).
    #[arg(long, env = "PROVISIONER_RENEW_WITHIN_DAYS", default_value_t = 30)]
    renew_within_days: u32,
    /// New certificates per device per hour (0 = no limit).
    #[arg(long, env = "PROVISIONER_RATE_LIMIT", default_value_t = 10)]
    rate_limit: u32,
    /// Failed requests per client address per minute (0 = no limit); generous, since a
    /// factory line may sit behind one address.
    #[arg(long, env = "PROVISIONER_FAILED_RATE_LIMIT", default_value_t = 100)]
    failed_rate_limit: u32,
    /// The MQTT endpoint returned to devices.
    #[arg(
        long,
        env = "PROVISIONER_MQTT_ENDPOINT",
        default_value = "127.0.0.1:8883"
    )]
    mqtt_endpoint: String,
    /// How long a latent retrieval URL stays valid, in seconds.
    #[arg(long, env = "PROVISIONER_RETRIEVAL_TTL_SECS", default_value_t = 600)]
    retrieval_ttl_secs: u32,
    /// Accept P-384 device keys signed with SHA-384.
    #[arg(long, env = "PROVISIONER_ALLOW_P384")]
    allow_p384: bool,
}

impl ServeArgs {
    /// Binds, initialises a fresh data directory, and serves until SIGINT or SIGTERM.
    pub async fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("cannot listen on {}", self.listen))?;
        let address = listener.local_addr()?;
        // The first line, which scripts and tests wait for.
        say(&format!("listening on http://{address}"));

        let data_dir = &global.data_dir;
        let created = provisioner_service::local::initialise(data_dir)?;
        for line in &created.messages {
            say(line);
        }
        if let Some(token) = &created.admin_token {
            // Printed once, at creation, to the operator's terminal; never logged.
            say(&format!(
                "admin token (shown once; stored in {}): {token}",
                data_dir.admin_token_path().display()
            ));
        }

        let settings = FlowSettings {
            profile: IssuanceProfile {
                csr: CsrPolicy {
                    allow_p384: self.allow_p384,
                    ..CsrPolicy::default()
                },
                validity_secs: i64::from(self.validity_days) * DAY,
                renew_within_secs: i64::from(self.renew_within_days) * DAY,
                ..IssuanceProfile::default()
            },
            rate_limit: IssuanceRateLimit {
                per_hour: self.rate_limit,
            },
            failures_per_minute: self.failed_rate_limit,
            endpoint: self.mqtt_endpoint,
        };
        let ports = LocalAdapters::open(data_dir)?;
        let admin = AdminContext::new(ports.registry.clone(), data_dir.clone());
        let url_key = data_dir.url_signing_key()?.bytes;
        let api = DeviceApi::<LocalAdapters> {
            provisioner: Provisioner::new(ports, settings),
            url_signer: UrlSigner::new(&url_key, i64::from(self.retrieval_ttl_secs))
                .map_err(|e| anyhow::anyhow!("the URL signing key is unusable: {e}"))?,
            public_url: format!("http://{address}"),
        };
        // The device API as it was, plus the admin API under /admin/api (bearer token)
        // and the dashboard's page at /.
        let app = router(Arc::new(api))
            .merge(admin::router(Arc::new(admin)))
            .into_make_service_with_connect_info::<SocketAddr>();
        tracing::info!(%address, "serving (device API; admin API under {})", admin::API_PREFIX);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("the server failed")?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    }
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
