//! Unregistered people who keep coming back, with the real models and the
//! video clip (Lin-Manuel Miranda, not enrolled, on stage): his face was
//! seen on the two days before; seen again today, the daemon raises one
//! `recurring_stranger` alarm for the station, and `face strangers` lists
//! him (an audited read).

use crate::face_support;

use std::time::Duration;

use chrono::Utc;
use face_support::{clip_camera, faces, path_str, start_daemon_with_cameras, stderr, FaceEnv};
use gatehouse::store::events::EventKind;
use gatehouse::store::strangers::{self, Sighting, StrangerPolicy};

/// Lin's embedding from his photo, through the product's own path.
fn lin_embedding(env: &FaceEnv) -> Vec<f32> {
    let out = env.run(&[
        "face",
        "watch-entry",
        &path_str(&faces("identities/lin_manuel_miranda/lin_1.png")),
        "--value",
        "lin",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let args: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    serde_json::from_value(args["entries"][0]["embedding"].clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_seen_on_three_days_is_reported_once_and_listed() {
    let mut env = FaceEnv::new("strangers");
    env.config.cameras = vec![clip_camera("east")];
    env.write_config();
    let model = gatehouse::face::embedder_spec(&env.config).unwrap().name;
    let policy = gatehouse::face::MatchPolicy::from_config(
        &env.config.face,
        &gatehouse::face::embedder_spec(&env.config).unwrap(),
    )
    .unwrap();
    // He was seen at the gate yesterday and the day before.
    let lin = lin_embedding(&env);
    {
        let store = env.store();
        for days_ago in [2, 1] {
            let report = strangers::record(
                store.conn(),
                &Sighting {
                    at: Utc::now() - chrono::Duration::days(days_ago),
                    gate: "east",
                    model: &model,
                    embedding: &lin,
                    snapshot: None,
                    event_seq: None,
                },
                &StrangerPolicy {
                    threshold: policy.threshold,
                    keep_days: env.config.face.stranger_days,
                    report_after_days: env.config.face.recurring_stranger_days,
                    utc_offset: env.config.site.utc_offset(),
                },
            )
            .unwrap();
            assert!(report.is_none(), "two days are not yet recurring");
        }
    }

    let daemon = start_daemon_with_cameras(&env.config).await;
    let mut events = daemon.handle().events();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut unknown = 0;
    let alarm = loop {
        let e = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no recurring_stranger alarm ({unknown} unknown faces)"))
            .unwrap();
        if e.reason.as_deref() == Some("unknown_face") {
            unknown += 1;
        }
        if e.reason.as_deref() == Some("recurring_stranger") {
            break e;
        }
    };
    assert_eq!(alarm.kind, EventKind::Alarm);
    assert_eq!(alarm.gate.as_deref(), Some("east"));
    let detail = alarm.detail.clone().unwrap();
    assert_eq!(detail["days"], 3, "{detail}");
    assert!(detail["stranger"].as_str().unwrap().starts_with('S'));
    let snapshot = alarm.snapshot.clone().expect("today's snapshot");
    assert!(env
        .config
        .data_dir()
        .join("snapshots")
        .join(&snapshot)
        .exists());
    daemon.shutdown(Duration::from_secs(5)).await.unwrap();

    // The property manager or officer lists who keeps coming back; the read is audited.
    let out = env.run(&["face", "strangers", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["stranger"], detail["stranger"]);
    assert!(listed[0]["days"].as_u64().unwrap() >= 3);
    let store = env.store();
    let audited: i64 = store
        .conn()
        .query_row(
            "SELECT count(*) FROM audit WHERE action = 'face.strangers'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audited, 1);
    // Only one alarm, however many times he was seen today.
    let alarms: i64 = store
        .conn()
        .query_row(
            "SELECT count(*) FROM event WHERE reason = 'recurring_stranger'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(alarms, 1);
}
