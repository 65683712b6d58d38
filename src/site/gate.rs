//! A gate's side: receives the registry's entries (live on the log topic,
//! or answering its catch-up request), checks each one (`wire::open`),
//! applies the next one in one transaction, and reports its applied seq,
//! retained. Anything refused raises a `site_log_rejected` alarm and changes
//! nothing; a gap asks the registry for what is missing. It also sends the
//! gate's stored events to the registry, in order, from where the registry's
//! retained acknowledgement says it stopped (at least once; the registry
//! stores each once).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ed25519_dalek::SigningKey;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};
use serde_json::json;
use tokio::sync::{watch, Notify};

use super::shared;
use super::wire::{self, Incoming, Mark, Order, Rejection, Request, Topics};
use super::Host;
use super::Settings;
use crate::event::EventReason;
use crate::store::events::{self, EventKind};
use crate::store::site_gates::{self, EventsAck, GateEvents};
use crate::store::site_log;

/// The alarm's reason.
pub const REJECTED: &str = EventReason::SiteLogRejected.as_str();

/// At most one alarm per kind of refusal in this long; the next one counts
/// those held back, so a flood of forged messages cannot flood the outbox.
const ALARM_EVERY: Duration = Duration::from_secs(10);

/// Most events in one message to the registry.
const EVENTS_BATCH: u32 = 200;
/// Most events sent and not yet acknowledged.
const EVENTS_WINDOW: i64 = 2000;
/// Events sent and not acknowledged in this long go again (the registry was
/// away while the broker was up, and nobody stored them).
const EVENTS_RESEND: Duration = Duration::from_secs(5);
/// Visitor uses reported and not acknowledged in this long go again.
const USES_RESEND: Duration = Duration::from_secs(2);
/// Use reports remembered for their acknowledgement.
const USES_KEPT: usize = 16;

struct Gate {
    host: Arc<dyn Host>,
    settings: Settings,
    /// This gate's key: its reports to the registry are signed with it.
    key: SigningKey,
    topics: Topics,
    client: AsyncClient,
    /// A catch-up was asked for and its end has not arrived (until this instant).
    catching_up: Option<Instant>,
    /// The applied seq when the current catch-up was asked for.
    asked_at: i64,
    /// Woken after each applied change (the daemon reloads its register).
    applied: Arc<Notify>,
    /// Per kind of refusal: when its last alarm was raised, and how many were held back since.
    alarms: HashMap<&'static str, (Instant, u64)>,
    /// The last of this gate's events sent to the registry; `None` until the
    /// connection's retained head has arrived (after the retained acknowledgement).
    events_sent: Option<i64>,
    /// The last of this gate's events the registry acknowledged.
    events_acked: i64,
    /// When the acknowledgements last caught up or moved on.
    events_progress: Instant,
    /// Connected to the broker (subscriptions made).
    connected: bool,
    /// Use reports sent by this process and not acknowledged: the last
    /// `site_uses` row each holds, and when it was sent.
    uses_sent: HashMap<String, (i64, Instant)>,
    /// The other gateways' passages and failures folded so far.
    shared_seen: shared::Seen,
}

pub async fn run(
    host: Arc<dyn Host>,
    settings: Settings,
    key: SigningKey,
    mut shutdown: watch::Receiver<bool>,
    applied_notify: Arc<Notify>,
) -> Result<()> {
    let topics = Topics::new(&settings.site);
    let (client, mut eventloop) = AsyncClient::new(settings.mqtt_options(), 1024);
    let applied = site_log::applied_seq(host.writer().lock().conn())?;
    tracing::info!(site = %settings.site, applied, "site gate receiving the register");
    let mut gate = Gate {
        host,
        settings,
        key,
        topics,
        client,
        catching_up: None,
        asked_at: applied,
        applied: applied_notify,
        alarms: HashMap::new(),
        events_sent: None,
        events_acked: 0,
        events_progress: Instant::now(),
        connected: false,
        uses_sent: HashMap::new(),
        shared_seen: shared::Seen::default(),
    };
    let mut tick = tokio::time::interval(gate.settings.timing.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tick.tick() => {
                if let Err(e) = gate.report_uses() {
                    tracing::warn!("site gate: {e:#}");
                }
                if let Err(e) = gate.send_events() {
                    tracing::warn!("site gate: {e:#}");
                }
            }
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => gate.connected(),
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic).into_owned();
                    if let Err(e) = gate.received(&topic, &p.payload) {
                        tracing::warn!("site gate: {e:#}");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("site gate: site broker {}: {e}; deciding on the last good register", gate.settings.broker);
                    // Unacknowledged events go again after the reconnect.
                    gate.events_sent = None;
                    gate.connected = false;
                    tokio::select! {
                        _ = shutdown.changed() => break,
                        _ = tokio::time::sleep(gate.settings.timing.reconnect) => {}
                    }
                }
            }
        }
    }
    let _ = gate.client.try_disconnect();
    Ok(())
}

impl Gate {
    fn applied(&self) -> Result<i64> {
        site_log::applied_seq(self.host.writer().lock().conn())
    }

    fn connected(&mut self) {
        let gateway = self.settings.gateway.clone();
        // The retained acknowledgement before the retained head: when the
        // head arrives, where to resume sending events is known.
        self.events_sent = None;
        for topic in [
            self.topics.log(),
            self.topics.catchup(&gateway),
            self.topics.events_ack(&gateway),
            self.topics.use_ack(&gateway),
            self.topics.shared(),
            self.topics.shared_for(&gateway),
            self.topics.head(),
        ] {
            if let Err(e) = self.client.try_subscribe(topic, QoS::AtLeastOnce) {
                tracing::warn!("site gate: cannot subscribe: {e}");
            }
        }
        self.connected = true;
        // Subscriptions are processed before these requests, so the answers find them.
        self.ask();
        self.ask_shared();
        self.report();
    }

    fn received(&mut self, topic: &str, payload: &[u8]) -> Result<()> {
        if topic == self.topics.use_ack(&self.settings.gateway) {
            return self.uses_acknowledged(payload);
        }
        if topic == self.topics.shared() || topic == self.topics.shared_for(&self.settings.gateway)
        {
            return self.shared_received(payload);
        }
        if topic == self.topics.events_ack(&self.settings.gateway) {
            let ack: EventsAck =
                serde_json::from_slice(payload).context("the registry's acknowledgement")?;
            if ack.seq > self.events_acked {
                self.events_progress = Instant::now();
            }
            self.events_acked = ack.seq;
            if let Some(sent) = self.events_sent.as_mut() {
                *sent = (*sent).max(ack.seq);
            }
            return Ok(());
        }
        if topic == self.topics.head() {
            if self.events_sent.is_none() {
                self.events_sent = Some(self.events_acked);
            }
            let mark: Mark = serde_json::from_slice(payload).context("the registry's head")?;
            if mark.seq > self.applied()? && !self.is_catching_up() {
                self.ask();
            }
            return Ok(());
        }
        let live = topic == self.topics.log();
        match wire::open(payload, &self.settings.site, self.pinned()?) {
            Err(rejection) => self.reject(&rejection, None),
            Ok(Incoming::End(head)) => {
                self.catching_up = None;
                let applied = self.applied()?;
                // More to fetch, and the last answer made progress: ask for the next batch.
                if head > applied && applied > self.asked_at {
                    self.ask();
                }
                Ok(())
            }
            Ok(Incoming::Snapshot(snapshot)) => {
                if snapshot.seq > self.applied()? {
                    site_log::apply_snapshot(self.host.writer().lock().conn(), &snapshot)?;
                    tracing::info!(
                        seq = snapshot.seq,
                        "site gate: applied the register snapshot"
                    );
                    self.applied_one();
                }
                Ok(())
            }
            Ok(Incoming::Entry(entry)) => {
                let applied = self.applied()?;
                match wire::order(applied, entry.seq) {
                    Order::Next => {
                        site_log::apply_entry(self.host.writer().lock().conn(), &entry)?;
                        self.applied_one();
                        Ok(())
                    }
                    Order::Applied => Ok(()),
                    // Live entries overtake a catch-up in progress: it brings them.
                    Order::Gap if live && self.is_catching_up() => Ok(()),
                    Order::Gap => {
                        let gap = Rejection::Gap {
                            expected: applied + 1,
                            got: entry.seq,
                        };
                        self.reject(&gap, Some(entry.seq))?;
                        self.ask();
                        Ok(())
                    }
                }
            }
        }
    }

    fn pinned(&self) -> Result<&ed25519_dalek::VerifyingKey> {
        self.settings
            .registry_key
            .as_ref()
            .context("site.registry_key is not set")
    }

    fn is_catching_up(&self) -> bool {
        self.catching_up.is_some_and(|until| Instant::now() < until)
    }

    /// Asks the registry for the entries after the applied seq.
    fn ask(&mut self) {
        let after = match self.applied() {
            Ok(seq) => seq,
            Err(e) => {
                tracing::warn!("site gate: {e:#}");
                return;
            }
        };
        let request = Request {
            gate: self.settings.gateway.clone(),
            after,
        };
        let payload = serde_json::to_vec(&request).unwrap_or_default();
        match self
            .client
            .try_publish(self.topics.request(), QoS::AtLeastOnce, false, payload)
        {
            Ok(()) => {
                self.asked_at = after;
                self.catching_up = Some(Instant::now() + self.settings.timing.catchup_timeout);
            }
            Err(e) => tracing::warn!("site gate: cannot ask for a catch-up: {e}"),
        }
    }

    /// Asks the registry for the last day of the other gateways' passages
    /// and failures (after a restart or an outage).
    fn ask_shared(&self) {
        let request = shared::SharedRequest {
            gate: self.settings.gateway.clone(),
        };
        let payload = serde_json::to_vec(&request).unwrap_or_default();
        if let Err(e) = self.client.try_publish(
            self.topics.shared_request(),
            QoS::AtLeastOnce,
            false,
            payload,
        ) {
            tracing::warn!("site gate: cannot ask for the site's shared state: {e}");
        }
    }

    /// The registry's redistribution of the other gateways' passages and
    /// failed guesses: checked like a log entry (a forged or foreign one
    /// raises the alarm and changes nothing), then folded into the access
    /// state, each item once.
    fn shared_received(&mut self, payload: &[u8]) -> Result<()> {
        let state = match shared::open(payload, &self.settings.site, self.pinned()?) {
            Ok(state) => state,
            Err(rejection) => return self.reject(&rejection, None),
        };
        let fresh = self.shared_seen.fresh(&self.settings.gateway, state.items);
        if !fresh.is_empty() {
            tracing::info!(
                items = fresh.len(),
                "site gate: folded the other gateways' passages and failures"
            );
            self.host.site_shared(&fresh);
        }
        Ok(())
    }

    /// Reports the visitor-pass uses spent here to the registry, which
    /// redistributes them. Window: until the registry's entry reaches the
    /// other gates (well under a second online; while the broker or the
    /// registry is down, a pass can be used once at each gate). A use is
    /// forgotten here only when the registry acknowledged a report holding it
    /// (`use_ack`); until then each report carries every unacknowledged use,
    /// sent again after [`USES_RESEND`] (the registry's lower count wins, so
    /// a repeat changes nothing).
    fn report_uses(&mut self) -> Result<()> {
        if !self.connected {
            return Ok(());
        }
        let (upto, uses) = site_log::unreported_uses(self.host.writer().lock().conn())?;
        if uses.is_empty() {
            return Ok(());
        }
        let fresh = self
            .uses_sent
            .iter()
            .any(|(_, (sent_upto, at))| *sent_upto >= upto && at.elapsed() < USES_RESEND);
        if fresh {
            return Ok(());
        }
        let report = site_log::UseReport {
            batch: uuid::Uuid::now_v7().simple().to_string(),
            upto,
            uses,
        };
        let payload = self.signed(wire::USE_REPORT, &report)?;
        self.client
            .try_publish(
                self.topics.use_report(&self.settings.gateway),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .context("cannot queue the visitor uses for the registry")?;
        // Older reports stay answerable (an acknowledgement may cross a resend).
        if self.uses_sent.len() >= USES_KEPT {
            if let Some(oldest) = self
                .uses_sent
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(b, _)| b.clone())
            {
                self.uses_sent.remove(&oldest);
            }
        }
        self.uses_sent.insert(report.batch, (upto, Instant::now()));
        Ok(())
    }

    /// The registry merged a report: its uses are forgotten here. An
    /// acknowledgement of a report this process did not send (a retained one
    /// from before a restart) is ignored, so it never clears a use the
    /// registry has not seen.
    fn uses_acknowledged(&mut self, payload: &[u8]) -> Result<()> {
        let ack: site_log::UseAck =
            serde_json::from_slice(payload).context("the registry's use acknowledgement")?;
        let Some((upto, _)) = self.uses_sent.get(&ack.batch).copied() else {
            return Ok(());
        };
        site_log::clear_uses(self.host.writer().lock().conn(), upto)?;
        // Rows through `upto` are gone (their ids may be reused once the table
        // is empty): no report covering only them may clear anything again.
        self.uses_sent.retain(|_, (u, _)| *u > upto);
        Ok(())
    }

    /// Sends the events stored here since the last sent, for the registry's
    /// log (the station receives them from the gate's own uplink as before).
    fn send_events(&mut self) -> Result<()> {
        let Some(mut sent) = self.events_sent else {
            return Ok(());
        };
        if sent <= self.events_acked {
            self.events_progress = Instant::now();
        } else if self.events_progress.elapsed() >= EVENTS_RESEND {
            tracing::debug!(
                from = self.events_acked,
                "site gate: events not acknowledged; sending them again"
            );
            sent = self.events_acked;
            self.events_progress = Instant::now();
        }
        self.events_sent = Some(sent);
        if sent - self.events_acked >= EVENTS_WINDOW {
            return Ok(());
        }
        let events =
            site_gates::events_after(self.host.writer().lock().conn(), sent, EVENTS_BATCH)?;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(());
        };
        let payload = self.signed(wire::EVENTS, &GateEvents { events })?;
        self.client
            .try_publish(
                self.topics.events(&self.settings.gateway),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .context("cannot queue events for the registry")?;
        self.events_sent = Some(last);
        Ok(())
    }

    /// A report of `kind` (its topic's last level) for the registry, signed
    /// with this gate's key (`wire::report_message`).
    fn signed<T: serde::Serialize>(&self, kind: &str, body: &T) -> Result<Vec<u8>> {
        wire::report_message(
            &self.key,
            &self.settings.site,
            &self.settings.gateway,
            kind,
            body,
        )
        .with_context(|| format!("cannot encode a {kind} report for the registry"))
    }

    /// Tells the daemon and the site how far the register is now.
    fn applied_one(&self) {
        self.applied.notify_one();
        self.report();
    }

    /// Publishes the applied seq, retained, for the registry and the console.
    fn report(&self) {
        let status = match site_log::status(self.host.writer().lock().conn()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("site gate: {e:#}");
                return;
            }
        };
        let mark = Mark {
            seq: status.seq,
            at: status.applied_at,
        };
        let payload = match self.signed("applied", &mark) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("site gate: {e:#}");
                return;
            }
        };
        let topic = self.topics.applied(&self.settings.gateway);
        if let Err(e) = self
            .client
            .try_publish(topic, QoS::AtLeastOnce, true, payload)
        {
            tracing::warn!("site gate: cannot report the applied seq: {e}");
        }
    }

    /// Records the refusal as an alarm event (it reaches the station too).
    fn reject(&mut self, rejection: &Rejection, seq: Option<i64>) -> Result<()> {
        tracing::warn!(site = %self.settings.site, "site gate: refused a register change: {rejection}");
        let now = Instant::now();
        let held_back = match self.alarms.get_mut(rejection.code()) {
            Some((last, held)) if now.duration_since(*last) < ALARM_EVERY => {
                *held += 1;
                return Ok(());
            }
            Some((_, held)) => std::mem::take(held),
            None => 0,
        };
        self.alarms.insert(rejection.code(), (now, 0));
        let mut event = self.host.event(EventKind::Alarm);
        event.reason = Some(EventReason::SiteLogRejected);
        event.detail = Some(json!({
            "why": rejection.code(),
            "problem": rejection.to_string(),
            "seq": seq,
            "site": self.settings.site,
            "held_back": held_back,
        }));
        let record = events::append(self.host.writer().lock().conn(), &event)
            .context("cannot record the site_log_rejected alarm")?;
        self.host.event_stored(&record);
        Ok(())
    }
}
