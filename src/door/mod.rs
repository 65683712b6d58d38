//! The per-gate door (or barrier) state machine: when to release and relock,
//! and when to raise held-open and forced-open alarms. Pure: inputs are
//! events with a monotonic time, outputs are [`DoorAction`]s; the gate task
//! turns them into relay writes and events. [`Relay`] maps "released" to a
//! pin level from the lock type and the relay board's polarity.
//!
//! Architecture Invariant: starts and ends locked; a door only releases on a
//! grant, the exit button or a manual open.

use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::config::{self, GateKind, LockKind};
use crate::hw::{Level, OutputPin};

/// Why the lock was released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseCause {
    Grant,
    ExitButton,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoorAlarm {
    HeldOpen,
    ForcedOpen,
}

impl DoorAlarm {
    pub fn as_str(self) -> &'static str {
        self.reason().as_str()
    }

    /// The alarm event's `reason`.
    pub fn reason(self) -> crate::event::EventReason {
        use crate::event::EventReason;
        match self {
            DoorAlarm::HeldOpen => EventReason::HeldOpen,
            DoorAlarm::ForcedOpen => EventReason::ForcedOpen,
        }
    }

    /// The device event's `reason` when the alarm clears.
    pub fn cleared_reason(self) -> crate::event::EventReason {
        use crate::event::EventReason;
        match self {
            DoorAlarm::HeldOpen => EventReason::HeldOpenCleared,
            DoorAlarm::ForcedOpen => EventReason::ForcedOpenCleared,
        }
    }
}

/// What the gate task must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DoorAction {
    /// Release the lock (raise the barrier).
    Release,
    /// Lock (lower the barrier).
    Lock,
    Alarm(DoorAlarm),
    /// The door closed again after an alarm.
    AlarmCleared(DoorAlarm),
}

#[derive(Clone, Copy, Debug)]
pub struct DoorConfig {
    pub kind: GateKind,
    pub unlock: Duration,
    pub held_open: Duration,
}

impl DoorConfig {
    pub fn from_gate(gate: &config::Gate) -> DoorConfig {
        DoorConfig {
            kind: gate.kind,
            unlock: Duration::from_millis(u64::from(gate.unlock_ms)),
            held_open: Duration::from_secs(u64::from(gate.held_open_s)),
        }
    }
}

/// Where the door (leaf) is, if a contact reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    Unknown,
    Closed,
    Open,
}

#[derive(Debug)]
pub struct Door {
    cfg: DoorConfig,
    /// Released until this time (monotonic), if released.
    released_until: Option<Duration>,
    /// The door opened (or a vehicle entered the loop) during this release:
    /// closing (leaving) relocks at once.
    passed: bool,
    position: Position,
    open_since: Option<Duration>,
    /// The current opening followed a release (not forced).
    authorised: bool,
    held_alarm: bool,
    forced_alarm: bool,
    vehicle_present: bool,
}

/// A snapshot for `gate status`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DoorStatus {
    pub released: bool,
    pub position: Position,
    pub vehicle_present: bool,
    pub alarms: Vec<DoorAlarm>,
}

impl Door {
    /// A door starts locked; the caller writes [`DoorAction::Lock`] to the relay.
    pub fn new(cfg: DoorConfig) -> Door {
        Door {
            cfg,
            released_until: None,
            passed: false,
            position: Position::Unknown,
            open_since: None,
            authorised: false,
            held_alarm: false,
            forced_alarm: false,
            vehicle_present: false,
        }
    }

    /// New timings (a config reload). A release in progress keeps its end
    /// time; the next release and the held-open check use the new values.
    pub fn set_config(&mut self, cfg: DoorConfig) {
        self.cfg = cfg;
    }

    pub fn is_released(&self) -> bool {
        self.released_until.is_some()
    }

    pub fn status(&self) -> DoorStatus {
        let mut alarms = Vec::new();
        if self.held_alarm {
            alarms.push(DoorAlarm::HeldOpen);
        }
        if self.forced_alarm {
            alarms.push(DoorAlarm::ForcedOpen);
        }
        DoorStatus {
            released: self.is_released(),
            position: self.position,
            vehicle_present: self.vehicle_present,
            alarms,
        }
    }

    /// The contact's level when the daemon starts: no alarm for a door found
    /// open (it may have been open before), but held-open applies from now.
    pub fn initial_position(&mut self, open: bool, now: Duration) {
        self.position = if open {
            Position::Open
        } else {
            Position::Closed
        };
        self.open_since = open.then_some(now);
        self.authorised = open;
    }

    /// Releases for `unlock` (extending a release in progress).
    pub fn release(&mut self, _cause: ReleaseCause, now: Duration) -> Vec<DoorAction> {
        let was = self.is_released();
        self.released_until = Some(now + self.cfg.unlock);
        if was {
            return Vec::new();
        }
        self.passed = false;
        vec![DoorAction::Release]
    }

    /// The door contact reports open (`true`) or closed.
    pub fn contact(&mut self, open: bool, now: Duration) -> Vec<DoorAction> {
        let mut out = Vec::new();
        if open {
            if self.position == Position::Open {
                return out;
            }
            self.position = Position::Open;
            self.open_since = Some(now);
            self.authorised = self.is_released();
            if self.authorised {
                self.passed = true;
            } else {
                self.forced_alarm = true;
                out.push(DoorAction::Alarm(DoorAlarm::ForcedOpen));
            }
            return out;
        }
        if self.position == Position::Closed {
            return out;
        }
        self.position = Position::Closed;
        self.open_since = None;
        self.authorised = false;
        if std::mem::take(&mut self.held_alarm) {
            out.push(DoorAction::AlarmCleared(DoorAlarm::HeldOpen));
        }
        if std::mem::take(&mut self.forced_alarm) {
            out.push(DoorAction::AlarmCleared(DoorAlarm::ForcedOpen));
        }
        // Relock on close: the person went through; don't leave it open for a second.
        if self.is_released() && self.passed {
            self.released_until = None;
            out.push(DoorAction::Lock);
        }
        out
    }

    /// The vehicle loop reports a vehicle (`true`) or none.
    pub fn vehicle(&mut self, present: bool, now: Duration) -> Vec<DoorAction> {
        if present == self.vehicle_present {
            return Vec::new();
        }
        self.vehicle_present = present;
        if present {
            if self.is_released() {
                self.passed = true;
            }
            return Vec::new();
        }
        // The car left the loop: lower behind it, or when the time is up.
        if self.is_released() && (self.passed || self.expired(now)) {
            self.released_until = None;
            return vec![DoorAction::Lock];
        }
        Vec::new()
    }

    fn expired(&self, now: Duration) -> bool {
        self.released_until.is_some_and(|until| now >= until)
    }

    /// Advances time: relocks when the release ends, raises held-open.
    pub fn tick(&mut self, now: Duration) -> Vec<DoorAction> {
        let mut out = Vec::new();
        // A barrier never comes down on a car.
        let blocked = self.cfg.kind == GateKind::Vehicle && self.vehicle_present;
        if self.expired(now) && !blocked {
            self.released_until = None;
            out.push(DoorAction::Lock);
        }
        if let Some(since) = self.open_since {
            if self.authorised && !self.held_alarm && now >= since + self.cfg.held_open {
                self.held_alarm = true;
                out.push(DoorAction::Alarm(DoorAlarm::HeldOpen));
            }
        }
        out
    }

    /// When [`Door::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Duration> {
        let blocked = self.cfg.kind == GateKind::Vehicle && self.vehicle_present;
        let relock = self.released_until.filter(|_| !blocked);
        let held = self
            .open_since
            .filter(|_| self.authorised && !self.held_alarm)
            .map(|since| since + self.cfg.held_open);
        match (relock, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The lock relay: "released" becomes a pin level through the lock type and
/// the relay board's polarity.
pub struct Relay {
    pin: Box<dyn OutputPin>,
    active_low: bool,
    energise_to_release: bool,
}

impl Relay {
    /// The level that puts the relay in its locked state.
    pub fn locked_level(gate: &config::Gate) -> Level {
        Relay::level_for(gate, false)
    }

    fn level_for(gate: &config::Gate, released: bool) -> Level {
        let energised = released == energise_to_release(gate);
        Level::from_bool(energised != gate.relay_active_low)
    }

    /// Wraps a pin that was opened at [`Relay::locked_level`].
    pub fn new(pin: Box<dyn OutputPin>, gate: &config::Gate) -> Relay {
        Relay {
            pin,
            active_low: gate.relay_active_low,
            energise_to_release: energise_to_release(gate),
        }
    }

    pub fn set_released(&mut self, released: bool) -> Result<()> {
        let energised = released == self.energise_to_release;
        self.pin.set(Level::from_bool(energised != self.active_low))
    }

    /// The known safe state: locked (barrier down).
    pub fn lock(&mut self) -> Result<()> {
        self.set_released(false)
    }
}

/// Fail-secure locks and barriers energise to open; fail-safe locks
/// (fire exits) energise to hold.
fn energise_to_release(gate: &config::Gate) -> bool {
    gate.kind == GateKind::Vehicle || gate.lock == LockKind::FailSecure
}

#[cfg(test)]
mod tests;
