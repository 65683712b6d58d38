//! The site demo's child processes: a mosquitto for the site and one
//! `gatehouse run` per gateway, each on its own data directory. Every child
//! is killed when its guard drops (an error half-way included), and asks the
//! kernel to kill it should the demo itself die (`PR_SET_PDEATHSIG`).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long a child gets to start or stop.
const START_WITHIN: Duration = Duration::from_secs(60);
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// A child process, killed on drop if still running.
pub struct Process {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Process {
    /// Starts `cmd` with its output in `log`, bound to the demo's life.
    fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Process> {
        // Appended: a restarted gate's log keeps its earlier run.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(
                file.try_clone()
                    .with_context(|| format!("cannot share {}", log.display()))?,
            )
            .stderr(file);
        // SAFETY: prctl is async-signal-safe; the closure touches no memory of
        // the parent. The child gets SIGKILL when the demo's thread that
        // started it ends: the demo starts children from its main thread only.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        Ok(Process {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it still runs; an error says how it ended, with its log's tail.
    pub fn check_running(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} is stopped", self.name);
        };
        if let Some(status) = child.try_wait()? {
            self.child = None;
            bail!(
                "{} exited ({status}); the end of {}:\n{}",
                self.name,
                self.log.display(),
                log_tail(&self.log)
            );
        }
        Ok(())
    }

    /// SIGTERM, then waits for the exit (SIGKILL after `STOP_WITHIN`).
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: a signal to our own child, which we have not reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + STOP_WITHIN;
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{} did not stop within {STOP_WITHIN:?} of SIGTERM; killed",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last lines of a child's log, for an error message.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// A free TCP port on the loopback (released for the broker to take).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("cannot find a free loopback port for the broker")?;
    Ok(listener.local_addr()?.port())
}

/// mosquitto on `port` of the loopback, configured in `dir`.
pub fn start_mosquitto(dir: &Path, port: u16) -> Result<Process> {
    let conf = dir.join("mosquitto.conf");
    let mut text = format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n"
    );
    // As root, mosquitto drops to a `mosquitto` user that cannot read our files.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        text.push_str("user root\n");
    }
    std::fs::write(&conf, text).with_context(|| format!("cannot write {}", conf.display()))?;
    let program = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("mosquitto"));
    let mut cmd = Command::new(program);
    cmd.arg("-c").arg(&conf);
    let mut broker = Process::spawn("mosquitto", cmd, &dir.join("mosquitto.log")).context(
        "the site demo needs mosquitto (apt install mosquitto), or pass --broker mqtt://HOST:PORT",
    )?;
    let deadline = Instant::now() + START_WITHIN;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        broker.check_running()?;
        if Instant::now() >= deadline {
            bail!("mosquitto did not listen on port {port} within {START_WITHIN:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(broker)
}

/// `gatehouse --config CONFIG --data-dir DATA run`, this very binary, waited
/// on until its control socket answers.
pub fn start_gateway(name: &str, config: &Path, data: &Path) -> Result<Process> {
    let exe = std::env::current_exe().context("cannot find the gatehouse binary to start")?;
    let socket = crate::control::socket_path(data);
    // A socket left by a killed run would look like a started daemon.
    let _ = std::fs::remove_file(&socket);
    let mut cmd = Command::new(exe);
    cmd.arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .arg("run")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("GATEHOUSE_CONFIG")
        .env_remove("GATEHOUSE_DATA_DIR");
    let mut process = Process::spawn(name, cmd, &data.join("daemon.log"))?;
    let deadline = Instant::now() + START_WITHIN;
    loop {
        process.check_running()?;
        if socket.exists()
            && crate::control::request(&socket, &crate::control::Request::GateStatus).is_ok()
        {
            return Ok(process);
        }
        if Instant::now() >= deadline {
            bail!(
                "{name} did not answer on {} within {START_WITHIN:?}:\n{}",
                socket.display(),
                log_tail(&process.log)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
