//! `gatehouse uplink drain|status`: the gateway's uplink without the rest of
//! the daemon (publish what is queued, answer the station), and a look at the
//! backlog.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::Cli;
use crate::store::{outbox, Store};
use crate::uplink::{self, NoGates, Stopped, UplinkSettings};

#[derive(Subcommand, Debug)]
pub enum UplinkCommand {
    /// Publish the outbox to the broker and answer station commands until stopped
    /// (SIGTERM/Ctrl-C); gates cannot be opened from this process
    Drain {
        /// Broker URL, overriding [uplink] broker (mqtt://host:1883, mqtts://host:8883)
        #[arg(long, value_name = "URL")]
        broker: Option<String>,
        /// Exit once every queued event is acknowledged
        #[arg(long)]
        until_empty: bool,
    },
    /// Show the backlog, the drop counter and this gateway's reply-signing key
    Status {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cli: &Cli, cmd: &UplinkCommand) -> Result<ExitCode> {
    let config = cli.load_config()?;
    match cmd {
        UplinkCommand::Drain {
            broker,
            until_empty,
        } => {
            let mut settings = UplinkSettings::from_config(&config, broker.as_deref())?;
            settings.exit_when_drained = *until_empty;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let stopped = runtime.block_on(drain(settings))?;
            let store = Store::open_config(&config)?;
            let depth = outbox::depth(store.conn())?;
            match stopped {
                Stopped::Drained => {
                    println!("outbox empty: every event acknowledged by the broker")
                }
                Stopped::Shutdown => println!(
                    "stopped; {} event(s) still queued for the next run",
                    depth.events
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        UplinkCommand::Status { json } => {
            let store = Store::open_config(&config)?;
            let depth = outbox::depth(store.conn())?;
            let dropped = outbox::dropped_total(store.conn())?;
            let head = outbox::head_seq(store.conn())?;
            let reply_key =
                uplink::command::public_key_text(&uplink::reply_public_key(store.secret()));
            let broker = config.uplink.broker.as_deref().unwrap_or("(none)");
            if *json {
                println!(
                    "{}",
                    serde_json::json!({
                        "broker": config.uplink.broker,
                        "outbox_depth": depth.events,
                        "outbox_bytes": depth.bytes,
                        "oldest_queued_seq": depth.oldest_seq,
                        "outbox_dropped_total": dropped,
                        "head_seq": head,
                        "station_keys": config.uplink.station_keys.len(),
                        "reply_key": reply_key,
                    })
                );
            } else {
                println!("broker:             {broker}");
                println!(
                    "outbox:             {} event(s), {} bytes{}",
                    depth.events,
                    depth.bytes,
                    depth
                        .oldest_seq
                        .map(|s| format!(", oldest seq {s}"))
                        .unwrap_or_default()
                );
                println!("dropped (quota):    {dropped}");
                println!("event log head seq: {head}");
                println!("station keys:       {}", config.uplink.station_keys.len());
                println!("reply key:          {reply_key}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn drain(settings: UplinkSettings) -> Result<Stopped> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    // Keep the sender alive: a dropped sender means "stop".
                    tracing::error!(error = %e, "cannot listen for SIGTERM; stop with Ctrl-C");
                    let _ = tokio::signal::ctrl_c().await;
                    let _ = stop_tx.send(true);
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = stop_tx.send(true);
    });
    let wake = Arc::new(tokio::sync::Notify::new());
    uplink::run(settings, Arc::new(NoGates), wake, stop_rx).await
}
