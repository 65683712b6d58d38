//! `gatehouse run`: the daemon in the foreground (systemd runs it this way).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use super::Cli;
use crate::control;
use crate::daemon::services::start_services;
use crate::daemon::Daemon;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Publish to this broker instead of `[uplink] broker` (mqtt://host:1883, mqtts://host:8883)
    #[arg(long, value_name = "URL")]
    pub broker: Option<String>,
}

/// How long shutdown may take before remaining tasks are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

pub fn run(cli: &Cli, args: &RunArgs) -> Result<ExitCode> {
    let mut config = cli.load_config()?;
    if let Some(broker) = &args.broker {
        config.uplink.broker = Some(broker.clone());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let socket = control::socket_path(config.data_dir());
        std::fs::create_dir_all(config.data_dir()).with_context(|| {
            format!(
                "cannot create data directory {}",
                config.data_dir().display()
            )
        })?;
        // Before claiming any pin: a second daemon must not touch the relays.
        control::ensure_free(&socket).await?;
        let mut daemon = Daemon::start(&config).await?;
        let started = match start_services(&mut daemon, &config).await {
            Ok(s) => s,
            Err(e) => {
                daemon.shutdown(SHUTDOWN_GRACE).await?;
                return Err(e);
            }
        };
        tracing::info!(
            gates = config.gates.len(),
            socket = ?started.control_socket,
            lpr = ?started.lpr,
            metrics = ?started.metrics,
            broker = ?started.broker,
            cameras = started.cameras,
            database = %config.database_path().display(),
            "gatehouse running"
        );
        wait_for_stop_signal().await?;
        tracing::info!("stopping: locking gates and flushing events");
        daemon.shutdown(SHUTDOWN_GRACE).await?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn wait_for_stop_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
