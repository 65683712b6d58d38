//! Register benchmarks (issue 3): importing 50,000 residents (goal < 10 s)
//! and looking up a credential, card or plate, in a 50,000-person register
//! (goal < 50 µs). Run: `cargo bench --bench register`.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use gatehouse::domain::{CardNumber, Plate};
use gatehouse::enrol::import::{import_residents, ImportOptions};
use gatehouse::store::{cards, vehicles, Store};

#[path = "support/register_csv.rs"]
mod register_csv;
use register_csv::{csv, PEOPLE};

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-bench-{tag}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn import(store: &Store, bytes: &[u8]) {
    let report = import_residents(
        store,
        "bench",
        "bench.csv",
        bytes,
        ImportOptions::default(),
        &mut |_, _| {},
    )
    .unwrap();
    assert!(report.committed && report.added == PEOPLE as usize);
}

fn bench_import(c: &mut Criterion) {
    let bytes = csv();
    let mut group = c.benchmark_group("register");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function("import_50k_residents", |b| {
        b.iter_batched(
            || {
                let dir = scratch("import");
                let store = Store::open(&dir.join("g.db"), &dir).unwrap();
                (dir, store)
            },
            |(dir, store)| {
                import(&store, &bytes);
                drop(store);
                std::fs::remove_dir_all(dir).ok();
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn bench_lookup(c: &mut Criterion) {
    let dir = scratch("lookup");
    let store = Store::open(&dir.join("g.db"), &dir).unwrap();
    import(&store, &csv());
    let conn = store.conn();
    let mut i = 0u32;
    c.bench_function("lookup_card_in_50k", |b| {
        b.iter(|| {
            i = (i + 7919) % PEOPLE;
            let card = CardNumber::Formatted {
                facility: 1,
                number: u64::from(i),
            };
            black_box(cards::lookup(conn, &card).unwrap().unwrap())
        })
    });
    c.bench_function("lookup_plate_in_50k", |b| {
        b.iter(|| {
            i = (i + 7919 * 3) % PEOPLE;
            let plate: Plate = format!("川A{:05}", i - i % 3).parse().unwrap();
            black_box(vehicles::lookup(conn, &plate).unwrap().unwrap())
        })
    });
    c.bench_function("lookup_unknown_card_in_50k", |b| {
        let card = CardNumber::Formatted {
            facility: 9,
            number: 4242,
        };
        b.iter(|| black_box(cards::lookup(conn, &card).unwrap()))
    });
    // Wall time above suffers when other processes share the cores; CPU time
    // per lookup does not, so print it too.
    let n = 100_000u32;
    let start = thread_cpu_seconds();
    for k in 0..n {
        let card = CardNumber::Formatted {
            facility: 1,
            number: u64::from((k * 7919) % PEOPLE),
        };
        black_box(cards::lookup(conn, &card).unwrap());
    }
    let card_cpu = thread_cpu_seconds() - start;
    let start = thread_cpu_seconds();
    for k in 0..n {
        let i = (k * 7919) % PEOPLE;
        let plate: Plate = format!("川A{:05}", i - i % 3).parse().unwrap();
        black_box(vehicles::lookup(conn, &plate).unwrap());
    }
    let plate_cpu = thread_cpu_seconds() - start;
    println!(
        "CPU time per lookup in a 50k register ({n} lookups each): card {:.1} µs, plate {:.1} µs",
        card_cpu / f64::from(n) * 1e6,
        plate_cpu / f64::from(n) * 1e6
    );
    drop(store);
    std::fs::remove_dir_all(dir).ok();
}

/// This thread's user + system CPU time, from /proc (clock ticks of 10 ms).
fn thread_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

criterion_group!(benches, bench_import, bench_lookup);
criterion_main!(benches);
