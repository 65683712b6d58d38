//! The in-process simulated board: outputs remember their level, inputs are
//! driven by `gatehouse simulate …` (through the control socket) and by tests.
//! Edges carry timestamps from the board's own clock, so a Wiegand pulse train
//! of 50 µs pulses can be injected at once and still decode as the real thing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::{Board, Edge, EdgeCallback, InputPin, Level, OutputPin, Pull};
use crate::config::GpioPin;

type SharedCallback = Arc<Mutex<Option<EdgeCallback>>>;

#[derive(Default)]
struct Lines {
    outputs: HashMap<u8, Level>,
    /// Every level written to an output, with the board time (tests and the
    /// benchmark read the relay's history from here).
    output_log: HashMap<u8, Vec<(Duration, Level)>>,
    inputs: HashMap<u8, (Level, SharedCallback)>,
    /// Levels the simulated world holds lines at before they are claimed.
    presets: HashMap<u8, Level>,
    /// Synthetic time after which the next injected burst may start, so bursts
    /// injected back to back never overlap in edge time.
    next_free: Duration,
}

pub struct SimBoard {
    start: Instant,
    lines: Arc<Mutex<Lines>>,
}

impl Default for SimBoard {
    fn default() -> Self {
        SimBoard::new()
    }
}

impl SimBoard {
    pub fn new() -> SimBoard {
        SimBoard {
            start: Instant::now(),
            lines: Arc::new(Mutex::new(Lines::default())),
        }
    }

    fn lines(&self) -> MutexGuard<'_, Lines> {
        lock(&self.lines)
    }

    /// The board clock (time since the board was created).
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// The level last written to an output pin, if it is claimed.
    pub fn output_level(&self, pin: GpioPin) -> Option<Level> {
        self.lines().outputs.get(&pin.0).copied()
    }

    /// Every level written to an output, oldest first.
    pub fn output_history(&self, pin: GpioPin) -> Vec<(Duration, Level)> {
        self.lines()
            .output_log
            .get(&pin.0)
            .cloned()
            .unwrap_or_default()
    }

    /// Holds an unclaimed line at `level` (a closed door pulls its contact
    /// low), so the input reads it when claimed instead of the idle level.
    pub fn preset(&self, pin: GpioPin, level: Level) {
        self.lines().presets.insert(pin.0, level);
    }

    /// The current level of an input (as last driven).
    pub fn input_level(&self, pin: GpioPin) -> Option<Level> {
        self.lines().inputs.get(&pin.0).map(|(l, _)| *l)
    }

    /// Drives an input to `level` now; reports an edge if the level changes.
    pub fn drive(&self, pin: GpioPin, level: Level) -> Result<()> {
        let at = self.now();
        self.inject(&[(pin, level, Duration::ZERO)], at)
    }

    /// Drives a burst of level changes stamped `offset` after the burst start
    /// (no sleeping: the timestamps carry the timing). Bursts injected back to
    /// back are spaced at least 30 ms apart in edge time. Returns the stamp of
    /// the last edge.
    pub fn inject_burst(&self, burst: &[(GpioPin, Level, Duration)]) -> Result<Duration> {
        let start = {
            let lines = self.lines();
            self.now().max(lines.next_free)
        };
        self.inject(burst, start)?;
        let last = burst.iter().map(|(_, _, o)| *o).max().unwrap_or_default();
        let mut lines = self.lines();
        lines.next_free = start + last + Duration::from_millis(30);
        Ok(start + last)
    }

    fn inject(&self, burst: &[(GpioPin, Level, Duration)], start: Duration) -> Result<()> {
        for (pin, level, offset) in burst {
            let callback = {
                let mut lines = self.lines();
                let Some((current, callback)) = lines.inputs.get_mut(&pin.0) else {
                    bail!("simulated {pin} is not an input of any gate");
                };
                if *current == *level {
                    continue;
                }
                *current = *level;
                callback.clone()
            };
            let edge = Edge {
                level: *level,
                at: start + *offset,
            };
            let mut cb = callback.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(cb) = cb.as_mut() {
                cb(edge);
            }
        }
        Ok(())
    }
}

impl Board for SimBoard {
    fn output(&self, pin: GpioPin, initial: Level) -> Result<Box<dyn OutputPin>> {
        let mut lines = self.lines();
        if lines.outputs.contains_key(&pin.0) || lines.inputs.contains_key(&pin.0) {
            bail!("{pin} is already in use");
        }
        lines.outputs.insert(pin.0, initial);
        let now = self.now();
        lines
            .output_log
            .entry(pin.0)
            .or_default()
            .push((now, initial));
        drop(lines);
        Ok(Box::new(SimOutput {
            lines: self.lines.clone(),
            start: self.start,
            pin,
            level: initial,
        }))
    }

    fn input(&self, pin: GpioPin, pull: Pull) -> Result<Box<dyn InputPin>> {
        let mut lines = self.lines();
        if lines.outputs.contains_key(&pin.0) || lines.inputs.contains_key(&pin.0) {
            bail!("{pin} is already in use");
        }
        let idle = match pull {
            Pull::Up => Level::High,
            Pull::Down | Pull::Off => Level::Low,
        };
        let idle = lines.presets.get(&pin.0).copied().unwrap_or(idle);
        let callback: SharedCallback = Arc::new(Mutex::new(None));
        lines.inputs.insert(pin.0, (idle, callback.clone()));
        drop(lines);
        Ok(Box::new(SimInput {
            lines: self.lines.clone(),
            pin,
            callback,
        }))
    }
}

// A panic while holding this lock can only come from a test; keep going.
fn lock(lines: &Mutex<Lines>) -> MutexGuard<'_, Lines> {
    lines.lock().unwrap_or_else(|p| p.into_inner())
}

struct SimOutput {
    lines: Arc<Mutex<Lines>>,
    start: Instant,
    pin: GpioPin,
    level: Level,
}

impl OutputPin for SimOutput {
    fn set(&mut self, level: Level) -> Result<()> {
        let now = self.start.elapsed();
        let mut lines = lock(&self.lines);
        lines.outputs.insert(self.pin.0, level);
        lines
            .output_log
            .entry(self.pin.0)
            .or_default()
            .push((now, level));
        self.level = level;
        Ok(())
    }

    fn level(&self) -> Level {
        self.level
    }
}

struct SimInput {
    lines: Arc<Mutex<Lines>>,
    pin: GpioPin,
    callback: SharedCallback,
}

impl InputPin for SimInput {
    fn level(&self) -> Result<Level> {
        lock(&self.lines)
            .inputs
            .get(&self.pin.0)
            .map(|(l, _)| *l)
            .ok_or_else(|| anyhow::anyhow!("simulated {} vanished", self.pin))
    }

    fn on_edge(&mut self, callback: EdgeCallback) -> Result<()> {
        *self.callback.lock().unwrap_or_else(|p| p.into_inner()) = Some(callback);
        Ok(())
    }
}
