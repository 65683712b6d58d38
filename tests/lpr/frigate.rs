//! Frigate as a plate source, end to end: a real mosquitto, Frigate's
//! `tracked_object_update` payloads (tests/fixtures/lpr/frigate) published on
//! it, and the running daemon with its services (`start_services`, as
//! `gatehouse run`) deciding on a real SQLite register.

use crate::common;

use std::time::Duration;

use common::{Mosquitto, Scratch};
use gatehouse::app::services::start_services;
use gatehouse::config::Config;
use gatehouse::daemon::{Daemon, DaemonOptions};
use gatehouse::store::events::{AccessResult, EventKind, EventRecord};
use gatehouse::store::station_queries::{watchlist_set, WatchAction, WatchEntry, WatchKind};
use gatehouse::store::Store;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rusqlite::params;
use tokio::sync::{broadcast, mpsc};

const LPR_016: &str = include_str!("../fixtures/lpr/frigate/lpr_0.16.json");
const LPR_017: &str = include_str!("../fixtures/lpr/frigate/lpr_0.17.json");
const CLEARED: &str = include_str!("../fixtures/lpr/frigate/lpr_cleared.json");
const DESCRIPTION: &str = include_str!("../fixtures/lpr/frigate/description.json");
/// The tracked-object id in both `lpr_*` fixtures.
const CAR_A: &str = "1764730512.487351-x7k2qd";
const NOW: &str = "2026-11-27T02:00:00.000Z";
/// How long a test waits for what the daemon does on its own: generous, as
/// waits end when it happens.
const WAIT: Duration = Duration::from_secs(30);

fn config(dir: &Scratch, broker: &str) -> Config {
    let text = format!(
        r#"
[site]
id = "qingbo"
gateway_id = "gw-frigate"
name = "清波小区"

[store]
data_dir = "{data_dir}"

[[gates]]
id = "car-in"
name = "车辆入口"
kind = "vehicle"
direction = "in"
backend = "simulated"
relay_pin = 24
loop_pin = 25

[[gates]]
id = "car-out"
name = "车辆出口"
kind = "vehicle"
direction = "out"
backend = "simulated"
relay_pin = 26
loop_pin = 16

[lpr]
ocr_tolerance = ["car-in"]

[lpr.frigate]
broker = "{broker}"

[[lpr.frigate.cameras]]
name = "gate_lpr"
gate = "car-in"

[[lpr.frigate.cameras]]
name = "exit_lpr"
gate = "car-out"
"#,
        data_dir = dir.path().display()
    );
    Config::parse(&text, "frigate-test.toml").expect("test config is valid")
}

fn add_resident_with_plate(store: &Store, id: i64, name: &str, plate: &str) {
    let c = store.conn();
    c.execute(
        "INSERT INTO person (id, name, role, status, created_at, created_by, updated_at, updated_by)
         VALUES (?1, ?2, 'owner', 'active', ?3, 'test', ?3, 'test')",
        params![id, name, NOW],
    )
    .unwrap();
    c.execute(
        "INSERT INTO vehicle (plate, person_id, created_at, created_by) VALUES (?1, ?2, ?3, 'test')",
        params![plate, id, NOW],
    )
    .unwrap();
}

/// A Frigate 0.16 plate update from `camera` for tracked object `id`.
fn update(camera: &str, id: &str, plate: &str) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_str(LPR_016).unwrap();
    v["camera"] = camera.into();
    v["id"] = id.into();
    v["plate"] = plate.into();
    serde_json::to_vec(&v).unwrap()
}

/// Stands in for Frigate on the broker: publishes on
/// `frigate/tracked_object_update`, each message acknowledged by the broker
/// before the next (so they arrive in order).
struct FakeFrigate {
    client: AsyncClient,
    acks: mpsc::UnboundedReceiver<()>,
    pump: tokio::task::JoinHandle<()>,
}

impl FakeFrigate {
    fn connect(port: u16) -> FakeFrigate {
        let id = format!("frigate-{}", rand::random::<u32>());
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(o, 16);
        let (tx, acks) = mpsc::unbounded_channel();
        let pump = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        let _ = tx.send(());
                    }
                    Ok(_) => {}
                    // The broker is down: the next poll reconnects.
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        FakeFrigate { client, acks, pump }
    }

    async fn publish(&mut self, payload: impl Into<Vec<u8>>, retain: bool) {
        self.client
            .publish(
                "frigate/tracked_object_update",
                QoS::AtLeastOnce,
                retain,
                payload.into(),
            )
            .await
            .expect("queue publish");
        tokio::time::timeout(WAIT, self.acks.recv())
            .await
            .expect("the broker acknowledged the publish");
    }
}

impl Drop for FakeFrigate {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

/// The plate events (access decisions and plate alarms) among `events`.
fn is_plate_event(e: &EventRecord) -> bool {
    e.credential_kind.as_deref() == Some("plate") || e.reason.as_deref() == Some("watchlist_match")
}

fn tracked_object(e: &EventRecord) -> Option<&str> {
    e.detail.as_ref()?.get("tracked_object")?.as_str()
}

/// Publishes `probe` (unknown car `plate` at `exit_lpr`) until the gateway has
/// decided on it: from then on the gateway is subscribed, and what is
/// published after arrives after it. Returns the probe's event.
async fn until_subscribed(
    frigate: &mut FakeFrigate,
    events: &mut broadcast::Receiver<EventRecord>,
    probe: &str,
    plate: &str,
) -> EventRecord {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway never decided on the probe {probe}: not subscribed"
        );
        frigate
            .publish(update("exit_lpr", probe, plate), false)
            .await;
        let waited = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                match events.recv().await {
                    Ok(e) if tracked_object(&e) == Some(probe) => return e,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => panic!("daemon stopped"),
                }
            }
        })
        .await;
        if let Ok(event) = waited {
            return event;
        }
    }
}

/// Every plate event until the one for tracked object `last`, in order.
async fn plate_events_until(
    events: &mut broadcast::Receiver<EventRecord>,
    last: &str,
) -> Vec<EventRecord> {
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(e) if is_plate_event(&e) => {
                    let done = tracked_object(&e) == Some(last);
                    seen.push(e);
                    if done {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("event stream: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no event for {last}; seen {seen:?}"));
    seen
}

async fn start(config: &Config) -> Daemon {
    let mut daemon = Daemon::start_with(
        config,
        DaemonOptions {
            assume_clock_synced: Some(true),
        },
    )
    .await
    .expect("daemon starts");
    let started = start_services(&mut daemon, config)
        .await
        .expect("services start");
    assert_eq!(
        started.frigate.as_deref(),
        Some(config.lpr.frigate.as_ref().unwrap().broker.as_str())
    );
    daemon
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frigate_plate_readings_take_the_gates_plate_path() {
    let broker = Mosquitto::start();
    let dir = Scratch::new("lpr-frigate");
    let config = config(&dir, &broker.url());
    {
        let store = Store::open_config(&config).unwrap();
        add_resident_with_plate(&store, 1, "张三", "川A12345");
        add_resident_with_plate(&store, 2, "王五", "川A55555");
        watchlist_set(
            store.conn(),
            &[WatchEntry {
                kind: WatchKind::Plate,
                value: "川A80125".into(),
                embedding: None,
                action: WatchAction::Deny,
                label: Some("case 2026-140".into()),
                expires_at: None,
            }],
            "station:officer-7",
        )
        .unwrap();
    }
    let mut frigate = FakeFrigate::connect(broker.port);
    // Kept by the broker from before the gateway started: an old reading of
    // a registered car, which must not open the barrier now.
    frigate
        .publish(update("gate_lpr", "1764730000.1-retain", "川A12345"), true)
        .await;

    let daemon = start(&config).await;
    let mut events = daemon.handle().events();
    let probe =
        until_subscribed(&mut frigate, &mut events, "1764730501.0-probe1", "川Z99999").await;
    assert_eq!(probe.result, Some(AccessResult::Denied));
    assert_eq!(probe.gate.as_deref(), Some("car-out"));

    // A camera not listed, reading a registered car: ignored.
    frigate
        .publish(update("driveway", "1764730510.1-drivew", "川A12345"), false)
        .await;
    // Another update type on the same topic: not a plate.
    frigate.publish(DESCRIPTION, false).await;
    // The recorded sequence of one car at gate_lpr (car-in tolerates OCR
    // confusions): an early misreading (Z for 2) opens for 张三's car; the
    // later, better reading of the same car is not a second entry; then the
    // camera is clear.
    frigate.publish(LPR_016, false).await;
    frigate.publish(LPR_017, false).await;
    frigate.publish(CLEARED, false).await;
    // The station's deny-listed car at car-in.
    frigate
        .publish(update("gate_lpr", "1764730520.2-listed", "川A80125"), false)
        .await;
    // The same misreading at car-out, which does not tolerate OCR confusions.
    frigate
        .publish(update("exit_lpr", "1764730530.3-exit01", "川A1Z345"), false)
        .await;
    // Last: a registered car at car-out; everything before has been handled.
    frigate
        .publish(update("exit_lpr", "1764730540.4-exit02", "川A55555"), false)
        .await;
    let seen = plate_events_until(&mut events, "1764730540.4-exit02").await;

    // (kind, gate, reason, tracked object) of each, for failure messages.
    let summary: Vec<_> = seen
        .iter()
        .map(|e| {
            (
                e.kind,
                e.gate.as_deref(),
                e.reason.as_deref(),
                tracked_object(e),
            )
        })
        .collect();
    assert_eq!(seen.len(), 5, "{summary:?}");
    let (opened, listed, alarm, exit_misread, exit_ok) =
        (&seen[0], &seen[1], &seen[2], &seen[3], &seen[4]);

    assert_eq!(opened.result, Some(AccessResult::Granted), "{summary:?}");
    assert_eq!(opened.gate.as_deref(), Some("car-in"));
    assert_eq!(opened.subject_id, Some(1));
    let detail = opened.detail.as_ref().unwrap();
    assert_eq!(detail["source"], "frigate");
    assert_eq!(detail["camera"], "gate_lpr");
    assert_eq!(detail["tracked_object"], CAR_A);
    assert_eq!(detail["read"], "川A1Z345");
    assert_eq!(detail["plate"], "川A12345");
    assert_eq!(detail["ocr_substitution"]["read"], "Z");
    assert_eq!(detail["ocr_substitution"]["tried"], "2");

    assert_eq!(listed.result, Some(AccessResult::Denied), "{summary:?}");
    assert_eq!(listed.reason.as_deref(), Some("watchlisted"));
    assert_eq!(alarm.kind, EventKind::Alarm, "{summary:?}");
    assert_eq!(alarm.reason.as_deref(), Some("watchlist_match"));

    assert_eq!(exit_misread.gate.as_deref(), Some("car-out"));
    assert_eq!(exit_misread.result, Some(AccessResult::Denied));
    assert_eq!(exit_misread.reason.as_deref(), Some("unknown_credential"));
    assert_eq!(exit_ok.gate.as_deref(), Some("car-out"));
    assert_eq!(exit_ok.result, Some(AccessResult::Granted), "{summary:?}");
    assert_eq!(exit_ok.subject_id, Some(2));

    // The database holds the same: no event for the retained reading, the
    // unlisted camera or the second reading of the car that was let in.
    let store = Store::open_config(&config).unwrap();
    let stored: Vec<String> = store
        .conn()
        .prepare("SELECT json_extract(detail, '$.tracked_object') FROM event WHERE credential_kind = 'plate' ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        stored,
        [
            "1764730501.0-probe1",
            CAR_A,
            "1764730520.2-listed",
            "1764730530.3-exit01",
            "1764730540.4-exit02"
        ]
    );
    drop(frigate);
    daemon.shutdown(Duration::from_secs(2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frigate_readings_resume_after_its_broker_restarts() {
    let mut broker = Mosquitto::start();
    let port = broker.port;
    let dir = Scratch::new("lpr-frigate-restart");
    let config = config(&dir, &broker.url());
    let daemon = start(&config).await;
    let mut events = daemon.handle().events();
    let mut frigate = FakeFrigate::connect(port);
    until_subscribed(&mut frigate, &mut events, "1764730601.0-probe1", "川Z99991").await;

    broker.stop();
    let _broker = Mosquitto::start_on(port);
    // The gateway reconnects and subscribes again on its own.
    let after =
        until_subscribed(&mut frigate, &mut events, "1764730602.0-probe2", "川Z99992").await;
    assert_eq!(after.gate.as_deref(), Some("car-out"));
    drop(frigate);
    daemon.shutdown(Duration::from_secs(2)).await.unwrap();
}
