//! The connection to the station's broker: drains the outbox in seq order
//! with QoS 1, deletes each outbox row when its PUBACK arrives, publishes the
//! retained status heartbeat, and answers commands.
//!
//! Each connection starts from a fresh MQTT session and re-reads the outbox
//! from its oldest row, so whatever was in flight when the link, the process
//! or the power failed is sent again under the same event id: at-least-once,
//! in order, nothing lost. Packet ids are matched to events through the order
//! in which the event loop reports outgoing publishes (one task publishes, so
//! that order is the order of our requests).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{SecondsFormat, Utc};
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event};
use rumqttc::Outgoing;
use tokio::sync::{mpsc, watch, Notify};

use super::actions::GatewayActions;
use super::db::Db;
use super::dispatch::Dispatcher;
use super::payload::{Heartbeat, LinkState, StatusPayload};
use super::settings::{Broker, UplinkSettings};
use super::snapshots;
use super::status;
use super::Stopped;
use crate::store::outbox;

/// Events handed to the MQTT client and not yet acknowledged.
const WINDOW: usize = 256;
/// Refill the window when this few remain.
const LOW_WATER: usize = WINDOW / 2;
/// Capacity of the client's request channel: the window, its snapshots, and room for replies.
const REQUEST_CAP: usize = 4 * WINDOW;
/// Delete acknowledged rows in batches of this many, or every `FLUSH_EVERY`.
const FLUSH_BATCH: usize = 256;
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// How long a clean shutdown waits for outstanding acknowledgements.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// What a publish was, so its PUBACK can be acted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Event(i64),
    Snapshot,
    Status,
    Reply,
}

/// One QoS 1 publish.
struct Msg {
    topic: String,
    payload: Vec<u8>,
    retain: bool,
    properties: Option<PublishProperties>,
    tag: Tag,
}

impl Msg {
    fn new(topic: String, payload: Vec<u8>, tag: Tag) -> Msg {
        Msg {
            topic,
            payload,
            retain: false,
            properties: None,
            tag,
        }
    }
}

#[derive(Default)]
struct Session {
    /// Publishes handed to the client, waiting for their packet id.
    queue: VecDeque<Tag>,
    /// Packet id → publish, waiting for PUBACK.
    inflight: HashMap<u16, Tag>,
    /// Events in `queue` or `inflight`.
    events_pending: usize,
    /// The last seq handed to the client in this session.
    last_queued: i64,
    /// Acknowledged seqs not yet deleted from the outbox.
    acked: Vec<i64>,
    /// The last outbox read returned everything there was.
    exhausted: bool,
}

pub(crate) struct Link<A> {
    pub settings: Arc<UplinkSettings>,
    pub db: Db,
    pub dispatcher: Dispatcher<A>,
    pub actions: Arc<A>,
    pub wake: Arc<Notify>,
    pub shutdown: watch::Receiver<bool>,
    pub started: Instant,
    pub reply_key_text: String,
}

/// Aborts the event-loop task when the session ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type LoopEvent = Result<Event, ConnectionError>;

impl<A: GatewayActions> Link<A> {
    /// Connects, drains and reconnects with backoff until shut down (or, with
    /// `exit_when_drained`, until the outbox is empty).
    pub async fn run(mut self, broker: Broker) -> Result<Stopped> {
        let timing = self.settings.timing.clone();
        let mut backoff = timing.reconnect_min;
        loop {
            if self.stopping() {
                return Ok(Stopped::Shutdown);
            }
            let mut connected = false;
            let session = self.session(&broker, &mut connected).await;
            set_connected_gauge(false);
            match session {
                Ok(stopped) => return Ok(stopped),
                Err(e) => {
                    if connected {
                        backoff = timing.reconnect_min;
                    }
                    let wait = jittered(backoff);
                    tracing::warn!(
                        broker = %broker,
                        error = %format!("{e:#}"),
                        retry_in_ms = wait.as_millis() as u64,
                        "uplink connection failed; events stay in the outbox"
                    );
                    self.enforce_quota().await;
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.shutdown.changed() => return Ok(Stopped::Shutdown),
                    }
                    backoff = (backoff * 2).min(timing.reconnect_max);
                }
            }
        }
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    async fn session(&mut self, broker: &Broker, connected: &mut bool) -> Result<Stopped> {
        let (client, mut eventloop) =
            AsyncClient::new(self.settings.mqtt_options(broker), REQUEST_CAP);
        let (tx, mut rx) = mpsc::channel::<LoopEvent>(REQUEST_CAP);
        // The event loop runs in its own task so that nothing cancels a poll
        // half-way; its events arrive here in order.
        let _pump = AbortOnDrop(tokio::spawn(async move {
            loop {
                let event = eventloop.poll().await;
                let fatal = event.is_err();
                if tx.send(event).await.is_err() || fatal {
                    break;
                }
            }
        }));
        let deadline =
            tokio::time::sleep(self.settings.timing.connect_timeout + Duration::from_secs(2));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => bail!("cannot connect: {e}"),
                    None => bail!("MQTT event loop ended"),
                },
                _ = &mut deadline => bail!("no CONNACK from the broker"),
                _ = self.shutdown.changed() => return Ok(Stopped::Shutdown),
            }
        }
        *connected = true;
        set_connected_gauge(true);
        tracing::info!(broker = %broker, "uplink connected");
        let mut s = Session::default();
        let result = self.connected(&client, &mut rx, &mut s).await;
        // Whatever ended the session, acknowledged rows are recorded first.
        if let Err(e) = self.flush(&mut s).await {
            tracing::error!(error = %format!("{e:#}"), "cannot record delivered events");
        }
        result
    }

    async fn connected(
        &mut self,
        client: &AsyncClient,
        rx: &mut mpsc::Receiver<LoopEvent>,
        s: &mut Session,
    ) -> Result<Stopped> {
        client
            .try_subscribe(self.settings.topics.cmd_filter(), QoS::AtLeastOnce)
            .map_err(|e| anyhow!("cannot subscribe to commands: {e}"))?;
        self.publish_status(client, s).await?;
        self.fill(client, s).await?;
        let timing = self.settings.timing.clone();
        let start = tokio::time::Instant::now();
        let mut poll = tokio::time::interval_at(start + timing.poll_interval, timing.poll_interval);
        let mut heartbeat = tokio::time::interval_at(start + timing.heartbeat, timing.heartbeat);
        let mut quota =
            tokio::time::interval_at(start + timing.quota_interval, timing.quota_interval);
        let mut flush = tokio::time::interval_at(start + FLUSH_EVERY, FLUSH_EVERY);
        for timer in [&mut poll, &mut heartbeat, &mut quota, &mut flush] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                _ = self.shutdown.changed() => {
                    self.close(client, rx, s).await;
                    return Ok(Stopped::Shutdown);
                }
                event = rx.recv() => match event {
                    Some(Ok(event)) => self.on_event(event, client, s).await?,
                    Some(Err(e)) => bail!("connection lost: {e}"),
                    None => bail!("MQTT event loop ended"),
                },
                _ = self.wake.notified() => s.exhausted = false,
                _ = poll.tick() => s.exhausted = false,
                _ = heartbeat.tick() => self.publish_status(client, s).await?,
                _ = quota.tick() => self.enforce_quota().await,
                _ = flush.tick() => self.flush(s).await?,
            }
            if s.acked.len() >= FLUSH_BATCH {
                self.flush(s).await?;
            }
            if !s.exhausted && s.events_pending <= LOW_WATER {
                self.fill(client, s).await?;
            }
            if self.settings.exit_when_drained && s.exhausted && s.events_pending == 0 {
                self.flush(s).await?;
                let depth = self.db.read(outbox::depth).await?;
                if depth.events == 0 {
                    self.close(client, rx, s).await;
                    return Ok(Stopped::Drained);
                }
                s.exhausted = false;
            }
        }
    }

    async fn on_event(
        &mut self,
        event: Event,
        client: &AsyncClient,
        s: &mut Session,
    ) -> Result<()> {
        match event {
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(tag) = s.queue.pop_front() {
                    s.inflight.insert(pkid, tag);
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                let Some(tag) = s.inflight.remove(&ack.pkid) else {
                    return Ok(());
                };
                match ack.reason {
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers => {
                        if let Tag::Event(seq) = tag {
                            s.acked.push(seq);
                            s.events_pending -= 1;
                        }
                    }
                    // Not delivered: keep the row and retry on a new connection.
                    other => bail!("the broker refused {tag:?} ({other:?})"),
                }
            }
            Event::Incoming(Packet::Publish(publish)) => self.on_command(publish, client, s).await,
            Event::Incoming(Packet::Disconnect(d)) => {
                bail!("the broker closed the connection ({:?})", d.reason_code)
            }
            _ => {}
        }
        Ok(())
    }

    async fn on_command(&mut self, publish: Publish, client: &AsyncClient, s: &mut Session) {
        let topic = String::from_utf8_lossy(&publish.topic).into_owned();
        let Some(name) = self.settings.topics.command_name(&topic) else {
            return;
        };
        let properties = publish.properties.unwrap_or_default();
        // A command whose response topic is missing or outside the station's
        // reply prefix is refused (and audited) by the dispatcher: no reply.
        let Some(reply) = self
            .dispatcher
            .handle(name, &publish.payload, properties.response_topic.as_deref())
            .await
        else {
            return;
        };
        let Some(response_topic) = properties.response_topic else {
            return;
        };
        let body = match serde_json::to_vec(&reply) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a reply");
                return;
            }
        };
        let props = PublishProperties {
            correlation_data: properties.correlation_data,
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        if let Err(e) = self.publish(
            client,
            s,
            Msg {
                properties: Some(props),
                ..Msg::new(response_topic, body, Tag::Reply)
            },
        ) {
            tracing::warn!(error = %format!("{e:#}"), "cannot send a command reply");
        }
    }

    fn publish(&self, client: &AsyncClient, s: &mut Session, msg: Msg) -> Result<()> {
        let sent = match msg.properties {
            Some(p) => client.try_publish_with_properties(
                msg.topic,
                QoS::AtLeastOnce,
                msg.retain,
                msg.payload,
                p,
            ),
            None => client.try_publish(msg.topic, QoS::AtLeastOnce, msg.retain, msg.payload),
        };
        sent.map_err(|e| anyhow!("cannot hand a publish to the MQTT client: {e}"))?;
        if let Tag::Event(_) = msg.tag {
            s.events_pending += 1;
        }
        s.queue.push_back(msg.tag);
        Ok(())
    }

    /// Hands the next outbox events (and their snapshots) to the client.
    async fn fill(&self, client: &AsyncClient, s: &mut Session) -> Result<()> {
        let want = WINDOW.saturating_sub(s.events_pending);
        if want == 0 {
            return Ok(());
        }
        let after = s.last_queued;
        let rows = self
            .db
            .read(move |conn| outbox::pending(conn, after, want as u32))
            .await?;
        s.exhausted = rows.len() < want;
        let topics = &self.settings.topics;
        for record in rows {
            let policy = self.settings.face_snapshots;
            if let Some(name) = &record.snapshot {
                // Held back by `face_snapshots`: the station may ask (`get_snapshot`).
                if snapshots::sent_with_event(policy, &record) {
                    if let Some(jpeg) = self.read_snapshot(name).await {
                        self.publish(
                            client,
                            s,
                            Msg::new(topics.snapshot(&record.id), jpeg, Tag::Snapshot),
                        )?;
                    }
                }
            }
            let payload = serde_json::to_vec(&snapshots::payload(policy, &record, topics))?;
            self.publish(
                client,
                s,
                Msg::new(topics.event(record.kind), payload, Tag::Event(record.seq)),
            )?;
            s.last_queued = record.seq;
        }
        Ok(())
    }

    async fn read_snapshot(&self, name: &str) -> Option<Vec<u8>> {
        let plain = !name.is_empty() && !name.contains('/') && name != "." && name != "..";
        if !plain {
            tracing::warn!(
                snapshot = name,
                "snapshot name is not a plain file name; not sent"
            );
            return None;
        }
        let path: PathBuf = self.settings.data_dir.join("snapshots").join(name);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "snapshot missing; the event is sent without it");
                None
            }
        }
    }

    async fn flush(&self, s: &mut Session) -> Result<()> {
        if s.acked.is_empty() {
            return Ok(());
        }
        let seqs = std::mem::take(&mut s.acked);
        self.db
            .call(move |st| outbox::mark_delivered(st.conn(), &seqs))
            .await
            .context("cannot mark events delivered")?;
        Ok(())
    }

    async fn publish_status(&self, client: &AsyncClient, s: &mut Session) -> Result<()> {
        let payload = self.status().await?;
        let body = serde_json::to_vec(&payload)?;
        self.publish(
            client,
            s,
            Msg {
                retain: true,
                ..Msg::new(self.settings.topics.status(), body, Tag::Status)
            },
        )
    }

    /// The heartbeat as published (also used by `gatehouse uplink status`).
    pub async fn status(&self) -> Result<StatusPayload> {
        let (depth, dropped, head) = self
            .db
            .read(|conn| {
                Ok((
                    outbox::depth(conn)?,
                    outbox::dropped_total(conn)?,
                    outbox::head_seq(conn)?,
                ))
            })
            .await?;
        Ok(StatusPayload {
            state: LinkState::Online,
            site: self.settings.topics.site().to_string(),
            gateway: self.settings.topics.gateway().to_string(),
            at: Some(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
            heartbeat: Some(Heartbeat {
                version: env!("CARGO_PKG_VERSION").to_string(),
                uptime_s: self.started.elapsed().as_secs(),
                clock_synced: self.actions.clock_synced(),
                outbox_depth: depth.events,
                outbox_bytes: depth.bytes,
                outbox_dropped_total: dropped,
                head_seq: head,
                disk_free_bytes: status::disk_free_bytes(&self.settings.data_dir),
                reply_key: self.reply_key_text.clone(),
                health: self.actions.health(),
            }),
        })
    }

    pub async fn enforce_quota(&self) {
        let quota = self.settings.quota_bytes;
        let (at, synced) = (self.actions.now(), self.actions.clock_synced());
        let result = self
            .db
            .call(move |st| outbox::enforce_quota(st.conn(), quota, at, synced))
            .await;
        match result {
            Ok(Some(dropped)) => {
                self.actions.event_stored(&dropped.alarm);
                self.wake.notify_one();
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %format!("{e:#}"), "cannot enforce the outbox quota"),
        }
    }

    /// A clean goodbye: record what was acknowledged, mark the status
    /// offline (the last will only fires on an unclean loss), wait briefly for
    /// outstanding acknowledgements, disconnect.
    async fn close(
        &mut self,
        client: &AsyncClient,
        rx: &mut mpsc::Receiver<LoopEvent>,
        s: &mut Session,
    ) {
        let offline =
            serde_json::to_vec(&StatusPayload::offline(&self.settings.topics)).unwrap_or_default();
        if let Err(e) = self.publish(
            client,
            s,
            Msg {
                retain: true,
                ..Msg::new(self.settings.topics.status(), offline, Tag::Status)
            },
        ) {
            tracing::warn!(error = %format!("{e:#}"), "cannot publish the offline status");
        }
        let deadline = tokio::time::sleep(CLOSE_GRACE);
        tokio::pin!(deadline);
        while !(s.queue.is_empty() && s.inflight.is_empty()) {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(Ok(Event::Incoming(Packet::Publish(_)))) => {} // no new commands while leaving
                    Some(Ok(event)) => {
                        if self.on_event(event, client, s).await.is_err() {
                            break;
                        }
                    }
                    _ => break,
                },
                _ = &mut deadline => break,
            }
        }
        if let Err(e) = self.flush(s).await {
            tracing::error!(error = %format!("{e:#}"), "cannot record delivered events");
        }
        let _ = client.try_disconnect();
        let bye = tokio::time::sleep(Duration::from_millis(500));
        tokio::pin!(bye);
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(Ok(Event::Outgoing(Outgoing::Disconnect))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
                _ = &mut bye => break,
            }
        }
    }
}

/// `gatehouse_uplink_connected`: 1 while the broker session is up.
fn set_connected_gauge(up: bool) {
    let (name, help) = crate::metrics::UPLINK_CONNECTED;
    crate::metrics::set(name, help, &[], if up { 1.0 } else { 0.0 });
}

/// A reconnect wait between half and all of `backoff`, at random: after a
/// station outage a fleet of gateways does not reconnect in lockstep.
pub fn jittered(backoff: Duration) -> Duration {
    backoff.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_waits_are_spread_between_half_and_all_of_the_backoff() {
        let backoff = Duration::from_secs(8);
        let waits: Vec<Duration> = (0..200).map(|_| jittered(backoff)).collect();
        assert!(waits.iter().all(|w| *w >= backoff / 2 && *w <= backoff));
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() > 100, "no jitter: {distinct:?}");
        assert!(waits.iter().any(|w| *w < backoff * 3 / 4));
        assert!(waits.iter().any(|w| *w > backoff * 3 / 4));
    }
}
