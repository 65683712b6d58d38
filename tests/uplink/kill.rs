//! The publisher process killed with SIGKILL in the middle of draining the
//! outbox, then restarted: every event still reaches the station, in order,
//! under its original id, and the broker told the station it went offline.

use crate::common;
use crate::uplink_support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use uplink_support::*;

fn drain(gw: &Gateway, broker: &str, until_empty: bool) -> Child {
    let mut cmd = common::gatehouse();
    cmd.arg("--config")
        .arg(&gw.config_path)
        .args(["uplink", "drain", "--broker", broker])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if until_empty {
        cmd.arg("--until-empty");
    }
    cmd.spawn().expect("start gatehouse uplink drain")
}

const TOTAL: usize = 10_000;

#[test]
fn publisher_killed_mid_drain_loses_no_event() {
    let broker = common::Mosquitto::start();
    let gw = Gateway::new("kill", "");
    let store = gw.store();
    let records = bulk_swipes(&store, TOTAL);
    let collector = Collector::start(broker.port, "gatehouse/v1/lotus/gw1/#", None);

    let mut first = drain(&gw, &broker.url(), false);
    collector.wait_until(Duration::from_secs(60), "the drain to get under way", |m| {
        distinct_events(m) >= 300
    });
    // …and until the first acknowledged rows are deleted from the outbox.
    let deadline = Instant::now() + Duration::from_secs(30);
    while outbox_depth(&store) == TOTAL as u64 {
        assert!(
            Instant::now() < deadline,
            "no acknowledged event was removed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    first.kill().expect("SIGKILL"); // std's kill() is SIGKILL
    first.wait().unwrap();
    let left = outbox_depth(&store);
    assert!(
        left > 0,
        "the process must die mid-drain for this test to mean anything"
    );
    assert!(
        left < TOTAL as u64,
        "some events were acknowledged and removed before the kill"
    );
    collector.wait_until(Duration::from_secs(10), "the last will", |m| {
        m.iter()
            .any(|m| m.topic.ends_with("/status") && m.json()["state"] == "offline")
    });

    let mut second = drain(&gw, &broker.url(), true);
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            second.kill().ok();
            panic!("uplink drain --until-empty did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "drain exited with {status}");
    assert_eq!(outbox_depth(&store), 0);

    let msgs = collector.wait_until(Duration::from_secs(30), "all events", |m| {
        distinct_events(m) >= TOTAL
    });
    let arrivals = first_arrivals(&msgs);
    assert_eq!(
        arrivals.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (1..=TOTAL as i64).collect::<Vec<_>>(),
        "in order, none missing"
    );
    for ((_, id), record) in arrivals.iter().zip(&records) {
        assert_eq!(id, &record.id, "redelivered under the stored id");
    }
    let redelivered = events_of(&msgs).len() - TOTAL;
    eprintln!("{left} events were queued at the kill; {redelivered} redelivered (at-least-once)");
}
