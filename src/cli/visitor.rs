//! `gatehouse visitor pass|list|revoke`.

use std::process::ExitCode;

use anyhow::Result;
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use clap::Subcommand;

use super::output::{self, open_store, usage_error, FormatArg, Table};
use super::Cli;
use crate::config::Config;
use crate::domain::{masked_name, GateId, Phone, Plate, ResidentId};
use crate::enrol::dates::parse_duration;
use crate::store::os_user;
use crate::store::visitors::{self, NewPass, PassId};

#[derive(Subcommand, Debug)]
pub enum VisitorCommand {
    /// Issue a visitor pass; prints its PIN and a QR payload
    Pass {
        /// The resident who invites
        #[arg(long)]
        host: ResidentId,
        /// The visitor's name
        #[arg(long)]
        name: String,
        #[arg(long)]
        phone: Option<Phone>,
        /// A visitor vehicle: the vehicle gate opens for this plate in the window
        #[arg(long)]
        plate: Option<Plate>,
        /// How long the pass lasts from its start: 30m, 4h, 2d, 1h30m
        #[arg(long, value_name = "DURATION")]
        valid_for: String,
        /// Start, local time (`2026-11-27 09:00`) or RFC 3339 [default: now]
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Gates the pass opens, comma-separated [default: every gate]
        #[arg(long, value_delimiter = ',')]
        gates: Vec<GateId>,
        /// Number of entries [default: unlimited within the window]
        #[arg(long)]
        uses: Option<u32>,
        #[command(flatten)]
        out: FormatArg,
    },
    /// List visitor passes (those usable now, unless --all)
    List {
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        out: FormatArg,
    },
    /// Cancel a visitor pass
    Revoke { pass: PassId },
}

fn site_offset(config: &Config) -> FixedOffset {
    config.site.utc_offset()
}

fn parse_start(raw: &str, offset: FixedOffset) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(raw.trim(), f) {
            if let Some(t) = offset.from_local_datetime(&naive).single() {
                return Ok(t.with_timezone(&Utc));
            }
        }
    }
    Err(usage_error(format!(
        "--from: {raw:?} is not a time; write e.g. \"2026-11-27 09:00\""
    )))
}

pub fn run(cli: &Cli, cmd: &VisitorCommand) -> Result<ExitCode> {
    let (config, store) = open_store(cli)?;
    let actor = os_user();
    let offset = site_offset(&config);
    let local = |t: DateTime<Utc>| {
        t.with_timezone(&offset)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    };
    match cmd {
        VisitorCommand::Pass {
            host,
            name,
            phone,
            plate,
            valid_for,
            from,
            gates,
            uses,
            out,
        } => {
            let duration =
                parse_duration(valid_for).map_err(|e| usage_error(format!("--valid-for: {e}")))?;
            let start = match from {
                Some(f) => parse_start(f, offset)?,
                None => Utc::now(),
            };
            if let Some(g) = gates.iter().find(|g| config.gate(g).is_none()) {
                let known: Vec<&str> = config.gates.iter().map(|g| g.id.as_str()).collect();
                return Err(usage_error(format!(
                    "--gates: no gate \"{g}\" in the config (gates: {})",
                    known.join(", ")
                )));
            }
            let until = chrono::Duration::from_std(duration)
                .ok()
                .and_then(|d| start.checked_add_signed(d))
                .ok_or_else(|| usage_error("--valid-for: too long"))?;
            let new = NewPass {
                host: *host,
                visitor_name: name.clone(),
                phone: phone.clone(),
                plate: plate.clone(),
                gates: (!gates.is_empty()).then(|| gates.clone()),
                valid_from: start,
                valid_until: until,
                uses: *uses,
            };
            let pins = visitors::PinLength::from_config(&config.access);
            let issued = visitors::issue_with(&store, &actor, &new, &config.site.id, pins)?;
            let p = &issued.pass;
            if out.format == output::Format::Json {
                let value = serde_json::json!({
                    "id": p.id.to_string(),
                    "pin": issued.pin.as_str(),
                    "qr_payload": issued.qr_payload,
                    "host": p.host.to_string(),
                    "visitor": p.visitor_name,
                    "plate": p.plate,
                    "gates": p.gates,
                    "valid_from": p.valid_from,
                    "valid_until": p.valid_until,
                    "uses_left": p.uses_left,
                });
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!(
                    "visitor pass {} for {} (host {})",
                    p.id,
                    masked_name(&p.visitor_name),
                    p.host
                );
                println!("PIN:   {}", issued.pin.as_str());
                println!("QR:    {}", issued.qr_payload);
                println!(
                    "valid: {} to {} ({offset})",
                    local(p.valid_from),
                    local(p.valid_until)
                );
                println!(
                    "gates: {}",
                    p.gates
                        .as_ref()
                        .map(|g| g.join(", "))
                        .unwrap_or_else(|| "all".into())
                );
                println!(
                    "uses:  {}",
                    p.uses_left
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "unlimited".into())
                );
                if let Some(plate) = &p.plate {
                    println!("plate: {plate}");
                }
            }
        }
        VisitorCommand::List { all, out } => {
            let now = Utc::now();
            let passes = visitors::list(store.conn(), (!all).then_some(now))?;
            let mut table = Table::new(&[
                "id",
                "host",
                "visitor",
                "plate",
                "gates",
                "from",
                "until",
                "uses_left",
                "state",
            ]);
            for p in &passes {
                let state = if p.revoked {
                    "revoked"
                } else if p.is_usable_at(now) {
                    "usable"
                } else if now < p.valid_from {
                    "not yet"
                } else if p.uses_left == Some(0) {
                    "used up"
                } else {
                    "ended"
                };
                table.push(vec![
                    p.id.to_string(),
                    p.host.to_string(),
                    p.visitor_name.clone(),
                    p.plate.clone().unwrap_or_default(),
                    p.gates
                        .as_ref()
                        .map(|g| g.join(","))
                        .unwrap_or_else(|| "all".into()),
                    local(p.valid_from),
                    local(p.valid_until),
                    p.uses_left
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "-".into()),
                    state.into(),
                ]);
            }
            output::print(out.format, &table, &passes)?;
        }
        VisitorCommand::Revoke { pass } => {
            visitors::revoke(&store, &actor, *pass)?;
            println!("revoked visitor pass {pass}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
