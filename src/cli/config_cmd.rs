//! `gatehouse config check [FILE]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::Cli;
use crate::config::Config;

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate a config file (exit 0 valid, 2 invalid)
    Check {
        /// File to check [default: --config, or the default path]
        file: Option<PathBuf>,
    },
}

pub fn run(cli: &Cli, cmd: &ConfigCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Check { file } => {
            let path = file
                .clone()
                .or_else(|| cli.config.clone())
                .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_CONFIG_PATH));
            let config = Config::load(&path).map_err(super::config_error)?;
            println!(
                "{}: ok (site {}, gateway {}, {} gate(s), {} camera(s))",
                path.display(),
                config.site.id,
                config.site.gateway_id,
                config.gates.len(),
                config.cameras.len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
