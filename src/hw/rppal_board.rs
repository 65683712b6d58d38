//! Raspberry Pi GPIO through rppal. Edges come from the kernel's GPIO
//! character device with kernel timestamps (rppal's async interrupts), never
//! from polling: Wiegand pulses are 50–160 µs wide.

use std::time::Duration;

use anyhow::{Context, Result};
use rppal::gpio::{Gpio, Trigger};

use super::{Board, Edge, EdgeCallback, InputPin, Level, OutputPin, Pull};
use crate::config::GpioPin;

pub struct RppalBoard {
    gpio: Gpio,
}

impl RppalBoard {
    /// Opens the GPIO chip. On a machine that is not a supported Raspberry Pi
    /// (or without access to /dev/gpiochip*) this is an error, never a panic.
    pub fn open() -> Result<RppalBoard> {
        let gpio = Gpio::new().map_err(|e| {
            anyhow::anyhow!(
                "cannot open the Raspberry Pi GPIO: {e}. This machine is not a supported Raspberry Pi, \
                 or this user cannot open /dev/gpiochip0 (add it to the gpio group); \
                 to run without GPIO set backend = \"simulated\" for the gate"
            )
        })?;
        Ok(RppalBoard { gpio })
    }
}

impl Board for RppalBoard {
    fn output(&self, pin: GpioPin, initial: Level) -> Result<Box<dyn OutputPin>> {
        let raw = self
            .gpio
            .get(pin.0)
            .with_context(|| format!("cannot claim {pin} as an output"))?;
        let mut out = match initial {
            Level::Low => raw.into_output_low(),
            Level::High => raw.into_output_high(),
        };
        // Keep the relay where we put it when the pin is dropped at shutdown;
        // the default would float the line and let the relay do as it likes.
        out.set_reset_on_drop(false);
        Ok(Box::new(RppalOutput {
            pin: out,
            level: initial,
        }))
    }

    fn input(&self, pin: GpioPin, pull: Pull) -> Result<Box<dyn InputPin>> {
        let raw = self
            .gpio
            .get(pin.0)
            .with_context(|| format!("cannot claim {pin} as an input"))?;
        let input = match pull {
            Pull::Up => raw.into_input_pullup(),
            Pull::Down => raw.into_input_pulldown(),
            Pull::Off => raw.into_input(),
        };
        Ok(Box::new(RppalInput {
            pin: input,
            gpio: pin,
        }))
    }
}

struct RppalOutput {
    pin: rppal::gpio::OutputPin,
    level: Level,
}

impl OutputPin for RppalOutput {
    fn set(&mut self, level: Level) -> Result<()> {
        match level {
            Level::Low => self.pin.set_low(),
            Level::High => self.pin.set_high(),
        }
        self.level = level;
        Ok(())
    }

    fn level(&self) -> Level {
        self.level
    }
}

struct RppalInput {
    pin: rppal::gpio::InputPin,
    gpio: GpioPin,
}

impl InputPin for RppalInput {
    fn level(&self) -> Result<Level> {
        Ok(Level::from_bool(self.pin.is_high()))
    }

    fn on_edge(&mut self, mut callback: EdgeCallback) -> Result<()> {
        self.pin
            .set_async_interrupt(Trigger::Both, None, move |event| {
                let level = match event.trigger {
                    Trigger::RisingEdge => Level::High,
                    _ => Level::Low,
                };
                callback(Edge {
                    level,
                    at: event.timestamp,
                });
            })
            .with_context(|| format!("cannot watch edges on {}", self.gpio))
    }
}

/// Kernel timestamps are CLOCK_MONOTONIC; this reads the same clock.
pub fn monotonic_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_gpio_off_a_pi_is_a_clear_error_not_a_panic() {
        match RppalBoard::open() {
            Ok(_) => {} // running on a Pi: nothing to check here
            Err(e) => {
                let msg = format!("{e:#}");
                assert!(msg.contains("cannot open the Raspberry Pi GPIO"), "{msg}");
                assert!(msg.contains("simulated"), "{msg}");
            }
        }
    }
}
