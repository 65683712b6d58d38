//! Frigate as a plate source: the plate recognitions a Frigate NVR publishes
//! on MQTT, fed to the same plate path as the HTTP cameras.
//!
//! Frigate (0.16+) publishes on `<topic_prefix>/tracked_object_update`, for
//! every refinement of a tracked car's plate (several a second while the car
//! is in view):
//!
//! ```json
//! {"type": "lpr", "name": null, "plate": "川A12345", "score": 0.93,
//!  "id": "1764730512.48735-x7k2qd", "camera": "gate_lpr", "timestamp": 1764730513.52}
//! ```
//!
//! `name` is Frigate's own known-plates label and is ignored: the register
//! decides. When the last car leaves a camera, Frigate sends the same type
//! with `plate: null` and no id; other `type`s (descriptions, faces) are not
//! plates. Extra fields (`plate_box`, newer versions) are accepted.
//!
//! Each reading from a camera listed in `[[lpr.frigate.cameras]]` goes through
//! [`read_plate`] with the gate's OCR tolerance, then to the [`PlateSink`] (the
//! gate: register, watchlist, event), exactly like a pushed HTTP event. What
//! is not acted on: a camera not listed, a retained message (an old reading
//! the broker kept, never a car at the barrier now), a car Frigate is still
//! tracking after the gate opened for it, and the same reading at the same
//! gate within `[lpr] repeat_window_s`.
//!
//! Architecture Invariant (as for the whole module): nothing here decides
//! access; the sink does.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, FixedOffset, Utc};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{
    read_plate, CameraText, PlateCamera, PlateOutcome, PlateReading, PlateSink, PlateSource,
};
use crate::config::{Config, Frigate};
use crate::domain::GateId;
use crate::uplink::Broker;

/// Largest message taken from Frigate's broker: plate updates are ~250 bytes.
const MAX_INCOMING_PACKET: u32 = 64 * 1024;
/// Tracked cars remembered (for "already opened"), at most; the oldest go first.
const MAX_TRACKED: usize = 1024;
/// How long a tracked car is remembered after its last reading.
const TRACKED_FOR: Duration = Duration::from_secs(600);
/// Where Debian keeps the system CA bundle, for `mqtts://` without `ca_file`.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// One `tracked_object_update` message, as far as plates go.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// A plate read on a tracked car.
    Plate(FrigatePlate),
    /// The last car left the camera (`"plate": null`): nothing to present.
    Cleared { camera: Option<String> },
    /// Another kind of update (`description`, `face`, …): not a plate.
    Other(String),
}

/// A plate reading as Frigate sent it, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct FrigatePlate {
    /// Frigate's tracked-object id (the same for every refinement of one car).
    pub object_id: String,
    pub camera: String,
    /// The plate text as Frigate read it.
    pub plate: String,
    /// 0.0..=1.0, Frigate's average character confidence.
    pub score: Option<f32>,
    /// When Frigate read it (Frigate's clock).
    pub time: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    camera: Option<String>,
    plate: Option<String>,
    score: Option<f64>,
    timestamp: Option<f64>,
}

/// Parses a `tracked_object_update` payload. Errors name the field and the problem.
pub fn parse(payload: &[u8]) -> Result<Update, String> {
    let m: Message = serde_json::from_slice(payload).map_err(|e| format!("Frigate update: {e}"))?;
    if m.kind != "lpr" {
        return Ok(Update::Other(printable(&m.kind)));
    }
    let Some(plate) = m.plate else {
        return Ok(Update::Cleared { camera: m.camera });
    };
    let object_id = m.id.ok_or("id: missing in a plate update")?;
    if object_id.is_empty()
        || object_id.len() > 64
        || !object_id.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(format!(
            "id: expected Frigate's tracked-object id, got {:?}",
            printable(&object_id)
        ));
    }
    let camera = m.camera.ok_or("camera: missing in a plate update")?;
    if plate.chars().count() > 32 {
        return Err(format!(
            "plate: {} characters is no plate",
            plate.chars().count()
        ));
    }
    let score = match m.score {
        Some(s) if (0.0..=1.0).contains(&s) => Some(s as f32),
        Some(s) => return Err(format!("score: expected 0.0..=1.0, got {s}")),
        None => None,
    };
    let time = match m.timestamp {
        Some(t) => Some(
            DateTime::from_timestamp_micros((t * 1e6).round() as i64)
                .filter(|_| t.is_finite() && t > 0.0)
                .ok_or_else(|| format!("timestamp: expected Unix seconds, got {t}"))?,
        ),
        None => None,
    };
    Ok(Update::Plate(FrigatePlate {
        object_id,
        camera,
        plate,
        score,
        time,
    }))
}

/// At most 64 characters, control characters shown escaped: for logs of
/// text that came from the network.
fn printable(s: &str) -> String {
    s.chars().take(64).flat_map(char::escape_debug).collect()
}

/// What became of one message (also the metric's `result` label).
#[derive(Clone, Debug, PartialEq)]
pub enum Handled {
    /// The gate decided on it.
    Decided(PlateOutcome),
    /// The same reading at the same gate within the repeat window, or a car
    /// the gate already opened for.
    Repeat,
    /// A camera not in `[[lpr.frigate.cameras]]`.
    UnknownCamera(String),
    /// A retained message: an old reading, not a car at the barrier now.
    Retained,
    /// Not a plate to present (another update type, a cleared camera, a car
    /// without a readable plate).
    NotAPlate,
    /// A payload that does not parse.
    Bad(String),
    /// Plate text that is no plate (Frigate's early or partial readings:
    /// it sends several a second while it refines a car's plate).
    Unreadable(String),
    /// The gate did not act on it.
    Failed(String),
}

impl Handled {
    /// The `result` label of `gatehouse_lpr_events_total{endpoint="frigate"}`.
    pub fn result(&self) -> &'static str {
        match self {
            Handled::Decided(o) if o.verdict == super::Verdict::Open => "open",
            Handled::Decided(_) => "refused",
            Handled::Repeat => "repeat",
            Handled::UnknownCamera(_) => "unknown_gate",
            Handled::Retained | Handled::NotAPlate => "ignored",
            Handled::Bad(_) => "bad_request",
            Handled::Unreadable(_) => "unreadable",
            Handled::Failed(_) => "error",
        }
    }
}

/// A tracked car the gate has decided on.
struct Tracked {
    opened: bool,
    /// The reading last decided on, and when.
    read: String,
    at: Instant,
}

/// Frigate's messages to plate readings: the camera allow-list, the OCR
/// tolerance and the repeat rules, then the sink. Independent of MQTT, so it
/// can be driven directly.
pub struct Intake<S> {
    frigate: Frigate,
    ocr_tolerance: Vec<GateId>,
    repeat_window: Duration,
    utc_offset: FixedOffset,
    sink: S,
    tracked: HashMap<String, Tracked>,
    /// (gate, reading) → when it was last decided, for the repeat window
    /// across tracked objects (Frigate may lose a car and track it anew).
    recent: HashMap<(GateId, String), Instant>,
}

impl<S: PlateSink> Intake<S> {
    /// `config.lpr.frigate` must be set.
    pub fn new(config: &Config, sink: S) -> Result<Intake<S>> {
        let frigate = config
            .lpr
            .frigate
            .clone()
            .context("[lpr.frigate] is not set, so Frigate is not a plate source")?;
        Ok(Intake {
            frigate,
            ocr_tolerance: config.lpr.ocr_tolerance.clone(),
            repeat_window: Duration::from_secs(u64::from(config.lpr.repeat_window_s)),
            utc_offset: config.site.utc_offset(),
            sink,
            tracked: HashMap::new(),
            recent: HashMap::new(),
        })
    }

    /// Handles one message from `<topic_prefix>/tracked_object_update`,
    /// counting and logging what became of it.
    pub async fn handle(&mut self, payload: &[u8], retained: bool) -> Handled {
        self.handle_at(payload, retained, Instant::now()).await
    }

    /// [`Intake::handle`] at a given instant (the repeat rules' clock).
    async fn handle_at(&mut self, payload: &[u8], retained: bool, now: Instant) -> Handled {
        let handled = self.handle_quietly(payload, retained, now).await;
        let result = handled.result();
        match &handled {
            Handled::Decided(o) => {
                tracing::info!(plate = %o.plate, result, reason = %o.reason, "Frigate plate event")
            }
            Handled::UnknownCamera(camera) => {
                tracing::debug!(camera = %camera, "Frigate plate from a camera not in [[lpr.frigate.cameras]]: ignored")
            }
            Handled::Retained => {
                tracing::warn!(
                    "a retained Frigate plate update (an old reading kept by the broker): ignored"
                )
            }
            Handled::Bad(problem) => tracing::warn!("Frigate plate update refused: {problem}"),
            // Debug only: a partial reading is normal while Frigate refines a plate.
            Handled::Unreadable(problem) => {
                tracing::debug!("Frigate plate reading skipped: {problem}")
            }
            Handled::Failed(problem) => {
                tracing::error!("the gate did not act on a Frigate plate reading: {problem}")
            }
            Handled::Repeat | Handled::NotAPlate => {}
        }
        if !matches!(handled, Handled::NotAPlate) {
            super::server::count(PlateSource::Frigate.endpoint(), result);
        }
        handled
    }

    async fn handle_quietly(&mut self, payload: &[u8], retained: bool, now: Instant) -> Handled {
        let update = match parse(payload) {
            Ok(Update::Plate(p)) => p,
            Ok(Update::Cleared { .. } | Update::Other(_)) => return Handled::NotAPlate,
            Err(problem) => return Handled::Bad(problem),
        };
        let Some(gate) = self.frigate.camera_gate(&update.camera).cloned() else {
            return Handled::UnknownCamera(printable(&update.camera));
        };
        if retained {
            return Handled::Retained;
        }
        let tolerate = self.ocr_tolerance.contains(&gate);
        let read = match read_plate(&update.plate, tolerate) {
            Ok(CameraText::Read(read)) => read,
            Ok(CameraText::NoPlate) => return Handled::NotAPlate,
            Err(problem) => {
                return Handled::Unreadable(format!("camera {}: plate: {problem}", update.camera))
            }
        };
        self.forget_old(now);
        if let Some(t) = self.tracked.get(&update.object_id) {
            let repeated = t.read == read.text && now.duration_since(t.at) < self.repeat_window;
            if t.opened || repeated {
                return Handled::Repeat;
            }
        }
        let key = (gate.clone(), read.text.clone());
        if self
            .recent
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < self.repeat_window)
        {
            return Handled::Repeat;
        }
        let reading = PlateReading {
            gate,
            read,
            confidence: update.score,
            camera_time: update.time.map(|t| t.with_timezone(&self.utc_offset)),
            received_at: Utc::now(),
            snapshot: None,
            source: PlateSource::Frigate,
            camera: PlateCamera::Named(update.camera),
            channel: None,
            tracked_object: Some(update.object_id.clone()),
        };
        let text = reading.read.text.clone();
        match self.sink.present(reading).await {
            Ok(outcome) => {
                let opened = outcome.verdict == super::Verdict::Open;
                self.tracked.insert(
                    update.object_id,
                    Tracked {
                        opened,
                        read: text,
                        at: now,
                    },
                );
                if !self.repeat_window.is_zero() {
                    self.recent.insert(key, now);
                }
                Handled::Decided(outcome)
            }
            Err(e) => Handled::Failed(format!("{e:#}")),
        }
    }

    /// Keeps memory bounded whatever arrives: old entries go, and past
    /// [`MAX_TRACKED`] the oldest tracked cars go.
    fn forget_old(&mut self, now: Instant) {
        let window = self.repeat_window;
        self.recent.retain(|_, at| now.duration_since(*at) < window);
        self.tracked
            .retain(|_, t| now.duration_since(t.at) < TRACKED_FOR);
        if self.recent.len() > MAX_TRACKED {
            self.recent.clear();
        }
        while self.tracked.len() >= MAX_TRACKED {
            let oldest = self
                .tracked
                .iter()
                .min_by_key(|(_, t)| t.at)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => self.tracked.remove(&id),
                None => break,
            };
        }
    }
}

/// Delays the subscriber works with; tests shorten them.
#[derive(Clone, Debug)]
pub struct FrigateTiming {
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub connect_timeout: Duration,
}

impl Default for FrigateTiming {
    fn default() -> FrigateTiming {
        FrigateTiming {
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The connection to Frigate's broker, resolved from `[lpr.frigate]`: files
/// read, every problem named by its key before anything connects.
#[derive(Clone)]
pub struct Link {
    pub broker: Broker,
    updates_topic: String,
    available_topic: String,
    client_id: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    credentials: Option<(String, String)>,
    pub timing: FrigateTiming,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("broker", &self.broker)
            .field("updates_topic", &self.updates_topic)
            .field("tls", &self.tls.is_some())
            .field("username", &self.credentials.as_ref().map(|c| &c.0))
            .finish_non_exhaustive()
    }
}

impl Link {
    pub fn from_config(config: &Config) -> Result<Link> {
        let f = config
            .lpr
            .frigate
            .as_ref()
            .context("[lpr.frigate] is not set, so Frigate is not a plate source")?;
        let broker: Broker = f
            .broker
            .parse()
            .map_err(anyhow::Error::msg)
            .context("lpr.frigate.broker")?;
        let tls = if broker.tls {
            let ca = match &f.ca_file {
                Some(path) => read_file(path, "lpr.frigate.ca_file")?,
                None => read_file(
                    std::path::Path::new(SYSTEM_CA_BUNDLE),
                    "lpr.frigate.ca_file (not set; the system CA bundle)",
                )?,
            };
            let client = match (&f.client_cert, &f.client_key) {
                (Some(c), Some(k)) => Some((
                    read_file(c, "lpr.frigate.client_cert")?,
                    read_file(k, "lpr.frigate.client_key")?,
                )),
                _ => None,
            };
            Some(
                crate::uplink::tls::client_config(
                    &ca,
                    client.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
                )
                .context("lpr.frigate.ca_file / client_cert / client_key")?,
            )
        } else {
            if f.client_cert.is_some() {
                bail!("lpr.frigate.client_cert: a client certificate needs an mqtts:// broker");
            }
            None
        };
        let credentials = match (&f.username, &f.password_file) {
            (Some(user), Some(file)) => {
                let text = std::fs::read_to_string(file).with_context(|| {
                    format!("lpr.frigate.password_file: cannot read {}", file.display())
                })?;
                let password = text.lines().next().unwrap_or("").to_string();
                Some((user.clone(), password))
            }
            (Some(user), None) => Some((user.clone(), String::new())),
            (None, _) => None,
        };
        Ok(Link {
            broker,
            updates_topic: f.updates_topic(),
            available_topic: f.available_topic(),
            client_id: format!(
                "gatehouse-{}-{}-frigate",
                config.site.id, config.site.gateway_id
            ),
            tls,
            credentials,
            timing: FrigateTiming::default(),
        })
    }

    /// MQTT v5 options: a clean start and QoS 0 subscriptions, so nothing
    /// queued while the gateway was away is delivered late as if the car were there.
    fn options(&self) -> MqttOptions {
        let b = &self.broker;
        let mut o = MqttOptions::new(&self.client_id, &b.host, b.port);
        o.set_keep_alive(Duration::from_secs(15));
        o.set_clean_start(true);
        o.set_connection_timeout(self.timing.connect_timeout.as_secs().max(1));
        o.set_max_packet_size(Some(MAX_INCOMING_PACKET));
        if let Some(tls) = &self.tls {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                tls.clone(),
            )));
        }
        if let Some((user, password)) = &self.credentials {
            o.set_credentials(user.clone(), password.clone());
        }
        o
    }

    /// Subscribes and hands every plate update to `intake` until `shutdown`
    /// completes; reconnects with jittered backoff (a gateway must not give
    /// up on Frigate because its broker restarted).
    pub async fn run<S: PlateSink>(
        self,
        mut intake: Intake<S>,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        tokio::pin!(shutdown);
        let mut backoff = self.timing.reconnect_min;
        loop {
            let mut connected = false;
            let error = tokio::select! {
                e = self.session(&mut intake, &mut connected) => e,
                () = &mut shutdown => break,
            };
            set_gauge(CONNECTED, 0.0);
            if connected {
                backoff = self.timing.reconnect_min;
            }
            let wait = crate::uplink::jittered(backoff);
            tracing::warn!(
                broker = %self.broker,
                error = %format!("{error:#}"),
                retry_in_ms = wait.as_millis() as u64,
                "Frigate's broker: connection failed; no plates from Frigate until it is back"
            );
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => break,
            }
            backoff = (backoff * 2).min(self.timing.reconnect_max);
        }
        set_gauge(CONNECTED, 0.0);
    }

    /// One connection, until it fails (the error says why).
    async fn session<S: PlateSink>(
        &self,
        intake: &mut Intake<S>,
        connected: &mut bool,
    ) -> anyhow::Error {
        let (client, mut eventloop) = AsyncClient::new(self.options(), 16);
        let (tx, mut rx) = mpsc::channel::<Result<Event, ConnectionError>>(64);
        // The event loop runs in its own task so that nothing cancels a poll
        // half-way; its events arrive here in order.
        let pump = tokio::spawn(async move {
            loop {
                let event = eventloop.poll().await;
                let fatal = event.is_err();
                if tx.send(event).await.is_err() || fatal {
                    break;
                }
            }
        });
        let _abort = AbortOnDrop(pump);
        let deadline = tokio::time::sleep(self.timing.connect_timeout + Duration::from_secs(2));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return anyhow!("cannot connect: {e}"),
                    None => return anyhow!("MQTT event loop ended"),
                },
                () = &mut deadline => return anyhow!("no CONNACK from the broker"),
            }
        }
        for topic in [&self.updates_topic, &self.available_topic] {
            if let Err(e) = client.try_subscribe(topic.as_str(), QoS::AtMostOnce) {
                return anyhow!("cannot subscribe to {topic}: {e}");
            }
        }
        *connected = true;
        set_gauge(CONNECTED, 1.0);
        tracing::info!(broker = %self.broker, topic = %self.updates_topic, "subscribed to Frigate's plate recognitions");
        loop {
            match rx.recv().await {
                Some(Ok(Event::Incoming(Packet::Publish(p)))) => {
                    if p.topic == self.updates_topic.as_bytes() {
                        intake.handle(&p.payload, p.retain).await;
                    } else if p.topic == self.available_topic.as_bytes() {
                        frigate_availability(&p.payload);
                    }
                }
                Some(Ok(Event::Incoming(Packet::SubAck(ack)))) => {
                    let refused = ack.return_codes.iter().any(|c| {
                        !matches!(
                            c,
                            rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)
                        )
                    });
                    if refused {
                        return anyhow!(
                            "the broker refused the subscription to {} ({:?}): check its ACL for this login",
                            self.updates_topic,
                            ack.return_codes
                        );
                    }
                }
                Some(Ok(Event::Incoming(Packet::Disconnect(d)))) => {
                    return anyhow!("the broker closed the connection ({:?})", d.reason_code)
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return anyhow!("connection lost: {e}"),
                None => return anyhow!("MQTT event loop ended"),
            }
        }
    }
}

/// Frigate's `available` topic: `online` / `offline` (its last will).
fn frigate_availability(payload: &[u8]) {
    match payload {
        b"online" => {
            set_gauge(AVAILABLE, 1.0);
            tracing::info!("Frigate is online");
        }
        b"offline" => {
            set_gauge(AVAILABLE, 0.0);
            tracing::warn!("Frigate is offline: no plates from its cameras until it is back");
        }
        other => tracing::debug!(
            payload = %printable(&String::from_utf8_lossy(other)),
            "unexpected payload on Frigate's available topic"
        ),
    }
}

const CONNECTED: (&str, &str) = crate::metrics::FRIGATE_CONNECTED;
const AVAILABLE: (&str, &str) = crate::metrics::FRIGATE_AVAILABLE;

fn set_gauge((name, help): (&str, &'static str), value: f64) {
    crate::metrics::set(name, help, &[], value);
}

/// Aborts the event-loop task when the session ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn read_file(path: &std::path::Path, key: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{key}: cannot read {}", path.display()))
}

#[cfg(test)]
mod tests;
