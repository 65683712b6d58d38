//! The systemd watchdog ping. systemd restarts the service when the pings stop
//! (`WatchdogSec=` in the unit), so they must mean "the gates work", not "some
//! thread is alive": before each ping every running gate's task has to answer
//! a command. A gate stuck in a loop or a dead gate task stops the pings and
//! gets the daemon restarted; a gate that is out of service because its
//! hardware failed does not (it is degraded on its own, and a restart would
//! not bring the hardware back).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::sd_notify::Notifier;
use super::{Daemon, GateHandle};
use crate::domain::GateId;

/// Starts the ping task if systemd asked for a watchdog (`$WATCHDOG_USEC`).
/// Returns the ping interval.
pub fn spawn(daemon: &mut Daemon, notifier: Arc<Notifier>) -> Option<Duration> {
    if !notifier.enabled() {
        return None;
    }
    let every = super::sd_notify::watchdog_interval()?;
    let handle: GateHandle = daemon.handle();
    let stop = daemon.shutdown_signal();
    // A gate gets half an interval to answer, so a ping is never late because of it.
    let within = (every / 2).max(Duration::from_millis(20));
    daemon.spawn(ping_while_healthy(
        move || {
            let handle = handle.clone();
            async move { handle.unresponsive(within).await }
        },
        notifier,
        every,
        stop,
    ));
    Some(every)
}

/// Every `every`, asks `check` for unresponsive gates and pings only if there
/// are none. Ends at shutdown.
pub async fn ping_while_healthy<F, Fut>(
    check: F,
    notifier: Arc<Notifier>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Vec<GateId>>,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_healthy = true;
    loop {
        tokio::select! {
            r = stop.changed() => if r.is_err() || *stop.borrow() { return },
            _ = tick.tick() => {}
        }
        let stuck = check().await;
        if *stop.borrow() {
            return;
        }
        if stuck.is_empty() {
            notifier.notify("WATCHDOG=1");
            if !was_healthy {
                tracing::info!("every gate answers again; watchdog pings resumed");
            }
            was_healthy = true;
        } else {
            if was_healthy {
                let names: Vec<&str> = stuck.iter().map(GateId::as_str).collect();
                tracing::error!(
                    "gate task(s) {} do not answer; withholding the watchdog ping so systemd restarts the daemon",
                    names.join(", ")
                );
            }
            was_healthy = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn pings(listener: &UnixDatagram) -> usize {
        let mut n = 0;
        let mut buf = [0u8; 64];
        while let Ok(len) = listener.recv(&mut buf) {
            assert_eq!(&buf[..len], b"WATCHDOG=1");
            n += 1;
        }
        n
    }

    #[tokio::test]
    async fn pings_stop_while_a_gate_does_not_answer_and_resume_after() {
        let dir = std::env::temp_dir().join(format!("gh-watchdog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let notifier = Arc::new(Notifier::for_socket(path.to_str().unwrap()));
        assert!(notifier.enabled());
        let stuck = Arc::new(AtomicBool::new(false));
        let (stop_tx, stop_rx) = watch::channel(false);
        let s = stuck.clone();
        let task = tokio::spawn(ping_while_healthy(
            move || {
                let stuck = s.load(Ordering::SeqCst);
                async move {
                    if stuck {
                        vec!["east".parse::<GateId>().unwrap()]
                    } else {
                        Vec::new()
                    }
                }
            },
            notifier,
            Duration::from_millis(20),
            stop_rx,
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(pings(&listener) >= 3, "healthy gates are pinged");
        stuck.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        pings(&listener);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(pings(&listener), 0, "no ping while a gate is stuck");
        stuck.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(pings(&listener) >= 3, "pings resume");
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
