//! The demo's own client on the site's broker: it follows every gate's
//! retained applied seq (what the registry and a console see of the site)
//! and publishes the forged change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client, Event, MqttOptions};

use ed25519_dalek::VerifyingKey;

use crate::site::wire::{self, Mark, Topics};
use crate::uplink::Broker;

/// Every gate's retained applied seq, as the broker last told it.
pub struct SiteWatch {
    client: Client,
    applied: Arc<Mutex<HashMap<String, i64>>>,
    stop: Arc<AtomicBool>,
}

impl SiteWatch {
    /// Follows the gates' applied reports, each checked with its gate's key
    /// as the registry checks it.
    pub fn start(
        broker: &Broker,
        site: &str,
        gate_keys: HashMap<String, VerifyingKey>,
    ) -> Result<SiteWatch> {
        let mut options = MqttOptions::new(
            format!("gatehouse-site-demo-{}", std::process::id()),
            &broker.host,
            broker.port,
        );
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = Client::new(options, 64);
        let applied = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let topics = Topics::new(site);
        let site = site.to_string();
        let (seen, stopped, subscriber) = (applied.clone(), stop.clone(), client.clone());
        std::thread::Builder::new()
            .name("site-demo-watch".into())
            .spawn(move || {
                for event in connection.iter() {
                    if stopped.load(Ordering::Relaxed) {
                        break;
                    }
                    match event {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            let _ =
                                subscriber.try_subscribe(topics.applied_all(), QoS::AtLeastOnce);
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let topic = String::from_utf8_lossy(&p.topic).into_owned();
                            let Some(gate) = topics.gate_of(&topic).map(str::to_string) else {
                                continue;
                            };
                            let mark = wire::open_report(
                                &p.payload,
                                &site,
                                &gate,
                                "applied",
                                gate_keys.get(&gate),
                            )
                            .ok()
                            .and_then(|body| serde_json::from_value::<Mark>(body).ok());
                            if let Some(mark) = mark {
                                if let Ok(mut map) = seen.lock() {
                                    map.insert(gate, mark.seq);
                                }
                            }
                        }
                        Ok(_) => {}
                        // The broker may be gone for good at the end: retry slowly until stopped.
                        Err(_) => std::thread::sleep(Duration::from_millis(300)),
                    }
                }
            })
            .context("cannot start the demo's broker client")?;
        Ok(SiteWatch {
            client,
            applied,
            stop,
        })
    }

    /// The applied seq `gate` last reported (retained), if any.
    pub fn applied(&self, gate: &str) -> Option<i64> {
        self.applied.lock().ok()?.get(gate).copied()
    }

    /// Publishes `payload` on `topic` with QoS 1.
    pub fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .with_context(|| format!("cannot publish on {topic}"))
    }
}

impl Drop for SiteWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
    }
}
