//! Liveness (presentation-attack detection) with the real models and real
//! frames: a printed photo of a resident (NUAA's spoof frames) never becomes
//! a credential, its attempts are refused events with the liveness score and
//! a snapshot, repeated attempts raise `presentation_attack` and lock the
//! reader; the resident in person (NUAA's live frames) opens. Both through
//! the running daemon with video cameras made from those frames.

use crate::common;
use crate::face_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use face_support::{path_str, start_daemon_with_cameras, stderr, FaceEnv};
use gatehouse::domain::ResidentId;
use gatehouse::face::detect::BBox;
use gatehouse::face::enrol::{self, Matcher, Photo};
use gatehouse::face::liveness::{Liveness, LivenessModel};
use gatehouse::face::photo;
use gatehouse::face::pipeline::{FaceEvent, FrameProcessor};
use gatehouse::models::{Manifest, ModelRole};
use gatehouse::onnx::rewrite::Target;
use gatehouse::store::events::{AccessResult, EventKind, EventRecord};
use opencv::core::{Mat, Rect, Scalar, Size, Vector, CV_8UC3};
use opencv::prelude::*;
use opencv::videoio::VideoWriter;

/// NUAA subject 0001: none of their live frames scores below the threshold
/// (BENCHMARKS.md, "Liveness").
const SUBJECT: &str = "0001";

fn nuaa_dir() -> PathBuf {
    common::faces_dir().join("liveness/nuaa")
}

/// The subject's frames with this label, in file-name order.
fn frames(label: &str) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(nuaa_dir().join("labels.csv")).expect("labels.csv");
    let mut v: Vec<PathBuf> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() == 3 && f[1] == SUBJECT && f[2] == label)
                .then(|| nuaa_dir().join("img").join(f[0]))
        })
        .collect();
    v.sort();
    v
}

fn load(p: &Path) -> Mat {
    photo::load(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Enrols the subject from three live frames, cropped to the middle of the
/// frame (the detector finds a spurious small face near the edge of some).
fn enrol_subject(env: &FaceEnv) -> ResidentId {
    let resident = env.add_person("NUAA 0001");
    let mut m = Matcher::open(&env.config).expect("matcher");
    let photos = frames("live")
        .iter()
        .step_by(13)
        .take(3)
        .map(|p| {
            let frame = load(p);
            let roi = Mat::roi(&frame, Rect::new(150, 0, 300, 480)).unwrap();
            let mut jpeg = Vector::<u8>::new();
            opencv::imgcodecs::imencode(".jpg", &roi, &mut jpeg, &Vector::new()).unwrap();
            Photo::from_bytes(&path_str(p), jpeg.as_slice())
        })
        .collect();
    let done = enrol::enrol(&mut m, resident, photos, "test").expect("enrol the subject");
    assert!(
        done.warnings
            .iter()
            .all(|w| !w.contains("photo of a photo")),
        "live enrolment photos flagged: {:?}",
        done.warnings
    );
    resident
}

fn blank() -> Mat {
    Mat::new_rows_cols_with_default(480, 640, CV_8UC3, Scalar::all(0.0)).unwrap()
}

/// A 10 fps MJPEG video: each frame held for `hold` frames (a face in front
/// of the camera), then `gap` black frames (the face leaves: a new track).
fn write_video(path: &Path, frames: &[PathBuf], hold: usize, gap: usize) {
    let fourcc = VideoWriter::fourcc('M', 'J', 'P', 'G').unwrap();
    let mut w = VideoWriter::new(path, fourcc, 10.0, Size::new(640, 480), true).unwrap();
    assert!(w.is_opened().unwrap(), "cannot write {}", path.display());
    let black = blank();
    for f in frames {
        let frame = load(f);
        assert_eq!((frame.cols(), frame.rows()), (640, 480));
        for _ in 0..hold {
            w.write(&frame).unwrap();
        }
        for _ in 0..gap {
            w.write(&black).unwrap();
        }
    }
    w.release().unwrap();
}

fn processor(env: &FaceEnv) -> FrameProcessor {
    let mut p = env.processor();
    p.check_liveness(Liveness::load(&env.config).expect("liveness models"));
    p
}

/// Shows each frame for three frames, then an empty view; returns the events.
fn present_each(p: &mut FrameProcessor, frames: &[PathBuf], t: &mut Instant) -> Vec<FaceEvent> {
    let mut out = Vec::new();
    for f in frames {
        let frame = load(f);
        for _ in 0..3 {
            *t += Duration::from_millis(100);
            out.extend(p.process(&frame, *t).unwrap());
        }
        // Gone for a while: the track ends, and the cooldown is over.
        for _ in 0..8 {
            *t += Duration::from_millis(100);
            out.extend(p.process(&blank(), *t).unwrap());
        }
        *t += Duration::from_secs(10);
    }
    out
}

#[test]
fn a_printed_photo_never_becomes_a_credential_and_the_person_in_front_of_the_camera_does() {
    let env = FaceEnv::new("liveness-frames");
    let resident = enrol_subject(&env);
    let mut p = processor(&env);
    let mut t = Instant::now();

    let spoofs = frames("spoof");
    assert_eq!(spoofs.len(), 40);
    let events = present_each(&mut p, &spoofs, &mut t);
    let credentials = events
        .iter()
        .filter(|e| matches!(e, FaceEvent::Credential(_)))
        .count();
    assert_eq!(credentials, 0, "a printed photo opened: {events:?}");
    let attacks: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            FaceEvent::Attack(a) => Some(a),
            _ => None,
        })
        .collect();
    // The photo is recognised as the resident often enough to be an attack with their face.
    assert!(attacks.len() >= 5, "{} attacks: {events:?}", attacks.len());
    for a in &attacks {
        assert_eq!(a.best.resident, resident);
        assert!(a.liveness < a.threshold, "{a:?}");
        assert!(!a.snapshot_jpeg.is_empty());
    }

    let lives = frames("live");
    let events = present_each(&mut p, &lives, &mut t);
    assert!(
        !events.iter().any(|e| matches!(e, FaceEvent::Attack(_))),
        "the resident in person was taken for a photo: {events:?}"
    );
    let opened = events
        .iter()
        .filter(|e| matches!(e, FaceEvent::Credential(c) if c.resident == resident))
        .count();
    assert!(
        opened >= 30,
        "only {opened} of 40 presentations opened: {events:?}"
    );
    let status = p.counters();
    assert!(
        status
            .liveness_checked
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
}

async fn next_event(
    rx: &mut tokio::sync::broadcast::Receiver<EventRecord>,
    seen: &mut Vec<EventRecord>,
    want: impl Fn(&EventRecord) -> bool,
    what: &str,
) -> EventRecord {
    if let Some(e) = seen.iter().find(|e| want(e)) {
        return e.clone();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let e = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} event; saw {seen:#?}"))
            .expect("event stream");
        seen.push(e.clone());
        if want(&e) {
            return e;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_refuses_a_printed_photo_raises_the_alarm_and_opens_for_the_person() {
    let mut env = FaceEnv::new("liveness-daemon");
    let resident = enrol_subject(&env);
    let spoof_video = env.dir.path().join("printed-photo.avi");
    let live_video = env.dir.path().join("in-person.avi");
    let spoofs = frames("spoof");
    let lives = frames("live");
    write_video(&spoof_video, &spoofs[..20], 6, 8);
    write_video(&live_video, &lives[..20], 6, 8);
    // The photo at the east entrance, the person at the exit: both 1:N gates,
    // so liveness is on without being configured.
    let camera = |id: &str, gate: &str, source: &Path| gatehouse::config::CameraConfig {
        id: id.into(),
        gate: gate.parse().unwrap(),
        source: path_str(source),
        max_fps: 10.0,
        loop_file: true,
    };
    env.config.cameras = vec![
        camera("east-cam", "east", &spoof_video),
        camera("exit-cam", "east-out", &live_video),
    ];
    for g in &mut env.config.gates {
        g.paired_with = None;
        assert!(g.liveness.is_none() && g.liveness_on(), "{}", g.id);
    }
    env.config.access.lockout_attempts = 3;
    env.config.face.attack_alarm_after = 2;
    env.write_config();
    let daemon = start_daemon_with_cameras(&env.config).await;
    let h = daemon.handle();
    let mut rx = h.events();
    let mut seen = Vec::new();

    let is_attack = |e: &EventRecord| {
        e.kind == EventKind::Access && e.reason.as_deref() == Some("presentation_attack")
    };
    let attempt = next_event(&mut rx, &mut seen, is_attack, "presentation_attack access").await;
    assert_eq!(attempt.gate.as_deref(), Some("east"));
    assert_eq!(attempt.result, Some(AccessResult::Denied));
    assert_eq!(attempt.credential_kind.as_deref(), Some("face"));
    assert_eq!(attempt.subject_id, Some(resident.0), "whose photo it was");
    let detail = attempt.detail.as_ref().expect("detail");
    let liveness = detail["liveness"].as_f64().expect("liveness score");
    assert!(
        liveness < detail["liveness_threshold"].as_f64().unwrap(),
        "{detail}"
    );
    let snapshot = attempt.snapshot.as_deref().expect("snapshot");
    let kept = env.config.data_dir().join("snapshots").join(snapshot);
    assert!(kept.is_file(), "{} not kept on the device", kept.display());

    let alarm = next_event(
        &mut rx,
        &mut seen,
        |e| e.kind == EventKind::Alarm && e.reason.as_deref() == Some("presentation_attack"),
        "presentation_attack alarm",
    )
    .await;
    assert_eq!(alarm.gate.as_deref(), Some("east"));
    assert!(alarm.snapshot.is_some());
    assert!(alarm.detail.as_ref().unwrap()["attempts"].as_u64().unwrap() >= 2);

    // The third attempt within the window locks the reader, like three unknown cards.
    next_event(
        &mut rx,
        &mut seen,
        |e| e.gate.as_deref() == Some("east") && e.reason.as_deref() == Some("reader_lockout"),
        "reader_lockout",
    )
    .await;

    // The resident in person at the exit camera opens it.
    let opened = next_event(
        &mut rx,
        &mut seen,
        |e| {
            e.gate.as_deref() == Some("east-out")
                && e.result == Some(AccessResult::Granted)
                && e.credential_kind.as_deref() == Some("face")
        },
        "granted face at east-out",
    )
    .await;
    assert_eq!(opened.subject_id, Some(resident.0));

    // Nothing ever opened the east gate by face.
    assert!(
        !seen
            .iter()
            .any(|e| e.gate.as_deref() == Some("east") && e.result == Some(AccessResult::Granted)),
        "{seen:#?}"
    );
    assert!(
        !seen
            .iter()
            .any(|e| e.gate.as_deref() == Some("east-out") && is_attack(e)),
        "the person was taken for a photo: {seen:#?}"
    );
    daemon.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// The manifest asks ONNX Runtime to run the MiniFASNets rewritten (PReLU as
/// Max, pruned widths padded): the rewritten graphs must score every frame as
/// the published ones do, live and attack alike.
#[test]
fn liveness_models_rewritten_for_speed_score_nuaa_frames_like_the_published_ones() {
    gatehouse::onnx::init(Some(&common::ort_dylib())).expect("onnx runtime");
    let manifest = Manifest::builtin();
    let specs: Vec<_> = manifest
        .models
        .iter()
        .filter(|m| m.role == ModelRole::Liveness)
        .collect();
    assert_eq!(specs.len(), 2);
    let mut frames_: Vec<PathBuf> = frames("live").into_iter().step_by(5).collect();
    frames_.extend(frames("spoof").into_iter().step_by(5));
    let blocked = Target {
        blocked_layout: true,
    };
    let plain = Target {
        blocked_layout: false,
    };
    for (spec, target) in specs.iter().flat_map(|s| [(s, blocked), (s, plain)]) {
        assert!(
            !spec.rewrites.is_empty(),
            "{} asks for no rewrite",
            spec.name
        );
        let path = common::models_mirror().join(&spec.file);
        let mut fast = LivenessModel::load_for(spec, &path, 1, target).expect("rewritten model");
        let changes = fast.rewritten();
        assert!(
            changes.prelus >= 30,
            "{} {target:?}: {changes:?}",
            spec.name
        );
        // Padding only pays where ONNX Runtime has blocked convolutions.
        if target.blocked_layout {
            assert!(changes.padded_chains >= 10, "{}: {changes:?}", spec.name);
        } else {
            assert_eq!(changes.padded_chains, 0, "{}: {changes:?}", spec.name);
        }
        let mut published_spec = (*spec).clone();
        published_spec.rewrites.clear();
        let mut published =
            LivenessModel::load(&published_spec, &path, 1).expect("published model");
        assert_eq!(published.rewritten(), Default::default());
        let mut spread = (f32::MAX, f32::MIN);
        for frame_path in &frames_ {
            let frame = load(frame_path);
            // The middle of the frame, where NUAA's faces are; the crop recipe
            // does the rest, as it would for the detector's box.
            let (w, h) = (frame.cols() as f32, frame.rows() as f32);
            let face = BBox {
                x: w * 0.3,
                y: h * 0.25,
                w: w * 0.4,
                h: h * 0.5,
            };
            let a = fast.score(&frame, &[face]).expect("fast score")[0];
            let b = published.score(&frame, &[face]).expect("published score")[0];
            assert!(
                (a - b).abs() < 1e-4,
                "{} {target:?} on {}: rewritten {a} against published {b}",
                spec.name,
                frame_path.display()
            );
            spread = (spread.0.min(b), spread.1.max(b));
        }
        // The frames span live and attack scores, so the comparison covers both.
        assert!(
            spread.0 < 0.1 && spread.1 > 0.9,
            "{}: {spread:?}",
            spec.name
        );
    }
}

#[test]
fn enrolling_a_photo_of_a_screen_warns_and_a_photo_of_the_person_does_not() {
    let env = FaceEnv::new("liveness-enrol");
    let sample = |name: &str| path_str(&common::faces_dir().join("liveness").join(name));
    // F2: a face shown on a tablet (stored sideways: decoded upright by its EXIF tag).
    let screen = env.add_person("tablet");
    let out = env.run(&[
        "face",
        "enroll",
        &screen.to_string(),
        &sample("image_F2.jpg"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("looks like a photo of a photo or of a screen"),
        "{}",
        stderr(&out)
    );
    let person = env.add_person("in person");
    let out = env.run(&[
        "face",
        "enroll",
        &person.to_string(),
        &sample("image_T1.jpg"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("photo of a photo"),
        "{}",
        stderr(&out)
    );
}
