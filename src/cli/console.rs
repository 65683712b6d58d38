//! `gatehouse console accounts|password`: the web console's accounts from the
//! gateway's shell, for when the last manager's password is lost.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::output::{open_store, Table};
use super::Exit;
use crate::store::console as accounts;
use crate::store::os_user;

#[derive(Subcommand, Debug)]
pub enum ConsoleCommand {
    /// List the console's accounts (name, role, state, last sign-in)
    Accounts,
    /// Set an account's password, read from the first line of standard input
    /// (`read -s p; echo "$p" | gatehouse console password wang`). Audited.
    Password { name: String },
}

fn failed(message: String) -> anyhow::Error {
    anyhow::Error::new(Exit { code: 1, message })
}

pub fn run(cli: &super::Cli, cmd: &ConsoleCommand) -> Result<ExitCode> {
    let (_config, store) = open_store(cli)?;
    match cmd {
        ConsoleCommand::Accounts => {
            let list = accounts::list(store.conn())?;
            if list.is_empty() {
                println!(
                    "no console account yet: the daemon logs a one-time setup link when it starts"
                );
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = Table::new(&["NAME", "ROLE", "STATE", "LAST SIGN-IN"]);
            for a in list {
                t.push(vec![
                    a.name,
                    a.role.to_string(),
                    if a.disabled { "disabled" } else { "active" }.into(),
                    a.last_login_at.unwrap_or_else(|| "-".into()),
                ]);
            }
            print!("{}", t.render());
        }
        ConsoleCommand::Password { name } => {
            let Some(found) = accounts::credentials(store.conn(), name)? else {
                return Err(failed(format!("no console account named {name:?}")));
            };
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let password = line.trim_end_matches(['\n', '\r']);
            crate::console::password::check_policy(name, password)
                .map_err(|e| failed(format!("password refused: {e}")))?;
            let hash = crate::console::password::hash(password)?;
            accounts::set_password(&store, &os_user(), &found.account.name, &hash)?;
            println!(
                "password of {} changed; sign in again (sessions already open end at their expiry)",
                found.account.name
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
