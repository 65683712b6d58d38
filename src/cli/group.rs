//! `gatehouse group add|remove|window|member|list`: access groups.

use std::process::ExitCode;

use anyhow::Result;
use clap::{ArgGroup, Subcommand};

use super::output::{self, open_store, usage_error, FormatArg, Table};
use super::Cli;
use crate::domain::{GateId, ResidentId, ResidentRole};
use crate::enrol::dates::{parse_days, parse_time_window};
use crate::store::groups::{self, Member, Window};
use crate::store::os_user;

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// Create an access group
    Add { name: String },
    /// Delete an access group (its windows and memberships go with it)
    Remove { name: String },
    /// Add a weekly time window at a gate, or clear windows with --clear
    Window {
        name: String,
        #[arg(long, required_unless_present = "clear")]
        gate: Option<GateId>,
        /// mon-fri, sat,sun, weekdays, weekends, daily
        #[arg(long, default_value = "daily")]
        days: String,
        /// Local time window, e.g. 07:00-22:00
        #[arg(long, value_name = "HH:MM-HH:MM", required_unless_present = "clear")]
        time: Option<String>,
        /// Remove the group's windows (at --gate only, if given)
        #[arg(long)]
        clear: bool,
    },
    /// Add (or with --remove, take out) a role or a resident
    #[command(group(ArgGroup::new("who").required(true).args(["role", "resident"])))]
    Member {
        name: String,
        #[arg(long)]
        role: Option<ResidentRole>,
        #[arg(long)]
        resident: Option<ResidentId>,
        #[arg(long)]
        remove: bool,
    },
    /// List groups with their windows and members
    List {
        #[command(flatten)]
        out: FormatArg,
    },
}

pub fn run(cli: &Cli, cmd: &GroupCommand) -> Result<ExitCode> {
    let (config, store) = open_store(cli)?;
    let actor = os_user();
    match cmd {
        GroupCommand::Add { name } => {
            groups::create(&store, &actor, name)?;
            println!("created group {name:?}");
        }
        GroupCommand::Remove { name } => {
            groups::remove(&store, &actor, name)?;
            println!("removed group {name:?}");
        }
        GroupCommand::Window {
            name,
            gate,
            days,
            time,
            clear,
        } => {
            if let Some(g) = gate.as_ref().filter(|g| config.gate(g).is_none()) {
                return Err(usage_error(format!(
                    "--gate: no gate \"{g}\" in the config"
                )));
            }
            if *clear {
                let n = groups::clear_windows(&store, &actor, name, gate.as_ref())?;
                println!("removed {n} window(s) from {name:?}");
                return Ok(ExitCode::SUCCESS);
            }
            let (Some(gate), Some(time)) = (gate, time) else {
                return Err(usage_error("--gate and --time are required"));
            };
            let days = parse_days(days).map_err(|e| usage_error(format!("--days: {e}")))?;
            let (start, end) =
                parse_time_window(time).map_err(|e| usage_error(format!("--time: {e}")))?;
            let window = Window::new(gate.clone(), days, start, end)?;
            groups::add_window(&store, &actor, name, &window)?;
            println!("{name:?}: added {window}");
        }
        GroupCommand::Member {
            name,
            role,
            resident,
            remove,
        } => {
            let member = match (role, resident) {
                (Some(r), _) => Member::Role(*r),
                (None, Some(p)) => Member::Person(*p),
                (None, None) => return Err(usage_error("give --role or --resident")),
            };
            if *remove {
                groups::remove_member(&store, &actor, name, member)?;
                println!("{name:?}: removed {member}");
            } else {
                groups::add_member(&store, &actor, name, member)?;
                println!("{name:?}: added {member}");
            }
        }
        GroupCommand::List { out } => {
            let list = groups::list(store.conn())?;
            let mut table = Table::new(&["group", "windows", "members"]);
            for g in &list {
                table.push(vec![
                    g.name.clone(),
                    g.windows
                        .iter()
                        .map(|w| w.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                    g.members
                        .iter()
                        .map(|m| m.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                ]);
            }
            output::print(out.format, &table, &list)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
