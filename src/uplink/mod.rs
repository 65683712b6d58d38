//! The uplink to the community police station: every event goes out over
//! MQTT (store-and-forward from the outbox), a retained status heartbeat says
//! the gateway is alive, and the station's signed commands are verified,
//! audited and answered.
//!
//! Architecture Invariant: the uplink only reads the event log and removes
//! outbox rows; it never decides access. In the daemon it writes through
//! the daemon's one writer ([`GatewayActions::writer`]). What it needs from the door and the
//! registers it asks through [`GatewayActions`], which the daemon implements.
//! Nothing is published that is not in the outbox first.
//!
//! Wiring (the daemon):
//! ```ignore
//! let settings = uplink::UplinkSettings::from_config(&config, cli_broker.as_deref())?;
//! let uplink = uplink::spawn(settings, Arc::new(actions));   // inside the tokio runtime
//! uplink.wake();                                              // after each events::append
//! uplink.stop().await?;                                       // on SIGTERM, after the last event
//! ```

mod actions;
pub mod args;
pub mod command;
mod db;
mod dispatch;
mod link;
pub mod payload;
mod settings;
pub mod snapshots;
pub mod status;
pub mod tls;
pub mod topics;

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use ed25519_dalek::{SigningKey, VerifyingKey};
use tokio::sync::{watch, Notify};

pub use actions::{GatewayActions, NoGates, RemoteOpen};
pub use link::jittered;
pub use settings::{Broker, UplinkSettings, UplinkTiming};
pub use topics::Topics;

use crate::secret::DeviceSecret;
use crate::store::{Readers, Store, Writer};

/// A running uplink task.
pub struct Handle {
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<Stopped>>,
}

impl Handle {
    /// "An event was appended": publish it now rather than at the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The notifier itself, for code that only appends events.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Stops cleanly (records delivered events, publishes the offline
    /// status) and waits for the task.
    pub async fn stop(self) -> Result<Stopped> {
        let _ = self.stop.send(true);
        self.task
            .await
            .context("uplink task panicked or was cancelled")?
    }
}

/// Spawns [`run`] on the current tokio runtime.
pub fn spawn<A: GatewayActions>(settings: UplinkSettings, actions: Arc<A>) -> Handle {
    let wake = Arc::new(Notify::new());
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(settings, actions, wake.clone(), stop_rx));
    Handle { wake, stop, task }
}

/// Why [`run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The shutdown signal was raised (or its sender dropped).
    Shutdown,
    /// `exit_when_drained` was set and the outbox is empty.
    Drained,
}

/// Runs the uplink until `shutdown` turns true: publishes the outbox, sends
/// heartbeats, answers commands, reconnects with backoff, and keeps the
/// backlog within its quota. Without a broker it only keeps the quota.
///
/// `wake` lets the event writer say "there is a new event" so it goes out at
/// once; without it, the outbox is re-read every `timing.poll_interval`.
/// `shutdown` turning true, or its sender being dropped, stops it cleanly.
/// Its writes go through the process's one writer: the daemon's
/// ([`GatewayActions::writer`]), or, in a process of its own (`gatehouse
/// uplink drain`), a connection it opens at `settings.db_path`. Its reads
/// use read-only connections (WAL), so they never wait for the writer.
pub async fn run<A: GatewayActions>(
    settings: UplinkSettings,
    actions: Arc<A>,
    wake: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
) -> Result<Stopped> {
    let writer = match actions.writer() {
        Some(writer) => writer,
        None => {
            let (db, dir, key) = (
                settings.db_path.clone(),
                settings.data_dir.clone(),
                settings.device_key.clone(),
            );
            let store = tokio::task::spawn_blocking(move || Store::open_with_key(&db, &dir, &key))
                .await
                .context("database task was cancelled")??;
            Writer::new(store)
        }
    };
    let reply_key = reply_signing_key(writer.lock().secret());
    let readers = Readers::new(&settings.db_path);
    let db = db::Db::new(writer, readers);
    let settings = Arc::new(settings);
    let broker = settings.broker.clone();
    let link = link::Link {
        dispatcher: dispatch::Dispatcher {
            settings: settings.clone(),
            db: db.clone(),
            actions: actions.clone(),
            reply_key: reply_key.clone(),
        },
        settings,
        db,
        actions,
        wake,
        shutdown,
        started: Instant::now(),
        reply_key_text: command::public_key_text(&reply_key.verifying_key()),
    };
    match broker {
        Some(broker) => link.run(broker).await,
        None => offline(link).await,
    }
}

/// No broker configured: events wait in the outbox, which still must not
/// outgrow its quota.
async fn offline<A: GatewayActions>(mut link: link::Link<A>) -> Result<Stopped> {
    anyhow::ensure!(
        !link.settings.exit_when_drained,
        "no broker configured ([uplink] broker or --broker): nothing can drain the outbox"
    );
    tracing::info!("no broker configured; events wait in the outbox");
    let mut quota = tokio::time::interval(link.settings.timing.quota_interval);
    loop {
        tokio::select! {
            _ = quota.tick() => link.enforce_quota().await,
            _ = link.shutdown.changed() => return Ok(Stopped::Shutdown),
        }
    }
}

/// The key that signs this gateway's command replies, derived from the device
/// secret (so it needs no file of its own and survives reinstalls of the binary).
pub fn reply_signing_key(secret: &DeviceSecret) -> SigningKey {
    SigningKey::from_bytes(&secret.derive_key("uplink-reply-ed25519"))
}

/// Its public half, for the station to verify replies with.
pub fn reply_public_key(secret: &DeviceSecret) -> VerifyingKey {
    reply_signing_key(secret).verifying_key()
}
