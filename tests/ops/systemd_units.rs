//! The systemd unit is hardened (exposure ≤ 2.0) and verifies cleanly.
//! Needs systemd-analyze (Debian's `systemd` package; scripts/setup.sh installs it).

use crate::common;

use std::process::Command;

fn unit_text() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/gatehouse.service"
    ))
    .expect("unit file")
}

#[test]
fn service_exposure_is_at_most_2_0() {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/systemd/gatehouse.service"
        ))
        .output()
        .expect("run systemd-analyze (apt install systemd)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure line in: {text}"));
    let level: f32 = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse exposure from {line:?}"));
    assert!(level <= 2.0, "exposure {level} > 2.0: {line}");
    assert!(
        out.status.success(),
        "systemd-analyze security failed: {text}"
    );
}

#[test]
fn service_unit_verifies_cleanly() {
    // verify checks that ExecStart binaries exist: point them at the binary under test.
    let dir = common::Scratch::new("systemd");
    let unit = unit_text().replace("/usr/bin/gatehouse", env!("CARGO_BIN_EXE_gatehouse"));
    let path = dir.path().join("gatehouse.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("gatehouse.service"))
        .collect();
    assert!(
        out.status.success() && problems.is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn sysusers_creates_the_user_and_tmpfiles_the_directories() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd");
    let sysroot = common::Scratch::new("sysroot");
    std::fs::create_dir_all(sysroot.path().join("etc")).unwrap();
    let run = |tool: &str, extra: &[&str], file: &str| {
        let out = Command::new(tool)
            .args(extra)
            .arg(format!("--root={}", sysroot.path().display()))
            .arg(format!("{root}/{file}"))
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run("systemd-sysusers", &[], "gatehouse.sysusers");
    let passwd = std::fs::read_to_string(sysroot.path().join("etc/passwd")).unwrap();
    let group = std::fs::read_to_string(sysroot.path().join("etc/group")).unwrap();
    assert!(passwd.contains("gatehouse:"), "{passwd}");
    assert!(
        group
            .lines()
            .any(|l| l.starts_with("gpio:") && l.ends_with("gatehouse")),
        "{group}"
    );
    run("systemd-tmpfiles", &["--create"], "gatehouse.tmpfiles");
    assert!(sysroot.path().join("var/lib/gatehouse/snapshots").is_dir());
}

/// `[section]` → its `Key=value` lines, for checks a verifier cannot make.
fn directives(section: &str) -> Vec<(String, String)> {
    let text = unit_text();
    let mut current = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            current = line.to_string();
        } else if current == section && !line.starts_with('#') {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.to_string(), v.to_string()));
            }
        }
    }
    out
}

#[test]
fn service_keeps_restarting_and_bounds_files_and_memory() {
    let unit = directives("[Unit]");
    assert!(
        unit.contains(&("StartLimitIntervalSec".into(), "0".into())),
        "five quick failures must not leave the gate dead: {unit:?}"
    );
    let service = directives("[Service]");
    let value = |key: &str| {
        service
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {key}= in [Service]"))
    };
    let files: u32 = value("LimitNOFILE").parse().unwrap();
    assert!(files >= 4096, "1,000 idle clients plus cameras: {files}");
    let memory = value("MemoryMax");
    let mb: u32 = memory.trim_end_matches('M').parse().unwrap();
    assert!(
        (512..=1024).contains(&mb),
        "headroom over the ~230 MB daemon, below a Pi's RAM: {memory}"
    );
    assert!(
        service
            .iter()
            .any(|(k, v)| k == "DeviceAllow" && v == "/dev/gpiomem0 rw"),
        "Raspberry Pi 5 GPIO"
    );
}
