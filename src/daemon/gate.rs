//! One task per gate: owns the gate's pins, door state machine and reader;
//! turns edges and commands into decisions, relay writes and events.
//!
//! Order for every credential: decide → relay → event stored → reply, so the
//! door opens without waiting for the disk and nobody hears "granted" about
//! an event that is not stored.
//!
//! The gate task itself never waits for the disk: it decides, moves the relay
//! and hands the event to its gate's recorder task ([`Recorder`]), which
//! writes the gate's events in order through `Core`'s writer, then
//! announces the decision and replies. Door deadlines and the next card are
//! serviced meanwhile, however slow the write.
//!
//! A failed write never passes silently: the door still acts (a resident
//! is not locked out by a full disk), the event is kept for the next write,
//! the decision reaches callers flagged `event_unsaved`, the failure is
//! logged at error and counted (`gatehouse_event_store_failures_total`), and
//! the first failure of an outage raises an `event_store_failed` alarm event
//! (itself stored, with the backlog, once the disk takes writes again).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use super::core::{visitor_use, Core};
use super::view::{subject_fields, DecisionView, GateNotice, GateStatus, ReaderStatus};
use crate::access::{
    AccessAlarm, Credential, Decision, DenyReason, FaceCheck, GateContext, HouseholdId,
    HouseholdKey, MemberFace, Now, PinHash, Subject,
};
use crate::config::{self, Direction, FaceMode, GateKind};
use crate::domain::{CardFormat, CardNumber, CardRead};
use crate::door::{Door, DoorAction, DoorConfig, Relay, ReleaseCause};
use crate::event::EventReason;
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
    /// The stored event; `None` if the write failed (it is retried, and
    /// `view.event_unsaved` says so).
    pub event: Option<EventRecord>,
}

/// Work for a gate's recorder task, in the order the gate produced it.
enum Job {
    Decision(Box<DecisionJob>),
    Event(Box<NewEvent>),
    /// Answers once every job before it is done (stored or failed).
    Sync(oneshot::Sender<()>),
}

/// A decision whose relay has moved: its event, the alarms it raised, and
/// who waits for it.
struct DecisionJob {
    event: NewEvent,
    visitor_use: Option<i64>,
    decision: Decision,
    /// Alarms stored after the access event (reader lockout, keypad).
    alarms: Vec<NewEvent>,
    /// The watchlist alarm, which names the access event's seq.
    watchlist: Option<NewEvent>,
    reply: Option<oneshot::Sender<Presented>>,
}

/// Writes one gate's events in order, so its gate task never waits for the disk.
struct Recorder {
    core: Arc<Core>,
    gate: crate::domain::GateId,
    direction: Direction,
    notices: broadcast::Sender<GateNotice>,
    /// A write failed and none has succeeded since (one alarm per outage).
    failing: bool,
}

impl Recorder {
    async fn run(mut self, mut jobs: mpsc::UnboundedReceiver<Job>) {
        while let Some(job) = jobs.recv().await {
            match job {
                Job::Decision(d) => self.decision(*d).await,
                Job::Event(e) => {
                    self.store(*e).await;
                }
                Job::Sync(reply) => {
                    let _ = reply.send(());
                }
            }
        }
    }

    async fn decision(&mut self, job: DecisionJob) {
        let DecisionJob {
            event,
            visitor_use,
            decision,
            alarms,
            watchlist,
            reply,
        } = job;
        // The view is the event's own fields (one record), and its seq once stored.
        let mut view = DecisionView::new(&event, &decision, None);
        let stored = match self.core.record(event, visitor_use).await {
            Ok(record) => {
                self.failing = false;
                Some(record)
            }
            Err(e) => {
                self.failed("access", &e).await;
                None
            }
        };
        for alarm in alarms {
            self.store(alarm).await;
        }
        if let Some(mut alarm) = watchlist {
            if let Some(serde_json::Value::Object(detail)) = alarm.detail.as_mut() {
                detail.insert(
                    "access_event_seq".into(),
                    json!(stored.as_ref().map(|e| e.seq)),
                );
            }
            self.store(alarm).await;
        }
        view.event_seq = stored.as_ref().map(|e| e.seq);
        view.event_unsaved = stored.is_none();
        if view.event_unsaved {
            tracing::error!("{}", view.line());
        } else {
            tracing::info!("{}", view.line());
        }
        let _ = self.notices.send(GateNotice::Decided(view.clone()));
        if let Some(reply) = reply {
            let _ = reply.send(Presented {
                decision,
                view,
                event: stored,
            });
        }
    }

    async fn store(&mut self, e: NewEvent) -> Option<EventRecord> {
        let what = e.reason.map_or("gate", |r| r.as_str()).to_string();
        match self.core.record(e, None).await {
            Ok(record) => {
                self.failing = false;
                Some(record)
            }
            Err(err) => {
                self.failed(&what, &err).await;
                None
            }
        }
    }

    /// An event could not be stored (it is kept and retried with the next
    /// write): logged, counted, and the first failure of an outage raises
    /// `event_store_failed`.
    async fn failed(&mut self, what: &str, e: &anyhow::Error) {
        tracing::error!(gate = %self.gate, "{what} event not stored yet (kept for the next write): {e:#}");
        metrics::inc(
            "gatehouse_event_store_failures_total",
            "Events a gate could not store when they happened (kept and retried), by gate.",
            &[("gate", self.gate.as_str())],
        );
        if std::mem::replace(&mut self.failing, true) {
            return;
        }
        let mut alarm = self.core.event(EventKind::Alarm);
        alarm.gate = Some(self.gate.clone());
        alarm.direction = Some(direction_str(self.direction).into());
        alarm.reason = Some(EventReason::EventStoreFailed);
        alarm.detail = Some(json!({ "event": what, "error": format!("{e:#}") }));
        tracing::error!(gate = %self.gate, "alarm: event_store_failed");
        // Most likely refused too while the disk fails: then it waits in the
        // backlog and is stored, before newer events, once writes work again.
        let _ = self.core.record(alarm, None).await;
    }
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

/// A household number keyed at a household gate, waiting (up to
/// `household_wait_s`) for a member's face.
struct PendingHousehold {
    keyed: HouseholdKey,
    household: HouseholdId,
    keyed_at: std::time::Instant,
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
    /// A household number waiting for a member's face (household gates only).
    pending_household: Option<PendingHousehold>,
    /// This gate's recorder: every event goes there, never awaited here.
    recorder: mpsc::UnboundedSender<Job>,
    recorder_task: Option<tokio::task::JoinHandle<()>>,
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
        // At a household gate `*` separates the parts of a keyed address.
        Some(if cfg.face_mode() == FaceMode::Household {
            Reader::with_star_separator()
        } else {
            Reader::new()
        })
    } else {
        None
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (notices, _) = broadcast::channel(256);
    let (recorder, jobs) = mpsc::unbounded_channel();
    let recorder_task = tokio::spawn(
        Recorder {
            core: core.clone(),
            gate: cfg.id.clone(),
            direction: cfg.direction,
            notices: notices.clone(),
            failing: false,
        }
        .run(jobs),
    );
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
        pending_household: None,
        recorder,
        recorder_task: Some(recorder_task),
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
        if let Some(pending) = self.pending_household.take() {
            let check = self.member_check(&pending);
            self.finish_household(pending, check, false).await;
        }
        // The known safe state at shutdown: locked (barrier down).
        let locked = match self.relay.lock() {
            Ok(()) => {
                tracing::info!(gate = %self.cfg.id, "gate stopped, relay locked");
                true
            }
            Err(e) => {
                tracing::error!(gate = %self.cfg.id, "cannot lock the relay at shutdown: {e:#}");
                false
            }
        };
        // Every event handed off is written before the task ends (and before
        // `daemon_stopped`): closing the queue lets the recorder finish it.
        let recorder = self.recorder_task.take();
        drop(self);
        if let Some(recorder) = recorder {
            let _ = recorder.await;
        }
        locked
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
        let household = self
            .pending_household
            .as_ref()
            .map(|p| p.next_check.min(p.deadline));
        [door, reader, face, household].into_iter().flatten().min()
    }

    async fn on_command(&mut self, cmd: GateCommand) {
        match cmd {
            GateCommand::Present {
                presentation,
                reply,
            } => {
                self.present(presentation, Some(reply)).await;
            }
            GateCommand::Status { reply } => {
                let _ = reply.send(self.status());
            }
            // "Handled" includes stored: the recorder answers after the
            // events queued before it.
            GateCommand::Sync { reply } => {
                let _ = self.recorder.send(Job::Sync(reply));
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
                self.cfg.household_wait_s = gate.household_wait_s;
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
        if self.ctx.two_factor.mode == FaceMode::Household {
            return true;
        }
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
                    self.present(Credential::ExitButton.into(), None).await;
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
                        (EventKind::Alarm, EventReason::Tamper)
                    } else {
                        (EventKind::Device, EventReason::TamperCleared)
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
        if let Some(mut pending) = self.pending_household.take() {
            let now = Instant::now();
            if now >= pending.next_check || now >= pending.deadline {
                let check = self.member_check(&pending);
                let expired = now >= pending.deadline;
                if member_decided(check) || expired {
                    self.finish_household(pending, check, expired).await;
                } else {
                    pending.next_check = now + FACE_POLL;
                    self.pending_household = Some(pending);
                }
            } else {
                self.pending_household = Some(pending);
            }
        }
        let actions = self.door.tick(self.core.clock.mono());
        self.on_door(actions).await;
    }

    /// A household number keyed at a household gate: one that names no
    /// household is decided at once (a wrong number, toward the lockout);
    /// otherwise a member's face seen since shortly before decides it, or the
    /// gate waits for one until `household_wait_s` has passed.
    async fn on_household(&mut self, keyed: HouseholdKey) {
        if let Some(pending) = self.pending_household.take() {
            // A new number replaces the one still waiting, which is decided
            // with what was seen for it.
            let check = self.member_check(&pending);
            self.finish_household(pending, check, false).await;
        }
        // Decided at once where no face could change the outcome: a number
        // that names no household, a locked reader, a spent PIN budget.
        let unseen = Credential::HouseholdAndFace {
            keyed: keyed.clone(),
            face: MemberFace::NotSeen,
        };
        let household = self.core.register().household_by_key(&keyed);
        let alone = self.core.preview(&self.ctx, &unseen);
        let Some(household) =
            household.filter(|_| alone.reason() == Some(DenyReason::HouseholdTimeout))
        else {
            let p = household_presentation(&keyed, MemberFace::NotSeen, None, false);
            self.present(p, None).await;
            return;
        };
        let now = Instant::now();
        let wait = self.ctx.two_factor.household_wait;
        let pending = PendingHousehold {
            keyed,
            household,
            keyed_at: std::time::Instant::now(),
            deadline: now + wait,
            next_check: now + FACE_POLL,
        };
        let check = self.member_check(&pending);
        if member_decided(check) {
            self.finish_household(pending, check, false).await;
            return;
        }
        tracing::info!(gate = %self.cfg.id, keyed = %pending.keyed, "household number keyed; waiting for a member's face");
        let _ = self.notices.send(GateNotice::HouseholdKeyed {
            keyed: pending.keyed.to_string(),
            wait_s: wait.as_secs(),
        });
        self.pending_household = Some(pending);
    }

    /// The household's members among the faces seen at this gate since
    /// shortly before the number was keyed (people look at the camera as
    /// they walk up to the keypad).
    fn member_check(&self, pending: &PendingHousehold) -> MemberFace {
        let since = pending
            .keyed_at
            .checked_sub(FACE_LOOKBACK)
            .unwrap_or(pending.keyed_at);
        let members = self
            .core
            .register()
            .household_members(pending.household)
            .to_vec();
        match self.core.face_witness() {
            Some(witness) => witness.check_members(&self.cfg.id, &members, since),
            None => MemberFace::Unavailable,
        }
    }

    async fn finish_household(
        &mut self,
        pending: PendingHousehold,
        face: MemberFace,
        expired: bool,
    ) {
        let waited = pending.keyed_at.elapsed().as_millis() as u64;
        let p = household_presentation(&pending.keyed, face, Some(waited), expired);
        self.present(p, None).await;
    }

    /// A card read at this gate: decided at once, or (at a card + face gate
    /// that needs the face now) once its owner's face is seen or the wait ends.
    async fn on_card(&mut self, card: CardNumber, format: CardFormat) {
        if self.ctx.two_factor.mode != FaceMode::CardAndFace {
            let mut p = Presentation::from(Credential::Card(CardRead {
                number: card,
                format,
            }));
            p.detail = Some(json!({ "format": format.as_str() }));
            self.present(p, None).await;
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
        self.present(p, None).await;
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
                    // At a household gate a short entry, or an address keyed
                    // with `*`, is a household number; longer ones are PINs.
                    let household = (self.ctx.two_factor.mode == FaceMode::Household)
                        .then(|| HouseholdKey::from_keyed(&digits.0))
                        .flatten();
                    if let Some(keyed) = household {
                        self.on_household(keyed).await;
                        continue;
                    }
                    let hash = PinHash::of(self.core.secret(), &digits.0);
                    self.present(Credential::Pin(hash).into(), None).await;
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
                    self.gate_event(EventKind::Device, EventReason::ReaderFault, Some(detail))
                        .await;
                }
                ReaderEvent::Recovered => {
                    self.gate_event(EventKind::Device, EventReason::ReaderRecovered, None)
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
                DoorAction::Alarm(a) => self.gate_event(EventKind::Alarm, a.reason(), None).await,
                DoorAction::AlarmCleared(a) => {
                    self.gate_event(EventKind::Device, a.cleared_reason(), None)
                        .await
                }
            }
        }
    }

    fn set_relay(&mut self, released: bool) {
        if let Err(e) = self.relay.set_released(released) {
            tracing::error!(gate = %self.cfg.id, released, "relay write failed: {e:#}");
        }
    }

    /// Decide → relay → (recorder) event stored → reply. Returns once the
    /// relay has moved; the recorder stores the event, announces the
    /// decision and answers `reply`.
    async fn present(&mut self, p: Presentation, reply: Option<oneshot::Sender<Presented>>) {
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
        let mut alarms = Vec::new();
        if let Some(AccessAlarm::ReaderLockout {
            attempts,
            lockout_s,
        }) = decision.alarm
        {
            let detail = json!({ "attempts": attempts, "lockout_s": lockout_s });
            alarms.push(self.gate_event_new(
                EventKind::Alarm,
                EventReason::ReaderLockout,
                Some(detail),
            ));
        }
        if let Some(alarm) = decision.keypad_alarm {
            let detail = serde_json::to_value(alarm).ok();
            alarms.push(self.gate_event_new(EventKind::Alarm, alarm.reason(), detail));
        }
        let watchlist = match decision.alarm {
            Some(AccessAlarm::Watchlist { deny }) => {
                let detail = json!({
                    "credential_kind": p.credential.kind(),
                    "credential": p.credential.masked(),
                    "denied": deny,
                });
                Some(self.gate_event_new(
                    EventKind::Alarm,
                    EventReason::WatchlistMatch,
                    Some(detail),
                ))
            }
            _ => None,
        };
        let job = DecisionJob {
            event,
            visitor_use: visitor_use(&decision),
            decision,
            alarms,
            watchlist,
            reply,
        };
        if self.recorder.send(Job::Decision(Box::new(job))).is_err() {
            tracing::error!(gate = %self.cfg.id, "the gate's event recorder has stopped; decision not recorded");
        }
    }

    /// An event about this gate, stamped now (the write happens later).
    fn gate_event_new(
        &self,
        kind: EventKind,
        reason: EventReason,
        detail: Option<serde_json::Value>,
    ) -> NewEvent {
        let mut e = self.core.event(kind);
        e.gate = Some(self.cfg.id.clone());
        e.direction = Some(direction_str(self.cfg.direction).into());
        e.reason = Some(reason);
        e.detail = detail;
        if kind == EventKind::Alarm {
            tracing::warn!(gate = %self.cfg.id, "alarm: {reason}");
        }
        e
    }

    async fn gate_event(
        &mut self,
        kind: EventKind,
        reason: EventReason,
        detail: Option<serde_json::Value>,
    ) {
        let e = self.gate_event_new(kind, reason, detail);
        if self.recorder.send(Job::Event(Box::new(e))).is_err() {
            tracing::error!(gate = %self.cfg.id, "the gate's event recorder has stopped; {reason} not recorded");
        }
    }
}

/// Whether a household's face check is final (waiting cannot change it):
/// a member matched, nobody to match, or no camera.
fn member_decided(check: MemberFace) -> bool {
    !matches!(check, MemberFace::NotSeen | MemberFace::NotMember { .. })
}

/// A household number and the face check for it, with what the event
/// says: household mode, the number as keyed, how long it waited and
/// whether it expired before a member's face was seen.
fn household_presentation(
    keyed: &HouseholdKey,
    face: MemberFace,
    waited_ms: Option<u64>,
    expired: bool,
) -> Presentation {
    let mut detail = serde_json::Map::new();
    detail.insert("face_mode".into(), json!("household"));
    detail.insert("household_keyed".into(), json!(keyed.as_str()));
    detail.insert("timed_out".into(), json!(expired));
    if let Some(ms) = waited_ms {
        detail.insert("household_wait_ms".into(), json!(ms));
    }
    if face == MemberFace::Unavailable {
        detail.insert("face_unavailable".into(), json!(true));
    }
    let mut p = Presentation::from(Credential::HouseholdAndFace {
        keyed: keyed.clone(),
        face,
    });
    p.detail = Some(serde_json::Value::Object(detail));
    p
}

/// `card+face`, `card+face (daily 22:00-06:00)`, or `None` when off.
fn two_factor_words(ctx: &GateContext) -> Option<String> {
    match ctx.two_factor.mode {
        FaceMode::OneToN => return None,
        FaceMode::Household => return Some("household".to_string()),
        FaceMode::CardAndFace => {}
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
        reason: d.reason().map(EventReason::from),
        score: p.credential.score(),
        snapshot: p.snapshot.clone(),
        detail: (!detail.is_empty()).then_some(serde_json::Value::Object(detail)),
        // Stamped with the decision's own time.
        ..NewEvent::stamped(EventKind::Access, now.wall, now.clock_synced)
    }
}
