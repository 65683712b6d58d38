//! Uplink benchmarks (BENCHMARKS.md):
//! - `outbox_append`: one access event appended to the log and queued in the
//!   outbox (one durable SQLite transaction, synchronous=FULL, on the disk
//!   under target/, not tmpfs). Goal < 1 ms. `outbox_append_without_fsync`
//!   is the same with synchronous=NORMAL, to show what the disk's fsync costs.
//! - `event_write_burst`: the daemon's event writer (`daemon::Core`, group
//!   commit) taking a burst of 64 events from 4 threads at once (gates and
//!   cameras deciding together); reported per event. Same disk, same
//!   `synchronous=FULL`: every event is durable when its caller hears back.
//! - `drain`: 5,000 queued events published with QoS 1 to a local mosquitto
//!   (with a QoS 1 subscriber standing in for the station) and deleted from
//!   the outbox on PUBACK. Goal ≥ 2,000 events/s.
//!
//! `cargo bench --bench uplink`

#[path = "../tests/common/mod.rs"]
pub mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gatehouse::config::Config;
use gatehouse::store::events::{self, AccessResult, EventKind, NewEvent};
use gatehouse::store::{outbox, Store};
use gatehouse::uplink::{self, NoGates, Stopped, UplinkSettings};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client, MqttOptions};

const DRAIN_EVENTS: usize = 5_000;

fn swipe(i: usize) -> NewEvent {
    let mut e = NewEvent::now(EventKind::Access, true);
    e.gate = Some("east".parse().unwrap());
    e.direction = Some("in".into());
    e.credential_kind = Some("card".into());
    e.credential_masked = Some(format!("10:***{:02}", i % 100));
    e.result = Some(AccessResult::Granted);
    e.subject_id = Some(gatehouse::domain::ResidentId(1 + (i % 500) as i64));
    e.subject_name = Some("张*".into());
    e
}

/// A data directory on the real disk (fsync costs what it costs on a device).
fn data_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn outbox_append(c: &mut Criterion) {
    let dir = data_dir("append");
    let store = Store::open(&dir.join("gatehouse.db"), &dir).unwrap();
    let mut i = 0;
    c.bench_function("outbox_append", |b| {
        b.iter(|| {
            i += 1;
            events::append(store.conn(), &swipe(i)).unwrap()
        })
    });
    // The same append without the per-commit fsync (WAL, synchronous=NORMAL):
    // separates the cost of SQLite and the hash chain from the cost of the disk.
    store
        .conn()
        .pragma_update(None, "synchronous", "NORMAL")
        .unwrap();
    c.bench_function("outbox_append_without_fsync", |b| {
        b.iter(|| {
            i += 1;
            events::append(store.conn(), &swipe(i)).unwrap()
        })
    });
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Events per burst and writer threads in `event_write_burst`.
const BURST: usize = 64;
const WRITERS: usize = 4;

fn event_write_burst(c: &mut Criterion) {
    use gatehouse::daemon::{clock::Clock, Core};
    let dir = data_dir("burst");
    let store = Store::open(&dir.join("gatehouse.db"), &dir).unwrap();
    let core = Arc::new(Core::new(store, 480, Clock::with_synced(Some(true))).unwrap());
    let mut group = c.benchmark_group("event_write_burst");
    group.throughput(Throughput::Elements(BURST as u64));
    group.sample_size(20);
    group.bench_function("64_events_4_writers", |b| {
        b.iter(|| {
            let threads: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let core = core.clone();
                    std::thread::spawn(move || {
                        for i in 0..BURST / WRITERS {
                            core.record_blocking(swipe(w * 1000 + i), None).unwrap();
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        })
    });
    group.finish();
    drop(core);
    let _ = std::fs::remove_dir_all(&dir);
}

fn drain(c: &mut Criterion) {
    let broker = common::Mosquitto::start();
    let dir = data_dir("drain");
    let mut config = Config::demo();
    config.set_data_dir(dir.clone());
    let store = Store::open_config(&config).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // The station: one QoS 1 subscriber to every event of the site.
    let mut o = MqttOptions::new("bench-station", "127.0.0.1", broker.port);
    o.set_keep_alive(Duration::from_secs(30));
    let (station, mut connection) = Client::new(o, 1000);
    station
        .subscribe("gatehouse/v1/+/+/event/#", QoS::AtLeastOnce)
        .unwrap();
    std::thread::spawn(move || for _ in connection.iter() {});

    let mut group = c.benchmark_group("uplink");
    group.throughput(Throughput::Elements(DRAIN_EVENTS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function("drain_5000_events", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // Fill the outbox (setup, not timed; this connection skips fsync).
                store
                    .conn()
                    .pragma_update(None, "synchronous", "OFF")
                    .unwrap();
                for i in 0..DRAIN_EVENTS {
                    events::append(store.conn(), &swipe(i)).unwrap();
                }
                store
                    .conn()
                    .pragma_update(None, "synchronous", "FULL")
                    .unwrap();
                let mut settings =
                    UplinkSettings::from_config(&config, Some(&broker.url())).unwrap();
                settings.exit_when_drained = true;
                let start = Instant::now();
                let stopped = runtime.block_on(async {
                    let (_keep, stop) = tokio::sync::watch::channel(false);
                    uplink::run(settings, Arc::new(NoGates), Default::default(), stop).await
                });
                total += start.elapsed();
                assert_eq!(stopped.unwrap(), Stopped::Drained);
                assert_eq!(outbox::depth(store.conn()).unwrap().events, 0);
            }
            total
        })
    });
    group.finish();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, outbox_append, event_write_burst, drain);
criterion_main!(benches);
