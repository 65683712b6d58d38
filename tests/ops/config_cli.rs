//! `gatehouse config check` and `gatehouse models fetch|verify` as the operator runs them.

use crate::common;

use common::{gatehouse, Scratch};

fn check(text: &str) -> (i32, String) {
    let dir = Scratch::new("config");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let out = gatehouse()
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE");
    (out.status.code().unwrap_or(-1), stderr)
}

fn example() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/gatehouse.example.toml"
    ))
    .unwrap()
}

#[test]
fn example_config_is_valid() {
    let out = gatehouse()
        .args([
            "config",
            "check",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/gatehouse.example.toml"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn wrong_type_exits_2_naming_file_and_key_path() {
    let (code, err) = check(&example().replace("unlock_ms = 3000", "unlock_ms = \"soon\""));
    assert_eq!(code, 2);
    assert!(err.contains("FILE: gates[0].unlock_ms:"), "{err}");
}

#[test]
fn unknown_key_exits_2_naming_it() {
    let (code, err) = check(&example().replace("[face]\n", "[face]\ndetect_widht = 320\n"));
    assert_eq!(code, 2);
    assert!(
        err.contains("FILE: face.detect_widht: unknown field `detect_widht`"),
        "{err}"
    );
}

#[test]
fn missing_required_key_exits_2_naming_it() {
    let (code, err) = check(&example().replace("kind = \"pedestrian\"\n", ""));
    assert_eq!(code, 2);
    assert!(
        err.contains("FILE: gates[0]: missing field `kind`"),
        "{err}"
    );
}

#[test]
fn missing_file_exits_2_naming_it() {
    let out = gatehouse()
        .args(["config", "check", "/nonexistent/g.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/g.toml: cannot read"));
}

#[test]
fn models_fetch_from_mirror_then_verify_and_detect_corruption() {
    let data = Scratch::new("models");
    let run = |args: &[&str]| {
        gatehouse()
            .arg("--config")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.toml"))
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .output()
            .unwrap()
    };
    let mirror = common::models_mirror();
    let fetch = run(&["models", "fetch", "--mirror", mirror.to_str().unwrap()]);
    assert!(
        fetch.status.success(),
        "{}",
        String::from_utf8_lossy(&fetch.stderr)
    );
    let verify = run(&["models", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // Flip one byte of the embedder: verify must fail and name the file.
    let model = data.path().join("models/mobilefacenet.onnx");
    let mut bytes = std::fs::read(&model).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&model, bytes).unwrap();
    let verify = run(&["models", "verify"]);
    assert_eq!(verify.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(
        stdout.contains("CORRUPT") && stdout.contains("mobilefacenet.onnx"),
        "{stdout}"
    );

    // fetch repairs it from the mirror.
    assert!(
        run(&["models", "fetch", "--mirror", mirror.to_str().unwrap()])
            .status
            .success()
    );
    assert!(run(&["models", "verify"]).status.success());
}
