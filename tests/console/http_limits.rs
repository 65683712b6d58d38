//! Slow, idle and flooding HTTP clients against the real listeners (the LPR
//! endpoint in-process, the console and LPR through the real daemon): a
//! half-sent request is dropped after the header-read timeout, an address off
//! the LPR allow-list is answered 403 and closed before anything is read, a
//! stalled body is dropped after the idle timeout, cameras and the console
//! still answer while 1,000 idle connections are open, and a burst of wrong
//! sign-ins is counted before hashing, hashes at most two passwords at once
//! and does not keep the manager out.
//!
//! Timeouts here are short and configured; the tests wait for the observable
//! state (the connection closed), with a long safety bound only so a
//! regression fails instead of hanging.

use crate::common;
use crate::console_support;
use crate::lpr_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use common::{free_port, gatehouse, Scratch};
use console_support::{hidden, Gateway, Http, MANAGER, MANAGER_PASSWORD};
use gatehouse::store::console::{audit_rows, AuditFilter};
use gatehouse::store::Store;
use lpr_support::{Endpoint, RegisterSink, TOKEN};

/// Longest a test waits for the server to close a connection before it
/// calls that a failure (far above every configured timeout).
const SAFETY: Duration = Duration::from_secs(90);

/// A blocking TCP connection from a chosen loopback address (Linux routes
/// all of 127/8 to lo), to be a camera or a stranger.
fn connect_from(local: &str, to: SocketAddr) -> TcpStream {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    });
    let local: SocketAddr = format!("{local}:0").parse().expect("local address");
    let stream = runtime
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(local)?;
            socket.connect(to).await?.into_std()
        })
        .unwrap_or_else(|e| panic!("connect from {local} to {to}: {e}"));
    stream.set_nonblocking(false).expect("blocking");
    stream.set_read_timeout(Some(SAFETY)).expect("timeout");
    stream
}

/// Reads until the server closes the connection; returns what it sent.
/// Panics when the connection is still open after [`SAFETY`].
fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the server kept the connection open ({e}); it sent {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn lpr_endpoint(
    tag: &str,
    tune: impl FnOnce(&mut gatehouse::config::Config),
) -> (Scratch, Endpoint) {
    let dir = Scratch::new(tag);
    let mut config = lpr_support::config(dir.path(), "\"127.0.0.1\"");
    tune(&mut config);
    let sink = RegisterSink::open(dir.path());
    let endpoint = Endpoint::start(&config, sink);
    (dir, endpoint)
}

#[test]
fn lpr_drops_a_half_sent_request_and_a_silent_connection_after_the_header_timeout() {
    let (_dir, endpoint) = lpr_endpoint("lpr-half-sent", |c| c.lpr.header_read_timeout_s = 1);
    // A request head that never ends.
    let mut half = connect_from("127.0.0.1", endpoint.addr);
    half.write_all(b"POST /lpr/json HTTP/1.1\r\nHost: gate\r\nContent-Type: appl")
        .expect("send");
    // A connection that says nothing at all.
    let mut silent = connect_from("127.0.0.1", endpoint.addr);
    let answer = read_until_closed(&mut half);
    assert!(!answer.contains("200 OK"), "{answer}");
    read_until_closed(&mut silent);
}

#[test]
fn lpr_answers_an_address_off_the_allow_list_before_reading_anything() {
    let (_dir, endpoint) = lpr_endpoint("lpr-accept-deny", |_| {});
    // The stranger sends nothing; the answer comes anyway, and the
    // connection closes.
    let mut stranger = connect_from("127.0.0.2", endpoint.addr);
    let answer = read_until_closed(&mut stranger);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(
        answer.contains("address 127.0.0.2 is not in [lpr] allow"),
        "{answer}"
    );
}

#[test]
fn lpr_drops_a_request_whose_body_stalls_after_the_idle_timeout() {
    let (_dir, endpoint) = lpr_endpoint("lpr-stalled-body", |c| c.lpr.idle_timeout_s = 1);
    let mut slow = connect_from("127.0.0.1", endpoint.addr);
    let head = format!(
        "POST /lpr/json HTTP/1.1\r\nHost: gate\r\nX-Gatehouse-Token: {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{{\"plate\": "
    );
    slow.write_all(head.as_bytes()).expect("send");
    let answer = read_until_closed(&mut slow);
    assert!(!answer.contains("200 OK"), "{answer}");
}

/// The demo config with the console and LPR on free ports, optional
/// `[metrics]`, and `extra_console` / `extra_lpr` keys.
fn daemon_config(dir: &std::path::Path, extra_console: &str, extra_lpr: &str) -> (u16, u16, u16) {
    let console = free_port();
    let path = console_support::write_config(dir, console, extra_console, false);
    let text = std::fs::read_to_string(&path).expect("read config");
    let lpr_port = text
        .split("[lpr]")
        .nth(1)
        .and_then(|s| s.split("listen = \"127.0.0.1:").nth(1))
        .and_then(|s| s.split('"').next())
        .and_then(|p| p.parse::<u16>().ok())
        .expect("the demo config has an LPR listener");
    let metrics = free_port();
    let text = text.replace("[lpr]\n", &format!("[lpr]\n{extra_lpr}\n"))
        + &format!("\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n");
    std::fs::write(&path, text).expect("write config");
    (console, lpr_port, metrics)
}

/// `gatehouse run` started with the soft open-files limit of a default
/// systemd service (1,024), as the field units ran.
struct Daemon {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Daemon {
    fn start(dir: &std::path::Path) -> Daemon {
        let log = dir.join("daemon.log");
        let mut cmd = gatehouse();
        cmd.arg("--config")
            .arg(dir.join("gatehouse.toml"))
            .arg("run")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create daemon.log"));
        // SAFETY: setrlimit is async-signal-safe and touches only the child.
        unsafe {
            cmd.pre_exec(|| {
                let mut lim = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                    lim.rlim_cur = lim.rlim_cur.min(1024);
                    libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start gatehouse run");
        let daemon = Daemon { child, log };
        daemon.wait_log("console: ");
        daemon
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + SAFETY;
        loop {
            let text = self.log_text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "daemon log never showed {needle:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The one-time setup link the daemon logged.
    fn setup_link(&self, base: &str) -> String {
        let log = self.wait_log("/setup?token=");
        let start = log.find("/setup?token=").expect("setup link");
        let rest = &log[start..];
        let end = rest
            .char_indices()
            .skip("/setup?token=".len())
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        format!("{base}{}", &rest[..end])
    }

    /// The (soft, hard) open-files limits the daemon runs with.
    fn open_files_limits(&self) -> (String, String) {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id()))
            .expect("read /proc/<pid>/limits");
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("open files line");
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields[3].to_string(), fields[4].to_string())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn cameras_and_the_console_answer_while_a_thousand_idle_connections_are_open() {
    // The test holds 2,000 sockets itself.
    gatehouse::http_server::raise_open_files_limit();
    let dir = Scratch::new("idle-flood");
    let (console, lpr, _) = daemon_config(dir.path(), "", "");
    let daemon = Daemon::start(dir.path());
    let (soft, hard) = daemon.open_files_limits();
    assert_eq!(soft, hard, "the daemon raises its soft open-files limit");
    let console_addr: SocketAddr = format!("127.0.0.1:{console}").parse().unwrap();
    let lpr_addr: SocketAddr = format!("127.0.0.1:{lpr}").parse().unwrap();
    // 1,000 idle connections on each listener, from an address that is not a camera.
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(connect_from("127.0.0.2", lpr_addr));
        idle.push(connect_from("127.0.0.2", console_addr));
    }
    // A camera on the allow-list is answered.
    let reply = lpr_support::post(
        &format!("http://{lpr_addr}/lpr/json"),
        "application/json",
        Some("demo-lpr-token-not-secret"),
        r#"{"gate": "car-in", "plate": "川A12345"}"#.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.json);
    assert!(reply.json["result"].is_string(), "{:?}", reply.json);
    // And so is the manager's browser.
    let mut http = Http::new(&format!("http://{console_addr}"));
    assert_eq!(http.get("/login").status, 200);
    drop(idle);
    drop(daemon);
}

#[test]
fn console_drops_a_half_sent_request_after_the_header_timeout() {
    let gw = Gateway::start_with(
        "console-half-sent",
        "header_read_timeout_s = 1",
        "http",
        false,
    );
    let addr: SocketAddr = gw
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("console address");
    let mut half = connect_from("127.0.0.1", addr);
    half.write_all(b"GET /login HTTP/1.1\r\nHost: gate\r\nAccept: text/ht")
        .expect("send");
    let answer = read_until_closed(&mut half);
    assert!(!answer.contains("200 OK"), "{answer}");
    // A complete request is still served.
    assert_eq!(Http::new(&gw.base).get("/login").status, 200);
}

/// A wrong sign-in from `local`, through the login form (its pre-session
/// cookie and token); returns the status.
fn login_from(local: &str, addr: SocketAddr, name: &str, password: &str) -> u16 {
    let mut get = connect_from(local, addr);
    get.write_all(b"GET /login HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n")
        .expect("send");
    let page = read_until_closed(&mut get);
    let token = hidden(&page, "_csrf").expect("login form token");
    let cookie = page
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .filter_map(|l| l.split_once(':').map(|(_, v)| v.trim()))
        .filter_map(|v| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ");
    let body = format!(
        "_csrf={token}&name={name}&password={}&next=",
        password.replace(' ', "+")
    );
    let mut post = connect_from(local, addr);
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: gate\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    post.write_all(request.as_bytes()).expect("send");
    let answer = read_until_closed(&mut post);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

/// `count` sign-ins at once (threads released together), each from
/// `local(i)` for account `name(i)`; returns the statuses.
fn burst(
    addr: SocketAddr,
    count: usize,
    local: impl Fn(usize) -> String,
    name: impl Fn(usize) -> String,
) -> Vec<u16> {
    let start = std::sync::Arc::new(std::sync::Barrier::new(count));
    let threads: Vec<_> = (0..count)
        .map(|i| {
            let (start, local, name) = (start.clone(), local(i), name(i));
            std::thread::spawn(move || {
                start.wait();
                login_from(&local, addr, &name, &format!("wrong guess {i}"))
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn failed_logins(dir: &std::path::Path, why: &str) -> usize {
    let store = Store::open(&dir.join("gatehouse.db"), dir).unwrap();
    audit_rows(
        store.conn(),
        &AuditFilter {
            action: Some("console.login_failed".into()),
            ..AuditFilter::default()
        },
    )
    .unwrap()
    .iter()
    .filter(|r| r.detail.as_deref().unwrap_or("").contains(why))
    .count()
}

fn metric(port: u16, name: &str) -> Option<f64> {
    let text = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .timeout(Duration::from_secs(30))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
}

#[test]
fn forty_wrong_sign_ins_at_once_are_counted_before_hashing_and_the_manager_still_gets_in() {
    let dir = Scratch::new("login-burst");
    // Room for all forty connections from one address, so the sign-in
    // limits (not the connection cap) are what answers them.
    let (console, _, metrics) = daemon_config(dir.path(), "max_connections_per_address = 64", "");
    let daemon = Daemon::start(dir.path());
    let base = format!("http://127.0.0.1:{console}");
    let addr: SocketAddr = format!("127.0.0.1:{console}").parse().unwrap();
    // The manager sets up the console from the office PC (127.0.0.1).
    let mut office = Http::new(&base);
    assert_eq!(office.setup(&daemon.setup_link(&base)).status, 303);

    // Forty guesses at the manager's password from one address, all at once:
    // each is counted before its hash, so only the first five are checked.
    let statuses = burst(addr, 40, |_| "127.0.0.2".into(), |_| MANAGER.into());
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let held = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, held), (5, 35), "{statuses:?}");
    assert_eq!(failed_logins(dir.path(), "wrong password"), 5);
    assert_eq!(failed_logins(dir.path(), "rate limited"), 35);

    // Forty guesses from forty addresses at forty names: each is checked or
    // refused as busy, and never more than two hashes run at once.
    let statuses = burst(
        addr,
        40,
        |i| format!("127.0.1.{}", i + 1),
        |i| format!("guess{i}"),
    );
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&401), "{statuses:?}");
    let peak = metric(metrics, "gatehouse_console_password_hashes_peak").expect("peak metric");
    assert!((1.0..=2.0).contains(&peak), "{peak} hashes ran at once");

    // The manager, at the office PC, still signs in.
    let mut again = Http::new(&base);
    let r = again.login(MANAGER, MANAGER_PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body);
}
