//! `gatehouse card assign|revoke`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::output::open_store;
use super::Cli;
use crate::domain::{CardFormat, CardNumber, ResidentId};
use crate::store::cards;
use crate::store::os_user;

#[derive(Subcommand, Debug)]
pub enum CardCommand {
    /// Give a card to a resident
    Assign {
        resident: ResidentId,
        /// facility:number (10:12345), a bare number (facility 0) or raw:<bits>
        #[arg(long)]
        card: CardNumber,
        /// wiegand26, wiegand34, wiegand37 or raw, as the reader sends it; the card
        /// opens only in this format [default: the smallest that fits]
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
            let given = *format;
            let format = cards::assign(&store, &actor, *resident, card, given)?;
            println!("assigned card {card} ({format}) to {resident}");
            if given.is_none() && format != CardFormat::Raw {
                // A card opens only in its enrolled format (card_format_mismatch otherwise).
                eprintln!(
                    "note: format {format} was inferred; if the readers send another frame size, \
                     assign again with --format (or present the card in the console)"
                );
            }
        }
        CardCommand::Revoke { card } => {
            let from = cards::revoke(&store, &actor, card)?;
            println!("revoked card {card} (was {from}'s)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
