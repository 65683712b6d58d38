//! `gatehouse gate open|status`: the property manager's manual open (audited)
//! and the state of every gate, from the running daemon.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::{Cli, OutputFormat};
use crate::control::{self, Request};
use crate::daemon::{DecisionView, GateStatus};
use crate::domain::GateId;

#[derive(Subcommand, Debug)]
pub enum GateCommand {
    /// Open a gate now (recorded in the audit log and the event log)
    Open {
        #[arg(long)]
        gate: GateId,
        /// Why (kept in the audit log)
        #[arg(long)]
        reason: String,
    },
    /// Each gate's kind, lock and door state, alarms and reader health
    Status {
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
}

pub fn run(cli: &Cli, cmd: &GateCommand) -> Result<ExitCode> {
    let config = cli.load_config()?;
    let socket = control::socket_path(config.data_dir());
    match cmd {
        GateCommand::Open { gate, reason } => {
            let req = Request::GateOpen {
                gate: gate.clone(),
                reason: reason.clone(),
                actor: crate::store::os_user(),
            };
            let view: DecisionView = serde_json::from_value(control::request(&socket, &req)?)?;
            println!("{}", view.line());
        }
        GateCommand::Status { format } => {
            let value = control::request(&socket, &Request::GateStatus)?;
            if matches!(format, OutputFormat::Json) {
                println!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(ExitCode::SUCCESS);
            }
            let gates: Vec<GateStatus> = serde_json::from_value(value)?;
            print!("{}", table(&gates));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn word<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn table(gates: &[GateStatus]) -> String {
    let mut rows = vec![[
        "GATE".to_string(),
        "KIND".into(),
        "DIR".into(),
        "BACKEND".into(),
        "LOCK".into(),
        "DOOR".into(),
        "ALARMS".into(),
        "READER".into(),
    ]];
    for g in gates {
        let mut alarms: Vec<String> = g.alarms.iter().map(|a| a.as_str().to_string()).collect();
        if g.tamper {
            alarms.push("tamper".into());
        }
        if g.vehicle_present == Some(true) {
            alarms.push("vehicle_on_loop".into());
        }
        let reader = match (&g.out_of_service, &g.reader) {
            (Some(why), _) => format!("OUT OF SERVICE: {why}"),
            (None, None) => "-".into(),
            (None, Some(r)) => {
                let c = r.health.counters;
                let mut s = format!(
                    "{} ok={} parity={} length={} noise={}",
                    if r.health.faulted { "FAULT" } else { "ok" },
                    c.frames_ok,
                    c.parity_errors,
                    c.length_errors,
                    c.noise
                );
                if let Some(l) = r.locked_out_s {
                    s.push_str(&format!(" locked_out={l}s"));
                }
                s
            }
        };
        rows.push([
            g.id.clone(),
            word(&g.kind),
            word(&g.direction),
            word(&g.backend),
            g.lock.clone(),
            word(&g.door),
            if alarms.is_empty() {
                "-".into()
            } else {
                alarms.join(",")
            },
            reader,
        ]);
    }
    super::log::render_table(&rows)
}
