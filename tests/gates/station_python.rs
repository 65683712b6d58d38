//! A station written in Python (tests/station_py/station.py: PyNaCl, paho-mqtt
//! and rfc8785 from PyPI, in the venv scripts/setup.sh makes) against the real
//! `gatehouse run` and a real mosquitto: the documented signed bytes (RFC 8785
//! canonical JSON) are enough to command a gateway and check its answers.

use crate::common;
use crate::daemon_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use daemon_support::*;
use serde_json::Value;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The venv's python (`GATEHOUSE_STATION_PYTHON` overrides it).
fn python() -> PathBuf {
    let py = std::env::var_os("GATEHOUSE_STATION_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo(".cache/station-venv/bin/python"));
    assert!(
        py.exists(),
        "{} missing: run scripts/setup.sh (it installs tests/station_py/requirements.txt)",
        py.display()
    );
    py
}

fn station(args: &[&str]) -> Output {
    let out = Command::new(python())
        .arg(repo("tests/station_py/station.py"))
        .args(args)
        .output()
        .expect("run the Python station");
    println!(
        "$ station.py {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

struct Site {
    broker: common::Mosquitto,
    key: PathBuf,
    reply_key: String,
    daemon: Running,
    _dir: common::Scratch,
}

impl Site {
    /// `station.py send` with the site's names; `(exit code, reply)`.
    fn send(&self, command: &str, args: &str, extra: &[&str]) -> (i32, Value) {
        let broker = format!("127.0.0.1:{}", self.broker.port);
        let key = self.key.to_str().unwrap();
        let mut argv = vec![
            "send",
            "--broker",
            &broker,
            "--key",
            key,
            "--officer",
            "police-0042",
            "--site",
            "qingbo",
            "--gateway",
            "demo-gw",
        ];
        if !extra.contains(&"--gateway-key") {
            argv.extend(["--gateway-key", &self.reply_key]);
        }
        argv.extend(extra);
        argv.extend([command, args]);
        let out = station(&argv);
        let reply = serde_json::from_slice(out.stdout.trim_ascii()).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), reply)
    }
}

fn start() -> Site {
    let dir = common::Scratch::new("station-py");
    let key = dir.path().join("station.seed");
    let keygen = station(&["keygen", key.to_str().unwrap()]);
    assert!(keygen.status.success());
    let public = String::from_utf8(keygen.stdout).unwrap().trim().to_string();

    let broker = common::Mosquitto::start();
    let config = demo_copy(dir.path(), "");
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[uplink]\n",
        &format!(
            "[uplink]\nbroker = \"{}\"\nstation_keys = [\"{public}\"]\n",
            broker.url()
        ),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let status = stdout(&cli(&config, &data, &["uplink", "status", "--json"]));
    let reply_key = serde_json::from_str::<Value>(&status).unwrap()["reply_key"]
        .as_str()
        .unwrap()
        .to_string();
    // The station waits for the gateway's retained "online" status itself.
    let daemon = Running::start(&config, &data);
    Site {
        broker,
        key,
        reply_key,
        daemon,
        _dir: dir,
    }
}

#[test]
fn python_station_opens_a_gate_queries_events_and_verifies_the_signed_replies() {
    let site = start();

    // A gateway whose clock is not synchronised (as on a test machine) takes
    // its trusted time from the station's first signed read.
    let (code, reply) = site.send("ping", "{}", &[]);
    assert_eq!(code, 0, "reply signature must verify: {reply}");
    assert_eq!(reply["ok"], true, "{reply}");

    let (code, reply) = site.send(
        "open_gate",
        r#"{"gate":"east","reason":"救护车 3-2-1501\n(120)"}"#,
        &[],
    );
    assert_eq!(code, 0, "reply signature must verify: {reply}");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["result"]["result"], "granted", "{reply}");
    let opened = reply["result"]["event_id"].as_str().unwrap().to_string();

    let (code, reply) = site.send("query_events", r#"{"credential_kind":"remote"}"#, &[]);
    assert_eq!(code, 0, "{reply}");
    assert_eq!(reply["ok"], true, "{reply}");
    let ids: Vec<&str> = reply["result"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids, [opened.as_str()], "{reply}");

    // The station's verifier is not a formality: another key fails it.
    let other = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    let (code, reply) = site.send("query_events", "{}", &["--gateway-key", other]);
    assert_eq!(code, 3, "a reply verified with a foreign key: {reply}");
    assert_eq!(reply["ok"], true, "{reply}");
    drop(site.daemon);
}

#[test]
fn python_station_is_refused_when_one_byte_of_a_signed_command_changes() {
    let site = start();

    let (code, reply) = site.send(
        "open_gate",
        r#"{"gate":"east","reason":"test"}"#,
        &["--tamper"],
    );
    assert_eq!(code, 0, "the refusal is signed too: {reply}");
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["error"]["code"], "bad_signature", "{reply}");

    let (code, reply) = site.send("query_events", "{}", &["--tamper"]);
    assert_eq!(code, 0, "{reply}");
    assert_eq!(reply["error"]["code"], "bad_signature", "{reply}");

    // Nothing opened: the untampered query finds no remote open.
    let (code, reply) = site.send("query_events", r#"{"credential_kind":"remote"}"#, &[]);
    assert_eq!(code, 0, "{reply}");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["result"]["events"], serde_json::json!([]), "{reply}");
    drop(site.daemon);
}
