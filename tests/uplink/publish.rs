//! The uplink publishing the outbox through a real mosquitto: what arrives,
//! that it matches the JSON Schemas, and that nothing is lost while the
//! broker is down or the backlog overflows its quota.

use crate::common;
use crate::uplink_support;

use std::sync::Arc;
use std::time::Duration;

use gatehouse::store::events::{self, AccessResult, EventKind, NewEvent};
use gatehouse::store::outbox;
use gatehouse::uplink::{self, NoGates, Stopped};
use serde_json::json;
use uplink_support::*;

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_snapshots_and_status_arrive_and_match_the_schemas() {
    let broker = common::Mosquitto::start();
    let gw = Gateway::new("publish", "");
    let store = gw.store();
    let jpeg = std::fs::read(common::faces_dir().join("identities/obama/obama_1.jpg"))
        .expect("a real photo from ../shared");
    std::fs::write(gw.data_dir().join("snapshots/face-1.jpg"), &jpeg).unwrap();

    let card = swipe(store.conn(), 1);
    let mut face = NewEvent::now(EventKind::Access, true);
    face.gate = Some("east".parse().unwrap());
    face.direction = Some("in".into());
    face.credential_kind = Some("face".into());
    face.result = Some(AccessResult::Denied);
    face.reason = Some("unknown_face".parse().unwrap());
    face.score = Some(0.41);
    face.snapshot = Some("face-1.jpg".into());
    let face = events::append(store.conn(), &face).unwrap();
    let mut alarm = NewEvent::now(EventKind::Alarm, false);
    alarm.gate = Some("east".parse().unwrap());
    alarm.reason = Some("forced_open".parse().unwrap());
    let alarm = events::append(store.conn(), &alarm).unwrap();
    let mut device = NewEvent::now(EventKind::Device, true);
    device.reason = Some("reader_fault".parse().unwrap());
    device.detail = Some(json!({"reader": "east-wiegand", "retry_in_s": 5}));
    let device = events::append(store.conn(), &device).unwrap();

    let collector = Collector::start(broker.port, "gatehouse/v1/lotus/gw1/#", None);
    let mut settings = gw.settings(Some(&broker.url()));
    settings.timing.heartbeat = Duration::from_millis(400);
    // Every face snapshot leaves with its event (the default sends only
    // watchlist matches: tests/uplink_snapshots.rs).
    settings.face_snapshots = gatehouse::config::FaceSnapshots::All;
    let task = UplinkTask::start(settings, Arc::new(NoGates));
    let msgs = blocking(|| {
        collector.wait_until(Duration::from_secs(15), "4 events and 2 heartbeats", |m| {
            events_of(m).len() >= 4
                && m.iter().filter(|m| m.topic.ends_with("/status")).count() >= 2
        })
    });

    let event_schema = schema("event.schema.json");
    let arrived: Vec<_> = msgs
        .iter()
        .filter(|m| m.topic.contains("/event/"))
        .collect();
    let expected = [
        (&card, "access"),
        (&face, "access"),
        (&alarm, "alarm"),
        (&device, "device"),
    ];
    for (m, (record, kind)) in arrived.iter().zip(expected) {
        let e = m.json();
        assert_valid(&event_schema, &m.topic, &e);
        assert_eq!(m.topic, format!("gatehouse/v1/lotus/gw1/event/{kind}"));
        assert_eq!(e["id"], record.id.as_str());
        assert_eq!(e["seq"], record.seq);
        assert_eq!(e["at"], record.at.as_str());
    }
    let face_payload = arrived[1].json();
    assert_eq!(face_payload["score"], 0.41);
    assert_eq!(face_payload["result"], "denied");
    let snapshot_topic = face_payload["snapshot"].as_str().unwrap().to_string();
    assert_eq!(
        snapshot_topic,
        format!("gatehouse/v1/lotus/gw1/snapshot/{}", face.id)
    );
    let snap_index = msgs
        .iter()
        .position(|m| m.topic == snapshot_topic)
        .expect("snapshot published");
    let event_index = msgs
        .iter()
        .position(|m| m.topic.contains("/event/") && m.json()["id"] == face.id.as_str())
        .unwrap();
    assert!(
        snap_index < event_index,
        "the picture goes out before its event"
    );
    assert_eq!(
        msgs[snap_index].payload, jpeg,
        "the snapshot is the stored JPEG, byte for byte"
    );
    assert_eq!(arrived[2].json()["clock_synced"], false);
    assert_eq!(arrived[3].json()["detail"]["reader"], "east-wiegand");
    assert_eq!(arrived[0].json()["subject_name"], "张*");

    let status_schema = schema("status.schema.json");
    let reply_key = uplink::command::public_key_text(&uplink::reply_public_key(store.secret()));
    for m in msgs.iter().filter(|m| m.topic.ends_with("/status")) {
        let s = m.json();
        assert_valid(&status_schema, "status", &s);
        assert_eq!(s["state"], "online");
        assert_eq!(s["heartbeat"]["reply_key"], reply_key.as_str());
        assert_eq!(s["heartbeat"]["head_seq"], 4);
    }

    // Delivered = acknowledged = gone from the outbox.
    blocking(|| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while outbox_depth(&store) > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "outbox not emptied after PUBACKs"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    assert_eq!(task.stop().await, Stopped::Shutdown);

    // A clean shutdown leaves a retained "offline" status for late subscribers.
    let late = Collector::start(broker.port, "gatehouse/v1/lotus/gw1/status", None);
    let retained =
        blocking(|| late.wait_until(Duration::from_secs(5), "retained status", |m| !m.is_empty()));
    let s = retained[0].json();
    assert!(retained[0].retain);
    assert_valid(&status_schema, "offline status", &s);
    assert_eq!(s["state"], "offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_during_500_swipes_then_all_arrive_in_order() {
    let mut broker = PersistentBroker::start();
    let gw = Gateway::new("broker-down", "");
    let store = gw.store();
    let collector = Collector::start(
        broker.port,
        "gatehouse/v1/lotus/gw1/event/#",
        Some("station-archive"),
    );
    let task = UplinkTask::start(gw.settings(Some(&broker.url())), Arc::new(NoGates));

    for i in 0..10 {
        swipe(store.conn(), i);
        task.wake();
    }
    blocking(|| {
        collector.wait_until(Duration::from_secs(10), "10 events", |m| {
            distinct_events(m) >= 10
        })
    });
    blocking(|| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while outbox_depth(&store) > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "first 10 not acknowledged"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    });

    broker.stop();
    // 500 swipes while the station's broker is down, each written durably.
    let mut ids = Vec::new();
    for i in 10..510 {
        ids.push(swipe(store.conn(), i).id);
        task.wake();
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(outbox_depth(&store), 500, "every swipe waits in the outbox");

    broker.restart();
    let msgs = blocking(|| {
        collector.wait_until(Duration::from_secs(60), "all 510 events", |m| {
            distinct_events(m) >= 510
        })
    });
    let arrivals = first_arrivals(&msgs);
    let seqs: Vec<i64> = arrivals.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=510).collect::<Vec<_>>(),
        "first arrivals are in seq order, none missing"
    );
    let arrived_ids: Vec<&str> = arrivals[10..].iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(
        arrived_ids,
        ids.iter().map(String::as_str).collect::<Vec<_>>(),
        "same event ids as stored"
    );
    let schema = schema("event.schema.json");
    for e in events_of(&msgs) {
        assert_valid(&schema, "event", &e);
    }
    blocking(|| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while outbox_depth(&store) > 0 {
            assert!(std::time::Instant::now() < deadline, "outbox not emptied");
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    assert_eq!(task.stop().await, Stopped::Shutdown);
    collector.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_over_quota_drops_oldest_and_the_alarm_reaches_the_station() {
    let gw = Gateway::new("quota", "outbox_max_mb = 1");
    let store = gw.store();
    bulk_swipes(&store, 8000);
    let before = outbox::depth(store.conn()).unwrap();
    assert!(
        before.bytes > 1024 * 1024,
        "fixture must exceed the 1 MB quota: {} bytes",
        before.bytes
    );

    // No broker yet: the uplink still keeps the backlog within its quota.
    let offline = UplinkTask::start(gw.settings(None), Arc::new(NoGates));
    blocking(|| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while outbox::dropped_total(store.conn()).unwrap() == 0 {
            assert!(std::time::Instant::now() < deadline, "quota never enforced");
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    assert_eq!(offline.stop().await, Stopped::Shutdown);
    let after = outbox::depth(store.conn()).unwrap();
    assert!(after.bytes <= 1024 * 1024);
    let dropped = outbox::dropped_total(store.conn()).unwrap();
    assert_eq!(
        after.events + dropped,
        8000 + 1,
        "kept + dropped = swipes + the alarm"
    );

    let broker = common::Mosquitto::start();
    let collector = Collector::start(broker.port, "gatehouse/v1/lotus/gw1/event/#", None);
    let task = UplinkTask::start(gw.settings(Some(&broker.url())), Arc::new(NoGates));
    let expected = after.events as usize;
    let msgs = blocking(|| {
        collector.wait_until(Duration::from_secs(60), "the kept backlog", |m| {
            distinct_events(m) >= expected
        })
    });
    let events = events_of(&msgs);
    let alarm = events
        .iter()
        .find(|e| e["reason"] == outbox::DROP_REASON)
        .expect("the drop alarm reaches the station");
    assert_valid(&schema("event.schema.json"), "drop alarm", alarm);
    assert_eq!(alarm["kind"], "alarm");
    assert_eq!(alarm["detail"]["dropped_events"], dropped);
    assert_eq!(alarm["detail"]["first_seq"], 1);
    let last_dropped = alarm["detail"]["last_seq"].as_i64().unwrap();
    assert_eq!(last_dropped as u64, dropped);
    // The station sees the gap: delivery resumes right after the dropped range.
    assert_eq!(first_arrivals(&msgs)[0].0, last_dropped + 1);
    assert_eq!(task.stop().await, Stopped::Shutdown);
}
