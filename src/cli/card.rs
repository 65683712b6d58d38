//! `gatehouse card assign|revoke`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::output::open_store;
use super::Cli;
use crate::domain::{CardNumber, ResidentId};
use crate::store::cards::{self, CardFormat};
use crate::store::os_user;

#[derive(Subcommand, Debug)]
pub enum CardCommand {
    /// Give a card to a resident
    Assign {
        resident: ResidentId,
        /// facility:number (10:12345), a bare number (facility 0) or raw:<bits>
        #[arg(long)]
        card: CardNumber,
        /// wiegand26, wiegand34, wiegand37 or raw [default: the smallest that fits]
        #[arg(long)]
        format: Option<CardFormat>,
    },
    /// Take a card out of the register (lost, returned)
    Revoke { card: CardNumber },
}

pub fn run(cli: &Cli, cmd: &CardCommand) -> Result<ExitCode> {
    let (_config, store) = open_store(cli)?;
    let actor = os_user();
    match cmd {
        CardCommand::Assign {
            resident,
            card,
            format,
        } => {
            let format = cards::assign(&store, &actor, *resident, card, *format)?;
            println!("assigned card {card} ({format}) to {resident}");
        }
        CardCommand::Revoke { card } => {
            let from = cards::revoke(&store, &actor, card)?;
            println!("revoked card {card} (was {from}'s)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
