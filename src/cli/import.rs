//! `gatehouse import residents FILE.csv [--dry-run] [--skip-invalid]`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

use super::output::{open_store, Format, FormatArg};
use super::{Cli, Exit};
use crate::enrol::import::{import_residents_file, ImportOptions, ImportReport};
use crate::store::os_user;

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// Residents from a CSV file with a header row: name,id_number,phone,building,unit,room,
    /// role,valid_until,card,plate (UTF-8, UTF-8 with BOM or GB18030). All or nothing.
    Residents {
        file: PathBuf,
        /// Check the whole file and report what would change; write nothing
        #[arg(long)]
        dry_run: bool,
        /// Import the good rows and list the bad ones instead of aborting
        #[arg(long)]
        skip_invalid: bool,
        #[command(flatten)]
        out: FormatArg,
    },
}

/// Below this many rows a progress display is noise.
const PROGRESS_MIN_ROWS: usize = 2000;
/// Without a terminal, a log line every this many rows.
const LOG_EVERY: usize = 5000;

pub fn run(cli: &Cli, cmd: &ImportCommand) -> Result<ExitCode> {
    let ImportCommand::Residents {
        file,
        dry_run,
        skip_invalid,
        out,
    } = cmd;
    let (_config, store) = open_store(cli)?;
    let actor = os_user();
    let opts = ImportOptions {
        dry_run: *dry_run,
        skip_invalid: *skip_invalid,
    };
    let tty = std::io::stderr().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let mut last_logged = 0;
    let mut progress = |done: usize, total: usize| {
        if total < PROGRESS_MIN_ROWS {
            return;
        }
        if tty {
            let b = bar.get_or_insert_with(|| {
                let b = ProgressBar::new(total as u64);
                if let Ok(style) = ProgressStyle::with_template(
                    "{spinner} importing {bar:40} {pos}/{len} rows ({eta} left)",
                ) {
                    b.set_style(style);
                }
                b
            });
            b.set_position(done as u64);
        } else if done >= last_logged + LOG_EVERY || (done == total && done != last_logged) {
            last_logged = done;
            tracing::info!(done, total, "importing residents");
        }
    };
    let report = import_residents_file(&store, &actor, file, opts, &mut progress);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let report = report?;
    if out.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for e in &report.errors {
            eprintln!("{e}");
        }
        println!("{}", summary(file, &report));
    }
    if !report.errors.is_empty() && !skip_invalid {
        let rows: std::collections::BTreeSet<u64> = report.errors.iter().map(|e| e.line).collect();
        return Err(anyhow::Error::new(Exit {
            code: 1,
            message: format!(
                "import aborted: {} problem(s) in {} row(s); nothing was written (fix the file, or use --skip-invalid)",
                report.errors.len(),
                rows.len()
            ),
        }));
    }
    Ok(ExitCode::SUCCESS)
}

fn summary(file: &std::path::Path, r: &ImportReport) -> String {
    let head = format!("{} ({}, {} row(s))", file.display(), r.encoding, r.rows);
    let counts = |verb: &str| {
        format!(
            "{verb}{} added, {} updated, {} unchanged; {} card(s) and {} vehicle(s) added",
            r.added, r.updated, r.unchanged, r.cards_added, r.vehicles_added
        )
    };
    let skipped = if r.skipped > 0 {
        format!("; {} row(s) with problems skipped", r.skipped)
    } else {
        String::new()
    };
    if r.committed {
        format!("imported {head}: {}{skipped}", counts(""))
    } else if !r.errors.is_empty() && r.skipped == 0 {
        format!("{head}: nothing was written")
    } else if r.dry_run {
        format!(
            "dry run of {head}, nothing written: {}{skipped}",
            counts("would be ")
        )
    } else {
        format!("{head}: nothing to change, every row is already in the register{skipped}")
    }
}
