//! `gatehouse run` on a copy of config/demo.toml as a real process, driven with
//! `gatehouse simulate …`, `gate …` and `log …` through its control socket,
//! then stopped with SIGTERM; and `gatehouse log verify` on an edited copy.

use crate::common;
use crate::daemon_support;

use std::path::Path;
use std::process::Output;

use common::Scratch;
use daemon_support::{demo_copy, stdout, Running};
use gatehouse::store::Store;
use rusqlite::params;

/// Every data directory here holds its copy of the demo config.
fn cli(data: &Path, args: &[&str]) -> Output {
    daemon_support::cli(&data.join("gatehouse.toml"), data, args)
}

#[test]
fn run_simulate_log_and_verify_against_the_demo_config() {
    let data = Scratch::new("cli-gates");
    {
        let store = Store::open(&data.path().join("gatehouse.db"), data.path()).unwrap();
        store
            .conn()
            .execute_batch(
                "INSERT INTO person (id, name, role, created_at, created_by, updated_at, updated_by)
                   VALUES (1, '张三', 'owner', 'x', 't', 'x', 't');
                 INSERT INTO card (card_key, format, person_id, created_at, created_by)
                   VALUES ('10:12345', 'wiegand26', 1, 'x', 't');",
            )
            .unwrap();
        let pin = store.secret().keyed_hash("pin", b"123456");
        store
            .conn()
            .execute(
                "INSERT INTO visitor_pass (host_id, visitor_name, pin_hash, valid_from, valid_until, uses_left, created_at, created_by)
                 VALUES (1, '周客人', ?1, '2000-01-01', '2999-12-31', 3, 'x', 't')",
                params![pin.to_vec()],
            )
            .unwrap();
    }
    let config = demo_copy(data.path(), "");
    let mut daemon = Running::start(&config, data.path());
    let d = data.path();

    // A second daemon on the same data directory refuses to start.
    let second = cli(d, &["run"]);
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("another gatehouse daemon is running"));

    let s = stdout(&cli(
        d,
        &[
            "simulate", "wiegand", "--gate", "east", "--card", "10:12345",
        ],
    ));
    assert!(s.contains("east: GRANTED card 10:***45 R1 张*"), "{s}");
    let s = stdout(&cli(
        d,
        &[
            "simulate", "wiegand", "--gate", "east", "--card", "10:54321",
        ],
    ));
    assert!(
        s.contains("DENIED card 10:***21 (unknown_credential)"),
        "{s}"
    );
    // 10:12345 with the last (odd parity) bit flipped.
    let s = stdout(&cli(
        d,
        &[
            "simulate",
            "wiegand",
            "--gate",
            "east",
            "--bits",
            "00000101000110000001110010",
        ],
    ));
    assert!(s.contains("frame rejected (parity)"), "{s}");
    assert!(s.contains("parity 1"), "{s}");
    let s = stdout(&cli(d, &["simulate", "pin", "--gate", "east", "123456"]));
    assert!(s.contains("GRANTED pin ****** 周**"), "{s}");
    let s = stdout(&cli(d, &["simulate", "button", "--gate", "east"]));
    assert!(s.contains("GRANTED exit_button"), "{s}");
    let s = stdout(&cli(d, &["simulate", "door", "--gate", "east", "open"]));
    assert!(
        s.contains("gate east: released, door open"),
        "opened after the button: {s}"
    );
    let no_contact = cli(d, &["simulate", "door", "--gate", "east-out", "open"]);
    assert_eq!(no_contact.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_contact.stderr).contains("has no door contact"));
    let s = stdout(&cli(
        d,
        &["simulate", "plate", "--gate", "car-in", "川A12345"],
    ));
    assert!(
        s.contains("DENIED plate 川A12345 (unknown_credential)"),
        "{s}"
    );
    let s = stdout(&cli(
        d,
        &[
            "gate",
            "open",
            "--gate",
            "car-in",
            "--reason",
            "fire brigade",
        ],
    ));
    assert!(s.contains("car-in: GRANTED remote"), "{s}");

    let status: serde_json::Value =
        serde_json::from_str(&stdout(&cli(d, &["gate", "status", "--format", "json"]))).unwrap();
    let gates = status.as_array().unwrap();
    assert_eq!(gates.len(), 3);
    let east = gates.iter().find(|g| g["id"] == "east").unwrap();
    assert_eq!(east["reader"]["counters"]["parity_errors"], 1);
    assert!(stdout(&cli(d, &["gate", "status"])).contains("east-out"));

    // A bad gate name is a clear error, not a crash.
    let bad = cli(d, &["simulate", "button", "--gate", "north"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no gate \"north\""));

    let status = daemon.stop();
    assert!(status.success(), "SIGTERM exit: {status:?}");

    let json = stdout(&cli(d, &["log", "--format", "json", "--gate", "east"]));
    let events: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 4, "card, card, pin, button: {json}");
    assert!(events.iter().all(|e| e["gate"] == "east"));
    let csv = stdout(&cli(d, &["log", "--format", "csv", "--result", "denied"]));
    assert_eq!(csv.lines().count(), 3, "header + 2 denied: {csv}");
    assert!(csv.lines().next().unwrap().starts_with("seq,id,at,"));
    let table = stdout(&cli(d, &["log", "--resident", "R1", "--since", "1h"]));
    assert!(table.contains("R1 张*"), "{table}");
    assert!(!table.contains("张三"));
    let all = stdout(&cli(d, &["log"]));
    assert!(
        all.contains("daemon_started") && all.contains("daemon_stopped"),
        "{all}"
    );

    let v = stdout(&cli(d, &["log", "verify"]));
    assert!(v.contains("chain is intact"), "{v}");

    // Tamper with a copy: make the denied card a grant.
    let copy = Scratch::new("cli-gates-copy");
    demo_copy(copy.path(), "");
    for f in ["gatehouse.db", "gatehouse.db-wal", "device.key"] {
        if d.join(f).exists() {
            std::fs::copy(d.join(f), copy.path().join(f)).unwrap();
        }
    }
    let conn = rusqlite::Connection::open(copy.path().join("gatehouse.db")).unwrap();
    let seq: i64 = conn
        .query_row("SELECT seq FROM event WHERE reason = 'unknown_credential' AND credential_kind = 'card'", [], |r| r.get(0))
        .unwrap();
    conn.execute(
        "UPDATE event SET result = 'granted', reason = NULL WHERE seq = ?1",
        [seq],
    )
    .unwrap();
    drop(conn);
    let out = cli(copy.path(), &["log", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains(&format!("event {seq}: row content does not match its hash")));
    assert!(String::from_utf8_lossy(&out.stderr).contains("altered"));
    // The original is untouched.
    assert!(cli(d, &["log", "verify"]).status.success());
}
