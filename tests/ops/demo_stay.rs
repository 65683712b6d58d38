//! `gatehouse demo --stay` keeps the gateway up after its script: the
//! `simulate` commands it prints work from another process, their events are
//! printed as they happen, and Ctrl-C ends it with the summary.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn demo_stays_up_until_ctrl_c_and_prints_what_the_printed_commands_do() {
    let data = common::Scratch::new("demo-stay");
    let mut demo = common::gatehouse()
        .arg("--data-dir")
        .arg(data.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["demo", "--stay", "--camera-seconds", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = demo.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |needle: &str| -> String {
        loop {
            match rx.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => {
                    seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no {needle:?} in the demo's output:\n{}", seen.join("\n")),
            }
        }
    };

    wait_for("keeps running until Ctrl-C");
    let example = wait_for("simulate wiegand --gate east --card 10:12345");
    // The printed command, as printed (up to its comment).
    let command = example.split('#').next().unwrap().trim();
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let out = common::gatehouse().args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("GRANTED east     card 10:***45");

    assert_eq!(unsafe { libc::kill(demo.id() as i32, libc::SIGINT) }, 0);
    wait_for("event log hash chain: intact");
    assert!(demo.wait().unwrap().success());
}
