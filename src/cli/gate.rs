//! `gatehouse gate open|status`: the property manager's manual open (audited)
//! and the state of every gate, from the running daemon.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::output::{self, render_table, Format};
use super::Cli;
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
        format: Format,
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
            output::no_csv(*format, "gate status")?;
            if *format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(ExitCode::SUCCESS);
            }
            let gates: Vec<GateStatus> = serde_json::from_value(value)?;
            print!("{}", table(&gates));
            if config.site.role != crate::config::SiteRole::Standalone {
                // A gate decides on its last good register whatever the broker does.
                match crate::store::site_log::status_at(&config.database_path()) {
                    Ok(site) => println!("site: {}", crate::site::describe(&site)),
                    Err(e) => println!("site: {e:#}"),
                }
                if config.site.role == crate::config::SiteRole::Registry {
                    for line in site_gates(&config)? {
                        println!("  {line}");
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The registry's gates, each with its applied entry and lag.
fn site_gates(config: &crate::config::Config) -> Result<Vec<String>> {
    let conn = crate::store::readers::open_read_only(&config.database_path())?;
    let head = crate::store::site_log::head(&conn)?;
    let gates = crate::store::site_gates::gates(&conn)?;
    if gates.is_empty() {
        return Ok(vec!["no gate has reported yet".into()]);
    }
    Ok(crate::site::describe_gates(head, &gates))
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
        "FACE".into(),
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
                if let Some(p) = r.pin_suspended_s {
                    s.push_str(&format!(" pin_suspended={p}s"));
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
            face_cell(g),
        ]);
    }
    let mut out = render_table(&rows);
    // The stranger rate is the same for every gate (one register): say it once.
    if let Some(face) = gates.iter().find_map(|g| g.face.as_ref()) {
        match (&face.stranger_risk, face.over_target) {
            (Some(risk), true) => out.push_str(&format!("WARNING face register: {risk}\n")),
            (Some(risk), false) => out.push_str(&format!("face register: {risk}\n")),
            (None, _) => out.push_str(&format!(
                "face register: {} residents with a face; stranger false-accept rate unknown (run `gatehouse face calibrate --write-config`)\n",
                face.gallery_residents
            )),
        }
    }
    out
}

/// `card+face now, cam1 streaming, threshold 0.450 (configured), stranger 0.02%` (or `-`).
fn face_cell(g: &GateStatus) -> String {
    let mut parts = Vec::new();
    if let Some(mode) = &g.two_factor {
        let when = if g.two_factor_now { "now" } else { "not now" };
        parts.push(format!("{mode} {when}"));
    }
    if let Some(face) = &g.face {
        for (camera, state) in &face.cameras {
            parts.push(format!("{camera} {state}"));
        }
        if let Some(t) = face.threshold {
            let calibrated = face
                .threshold_source
                .as_deref()
                .is_some_and(|s| s.starts_with("self-calibrated"));
            let how = if calibrated {
                "self-calibrated"
            } else {
                "configured"
            };
            parts.push(format!("threshold {t:.3} ({how})"));
        }
        if let Some(p) = face.stranger_fpir {
            let flag = if face.over_target { " OVER TARGET" } else { "" };
            parts.push(format!(
                "stranger {}{flag}",
                crate::face::calibrate::percent(p)
            ));
        }
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}
