//! The hardware boundary, in the manner of embedded-hal: an output pin (relay,
//! buzzer) and an input pin that reports timestamped edges (door contact, exit
//! button, loop, tamper, Wiegand D0/D1). Everything above these traits is the
//! same code for the Raspberry Pi ([`rppal_board`]) and the in-process
//! simulator ([`simulated`]).
//!
//! Architecture Invariant: nothing outside this module knows which backend is
//! plugged in; the only backend-specific call is [`open_board`].

pub mod rppal_board;
pub mod simulated;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::config::{Backend, GpioPin};

/// A logic level on a pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Low,
    High,
}

impl Level {
    pub fn from_bool(high: bool) -> Level {
        if high {
            Level::High
        } else {
            Level::Low
        }
    }

    pub fn is_high(self) -> bool {
        self == Level::High
    }
}

/// One transition of an input, stamped where it was seen (the kernel's GPIO
/// character device stamps edges with CLOCK_MONOTONIC; the simulator with its
/// own clock). `level` is the level after the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub level: Level,
    pub at: Duration,
}

/// Called for every edge, on whatever thread the backend delivers it.
pub type EdgeCallback = Box<dyn FnMut(Edge) + Send + 'static>;

/// Pull resistor for an input. Contacts, buttons and loop detectors switch to
/// ground, so they use `Up`: an idle line reads high.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pull {
    Up,
    Down,
    Off,
}

/// A push-pull output.
pub trait OutputPin: Send {
    fn set(&mut self, level: Level) -> Result<()>;
    /// The level last written.
    fn level(&self) -> Level;
}

/// An input that can be read and that reports edges.
pub trait InputPin: Send {
    fn level(&self) -> Result<Level>;
    /// Replaces any earlier callback; edges on both directions are reported.
    fn on_edge(&mut self, callback: EdgeCallback) -> Result<()>;
}

/// A source of pins: one per backend.
pub trait Board: Send + Sync {
    fn output(&self, pin: GpioPin, initial: Level) -> Result<Box<dyn OutputPin>>;
    fn input(&self, pin: GpioPin, pull: Pull) -> Result<Box<dyn InputPin>>;
}

/// The boards a daemon uses, opened once: the simulator always, the Pi GPIO
/// on first use (and its failure remembered, so every rppal gate reports the
/// same clear error).
pub struct Boards {
    pub simulated: Arc<simulated::SimBoard>,
    rppal: std::sync::OnceLock<Result<Arc<rppal_board::RppalBoard>, String>>,
}

impl Default for Boards {
    fn default() -> Self {
        Boards::new()
    }
}

impl Boards {
    pub fn new() -> Boards {
        Boards {
            simulated: Arc::new(simulated::SimBoard::new()),
            rppal: std::sync::OnceLock::new(),
        }
    }

    /// The board for a backend named in the config.
    pub fn open(&self, backend: Backend) -> Result<Arc<dyn Board>> {
        open_board(self, backend)
    }
}

/// Picks the board for `backend`. The Pi GPIO is opened at most once.
pub fn open_board(boards: &Boards, backend: Backend) -> Result<Arc<dyn Board>> {
    match backend {
        Backend::Simulated => Ok(boards.simulated.clone()),
        Backend::Rppal => {
            let opened = boards.rppal.get_or_init(|| {
                rppal_board::RppalBoard::open()
                    .map(Arc::new)
                    .map_err(|e| format!("{e:#}"))
            });
            match opened {
                Ok(board) => Ok(board.clone()),
                Err(e) => Err(anyhow::anyhow!("{e}")),
            }
        }
    }
}
