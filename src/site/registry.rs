//! The registry's side: seals and signs new entries, publishes them in order
//! on the log topic with the retained head, and answers gates' catch-up
//! requests with the tail after their seq (a signed snapshot first when the
//! log was compacted past it), then an end marker. It also keeps the site's
//! view: each gate's events, stored on the daemon's writer (acknowledged,
//! retained, so a gate resumes where the registry stopped), and each gate's
//! applied entry (`store::site_gates`). Every report of a gate must be signed
//! with the key the registry pins for it (`[site] gate_keys`); an unsigned,
//! forged or unknown gate's report raises a `site_log_rejected` alarm and
//! nothing of it is used.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ed25519_dalek::SigningKey;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};
use tokio::sync::watch;

use serde_json::{json, Value};

use super::shared::{self, SharedRequest, SharedState, SiteItem};
use super::wire::{self, Mark, Rejection, Request, Topics};
use super::{Host, Settings};
use crate::event::EventReason;
use crate::store::events::{self, EventKind};
use crate::store::site_gates::{self, EventsAck, GateEvents};
use crate::store::site_log;

/// Room in the client's queue for a catch-up batch and its snapshot.
const QUEUE: usize = 4096;

/// Gates' applied reports are written at most this often (they come once per
/// entry per gate; the status needs only the latest).
const NOTE_APPLIED_EVERY: Duration = Duration::from_secs(1);

pub async fn run(
    host: Arc<dyn Host>,
    settings: Settings,
    key: SigningKey,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let writer = host.writer();
    let topics = Topics::new(&settings.site);
    // Gates' applied reports not written yet, and when they last were.
    let mut reports: HashMap<String, Mark> = HashMap::new();
    let mut noted = Instant::now();
    let mut refused = Refused::default();
    let (client, mut eventloop) = AsyncClient::new(settings.mqtt_options(), QUEUE);
    // Entries made while the registry was down reach the gates through the
    // head: each asks for what it lacks.
    let mut published = {
        let store = writer.lock();
        site_log::seal_pending(store.conn())?;
        sign_pending(store.conn(), &key)?;
        site_log::head(store.conn())?
    };
    // This gateway's own events already stored are in the catch-up answers.
    let mut own_seq = site_gates::last_event_seq(writer.lock().conn())?;
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
                if let Err(e) = share_own(writer.lock().conn(), &client, &topics, &settings, &key, &mut own_seq) {
                    tracing::warn!("site registry: {e:#}");
                }
                if noted.elapsed() >= NOTE_APPLIED_EVERY && !reports.is_empty() {
                    noted = Instant::now();
                    if let Err(e) = note_applied(host.as_ref(), std::mem::take(&mut reports)) {
                        tracing::warn!("site registry: {e:#}");
                    }
                }
            }
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.try_subscribe(topics.request(), QoS::AtLeastOnce);
                    let _ = client.try_subscribe(topics.uses_all(), QoS::AtLeastOnce);
                    let _ = client.try_subscribe(topics.use_report_all(), QoS::AtLeastOnce);
                    let _ = client.try_subscribe(topics.shared_request(), QoS::AtLeastOnce);
                    let _ = client.try_subscribe(topics.events_all(), QoS::AtLeastOnce);
                    let _ = client.try_subscribe(topics.applied_all(), QoS::AtLeastOnce);
                    publish_head(&client, &topics, published);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic);
                    let report = match topics.gate_topic(&topic) {
                        _ if topic == topics.request() => None,
                        Some((gate, kind)) => match gate_report(&settings, gate, kind, &p.payload) {
                            Ok(body) => Some((gate, kind, body)),
                            Err(rejection) => {
                                refused.raise(host.as_ref(), &settings.site, gate, kind, &rejection);
                                continue;
                            }
                        },
                        None => None,
                    };
                    let result = match report {
                        None if topic == topics.request() => {
                            answer(writer.lock().conn(), &key, &client, &topics, &p.payload, settings.catchup_batch)
                        }
                        None if topic == topics.shared_request() => {
                            shared_answer(host.as_ref(), &client, &topics, &settings, &key, &p.payload)
                        }
                        None => Err(anyhow::anyhow!("a message on an unexpected topic {topic}")),
                        Some((gate, super::wire::EVENTS, body)) => {
                            gate_events(host.as_ref(), &client, &topics, gate, body).and_then(|items| {
                                // This daemon's gates count the site's passages and failures too.
                                host.site_shared(&items);
                                share(&client, &settings.site, &key, &items, &topics.shared())
                            })
                        }
                        Some((gate, "applied", body)) => applied_report(&mut reports, gate, body),
                        Some((gate, super::wire::USE_REPORT, body)) => {
                            use_report(writer.lock().conn(), &client, &topics, gate, body)
                        }
                        Some((gate, "uses", body)) => visitor_use(writer.lock().conn(), gate, body),
                        Some((gate, kind, _)) => Err(anyhow::anyhow!("gate {gate}: a report of an unknown kind {kind:?}")),
                    };
                    if let Err(e) = result {
                        tracing::warn!("site registry: {e:#}");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("site registry: site broker {}: {e}", settings.broker);
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

/// A gate's report, checked before anything of it is used: the gate named by
/// the topic is a well-formed id with a pinned key, the report is signed with
/// that key for this site, gate and kind (`wire::open_report`). Its body.
fn gate_report(
    settings: &Settings,
    gate: &str,
    kind: &str,
    payload: &[u8],
) -> Result<Value, Rejection> {
    crate::domain::validate_slug(gate).map_err(Rejection::Malformed)?;
    wire::open_report(
        payload,
        &settings.site,
        gate,
        kind,
        settings.gate_keys.get(gate),
    )
}

/// At most one alarm per gate and kind of refusal in this long; the next one
/// counts those held back, so a flood of forged reports cannot flood the log.
const ALARM_EVERY: Duration = Duration::from_secs(10);

/// The registry's refusals of gates' reports, for their alarms.
#[derive(Default)]
struct Refused {
    /// Per (gate, why): when its last alarm was raised, and how many were held back since.
    alarms: HashMap<(String, &'static str), (Instant, u64)>,
}

impl Refused {
    /// Logs the refusal and records it as a `site_log_rejected` alarm (at
    /// most one per gate and reason every `ALARM_EVERY`); nothing of the
    /// report was used.
    fn raise(&mut self, host: &dyn Host, site: &str, gate: &str, kind: &str, why: &Rejection) {
        tracing::warn!(
            gate,
            report = kind,
            "site registry: refused a gate's report: {why}"
        );
        let now = Instant::now();
        let slot = (gate.to_string(), why.code());
        let held_back = match self.alarms.get_mut(&slot) {
            Some((last, held)) if now.duration_since(*last) < ALARM_EVERY => {
                *held += 1;
                return;
            }
            Some((_, held)) => std::mem::take(held),
            None => 0,
        };
        self.alarms.insert(slot, (now, 0));
        let mut event = host.event(EventKind::Alarm);
        event.reason = Some(EventReason::SiteLogRejected);
        event.detail = Some(json!({
            "why": why.code(),
            "problem": why.to_string(),
            "site": site,
            "from_gate": gate,
            "report": kind,
            "held_back": held_back,
        }));
        let writer = host.writer();
        let stored = events::append(writer.lock().conn(), &event);
        match stored {
            Ok(record) => host.event_stored(&record),
            Err(e) => {
                tracing::warn!("site registry: cannot record the site_log_rejected alarm: {e:#}")
            }
        }
    }
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

/// A gate's batch of events: stored on the daemon's writer (each once),
/// announced to the live page, and acknowledged (retained) to the gate.
/// Returns what the newly stored ones mean for the other gates' access state.
fn gate_events(
    host: &dyn Host,
    client: &AsyncClient,
    topics: &Topics,
    gate: &str,
    body: Value,
) -> Result<Vec<SiteItem>> {
    let batch: GateEvents = serde_json::from_value(body)
        .with_context(|| format!("gate {gate}'s events are not a batch of events"))?;
    let writer = host.writer();
    let (written, acked) = {
        let store = writer.lock();
        site_gates::store_gate_events(store.conn(), gate, &batch)?
    };
    for record in &written {
        host.event_stored(record);
    }
    let ack = serde_json::to_vec(&EventsAck { seq: acked }).unwrap_or_default();
    client
        .try_publish(topics.events_ack(gate), QoS::AtLeastOnce, true, ack)
        .with_context(|| format!("cannot queue the acknowledgement of gate {gate}'s events"))?;
    tracing::debug!(
        gate,
        stored = written.len(),
        acked,
        "site registry: a gate's events"
    );
    let new: Vec<_> = batch
        .events
        .into_iter()
        .filter(|e| written.iter().any(|w| w.id == e.id))
        .collect();
    Ok(shared::items_of(gate, &new))
}

/// Sends `items` to the gates on `topic`, signed with the registry's key.
fn share(
    client: &AsyncClient,
    site: &str,
    key: &SigningKey,
    items: &[SiteItem],
    topic: &str,
) -> Result<()> {
    let state = SharedState {
        v: shared::VERSION,
        site: site.to_string(),
        at: crate::store::now_rfc3339(),
        items: items.to_vec(),
    };
    let body = shared::body(&state);
    client
        .try_publish(
            topic,
            QoS::AtLeastOnce,
            false,
            shared::message(&body, &wire::sign(key, &body)),
        )
        .context("cannot queue the site's shared state")?;
    Ok(())
}

/// Shares the passages and failures of this gateway's own gates (the
/// registry may be a gateway of the site too), from its events after `seen`.
fn share_own(
    conn: &rusqlite::Connection,
    client: &AsyncClient,
    topics: &Topics,
    settings: &Settings,
    key: &SigningKey,
    seen: &mut i64,
) -> Result<()> {
    let events = site_gates::events_after(conn, *seen, 500)?;
    let Some(last) = events.last().map(|e| e.seq) else {
        return Ok(());
    };
    let own: Vec<_> = events
        .into_iter()
        .filter(|e| !shared::from_a_gate(e))
        .collect();
    let items = shared::items_of(&settings.gateway, &own);
    if !items.is_empty() {
        share(client, &settings.site, key, &items, &topics.shared())?;
    }
    *seen = last;
    Ok(())
}

/// A gate asks for the last day of the shared state (on connect): each
/// person's last passage and the failures, from the events stored here (the
/// gates' and this gateway's own).
fn shared_answer(
    host: &dyn Host,
    client: &AsyncClient,
    topics: &Topics,
    settings: &Settings,
    key: &SigningKey,
    payload: &[u8],
) -> Result<()> {
    let (site, own) = (settings.site.as_str(), settings.gateway.as_str());
    let request: SharedRequest =
        serde_json::from_slice(payload).context("a shared-state request that is not JSON")?;
    crate::domain::validate_slug(&request.gate)
        .map_err(anyhow::Error::msg)
        .context("shared-state request: gate")?;
    let since = chrono::Utc::now() - shared::CATCHUP;
    let records = {
        let writer = host.writer();
        let store = writer.lock();
        crate::store::events::since(store.conn(), since)?
    };
    let items = shared::recent(&records, own);
    tracing::debug!(gate = %request.gate, items = items.len(), "site registry: answered a shared-state request");
    share(client, site, key, &items, &topics.shared_for(&request.gate))
}

/// A gate's retained applied seq: kept until the next note.
fn applied_report(reports: &mut HashMap<String, Mark>, gate: &str, body: Value) -> Result<()> {
    let mark: Mark = serde_json::from_value(body)
        .with_context(|| format!("gate {gate}'s applied report is not a mark"))?;
    reports.insert(gate.to_string(), mark);
    Ok(())
}

/// Writes the gates' latest applied reports, on the daemon's writer.
fn note_applied(host: &dyn Host, reports: HashMap<String, Mark>) -> Result<()> {
    let writer = host.writer();
    let store = writer.lock();
    for (gate, mark) in reports {
        site_gates::note_applied(store.conn(), &gate, mark.seq, mark.at.as_deref())?;
    }
    Ok(())
}

/// A gate's report of the visitor uses it spent: each lowers its pass here
/// (making the entry that tells every other gate), then the report is
/// acknowledged, retained, so the gate forgets those uses only once they are
/// committed here.
fn use_report(
    conn: &rusqlite::Connection,
    client: &AsyncClient,
    topics: &Topics,
    gate: &str,
    body: Value,
) -> Result<()> {
    let report: site_log::UseReport = serde_json::from_value(body)
        .with_context(|| format!("gate {gate}'s visitor use report is not a report"))?;
    let lowered = site_log::merge_uses(conn, gate, &report)?;
    if lowered > 0 {
        tracing::info!(gate, lowered, "site registry: a gate spent visitor uses");
    }
    let ack = site_log::UseAck {
        batch: report.batch,
        upto: report.upto,
    };
    let ack = serde_json::to_vec(&ack).context("cannot encode a use acknowledgement")?;
    client
        .try_publish(topics.use_ack(gate), QoS::AtLeastOnce, true, ack)
        .with_context(|| format!("cannot queue the acknowledgement of gate {gate}'s uses"))?;
    Ok(())
}

/// A gate spent a visitor-pass use: lower the pass here, which makes the
/// entry that tells every other gate.
fn visitor_use(conn: &rusqlite::Connection, gate: &str, body: Value) -> Result<()> {
    let report: site_log::VisitorUse = serde_json::from_value(body)
        .with_context(|| format!("gate {gate}'s visitor use report is not a use"))?;
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
