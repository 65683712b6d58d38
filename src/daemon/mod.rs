//! `gatehouse run`: the gate controller as tokio tasks. One task per gate
//! ([`gate`]), a register watcher that reloads the in-memory register when
//! the database changes, and whatever else is added with [`Daemon::spawn`]
//! (cameras, the uplink, the console).
//!
//! Other parts talk to the gates through a cloneable [`GateHandle`]:
//! `present(gate, credential)` decides, moves the relay and stores the event
//! before it returns (or says `event_unsaved` when the write failed);
//! `events()` subscribes to every stored event; `with_store` runs on the
//! process's one writer, `read` on a read-only connection.
//!
//! Architecture Invariant: a gate whose hardware fails is out of service on
//! its own; the daemon and the other gates keep running.

pub mod cameras;
pub mod clock;
mod core;
mod gate;
pub mod gauges;
pub mod reload;
pub mod sd_notify;
pub mod simulate;
pub mod view;
pub mod watchdog;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;

pub(crate) use self::core::past_event;
pub use self::core::Core;
pub use gate::{CapturedCard, Presentation, Presented};
pub use view::{DecisionView, GateNotice, GateStatus};

use crate::access::{Credential, Register};
use crate::config::{Backend, Config};
use crate::domain::GateId;
use crate::door::Position;
use crate::event::EventReason;
use crate::hw::{simulated::SimBoard, Boards};
use crate::store::events::{EventKind, EventRecord, NewEvent};
use crate::store::Store;
use gate::GateCommand;

/// How often the register watcher checks for changes.
pub const REGISTER_POLL: Duration = Duration::from_secs(2);

enum Slot {
    Running {
        commands: mpsc::Sender<GateCommand>,
        notices: broadcast::Sender<GateNotice>,
    },
    OutOfService(String),
}

struct GateEntry {
    cfg: crate::config::Gate,
    slot: Slot,
}

struct Shared {
    gates: BTreeMap<GateId, GateEntry>,
    core: Arc<Core>,
    boards: Arc<Boards>,
}

/// The way into a running daemon's gates; cheap to clone, usable from any task.
#[derive(Clone)]
pub struct GateHandle {
    shared: Arc<Shared>,
}

/// How a daemon is started beyond its config.
#[derive(Clone, Copy, Debug, Default)]
pub struct DaemonOptions {
    /// Treat the wall clock as synchronised (`Some(true)`) or not, instead of
    /// asking the sources (`crate::clock::reading`). For tests and benchmarks
    /// on machines without NTP.
    pub assume_clock_synced: Option<bool>,
}

/// A running daemon.
pub struct Daemon {
    handle: GateHandle,
    shutdown: watch::Sender<bool>,
    /// Each gate task ends with whether its relay is locked.
    gate_tasks: JoinSet<(GateId, bool)>,
    tasks: JoinSet<()>,
}

impl Daemon {
    /// Opens the database, loads the register, claims every gate's pins and
    /// starts the gate tasks. Call inside a tokio runtime.
    pub async fn start(config: &Config) -> Result<Daemon> {
        Daemon::start_with(config, DaemonOptions::default()).await
    }

    pub async fn start_with(config: &Config, options: DaemonOptions) -> Result<Daemon> {
        let store = Store::open_config(config)?;
        let offset = config.site.utc_offset_minutes;
        let floor = crate::store::trusted_time::load(store.conn())?;
        let clock = clock::Clock::with_synced(options.assume_clock_synced).with_floor(floor);
        let core = tokio::task::spawn_blocking(move || Core::new(store, offset, clock))
            .await
            .context("register loader failed")??;
        let core = Arc::new(core);
        let contexts: Vec<_> = config
            .gates
            .iter()
            .map(|g| crate::access::GateContext::from_config(g, &config.access))
            .collect();
        let restoring = core.clone();
        match tokio::task::spawn_blocking(move || restoring.restore_access_state(&contexts)).await {
            Ok(Ok(n)) => tracing::debug!(events = n, "access state rebuilt from recent events"),
            // Not fatal: the gates start with a clean slate, as before this existed.
            Ok(Err(e)) => tracing::warn!("cannot rebuild lockouts and anti-passback: {e:#}"),
            Err(e) => tracing::warn!("access state rebuild task failed: {e}"),
        }
        let boards = Arc::new(Boards::new());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut gate_tasks = JoinSet::new();
        let mut gates = BTreeMap::new();
        for cfg in &config.gates {
            if cfg.backend == Backend::Simulated {
                simulate::prepare_world(&boards.simulated, cfg);
            }
            let started = boards.open(cfg.backend).and_then(|board| {
                gate::spawn(
                    cfg.clone(),
                    &config.access,
                    board,
                    core.clone(),
                    shutdown_rx.clone(),
                )
            });
            let slot = match started {
                Ok((commands, notices, join)) => {
                    let id = cfg.id.clone();
                    gate_tasks.spawn(async move {
                        match join.await {
                            Ok(locked) => (id, locked),
                            Err(e) => {
                                tracing::error!(gate = %id, "gate task ended abnormally: {e}");
                                (id, false)
                            }
                        }
                    });
                    Slot::Running { commands, notices }
                }
                Err(e) => {
                    let why = format!("{e:#}");
                    tracing::error!(gate = %cfg.id, "gate out of service: {why}");
                    let mut ev = core.event(EventKind::Alarm);
                    ev.gate = Some(cfg.id.clone());
                    ev.reason = Some(EventReason::GateHardwareFailed);
                    ev.detail = Some(serde_json::json!({ "error": why }));
                    core.record(ev, None).await?;
                    Slot::OutOfService(why)
                }
            };
            gates.insert(
                cfg.id.clone(),
                GateEntry {
                    cfg: cfg.clone(),
                    slot,
                },
            );
        }
        let handle = GateHandle {
            shared: Arc::new(Shared {
                gates,
                core,
                boards,
            }),
        };
        let mut daemon = Daemon {
            handle,
            shutdown,
            gate_tasks,
            tasks: JoinSet::new(),
        };
        let watcher = daemon.handle.clone();
        let mut stop = daemon.shutdown_signal();
        daemon.spawn(async move {
            let mut tick = tokio::time::interval(REGISTER_POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tick.tick() => {
                        if let Err(e) = watcher.reload_register(false).await {
                            tracing::error!("register reload failed (keeping the previous one): {e:#}");
                        }
                    }
                }
            }
        });
        let keeper = daemon.handle.clone();
        let stop = daemon.shutdown_signal();
        daemon.spawn(clock::keep_floor(stop, move || {
            let h = keeper.clone();
            async move {
                let clock = h.shared.core.clock.clone();
                h.with_store(move |store| clock::persist_floor(&clock, store))
                    .await?
            }
        }));
        let mut ev = daemon.handle.event(EventKind::Device);
        ev.reason = Some(EventReason::DaemonStarted);
        ev.detail = Some(serde_json::json!({ "version": env!("CARGO_PKG_VERSION") }));
        daemon.handle.record(ev).await?;
        Ok(daemon)
    }

    pub fn handle(&self) -> GateHandle {
        self.handle.clone()
    }

    /// Becomes `true` when the daemon stops; tasks added with [`Daemon::spawn`] watch it.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Runs a task until shutdown (it should watch [`Daemon::shutdown_signal`]).
    pub fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Stops: gates finish the credential in hand and lock their relays,
    /// other tasks get `grace` to finish, then a final `daemon_stopped` event
    /// is stored with each gate's relay state (`locked`, `lock_failed`,
    /// `unknown` if its task did not end, `out_of_service`).
    pub async fn shutdown(mut self, grace: Duration) -> Result<()> {
        let _ = self.shutdown.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        let mut relays = serde_json::Map::new();
        for (id, entry) in &self.handle.shared.gates {
            let state = match entry.slot {
                Slot::Running { .. } => "unknown",
                Slot::OutOfService(_) => "out_of_service",
            };
            relays.insert(id.to_string(), state.into());
        }
        while let Ok(Some(r)) = tokio::time::timeout_at(deadline, self.gate_tasks.join_next()).await
        {
            match r {
                Ok((id, locked)) => {
                    let state = if !locked {
                        "lock_failed"
                    } else if self.simulated_relay_released(&id) {
                        // The pin itself disagrees with the task: report the pin.
                        "released"
                    } else {
                        "locked"
                    };
                    relays.insert(id.to_string(), state.into());
                }
                Err(e) => tracing::error!("gate task failed: {e}"),
            }
        }
        while let Ok(Some(_)) = tokio::time::timeout_at(deadline, self.tasks.join_next()).await {}
        self.tasks.abort_all();
        let mut ev = self.handle.event(EventKind::Device);
        ev.reason = Some(EventReason::DaemonStopped);
        ev.detail = Some(serde_json::json!({ "relays": relays }));
        self.handle.record(ev).await?;
        Ok(())
    }

    /// A simulated gate's relay pin is at its released level.
    fn simulated_relay_released(&self, id: &GateId) -> bool {
        let Ok(cfg) = self.handle.gate_config(id) else {
            return false;
        };
        cfg.backend == Backend::Simulated
            && self
                .handle
                .shared
                .boards
                .simulated
                .output_level(cfg.relay_pin)
                .is_some_and(|l| l != crate::door::Relay::locked_level(cfg))
    }
}

impl GateHandle {
    fn entry(&self, gate: &GateId) -> Result<&GateEntry> {
        self.shared.gates.get(gate).ok_or_else(|| {
            let known: Vec<&str> = self.shared.gates.keys().map(GateId::as_str).collect();
            anyhow!(
                "no gate \"{gate}\" in the config (gates: {})",
                known.join(", ")
            )
        })
    }

    fn commands(&self, gate: &GateId) -> Result<&mpsc::Sender<GateCommand>> {
        match &self.entry(gate)?.slot {
            Slot::Running { commands, .. } => Ok(commands),
            Slot::OutOfService(why) => bail!("gate {gate} is out of service: {why}"),
        }
    }

    /// The gate ids, in config order of id.
    pub fn gates(&self) -> Vec<GateId> {
        self.shared.gates.keys().cloned().collect()
    }

    pub fn gate_config(&self, gate: &GateId) -> Result<&crate::config::Gate> {
        Ok(&self.entry(gate)?.cfg)
    }

    /// Presents a credential at a gate: decides, moves the relay, stores the
    /// event, and returns the decision.
    pub async fn present(&self, gate: &GateId, credential: Credential) -> Result<Presented> {
        self.submit(gate, credential.into()).await
    }

    /// Like [`GateHandle::present`], with a snapshot and detail for the event.
    pub async fn submit(&self, gate: &GateId, presentation: Presentation) -> Result<Presented> {
        let (reply, rx) = oneshot::channel();
        self.commands(gate)?
            .send(GateCommand::Present {
                presentation,
                reply,
            })
            .await
            .map_err(|_| anyhow!("gate {gate} has stopped"))?;
        rx.await
            .map_err(|_| anyhow!("gate {gate} stopped before deciding"))
    }

    /// A manual open by the property manager or a remote open by the
    /// station, audited with who and why.
    pub async fn open(&self, gate: &GateId, actor: &str, reason: &str) -> Result<Presented> {
        if reason.trim().is_empty() {
            bail!("a manual open needs a reason");
        }
        let detail = serde_json::json!({ "gate": gate.as_str(), "reason": reason });
        let (actor_owned, gate_s) = (actor.to_string(), gate.to_string());
        self.with_store(move |store| {
            Store::audit(
                store.conn(),
                &actor_owned,
                "gate.open",
                Some(&gate_s),
                Some(&detail),
            )
        })
        .await??;
        self.present(
            gate,
            Credential::Remote {
                officer: actor.to_string(),
                reason: reason.to_string(),
            },
        )
        .await
    }

    /// Every gate's state.
    pub async fn status(&self) -> Vec<GateStatus> {
        let mut out = Vec::new();
        for (id, entry) in &self.shared.gates {
            let status = match &entry.slot {
                Slot::Running { commands, .. } => {
                    let (reply, rx) = oneshot::channel();
                    let asked = commands.send(GateCommand::Status { reply }).await.is_ok();
                    match (asked, rx.await) {
                        (true, Ok(s)) => s,
                        _ => offline_status(&entry.cfg, format!("gate {id} has stopped")),
                    }
                }
                Slot::OutOfService(why) => offline_status(&entry.cfg, why.clone()),
            };
            out.push(status);
        }
        out
    }

    /// Running gates whose task does not answer within `within` (stuck or
    /// ended). Gates out of service since start-up are not listed: they are
    /// degraded, not hung.
    pub async fn unresponsive(&self, within: Duration) -> Vec<GateId> {
        use tokio::sync::mpsc::error::TrySendError;
        use tokio::time::timeout_at;
        // Ask every gate first, then wait: each gets the whole window, and the
        // check ends within `within` however many are stuck.
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::new();
        let mut waiting = Vec::new();
        for (id, entry) in &self.shared.gates {
            let Slot::Running { commands, .. } = &entry.slot else {
                continue;
            };
            let (reply, rx) = oneshot::channel();
            let sent = match commands.try_send(GateCommand::Sync { reply }) {
                Ok(()) => true,
                Err(TrySendError::Full(cmd)) => {
                    matches!(timeout_at(deadline, commands.send(cmd)).await, Ok(Ok(())))
                }
                Err(TrySendError::Closed(_)) => false,
            };
            if sent {
                waiting.push((id, rx));
            } else {
                out.push(id.clone());
            }
        }
        for (id, rx) in waiting {
            if !matches!(timeout_at(deadline, rx).await, Ok(Ok(()))) {
                out.push(id.clone());
            }
        }
        out
    }

    /// Waits until the gate has handled every input queued so far.
    pub async fn sync(&self, gate: &GateId) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.commands(gate)?
            .send(GateCommand::Sync { reply })
            .await
            .map_err(|_| anyhow!("gate {gate} has stopped"))?;
        rx.await.map_err(|_| anyhow!("gate {gate} has stopped"))
    }

    /// Waits up to `timeout` for the next card read at `gate`'s reader and
    /// returns it; that read opens nothing and makes no access decision. A
    /// newer capture at the same gate cancels this one.
    pub async fn capture_card(&self, gate: &GateId, timeout: Duration) -> Result<CapturedCard> {
        if self.gate_config(gate)?.wiegand_d0_pin.is_none() {
            bail!("gate {gate} has no card reader");
        }
        let (reply, rx) = oneshot::channel();
        self.commands(gate)?
            .send(GateCommand::Capture { reply })
            .await
            .map_err(|_| anyhow!("gate {gate} has stopped"))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(card)) => Ok(card),
            Ok(Err(_)) => bail!("the capture at gate {gate} was cancelled by a newer one"),
            Err(_) => bail!(
                "no card was presented at gate {gate} within {} s",
                timeout.as_secs()
            ),
        }
    }

    /// Every event stored from now on (decisions, alarms, device events).
    pub fn events(&self) -> broadcast::Receiver<EventRecord> {
        self.shared.core.subscribe()
    }

    /// What one gate announces (decisions, rejected frames, keys typed).
    pub fn notices(&self, gate: &GateId) -> Result<broadcast::Receiver<GateNotice>> {
        match &self.entry(gate)?.slot {
            Slot::Running { notices, .. } => Ok(notices.subscribe()),
            Slot::OutOfService(why) => bail!("gate {gate} is out of service: {why}"),
        }
    }

    /// A new event of `kind`, stamped now by the daemon's trusted clock
    /// (`Core::event`): fill it in and [`GateHandle::record`] it.
    pub fn event(&self, kind: EventKind) -> NewEvent {
        self.shared.core.event(kind)
    }

    /// Stores an event from another part (an unknown face, an uplink alarm).
    pub async fn record(&self, event: NewEvent) -> Result<EventRecord> {
        self.shared.core.record(event, None).await
    }

    /// Runs `f` on a read-only connection: for reads that change nothing
    /// (no audit row either); never waits for the writer or delays a gate.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> R + Send + 'static,
    ) -> Result<R> {
        let core = self.shared.core.clone();
        tokio::task::spawn_blocking(move || core.read_blocking(f))
            .await
            .context("database task failed")?
    }

    /// Runs `f` with the daemon's database connection (the one writer): for
    /// changes, and for reads that write an audit row.
    pub async fn with_store<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> R + Send + 'static,
    ) -> Result<R> {
        let core = self.shared.core.clone();
        tokio::task::spawn_blocking(move || core.with_store_blocking(f))
            .await
            .context("database task failed")
    }

    /// Reloads the register if it changed (or always, with `force`).
    pub async fn reload_register(&self, force: bool) -> Result<bool> {
        let core = self.shared.core.clone();
        tokio::task::spawn_blocking(move || core.reload_blocking(force))
            .await
            .context("register reload task failed")?
    }

    /// The state the gate tasks share.
    /// Moves the daemon's monotonic clock forward by `by`, as if that much
    /// time had passed for lockouts, PIN budgets and door timers (tests and
    /// simulations wait on time they control, never on real time).
    pub fn advance_clock(&self, by: Duration) {
        self.shared.core.clock.advance(by);
    }

    pub fn core(&self) -> &Arc<Core> {
        &self.shared.core
    }

    /// The register snapshot decisions currently use.
    pub fn register(&self) -> Arc<Register> {
        self.shared.core.register()
    }

    /// The simulated board, for a gate whose backend is simulated.
    pub fn simulator(&self, gate: &GateId) -> Result<Arc<SimBoard>> {
        let entry = self.entry(gate)?;
        if entry.cfg.backend != Backend::Simulated {
            bail!("gate {gate} uses the rppal backend; simulation only works on gates with backend = \"simulated\"");
        }
        if let Slot::OutOfService(why) = &entry.slot {
            bail!("gate {gate} is out of service: {why}");
        }
        Ok(self.shared.boards.simulated.clone())
    }
}

fn offline_status(cfg: &crate::config::Gate, why: String) -> GateStatus {
    GateStatus {
        id: cfg.id.to_string(),
        name: cfg.name.clone(),
        kind: cfg.kind,
        direction: cfg.direction,
        backend: cfg.backend,
        lock: "unknown".into(),
        door: Position::Unknown,
        vehicle_present: None,
        alarms: Vec::new(),
        tamper: false,
        reader: None,
        out_of_service: Some(why),
        two_factor: None,
        two_factor_now: false,
        face: None,
    }
}
#[cfg(test)]
mod writer_tests;
