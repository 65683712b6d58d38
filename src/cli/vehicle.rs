//! `gatehouse vehicle add|remove`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::output::open_store;
use super::Cli;
use crate::domain::{Plate, ResidentId};
use crate::store::os_user;
use crate::store::vehicles::{self, VehicleInfo};

#[derive(Subcommand, Debug)]
pub enum VehicleCommand {
    /// Register a resident's vehicle
    Add {
        /// Plate, e.g. 川A12345 (new-energy: 川AD12345)
        plate: Plate,
        #[arg(long)]
        resident: ResidentId,
        /// car, SUV, motorbike …
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        colour: Option<String>,
    },
    /// Take a vehicle out of the register
    Remove { plate: Plate },
}

pub fn run(cli: &Cli, cmd: &VehicleCommand) -> Result<ExitCode> {
    let (_config, store) = open_store(cli)?;
    let actor = os_user();
    match cmd {
        VehicleCommand::Add {
            plate,
            resident,
            kind,
            colour,
        } => {
            let info = VehicleInfo {
                kind: kind.clone(),
                colour: colour.clone(),
            };
            vehicles::add(&store, &actor, *resident, plate, &info)?;
            println!("registered {plate} to {resident}");
        }
        VehicleCommand::Remove { plate } => {
            let from = vehicles::remove(&store, &actor, plate)?;
            println!("removed {plate} (was {from}'s)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
