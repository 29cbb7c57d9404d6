//! `provisioner import`: load manufacturer manifests into the device registry (the
//! device admin's step 3).
//!
//! Every file given is read (CSV, JSON lines or signed Microchip manifests, detected or
//! forced with `--format`) and imported in **one transaction**: any invalid row, or a
//! known device listed with another key (without `--replace`), writes nothing and exits 1.
//! Re-importing the same manifest is harmless (`unchanged`).
//!
//! With `--manifest-signer`, every file must be a signed Microchip manifest: an
//! unsigned one (CSV, JSON lines) in the same run refuses the whole run before anything
//! is written, on either backend, unless `--allow-unsigned` says the mix is meant.
//!
//! The files are parsed on one thread while the rows are inserted on another, so a
//! million-row CSV uses both cores of a small machine.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use provisioner_core::{
    Clock, ManifestEntryError, ManifestError, ManifestFormat, ManifestReader, ManifestSigners,
    SystemClock,
};
use provisioner_store_local::registry::{
    ImportItem, ImportOptions, ImportSummary, RegistryError, SqliteRegistry,
};

use super::Backend;
use crate::Global;

/// Rows handed from the parsing thread to the inserting one at a time.
const CHUNK: usize = 4096;
/// Files with fewer lines than this import too fast to need a progress bar.
const PROGRESS_FROM_LINES: u64 = 20_000;

/// Arguments of `provisioner import`.
///
/// With `--json`, the last line on stdout is
/// `{imported, unchanged, replaced, conflicts, invalid, errors, written}`, where `errors`
/// holds the first 100 refused rows as `{file, line, deviceId, error, message}`.
/// Exit status: 0 when the import was written (or, with `--dry-run`, would be), 1
/// otherwise.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Manifest files: CSV `device_id,public_key`, JSON lines `{"deviceId", "publicKey"}`,
    /// or signed Microchip manifests. Keys in any encoding (SPKI PEM, base64 SPKI DER,
    /// SEC1 or X||Y hex, JWK); P-256 only.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The format of every file: csv, jsonl or microchip (detected from each file's first
    /// character when omitted: `[` Microchip, `{` JSON lines, otherwise CSV).
    #[arg(long, value_parser = parse_format)]
    format: Option<ManifestFormat>,
    /// A certificate file (PEM, possibly several, or DER) whose key signs Microchip
    /// manifests; repeat the option for several files.
    /// When given, every file must be a signed Microchip manifest: an unsigned CSV or
    /// JSON lines file refuses the whole run (see `--allow-unsigned`).
    #[arg(long = "manifest-signer", value_name = "CERT")]
    manifest_signers: Vec<PathBuf>,
    /// With `--manifest-signer`, also import unsigned files (CSV, JSON lines) given in
    /// the same run, whose keys nobody vouches for.
    #[arg(long)]
    allow_unsigned: bool,
    /// Replace the registered key of a device that a manifest lists with another key.
    #[arg(long)]
    replace: bool,
    /// Check and count everything, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Where to import: `local` (the data directory's SQLite registry, one transaction)
    /// or `aws` (the DynamoDB devices table of `PROVISIONER_TABLE_PREFIX`, in idempotent
    /// batches: a failed import is finished by running it again).
    #[arg(long, env = "PROVISIONER_BACKEND", value_enum, default_value_t = Backend::Local)]
    backend: Backend,
}

fn parse_format(name: &str) -> Result<ManifestFormat, String> {
    name.parse().map_err(|e: ManifestError| e.to_string())
}

/// A manifest file read into memory.
struct Manifest {
    /// The file name, recorded as each device's `source_manifest`.
    name: String,
    bytes: Vec<u8>,
}

impl ImportArgs {
    /// Runs the import and prints its summary.
    ///
    /// # Errors
    /// An unreadable file or signer certificate, or a registry that cannot be opened or
    /// written (with `--json`, printed as `{error, message}` on stdout instead).
    pub async fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let json = self.json;
        let dry_run = self.dry_run;
        match self.import(global).await {
            Ok(summary) => print_summary(&summary, json, dry_run),
            Err(e) if json => {
                let code = if e.is::<UnsignedManifests>() {
                    UnsignedManifests::CODE
                } else {
                    "import_failed"
                };
                let body = serde_json::json!({
                    "error": code,
                    "message": format!("{e:#}"),
                });
                println!("{body}");
                Ok(ExitCode::FAILURE)
            }
            Err(e) => Err(e),
        }
    }

    async fn import(self, global: &Global) -> anyhow::Result<ImportSummary> {
        let mut signers = ManifestSigners::new();
        for path in &self.manifest_signers {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read the manifest signer {}", path.display()))?;
            signers.add_certificates(&bytes).with_context(|| {
                format!(
                    "the manifest signer {} is not a usable certificate",
                    path.display()
                )
            })?;
        }
        let no_signers = signers.is_empty();
        let mut reader = ManifestReader::new().with_signers(signers);
        if let Some(format) = self.format {
            reader = reader.with_format(format);
        }
        let manifests = self
            .files
            .iter()
            .map(|path| {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("cannot read the manifest {}", path.display()))?;
                Ok(Manifest {
                    name: file_name(path),
                    bytes,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !no_signers && !self.allow_unsigned {
            refuse_unsigned(&manifests, self.format)?;
        }

        if self.backend == Backend::Aws {
            let options = ImportOptions {
                replace: self.replace,
                dry_run: self.dry_run,
                now: SystemClock.now(),
            };
            return import_aws(&reader, &manifests, &options).await;
        }
        let registry = super::open_local_registry(&global.data_dir)?;
        let options = ImportOptions {
            replace: self.replace,
            dry_run: self.dry_run,
            now: SystemClock.now(),
        };
        let progress = progress_bar(&manifests, self.format);
        let mut summary = tokio::task::spawn_blocking(move || {
            let summary = import_blocking(&registry, &reader, &manifests, &options, &progress);
            progress.finish_and_clear();
            summary
        })
        .await
        .context("the import thread failed")??;
        if no_signers {
            for error in &mut summary.errors {
                if error.line == 0 && error.error == "malformed_manifest" {
                    error
                        .message
                        .push_str(" (pass it with --manifest-signer CERT)");
                }
            }
        }
        Ok(summary)
    }
}

/// Unsigned manifests given beside `--manifest-signer` without `--allow-unsigned`.
#[derive(Debug)]
struct UnsignedManifests {
    /// Each unsigned file, with its format: `devices.csv (csv)`.
    files: Vec<String>,
}

impl std::fmt::Display for UnsignedManifests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.files.len() == 1 { "is" } else { "are" };
        write!(
            f,
            "--manifest-signer was given, so every manifest must be a signed Microchip manifest, but {} {verb} unsigned; nothing was imported. Import unsigned files in a run without --manifest-signer, or pass --allow-unsigned to import them together",
            self.files.join(", ")
        )
    }
}

impl std::error::Error for UnsignedManifests {}

impl UnsignedManifests {
    /// The `error` of the `--json` refusal.
    const CODE: &'static str = "unsigned_manifest";
}

/// Fails closed: with signers given, a manifest whose format carries no signature is an
/// error for the whole run, found before anything is read into the registry.
fn refuse_unsigned(
    manifests: &[Manifest],
    format: Option<ManifestFormat>,
) -> Result<(), UnsignedManifests> {
    let files: Vec<String> = manifests
        .iter()
        .filter_map(|m| {
            let format = format.unwrap_or_else(|| ManifestFormat::detect(&m.bytes));
            (format != ManifestFormat::Microchip).then(|| format!("{} ({format})", m.name))
        })
        .collect();
    if files.is_empty() {
        Ok(())
    } else {
        Err(UnsignedManifests { files })
    }
}

/// Imports into the DynamoDB registry of the AWS deployment the environment describes.
#[cfg(feature = "aws")]
async fn import_aws(
    reader: &ManifestReader,
    manifests: &[Manifest],
    options: &ImportOptions,
) -> anyhow::Result<ImportSummary> {
    use provisioner_store_aws::config::AwsSettings;
    use provisioner_store_aws::wiring;

    let settings = AwsSettings::from_env()?;
    let registry = wiring::registry(&settings).await;
    let mut items = Vec::new();
    for manifest in manifests {
        let source = manifest.name.as_str();
        match reader.read(&manifest.bytes) {
            Err(error) => items.push(ImportItem {
                source,
                entry: Err(ManifestEntryError::new(0, None, &error)),
            }),
            Ok(entries) => items.extend(entries.map(|entry| ImportItem { source, entry })),
        }
    }
    registry
        .import(items, options)
        .await
        .with_context(|| format!("the import into {}devices failed", settings.table_prefix))
}

#[cfg(not(feature = "aws"))]
async fn import_aws(
    _reader: &ManifestReader,
    _manifests: &[Manifest],
    _options: &ImportOptions,
) -> anyhow::Result<ImportSummary> {
    anyhow::bail!(super::NO_AWS_FEATURE)
}

/// Parses on a second thread and inserts on this one, in one transaction.
fn import_blocking(
    registry: &SqliteRegistry,
    reader: &ManifestReader,
    manifests: &[Manifest],
    options: &ImportOptions,
    progress: &ProgressBar,
) -> Result<ImportSummary, RegistryError> {
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::sync_channel(8);
        scope.spawn(move || read_manifests(reader, manifests, &sender));
        let mut seen = 0u64;
        let items = receiver.into_iter().flatten().inspect(|_| {
            seen += 1;
            if seen % CHUNK as u64 == 0 {
                progress.set_position(seen);
            }
        });
        // `items` (and with it the receiver) is dropped when the import returns, which
        // stops the reading thread if the import failed early.
        registry.import(items, options)
    })
}

/// Sends every entry of every manifest, in chunks, until done or the receiver is gone.
fn read_manifests<'a>(
    reader: &'a ManifestReader,
    manifests: &'a [Manifest],
    sender: &mpsc::SyncSender<Vec<ImportItem<'a>>>,
) {
    let mut chunk = Vec::with_capacity(CHUNK);
    for manifest in manifests {
        let source = manifest.name.as_str();
        match reader.read(&manifest.bytes) {
            // A file that cannot be read at all is reported as its line 0.
            Err(error) => chunk.push(ImportItem {
                source,
                entry: Err(ManifestEntryError::new(0, None, &error)),
            }),
            Ok(entries) => {
                for entry in entries {
                    chunk.push(ImportItem { source, entry });
                    if chunk.len() == CHUNK {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                        if sender.send(full).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
    if !chunk.is_empty() {
        let _ = sender.send(chunk);
    }
}

/// A bar over the files' lines on stderr, for large files when stderr is a terminal.
fn progress_bar(manifests: &[Manifest], format: Option<ManifestFormat>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let microchip = manifests.iter().any(|m| {
        format.unwrap_or_else(|| ManifestFormat::detect(&m.bytes)) == ManifestFormat::Microchip
    });
    let lines: u64 = manifests
        .iter()
        .map(|m| m.bytes.iter().filter(|&&b| b == b'\n').count() as u64)
        .sum();
    if lines < PROGRESS_FROM_LINES {
        return ProgressBar::hidden();
    }
    // A Microchip entry spans many lines: count entries without a total then.
    let (bar, template) = if microchip {
        (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "{spinner} {human_pos} entries, {elapsed} elapsed",
        )
    } else {
        (
            ProgressBar::with_draw_target(Some(lines), ProgressDrawTarget::stderr()),
            "{bar:40} {human_pos}/{human_len} rows, {elapsed} elapsed, {eta} left",
        )
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .into_owned()
}

fn print_summary(summary: &ImportSummary, json: bool, dry_run: bool) -> anyhow::Result<ExitCode> {
    let success = summary.written || (dry_run && summary.is_clean());
    let code = if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if json {
        println!("{}", serde_json::to_string(summary)?);
        return Ok(code);
    }
    for error in &summary.errors {
        let device = error
            .device_id
            .as_ref()
            .map(|id| format!(" (device {id:?})"))
            .unwrap_or_default();
        let place = match error.line {
            0 => String::new(),
            line => format!(" line {line}"),
        };
        eprintln!(
            "{}{place}{device}: {} [{}]",
            error.file, error.message, error.error
        );
    }
    let refused = summary.invalid + summary.conflicts;
    if refused > summary.errors.len() as u64 {
        eprintln!("... and {} more", refused - summary.errors.len() as u64);
    }
    let counts = format!(
        "{} new, {} unchanged, {} replaced, {} conflicting, {} invalid",
        summary.imported, summary.unchanged, summary.replaced, summary.conflicts, summary.invalid
    );
    if summary.written {
        println!("imported: {counts}");
    } else if success {
        println!("dry run, nothing written; the import would succeed: {counts}");
    } else {
        let hint = if summary.conflicts > 0 {
            "fix the rows listed above, or pass --replace to replace the conflicting keys"
        } else {
            "fix the rows listed above"
        };
        println!("nothing written ({counts}): {hint}");
    }
    Ok(code)
}
