//! Can the wall clock be trusted? A Pi has no real-time clock: after a power
//! cut it boots with a stale time until NTP answers. Two answers live here:
//!
//! - whether the clock is synchronised, read in a way the systemd sandbox
//!   allows: the shipped unit filters `@clock`, so `adjtimex(2)` fails with
//!   EPERM there; systemd-timesyncd's `/run/systemd/timesync/synchronized`,
//!   `chronyc tracking` and ntpd's `ntpq -c "rv 0 leap"` still answer. A source that cannot be asked is
//!   "unknown", said in the log, never silently "unsynchronised";
//! - the trusted time floor ([`Floor`]): the latest time the gateway had
//!   reason to trust (a synchronised reading, the newest event it wrote, a
//!   signed station timestamp), advanced by the monotonic clock while the
//!   process runs and kept in the database (`store::trusted_time`). The
//!   gateway's "now" is max(system clock, floor): it never runs backwards.
//!
//! Architecture Invariant: an expiry in the past of max(system clock, floor)
//! is always enforced; an unsynchronised clock only lets "not yet valid"
//! checks pass (flagged on the event), see `access`.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// systemd-timesyncd creates this file once it has synchronised the clock
/// (since systemd 239); `/run` is a tmpfs, so it never survives a reboot.
pub const TIMESYNCD_FLAG: &str = "/run/systemd/timesync/synchronized";

/// How long a reading is reused before the sources are asked again.
const READING_TTL: Duration = Duration::from_secs(10);
/// How long `chronyc` or `ntpq` may take before its answer counts as "unknown".
const CLIENT_TIMEOUT: Duration = Duration::from_millis(1500);

/// What the sources say about the clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sync {
    /// Synchronised, according to `source`.
    Synchronised { source: &'static str },
    /// Not synchronised, according to `source`.
    Unsynchronised { source: &'static str },
    /// No source could answer; `why` names each and its problem.
    Unknown { why: String },
}

impl Sync {
    /// Only a positive answer is trusted.
    pub fn is_synchronised(&self) -> bool {
        matches!(self, Sync::Synchronised { .. })
    }

    /// For logs and `doctor`.
    pub fn describe(&self) -> String {
        match self {
            Sync::Synchronised { source } => format!("synchronised ({source})"),
            Sync::Unsynchronised { source } => format!("not synchronised ({source})"),
            Sync::Unknown { why } => format!("unknown: {why}"),
        }
    }
}

/// The kernel's own answer: `Ok(true)` synchronised, `Err` when the call is
/// refused (EPERM under the unit's `@clock` filter).
pub type KernelQuery = fn() -> io::Result<bool>;

/// The sources asked, in order; tests replace any of them.
#[derive(Clone, Debug)]
pub struct Probe {
    pub kernel: KernelQuery,
    /// systemd-timesyncd's flag file.
    pub timesyncd_flag: PathBuf,
    /// The `chronyc` program (`None`: chrony is not asked).
    pub chronyc: Option<PathBuf>,
    /// The `ntpq` program of ntpd / ntpsec (`None`: not asked).
    pub ntpq: Option<PathBuf>,
}

impl Default for Probe {
    fn default() -> Probe {
        Probe::system()
    }
}

impl Probe {
    /// The real sources of this machine.
    pub fn system() -> Probe {
        Probe {
            kernel: adjtimex,
            timesyncd_flag: PathBuf::from(TIMESYNCD_FLAG),
            chronyc: Some(PathBuf::from("chronyc")),
            ntpq: Some(PathBuf::from("ntpq")),
        }
    }

    /// Asks the kernel first; when it refuses, the time daemons' own state.
    pub fn read(&self) -> Sync {
        let mut problems = Vec::new();
        match (self.kernel)() {
            Ok(true) => return Sync::Synchronised { source: "adjtimex" },
            // The kernel says unsynchronised, but timesyncd or chrony may
            // know better when the kernel flag is not maintained (containers).
            Ok(false) => problems.push("adjtimex: unsynchronised".to_string()),
            Err(e) => problems.push(format!("adjtimex: {e}")),
        }
        if timesyncd_synchronised(&self.timesyncd_flag) {
            return Sync::Synchronised {
                source: "systemd-timesyncd",
            };
        }
        problems.push(format!("{}: absent", self.timesyncd_flag.display()));
        if let Some(chronyc) = &self.chronyc {
            match chrony_tracking(chronyc) {
                Ok(true) => return Sync::Synchronised { source: "chrony" },
                Ok(false) => return Sync::Unsynchronised { source: "chrony" },
                Err(e) => problems.push(format!("chronyc: {e}")),
            }
        }
        if let Some(ntpq) = &self.ntpq {
            match ask(ntpq, &["-n", "-c", "rv 0 leap"], parse_ntpq_leap) {
                Ok(true) => return Sync::Synchronised { source: "ntpd" },
                Ok(false) => return Sync::Unsynchronised { source: "ntpd" },
                Err(e) => problems.push(format!("ntpq: {e}")),
            }
        }
        if problems[0] == "adjtimex: unsynchronised" {
            // The kernel answered and nothing contradicted it.
            return Sync::Unsynchronised { source: "adjtimex" };
        }
        Sync::Unknown {
            why: problems.join("; "),
        }
    }
}

/// `adjtimex(2)` with modes = 0 (read only): `TIME_ERROR` or `STA_UNSYNC`
/// mean unsynchronised.
fn adjtimex() -> io::Result<bool> {
    // SAFETY: adjtimex with modes = 0 only reads the kernel's state into the struct.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0)
}

fn timesyncd_synchronised(flag: &Path) -> bool {
    flag.is_file()
}

/// `chronyc -n -c tracking`: `Ok(synchronised)` from its leap status.
fn chrony_tracking(chronyc: &Path) -> io::Result<bool> {
    ask(chronyc, &["-n", "-c", "tracking"], parse_chrony_tracking)
}

/// Runs a time daemon's client with a deadline and parses its answer.
fn ask(program: &Path, args: &[&str], parse: fn(&str) -> Option<bool>) -> io::Result<bool> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no answer within 1.5 s",
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("exited with {}", out.status)));
    }
    parse(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| io::Error::other("unexpected output"))
}

/// `ntpq -c "rv 0 leap"` prints `leap=00` (or `leap=01`/`10`, a leap second
/// announced) when synchronised and `leap=11` when not; ntpsec may print
/// the names (`leap_none`, `leap_alarm`).
pub fn parse_ntpq_leap(out: &str) -> Option<bool> {
    let value = out
        .split([',', '\n'])
        .filter_map(|kv| kv.trim().strip_prefix("leap="))
        .next()?
        .trim();
    match value {
        "00" | "01" | "10" | "leap_none" | "leap_add_sec" | "leap_del_sec" => Some(true),
        "11" | "leap_alarm" => Some(false),
        _ => None,
    }
}

/// The last CSV field of `chronyc -c tracking` is the leap status:
/// `Normal`, `Insert second` or `Delete second` when synchronised,
/// `Not synchronised` otherwise.
pub fn parse_chrony_tracking(csv: &str) -> Option<bool> {
    let line = csv.lines().find(|l| !l.trim().is_empty())?;
    let fields: Vec<&str> = line.split(',').collect();
    if fields.len() < 14 {
        return None;
    }
    match fields.last()?.trim() {
        "Normal" | "Insert second" | "Delete second" => Some(true),
        "Not synchronised" => Some(false),
        _ => None,
    }
}

static CACHE: Mutex<Option<(Instant, Sync)>> = Mutex::new(None);
static REFRESHING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// This machine's reading. Only the first call asks the sources in the
/// caller's thread; after that a reading older than [`READING_TTL`] is
/// returned while a background thread asks again, so a slow `chronyc` never
/// delays a decision. A reading that changed, or cannot be had, is logged once.
pub fn reading() -> Sync {
    use std::sync::atomic::Ordering;
    let cached = CACHE.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match cached {
        None => refresh(),
        Some((at, sync)) => {
            if at.elapsed() >= READING_TTL && !REFRESHING.swap(true, Ordering::SeqCst) {
                let spawned = std::thread::Builder::new()
                    .name("clock-sync".into())
                    .spawn(|| {
                        refresh();
                        REFRESHING.store(false, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    REFRESHING.store(false, Ordering::SeqCst);
                }
            }
            sync
        }
    }
}

/// Asks the sources now and caches the answer.
pub fn refresh() -> Sync {
    let sync = Probe::system().read();
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let changed = cache.as_ref().map(|(_, s)| s) != Some(&sync);
    if changed {
        match &sync {
            Sync::Unknown { why } => tracing::warn!(
                "cannot tell whether the clock is synchronised ({why}); treated as \
                 unsynchronised: expiries are still enforced, start dates are not"
            ),
            other => tracing::info!("clock {}", other.describe()),
        }
    }
    *cache = Some((Instant::now(), sync.clone()));
    sync
}

/// Whether this machine's clock is known to be synchronised.
pub fn is_synchronised() -> bool {
    reading().is_synchronised()
}

/// The trusted time floor while the process runs: the last trusted instant,
/// advanced by the monotonic clock since (which never runs faster than real
/// time), so "now" cannot be set back past it.
#[derive(Debug, Default)]
pub struct Floor {
    inner: Mutex<Option<(DateTime<Utc>, Instant)>>,
}

impl Floor {
    pub fn new(initial: Option<DateTime<Utc>>) -> Floor {
        Floor {
            inner: Mutex::new(initial.map(|t| (t, Instant::now()))),
        }
    }

    /// The floor now (`None`: nothing trusted yet).
    pub fn get(&self) -> Option<DateTime<Utc>> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.map(|(t, at)| t + chrono::Duration::from_std(at.elapsed()).unwrap_or_default())
    }

    /// Raises the floor to `t` if that is later; never lowers it.
    pub fn raise(&self, t: DateTime<Utc>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let current =
            inner.map(|(f, at)| f + chrono::Duration::from_std(at.elapsed()).unwrap_or_default());
        if current.is_none_or(|c| t > c) {
            *inner = Some((t, Instant::now()));
        }
    }

    /// max(`system`, floor): the time decisions use.
    pub fn trusted_now(&self, system: DateTime<Utc>) -> DateTime<Utc> {
        self.get().map_or(system, |f| f.max(system))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eperm() -> io::Result<bool> {
        Err(io::Error::from_raw_os_error(libc::EPERM))
    }

    fn probe(dir: &Path, kernel: KernelQuery, chronyc: Option<PathBuf>) -> Probe {
        Probe {
            kernel,
            timesyncd_flag: dir.join("synchronized"),
            chronyc,
            ntpq: None,
        }
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("gatehouse-clock-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn timesyncd_answers_when_adjtimex_is_refused_by_the_sandbox() {
        let dir = scratch("timesyncd");
        let p = probe(&dir, eperm, None);
        // Before timesyncd has synchronised: unknown, naming EPERM, not a
        // silent "unsynchronised".
        match p.read() {
            Sync::Unknown { why } => {
                assert!(
                    why.contains("adjtimex") && why.contains("os error 1"),
                    "{why}"
                )
            }
            other => panic!("expected unknown, got {other:?}"),
        }
        std::fs::write(dir.join("synchronized"), b"").unwrap();
        assert_eq!(
            p.read(),
            Sync::Synchronised {
                source: "systemd-timesyncd"
            }
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn chrony_answers_when_adjtimex_is_refused_and_timesyncd_is_absent() {
        let dir = scratch("chrony");
        let fake = |name: &str, leap: &str| {
            let path = dir.join(name);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\necho 'A9FEA97B,169.254.169.123,4,1764750000.1,0.000001,0.0,0.0,-1.2,0.0,0.1,0.0001,0.0002,64.0,{leap}'\n"
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        let synced = probe(&dir, eperm, Some(fake("chronyc-ok", "Normal")));
        assert_eq!(synced.read(), Sync::Synchronised { source: "chrony" });
        let unsynced = probe(&dir, eperm, Some(fake("chronyc-no", "Not synchronised")));
        assert_eq!(unsynced.read(), Sync::Unsynchronised { source: "chrony" });
        let missing = probe(&dir, eperm, Some(dir.join("no-such-chronyc")));
        assert!(matches!(missing.read(), Sync::Unknown { .. }));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_kernel_is_believed_when_it_answers() {
        let dir = scratch("kernel");
        assert!(probe(&dir, || Ok(true), None).read().is_synchronised());
        assert_eq!(
            probe(&dir, || Ok(false), None).read(),
            Sync::Unsynchronised { source: "adjtimex" }
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn chrony_leap_status_is_parsed() {
        let line = "A9FEA97B,169.254.169.123,4,1764750000.1,0.000001,0.0,0.0,-1.2,0.0,0.1,0.0001,0.0002,64.0,";
        assert_eq!(
            parse_chrony_tracking(&format!("{line}Normal\n")),
            Some(true)
        );
        assert_eq!(
            parse_chrony_tracking(&format!("{line}Not synchronised\n")),
            Some(false)
        );
        assert_eq!(parse_chrony_tracking("506 Cannot talk to daemon"), None);
    }

    #[test]
    fn ntpq_leap_is_parsed_and_asked_when_the_others_cannot_answer() {
        assert_eq!(parse_ntpq_leap("leap=00\n"), Some(true));
        assert_eq!(
            parse_ntpq_leap("associd=0 status=c016, leap=11\n"),
            Some(false)
        );
        assert_eq!(parse_ntpq_leap("leap=leap_alarm\n"), Some(false));
        assert_eq!(parse_ntpq_leap("ntpq: read: Connection refused"), None);
        let dir = scratch("ntpq");
        let path = dir.join("ntpq");
        std::fs::write(&path, "#!/bin/sh\necho 'leap=00'\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let p = Probe {
            ntpq: Some(path),
            ..probe(&dir, eperm, Some(dir.join("no-such-chronyc")))
        };
        assert_eq!(p.read(), Sync::Synchronised { source: "ntpd" });
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn now_never_falls_below_the_floor() {
        let floor = Floor::new(None);
        let t0: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        assert_eq!(floor.trusted_now(t0), t0, "nothing trusted yet");
        floor.raise(t0 + chrono::Duration::days(3));
        // The clock reads three days earlier than the floor: the floor wins.
        assert!(floor.trusted_now(t0) >= t0 + chrono::Duration::days(3));
        // A later clock wins over the floor.
        let later = t0 + chrono::Duration::days(10);
        assert_eq!(floor.trusted_now(later), later);
        // Raising to an earlier time does not lower it.
        floor.raise(t0);
        assert!(floor.get().unwrap() >= t0 + chrono::Duration::days(3));
    }
}
