//! The gate tasks in-process: gate ids, the daemon with its clock taken as
//! synchronised, and the decision a simulated card, frame, PIN or plate led
//! to (the swipe, unwrap, take-the-decision sequence the tests repeat).

use gatehouse::config::Config;
use gatehouse::daemon::simulate::SimOutcome;
use gatehouse::daemon::view::DecisionView;
use gatehouse::daemon::{Daemon, DaemonOptions, GateHandle};
use gatehouse::domain::GateId;
use gatehouse::wiegand::format;

pub fn gate(id: &str) -> GateId {
    id.parse().unwrap_or_else(|e| panic!("gate id {id:?}: {e}"))
}

/// The daemon on `config`, with the clock taken as synchronised.
pub async fn start_daemon(config: &Config) -> Daemon {
    Daemon::start_with(
        config,
        DaemonOptions {
            assume_clock_synced: Some(true),
        },
    )
    .await
    .unwrap()
}

/// The Wiegand frame of `card` (`10:12345`) in the smallest format that holds it.
pub fn card_bits(card: &str) -> Vec<bool> {
    format::encode_card(&card.parse().unwrap(), None).unwrap()
}

/// The decision a simulated input led to; panics if it led to none.
pub fn decision(out: &SimOutcome) -> DecisionView {
    out.decision.clone().expect("a decision")
}

/// The decision on `card` swiped at `gate_id`'s reader.
pub async fn card_decision(h: &GateHandle, gate_id: &str, card: &str) -> DecisionView {
    frame_decision(h, gate_id, &card_bits(card)).await
}

/// The decision on a literal Wiegand frame at `gate_id`'s reader.
pub async fn frame_decision(h: &GateHandle, gate_id: &str, bits: &[bool]) -> DecisionView {
    decision(
        &h.simulate_wiegand(&gate(gate_id), bits)
            .await
            .unwrap_or_else(|e| panic!("frame at {gate_id}: {e:#}")),
    )
}

/// The decision on `pin` typed at `gate_id`'s keypad.
pub async fn pin_decision(
    h: &GateHandle,
    gate_id: &str,
    pin: &str,
    eight_bit: bool,
) -> DecisionView {
    decision(
        &h.simulate_pin(&gate(gate_id), pin, eight_bit)
            .await
            .unwrap_or_else(|e| panic!("PIN {pin} at {gate_id}: {e:#}")),
    )
}

/// The decision on `plate` read at `gate_id`'s plate camera.
pub async fn plate_decision(h: &GateHandle, gate_id: &str, plate: &str) -> DecisionView {
    decision(
        &h.simulate_plate(&gate(gate_id), plate.parse().unwrap())
            .await
            .unwrap_or_else(|e| panic!("plate {plate} at {gate_id}: {e:#}")),
    )
}
