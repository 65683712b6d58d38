//! `gatehouse demo`: the README's main job (see `crate::app::demo`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::Cli;
use crate::app::demo::{self, DemoOptions};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Folder with one sub-folder of photos per person [default: ../shared/faces/identities if present]
    #[arg(long, value_name = "DIR")]
    pub faces: Option<PathBuf>,
    /// Video file or camera for the entrance [default: ../shared/faces/video/short_hamilton_clip.mp4 if present]
    #[arg(long, value_name = "FILE")]
    pub video: Option<String>,
    /// Folder to copy the face models from [default: ../shared/models if present, else download]
    #[arg(long, value_name = "DIR")]
    pub models: Option<PathBuf>,
    /// Publish the events to this MQTT broker (mqtt://host:1883); with --gateways, the site's broker
    #[arg(long, value_name = "URL")]
    pub broker: Option<String>,
    /// Run a whole site instead: a registry and N gate daemons as separate processes (N ≥ 2)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(2..=32),
          conflicts_with_all = ["faces", "video", "models", "stay"])]
    pub gateways: Option<u16>,
    /// Longest time the camera part runs, in seconds
    #[arg(long, default_value_t = 20)]
    pub camera_seconds: u64,
    /// Keep the gateway and its console running after the script, until Ctrl-C [default: when run from a terminal]
    #[arg(long, conflicts_with = "no_stay")]
    pub stay: bool,
    /// End after the script even when run from a terminal
    #[arg(long)]
    pub no_stay: bool,
}

pub fn run(cli: &Cli, args: &DemoArgs) -> Result<ExitCode> {
    if let Some(gateways) = args.gateways {
        return site(cli, args, gateways.into());
    }
    let options = DemoOptions {
        data_dir: cli.data_dir.clone(),
        faces: args.faces.clone().or_else(demo::default_faces_dir),
        video: args.video.clone().or_else(demo::default_video),
        models_mirror: args.models.clone().or_else(demo::default_models_mirror),
        broker: args.broker.clone(),
        camera_seconds: args.camera_seconds,
        stay: args.stay
            || (!args.no_stay && std::io::stdin().is_terminal() && std::io::stdout().is_terminal()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut stdout = std::io::stdout();
    runtime.block_on(demo::run(options, &mut stdout))?;
    Ok(ExitCode::SUCCESS)
}

/// `gatehouse demo --gateways N` (see `crate::app::site_demo`): exit 1 unless
/// every behaviour held.
fn site(cli: &Cli, args: &DemoArgs, gateways: usize) -> Result<ExitCode> {
    let options = crate::app::site_demo::SiteDemoOptions {
        data_dir: cli.data_dir.clone(),
        gateways,
        broker: args.broker.clone(),
    };
    let outcome = crate::app::site_demo::run(&options, &mut std::io::stdout())?;
    Ok(if outcome.all_held() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
