//! `gatehouse household list|code`: households at their addresses, and the
//! short code a resident keys on a household gate's keypad for theirs.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::output::open_store;
use super::Cli;
use crate::store::addresses::{self, Address};
use crate::store::atomic::atomically;
use crate::store::os_user;

#[derive(Subcommand, Debug)]
pub enum HouseholdCommand {
    /// Every household with its address, kind, members and keypad code
    List,
    /// Assign the code keyed for a household at household gates (1 to 5
    /// digits, then #); the address itself is keyed as 3*2*501#
    Code {
        /// The household's address, e.g. 3-2-501
        address: Address,
        /// 1 to 5 digits, unique in the compound
        #[arg(required_unless_present = "clear", conflicts_with = "clear")]
        code: Option<String>,
        /// Remove the household's code
        #[arg(long)]
        clear: bool,
    },
}

pub fn run(cli: &Cli, cmd: &HouseholdCommand) -> Result<ExitCode> {
    let (_config, store) = open_store(cli)?;
    match cmd {
        HouseholdCommand::List => {
            for h in addresses::households(store.conn())? {
                println!(
                    "{}\t{}\t{} members\tcode {}",
                    h.address,
                    h.kind,
                    h.members,
                    h.code.as_deref().unwrap_or("-")
                );
            }
        }
        HouseholdCommand::Code { address, code, .. } => {
            let actor = os_user();
            atomically(store.conn(), |c| {
                addresses::set_household_code(c, &actor, address, code.as_deref())
            })?;
            match code {
                Some(code) => {
                    println!("{address}: household code {code} (key {code}# at household gates)")
                }
                None => println!("{address}: household code removed"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
