//! The state every gate task shares: the register snapshot and access state
//! (behind one short-held lock, so decisions at two gates see each other's
//! lockouts and anti-passback), the database (one writer connection), and the
//! broadcast of stored events.
//!
//! Lock order: `store` before `decider`, never the other way round.

use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use tokio::sync::broadcast;

use super::clock::Clock;
use crate::access::{self, AccessState, Credential, Decision, GateContext, Now, Register, Subject};
use crate::face::recent::FaceWitness;
use crate::store::events::{self, EventRecord, NewEvent};
use crate::store::{snapshot, DeviceSecret, Store};

pub(crate) struct Decider {
    pub register: Arc<Register>,
    pub state: AccessState,
}

/// An event to write, with the register change it carries.
struct Pending {
    event: NewEvent,
    visitor_use: Option<i64>,
}

pub struct Core {
    decider: Mutex<Decider>,
    store: Mutex<Store>,
    /// Events whose write failed (disk full, I/O error): retried before the next write.
    unstored: Mutex<Vec<Pending>>,
    events: broadcast::Sender<EventRecord>,
    secret: DeviceSecret,
    utc_offset_minutes: i32,
    register_version: Mutex<i64>,
    /// The cameras' side of card + face; set once the cameras run.
    faces: Mutex<Option<Arc<FaceWitness>>>,
    pub clock: Clock,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing in this module panics while holding a lock; if something did,
    // the data is still consistent enough to keep the gate working.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Core {
    /// Loads the register from `store` and wraps everything.
    pub fn new(store: Store, utc_offset_minutes: i32, clock: Clock) -> Result<Core> {
        let version = snapshot::register_version(store.conn())?;
        let (register, warnings) = snapshot::load(store.conn(), utc_offset_minutes)?;
        for w in &warnings {
            tracing::warn!("register: {w}");
        }
        tracing::info!(persons = register.person_count(), "register loaded");
        let (events, _) = broadcast::channel(1024);
        Ok(Core {
            secret: store.secret().clone(),
            decider: Mutex::new(Decider {
                register: Arc::new(register),
                state: AccessState::new(),
            }),
            store: Mutex::new(store),
            unstored: Mutex::new(Vec::new()),
            events,
            utc_offset_minutes,
            register_version: Mutex::new(version),
            faces: Mutex::new(None),
            clock,
        })
    }

    /// Connects the cameras to the gates (card + face, `gate status`).
    pub fn set_face_witness(&self, witness: Arc<FaceWitness>) {
        *lock(&self.faces) = Some(witness);
    }

    /// The cameras' side, if face recognition runs.
    pub fn face_witness(&self) -> Option<Arc<FaceWitness>> {
        lock(&self.faces).clone()
    }

    /// What `decide` would say, without changing the access state.
    pub fn preview(&self, gate: &GateContext, credential: &Credential) -> Decision {
        let now = self.clock.now();
        let d = self.decider();
        access::decide(&d.register, &d.state, credential, gate, &now)
    }

    pub fn secret(&self) -> &DeviceSecret {
        &self.secret
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EventRecord> {
        self.events.subscribe()
    }

    pub(crate) fn decider(&self) -> MutexGuard<'_, Decider> {
        lock(&self.decider)
    }

    pub fn register(&self) -> Arc<Register> {
        self.decider().register.clone()
    }

    /// Decides and records the decision's effect on the access state.
    pub fn decide(&self, gate: &GateContext, credential: &Credential) -> (Decision, Now) {
        let now = self.clock.now();
        let mut d = self.decider();
        let decision = access::decide(&d.register, &d.state, credential, gate, &now);
        d.state.apply(&decision, credential, gate, &now);
        (decision, now)
    }

    /// Runs `f` with the database (blocking; call from a blocking context).
    pub fn with_store_blocking<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut lock(&self.store))
    }

    /// Writes an event durably (and a visitor pass's use with it), then
    /// broadcasts it. Blocking.
    pub fn record_blocking(
        &self,
        event: NewEvent,
        visitor_use: Option<i64>,
    ) -> Result<EventRecord> {
        let mut store = lock(&self.store);
        let backlog = std::mem::take(&mut *lock(&self.unstored));
        let mut failed = Vec::new();
        for p in backlog {
            if let Err(e) = self.write(&mut store, &p) {
                tracing::error!("event still not stored: {e:#}");
                failed.push(p);
            }
        }
        let pending = Pending { event, visitor_use };
        let result = self.write(&mut store, &pending);
        if result.is_err() {
            failed.push(pending);
        }
        lock(&self.unstored).extend(failed);
        result
    }

    fn write(&self, store: &mut Store, p: &Pending) -> Result<EventRecord> {
        let started = std::time::Instant::now();
        let tx = store
            .conn_mut()
            .transaction()
            .context("cannot start event transaction")?;
        if let Some(pass) = p.visitor_use {
            snapshot::consume_visitor_use(&tx, pass)?;
        }
        let record = events::append_in(&tx, &p.event)?;
        tx.commit().context("cannot commit event")?;
        crate::metrics::observe(
            "gatehouse_event_write_seconds",
            "Time to store one event with its outbox row (one SQLite transaction).",
            &[],
            started.elapsed().as_secs_f64(),
        );
        if let Some(pass) = p.visitor_use {
            self.decider().state.visitor_use_stored(pass);
        }
        // Nobody listening is fine.
        let _ = self.events.send(record.clone());
        Ok(record)
    }

    /// Writes an event from async code.
    pub async fn record(
        self: &Arc<Self>,
        event: NewEvent,
        visitor_use: Option<i64>,
    ) -> Result<EventRecord> {
        let core = self.clone();
        tokio::task::spawn_blocking(move || core.record_blocking(event, visitor_use))
            .await
            .context("event writer task failed")?
    }

    /// Events that could not be written yet.
    pub fn unstored_count(&self) -> usize {
        lock(&self.unstored).len()
    }

    /// Reloads the register if it changed in the database (or `force`).
    /// Holds the store lock while reading so no visitor use is half-counted.
    pub fn reload_blocking(&self, force: bool) -> Result<bool> {
        let store = lock(&self.store);
        let version = snapshot::register_version(store.conn())?;
        let mut known = lock(&self.register_version);
        if !force && version == *known {
            return Ok(false);
        }
        let (register, warnings) = snapshot::load(store.conn(), self.utc_offset_minutes)?;
        for w in &warnings {
            tracing::warn!("register: {w}");
        }
        let persons = register.person_count();
        {
            let mut d = self.decider();
            d.register = Arc::new(register);
            d.state.register_reloaded();
        }
        *known = version;
        tracing::info!(persons, version, "register reloaded");
        Ok(true)
    }
}

/// The visitor pass a decision uses up, if any.
pub(crate) fn visitor_use(decision: &Decision) -> Option<i64> {
    match (&decision.outcome, &decision.subject) {
        (
            access::Outcome::Granted,
            Some(Subject::Visitor {
                pass,
                limited: true,
                ..
            }),
        ) => Some(*pass),
        _ => None,
    }
}
