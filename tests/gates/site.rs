//! One register for every gateway of a site (issue 17), with real processes:
//! a registry and a gate, each `gatehouse run` on its own data directory,
//! talking through a real mosquitto. Changes are made with the CLI at the
//! registry and cards are swiped at the gate's simulated reader.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gatehouse::site::{keys, wire};
use gatehouse::store::site_log::{self, Change, Entry};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client, Event, MqttOptions};
use serde_json::json;

use crate::common::{Mosquitto, Scratch};
use crate::daemon_support::{cli, demo_copy, stdout, Running};

const SITE: &str = "qingbo";
const WAIT: Duration = Duration::from_secs(30);

/// A demo config whose `[site]` takes `role` and its keys.
pub(crate) fn site_config(dir: &Path, gateway: &str, site_keys: &str) -> PathBuf {
    let path = demo_copy(dir, "");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace(
            "gateway_id = \"demo-gw\"",
            &format!("gateway_id = \"{gateway}\""),
        )
        .replace(
            "utc_offset_minutes = 480\n",
            &format!("utc_offset_minutes = 480\n{site_keys}\n"),
        );
    std::fs::write(&path, text).unwrap();
    path
}

/// The gates a registry pins: each gate's name and data directory.
pub(crate) type Gates<'a> = &'a [(&'a str, &'a Path)];

/// A gate's site key (`site.key` in its data directory, made now as its first
/// run would), for the registry to pin.
pub(crate) fn gate_key(gate_data: &Path) -> String {
    let key = keys::load_or_create(&gate_data.join("site.key")).unwrap();
    gatehouse::signing::public_key_text(&key.verifying_key())
}

/// A registry running on `broker`, pinning `gates`' keys; returns it and its
/// pinned public key.
pub(crate) fn start_registry(dir: &Path, broker: &str, gates: Gates) -> (PathBuf, Running, String) {
    start_registry_with(dir, broker, gates, "")
}

/// A registry with more `[site]` keys (`extra`: TOML lines).
pub(crate) fn start_registry_with(
    dir: &Path,
    broker: &str,
    gates: Gates,
    extra: &str,
) -> (PathBuf, Running, String) {
    let pinned: Vec<String> = gates
        .iter()
        .map(|(name, data)| format!("\"{name}\" = \"{}\"", gate_key(data)))
        .collect();
    let config = site_config(
        dir,
        "office",
        &format!(
            "role = \"registry\"\nbroker = \"{broker}\"\ngate_keys = {{ {} }}\n{extra}",
            pinned.join(", ")
        ),
    );
    let registry = Running::start(&config, dir);
    registry.wait_log("site registry publishing", WAIT);
    let key = keys::load(&dir.join("site.key")).unwrap();
    let public = gatehouse::uplink::command::public_key_text(&key.verifying_key());
    (config, registry, public)
}

fn gate_config(dir: &Path, broker: &str, registry_key: &str) -> PathBuf {
    named_gate_config(dir, "north", broker, registry_key)
}

pub(crate) fn named_gate_config(
    dir: &Path,
    gateway: &str,
    broker: &str,
    registry_key: &str,
) -> PathBuf {
    site_config(
        dir,
        gateway,
        &format!("role = \"gate\"\nbroker = \"{broker}\"\nregistry_key = \"{registry_key}\""),
    )
}

pub(crate) fn db(data: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(data.join("gatehouse.db")).unwrap()
}

fn head(registry_data: &Path) -> i64 {
    site_log::head(&db(registry_data)).unwrap()
}

fn applied(gate_data: &Path) -> i64 {
    site_log::applied_seq(&db(gate_data)).unwrap()
}

/// Waits until the gate has applied everything the registry logged.
pub(crate) fn wait_caught_up(registry_data: &Path, gate_data: &Path) -> i64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let (h, a) = (head(registry_data), applied(gate_data));
        if h > 0 && a == h {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "gate at {a}, registry at {h} after {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the gate has applied everything and its daemon decides on it
/// (its log reports a reload of the register version the database has now).
pub(crate) fn wait_synced(registry_data: &Path, gate_data: &Path, gate: &Running) -> i64 {
    let seq = wait_caught_up(registry_data, gate_data);
    let version = gatehouse::store::snapshot::register_version(&db(gate_data)).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let reloaded = gate
            .log_text()
            .lines()
            .filter(|l| l.contains("register reloaded"))
            .filter_map(|l| l.split("version=").nth(1))
            .filter_map(|v| v.split_whitespace().next()?.parse::<i64>().ok())
            .max();
        if reloaded.is_some_and(|v| v >= version) {
            return seq;
        }
        assert!(
            Instant::now() < deadline,
            "the gate's daemon did not reload register version {version}:\n{}",
            gate.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn same_register(registry_data: &Path, gate_data: &Path) {
    assert_eq!(
        site_log::register_hash(&db(gate_data)).unwrap(),
        site_log::register_hash(&db(registry_data)).unwrap(),
        "the gate's register diverges from the registry's"
    );
}

/// Adds a resident with a card at `config` and returns the resident id.
pub(crate) fn enrol(config: &Path, data: &Path, name: &str, card: &str) -> String {
    let id = stdout(&cli(
        config,
        data,
        &["resident", "add", "--name", name, "--role", "tenant"],
    ))
    .trim()
    .to_string();
    stdout(&cli(config, data, &["card", "assign", &id, "--card", card]));
    id
}

pub(crate) fn swipe(config: &Path, data: &Path, card: &str) -> String {
    stdout(&cli(
        config,
        data,
        &["simulate", "wiegand", "--gate", "east", "--card", card],
    ))
}

/// The gate's `site_log_rejected` alarms, by their `why`.
fn rejections(gate_data: &Path) -> Vec<String> {
    db(gate_data)
        .prepare(
            "SELECT json_extract(detail, '$.why') FROM event
             WHERE kind = 'alarm' AND reason = 'site_log_rejected' ORDER BY seq",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn wait_rejections(gate_data: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = rejections(gate_data);
        if found.len() >= n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "only {found:?} site_log_rejected alarms"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_card_enrolled_at_the_registry_opens_at_the_gate_until_its_tenant_moves_out() {
    let broker = Mosquitto::start();
    let reg = Scratch::new("site-registry");
    let gate = Scratch::new("site-gate");
    let (reg_config, mut registry, key) =
        start_registry(reg.path(), &broker.url(), &[("north", gate.path())]);
    let gate_config = gate_config(gate.path(), &broker.url(), &key);
    let mut north = Running::start(&gate_config, gate.path());

    let id = enrol(&reg_config, reg.path(), "王五", "10:777");
    wait_synced(reg.path(), gate.path(), &north);
    let s = swipe(&gate_config, gate.path(), "10:777");
    assert!(s.contains("east: GRANTED card 10:*77"), "{s}");
    same_register(reg.path(), gate.path());

    // The gate's own register is not to be changed there.
    let out = cli(
        &gate_config,
        gate.path(),
        &["resident", "add", "--name", "赵六", "--role", "owner"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gate of site qingbo") && err.contains("site registry"),
        "{err}"
    );

    stdout(&cli(
        &reg_config,
        reg.path(),
        &["resident", "move-out", &id],
    ));
    wait_synced(reg.path(), gate.path(), &north);
    let s = swipe(&gate_config, gate.path(), "10:777");
    assert!(s.contains("DENIED card"), "{s}");

    // The gate is away while the register changes: it catches up on return.
    north.stop();
    enrol(&reg_config, reg.path(), "钱七", "10:888");
    enrol(&reg_config, reg.path(), "孙八", "10:999");
    let mut north = Running::start(&gate_config, gate.path());
    wait_synced(reg.path(), gate.path(), &north);
    same_register(reg.path(), gate.path());
    let s = swipe(&gate_config, gate.path(), "10:999");
    assert!(s.contains("east: GRANTED card 10:*99"), "{s}");

    // Away again, and the registry compacts its log past the gate: a snapshot then the tail.
    north.stop();
    enrol(&reg_config, reg.path(), "周九", "10:4242");
    let compacted = site_log::compact(&db(reg.path()), 0).unwrap();
    assert!(compacted > applied(gate.path()));
    enrol(&reg_config, reg.path(), "吴十", "10:4343");
    let north = Running::start(&gate_config, gate.path());
    wait_synced(reg.path(), gate.path(), &north);
    north.wait_log("applied the register snapshot", WAIT);
    same_register(reg.path(), gate.path());
    let s = swipe(&gate_config, gate.path(), "10:4242");
    assert!(s.contains("east: GRANTED card 10:**42 R4"), "{s}");

    // The registry is down: the gate keeps deciding on its last register.
    registry.stop();
    let s = swipe(&gate_config, gate.path(), "10:4343");
    assert!(s.contains("east: GRANTED card 10:**43 R5"), "{s}");
    let status = stdout(&cli(&gate_config, gate.path(), &["gate", "status"]));
    let line = format!(
        "site: gate of site qingbo: register at entry {}, last applied 20",
        head(reg.path())
    );
    assert!(status.contains(&line), "{status}");
    assert!(rejections(gate.path()).is_empty());
}

/// A signed message the registry never sent, for the gate to refuse.
fn forged(key: &ed25519_dalek::SigningKey, site: &str, seq: i64) -> Vec<u8> {
    let row = json!({
        "id": 900, "name": "伪造", "id_kind": "resident_id", "id_hash": null, "id_masked": null,
        "phone": null, "role": "owner", "household_id": null, "status": "active",
        "valid_from": null, "valid_until": null, "floating": 0, "residence_permit_until": null,
        "notes": null, "created_at": "2026-12-03T00:00:00.000Z", "created_by": "x",
        "updated_at": "2026-12-03T00:00:00.000Z", "updated_by": "x"
    });
    let entry = Entry {
        v: site_log::VERSION,
        site: site.into(),
        seq,
        at: "2026-12-03T00:00:00.000Z".into(),
        changes: vec![Change::Upsert {
            table: "person".into(),
            row: row.as_object().unwrap().clone(),
            windows: None,
            members: None,
        }],
    };
    let body = wire::canonical_body(&entry);
    wire::entry_message(&body, &wire::sign(key, &body))
}

/// Publishes one message as an outsider on the site broker (QoS 1, until PUBACK).
pub(crate) fn publish(port: u16, topic: &str, payload: Vec<u8>) {
    let mut o = MqttOptions::new(
        format!("forger-{}", rand::random::<u32>()),
        "127.0.0.1",
        port,
    );
    o.set_keep_alive(Duration::from_secs(5));
    let (client, mut connection) = Client::new(o, 10);
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .unwrap();
    for event in connection.iter() {
        match event {
            Ok(Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::PubAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("publishing to the test broker: {e}"),
        }
    }
    let _ = client.disconnect();
}

#[test]
fn forged_foreign_and_out_of_order_entries_are_refused_with_an_alarm_and_change_nothing() {
    let broker = Mosquitto::start();
    let reg = Scratch::new("site-registry-f");
    let gate = Scratch::new("site-gate-f");
    let (reg_config, _registry, key) =
        start_registry(reg.path(), &broker.url(), &[("north", gate.path())]);
    let gate_config = gate_config(gate.path(), &broker.url(), &key);
    let north = Running::start(&gate_config, gate.path());
    enrol(&reg_config, reg.path(), "王五", "10:777");
    let seq = wait_synced(reg.path(), gate.path(), &north);
    let before = site_log::register_hash(&db(gate.path())).unwrap();

    let registry_key = keys::load(&reg.path().join("site.key")).unwrap();
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let log = wire::Topics::new(SITE).log();
    publish(broker.port, &log, forged(&stranger, SITE, seq + 1));
    assert_eq!(wait_rejections(gate.path(), 1), ["bad_signature"]);
    publish(broker.port, &log, forged(&registry_key, "peony", seq + 1));
    assert_eq!(wait_rejections(gate.path(), 2)[1], "wrong_site");
    publish(broker.port, &log, forged(&registry_key, SITE, seq + 5));
    assert_eq!(wait_rejections(gate.path(), 3)[2], "gap");
    let unsigned = format!("{{\"entry\":{{\"site\":\"{SITE}\",\"seq\":{}}}}}", seq + 1);
    publish(broker.port, &log, unsigned.into_bytes());
    assert_eq!(wait_rejections(gate.path(), 4)[3], "unsigned");

    // Nothing of them was applied, and the gate still follows the registry.
    assert_eq!(applied(gate.path()), seq);
    assert_eq!(site_log::register_hash(&db(gate.path())).unwrap(), before);
    enrol(&reg_config, reg.path(), "钱七", "10:888");
    wait_caught_up(reg.path(), gate.path());
    same_register(reg.path(), gate.path());
    let forged_person: i64 = db(gate.path())
        .query_row("SELECT count(*) FROM person WHERE id = 900", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(forged_person, 0);
}

#[test]
fn a_one_use_visitor_pin_used_at_one_gate_is_refused_at_another() {
    let broker = Mosquitto::start();
    let reg = Scratch::new("site-registry-v");
    let (a, b) = (Scratch::new("site-gate-a"), Scratch::new("site-gate-b"));
    let (reg_config, _registry, key) = start_registry(
        reg.path(),
        &broker.url(),
        &[("north", a.path()), ("south", b.path())],
    );
    // PINs are kept as hashes keyed by the device secret: the site's gateways share it.
    let mut gates = Vec::new();
    for (dir, name) in [(&a, "north"), (&b, "south")] {
        std::fs::copy(reg.path().join("device.key"), dir.path().join("device.key")).unwrap();
        let config = named_gate_config(dir.path(), name, &broker.url(), &key);
        let running = Running::start(&config, dir.path());
        gates.push((config, running));
    }
    let host = stdout(&cli(
        &reg_config,
        reg.path(),
        &["resident", "add", "--name", "王五", "--role", "owner"],
    ))
    .trim()
    .to_string();
    let pass = stdout(&cli(
        &reg_config,
        reg.path(),
        &[
            "visitor",
            "pass",
            "--host",
            &host,
            "--name",
            "李访客",
            "--valid-for",
            "4h",
            "--uses",
            "1",
        ],
    ));
    let pin = pass
        .lines()
        .find_map(|l| l.strip_prefix("PIN:"))
        .map(|p| p.trim().to_string())
        .unwrap_or_else(|| panic!("no PIN in {pass}"));
    for ((_, running), dir) in gates.iter().zip([&a, &b]) {
        wait_synced(reg.path(), dir.path(), running);
    }
    let pin_at = |config: &Path, data: &Path| {
        stdout(&cli(
            config,
            data,
            &["simulate", "pin", "--gate", "east", &pin],
        ))
    };
    let s = pin_at(&gates[0].0, a.path());
    assert!(s.contains("east: GRANTED pin"), "{s}");

    // The use reaches the registry, which tells the other gate.
    let deadline = Instant::now() + WAIT;
    loop {
        let left: Option<i64> = db(reg.path())
            .query_row("SELECT uses_left FROM visitor_pass", [], |r| r.get(0))
            .unwrap();
        if left == Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the registry still counts {left:?} uses"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_synced(reg.path(), b.path(), &gates[1].1);
    let s = pin_at(&gates[1].0, b.path());
    assert!(s.contains("east: DENIED pin"), "{s}");
    same_register(reg.path(), a.path());
    same_register(reg.path(), b.path());
}

/// Sixty changes committed one after another at the registry each reach the
/// gate (a real daemon) and leave both registers equal. The time each took
/// is printed for BENCHMARKS.md (the 2 s p99 goal of issue 17) but not
/// asserted: a test must not depend on the machine's speed.
#[test]
fn sixty_changes_at_the_registry_each_reach_a_gate_and_their_latency_is_reported() {
    use gatehouse::domain::ResidentRole as Role;
    use gatehouse::store::people::{self, NewPerson};
    let broker = Mosquitto::start();
    let reg = Scratch::new("site-registry-p");
    let gate = Scratch::new("site-gate-p");
    let (reg_config, _registry, key) =
        start_registry(reg.path(), &broker.url(), &[("north", gate.path())]);
    let gate_config = gate_config(gate.path(), &broker.url(), &key);
    let _north = Running::start(&gate_config, gate.path());
    let mut config = gatehouse::config::Config::load(&reg_config).unwrap();
    config.set_data_dir(reg.path().to_path_buf());
    let registry = gatehouse::store::Store::open_config(&config).unwrap();
    let gate_db = db(gate.path());
    let mut latencies = Vec::new();
    for i in 0..60 {
        let started = Instant::now();
        people::add(
            &registry,
            "test",
            &NewPerson::new(&format!("住户{i}"), Role::Owner),
        )
        .unwrap();
        let seq = site_log::head(registry.conn()).unwrap();
        while site_log::applied_seq(&gate_db).unwrap() < seq {
            assert!(started.elapsed() < WAIT, "entry {seq} not applied");
            std::thread::sleep(Duration::from_millis(2));
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let p =
        |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).min(latencies.len()) - 1];
    println!(
        "registry → gate applied: p50 {:?}, p99 {:?}, max {:?}",
        p(0.5),
        p(0.99),
        p(1.0)
    );
    assert_eq!(latencies.len(), 60, "every change was applied at the gate");
    same_register(reg.path(), gate.path());
}
