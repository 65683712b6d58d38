//! The gates and the one writer: a slow or failing disk never holds a door
//! open, and never lets a decision pass unannounced.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::{Daemon, DaemonOptions, GateHandle};
use crate::access::Credential;
use crate::config::Config;
use crate::domain::GateId;
use crate::store::events::{self, EventFilter, EventKind, NewEvent};

/// Generous: waits end as soon as what they wait for happens.
const WAIT: Duration = Duration::from_secs(30);
/// Long enough that real time never relocks a door during a test: only
/// [`GateHandle::advance_clock`] does.
const UNLOCK_MS: u32 = 600_000;

fn scratch(tag: &str) -> (std::path::PathBuf, Config) {
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-writer-{tag}-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = Config::demo();
    config.set_data_dir(dir.clone());
    config.cameras.clear();
    for g in &mut config.gates {
        g.unlock_ms = UNLOCK_MS;
    }
    (dir, config)
}

async fn start(config: &Config) -> Daemon {
    Daemon::start_with(
        config,
        DaemonOptions {
            assume_clock_synced: Some(true),
        },
    )
    .await
    .unwrap()
}

fn released(handle: &GateHandle, gate: &GateId) -> bool {
    let cfg = handle.gate_config(gate).unwrap();
    let level = handle
        .simulator(gate)
        .unwrap()
        .output_level(cfg.relay_pin)
        .unwrap();
    level != crate::door::Relay::locked_level(cfg)
}

/// Waits (up to [`WAIT`]) until `cond` holds; false if it never did.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

/// Holds every event write until released: a writer slowed for as long as
/// the test wants (500 ms or a minute), without the test depending on time.
#[derive(Clone, Default)]
struct Hold {
    held: Arc<(Mutex<bool>, Condvar)>,
    waiting: Arc<AtomicBool>,
}

impl Hold {
    fn install(&self, handle: &GateHandle) {
        *self.held.0.lock().unwrap() = true;
        let me = self.clone();
        *handle.core().write_hook.lock().unwrap() = Some(Arc::new(move || {
            me.waiting.store(true, Ordering::SeqCst);
            let (lock, cv) = &*me.held;
            let mut held = lock.lock().unwrap();
            while *held {
                held = cv.wait(held).unwrap();
            }
            me.waiting.store(false, Ordering::SeqCst);
        }));
    }

    fn release(&self) {
        *self.held.0.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.held.1.notify_all();
    }
}

/// Releases the writer when the test ends, failed assertions included (a
/// runtime waits for its blocking threads: a held writer would hang it).
struct ReleaseOnDrop(Hold);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_relocks_on_time_while_its_event_write_is_still_waiting() {
    let (dir, config) = scratch("slow");
    let daemon = start(&config).await;
    let handle = daemon.handle();
    let east: GateId = "east".parse().unwrap();
    let hold = Hold::default();
    hold.install(&handle);
    let _release = ReleaseOnDrop(hold.clone());

    let presenting = {
        let (h, g) = (handle.clone(), east.clone());
        tokio::spawn(async move { h.present(&g, Credential::ExitButton).await })
    };
    assert!(
        eventually(|| released(&handle, &east)).await,
        "the exit button released the door"
    );
    assert!(
        eventually(|| hold.waiting.load(Ordering::SeqCst)).await,
        "the event write reached the (held) writer"
    );
    assert!(
        !presenting.is_finished(),
        "nobody heard the decision before its event was stored"
    );

    // The door's time runs out (plus 10 ms) on the daemon's clock, while the
    // write is still held.
    handle.advance_clock(Duration::from_millis(u64::from(UNLOCK_MS) + 10));
    // The gate task answers at once (it is not waiting for the disk), and
    // services its deadline on the next turn of its loop.
    let status = tokio::time::timeout(WAIT, handle.status())
        .await
        .expect("the gate task answers while its event write waits");
    assert_eq!(status.len(), config.gates.len());
    assert!(
        eventually(|| !released(&handle, &east)).await,
        "the door relocked within unlock_ms + 10 ms of daemon time"
    );
    assert!(
        hold.waiting.load(Ordering::SeqCst),
        "the relock did not wait for the write"
    );
    assert!(!presenting.is_finished());

    hold.release();
    let presented = tokio::time::timeout(WAIT, presenting)
        .await
        .expect("the decision is answered once stored")
        .unwrap()
        .unwrap();
    let event = presented.event.expect("stored");
    assert!(!presented.view.event_unsaved);
    assert_eq!(presented.view.event_seq, Some(event.seq));
    assert_eq!(event.credential_kind.as_deref(), Some("exit_button"));
    daemon.shutdown(WAIT).await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

fn failures_counted(gate: &str) -> f64 {
    let prefix = format!("gatehouse_event_store_failures_total{{gate=\"{gate}\"}} ");
    crate::metrics::render()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_event_write_opens_the_door_but_is_flagged_alarmed_counted_and_kept() {
    let (dir, config) = scratch("fail");
    let daemon = start(&config).await;
    let handle = daemon.handle();
    let east: GateId = "east".parse().unwrap();
    let mut notices = handle.notices(&east).unwrap();
    let counted_before = failures_counted("east");
    // The database refuses every write, as a full or failing disk would.
    handle
        .with_store(|s| s.conn().pragma_update(None, "query_only", true))
        .await
        .unwrap()
        .unwrap();

    let first = handle.present(&east, Credential::ExitButton).await.unwrap();
    assert!(first.decision.is_granted());
    assert!(released(&handle, &east), "the door still acts");
    assert!(first.event.is_none());
    assert!(first.view.event_unsaved);
    assert!(first.view.line().contains("NOT stored"));
    let announced = loop {
        match tokio::time::timeout(WAIT, notices.recv())
            .await
            .unwrap()
            .unwrap()
        {
            super::GateNotice::Decided(v) => break v,
            _ => continue,
        }
    };
    assert!(announced.event_unsaved, "the decision is announced flagged");
    // The access event and one event_store_failed alarm wait for the disk.
    assert_eq!(handle.core().unstored_count(), 2);
    let second = handle.present(&east, Credential::ExitButton).await.unwrap();
    assert!(second.view.event_unsaved);
    assert_eq!(
        handle.core().unstored_count(),
        3,
        "one alarm per outage, not per event"
    );
    assert!(failures_counted("east") >= counted_before + 2.0);

    // The disk takes writes again: the backlog lands first, in order.
    handle
        .with_store(|s| s.conn().pragma_update(None, "query_only", false))
        .await
        .unwrap()
        .unwrap();
    let mut ev = NewEvent::now(EventKind::Device, true);
    ev.reason = Some(crate::event::EventReason::ConfigReloaded);
    let after = handle.record(ev).await.unwrap();
    assert_eq!(handle.core().unstored_count(), 0);
    let stored = handle
        .read(|c| events::query(c, &EventFilter::default()))
        .await
        .unwrap()
        .unwrap();
    let reasons: Vec<(String, Option<String>)> = stored
        .iter()
        .filter(|e| e.seq < after.seq && e.reason.as_deref() != Some("daemon_started"))
        .map(|e| {
            (
                e.credential_kind.clone().unwrap_or_default(),
                e.reason.clone(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("exit_button".to_string(), None),
            (String::new(), Some("event_store_failed".to_string())),
            ("exit_button".to_string(), None),
        ]
    );
    daemon.shutdown(WAIT).await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
