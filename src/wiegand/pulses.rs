//! Pulse trains as a reader would send them, for the simulator, the tests and
//! the benchmark.

use std::time::Duration;

use rand::{Rng, SeedableRng};

use super::Line;
use crate::hw::Level;

/// A reader's pulse width and bit period.
#[derive(Clone, Copy, Debug)]
pub struct PulseTiming {
    pub pulse: Duration,
    pub interval: Duration,
}

impl PulseTiming {
    /// A common reader: 100 µs pulses, 1 ms apart.
    pub const TYPICAL: PulseTiming = PulseTiming {
        pulse: Duration::from_micros(100),
        interval: Duration::from_millis(1),
    };
    /// The fast end of the range: 50 µs pulses, 0.9 ms apart.
    pub const FAST: PulseTiming = PulseTiming {
        pulse: Duration::from_micros(50),
        interval: Duration::from_micros(900),
    };
    /// The slow end: 160 µs pulses, 2 ms apart.
    pub const SLOW: PulseTiming = PulseTiming {
        pulse: Duration::from_micros(160),
        interval: Duration::from_millis(2),
    };
}

/// The edges of `bits` (falling then rising per bit, on D0 for 0 and D1 for
/// 1), offset from the first falling edge. `jitter` (0.5 = ±50 %) scales each
/// pulse width and each gap independently, reproducibly from `seed`.
pub fn pulse_train(
    bits: &[bool],
    timing: PulseTiming,
    jitter: f64,
    seed: u64,
) -> Vec<(Line, Level, Duration)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut scale = |d: Duration| {
        let f = if jitter > 0.0 {
            rng.gen_range(1.0 - jitter..=1.0 + jitter)
        } else {
            1.0
        };
        d.mul_f64(f)
    };
    let mut out = Vec::with_capacity(bits.len() * 2);
    let mut t = Duration::ZERO;
    for (i, bit) in bits.iter().enumerate() {
        if i > 0 {
            t += scale(timing.interval);
        }
        let line = if *bit { Line::D1 } else { Line::D0 };
        let width = scale(timing.pulse);
        out.push((line, Level::Low, t));
        out.push((line, Level::High, t + width));
    }
    out
}
