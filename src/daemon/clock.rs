//! Time for the daemon: a monotonic clock for door timers and lockouts, and
//! whether the wall clock is synchronised (a Pi has no real-time clock; until
//! NTP has synchronised it the date may be wrong, and events say so).

use std::time::Duration;

use tokio::time::Instant;

use crate::access::Now;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    /// Tests pin the synchronisation state; `None` asks the kernel.
    synced: Option<bool>,
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

    /// Time since the daemon started.
    pub fn mono(&self) -> Duration {
        self.start.elapsed()
    }

    /// The tokio instant of a monotonic time.
    pub fn instant_at(&self, mono: Duration) -> Instant {
        self.start + mono
    }

    pub fn now(&self) -> Now {
        Now {
            wall: chrono::Utc::now(),
            mono: self.mono(),
            clock_synced: self.synced(),
        }
    }
}
