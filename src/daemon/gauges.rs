//! Gauges sampled from the database for `/metrics`: what waits in the outbox
//! for the station. A periodic count (cheap: one aggregate over the outbox
//! table) instead of bookkeeping in the writer and the uplink, so the number
//! is always the database's truth.

use std::time::Duration;

use super::Daemon;
use crate::store::outbox;

/// How often the outbox is measured.
pub const OUTBOX_SAMPLE: Duration = Duration::from_secs(5);

/// Starts the sampler (with the metrics endpoint; nothing reads it otherwise).
pub fn spawn_outbox_sampler(daemon: &mut Daemon) {
    let handle = daemon.handle();
    let mut stop = daemon.shutdown_signal();
    daemon.spawn(async move {
        let mut tick = tokio::time::interval(OUTBOX_SAMPLE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                r = stop.changed() => if r.is_err() || *stop.borrow() { return },
                _ = tick.tick() => {}
            }
            match handle.read(outbox::depth).await {
                Ok(Ok(depth)) => {
                    crate::metrics::set(
                        "gatehouse_outbox_events",
                        "Events stored but not yet acknowledged by the station's broker.",
                        &[],
                        depth.events as f64,
                    );
                    crate::metrics::set(
                        "gatehouse_outbox_bytes",
                        "Size of the events waiting in the outbox.",
                        &[],
                        depth.bytes as f64,
                    );
                }
                Ok(Err(e)) | Err(e) => tracing::warn!("cannot measure the outbox: {e:#}"),
            }
        }
    });
}
