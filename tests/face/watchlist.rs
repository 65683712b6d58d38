//! The station's face watchlist at the cameras, with the real models and the
//! video clip (Lin-Manuel Miranda on stage): `face watch-entry` makes the
//! entry from a photo, `watchlist_set` stores it while the daemon runs, the
//! camera raises one `watchlist_match` alarm with a snapshot, and a `deny`
//! entry stops his face from opening the gate.

use crate::face_support;

use std::time::Duration;

use face_support::{clip_camera, faces, path_str, start_daemon_with_cameras, stderr, FaceEnv};
use gatehouse::store::events::{AccessResult, EventKind, EventRecord};
use gatehouse::store::station_queries::{self, WatchAction, WatchEntry, WatchKind};

/// `face watch-entry` for Lin's photo, parsed as the station would send it.
fn lin_entry(env: &FaceEnv) -> WatchEntry {
    let out = env.run(&[
        "face",
        "watch-entry",
        &path_str(&faces("identities/lin_manuel_miranda/lin_1.png")),
        "--value",
        "case-2026-0117",
        "--label",
        "入室盗窃嫌疑人",
        "--action",
        "deny",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let args: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON arguments");
    let entries: Vec<WatchEntry> =
        serde_json::from_value(args["entries"].clone()).expect("watchlist_set entries");
    assert_eq!(entries.len(), 1);
    entries.into_iter().next().unwrap()
}

#[test]
fn watch_entry_refuses_a_photo_without_exactly_one_face() {
    let env = FaceEnv::new("watch-entry-bad");
    let out = env.run(&[
        "face",
        "watch-entry",
        &path_str(&faces("group/two_people.jpg")),
        "--value",
        "case-1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("two_people.jpg"), "{err}");
    let out = env.run(&[
        "face",
        "watch-entry",
        &path_str(&faces("identities/obama/obama_1.jpg")),
        "--value",
        "case-1",
        "--action",
        "arrest",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("arrest"), "{}", stderr(&out));
}

async fn next_event(
    rx: &mut tokio::sync::broadcast::Receiver<EventRecord>,
    within: Duration,
    want: impl Fn(&EventRecord) -> bool,
) -> Option<EventRecord> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => return None,
            Ok(Ok(e)) if want(&e) => return Some(e),
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(_)) => return None,
        }
    }
}

fn is_face_grant(e: &EventRecord) -> bool {
    e.credential_kind.as_deref() == Some("face") && e.result == Some(AccessResult::Granted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watchlisted_face_raises_one_alarm_with_a_snapshot_and_a_deny_entry_keeps_it_out() {
    let mut env = FaceEnv::new("watchlist");
    let lin = env.add_person("林").to_string();
    let out = env.run(&[
        "face",
        "enroll",
        &lin,
        &path_str(&faces("identities/lin_manuel_miranda/lin_1.png")),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let entry = lin_entry(&env);
    assert_eq!(entry.kind, WatchKind::Face);
    assert_eq!(entry.action, WatchAction::Deny);
    env.config.cameras = vec![clip_camera("east")];
    env.write_config();

    let daemon = start_daemon_with_cameras(&env.config).await;
    let mut events = daemon.handle().events();

    // Before the station lists him, Lin's face opens the gate.
    let grant = next_event(&mut events, Duration::from_secs(60), is_face_grant).await;
    assert!(grant.is_some(), "Lin was never let in by face");

    // The station lists him (as the uplink's watchlist_set does) while the daemon runs.
    let store = env.store();
    station_queries::watchlist_set(store.conn(), &[entry], "station").unwrap();
    let alarm = next_event(&mut events, Duration::from_secs(30), |e| {
        e.kind == EventKind::Alarm && e.reason.as_deref() == Some("watchlist_match")
    })
    .await
    .expect("a watchlist_match alarm");
    assert_eq!(alarm.gate.as_deref(), Some("east"));
    assert_eq!(alarm.credential_kind.as_deref(), Some("face"));
    let detail = alarm.detail.clone().unwrap();
    assert_eq!(detail["watch_entry"], "case-2026-0117");
    assert_eq!(detail["label"], "入室盗窃嫌疑人");
    assert_eq!(detail["denied"], true);
    assert!(alarm.score.unwrap() >= f64::from(env.config.face.match_threshold.unwrap_or(0.0)));
    let snapshot = env
        .config
        .data_dir()
        .join("snapshots")
        .join(alarm.snapshot.as_deref().expect("a snapshot"));
    let jpeg = std::fs::read(&snapshot).expect("the snapshot file");
    assert!(jpeg.starts_with(&[0xFF, 0xD8]), "a JPEG");

    // From then on his face does not open the gate, and the alarm is not repeated within a minute.
    tokio::time::sleep(Duration::from_secs(1)).await;
    while events.try_recv().is_ok() {}
    let mut later = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(12);
    while let Ok(Ok(e)) = tokio::time::timeout_at(until, events.recv()).await {
        later.push(e);
    }
    assert!(
        !later.iter().any(is_face_grant),
        "a denied watchlist face opened the gate: {later:?}"
    );
    assert!(
        !later
            .iter()
            .any(|e| e.reason.as_deref() == Some("watchlist_match")),
        "{later:?}"
    );

    daemon.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[test]
fn a_resident_on_a_deny_entry_becomes_a_watchlisted_credential_for_the_gate_to_refuse() {
    use gatehouse::face::pipeline::{FaceEvent, FrameProcessor};
    use gatehouse::face::watch::WatchFaces;
    use gatehouse::face::{self, photo, FaceEngine, GalleryHandle, MatchPolicy};
    let env = FaceEnv::new("watch-deny-credential");
    let lin = env.add_person("林");
    let out = env.run(&[
        "face",
        "enroll",
        &lin.to_string(),
        &path_str(&faces("identities/lin_manuel_miranda/lin_1.png")),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let entry = lin_entry(&env);
    let store = env.store();
    station_queries::watchlist_set(store.conn(), &[entry], "station").unwrap();
    let engine = FaceEngine::load(&env.config).unwrap();
    let spec = face::embedder_spec(&env.config).unwrap();
    let policy = MatchPolicy::from_config(&env.config.face, &spec).unwrap();
    let dim = engine.embedder.dim();
    let gallery =
        face::load_gallery(store.conn(), engine.model_name(), dim, policy.combine).unwrap();
    let watchlist = WatchFaces::default();
    assert_eq!(watchlist.reload(store.conn(), dim).unwrap(), 1);
    let mut p = FrameProcessor::new(
        engine,
        policy,
        "east".parse().unwrap(),
        "cam".into(),
        GalleryHandle::new(gallery),
    );
    p.share_watchlist(watchlist);
    let frame = photo::load(&faces("identities/lin_manuel_miranda/lin_1.png")).unwrap();
    let t0 = std::time::Instant::now();
    let mut events = Vec::new();
    for i in 0..policy.confirm_m as u64 {
        events.extend(
            p.process(&frame, t0 + Duration::from_millis(100 * i))
                .unwrap(),
        );
    }
    // The alarm, and the face still presented: the gate refuses it with an
    // access event (`watchlisted`), as it refuses a listed card.
    assert!(
        events
            .iter()
            .any(|e| matches!(e, FaceEvent::Watchlist(w) if w.deny)),
        "{events:?}"
    );
    let credentials: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            FaceEvent::Credential(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(credentials.len(), 1, "{events:?}");
    assert_eq!(credentials[0].resident, lin);
    assert_eq!(
        credentials[0].watchlisted.as_deref(),
        Some("case-2026-0117")
    );
}
