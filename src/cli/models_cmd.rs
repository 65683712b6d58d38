//! `gatehouse models list|fetch|verify`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::{Cli, Exit};
use crate::models::{self, FetchOutcome, Manifest, ModelSpec, VerifyOutcome};

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// List the models in the manifest and whether each is installed
    List,
    /// Install the configured models (or those named) from their URLs or a mirror folder
    Fetch {
        /// Copy from this folder instead of downloading (air-gapped installs)
        #[arg(long, value_name = "DIR")]
        mirror: Option<PathBuf>,
        /// Every model in the manifest, not just the configured detector and embedder
        #[arg(long)]
        all: bool,
        /// Model names [default: the configured detector and embedder]
        names: Vec<String>,
    },
    /// Check the sha256 of the installed models (exit 1 if any is missing or corrupt)
    Verify {
        /// Model names [default: the configured detector and embedder]
        names: Vec<String>,
    },
}

fn selected<'m>(
    manifest: &'m Manifest,
    config: &crate::config::Config,
    names: &[String],
    all: bool,
) -> Result<Vec<&'m ModelSpec>> {
    if all {
        return Ok(manifest.models.iter().collect());
    }
    let wanted: Vec<String> = if names.is_empty() {
        config.face_models()
    } else {
        names.to_vec()
    };
    wanted.iter().map(|n| manifest.get(n)).collect()
}

pub fn run(cli: &Cli, cmd: &ModelsCommand) -> Result<ExitCode> {
    let config = cli.load_config()?;
    let manifest = Manifest::for_config(&config)?;
    let dir = config.models_dir();
    match cmd {
        ModelsCommand::List => {
            for m in &manifest.models {
                let state = match models::verify(m, &dir)? {
                    VerifyOutcome::Ok => "installed",
                    VerifyOutcome::Missing(_) => "-",
                    VerifyOutcome::Mismatch { .. } => "CORRUPT",
                };
                println!(
                    "{:<18} {:<9} {:<40} {}",
                    m.name,
                    format!("{:?}", m.role).to_lowercase(),
                    m.file,
                    state
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Fetch { mirror, all, names } => {
            let mut failed = 0;
            for spec in selected(&manifest, &config, names, *all)? {
                match models::fetch(spec, &dir, mirror.as_deref()) {
                    Ok(FetchOutcome::AlreadyInstalled) => {
                        println!("{}: already installed", spec.name)
                    }
                    Ok(FetchOutcome::CopiedFromMirror(from)) => {
                        println!("{}: copied from {}", spec.name, from.display())
                    }
                    Ok(FetchOutcome::Downloaded(url)) => {
                        println!("{}: downloaded from {url}", spec.name)
                    }
                    Err(e) => {
                        eprintln!("{}: {e:#}", spec.name);
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                return Err(Exit {
                    code: 1,
                    message: format!(
                        "{failed} model(s) could not be installed into {}",
                        dir.display()
                    ),
                }
                .into());
            }
            println!("models installed in {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Verify { names } => {
            let mut bad = 0;
            for spec in selected(&manifest, &config, names, false)? {
                match models::verify(spec, &dir)? {
                    VerifyOutcome::Ok => {
                        println!("{}: ok ({})", spec.name, dir.join(&spec.file).display())
                    }
                    VerifyOutcome::Missing(path) => {
                        println!("{}: MISSING {}", spec.name, path.display());
                        bad += 1;
                    }
                    VerifyOutcome::Mismatch { path, actual } => {
                        println!(
                            "{}: CORRUPT {} (sha256 {actual}, expected {})",
                            spec.name,
                            path.display(),
                            spec.sha256
                        );
                        bad += 1;
                    }
                }
            }
            if bad > 0 {
                return Err(Exit {
                    code: 1,
                    message: format!("{bad} model(s) missing or corrupt"),
                }
                .into());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
