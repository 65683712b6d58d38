//! systemd's notify protocol (sd_notify(3)) without libsystemd: one datagram
//! per state change to `$NOTIFY_SOCKET`. `Type=notify` units learn from it
//! when the daemon is ready, that it is still alive (`WATCHDOG=1`) and that it
//! is stopping.
//!
//! Outside systemd (no `NOTIFY_SOCKET`) every call does nothing, so
//! `gatehouse run` behaves the same from a shell. A send that fails is logged,
//! never fatal: the gates matter more than the supervisor's bookkeeping.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where notifications go, read once from the environment.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket).
    pub fn from_env() -> Notifier {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(raw) => Notifier::for_socket(&raw.to_string_lossy()),
            None => Notifier::disabled(),
        }
    }

    /// To the socket `name` (a path, or `@name`); disabled, with a warning, if
    /// no socket can be made for it.
    pub fn for_socket(name: &str) -> Notifier {
        match Notifier::connect(name) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("NOTIFY_SOCKET {name:?} is unusable, not notifying systemd: {e}");
                Notifier::disabled()
            }
        }
    }

    /// Sends nothing (not under systemd).
    pub fn disabled() -> Notifier {
        Notifier { target: None }
    }

    fn connect(name: &str) -> std::io::Result<Notifier> {
        let addr = match name.strip_prefix('@') {
            Some(abstract_name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(abstract_name.as_bytes())?
            }
            None => SocketAddr::from_pathname(name)?,
        };
        let socket = UnixDatagram::unbound()?;
        // A full socket buffer must not stall a gate's task.
        socket.set_nonblocking(true)?;
        Ok(Notifier {
            target: Some((socket, addr)),
        })
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one notification (`READY=1`, `WATCHDOG=1`, `STATUS=…`, several
    /// separated by newlines).
    pub fn notify(&self, state: &str) {
        let Some((socket, addr)) = &self.target else {
            return;
        };
        if let Err(e) = socket.send_to_addr(state.as_bytes(), addr) {
            tracing::warn!("cannot notify systemd ({}): {e}", first_word(state));
        }
    }
}

fn first_word(state: &str) -> &str {
    state.split(['\n', '=']).next().unwrap_or(state)
}

/// `CLOCK_MONOTONIC` in microseconds, which systemd wants with `RELOADING=1`.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

/// How often to ping the watchdog: half of `$WATCHDOG_USEC`, as sd_watchdog_enabled(3)
/// advises; `None` if the watchdog is off or meant for another process
/// (`$WATCHDOG_PID`).
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?;
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval_from(&usec, pid.as_deref(), std::process::id())
}

fn watchdog_interval_from(usec: &str, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    let usec: u64 = usec.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_pings_at_half_the_timeout_for_this_process_only() {
        assert_eq!(
            watchdog_interval_from("30000000", None, 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_interval_from("200000", Some("7"), 7),
            Some(Duration::from_millis(100))
        );
        assert_eq!(watchdog_interval_from("200000", Some("8"), 7), None);
        assert_eq!(watchdog_interval_from("0", None, 7), None);
        assert_eq!(watchdog_interval_from("soon", None, 7), None);
    }

    #[test]
    fn sends_each_state_as_one_datagram_to_the_socket() {
        let dir = std::env::temp_dir().join(format!("gh-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::connect(path.to_str().unwrap()).unwrap();
        n.notify("READY=1\nSTATUS=3 gates");
        n.notify("WATCHDOG=1");
        let mut buf = [0u8; 256];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=3 gates");
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_nothing_fails() {
        let n = Notifier::disabled();
        assert!(!n.enabled());
        n.notify("READY=1");
    }
}
