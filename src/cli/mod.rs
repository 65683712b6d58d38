//! The command line: argument parsing, output and exit codes. A thin shell:
//! each command turns its arguments into calls of library modules.
//!
//! Exit codes: 0 success, 1 the command failed, 2 bad usage or invalid config.

mod config_cmd;
mod face;
mod models_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, LogFormat, DEFAULT_CONFIG_PATH};

#[derive(Parser, Debug)]
#[command(name = "gatehouse", version, about = "Gate controller for residential compounds", long_about = None)]
pub struct Cli {
    /// Configuration file [default: /etc/gatehouse/gatehouse.toml]
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the database, keys, sockets, snapshots and models live (overrides the config)
    #[arg(long, global = true, env = "GATEHOUSE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log line format
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check configuration files
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Install and check the ONNX face models
    #[command(subcommand)]
    Models(models_cmd::ModelsCommand),
    /// Face recognition: detect, identify, enrol, remove, re-embed, evaluate
    #[command(subcommand)]
    Face(face::FaceCommand),
}

/// An error that already knows its exit code.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    crate::logging::init(cli.log_format.unwrap_or_default(), "info");
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            let code = exit_code_of(&err);
            eprintln!("error: {err:#}");
            ExitCode::from(code)
        }
    }
}

fn exit_code_of(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<ConfigError>().is_some() {
        return 2;
    }
    if let Some(exit) = err.downcast_ref::<Exit>() {
        return exit.code;
    }
    1
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Config(cmd) => config_cmd::run(&cli, cmd),
        Command::Models(cmd) => models_cmd::run(&cli, cmd),
        Command::Face(cmd) => face::run(&cli, cmd),
    }
}

impl Cli {
    /// The effective configuration: `--config`/`GATEHOUSE_CONFIG`, else the
    /// default path, else (on a machine without one) the built-in demo config.
    /// `--data-dir` is applied on top.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => {
                let default = PathBuf::from(DEFAULT_CONFIG_PATH);
                if default.exists() {
                    Config::load(&default)?
                } else {
                    tracing::warn!(
                        "no config at {DEFAULT_CONFIG_PATH} and no --config given; using the built-in demo configuration"
                    );
                    Config::demo()
                }
            }
        };
        if let Some(dir) = &self.data_dir {
            config.set_data_dir(dir.clone());
        }
        Ok(config)
    }
}

/// Turns a `ConfigError` into an `anyhow::Error` that still maps to exit 2.
pub fn config_error(e: ConfigError) -> anyhow::Error {
    anyhow::Error::new(e)
}
