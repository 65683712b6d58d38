//! Liveness cost (criterion): both MiniFASNet models on one face (crop,
//! resize, two ONNX runs, fusion), each model alone, and four faces of one
//! frame in one batch per model. Goal: both models ≤ 6 ms per face on one core.
//! Besides criterion's wall-clock figures, it prints one JSON line with the
//! CPU time of the calling thread per face (ONNX Runtime runs with one
//! intra-op thread, in the caller): on a shared, loaded machine wall time
//! counts the time waiting for a core, CPU time only the work.
//!
//! Run: `ORT_DYLIB_PATH=$PWD/.cache/onnxruntime/libonnxruntime.so cargo bench --bench face_liveness`
//! (models are copied from `../shared/models`, or `GATEHOUSE_SHARED`, into a
//! temporary folder; ONNX Runtime runs with one thread, as on a gate).

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};

use gatehouse::config::Config;
use gatehouse::face::liveness::{Liveness, LivenessModel};
use gatehouse::face::{photo, FaceEngine};
use gatehouse::models::{self, Manifest};

fn shared() -> PathBuf {
    std::env::var_os("GATEHOUSE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

fn setup() -> (Config, PathBuf) {
    let dir = std::env::temp_dir().join(format!("gatehouse-bench-liveness-{}", std::process::id()));
    let mut config = Config::demo();
    config.set_data_dir(dir.clone());
    config.models.threads = 1;
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        config.models.onnxruntime = Some(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/onnxruntime/libonnxruntime.so"),
        );
    }
    let manifest = Manifest::builtin();
    let mut names = vec![
        config.models.detector.clone(),
        config.models.embedder.clone(),
    ];
    names.extend(config.models.liveness.iter().cloned());
    for name in &names {
        models::fetch(
            manifest.get(name).unwrap(),
            &config.models_dir(),
            Some(&shared().join("models")),
        )
        .expect("fetch models from the mirror");
    }
    (config, dir)
}

fn benches(c: &mut Criterion) {
    let (config, dir) = setup();
    let mut engine = FaceEngine::load(&config).expect("load models");
    let frame =
        photo::load(&shared().join("faces/liveness/nuaa/img/live_0001_0001_00_00_01_0.jpg"))
            .unwrap();
    let face = engine.detector.detect(&frame).unwrap()[0].bbox;
    let mut liveness = Liveness::load(&config).expect("load liveness models");

    c.bench_function("liveness/both_models_one_face", |b| {
        b.iter(|| black_box(liveness.score_one(&frame, &face).unwrap()))
    });
    for name in config.models.liveness.clone() {
        let mut one = config.clone();
        one.models.liveness = vec![name.clone()];
        let mut single = Liveness::load(&one).unwrap();
        c.bench_function(&format!("liveness/{name}_one_face"), |b| {
            b.iter(|| black_box(single.score_one(&frame, &face).unwrap()))
        });
    }
    let four = [face; 4];
    c.bench_function("liveness/both_models_four_faces_batched", |b| {
        b.iter(|| black_box(liveness.score(&frame, &four).unwrap()))
    });

    // The same two models as published (no `onnx::rewrite`), for the A/B.
    let manifest = Manifest::builtin();
    let mut published: Vec<LivenessModel> = config
        .models
        .liveness
        .iter()
        .map(|name| {
            let mut spec = manifest.get(name).unwrap().clone();
            spec.rewrites.clear();
            let path = models::installed_path(&spec, &config.models_dir()).unwrap();
            LivenessModel::load(&spec, &path, 1).unwrap()
        })
        .collect();
    c.bench_function("liveness/both_models_one_face_published_graphs", |b| {
        b.iter(|| {
            for m in published.iter_mut() {
                black_box(m.score(&frame, &[face]).unwrap());
            }
        })
    });

    // CPU time per face, rewritten and published graphs alternately in
    // rounds, so both see the same machine.
    let (rounds, runs) = (10, 40);
    let (mut one, mut batched, mut before) = (0.0, 0.0, 0.0);
    for _ in 0..rounds {
        let started = thread_cpu_ms();
        for _ in 0..runs {
            black_box(liveness.score_one(&frame, &face).unwrap());
        }
        one += thread_cpu_ms() - started;
        let started = thread_cpu_ms();
        for _ in 0..runs {
            for m in published.iter_mut() {
                black_box(m.score(&frame, &[face]).unwrap());
            }
        }
        before += thread_cpu_ms() - started;
        let started = thread_cpu_ms();
        for _ in 0..runs {
            black_box(liveness.score(&frame, &four).unwrap());
        }
        batched += (thread_cpu_ms() - started) / 4.0;
    }
    let per = |total: f64| (total / (rounds * runs) as f64 * 1000.0).round() / 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "cpu_ms_per_face_both_models": per(one),
            "cpu_ms_per_face_both_models_batch_of_4": per(batched),
            "cpu_ms_per_face_both_models_published_graphs": per(before),
            "runs": rounds * runs,
        })
    );
    drop(engine);
    let _ = std::fs::remove_dir_all(dir);
}

/// CPU time this thread has used, in milliseconds.
fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1e6
}

criterion_group! {
    name = liveness;
    config = Criterion::default().sample_size(50);
    targets = benches
}
criterion_main!(liveness);
