//! Site register (issue 17): the registry's cost per change.
//!
//! One change is a resident added (`people::add`, one transaction,
//! `synchronous=FULL` on the real disk under the target directory). At the
//! registry it costs, beyond the same change on a standalone gateway:
//! - `commit_registry` − `commit_standalone`: the capture triggers and the
//!   seal of the entry (canonical JSON of the new rows) inside the change's
//!   own transaction;
//! - `sign_entry`: Ed25519 over the entry's canonical body (`wire::sign`);
//!   `sign_pending_one`: finding the unsigned entry, signing it and storing
//!   the signature (one more durable write, what the publisher does);
//! - publishing: the signed entry as its wire message, QoS 1 to a local
//!   mosquitto, until the broker's PUBACK (per entry, from bursts of
//!   `BURST`; a subscriber stands in for the gates).
//!
//! `cargo bench --bench site_change`

#[path = "../tests/common/mod.rs"]
pub mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ed25519_dalek::SigningKey;
use gatehouse::config::{Config, SiteRole};
use gatehouse::domain::ResidentRole;
use gatehouse::site::{registry, wire};
use gatehouse::store::people::{self, NewPerson};
use gatehouse::store::{site_log, Store};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client, Event, MqttOptions};

const BURST: usize = 2_000;

fn data_dir(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench-site-change-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn store(dir: &Path, role: SiteRole) -> Store {
    let mut config = Config::demo();
    config.set_data_dir(dir.to_path_buf());
    config.store.device_key = None;
    config.site.id = "bench".into();
    config.site.role = role;
    Store::open_config(&config).unwrap()
}

fn add(store: &Store, i: usize) {
    people::add(
        store,
        "bench",
        &NewPerson::new(&format!("住户{i}"), ResidentRole::Tenant),
    )
    .unwrap();
}

fn commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("site_change");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(15));
    for (name, role) in [
        ("commit_standalone", SiteRole::Standalone),
        ("commit_registry", SiteRole::Registry),
    ] {
        let dir = data_dir(name);
        let store = store(&dir, role);
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                add(&store, i)
            })
        });
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    let dir = data_dir("sign");
    let store = store(&dir, SiteRole::Registry);
    let key = SigningKey::from_bytes(&[7; 32]);
    add(&store, 0);
    let body = site_log::unsigned(store.conn()).unwrap().remove(0).body;
    println!(
        "one resident's entry: {} bytes of canonical JSON",
        body.len()
    );
    group.bench_function("sign_entry", |b| {
        b.iter(|| wire::sign(&key, black_box(&body)))
    });
    let mut i = 0;
    group.bench_function("sign_pending_one", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                i += 1;
                add(&store, i);
                let t = Instant::now();
                registry::sign_pending(store.conn(), &key).unwrap();
                total += t.elapsed();
            }
            total
        })
    });
    group.finish();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Signed entries published QoS 1, timed until the last PUBACK.
fn publish(c: &mut Criterion) {
    let broker = common::Mosquitto::start();
    let dir = data_dir("publish");
    let store = store(&dir, SiteRole::Registry);
    let key = SigningKey::from_bytes(&[7; 32]);
    for i in 0..BURST {
        add(&store, i);
    }
    registry::sign_pending(store.conn(), &key).unwrap();
    let entries = site_log::entries_after(store.conn(), 0, BURST).unwrap();
    assert_eq!(entries.len(), BURST);
    let messages: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| wire::entry_message(&e.body, e.sig.as_deref().unwrap()))
        .collect();
    let topic = wire::Topics::new("bench").log();

    // A gate's stand-in, subscribed QoS 1, so the broker forwards every entry.
    let mut o = MqttOptions::new("bench-gate", "127.0.0.1", broker.port);
    o.set_keep_alive(Duration::from_secs(30));
    let (gate, mut gate_conn) = Client::new(o, 100);
    gate.subscribe(&topic, QoS::AtLeastOnce).unwrap();
    std::thread::spawn(move || for _ in gate_conn.iter() {});

    let mut o = MqttOptions::new("bench-registry", "127.0.0.1", broker.port);
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut connection) = Client::new(o, BURST + 10);
    let mut group = c.benchmark_group("site_change");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(criterion::Throughput::Elements(BURST as u64));
    group.bench_function("publish_2000_entries_qos1", |b| {
        b.iter(|| {
            for m in &messages {
                client
                    .publish(topic.clone(), QoS::AtLeastOnce, false, m.clone())
                    .unwrap();
            }
            let mut acked = 0;
            for event in connection.iter() {
                if let Ok(Event::Incoming(Packet::PubAck(_))) = event {
                    acked += 1;
                    if acked == BURST {
                        break;
                    }
                }
            }
        })
    });
    group.finish();
    let _ = client.disconnect();
    let _ = gate.disconnect();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, commit, publish);
criterion_main!(benches);
