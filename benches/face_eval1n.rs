//! `gatehouse face eval-1n` on 500+ photos, timed end to end (the release
//! binary: decoding, detection, quality, alignment, embedding, 10 splits,
//! the 101-point curve). `identities/` has only 17 photos, so this makes 30
//! variants of each (scale, mirror, rotation, brightness and contrast, blur,
//! JPEG quality), as a camera would see the same people. The variants are
//! near-copies of each other, so the accuracy figures of this run say little;
//! it measures speed. Prints the command's JSON line and the wall time.
//!
//! Run: `ORT_DYLIB_PATH=$PWD/.cache/onnxruntime/libonnxruntime.so cargo bench --bench face_eval1n`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use opencv::core::{Mat, Point2f, Scalar, Size, Vector, BORDER_REPLICATE};
use opencv::prelude::*;
use opencv::{core, imgcodecs, imgproc};

use gatehouse::config::Config;
use gatehouse::models::{self, Manifest};

/// Variants per photo: 30 × 17 = 510 photos.
const VARIANTS: usize = 30;

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
/// binary without it, as a quick check with two variants per photo.
fn quick() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

fn shared() -> PathBuf {
    std::env::var_os("GATEHOUSE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

/// SplitMix64: fixed variants on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

fn variant(src: &Mat, rng: &mut Rng) -> Mat {
    let (w, h) = (src.cols() as f32, src.rows() as f32);
    let scale = rng.range(0.45, 1.0);
    let angle = rng.range(-10.0, 10.0);
    let m = imgproc::get_rotation_matrix_2d(Point2f::new(w / 2.0, h / 2.0), angle, scale)
        .expect("rotation");
    let size = Size::new((w * scale as f32) as i32, (h * scale as f32) as i32);
    let mut m = m;
    // Keep the centre in the middle of the smaller canvas.
    *m.at_2d_mut::<f64>(0, 2).unwrap() -= f64::from(w) * (1.0 - scale) / 2.0;
    *m.at_2d_mut::<f64>(1, 2).unwrap() -= f64::from(h) * (1.0 - scale) / 2.0;
    let mut warped = Mat::default();
    imgproc::warp_affine(
        src,
        &mut warped,
        &m,
        size,
        imgproc::INTER_LINEAR,
        BORDER_REPLICATE,
        Scalar::default(),
    )
    .expect("warp");
    let mut out = Mat::default();
    warped
        .convert_to(&mut out, -1, rng.range(0.7, 1.3), rng.range(-30.0, 30.0))
        .expect("contrast");
    if rng.next() < 0.5 {
        let mut flipped = Mat::default();
        core::flip(&out, &mut flipped, 1).expect("flip");
        out = flipped;
    }
    if rng.next() < 0.3 {
        let mut blurred = Mat::default();
        imgproc::gaussian_blur(
            &out,
            &mut blurred,
            Size::new(5, 5),
            rng.range(0.5, 1.5),
            0.0,
            BORDER_REPLICATE,
        )
        .expect("blur");
        out = blurred;
    }
    out
}

/// Writes the variants and their labels file; returns (labels, root, photos).
fn prepare(dir: &Path, variants: usize) -> (PathBuf, PathBuf, usize) {
    let src_labels =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faces/identities.csv");
    let src_root = shared().join("faces/identities");
    let root = dir.join("photos");
    std::fs::create_dir_all(&root).unwrap();
    let mut labels = String::from("file,identity\n");
    let mut rng = Rng(500);
    let mut n = 0;
    let text = std::fs::read_to_string(&src_labels).unwrap();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("file,"))
    {
        let (file, identity) = line.split_once(',').unwrap();
        let src = imgcodecs::imread(
            src_root.join(file).to_str().unwrap(),
            imgcodecs::IMREAD_COLOR,
        )
        .unwrap();
        let stem = file.replace(['/', '.'], "_");
        for v in 0..variants {
            let img = variant(&src, &mut rng);
            let name = format!("{stem}_{v:02}.jpg");
            let quality = 60 + (rng.next() * 35.0) as i32;
            let params = Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, quality]);
            assert!(imgcodecs::imwrite(root.join(&name).to_str().unwrap(), &img, &params).unwrap());
            labels.push_str(&format!("{name},{identity}\n"));
            n += 1;
        }
    }
    let labels_path = dir.join("labels.csv");
    std::fs::write(&labels_path, labels).unwrap();
    (labels_path, root, n)
}

/// Set to a folder to keep the variants and their labels there (for more
/// `face eval-1n` runs on them) instead of a removed temporary folder.
const KEEP_ENV: &str = "GATEHOUSE_BENCH_EVAL1N_DIR";

fn main() {
    let keep = std::env::var_os(KEEP_ENV).map(PathBuf::from);
    let dir = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("gatehouse-bench-eval1n-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (labels, root, photos) = prepare(&dir, if quick() { 2 } else { VARIANTS });

    let mut config = Config::demo();
    config.set_data_dir(dir.join("data"));
    config.cameras.clear();
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
    let config_path = dir.join("gatehouse.toml");
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();

    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--config")
        .arg(&config_path)
        .args(["face", "eval-1n", "--labels"])
        .arg(&labels)
        .arg("--root")
        .arg(&root)
        .output()
        .expect("run gatehouse face eval-1n");
    let wall = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(
        out.status.success(),
        "{}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    for line in text
        .lines()
        .filter(|l| l.starts_with("photos:") || l.starts_with("at threshold"))
    {
        println!("{line}");
    }
    println!(
        "{{\"photos\":{photos},\"wall_s\":{wall:.2},\"eval_1n\":{}}}",
        text.lines().last().unwrap_or("null")
    );
}
