//! The state every gate task shares: the register snapshot and access state
//! (behind one short-held lock, so decisions at two gates see each other's
//! lockouts and anti-passback), the database (the process's one writer
//! connection, and a pool of read-only connections for everything that only
//! reads), and the broadcast of stored events.
//!
//! Lock order: `store` before `decider`, never the other way round. Readers
//! take no lock of this module.

use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use tokio::sync::broadcast;

use super::clock::Clock;
use crate::access::{self, AccessState, Credential, Decision, GateContext, Now, Register, Subject};
use crate::face::recent::FaceWitness;
use crate::secret::DeviceSecret;
use crate::store::events::{self, EventRecord, NewEvent};
use crate::store::{snapshot, Readers, Store, Writer};

pub(crate) struct Decider {
    pub register: Arc<Register>,
    pub state: AccessState,
}

/// An event to write, with the register change it carries.
struct Pending {
    event: NewEvent,
    visitor_use: Option<i64>,
}

/// An event waiting for the next group commit, and where its result goes.
struct Queued {
    pending: Pending,
    reply: SyncSender<Result<EventRecord>>,
}

pub struct Core {
    decider: Mutex<Decider>,
    store: Writer,
    readers: Readers,
    /// Events whose write failed (disk full, I/O error): retried before the next write.
    unstored: Mutex<Vec<Pending>>,
    /// Events waiting for the writer lock; the next holder writes them all.
    queue: Mutex<Vec<Queued>>,
    events: broadcast::Sender<EventRecord>,
    secret: DeviceSecret,
    utc_offset_minutes: i32,
    register_version: Mutex<i64>,
    /// The cameras' side of card + face; set once the cameras run.
    faces: Mutex<Option<Arc<FaceWitness>>>,
    pub clock: Clock,
    /// Tests slow or block the writer here (called before each batch is written).
    #[cfg(test)]
    pub(crate) write_hook: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
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
            readers: Readers::new(store.path()),
            store: Writer::new(store),
            unstored: Mutex::new(Vec::new()),
            queue: Mutex::new(Vec::new()),
            events,
            utc_offset_minutes,
            register_version: Mutex::new(version),
            faces: Mutex::new(None),
            clock,
            #[cfg(test)]
            write_hook: Mutex::new(None),
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

    /// Rebuilds lockouts and anti-passback from the events of the last
    /// hours (see `AccessState::restore`); returns how many events were read.
    pub fn restore_access_state(&self, gates: &[GateContext]) -> Result<usize> {
        let now = self.clock.now();
        let lookback = gates
            .iter()
            .flat_map(|g| {
                [
                    g.policy.lockout_window,
                    g.policy.lockout_for,
                    if g.policy.pin_budget.is_some() {
                        access::PIN_BUDGET_WINDOW
                    } else {
                        g.policy.pin_alarm_window
                    },
                    if g.policy.anti_passback && g.paired_with.is_some() {
                        g.policy
                            .anti_passback_reset
                            .unwrap_or(super::clock::MONO_ORIGIN)
                    } else {
                        std::time::Duration::ZERO
                    },
                ]
            })
            .max()
            .unwrap_or_default()
            .min(super::clock::MONO_ORIGIN);
        let Ok(lookback_wall) = chrono::Duration::from_std(lookback) else {
            return Ok(0);
        };
        let records = self
            .readers
            .read(|conn| events::since(conn, now.wall - lookback_wall))??;
        let mut past = Vec::new();
        for e in &records {
            match past_event(e, now.wall) {
                Ok(Some(p)) => past.push(p),
                Ok(None) => {}
                // A reason this build does not know (a newer version wrote
                // it, or the row was edited): said out loud, and not counted.
                Err(err) => {
                    tracing::error!(seq = e.seq, "event skipped rebuilding lockouts: {err}")
                }
            }
        }
        self.decider().state.restore(&past, gates, now.mono);
        Ok(records.len())
    }

    /// A new event of `kind`, stamped now by the daemon's clock: the trusted
    /// time (never below the floor) and whether the system clock is synchronised.
    /// Every event the daemon writes starts here or at a decision's `Now`.
    pub fn event(&self, kind: events::EventKind) -> NewEvent {
        let now = self.clock.now();
        NewEvent::stamped(kind, now.wall, now.clock_synced)
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

    /// Announces an event another part stored on the writer in a transaction
    /// of its own (the uplink's quota alarm), like the events written here.
    pub fn announce(&self, record: EventRecord) {
        // Nobody listening is fine.
        let _ = self.events.send(record);
    }

    /// The process's one writer (the uplink writes through it too).
    pub fn writer(&self) -> Writer {
        self.store.clone()
    }

    /// Read-only connections: they never wait for the writer.
    pub fn readers(&self) -> &Readers {
        &self.readers
    }

    /// Runs `f` on a read-only connection (blocking; call from a blocking context).
    pub fn read_blocking<R>(&self, f: impl FnOnce(&rusqlite::Connection) -> R) -> Result<R> {
        self.readers.read(f)
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
        f(&mut self.store.lock())
    }

    /// Writes an event durably (and a visitor pass's use with it), then
    /// broadcasts it. Blocking.
    ///
    /// Group commit: the caller queues its event, then whoever holds the
    /// writer lock writes everything queued in one transaction, one fsync
    /// (`synchronous=FULL`), and hands each caller its own result. A lone
    /// event costs one sync as before; a burst from several gates and cameras
    /// shares one, so the disk's sync time is paid once per batch, not per
    /// event. Nobody hears of an event before the commit that holds it.
    pub fn record_blocking(
        &self,
        event: NewEvent,
        visitor_use: Option<i64>,
    ) -> Result<EventRecord> {
        let (reply, result) = std::sync::mpsc::sync_channel(1);
        lock(&self.queue).push(Queued {
            pending: Pending { event, visitor_use },
            reply,
        });
        {
            let mut store = self.store.lock();
            let batch = std::mem::take(&mut *lock(&self.queue));
            if !batch.is_empty() {
                self.write_batch(&mut store, batch);
            }
        }
        // Sent by whichever caller wrote our event, before it let the lock go.
        result
            .recv()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("event writer vanished")))
    }

    /// Writes the failed backlog and `batch` in one transaction, an
    /// isolated savepoint per event (one bad event does not sink the rest).
    fn write_batch(&self, store: &mut Store, batch: Vec<Queued>) {
        #[cfg(test)]
        {
            let hook = lock(&self.write_hook).clone();
            if let Some(hook) = hook {
                hook();
            }
        }
        let started = std::time::Instant::now();
        let backlog = std::mem::take(&mut *lock(&self.unstored));
        let mut items: Vec<(Pending, Option<SyncSender<Result<EventRecord>>>)> = backlog
            .into_iter()
            .map(|p| (p, None))
            .chain(batch.into_iter().map(|q| (q.pending, Some(q.reply))))
            .collect();
        let written = self.write_all(store, &items);
        let (records, commit_error) = match written {
            Ok(records) => (records, None),
            Err(e) => (Vec::new(), Some(format!("{e:#}"))),
        };
        crate::metrics::observe(
            "gatehouse_event_write_seconds",
            "Time to store a batch of events with their outbox rows (one SQLite transaction, one sync).",
            &[],
            started.elapsed().as_secs_f64(),
        );
        let mut records = records.into_iter();
        let mut failed = Vec::new();
        for (pending, reply) in items.drain(..) {
            let outcome = match &commit_error {
                Some(e) => Err(anyhow::anyhow!("cannot commit events: {e}")),
                None => records
                    .next()
                    .unwrap_or_else(|| Err(anyhow::anyhow!("event missing from its batch"))),
            };
            match &outcome {
                Ok(record) => {
                    if let Some(pass) = pending.visitor_use {
                        self.decider().state.visitor_use_stored(pass);
                    }
                    // Nobody listening is fine.
                    let _ = self.events.send(record.clone());
                }
                Err(e) => {
                    tracing::error!("event not stored yet (kept for the next write): {e:#}");
                    failed.push(pending);
                }
            }
            if let Some(reply) = reply {
                let _ = reply.send(outcome);
            }
        }
        lock(&self.unstored).extend(failed);
    }

    /// One transaction for `items`; per item its record or why it failed.
    fn write_all<T>(
        &self,
        store: &mut Store,
        items: &[(Pending, T)],
    ) -> Result<Vec<Result<EventRecord>>> {
        let batch: Vec<events::BatchItem<'_>> = items
            .iter()
            .map(|(p, _)| events::BatchItem {
                event: &p.event,
                visitor_use: p.visitor_use,
            })
            .collect();
        events::append_batch(store.conn_mut(), &batch)
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
        let store = self.store.lock();
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

/// What a stored event means for the access state, if anything; an error
/// for a reason this build does not know.
pub(crate) fn past_event(
    e: &EventRecord,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<access::PastEvent>, crate::event::UnknownReason> {
    use crate::event::EventReason as R;
    use crate::store::events::{AccessResult, EventKind};
    let reason = e.parsed_reason()?;
    let Some(gate) = e
        .gate
        .as_deref()
        .and_then(|g| g.parse::<crate::domain::GateId>().ok())
    else {
        return Ok(None);
    };
    let Ok(at) = chrono::DateTime::parse_from_rfc3339(&e.at) else {
        return Ok(None);
    };
    let age = (now - at.with_timezone(&chrono::Utc))
        .to_std()
        .unwrap_or_default();
    let guessable = e
        .credential_kind
        .as_deref()
        .is_some_and(access::Credential::is_guessable_kind);
    let kind = match (e.kind, e.result, reason) {
        (EventKind::Access, Some(AccessResult::Granted), _) => match e.subject_id {
            Some(id) => access::PastKind::Passed {
                person: crate::domain::ResidentId(id),
            },
            None => return Ok(None),
        },
        (EventKind::Access, Some(AccessResult::Denied), Some(R::UnknownCredential))
            if e.credential_kind.as_deref() == Some("pin") =>
        {
            access::PastKind::WrongPin
        }
        // A household number that names no household spent the keypad's budget too.
        (EventKind::Access, Some(AccessResult::Denied), Some(R::UnknownHousehold)) if guessable => {
            access::PastKind::WrongPin
        }
        (
            EventKind::Access,
            Some(AccessResult::Denied),
            Some(
                R::UnknownCredential
                | R::FaceMismatch
                | R::CardFormatMismatch
                | R::HouseholdMismatch,
            ),
        ) if guessable => access::PastKind::FailedGuess,
        // A photo held up to a camera counts like a guessed card (kind "face").
        (EventKind::Access, Some(AccessResult::Denied), Some(R::PresentationAttack)) => {
            access::PastKind::FailedGuess
        }
        (EventKind::Alarm, _, Some(R::ReaderLockout)) => access::PastKind::LockedOut,
        (EventKind::Alarm, _, Some(R::PinGuessing)) => access::PastKind::PinGuessingAlarm,
        _ => return Ok(None),
    };
    Ok(Some(access::PastEvent { gate, age, kind }))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::events::{AccessResult, EventKind};

    fn scratch(tag: &str) -> (std::path::PathBuf, Arc<Core>) {
        let dir = std::env::temp_dir().join(format!(
            "gatehouse-core-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("gatehouse.db"), &dir).unwrap();
        let core = Core::new(store, 480, Clock::with_synced(Some(true))).unwrap();
        (dir, Arc::new(core))
    }

    fn swipe(tag: &str) -> NewEvent {
        let mut e = NewEvent::now(EventKind::Access, true);
        e.credential_kind = Some("card".into());
        e.credential_masked = Some(tag.into());
        e.result = Some(AccessResult::Denied);
        e
    }

    #[test]
    fn concurrent_writers_each_hear_their_own_event_and_the_chain_holds() {
        let (dir, core) = scratch("group");
        let threads: Vec<_> = (0..8)
            .map(|w| {
                let core = core.clone();
                std::thread::spawn(move || {
                    (0..25)
                        .map(|i| {
                            let tag = format!("w{w}-{i}");
                            let record = core.record_blocking(swipe(&tag), None).unwrap();
                            assert_eq!(record.credential_masked.as_deref(), Some(tag.as_str()));
                            record.seq
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seqs: Vec<i64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
        let (checked, breaks) =
            core.with_store_blocking(|s| events::verify_chain(s.conn()).unwrap());
        assert_eq!((checked, breaks.len()), (200, 0));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_event_that_cannot_be_written_fails_alone_and_is_kept_for_a_retry() {
        let (dir, core) = scratch("bad");
        let mut bad = swipe("bad");
        bad.direction = Some("sideways".into()); // refused by the table's CHECK
        assert!(core.record_blocking(bad, None).is_err());
        assert_eq!(core.unstored_count(), 1);
        // The next write retries it (still refused) and stores its own event.
        let good = core.record_blocking(swipe("good"), None).unwrap();
        assert_eq!(good.seq, 1);
        assert_eq!(core.unstored_count(), 1);
        let (checked, breaks) =
            core.with_store_blocking(|s| events::verify_chain(s.conn()).unwrap());
        assert_eq!((checked, breaks.len()), (1, 0));
        let _ = std::fs::remove_dir_all(dir);
    }
    #[test]
    fn a_stored_presentation_attack_counts_as_a_failed_guess_after_a_restart() {
        let (dir, core) = scratch("pad");
        let mut e = NewEvent::now(EventKind::Access, true);
        e.gate = Some("east".parse().unwrap());
        e.credential_kind = Some("face".into());
        e.result = Some(AccessResult::Denied);
        e.reason = Some(crate::event::EventReason::PresentationAttack);
        let stored = core.record_blocking(e, None).unwrap();
        let past = past_event(&stored, chrono::Utc::now())
            .unwrap()
            .expect("counted");
        assert_eq!(past.kind, access::PastKind::FailedGuess);
        // A refused face of a stranger is not a guess.
        let mut unknown = NewEvent::now(EventKind::Access, true);
        unknown.gate = Some("east".parse().unwrap());
        unknown.credential_kind = Some("face".into());
        unknown.result = Some(AccessResult::Denied);
        unknown.reason = Some(crate::event::EventReason::UnknownFace);
        let stored = core.record_blocking(unknown, None).unwrap();
        assert!(past_event(&stored, chrono::Utc::now()).unwrap().is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn stored_household_refusals_keep_counting_after_a_restart() {
        use crate::event::EventReason as R;
        let (dir, core) = scratch("household");
        let past_of = |reason: R| {
            let mut e = NewEvent::now(EventKind::Access, true);
            e.gate = Some("east".parse().unwrap());
            e.credential_kind = Some("household+face".into());
            e.result = Some(AccessResult::Denied);
            e.reason = Some(reason);
            let stored = core.record_blocking(e, None).unwrap();
            past_event(&stored, chrono::Utc::now())
                .unwrap()
                .map(|p| p.kind)
        };
        // A number naming no household spent the keypad's budget, like a wrong PIN.
        assert_eq!(
            past_of(R::UnknownHousehold),
            Some(access::PastKind::WrongPin)
        );
        // Another household's face is a failed guess; an expired number is nothing.
        assert_eq!(
            past_of(R::HouseholdMismatch),
            Some(access::PastKind::FailedGuess)
        );
        assert_eq!(past_of(R::HouseholdTimeout), None);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_stored_reason_this_build_does_not_know_is_an_error_not_a_guess() {
        let (dir, core) = scratch("unknown-reason");
        let mut e = NewEvent::now(EventKind::Access, true);
        e.gate = Some("east".parse().unwrap());
        e.credential_kind = Some("card".into());
        e.result = Some(AccessResult::Denied);
        let mut stored = core.record_blocking(e, None).unwrap();
        stored.reason = Some("unknown_credentials".into());
        let err = past_event(&stored, chrono::Utc::now()).unwrap_err();
        assert_eq!(err.0, "unknown_credentials");
        let _ = std::fs::remove_dir_all(dir);
    }
}
