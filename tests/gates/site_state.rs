//! The state a site's gates share through the registry (issue 17), with real
//! processes and a real mosquitto: visitor-pass uses that must reach the
//! registry whatever is down or killed, anti-passback across gateways, and
//! failed guesses counted site-wide.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{Mosquitto, Scratch};
use crate::daemon_support::{cli, stdout, Running};
use crate::site::{db, enrol, named_gate_config, start_registry, wait_synced};

const WAIT: Duration = Duration::from_secs(30);

/// A gate gateway named `name` on `broker`, sharing the registry's device
/// secret (visitor PINs are hashed with it); `extra` is appended to its config.
fn start_gate(
    reg: &Path,
    dir: &Path,
    name: &str,
    broker: &str,
    key: &str,
    extra: &str,
) -> (PathBuf, Running) {
    std::fs::copy(reg.join("device.key"), dir.join("device.key")).unwrap();
    let config = named_gate_config(dir, name, broker, key);
    if !extra.is_empty() {
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(extra);
        std::fs::write(&config, text).unwrap();
    }
    let running = Running::start(&config, dir);
    (config, running)
}

/// A visitor pass for a new host at the registry, good for `uses`; its PIN.
fn visitor_pin(reg_config: &Path, reg: &Path, uses: &str) -> String {
    let host = stdout(&cli(
        reg_config,
        reg,
        &["resident", "add", "--name", "王五", "--role", "owner"],
    ))
    .trim()
    .to_string();
    let pass = stdout(&cli(
        reg_config,
        reg,
        &[
            "visitor",
            "pass",
            "--host",
            &host,
            "--name",
            "李访客",
            "--valid-for",
            "4h",
            "--uses",
            uses,
        ],
    ));
    pass.lines()
        .find_map(|l| l.strip_prefix("PIN:"))
        .map(|p| p.trim().to_string())
        .unwrap_or_else(|| panic!("no PIN in {pass}"))
}

fn pin_at(config: &Path, data: &Path, gate: &str, pin: &str) -> String {
    stdout(&cli(
        config,
        data,
        &["simulate", "pin", "--gate", gate, pin],
    ))
}

fn uses_left(data: &Path) -> Option<i64> {
    db(data)
        .query_row("SELECT uses_left FROM visitor_pass", [], |r| r.get(0))
        .unwrap()
}

/// Uses spent at the gate that the registry has not acknowledged yet.
fn unacknowledged_uses(gate: &Path) -> i64 {
    db(gate)
        .query_row("SELECT count(*) FROM site_uses", [], |r| r.get(0))
        .unwrap()
}

/// The registry's audit rows of gates' visitor uses (one per lowering).
fn merged_uses(reg: &Path) -> i64 {
    db(reg)
        .query_row(
            "SELECT count(*) FROM audit WHERE action = 'visitor.use'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        assert!(Instant::now() < deadline, "not within {WAIT:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn restart_registry(config: &Path, data: &Path) -> Running {
    let registry = Running::start(config, data);
    registry.wait_log("site registry publishing", WAIT);
    registry
}

#[test]
fn a_visitor_use_spent_while_the_registry_is_down_reaches_it_when_it_returns() {
    let broker = Mosquitto::start();
    let reg = Scratch::new("site-uses-registry");
    let a = Scratch::new("site-uses-gate");
    let (reg_config, mut registry, key) =
        start_registry(reg.path(), &broker.url(), &[("north", a.path())]);
    let (config, north) = start_gate(reg.path(), a.path(), "north", &broker.url(), &key, "");
    let pin = visitor_pin(&reg_config, reg.path(), "1");
    wait_synced(reg.path(), a.path(), &north);

    // The registry is away (the broker is up): the gate spends the use and
    // its report reaches nobody.
    registry.stop();
    let s = pin_at(&config, a.path(), "east", &pin);
    assert!(s.contains("east: GRANTED pin"), "{s}");
    assert_eq!(uses_left(a.path()), Some(0));
    assert_eq!(uses_left(reg.path()), Some(1));

    // Kept until the registry acknowledges it, whatever was sent meanwhile.
    let _registry = restart_registry(&reg_config, reg.path());
    wait_until(
        "the registry counts the use spent while it was down",
        || uses_left(reg.path()) == Some(0),
    );
    wait_until("the gate forgets the acknowledged use", || {
        unacknowledged_uses(a.path()) == 0
    });
    assert_eq!(merged_uses(reg.path()), 1);
}

#[test]
fn a_gate_killed_right_after_a_visitor_pin_reports_the_use_once_after_restart() {
    let broker = Mosquitto::start();
    let reg = Scratch::new("site-kill-registry");
    let a = Scratch::new("site-kill-gate");
    let (reg_config, _registry, key) =
        start_registry(reg.path(), &broker.url(), &[("north", a.path())]);
    let (config, north) = start_gate(reg.path(), a.path(), "north", &broker.url(), &key, "");
    // Two uses: a use counted twice would leave none.
    let pin = visitor_pin(&reg_config, reg.path(), "2");
    wait_synced(reg.path(), a.path(), &north);

    let s = pin_at(&config, a.path(), "east", &pin);
    assert!(s.contains("east: GRANTED pin"), "{s}");
    north.signal(libc::SIGKILL);
    drop(north);
    assert_eq!(uses_left(a.path()), Some(1));

    let north = Running::start(&config, a.path());
    wait_until("the registry counts the use of the killed gate", || {
        uses_left(reg.path()) == Some(1)
    });
    wait_until("the gate forgets the acknowledged use", || {
        unacknowledged_uses(a.path()) == 0
    });
    wait_synced(reg.path(), a.path(), &north);
    assert_eq!(uses_left(reg.path()), Some(1), "the use was counted once");
    assert_eq!(merged_uses(reg.path()), 1);
    assert_eq!(uses_left(a.path()), Some(1));
    // The second use still opens; then the pass is spent everywhere.
    let s = pin_at(&config, a.path(), "east", &pin);
    assert!(s.contains("east: GRANTED pin"), "{s}");
    wait_until("the registry counts the second use", || {
        uses_left(reg.path()) == Some(0)
    });
}

/// How many of the other gateways' passages and failures `gate` has folded.
fn folded(gate: &Running) -> usize {
    gate.log_text()
        .lines()
        .filter(|l| l.contains("folded the other gateways' passages and failures"))
        .filter_map(|l| l.split("items=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<usize>().ok())
        .sum()
}

fn wait_folded(gate: &Running, n: usize) {
    let deadline = Instant::now() + WAIT;
    while folded(gate) < n {
        assert!(
            Instant::now() < deadline,
            "the gate folded {} of the site's passages and failures, not {n}:\n{}",
            folded(gate),
            gate.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn card_at(config: &Path, data: &Path, gate: &str, card: &str) -> String {
    stdout(&cli(
        config,
        data,
        &["simulate", "wiegand", "--gate", gate, "--card", card],
    ))
}

/// Two gateways, each with its entrance `east` (in) paired with `east-out`.
fn two_gates(
    reg: &Path,
    a: &Path,
    b: &Path,
    broker: &str,
    key: &str,
    extra: &str,
) -> [(PathBuf, Running); 2] {
    [
        start_gate(reg, a, "north", broker, key, extra),
        start_gate(reg, b, "south", broker, key, extra),
    ]
}

#[test]
fn anti_passback_holds_across_gateways() {
    let broker = Mosquitto::start();
    let reg = Scratch::new("site-apb-registry");
    let (a, b) = (Scratch::new("site-apb-a"), Scratch::new("site-apb-b"));
    let (reg_config, _registry, key) = start_registry(
        reg.path(),
        &broker.url(),
        &[("north", a.path()), ("south", b.path())],
    );
    let [(north_config, north), (south_config, south)] = two_gates(
        reg.path(),
        a.path(),
        b.path(),
        &broker.url(),
        &key,
        "[access]\nanti_passback = true\n",
    );
    enrol(&reg_config, reg.path(), "王五", "10:777");
    wait_synced(reg.path(), a.path(), &north);
    wait_synced(reg.path(), b.path(), &south);

    // In at the north gateway: entering again at the south one is refused.
    let s = card_at(&north_config, a.path(), "east", "10:777");
    assert!(s.contains("east: GRANTED card"), "{s}");
    wait_folded(&south, 1);
    let s = card_at(&south_config, b.path(), "east", "10:777");
    assert!(
        s.contains("east: DENIED card") && s.contains("anti_passback"),
        "{s}"
    );
    // Out at the south gateway is fine; then in at the north one again.
    let s = card_at(&south_config, b.path(), "east-out", "10:777");
    assert!(s.contains("east-out: GRANTED card"), "{s}");
    wait_folded(&north, 1);
    let s = card_at(&north_config, a.path(), "east", "10:777");
    assert!(s.contains("east: GRANTED card"), "{s}");

    // The south gateway is killed and restarts: its own events say he left
    // there; it asks the registry what happened elsewhere meanwhile.
    south.signal(libc::SIGKILL);
    drop(south);
    let south = Running::start(&south_config, b.path());
    wait_folded(&south, 1);
    let s = card_at(&south_config, b.path(), "east", "10:777");
    assert!(
        s.contains("east: DENIED card") && s.contains("anti_passback"),
        "{s}"
    );

    // The registry is a gateway too: out at the north gateway, in through
    // the registry's gate, and the north gateway refuses him entering.
    let s = card_at(&north_config, a.path(), "east-out", "10:777");
    assert!(s.contains("east-out: GRANTED card"), "{s}");
    let s = card_at(&reg_config, reg.path(), "east", "10:777");
    assert!(s.contains("east: GRANTED card"), "{s}");
    wait_folded(&north, 2);
    let s = card_at(&north_config, a.path(), "east", "10:777");
    assert!(
        s.contains("east: DENIED card") && s.contains("anti_passback"),
        "{s}"
    );
}

#[test]
fn guessing_at_one_gate_locks_out_the_other() {
    let broker = Mosquitto::start();
    let reg = Scratch::new("site-guess-registry");
    let (a, b) = (Scratch::new("site-guess-a"), Scratch::new("site-guess-b"));
    let (reg_config, _registry, key) = start_registry(
        reg.path(),
        &broker.url(),
        &[("north", a.path()), ("south", b.path())],
    );
    // Three guesses within an hour lock a reader out for an hour.
    let [(north_config, north), (south_config, south)] = two_gates(
        reg.path(),
        a.path(),
        b.path(),
        &broker.url(),
        &key,
        "[access]\nlockout_attempts = 3\nlockout_window_s = 3600\nlockout_s = 3600\n",
    );
    enrol(&reg_config, reg.path(), "王五", "10:777");
    wait_synced(reg.path(), a.path(), &north);
    wait_synced(reg.path(), b.path(), &south);

    for n in 1..=3 {
        let s = card_at(&north_config, a.path(), "east", &format!("10:{}", 9000 + n));
        assert!(s.contains("DENIED card"), "{s}");
        if n == 3 {
            assert!(s.contains("ALARM reader_lockout"), "{s}");
        }
    }
    // The south gateway counts the north's guesses: its first guess locks it out.
    wait_folded(&south, 3);
    let s = card_at(&south_config, b.path(), "east", "10:9100");
    assert!(s.contains("ALARM reader_lockout"), "{s}");
    let s = card_at(&south_config, b.path(), "east", "10:777");
    assert!(
        s.contains("DENIED card") && s.contains("reader_locked_out"),
        "{s}"
    );
}
