//! From the last Wiegand edge to the relay command, with a 50,000-person
//! register loaded from a real SQLite file.
//!
//! * `wiegand_to_relay/last_edge`: the last edge of a 26-bit frame → frame
//!   closed → card decoded → decision → access state → door → relay write
//!   (the same functions the gate task calls, in the same order). The 25 ms
//!   quiet gap that ends a Wiegand frame is protocol time and not included.
//! * `wiegand_to_relay/whole_frame`: all 52 edges of the frame, then the same.
//! * Percentiles (p50/p99/max) of the first, and of a full round trip through
//!   a running daemon's gate task (`GateHandle::present` → relay level
//!   change), are printed before criterion's runs.
//!
//! Run: `cargo bench --bench decision`.

use std::time::{Duration, Instant};

use criterion::{black_box, Criterion};
use gatehouse::access::{self, AccessState, Credential, GateContext, Now, Register};
use gatehouse::config::Config;
use gatehouse::daemon::{Daemon, DaemonOptions};
use gatehouse::door::{Door, DoorAction, DoorConfig, Relay, ReleaseCause};
use gatehouse::hw::simulated::SimBoard;
use gatehouse::hw::{Board, Edge, Level};
use gatehouse::store::{snapshot, Store};
use gatehouse::wiegand::{format, pulse_train, Line, PulseTiming, Reader, ReaderEvent};
use rusqlite::params;

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
/// binary without it, as a quick check on a small register.
fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn persons() -> i64 {
    if full_run() {
        50_000
    } else {
        2_000
    }
}

struct Fixture {
    dir: std::path::PathBuf,
    config: Config,
    register: Register,
    trains: Vec<Vec<(Line, Level, Duration)>>,
}

fn fixture() -> Fixture {
    let dir = std::env::temp_dir().join(format!("gatehouse-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let persons = persons();
    let mut config = Config::demo();
    config.set_data_dir(dir.clone());
    let mut store = Store::open_config(&config).unwrap();
    let t = Instant::now();
    {
        let tx = store.conn_mut().transaction().unwrap();
        {
            let mut person = tx
                .prepare(
                    "INSERT INTO person (id, name, role, status, valid_until, created_at, created_by, updated_at, updated_by)
                     VALUES (?1, ?2, ?3, 'active', ?4, 'x', 'bench', 'x', 'bench')",
                )
                .unwrap();
            let mut card = tx
                .prepare("INSERT INTO card (card_key, format, person_id, created_at, created_by) VALUES (?1, 'wiegand26', ?2, 'x', 'bench')")
                .unwrap();
            for i in 1..=persons {
                let role = if i % 10 == 0 { "tenant" } else { "owner" };
                let until = (i % 10 == 0).then_some("2999-12-31");
                person
                    .execute(params![i, format!("住户{i}"), role, until])
                    .unwrap();
                card.execute(params![format!("{}:{}", i / 65536, i % 65536), i])
                    .unwrap();
            }
        }
        // Tenants may use every gate, every day, around the clock.
        tx.execute_batch(
            "INSERT INTO access_group (id, name) VALUES (1, 'tenants');
             INSERT INTO access_group_member (group_id, role) VALUES (1, 'tenant');
             INSERT INTO access_group_window (group_id, gate, days, start_minute, end_minute)
               VALUES (1, 'east', 127, 0, 1440), (1, 'east-out', 127, 0, 1440), (1, 'car-in', 127, 0, 1440);",
        )
        .unwrap();
        tx.commit().unwrap();
    }
    eprintln!("seeded {persons} persons and cards in {:?}", t.elapsed());
    let t = Instant::now();
    let (register, warnings) = snapshot::load(store.conn(), 480).unwrap();
    assert!(warnings.is_empty());
    eprintln!(
        "register snapshot of {} persons loaded in {:?}",
        register.person_count(),
        t.elapsed()
    );
    // 1,000 different cards, jittered ±50 %.
    let trains = (0..1000u64)
        .map(|k| {
            let i = 1 + (k * 49_999) % persons as u64;
            let card = format!("{}:{}", i / 65536, i % 65536).parse().unwrap();
            pulse_train(
                &format::encode_card(&card, None).unwrap(),
                PulseTiming::TYPICAL,
                0.5,
                k,
            )
        })
        .collect();
    Fixture {
        dir,
        config,
        register,
        trains,
    }
}

/// One gate's pure pipeline, as the gate task runs it.
struct Pipeline {
    reader: Reader,
    state: AccessState,
    ctx: GateContext,
    door: Door,
    relay: Relay,
    base: Duration,
}

impl Pipeline {
    fn new(config: &Config, board: &SimBoard) -> Pipeline {
        let gate = &config.gates[0];
        Pipeline {
            reader: Reader::new(),
            state: AccessState::new(),
            ctx: GateContext::from_config(gate, &config.access),
            door: Door::new(DoorConfig::from_gate(gate)),
            relay: Relay::new(
                board
                    .output(gate.relay_pin, Relay::locked_level(gate))
                    .unwrap(),
                gate,
            ),
            base: Duration::ZERO,
        }
    }

    fn edges(&mut self, train: &[(Line, Level, Duration)]) -> Vec<ReaderEvent> {
        let mut out = Vec::new();
        for (line, level, at) in train {
            out.extend(self.reader.edge(
                *line,
                Edge {
                    level: *level,
                    at: self.base + *at,
                },
            ));
        }
        out
    }

    /// Frame end → decision → relay. Returns whether the relay moved.
    fn close_and_decide(&mut self, register: &Register, now: &Now) -> bool {
        let events = self.reader.finish(self.base + Duration::from_millis(100));
        self.base += Duration::from_secs(1);
        let mut moved = false;
        for e in events {
            if let ReaderEvent::Card { card, format } = e {
                let cred = Credential::Card(gatehouse::domain::CardRead {
                    number: card,
                    format,
                });
                let d = access::decide(register, &self.state, &cred, &self.ctx, now);
                self.state.apply(&d, &cred, &self.ctx, now);
                if d.is_granted() {
                    for a in self.door.release(ReleaseCause::Grant, now.mono) {
                        if a == DoorAction::Release {
                            self.relay.set_released(true).unwrap();
                            moved = true;
                        }
                    }
                }
            }
        }
        moved
    }

    /// Relocks (untimed) so the next grant moves the relay again.
    fn relock(&mut self, now: &Now) {
        for a in self.door.tick(now.mono + Duration::from_secs(60)) {
            if a == DoorAction::Lock {
                self.relay.lock().unwrap();
            }
        }
    }
}

fn now() -> Now {
    Now {
        wall: chrono::Utc::now(),
        mono: Duration::from_secs(1),
        clock_synced: true,
    }
}

fn percentiles(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let p = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    eprintln!(
        "{name}: n={} p50={:?} p99={:?} max={:?}",
        samples.len(),
        p(0.50),
        p(0.99),
        samples[samples.len() - 1]
    );
}

fn pure_percentiles(f: &Fixture) {
    let board = SimBoard::new();
    let mut p = Pipeline::new(&f.config, &board);
    let now = now();
    let mut samples = Vec::with_capacity(20_000);
    for k in 0..if full_run() { 20_000 } else { 200 } {
        let train = &f.trains[k % f.trains.len()];
        let (last, rest) = train.split_last().unwrap();
        p.edges(rest);
        let t = Instant::now();
        p.edges(std::slice::from_ref(last));
        let moved = p.close_and_decide(&f.register, &now);
        samples.push(t.elapsed());
        assert!(moved);
        p.relock(&now);
    }
    percentiles(
        &format!(
            "last Wiegand edge -> relay (pure pipeline, {} persons)",
            f.register.person_count()
        ),
        samples,
    );
}

fn daemon_percentiles(f: &Fixture) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut config = f.config.clone();
        config.gates[0].unlock_ms = 1;
        let daemon = Daemon::start_with(
            &config,
            DaemonOptions {
                assume_clock_synced: Some(true),
            },
        )
        .await
        .unwrap();
        let h = daemon.handle();
        let east = config.gates[0].id.clone();
        let relay = config.gates[0].relay_pin;
        let board = h.simulator(&east).unwrap();
        let mut samples = Vec::new();
        for k in 0..if full_run() { 500i64 } else { 20 } {
            let i = 1 + (k * 7919) % persons();
            let card = format!("{}:{}", i / 65536, i % 65536)
                .parse::<gatehouse::domain::CardNumber>()
                .unwrap();
            let before = board.output_history(relay).len();
            let sent = board.now();
            let p = h
                .present(&east, Credential::Card(card.into()))
                .await
                .unwrap();
            assert!(p.decision.is_granted());
            let history = board.output_history(relay);
            let (at, level) = history[before];
            assert_eq!(level, Level::High);
            samples.push(at - sent);
            // Let it relock (unlock_ms = 1) so the next grant moves the relay again.
            let deadline = Instant::now() + Duration::from_secs(5);
            while board.output_level(relay) != Some(Level::Low) {
                assert!(Instant::now() < deadline, "relay did not relock");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        percentiles(
            &format!(
                "GateHandle::present -> relay (gate task, {} persons)",
                f.register.person_count()
            ),
            samples,
        );
        daemon.shutdown(Duration::from_secs(2)).await.unwrap();
    });
}

fn bench(c: &mut Criterion, f: &Fixture) {
    let board = SimBoard::new();
    let mut p = Pipeline::new(&f.config, &board);
    let now = now();
    let mut group = c.benchmark_group("wiegand_to_relay");
    let mut k = 0usize;
    group.bench_function("last_edge", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let train = &f.trains[k % f.trains.len()];
                k += 1;
                let (last, rest) = train.split_last().unwrap();
                p.edges(rest);
                let t = Instant::now();
                p.edges(std::slice::from_ref(last));
                black_box(p.close_and_decide(&f.register, &now));
                total += t.elapsed();
                p.relock(&now);
            }
            total
        })
    });
    group.bench_function("whole_frame", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let train = &f.trains[k % f.trains.len()];
                k += 1;
                let t = Instant::now();
                p.edges(train);
                black_box(p.close_and_decide(&f.register, &now));
                total += t.elapsed();
                p.relock(&now);
            }
            total
        })
    });
    group.finish();
    let state = AccessState::new();
    let ctx = GateContext::from_config(&f.config.gates[0], &f.config.access);
    let cred = Credential::Card(
        "0:4242"
            .parse::<gatehouse::domain::CardNumber>()
            .unwrap()
            .into(),
    );
    c.bench_function("decide/known_card_50k", |b| {
        b.iter(|| black_box(access::decide(&f.register, &state, &cred, &ctx, &now)))
    });
}

fn main() {
    let f = fixture();
    pure_percentiles(&f);
    daemon_percentiles(&f);
    if full_run() {
        let mut c = Criterion::default().configure_from_args();
        bench(&mut c, &f);
        c.final_summary();
    }
    let _ = std::fs::remove_dir_all(&f.dir);
}
