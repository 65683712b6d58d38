//! Drives a simulated gate's inputs the way the hardware would (Wiegand pulse
//! trains, door contact, exit button, vehicle loop) and reports what the gate
//! did. Used by `gatehouse simulate …` through the control socket, by tests
//! and by the demo; the edges go through the same decoder and gate task as
//! on a Pi.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::view::{DecisionView, GateNotice, GateStatus};
use super::GateHandle;
use crate::access::Credential;
use crate::config::GpioPin;
use crate::domain::{GateId, Plate};
use crate::hw::Level;
use crate::store::events::EventRecord;
use crate::wiegand::{self, format, Key, Line, PulseTiming, Rejection};

/// How long to wait for a gate to decide after the last injected edge.
pub const DECISION_TIMEOUT: Duration = Duration::from_secs(3);

/// What a simulated input caused.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SimOutcome {
    pub decision: Option<DecisionView>,
    pub rejected: Option<Rejection>,
    /// The card went to an enrolment capture (masked); no decision was made.
    #[serde(default)]
    pub captured: Option<String>,
    /// The card waited this many seconds at most for its owner's face (card + face gates).
    #[serde(default)]
    pub face_wanted_s: Option<u64>,
    /// Events stored for this gate meanwhile (decision, alarms, device events).
    pub events: Vec<EventRecord>,
    pub status: Option<GateStatus>,
}

/// Puts a simulated gate's world in its everyday state before the gate
/// claims its pins: door closed (contact pulled low), no vehicle on the loop,
/// tamper switch closed.
pub fn prepare_world(board: &crate::hw::simulated::SimBoard, cfg: &crate::config::Gate) {
    for (pin, level) in [
        (cfg.door_contact_pin, Level::Low),
        (cfg.loop_pin, Level::High),
        (cfg.tamper_pin, Level::Low),
    ] {
        if let Some(pin) = pin {
            board.preset(pin, level);
        }
    }
}

struct Watch {
    notices: broadcast::Receiver<GateNotice>,
    events: broadcast::Receiver<EventRecord>,
}

fn pin(p: Option<GpioPin>, gate: &GateId, what: &str) -> Result<GpioPin> {
    p.ok_or_else(|| anyhow!("gate {gate} has no {what} in the config"))
}

impl GateHandle {
    fn watch(&self, gate: &GateId) -> Result<Watch> {
        Ok(Watch {
            notices: self.notices(gate)?,
            events: self.events(),
        })
    }

    async fn finish(&self, gate: &GateId, mut w: Watch, wait_decision: bool) -> Result<SimOutcome> {
        let mut out = SimOutcome::default();
        if wait_decision {
            let mut deadline = tokio::time::Instant::now() + DECISION_TIMEOUT;
            loop {
                match tokio::time::timeout_at(deadline, w.notices.recv()).await {
                    Err(_) => bail!("gate {gate} did not decide within {DECISION_TIMEOUT:?}"),
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                    Ok(Err(broadcast::error::RecvError::Closed)) => {
                        bail!("gate {gate} has stopped")
                    }
                    // The gate's cameras decide on faces meanwhile; nothing simulated is a face.
                    Ok(Ok(GateNotice::Decided(d))) if d.credential_kind == "face" => {}
                    Ok(Ok(GateNotice::Decided(d))) => {
                        out.decision = Some(d);
                        break;
                    }
                    Ok(Ok(GateNotice::FrameRejected { rejection })) => {
                        out.rejected = Some(rejection);
                        break;
                    }
                    Ok(Ok(GateNotice::CardCaptured { card_masked })) => {
                        out.captured = Some(card_masked);
                        break;
                    }
                    Ok(Ok(GateNotice::KeyBuffered { .. })) => {}
                    Ok(Ok(
                        GateNotice::FaceWanted { wait_s, .. }
                        | GateNotice::HouseholdKeyed { wait_s, .. },
                    )) => {
                        // The decision comes when the face is seen or the wait ends.
                        out.face_wanted_s = Some(wait_s);
                        deadline += Duration::from_secs(wait_s);
                    }
                }
            }
        }
        self.sync(gate).await?;
        while let Ok(e) = w.events.try_recv() {
            if e.gate.as_deref() == Some(gate.as_str()) {
                out.events.push(e);
            }
        }
        out.status = self
            .status()
            .await
            .into_iter()
            .find(|s| s.id == gate.as_str());
        Ok(out)
    }

    fn inject_bits(&self, gate: &GateId, bits: &[bool]) -> Result<()> {
        let cfg = self.gate_config(gate)?;
        let d0 = pin(cfg.wiegand_d0_pin, gate, "Wiegand reader (wiegand_d0_pin)")?;
        let d1 = pin(cfg.wiegand_d1_pin, gate, "Wiegand reader (wiegand_d1_pin)")?;
        let board = self.simulator(gate)?;
        let seed = rand::random::<u64>();
        let burst: Vec<(GpioPin, Level, Duration)> =
            wiegand::pulse_train(bits, PulseTiming::TYPICAL, 0.3, seed)
                .into_iter()
                .map(|(line, level, at)| (if line == Line::D0 { d0 } else { d1 }, level, at))
                .collect();
        board.inject_burst(&burst)?;
        Ok(())
    }

    /// A reader sends `bits` (a card frame, or any bits to test rejection).
    pub async fn simulate_wiegand(&self, gate: &GateId, bits: &[bool]) -> Result<SimOutcome> {
        if bits.is_empty() {
            bail!("no bits to send");
        }
        let w = self.watch(gate)?;
        self.inject_bits(gate, bits)?;
        self.finish(gate, w, true).await
    }

    /// A keypad sends the keys of `pin` (digits, and `*`) then `#`, one
    /// burst per key (`3*2*501`: a household number at a household gate).
    pub async fn simulate_pin(
        &self,
        gate: &GateId,
        pin: &str,
        eight_bit: bool,
    ) -> Result<SimOutcome> {
        if pin.is_empty()
            || pin.len() > wiegand::MAX_PIN_DIGITS
            || !pin.bytes().all(|b| b.is_ascii_digit() || b == b'*')
        {
            bail!(
                "PIN {pin:?}: expected 1..={} digits (or * between them)",
                wiegand::MAX_PIN_DIGITS
            );
        }
        let w = self.watch(gate)?;
        let keys = pin
            .bytes()
            .map(|b| match b {
                b'*' => Key::Clear,
                _ => Key::Digit(b - b'0'),
            })
            .chain([Key::Enter]);
        for key in keys {
            self.inject_bits(gate, &format::encode_key(key, eight_bit))?;
        }
        self.finish(gate, w, true).await
    }

    /// The door contact reports open or closed.
    pub async fn simulate_door(&self, gate: &GateId, open: bool) -> Result<SimOutcome> {
        let p = pin(
            self.gate_config(gate)?.door_contact_pin,
            gate,
            "door contact (door_contact_pin)",
        )?;
        let w = self.watch(gate)?;
        self.simulator(gate)?.drive(p, Level::from_bool(open))?;
        self.finish(gate, w, false).await
    }

    /// Someone presses and releases the exit button.
    pub async fn simulate_button(&self, gate: &GateId) -> Result<SimOutcome> {
        let p = pin(
            self.gate_config(gate)?.exit_button_pin,
            gate,
            "exit button (exit_button_pin)",
        )?;
        let w = self.watch(gate)?;
        let board = self.simulator(gate)?;
        board.drive(p, Level::Low)?;
        board.drive(p, Level::High)?;
        self.finish(gate, w, true).await
    }

    /// The vehicle loop reports a vehicle (or none).
    pub async fn simulate_vehicle(&self, gate: &GateId, present: bool) -> Result<SimOutcome> {
        let p = pin(
            self.gate_config(gate)?.loop_pin,
            gate,
            "vehicle loop (loop_pin)",
        )?;
        let w = self.watch(gate)?;
        self.simulator(gate)?.drive(p, Level::from_bool(!present))?;
        self.finish(gate, w, false).await
    }

    /// A plate camera reads `plate` at the gate.
    pub async fn simulate_plate(&self, gate: &GateId, plate: Plate) -> Result<SimOutcome> {
        self.simulator(gate)?;
        let w = self.watch(gate)?;
        self.present(gate, Credential::Plate(plate)).await?;
        self.finish(gate, w, true).await
    }
}
