//! The wiring of `services`: the adapters write through the daemon's one
//! writer, and what they write reaches the daemon's subscribers.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::daemon::{Daemon, DaemonOptions};
use crate::store::events::{self, EventKind, NewEvent};

/// Generous: waits end as soon as what they wait for happens.
const WAIT: Duration = Duration::from_secs(30);

fn scratch(tag: &str) -> (std::path::PathBuf, Config) {
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-app-{tag}-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = Config::demo();
    config.set_data_dir(dir.clone());
    config.cameras.clear();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uplinks_quota_alarm_goes_through_the_daemons_writer_and_is_announced() {
    let (dir, config) = scratch("quota");
    let daemon = start(&config).await;
    let handle = daemon.handle();
    let mut announced = handle.events();
    for _ in 0..3 {
        let mut ev = NewEvent::now(EventKind::Device, true);
        ev.reason = Some(crate::event::EventReason::ConfigReloaded);
        handle.record(ev).await.unwrap();
    }
    let mut settings = crate::uplink::UplinkSettings::from_config(&config, None).unwrap();
    // Whatever is queued is over this quota; the first check runs at once.
    settings.quota_bytes = 1;
    settings.timing.quota_interval = Duration::from_secs(3600);
    let uplink = crate::uplink::spawn(settings, Arc::new(handle.clone()));
    let alarm = loop {
        let e = tokio::time::timeout(WAIT, announced.recv())
            .await
            .expect("the quota alarm is announced")
            .unwrap();
        if e.reason.as_deref() == Some(crate::store::outbox::DROP_REASON) {
            break e;
        }
    };
    assert_eq!(alarm.kind, EventKind::Alarm);
    // One chain, one database: the alarm follows the daemon's own events.
    let (checked, breaks) = handle.read(events::verify_chain).await.unwrap().unwrap();
    assert!(breaks.is_empty());
    assert!(checked >= u64::try_from(alarm.seq).unwrap());
    uplink.stop().await.unwrap();
    daemon.shutdown(WAIT).await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
