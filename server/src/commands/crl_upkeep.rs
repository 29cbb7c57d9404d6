//! The CRL options of `provisioner serve` (local backend): the CRLs' lifetime, how often
//! the service looks for revocations to publish, and the mosquitto broker whose copy of
//! the CA bundle and CRLs it keeps current (and reloads).
//!
//! Why in `serve` rather than a separate `ca export-mosquitto --watch`: the service
//! already runs, shares the registry and the CRL writer's turn, and regenerates the
//! CRLs when they must change, so it knows when the broker's copy changes; a second
//! long-running process would poll the same files and need its own supervision.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use provisioner_core::{Clock, SystemClock};
use provisioner_store_local::crl_refresh::{BrokerExport, CrlRefresher};
use provisioner_store_local::crls::CrlWriter;
use provisioner_store_local::datadir::DataDir;
use provisioner_store_local::operations;
use provisioner_store_local::registry::SqliteRegistry;

use super::crl_lifetime::CrlLifetimeArg;

/// The CRL options of `serve`.
#[derive(Debug, Args)]
pub struct CrlUpkeepArgs {
    #[command(flatten)]
    crl_lifetime: CrlLifetimeArg,
    /// Every this many seconds, look for revocations not yet on the CRLs (renewals on
    /// POST /new, the admin API, `certs revoke` and `ca rotate` in other processes) and
    /// publish them: at most one regeneration per interval, off the issuance path.
    #[arg(
        long,
        env = "PROVISIONER_CRL_DEBOUNCE_SECS",
        default_value_t = 5,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    crl_debounce_secs: u64,
    /// Write a mosquitto broker's files into DIR at start (as `ca export-mosquitto`
    /// does), and keep its `ca.pem` and `crl.pem` current as CAs and CRLs change.
    #[arg(long, env = "PROVISIONER_MOSQUITTO_EXPORT", value_name = "DIR")]
    mosquitto_export: Option<PathBuf>,
    /// The listener port written into that `mosquitto.conf`.
    #[arg(
        long,
        env = "PROVISIONER_MOSQUITTO_PORT",
        default_value_t = 8883,
        requires = "mosquitto_export"
    )]
    mosquitto_port: u16,
    /// Run with `sh -c` at start and whenever the export's files changed, so the broker
    /// loads them: mosquitto does not reliably reload a CRL on SIGHUP, so restart it
    /// (`systemctl restart mosquitto`). It must exit when done; a failure is logged and
    /// the command run again at the next interval.
    #[arg(
        long,
        env = "PROVISIONER_BROKER_RELOAD_CMD",
        value_name = "COMMAND",
        requires = "mosquitto_export"
    )]
    broker_reload_cmd: Option<String>,
}

impl CrlUpkeepArgs {
    /// Refuses settings under which the CRLs could expire between two looks.
    ///
    /// # Errors
    /// When the lifetime is under three debounce intervals.
    pub fn check(&self) -> anyhow::Result<()> {
        let debounce = i64::try_from(self.crl_debounce_secs).unwrap_or(i64::MAX);
        if self.crl_lifetime.secs < debounce.saturating_mul(3) {
            anyhow::bail!(
                "--crl-lifetime ({} s) must be at least three times --crl-debounce-secs ({} s): \
                 a CRL is renewed at half its lifetime, within one interval",
                self.crl_lifetime.secs,
                self.crl_debounce_secs
            );
        }
        Ok(())
    }

    /// The CRL writer every part of the service shares.
    pub fn writer(&self) -> CrlWriter {
        CrlWriter::new(self.crl_lifetime.secs)
    }

    /// Writes the broker's export (if asked) and starts the refresher; `say` tells the
    /// operator where the export is.
    ///
    /// # Errors
    /// When the export cannot be written.
    pub async fn start(
        &self,
        data_dir: &DataDir,
        registry: &SqliteRegistry,
        writer: CrlWriter,
        say: impl Fn(&str),
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut refresher =
            CrlRefresher::new(data_dir.clone(), registry.clone(), writer, clock.clone());
        if let Some(dir) = &self.mosquitto_export {
            let export = operations::export_mosquitto(
                data_dir,
                registry,
                dir,
                self.mosquitto_port,
                clock.now(),
                self.crl_lifetime.secs,
            )
            .await
            .with_context(|| format!("cannot write the mosquitto export in {}", dir.display()))?;
            let dir = export
                .config
                .parent()
                .map_or_else(|| dir.clone(), PathBuf::from);
            match &self.broker_reload_cmd {
                Some(command) => say(&format!(
                    "mosquitto export: {} (kept current; reload: {command})",
                    export.config.display()
                )),
                None => say(&format!(
                    "mosquitto export: {} (kept current; no --broker-reload-cmd: restart the broker yourself when its CRLs change)",
                    export.config.display()
                )),
            }
            refresher = refresher.with_export(
                BrokerExport {
                    dir,
                    reload_command: self.broker_reload_cmd.clone(),
                },
                true,
            );
        }
        Ok(refresher.spawn(Duration::from_secs(self.crl_debounce_secs)))
    }
}
