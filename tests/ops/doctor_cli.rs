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

fn check<'a>(checks: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {checks:#}"))
}

#[test]
fn runs_the_product_default_detector_and_fails_a_model_that_cannot_run() {
    let data = Scratch::new("doctor-2023mar");
    let dir = Scratch::new("doctor-2023mar-config");
    let demo =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.toml")).unwrap();
    // The product's default detector (fixed 640×640 input), no camera.
    let camera_start = demo.find("[[cameras]]").unwrap();
    let camera_end = demo.find("[models]").unwrap();
    let text = format!("{}{}", &demo[..camera_start], &demo[camera_end..]).replace(
        "detector = \"yunet-2026may\"",
        "detector = \"yunet-2023mar\"",
    );
    let config = dir.path().join("g.toml");
    std::fs::write(&config, &text).unwrap();
    let fetch = gatehouse()
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(data.path())
        .args(["models", "fetch", "--mirror"])
        .arg(common::models_mirror())
        .output()
        .unwrap();
    assert!(
        fetch.status.success(),
        "{}",
        String::from_utf8_lossy(&fetch.stderr)
    );
    let out = doctor(&data, &config);
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = check(&checks, "models run");
    assert_eq!(run["status"], "pass", "{run}");
    assert!(
        run["detail"]
            .as_str()
            .unwrap()
            .contains("yunet-2023mar (fixed input 640x640)"),
        "{run}"
    );

    // The same file under a manifest that feeds it the wrong input: it
    // installs (sha256 matches) but cannot run, and doctor fails.
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/models/models.toml"))
            .unwrap()
            .replacen("input_name = \"input\"", "input_name = \"images\"", 1);
    let manifest_path = dir.path().join("models.toml");
    std::fs::write(&manifest_path, manifest).unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        text.replace(
            "[models]\n",
            &format!(
                "[models]\nmanifest = {:?}\n",
                manifest_path.to_str().unwrap()
            ),
        ),
    )
    .unwrap();
    let out = doctor(&data, &broken);
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{checks:#}");
    assert_eq!(check(&checks, "model yunet-2023mar")["status"], "pass");
    let run = check(&checks, "models run");
    assert_eq!(run["status"], "fail", "{run}");
    assert!(
        run["detail"]
            .as_str()
            .unwrap()
            .contains("detector yunet-2023mar fails to run"),
        "{run}"
    );
}
