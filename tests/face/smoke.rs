//! Smoke tests of face recognition with the real models (YuNet 2026may,
//! MobileFaceNet) and the real photos and clip in `../shared/faces`.

use crate::common;
use crate::face_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use face_support::{faces, path_str, people, photos_of, stderr, stdout, FaceEnv};
use gatehouse::domain::ResidentId;
use gatehouse::face::pipeline::{self, FaceEvent};
use gatehouse::face::{self, photo, FaceEngine, FrameVerdict, MatchPolicy};

fn engine(env: &FaceEnv) -> FaceEngine {
    FaceEngine::load(&env.config).expect("load face models")
}

#[test]
fn yunet_through_ort_finds_obama_with_the_eyes_in_the_upper_half() {
    let env = FaceEnv::new("smoke-yunet");
    let mut engine = engine(&env);
    let frame = photo::load(&faces("identities/obama/obama_1.jpg")).unwrap();
    // At the camera's width (320) and at the still-photo width alike.
    for width in [320, 512, 640] {
        let found = engine.detector.detect_at(&frame, width).unwrap();
        assert_eq!(found.len(), 1, "width {width}: {found:?}");
        let d = found[0];
        assert!(d.score > 0.85, "score {}", d.score);
        // The README's reference box (512×640 input): x=369.5 y=90.6 w=242.6 h=330.6.
        assert!(
            (d.bbox.x - 369.5).abs() < 15.0 && (d.bbox.y - 90.6).abs() < 15.0,
            "{d:?}"
        );
        assert!(
            (d.bbox.w - 242.6).abs() < 25.0 && (d.bbox.h - 330.6).abs() < 30.0,
            "{d:?}"
        );
        let [right_eye, left_eye, nose, ..] = d.landmarks;
        let mid = d.bbox.y + d.bbox.h / 2.0;
        assert!(
            right_eye[1] < mid && left_eye[1] < mid,
            "eyes in the upper half: {d:?}"
        );
        assert!(
            right_eye[0] < left_eye[0],
            "subject's right eye is on the image's left"
        );
        assert!(nose[1] > right_eye[1] && nose[0] > right_eye[0] && nose[0] < left_eye[0]);
        for p in d.landmarks {
            assert!(
                p[0] >= d.bbox.x && p[0] <= d.bbox.x + d.bbox.w,
                "{p:?} inside box"
            );
        }
    }
}

#[test]
fn each_person_enrolled_from_one_photo_is_identified_from_the_others_and_nobody_else() {
    let env = FaceEnv::new("smoke-identify");
    let mut enrolled: BTreeMap<ResidentId, String> = BTreeMap::new();
    for person in people() {
        let id = env.add_person(&person);
        let first = photos_of(&person)[0].clone();
        let out = env.run(&["face", "enroll", &id.to_string(), &path_str(&first)]);
        assert!(out.status.success(), "enrol {person}: {}", stderr(&out));
        assert!(stdout(&out).contains("enrolled 1 face"), "{}", stdout(&out));
        enrolled.insert(id, person);
    }
    let store = env.store();
    let mut engine = engine(&env);
    let spec = face::embedder_spec(&env.config).unwrap();
    let policy = MatchPolicy::from_config(&env.config.face, &spec).unwrap();
    let gallery = face::load_gallery(
        store.conn(),
        engine.model_name(),
        engine.embedder.dim(),
        policy.combine,
    )
    .unwrap();
    assert_eq!(gallery.identities(), enrolled.len());

    let mut matched = 0;
    let mut probes = 0;
    for (id, person) in &enrolled {
        for probe in photos_of(person).into_iter().skip(1) {
            probes += 1;
            let frame = photo::load(&probe).unwrap();
            let found = photo::detect(&mut engine, &frame).unwrap();
            assert!(!found.is_empty(), "{}: no face", probe.display());
            // The subject is the largest face; any other (a painting) must match nobody.
            let subject = found
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.bbox.area().total_cmp(&b.1.bbox.area()))
                .map(|(i, _)| i)
                .unwrap();
            for (i, d) in found.iter().enumerate() {
                let verdict = engine
                    .observe(&frame, *d, &gallery, &policy)
                    .unwrap()
                    .verdict;
                let partial = probe.to_string_lossy().contains("partial");
                match verdict {
                    FrameVerdict::Match(s) if i == subject => {
                        assert_eq!(
                            s.resident,
                            *id,
                            "{} matched {}",
                            probe.display(),
                            enrolled[&s.resident]
                        );
                        matched += 1;
                    }
                    FrameVerdict::Match(s) => panic!(
                        "{}: a second face matched {}",
                        probe.display(),
                        enrolled[&s.resident]
                    ),
                    FrameVerdict::Rejected { .. } if partial => {}
                    other if i == subject => {
                        panic!("{}: subject not identified: {other:?}", probe.display())
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(probes >= 10);
    assert!(matched >= probes - 2, "identified {matched} of {probes}");

    // The CLI says the same for one photo.
    let out = env.run(&[
        "face",
        "identify",
        &path_str(&faces("identities/kit_harington/kit_2.jpg")),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let kit = enrolled
        .iter()
        .find(|(_, p)| p.as_str() == "kit_harington")
        .unwrap()
        .0;
    assert!(
        stdout(&out).contains(&format!("MATCH {kit}")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn group_photo_yields_six_faces_and_enrolment_from_it_is_refused() {
    let env = FaceEnv::new("smoke-group");
    let mut engine = engine(&env);
    let group = faces("group/group_six.jpg");
    let frame = photo::load(&group).unwrap();
    assert_eq!(photo::detect(&mut engine, &frame).unwrap().len(), 6);
    assert_eq!(
        engine.detector.detect(&frame).unwrap().len(),
        6,
        "also at the camera width"
    );
    drop(engine);
    let id = env.add_person("someone");
    let out = env.run(&["face", "enroll", &id.to_string(), &path_str(&group)]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("group_six.jpg: 6 faces found"), "{err}");
    assert!(err.contains("nothing was enrolled"), "{err}");
    let store = env.store();
    assert!(gatehouse::store::faces::list(store.conn(), None)
        .unwrap()
        .is_empty());
}

#[test]
fn files_in_formats_give_clear_errors() {
    let env = FaceEnv::new("smoke-formats");
    let id = env.add_person("someone");
    let cases = [
        (
            "formats/not_an_image.jpg",
            "not_an_image.jpg: cannot decode: not a JPEG, PNG",
        ),
        (
            "formats/truncated.jpg",
            "truncated.jpg: cannot decode: the image file is truncated",
        ),
        (
            "formats/does_not_exist.jpg",
            "does_not_exist.jpg: cannot read the file",
        ),
    ];
    for (file, want) in cases {
        for args in [
            vec!["face", "detect"],
            vec!["face", "enroll", &id.to_string()],
        ] {
            let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            args.push(path_str(&faces(file)));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = env.run(&args);
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
            assert!(!stderr(&out).contains("panicked"));
        }
    }
    // A 32-bit RGBA PNG is unusual but valid: its alpha is dropped and the face is found.
    let out = env.run(&[
        "face",
        "detect",
        &path_str(&faces("formats/rgba_32bit.png")),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("1 face(s)"), "{}", stdout(&out));
    // A bad photo among good ones: nothing is stored, each bad one is named.
    let out = env.run(&[
        "face",
        "enroll",
        &id.to_string(),
        &path_str(&faces("identities/obama/obama_1.jpg")),
        &path_str(&faces("formats/truncated.jpg")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("1 of 2 photo(s) refused"),
        "{}",
        stderr(&out)
    );
    assert!(gatehouse::store::faces::list(env.store().conn(), None)
        .unwrap()
        .is_empty());
}

#[test]
fn the_video_clip_through_the_camera_path_produces_face_events() {
    let mut env = FaceEnv::new("smoke-video");
    // Lin-Manuel Miranda performs in the clip; the others are not in it.
    let lin = env.add_person("lin");
    let mut absent = Vec::new();
    for (name, photo) in [
        ("biden", "identities/biden/biden_1.jpg"),
        ("kit", "identities/kit_harington/kit_1.jpg"),
        ("rose", "identities/rose_leslie/rose_1.jpg"),
    ] {
        let id = env.add_person(name);
        absent.push(id);
        let out = env.run(&["face", "enroll", &id.to_string(), &path_str(&faces(photo))]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = env.run(&[
        "face",
        "enroll",
        &lin.to_string(),
        &path_str(&faces("identities/lin_manuel_miranda/lin_1.png")),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut config = env.config.clone();
    config.cameras = vec![gatehouse::config::CameraConfig {
        id: "east-cam".into(),
        gate: "east".parse().unwrap(),
        source: path_str(&faces("video/short_hamilton_clip.mp4")),
        max_fps: 10.0,
        loop_file: false,
    }];
    env.config = config.clone();
    let store = env.store();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let pipeline::Pipelines {
        gallery, handles, ..
    } = pipeline::spawn_all(&config, store.conn(), tx).unwrap();
    assert_eq!(gallery.current().identities(), 4);
    let handle = &handles[0];
    let deadline = Instant::now() + Duration::from_secs(120);
    while !handle.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = handle.status();
    assert!(handle.is_finished(), "clip did not end: {status:?}");
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    let credentials: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            FaceEvent::Credential(c) => Some(c),
            _ => None,
        })
        .collect();
    assert!(status.frames > 20, "{status:?}");
    assert!(status.faces > 0, "{status:?}");
    assert!(
        !credentials.is_empty(),
        "no face credential from the clip: {status:?} {events:?}"
    );
    for c in &credentials {
        assert_eq!(c.resident, lin, "{c:?}: only Lin is in the clip");
        assert!(!absent.contains(&c.resident));
        assert_eq!(c.gate.as_str(), "east");
        assert!(c.score >= status_threshold(&env));
    }
    assert!(events.iter().any(|e| matches!(
        e,
        FaceEvent::Camera {
            state: gatehouse::face::camera::CameraState::Ended,
            ..
        }
    )));
    for e in &events {
        if let FaceEvent::Unknown(u) = e {
            assert!(
                u.snapshot_jpeg.starts_with(&[0xFF, 0xD8]),
                "snapshot is a JPEG"
            );
        }
    }
}

fn status_threshold(env: &FaceEnv) -> f32 {
    let spec = face::embedder_spec(&env.config).unwrap();
    MatchPolicy::from_config(&env.config.face, &spec)
        .unwrap()
        .threshold
}

#[test]
fn face_eval_prints_the_figures_and_one_json_line() {
    let env = FaceEnv::new("smoke-eval");
    let out = env.run(&[
        "face",
        "eval",
        "--pairs",
        &path_str(&faces("pairs.csv")),
        "--root",
        &path_str(&common::faces_dir()),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for figure in [
        "pairs used:",
        "ROC AUC:",
        "best accuracy:",
        "FAR",
        "FRR",
        "detection",
    ] {
        assert!(text.contains(figure), "missing {figure}: {text}");
    }
    let last = text.lines().last().unwrap();
    let json: serde_json::Value = serde_json::from_str(last).unwrap();
    let keys = [
        "pairs",
        "no_face",
        "auc",
        "best_accuracy",
        "best_threshold",
        "threshold",
        "far",
        "frr",
        "detect_ms",
        "embed_ms",
        "tar_at_far",
    ];
    let obj = json.as_object().unwrap();
    assert_eq!(obj.len(), keys.len(), "{last}");
    for k in keys {
        assert!(obj.contains_key(k), "missing {k}: {last}");
    }
    assert_eq!(json["pairs"], 136);
    assert_eq!(json["no_face"], 0);
    assert!(json["auc"].as_f64().unwrap() >= 0.99, "{last}");
    assert_eq!(
        json["far"].as_f64().unwrap(),
        0.0,
        "a false accept at the default threshold: {last}"
    );
    assert!(json["detect_ms"].as_f64().unwrap() > 0.0);
    // 113 different-person pairs resolve a FAR of 1e-2, not 1e-3 or 1e-4.
    let tar = &json["tar_at_far"];
    assert!(tar["1e-2"].as_f64().unwrap() > 0.9, "{last}");
    assert!(tar["1e-3"].is_null() && tar["1e-4"].is_null(), "{last}");
}

/// A face environment whose detector is the product's default, YuNet
/// 2023mar (fixed 1×3×640×640 input).
fn product_default_env(tag: &str) -> FaceEnv {
    let mut env = FaceEnv::with_models(tag, &["yunet-2023mar", "mobilefacenet"]);
    env.config.models.detector = "yunet-2023mar".into();
    env.write_config();
    env
}

#[test]
fn product_default_detector_finds_obama_and_the_six_faces_at_any_asked_width() {
    let env = product_default_env("smoke-2023mar");
    let mut engine = engine(&env);
    assert_eq!(engine.detector.fixed_input(), Some((640, 640)));
    let frame = photo::load(&faces("identities/obama/obama_1.jpg")).unwrap();
    for width in [320, 512, 640] {
        let found = engine.detector.detect_at(&frame, width).unwrap();
        assert_eq!(found.len(), 1, "width {width}: {found:?}");
        let d = found[0];
        assert!(d.score > 0.85, "score {}", d.score);
        // The same face as YuNet 2026may's reference box (x=369.5 y=90.6 w=242.6 h=330.6).
        assert!(
            (d.bbox.x - 369.5).abs() < 20.0 && (d.bbox.y - 90.6).abs() < 25.0,
            "{d:?}"
        );
        assert!(
            (d.bbox.w - 242.6).abs() < 30.0 && (d.bbox.h - 330.6).abs() < 40.0,
            "{d:?}"
        );
        let [right_eye, left_eye, ..] = d.landmarks;
        assert!(right_eye[0] < left_eye[0], "{d:?}");
    }
    let group = photo::load(&faces("group/group_six.jpg")).unwrap();
    assert_eq!(photo::detect(&mut engine, &group).unwrap().len(), 6);
    // A camera frame (16:9) is letterboxed into the fixed input, not refused.
    for name in ["obama-1080p.jpg", "obama-240p.jpg"] {
        let frame = photo::load(&faces(&format!("resolution/{name}"))).unwrap();
        assert_eq!(engine.detector.detect(&frame).unwrap().len(), 1, "{name}");
    }
}

#[test]
fn face_eval_with_the_product_default_detector_scores_every_pair() {
    let env = product_default_env("smoke-eval-2023mar");
    let out = env.run(&[
        "face",
        "eval",
        "--pairs",
        &path_str(&faces("pairs.csv")),
        "--root",
        &path_str(&common::faces_dir()),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let last = text.lines().last().unwrap();
    let json: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(json["pairs"], 136, "{last}");
    assert_eq!(json["no_face"], 0, "{last}");
    assert!(json["auc"].as_f64().unwrap() >= 0.99, "{last}");
}

#[test]
fn face_eval_fails_loudly_when_the_detector_cannot_run() {
    let env = product_default_env("smoke-eval-broken");
    // The product default's file, fed under the wrong input name: every run fails.
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/models/models.toml"))
            .unwrap()
            .replacen("input_name = \"input\"", "input_name = \"images\"", 1);
    let manifest_path = env.dir.path().join("models.toml");
    std::fs::write(&manifest_path, manifest).unwrap();
    let mut env = env;
    env.config.models.manifest = Some(manifest_path);
    env.write_config();
    let out = env.run(&[
        "face",
        "eval",
        "--pairs",
        &path_str(&faces("pairs.csv")),
        "--root",
        &path_str(&common::faces_dir()),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("face detector failed on"), "{err}");
    assert!(
        !stdout(&out).contains("\"pairs\""),
        "no figures: {}",
        stdout(&out)
    );
}

/// A 1080p frame whose face is a few metres away: a portrait photo shrunk
/// to a third and placed in a grey frame (the face about 140 px wide there,
/// about 25 px at the camera's detection width of 320).
fn small_face_in_a_camera_frame() -> opencv::core::Mat {
    use opencv::core::{Mat, Rect, Scalar, Size, CV_8UC3};
    use opencv::prelude::*;
    let photo = photo::load(&faces("identities/obama/obama_1.jpg")).unwrap();
    let mut small = Mat::default();
    opencv::imgproc::resize(
        &photo,
        &mut small,
        Size::new(photo.cols() / 3, photo.rows() / 3),
        0.0,
        0.0,
        opencv::imgproc::INTER_AREA,
    )
    .unwrap();
    let mut frame =
        Mat::new_rows_cols_with_default(1080, 1920, CV_8UC3, Scalar::all(110.0)).unwrap();
    let mut place =
        Mat::roi_mut(&mut frame, Rect::new(700, 350, small.cols(), small.rows())).unwrap();
    small.copy_to(&mut place).unwrap();
    frame
}

/// Mean distance between two sets of landmarks, in eye distances.
fn landmark_error(a: &face::detect::Detection, b: &face::detect::Detection) -> f32 {
    let sum: f32 = a
        .landmarks
        .iter()
        .zip(b.landmarks.iter())
        .map(|(p, q)| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt())
        .sum();
    sum / 5.0 / b.eye_distance()
}

#[test]
fn refined_landmarks_of_a_face_seen_at_camera_width_come_close_to_full_resolution_ones() {
    let env = FaceEnv::new("smoke-refine");
    let mut engine = engine(&env);
    let frame = small_face_in_a_camera_frame();
    let native = engine.detector.detect_at(&frame, 1920).unwrap()[0];
    let coarse = engine.detector.detect_at(&frame, 320).unwrap()[0];
    let mut refined = vec![coarse];
    engine.detector.refine(&frame, &mut refined, 320).unwrap();
    let refined = refined[0];
    assert_eq!(refined.bbox, coarse.bbox, "the box is kept");
    let (before, after) = (
        landmark_error(&coarse, &native),
        landmark_error(&refined, &native),
    );
    assert!(
        after < 0.6 * before,
        "refined {after:.3} against {before:.3} eye distances from the full-resolution landmarks"
    );
    // A face already as large as the second pass would make it is left alone.
    let portrait = photo::load(&faces("identities/obama/obama_1.jpg")).unwrap();
    let close = engine.detector.detect_at(&portrait, 928).unwrap();
    let mut again = close.clone();
    engine.detector.refine(&portrait, &mut again, 928).unwrap();
    assert_eq!(again, close);
    // The setting turns it on for the camera path.
    engine.detector.settings.refine_landmarks = true;
    let camera = engine.detector.detect(&frame).unwrap()[0];
    assert_eq!(camera.landmarks, refined.landmarks);
}

#[test]
fn the_fixed_input_detector_keeps_its_landmarks_rather_than_pay_a_second_detection() {
    let env = product_default_env("smoke-refine-2023mar");
    let mut engine = engine(&env);
    let frame = photo::load(&faces("resolution/obama-1080p.jpg")).unwrap();
    let found = engine.detector.detect_at(&frame, 640).unwrap();
    let mut again = found.clone();
    engine.detector.refine(&frame, &mut again, 640).unwrap();
    assert_eq!(again, found);
}
