//! `gatehouse doctor`: prints the checklist; exit 1 if anything failed.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::{Cli, Exit};
use crate::doctor::{self, CheckStatus};

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Print JSON instead of a checklist
    #[arg(long)]
    pub json: bool,
    /// Seconds a camera may take to deliver its first frame
    #[arg(long, default_value_t = 10)]
    pub camera_timeout: u64,
}

pub fn run(cli: &Cli, args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let config = cli.load_config()?;
    let checks = doctor::run(&config, Duration::from_secs(args.camera_timeout));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        for c in &checks {
            let mark = match c.status {
                CheckStatus::Pass => "[ ok ]",
                CheckStatus::Warn => "[warn]",
                CheckStatus::Fail => "[FAIL]",
            };
            println!("{mark} {:<22} {}", c.name, c.detail);
        }
    }
    let failed = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .count();
    if failed > 0 {
        return Err(Exit {
            code: 1,
            message: format!("{failed} check(s) failed"),
        }
        .into());
    }
    Ok(ExitCode::SUCCESS)
}
