//! `gatehouse simulate wiegand|pin|door|button|loop|plate`: drive a running
//! daemon's simulated gate through the control socket and print what it did.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Subcommand, ValueEnum};

use super::output::Format;
use super::Cli;
use crate::control::{self, Request};
use crate::daemon::simulate::SimOutcome;
use crate::domain::{CardFormat, CardNumber, GateId};

#[derive(Subcommand, Debug)]
pub enum SimulateCommand {
    /// A Wiegand reader sends a card (or raw bits, to send broken frames)
    Wiegand {
        #[arg(long)]
        gate: GateId,
        /// Card as facility:number (`10:12345`) or `raw:0101…`
        #[arg(long, conflicts_with = "bits", required_unless_present = "bits")]
        card: Option<CardNumber>,
        /// Literal frame bits, e.g. a 26-bit frame with a wrong parity bit
        #[arg(long)]
        bits: Option<String>,
        /// Frame format for --card [default: the smallest that fits]
        #[arg(long, value_enum)]
        format: Option<FrameFormat>,
        #[arg(long, value_enum, default_value_t)]
        output: Format,
    },
    /// A keypad sends a PIN (or a household number, 3*2*501) followed by #
    Pin {
        #[arg(long)]
        gate: GateId,
        /// The digits (`*` for the star key)
        pin: String,
        /// Send 8-bit key bursts instead of 4-bit
        #[arg(long)]
        eight_bit: bool,
        #[arg(long, value_enum, default_value_t)]
        output: Format,
    },
    /// The door contact reports the door open or closed
    Door {
        #[arg(long)]
        gate: GateId,
        state: DoorState,
        #[arg(long, value_enum, default_value_t)]
        output: Format,
    },
    /// Someone presses the exit button
    Button {
        #[arg(long)]
        gate: GateId,
        #[arg(long, value_enum, default_value_t)]
        output: Format,
    },
    /// The vehicle loop reports a vehicle present or clear
    Loop {
        #[arg(long)]
        gate: GateId,
        state: LoopState,
        #[arg(long, value_enum, default_value_t)]
        output: Format,
    },
    /// A plate camera reads a licence plate
    Plate {
        #[arg(long)]
        gate: GateId,
        plate: String,
        #[arg(long, value_enum, default_value_t)]
        output: Format,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FrameFormat {
    #[value(name = "26")]
    W26,
    #[value(name = "34")]
    W34,
    #[value(name = "37")]
    W37,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DoorState {
    Open,
    Close,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LoopState {
    Present,
    Clear,
}

pub fn run(cli: &Cli, cmd: &SimulateCommand) -> Result<ExitCode> {
    let config = cli.load_config()?;
    let socket = control::socket_path(config.data_dir());
    let (req, output) = match cmd {
        SimulateCommand::Wiegand {
            gate,
            card,
            bits,
            format,
            output,
        } => {
            if card.is_none() && bits.is_none() {
                bail!("give --card or --bits");
            }
            let format = format.map(|f| match f {
                FrameFormat::W26 => CardFormat::Wiegand26,
                FrameFormat::W34 => CardFormat::Wiegand34,
                FrameFormat::W37 => CardFormat::Wiegand37,
            });
            (
                Request::SimulateWiegand {
                    gate: gate.clone(),
                    card: card.clone(),
                    bits: bits.clone(),
                    format,
                },
                output,
            )
        }
        SimulateCommand::Pin {
            gate,
            pin,
            eight_bit,
            output,
        } => (
            Request::SimulatePin {
                gate: gate.clone(),
                pin: pin.clone(),
                eight_bit: *eight_bit,
            },
            output,
        ),
        SimulateCommand::Door {
            gate,
            state,
            output,
        } => (
            Request::SimulateDoor {
                gate: gate.clone(),
                open: matches!(state, DoorState::Open),
            },
            output,
        ),
        SimulateCommand::Button { gate, output } => {
            (Request::SimulateButton { gate: gate.clone() }, output)
        }
        SimulateCommand::Loop {
            gate,
            state,
            output,
        } => (
            Request::SimulateVehicle {
                gate: gate.clone(),
                present: matches!(state, LoopState::Present),
            },
            output,
        ),
        SimulateCommand::Plate {
            gate,
            plate,
            output,
        } => (
            Request::SimulatePlate {
                gate: gate.clone(),
                plate: plate.clone(),
            },
            output,
        ),
    };
    super::output::no_csv(*output, "simulate")?;
    let result = control::request(&socket, &req)?;
    if *output == Format::Json {
        println!("{result}");
        return Ok(ExitCode::SUCCESS);
    }
    let outcome: SimOutcome = serde_json::from_value(result)?;
    print!("{}", describe(&outcome));
    Ok(ExitCode::SUCCESS)
}

/// The outcome in lines a person reads.
pub fn describe(o: &SimOutcome) -> String {
    let mut s = String::new();
    if let Some(d) = &o.decision {
        s.push_str(&d.line());
        s.push('\n');
    }
    if let Some(c) = &o.captured {
        s.push_str(&format!(
            "card {c} captured for enrolment (no access decision)\n"
        ));
    }
    if let Some(r) = &o.rejected {
        let kind = serde_json::to_value(r.kind)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        s.push_str(&format!("frame rejected ({kind}): {}\n", r.detail));
    }
    for e in &o.events {
        if e.kind == crate::store::events::EventKind::Access {
            continue; // already printed as the decision
        }
        s.push_str(&format!(
            "event #{} {} {}\n",
            e.seq,
            e.kind.as_str(),
            e.reason.as_deref().unwrap_or("")
        ));
    }
    if let Some(st) = &o.status {
        let door = serde_json::to_value(st.door)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        s.push_str(&format!("gate {}: {}, door {door}", st.id, st.lock));
        if let Some(r) = &st.reader {
            let c = r.health.counters;
            s.push_str(&format!(
                ", reader ok {} parity {} length {} noise {}",
                c.frames_ok, c.parity_errors, c.length_errors, c.noise
            ));
            if let Some(l) = r.locked_out_s {
                s.push_str(&format!(", LOCKED OUT {l}s"));
            }
        }
        s.push('\n');
    }
    s
}
