//! The registry's side: seals and signs new entries, publishes them in order
//! on the log topic with the retained head, and answers gates' catch-up
//! requests with the tail after their seq (a signed snapshot first when the
//! log was compacted past it), then an end marker.

use anyhow::{Context, Result};
use ed25519_dalek::SigningKey;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};
use tokio::sync::watch;

use super::wire::{self, Mark, Request, Topics};
use super::Settings;
use crate::store::{site_log, Writer};

/// Room in the client's queue for a catch-up batch and its snapshot.
const QUEUE: usize = 4096;

pub async fn run(
    writer: Writer,
    settings: Settings,
    key: SigningKey,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let topics = Topics::new(&settings.site);
    let (client, mut eventloop) = AsyncClient::new(settings.mqtt_options(), QUEUE);
    // Entries made while the registry was down reach the gates through the
    // head: each asks for what it lacks.
    let mut published = {
        let store = writer.lock();
        site_log::seal_pending(store.conn())?;
        sign_pending(store.conn(), &key)?;
        site_log::head(store.conn())?
    };
    let mut tick = tokio::time::interval(settings.timing.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let public = crate::uplink::command::public_key_text(&key.verifying_key());
    tracing::info!(site = %settings.site, head = published, registry_key = %public, "site registry publishing the register");
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tick.tick() => {
                if let Err(e) = publish_new(writer.lock().conn(), &key, &client, &topics, &mut published, settings.catchup_batch) {
                    tracing::warn!("site registry: {e:#}");
                }
            }
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.try_subscribe(topics.request(), QoS::AtLeastOnce);
                    let _ = client.try_subscribe(topics.uses_all(), QoS::AtLeastOnce);
                    publish_head(&client, &topics, published);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic);
                    let result = if topic == topics.request() {
                        answer(writer.lock().conn(), &key, &client, &topics, &p.payload, settings.catchup_batch)
                    } else {
                        visitor_use(writer.lock().conn(), &topics, &topic, &p.payload)
                    };
                    if let Err(e) = result {
                        tracing::warn!("site registry: {e:#}");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(broker = %settings.broker.host, "site registry: broker connection: {e}");
                    tokio::select! {
                        _ = shutdown.changed() => break,
                        _ = tokio::time::sleep(settings.timing.reconnect) => {}
                    }
                }
            }
        }
    }
    let _ = client.try_disconnect();
    Ok(())
}

/// Signs the entries sealed since the last look (by any process).
pub fn sign_pending(conn: &rusqlite::Connection, key: &SigningKey) -> Result<()> {
    for entry in site_log::unsigned(conn)? {
        site_log::set_signature(conn, entry.seq, &wire::sign(key, &entry.body))?;
    }
    Ok(())
}

fn publish_new(
    conn: &rusqlite::Connection,
    key: &SigningKey,
    client: &AsyncClient,
    topics: &Topics,
    published: &mut i64,
    batch: usize,
) -> Result<()> {
    site_log::seal_pending(conn)?;
    sign_pending(conn, key)?;
    let entries = site_log::entries_after(conn, *published, batch)?;
    let Some(last) = entries.last().map(|e| e.seq) else {
        return Ok(());
    };
    for entry in &entries {
        let sig = entry.sig.as_deref().unwrap_or_default();
        client
            .try_publish(
                topics.log(),
                QoS::AtLeastOnce,
                false,
                wire::entry_message(&entry.body, sig),
            )
            .context("cannot queue an entry for the broker")?;
    }
    *published = last;
    publish_head(client, topics, last);
    Ok(())
}

fn publish_head(client: &AsyncClient, topics: &Topics, head: i64) {
    let mark = Mark {
        seq: head,
        at: None,
    };
    let payload = serde_json::to_vec(&mark).unwrap_or_default();
    if let Err(e) = client.try_publish(topics.head(), QoS::AtLeastOnce, true, payload) {
        tracing::warn!("site registry: cannot queue the head: {e}");
    }
}

/// A gate spent a visitor-pass use: lower the pass here, which makes the
/// entry that tells every other gate.
fn visitor_use(
    conn: &rusqlite::Connection,
    topics: &Topics,
    topic: &str,
    payload: &[u8],
) -> Result<()> {
    let gate = topics
        .gate_of(topic)
        .with_context(|| format!("a message on an unexpected topic {topic}"))?;
    crate::domain::validate_slug(gate)
        .map_err(anyhow::Error::msg)
        .context("visitor use: gate")?;
    let report: site_log::VisitorUse =
        serde_json::from_slice(payload).context("a visitor use report that is not JSON")?;
    if site_log::merge_use(conn, gate, report)? {
        tracing::info!(
            gate,
            pass = report.pass,
            uses_left = report.uses_left,
            "site registry: a gate spent a visitor use"
        );
    }
    Ok(())
}

fn answer(
    conn: &rusqlite::Connection,
    key: &SigningKey,
    client: &AsyncClient,
    topics: &Topics,
    payload: &[u8],
    batch: usize,
) -> Result<()> {
    let request: Request =
        serde_json::from_slice(payload).context("a catch-up request that is not JSON")?;
    crate::domain::validate_slug(&request.gate)
        .map_err(anyhow::Error::msg)
        .context("catch-up request: gate")?;
    let topic = topics.catchup(&request.gate);
    let mut after = request.after;
    if after < site_log::compacted_through(conn)? {
        let (snapshot, body) = site_log::snapshot(conn)?;
        client.try_publish(
            topic.clone(),
            QoS::AtLeastOnce,
            false,
            wire::snapshot_message(&body, &wire::sign(key, &body)),
        )?;
        after = snapshot.seq;
        tracing::info!(gate = %request.gate, seq = after, "site registry: sent a snapshot");
    }
    sign_pending(conn, key)?;
    let entries = site_log::entries_after(conn, after, batch)?;
    for entry in &entries {
        let sig = entry.sig.as_deref().unwrap_or_default();
        client.try_publish(
            topic.clone(),
            QoS::AtLeastOnce,
            false,
            wire::entry_message(&entry.body, sig),
        )?;
    }
    client.try_publish(
        topic,
        QoS::AtLeastOnce,
        false,
        wire::end_message(site_log::head(conn)?),
    )?;
    tracing::debug!(gate = %request.gate, after = request.after, sent = entries.len(), "site registry: answered a catch-up");
    Ok(())
}
