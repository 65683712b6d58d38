//! An MQTT v5 connection from the station: request/response to a gateway
//! (response topic + correlation data) and subscriptions for watching.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use tokio::sync::mpsc;

use crate::uplink::command::Reply;
use crate::uplink::Broker;

/// A message received on a subscription.
#[derive(Clone, Debug)]
pub struct Incoming {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

pub struct Connection {
    client: AsyncClient,
    rx: mpsc::Receiver<Result<Event, ConnectionError>>,
    pump: tokio::task::JoinHandle<()>,
    reply_topic: String,
    subscribed_replies: bool,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

/// How the station reaches the broker.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub broker: Broker,
    pub ca_pem: Option<Vec<u8>>,
    pub client_auth: Option<(Vec<u8>, Vec<u8>)>,
    pub credentials: Option<(String, String)>,
}

impl Connection {
    /// Connects and waits for the broker's CONNACK.
    pub async fn open(endpoint: &Endpoint, timeout: Duration) -> Result<Connection> {
        let client_id = format!(
            "gatehouse-station-{}",
            hex::encode(rand::random::<[u8; 6]>())
        );
        let b = &endpoint.broker;
        let mut o = MqttOptions::new(&client_id, &b.host, b.port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_clean_start(true);
        o.set_max_packet_size(Some(4 * 1024 * 1024));
        if b.tls {
            let Some(ca) = endpoint.ca_pem.clone() else {
                bail!("{b}: --ca is required for mqtts://");
            };
            let auth = endpoint
                .client_auth
                .as_ref()
                .map(|(c, k)| (c.as_slice(), k.as_slice()));
            let config = crate::uplink::tls::client_config(&ca, auth)
                .context("--ca / --cert / --client-key")?;
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
        }
        if let Some((u, p)) = &endpoint.credentials {
            o.set_credentials(u.clone(), p.clone());
        }
        let (client, mut eventloop) = AsyncClient::new(o, 64);
        let (tx, rx) = mpsc::channel(1024);
        let pump = tokio::spawn(async move {
            loop {
                let event = eventloop.poll().await;
                let fatal = event.is_err();
                if tx.send(event).await.is_err() || fatal {
                    break;
                }
            }
        });
        let mut conn = Connection {
            client,
            rx,
            pump,
            reply_topic: crate::uplink::topics::reply_topic(&client_id),
            subscribed_replies: false,
        };
        conn.wait_for(timeout, |p| matches!(p, Packet::ConnAck(_)))
            .await
            .with_context(|| format!("cannot connect to {b}"))?;
        Ok(conn)
    }

    async fn next_packet(&mut self) -> Result<Packet> {
        loop {
            match self.rx.recv().await {
                Some(Ok(Event::Incoming(p))) => return Ok(p),
                Some(Ok(Event::Outgoing(_))) => continue,
                Some(Err(e)) => return Err(anyhow!("{e}")),
                None => bail!("the MQTT connection ended"),
            }
        }
    }

    async fn wait_for(
        &mut self,
        timeout: Duration,
        want: impl Fn(&Packet) -> bool,
    ) -> Result<Packet> {
        tokio::time::timeout(timeout, async {
            loop {
                let p = self.next_packet().await?;
                if want(&p) {
                    return Ok(p);
                }
            }
        })
        .await
        .map_err(|_| anyhow!("no answer from the broker within {} s", timeout.as_secs()))?
    }

    pub async fn subscribe(&mut self, filter: &str, timeout: Duration) -> Result<()> {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .map_err(|e| anyhow!("cannot subscribe to {filter}: {e}"))?;
        self.wait_for(timeout, |p| matches!(p, Packet::SubAck(_)))
            .await
            .with_context(|| format!("subscribing to {filter}"))?;
        Ok(())
    }

    /// Publishes `payload` to `topic` with a response topic and fresh
    /// correlation data, and returns the gateway's reply.
    pub async fn request(
        &mut self,
        topic: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Reply> {
        if !self.subscribed_replies {
            let reply_topic = self.reply_topic.clone();
            self.subscribe(&reply_topic, timeout).await?;
            self.subscribed_replies = true;
        }
        let correlation: Vec<u8> = rand::random::<[u8; 16]>().to_vec();
        let props = PublishProperties {
            response_topic: Some(self.reply_topic.clone()),
            correlation_data: Some(correlation.clone().into()),
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        self.client
            .publish_with_properties(topic, QoS::AtLeastOnce, false, payload, props)
            .await
            .map_err(|e| anyhow!("cannot publish to {topic}: {e}"))?;
        let reply_topic = self.reply_topic.clone();
        let packet = self
            .wait_for(timeout, |p| match p {
                Packet::Publish(m) => {
                    m.topic.as_ref() == reply_topic.as_bytes()
                        && m.properties
                            .as_ref()
                            .and_then(|pr| pr.correlation_data.as_deref())
                            == Some(&correlation[..])
                }
                _ => false,
            })
            .await
            .with_context(|| format!("no reply from the gateway on {topic}; is it online?"))?;
        let Packet::Publish(m) = packet else {
            bail!("unexpected packet");
        };
        serde_json::from_slice(&m.payload).context("the gateway's reply is not valid JSON")
    }

    /// The next message on any subscription.
    pub async fn next_message(&mut self) -> Result<Incoming> {
        loop {
            if let Packet::Publish(m) = self.next_packet().await? {
                return Ok(Incoming {
                    topic: String::from_utf8_lossy(&m.topic).into_owned(),
                    payload: m.payload.to_vec(),
                    retain: m.retain,
                });
            }
        }
    }

    pub async fn close(self) {
        let _ = self.client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
