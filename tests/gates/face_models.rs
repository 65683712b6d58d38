//! The face models as the running daemon uses them: a detector that fails to
//! run is a model alarm at its gate, never a quiet gate where nobody shows up.

use crate::common;
use crate::daemon_support;

use std::time::{Duration, Instant};

use common::Scratch;
use daemon_support::{cli, demo_copy, stdout, Running};

#[test]
fn a_detector_that_cannot_run_raises_a_face_model_alarm_and_the_gates_keep_deciding() {
    let dir = Scratch::new("face-model-alarm");
    let data = dir.path().join("data");
    // The product default's file under a manifest that feeds it the wrong
    // input name: it installs (sha256 matches) but every run fails.
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/models/models.toml"))
            .unwrap()
            .replacen("input_name = \"input\"", "input_name = \"images\"", 1);
    let manifest_path = dir.path().join("models.toml");
    std::fs::write(&manifest_path, manifest).unwrap();
    let video = common::faces_dir().join("video/short_hamilton_clip.mp4");
    let config = demo_copy(
        dir.path(),
        &format!(
            "\n[[cameras]]\nid = \"east-cam\"\ngate = \"east\"\nsource = {:?}\nloop_file = true\nmax_fps = 10\n",
            video.to_str().unwrap()
        ),
    );
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[models]\n",
        &format!(
            "[models]\nmanifest = {:?}\n",
            manifest_path.to_str().unwrap()
        ),
    );
    let text = text.replace(
        "detector = \"yunet-2026may\"",
        "detector = \"yunet-2023mar\"",
    );
    std::fs::write(&config, text).unwrap();
    let mirror = common::models_mirror();
    stdout(&cli(
        &config,
        &data,
        &["models", "fetch", "--mirror", mirror.to_str().unwrap()],
    ));

    let mut daemon = Running::start(&config, &data);
    let deadline = Instant::now() + Duration::from_secs(60);
    let alarm = loop {
        let json = stdout(&cli(&config, &data, &["log", "--format", "json"]));
        let found = json
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|e| e["reason"] == "face_model_failed");
        if let Some(e) = found {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no face_model_failed alarm:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(alarm["kind"], "alarm", "{alarm}");
    assert_eq!(alarm["gate"], "east", "{alarm}");
    let detail = alarm["detail"].to_string();
    assert!(
        detail.contains("east-cam") && detail.contains("face detector failed"),
        "{detail}"
    );
    // The daemon is up and a gate still decides.
    let out = stdout(&cli(
        &config,
        &data,
        &["simulate", "wiegand", "--gate", "east", "--card", "10:999"],
    ));
    assert!(out.contains("DENIED"), "{out}");
    assert!(daemon.alive());
    daemon.stop();
}
