//! The command line: argument parsing, output and exit codes. A thin shell:
//! each command turns its arguments into calls of library modules.
//!
//! Exit codes: 0 success, 1 the command failed, 2 bad usage or invalid config.

mod card;
mod config_cmd;
mod console;
mod demo;
mod docs;
mod doctor;
mod face;
mod gate;
mod group;
mod household;
mod import;
mod log;
mod models_cmd;
pub mod output;
mod resident;
mod run;
mod simulate;
mod station;
mod uplink_cmd;
mod vehicle;
mod visitor;

use std::path::{Path, PathBuf};
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
    /// Run the whole gate on simulated hardware with a scripted set of credentials
    Demo(demo::DemoArgs),
    /// Write the man pages and shell completions into a folder (for packaging)
    #[command(hide = true)]
    Docs(docs::DocsArgs),
    /// Check everything the gateway needs (config, GPIO, cameras, models, runtime, broker, clock, disk)
    Doctor(doctor::DoctorArgs),
    /// Install and check the ONNX face models
    #[command(subcommand)]
    Models(models_cmd::ModelsCommand),
    /// The register of residents: add, list, show, update, suspend, resume, move out, remove
    #[command(subcommand)]
    Resident(resident::ResidentCommand),
    /// Assign and revoke access cards
    #[command(subcommand)]
    Card(card::CardCommand),
    /// Register and remove residents' vehicles
    #[command(subcommand)]
    Vehicle(vehicle::VehicleCommand),
    /// Households: list them, assign the code keyed at household gates
    #[command(subcommand)]
    Household(household::HouseholdCommand),
    /// Visitor passes with a PIN and QR code
    #[command(subcommand)]
    Visitor(visitor::VisitorCommand),
    /// Import registers from spreadsheets
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Access groups: who may use which gates when
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// The web console's accounts (list; set a password when one is lost)
    #[command(subcommand)]
    Console(console::ConsoleCommand),
    /// Run the gate controller (the daemon) in the foreground
    Run(run::RunArgs),
    /// Drive a running daemon's simulated gates (cards, PINs, door, button, loop, plates)
    #[command(subcommand)]
    Simulate(simulate::SimulateCommand),
    /// Open a gate by hand (audited) or show every gate's state
    #[command(subcommand)]
    Gate(gate::GateCommand),
    /// Query the event log, or verify its hash chain (`log verify`)
    Log(log::LogArgs),
    /// The gateway's uplink to the police station: drain the outbox, show the backlog
    #[command(subcommand)]
    Uplink(uplink_cmd::UplinkCommand),
    /// The officer's side: keys, signed commands, queries, live events, remote open
    #[command(subcommand)]
    Station(Box<station::StationCommand>),
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
    // The demo prints its own narrative; its log stays quiet unless asked for.
    let default_filter = if matches!(cli.command, Command::Demo(_)) {
        "warn"
    } else {
        "info"
    };
    crate::logging::init(cli.log_format, default_filter);
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
        Command::Doctor(args) => doctor::run(&cli, args),
        Command::Demo(args) => demo::run(&cli, args),
        Command::Docs(args) => docs::run(args),
        Command::Resident(cmd) => resident::run(&cli, cmd),
        Command::Card(cmd) => card::run(&cli, cmd),
        Command::Vehicle(cmd) => vehicle::run(&cli, cmd),
        Command::Household(cmd) => household::run(&cli, cmd),
        Command::Visitor(cmd) => visitor::run(&cli, cmd),
        Command::Import(cmd) => import::run(&cli, cmd),
        Command::Group(cmd) => group::run(&cli, cmd),
        Command::Console(cmd) => console::run(&cli, cmd),
        Command::Run(args) => run::run(&cli, args),
        Command::Simulate(cmd) => simulate::run(&cli, cmd),
        Command::Gate(cmd) => gate::run(&cli, cmd),
        Command::Log(args) => log::run(&cli, args),
        Command::Uplink(cmd) => uplink_cmd::run(&cli, cmd),
        Command::Station(cmd) => station::run(&cli, cmd),
        Command::Face(cmd) => face::run(&cli, cmd),
    }
}

impl Cli {
    /// The effective configuration: `--config`/`GATEHOUSE_CONFIG`, else the
    /// default path; `--data-dir` is applied on top. Without either there is no
    /// configuration: that is a usage error (exit 2) naming the paths tried, and
    /// nothing is written (only `gatehouse demo` runs on the built-in config).
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let path = resolve_config_path(self.config.as_deref(), Path::new(DEFAULT_CONFIG_PATH))
            .map_err(config_error)?;
        let mut config = Config::load(&path)?;
        if let Some(dir) = &self.data_dir {
            config.set_data_dir(dir.clone());
        }
        Ok(config)
    }
}

/// The config file a command reads: the one named (flag or environment), else
/// `default` if it exists. No file is never silently replaced by the demo
/// configuration, which would write a `gatehouse-data/` wherever the command ran.
fn resolve_config_path(named: Option<&Path>, default: &Path) -> Result<PathBuf, ConfigError> {
    if let Some(path) = named {
        return Ok(path.to_path_buf());
    }
    if default.exists() {
        return Ok(default.to_path_buf());
    }
    Err(ConfigError {
        source_name: default.display().to_string(),
        key_path: String::new(),
        problem: format!(
            "no configuration: --config was not given, GATEHOUSE_CONFIG is not set and {} does not exist; \
             pass --config FILE (see config/gatehouse.example.toml), or try `gatehouse demo`",
            default.display()
        ),
    })
}

/// Turns a `ConfigError` into an `anyhow::Error` that still maps to exit 2.
pub fn config_error(e: ConfigError) -> anyhow::Error {
    anyhow::Error::new(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_named_or_default_config_there_is_no_configuration() {
        let missing = std::env::temp_dir().join("gatehouse-no-such-dir/gatehouse.toml");
        let err = resolve_config_path(None, &missing).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&missing.display().to_string()), "{text}");
        assert!(
            text.contains("--config") && text.contains("GATEHOUSE_CONFIG"),
            "{text}"
        );
        assert_eq!(exit_code_of(&config_error(err)), 2);
    }

    #[test]
    fn a_named_config_wins_over_the_default() {
        let named = Path::new("/somewhere/site.toml");
        let path = resolve_config_path(Some(named), Path::new("/nonexistent")).unwrap();
        assert_eq!(path, named);
    }
}
