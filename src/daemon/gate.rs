//! One task per gate: owns the gate's pins, door state machine and reader;
//! turns edges and commands into decisions, relay writes and events.
//!
//! Order for every credential: decide → relay → event stored → reply, so the
//! door opens without waiting for the disk and nobody hears "granted" about
//! an event that is not stored.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use super::core::{visitor_use, Core};
use super::view::{subject_fields, DecisionView, GateNotice, GateStatus, ReaderStatus};
use crate::access::{
    AccessAlarm, Credential, Decision, DenyReason, FaceCheck, GateContext, Now, PinHash, Subject,
};
use crate::config::{self, Direction, GateKind, TwoFactor};
use crate::domain::{CardFormat, CardNumber, CardRead};
use crate::door::{Door, DoorAction, DoorConfig, Relay, ReleaseCause};
use crate::hw::{Board, Edge, InputPin, Level, Pull};
use crate::metrics;
use crate::store::events::{AccessResult, EventKind, EventRecord, NewEvent};
use crate::wiegand::{self, Line, Reader, ReaderEvent, RejectKind};

/// A credential with what the presenting task knows about it.
#[derive(Clone, Debug)]
pub struct Presentation {
    pub credential: Credential,
    /// File name under `<data_dir>/snapshots/` (a face or plate camera's picture).
    pub snapshot: Option<String>,
    /// Extra facts for the event (`{"camera": "east-cam"}`); never personal data.
    pub detail: Option<serde_json::Value>,
}

impl From<Credential> for Presentation {
    fn from(credential: Credential) -> Presentation {
        Presentation {
            credential,
            snapshot: None,
            detail: None,
        }
    }
}

/// The result of presenting a credential.
#[derive(Clone, Debug)]
pub struct Presented {
    pub decision: Decision,
    pub view: DecisionView,
    /// The stored event; `None` if the write failed (it is retried).
    pub event: Option<EventRecord>,
}

pub(crate) enum GateCommand {
    Present {
        presentation: Presentation,
        reply: oneshot::Sender<Presented>,
    },
    Status {
        reply: oneshot::Sender<GateStatus>,
    },
    /// Answers once every input queued before it has been handled.
    Sync {
        reply: oneshot::Sender<()>,
    },
    /// New live settings (SIGHUP); the gate takes the keys `daemon::reload`
    /// lists as live from `gate` and ignores the rest.
    Reconfigure {
        gate: Box<config::Gate>,
        access: config::Access,
        reply: oneshot::Sender<()>,
    },
    /// Hands the next card read at this gate's reader to `reply` instead of
    /// deciding on it (enrolment: "present the card at reader X now").
    Capture {
        reply: oneshot::Sender<CapturedCard>,
    },
}

/// A card read at a reader while the console was waiting for one.
#[derive(Clone, Debug, PartialEq)]
pub struct CapturedCard {
    pub card: crate::domain::CardNumber,
    pub format: CardFormat,
}

/// Faces seen this long before a card is read count for card + face: people
/// look at the camera as they walk up, then down at the reader.
pub(crate) const FACE_LOOKBACK: Duration = Duration::from_secs(5);
/// How often a card waiting for its owner's face looks at the recent faces.
const FACE_POLL: Duration = Duration::from_millis(100);

/// A card at a card + face gate, waiting (up to `face_wait_s`) for its
/// owner's face. The gate keeps serving its other inputs meanwhile.
struct PendingCard {
    card: CardNumber,
    format: CardFormat,
    read_at: std::time::Instant,
    deadline: Instant,
    next_check: Instant,
}

#[derive(Clone, Copy, Debug)]
enum Input {
    Wiegand(Line),
    Contact,
    Button,
    Loop,
    Tamper,
}

struct InputEdge {
    input: Input,
    edge: Edge,
}

pub(crate) struct GateTask {
    cfg: config::Gate,
    ctx: GateContext,
    core: Arc<Core>,
    door: Door,
    relay: Relay,
    reader: Option<Reader>,
    /// When the last Wiegand edge arrived (for the quiet-gap timer) and its stamp.
    last_wiegand: Option<(Instant, Duration)>,
    tamper: bool,
    notices: broadcast::Sender<GateNotice>,
    /// Who is waiting for the next card read (see [`GateCommand::Capture`]).
    capture: Option<oneshot::Sender<CapturedCard>>,
    /// A card waiting for its owner's face (card + face gates only).
    pending_card: Option<PendingCard>,
    // Inputs stay claimed (and their edge callbacks alive) while the task runs.
    _pins: Vec<Box<dyn InputPin>>,
}

/// Claims the gate's pins and starts its task. Fails (and leaves the gate out
/// of service) if the backend or a pin cannot be opened.
pub(crate) fn spawn(
    cfg: config::Gate,
    access: &config::Access,
    board: Arc<dyn Board>,
    core: Arc<Core>,
    shutdown: watch::Receiver<bool>,
) -> Result<(
    mpsc::Sender<GateCommand>,
    broadcast::Sender<GateNotice>,
    tokio::task::JoinHandle<bool>,
)> {
    let relay_pin = board
        .output(cfg.relay_pin, Relay::locked_level(&cfg))
        .context("relay_pin")?;
    let mut relay = Relay::new(relay_pin, &cfg);
    relay
        .lock()
        .context("cannot put the relay in its locked state")?;
    let (input_tx, input_rx) = mpsc::unbounded_channel();
    let mut pins = Vec::new();
    let mut door = Door::new(DoorConfig::from_gate(&cfg));
    let now = core.clock.mono();
    let wire = |pin: Option<config::GpioPin>,
                input: Input,
                name: &str,
                pins: &mut Vec<Box<dyn InputPin>>|
     -> Result<Option<Level>> {
        let Some(pin) = pin else { return Ok(None) };
        let mut p = board
            .input(pin, Pull::Up)
            .with_context(|| format!("{name} ({pin})"))?;
        let tx = input_tx.clone();
        p.on_edge(Box::new(move |edge| {
            let _ = tx.send(InputEdge { input, edge });
        }))
        .with_context(|| format!("{name} ({pin})"))?;
        let level = p.level().with_context(|| format!("{name} ({pin})"))?;
        pins.push(p);
        Ok(Some(level))
    };
    if let Some(level) = wire(
        cfg.door_contact_pin,
        Input::Contact,
        "door_contact_pin",
        &mut pins,
    )? {
        door.initial_position(level == Level::High, now);
    }
    wire(
        cfg.exit_button_pin,
        Input::Button,
        "exit_button_pin",
        &mut pins,
    )?;
    if let Some(level) = wire(cfg.loop_pin, Input::Loop, "loop_pin", &mut pins)? {
        door.vehicle(level == Level::Low, now);
    }
    let tamper = wire(cfg.tamper_pin, Input::Tamper, "tamper_pin", &mut pins)? == Some(Level::High);
    let reader = if cfg.wiegand_d0_pin.is_some() {
        wire(
            cfg.wiegand_d0_pin,
            Input::Wiegand(Line::D0),
            "wiegand_d0_pin",
            &mut pins,
        )?;
        wire(
            cfg.wiegand_d1_pin,
            Input::Wiegand(Line::D1),
            "wiegand_d1_pin",
            &mut pins,
        )?;
        Some(Reader::new())
    } else {
        None
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (notices, _) = broadcast::channel(256);
    let task = GateTask {
        ctx: GateContext::from_config(&cfg, access),
        cfg,
        core,
        door,
        relay,
        reader,
        last_wiegand: None,
        tamper,
        notices: notices.clone(),
        capture: None,
        pending_card: None,
        _pins: pins,
    };
    let join = tokio::spawn(task.run(input_rx, cmd_rx, shutdown));
    Ok((cmd_tx, notices, join))
}

impl GateTask {
    async fn run(
        mut self,
        mut inputs: mpsc::UnboundedReceiver<InputEdge>,
        mut commands: mpsc::Receiver<GateCommand>,
        mut shutdown: watch::Receiver<bool>,
    ) -> bool {
        tracing::info!(gate = %self.cfg.id, "gate running, relay locked");
        loop {
            if *shutdown.borrow() {
                break;
            }
            let deadline = self.deadline();
            tokio::select! {
                biased;
                _ = shutdown.changed() => {}
                Some(input) = inputs.recv() => self.on_input(input).await,
                Some(cmd) = commands.recv() => self.on_command(cmd).await,
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => self.on_timer().await,
            }
        }
        // A card still waiting for a face is decided with what was seen, so
        // its event is not lost; the relay is locked right after.
        if let Some(pending) = self.pending_card.take() {
            let check = self.face_check(&pending);
            self.finish_card(pending, check).await;
        }
        // The known safe state at shutdown: locked (barrier down).
        match self.relay.lock() {
            Ok(()) => {
                tracing::info!(gate = %self.cfg.id, "gate stopped, relay locked");
                true
            }
            Err(e) => {
                tracing::error!(gate = %self.cfg.id, "cannot lock the relay at shutdown: {e:#}");
                false
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let door = self
            .door
            .next_deadline()
            .map(|d| self.core.clock.instant_at(d));
        let reader = match (&self.reader, self.last_wiegand) {
            (Some(r), Some((at, _))) if r.in_burst() => Some(at + wiegand::QUIET_GAP),
            _ => None,
        };
        let face = self
            .pending_card
            .as_ref()
            .map(|p| p.next_check.min(p.deadline));
        [door, reader, face].into_iter().flatten().min()
    }

    async fn on_command(&mut self, cmd: GateCommand) {
        match cmd {
            GateCommand::Present {
                presentation,
                reply,
            } => {
                let presented = self.present(presentation).await;
                let _ = reply.send(presented);
            }
            GateCommand::Status { reply } => {
                let _ = reply.send(self.status());
            }
            GateCommand::Sync { reply } => {
                let _ = reply.send(());
            }
            GateCommand::Reconfigure {
                gate,
                access,
                reply,
            } => {
                self.cfg.unlock_ms = gate.unlock_ms;
                self.cfg.held_open_s = gate.held_open_s;
                self.cfg.two_factor_hours = gate.two_factor_hours;
                self.cfg.face_wait_s = gate.face_wait_s;
                self.cfg.face_unavailable = gate.face_unavailable;
                self.ctx = GateContext::from_config(&self.cfg, &access);
                self.door.set_config(DoorConfig::from_gate(&self.cfg));
                let _ = reply.send(());
            }
            // A newer request replaces an older one (whose waiter then hears "cancelled").
            GateCommand::Capture { reply } => self.capture = Some(reply),
        }
    }

    pub(crate) fn status(&self) -> GateStatus {
        let door = self.door.status();
        let now = self.core.clock.mono();
        let (locked_until, pin_resumes) = {
            let d = self.core.decider();
            (
                d.state.locked_until(&self.cfg.id, now),
                d.state.pin_entry_resumes(&self.ctx, now),
            )
        };
        GateStatus {
            id: self.cfg.id.to_string(),
            name: self.cfg.name.clone(),
            kind: self.cfg.kind,
            direction: self.cfg.direction,
            backend: self.cfg.backend,
            lock: if door.released { "released" } else { "locked" }.into(),
            door: door.position,
            vehicle_present: self.cfg.loop_pin.map(|_| door.vehicle_present),
            alarms: door.alarms,
            tamper: self.tamper,
            reader: self.reader.as_ref().map(|r| ReaderStatus {
                health: r.health(),
                locked_out_s: locked_until.map(|u| (u - now).as_secs().max(1)),
                pin_suspended_s: pin_resumes.map(|u| u.saturating_sub(now).as_secs().max(1)),
            }),
            out_of_service: None,
            two_factor: two_factor_words(&self.ctx),
            two_factor_now: self.face_needed_now(),
            face: self
                .core
                .face_witness()
                .and_then(|w| w.gate_status(&self.cfg.id)),
        }
    }

    /// Whether the two-factor rule applies at this moment (hours included).
    fn face_needed_now(&self) -> bool {
        let offset = self.core.register().offset;
        self.ctx
            .two_factor
            .required(self.core.clock.now().wall, offset)
            != crate::access::TwoFactorRequired::No
    }

    async fn on_input(&mut self, InputEdge { input, edge }: InputEdge) {
        let now = self.core.clock.mono();
        match input {
            Input::Wiegand(line) => {
                self.last_wiegand = Some((Instant::now(), edge.at));
                let events = match self.reader.as_mut() {
                    Some(r) => r.edge(line, edge),
                    None => Vec::new(),
                };
                self.on_reader(events).await;
            }
            Input::Contact => {
                let actions = self.door.contact(edge.level == Level::High, now);
                self.on_door(actions).await;
            }
            Input::Button => {
                if edge.level == Level::Low {
                    self.present(Credential::ExitButton.into()).await;
                }
            }
            Input::Loop => {
                let actions = self.door.vehicle(edge.level == Level::Low, now);
                self.on_door(actions).await;
            }
            Input::Tamper => {
                let open = edge.level == Level::High;
                if open != self.tamper {
                    self.tamper = open;
                    let (kind, reason) = if open {
                        (EventKind::Alarm, "tamper")
                    } else {
                        (EventKind::Device, "tamper_cleared")
                    };
                    self.gate_event(kind, reason, None).await;
                }
            }
        }
    }

    async fn on_timer(&mut self) {
        if let (Some(reader), Some((at, stamp))) = (self.reader.as_mut(), self.last_wiegand) {
            if reader.in_burst() && at.elapsed() >= wiegand::QUIET_GAP {
                let events = reader.finish(stamp);
                self.on_reader(events).await;
            }
        }
        if let Some(mut pending) = self.pending_card.take() {
            let now = Instant::now();
            if now >= pending.next_check || now >= pending.deadline {
                let check = self.face_check(&pending);
                let decided = !matches!(check, FaceCheck::NotSeen | FaceCheck::Mismatch { .. });
                if decided || now >= pending.deadline {
                    self.finish_card(pending, check).await;
                } else {
                    pending.next_check = now + FACE_POLL;
                    self.pending_card = Some(pending);
                }
            } else {
                self.pending_card = Some(pending);
            }
        }
        let actions = self.door.tick(self.core.clock.mono());
        self.on_door(actions).await;
    }

    /// A card read at this gate: decided at once, or (at a card + face gate
    /// that needs the face now) once its owner's face is seen or the wait ends.
    async fn on_card(&mut self, card: CardNumber, format: CardFormat) {
        if self.ctx.two_factor.mode == TwoFactor::Off {
            let mut p = Presentation::from(Credential::Card(CardRead {
                number: card,
                format,
            }));
            p.detail = Some(json!({ "format": format.as_str() }));
            self.present(p).await;
            return;
        }
        if let Some(pending) = self.pending_card.take() {
            if pending.card == card {
                // Shown again while waiting: keep waiting, do not refuse the first.
                self.pending_card = Some(pending);
                return;
            }
            let check = self.face_check(&pending);
            self.finish_card(pending, check).await;
        }
        let now = Instant::now();
        let pending = PendingCard {
            card,
            format,
            read_at: std::time::Instant::now(),
            deadline: now + self.ctx.two_factor.face_wait,
            next_check: now + FACE_POLL,
        };
        let check = self.face_check(&pending);
        let waiting_helps = matches!(check, FaceCheck::NotSeen | FaceCheck::Mismatch { .. })
            && self.face_needed(&pending.card, pending.format);
        if !waiting_helps {
            self.finish_card(pending, check).await;
            return;
        }
        tracing::info!(gate = %self.cfg.id, card = %pending.card.masked(), "card read; waiting for its owner's face");
        let _ = self.notices.send(GateNotice::FaceWanted {
            card_masked: pending.card.masked(),
            wait_s: self.ctx.two_factor.face_wait.as_secs(),
        });
        self.pending_card = Some(pending);
    }

    /// Whether this card, shown alone now, is refused only for want of a face
    /// (two factors needed at this hour, and the register admits its owner).
    fn face_needed(&self, card: &CardNumber, format: CardFormat) -> bool {
        let read = CardRead {
            number: card.clone(),
            format,
        };
        let alone = self.core.preview(&self.ctx, &Credential::Card(read));
        alone.reason() == Some(DenyReason::FaceRequired)
    }

    /// The card owner's face among the faces seen at this gate since shortly
    /// before the card was read.
    fn face_check(&self, pending: &PendingCard) -> FaceCheck {
        let Some(owner) = self.core.register().card_owner(&pending.card.key()) else {
            return FaceCheck::NotSeen;
        };
        let since = pending
            .read_at
            .checked_sub(FACE_LOOKBACK)
            .unwrap_or(pending.read_at);
        match self.core.face_witness() {
            Some(witness) => witness.check_owner(&self.cfg.id, owner, since),
            None => FaceCheck::Unavailable,
        }
    }

    async fn finish_card(&mut self, pending: PendingCard, check: FaceCheck) {
        let mut detail = serde_json::Map::new();
        detail.insert("format".into(), json!(pending.format.as_str()));
        // Where the face is not needed now (other hours, or the register
        // refuses the card anyway), the card is decided and logged as a card.
        let credential = if self.face_needed(&pending.card, pending.format) {
            let waited = pending.read_at.elapsed().as_millis() as u64;
            detail.insert("face_wait_ms".into(), json!(waited));
            if check == FaceCheck::Unavailable {
                detail.insert("face_unavailable".into(), json!(true));
                tracing::warn!(gate = %self.cfg.id, fallback = ?self.cfg.face_unavailable, "card + face gate without a working camera");
            }
            Credential::CardAndFace {
                card: CardRead {
                    number: pending.card,
                    format: pending.format,
                },
                face: check,
            }
        } else {
            Credential::Card(CardRead {
                number: pending.card,
                format: pending.format,
            })
        };
        let mut p = Presentation::from(credential);
        p.detail = Some(serde_json::Value::Object(detail));
        self.present(p).await;
    }

    async fn on_reader(&mut self, events: Vec<ReaderEvent>) {
        for event in events {
            match event {
                ReaderEvent::Card { card, format } => {
                    if let Some(waiting) = self.capture.take().filter(|w| !w.is_closed()) {
                        let masked = card.masked();
                        let captured = CapturedCard {
                            card: card.clone(),
                            format,
                        };
                        if waiting.send(captured).is_ok() {
                            tracing::info!(gate = %self.cfg.id, "card {masked} captured for enrolment (no access decision)");
                            let _ = self.notices.send(GateNotice::CardCaptured {
                                card_masked: masked,
                            });
                            continue;
                        }
                    }
                    self.on_card(card, format).await;
                }
                ReaderEvent::Pin(digits) => {
                    let hash = PinHash::of(self.core.secret(), &digits.0);
                    self.present(Credential::Pin(hash).into()).await;
                }
                ReaderEvent::KeyBuffered { digits } => {
                    let _ = self.notices.send(GateNotice::KeyBuffered { digits });
                }
                ReaderEvent::Rejected(rejection) => {
                    tracing::warn!(gate = %self.cfg.id, "Wiegand frame rejected: {}", rejection.detail);
                    let kind = match rejection.kind {
                        RejectKind::Parity => "parity",
                        RejectKind::Length => "length",
                        RejectKind::Noise => "noise",
                    };
                    metrics::inc(
                        "gatehouse_reader_rejections_total",
                        "Wiegand frames refused by the decoder, by gate and kind.",
                        &[("gate", self.cfg.id.as_str()), ("kind", kind)],
                    );
                    let _ = self.notices.send(GateNotice::FrameRejected { rejection });
                }
                ReaderEvent::Fault { bad_frames } => {
                    metrics::inc(
                        "gatehouse_reader_faults_total",
                        "Readers that kept sending bad frames (reader_fault events), by gate.",
                        &[("gate", self.cfg.id.as_str())],
                    );
                    let health = self.reader.as_ref().map(|r| r.health());
                    let detail = json!({ "bad_frames": bad_frames, "health": health });
                    self.gate_event(EventKind::Device, "reader_fault", Some(detail))
                        .await;
                }
                ReaderEvent::Recovered => {
                    self.gate_event(EventKind::Device, "reader_recovered", None)
                        .await;
                }
            }
        }
    }

    async fn on_door(&mut self, actions: Vec<DoorAction>) {
        for action in actions {
            match action {
                DoorAction::Release => self.set_relay(true),
                DoorAction::Lock => self.set_relay(false),
                DoorAction::Alarm(a) => self.gate_event(EventKind::Alarm, a.as_str(), None).await,
                DoorAction::AlarmCleared(a) => {
                    let reason = format!("{}_cleared", a.as_str());
                    self.gate_event(EventKind::Device, &reason, None).await
                }
            }
        }
    }

    fn set_relay(&mut self, released: bool) {
        if let Err(e) = self.relay.set_released(released) {
            tracing::error!(gate = %self.cfg.id, released, "relay write failed: {e:#}");
        }
    }

    /// Decide → relay → event stored → reply.
    async fn present(&mut self, p: Presentation) -> Presented {
        let (decision, now) = self.core.decide(&self.ctx, &p.credential);
        let result = if decision.is_granted() {
            "granted"
        } else {
            "denied"
        };
        metrics::inc(
            "gatehouse_decisions_total",
            "Access decisions, by gate and result.",
            &[("gate", self.cfg.id.as_str()), ("result", result)],
        );
        if decision.is_granted() {
            let cause = match p.credential {
                Credential::ExitButton => ReleaseCause::ExitButton,
                _ => ReleaseCause::Grant,
            };
            let actions = self.door.release(cause, now.mono);
            self.on_door(actions).await;
        }
        let event = access_event(&self.cfg, &p, &decision, &now);
        let stored = match self.core.record(event, visitor_use(&decision)).await {
            Ok(record) => Some(record),
            Err(e) => {
                tracing::error!(gate = %self.cfg.id, "access event not stored yet (will retry): {e:#}");
                None
            }
        };
        if let Some(AccessAlarm::ReaderLockout {
            attempts,
            lockout_s,
        }) = decision.alarm
        {
            let detail = json!({ "attempts": attempts, "lockout_s": lockout_s });
            self.gate_event(EventKind::Alarm, "reader_lockout", Some(detail))
                .await;
        }
        if let Some(alarm) = decision.keypad_alarm {
            let detail = serde_json::to_value(alarm).ok();
            self.gate_event(EventKind::Alarm, alarm.as_str(), detail)
                .await;
        }
        if let Some(AccessAlarm::Watchlist { deny }) = decision.alarm {
            let detail = json!({
                "credential_kind": p.credential.kind(),
                "credential": p.credential.masked(),
                "denied": deny,
                "access_event_seq": stored.as_ref().map(|e| e.seq),
            });
            self.gate_event(EventKind::Alarm, "watchlist_match", Some(detail))
                .await;
        }
        let view = DecisionView::new(
            self.cfg.id.as_str(),
            &p.credential,
            &decision,
            stored.as_ref(),
        );
        tracing::info!("{}", view.line());
        let _ = self.notices.send(GateNotice::Decided(view.clone()));
        Presented {
            decision,
            view,
            event: stored,
        }
    }

    async fn gate_event(
        &mut self,
        kind: EventKind,
        reason: &str,
        detail: Option<serde_json::Value>,
    ) {
        let mut e = NewEvent::now(kind, self.core.clock.synced());
        e.gate = Some(self.cfg.id.clone());
        e.direction = Some(direction_str(self.cfg.direction).into());
        e.reason = Some(reason.into());
        e.detail = detail;
        if kind == EventKind::Alarm {
            tracing::warn!(gate = %self.cfg.id, "alarm: {reason}");
        }
        if let Err(err) = self.core.record(e, None).await {
            tracing::error!(gate = %self.cfg.id, "{reason} event not stored yet (will retry): {err:#}");
        }
    }
}

/// `card+face`, `card+face (daily 22:00-06:00)`, or `None` when off.
fn two_factor_words(ctx: &GateContext) -> Option<String> {
    if ctx.two_factor.mode == TwoFactor::Off {
        return None;
    }
    let hours: Vec<String> = ctx.two_factor.hours.iter().map(|h| h.to_string()).collect();
    Some(if hours.is_empty() {
        "card+face".to_string()
    } else {
        format!("card+face ({})", hours.join(", "))
    })
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

pub(crate) fn direction_str(d: Direction) -> &'static str {
    match d {
        Direction::In => "in",
        Direction::Out => "out",
    }
}

/// The event row for a decision.
pub(crate) fn access_event(
    gate: &config::Gate,
    p: &Presentation,
    d: &Decision,
    now: &Now,
) -> NewEvent {
    let (subject_id, subject_name) = subject_fields(d.subject.as_ref());
    let mut detail = serde_json::Map::new();
    if let Some(serde_json::Value::Object(extra)) = &p.detail {
        detail.extend(extra.clone());
    }
    if let Some(Subject::Visitor { pass, host, .. }) = &d.subject {
        detail.insert("visitor_pass".into(), json!(pass));
        detail.insert("host".into(), json!(host.0));
    }
    if let Credential::Remote { reason, .. } = &p.credential {
        detail.insert("remote_reason".into(), json!(reason));
    }
    if d.clock_override {
        detail.insert("clock_override".into(), json!(true));
    }
    if gate.kind == GateKind::Vehicle {
        detail.insert("vehicle_gate".into(), json!(true));
    }
    NewEvent {
        at: now.wall,
        clock_synced: now.clock_synced,
        kind: Some(EventKind::Access),
        gate: Some(gate.id.clone()),
        direction: Some(direction_str(gate.direction).into()),
        credential_kind: Some(p.credential.kind().into()),
        credential_masked: p.credential.masked(),
        subject_id: subject_id.map(crate::domain::ResidentId),
        subject_name,
        result: Some(if d.is_granted() {
            AccessResult::Granted
        } else {
            AccessResult::Denied
        }),
        reason: d.reason().map(|r| r.as_str().to_string()),
        score: match &p.credential {
            Credential::Face { score, .. } | Credential::SpoofedFace { score, .. } => Some(*score),
            Credential::CardAndFace { face, .. } => face.score(),
            _ => None,
        },
        snapshot: p.snapshot.clone(),
        detail: (!detail.is_empty()).then_some(serde_json::Value::Object(detail)),
    }
}
