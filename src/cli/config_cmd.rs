//! `gatehouse config check [FILE]`, `gatehouse config site-key`.

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
    /// Print this gateway's site public key, creating its key on first use: a
    /// registry's goes into every gate's `[site] registry_key`, a gate's into
    /// the registry's `[site] gate_keys`
    SiteKey,
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
        ConfigCommand::SiteKey => {
            let config = cli.load_config()?;
            if config.site.role == crate::config::SiteRole::Standalone {
                anyhow::bail!(
                    "site.role: a standalone gateway has no site key (set role = \"registry\" or \"gate\")"
                );
            }
            let path = config.site_signing_key_path();
            let key = crate::site::keys::load_or_create(&path)?;
            println!("{}", crate::signing::public_key_text(&key.verifying_key()));
            Ok(ExitCode::SUCCESS)
        }
    }
}
