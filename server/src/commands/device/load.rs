//! `provisioner device load`: a fleet requesting certificates concurrently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget};
use reqwest::header::HeaderValue;
use reqwest::Url;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::pki::{
    build_csr_der, csr_header, device_id_from_key_path, files_with_suffix, key_pair_from_pem,
    KEY_SUFFIX,
};
use super::Failure;

/// How long requests still in flight at the end of the run may take to finish.
const GRACE: Duration = Duration::from_secs(1);

/// Arguments of `provisioner device load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The provisioning endpoint's base URL (`POST {URL}/new`).
    #[arg(long)]
    url: String,
    /// A fleet directory (`provisioner device fleet`): its `*.key.pem` are the devices.
    #[arg(long)]
    fleet: PathBuf,
    /// Concurrent workers (requests in flight), sharing one keep-alive HTTP client.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long to send requests, seconds. Requests still in flight then get one more
    /// second to finish; those that do not are counted under "timeout".
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many requests in total (even before --duration is up).
    #[arg(long)]
    requests: Option<u64>,
}

/// What one worker saw.
#[derive(Default)]
struct Tally {
    by_status: BTreeMap<String, u64>,
    latencies_us: Vec<u64>,
    first_error: Option<String>,
}

impl LoadArgs {
    /// Runs the load; prints `{requests, ok, by_status, throughput, p50_ms, p95_ms,
    /// p99_ms, ...}`. CSRs are built and signed before the clock starts.
    pub async fn run(self) -> Result<Value, Failure> {
        if self.concurrency == 0 {
            return Err(Failure::new(
                "invalid_concurrency",
                "--concurrency must be at least 1",
            ));
        }
        if !(self.duration.is_finite() && self.duration > 0.0) {
            return Err(Failure::new(
                "invalid_duration",
                "--duration must be a positive number of seconds",
            ));
        }
        let base = self.url.trim_end_matches('/');
        let endpoint = Url::parse(&format!("{base}/new"))
            .map_err(|e| Failure::new("invalid_url", format!("--url {}: {e}", self.url)))?;
        let fleet = self.fleet.clone();
        let headers = tokio::task::spawn_blocking(move || prebuild_headers(&fleet))
            .await
            .map_err(|e| Failure::new("internal", format!("the CSR builder stopped: {e}")))??;
        let headers = Arc::new(headers);

        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(self.concurrency)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Failure::new("internal", format!("cannot build the HTTP client: {e}")))?;

        let started = Instant::now();
        let deadline = started + Duration::from_secs_f64(self.duration);
        let next = Arc::new(AtomicU64::new(0));
        let limit = self.requests;
        let workers: Vec<_> = (0..self.concurrency)
            .map(|_| {
                let client = client.clone();
                let endpoint = endpoint.clone();
                let headers = Arc::clone(&headers);
                let next = Arc::clone(&next);
                tokio::spawn(async move {
                    worker(client, endpoint, headers, next, limit, deadline).await
                })
            })
            .collect();
        let mut total = Tally::default();
        for handle in workers {
            let tally = handle
                .await
                .map_err(|e| Failure::new("internal", format!("a load worker stopped: {e}")))?;
            for (status, count) in tally.by_status {
                *total.by_status.entry(status).or_default() += count;
            }
            total.latencies_us.extend(tally.latencies_us);
            if total.first_error.is_none() {
                total.first_error = tally.first_error;
            }
        }
        let elapsed = started.elapsed().as_secs_f64();

        let requests: u64 = total.by_status.values().sum();
        let ok = total.by_status.get("200").copied().unwrap_or(0);
        total.latencies_us.sort_unstable();
        let percentile = |p: f64| percentile_ms(&total.latencies_us, p);
        let mut report = json!({
            "requests": requests,
            "ok": ok,
            "by_status": total.by_status,
            "throughput": round(ok as f64 / elapsed.max(1e-9), 1),
            "p50_ms": percentile(50.0),
            "p95_ms": percentile(95.0),
            "p99_ms": percentile(99.0),
            "elapsed_s": round(elapsed, 3),
            "concurrency": self.concurrency,
            "devices": headers.len(),
        });
        if let (Some(error), Some(object)) = (total.first_error, report.as_object_mut()) {
            object.insert("first_error".into(), Value::String(error));
        }
        Ok(report)
    }
}

/// One `device-csr` header per device of the fleet, signed now so the run measures
/// only the service.
fn prebuild_headers(fleet: &Path) -> Result<Vec<HeaderValue>, Failure> {
    let keys = files_with_suffix(fleet, KEY_SUFFIX)?;
    if keys.is_empty() {
        return Err(Failure::new(
            "empty_fleet",
            format!(
                "{} holds no *.key.pem: make one with `provisioner device fleet`",
                fleet.display()
            ),
        ));
    }
    let progress = if keys.len() >= 1_000 {
        ProgressBar::with_draw_target(Some(keys.len() as u64), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .min(keys.len());
    let chunk = keys.len().div_ceil(threads);
    let progress_ref = &progress;
    let parts: Vec<Result<Vec<HeaderValue>, Failure>> = std::thread::scope(|scope| {
        let handles: Vec<_> = keys
            .chunks(chunk)
            .map(|paths| {
                scope.spawn(move || {
                    paths
                        .iter()
                        .map(|path| {
                            let header = header_for(path);
                            progress_ref.inc(1);
                            header
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Failure::new("internal", "a CSR builder panicked")))
            })
            .collect()
    });
    progress.finish_and_clear();
    let mut headers = Vec::with_capacity(keys.len());
    for part in parts {
        headers.extend(part?);
    }
    Ok(headers)
}

fn header_for(path: &Path) -> Result<HeaderValue, Failure> {
    let id = device_id_from_key_path(path).ok_or_else(|| {
        Failure::new(
            "invalid_fleet",
            format!("cannot name the device of {}", path.display()),
        )
    })?;
    let pem = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            "invalid_fleet",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let key = key_pair_from_pem(&pem)
        .map_err(|e| Failure::new("invalid_fleet", format!("{}: {e}", path.display())))?;
    let header = csr_header(&build_csr_der(&key, &id)?);
    HeaderValue::from_str(&header)
        .map_err(|e| Failure::new("internal", format!("the header for {id} is invalid: {e}")))
}

async fn worker(
    client: reqwest::Client,
    endpoint: Url,
    headers: Arc<Vec<HeaderValue>>,
    next: Arc<AtomicU64>,
    limit: Option<u64>,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let hard_deadline = deadline + GRACE;
    let count = headers.len() as u64;
    loop {
        if Instant::now() >= deadline {
            break;
        }
        let index = next.fetch_add(1, Ordering::Relaxed);
        if limit.is_some_and(|limit| index >= limit) {
            break;
        }
        let Ok(slot) = usize::try_from(index % count.max(1)) else {
            break;
        };
        let Some(header) = headers.get(slot) else {
            break;
        };
        let sent = Instant::now();
        let exchange = async {
            let response = client
                .post(endpoint.clone())
                .header("device-csr", header.clone())
                .send()
                .await?;
            let status = response.status();
            // Read the body so the connection goes back to the pool.
            response.bytes().await?;
            Ok::<_, reqwest::Error>(status)
        };
        match tokio::time::timeout_at(hard_deadline, exchange).await {
            Ok(Ok(status)) => {
                let latency = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                tally.latencies_us.push(latency);
                *tally
                    .by_status
                    .entry(status.as_u16().to_string())
                    .or_default() += 1;
            }
            Ok(Err(error)) => {
                *tally.by_status.entry("error".into()).or_default() += 1;
                if tally.first_error.is_none() {
                    tally.first_error = Some(error_chain(&error));
                }
            }
            Err(_) => {
                *tally.by_status.entry("timeout".into()).or_default() += 1;
                break;
            }
        }
    }
    tally
}

fn error_chain(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

/// Nearest-rank percentile of sorted microsecond latencies, in milliseconds.
fn percentile_ms(sorted_us: &[u64], p: f64) -> Value {
    if sorted_us.is_empty() {
        return Value::Null;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_us.len()) - 1;
    json!(round(sorted_us[index] as f64 / 1000.0, 3))
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile_ms(&sorted, 50.0), json!(50.0));
        assert_eq!(percentile_ms(&sorted, 99.0), json!(99.0));
        assert_eq!(percentile_ms(&[], 50.0), Value::Null);
    }
}
