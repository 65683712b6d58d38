//! Face pipeline speed (criterion): detection at the camera width on 240p…1080p
//! photos, alignment + embedding of one face, 1:N search over 10,000 and
//! 100,000 random unit vectors, and the whole per-frame path.
//!
//! Run: `ORT_DYLIB_PATH=$PWD/.cache/onnxruntime/libonnxruntime.so cargo bench --bench face`
//! (models are copied from `../shared/models`, or `GATEHOUSE_SHARED`, into a
//! temporary folder; ONNX Runtime runs with one thread, as on a gate).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand::{Rng, SeedableRng};

use gatehouse::config::Config;
use gatehouse::domain::ResidentId;
use gatehouse::face::pipeline::FrameProcessor;
use gatehouse::face::{align, photo, FaceEngine, Gallery, GalleryHandle, MatchPolicy};
use gatehouse::models::{self, Manifest};

fn shared() -> PathBuf {
    std::env::var_os("GATEHOUSE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

fn setup() -> (Config, PathBuf) {
    let dir = std::env::temp_dir().join(format!("gatehouse-bench-face-{}", std::process::id()));
    let mut config = Config::demo();
    config.set_data_dir(dir.clone());
    config.models.threads = 1;
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        config.models.onnxruntime = Some(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/onnxruntime/libonnxruntime.so"),
        );
    }
    let manifest = Manifest::builtin();
    for name in [&config.models.detector, &config.models.embedder] {
        models::fetch(
            manifest.get(name).unwrap(),
            &config.models_dir(),
            Some(&shared().join("models")),
        )
        .expect("fetch models from the mirror");
    }
    (config, dir)
}

/// `n` random unit vectors of `dim` values, one resident each.
fn random_gallery(model: &str, dim: usize, n: usize, seed: u64) -> Gallery {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let rows = (0..n).map(|i| {
        let v: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        (ResidentId(i as i64 + 1), v)
    });
    Gallery::from_rows(model, dim, rows).unwrap()
}

fn benches(c: &mut Criterion) {
    let (config, dir) = setup();
    let mut engine = FaceEngine::load(&config).expect("load models");
    let faces = shared().join("faces");

    let mut group = c.benchmark_group("detect_320");
    for res in ["240p", "480p", "720p", "1080p"] {
        let frame = photo::load(&faces.join(format!("resolution/obama-{res}.jpg"))).unwrap();
        group.bench_function(BenchmarkId::from_parameter(res), |b| {
            b.iter(|| black_box(engine.detector.detect(&frame).unwrap()))
        });
    }
    group.finish();

    let frame = photo::load(&faces.join("resolution/obama-720p.jpg")).unwrap();
    let detection = engine.detector.detect(&frame).unwrap()[0];
    c.bench_function("align_embed/mobilefacenet", |b| {
        b.iter(|| {
            let crop = align::align(&frame, &detection.landmarks, 112, 112).unwrap();
            black_box(engine.embedder.embed(&crop).unwrap())
        })
    });
    // The second, per-face pass of `[face] refine_landmarks` (goal: ≤ 3 ms per face).
    c.bench_function("refine_landmarks/720p_one_face", |b| {
        b.iter(|| {
            let mut faces = vec![detection];
            engine.detector.refine(&frame, &mut faces, 320).unwrap();
            black_box(faces)
        })
    });
    c.bench_function("detect320_align_embed/720p_one_face", |b| {
        b.iter(|| {
            let d = engine.detector.detect(&frame).unwrap()[0];
            let crop = align::align(&frame, &d.landmarks, 112, 112).unwrap();
            black_box(engine.embedder.embed(&crop).unwrap())
        })
    });

    let mut group = c.benchmark_group("search_1n");
    for n in [10_000usize, 100_000] {
        let gallery = random_gallery("bench", 128, n, 7);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut v: Vec<f32> = (0..128).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| black_box(gallery.search(black_box(&v))))
        });
    }
    group.finish();

    // The whole per-frame path: detect, track, quality, align, embed, search
    // 10,000 residents, policy; one face in a 720p frame.
    let spec = gatehouse::face::embedder_spec(&config).unwrap();
    let policy = MatchPolicy::from_config(&config.face, &spec).unwrap();
    let gallery = random_gallery(&spec.name, 128, 10_000, 11);
    let mut processor = FrameProcessor::new(
        engine,
        policy,
        "east".parse().unwrap(),
        "bench".into(),
        GalleryHandle::new(gallery),
    );
    let start = Instant::now();
    let mut tick = 0u64;
    c.bench_function("frame/720p_one_face_10k_gallery", |b| {
        b.iter(|| {
            tick += 1;
            black_box(
                processor
                    .process(&frame, start + Duration::from_millis(100 * tick))
                    .unwrap(),
            )
        })
    });
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group! {
    name = face;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4));
    targets = benches
}
criterion_main!(face);
