//! The one place the ledger reads the wall clock.
//!
//! Everything else takes time from a [`Clock`], so tests can drive time and replay never
//! depends on when it runs (`clippy.toml` bans `SystemTime::now` elsewhere).

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};

/// A source of `recordedAt` timestamps, in nanoseconds since the Unix epoch.
pub trait Clock: Send + Sync + Debug {
    /// The current time in nanoseconds since the Unix epoch (UTC).
    fn now_ns(&self) -> u64;
}

/// The operating system's real-time clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // The single sanctioned wall-clock read.
    fn now_ns(&self) -> u64 {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A clock that only moves when told to; for tests and deterministic replays.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock reading `start_ns`.
    pub fn new(start_ns: u64) -> Self {
        Self { now: AtomicU64::new(start_ns) }
    }

    /// Sets the reading to `ns` (it may go backwards: the ledger must cope).
    pub fn set(&self, ns: u64) {
        self.now.store(ns, Ordering::SeqCst);
    }

    /// Moves the reading forward by `delta_ns`.
    pub fn advance(&self, delta_ns: u64) {
        self.now.fetch_add(delta_ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}
