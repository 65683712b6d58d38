//! Time for the daemon: a monotonic clock for door timers and lockouts, and
//! the trusted wall clock for dates: max(system clock, trusted time floor),
//! with whether the system clock is synchronised (a Pi has no real-time
//! clock; until NTP has synchronised it the date may be behind, and events
//! say so). [`keep_floor`] raises the floor from synchronised readings and
//! keeps it in the database.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::watch;

use tokio::time::Instant;

use crate::access::Now;
use crate::clock::Floor;
use crate::store::{trusted_time, Store};

/// How often the floor is written down (and re-read, for raises by the
/// uplink's signed station timestamps).
pub const FLOOR_PERSIST: Duration = Duration::from_secs(60);

/// Monotonic times start here rather than at zero, so state rebuilt from
/// events before the start (lockouts, anti-passback) has a place on the
/// timeline: anything up to a week back.
pub const MONO_ORIGIN: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Clone, Debug)]
pub struct Clock {
    start: Instant,
    /// Tests pin the synchronisation state; `None` asks the sources
    /// (`crate::clock::reading`).
    synced: Option<bool>,
    /// How far simulations and tests moved monotonic time forward (ms), so a
    /// test of a day-long budget waits on time it controls, not on real time.
    advanced_ms: Arc<AtomicU64>,
    floor: Arc<Floor>,
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
            floor: Arc::new(Floor::default()),
        }
    }

    /// A clock whose synchronisation state is fixed (tests, benchmarks).
    pub fn with_synced(synced: Option<bool>) -> Clock {
        Clock {
            synced,
            ..Clock::new()
        }
    }

    /// Starts the floor at `floor` (the stored one, see `store::trusted_time::load`).
    pub fn with_floor(mut self, floor: Option<chrono::DateTime<chrono::Utc>>) -> Clock {
        self.floor = Arc::new(Floor::new(floor));
        self
    }

    /// Whether the wall clock can be trusted now.
    pub fn synced(&self) -> bool {
        self.synced.unwrap_or_else(crate::clock::is_synchronised)
    }

    /// The trusted time floor.
    pub fn floor(&self) -> &Floor {
        &self.floor
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

    /// The time of a decision. A synchronised reading raises the floor; the
    /// wall time is never below it.
    pub fn now(&self) -> Now {
        let system = chrono::Utc::now();
        let synced = self.synced();
        if synced {
            self.floor.raise(system);
        }
        Now {
            wall: self.floor.trusted_now(system),
            mono: self.mono(),
            clock_synced: synced,
        }
    }
}

/// Writes the running floor to the database and takes back any higher
/// stored one (the uplink raises it from signed station timestamps).
pub fn persist_floor(clock: &Clock, store: &Store) -> Result<()> {
    let now = clock.now();
    let stored = trusted_time::raise(
        store.conn(),
        now.wall,
        if now.clock_synced { "clock" } else { "running" },
    )?;
    clock.floor().raise(stored);
    Ok(())
}

/// Every [`FLOOR_PERSIST`] (and once at shutdown), [`persist_floor`] through
/// `with_store`, which runs it on the daemon's writer.
pub async fn keep_floor<F, Fut>(mut stop: watch::Receiver<bool>, with_store: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut tick = tokio::time::interval(FLOOR_PERSIST);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = stop.changed() => true,
            _ = tick.tick() => false,
        };
        if let Err(e) = with_store().await {
            tracing::warn!("cannot keep the trusted time floor: {e:#}");
        }
        if stopping {
            break;
        }
    }
}
