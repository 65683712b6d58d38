//! `gatehouse doctor` reports a healthy demo gateway and names what is broken.

use crate::common;

use common::{gatehouse, Scratch};

fn doctor(data: &Scratch, config: &std::path::Path) -> std::process::Output {
    gatehouse()
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data.path())
        .args(["doctor", "--json"])
        .output()
        .unwrap()
}

#[test]
fn passes_with_models_installed_and_fails_naming_a_missing_model_and_camera() {
    let data = Scratch::new("doctor");
    let dir = Scratch::new("doctor-config");
    let demo =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.toml")).unwrap();
    let video = common::faces_dir().join("video/short_hamilton_clip.mp4");
    let config = dir.path().join("g.toml");
    std::fs::write(
        &config,
        demo.replace(
            "../shared/faces/video/short_hamilton_clip.mp4",
            video.to_str().unwrap(),
        ),
    )
    .unwrap();

    // No models yet: doctor fails and says how to fix it.
    let out = doctor(&data, &config);
    assert_eq!(out.status.code(), Some(1));
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let model = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "model mobilefacenet")
        .expect("a check for the embedder");
    assert_eq!(model["status"], "fail");
    assert!(model["detail"]
        .as_str()
        .unwrap()
        .contains("gatehouse models fetch"));

    let fetch = gatehouse()
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(data.path())
        .args(["models", "fetch", "--mirror"])
        .arg(common::models_mirror())
        .output()
        .unwrap();
    assert!(fetch.status.success());
    let out = doctor(&data, &config);
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{checks:#}");
    let camera = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "camera east-cam")
        .unwrap();
    assert_eq!(camera["status"], "pass", "{camera}");
    // No face enrolled yet: no stranger can be falsely accepted, and the
    // check says what the model supports at the target.
    let face = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "face register")
        .unwrap();
    assert_eq!(face["status"], "pass", "{face}");
    let detail = face["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("0 residents with a face") && detail.contains("supports up to"),
        "{detail}"
    );

    // A camera that does not exist fails, named.
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace(video.to_str().unwrap(), "/nonexistent/cam.mp4"),
    )
    .unwrap();
    let out = doctor(&data, &broken);
    assert_eq!(out.status.code(), Some(1));
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let camera = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "camera east-cam")
        .unwrap();
    assert_eq!(camera["status"], "fail");
}
