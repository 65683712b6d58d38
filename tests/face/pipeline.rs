//! The per-frame path and the camera pipeline with the real models: K-of-M
//! confirmation, cooldown, unknown-face events with snapshots, and a gallery
//! reload that takes effect while the pipeline runs.

use crate::face_support;

use std::time::{Duration, Instant};

use face_support::{clip_camera, faces, path_str, stderr, FaceEnv};
use gatehouse::face::photo;
use gatehouse::face::pipeline::{self, FaceEvent};

#[test]
fn a_resident_in_view_is_confirmed_on_the_second_frame_once_and_again_after_the_cooldown() {
    let env = FaceEnv::new("pipe-confirm");
    let kit = env.add_person("kit");
    let out = env.run(&[
        "face",
        "enroll",
        &kit.to_string(),
        &path_str(&faces("identities/kit_harington/kit_1.jpg")),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut p = env.processor();
    let frame = photo::load(&faces("identities/kit_harington/kit_3.jpg")).unwrap();
    let t0 = Instant::now();
    assert!(
        p.process(&frame, t0).unwrap().is_empty(),
        "one frame is not enough"
    );
    let events = p.process(&frame, t0 + Duration::from_millis(100)).unwrap();
    match events.as_slice() {
        [FaceEvent::Credential(c)] => {
            assert_eq!(c.resident, kit);
            assert_eq!(c.gate.as_str(), "east");
            assert!(c.score >= p.policy.threshold);
        }
        other => panic!("expected one credential, got {other:?}"),
    }
    // Still standing there: the same track does not open the gate again …
    for i in 2..8 {
        let later = t0 + Duration::from_millis(100 * i);
        assert!(p.process(&frame, later).unwrap().is_empty());
    }
    // … and after leaving and coming back within the cooldown neither.
    let empty = opencv::core::Mat::new_rows_cols_with_default(
        480,
        640,
        opencv::core::CV_8UC3,
        opencv::core::Scalar::all(0.0),
    )
    .unwrap();
    for i in 0..8 {
        p.process(&empty, t0 + Duration::from_millis(900 + 10 * i))
            .unwrap();
    }
    let back = t0 + Duration::from_secs(2);
    p.process(&frame, back).unwrap();
    assert!(p.process(&frame, back).unwrap().is_empty(), "cooldown");
    for i in 0..8 {
        p.process(&empty, back + Duration::from_millis(10 * i))
            .unwrap();
    }
    let after = t0 + p.policy.cooldown + Duration::from_secs(3);
    p.process(&frame, after).unwrap();
    let events = p.process(&frame, after).unwrap();
    assert!(
        matches!(events.as_slice(), [FaceEvent::Credential(c)] if c.resident == kit),
        "{events:?}"
    );
}

#[test]
fn strangers_raise_one_rate_limited_unknown_face_event_with_a_jpeg_snapshot() {
    let env = FaceEnv::new("pipe-unknown");
    let obama = env.add_person("obama");
    let out = env.run(&[
        "face",
        "enroll",
        &obama.to_string(),
        &path_str(&faces("identities/obama/obama_1.jpg")),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut p = env.processor();
    // Six people nobody enrolled.
    let frame = photo::load(&faces("group/group_six.jpg")).unwrap();
    let t0 = Instant::now();
    let mut events = Vec::new();
    for i in 0..3 {
        events.extend(
            p.process(&frame, t0 + Duration::from_millis(100 * i))
                .unwrap(),
        );
    }
    let unknown: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            FaceEvent::Unknown(u) => Some(u),
            _ => None,
        })
        .collect();
    assert!(
        !events.iter().any(|e| matches!(e, FaceEvent::Credential(_))),
        "a stranger opened the gate: {events:?}"
    );
    assert_eq!(
        unknown.len(),
        1,
        "one event per interval and gate: {events:?}"
    );
    let snap = &unknown[0].snapshot_jpeg;
    assert!(snap.starts_with(&[0xFF, 0xD8]) && snap.len() > 1000);
    let decoded = photo::decode(snap).unwrap();
    assert!(decoded.cols() < 640, "a face region, not the whole frame");
    let counters = p.counters();
    assert_eq!(
        counters.frames.load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    assert_eq!(
        counters.faces.load(std::sync::atomic::Ordering::Relaxed),
        18
    );
}

use opencv::prelude::MatTraitConst;

#[test]
fn a_gallery_reload_takes_effect_while_the_pipeline_runs() {
    let mut env = FaceEnv::new("pipe-reload");
    let lin = env.add_person("lin");
    env.config.cameras = vec![clip_camera("east")];
    env.config.face.unknown_event_interval_s = 1;
    let store = env.store();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let pipeline::Pipelines {
        gallery, handles, ..
    } = pipeline::spawn_all(&env.config, store.conn(), tx).unwrap();
    assert!(gallery.current().is_empty());
    let next = |rx: &mut tokio::sync::mpsc::Receiver<FaceEvent>,
                want: &dyn Fn(&FaceEvent) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match rx.try_recv() {
                Ok(e) if want(&e) => return Some(e),
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        None
    };
    // Nobody is enrolled: Lin on stage is an unknown face.
    let first = next(&mut rx, &|e| matches!(e, FaceEvent::Unknown(_)));
    assert!(
        first.is_some(),
        "no unknown-face event: {:?}",
        handles[0].status()
    );
    // Enrol him while the pipeline runs, and reload.
    let out = env.run(&[
        "face",
        "enroll",
        &lin.to_string(),
        &path_str(&faces("identities/lin_manuel_miranda/lin_1.png")),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(gallery.reload(store.conn()).unwrap(), 1);
    let credential = next(&mut rx, &|e| matches!(e, FaceEvent::Credential(_)));
    match credential {
        Some(FaceEvent::Credential(c)) => assert_eq!(c.resident, lin),
        other => panic!(
            "no credential after the reload: {other:?} {:?}",
            handles[0].status()
        ),
    }
    let status = handles[0].status();
    assert_eq!(status.gallery_faces, 1);
    assert!(
        status.credentials >= 1 && status.unknown_events >= 1,
        "{status:?}"
    );
    assert!(!handles[0].is_finished(), "a looping file keeps running");
    for h in handles {
        h.stop();
    }
}
