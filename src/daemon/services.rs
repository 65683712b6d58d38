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
    /// Frigate's broker, when its plate recognitions are a source.
    pub frigate: Option<String>,
    pub metrics: Option<std::net::SocketAddr>,
    /// The broker events are published to (`None`: they wait in the outbox).
    pub broker: Option<String>,
    /// Cameras running face recognition.
    pub cameras: usize,
    /// Why face recognition is out of service, when it is.
    pub face_unavailable: Option<String>,
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

    if config.lpr.frigate.is_some() {
        // Files and keys are checked here, so a bad [lpr.frigate] stops the start.
        let link = crate::lpr::frigate::Link::from_config(config)?;
        let intake = crate::lpr::frigate::Intake::new(config, daemon.handle())?;
        started.frigate = Some(link.broker.to_string());
        let stop = until_shutdown(daemon.shutdown_signal());
        daemon.spawn(link.run(intake, stop));
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
        let endpoint = crate::metrics::bind(listen).await?;
        crate::metrics::declare_known(config);
        started.metrics = Some(endpoint.local_addr());
        let stop = until_shutdown(daemon.shutdown_signal());
        daemon.spawn(async move {
            tokio::select! {
                r = endpoint.serve() => if let Err(e) = r { tracing::error!("metrics stopped: {e:#}") },
                () = stop => {}
            }
        });
        super::gauges::spawn_outbox_sampler(daemon);
    }

    // The uplink runs even without a broker: it keeps the backlog within its quota.
    let settings = crate::uplink::UplinkSettings::from_config(config, None)?;
    started.broker = config.uplink.broker.clone();
    let uplink = crate::uplink::spawn(settings, std::sync::Arc::new(daemon.handle()));
    let mut events = daemon.handle().events();
    let mut stop_rx = daemon.shutdown_signal();
    daemon.spawn(async move {
        // Every stored event wakes the publisher, so it goes out at once.
        loop {
            tokio::select! {
                e = events.recv() => match e {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => uplink.wake(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                r = stop_rx.changed() => if r.is_err() || *stop_rx.borrow() { break },
            }
        }
        if let Err(e) = uplink.stop().await {
            tracing::warn!("uplink stopped with an error: {e:#}");
        }
    });

    // The site's register (issue 17): the registry's publisher or a gate's receiver.
    if let Some(settings) = crate::site::Settings::from_config(config)? {
        let config = config.clone();
        let stop = daemon.shutdown_signal();
        let applied = std::sync::Arc::new(tokio::sync::Notify::new());
        let wake = applied.clone();
        let host: std::sync::Arc<dyn crate::site::Host> = std::sync::Arc::new(daemon.handle());
        daemon.spawn(async move {
            if let Err(e) = crate::site::run(&config, settings, stop, wake, host).await {
                tracing::error!("site register task stopped: {e:#}");
            }
        });
        // A change applied at a gate is decided on at once, not at the next poll.
        let handle = daemon.handle();
        let mut stop = daemon.shutdown_signal();
        daemon.spawn(async move {
            loop {
                tokio::select! {
                    _ = applied.notified() => {
                        if let Err(e) = handle.reload_register(false).await {
                            tracing::error!("register reload failed (keeping the previous one): {e:#}");
                        }
                    }
                    r = stop.changed() => if r.is_err() || *stop.borrow() { break },
                }
            }
        });
    }

    start_cameras(daemon, config, &mut started).await;

    let handle = daemon.handle();
    let snapshots = config.data_dir().join("snapshots");
    let (event_days, audit_days, stranger_days) = (
        config.store.retention_days,
        config.store.audit_retention_days,
        config.face.stranger_days,
    );
    // A site's gate holds the registry's passes: the registry purges them and the deletion replicates.
    let purges_passes = config.site.role != crate::config::SiteRole::Gate;
    let stop = until_shutdown(daemon.shutdown_signal());
    daemon.spawn(async move {
        let purge = async {
            loop {
                let snapshots = snapshots.clone();
                let result = handle
                    .with_store(move |store| {
                        // Ended visitor passes go a day after their window, freeing their PINs.
                        let day_ago = chrono::Utc::now() - chrono::Duration::days(1);
                        if purges_passes {
                            crate::store::visitors::purge_ended(store, "retention", day_ago)?;
                        }
                        // Unregistered people's faces go after `[face] stranger_days`.
                        let strangers =
                            crate::store::strangers::purge(store.conn(), stranger_days)?;
                        if strangers > 0 {
                            tracing::info!(strangers, "stranger sightings purged");
                        }
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

/// Starts the face cameras. A failure (models missing, camera gone at start)
/// takes face recognition out of service with an alarm; the gates keep working.
pub async fn start_cameras(daemon: &mut Daemon, config: &Config, started: &mut Started) {
    let (cfg, handle) = (config.clone(), daemon.handle());
    let result = tokio::task::spawn_blocking(move || super::cameras::start(&cfg, handle))
        .await
        .map_err(|e| anyhow::anyhow!("camera start-up task failed: {e}"))
        .and_then(|r| r);
    match result {
        Ok(None) => {}
        Ok(Some((cameras, events_task))) => {
            started.cameras = cameras.pipelines.len();
            let stop = until_shutdown(daemon.shutdown_signal());
            daemon.spawn(async move {
                tokio::select! {
                    () = events_task => {}
                    () = stop => {}
                }
                let _ = tokio::task::spawn_blocking(move || cameras.stop()).await;
            });
        }
        Err(e) => {
            let why = format!("{e:#}");
            tracing::error!("face recognition out of service: {why}");
            let mut ev = daemon
                .handle()
                .event(crate::store::events::EventKind::Alarm);
            ev.reason = Some(crate::event::EventReason::FaceUnavailable);
            ev.detail = Some(serde_json::json!({ "error": why }));
            if let Err(e) = daemon.handle().record(ev).await {
                tracing::error!("cannot record the face_unavailable alarm: {e:#}");
            }
            started.face_unavailable = Some(why);
        }
    }
}
