//! `provisioner device provision`: one device asks for its certificate.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use provisioner_core::DeviceIdRule;
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::{json, Value};

use super::pki::{
    build_csr_der, certificate_fields, certificate_id, csr_header, device_id_from_key_path,
    split_certificates, write_private, DeviceKeyPair, CERT_SUFFIX, CHAIN_SUFFIX, KEY_SUFFIX,
};
use super::Failure;

/// How the certificate is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Delivery {
    /// Latent retrieval: the answer is a short-lived signed URL the device then fetches.
    Url,
}

/// Arguments of `provisioner device provision`.
#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// The provisioning endpoint's base URL (`POST {URL}/new`).
    #[arg(long)]
    url: String,
    /// The device's private key (PKCS#8 or SEC1 PEM): the simulated secure element.
    #[arg(long)]
    key: PathBuf,
    /// The device id (the CSR's CN); default: the key file's name without `.key.pem`.
    #[arg(long)]
    device_id: Option<String>,
    /// Where to store `<id>.cert.pem`, `<id>.chain.pem` and `<id>.key.pem`.
    #[arg(long)]
    out: PathBuf,
    /// Ask for latent delivery (`?delivery=url`) and fetch the retrieval URL.
    #[arg(long, value_enum)]
    delivery: Option<Delivery>,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// How often to retry fetching the retrieval URL (network errors, 404, 429, 5xx).
    #[arg(long, default_value_t = 8)]
    retries: u32,
}

/// The service's 200 answer with the certificate.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Issued {
    certificate_pem: String,
    #[serde(default)]
    ca_chain_pem: String,
    #[serde(default)]
    certificate_id: Option<String>,
    #[serde(default)]
    not_after: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
}

/// The service's 200 answer with latent delivery.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Latent {
    retrieval_url: String,
    #[serde(default)]
    expires_at: Option<String>,
}

/// The service's error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
}

impl ProvisionArgs {
    /// Provisions the device; prints `{deviceId, certificateId, notAfter, endpoint}`.
    pub async fn run(self) -> Result<Value, Failure> {
        let key = DeviceKeyPair::load(&self.key)?;
        let device_id = match &self.device_id {
            Some(id) => id.clone(),
            None => device_id_from_key_path(&self.key).ok_or_else(|| {
                Failure::new(
                    "invalid_device_id",
                    "give --device-id (the key file's name does not end with .key.pem)",
                )
            })?,
        };
        DeviceIdRule::default()
            .check(&device_id)
            .map_err(|e| Failure::new("invalid_device_id", e.to_string()))?;
        let header = csr_header(&build_csr_der(&key.key_pair, &device_id)?);

        let base = Url::parse(self.url.trim_end_matches('/'))
            .map_err(|e| Failure::new("invalid_url", format!("--url {}: {e}", self.url)))?;
        let mut new_url = Url::parse(&format!("{}/new", base.as_str().trim_end_matches('/')))
            .map_err(|e| Failure::new("invalid_url", format!("--url {}: {e}", self.url)))?;
        if self.delivery == Some(Delivery::Url) {
            new_url.query_pairs_mut().append_pair("delivery", "url");
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(self.timeout.max(1)))
            .build()
            .map_err(|e| Failure::new("internal", format!("cannot build the HTTP client: {e}")))?;

        let response = client
            .post(new_url.clone())
            .header("device-csr", header)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| network_failure(&new_url, &e))?;
        if !response.status().is_success() {
            return Err(http_failure(response).await);
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| network_failure(&new_url, &e))?;

        let issued = if self.delivery == Some(Delivery::Url) {
            let latent: Latent = serde_json::from_slice(&body).map_err(|e| {
                unexpected(format!(
                    "the answer is not {{retrievalUrl, expiresAt}} JSON ({e}): {}",
                    snippet(&body)
                ))
            })?;
            let url = new_url.join(&latent.retrieval_url).map_err(|e| {
                unexpected(format!(
                    "the retrievalUrl {:?} is not a URL: {e}",
                    latent.retrieval_url
                ))
            })?;
            tracing::debug!(%url, expires_at = ?latent.expires_at, "fetching the certificate");
            self.retrieve(&client, url).await?
        } else {
            serde_json::from_slice::<Issued>(&body).map_err(|e| {
                unexpected(format!(
                    "the answer is not {{certificatePem, caChainPem, ...}} JSON ({e}): {}",
                    snippet(&body)
                ))
            })?
        };
        self.store(&device_id, &key, issued)
    }

    /// Fetches the retrieval URL, retrying while the certificate may still be on its way.
    async fn retrieve(&self, client: &reqwest::Client, url: Url) -> Result<Issued, Failure> {
        let mut attempt = 0u32;
        loop {
            let outcome = client.get(url.clone()).send().await;
            let retry_in = match outcome {
                Ok(response) if response.status().is_success() => {
                    let body = response
                        .text()
                        .await
                        .map_err(|e| network_failure(&url, &e))?;
                    return issued_from_retrieval(&body);
                }
                Ok(response) => {
                    let status = response.status();
                    let retryable = matches!(status.as_u16(), 404 | 408 | 409 | 425 | 429)
                        || status.is_server_error();
                    let failure = http_failure(response).await;
                    if !retryable || attempt >= self.retries {
                        return Err(failure);
                    }
                    failure
                        .retry_after
                        .map(|s| Duration::from_secs(s.min(30)))
                        .unwrap_or_else(|| backoff(attempt))
                }
                Err(e) => {
                    if attempt >= self.retries {
                        return Err(network_failure(&url, &e));
                    }
                    backoff(attempt)
                }
            };
            attempt += 1;
            tracing::debug!(attempt, ?retry_in, "retrieval not ready; retrying");
            tokio::time::sleep(retry_in).await;
        }
    }

    /// Checks the certificate is for this key and writes the device's files.
    fn store(
        &self,
        device_id: &str,
        key: &DeviceKeyPair,
        issued: Issued,
    ) -> Result<Value, Failure> {
        let leaf = split_certificates(&issued.certificate_pem)
            .map_err(unexpected)?
            .into_iter()
            .next()
            .ok_or_else(|| unexpected("certificatePem holds no CERTIFICATE block"))?;
        let fields = certificate_fields(&leaf.der).map_err(unexpected)?;
        if fields.public_key != key.public_point() {
            return Err(Failure::new(
                "certificate_mismatch",
                "the certificate is for another public key than the device's: not stored",
            ));
        }
        let chain = split_certificates(&issued.ca_chain_pem).map_err(unexpected)?;
        let chain_pem: String = chain.iter().map(|c| c.pem.as_str()).collect();

        let io = |path: &Path| {
            let path = path.display().to_string();
            move |e: std::io::Error| Failure::new("io_failed", format!("cannot write {path}: {e}"))
        };
        std::fs::create_dir_all(&self.out).map_err(io(&self.out))?;
        let cert_path = self.out.join(format!("{device_id}{CERT_SUFFIX}"));
        let chain_path = self.out.join(format!("{device_id}{CHAIN_SUFFIX}"));
        let key_path = self.out.join(format!("{device_id}{KEY_SUFFIX}"));
        // The key first: never leave a certificate beside a key it does not match.
        let write_key = match std::fs::read(&key_path) {
            Ok(existing) if existing == key.pem.as_bytes() => false,
            Ok(_) => {
                return Err(Failure::new(
                    "key_conflict",
                    format!(
                        "{} already holds another key: nothing was written",
                        key_path.display()
                    ),
                ))
            }
            Err(_) => true,
        };
        if write_key {
            write_private(&key_path, key.pem.as_bytes(), true).map_err(io(&key_path))?;
        }
        std::fs::write(&cert_path, &leaf.pem).map_err(io(&cert_path))?;
        std::fs::write(&chain_path, &chain_pem).map_err(io(&chain_path))?;

        Ok(json!({
            "deviceId": device_id,
            "certificateId": issued.certificate_id.unwrap_or_else(|| certificate_id(&leaf.der)),
            "notAfter": issued.not_after.unwrap_or(fields.not_after),
            "endpoint": issued.endpoint,
        }))
    }
}

/// The retrieval URL's body: the PEM chain (certificate first), or the JSON answer.
fn issued_from_retrieval(body: &str) -> Result<Issued, Failure> {
    if body.trim_start().starts_with('{') {
        return serde_json::from_str(body).map_err(|e| {
            unexpected(format!(
                "the retrieved JSON is not {{certificatePem, ...}} ({e})"
            ))
        });
    }
    let mut blocks = split_certificates(body).map_err(unexpected)?.into_iter();
    let leaf = blocks
        .next()
        .ok_or_else(|| unexpected("the retrieved document holds no CERTIFICATE block"))?;
    Ok(Issued {
        certificate_pem: leaf.pem,
        ca_chain_pem: blocks.map(|c| c.pem).collect(),
        certificate_id: None,
        not_after: None,
        endpoint: None,
    })
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << attempt.min(4)))
}

fn unexpected(message: impl Into<String>) -> Failure {
    Failure::new("unexpected_answer", message)
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A request that got no HTTP answer.
pub fn network_failure(url: &Url, error: &reqwest::Error) -> Failure {
    let code = if error.is_timeout() {
        "timeout"
    } else {
        "unreachable"
    };
    let mut message = format!("{url}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    Failure::new(code, message)
}

/// An HTTP error answer, as the service's `{error, message}` plus `status`
/// (and `retryAfter` from the `Retry-After` header).
pub async fn http_failure(response: reqwest::Response) -> Failure {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = response.bytes().await.unwrap_or_default();
    let mut failure = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(parsed) => Failure::new(parsed.error, parsed.message),
        Err(_) => Failure::new(
            format!("http_{}", status.as_u16()),
            format!(
                "{status} with a body that is not {{error, message}} JSON: {}",
                snippet(&body)
            ),
        ),
    };
    failure.status = Some(status.as_u16());
    failure.retry_after = retry_after;
    if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        match retry_after {
            Some(seconds) => failure
                .message
                .push_str(&format!(" (Retry-After: try again in {seconds} s)")),
            None => failure
                .message
                .push_str(" (no Retry-After given: try again later)"),
        }
    }
    failure
}
