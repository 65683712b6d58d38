//! `gatehouse run`: the daemon in the foreground (systemd runs it this way).
//!
//! Signals: SIGTERM/SIGINT stop it (gates lock, events flush, exit 0);
//! SIGHUP reloads the config file and the register (see `daemon::reload`).
//! Under systemd (`Type=notify`) it reports READY=1 once the gates and
//! services are up, pings the watchdog while the gates answer, brackets a
//! reload with RELOADING=1 … READY=1, and says STOPPING=1 when it stops.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::Cli;
use crate::app::services::start_services;
use crate::config::Config;
use crate::control;
use crate::daemon::sd_notify::{self, Notifier};
use crate::daemon::{watchdog, Daemon, GateHandle};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Publish to this broker instead of `[uplink] broker` (mqtt://host:1883, mqtts://host:8883)
    #[arg(long, value_name = "URL")]
    pub broker: Option<String>,
}

/// How long shutdown may take before remaining tasks are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// The config as `run` uses it: the file, `--data-dir`, `--broker`.
fn load(cli: &Cli, args: &RunArgs) -> Result<Config> {
    let mut config = cli.load_config()?;
    if let Some(broker) = &args.broker {
        config.uplink.broker = Some(broker.clone());
    }
    Ok(config)
}

pub fn run(cli: &Cli, args: &RunArgs) -> Result<ExitCode> {
    let config = load(cli, args)?;
    crate::logging::apply(&config.logging.level, config.logging.format)?;
    let notifier = Arc::new(Notifier::from_env());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // Installed first, so a SIGHUP or SIGTERM during start-up is handled, not fatal.
        let signals = Signals::install()?;
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
        // READY first, then the watchdog: its first ping fires at once, and
        // systemd (and the test) must hear READY=1 before any WATCHDOG=1.
        notifier.notify(&format!(
            "READY=1\nSTATUS=running {} gate(s)",
            config.gates.len()
        ));
        let pings = watchdog::spawn(&mut daemon, notifier.clone());
        tracing::info!(
            gates = config.gates.len(),
            socket = ?started.control_socket,
            lpr = ?started.lpr,
            frigate = ?started.frigate,
            metrics = ?started.metrics,
            broker = ?started.broker,
            cameras = started.cameras,
            database = %config.database_path().display(),
            watchdog = ?pings,
            "gatehouse running"
        );
        let result = serve_signals(signals, cli, args, &daemon.handle(), &notifier, config).await;
        notifier.notify("STOPPING=1\nSTATUS=stopping: locking gates, flushing events");
        tracing::info!("stopping: locking gates and flushing events");
        daemon.shutdown(SHUTDOWN_GRACE).await?;
        result.map(|()| ExitCode::SUCCESS)
    })
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
            hup: signal(SignalKind::hangup()).context("cannot watch SIGHUP")?,
        })
    }
}

/// Waits for SIGTERM or SIGINT, reloading on every SIGHUP meanwhile.
async fn serve_signals(
    signals: Signals,
    cli: &Cli,
    args: &RunArgs,
    handle: &GateHandle,
    notifier: &Notifier,
    mut running: Config,
) -> Result<()> {
    let Signals {
        mut term,
        mut int,
        mut hup,
    } = signals;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration and the register");
                notifier.notify(&format!(
                    "RELOADING=1\nMONOTONIC_USEC={}",
                    sd_notify::monotonic_usec()
                ));
                let outcome = match load(cli, args) {
                    Ok(new) => handle.reload_config(&running, &new).await.map(|c| running = c),
                    Err(e) => handle.reload_refused(&e).await,
                };
                // A reload that cannot even store its event must not stop the gates.
                if let Err(e) = outcome {
                    tracing::error!("reload failed: {e:#}");
                }
                notifier.notify("READY=1");
            }
        }
    }
}
