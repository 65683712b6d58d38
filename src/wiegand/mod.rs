//! Wiegand readers: turn timestamped D0/D1 edges into cards, keypad PINs and
//! rejections, and keep the reader's health counters.
//!
//! A bit is a low pulse (50–160 µs, vendor-dependent) on D0 (a 0) or D1 (a 1),
//! 0.9–2 ms apart; a frame ends after a quiet gap of [`QUIET_GAP`]. Bits are
//! ordered by their edge timestamps, not by arrival, because the two lines
//! are delivered by different interrupt threads. Limits below leave room for
//! ±50 % timing jitter.
//!
//! Architecture Invariant: pure and synchronous; time comes in with the
//! edges, so the decoder runs the same on the Pi, in the simulator and in
//! tests.

pub mod format;
mod pulses;

use std::time::Duration;

use serde::Serialize;

pub use format::{Key, RejectKind, Rejection, WiegandFrame};
pub use pulses::{pulse_train, PulseTiming};

use crate::domain::{CardFormat, CardNumber};
use crate::hw::{Edge, Level};

/// A frame ends after this long without an edge.
pub const QUIET_GAP: Duration = Duration::from_millis(25);
/// Shorter low pulses are electrical glitches and ignored.
pub const MIN_PULSE: Duration = Duration::from_micros(10);
/// Longer low pulses are not data (160 µs + 50 % is 240 µs; leave margin).
pub const MAX_PULSE: Duration = Duration::from_millis(1);
/// Bits closer than this are not data (0.9 ms − 50 % is 450 µs).
pub const MIN_BIT_INTERVAL: Duration = Duration::from_micros(200);
/// Typed keys are forgotten after this long without another key.
pub const KEY_TIMEOUT: Duration = Duration::from_secs(10);
pub use crate::domain::MAX_PIN_DIGITS;
/// This many bad frames within [`FAULT_WINDOW`] mark the reader faulty.
pub const FAULT_BAD_FRAMES: usize = 5;
pub const FAULT_WINDOW: Duration = Duration::from_secs(60);

/// The two data lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    D0,
    D1,
}

impl Line {
    fn index(self) -> usize {
        match self {
            Line::D0 => 0,
            Line::D1 => 1,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Pulse {
    line: Line,
    start: Duration,
    width: Duration,
}

/// Counters a reader keeps (shown by `gatehouse gate status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counters {
    pub frames_ok: u64,
    pub parity_errors: u64,
    pub length_errors: u64,
    pub noise: u64,
    pub glitches: u64,
}

/// Edges → frames.
#[derive(Debug, Default)]
pub struct Decoder {
    pulses: Vec<Pulse>,
    /// Start of a low pulse still waiting for its rising edge, per line.
    low_since: [Option<Duration>; 2],
    last_edge: Option<Duration>,
    pub counters: Counters,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// True while a burst is being received (the caller should call
    /// [`Decoder::finish`] after [`QUIET_GAP`] without edges).
    pub fn in_burst(&self) -> bool {
        !self.pulses.is_empty() || self.low_since.iter().any(Option::is_some)
    }

    /// Feeds one edge. A gap of [`QUIET_GAP`] since the previous edge closes
    /// the previous frame, which is returned.
    pub fn edge(&mut self, line: Line, edge: Edge) -> Option<Result<WiegandFrame, Rejection>> {
        let mut closed = None;
        if let Some(last) = self.last_edge {
            if edge.at > last + QUIET_GAP && self.in_burst() {
                closed = self.finish();
            }
        }
        let slot = &mut self.low_since[line.index()];
        match edge.level {
            Level::Low => *slot = Some(edge.at),
            Level::High => {
                // A rising edge without its falling edge (a line released after
                // a fault, or the daemon started mid-pulse) carries no bit.
                if let Some(start) = slot.take() {
                    self.pulses.push(Pulse {
                        line,
                        start,
                        width: edge.at.saturating_sub(start),
                    });
                }
            }
        }
        self.last_edge = Some(self.last_edge.map_or(edge.at, |l| l.max(edge.at)));
        closed
    }

    /// Closes the current burst: decodes it, counts the outcome.
    pub fn finish(&mut self) -> Option<Result<WiegandFrame, Rejection>> {
        if !self.in_burst() {
            return None;
        }
        let mut pulses = std::mem::take(&mut self.pulses);
        let stuck = std::mem::take(&mut self.low_since);
        let result = self.check(&mut pulses, stuck);
        if let Some(r) = &result {
            match r {
                Ok(_) => self.counters.frames_ok += 1,
                Err(rej) => match rej.kind {
                    RejectKind::Parity => self.counters.parity_errors += 1,
                    RejectKind::Length => self.counters.length_errors += 1,
                    RejectKind::Noise => self.counters.noise += 1,
                },
            }
        }
        result
    }

    fn check(
        &mut self,
        pulses: &mut Vec<Pulse>,
        stuck: [Option<Duration>; 2],
    ) -> Option<Result<WiegandFrame, Rejection>> {
        let before = pulses.len();
        pulses.retain(|p| p.width >= MIN_PULSE);
        self.counters.glitches += (before - pulses.len()) as u64;
        let noise = |bits: usize, detail: String| {
            Some(Err(Rejection {
                kind: RejectKind::Noise,
                bits,
                detail,
            }))
        };
        if let Some(i) = stuck.iter().position(Option::is_some) {
            let line = if i == 0 { "D0" } else { "D1" };
            return noise(
                pulses.len(),
                format!(
                    "{line} held low for more than {QUIET_GAP:?} (shorted or disconnected line?)"
                ),
            );
        }
        if pulses.is_empty() {
            return None; // only glitches: nothing was sent
        }
        pulses.sort_by_key(|p| p.start);
        let n = pulses.len();
        if let Some(p) = pulses.iter().find(|p| p.width > MAX_PULSE) {
            return noise(
                n,
                format!("a {} µs pulse is too long for data", p.width.as_micros()),
            );
        }
        for pair in pulses.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if b.start < a.start + a.width {
                return noise(n, "D0 and D1 were low at the same time".into());
            }
            if b.start - a.start < MIN_BIT_INTERVAL {
                return noise(
                    n,
                    format!(
                        "bits {} µs apart, faster than any reader",
                        (b.start - a.start).as_micros()
                    ),
                );
            }
        }
        let bits: Vec<bool> = pulses.iter().map(|p| p.line == Line::D1).collect();
        Some(format::decode(&bits))
    }
}

/// Digits typed on a keypad, hidden from Debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct PinEntry(pub String);

impl std::fmt::Debug for PinEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PinEntry({} digits)", self.0.len())
    }
}

/// What a reader produced.
#[derive(Clone, Debug, PartialEq)]
pub enum ReaderEvent {
    Card {
        card: CardNumber,
        format: CardFormat,
    },
    /// Digits followed by `#`.
    Pin(PinEntry),
    /// A key was typed; the PIN is not complete yet.
    KeyBuffered {
        digits: usize,
    },
    Rejected(Rejection),
    /// The reader keeps sending bad frames (raised once until a good frame).
    Fault {
        bad_frames: usize,
    },
    /// A good frame after a fault.
    Recovered,
}

/// A reader: decoder, keypad buffer and fault detection.
#[derive(Debug, Default)]
pub struct Reader {
    pub decoder: Decoder,
    digits: String,
    last_key: Option<Duration>,
    bad_frames: Vec<Duration>,
    faulted: bool,
    /// At a household gate `*` after a digit separates the parts of an
    /// address (`3*2*501#`); `**` clears. Elsewhere `*` clears.
    star_separates: bool,
}

/// Health of a reader for status displays.
#[derive(Clone, Copy, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ReaderHealth {
    pub counters: Counters,
    pub faulted: bool,
}

impl Reader {
    pub fn new() -> Reader {
        Reader::default()
    }

    /// The reader of a household gate, where addresses are keyed as
    /// `3*2*501#`: `*` after a digit is a separator, `**` clears.
    pub fn with_star_separator() -> Reader {
        Reader {
            star_separates: true,
            ..Reader::default()
        }
    }

    pub fn health(&self) -> ReaderHealth {
        ReaderHealth {
            counters: self.decoder.counters,
            faulted: self.faulted,
        }
    }

    pub fn in_burst(&self) -> bool {
        self.decoder.in_burst()
    }

    pub fn edge(&mut self, line: Line, edge: Edge) -> Vec<ReaderEvent> {
        match self.decoder.edge(line, edge) {
            Some(frame) => self.frame(frame, edge.at),
            None => Vec::new(),
        }
    }

    /// Call after [`QUIET_GAP`] without edges; `now` is on the edge clock.
    pub fn finish(&mut self, now: Duration) -> Vec<ReaderEvent> {
        match self.decoder.finish() {
            Some(frame) => self.frame(frame, now),
            None => Vec::new(),
        }
    }

    fn frame(&mut self, frame: Result<WiegandFrame, Rejection>, now: Duration) -> Vec<ReaderEvent> {
        let mut out = Vec::new();
        match frame {
            Ok(frame) => {
                if self.faulted {
                    self.faulted = false;
                    out.push(ReaderEvent::Recovered);
                }
                self.bad_frames.clear();
                match frame {
                    WiegandFrame::Card { card, format } => {
                        self.digits.clear();
                        out.push(ReaderEvent::Card { card, format });
                    }
                    WiegandFrame::Key(key) => out.extend(self.key(key, now)),
                }
            }
            Err(rejection) => {
                self.bad_frames.push(now);
                self.bad_frames
                    .retain(|t| now.saturating_sub(*t) <= FAULT_WINDOW);
                out.push(ReaderEvent::Rejected(rejection));
                if !self.faulted && self.bad_frames.len() >= FAULT_BAD_FRAMES {
                    self.faulted = true;
                    out.push(ReaderEvent::Fault {
                        bad_frames: self.bad_frames.len(),
                    });
                }
            }
        }
        out
    }

    fn key(&mut self, key: Key, now: Duration) -> Option<ReaderEvent> {
        if let Some(last) = self.last_key {
            if now.saturating_sub(last) > KEY_TIMEOUT {
                self.digits.clear();
            }
        }
        self.last_key = Some(now);
        match key {
            Key::Digit(d) => {
                if self.digits.len() >= MAX_PIN_DIGITS {
                    self.digits.clear();
                }
                self.digits.push(char::from(b'0' + d));
                Some(ReaderEvent::KeyBuffered {
                    digits: self.digits.len(),
                })
            }
            Key::Clear
                if self.star_separates
                    && self.digits.ends_with(|c: char| c.is_ascii_digit())
                    && self.digits.len() < MAX_PIN_DIGITS =>
            {
                self.digits.push('*');
                Some(ReaderEvent::KeyBuffered {
                    digits: self.digits.len(),
                })
            }
            Key::Clear => {
                self.digits.clear();
                Some(ReaderEvent::KeyBuffered { digits: 0 })
            }
            Key::Enter => {
                if self.digits.is_empty() {
                    return None;
                }
                Some(ReaderEvent::Pin(PinEntry(std::mem::take(&mut self.digits))))
            }
        }
    }
}

#[cfg(test)]
mod tests;
