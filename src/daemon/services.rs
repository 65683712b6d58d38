//! The parts of a running gateway around the gates: the control socket, the
//! LPR endpoint, the web console, metrics and retention. `gatehouse run` and `gatehouse demo`
//! start the same set through [`start_services`], so the demo is the product.

use std::time::Duration;

use anyhow::Result;
use tokio::sync::watch;

use super::Daemon;
use crate::config::Config;

/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(6 * 3600);

/// What was started, for the start-up log line and the demo's printout.
#[derive(Debug, Default)]
pub struct Started {
    pub control_socket: Option<std::path::PathBuf>,
    pub lpr: Option<std::net::SocketAddr>,
    pub metrics: Option<std::net::SocketAddr>,
    pub console: Option<std::net::SocketAddr>,
}

async fn until_shutdown(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Starts every configured service on `daemon`. A service that cannot start
/// is an error here (a misconfigured port should stop the install, not hide).
pub async fn start_services(daemon: &mut Daemon, config: &Config) -> Result<Started> {
    let mut started = Started::default();

    let socket = crate::control::socket_path(config.data_dir());
    crate::control::serve(daemon.handle(), socket.clone(), daemon.shutdown_signal()).await?;
    started.control_socket = Some(socket);

    if config.lpr.listen.is_some() {
        let server = crate::lpr::LprServer::bind(config, daemon.handle()).await?;
        started.lpr = server.local_addr().ok();
        let stop = until_shutdown(daemon.shutdown_signal());
        daemon.spawn(async move {
            if let Err(e) = server.serve(stop).await {
                tracing::error!("LPR endpoint stopped: {e:#}");
            }
        });
    }

    if config.console.listen.is_some() {
        let server = crate::console::ConsoleServer::bind(config, daemon.handle()).await?;
        started.console = server.local_addr().ok();
        let stop = until_shutdown(daemon.shutdown_signal());
        daemon.spawn(async move {
            if let Err(e) = server.serve(stop).await {
                tracing::error!("console stopped: {e:#}");
            }
        });
    }

    if let Some(listen) = config.metrics.listen {
        let stop = until_shutdown(daemon.shutdown_signal());
        daemon.spawn(async move {
            tokio::select! {
                r = crate::metrics::serve(listen) => if let Err(e) = r { tracing::error!("metrics stopped: {e:#}") },
                () = stop => {}
            }
        });
        started.metrics = Some(listen);
    }

    let handle = daemon.handle();
    let snapshots = config.data_dir().join("snapshots");
    let (event_days, audit_days) = (
        config.store.retention_days,
        config.store.audit_retention_days,
    );
    let stop = until_shutdown(daemon.shutdown_signal());
    daemon.spawn(async move {
        let purge = async {
            loop {
                let snapshots = snapshots.clone();
                let result = handle
                    .with_store(move |store| {
                        crate::store::retention::purge(
                            store.conn(),
                            &snapshots,
                            event_days,
                            audit_days,
                        )
                    })
                    .await;
                match result {
                    Ok(Ok(p)) if p != Default::default() => tracing::info!(?p, "retention purge"),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) | Err(e) => tracing::warn!("retention purge failed: {e:#}"),
                }
                tokio::time::sleep(RETENTION_EVERY).await;
            }
        };
        tokio::select! {
            () = purge => {}
            () = stop => {}
        }
    });
    Ok(started)
}
