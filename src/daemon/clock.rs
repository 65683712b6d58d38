//! Time for the daemon: a monotonic clock for door timers and lockouts, and
//! whether the wall clock is synchronised (a Pi has no real-time clock; until
//! NTP has synchronised it the date may be wrong, and events say so).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::access::Now;

/// Monotonic times start here rather than at zero, so state rebuilt from
/// events before the start (lockouts, anti-passback) has a place on the
/// timeline: anything up to a week back.
pub const MONO_ORIGIN: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Clone, Debug)]
pub struct Clock {
    start: Instant,
    /// Tests pin the synchronisation state; `None` asks the kernel.
    synced: Option<bool>,
    /// How far simulations and tests moved monotonic time forward (ms), so a
    /// test of a day-long budget waits on time it controls, not on real time.
    advanced_ms: Arc<AtomicU64>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            start: Instant::now(),
            synced: None,
            advanced_ms: Arc::default(),
        }
    }

    /// A clock whose synchronisation state is fixed (tests, benchmarks).
    pub fn with_synced(synced: Option<bool>) -> Clock {
        Clock {
            synced,
            ..Clock::new()
        }
    }

    /// Whether the wall clock can be trusted now.
    pub fn synced(&self) -> bool {
        self.synced.unwrap_or_else(crate::clock::is_synchronised)
    }

    /// Time since the daemon started, plus [`MONO_ORIGIN`] (and whatever
    /// [`Clock::advance`] added).
    pub fn mono(&self) -> Duration {
        MONO_ORIGIN + self.start.elapsed() + self.advanced()
    }

    /// Moves monotonic time forward by `by`, as if it had passed (tests and
    /// simulations; the wall clock is not touched).
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.advanced_ms.fetch_add(ms, Ordering::SeqCst);
    }

    fn advanced(&self) -> Duration {
        Duration::from_millis(self.advanced_ms.load(Ordering::SeqCst))
    }

    /// The tokio instant of a monotonic time.
    pub fn instant_at(&self, mono: Duration) -> Instant {
        match mono.checked_sub(MONO_ORIGIN + self.advanced()) {
            Some(since_start) => self.start + since_start,
            None => self.start,
        }
    }

    pub fn now(&self) -> Now {
        Now {
            wall: chrono::Utc::now(),
            mono: self.mono(),
            clock_synced: self.synced(),
        }
    }
}
