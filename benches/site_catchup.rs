//! Site register (issue 17): catch-up of a gate from a 50,000-person snapshot.
//!
//! A registry database is seeded with the register benches' 50,000 residents
//! (address, phone, card; every third a plate) — and, in the second case, one
//! 512-d face template each — then its log is compacted, so a new gate can
//! only catch up from the snapshot. Measured, each case `RUNS` times:
//! - the parts, in process: the registry builds the snapshot (`site_log::snapshot`:
//!   every row as canonical JSON) and signs it; the gate opens it
//!   (`wire::open`: parse, canonical form, Ed25519 verify) and applies it
//!   (`site_log::apply_snapshot`, one transaction, `synchronous=FULL`), with the
//!   gate side's peak RSS growth;
//! - end to end: the real registry and gate tasks (`site::registry::run`,
//!   `site::gate::run`) on a local mosquitto, from the gate's start on an
//!   empty database until its applied entry equals the registry's head
//!   (request, snapshot, sign, MQTT transfer, verify, apply).
//!
//! Databases live on the real disk under the target directory.
//! `cargo bench --bench site_catchup` (`-- --no-faces` for the first case only).

#[path = "../tests/common/mod.rs"]
pub mod common;
#[path = "support/register_csv.rs"]
mod register_csv;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use gatehouse::config::{Config, SiteRole};
use gatehouse::enrol::import::{import_residents, ImportOptions};
use gatehouse::site::{self, wire, Host, SiteTiming};
use gatehouse::store::events::{EventKind, EventRecord, NewEvent};
use gatehouse::store::faces::{self, NewFace};
use gatehouse::store::{site_log, Store, Writer};

const SITE: &str = "bench";
const RUNS: usize = 3;
const DIM: usize = 512;

fn data_dir(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench-site-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(dir: &Path, role: SiteRole, gateway: &str) -> Config {
    let mut config = Config::demo();
    config.set_data_dir(dir.to_path_buf());
    config.store.device_key = None;
    config.site.id = SITE.into();
    config.site.gateway_id = gateway.into();
    config.site.role = role;
    config
}

/// The registry's database: 50,000 residents, with a face each when `with_faces`,
/// its log compacted to the head (a new gate needs the snapshot).
fn seed_registry(dir: &Path, with_faces: bool) -> Store {
    let started = Instant::now();
    let mut store = Store::open_config(&config(dir, SiteRole::Registry, "office")).unwrap();
    // Seeding is not measured: skip the per-commit fsync while it runs.
    store
        .conn()
        .pragma_update(None, "synchronous", "OFF")
        .unwrap();
    let report = import_residents(
        &store,
        "bench",
        "bench.csv",
        &register_csv::csv(),
        ImportOptions::default(),
        &mut |_, _| {},
    )
    .unwrap();
    assert!(report.committed && report.added == register_csv::PEOPLE as usize);
    if with_faces {
        let secret = gatehouse::secret::DeviceSecret::load_or_create(dir).unwrap();
        let ids: Vec<i64> = store
            .conn()
            .prepare("SELECT id FROM person ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for id in ids {
            let embedding: Vec<f32> = (0..DIM)
                .map(|k| (((id as usize * 31 + k * 7) % 97) as f32 - 48.0) / 1100.0)
                .collect();
            faces::enroll(
                store.conn_mut(),
                &secret,
                gatehouse::domain::ResidentId(id),
                &[NewFace {
                    model: "arcface-r100",
                    embedding: &embedding,
                    crop: &[0u8; 64],
                    eye_px: 60.0,
                    sharpness: 200.0,
                }],
                "bench",
            )
            .unwrap();
        }
    }
    site_log::seal_pending(store.conn()).unwrap();
    site_log::compact(store.conn(), 0).unwrap();
    store
        .conn()
        .pragma_update(None, "synchronous", "FULL")
        .unwrap();
    println!(
        "  seeded the registry ({} faces) in {:.1} s",
        if with_faces { "with" } else { "no" },
        started.elapsed().as_secs_f64()
    );
    store
}

fn gate_store(dir: &Path) -> Store {
    Store::open_config(&config(dir, SiteRole::Gate, "north")).unwrap()
}

/// Peak RSS since the last reset, in MiB (`VmHWM`).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn current_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Resets `VmHWM` to the current RSS (Linux: `5` to clear_refs); false
/// when the kernel did not (then no peak is reported).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
        && peak_rss_mib() <= current_rss_mib() + 1.0
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The parts, in process, `RUNS` times.
fn parts(registry: &Store, key: &SigningKey, tag: &str) {
    let (mut build, mut sign, mut open, mut apply) = (vec![], vec![], vec![], vec![]);
    let mut size = 0;
    let mut peak: Option<f64> = Some(0.0);
    for run in 0..RUNS {
        let t = Instant::now();
        let (_, body) = site_log::snapshot(registry.conn()).unwrap();
        build.push(t.elapsed());
        size = body.len();
        let t = Instant::now();
        let sig = wire::sign(key, &body);
        sign.push(t.elapsed());
        let message = wire::snapshot_message(&body, &sig);
        drop(body);

        let dir = data_dir(&format!("{tag}-gate-{run}"));
        let gate = gate_store(&dir);
        let reset = reset_peak_rss();
        let before = current_rss_mib();
        let t = Instant::now();
        let incoming = wire::open(&message, SITE, &key.verifying_key()).unwrap();
        open.push(t.elapsed());
        let wire::Incoming::Snapshot(snapshot) = incoming else {
            panic!("not a snapshot");
        };
        let t = Instant::now();
        site_log::apply_snapshot(gate.conn(), &snapshot).unwrap();
        apply.push(t.elapsed());
        drop(snapshot);
        peak = peak
            .filter(|_| reset)
            .map(|p| p.max(peak_rss_mib() - before));
        assert_eq!(
            site_log::register_hash(gate.conn()).unwrap(),
            site_log::register_hash(registry.conn()).unwrap()
        );
        drop(gate);
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "  snapshot: {:.1} MB of canonical JSON (message {:.1} MB)",
        size as f64 / 1e6,
        (size + 100) as f64 / 1e6
    );
    println!(
        "  registry: build {} · sign {}",
        secs(median(build)),
        secs(median(sign))
    );
    println!(
        "  gate: open (parse + verify) {} · apply (one transaction) {} · peak RSS growth {}",
        secs(median(open)),
        secs(median(apply)),
        peak.map_or_else(
            || "not measured (VmHWM not reset)".into(),
            |p| format!("{p:.0} MiB")
        )
    );
}

/// A host for the site tasks outside a daemon: a writer, and events stamped
/// with the wall clock (no subscribers).
struct BenchHost(Writer);

impl Host for BenchHost {
    fn writer(&self) -> Writer {
        self.0.clone()
    }
    fn event(&self, kind: EventKind) -> NewEvent {
        NewEvent::now(kind, true)
    }
    fn event_stored(&self, _: &EventRecord) {}
    // No access state here: the benchmark measures the register.
    fn site_shared(&self, _: &[site::shared::SiteItem]) {}
}

fn settings(role: SiteRole, gateway: &str, url: &str, key: Option<&SigningKey>) -> site::Settings {
    site::Settings {
        role,
        site: SITE.into(),
        gateway: gateway.into(),
        broker: url.parse().unwrap(),
        tls: None,
        registry_key: key.map(SigningKey::verifying_key),
        gate_keys: [("north".to_string(), gate_key().verifying_key())].into(),
        timing: SiteTiming::default(),
        catchup_batch: 1000,
    }
}

/// The gate's key for its reports, pinned at the registry.
fn gate_key() -> SigningKey {
    SigningKey::from_bytes(&[8; 32])
}

/// End to end over mosquitto, `RUNS` times (a fresh gate each time).
fn end_to_end(registry_dir: &Path, registry: Store, key: &SigningKey, tag: &str) -> Store {
    let broker = common::Mosquitto::start();
    let head = site_log::head(registry.conn()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let writer = Writer::new(registry);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let reg_task = rt.spawn(site::registry::run(
        Arc::new(BenchHost(writer.clone())),
        settings(SiteRole::Registry, "office", &broker.url(), None),
        key.clone(),
        stop_rx.clone(),
    ));
    let mut times = Vec::new();
    for run in 0..RUNS {
        let dir = data_dir(&format!("{tag}-e2e-{run}"));
        let gate = gate_store(&dir);
        let probe = rusqlite::Connection::open(dir.join("gatehouse.db")).unwrap();
        let (gate_stop_tx, gate_stop_rx) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let gate_task = rt.spawn(site::gate::run(
            Arc::new(BenchHost(Writer::new(gate))),
            settings(SiteRole::Gate, "north", &broker.url(), Some(key)),
            gate_key(),
            gate_stop_rx,
            Arc::new(tokio::sync::Notify::new()),
        ));
        while site_log::applied_seq(&probe).unwrap_or(0) < head {
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "the gate did not catch up"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        times.push(started.elapsed());
        let _ = gate_stop_tx.send(true);
        rt.block_on(gate_task).unwrap().unwrap();
        drop(probe);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = stop_tx.send(true);
    rt.block_on(reg_task).unwrap().unwrap();
    println!(
        "  end to end over mosquitto (gate start → applied = head {head}): median {} (runs: {})",
        secs(median(times.clone())),
        times
            .iter()
            .map(|d| secs(*d))
            .collect::<Vec<_>>()
            .join(", ")
    );
    drop(writer);
    Store::open_config(&config(registry_dir, SiteRole::Registry, "office")).unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; `cargo test --benches` does not: then only check it runs.
    if !args.iter().any(|a| a == "--bench") {
        println!("site_catchup: run with `cargo bench --bench site_catchup`");
        return;
    }
    let cases: &[bool] = if args.iter().any(|a| a == "--no-faces") {
        &[false]
    } else {
        &[false, true]
    };
    let key = SigningKey::from_bytes(&[7; 32]);
    for &with_faces in cases {
        let tag = if with_faces { "faces" } else { "plain" };
        println!(
            "50,000-person snapshot, {}:",
            if with_faces {
                "one 512-d face template each"
            } else {
                "no faces"
            }
        );
        let dir = data_dir(&format!("{tag}-registry"));
        let registry = seed_registry(&dir, with_faces);
        parts(&registry, &key, tag);
        let registry = end_to_end(&dir, registry, &key, tag);
        drop(registry);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
