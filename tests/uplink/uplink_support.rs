//! Fixtures for the uplink tests: a gateway data directory with a config
//! file, events appended through `store::events::append`, an MQTT v5
//! subscriber that collects what the station would see, a mosquitto that
//! keeps its sessions across a restart, the uplink task, and the JSON Schemas.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse::config::Config;
use gatehouse::store::events::{self, AccessResult, EventKind, EventRecord, NewEvent};
use gatehouse::store::Store;
use gatehouse::uplink::{self, GatewayActions, Stopped, UplinkSettings, UplinkTiming};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client, Event, MqttOptions};
use serde_json::Value;

use crate::common::{free_port, Scratch};

pub const SITE: &str = "lotus";
pub const GATEWAY: &str = "gw1";

/// A gateway's config file and data directory.
pub struct Gateway {
    pub dir: Scratch,
    pub config_path: PathBuf,
}

impl Gateway {
    /// `uplink` is the body of the `[uplink]` section.
    pub fn new(tag: &str, uplink: &str) -> Gateway {
        let dir = Scratch::new(tag);
        let config_path = dir.path().join("gatehouse.toml");
        let text = format!(
            "[site]\nid = \"{SITE}\"\ngateway_id = \"{GATEWAY}\"\nname = \"莲花小区\"\n\n\
             [store]\ndata_dir = \"data\"\n\n[uplink]\n{uplink}\n"
        );
        std::fs::write(&config_path, text).expect("write config");
        std::fs::create_dir_all(dir.path().join("data/snapshots")).expect("data dir");
        Gateway { dir, config_path }
    }

    pub fn config(&self) -> Config {
        Config::load(&self.config_path).expect("valid test config")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn store(&self) -> Store {
        Store::open_config(&self.config()).expect("open store")
    }

    /// Settings with delays short enough for tests.
    pub fn settings(&self, broker: Option<&str>) -> UplinkSettings {
        let mut s = UplinkSettings::from_config(&self.config(), broker).expect("uplink settings");
        s.timing = UplinkTiming {
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_millis(500),
            poll_interval: Duration::from_millis(200),
            quota_interval: Duration::from_millis(200),
            heartbeat: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(3),
        };
        s
    }
}

/// A card swipe at the east gate; every third one is denied.
pub fn swipe(conn: &rusqlite::Connection, i: usize) -> EventRecord {
    let mut e = NewEvent::now(EventKind::Access, true);
    e.gate = Some("east".parse().unwrap());
    e.direction = Some("in".into());
    e.credential_kind = Some("card".into());
    e.credential_masked = Some(format!("10:***{:02}", i % 100));
    if i.is_multiple_of(3) {
        e.result = Some(AccessResult::Denied);
        e.reason = Some("unknown_credential".parse().unwrap());
    } else {
        e.result = Some(AccessResult::Granted);
        e.subject_id = Some(gatehouse::domain::ResidentId(1 + (i % 5) as i64));
        e.subject_name = Some("张*".into());
    }
    events::append(conn, &e).expect("append event")
}

/// Appends `n` swipes quickly: this connection skips fsync, which only
/// speeds up building the fixture (the uplink's own connection is unchanged).
pub fn bulk_swipes(store: &Store, n: usize) -> Vec<EventRecord> {
    store
        .conn()
        .pragma_update(None, "synchronous", "OFF")
        .unwrap();
    let out = (0..n).map(|i| swipe(store.conn(), i)).collect();
    store
        .conn()
        .pragma_update(None, "synchronous", "FULL")
        .unwrap();
    out
}

pub fn outbox_depth(store: &Store) -> u64 {
    gatehouse::store::outbox::depth(store.conn())
        .unwrap()
        .events
}

/// A message the station side received.
#[derive(Clone, Debug)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Msg {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", self.topic))
    }
}

/// An MQTT v5 subscriber in a thread, collecting everything it receives.
/// With a client id it keeps a persistent session (clean start off, one
/// hour expiry), so a restarted broker that persisted it queues messages.
pub struct Collector {
    msgs: Arc<Mutex<Vec<Msg>>>,
    client: Client,
}

impl Collector {
    pub fn start(port: u16, filter: &str, persistent_id: Option<&str>) -> Collector {
        let id = persistent_id
            .map(str::to_string)
            .unwrap_or_else(|| format!("collector-{}", rand::random::<u32>()));
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_max_packet_size(Some(16 * 1024 * 1024));
        if persistent_id.is_some() {
            o.set_clean_start(false);
            o.set_session_expiry_interval(Some(3600));
        }
        let (client, mut connection) = Client::new(o, 100);
        client.subscribe(filter, QoS::AtLeastOnce).unwrap();
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let sink = msgs.clone();
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => sink.lock().unwrap().push(Msg {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.to_vec(),
                        retain: p.retain,
                    }),
                    Ok(_) => {}
                    // The broker is down: try again shortly (the iterator reconnects).
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("subscription acknowledged");
        Collector { msgs, client }
    }

    pub fn messages(&self) -> Vec<Msg> {
        self.msgs.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what was collected.
    pub fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Msg]) -> bool,
    ) -> Vec<Msg> {
        let deadline = Instant::now() + timeout;
        loop {
            let msgs = self.messages();
            if done(&msgs) {
                return msgs;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; got {} messages", msgs.len());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(self) {
        let _ = self.client.disconnect();
    }
}

/// Event payloads among `msgs`, in arrival order.
pub fn events_of(msgs: &[Msg]) -> Vec<Value> {
    msgs.iter()
        .filter(|m| m.topic.contains("/event/"))
        .map(Msg::json)
        .collect()
}

/// (seq, id) of each event the first time it arrived: redeliveries dropped,
/// arrival order kept.
pub fn first_arrivals(msgs: &[Msg]) -> Vec<(i64, String)> {
    let mut seen = std::collections::HashSet::new();
    events_of(msgs)
        .into_iter()
        .filter_map(|e| {
            let id = e["id"].as_str().unwrap().to_string();
            seen.insert(id.clone())
                .then(|| (e["seq"].as_i64().unwrap(), id))
        })
        .collect()
}

pub fn distinct_events(msgs: &[Msg]) -> usize {
    first_arrivals(msgs).len()
}

/// A JSON Schema from `schemas/`.
pub fn schema(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value: Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&value)
        .unwrap_or_else(|e| panic!("{name} is not a valid schema: {e}"))
}

pub fn assert_valid(validator: &jsonschema::Validator, what: &str, instance: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match its schema: {errors:?}\n{instance:#}"
    );
}

/// The uplink running as a tokio task, spawned the way the daemon spawns it.
pub struct UplinkTask(uplink::Handle);

impl UplinkTask {
    pub fn start<A: GatewayActions>(settings: UplinkSettings, actions: Arc<A>) -> UplinkTask {
        UplinkTask(uplink::spawn(settings, actions))
    }

    pub fn wake(&self) {
        self.0.wake();
    }

    pub async fn stop(self) -> Stopped {
        tokio::time::timeout(Duration::from_secs(10), self.0.stop())
            .await
            .expect("uplink stops within 10 s")
            .expect("uplink ran without error")
    }
}

/// A mosquitto that saves its sessions and queued messages when stopped with
/// SIGTERM and loads them when started again on the same port and directory,
/// as a station broker does across a restart.
pub struct PersistentBroker {
    pub port: u16,
    dir: Scratch,
    child: Option<Child>,
}

impl PersistentBroker {
    pub fn start() -> PersistentBroker {
        let mut b = PersistentBroker {
            port: free_port(),
            dir: Scratch::new("persistent-broker"),
            child: None,
        };
        b.restart();
        b
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let conf = self.dir.path().join("mosquitto.conf");
        let mut text = format!(
            "listener {} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
             max_queued_messages 100000\n",
            self.port,
            self.dir.path().display()
        );
        if is_root() {
            text.push_str("user root\n");
        }
        std::fs::write(&conf, text).unwrap();
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, so mosquitto writes its persistence file, then wait for exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for PersistentBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn mosquitto_bin() -> PathBuf {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("mosquitto"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
