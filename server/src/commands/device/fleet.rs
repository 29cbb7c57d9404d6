//! `provisioner device fleet`: simulated secure elements and their manifest.

use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::Rng;
use rcgen::KeyPair;
use serde_json::{json, Value};

use super::pki::{write_private, KEY_SUFFIX};
use super::Failure;

/// The manifest's file name inside the fleet directory.
pub const MANIFEST: &str = "manifest.csv";

/// From this many devices on, a progress bar is drawn on stderr (when it is a terminal).
const PROGRESS_FROM: usize = 1_000;

/// Arguments of `provisioner device fleet`.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// How many devices to make.
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// The directory to write the keys and `manifest.csv` into (created if missing; must
    /// not already hold a manifest).
    #[arg(long)]
    out: PathBuf,
}

impl FleetArgs {
    /// Makes the fleet; prints `{devices, out, manifest, seconds, perSecond}`.
    pub async fn run(self) -> Result<Value, Failure> {
        tokio::task::spawn_blocking(move || self.make())
            .await
            .map_err(|e| Failure::new("internal", format!("the key generator stopped: {e}")))?
    }

    fn make(self) -> Result<Value, Failure> {
        let io = |what: String| {
            move |e: std::io::Error| Failure::new("io_failed", format!("{what}: {e}"))
        };
        if self.count == 0 {
            return Err(Failure::new("invalid_count", "--count must be at least 1"));
        }
        std::fs::create_dir_all(&self.out)
            .map_err(io(format!("cannot create {}", self.out.display())))?;
        let manifest = self.out.join(MANIFEST);
        if manifest.exists() {
            return Err(Failure::new(
                "fleet_exists",
                format!(
                    "{} already exists: write the fleet into a new directory",
                    manifest.display()
                ),
            ));
        }
        let started = Instant::now();
        let ids = unique_device_ids(self.count);
        let progress = progress_bar(self.count);
        let threads = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
            .min(self.count);
        let chunk = self.count.div_ceil(threads);
        let out = &self.out;
        let progress_ref = &progress;
        let keys: Vec<Result<Vec<String>, Failure>> = std::thread::scope(|scope| {
            let handles: Vec<_> = ids
                .chunks(chunk)
                .map(|ids| scope.spawn(move || make_keys(ids, out, progress_ref)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Failure::new("internal", "a key generator thread panicked"))
                    })
                })
                .collect()
        });
        progress.finish_and_clear();
        let mut public_keys = Vec::with_capacity(self.count);
        for part in keys {
            public_keys.extend(part?);
        }

        let file = std::fs::File::create(&manifest)
            .map_err(io(format!("cannot create {}", manifest.display())))?;
        let mut writer = BufWriter::new(file);
        let mut write = || -> std::io::Result<()> {
            writeln!(writer, "device_id,public_key")?;
            for (id, key) in ids.iter().zip(&public_keys) {
                writeln!(writer, "{id},{key}")?;
            }
            writer.flush()
        };
        write().map_err(io(format!("cannot write {}", manifest.display())))?;

        let seconds = started.elapsed().as_secs_f64();
        Ok(json!({
            "devices": self.count,
            "out": self.out.display().to_string(),
            "manifest": manifest.display().to_string(),
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "perSecond": (self.count as f64 / seconds.max(1e-9)).round(),
        }))
    }
}

/// `count` distinct ids in the style of a Microchip secure element's serial number:
/// `0123` then 7 random bytes, upper-case hex (18 characters).
fn unique_device_ids(count: usize) -> Vec<String> {
    let mut rng = rand::thread_rng();
    let mut seen = HashSet::with_capacity(count);
    let mut ids = Vec::with_capacity(count);
    while ids.len() < count {
        let tail: [u8; 7] = rng.gen();
        let id = format!("0123{}", hex::encode_upper(tail));
        if seen.insert(id.clone()) {
            ids.push(id);
        }
    }
    ids
}

/// Generates and stores one key per id; returns the SEC1 uncompressed hex public keys.
fn make_keys(
    ids: &[String],
    out: &std::path::Path,
    progress: &ProgressBar,
) -> Result<Vec<String>, Failure> {
    let mut public_keys = Vec::with_capacity(ids.len());
    for id in ids {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| Failure::new("keygen_failed", format!("cannot generate a key: {e}")))?;
        let path = out.join(format!("{id}{KEY_SUFFIX}"));
        write_private(&path, key.serialize_pem().as_bytes(), true).map_err(|e| {
            Failure::new("io_failed", format!("cannot write {}: {e}", path.display()))
        })?;
        public_keys.push(hex::encode(key.public_key_raw()));
        progress.inc(1);
    }
    Ok(public_keys)
}

fn progress_bar(count: usize) -> ProgressBar {
    if count < PROGRESS_FROM {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(count as u64), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} keys {pos}/{len} [{bar:40}] {per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
