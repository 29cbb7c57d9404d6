//! Keeps the CRLs current while `provisioner serve` runs, and a broker's copy of them.
//!
//! Revocations happen in many places: a renewal on `POST /new` supersedes the previous
//! certificate, the admin API revokes, and `provisioner certs revoke` or `ca rotate` run
//! in other processes against the same registry. Rather than hooking each, a background
//! task ([`CrlRefresher`]) looks every `every` (the debounce interval) at a cheap
//! watermark of the registry and the CA directory ([`Watermark`]: the revoked count of
//! each issuing CA, the CAs on disk and their recorded states) and regenerates every CRL
//! when it moved, when a CRL is missing, or when one has reached half its lifetime. So
//! at most one regeneration happens per interval, none on the issuance path, and a CRL
//! is never older than half its lifetime plus one interval.
//!
//! With a [`BrokerExport`], the broker's `ca.pem` and `crl.pem` are then written where
//! they changed and the operator's reload command runs (mosquitto does not reliably
//! reload a CRL on SIGHUP: the command usually restarts it). A failed command is run
//! again at the next interval until it succeeds.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use provisioner_core::{Clock, UnixTime};

use super::crls::{published_crls, CrlWriter};
use super::datadir::DataDir;
use super::operations::{self, BrokerBundles};
use super::registry::{CaState, SqliteRegistry};
use super::LocalError;

/// How long the broker's reload command may run before it is given up (and retried).
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// What the CRLs depend on, cheap to read: it changes whenever a CRL's content must.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    /// Each issuing CA on disk (previous ones first) with its revoked certificates.
    issuing: Vec<(String, u64)>,
    /// The CAs the registry records as revoked (the root's CRL lists them).
    revoked_cas: Vec<String>,
}

impl Watermark {
    /// Reads it: one indexed count per issuing CA and the (small) CA table.
    ///
    /// # Errors
    /// When the CA directory or the registry cannot be read.
    pub async fn read(data_dir: &DataDir, registry: &SqliteRegistry) -> Result<Self, LocalError> {
        let mut issuing = Vec::new();
        for id in operations::issuing_ca_ids(data_dir)? {
            let revoked = registry.revoked_count(&id).await?;
            issuing.push((id, revoked));
        }
        let revoked_cas = registry
            .cas()
            .await?
            .into_iter()
            .filter(|ca| ca.state == CaState::Revoked)
            .map(|ca| ca.ca_id)
            .collect();
        Ok(Self {
            issuing,
            revoked_cas,
        })
    }
}

/// A broker's copy of the CA bundle and CRLs, kept current by the refresher.
#[derive(Debug, Clone)]
pub struct BrokerExport {
    /// The directory `provisioner ca export-mosquitto` (or `serve --mosquitto-export`)
    /// wrote: its `ca.pem` and `crl.pem` are replaced when they change.
    pub dir: PathBuf,
    /// Run with `sh -c` after they changed, so the broker loads them (e.g.
    /// `systemctl restart mosquitto`); `None`: the files are written, nothing else.
    pub reload_command: Option<String>,
}

/// Why the refresher regenerated the CRLs, as its log line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshReason {
    /// The first look after start.
    Start,
    /// A certificate or a CA was revoked, or a CA added, since the last regeneration.
    Revocations,
    /// A CRL file is missing or unreadable.
    Missing,
    /// A CRL reached half its lifetime.
    Renewal,
}

impl RefreshReason {
    /// The word in the log.
    pub fn name(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Revocations => "revocations",
            Self::Missing => "missing",
            Self::Renewal => "renewal",
        }
    }
}

/// What one look ([`CrlRefresher::tick`]) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickOutcome {
    /// The CRLs were regenerated, and why.
    pub regenerated: Option<RefreshReason>,
    /// The broker's files changed.
    pub exported: bool,
    /// The broker's reload command ran and succeeded.
    pub reloaded: bool,
}

/// The background task of `serve` that keeps the CRLs (and a broker's copy) current.
pub struct CrlRefresher {
    data_dir: DataDir,
    registry: SqliteRegistry,
    writer: CrlWriter,
    clock: Arc<dyn Clock>,
    export: Option<BrokerExport>,
    /// The watermark the CRLs on disk were written after.
    written_after: Option<Watermark>,
    /// The broker's files changed and its reload command has not succeeded since.
    reload_pending: bool,
}

impl std::fmt::Debug for CrlRefresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlRefresher")
            .field("data_dir", &self.data_dir)
            .field("lifetime_secs", &self.writer.lifetime_secs())
            .field("export", &self.export)
            .finish_non_exhaustive()
    }
}

impl CrlRefresher {
    /// A refresher of the CRLs of `data_dir`, written by `writer` (share it with the
    /// admin API's fleet, so the two never write at once).
    pub fn new(
        data_dir: DataDir,
        registry: SqliteRegistry,
        writer: CrlWriter,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            data_dir,
            registry,
            writer,
            clock,
            export: None,
            written_after: None,
            reload_pending: false,
        }
    }

    /// Also keeps `export` current. With `reload_now`, its reload command runs at the
    /// first look even if nothing changes (the export was just written at start).
    #[must_use]
    pub fn with_export(mut self, export: BrokerExport, reload_now: bool) -> Self {
        self.export = Some(export);
        self.reload_pending = reload_now;
        self
    }

    /// Looks once: regenerates the CRLs if needed, then brings the broker's copy up to
    /// date and reloads it. Errors are returned (and logged by [`Self::spawn`]); the
    /// next look tries again.
    ///
    /// # Errors
    /// When the registry or the CA cannot be read, a CRL cannot be written, or the
    /// broker's files cannot be written.
    pub async fn tick(&mut self) -> Result<TickOutcome, LocalError> {
        let mut outcome = TickOutcome::default();
        // Read before regenerating: a revocation committed meanwhile moves the
        // watermark again, and the next look writes it.
        let watermark = Watermark::read(&self.data_dir, &self.registry).await?;
        let now = self.clock.now();
        let reason = self.reason(&watermark, now)?;
        if let Some(reason) = reason {
            let written = self
                .writer
                .regenerate(&self.data_dir, &self.registry, now)
                .await?;
            tracing::info!(
                reason = reason.name(),
                files = written.len(),
                lifetime_secs = self.writer.lifetime_secs(),
                "CRLs regenerated"
            );
            self.written_after = Some(watermark);
            outcome.regenerated = Some(reason);
        }
        if let Some(export) = &self.export {
            let bundles = BrokerBundles::read(&self.data_dir)?;
            if bundles.write_changed(&export.dir)? {
                tracing::info!(dir = %export.dir.display(), "broker's CA bundle and CRLs updated");
                outcome.exported = true;
                self.reload_pending = true;
            }
            if self.reload_pending {
                match &export.reload_command {
                    Some(command) => {
                        if run_reload(command).await {
                            self.reload_pending = false;
                            outcome.reloaded = true;
                        }
                    }
                    None => self.reload_pending = false,
                }
            }
        }
        Ok(outcome)
    }

    fn reason(
        &self,
        watermark: &Watermark,
        now: UnixTime,
    ) -> Result<Option<RefreshReason>, LocalError> {
        let Some(written_after) = &self.written_after else {
            return Ok(Some(RefreshReason::Start));
        };
        if written_after != watermark {
            return Ok(Some(RefreshReason::Revocations));
        }
        let crls = published_crls(&self.data_dir)?;
        if crls.iter().any(|crl| crl.dates.is_none()) {
            return Ok(Some(RefreshReason::Missing));
        }
        if crls
            .iter()
            .filter_map(|crl| crl.dates)
            .any(|dates| dates.renewal_due(now))
        {
            return Ok(Some(RefreshReason::Renewal));
        }
        Ok(None)
    }

    /// Runs [`Self::tick`] every `every`, the first at once, until the runtime stops or
    /// the returned handle is aborted (dropping it does not stop the task).
    pub fn spawn(mut self, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if let Err(e) = self.tick().await {
                    tracing::error!(error = %e, "cannot keep the CRLs current; trying again in {} s", every.as_secs_f64());
                }
            }
        })
    }
}

/// Runs the broker's reload command; whether it succeeded (its failure is logged).
/// Success is its exit status: a command that leaves a broker running in the background
/// is not waited for, and its output is read for at most a second after it exits.
async fn run_reload(command: &str) -> bool {
    use tokio::io::AsyncReadExt as _;
    let started = std::time::Instant::now();
    let spawned = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            tracing::error!(command, error = %e, "cannot run the broker's reload command (retried)");
            return false;
        }
    };
    let status = match tokio::time::timeout(RELOAD_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            tracing::error!(command, error = %e, "the broker's reload command was lost (retried)");
            return false;
        }
        Err(_) => {
            tracing::error!(
                command,
                timeout_secs = RELOAD_TIMEOUT.as_secs(),
                "the broker's reload command did not finish in time (retried)"
            );
            return false;
        }
    };
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if status.success() {
        tracing::info!(command, elapsed_ms, "broker reloaded");
        return true;
    }
    let mut stderr = Vec::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = tokio::time::timeout(Duration::from_secs(1), pipe.read_to_end(&mut stderr)).await;
    }
    tracing::error!(
        command,
        %status,
        elapsed_ms,
        stderr = %String::from_utf8_lossy(&stderr).trim(),
        "the broker's reload command failed: the broker may refuse devices or accept revoked certificates until it succeeds (retried)"
    );
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;
    use crate::authority::LocalAuthority;
    use crate::crls::CrlWriter;

    const NOW: UnixTime = 1_800_000_000;

    struct TestClock(AtomicI64);

    impl Clock for TestClock {
        fn now(&self) -> UnixTime {
            self.0.load(Ordering::SeqCst)
        }
    }

    struct Setup {
        _dir: tempfile::TempDir,
        data_dir: DataDir,
        registry: SqliteRegistry,
        clock: Arc<TestClock>,
        export: PathBuf,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = DataDir::new(dir.path().join("data"));
        data_dir.ensure_exists().unwrap();
        LocalAuthority::init_development(&data_dir.ca_dir(), NOW - 60).unwrap();
        let registry = SqliteRegistry::open(data_dir.registry_path()).unwrap();
        let export = dir.path().join("broker");
        std::fs::create_dir_all(&export).unwrap();
        Setup {
            _dir: dir,
            data_dir,
            registry,
            clock: Arc::new(TestClock(AtomicI64::new(NOW))),
            export,
        }
    }

    fn refresher(s: &Setup, reload: Option<String>) -> CrlRefresher {
        CrlRefresher::new(
            s.data_dir.clone(),
            s.registry.clone(),
            CrlWriter::new(100),
            s.clock.clone(),
        )
        .with_export(
            BrokerExport {
                dir: s.export.clone(),
                reload_command: reload,
            },
            false,
        )
    }

    #[tokio::test]
    async fn crls_are_written_at_start_then_only_when_something_changed_or_half_their_life_passed()
    {
        // given a refresher of CRLs living 100 s, whose reload command counts its runs
        let s = setup();
        let runs = s.export.join("runs");
        let reload = format!("echo run >> {}", runs.display());
        let mut refresher = refresher(&s, Some(reload));
        let reloads = || {
            std::fs::read_to_string(&runs)
                .unwrap_or_default()
                .lines()
                .count()
        };

        // when it looks the first time, then again with nothing changed
        let first = refresher.tick().await.unwrap();
        let second = refresher.tick().await.unwrap();

        // then the first writes the CRLs and the broker's copy and reloads it; the second
        // does nothing
        assert_eq!(first.regenerated, Some(RefreshReason::Start));
        assert!(first.exported && first.reloaded);
        assert_eq!(second, TickOutcome::default());
        assert_eq!(reloads(), 1);
        let exported = std::fs::read_to_string(s.export.join("crl.pem")).unwrap();
        assert_eq!(exported.matches("BEGIN X509 CRL").count(), 2);

        // when a CA is recorded revoked (what the root's CRL lists)
        let ca = LocalAuthority::load(&s.data_dir.ca_dir()).unwrap();
        s.registry
            .record_ca(ca.id(), ca.certificate_pem(), CaState::Revoked, NOW)
            .await
            .unwrap();
        let third = refresher.tick().await.unwrap();

        // then the CRLs are written again, exported, and the broker reloaded
        assert_eq!(third.regenerated, Some(RefreshReason::Revocations));
        assert!(third.exported && third.reloaded);
        assert_eq!(reloads(), 2);

        // when 49 s pass: nothing; at half the lifetime: a renewal
        s.clock.0.store(NOW + 49, Ordering::SeqCst);
        assert_eq!(refresher.tick().await.unwrap().regenerated, None);
        s.clock.0.store(NOW + 50, Ordering::SeqCst);
        assert_eq!(
            refresher.tick().await.unwrap().regenerated,
            Some(RefreshReason::Renewal)
        );

        // when a CRL file disappears, it is written again
        std::fs::remove_file(crate::operations::root_crl_path(&s.data_dir)).unwrap();
        assert_eq!(
            refresher.tick().await.unwrap().regenerated,
            Some(RefreshReason::Missing)
        );
    }

    #[tokio::test]
    async fn a_failed_reload_is_run_again_at_the_next_look() {
        // given a reload command that fails until a file exists
        let s = setup();
        let gate = s.export.join("gate");
        let reload = format!("test -e {}", gate.display());
        let mut refresher = refresher(&s, Some(reload));

        // when it fails at the first look
        let first = refresher.tick().await.unwrap();
        assert!(first.exported && !first.reloaded);

        // then the next look runs it again (nothing else changed), and once it succeeds
        // it is not run any more
        assert!(!refresher.tick().await.unwrap().reloaded);
        std::fs::write(&gate, b"").unwrap();
        let retried = refresher.tick().await.unwrap();
        assert!(retried.reloaded && !retried.exported);
        assert!(!refresher.tick().await.unwrap().reloaded);
    }
}
