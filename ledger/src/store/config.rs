//! A store's settings ([`Config`]) and the hooks a commit reports to or fails at
//! ([`CommitObserver`], [`CommitFault`] at a [`CommitPoint`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::event::DEFAULT_MAX_PAYLOAD_BYTES;
use crate::rules::EventRules;

use super::anchor;

/// Where in a group commit a [`CommitFault`] can strike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitPoint {
    /// Before either write: nothing of the group reaches the disk.
    Write,
    /// The anchor's record of the group fails; RocksDB's write of it, made at the same time,
    /// succeeds: the store holds the group, no client is told (the store is then ahead of its
    /// anchor, which the recovery rules allow).
    Anchor,
    /// RocksDB's write of the group fails; the anchor's record of it, made at the same time, is
    /// durable: no client is told, and the next open replays the group from the anchor. (When
    /// the record needs a roll, the two writes are made one after the other, RocksDB's first,
    /// and this fault leaves nothing of the group on disk.)
    Store,
}

/// A test hook that decides whether the N-th commit (from 0) of this process fails at a
/// [`CommitPoint`] as if the disk had refused the fsync. Never set in production.
pub type CommitFault = Arc<dyn Fn(u64, CommitPoint) -> bool + Send + Sync>;

/// What one group commit did; reported to a [`CommitObserver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    /// Append requests in the group (accepted or not).
    pub requests: usize,
    /// New entries written (duplicates and rejected requests excluded).
    pub entries: usize,
    /// Time spent making the group durable: RocksDB's unsynced write beside the anchor's
    /// record and its `fdatasync` (and a roll or scrub, when one comes with the group).
    pub write_duration: Duration,
    /// Whether the write succeeded.
    pub ok: bool,
}

/// Receives [`CommitStats`] from the writer thread after each group commit; must be quick
/// (metrics), since the next group waits for it.
pub trait CommitObserver: Send + Sync {
    /// Called once per group that wrote anything.
    fn on_commit(&self, stats: &CommitStats);

    /// Called after each pass of the eraser with the number of redacted entries whose old
    /// versions are still in the store's files (0 once every redaction is erased).
    fn on_erasures_pending(&self, _pending: usize) {}
}

/// Store settings.
#[derive(Clone)]
pub struct Config {
    /// Largest accepted payload (default 64 KiB).
    pub max_payload_bytes: usize,
    /// Most events in one append request (default 4096).
    pub max_events_per_append: usize,
    /// Most events the writer commits in one `WriteBatch` (default 8192).
    pub max_group_events: usize,
    /// Pending append requests before appends are refused as overloaded (default 16384).
    pub queue_capacity: usize,
    /// How long an append waits for room in a full queue (default 2 s).
    pub queue_timeout: Duration,
    /// Checkpoint origin prefix; a tenant's origin is `"{prefix}/{tenant}"`. It is fixed when
    /// the store is created: `None` takes the stored one, or for a new store
    /// [`default_origin_prefix`](super::default_origin_prefix) of the ledger key; a value that differs from the stored one is
    /// refused ([`OpenError::OriginMismatch`](crate::error::OpenError::OriginMismatch)). C2SP tlog-checkpoint: a schema-less URL without
    /// spaces or `+`, such as `ledger.example.com`.
    pub origin_prefix: Option<String>,
    /// The source of `recordedAt`.
    pub clock: Arc<dyn Clock>,
    /// Test-only fault injection; `None` in production.
    pub commit_fault: Option<CommitFault>,
    /// Commit metrics sink.
    pub observer: Option<Arc<dyn CommitObserver>>,
    /// Domain rules (event catalogue, role checks) applied to every event before it is
    /// stored; `None` accepts any type whose envelope and header are valid.
    pub rules: Option<Arc<dyn EventRules>>,
    /// Appends are refused (`DiskFull`, `RESOURCE_EXHAUSTED`) while the data dir's filesystem
    /// has fewer free bytes than this, so that RocksDB's flushes and compactions, the
    /// projection store and the anchor never meet a full disk (default 256 MiB; 0 disables).
    pub min_free_bytes: u64,
    /// The anchor file's size in bytes (default [`anchor::CAPACITY`], 8 MiB): every commit
    /// group's record is written into it, and when one does not fit the anchor rolls, which
    /// syncs RocksDB's WAL (`store::anchor`). Smaller: shorter, more frequent pauses.
    pub anchor_capacity: u64,
    /// How long the task awaiting a single-event append from [`Ledger::submit_async`](crate::Ledger::submit_async),
    /// when nothing else is being appended, stays awake for the answer, checking it, before
    /// it sleeps (default [`DEFAULT_ANSWER_SPIN`], 1 ms; zero: it sleeps at once). Waking a
    /// sleeping runtime thread costs tens of microseconds on a virtual machine, a tenth of a
    /// lone append's latency; the price is the core's time while it waits. The wait stops as
    /// soon as another request is submitted, yields its core every few microseconds to any
    /// other runnable thread, and never happens on a single-core machine or while the writer's
    /// groups hold several requests (`store::append::spin`; BENCHMARKS.md, "Issue 20, tenth
    /// session").
    pub answer_spin: Duration,
}

/// The default of [`Config::answer_spin`].
pub const DEFAULT_ANSWER_SPIN: Duration = Duration::from_millis(1);

/// The default free-space reserve.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 256 << 20;

impl Default for Config {
    fn default() -> Self {
        Self {
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            max_events_per_append: 4096,
            max_group_events: 8192,
            queue_capacity: 16384,
            queue_timeout: Duration::from_secs(2),
            origin_prefix: None,
            clock: Arc::new(SystemClock),
            commit_fault: None,
            observer: None,
            rules: None,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
            anchor_capacity: anchor::CAPACITY,
            answer_spin: DEFAULT_ANSWER_SPIN,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("max_events_per_append", &self.max_events_per_append)
            .field("max_group_events", &self.max_group_events)
            .field("queue_capacity", &self.queue_capacity)
            .field("origin_prefix", &self.origin_prefix)
            .field("clock", &self.clock)
            .field("commit_fault", &self.commit_fault.is_some())
            .field("observer", &self.observer.is_some())
            .field("rules", &self.rules)
            .field("min_free_bytes", &self.min_free_bytes)
            .field("anchor_capacity", &self.anchor_capacity)
            .field("answer_spin", &self.answer_spin)
            .finish_non_exhaustive()
    }
}
