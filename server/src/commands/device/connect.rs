//! `provisioner device connect`: a provisioned device meets the MQTT endpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use rumqttc::tokio_rustls::rustls::{
    self,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    ClientConfig, RootCertStore,
};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Outgoing, Packet, QoS,
    StateError, TlsConfiguration, Transport,
};
use serde_json::{json, Value};

use super::pki::{
    files_with_suffix, key_pair_from_pem, split_certificates, PemCertificate, CERT_SUFFIX,
    CHAIN_SUFFIX, KEY_SUFFIX,
};
use super::Failure;

/// Arguments of `provisioner device connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The MQTT endpoint, `HOST:PORT` (TLS; e.g. `127.0.0.1:8883`, `[::1]:8883`).
    #[arg(long)]
    mqtt: String,
    /// The device directory: `<id>.cert.pem`, `<id>.chain.pem`, `<id>.key.pem`.
    #[arg(long)]
    dir: PathBuf,
    /// The device id; default: the only `*.cert.pem` in --dir.
    #[arg(long)]
    device_id: Option<String>,
    /// Trust these CA certificates (PEM) for the broker instead of the device's chain
    /// file (AWS IoT Core's endpoint, for one, presents an Amazon Trust Services chain).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

/// The device's TLS credentials, read and checked before any connection.
struct Credentials {
    config: Arc<ClientConfig>,
}

impl ConnectArgs {
    /// Connects, publishes once with QoS 1, and reports what the broker said.
    pub async fn run(self) -> Result<Value, Failure> {
        let (host, port) = parse_endpoint(&self.mqtt)?;
        let device_id = match &self.device_id {
            Some(id) => id.clone(),
            None => only_device(&self.dir)?,
        };
        let credentials = Credentials::load(&self.dir, &device_id, self.ca_file.as_deref())?;
        let timeout = Duration::from_secs_f64(self.timeout.clamp(0.1, 3600.0));
        let topic = format!("dt/{device_id}/hello");

        let mut options = MqttOptions::new(device_id.clone(), host.clone(), port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_transport(Transport::Tls(TlsConfiguration::Rustls(credentials.config)));
        let (client, mut eventloop) = AsyncClient::new(options, 10);
        eventloop
            .network_options
            .set_connection_timeout(timeout.as_secs().max(1));

        let payload = json!({ "deviceId": device_id, "hello": true }).to_string();
        client
            .publish(topic.clone(), QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| Failure::new("internal", format!("cannot queue the message: {e}")))?;

        let started = Instant::now();
        let exchange = async {
            let mut connected = false;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        if ack.code != ConnectReturnCode::Success {
                            return Err(refused(ack.code));
                        }
                        connected = true;
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(classify(&e, connected, &host, port)),
                }
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(())) => {}
            Ok(Err(failure)) => return Err(failure),
            Err(_) => {
                return Err(Failure::new(
                    "timeout",
                    format!(
                        "no CONNACK and PUBACK from {host}:{port} within {:.1} s",
                        timeout.as_secs_f64()
                    ),
                ))
            }
        }
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;

        // Leave politely; the result is already known.
        if client.disconnect().await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            })
            .await;
        }

        Ok(json!({
            "deviceId": device_id,
            "endpoint": format!("{host}:{port}"),
            "connected": true,
            "published": topic,
            "elapsedMs": (elapsed_ms * 10.0).round() / 10.0,
        }))
    }
}

impl Credentials {
    fn load(dir: &Path, device_id: &str, ca_file: Option<&Path>) -> Result<Self, Failure> {
        let cert_path = dir.join(format!("{device_id}{CERT_SUFFIX}"));
        let chain_path = dir.join(format!("{device_id}{CHAIN_SUFFIX}"));
        let key_path = dir.join(format!("{device_id}{KEY_SUFFIX}"));

        let leaf = read_certificates(&cert_path)?;
        let chain = read_certificates(&chain_path)?;
        let anchors = match ca_file {
            Some(path) => read_certificates(path)?,
            None => chain.clone(),
        };
        let key_pem = std::fs::read_to_string(&key_path)
            .map_err(|e| invalid_files(format!("cannot read {}: {e}", key_path.display())))?;
        let key = key_pair_from_pem(&key_pem)
            .map_err(|e| invalid_files(format!("{}: {e}", key_path.display())))?;

        // Trust anchors: every certificate of the chain (or --ca-file). The root alone
        // would do when the broker sends its intermediate; trusting the issuing
        // intermediate too also works with a broker that sends only its own certificate.
        let mut roots = RootCertStore::empty();
        for certificate in &anchors {
            roots
                .add(CertificateDer::from(certificate.der.clone()))
                .map_err(|e| invalid_files(format!("a trust anchor is unusable: {e}")))?;
        }

        // Client chain: the device certificate, then the chain without its root.
        let intermediates = match chain.len() {
            0 | 1 => &chain[..],
            n => &chain[..n - 1],
        };
        let presented: Vec<CertificateDer<'static>> = leaf
            .iter()
            .take(1)
            .chain(intermediates)
            .map(|c| CertificateDer::from(c.der.clone()))
            .collect();
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialized_der().to_vec()));
        let config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(presented, private)
            .map_err(|e: rustls::Error| {
                invalid_files(format!(
                    "the certificate and key in {} do not make a client identity: {e}",
                    dir.display()
                ))
            })?;
        Ok(Self {
            config: Arc::new(config),
        })
    }
}

fn read_certificates(path: &Path) -> Result<Vec<PemCertificate>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid_files(format!("cannot read {}: {e}", path.display())))?;
    let certificates =
        split_certificates(&text).map_err(|e| invalid_files(format!("{}: {e}", path.display())))?;
    if certificates.is_empty() {
        return Err(invalid_files(format!(
            "{} holds no CERTIFICATE block",
            path.display()
        )));
    }
    Ok(certificates)
}

fn invalid_files(message: String) -> Failure {
    Failure::new("invalid_files", message)
}

/// The one device of a directory holding exactly one `*.cert.pem`.
fn only_device(dir: &Path) -> Result<String, Failure> {
    let certs = files_with_suffix(dir, CERT_SUFFIX)?;
    match certs.as_slice() {
        [one] => one
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(CERT_SUFFIX))
            .map(str::to_owned)
            .ok_or_else(|| invalid_files(format!("cannot name the device of {}", one.display()))),
        [] => Err(invalid_files(format!(
            "{} holds no *.cert.pem: provision the device first",
            dir.display()
        ))),
        many => Err(Failure::new(
            "ambiguous_device",
            format!(
                "{} holds {} certificates: choose one with --device-id",
                dir.display(),
                many.len()
            ),
        )),
    }
}

/// `HOST:PORT`, with `[v6]:PORT` for IPv6 addresses.
fn parse_endpoint(endpoint: &str) -> Result<(String, u16), Failure> {
    let bad = || {
        Failure::new(
            "invalid_endpoint",
            format!("--mqtt {endpoint:?}: expected HOST:PORT, e.g. 127.0.0.1:8883"),
        )
    };
    let (host, port) = endpoint.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

fn refused(code: ConnectReturnCode) -> Failure {
    Failure::new(
        "connect_refused",
        format!("the broker refused the connection: CONNACK {code:?}"),
    )
}

/// Names what went wrong, from the event loop's error.
fn classify(error: &ConnectionError, connected: bool, host: &str, port: u16) -> Failure {
    let io_error = match error {
        ConnectionError::ConnectionRefused(code) => return refused(*code),
        ConnectionError::Tls(e) => {
            let mut message = format!("the TLS handshake with {host}:{port} failed: {e}");
            if message.contains("invalid peer certificate") {
                message.push_str(
                    " (the broker's certificate does not chain to the trusted CAs: the chain file, or --ca-file)",
                );
            }
            return Failure::new("tls_failed", message);
        }
        ConnectionError::NetworkTimeout => {
            return Failure::new("timeout", format!("{host}:{port} did not answer in time"))
        }
        ConnectionError::Io(e) | ConnectionError::MqttState(StateError::Io(e)) => Some(e),
        _ => None,
    };
    let Some(io_error) = io_error else {
        return Failure::new(
            "mqtt_failed",
            format!("the MQTT exchange with {host}:{port} failed: {error}"),
        );
    };
    // rustls reports TLS failures (certificate errors, alerts from the broker) as
    // InvalidData I/O errors wrapping a rustls::Error.
    if let Some(tls) = io_error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return Failure::new(
            "tls_failed",
            format!("TLS with {host}:{port} failed: {tls}"),
        );
    }
    use std::io::ErrorKind;
    let unreachable = matches!(
        io_error.kind(),
        ErrorKind::ConnectionRefused
            | ErrorKind::AddrNotAvailable
            | ErrorKind::NotFound
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
    ) || io_error.to_string().contains("lookup address");
    match io_error.kind() {
        _ if unreachable => Failure::new(
            "unreachable",
            format!("cannot reach {host}:{port}: {io_error}"),
        ),
        ErrorKind::TimedOut => Failure::new(
            "timeout",
            format!("{host}:{port} did not answer in time: {io_error}"),
        ),
        _ if !connected => Failure::new(
            "connect_refused",
            format!(
                "{host}:{port} closed the connection before accepting it (a broker refusing the certificate does this): {io_error}"
            ),
        ),
        _ => Failure::new(
            "connection_lost",
            format!("the connection to {host}:{port} broke before the PUBACK: {io_error}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            parse_endpoint("127.0.0.1:8883").unwrap(),
            ("127.0.0.1".to_owned(), 8883)
        );
        assert_eq!(parse_endpoint("[::1]:1").unwrap(), ("::1".to_owned(), 1));
        assert!(parse_endpoint("localhost").is_err());
        assert!(parse_endpoint(":8883").is_err());
    }
}
