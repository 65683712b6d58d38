//! `gatehouse demo` runs the whole gate on simulated hardware and ends with its summary.

mod common;

#[test]
fn demo_runs_the_scripted_gate_and_prints_a_summary() {
    let data = common::Scratch::new("demo");
    let out = common::gatehouse()
        .arg("--data-dir")
        .arg(data.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["demo", "--camera-seconds", "15"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each scripted credential gets the decision its rule calls for.
    for expected in [
        "GRANTED east     card 10:***45 张*",
        "DENIED  east     card 10:***22 李* (lease_ended)",
        "DENIED  east     card 10:***33 王* (suspended)",
        "(unknown_credential)",
        "(visitor_pass_used_up)",
        "ALARM   east     (forced_open)",
        "GRANTED car-in   plate 川A12345",
        "DENIED  car-in   plate 川B99999 (unknown_credential)",
        "event log hash chain: intact",
        "wait in the outbox",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // The events really are in the database the summary points at.
    let log = common::gatehouse()
        .arg("--config")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.toml"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["log", "--format", "json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&log.stdout);
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    let granted = events.iter().filter(|e| e["result"] == "granted").count();
    assert!(granted >= 4, "{text}");
}
