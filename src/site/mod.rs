//! One register for every gateway of a site (issue 17): the registry
//! publishes its signed change log on the site's MQTT broker; each gate
//! verifies, applies in order and reports how far it got; a gate that was
//! away catches up from its last seq, or from a snapshot when the log was
//! compacted past it.
//!
//! The database side (what an entry is, capturing, refusing, applying) is
//! `store::site_log`; this module is the transport and the checks (`wire`),
//! the registry's key (`keys`) and the two tasks (`registry`, `gate`).
//! A gate decides from its local register whatever the broker or the
//! registry does: nothing here is on the path of a decision.

pub mod gate;
pub mod keys;
pub mod registry;
pub mod shared;
pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ed25519_dalek::VerifyingKey;
use rumqttc::v5::MqttOptions;
use rumqttc::{TlsConfiguration, Transport};
use tokio::sync::{watch, Notify};

use crate::config::{Config, SiteRole};
use crate::store::events::{EventKind, EventRecord, NewEvent};
use crate::store::site_gates::GateSeen;
use crate::store::Writer;
use crate::uplink::Broker;

/// Largest message the site's clients accept: a snapshot of a large register.
const MAX_PACKET: u32 = 256 * 1024 * 1024;

/// Delays of the site tasks (short ones in tests).
#[derive(Clone, Debug)]
pub struct SiteTiming {
    /// How often the registry looks for new entries.
    pub poll: Duration,
    /// Wait before reconnecting to the broker.
    pub reconnect: Duration,
    /// A gate that asked for a catch-up and heard nothing asks again after this.
    pub catchup_timeout: Duration,
}

impl Default for SiteTiming {
    fn default() -> Self {
        SiteTiming {
            poll: Duration::from_millis(100),
            reconnect: Duration::from_secs(2),
            catchup_timeout: Duration::from_secs(10),
        }
    }
}

/// What the site tasks need from `[site]`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub role: SiteRole,
    pub site: String,
    pub gateway: String,
    pub broker: Broker,
    /// For an `mqtts://` broker: trust only `site.ca_file`, and present the
    /// client certificate when one is set.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The gate's pinned registry key.
    pub registry_key: Option<VerifyingKey>,
    /// The registry's pinned key of each gate (`[site] gate_keys`): a gate's
    /// reports are accepted only signed with it.
    pub gate_keys: HashMap<String, VerifyingKey>,
    pub timing: SiteTiming,
    /// Most entries in one catch-up answer (the gate asks again for more).
    pub catchup_batch: usize,
}

impl Settings {
    /// `[site]` resolved; None for a standalone gateway.
    pub fn from_config(config: &Config) -> Result<Option<Settings>> {
        let site = &config.site;
        if site.role == SiteRole::Standalone {
            return Ok(None);
        }
        let Some(url) = &site.broker else {
            bail!("site.broker: needed for role {}", site.role.as_str());
        };
        let broker: Broker = url
            .parse()
            .map_err(anyhow::Error::msg)
            .context("site.broker")?;
        let tls = if broker.tls {
            let ca = site.ca_file.as_deref().context(
                "site.ca_file: an mqtts:// site broker needs the CA that signed its certificate",
            )?;
            let client = match (&site.client_cert, &site.client_key) {
                (Some(cert), Some(key)) => Some((
                    ("site.client_cert", cert.as_path()),
                    ("site.client_key", key.as_path()),
                )),
                (None, None) => None,
                _ => bail!("site.client_cert and site.client_key must be set together"),
            };
            Some(crate::uplink::tls::from_files(
                ("site.ca_file", ca),
                client,
            )?)
        } else {
            None
        };
        let registry_key = site
            .registry_key
            .as_deref()
            .map(crate::uplink::command::parse_public_key)
            .transpose()
            .map_err(anyhow::Error::msg)
            .context("site.registry_key")?;
        let gate_keys = site
            .gate_keys
            .iter()
            .map(|(gate, key)| {
                crate::signing::parse_public_key(key)
                    .map(|key| (gate.clone(), key))
                    .map_err(|problem| anyhow::anyhow!("site.gate_keys.{gate}: {problem}"))
            })
            .collect::<Result<HashMap<_, _>>>()?;
        Ok(Some(Settings {
            role: site.role,
            site: site.id.clone(),
            gateway: site.gateway_id.clone(),
            broker,
            tls,
            registry_key,
            gate_keys,
            timing: SiteTiming::default(),
            catchup_batch: 1000,
        }))
    }

    fn mqtt_options(&self) -> MqttOptions {
        let id = format!(
            "gatehouse-site-{}-{}-{}",
            self.site,
            self.role.as_str(),
            self.gateway
        );
        let mut o = MqttOptions::new(id, &self.broker.host, self.broker.port);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_clean_start(true);
        o.set_max_packet_size(Some(MAX_PACKET));
        if let Some(tls) = &self.tls {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                tls.clone(),
            )));
        }
        o
    }
}

/// The warning for a plain `mqtt://` site broker off this machine (`doctor`
/// and the daemon's start say it): the register, face embeddings included,
/// would cross the LAN unencrypted. Not refused: the issue asks for TLS
/// "when the broker offers it", and many sites' brokers do not yet.
pub fn plain_on_the_lan(broker: &Broker) -> Option<String> {
    (!broker.tls && !broker_is_local(broker)).then(|| {
        format!(
            "site broker {broker} is plain MQTT off this machine: the register, face embeddings included, \
             crosses the LAN unencrypted; use mqtts:// with site.ca_file"
        )
    })
}

/// Whether the broker is this machine (its loopback), where plain MQTT
/// never leaves the box. A name other than `localhost` counts as remote.
pub fn broker_is_local(broker: &Broker) -> bool {
    broker.host.eq_ignore_ascii_case("localhost")
        || broker
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What the site link needs of the daemon it runs in: the process's one
/// writer, and the daemon's clock and subscribers for the events it raises
/// or receives (a `site_log_rejected` alarm is stamped like any event; the
/// registry stores its gates' events on the writer and announces them, so the
/// console's live page shows the whole site).
pub trait Host: Send + Sync + 'static {
    /// The process's one writer.
    fn writer(&self) -> Writer;
    /// A new event, stamped with the daemon's trusted clock.
    fn event(&self, kind: EventKind) -> NewEvent;
    /// Hands a stored event to the daemon's subscribers.
    fn event_stored(&self, record: &EventRecord);
    /// Folds what happened at the site's other gateways (passages, failed
    /// guesses) into the daemon's access state (`shared`).
    fn site_shared(&self, items: &[shared::SiteItem]);
}

/// Runs this gateway's part of the site until `shutdown` turns true: the
/// registry's publisher or the gate's receiver, writing through the host's
/// one writer. A gate wakes `applied` after each change it applies, so the
/// daemon reloads its register at once rather than at its next poll.
pub async fn run(
    config: &Config,
    settings: Settings,
    host: Arc<dyn Host>,
    shutdown: watch::Receiver<bool>,
    applied: Arc<Notify>,
) -> Result<()> {
    if let Some(warning) = plain_on_the_lan(&settings.broker) {
        tracing::warn!("{warning}");
    }
    match settings.role {
        SiteRole::Registry => {
            let key = keys::load_or_create(&config.site_signing_key_path())?;
            registry::run(host, settings, key, shutdown).await
        }
        SiteRole::Gate => {
            // The gate signs its reports with its own key, pinned at the registry.
            let key = keys::load_or_create(&config.site_signing_key_path())?;
            gate::run(host, settings, key, shutdown, applied).await
        }
        SiteRole::Standalone => Ok(()),
    }
}

/// One line for `gate status` / `doctor`: role, seq and when the last entry
/// was applied.
pub fn describe(status: &crate::store::site_log::Status) -> String {
    let site = status.site_id.as_deref().unwrap_or("-");
    match status.role.as_str() {
        "registry" => format!(
            "registry of site {site}: log at entry {} (compacted through {})",
            status.seq, status.compacted_through
        ),
        "gate" => format!(
            "gate of site {site}: register at entry {}, last applied {}",
            status.seq,
            status.applied_at.as_deref().unwrap_or("never")
        ),
        _ => "standalone (own register)".to_string(),
    }
}

/// One line per gate the registry has heard of, for `gate status`: the entry
/// it applied, how far behind the registry's `head` that is, when the
/// registry heard it, and how many of its events are stored here.
pub fn describe_gates(head: i64, gates: &[GateSeen]) -> Vec<String> {
    gates
        .iter()
        .map(|g| {
            format!(
                "gate {}: register at entry {} (lag {}), applied {}, heard {}; its events stored through #{}",
                g.gateway,
                g.applied_seq,
                (head - g.applied_seq).max(0),
                g.applied_at.as_deref().unwrap_or("never"),
                g.heard_at.as_deref().unwrap_or("never"),
                g.events_seq
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(url: &str) -> Broker {
        url.parse().unwrap()
    }

    #[test]
    fn warns_of_plain_mqtt_only_off_this_machine() {
        for local in [
            "mqtt://127.0.0.1:1883",
            "mqtt://localhost",
            "mqtt://[::1]:1883",
        ] {
            assert_eq!(plain_on_the_lan(&broker(local)), None, "{local}");
        }
        let warning = plain_on_the_lan(&broker("mqtt://192.168.10.2:1883")).unwrap();
        assert!(
            warning.contains("mqtt://192.168.10.2:1883") && warning.contains("unencrypted"),
            "{warning}"
        );
        assert!(plain_on_the_lan(&broker("mqtt://site-broker.lan")).is_some());
        assert_eq!(plain_on_the_lan(&broker("mqtts://192.168.10.2:8883")), None);
    }

    #[test]
    fn an_unreadable_site_ca_file_is_named_before_anything_connects() {
        let mut config = Config::demo();
        config.site.role = SiteRole::Registry;
        config.site.broker = Some("mqtts://192.168.10.2:8883".into());
        config.site.ca_file = Some("/nonexistent/site-ca.pem".into());
        let err = Settings::from_config(&config).unwrap_err();
        assert!(
            format!("{err:#}").contains("site.ca_file: cannot read /nonexistent/site-ca.pem"),
            "{err:#}"
        );
    }
}
