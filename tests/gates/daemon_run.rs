//! `gatehouse run` as systemd and the operator see it, as a real process on a
//! copy of the demo config: the notify protocol (READY, watchdog pings,
//! STOPPING), SIGHUP reloading the config and the register, SIGTERM with
//! swipes in flight (exit 0 in time, relays locked, no decision without its
//! event), and the Prometheus endpoint.

use crate::common;
use crate::daemon_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Scratch;
use daemon_support::{cli, demo_copy, stdout, Running};

/// Every event in the log, oldest first, as JSON.
fn events(config: &Path, data: &Path) -> Vec<serde_json::Value> {
    let json = stdout(&cli(config, data, &["log", "--format", "json"]));
    let mut events: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    events.sort_by_key(|e| e["seq"].as_i64());
    events
}

fn with_reason<'a>(events: &'a [serde_json::Value], reason: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["reason"] == reason).collect()
}

/// A resident with card 10:777, added through the CLI.
fn add_resident(config: &Path, data: &Path) {
    let id = stdout(&cli(
        config,
        data,
        &["resident", "add", "--name", "王五", "--role", "owner"],
    ));
    let id = id.trim();
    stdout(&cli(
        config,
        data,
        &["card", "assign", id, "--card", "10:777"],
    ));
}

fn swipe(config: &Path, data: &Path, gate: &str, card: &str) -> String {
    stdout(&cli(
        config,
        data,
        &["simulate", "wiegand", "--gate", gate, "--card", card],
    ))
}

#[test]
fn tells_systemd_when_it_is_ready_reloading_and_stopping_and_pings_the_watchdog() {
    let data = Scratch::new("notify");
    let d = data.path();
    let config = demo_copy(d, "");
    let socket = d.join("notify.sock");
    let systemd = UnixDatagram::bind(&socket).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let recv = || {
        let mut buf = [0u8; 512];
        let n = systemd.recv(&mut buf).expect("a notification within 10 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut daemon = Running::start_with_env(
        &config,
        d,
        &[
            ("NOTIFY_SOCKET", socket.to_str().unwrap()),
            // A 400 ms watchdog: pings every 200 ms.
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let ready = recv();
    assert!(ready.starts_with("READY=1\n"), "{ready:?}");
    assert!(ready.contains("STATUS=running 3 gate(s)"), "{ready:?}");
    // READY comes after the services: the control socket answers.
    assert!(stdout(&cli(&config, d, &["gate", "status"])).contains("east-out"));
    let started = Instant::now();
    for _ in 0..4 {
        assert_eq!(recv(), "WATCHDOG=1");
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "4 pings at 200 ms took {:?}",
        started.elapsed()
    );

    // A reload is bracketed by RELOADING=1 (with the monotonic time) and READY=1.
    daemon.signal(libc::SIGHUP);
    let next = || loop {
        let m = recv();
        if m != "WATCHDOG=1" {
            break m;
        }
    };
    let reloading = next();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading:?}"
    );
    assert_eq!(next(), "READY=1");

    let status = daemon.stop();
    assert!(status.success(), "{status:?}");
    let stopping = next();
    assert!(stopping.starts_with("STOPPING=1"), "{stopping:?}");
    systemd
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        systemd.recv(&mut buf).is_err(),
        "nothing after STOPPING: {:?}",
        String::from_utf8_lossy(&buf)
    );
}

#[test]
fn sighup_applies_the_new_config_and_register_and_keeps_the_old_config_if_the_file_is_invalid() {
    let data = Scratch::new("sighup");
    let d = data.path();
    let config = demo_copy(d, "");
    let mut daemon = Running::start(&config, d);

    // Default lockout: 5 unknown cards; two do not lock the east reader.
    for card in ["10:1", "10:2"] {
        let s = swipe(&config, d, "east", card);
        assert!(s.contains("DENIED card") && !s.contains("ALARM"), "{s}");
    }
    // The operator lowers the lockout to 2 and registers a resident.
    demo_copy(d, "[access]\nlockout_attempts = 2\n");
    add_resident(&config, d);
    // The file alone changes nothing until SIGHUP.
    let s = swipe(&config, d, "east-out", "10:3");
    assert!(s.contains("DENIED") && !s.contains("ALARM"), "{s}");

    daemon.signal(libc::SIGHUP);
    daemon.wait_log("configuration reloaded", Duration::from_secs(10));
    let s = swipe(&config, d, "east", "10:777");
    assert!(s.contains("east: GRANTED card 10:*77 R1 王*"), "{s}");
    // east-out has seen one unknown card: the second now locks it out.
    let s = swipe(&config, d, "east-out", "10:4");
    assert!(s.contains("ALARM reader_lockout"), "{s}");

    // An invalid file is refused; the daemon keeps running on the old config.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("lockout_attempts = 2", "lockout_attempts = 0"),
    )
    .unwrap();
    daemon.signal(libc::SIGHUP);
    let log = daemon.wait_log("configuration not reloaded", Duration::from_secs(10));
    assert!(
        log.contains("access.lockout_attempts: expected at least 1"),
        "{log}"
    );
    assert!(daemon.alive());
    demo_copy(d, "[access]\nlockout_attempts = 2\n");
    // east has seen two unknown cards: with the kept lockout of 2 (not the
    // default 5) a third raises the alarm.
    let s = swipe(&config, d, "east", "10:5");
    assert!(s.contains("ALARM reader_lockout"), "{s}");

    assert!(daemon.stop().success());
    let all = events(&config, d);
    let reloaded = with_reason(&all, "config_reloaded");
    assert_eq!(reloaded.len(), 1, "{reloaded:?}");
    let detail = &reloaded[0]["detail"];
    assert_eq!(
        detail["applied"],
        serde_json::json!(["access.lockout_attempts"])
    );
    assert_eq!(detail["needs_restart"], serde_json::json!([]));
    assert_eq!(detail["register_persons"], 1);
    let failed = with_reason(&all, "config_reload_failed");
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["detail"]["error"]
        .as_str()
        .unwrap()
        .contains("access.lockout_attempts"));
    // Neither reload restarted the daemon or its uplink.
    assert_eq!(with_reason(&all, "daemon_started").len(), 1);
}

/// One `simulate` call made by a swiping thread.
struct Swipe {
    started: Instant,
    finished: Instant,
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Two simulated swipes sent to one reader at once interleave their D0/D1
/// pulses, and the reader rejects the frame as noise (as it would two real
/// cards held to it together): no decision, so no event is owed.
fn collided(answer: &serde_json::Value) -> bool {
    answer["decision"].is_null() && answer["rejected"]["kind"] == "noise"
}

#[test]
fn sigterm_with_swipes_in_flight_exits_0_in_time_locks_every_relay_and_loses_no_event() {
    let data = Scratch::new("sigterm");
    let d: PathBuf = data.path().to_path_buf();
    let config = demo_copy(&d, "");
    add_resident(&config, &d);
    let mut daemon = Running::start(&config, &d);

    let stop = Arc::new(AtomicBool::new(false));
    let decided = Arc::new(AtomicUsize::new(0));
    let swipes = Arc::new(Mutex::new(Vec::<Swipe>::new()));
    let inputs: [&[&str]; 3] = [
        &["simulate", "wiegand", "--gate", "east", "--card", "10:777"],
        &[
            "simulate", "wiegand", "--gate", "east-out", "--card", "10:888",
        ],
        &["simulate", "plate", "--gate", "car-in", "川A12345"],
    ];
    let threads: Vec<_> = inputs
        .into_iter()
        .map(|args| {
            let (stop, decided, swipes) = (stop.clone(), decided.clone(), swipes.clone());
            let (config, d) = (config.clone(), d.clone());
            let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            args.extend(["--output".into(), "json".into()]);
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let out = common::gatehouse()
                        .arg("--config")
                        .arg(&config)
                        .arg("--data-dir")
                        .arg(&d)
                        .args(&args)
                        .output()
                        .unwrap();
                    if out.status.success() {
                        decided.fetch_add(1, Ordering::SeqCst);
                    }
                    swipes.lock().unwrap().push(Swipe {
                        started,
                        finished: Instant::now(),
                        ok: out.status.success(),
                        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                    });
                }
            })
        })
        .collect();
    // And one client on a kept-open control connection, so a swipe is surely
    // inside the daemon (sent, not answered) when SIGTERM arrives.
    let pending = Arc::new(AtomicBool::new(false));
    let socket_client = {
        let (stop, pending) = (stop.clone(), pending.clone());
        let socket = d.join("gatehouse.sock");
        std::thread::spawn(move || {
            let stream = UnixStream::connect(&socket).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let mut answers = Vec::new();
            let request = "{\"op\":\"simulate_wiegand\",\"gate\":\"east\",\"card\":\"10:777\"}\n";
            while !stop.load(Ordering::SeqCst) {
                if writer.write_all(request.as_bytes()).is_err() {
                    break;
                }
                pending.store(true, Ordering::SeqCst);
                let mut line = String::new();
                let n = reader.read_line(&mut line).unwrap_or(0);
                pending.store(false, Ordering::SeqCst);
                if n == 0 {
                    break; // the daemon closed the connection
                }
                answers.push(serde_json::from_str::<serde_json::Value>(&line).unwrap());
            }
            answers
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while decided.load(Ordering::SeqCst) < 9 || !pending.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "swipes are not being decided");
        std::thread::yield_now();
    }
    let sigterm_at = Instant::now();
    let status = daemon.stop();
    let stopped_in = sigterm_at.elapsed();
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let answers = socket_client.join().unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(stopped_in < Duration::from_secs(5), "{stopped_in:?}");

    let swipes = swipes.lock().unwrap();
    let in_flight = swipes
        .iter()
        .filter(|s| s.started < sigterm_at && s.finished > sigterm_at)
        .count();
    println!(
        "{} swipes, {} in flight at SIGTERM, stopped in {stopped_in:?}",
        swipes.len(),
        in_flight
    );
    assert!(in_flight >= 1, "no swipe was in flight at SIGTERM");
    let mut printed = HashMap::new();
    for s in swipes.iter() {
        assert!(!s.stderr.contains("panicked"), "{}", s.stderr);
        if !s.ok {
            // Refused because the daemon stops: said so, nothing printed as decided.
            assert!(s.stdout.trim().is_empty(), "{}", s.stdout);
            println!("refused: {}", s.stderr.trim());
            continue;
        }
        let out: serde_json::Value = serde_json::from_str(&s.stdout).unwrap();
        if collided(&out) {
            continue;
        }
        let decision = &out["decision"];
        let seq = decision["event_seq"]
            .as_i64()
            .unwrap_or_else(|| panic!("a decision without a stored event: {out}"));
        printed.insert(seq, decision.clone());
    }
    let last_answer = answers.last().map(|a| a.to_string());
    for a in &answers {
        if a["ok"] == true && !collided(&a["result"]) {
            let seq = a["result"]["decision"]["event_seq"]
                .as_i64()
                .unwrap_or_else(|| panic!("a decision without a stored event: {a}"));
            printed.insert(seq, a["result"]["decision"].clone());
        }
    }
    println!(
        "control connection: {} answers, the last: {last_answer:?}",
        answers.len()
    );
    assert!(printed.len() >= 9);

    let all = events(&config, &d);
    let by_seq: HashMap<i64, &serde_json::Value> = all
        .iter()
        .map(|e| (e["seq"].as_i64().unwrap(), e))
        .collect();
    for (seq, decision) in &printed {
        let e = by_seq
            .get(seq)
            .unwrap_or_else(|| panic!("decision {decision} has no event {seq} in the log"));
        assert_eq!(e["gate"], decision["gate"], "{e} vs {decision}");
        assert_eq!(e["result"], decision["result"], "{e} vs {decision}");
        assert_eq!(e["credential_kind"], decision["credential_kind"]);
    }
    // Every access event in the log was seen by a caller, or came from a
    // swipe whose caller was cut off by the stop (at most one per client).
    let access = all.iter().filter(|e| e["kind"] == "access").count();
    assert!(
        access >= printed.len() && access <= printed.len() + 4,
        "{access} access events for {} printed decisions",
        printed.len()
    );

    let last = all.last().unwrap();
    assert_eq!(last["reason"], "daemon_stopped", "{last}");
    assert_eq!(
        last["detail"]["relays"],
        serde_json::json!({ "east": "locked", "east-out": "locked", "car-in": "locked" }),
        "{last}"
    );
    let v = stdout(&cli(&config, &d, &["log", "verify"]));
    assert!(v.contains("chain is intact"), "{v}");
}

#[test]
fn metrics_endpoint_counts_decisions_rejections_and_event_writes() {
    let data = Scratch::new("metrics");
    let d = data.path();
    let config = demo_copy(d, "[metrics]\nlisten = \"127.0.0.1:0\"\n");
    add_resident(&config, d);
    let mut daemon = Running::start(&config, d);
    let log = daemon.wait_log("metrics at http://", Duration::from_secs(10));
    let url = log
        .split("metrics at ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(!url.contains(":0/"), "the real port is logged: {url}");

    swipe(&config, d, "east", "10:777");
    swipe(&config, d, "east", "10:777");
    swipe(&config, d, "east-out", "10:404");
    // 10:777 with the last parity bit flipped.
    let s = stdout(&cli(
        &config,
        d,
        &[
            "simulate",
            "wiegand",
            "--gate",
            "east",
            "--bits",
            "00000101000000011000010010",
        ],
    ));
    assert!(s.contains("frame rejected (parity)"), "{s}");

    let body = ureq::get(&url).call().unwrap().into_string().unwrap();
    println!("{body}");
    for line in [
        "# TYPE gatehouse_decisions_total counter",
        "gatehouse_decisions_total{gate=\"east\",result=\"granted\"} 2",
        "gatehouse_decisions_total{gate=\"east-out\",result=\"denied\"} 1",
        "gatehouse_reader_rejections_total{gate=\"east\",kind=\"parity\"} 1",
        "# TYPE gatehouse_event_write_seconds histogram",
        "# TYPE gatehouse_outbox_events gauge",
    ] {
        assert!(body.lines().any(|l| l == line), "no {line:?} in:\n{body}");
    }
    let value = |name: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{body}"))
    };
    // daemon_started and three decisions at least.
    assert!(value("gatehouse_event_write_seconds_count ") >= 4.0);
    // No broker: everything stored waits in the outbox (sampled at start-up).
    assert!(value("gatehouse_outbox_events ") >= 1.0);
    let missing = ureq::get(&url.replace("/metrics", "/other")).call();
    assert!(matches!(missing, Err(ureq::Error::Status(404, _))));
    assert!(daemon.stop().success());
}
