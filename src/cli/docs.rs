//! `gatehouse docs DIR`: the man pages and shell completions, generated from
//! the same clap definitions the binary parses, so they cannot drift from it.
//! scripts/build-deb.sh installs them; hidden from `--help`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

#[derive(Args, Debug)]
pub struct DocsArgs {
    /// Folder to write `man/gatehouse*.1` and `completions/` (bash, zsh, fish) into
    pub dir: PathBuf,
}

pub fn run(args: &DocsArgs) -> Result<ExitCode> {
    let man = args.dir.join("man");
    let completions = args.dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    // One page per command and subcommand (gatehouse.1, gatehouse-log.1, …).
    clap_mangen::generate_to(Cli::command(), &man)
        .with_context(|| format!("cannot write the man pages into {}", man.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut Cli::command(), "gatehouse", &completions)
            .with_context(|| format!("cannot write the {shell} completions"))?;
    }
    println!("{}", args.dir.display());
    Ok(ExitCode::SUCCESS)
}
