//! `gatehouse run` as a real process for integration tests: start it on a
//! scratch data directory, drive it with the CLI, signal it, read its log.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use super::common::gatehouse;

pub fn demo_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml")
}

/// A copy of the demo config in `dir` that several daemons can run at once:
/// no face camera, the LPR endpoint on a free port, and `extra` TOML appended
/// (e.g. a `[metrics]` or `[access]` section).
pub fn demo_copy(dir: &Path, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(demo_config()).unwrap();
    let mut out = String::new();
    let mut in_camera = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_camera = line.trim() == "[[cameras]]";
        }
        if in_camera {
            continue;
        }
        // Every listener (LPR, console) on a free port: tests run daemons side by side.
        if line.trim().starts_with("listen = \"127.0.0.1:") {
            out.push_str("listen = \"127.0.0.1:0\"\n");
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(
        out.contains("127.0.0.1:0"),
        "demo config changed: no LPR port"
    );
    out.push_str(extra);
    let path = dir.join("gatehouse.toml");
    std::fs::write(&path, out).unwrap();
    path
}

/// Runs `gatehouse --config CONFIG --data-dir DATA ARGS…` and echoes its output.
pub fn cli(config: &Path, data: &Path, args: &[&str]) -> Output {
    let out = gatehouse()
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("run gatehouse");
    println!(
        "$ gatehouse {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Stdout of a command that must succeed.
pub fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `gatehouse run` child, killed on drop if still running.
pub struct Running {
    child: Option<Child>,
    log: PathBuf,
}

impl Running {
    pub fn start(config: &Path, data: &Path) -> Running {
        Running::start_with_env(config, data, &[])
    }

    /// Starts with extra environment variables and waits for the control socket.
    pub fn start_with_env(config: &Path, data: &Path, env: &[(&str, &str)]) -> Running {
        let log = data.join("daemon.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = gatehouse();
        cmd.arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .arg("run")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdout(Stdio::null())
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start gatehouse run");
        let mut running = Running {
            child: Some(child),
            log,
        };
        let socket = data.join("gatehouse.sock");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            if let Some(status) = running.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited with {status:?}:\n{}", running.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not open its socket:\n{}",
                running.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        running
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: sending a signal to our own child process.
        let r = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(r, 0, "kill({signal})");
    }

    /// What the daemon logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.log_text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the daemon log within {within:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// SIGTERM, then the exit status; fails unless it exits within 5 s.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit within 5 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
