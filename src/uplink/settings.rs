//! The uplink's settings, resolved once from the `[uplink]` config section
//! (plus a `--broker` override): files read, keys parsed, every problem named
//! by its key path before anything connects.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ed25519_dalek::VerifyingKey;
use rumqttc::v5::mqttbytes::v5::LastWill;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::MqttOptions;
use rumqttc::{TlsConfiguration, Transport};

use super::command::parse_public_key;
use super::payload::StatusPayload;
use super::tls::read_pem;
use super::topics::Topics;
use crate::config::Config;

/// Default backlog quota when `[uplink] outbox_max_mb` is absent.
pub const DEFAULT_QUOTA_MB: u32 = 512;
/// Default seconds between heartbeats.
pub const DEFAULT_HEARTBEAT_S: u32 = 30;
/// Largest packet the gateway accepts from the broker (commands are ≤ 256 KiB).
const MAX_INCOMING_PACKET: u32 = 1024 * 1024;
/// Where Debian keeps the system CA bundle, for `mqtts://` without `ca_file`.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// `mqtt://host[:port]` or `mqtts://host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl std::str::FromStr for Broker {
    type Err = String;
    fn from_str(url: &str) -> Result<Broker, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtts://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("mqtt://") {
            (false, rest)
        } else {
            return Err(format!(
                "expected mqtt://host:port or mqtts://host:port, got {url:?}"
            ));
        };
        let rest = rest.trim_end_matches('/');
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed '[' in IPv6 address"))?;
            let port = after.strip_prefix(':');
            (host.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() || host.contains('/') || host.contains('@') {
            return Err(format!("{url:?}: expected a host name or address"));
        }
        let port = match port {
            None => default_port,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{url:?}: port {p:?} is not 1..=65535"))?,
        };
        Ok(Broker { tls, host, port })
    }
}

impl std::fmt::Display for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Delays the link works with; tests shorten them.
#[derive(Clone, Debug)]
pub struct UplinkTiming {
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Re-read the outbox this often even without a wake-up (events appended
    /// by another process).
    pub poll_interval: Duration,
    pub quota_interval: Duration,
    pub heartbeat: Duration,
    pub connect_timeout: Duration,
}

impl Default for UplinkTiming {
    fn default() -> UplinkTiming {
        UplinkTiming {
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            quota_interval: Duration::from_secs(10),
            heartbeat: Duration::from_secs(DEFAULT_HEARTBEAT_S as u64),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Clone)]
pub struct UplinkSettings {
    pub topics: Topics,
    pub broker: Option<Broker>,
    /// For `mqtts://`: the station's CA and this gateway's certificate.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub credentials: Option<(String, String)>,
    pub station_keys: Vec<VerifyingKey>,
    pub quota_bytes: u64,
    pub timing: UplinkTiming,
    pub db_path: PathBuf,
    pub data_dir: PathBuf,
    /// The device secret (`Config::device_key_path`), which keys the replies.
    pub device_key: PathBuf,
    /// Which face snapshots are published with their event (`[uplink] face_snapshots`).
    pub face_snapshots: crate::config::FaceSnapshots,
    pub client_id: String,
    /// Stop once the outbox is empty (`gatehouse uplink drain --until-empty`).
    pub exit_when_drained: bool,
}

impl std::fmt::Debug for UplinkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UplinkSettings")
            .field("topics", &self.topics)
            .field("broker", &self.broker)
            .field("tls", &self.tls.is_some())
            .field("username", &self.credentials.as_ref().map(|c| &c.0))
            .field("station_keys", &self.station_keys.len())
            .field("quota_bytes", &self.quota_bytes)
            .finish_non_exhaustive()
    }
}

impl UplinkSettings {
    /// Resolves `[uplink]`; `broker_override` (the `--broker` flag) wins over
    /// `uplink.broker`.
    pub fn from_config(config: &Config, broker_override: Option<&str>) -> Result<UplinkSettings> {
        let u = &config.uplink;
        let topics = Topics::new(&config.site.id, &config.site.gateway_id)?;
        let broker = match broker_override {
            Some(url) => Some(
                url.parse::<Broker>()
                    .map_err(anyhow::Error::msg)
                    .context("--broker")?,
            ),
            None => u
                .broker
                .as_deref()
                .map(|url| url.parse::<Broker>())
                .transpose()
                .map_err(anyhow::Error::msg)
                .context("uplink.broker")?,
        };
        let tls = broker.as_ref().is_some_and(|b| b.tls);
        let ca_pem = match (&u.ca_file, tls) {
            (Some(path), _) => Some(read_pem(path, "uplink.ca_file", "CERTIFICATE")?),
            (None, true) => Some(read_pem(
                Path::new(SYSTEM_CA_BUNDLE),
                "uplink.ca_file (not set; the system CA bundle)",
                "CERTIFICATE",
            )?),
            (None, false) => None,
        };
        let client_auth = match (&u.client_cert, &u.client_key) {
            (Some(cert), Some(key)) => Some((
                read_pem(cert, "uplink.client_cert", "CERTIFICATE")?,
                read_pem(key, "uplink.client_key", "PRIVATE KEY")?,
            )),
            (None, None) => None,
            _ => bail!("uplink.client_cert and uplink.client_key must be set together"),
        };
        let tls = match &ca_pem {
            Some(ca) if tls => Some(
                super::tls::client_config(
                    ca,
                    client_auth
                        .as_ref()
                        .map(|(c, k)| (c.as_slice(), k.as_slice())),
                )
                .context("uplink.ca_file / uplink.client_cert / uplink.client_key")?,
            ),
            _ => None,
        };
        let credentials = match (&u.username, &u.password_file) {
            (Some(user), Some(file)) => {
                let password = std::fs::read_to_string(file).with_context(|| {
                    format!("uplink.password_file: cannot read {}", file.display())
                })?;
                Some((
                    user.clone(),
                    password.trim_end_matches(['\n', '\r']).to_string(),
                ))
            }
            (Some(user), None) => Some((user.clone(), String::new())),
            (None, Some(_)) => bail!("uplink.password_file is set but uplink.username is not"),
            (None, None) => None,
        };
        let station_keys = u
            .station_keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                parse_public_key(k).map_err(|e| anyhow::anyhow!("uplink.station_keys[{i}]: {e}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let quota_mb = u.outbox_max_mb.unwrap_or(DEFAULT_QUOTA_MB);
        if quota_mb == 0 {
            bail!("uplink.outbox_max_mb: expected at least 1");
        }
        let heartbeat_s = u.heartbeat_s.unwrap_or(DEFAULT_HEARTBEAT_S);
        if !(5..=3600).contains(&heartbeat_s) {
            bail!("uplink.heartbeat_s: expected 5..=3600, got {heartbeat_s}");
        }
        let timing = UplinkTiming {
            heartbeat: Duration::from_secs(heartbeat_s as u64),
            ..UplinkTiming::default()
        };
        Ok(UplinkSettings {
            client_id: format!("gatehouse-{}-{}", config.site.id, config.site.gateway_id),
            topics,
            broker,
            tls,
            credentials,
            station_keys,
            quota_bytes: quota_mb as u64 * 1024 * 1024,
            timing,
            db_path: config.database_path(),
            data_dir: config.data_dir().to_path_buf(),
            device_key: config.device_key_path(),
            face_snapshots: config.uplink.face_snapshots,
            exit_when_drained: false,
        })
    }

    /// MQTT v5 options for one connection: clean start (the outbox, not the
    /// broker session, is what survives), a retained `offline` last will, TLS
    /// and credentials when configured.
    pub fn mqtt_options(&self, broker: &Broker) -> MqttOptions {
        let mut o = MqttOptions::new(&self.client_id, &broker.host, broker.port);
        o.set_keep_alive(Duration::from_secs(15));
        o.set_clean_start(true);
        o.set_connection_timeout(self.timing.connect_timeout.as_secs().max(1));
        o.set_max_packet_size(Some(MAX_INCOMING_PACKET));
        let offline = serde_json::to_vec(&StatusPayload::offline(&self.topics)).unwrap_or_default();
        o.set_last_will(LastWill::new(
            self.topics.status(),
            offline,
            QoS::AtLeastOnce,
            true,
            None,
        ));
        if let (true, Some(tls)) = (broker.tls, &self.tls) {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                tls.clone(),
            )));
        }
        if let Some((user, password)) = &self.credentials {
            o.set_credentials(user.clone(), password.clone());
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_broker_urls_with_default_ports() {
        let b: Broker = "mqtts://station.example.cn".parse().unwrap();
        assert_eq!(
            (b.tls, b.host.as_str(), b.port),
            (true, "station.example.cn", 8883)
        );
        let b: Broker = "mqtt://127.0.0.1:1884".parse().unwrap();
        assert_eq!((b.tls, b.port), (false, 1884));
        let b: Broker = "mqtt://[::1]:1883".parse().unwrap();
        assert_eq!(b.host, "::1");
        assert_eq!(b.to_string(), "mqtt://[::1]:1883");
        assert!("http://x"
            .parse::<Broker>()
            .unwrap_err()
            .contains("mqtt://"));
        assert!("mqtt://x:0".parse::<Broker>().unwrap_err().contains("port"));
        assert!("mqtt://".parse::<Broker>().is_err());
    }

    #[test]
    fn names_the_key_of_a_bad_station_key_or_missing_file() {
        let mut config = Config::demo();
        config.uplink.station_keys = vec!["not-a-key".into()];
        let err = UplinkSettings::from_config(&config, None).unwrap_err();
        assert!(
            format!("{err:#}").contains("uplink.station_keys[0]"),
            "{err:#}"
        );
        let mut config = Config::demo();
        config.uplink.ca_file = Some("/nonexistent/ca.pem".into());
        let err = UplinkSettings::from_config(&config, Some("mqtts://h:8883")).unwrap_err();
        assert!(format!("{err:#}").contains("uplink.ca_file"), "{err:#}");
        let err = UplinkSettings::from_config(&Config::demo(), Some("tcp://h")).unwrap_err();
        assert!(format!("{err:#}").contains("--broker"), "{err:#}");
    }
}
