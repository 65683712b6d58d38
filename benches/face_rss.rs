//! Peak resident memory of a gate process with 100,000 enrolled embeddings:
//! the detector and embedder loaded, the gallery read from a real SQLite
//! register through the same code the daemon uses, and one frame processed.
//! Prints one JSON line with VmHWM (peak RSS) before and after.
//!
//! Run: `ORT_DYLIB_PATH=$PWD/.cache/onnxruntime/libonnxruntime.so cargo bench --bench face_rss`

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rusqlite::params;

use gatehouse::config::Config;
use gatehouse::face::pipeline::FrameProcessor;
use gatehouse::face::{self, photo, FaceEngine, GalleryHandle, MatchPolicy};
use gatehouse::models::{self, Manifest};
use gatehouse::store::Store;

const FACES: usize = 100_000;
const PER_PERSON: usize = 4;

fn shared() -> PathBuf {
    std::env::var_os("GATEHOUSE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

fn status_kb(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Set in the child process that measures, pointing at the prepared data dir.
const CHILD_ENV: &str = "GATEHOUSE_BENCH_RSS_DIR";

fn config_for(dir: &Path) -> Config {
    let mut config = Config::demo();
    config.set_data_dir(dir.to_path_buf());
    config.models.threads = 1;
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        config.models.onnxruntime = Some(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/onnxruntime/libonnxruntime.so"),
        );
    }
    config
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        measure(&PathBuf::from(dir));
        return;
    }
    let dir = std::env::temp_dir().join(format!("gatehouse-bench-rss-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    prepare(&dir);
    // Measure in a fresh process, so building the test register does not count.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, &dir)
        .status()
        .expect("run the measuring process");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success());
}

fn prepare(dir: &Path) {
    let config = config_for(dir);
    let manifest = Manifest::builtin();
    for name in [&config.models.detector, &config.models.embedder] {
        models::fetch(
            manifest.get(name).unwrap(),
            &config.models_dir(),
            Some(&shared().join("models")),
        )
        .expect("fetch models from the mirror");
    }
    let spec = face::embedder_spec(&config).unwrap();
    let dim = spec.embedding_size.unwrap();

    // A register of 25,000 people with 4 faces each (random unit vectors; the
    // crop column holds a placeholder, the gallery never reads it).
    {
        let mut store = Store::open_config(&config).unwrap();
        let tx = store.conn_mut().transaction().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for p in 0..FACES.div_ceil(PER_PERSON) {
            tx.execute(
                "INSERT INTO person (name, role, created_at, created_by, updated_at, updated_by)
                 VALUES (?1, 'owner', 'x', 'bench', 'x', 'bench')",
                [format!("p{p}")],
            )
            .unwrap();
            let person = tx.last_insert_rowid();
            for _ in 0..PER_PERSON {
                let v: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                let blob: Vec<u8> = v.iter().flat_map(|x| (x / norm).to_le_bytes()).collect();
                tx.execute(
                    "INSERT INTO face (person_id, model, dim, embedding, crop, created_at, created_by)
                     VALUES (?1, ?2, ?3, ?4, x'00', 'x', 'bench')",
                    params![person, spec.name, dim as i64, blob],
                )
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
}

fn measure(dir: &Path) {
    let config = config_for(dir);
    let spec = face::embedder_spec(&config).unwrap();
    let dim = spec.embedding_size.unwrap();
    let base = status_kb("VmHWM:");
    let store = Store::open_config(&config).unwrap();
    let engine = FaceEngine::load(&config).unwrap();
    let after_models = status_kb("VmRSS:");
    let started = Instant::now();
    // Every enrolled face in memory (`combine = "best"`): the most rows a
    // register of 100,000 faces can need (the default centroid keeps one per
    // resident, here a quarter).
    let gallery = face::load_gallery(
        store.conn(),
        &spec.name,
        dim,
        gatehouse::domain::embedding::Combine::Best,
    )
    .unwrap();
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    let faces = gallery.len();
    let after_gallery = status_kb("VmRSS:");
    let policy = MatchPolicy::from_config(&config.face, &spec).unwrap();
    let handle = GalleryHandle::new(gallery);
    let mut processor = FrameProcessor::new(
        engine,
        policy,
        "east".parse().unwrap(),
        "bench".into(),
        handle.clone(),
    );
    let frame = photo::load(&shared().join("faces/resolution/obama-720p.jpg")).unwrap();
    for _ in 0..5 {
        processor.process(&frame, Instant::now()).unwrap();
    }
    let after_frames = status_kb("VmRSS:");
    // A reload builds the new gallery beside the old one: the true peak.
    let reload_started = Instant::now();
    handle.reload(store.conn()).unwrap();
    let reload_ms = reload_started.elapsed().as_secs_f64() * 1000.0;
    processor.process(&frame, Instant::now()).unwrap();
    let peak = status_kb("VmHWM:");
    let mb = |kb: u64| kb as f64 / 1024.0;
    println!(
        "{{\"faces\":{faces},\"dim\":{dim},\"peak_rss_mb\":{:.1},\"rss_at_start_mb\":{:.1},\"rss_after_models_mb\":{:.1},\"rss_after_gallery_mb\":{:.1},\"rss_after_frames_mb\":{:.1},\"gallery_load_ms\":{load_ms:.0},\"reload_ms\":{reload_ms:.0}}}",
        mb(peak),
        mb(base),
        mb(after_models),
        mb(after_gallery),
        mb(after_frames),
    );
}
