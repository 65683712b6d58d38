//! Peak resident memory of the real daemon (`gatehouse run`, demo config,
//! console on a free loopback port) while 40 wrong sign-ins arrive at once:
//! once from 40 addresses at 40 account names (every attempt passes the
//! address and account limits, so only the hashing queue holds them back),
//! once from one address at the manager's name. Prints one JSON line per
//! burst with the daemon's VmRSS before and VmHWM (peak RSS) after.
//!
//! Run: `cargo bench --bench login_rss` (release). `GATEHOUSE_BIN=<path>`
//! measures another build of the binary (an older one, for comparison).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MANAGER: &str = "wang";
const PASSWORD: &str = "qingbo-gate-2025";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

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
        .expect("connect");
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(600)))
        .expect("timeout");
    stream
}

/// One request over its own connection; returns the whole answer.
fn exchange(local: &str, to: SocketAddr, request: &str) -> String {
    let mut s = connect_from(local, to);
    s.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

fn cookies(answer: &str) -> String {
    answer
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .filter_map(|l| l.split_once(':').map(|(_, v)| v.trim()))
        .filter_map(|v| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

fn status(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn form_post(local: &str, to: SocketAddr, path: &str, cookie: &str, body: &str) -> u16 {
    status(&exchange(
        local,
        to,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: gate\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    ))
}

fn login(local: &str, to: SocketAddr, name: &str, password: &str) -> u16 {
    let page = exchange(
        local,
        to,
        "GET /login HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n",
    );
    let token = hidden(&page, "_csrf").expect("login form token");
    let body = format!("_csrf={token}&name={name}&password={password}&next=");
    form_post(local, to, "/login", &cookies(&page), &body)
}

fn start(dir: &Path, bin: &Path) -> (Child, SocketAddr) {
    let port = free_port();
    let text = include_str!("../config/demo.toml")
        .replace(
            "data_dir = \"gatehouse-data\"",
            &format!("data_dir = {:?}", dir.display().to_string()),
        )
        // Forty connections from one address, above the default per-address
        // cap of 32: the burst must reach the sign-in limits, not the cap.
        .replace(
            "listen = \"127.0.0.1:8088\"",
            &format!("listen = \"127.0.0.1:{port}\"\nmax_connections_per_address = 64"),
        )
        .replace("127.0.0.1:8089", &format!("127.0.0.1:{}", free_port()));
    let config = dir.join("gatehouse.toml");
    std::fs::write(&config, text).expect("write config");
    let log = dir.join("daemon.log");
    let child = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start gatehouse run");
    let deadline = Instant::now() + Duration::from_secs(120);
    let link = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(i) = text.find("/setup?token=") {
            let rest = &text[i..];
            let end = rest
                .char_indices()
                .skip("/setup?token=".len())
                .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
                .map(|(i, _)| i)
                .unwrap_or(rest.len());
            break rest[..end].to_string();
        }
        assert!(Instant::now() < deadline, "no setup link:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let page = exchange(
        "127.0.0.1",
        addr,
        &format!("GET {link} HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n"),
    );
    let body = format!(
        "_csrf={}&token={}&name={MANAGER}&password={PASSWORD}&confirm={PASSWORD}",
        hidden(&page, "_csrf").expect("setup form token"),
        hidden(&page, "token").expect("setup token")
    );
    let made = form_post("127.0.0.1", addr, "/setup", &cookies(&page), &body);
    assert_eq!(made, 303, "setup");
    (child, addr)
}

fn burst(
    addr: SocketAddr,
    from: impl Fn(usize) -> String,
    name: impl Fn(usize) -> String,
) -> Vec<u16> {
    let go = std::sync::Arc::new(std::sync::Barrier::new(40));
    let threads: Vec<_> = (0..40)
        .map(|i| {
            let (go, from, name) = (go.clone(), from(i), name(i));
            std::thread::spawn(move || {
                go.wait();
                login(&from, addr, &name, &format!("wrong-guess-{i}"))
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap_or(0)).collect()
}

fn tally(statuses: &[u16]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for s in statuses {
        *counts.entry(*s).or_insert(0) += 1;
    }
    format!("{counts:?}")
}

fn main() {
    let bin = std::env::var_os("GATEHOUSE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_gatehouse")));
    for (case, from, name) in [
        (
            "40 addresses x 40 names",
            Box::new(|i: usize| format!("127.0.1.{}", i + 1)) as Box<dyn Fn(usize) -> String>,
            Box::new(|i: usize| format!("guess{i}")) as Box<dyn Fn(usize) -> String>,
        ),
        (
            "1 address x the manager's name",
            Box::new(|_| "127.0.0.2".to_string()),
            Box::new(|_| MANAGER.to_string()),
        ),
    ] {
        // A fresh daemon per case, so each peak is its own.
        let dir = std::env::temp_dir().join(format!(
            "gatehouse-bench-login-{}-{}",
            std::process::id(),
            case.len()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let (mut child, addr) = start(&dir, &bin);
        let pid = child.id();
        // Warm up: one right and one wrong sign-in, so the first hash's buffers exist.
        assert_eq!(login("127.0.0.1", addr, MANAGER, PASSWORD), 303);
        login("127.0.0.9", addr, "nobody", "wrong-guess");
        let before = status_kb(pid, "VmRSS:");
        let before_peak = status_kb(pid, "VmHWM:");
        let started = Instant::now();
        let statuses = burst(addr, from, name);
        let took = started.elapsed();
        let peak = status_kb(pid, "VmHWM:");
        let manager = login("127.0.0.1", addr, MANAGER, PASSWORD);
        println!(
            "{{\"case\": {case:?}, \"rss_before_mb\": {:.1}, \"peak_before_mb\": {:.1}, \"peak_after_mb\": {:.1}, \"peak_growth_mb\": {:.1}, \"seconds\": {:.1}, \"answers\": {:?}, \"manager_after\": {manager}}}",
            before as f64 / 1024.0,
            before_peak as f64 / 1024.0,
            peak as f64 / 1024.0,
            peak.saturating_sub(before) as f64 / 1024.0,
            took.as_secs_f64(),
            tally(&statuses)
        );
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
